//! The machine and the programs' versions, for the report.

use crate::results::Machine;
use std::collections::BTreeMap;
use std::process::Command;

/// The first line of a program's `--version`, or "not found".
pub fn version(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "not found".into())
}

/// The `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string())
}

/// MemTotal of /proc/meminfo, MiB.
pub fn memory_mib(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// This machine; `info` is `hull info`'s map (for the KVM kind).
pub fn machine(info: &BTreeMap<String, String>) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Machine {
        cpu: cpu_model(&read("/proc/cpuinfo")),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_mib: memory_mib(&read("/proc/meminfo")),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        kvm: info.get("kvm").cloned().unwrap_or_else(|| "unknown".into()),
    }
}

/// Backend, accelerator and versions of hull, QEMU, runc and the guest kernel.
pub fn versions(hull: &str, info: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for key in ["backend", "accel", "accel options"] {
        v.insert(
            key.into(),
            info.get(key).cloned().unwrap_or_else(|| "?".into()),
        );
    }
    v.insert("hull".into(), version(hull, "--version"));
    v.insert("qemu".into(), version("qemu-system-x86_64", "--version"));
    v.insert("runc".into(), version("runc", "--version"));
    if let Some(kernel) = info.get("kernel") {
        v.insert("guest kernel".into(), kernel.clone());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            cpu_model("processor\t: 0\nmodel name\t: Test CPU @ 2GHz\n"),
            "Test CPU @ 2GHz"
        );
        assert_eq!(memory_mib("MemTotal:       24683520 kB\n"), 24105);
        assert_eq!(cpu_model(""), "unknown");
    }
}
