//! Creating a container from an OCI bundle that a container manager
//! prepared (containerd: `config.json` and the root file system it
//! mounted). The spec is taken as given, except what cannot cross the VM
//! boundary: host paths become shares of the sandbox, namespace paths and
//! hooks stay on the host side, and the VM is sized from the spec's limits.

use super::create::{
    check_memory, host_cpus, host_memory_bytes, invalid, random_bytes, record_files, vm_memory_mib,
};
use super::{Engine, EngineError, Result};
use crate::config::GuestArtifacts;
use crate::container::{ContainerConfig, ContainerRecord, HostConfig};
use crate::sandbox::{ContainerShare, SandboxPlan};
use crate::volume::BindVolume;
use hull_protocol::JoinNamespaces;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// The annotation CRI puts on a container with its image's name.
const IMAGE_NAME_ANNOTATION: &str = "io.kubernetes.cri.image-name";

/// Most host paths one container may share into its VM.
pub(super) const MAX_SHARED_MOUNTS: usize = 64;

/// A container to create from a bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// Its name (containerd's id for it).
    pub name: String,
    /// Its root file system, prepared and mounted on the host.
    pub rootfs: PathBuf,
    /// Its spec (`config.json`).
    pub spec: Spec,
    /// The VMM backend (default: the platform's).
    pub vmm: Option<String>,
    /// Seconds the VM may take to boot to its agent.
    pub boot_timeout_secs: u64,
    /// Whether it takes input (its stdin stays open for whoever attaches).
    pub stdin: bool,
    /// The container whose VM it joins (a pod's sandbox container), by
    /// Hull's id; `None`: it boots a VM of its own.
    pub sandbox: Option<String>,
}

impl Engine {
    /// Creates a container from a bundle; returns its id. It runs in a VM
    /// of its own, on the network namespace the spec names (`ns:PATH`, as
    /// CNI left it) or with none; or, with `sandbox`, in that container's
    /// VM, on its network, sharing the IPC, UTS and pid namespaces the spec
    /// names by path (CRI names the pod's sandbox container's).
    pub fn create_from_bundle(&self, options: BundleOptions) -> Result<String> {
        let BundleOptions {
            name,
            rootfs,
            mut spec,
            vmm,
            boot_timeout_secs,
            stdin,
            sandbox,
        } = options;
        let missing = GuestArtifacts::resolve(None, None).missing();
        if !missing.is_empty() {
            return Err(EngineError::NotSetUp(missing.join(", ")));
        }
        if !rootfs.is_dir() {
            return invalid(format!(
                "the bundle's root file system {} is not a directory",
                rootfs.display()
            ));
        }
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| EngineError::Invalid("the spec has no process".into()))?;
        let containers = self.containers()?;
        let id = hex::encode(random_bytes::<32>()?);
        let joins = match &sandbox {
            Some(reference) => {
                let sandbox_id = containers.resolve(reference)?;
                Some(pod_namespaces(&spec, sandbox_id))
            }
            None => None,
        };
        let network = match &joins {
            Some(joins) => format!("container:{}", joins.container_id),
            None => network_mode(&spec)?,
        };
        let (memory, vcpus) = vm_size(&spec)?;
        let pod = PodSize::of(&spec)?;
        let share = ContainerShare::of(&id, sandbox.as_deref());
        let volumes = share_host_mounts(&mut spec, &share)?;
        keep_on_host_side(&mut spec);

