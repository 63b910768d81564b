//! The virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2).
//!
//! Runs on vCPU threads. Every register access is checked: registers are
//! 32 bits wide and must be accessed as such; unknown offsets, queue
//! registers of a queue that does not exist, invalid queue sizes or ring
//! addresses, and status writes that clear bits put the device in
//! DEVICE_NEEDS_RESET instead of being trusted. Queue notifications normally
//! never reach this code: KVM turns them into ioeventfd signals.

use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

use crate::bus::{lock, BusDevice};
use crate::devices::virtio::{
    status, ActivateContext, DeviceSignals, VirtioDevice, VIRTIO_F_VERSION_1,
};
use crate::memory::GuestMemory;

const MAGIC_VALUE: u32 = 0x7472_6976; // "virt"
const MMIO_VERSION: u32 = 2;
/// Vendor id reported to the guest ("HULL").
pub const VENDOR_ID: u32 = 0x4c4c_5548;

/// Register offsets.
pub mod reg {
    /// Magic value.
    pub const MAGIC: u64 = 0x000;
    /// Transport version.
    pub const VERSION: u64 = 0x004;
    /// Device type.
    pub const DEVICE_ID: u64 = 0x008;
    /// Vendor.
    pub const VENDOR_ID: u64 = 0x00c;
    /// 32 bits of device features.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// Which 32 bits.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// 32 bits of driver features.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// Which 32 bits.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// Queue selector.
    pub const QUEUE_SEL: u64 = 0x030;
    /// Largest size of the selected queue.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// Size of the selected queue.
    pub const QUEUE_NUM: u64 = 0x038;
    /// Selected queue ready.
    pub const QUEUE_READY: u64 = 0x044;
    /// Queue notification.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// Interrupt status.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// Interrupt acknowledge.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Device status.
    pub const STATUS: u64 = 0x070;
    /// Descriptor table address, low half.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// Descriptor table address, high half.
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// Available ring address, low half.
    pub const QUEUE_AVAIL_LOW: u64 = 0x090;
    /// Available ring address, high half.
    pub const QUEUE_AVAIL_HIGH: u64 = 0x094;
    /// Used ring address, low half.
    pub const QUEUE_USED_LOW: u64 = 0x0a0;
    /// Used ring address, high half.
    pub const QUEUE_USED_HIGH: u64 = 0x0a4;
    /// Configuration generation.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// A virtio device behind the MMIO register interface.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    signals: Arc<DeviceSignals>,
    memory: GuestMemory,
    queues: Vec<Queue>,
    name: &'static str,
    device_type: u32,
    device_features: u64,
    device_features_select: u32,
    driver_features: u64,
    driver_features_select: u32,
    queue_select: u32,
    status: u32,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("device", &self.name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn new_queues(max_sizes: &[u16]) -> Vec<Queue> {
    max_sizes
        .iter()
        .filter_map(|max| Queue::new(*max).ok())
        .collect()
}

impl MmioTransport {
    /// Wraps `device`; `memory` is used to validate rings at activation.
    pub fn new(device: Arc<Mutex<dyn VirtioDevice>>, memory: GuestMemory) -> Self {
        let (signals, queues, name, device_type, device_features) = {
            let d = lock(&device);
            (
                d.signals().clone(),
                new_queues(d.queue_max_sizes()),
                d.name(),
                d.device_type(),
                d.device_features() | (1 << VIRTIO_F_VERSION_1),
            )
        };
        MmioTransport {
            device,
            signals,
            memory,
            queues,
            name,
            device_type,
            device_features,
            device_features_select: 0,
            driver_features: 0,
            driver_features_select: 0,
            queue_select: 0,
            status: 0,
        }
    }

    /// The current device status, as the driver reads it.
    pub fn status(&self) -> u32 {
        let needs_reset = if self.signals.needs_reset() {
            status::DEVICE_NEEDS_RESET
        } else {
            0
        };
        self.status | needs_reset
    }

    fn fail(&self, reason: &dyn std::fmt::Display) {
        self.signals.fail(self.name, reason);
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn reset(&mut self) {
        lock(&self.device).reset();
        self.signals.reset();
        let max_sizes: Vec<u16> = self.queues.iter().map(|q| q.max_size()).collect();
        self.queues = new_queues(&max_sizes);
        self.device_features_select = 0;
        self.driver_features = 0;
        self.driver_features_select = 0;
        self.queue_select = 0;
        self.status = 0;
    }

    fn queue_config_allowed(&self) -> bool {
        self.status & status::FEATURES_OK != 0 && self.status & status::DRIVER_OK == 0
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        if value & self.status != self.status {
            self.fail(&format_args!(
                "status write {value:#x} clears bits of {:#x}",
                self.status
            ));
            return;
        }
        let mut value = value & !status::DEVICE_NEEDS_RESET;
        let added = value & !self.status;
        if added & status::FEATURES_OK != 0 {
            let offered = self.driver_features & !self.device_features == 0;
            let modern = self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0;
            if !offered || !modern {
                tracing::warn!(
                    "virtio-{}: driver features {:#x} not acceptable (offered {:#x})",
                    self.name,
                    self.driver_features,
                    self.device_features
                );
                value &= !status::FEATURES_OK;
            }
        }
        if added & status::DRIVER_OK != 0 {
            if value & status::FEATURES_OK == 0 {
                self.fail(&"DRIVER_OK without FEATURES_OK");
                return;
            }
            if let Some(index) = self
                .queues
                .iter()
                .position(|q| q.ready() && !q.is_valid(&self.memory))
            {
                self.fail(&format_args!("queue {index} is not valid in guest memory"));
                return;
            }
            let queues: Result<Vec<Queue>, _> = self
                .queues
                .iter()
                .map(|q| Queue::try_from(q.state()))
                .collect();
            let queues = match queues {
                Ok(queues) => queues,
                Err(e) => {
                    self.fail(&format_args!("bad queue configuration: {e}"));
                    return;
                }
            };
            let context = ActivateContext {
                memory: self.memory.clone(),
                queues,
                acked_features: self.driver_features,
            };
            if let Err(e) = lock(&self.device).activate(context) {
                self.fail(&e);
                return;
            }
        }
        self.status = value;
    }

    fn write_queue_register(&mut self, offset: u64, value: u32) {
        // QueueReady reads back the last value written (drivers wait for a
        // 0 to read back when tearing a queue down), so it is always stored.
        if !self.queue_config_allowed() && offset != reg::QUEUE_READY {
            // Linux touches queue registers around resets; ignore rather
            // than fail, as the spec only says the driver must not.
            tracing::debug!(
                "virtio-{}: queue register {offset:#x} written in status {:#x}; ignored",
                self.name,
                self.status
            );
            return;
        }
        let select = self.queue_select;
        let Some(queue) = self.selected_queue() else {
            self.fail(&format_args!(
                "queue register write for missing queue {select}"
            ));
            return;
        };
        let high = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let result = match offset {
            reg::QUEUE_NUM => u16::try_from(value)
                .map_err(|_| virtio_queue::Error::InvalidSize)
                .and_then(|size| queue.try_set_size(size)),
            reg::QUEUE_READY => {
                queue.set_ready(value == 1);
                Ok(())
            }
            reg::QUEUE_DESC_LOW => {
                queue.try_set_desc_table_address(GuestAddress(low(queue.desc_table())))
            }
            reg::QUEUE_DESC_HIGH => {
                queue.try_set_desc_table_address(GuestAddress(high(queue.desc_table())))
            }
            reg::QUEUE_AVAIL_LOW => {
                queue.try_set_avail_ring_address(GuestAddress(low(queue.avail_ring())))
            }
            reg::QUEUE_AVAIL_HIGH => {
                queue.try_set_avail_ring_address(GuestAddress(high(queue.avail_ring())))
            }
            reg::QUEUE_USED_LOW => {
                queue.try_set_used_ring_address(GuestAddress(low(queue.used_ring())))
            }
            reg::QUEUE_USED_HIGH => {
                queue.try_set_used_ring_address(GuestAddress(high(queue.used_ring())))
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.fail(&format_args!(
                "queue {select}: register {offset:#x} value {value:#x}: {e}"
            ));
        }
    }

    fn notify(&self, value: u32) {
        // Only reached if the ioeventfd did not match, i.e. a bad queue index.
        let device = lock(&self.device);
        match device.queue_events().get(value as usize) {
            Some(event) => {
                if let Err(e) = event.write(1) {
                    tracing::error!("virtio-{}: cannot signal queue {value}: {e}", self.name);
                }
            }
            None => {
                drop(device);
                self.fail(&format_args!("notify for missing queue {value}"));
            }
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            lock(&self.device).read_config(offset - reg::CONFIG, data);
            return;
        }
        data.fill(0);
        if data.len() != 4 {
            self.fail(&format_args!(
                "{}-byte read of register {offset:#x}",
                data.len()
            ));
            return;
        }
        let value = match offset {
            reg::MAGIC => MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device_type,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_select {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.signals.interrupt_status(),
            reg::STATUS => self.status(),
            reg::CONFIG_GENERATION => 0,
            _ => {
                self.fail(&format_args!("read of unknown register {offset:#x}"));
                return;
            }
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            let result = lock(&self.device).write_config(offset - reg::CONFIG, data);
            if let Err(e) = result {
                self.fail(&e);
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            self.fail(&format_args!(
                "{}-byte write of register {offset:#x}",
                data.len()
            ));
            return;
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_select = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_select = value,
            reg::DRIVER_FEATURES => {
                if self.status & status::FEATURES_OK != 0 {
                    tracing::debug!("virtio-{}: features written after FEATURES_OK", self.name);
                    return;
                }
                match self.driver_features_select {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xffff_ffff) | u64::from(value)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                    }
                    // Higher feature words: none offered, so none accepted.
                    _ if value != 0 => self.driver_features |= 1 << 63,
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_select = value,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_AVAIL_LOW
            | reg::QUEUE_AVAIL_HIGH
            | reg::QUEUE_USED_LOW
            | reg::QUEUE_USED_HIGH => self.write_queue_register(offset, value),
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.signals.ack_interrupt(value),
            reg::STATUS => self.write_status(value),
            _ => self.fail(&format_args!(
                "write of {value:#x} to unknown register {offset:#x}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::{DeviceError, DeviceSignals};
    use vmm_sys_util::eventfd::EventFd;

    struct Dummy {
        signals: Arc<DeviceSignals>,
        events: [EventFd; 2],
        activated: bool,
    }

    impl VirtioDevice for Dummy {
        fn device_type(&self) -> u32 {
            42
        }
        fn name(&self) -> &'static str {
            "dummy"
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 16]
        }
        fn device_features(&self) -> u64 {
            1 << 3
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            crate::devices::virtio::read_config_bytes(&[1, 2, 3, 4], offset, data);
        }
        fn activate(&mut self, _context: ActivateContext) -> Result<(), DeviceError> {
            self.activated = true;
            Ok(())
        }
        fn reset(&mut self) {
            self.activated = false;
        }
        fn queue_events(&self) -> &[EventFd] {
            &self.events
        }
        fn signals(&self) -> &Arc<DeviceSignals> {
            &self.signals
        }
    }

    fn transport() -> (MmioTransport, Arc<Mutex<Dummy>>) {
        let dummy = Arc::new(Mutex::new(Dummy {
            signals: Arc::new(DeviceSignals::new(EventFd::new(0).unwrap())),
            events: [EventFd::new(0).unwrap(), EventFd::new(0).unwrap()],
            activated: false,
        }));
        let (memory, _) = crate::memory::create_guest_memory(4).unwrap();
        (MmioTransport::new(dummy.clone(), memory), dummy)
    }

    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        t.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    fn negotiate(t: &mut MmioTransport) {
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write(t, reg::DRIVER_FEATURES_SEL, 1);
        write(t, reg::DRIVER_FEATURES, 1);
        write(
            t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
    }

    #[test]
    fn identifies_the_device() {
        let (mut t, _) = transport();
        assert_eq!(read(&mut t, reg::MAGIC), MAGIC_VALUE);
        assert_eq!(read(&mut t, reg::VERSION), 2);
        assert_eq!(read(&mut t, reg::DEVICE_ID), 42);
        write(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(read(&mut t, reg::DEVICE_FEATURES), 1);
        write(&mut t, reg::QUEUE_SEL, 7);
        assert_eq!(read(&mut t, reg::QUEUE_NUM_MAX), 0);
        assert_eq!(read(&mut t, reg::CONFIG + 1) & 0xff, 2);
        assert_eq!(t.status() & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn full_negotiation_activates() {
        let (mut t, dummy) = transport();
        negotiate(&mut t);
        assert_ne!(read(&mut t, reg::STATUS) & status::FEATURES_OK, 0);
        write(&mut t, reg::QUEUE_NUM, 8);
        write(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
        write(&mut t, reg::QUEUE_AVAIL_LOW, 0x2000);
        write(&mut t, reg::QUEUE_USED_LOW, 0x3000);
        write(&mut t, reg::QUEUE_READY, 1);
        write(&mut t, reg::STATUS, 0xf);
        assert!(dummy.lock().unwrap().activated);
        assert_eq!(read(&mut t, reg::STATUS), 0xf);
        write(&mut t, reg::STATUS, 0);
        assert!(!dummy.lock().unwrap().activated);
    }

    #[test]
    fn unsupported_features_are_refused() {
        let (mut t, _) = transport();
        write(&mut t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write(&mut t, reg::DRIVER_FEATURES, 1 << 5);
        write(
            &mut t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(read(&mut t, reg::STATUS) & status::FEATURES_OK, 0);
    }

    fn assert_needs_reset_then_recovers(t: &mut MmioTransport) {
        assert_ne!(read(t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        assert_ne!(
            read(t, reg::INTERRUPT_STATUS) & crate::devices::virtio::INTERRUPT_CONFIG,
            0
        );
        write(t, reg::STATUS, 0);
        assert_eq!(read(t, reg::STATUS), 0);
    }

    #[test]
    fn bad_register_accesses_need_reset() {
        let (mut t, _) = transport();
        write(&mut t, 0x0c8, 1);
        assert_needs_reset_then_recovers(&mut t);
        t.write(reg::STATUS, &[1]);
        assert_needs_reset_then_recovers(&mut t);
        let mut wide = [0u8; 8];
        t.read(reg::MAGIC, &mut wide);
        assert_needs_reset_then_recovers(&mut t);
        read(&mut t, 0x0f0);
        assert_needs_reset_then_recovers(&mut t);
        write(&mut t, reg::QUEUE_NOTIFY, 9);
        assert_needs_reset_then_recovers(&mut t);
        write(&mut t, reg::STATUS, 3);
        write(&mut t, reg::STATUS, 1);
        assert_needs_reset_then_recovers(&mut t);
        t.write(reg::CONFIG, &[1]);
        assert_needs_reset_then_recovers(&mut t);
    }

    #[test]
    fn bad_queue_configuration_needs_reset() {
        for (offset, value) in [
            (reg::QUEUE_NUM, 3),
            (reg::QUEUE_NUM, 32),
            (reg::QUEUE_NUM, 0x1_0000),
            (reg::QUEUE_DESC_LOW, 0x1001),
            (reg::QUEUE_USED_LOW, 0x1002),
        ] {
            let (mut t, _) = transport();
            negotiate(&mut t);
            write(&mut t, offset, value);
            assert_needs_reset_then_recovers(&mut t);
        }
        let (mut t, _) = transport();
        negotiate(&mut t);
        write(&mut t, reg::QUEUE_SEL, 5);
        write(&mut t, reg::QUEUE_NUM, 8);
        assert_needs_reset_then_recovers(&mut t);
    }

    #[test]
    fn rings_outside_memory_fail_activation() {
        let (mut t, dummy) = transport();
        negotiate(&mut t);
        write(&mut t, reg::QUEUE_NUM, 8);
        write(&mut t, reg::QUEUE_DESC_LOW, 0x1000);
        write(&mut t, reg::QUEUE_DESC_HIGH, 0x10);
        write(&mut t, reg::QUEUE_AVAIL_LOW, 0x2000);
        write(&mut t, reg::QUEUE_USED_LOW, 0x3000);
        write(&mut t, reg::QUEUE_READY, 1);
        write(&mut t, reg::STATUS, 0xf);
        assert!(!dummy.lock().unwrap().activated);
        assert_needs_reset_then_recovers(&mut t);
    }
}
