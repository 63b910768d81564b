//! Hull's default seccomp profile: Docker's rules, for containers that do
//! not say `--security-opt seccomp=…`.
//!
//! Like Docker's it allows by name and refuses the rest with EPERM, so a
//! system call newer than this table is refused. It allows every call of
//! the table except those Docker's profile keeps from containers: the ones
//! that reach what the kernel does not namespace (keyrings, modules, the
//! clock, swap, kexec, accounting), that reach into other processes beyond
//! tracing one's own (which Docker allows from Linux 4.8), and that make
//! namespaces or mounts, each given back by the capability Docker gives it
//! back with. The table is `syscalls`'s; a test fails when it grows, so
//! that each new call is judged rather than allowed by accident. `clone` may not make namespaces without
//! CAP_SYS_ADMIN, `clone3` answers ENOSYS then (C libraries fall back to
//! `clone`), and `personality` takes Docker's few values.
//!
//! One refusal is Hull's own, as newer Docker's: sockets of the AF_VSOCK
//! family, the guest's channel to its host, which a container has no use
//! for.

use super::seccomp::{Filter, Profile, Rule};
use super::SecurityError;
use oci_spec::runtime::LinuxSeccompOperator as Op;
use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder};
use std::collections::HashSet;

/// Calls allowed only with a capability, as Docker gives them.
const BY_CAPABILITY: [(&str, &[&str]); 14] = [
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "open_tree_attr",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "swapoff",
            "swapon",
            "syslog",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise", "userfaultfd"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "move_pages",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
];

/// Calls no container gets: host-wide state no capability in a VM's
/// container should reach, obsolete calls, and io_uring (whose requests
/// go round the filter; Docker refuses it too since 25.0).
const NEVER: [&str; 25] = [
    "add_key",
    "keyctl",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "sysfs",
    "_sysctl",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
    "afs_syscall",
    "tuxcall",
    "security",
    "vserver",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Another process's pages, and probes of other programs' code.
    "migrate_pages",
    "uprobe",
    "uretprobe",
];

