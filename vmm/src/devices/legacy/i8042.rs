//! Just enough of the i8042 keyboard controller for a guest to reset the
//! machine: command 0xFE written to port 0x64 pulses the CPU reset line,
//! which ends the VMM.
//!
//! There is no keyboard or mouse behind it, and the guest is told so as
//! fast as it asks. Linux's i8042 driver first drains the controller's
//! output buffer (at most 16 bytes, then "No controller found"); only a
//! controller that drains gets its configuration byte read, and each
//! command a controller does not answer costs the driver a 10,000-poll
//! timeout (measured: 1.2 s of a nested guest's boot). So the status
//! register reads as a floating bus (0xFF, as on a machine without the
//! controller, QEMU's microvm for one) except for "input buffer full",
//! which stays clear: a driver probing for a controller gives up after 16
//! reads, and one waiting to send the reset command (Linux's `reboot=k`)
//! sends it at once.

use crate::bus::BusDevice;
use crate::exit::{ExitHandle, VmExit};

/// First port of the controller (data port 0x60).
pub const I8042_PORT_BASE: u64 = 0x60;
/// Ports 0x60..=0x64.
pub const I8042_PORT_LEN: u64 = 5;
const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = 4;
const CMD_RESET_CPU: u8 = 0xfe;
/// Status register bit: the controller has not taken the last byte written.
const STATUS_INPUT_FULL: u8 = 0x02;
/// What the status register reads: every bit of a floating bus (0xFF) but
/// "input buffer full" (so "output buffer full" is set and never clears).
const STATUS: u8 = !STATUS_INPUT_FULL;
/// What the data port reads: nothing drives the bus.
const NO_DATA: u8 = 0xff;

/// The reset-only i8042.
#[derive(Debug)]
pub struct I8042 {
    exit: ExitHandle,
}

impl I8042 {
    /// A controller whose reset command requests `VmExit::Reset` on `exit`.
    pub fn new(exit: ExitHandle) -> Self {
        I8042 { exit }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Ports 0x61..=0x63 are not the controller's (0x61, system control
        // port B, is KVM's in-kernel PIT speaker port): they read 0.
        let value = match offset {
            DATA_OFFSET => NO_DATA,
            COMMAND_OFFSET => STATUS,
            _ => 0,
        };
        data.fill(value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET_CPU) {
            self.exit.request(VmExit::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's `i8042_flush()`: reads the data port while the status says
    /// the output buffer is full, at most 16 times; `Err` means "No
    /// controller found". Returns the number of port reads it made.
    fn linux_flush(dev: &mut I8042) -> Result<usize, usize> {
        const OBF: u8 = 0x01;
        const BUFFER_SIZE: usize = 16;
        let mut reads = 0;
        let mut count = 0;
        loop {
            let mut status = [0u8];
            dev.read(COMMAND_OFFSET, &mut status);
            reads += 1;
            if status[0] & OBF == 0 {
                return Ok(reads);
            }
            if count == BUFFER_SIZE {
                return Err(reads);
            }
            count += 1;
            let mut data = [0u8];
            dev.read(DATA_OFFSET, &mut data);
            reads += 1;
        }
    }

    #[test]
    fn reset_command_requests_exit() {
        let exit = ExitHandle::new().unwrap();
        let mut dev = I8042::new(exit.clone());
        dev.write(0, &[CMD_RESET_CPU]);
        assert_eq!(exit.reason(), None);
        dev.write(COMMAND_OFFSET, &[0xaa]);
        assert_eq!(exit.reason(), None);
        dev.write(COMMAND_OFFSET, &[CMD_RESET_CPU]);
        assert_eq!(exit.reason(), Some(VmExit::Reset));
    }

    #[test]
    fn a_probing_driver_finds_no_controller_at_once() {
        let mut dev = I8042::new(ExitHandle::new().unwrap());
        // 17 status reads and 16 data reads, not a 10,000-poll timeout.
        assert_eq!(linux_flush(&mut dev), Err(33));
        // Commands are ignored: nothing ever fills or drains the buffer.
        dev.write(COMMAND_OFFSET, &[0x20]);
        assert_eq!(linux_flush(&mut dev), Err(33));
    }

    #[test]
    fn a_guest_about_to_reset_need_not_wait() {
        let mut dev = I8042::new(ExitHandle::new().unwrap());
        // Linux's kb_wait() before `outb(0xfe, 0x64)`: input buffer empty.
        for len in [1, 2, 4] {
            let mut status = vec![0u8; len];
            dev.read(COMMAND_OFFSET, &mut status);
            assert!(status.iter().all(|s| s & STATUS_INPUT_FULL == 0));
        }
    }

    #[test]
    fn other_ports_read_zero() {
        let mut dev = I8042::new(ExitHandle::new().unwrap());
        for offset in 1..COMMAND_OFFSET {
            let mut data = [0xaau8; 2];
            dev.read(offset, &mut data);
            assert_eq!(data, [0, 0]);
        }
    }
}
