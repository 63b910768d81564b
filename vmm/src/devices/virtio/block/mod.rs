//! virtio-blk over a host file, read-only or read-write, with flush.
//!
//! [`request`] holds the request logic; this module the device state and
//! its event handling (one queue, served on the event loop when its
//! ioeventfd fires).

pub mod request;

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use event_manager::{EventOps, Events, MutEventSubscriber};
use virtio_queue::Queue;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::devices::virtio::{
    read_config_bytes, ActivateContext, DeviceError, DeviceSignals, VirtioDevice, TYPE_BLOCK,
};
use crate::memory::GuestMemory;
use request::{process_queue, Disk};

/// Feature bit: the device is read-only.
pub const VIRTIO_BLK_F_RO: u32 = 5;
/// Feature bit: the device supports flush.
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;

/// Errors while creating the device.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The backing file cannot be opened.
    #[error("cannot open block device file {path}: {source}")]
    Open {
        /// File path.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An eventfd could not be created.
    #[error("cannot create block device eventfd: {0}")]
    EventFd(std::io::Error),
}

struct Active {
    memory: GuestMemory,
    queue: Queue,
}

/// A virtio-blk device.
pub struct Block {
    disk: Disk,
    signals: Arc<DeviceSignals>,
    queue_events: [EventFd; 1],
    active: Option<Active>,
    features: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("disk", &self.disk)
            .field("active", &self.active.is_some())
            .finish_non_exhaustive()
    }
}

impl Block {
    /// A device over the file at `path`, interrupting through `irq`.
    pub fn new(path: &Path, read_only: bool, id: &str, irq: EventFd) -> Result<Self, BlockError> {
        let open_err = |source| BlockError::Open {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open_err)?;
        let disk = Disk::new(file, read_only, id).map_err(open_err)?;
        let mut features = 1 << VIRTIO_BLK_F_FLUSH;
        if read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        Ok(Block {
            disk,
            signals: Arc::new(DeviceSignals::new(irq)),
            queue_events: [EventFd::new(EFD_NONBLOCK).map_err(BlockError::EventFd)?],
            active: None,
            features,
        })
    }

    fn process(&mut self) {
        if self.signals.needs_reset() {
            return;
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match process_queue(&self.disk, &active.memory, &mut active.queue) {
            Ok(true) => self.signals.signal_used_queue(),
            Ok(false) => {}
            Err(e) => self.signals.fail("blk", &e),
        }
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn name(&self) -> &'static str {
        "blk"
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // struct virtio_blk_config: only `capacity` (u64, sectors) is used.
        read_config_bytes(&self.disk.sectors().to_le_bytes(), offset, data);
    }

    fn activate(&mut self, context: ActivateContext) -> Result<(), DeviceError> {
        let queue = context
            .queues
            .into_iter()
            .next()
            .ok_or_else(|| DeviceError::Activate("no queue".into()))?;
        self.active = Some(Active {
            memory: context.memory,
            queue,
        });
        // Requests may have been queued before DRIVER_OK.
        self.process();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn signals(&self) -> &Arc<DeviceSignals> {
        &self.signals
    }
}

impl MutEventSubscriber for Block {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.event_set().contains(EventSet::IN) {
            // Drain the counter; an error means it was already empty.
            let _ = self.queue_events[0].read();
            self.process();
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.queue_events[0], EventSet::IN)) {
            tracing::error!("virtio-blk: cannot watch the queue event: {e:?}");
        }
    }
}