        let hostname = spec.hostname().clone().unwrap_or_default();
        let argv = process.args().clone().unwrap_or_default();
        let terminal = process.terminal().unwrap_or(false);
        let config = ContainerConfig {
            hostname,
            user: process.user().uid().to_string(),
            attach_stdout: true,
            attach_stderr: true,
            attach_stdin: stdin,
            open_stdin: stdin,
            stdin_once: stdin,
            tty: terminal,
            env: process.env().clone().unwrap_or_default(),
            cmd: Some(argv.clone()),
            working_dir: process.cwd().display().to_string(),
            ..Default::default()
        };
        let host_config = HostConfig {
            memory: memory.unwrap_or(0),
            network_mode: network.clone(),
            runtime: vmm.clone().unwrap_or_default(),
            binds: volumes.iter().map(BindVolume::bind_string).collect(),
            ..Default::default()
        };
        let image = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(IMAGE_NAME_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let mut record =
            ContainerRecord::new(id.clone(), name, String::new(), image, config, host_config);
        record.mounts = volumes.iter().map(BindVolume::inspect).collect();
        record.path = argv.first().cloned().unwrap_or_default();
        record.args = argv.iter().skip(1).cloned().collect();
        record.log_path = crate::container::log_path(&containers, &id)
            .display()
            .to_string();
        let plan = SandboxPlan {
            vmm,
            kernel: None,
            initrd: None,
            vcpus: pod.vcpus.unwrap_or(vcpus),
            memory_mib: pod.memory_mib.unwrap_or_else(|| vm_memory_mib(memory)),
            layer_dirs: Vec::new(),
            root_dir: Some(rootfs),
            boot_timeout_secs,
            network,
            publish: Vec::new(),
            ip: None,
            aliases: Vec::new(),
            volumes,
            joins,
        };
        let files = record_files(&plan, &spec, &record)?;
        containers.create(&record, &files)?;
        Ok(id)
    }
}

/// The spec's namespace of `kind`, if it has one (the first: a spec names
/// each kind once).
pub fn spec_namespace(spec: &Spec, kind: LinuxNamespaceType) -> Option<&LinuxNamespace> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|namespaces| namespaces.iter().find(|n| n.typ() == kind))
}

/// The container's network: the namespace the spec names (CNI prepared
/// it: `ns:PATH`), or none (a namespace of its own, loopback only).
fn network_mode(spec: &Spec) -> Result<String> {
    let path = spec_namespace(spec, LinuxNamespaceType::Network).and_then(|n| n.path().clone());
    match path {
        Some(path) if path.exists() => Ok(format!("ns:{}", path.display())),
        Some(path) => invalid(format!(
            "the spec's network namespace {} does not exist",
            path.display()
        )),
        None => Ok("none".into()),
    }
}

/// The container's memory limit and the VM's vCPUs, from the spec's
/// resources: a CPU quota of 1.5 CPUs gets 2 vCPUs, at most the host's.
fn vm_size(spec: &Spec) -> Result<(Option<i64>, u32)> {
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let memory = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|limit| *limit > 0);
    if let Some(bytes) = memory {
        check_memory(bytes, host_memory_bytes())?;
    }
    let cpus = resources
        .and_then(|r| r.cpu().as_ref())
        .and_then(|cpu| match (cpu.quota(), cpu.period()) {
            (Some(quota), Some(period)) if quota > 0 && period > 0 => {
                Some((quota as f64 / period as f64).ceil())
            }
            _ => None,
        })
        .map_or(1, |cpus| (cpus as u32).clamp(1, host_cpus()));
    Ok((memory, cpus))
}

/// Pod annotations that size the VM of a pod's sandbox container for the
/// whole pod, whose other containers are not known yet when it boots:
/// Hull's own (a pod's annotations reach the sandbox's spec where
/// containerd's `pod_annotations` lets `io.hull.*` through), else those
/// containerd 1.7+ computes from the pod's containers' limits.
const VM_MEMORY_ANNOTATION: &str = "io.hull.vm.memory-mib";
const VM_CPUS_ANNOTATION: &str = "io.hull.vm.vcpus";
const POD_MEMORY_ANNOTATION: &str = "io.kubernetes.cri.sandbox-memory";
const POD_CPU_QUOTA_ANNOTATION: &str = "io.kubernetes.cri.sandbox-cpu-quota";
const POD_CPU_PERIOD_ANNOTATION: &str = "io.kubernetes.cri.sandbox-cpu-period";

/// The VM's size for a whole pod, where its annotations give one.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodSize {
    memory_mib: Option<u32>,
    vcpus: Option<u32>,
}

