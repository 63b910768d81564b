//! Changing a container's limits (`docker update`, CRI's
//! UpdateContainerResources): in the cgroup of its running container in the
//! guest, and in its spec and record for its next run. The VM keeps the
//! size it booted with: a limit beyond it is bounded by the VM.

use super::{is_live, Engine, Result};
use crate::monitor_link::client;
use crate::monitor_link::proto::MonitorRequest;
use crate::sandbox::load_spec;
use anyhow::Context;
use oci_spec::runtime::{LinuxResources, Spec};
use serde_json::Value;

impl Engine {
    /// Gives the container the limits `resources` names (memory, CPU,
    /// pids); the others stay as they are.
    pub async fn update(&self, reference: &str, resources: &LinuxResources) -> Result<()> {
        let resources = &without_unset(resources)?;
        let (store, mut record) = self.load(reference)?;
        let memory = resources
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|limit| *limit > 0);
        if let Some(bytes) = memory {
            super::create::check_memory(bytes, super::create::host_memory_bytes())?;
        }
        let dir = store.dir_of(&record.id);
        let mut spec = load_spec(&dir)?;
        merge(&mut spec, resources);
        let data = serde_json::to_vec_pretty(&spec).context("encoding the spec")?;
        crate::container::write_atomic(&dir.join("spec.json"), &data)?;
        if let Some(bytes) = memory {
            record.host_config.memory = bytes;
        }
        if let Some(cpu) = resources.cpu() {
            if let (Some(quota), period) = (cpu.quota(), cpu.period().unwrap_or(100_000)) {
                if quota > 0 && period > 0 {
                    let nano = i128::from(quota) * 1_000_000_000 / i128::from(period);
                    record.host_config.nano_cpus = i64::try_from(nano).unwrap_or(i64::MAX);
                }
            }
        }
        if let Some(pids) = resources.pids() {
            record.host_config.pids_limit = pids.limit();
        }
        store.save(&record)?;
        if is_live(&record) {
            let monitor = client::connect(&self.paths, &record.id).await?;
            monitor
                .request(MonitorRequest::Update {
                    resources: Box::new(resources.clone()),
                })
                .await?;
        }
        Ok(())
    }
}

/// The limits an update sets, as runc reads one: a zero or empty value
/// leaves its limit as it is (`docker update --memory 64m` reaches the
/// runtime with every other field zero).
fn without_unset(resources: &LinuxResources) -> Result<LinuxResources> {
    const UNSET_IF_ZERO: [(&str, &[&str]); 3] = [
        (
            "memory",
            &["limit", "reservation", "swap", "kernel", "kernelTCP"],
        ),
        (
            "cpu",
            &[
                "shares",
                "quota",
                "period",
                "realtimeRuntime",
                "realtimePeriod",
                "cpus",
                "mems",
            ],
        ),
        ("blockIO", &["weight", "leafWeight"]),
    ];
    let mut value = serde_json::to_value(resources).context("encoding the resources")?;
    if let Some(groups) = value.as_object_mut() {
        for (group, fields) in UNSET_IF_ZERO {
            let Some(object) = groups.get_mut(group).and_then(Value::as_object_mut) else {
                continue;
            };
            object.retain(|name, v| !(fields.contains(&name.as_str()) && (*v == 0 || *v == "")));
            if object.is_empty() {
                groups.remove(group);
            }
        }
    }
    Ok(serde_json::from_value(value).context("decoding the resources")?)
}

/// The spec's resources with the parts `update` names replaced.
fn merge(spec: &mut Spec, update: &LinuxResources) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut resources = linux.resources().clone().unwrap_or_default();
    if let Some(memory) = update.memory() {
        resources.set_memory(Some(*memory));
    }
    if let Some(cpu) = update.cpu() {
        resources.set_cpu(Some(cpu.clone()));
    }
    if let Some(pids) = update.pids() {
        resources.set_pids(Some(*pids));
    }
    linux.set_resources(Some(resources));
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, SpecBuilder,
    };

    #[test]
    fn zeros_leave_limits_as_they_are() {
        let sent: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":67108864,"reservation":0,"swap":67108864},
                "cpu":{"shares":0,"quota":0,"period":0,"cpus":"","mems":""},
                "pids":{"limit":40},"blockIO":{"weight":0}}"#,
        )
        .unwrap();
        let meant = without_unset(&sent).unwrap();
        let memory = meant.memory().unwrap();
        assert_eq!(memory.limit(), Some(64 << 20));
        assert_eq!(memory.reservation(), None);
        assert!(meant.cpu().is_none(), "{:?}", meant.cpu());
        assert!(meant.block_io().is_none());
        assert_eq!(meant.pids().unwrap().limit(), 40);
    }

    #[test]
    fn an_update_replaces_only_what_it_names() {
        let resources = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(50).build().unwrap())
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .resources(resources)
            .build()
            .unwrap();
        let mut spec = SpecBuilder::default().linux(linux).build().unwrap();
        let update = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        merge(&mut spec, &update);
        let merged = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(merged.pids().as_ref().unwrap().limit(), 50);
        assert_eq!(merged.memory().as_ref().unwrap().limit(), Some(64 << 20));
    }
}
