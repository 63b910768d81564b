//! virtio-blk: arbitrary guest memory and queue configuration through the
//! block request parser and executor. Must never panic.
#![no_main]

mod common;

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::OnceLock;

use hull_vmm::devices::virtio::block::request::{process_queue, Disk, SECTOR_SIZE};
use libfuzzer_sys::fuzz_target;

fn disk() -> &'static Disk {
    static DISK: OnceLock<Disk> = OnceLock::new();
    DISK.get_or_init(|| {
        // SAFETY: memfd_create with a valid name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"fuzz-disk".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: fresh descriptor owned only by this File.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(64 * SECTOR_SIZE).expect("size the fuzz disk");
        Disk::new(file, false, "fuzz").expect("fuzz disk")
    })
}

fuzz_target!(|data: &[u8]| {
    let (Some(mem), Some(mut queue)) =
        (common::memory(data), data.get(..6).and_then(common::queue))
    else {
        return;
    };
    let _ = process_queue(disk(), &mem, &mut queue);
});
