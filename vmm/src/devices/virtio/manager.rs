//! Places virtio-mmio devices: one 4 KiB window and one IRQ each, the
//! queue ioeventfds and the irqfd registered with KVM, the transport on the
//! MMIO bus, the device on the event loop, and the device announced on the
//! kernel command line (`virtio_mmio.device=4K@ADDR:IRQ`). Test guests find
//! the same devices by probing the windows from `VIRTIO_MMIO_START` up.

use std::sync::{Arc, Mutex};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};

use crate::bus::{Bus, BusError};
use crate::devices::virtio::mmio::{reg, MmioTransport};
use crate::devices::virtio::VirtioDevice;
use crate::layout::{IOAPIC_PINS, VIRTIO_IRQ_BASE, VIRTIO_MMIO_SIZE, VIRTIO_MMIO_START};
use crate::memory::GuestMemory;
use crate::vstate::vm::{Vm, VmError};

/// The event loop's subscriber type.
pub type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Errors while attaching a device.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No IRQ left.
    #[error("too many virtio devices (at most {0})")]
    TooMany(u32),
    /// KVM refused an irqfd or ioeventfd.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The MMIO window is taken.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Hands out MMIO windows and IRQs in order.
#[derive(Debug, Default)]
pub struct VirtioMmioManager {
    next_slot: u32,
    cmdline: String,
}

impl VirtioMmioManager {
    /// A manager with no device yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Kernel command line fragment announcing the attached devices.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Attaches `device`: KVM wiring, transport on `mmio_bus`, subscriber on
    /// `event_manager`. Returns the window address and IRQ.
    pub fn attach<D>(
        &mut self,
        device: Arc<Mutex<D>>,
        vm: &Vm,
        memory: &GuestMemory,
        mmio_bus: &mut Bus,
        event_manager: &mut EventManager<Subscriber>,
    ) -> Result<(u64, u32), AttachError>
    where
        D: VirtioDevice + MutEventSubscriber + Send + 'static,
    {
        let max = IOAPIC_PINS - VIRTIO_IRQ_BASE;
        if self.next_slot >= max {
            return Err(AttachError::TooMany(max));
        }
        let addr = VIRTIO_MMIO_START + u64::from(self.next_slot) * VIRTIO_MMIO_SIZE;
        let irq = VIRTIO_IRQ_BASE + self.next_slot;
        {
            let d = crate::bus::lock(&device);
            vm.register_irqfd(d.signals().irq(), irq)?;
            for (index, event) in d.queue_events().iter().enumerate() {
                vm.register_mmio_ioeventfd(event, addr + reg::QUEUE_NOTIFY, Some(index as u32))?;
            }
        }
        let transport = MmioTransport::new(device.clone(), memory.clone());
        mmio_bus.insert(Arc::new(Mutex::new(transport)), addr, VIRTIO_MMIO_SIZE)?;
        event_manager.add_subscriber(device);
        self.next_slot += 1;
        self.cmdline
            .push_str(&format!(" virtio_mmio.device=4K@{addr:#x}:{irq}"));
        Ok((addr, irq))
    }
}
