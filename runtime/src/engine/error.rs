//! What the engine answers when it cannot do what it was asked.

use crate::container::ContainerError;
use crate::image::ImageError;
use crate::network::NetworkError;
use thiserror::Error;

/// An engine operation failed. The messages are Docker's where Docker has
/// one, so front ends print them as they are.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The options ask for something Hull cannot or will not do.
    #[error("{0}")]
    Invalid(String),
    /// The image is not in the store.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// The guest kernel, initramfs or virtiofsd is missing.
    #[error("Hull is not set up: missing {0} (run the set-up script in README.md)")]
    NotSetUp(String),
    /// The container is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
    /// The container's monitor refused or failed the request; `exit_code`
    /// is the one Docker gives the failure (126, 127, ...), if any.
    #[error("{message}")]
    Monitor {
        /// What it said.
        message: String,
        /// The exit code it asks for.
        exit_code: Option<i32>,
    },
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A network could not be used.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The OCI spec cannot be made (an unknown user, ...).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A capability or security option cannot be applied.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// The log options cannot be used.
    #[error(transparent)]
    LogConfig(#[from] crate::logs::LogConfigError),
    /// A volume cannot be used.
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    /// Anything else, with its context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<crate::rpc::RpcError> for EngineError {
    fn from(err: crate::rpc::RpcError) -> EngineError {
        match err {
            crate::rpc::RpcError::Remote { message, exit_code } => {
                EngineError::Monitor { message, exit_code }
            }
            other => EngineError::Other(other.into()),
        }
    }
}

impl From<std::io::Error> for EngineError {
    fn from(err: std::io::Error) -> EngineError {
        EngineError::Other(err.into())
    }
}
