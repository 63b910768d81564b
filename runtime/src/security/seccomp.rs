//! Seccomp profiles in Docker's format (`--security-opt seccomp=FILE`, and
//! Hull's default), turned into the OCI spec's `linux.seccomp` for one
//! container: the rules that apply to its capabilities and to this
//! machine's architecture, as Docker does before it hands a spec to runc.
//! The monitor compiles the result to BPF (hull-seccomp) and the guest agent
//! loads it.

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use super::SecurityError;

/// The largest profile file read (Docker's default is 20 KiB).
const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// A profile as Docker's `seccomp=FILE` takes it (moby's `types.Seccomp`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What calls no rule names get.
    pub default_action: Option<LinuxSeccompAction>,
    /// The errno of an `SCMP_ACT_ERRNO` default.
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Architectures (the older spelling).
    #[serde(default)]
    pub architectures: Vec<Arch>,
    /// Architectures with their sub-architectures.
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    /// Filter flags.
    #[serde(default)]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

/// An architecture and the ones it also runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The architecture.
    pub architecture: Arch,
    /// The ones it also runs (x86 and x32 for x86_64).
    #[serde(default)]
    pub sub_architectures: Vec<Arch>,
}

/// One rule of a Docker profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The calls it is about.
    #[serde(default)]
    pub names: Vec<String>,
    /// One call (the older spelling).
    #[serde(default)]
    pub name: Option<String>,
    /// What they get.
    pub action: Option<LinuxSeccompAction>,
    /// The errno of `SCMP_ACT_ERRNO`.
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments.
    #[serde(default)]
    pub args: Vec<LinuxSeccompArg>,
    /// Applies only with all these capabilities, on these architectures.
    #[serde(default)]
    pub includes: Filter,
    /// Applies not with any of these capabilities or on these architectures.
    #[serde(default)]
    pub excludes: Filter,
}

/// When a rule applies.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities, as `CAP_SYS_ADMIN`.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Architectures.
    #[serde(default)]
    pub arches: Vec<String>,
}

/// This machine's architecture, as profiles name it.
fn native_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::ScmpArchAarch64
    } else {
        Arch::ScmpArchX86_64
    }
}

/// How `arches` lists in profiles name architectures (`amd64`, `x86_64`, ...).
fn arch_names(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::ScmpArchAarch64 => &["arm64", "aarch64"],
        _ => &["amd64", "x86_64"],
    }
}

