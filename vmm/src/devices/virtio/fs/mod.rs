//! virtio-fs as a vhost-user front-end: the queues are served by an
//! external back-end (virtiofsd) that maps guest memory itself; hull-vmm
//! only owns the transport, the configuration space and the plumbing.
//!
//! [`backend`] holds the vhost-user session and the validation of what the
//! guest set up; this module the device state and its event handling.
//!
//! Kicks: the queue ioeventfds registered with KVM go straight to the
//! back-end, so a notify never wakes hull-vmm. Interrupts: the back-end
//! signals a per-queue call eventfd that hull-vmm relays to the irqfd. It
//! cannot be given the irqfd itself, because virtio-mmio drivers read
//! InterruptStatus in their handler and ignore an interrupt that has no
//! bit set there; the relay sets the used-ring bit first.

pub mod backend;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::devices::virtio::{
    read_config_bytes, ActivateContext, DeviceError, DeviceSignals, VirtioDevice, TYPE_FS,
};
use backend::{BackendError, VhostUserConnection};

/// Largest queue size offered (virtiofsd's own limit).
pub const QUEUE_SIZE: u16 = 1024;
/// The high-priority queue and one request queue.
pub const NUM_QUEUES: usize = 2;
/// Length of the mount tag field in the configuration space.
pub const TAG_LEN: usize = 36;
/// Size of `struct virtio_fs_config`: `tag[36]`, `num_request_queues` (le32).
pub const CONFIG_LEN: usize = TAG_LEN + 4;

/// Errors while creating the device.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The tag is empty, too long or holds a NUL.
    #[error("invalid virtio-fs tag {0:?}: 1 to 36 bytes, no NUL")]
    Tag(String),
    /// The back-end cannot be reached or refused the handshake.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// An eventfd could not be created.
    #[error("cannot create virtio-fs eventfd: {0}")]
    EventFd(std::io::Error),
}

/// `struct virtio_fs_config` for `tag` with one request queue.
pub fn config_space(tag: &str) -> Result<[u8; CONFIG_LEN], FsError> {
    let bytes = tag.as_bytes();
    if bytes.is_empty() || bytes.len() > TAG_LEN || bytes.contains(&0) {
        return Err(FsError::Tag(tag.to_owned()));
    }
    let mut config = [0u8; CONFIG_LEN];
    config[..bytes.len()].copy_from_slice(bytes);
    let request_queues = (NUM_QUEUES as u32) - 1;
    config[TAG_LEN..].copy_from_slice(&request_queues.to_le_bytes());
    Ok(config)
}

/// A virtio-fs device backed by a vhost-user back-end.
pub struct Fs {
    tag: String,
    config: [u8; CONFIG_LEN],
    connection: VhostUserConnection,
    signals: Arc<DeviceSignals>,
    queue_events: [EventFd; NUM_QUEUES],
    call_events: [EventFd; NUM_QUEUES],
    backend_gone: bool,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("tag", &self.tag)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Fs {
    /// Connects to the back-end at `socket` (which must exist: it is not
    /// waited for) and creates a device with mount tag `tag`.
    pub fn new(socket: &Path, tag: &str, irq: EventFd) -> Result<Self, FsError> {
        // The tag is checked before connecting: virtiofsd serves a single
        // connection, so a failed start must not have used it up for nothing.
        config_space(tag)?;
        let connection = VhostUserConnection::connect(socket, NUM_QUEUES)?;
        Self::with_connection(connection, tag, irq)
    }

    /// A device over an established connection.
    pub fn with_connection(
        connection: VhostUserConnection,
        tag: &str,
        irq: EventFd,
    ) -> Result<Self, FsError> {
        let event = || EventFd::new(EFD_NONBLOCK).map_err(FsError::EventFd);
        Ok(Fs {
            tag: tag.to_owned(),
            config: config_space(tag)?,
            connection,
            signals: Arc::new(DeviceSignals::new(irq)),
            queue_events: [event()?, event()?],
            call_events: [event()?, event()?],
            backend_gone: false,
        })
    }
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        TYPE_FS
    }

    fn name(&self) -> &'static str {
        "fs"
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; NUM_QUEUES]
    }

    fn device_features(&self) -> u64 {
        self.connection.guest_features()
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn activate(&mut self, context: ActivateContext) -> Result<(), DeviceError> {
        if self.backend_gone {
            return Err(DeviceError::Activate(
                "the back-end closed the connection".into(),
            ));
        }
        let started = self
            .connection
            .start(
                &context.memory,
                &context.queues,
                context.acked_features,
                QUEUE_SIZE,
                &self.queue_events,
                &self.call_events,
            )
            .map_err(|e| DeviceError::Activate(e.to_string()))?;
        tracing::info!(
            "virtio-fs: backend ready (tag {}, {started} queues)",
            self.tag
        );
        Ok(())
    }

    fn reset(&mut self) {
        if !self.backend_gone {
            self.connection.stop();
        }
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn signals(&self) -> &Arc<DeviceSignals> {
        &self.signals
    }
}

impl MutEventSubscriber for Fs {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if let Some(call) = self.call_events.iter().find(|e| e.as_raw_fd() == fd) {
            // Drain the counter; an error means it was already empty.
            let _ = call.read();
            self.signals.signal_used_queue();
            return;
        }
        if fd == self.connection.socket_fd() {
            // Only hang-ups are watched: replies are read synchronously by
            // the vCPU thread that sent the request.
            self.backend_gone = true;
            if let Err(e) = ops.remove(events) {
                tracing::error!("virtio-fs: cannot stop watching the back-end: {e:?}");
            }
            tracing::error!(
                "virtio-fs: back-end closed the connection (tag {})",
                self.tag
            );
            self.signals.fail("fs", &"back-end closed the connection");
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        for call in &self.call_events {
            if let Err(e) = ops.add(Events::new(call, EventSet::IN)) {
                tracing::error!("virtio-fs: cannot watch a call event: {e:?}");
            }
        }
        let hangup = EventSet::HANG_UP | EventSet::READ_HANG_UP | EventSet::ERROR;
        if let Err(e) = ops.add(Events::new_raw(self.connection.socket_fd(), hangup)) {
            tracing::error!("virtio-fs: cannot watch the back-end socket: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests;
