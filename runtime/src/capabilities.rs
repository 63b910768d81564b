//! The calling thread's capabilities (capget(2), capset(2)), and the ones a
//! monitor gives up for good.
//!
//! A monitor is root: it mounts its sandbox's share, makes taps, writes
//! nftables rules, joins and makes namespaces and cgroups, and starts its
//! VMM and virtiofsd as other users. It never loads a module, reboots,
//! sets the clock or touches raw I/O, so it drops those from its bounding
//! set first thing: neither it nor anything it starts can ever have them,
//! whatever a guest makes of a bug in it.

/// `struct __user_cap_header_struct` of capget(2).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` of capget(2): capabilities 0–31, then
/// 32–63.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two [`CapData`].
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// A thread's three capability sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities([CapData; 2]);

impl Capabilities {
    /// The calling thread's.
    pub fn current() -> std::io::Result<Self> {
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        // SAFETY: capget(2) writes two `CapData` into `data`.
        if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(data))
    }

    /// These, with every permitted capability effective.
    pub fn all_effective(mut self) -> Self {
        for data in &mut self.0 {
            data.effective = data.permitted;
        }
        self
    }

    /// These, without capability number `cap` in any set.
    pub fn without(mut self, cap: u32) -> Self {
        if let Some(data) = self.0.get_mut((cap / 32) as usize) {
            let bit = !(1u32 << (cap % 32));
            data.effective &= bit;
            data.permitted &= bit;
            data.inheritable &= bit;
        }
        self
    }

    /// Whether capability number `cap` is effective.
    pub fn has_effective(&self, cap: u32) -> bool {
        self.0
            .get((cap / 32) as usize)
            .is_some_and(|data| data.effective & (1 << (cap % 32)) != 0)
    }

    /// Makes them the calling thread's. Async-signal-safe.
    pub fn apply(&self) -> std::io::Result<()> {
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        // SAFETY: capset(2) reads two `CapData` from `self`.
        if unsafe { libc::syscall(libc::SYS_capset, &mut header, self.0.as_ptr()) } < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// What no monitor, nor anything it starts, ever needs (linux/capability.h).
const NEVER_NEEDED: &[(u32, &str)] = &[
    (9, "CAP_LINUX_IMMUTABLE"),
    (15, "CAP_IPC_OWNER"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (20, "CAP_SYS_PACCT"),
    (22, "CAP_SYS_BOOT"),
    (25, "CAP_SYS_TIME"),
    (26, "CAP_SYS_TTY_CONFIG"),
    (28, "CAP_LEASE"),
    (29, "CAP_AUDIT_WRITE"),
    (30, "CAP_AUDIT_CONTROL"),
    (32, "CAP_MAC_OVERRIDE"),
    (33, "CAP_MAC_ADMIN"),
    (34, "CAP_SYSLOG"),
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
    (37, "CAP_AUDIT_READ"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
    (40, "CAP_CHECKPOINT_RESTORE"),
];

/// Drops [`NEVER_NEEDED`] from the bounding set and from the calling
/// thread's sets, before the process starts other threads (each thread has
/// its own sets; new ones copy their creator's). Capabilities the running
/// kernel does not know are skipped.
pub fn drop_never_needed() -> std::io::Result<()> {
    let mut caps = Capabilities::current()?;
    for &(cap, name) in NEVER_NEEDED {
        // SAFETY: prctl(2) with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(std::io::Error::new(
                    err.kind(),
                    format!("dropping {name}: {err}"),
                ));
            }
        }
        caps = caps.without(cap);
    }
    caps.apply()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_clears_one_capability_in_every_set() {
        let all = CapData {
            effective: u32::MAX,
            permitted: u32::MAX,
            inheritable: u32::MAX,
        };
        let caps = Capabilities([all; 2]).without(16).without(39);
        assert!(!caps.has_effective(16));
        assert!(!caps.has_effective(39));
        assert!(caps.has_effective(21));
        assert_eq!(caps.0[0].permitted, !(1 << 16));
        assert_eq!(caps.0[1].inheritable, !(1 << 7));
        // Past the two words: nothing to clear.
        assert_eq!(caps.without(64), caps);
    }

    #[test]
    fn reads_and_rewrites_this_threads_own() {
        let caps = Capabilities::current().unwrap();
        caps.apply().unwrap();
        assert_eq!(Capabilities::current().unwrap(), caps);
    }
}
