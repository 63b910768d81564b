//! What `hull-oci` says when a verb fails: one line, as runc's errors.

use hull_runtime::engine::EngineError;
use thiserror::Error;

/// A verb failed.
#[derive(Debug, Error)]
pub enum OciError {
    /// The runtime itself could not start.
    #[error("{0}")]
    Setup(String),
    /// The arguments or the bundle ask for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// No container of that id.
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    /// A container of that id exists already.
    #[error("container \"{0}\" already exists")]
    Exists(String),
    /// The container is not in a state the verb takes.
    #[error("{0}")]
    State(String),
    /// Hull's engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reading or writing the OCI state.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl OciError {
    /// An I/O failure of `what` on `path`.
    pub fn io<'a>(
        what: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> OciError + 'a {
        move |source| OciError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}
