//! virtio-vsock in user space (no /dev/vhost-vsock on these hosts), with
//! Firecracker's hybrid unix-socket scheme for the host side.
//!
//! [`packet`] parses and writes packets, [`muxer`] owns the connections
//! and host sockets; this module is the device state and event handling:
//! the three queue ioeventfds (rx, tx, event), the listening socket and
//! every host stream, all on the VMM's event loop.

pub mod muxer;
pub mod packet;

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use event_manager::{EventOps, Events, MutEventSubscriber};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::devices::virtio::{
    read_config_bytes, ActivateContext, DeviceError, DeviceSignals, VirtioDevice, TYPE_VSOCK,
};
use crate::memory::GuestMemory;
use muxer::Muxer;
use packet::{read_packet, rx_capacity, write_packet, PacketError};

/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;

/// Errors while creating the device.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// The host socket cannot be created.
    #[error("cannot listen on vsock socket {path}: {source}")]
    Listen {
        /// Socket path.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An eventfd could not be created.
    #[error("cannot create vsock eventfd: {0}")]
    EventFd(std::io::Error),
}

struct Active {
    memory: GuestMemory,
    queues: Vec<Queue>,
}

/// A virtio-vsock device.
pub struct Vsock {
    guest_cid: u64,
    muxer: Muxer,
    signals: Arc<DeviceSignals>,
    queue_events: [EventFd; 3],
    active: Option<Active>,
}

impl std::fmt::Debug for Vsock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsock")
            .field("guest_cid", &self.guest_cid)
            .field("muxer", &self.muxer)
            .finish_non_exhaustive()
    }
}

/// Moves every packet the tx queue holds to the muxer.
pub fn process_tx<M: vm_memory::GuestMemory>(
    mem: &M,
    queue: &mut Queue,
    muxer: &mut Muxer,
) -> Result<bool, PacketError> {
    let mut used_any = false;
    while !muxer.tx_blocked() {
        let chain = match queue.iter(mem) {
            Ok(mut iter) => iter.next(),
            Err(virtio_queue::Error::QueueNotReady) => None,
            Err(e) => return Err(PacketError::BadQueue(e.to_string())),
        };
        let Some(chain) = chain else {
            return Ok(used_any);
        };
        let head = chain.head_index();
        let (header, data) = read_packet(mem, chain)?;
        queue
            .add_used(mem, head, 0)
            .map_err(|e| PacketError::UsedRing(e.to_string()))?;
        used_any = true;
        muxer.guest_packet(&header, &data);
    }
    Ok(used_any)
}

/// Fills rx buffers with what the muxer has for the guest.
pub fn process_rx<M: vm_memory::GuestMemory>(
    mem: &M,
    queue: &mut Queue,
    muxer: &mut Muxer,
) -> Result<bool, PacketError> {
    let mut used_any = false;
    while muxer.has_rx() {
        let chain = match queue.iter(mem) {
            Ok(mut iter) => iter.next(),
            Err(virtio_queue::Error::QueueNotReady) => None,
            Err(e) => return Err(PacketError::BadQueue(e.to_string())),
        };
        let Some(chain) = chain else {
            break;
        };
        let head = chain.head_index();
        let room = rx_capacity(mem, &chain)?;
        let written = match muxer.next_rx(room) {
            Some((header, data)) => write_packet(mem, chain, &header, &data)?,
            // has_rx said yes, but nothing fit: give the buffer back empty.
            None => 0,
        };
        queue
            .add_used(mem, head, written)
            .map_err(|e| PacketError::UsedRing(e.to_string()))?;
        used_any = true;
        if written == 0 {
            break;
        }
    }
    Ok(used_any)
}

impl Vsock {
    /// A device for guest CID `guest_cid`, host side at `socket`.
    pub fn new(socket: &Path, guest_cid: u64, irq: EventFd) -> Result<Self, VsockError> {
        let muxer = Muxer::new(socket, guest_cid).map_err(|source| VsockError::Listen {
            path: socket.to_owned(),
            source,
        })?;
        let event = || EventFd::new(EFD_NONBLOCK).map_err(VsockError::EventFd);
        Ok(Vsock {
            guest_cid,
            muxer,
            signals: Arc::new(DeviceSignals::new(irq)),
            queue_events: [event()?, event()?, event()?],
            active: None,
        })
    }

    /// Serves both directions until there is nothing left to move.
    fn process(&mut self) {
        self.muxer.poll_hosts();
        if self.signals.needs_reset() {
            return;
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let (rx_queues, rest) = active.queues.split_at_mut(TX);
        let (Some(rx), Some(tx)) = (rx_queues.get_mut(RX), rest.first_mut()) else {
            return;
        };
        let result = process_tx(&active.memory, tx, &mut self.muxer).and_then(|tx_used| {
            self.muxer.poll_hosts();
            let rx_used = process_rx(&active.memory, rx, &mut self.muxer)?;
            Ok(tx_used || rx_used)
        });
        match result {
            Ok(true) => self.signals.signal_used_queue(),
            Ok(false) => {}
            Err(e) => self.signals.fail("vsock", &e),
        }
    }

    fn sync_fds(&mut self, ops: &mut EventOps) {
        let (added, closed) = self.muxer.take_fd_changes();
        for stream in closed {
            let _ = ops.remove(Events::empty(&stream));
        }
        for fd in added {
            let set =
                EventSet::IN | EventSet::OUT | EventSet::EDGE_TRIGGERED | EventSet::READ_HANG_UP;
            if let Err(e) = ops.add(Events::new_raw(fd, set)) {
                tracing::warn!("vsock: cannot watch host stream: {e:?}");
            }
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }

    fn name(&self) -> &'static str {
        "vsock"
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 3]
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // struct virtio_vsock_config { le64 guest_cid; }
        read_config_bytes(&self.guest_cid.to_le_bytes(), offset, data);
    }

    fn activate(&mut self, context: ActivateContext) -> Result<(), DeviceError> {
        if context.queues.len() != 3 {
            return Err(DeviceError::Activate("vsock needs 3 queues".into()));
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
        // The driver forgot every connection: so does the host side.
        self.muxer.close_all();
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn signals(&self) -> &Arc<DeviceSignals> {
        &self.signals
    }
}

impl MutEventSubscriber for Vsock {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd: RawFd = events.fd();
        if let Some(index) = self
            .queue_events
            .iter()
            .position(|e| std::os::fd::AsRawFd::as_raw_fd(e) == fd)
        {
            // Drain the counter; an error means it was already empty. The
            // event queue (index 2) carries only device-to-driver transport
            // resets, which this device never sends: nothing to do for it.
            let _ = self.queue_events[index].read();
        } else if fd == self.muxer.listener_fd() {
            self.muxer.accept();
        } else {
            self.muxer.host_event(fd);
        }
        self.process();
        self.sync_fds(ops);
    }

    fn init(&mut self, ops: &mut EventOps) {
        for event in &self.queue_events {
            if let Err(e) = ops.add(Events::new(event, EventSet::IN)) {
                tracing::error!("vsock: cannot watch a queue event: {e:?}");
            }
        }
        if let Err(e) = ops.add(Events::new_raw(self.muxer.listener_fd(), EventSet::IN)) {
            tracing::error!("vsock: cannot watch the listening socket: {e:?}");
        }
    }
}
