//! virtio devices on the virtio-mmio transport (version 2, "modern").
//!
//! A device is split in two: its logic (parsing and serving descriptor
//! chains, in the device's own folder, tested against virtio-queue's mock
//! memory) and its event handling (an `event-manager` subscriber woken by
//! the queue ioeventfds and its host back-end). The transport in [`mmio`]
//! handles the register interface on vCPU threads.
//!
//! A hostile guest must not be able to crash the VMM: every guest-controlled
//! value is checked, and a device that sees input it cannot serve (bad
//! descriptor chain, address outside guest memory, bad length, bad queue
//! size, bad register access) sets DEVICE_NEEDS_RESET, logs, raises a
//! configuration-change interrupt and stops serving until the driver resets
//! it. The rest of the VM keeps running.

pub mod block;
pub mod fs;
pub mod manager;
pub mod mmio;
pub mod net;
pub mod vsock;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::memory::GuestMemory;

/// virtio device type of a network card.
pub const TYPE_NET: u32 = 1;
/// virtio device type of a block device.
pub const TYPE_BLOCK: u32 = 2;
/// virtio device type of a socket device.
pub const TYPE_VSOCK: u32 = 19;
/// virtio device type of a file system device.
pub const TYPE_FS: u32 = 26;

/// Feature bit: the device complies with virtio 1.0+.
pub const VIRTIO_F_VERSION_1: u32 = 32;

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is set up and ready.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 0x80;
}

/// Interrupt status bit: a used ring was updated.
pub const INTERRUPT_USED_RING: u32 = 1;
/// Interrupt status bit: the configuration (or device status) changed.
pub const INTERRUPT_CONFIG: u32 = 2;

/// State shared by a device and its transport: the interrupt line and the
/// device-side error flag.
#[derive(Debug)]
pub struct DeviceSignals {
    irq: EventFd,
    interrupt_status: AtomicU32,
    needs_reset: AtomicBool,
}

impl DeviceSignals {
    /// Signals raising the interrupt line behind `irq` (an irqfd).
    pub fn new(irq: EventFd) -> Self {
        DeviceSignals {
            irq,
            interrupt_status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
        }
    }

    /// The irqfd.
    pub fn irq(&self) -> &EventFd {
        &self.irq
    }

    fn raise(&self, bit: u32) {
        self.interrupt_status.fetch_or(bit, Ordering::SeqCst);
        if let Err(e) = self.irq.write(1) {
            tracing::error!("cannot raise virtio interrupt: {e}");
        }
    }

    /// Tells the driver that used rings changed.
    pub fn signal_used_queue(&self) {
        self.raise(INTERRUPT_USED_RING);
    }

    /// Marks the device as needing a reset because of `reason` (bad guest
    /// input) and tells the driver.
    pub fn fail(&self, device: &str, reason: &dyn std::fmt::Display) {
        if !self.needs_reset.swap(true, Ordering::SeqCst) {
            tracing::warn!("virtio-{device}: {reason}; device needs reset");
            self.raise(INTERRUPT_CONFIG);
        }
    }

    /// Whether the device needs a reset.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }

    /// The interrupt status register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status.load(Ordering::SeqCst)
    }

    /// Clears acknowledged interrupt bits.
    pub fn ack_interrupt(&self, bits: u32) {
        self.interrupt_status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Back to the power-on state (device reset by the driver).
    pub fn reset(&self) {
        self.needs_reset.store(false, Ordering::SeqCst);
        self.interrupt_status.store(0, Ordering::SeqCst);
    }
}

/// What a device gets when the driver sets DRIVER_OK.
#[derive(Debug)]
pub struct ActivateContext {
    /// Guest memory.
    pub memory: GuestMemory,
    /// The device's queues, configured and validated by the transport.
    pub queues: Vec<Queue>,
    /// Features the driver accepted.
    pub acked_features: u64,
}

/// Errors a device reports to its transport.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The guest wrote to read-only configuration space.
    #[error("write to read-only configuration space at offset {0:#x}")]
    ReadOnlyConfig(u64),
    /// Activation failed.
    #[error("activation failed: {0}")]
    Activate(String),
}

/// The device side of virtio, as seen by the transport.
pub trait VirtioDevice: Send {
    /// virtio device type.
    fn device_type(&self) -> u32;
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Largest size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Features the device offers (VERSION_1 included).
    fn device_features(&self) -> u64;
    /// Reads configuration space; out-of-range bytes read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes configuration space.
    fn write_config(&mut self, offset: u64, _data: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::ReadOnlyConfig(offset))
    }
    /// Starts serving the queues.
    fn activate(&mut self, context: ActivateContext) -> Result<(), DeviceError>;
    /// Stops serving and forgets the queues (driver reset).
    fn reset(&mut self);
    /// One eventfd per queue, signalled by KVM on a notify write.
    fn queue_events(&self) -> &[EventFd];
    /// The signals shared with the transport.
    fn signals(&self) -> &std::sync::Arc<DeviceSignals>;
}

/// Reads `data.len()` bytes at `offset` of a little-endian config struct.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= config.len() {
        return;
    }
    let end = config.len().min(start.saturating_add(data.len()));
    data[..end - start].copy_from_slice(&config[start..end]);
}
