//! virtio-vsock: arbitrary guest memory through the tx packet parser and
//! the connection muxer, then the rx path. Must never panic.
#![no_main]

mod common;

use std::sync::{Mutex, OnceLock};

use hull_vmm::devices::virtio::vsock::muxer::Muxer;
use hull_vmm::devices::virtio::vsock::{process_rx, process_tx};
use libfuzzer_sys::fuzz_target;

fn muxer() -> &'static Mutex<Muxer> {
    static MUXER: OnceLock<Mutex<Muxer>> = OnceLock::new();
    MUXER.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("hull-fuzz-vsock-{}.sock", std::process::id()));
        Mutex::new(Muxer::new(&path, 3).expect("fuzz vsock socket"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(mem) = common::memory(data) else {
        return;
    };
    let (Some(mut tx), Some(mut rx)) = (common::queue(&data[..6]), common::queue(&data[6..12]))
    else {
        return;
    };
    let mut muxer = muxer().lock().unwrap_or_else(|e| e.into_inner());
    let _ = process_tx(&mem, &mut tx, &mut muxer);
    let _ = process_rx(&mem, &mut rx, &mut muxer);
    let _ = muxer.take_fd_changes();
});
