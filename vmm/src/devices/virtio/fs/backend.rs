//! The vhost-user side of virtio-fs: the connection to the back-end
//! (virtiofsd), the handshake done once at VMM start, and starting and
//! stopping the vrings when the driver activates or resets the device.
//!
//! The back-end maps all of guest memory and trusts the ring addresses it
//! is given, so every guest-chosen value (queue sizes, ring addresses,
//! features) is checked here before it is passed on.

use std::path::{Path, PathBuf};

use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::{
    Frontend, VhostUserFrontend, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{
    Address, GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress,
};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::virtio::VIRTIO_F_VERSION_1;
use crate::memory::GuestMemory;

/// Feature bit: the driver may use indirect descriptors.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// Feature bit: `used_event` / `avail_event` notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;

/// Ring features the guest may negotiate with the back-end: they only
/// change how the rings are read, which the back-end does, not hull-vmm.
const PASSTHROUGH_FEATURES: u64 =
    (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_RING_F_INDIRECT_DESC) | (1 << VIRTIO_RING_F_EVENT_IDX);

/// Protocol features hull-vmm uses when offered: MQ to check the back-end
/// has enough queues, REPLY_ACK so that a request the back-end refuses is
/// an error here rather than a silently dead device.
fn wanted_protocol_features() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK
}

/// Errors talking to the back-end or validating what the guest set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The socket cannot be connected.
    #[error("cannot connect to virtio-fs back-end socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: vhost::Error,
    },
    /// A vhost-user request failed.
    #[error("virtio-fs back-end: {request} failed: {source}")]
    Request {
        /// The request.
        request: &'static str,
        /// Underlying error.
        source: vhost::Error,
    },
    /// The back-end is not a virtio 1.0 device.
    #[error("virtio-fs back-end does not offer VIRTIO_F_VERSION_1 (features {0:#x})")]
    NotModern(u64),
    /// The back-end serves fewer queues than the device has.
    #[error("virtio-fs back-end serves {have} queues, {need} needed")]
    TooFewQueues {
        /// Queues the back-end serves.
        have: u64,
        /// Queues needed.
        need: u64,
    },
    /// A queue the guest set up cannot be handed to the back-end.
    #[error("queue {index}: {reason}")]
    BadQueue {
        /// Queue index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Guest memory cannot be shared (a region without a file).
    #[error("guest memory cannot be shared with the back-end: {0}")]
    Memory(vhost::Error),
}

fn request(request: &'static str) -> impl FnOnce(vhost::Error) -> BackendError {
    move |source| BackendError::Request { request, source }
}

/// The host address of `len` bytes at guest address `addr`, checked to be
/// aligned and to lie inside one memory region (the back-end translates
/// each ring through a single region of its own mapping).
fn ring_host_address(
    memory: &GuestMemory,
    what: &str,
    addr: u64,
    len: u64,
    align: u64,
) -> Result<u64, String> {
    if addr % align != 0 {
        return Err(format!("{what} at {addr:#x} is not {align}-byte aligned"));
    }
    let region = memory
        .find_region(GuestAddress(addr))
        .ok_or_else(|| format!("{what} at {addr:#x} is outside guest memory"))?;
    let offset = addr - region.start_addr().raw_value();
    let fits = offset
        .checked_add(len)
        .is_some_and(|end| end <= region.len());
    if !fits {
        return Err(format!(
            "{what} at {addr:#x} ({len} bytes) runs past its memory region"
        ));
    }
    region
        .get_host_address(MemoryRegionAddress(offset))
        .map(|ptr| ptr as u64)
        .map_err(|e| format!("{what} at {addr:#x}: {e}"))
}

/// The vring description for the back-end of `queue`, whose size must be a
/// power of two no larger than `max_size` and whose three parts must be
/// aligned (virtio 1.2, 2.7) and inside guest memory.
pub fn vring_config(
    memory: &GuestMemory,
    queue: &Queue,
    max_size: u16,
) -> Result<VringConfigData, String> {
    let size = queue.size();
    if size == 0 || !size.is_power_of_two() || size > max_size {
        return Err(format!(
            "size {size} is not a power of two in 1..={max_size}"
        ));
    }
    let n = u64::from(size);
    // Split ring sizes: 16-byte descriptors; flags, idx, ring[n] of u16 and
    // used_event; flags, idx, ring[n] of 8-byte elements and avail_event.
    let desc = ring_host_address(memory, "descriptor table", queue.desc_table(), 16 * n, 16)?;
    let avail = ring_host_address(memory, "available ring", queue.avail_ring(), 6 + 2 * n, 2)?;
    let used = ring_host_address(memory, "used ring", queue.used_ring(), 6 + 8 * n, 4)?;
    Ok(VringConfigData {
        queue_max_size: max_size,
        queue_size: size,
        flags: 0,
        desc_table_addr: desc,
        used_ring_addr: used,
        avail_ring_addr: avail,
        log_addr: None,
    })
}

/// One vhost-user connection, past its start-up handshake.
pub struct VhostUserConnection {
    frontend: Frontend,
    backend_features: u64,
    protocol: bool,
    started: Vec<usize>,
}

