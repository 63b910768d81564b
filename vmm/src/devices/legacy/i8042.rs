//! Just enough of the i8042 keyboard controller for a guest to reset the
//! machine: command 0xFE written to port 0x64 pulses the CPU reset line,
//! which ends the VMM.

use crate::bus::BusDevice;
use crate::exit::{ExitHandle, VmExit};

/// First port of the controller (data port 0x60).
pub const I8042_PORT_BASE: u64 = 0x60;
/// Ports 0x60..=0x64.
pub const I8042_PORT_LEN: u64 = 5;
const COMMAND_OFFSET: u64 = 4;
const CMD_RESET_CPU: u8 = 0xfe;

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
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status 0: output buffer empty, input buffer empty, so a guest
        // polling before sending a command proceeds at once.
        data.fill(0);
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
}
