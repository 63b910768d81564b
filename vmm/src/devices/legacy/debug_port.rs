//! Hull's debug ports, for test guests and benchmarks.
//!
//! - Debug exit (port 0xf4, QEMU's `isa-debug-exit` location): a write of
//!   value `v` ends the VMM with exit status `v` (QEMU exits with
//!   `(v << 1) | 1` instead). `v == 0` is treated as a power-off.
//! - Boot timer (port 0x440): a write records how long after the VMM
//!   started the guest got to run, logged at info level.

use std::time::Instant;

use crate::bus::BusDevice;
use crate::exit::{ExitHandle, VmExit};

/// Port of the debug exit device.
pub const DEBUG_EXIT_PORT: u64 = 0xf4;
/// Port of the boot timer.
pub const BOOT_TIMER_PORT: u64 = 0x440;

/// The debug exit port.
#[derive(Debug)]
pub struct DebugExit {
    exit: ExitHandle,
}

impl DebugExit {
    /// A port whose writes request an exit on `exit`.
    pub fn new(exit: ExitHandle) -> Self {
        DebugExit { exit }
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let code = data.first().copied().unwrap_or(0);
        let reason = if code == 0 {
            VmExit::PowerOff
        } else {
            VmExit::DebugExit(code)
        };
        self.exit.request(reason);
    }
}

/// The boot timer port.
#[derive(Debug)]
pub struct BootTimer {
    start: Instant,
    reported: bool,
}

impl BootTimer {
    /// A timer measuring from `start` (the VMM's start).
    pub fn new(start: Instant) -> Self {
        BootTimer {
            start,
            reported: false,
        }
    }
}

impl BusDevice for BootTimer {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {
        if !self.reported {
            self.reported = true;
            let ms = self.start.elapsed().as_secs_f64() * 1000.0;
            tracing::info!("boot timer: guest running {ms:.3} ms after VMM start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_becomes_exit_code() {
        let exit = ExitHandle::new().unwrap();
        DebugExit::new(exit.clone()).write(0, &[42, 0, 0, 0]);
        assert_eq!(exit.reason(), Some(VmExit::DebugExit(42)));
        assert_eq!(VmExit::DebugExit(42).exit_code(), 42);
    }

    #[test]
    fn zero_is_power_off() {
        let exit = ExitHandle::new().unwrap();
        DebugExit::new(exit.clone()).write(0, &[0]);
        assert_eq!(exit.reason(), Some(VmExit::PowerOff));
        assert_eq!(VmExit::PowerOff.exit_code(), 0);
    }
}
