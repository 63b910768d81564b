//! Legacy PC devices on port I/O: serial port, i8042 (reset only), and
//! Hull's debug ports (exit code, boot timer).

pub mod debug_port;
pub mod i8042;
pub mod serial;

pub use debug_port::{BootTimer, DebugExit, BOOT_TIMER_PORT, DEBUG_EXIT_PORT};
pub use i8042::{I8042, I8042_PORT_BASE, I8042_PORT_LEN};
pub use serial::{SerialDevice, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