impl PodSize {
    fn of(spec: &Spec) -> Result<PodSize> {
        let Some(annotations) = spec.annotations().as_ref() else {
            return Ok(PodSize::default());
        };
        let number =
            |key: &str| -> Result<Option<i64>> {
                match annotations.get(key) {
                    None => Ok(None),
                    Some(value) => value.trim().parse::<i64>().map(Some).or_else(|_| {
                        invalid(format!("annotation {key}: {value:?} is not a number"))
                    }),
                }
            };
        let memory_mib = match number(VM_MEMORY_ANNOTATION)? {
            Some(mib) => Some(mib),
            None => number(POD_MEMORY_ANNOTATION)?
                .filter(|bytes| *bytes > 0)
                .map(|bytes| i64::from(vm_memory_mib(Some(bytes)))),
        };
        let vcpus = match number(VM_CPUS_ANNOTATION)? {
            Some(cpus) => Some(cpus),
            None => match (
                number(POD_CPU_QUOTA_ANNOTATION)?,
                number(POD_CPU_PERIOD_ANNOTATION)?,
            ) {
                (Some(quota), Some(period)) if quota > 0 && period > 0 => {
                    Some(quota.saturating_add(period - 1) / period)
                }
                _ => None,
            },
        };
        let host_mib = host_memory_bytes().map_or(i64::MAX, |bytes| bytes >> 20);
        let memory_mib = match memory_mib {
            Some(mib) if !(64..=host_mib).contains(&mib) => {
                return invalid(format!(
                    "the pod's VM memory of {mib} MiB is not between 64 MiB and the host's {host_mib} MiB"
                ))
            }
            other => other.map(|mib| u32::try_from(mib).unwrap_or(u32::MAX)),
        };
        let vcpus = vcpus.map(|cpus| cpus.clamp(1, i64::from(host_cpus())) as u32);
        Ok(PodSize { memory_mib, vcpus })
    }
}