/// Reads a profile file: bounded, and every field checked.
pub fn read(path: &Path) -> Result<Profile, SecurityError> {
    use std::io::Read;
    let invalid = |why: String| SecurityError::Option(format!("seccomp={}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|err| invalid(err.to_string()))?;
    let mut text = Vec::new();
    file.take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|err| invalid(err.to_string()))?;
    if text.len() as u64 > MAX_PROFILE_BYTES {
        return Err(invalid(format!(
            "larger than {} KiB",
            MAX_PROFILE_BYTES / 1024
        )));
    }
    serde_json::from_slice(&text)
        .map_err(|err| invalid(format!("decoding seccomp profile failed: {err}")))
}

impl Profile {
    /// The OCI filter for a container holding `capabilities`.
    pub fn for_container(
        &self,
        capabilities: &HashSet<Capability>,
    ) -> Result<LinuxSeccomp, SecurityError> {
        let invalid = |why: &str| SecurityError::Option(format!("seccomp profile: {why}"));
        let default = self
            .default_action
            .ok_or_else(|| invalid("no defaultAction"))?;
        let native = native_arch();
        let mut architectures = self.architectures.clone();
        for map in self.arch_map.iter().filter(|m| m.architecture == native) {
            architectures.push(map.architecture);
            architectures.extend(map.sub_architectures.iter().copied());
        }
        let held = |name: &String| {
            let upper = name.to_ascii_uppercase();
            Capability::from_str(upper.strip_prefix("CAP_").unwrap_or(&upper))
                .is_ok_and(|cap| capabilities.contains(&cap))
        };
        let on_native = |arch: &String| arch_names(native).contains(&arch.as_str());
        let mut syscalls: Vec<LinuxSyscall> = Vec::new();
        for rule in &self.syscalls {
            let applies = rule.includes.caps.iter().all(held)
                && (rule.includes.arches.is_empty() || rule.includes.arches.iter().any(on_native))
                && !rule.excludes.caps.iter().any(held)
                && !rule.excludes.arches.iter().any(on_native);
            if !applies {
                continue;
            }
            let names: Vec<String> = rule.names.iter().chain(rule.name.iter()).cloned().collect();
            if names.is_empty() {
                return Err(invalid("a rule names no system call"));
            }
            let action = rule.action.ok_or_else(|| invalid("a rule has no action"))?;
            if action == LinuxSeccompAction::ScmpActNotify {
                return Err(invalid("SCMP_ACT_NOTIFY is not supported"));
            }
            let mut builder = LinuxSyscallBuilder::default().names(names).action(action);
            if let Some(errno) = rule.errno_ret {
                builder = builder.errno_ret(errno);
            }
            if !rule.args.is_empty() {
                if rule.args.iter().any(|arg| arg.index() > 5) {
                    return Err(invalid("an argument index past the sixth"));
                }
                builder = builder.args(rule.args.clone());
            }
            syscalls.push(builder.build().map_err(|err| invalid(&err.to_string()))?);
        }
        let mut builder = LinuxSeccompBuilder::default()
            .default_action(default)
            .syscalls(syscalls);
        if let Some(errno) = self.default_errno_ret {
            builder = builder.default_errno_ret(errno);
        }
        if !architectures.is_empty() {
            builder = builder.architectures(architectures);
        }
        if !self.flags.is_empty() {
            builder = builder.flags(self.flags.clone());
        }
        builder.build().map_err(|err| invalid(&err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(names: &[&str]) -> HashSet<Capability> {
        names
            .iter()
            .map(|n| Capability::from_str(n).unwrap())
            .collect()
    }

    #[test]
    fn rules_apply_by_capability_and_architecture() {
        let profile: Profile = serde_json::from_str(
            r#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
              ],
              "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "ignored"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"name": "arch_prctl", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
                {"names": ["sync_file_range2"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}}
              ]
            }"#,
        )
        .unwrap();
        let plain = profile.for_container(&caps(&["CHOWN"])).unwrap();
        let names = |seccomp: &LinuxSeccomp| -> Vec<String> {
            seccomp
                .syscalls()
                .iter()
                .flatten()
                .flat_map(|s| s.names().clone())
                .collect()
        };
        let native_only = if cfg!(target_arch = "x86_64") {
            "arch_prctl"
        } else {
            "sync_file_range2"
        };
        assert_eq!(
            names(&plain),
            ["read", "write", "clone", "clone3", native_only]
        );
        assert_eq!(plain.default_errno_ret(), Some(1));
        assert_eq!(plain.architectures().as_ref().map(Vec::len), Some(2));
        let admin = profile.for_container(&caps(&["SYS_ADMIN"])).unwrap();
        assert_eq!(names(&admin), ["read", "write", "mount", native_only]);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        std::fs::write(&path, "{\"defaultAction\": \"SCMP_ACT_NOPE\"}").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("decoding seccomp profile failed"), "{err}");
        std::fs::write(&path, vec![b' '; (MAX_PROFILE_BYTES + 1) as usize]).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("larger than"));
        assert!(read(&dir.path().join("missing")).is_err());
        let notify: Profile = serde_json::from_str(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        assert!(notify.for_container(&HashSet::new()).is_err());
        let no_default: Profile = serde_json::from_str("{}").unwrap();
        assert!(no_default.for_container(&HashSet::new()).is_err());
    }
}
