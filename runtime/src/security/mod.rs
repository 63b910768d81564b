//! How a container's process is confined in its VM, from Docker's options:
//! its capabilities (`--cap-add`, `--cap-drop`) and `--security-opt`
//! (no_new_privs, and the seccomp profile the guest agent loads).

mod default_profile;
pub mod seccomp;

use crate::spec::DEFAULT_CAPABILITIES;
use oci_spec::runtime::{Capability, LinuxSeccomp};
use std::collections::HashSet;
use std::path::PathBuf;
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

/// Which seccomp profile a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompChoice {
    /// Hull's default (Docker's rules).
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// `seccomp=FILE`: a profile in Docker's format.
    File(PathBuf),
}

/// What `--security-opt` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOptions {
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// `seccomp=`.
    pub seccomp: SeccompChoice,
}

/// Reads `--security-opt` values in Docker's spellings; refuses what Hull
/// cannot apply (AppArmor and SELinux labels: the guest has neither).
pub fn security_options(options: &[String]) -> Result<SecurityOptions, SecurityError> {
    let mut parsed = SecurityOptions::default();
    for option in options {
        let (key, value) = option
            .split_once(['=', ':'])
            .map_or((option.as_str(), None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => parsed.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => parsed.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => parsed.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some("builtin")) => parsed.seccomp = SeccompChoice::Default,
            ("seccomp", Some(path)) if !path.is_empty() => {
                parsed.seccomp = SeccompChoice::File(PathBuf::from(path))
            }
            _ => {
                return Err(SecurityError::Option(format!(
                    "{option}: not supported by Hull"
                )))
            }
        }
    }
    Ok(parsed)
}

/// The container's `linux.seccomp` for `choice`, given the capabilities it
/// holds; `None` when unconfined.
pub fn seccomp(
    choice: &SeccompChoice,
    capabilities: &HashSet<Capability>,
) -> Result<Option<LinuxSeccomp>, SecurityError> {
    let profile = match choice {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Default => default_profile::profile()?,
        SeccompChoice::File(path) => seccomp::read(path)?,
    };
    let filter = profile.for_container(capabilities)?;
    // Compiled now too, so that a profile the kernel would not take fails
    // `create`, not the container's start (the monitor compiles it again
    // for the guest).
    hull_seccomp::Filter::compile(&filter).map_err(|err| SecurityError::Option(err.to_string()))?;
    Ok(Some(filter))
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
        let parse = |options: &[&str]| security_options(&strings(options));
        assert_eq!(parse(&[]).unwrap(), SecurityOptions::default());
        assert!(parse(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(
            parse(&["no-new-privileges:true"])
                .unwrap()
                .no_new_privileges
        );
        assert!(
            !parse(&["no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert_eq!(
            parse(&["seccomp=unconfined"]).unwrap().seccomp,
            SeccompChoice::Unconfined
        );
        assert_eq!(
            parse(&["seccomp=/etc/profile.json"]).unwrap().seccomp,
            SeccompChoice::File("/etc/profile.json".into())
        );
        assert!(parse(&["seccomp="]).is_err());
        assert!(parse(&["apparmor=docker-default"]).is_err());
    }

    #[test]
    fn the_default_profile_and_unconfined() {
        let caps = capabilities(&[], &[]).unwrap();
        let default = seccomp(&SeccompChoice::Default, &caps).unwrap().unwrap();
        assert_eq!(
            default.default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActErrno
        );
        assert_eq!(seccomp(&SeccompChoice::Unconfined, &caps).unwrap(), None);
        assert!(seccomp(&SeccompChoice::File("/nonexistent.json".into()), &caps).is_err());
    }
}
