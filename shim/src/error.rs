//! Hull's errors as containerd wants them: a ttrpc status whose code
//! containerd maps back to its errdefs (NotFound, FailedPrecondition, ...).

use containerd_shim::protos::ttrpc::{self, Code};
use hull_runtime::container::ContainerError;
use hull_runtime::engine::EngineError;

/// A ttrpc error with `code` and `message`.
pub fn status(code: Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

/// No task (or exec) by that id in this shim.
pub fn not_found(what: &str) -> ttrpc::Error {
    status(Code::NOT_FOUND, format!("{what}: not found"))
}

/// An engine error as a ttrpc status.
pub fn from_engine(err: EngineError) -> ttrpc::Error {
    let code = match &err {
        EngineError::Container(ContainerError::NotFound(_)) => Code::NOT_FOUND,
        EngineError::Container(ContainerError::NameInUse { .. }) => Code::ALREADY_EXISTS,
        EngineError::Invalid(_)
        | EngineError::Spec(_)
        | EngineError::Volume(_)
        | EngineError::NoSuchImage(_) => Code::INVALID_ARGUMENT,
        EngineError::State(_) => Code::FAILED_PRECONDITION,
        EngineError::NotSetUp(_) => Code::UNAVAILABLE,
        _ => Code::INTERNAL,
    };
    status(code, format!("{:#}", anyhow::Error::from(err)))
}

/// Anything else that failed, with its context.
pub fn internal(err: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::INTERNAL, err.to_string())
}
