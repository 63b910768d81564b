//! Host processes as `/proc` shows them: whether one lives, its state, and
//! an identity that survives pid reuse ([`ProcessIdentity`]).

use serde::{Deserialize, Serialize};

/// The fields of `/proc/PID/stat` after the command name, which may itself
/// hold spaces and parentheses (so the last `)` ends it).
fn stat_fields(pid: i64) -> Option<Vec<String>> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A process's state letter from /proc (`R`, `S`, `T` stopped, `Z`…), if
/// the process exists.
pub fn process_state(pid: i64) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Whether `pid` is a live process (not a zombie).
pub fn process_alive(pid: i64) -> bool {
    process_state(pid).is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// The signal that ended `pid`, while it is an unreaped zombie (`stat`
/// field 52, its wait status).
pub fn killed_by(pid: i64) -> Option<i32> {
    if process_state(pid)? != 'Z' {
        return None;
    }
    let status: i32 = stat_fields(pid)?.get(52 - 3)?.parse().ok()?;
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// When the process started, in clock ticks after boot (`stat` field 22):
/// with the pid, it names one process for the machine's uptime.
fn start_time(pid: i64) -> Option<u64> {
    // Field 22 overall; the list starts at field 3 (the state).
    stat_fields(pid)?.get(22 - 3)?.parse().ok()
}

/// The CPU time a process has used so far, user and system (guest time
/// included: a VMM's vCPUs count), if the process exists.
pub fn cpu_time(pid: i64) -> Option<std::time::Duration> {
    let fields = stat_fields(pid)?;
    // Fields 14 (utime) and 15 (stime), in clock ticks.
    let ticks: u64 =
        fields.get(14 - 3)?.parse::<u64>().ok()? + fields.get(15 - 3)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(std::time::Duration::from_millis(
        ticks.saturating_mul(1000) / per_second,
    ))
}

/// The processes `pid`'s main thread forked that are still there (a
/// jailed hull-vmm's pid is its warden, whose one child is the VMM in a
/// pid namespace of its own).
pub fn children(pid: i64) -> Vec<i64> {
    if pid <= 0 {
        return Vec::new();
    }
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// As [`cpu_time`], for `pid` and the processes it forked: a VMM's guest
/// may run in its child ([`children`]).
pub fn cpu_time_with_children(pid: i64) -> Option<std::time::Duration> {
    let own = cpu_time(pid)?;
    Some(
        children(pid)
            .into_iter()
            .filter_map(cpu_time)
            .sum::<std::time::Duration>()
            + own,
    )
}

/// Sends `signal` to `pid`'s children ([`children`]), then to `pid`: a
/// VMM's guest may run in its child, which must stop (or go on) with it.
pub fn signal_with_children(pid: i64, signal: nix::sys::signal::Signal) -> nix::Result<()> {
    let to = |pid: i64| {
        let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
    };
    for child in children(pid) {
        to(child)?;
    }
    to(pid)
}

/// One process, told apart from any later process that reuses its pid.
///
/// Records that must end with their owner (an address lease, say) keep
/// the identity of the process that holds them; the record is stale once
/// [`ProcessIdentity::is_alive`] says no.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: i64,
    /// Its start time in clock ticks after boot.
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The calling process.
    pub fn current() -> Self {
        let pid = i64::from(std::process::id());
        Self::of(pid).unwrap_or(Self { pid, start_time: 0 })
    }

    /// Process `pid`, if it exists.
    pub fn of(pid: i64) -> Option<Self> {
        Some(Self {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// Whether this very process still runs (not a zombie, not another
    /// process with its pid).
    pub fn is_alive(&self) -> bool {
        process_alive(self.pid) && start_time(self.pid) == Some(self.start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive() {
        let me = ProcessIdentity::current();
        assert_eq!(me.pid, i64::from(std::process::id()));
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        assert!(process_state(me.pid).is_some_and(|state| state != 'Z'));
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let me = i64::from(std::process::id());
        let before = cpu_time(me).unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_time(me).unwrap() > before);
        assert_eq!(cpu_time(0), None);
        assert!(cpu_time_with_children(me).unwrap() >= cpu_time(me).unwrap());
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let me = ProcessIdentity::current();
        let impostor = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }

    #[test]
    fn an_ended_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i64::from(child.id());
        let identity = ProcessIdentity::of(pid).unwrap();
        child.wait().unwrap();
        assert!(!identity.is_alive());
        assert!(!process_alive(pid) || ProcessIdentity::of(pid) != Some(identity));
        assert!(!process_alive(0) && !process_alive(-1));
    }
}
