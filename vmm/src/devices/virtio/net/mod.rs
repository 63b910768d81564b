//! virtio-net over a tap file descriptor (no vhost-net).
//!
//! [`queues`] moves frames between descriptor chains and the tap, [`tap`]
//! opens the interface; this module is the device state and its event
//! handling: the rx and tx queue ioeventfds and the tap descriptor
//! (edge-triggered; a frame with no receive buffer waits in `pending`).

pub mod queues;
pub mod tap;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use event_manager::{EventOps, Events, MutEventSubscriber};
use virtio_queue::Queue;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::devices::virtio::{
    read_config_bytes, ActivateContext, DeviceError, DeviceSignals, VirtioDevice, TYPE_NET,
};
use crate::memory::GuestMemory;
use queues::{process_rx, process_tx, NET_HDR_LEN};
use tap::Tap;

/// Feature bit: the device has a MAC address in its configuration.
pub const VIRTIO_NET_F_MAC: u32 = 5;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;

/// Errors while creating the device.
#[derive(Debug, thiserror::Error)]
pub enum NetDeviceError {
    /// The tap cannot be opened.
    #[error("cannot open tap interface {name}: {source}")]
    Tap {
        /// Interface name.
        name: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An eventfd could not be created.
    #[error("cannot create net eventfd: {0}")]
    EventFd(std::io::Error),
}

struct Active {
    memory: GuestMemory,
    queues: Vec<Queue>,
}

/// A virtio-net device.
pub struct Net {
    tap: Tap,
    mac: [u8; 6],
    signals: Arc<DeviceSignals>,
    queue_events: [EventFd; 2],
    active: Option<Active>,
    pending_rx: Option<Vec<u8>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("tap", &self.tap.name())
            .finish_non_exhaustive()
    }
}

impl Net {
    /// A device on tap interface `tap_name` with MAC address `mac`.
    pub fn new(tap_name: &str, mac: [u8; 6], irq: EventFd) -> Result<Self, NetDeviceError> {
        let tap = Tap::open(tap_name, NET_HDR_LEN).map_err(|source| NetDeviceError::Tap {
            name: tap_name.to_owned(),
            source,
        })?;
        let event = || EventFd::new(EFD_NONBLOCK).map_err(NetDeviceError::EventFd);
        Ok(Net {
            tap,
            mac,
            signals: Arc::new(DeviceSignals::new(irq)),
            queue_events: [event()?, event()?],
            active: None,
            pending_rx: None,
        })
    }

    fn process(&mut self) {
        if self.signals.needs_reset() {
            return;
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let (rx, tx) = active.queues.split_at_mut(TX);
        let (Some(rx), Some(tx)) = (rx.get_mut(RX), tx.first_mut()) else {
            return;
        };
        let result = process_tx(&active.memory, tx, &mut self.tap).and_then(|tx_used| {
            let rx_used = process_rx(&active.memory, rx, &mut self.pending_rx, &mut self.tap)?;
            Ok(tx_used || rx_used)
        });
        match result {
            Ok(true) => self.signals.signal_used_queue(),
            Ok(false) => {}
            Err(e) => self.signals.fail("net", &e),
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn name(&self) -> &'static str {
        "net"
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 2]
    }

    fn device_features(&self) -> u64 {
        1 << VIRTIO_NET_F_MAC
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // struct virtio_net_config: mac[6] (status etc. not offered).
        read_config_bytes(&self.mac, offset, data);
    }

    fn activate(&mut self, context: ActivateContext) -> Result<(), DeviceError> {
        if context.queues.len() != 2 {
            return Err(DeviceError::Activate("net needs 2 queues".into()));
        }
        self.active = Some(Active {
            memory: context.memory,
            queues: context.queues,
        });
        self.process();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.pending_rx = None;
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn signals(&self) -> &Arc<DeviceSignals> {
        &self.signals
    }
}

impl MutEventSubscriber for Net {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if let Some(event) = self.queue_events.iter().find(|e| e.as_raw_fd() == fd) {
            // Drain the counter; an error means it was already empty.
            let _ = event.read();
        }
        if self.active.is_none() && fd == self.tap.fd() {
            // Not running: drop what arrives (edge-triggered: read it all).
            while queues::FrameSource::read_frame(&mut self.tap).is_some() {}
        }
        self.process();
    }

    fn init(&mut self, ops: &mut EventOps) {
        for event in &self.queue_events {
            if let Err(e) = ops.add(Events::new(event, EventSet::IN)) {
                tracing::error!("virtio-net: cannot watch a queue event: {e:?}");
            }
        }
        let set = EventSet::IN | EventSet::EDGE_TRIGGERED;
        if let Err(e) = ops.add(Events::new_raw(self.tap.fd(), set)) {
            tracing::error!("virtio-net: cannot watch the tap: {e:?}");
        }
    }
}