/// Whether a mount binds a host path.
fn is_bind(mount: &oci_spec::runtime::Mount) -> bool {
    mount.typ().as_deref() == Some("bind")
        || mount
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Host paths the spec binds (CRI's /etc/hosts, resolv.conf, /dev/shm,
/// volumes) become shares of the sandbox, and the spec's mounts take them
/// from the share.
fn share_host_mounts(spec: &mut Spec, share: &ContainerShare) -> Result<Vec<BindVolume>> {
    let mut volumes = Vec::new();
    let Some(mounts) = spec.mounts_mut() else {
        return Ok(volumes);
    };
    for mount in mounts.iter_mut().filter(|m| is_bind(m)) {
        let Some(source) = mount.source().clone() else {
            continue;
        };
        if !source.is_absolute() || !source.exists() {
            return invalid(format!(
                "the bind mount source {} is not an absolute path that exists",
                source.display()
            ));
        }
        if volumes.len() == MAX_SHARED_MOUNTS {
            return invalid(format!(
                "more than {MAX_SHARED_MOUNTS} host paths are bound into the container"
            ));
        }
        let readonly = mount.options().iter().flatten().any(|o| o == "ro");
        let index = volumes.len();
        volumes.push(BindVolume::host(
            source.clone(),
            mount.destination().display().to_string(),
            readonly,
        ));
        mount.set_source(Some(PathBuf::from(ContainerShare::guest_path(
            &share.volume(index),
        ))));
    }
    Ok(volumes)
}

/// The namespaces of its pod's sandbox container that a container joining
/// it shares: those its spec names by path (CRI names the sandbox's IPC and
/// UTS namespaces, and its pid namespace when the pod shares one). The
/// network is the VM's in any case; the mount namespace is its own.
fn pod_namespaces(spec: &Spec, sandbox_id: String) -> JoinNamespaces {
    let named = |kind| spec_namespace(spec, kind).is_some_and(|n| n.path().is_some());
    JoinNamespaces {
        container_id: sandbox_id,
        ipc: named(LinuxNamespaceType::Ipc),
        uts: named(LinuxNamespaceType::Uts),
        pid: named(LinuxNamespaceType::Pid),
    }
}

/// What only means something on the host: namespace paths (the guest has
/// its own namespaces), hooks (host programs), the host's cgroup path.
fn keep_on_host_side(spec: &mut Spec) {
    spec.set_hooks(None);
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            for namespace in namespaces.iter_mut() {
                namespace.set_path(None);
            }
        }
        linux.set_cgroups_path(None);
    }
    if let Some(root) = spec.root_mut() {
        root.set_path(Path::new("rootfs").to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder,
        LinuxResourcesBuilder, MountBuilder, SpecBuilder,
    };

    fn spec_with(linux: oci_spec::runtime::Linux, mounts: Vec<oci_spec::runtime::Mount>) -> Spec {
        SpecBuilder::default()
            .linux(linux)
            .mounts(mounts)
            .build()
            .unwrap()
    }

    fn annotated(pairs: &[(&str, &str)]) -> Spec {
        let mut spec = spec_with(LinuxBuilder::default().build().unwrap(), Vec::new());
        spec.set_annotations(Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        spec
    }

    #[test]
    fn a_pods_annotations_size_its_vm() {
        assert_eq!(PodSize::of(&annotated(&[])).unwrap(), PodSize::default());
        let cri = annotated(&[
            (POD_MEMORY_ANNOTATION, "268435456"),
            (POD_CPU_QUOTA_ANNOTATION, "150000"),
            (POD_CPU_PERIOD_ANNOTATION, "100000"),
        ]);
        let size = PodSize::of(&cri).unwrap();
        assert_eq!(
            size.memory_mib,
            Some(256 + crate::engine::GUEST_OVERHEAD_MIB)
        );
        assert_eq!(size.vcpus, Some(2.min(host_cpus())));
        let hull = annotated(&[(VM_MEMORY_ANNOTATION, "512"), (VM_CPUS_ANNOTATION, "1")]);
        assert_eq!(
            PodSize::of(&hull).unwrap(),
            PodSize {
                memory_mib: Some(512),
                vcpus: Some(1)
            }
        );
        assert!(PodSize::of(&annotated(&[(VM_MEMORY_ANNOTATION, "lots")])).is_err());
        assert!(PodSize::of(&annotated(&[(VM_MEMORY_ANNOTATION, "1")])).is_err());
    }

    #[test]
    fn the_vm_is_sized_from_the_specs_limits() {
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .resources(resources)
            .build()
            .unwrap();
        let (memory, vcpus) = vm_size(&spec_with(linux, Vec::new())).unwrap();
        assert_eq!(memory, Some(64 << 20));
        assert_eq!(vcpus, 1);
        let (memory, vcpus) = vm_size(&spec_with(
            LinuxBuilder::default().build().unwrap(),
            Vec::new(),
        ))
        .unwrap();
        assert_eq!((memory, vcpus), (None, 1));
    }

    #[test]
    fn a_named_network_namespace_is_cni_mode_and_none_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(dir.path())
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![ns])
            .build()
            .unwrap();
        assert_eq!(
            network_mode(&spec_with(linux, Vec::new())).unwrap(),
            format!("ns:{}", dir.path().display())
        );
        let own = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![own])
            .build()
            .unwrap();
        assert_eq!(network_mode(&spec_with(linux, Vec::new())).unwrap(), "none");
        let gone = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/nonexistent/netns")
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![gone])
            .build()
            .unwrap();
        assert!(network_mode(&spec_with(linux, Vec::new())).is_err());
    }

    #[test]
    fn host_binds_become_shares_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let mounts = vec![
            MountBuilder::default()
                .destination("/proc")
                .typ("proc")
                .source("proc")
                .build()
                .unwrap(),
            MountBuilder::default()
                .destination("/etc/hosts")
                .typ("bind")
                .source(&hosts)
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .unwrap(),
        ];
        let mut spec = spec_with(LinuxBuilder::default().build().unwrap(), mounts);
        let volumes = share_host_mounts(&mut spec, &ContainerShare::own()).unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0].source, hosts);
        assert!(volumes[0].readonly);
        let mounts = spec.mounts().clone().unwrap();
        assert_eq!(mounts[0].source().as_deref(), Some(Path::new("proc")));
        assert_eq!(
            mounts[1].source().as_deref(),
            Some(Path::new(&ContainerShare::guest_path(
                &ContainerShare::own().volume(0)
            )))
        );
    }

    #[test]
    fn a_bind_of_a_missing_host_path_is_refused() {
        let mounts = vec![MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source("/nonexistent/hull-test")
            .build()
            .unwrap()];
        let mut spec = spec_with(LinuxBuilder::default().build().unwrap(), mounts);
        assert!(share_host_mounts(&mut spec, &ContainerShare::own()).is_err());
    }

    #[test]
    fn hooks_namespace_paths_and_cgroups_stay_on_the_host() {
        let ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/run/netns/x")
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![ns])
            .cgroups_path("/k8s/pod1")
            .build()
            .unwrap();
        let mut spec = spec_with(linux, Vec::new());
        keep_on_host_side(&mut spec);
        let linux = spec.linux().clone().unwrap();
        assert!(linux.cgroups_path().is_none());
        assert!(linux.namespaces().clone().unwrap()[0].path().is_none());
        assert!(spec.hooks().is_none());
    }
}
