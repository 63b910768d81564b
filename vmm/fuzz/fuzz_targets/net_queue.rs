//! virtio-net: arbitrary guest memory through the tx path (frames to a
//! sink) and the rx path (frames from a source). Must never panic.
#![no_main]

mod common;

use hull_vmm::devices::virtio::net::queues::{process_rx, process_tx, FrameSink, FrameSource};
use libfuzzer_sys::fuzz_target;

struct Wire {
    frames: u32,
}

impl FrameSink for Wire {
    fn write_frame(&mut self, _frame: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

impl FrameSource for Wire {
    fn read_frame(&mut self) -> Option<Vec<u8>> {
        // A few frames of assorted sizes, some invalid.
        self.frames = self.frames.checked_sub(1)?;
        Some(vec![
            0u8;
            [0, 11, 12, 60, 1526, 1527][self.frames as usize % 6]
        ])
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(mem) = common::memory(data) else {
        return;
    };
    let (Some(mut tx), Some(mut rx)) = (common::queue(&data[..6]), common::queue(&data[6..12]))
    else {
        return;
    };
    let mut wire = Wire { frames: 6 };
    let _ = process_tx(&mem, &mut tx, &mut wire);
    let mut pending = None;
    let _ = process_rx(&mem, &mut rx, &mut pending, &mut wire);
});