/// Calls allowed only with conditions (the rules below).
const CONDITIONAL: [&str; 4] = ["clone", "clone3", "personality", "socket"];

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`.
const NAMESPACE_FLAGS: u64 = 0x7e02_0000;
/// Docker's allowed personalities: `PER_LINUX`, `UNAME26`,
/// `PER_LINUX32`, `UNAME26 | PER_LINUX32`, and the query `0xffffffff`.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];
const AF_VSOCK: u64 = 40;

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: names.iter().map(|n| n.to_string()).collect(),
        action: Some(LinuxSeccompAction::ScmpActAllow),
        ..Rule::default()
    }
}

fn condition(
    index: usize,
    op: Op,
    value: u64,
    value_two: Option<u64>,
) -> Result<LinuxSeccompArg, SecurityError> {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    match value_two {
        Some(two) => builder.value_two(two).build(),
        None => builder.build(),
    }
    .map_err(|err| SecurityError::Option(format!("the default seccomp profile: {err}")))
}

fn caps(names: &[&str]) -> Filter {
    Filter {
        caps: names.iter().map(|n| n.to_string()).collect(),
        arches: Vec::new(),
    }
}

/// The profile.
pub fn profile() -> Result<Profile, SecurityError> {
    let mut withheld: HashSet<&str> = NEVER.into_iter().chain(CONDITIONAL).collect();
    for (_, names) in BY_CAPABILITY {
        withheld.extend(names.iter().copied());
    }
    let allowed: Vec<&str> = syscalls::Sysno::iter()
        .map(|call| call.name())
        .filter(|name| !withheld.contains(name))
        .collect();
    let mut rules = vec![allow(&allowed)];
    for value in PERSONALITIES {
        rules.push(Rule {
            args: vec![condition(0, Op::ScmpCmpEq, value, None)?],
            ..allow(&["personality"])
        });
    }
    // The kernel reads the family as an int: compare its low 32 bits only
    // (a "not equal" on all 64 would let 0x1_00000028 through), and refuse
    // before allowing.
    rules.push(Rule {
        args: vec![condition(
            0,
            Op::ScmpCmpMaskedEq,
            u64::from(u32::MAX),
            Some(AF_VSOCK),
        )?],
        action: Some(LinuxSeccompAction::ScmpActErrno),
        errno_ret: Some(libc::EAFNOSUPPORT as u32),
        ..allow(&["socket"])
    });
    rules.push(allow(&["socket"]));
    rules.push(Rule {
        args: vec![condition(0, Op::ScmpCmpMaskedEq, NAMESPACE_FLAGS, Some(0))?],
        excludes: caps(&["CAP_SYS_ADMIN"]),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        action: Some(LinuxSeccompAction::ScmpActErrno),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: caps(&["CAP_SYS_ADMIN"]),
        ..allow(&["clone3"])
    });
    rules.push(Rule {
        includes: caps(&["CAP_SYS_ADMIN"]),
        ..allow(&["clone", "clone3"])
    });
    for (cap, names) in BY_CAPABILITY {
        rules.push(Rule {
            includes: caps(&[cap]),
            ..allow(names)
        });
    }
    Ok(Profile {
        default_action: Some(LinuxSeccompAction::ScmpActErrno),
        default_errno_ret: Some(libc::EPERM as u32),
        syscalls: rules,
        ..Profile::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    fn rules_for(names: &[Capability]) -> Vec<(String, LinuxSeccompAction, usize)> {
        let caps = names.iter().copied().collect();
        let seccomp = profile().unwrap().for_container(&caps).unwrap();
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|rule| {
                rule.names().iter().map(move |name| {
                    (
                        name.clone(),
                        rule.action(),
                        rule.args().as_ref().map_or(0, Vec::len),
                    )
                })
            })
            .collect()
    }

    fn has(rules: &[(String, LinuxSeccompAction, usize)], name: &str) -> bool {
        rules.iter().any(|(n, _, _)| n == name)
    }

    #[test]
    fn the_default_keeps_dockers_refusals_and_gives_back_by_capability() {
        let plain = rules_for(&crate::spec::DEFAULT_CAPABILITIES);
        for allowed in [
            "read",
            "openat",
            "execve",
            "clock_gettime",
            "chroot",
            "seccomp",
        ] {
            assert!(has(&plain, allowed), "{allowed}");
        }
        // Tracing one's own processes, as Docker allows it on kernels from
        // 4.8 (strace, gdb); another user's needs CAP_SYS_PTRACE anyway.
        for allowed in ["ptrace", "process_vm_readv", "process_vm_writev"] {
            assert!(has(&plain, allowed), "{allowed}");
        }
        for refused in [
            "mount",
            "unshare",
            "setns",
            "kcmp",
            "keyctl",
            "reboot",
            "io_uring_setup",
        ] {
            assert!(!has(&plain, refused), "{refused}");
        }
        // clone only without namespace flags; clone3 is ENOSYS.
        assert!(plain.contains(&("clone".into(), LinuxSeccompAction::ScmpActAllow, 1)));
        assert!(plain.contains(&("clone3".into(), LinuxSeccompAction::ScmpActErrno, 0)));
        let admin = rules_for(&[Capability::SysAdmin, Capability::SysPtrace]);
        for allowed in ["mount", "unshare", "setns", "kcmp", "clone3"] {
            assert!(has(&admin, allowed), "{allowed}");
        }
        assert!(admin.contains(&("clone".into(), LinuxSeccompAction::ScmpActAllow, 0)));
        assert!(!has(&admin, "keyctl") && !has(&admin, "kexec_load"));
    }

    #[test]
    fn a_new_call_in_the_table_is_a_decision_not_an_accident() {
        // The default allows the table's calls by name: when the table
        // grows (a new `syscalls` release), this fails until each new call
        // is judged (allowed, withheld, or given back by a capability) and
        // the count below updated.
        let allowed = profile().unwrap().syscalls[0].names.len();
        assert_eq!(
            (syscalls::Sysno::iter().count(), allowed),
            (382, 309),
            "the system call table changed: review the new calls"
        );
    }

    #[test]
    fn every_name_it_withholds_is_a_real_call_or_an_old_one() {
        // A typo here would silently allow the call it meant.
        let known: HashSet<&str> = syscalls::Sysno::iter().map(|c| c.name()).collect();
        let elsewhere = ["vm86", "vm86old", "_sysctl"]; // 32-bit or removed
        for name in NEVER
            .iter()
            .chain(&CONDITIONAL)
            .chain(BY_CAPABILITY.iter().flat_map(|(_, n)| n.iter()))
        {
            assert!(known.contains(name) || elsewhere.contains(name), "{name}");
        }
    }
}
