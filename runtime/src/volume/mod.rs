//! Volumes, as Docker has them: host directories bound into a container
//! (`-v /host:/ctr`, [`bind`]), named and anonymous volumes that Hull keeps
//! under `<root>/volumes/<name>/_data` ([`store`]), and tmpfs mounts made in
//! the guest (`--tmpfs`, `--mount type=tmpfs`). What `-v`, `--mount` and
//! `--tmpfs` ask for is parsed by [`request`].
//!
//! Bind and named volumes reach the guest the same way: the host directory
//! is bind-mounted into the sandbox's virtio-fs share (in virtiofsd's
//! private mount namespace, read-only there too for `:ro`) and the guest
//! agent bind-mounts it from the share onto the container path.

mod bind;
mod filter;
mod request;
mod store;

pub use bind::BindVolume;
pub use filter::VolumeFilter;
pub use request::{clean_destination, MountRequest};
pub use store::{is_valid_name, Volume, VolumeLock, VolumeStore, ANONYMOUS_LABEL, LOCAL_DRIVER};

use std::path::PathBuf;
use thiserror::Error;

/// A volume Hull cannot use, make or remove. The messages are Docker's
/// where Docker has one.
#[derive(Debug, Error)]
pub enum VolumeError {
    /// Not `SOURCE:DEST[:OPTIONS]`.
    #[error("invalid volume specification: '{0}'")]
    Invalid(String),
    /// The container path is not absolute, or is `/`.
    #[error("invalid volume specification: '{spec}': invalid mount path: '{destination}' mount path must be absolute and not /")]
    Destination {
        /// The `-v` value.
        spec: String,
        /// Its container path.
        destination: String,
    },
    /// An option other than those Docker knows for the mount.
    #[error("invalid volume specification: '{spec}': invalid mode: {mode}")]
    Mode {
        /// The `-v` value.
        spec: String,
        /// The option.
        mode: String,
    },
    /// A `--mount` or `--tmpfs` value Hull cannot use.
    #[error("invalid argument \"{spec}\" for \"--{flag}\" flag: {reason}")]
    Flag {
        /// `mount` or `tmpfs`.
        flag: &'static str,
        /// The value.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two mounts at one container path.
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    /// The host path could not be created.
    #[error("creating the volume source {path}: {reason}")]
    Source {
        /// The host path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A volume name Docker's local driver refuses.
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    /// A one-character volume name.
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    NameTooShort(String),
    /// A volume driver other than `local`.
    #[error("error looking up volume plugin {0}: plugin \"{0}\" not found")]
    Driver(String),
    /// A `--filter` Docker does not have.
    #[error("Invalid filter '{0}'")]
    Filter(String),
    /// No volume has that name.
    #[error("No such volume: {0}")]
    NotFound(String),
    /// The volume is mounted by containers (their full ids).
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        containers: Vec<String>,
    },
    /// Reading or writing the store failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A volume's metadata could not be parsed.
    #[error("volume metadata {} is corrupt: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// A [`VolumeError::Io`] maker for `map_err`.
pub(crate) fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io {
        action,
        path,
        source,
    }
}
