//! How a container's process is confined in its VM, from Docker's options:
//! its capabilities (`--cap-add`, `--cap-drop`) and `--security-opt`.

use crate::spec::DEFAULT_CAPABILITIES;
use oci_spec::runtime::Capability;
use std::collections::HashSet;
use std::str::FromStr;
use thiserror::Error;

/// Every capability Linux 6.1 knows, for `--cap-add ALL`.
const ALL_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A security option Hull cannot apply.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecurityError {
    /// An unknown capability.
    #[error("invalid --{flag}: unknown capability: {name:?}")]
    UnknownCapability {
        /// `cap-add` or `cap-drop`.
        flag: &'static str,
        /// As given.
        name: String,
    },
    /// A `--security-opt` Hull does not know or cannot apply.
    #[error("invalid --security-opt: {0}")]
    Option(String),
}

/// One capability by Docker's spelling: `NET_ADMIN`, `cap_net_admin`, ...
fn capability(flag: &'static str, name: &str) -> Result<Capability, SecurityError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| SecurityError::UnknownCapability {
        flag,
        name: name.to_string(),
    })
}

/// Docker's default capabilities with `drop` taken out and `add` put in
/// (`ALL` in either: every one), as Docker applies them.
pub fn capabilities(add: &[String], drop: &[String]) -> Result<HashSet<Capability>, SecurityError> {
    let is_all = |name: &String| name.trim().eq_ignore_ascii_case("all");
    let mut set: HashSet<Capability> = if drop.iter().any(is_all) {
        HashSet::new()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    for name in drop.iter().filter(|n| !is_all(n)) {
        set.remove(&capability("cap-drop", name)?);
    }
    if add.iter().any(is_all) {
        for name in ALL_CAPABILITIES {
            set.insert(capability("cap-add", name)?);
        }
    }
    for name in add.iter().filter(|n| !is_all(n)) {
        set.insert(capability("cap-add", name)?);
    }
    Ok(set)
}

/// Whether `--security-opt` asks for no_new_privs; refuses what Hull
/// cannot apply yet (a seccomp profile, AppArmor, SELinux labels).
pub fn no_new_privileges(options: &[String]) -> Result<bool, SecurityError> {
    let mut no_new_privileges = false;
    for option in options {
        let (key, value) = option
            .split_once(['=', ':'])
            .map_or((option.as_str(), None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => no_new_privileges = true,
            ("no-new-privileges", Some("false")) => no_new_privileges = false,
            // What Hull's containers run with today: no filter in the VM.
            ("seccomp", Some("unconfined")) => {}
            ("seccomp", Some(_)) => {
                return Err(SecurityError::Option(format!(
                    "{option}: seccomp profiles are not applied in Hull's VMs yet; only seccomp=unconfined is accepted"
                )))
            }
            _ => return Err(SecurityError::Option(format!("{option}: not supported by Hull"))),
        }
    }
    Ok(no_new_privileges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn capabilities_are_dockers_default_with_drops_and_adds() {
        let default = capabilities(&[], &[]).unwrap();
        assert_eq!(default.len(), DEFAULT_CAPABILITIES.len());
        let set = capabilities(
            &strings(&["net_admin", "CAP_SYS_TIME"]),
            &strings(&["CHOWN"]),
        )
        .unwrap();
        assert!(set.contains(&Capability::NetAdmin) && set.contains(&Capability::SysTime));
        assert!(!set.contains(&Capability::Chown));
        let only = capabilities(&strings(&["NET_BIND_SERVICE"]), &strings(&["ALL"])).unwrap();
        assert_eq!(only, HashSet::from([Capability::NetBindService]));
        assert_eq!(capabilities(&strings(&["ALL"]), &[]).unwrap().len(), 41);
        assert_eq!(
            capabilities(&strings(&["NOPE"]), &[]),
            Err(SecurityError::UnknownCapability {
                flag: "cap-add",
                name: "NOPE".into()
            })
        );
    }

    #[test]
    fn security_options_in_dockers_spellings() {
        assert!(!no_new_privileges(&[]).unwrap());
        assert!(no_new_privileges(&strings(&["no-new-privileges"])).unwrap());
        assert!(no_new_privileges(&strings(&["no-new-privileges:true"])).unwrap());
        assert!(!no_new_privileges(&strings(&["no-new-privileges=false"])).unwrap());
        assert!(!no_new_privileges(&strings(&["seccomp=unconfined"])).unwrap());
        assert!(no_new_privileges(&strings(&["seccomp=/etc/profile.json"])).is_err());
        assert!(no_new_privileges(&strings(&["apparmor=docker-default"])).is_err());
    }
}