impl std::fmt::Debug for VhostUserConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserConnection")
            .field("backend_features", &self.backend_features)
            .field("protocol", &self.protocol)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl VhostUserConnection {
    /// Connects to the back-end listening at `path` and does the handshake.
    pub fn connect(path: &Path, num_queues: usize) -> Result<Self, BackendError> {
        // A missing socket fails at once; a refused one is retried briefly
        // by the vhost crate (the back-end may be about to listen).
        let frontend =
            Frontend::connect(path, num_queues as u64).map_err(|source| BackendError::Connect {
                path: path.to_owned(),
                source,
            })?;
        Self::handshake(frontend, num_queues)
    }

    /// The start-up handshake on an open connection: SET_OWNER, features,
    /// protocol features, queue count. Done before the guest runs, because
    /// the features offered to the guest depend on the back-end's.
    pub fn handshake(mut frontend: Frontend, num_queues: usize) -> Result<Self, BackendError> {
        frontend.set_owner().map_err(request("SET_OWNER"))?;
        let backend_features = frontend.get_features().map_err(request("GET_FEATURES"))?;
        if backend_features & (1 << VIRTIO_F_VERSION_1) == 0 {
            return Err(BackendError::NotModern(backend_features));
        }
        let protocol = backend_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0;
        if protocol {
            let offered = frontend
                .get_protocol_features()
                .map_err(request("GET_PROTOCOL_FEATURES"))?;
            let acked = offered & wanted_protocol_features();
            frontend
                .set_protocol_features(acked)
                .map_err(request("SET_PROTOCOL_FEATURES"))?;
            if acked.contains(VhostUserProtocolFeatures::MQ) {
                let have = frontend.get_queue_num().map_err(request("GET_QUEUE_NUM"))?;
                if have < num_queues as u64 {
                    return Err(BackendError::TooFewQueues {
                        have,
                        need: num_queues as u64,
                    });
                }
            }
            if acked.contains(VhostUserProtocolFeatures::REPLY_ACK) {
                frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
            }
        }
        Ok(VhostUserConnection {
            frontend,
            backend_features,
            protocol,
            started: Vec::new(),
        })
    }

    /// Features to offer the guest.
    pub fn guest_features(&self) -> u64 {
        self.backend_features & PASSTHROUGH_FEATURES
    }

    /// The socket, to watch for the back-end going away.
    pub fn socket_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.frontend)
    }

    /// Hands the ready queues to the back-end: features, memory table, then
    /// per queue size, addresses, base, call and kick eventfds, enable.
    /// Everything is validated before the first request is sent. Returns
    /// how many queues were started.
    pub fn start(
        &mut self,
        memory: &GuestMemory,
        queues: &[Queue],
        acked_features: u64,
        max_size: u16,
        kicks: &[EventFd],
        calls: &[EventFd],
    ) -> Result<usize, BackendError> {
        let mut vrings = Vec::new();
        for (index, queue) in queues.iter().enumerate().filter(|(_, q)| q.ready()) {
            let config = vring_config(memory, queue, max_size)
                .map_err(|reason| BackendError::BadQueue { index, reason })?;
            let (Some(kick), Some(call)) = (kicks.get(index), calls.get(index)) else {
                return Err(BackendError::BadQueue {
                    index,
                    reason: "no such queue".into(),
                });
            };
            vrings.push((index, config, queue.next_avail(), kick, call));
        }
        let regions = memory
            .iter()
            .map(VhostUserMemoryRegionInfo::from_guest_region)
            .collect::<Result<Vec<_>, _>>()
            .map_err(BackendError::Memory)?;

        // Only what both sides offered; the transport checked this already,
        // but the back-end must never see a bit it did not offer.
        let mut features = acked_features & self.guest_features();
        if self.protocol {
            features |= VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        }
        let fe = &mut self.frontend;
        fe.set_features(features).map_err(request("SET_FEATURES"))?;
        fe.set_mem_table(&regions)
            .map_err(request("SET_MEM_TABLE"))?;
        for (index, config, base, kick, call) in &vrings {
            let index = *index;
            fe.set_vring_num(index, config.queue_size)
                .map_err(request("SET_VRING_NUM"))?;
            fe.set_vring_addr(index, config)
                .map_err(request("SET_VRING_ADDR"))?;
            fe.set_vring_base(index, *base)
                .map_err(request("SET_VRING_BASE"))?;
            fe.set_vring_call(index, call)
                .map_err(request("SET_VRING_CALL"))?;
            // Without PROTOCOL_FEATURES the ring starts here.
            fe.set_vring_kick(index, kick)
                .map_err(request("SET_VRING_KICK"))?;
            self.started.push(index);
        }
        if self.protocol {
            for (index, ..) in &vrings {
                self.frontend
                    .set_vring_enable(*index, true)
                    .map_err(request("SET_VRING_ENABLE"))?;
            }
        }
        Ok(vrings.len())
    }

    /// Stops the started queues (driver reset): disable, then
    /// GET_VRING_BASE, which stops a ring in the back-end. Failures are
    /// logged; the next activation sets everything up again anyway.
    pub fn stop(&mut self) {
        for index in std::mem::take(&mut self.started) {
            if self.protocol {
                if let Err(e) = self.frontend.set_vring_enable(index, false) {
                    tracing::warn!("virtio-fs: cannot disable queue {index}: {e}");
                }
            }
            if let Err(e) = self.frontend.get_vring_base(index) {
                tracing::warn!("virtio-fs: cannot stop queue {index}: {e}");
            }
        }
    }
}
