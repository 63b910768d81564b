//! Pausing a VM: every vCPU thread leaves `KVM_RUN` and parks until it is
//! resumed, so the guest stops where it is, memory and devices untouched,
//! while the VMM process itself keeps running (and answering).
//!
//! A vCPU is kicked out of `KVM_RUN` by a signal whose handler does
//! nothing (the ioctl returns `EINTR`); it then finds the pause and parks.
//! A kick can land just before a vCPU enters `KVM_RUN`, so the pauser kicks
//! again until every vCPU has said it parked.

use std::os::unix::thread::JoinHandleExt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the pauser kicks vCPUs that have not parked yet.
const KICK_INTERVAL: Duration = Duration::from_millis(5);

/// The signal that kicks a vCPU out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the kick signal's handler (once per process, before vCPUs run).
pub fn install_kick_handler() -> std::io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), ignore_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

#[derive(Debug, Default)]
struct GateState {
    paused: bool,
    parked: usize,
}

/// Shared by the vCPU threads and whoever pauses them.
#[derive(Debug, Default)]
pub struct PauseGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

impl PauseGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called by a vCPU thread between runs: parks while the VM is paused.
    pub fn park_if_paused(&self) {
        let mut state = self.lock();
        if !state.paused {
            return;
        }
        state.parked += 1;
        self.changed.notify_all();
        while state.paused {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.parked -= 1;
        self.changed.notify_all();
    }

    /// Pauses the vCPUs whose threads are `vcpus`; returns once all parked.
    pub fn pause(&self, vcpus: &[JoinHandle<()>]) {
        let mut state = self.lock();
        state.paused = true;
        let running = vcpus.iter().filter(|t| !t.is_finished()).count();
        while state.parked < running {
            for thread in vcpus.iter().filter(|t| !t.is_finished()) {
                // SAFETY: pthread_kill with a thread id from a live JoinHandle
                // and a valid signal; a thread that ended meanwhile gives ESRCH.
                unsafe { libc::pthread_kill(thread.as_pthread_t(), kick_signal()) };
            }
            state = self
                .changed
                .wait_timeout(state, KICK_INTERVAL)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Lets paused vCPUs run again.
    pub fn resume(&self) {
        self.lock().paused = false;
        self.changed.notify_all();
    }

    /// Whether the VM is paused.
    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn paused_threads_stop_counting_and_go_on_when_resumed() {
        install_kick_handler().unwrap();
        let gate = Arc::new(PauseGate::default());
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (gate, counter) = (gate.clone(), counter.clone());
                std::thread::spawn(move || loop {
                    gate.park_if_paused();
                    counter.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(100));
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        gate.pause(&threads);
        assert!(gate.is_paused());
        let frozen = counter.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(counter.load(Ordering::Relaxed), frozen);
        gate.resume();
        std::thread::sleep(Duration::from_millis(50));
        assert!(counter.load(Ordering::Relaxed) > frozen);
    }
}
