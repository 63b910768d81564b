//! The 8250/16550 UART at 0x3f8 (COM1, IRQ 4), from vm-superio, writing the
//! guest's output to stdout or a file.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;

/// COM1's first port.
pub const SERIAL_PORT_BASE: u64 = 0x3f8;
/// Eight registers.
pub const SERIAL_PORT_LEN: u64 = 8;

/// Raises the serial IRQ by writing to an irqfd.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// The serial port device.
pub struct SerialDevice {
    serial: Serial<IrqTrigger, NoEvents, Box<dyn Write + Send>>,
}

impl std::fmt::Debug for SerialDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialDevice").finish_non_exhaustive()
    }
}

impl SerialDevice {
    /// A UART raising `irq` and writing its output to `out` (unbuffered, so
    /// output appears as the guest writes it).
    pub fn new(irq: EventFd, out: Box<dyn Write + Send>) -> Self {
        SerialDevice {
            serial: Serial::new(IrqTrigger(irq), out),
        }
    }

    /// Feeds host input to the guest (receive FIFO); returns bytes taken.
    pub fn enqueue_input(&mut self, input: &[u8]) -> usize {
        self.serial.enqueue_raw_bytes(input).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = u8::try_from(offset).map_or(0, |off| self.serial.read(off));
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (Ok(off), Some(value)) = (u8::try_from(offset), data.first()) else {
            return;
        };
        if let Err(e) = self.serial.write(off, *value) {
            // The host side (stdout, file) failed; the guest cannot do
            // anything about it, so log and drop the byte.
            tracing::warn!("serial output error: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmit_reaches_the_sink() {
        let sink = Sink::default();
        let mut dev = SerialDevice::new(EventFd::new(0).unwrap(), Box::new(sink.clone()));
        for b in b"hi" {
            dev.write(0, &[*b]);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi");
        // Line status: transmitter empty.
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0);
    }

    #[test]
    fn odd_offsets_and_sizes_do_not_panic() {
        let mut dev = SerialDevice::new(EventFd::new(0).unwrap(), Box::new(Sink::default()));
        dev.write(1000, &[1]);
        dev.write(0, &[]);
        let mut big = [0u8; 8];
        dev.read(u64::MAX, &mut big);
        dev.read(0, &mut []);
    }
}
