//! How the VM ends: the first reason reported wins and wakes the main loop.

use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::bus::lock;

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset the machine through the i8042 controller.
    Reset,
    /// A vCPU triple-faulted (`KVM_EXIT_SHUTDOWN`).
    TripleFault,
    /// The guest powered off (debug exit port value 0, or a KVM system event).
    PowerOff,
    /// The guest wrote this value to the debug exit port.
    DebugExit(u8),
    /// The VMM failed while running the guest.
    Failure(String),
}

impl VmExit {
    /// Exit status of the VMM process for this reason.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::Reset | VmExit::TripleFault | VmExit::PowerOff => 0,
            VmExit::DebugExit(code) => i32::from(*code),
            VmExit::Failure(_) => 1,
        }
    }
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmExit::Reset => write!(f, "guest reset via i8042"),
            VmExit::TripleFault => write!(f, "guest triple fault (KVM_EXIT_SHUTDOWN)"),
            VmExit::PowerOff => write!(f, "guest power-off"),
            VmExit::DebugExit(code) => write!(f, "guest wrote {code} to the debug exit port"),
            VmExit::Failure(message) => write!(f, "VMM failure: {message}"),
        }
    }
}

/// Shared by every vCPU and device that can end the VM.
#[derive(Clone, Debug)]
pub struct ExitHandle {
    reason: Arc<Mutex<Option<VmExit>>>,
    event: Arc<EventFd>,
}

impl ExitHandle {
    /// A handle with no exit requested yet.
    pub fn new() -> std::io::Result<Self> {
        Ok(ExitHandle {
            reason: Arc::new(Mutex::new(None)),
            event: Arc::new(EventFd::new(EFD_NONBLOCK)?),
        })
    }

    /// Requests the VM to end; only the first request counts.
    pub fn request(&self, reason: VmExit) {
        let mut slot = lock(&self.reason);
        if slot.is_none() {
            *slot = Some(reason);
            if let Err(e) = self.event.write(1) {
                tracing::error!("cannot signal VM exit: {e}");
            }
        }
    }

    /// The reason, once one was requested.
    pub fn reason(&self) -> Option<VmExit> {
        lock(&self.reason).clone()
    }

    /// The event signalled on the first request.
    pub fn event(&self) -> &EventFd {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins() {
        let exit = ExitHandle::new().unwrap();
        exit.request(VmExit::TripleFault);
        exit.request(VmExit::Reset);
        assert_eq!(exit.reason(), Some(VmExit::TripleFault));
        assert_eq!(exit.event().read().unwrap(), 1);
    }
}
