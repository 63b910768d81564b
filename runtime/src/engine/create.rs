//! Creating a container: its options checked against the host and its
//! image, then its record, OCI spec, sandbox plan and /etc files written
//! beside each other, so that it appears whole or not at all.

use super::{ContainerOptions, Engine, EngineError, Result};
use crate::config::GuestArtifacts;
use crate::container::{generate_name, ContainerConfig, ContainerRecord, HostConfig};
use crate::image::{ImageError, Reference};
use crate::logs::LogDriver;
use crate::platform::Platform;
use crate::sandbox::{ContainerShare, SandboxPlan};
use crate::spec::{self, RunOptions};
use anyhow::Context;
use oci_spec::runtime::{MountBuilder, Spec};
use std::path::PathBuf;

/// Guest memory beyond the container's limit: kernel, agent, page cache.
pub const GUEST_OVERHEAD_MIB: u32 = 192;
/// Guest memory when the container has no limit.
const DEFAULT_MEMORY_MIB: u32 = 256;
/// Docker's smallest memory limit.
const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;

/// How many generated names are tried before giving up.
const NAME_ATTEMPTS: u32 = 8;

impl Engine {
    /// Creates a container's record, spec and sandbox plan; returns its id.
    pub fn create(&self, options: &ContainerOptions) -> Result<String> {
        check_options(options)?;
        let vcpus = match options.cpus {
            Some(cpus) => check_cpus(cpus, host_cpus())?,
            None => 1,
        };
        if let Some(bytes) = options.memory {
            check_memory(bytes, host_memory_bytes())?;
        }
        let missing =
            GuestArtifacts::resolve(options.kernel.clone(), options.initrd.clone()).missing();
        if !missing.is_empty() {
            return Err(EngineError::NotSetUp(missing.join(", ")));
        }

        let images = self.images()?;
        let image = match images.resolve(&options.image) {
            Ok(image) => image,
            Err(ImageError::NotFound(_)) => {
                let shown = Reference::parse(&options.image)
                    .map_or_else(|_| options.image.clone(), |r| r.familiar_string());
                return Err(EngineError::NoSuchImage(shown));
            }
            Err(err) => return Err(err.into()),
        };
        let layer_dirs: Vec<PathBuf> = image.diff_ids.iter().map(|d| images.layer_dir(d)).collect();

        let mut publish = options.publish.clone();
        if options.publish_all {
            let exposed = image
                .config
                .config()
                .as_ref()
                .and_then(|c| c.exposed_ports().clone())
                .unwrap_or_default();
            publish.extend(exposed);
        }
        for entry in &publish {
            crate::network::parse_publish(entry)?;
        }
        if let Some(netns) = options
            .network
            .as_deref()
            .and_then(crate::network::cni::netns_of_mode)
        {
            check_cni_mode(netns, &publish, options.ip)?;
        }
        let image_volumes = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.volumes().clone())
            .unwrap_or_default();
        let mut mounts = self.prepare_mounts(options, &image_volumes)?;
        let created = self.create_with_mounts(options, &image, layer_dirs, vcpus, publish, &mounts);
        let id = match created {
            Ok(id) => id,
            Err(err) => {
                mounts.discard();
                return Err(err);
            }
        };
        let containers = self.containers()?;
        let dir = containers.dir_of(&id);
        let copied = SandboxPlan::load(&dir)
            .map_err(EngineError::from)
            .and_then(|plan| {
                mounts.copy_image_content(&plan.rootfs(&dir), &self.paths.views_dir())
            });
        if let Err(err) = copied {
            if let Ok(record) = containers.load(&id) {
                let _ = containers.remove(&record);
            }
            mounts.discard();
            return Err(err);
        }
        crate::fault::point("create.after-record");
        Ok(id)
    }

    /// The rest of [`Self::create`], with the image resolved and the mounts
    /// prepared: the record, spec and plan written. Returns the id.
    fn create_with_mounts(
        &self,
        options: &ContainerOptions,
        image: &crate::image::Image,
        layer_dirs: Vec<PathBuf>,
        vcpus: u32,
        publish: Vec<String>,
        mounts: &super::mounts::ContainerMounts,
    ) -> Result<String> {
        let containers = self.containers()?;
        let joins = joined_sandbox(&containers, options)?;
        let id = hex::encode(random_bytes::<32>()?);
        let security = crate::security::security_options(&options.security.security_opt)?;
        let capabilities =
            crate::security::capabilities(&options.security.cap_add, &options.security.cap_drop)?;
        let seccomp = crate::security::seccomp(&security.seccomp, &capabilities)?;
        let extras = super::extras::Extras::of(options, image)?;
        let run_options = RunOptions {
            entrypoint: options.entrypoint.clone(),
            args: options.command.clone(),
            env: options.process.env.clone(),
            workdir: options.process.workdir.clone(),
            user: options.process.user.clone(),
            hostname: match &joins {
                Some((_, hostname)) => Some(hostname.clone()),
                None => options.hostname.clone(),
            },
            memory: options.memory,
            cpus: options.cpus,
            pids_limit: options.pids_limit,
            read_only: options.read_only,
            tty: options.process.tty,
            console_size: options.console_size,
            capabilities: Some(capabilities),
            no_new_privileges: security.no_new_privileges,
            seccomp,
        };
        let mut spec = spec::build(
            &id,
            image.config.config().as_ref(),
            &run_options,
            &layer_dirs,
        )?;
        let share = ContainerShare::of(&id, joins.as_ref().map(|(j, _)| j.container_id.as_str()));
        add_host_mounts(&mut spec, mounts, &share)?;
        // The command as the user gave it (`Path` and `Args`), before an
        // `--init` goes in front of it.
        let argv = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        extras.apply(&mut spec)?;

        let process = spec.process().as_ref().context("spec without a process")?;
        let image_config = image.config.config().clone().unwrap_or_default();
        let mut config = ContainerConfig {
            hostname: spec.hostname().clone().unwrap_or_default(),
            user: options
                .process
                .user
                .clone()
                .or_else(|| image_config.user().clone())
                .unwrap_or_default(),
            attach_stdin: options.process.interactive,
            attach_stdout: true,
            attach_stderr: true,
            tty: options.process.tty,
            open_stdin: options.process.interactive,
            stdin_once: options.process.interactive,
            env: process.env().clone().unwrap_or_default(),
            cmd: if options.command.is_empty() {
                image_config.cmd().clone()
            } else {
                Some(options.command.clone())
            },
            working_dir: process.cwd().display().to_string(),
            entrypoint: options
                .entrypoint
                .clone()
                .map(|e| vec![e])
                .or_else(|| image_config.entrypoint().clone()),
            ..Default::default()
        };
        let mut host_config = HostConfig {
            memory: options.memory.unwrap_or(0),
            nano_cpus: options.cpus.map_or(0, |c| (c * 1e9) as i64),
            pids_limit: options.pids_limit.unwrap_or(0),
            auto_remove: options.auto_remove,
            restart_policy: options.restart.clone(),
            readonly_rootfs: options.read_only,
            network_mode: match &joins {
                Some((joins, _)) => format!("container:{}", joins.container_id),
                None => options.network.clone().unwrap_or_else(|| "bridge".into()),
            },
            port_bindings: port_bindings(&publish),
            runtime: options.vmm.clone().unwrap_or_default(),
            binds: mounts.binds.clone(),
            tmpfs: mounts.tmpfs_config.clone(),
            log_config: options.log_config.clone(),
            ..Default::default()
        };
        extras.record(&mut config, &mut host_config);
        let mut record = ContainerRecord::new(
            id.clone(),
            String::new(),
            image.id.to_string(),
            options.image.clone(),
            config,
            host_config,
        );
        record.mounts = mounts.inspect.clone();
        record.path = argv.first().cloned().unwrap_or_default();
        record.args = argv.iter().skip(1).cloned().collect();
        // As Docker's: no log, and no path to one, without a log driver.
        if options.log_config.driver == LogDriver::JsonFile {
            record.log_path = crate::container::log_path(&containers, &id)
                .display()
                .to_string();
        }
        let plan = SandboxPlan {
            vmm: options.vmm.clone(),
            kernel: options.kernel.clone(),
            initrd: options.initrd.clone(),
            vcpus,
            memory_mib: vm_memory_mib(options.memory),
            layer_dirs,
            root_dir: None,
            boot_timeout_secs: options.boot_timeout_secs,
            network: options
                .network
                .clone()
                .unwrap_or_else(|| crate::network::DEFAULT_NETWORK.to_string()),
            publish,
            ip: options.ip,
            aliases: options.aliases.clone(),
            volumes: mounts.shared.clone(),
            joins: joins.map(|(joins, _)| joins),
        };
        // Everything beside the record, so that the container appears whole.
        let files = record_files(&plan, &spec, &record)?;
        let seed = random_bytes::<16>()?;
        let mut attempt = 0;
        loop {
            record.name = format!(
                "/{}",
                options
                    .name
                    .clone()
                    .unwrap_or_else(|| generate_name(&seed, attempt))
            );
            match containers.create(&record, &files) {
                Ok(()) => break,
                Err(crate::container::ContainerError::NameInUse { .. })
                    if options.name.is_none() && attempt < NAME_ATTEMPTS =>
                {
                    attempt += 1
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(id)
    }
}

/// The files a container's directory holds beside its record: the sandbox
/// plan, the OCI spec, its hostname and `hostconfig.json`.
pub(super) fn record_files(
    plan: &SandboxPlan,
    spec: &Spec,
    record: &ContainerRecord,
) -> Result<[(&'static str, Vec<u8>); 4]> {
    Ok([
        plan.file()?,
        (
            "spec.json",
            serde_json::to_vec_pretty(spec).context("encoding the spec")?,
        ),
        (
            "hostname",
            format!("{}\n", record.config.hostname).into_bytes(),
        ),
        (
            "hostconfig.json",
            serde_json::to_vec_pretty(&record.host_config).context("encoding the host config")?,
        ),
    ])
}

/// The checks that need neither the host nor the image.
fn check_options(options: &ContainerOptions) -> Result<()> {
    refuse_host_namespaces(options)?;
    options.log_config.validate()?;
    super::mounts::check_flags(options)?;
    if options.auto_remove && !options.restart.name.is_empty() {
        return invalid("Conflicting options: --restart and --rm");
    }
    if let Some(bytes) = options.memory {
        if bytes < MIN_MEMORY_BYTES {
            return invalid("Minimum memory limit allowed is 6MB");
        }
    }
    if let Some(name) = &options.vmm {
        if Platform::detect().hypervisor(name).is_none() {
            return invalid(format!(
                "unknown VMM backend '{name}' (known: hull, qemu, qemu-tcg, qemu-kvm)"
            ));
        }
    }
    Ok(())
}

pub(super) fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(EngineError::Invalid(message.into()))
}

/// The VM's memory: the container's limit plus the guest's own overhead,
/// or a default for a container without a limit.
pub(super) fn vm_memory_mib(limit: Option<i64>) -> u32 {
    match limit {
        Some(bytes) => u32::try_from(bytes >> 20)
            .unwrap_or(u32::MAX)
            .saturating_add(GUEST_OVERHEAD_MIB)
            .max(DEFAULT_MEMORY_MIB),
        None => DEFAULT_MEMORY_MIB,
    }
}

/// The host's /etc files (hosts, hostname, resolv.conf, as Docker's) as
/// bind mounts of the sandbox's share, and the container's own mounts:
/// parents before what is mounted below them (a volume at /etc before
/// /etc/hosts), and at one path the container's own last (they win).
fn add_host_mounts(
    spec: &mut Spec,
    container_mounts: &super::mounts::ContainerMounts,
    share: &ContainerShare,
) -> Result<()> {
    let mut added = Vec::new();
    for name in crate::sandbox::ETC_FILES {
        added.push(
            MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(ContainerShare::guest_path(&share.etc_file(name)))
                .options(vec!["bind".to_string(), "ro".to_string()])
                .build()
                .context("building a mount")?,
        );
    }
    added.extend(container_mounts.spec_mounts(share)?);
    // (Stable: equal depths keep their order.)
    added.sort_by_key(|m| m.destination().components().count());
    if let Some(mounts) = spec.mounts_mut() {
        mounts.extend(added);
    }
    Ok(())
}

/// The host's CPUs, as the scheduler lets this process use them.
pub(super) fn host_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The host's memory in bytes (`MemTotal`), if /proc says.
pub(super) fn host_memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// `--cpus`: Docker's range, 0.01 up to the host's CPUs (a VM with more
/// vCPUs than the host has would only crawl). Returns the vCPU count.
pub(super) fn check_cpus(cpus: f64, host: u32) -> Result<u32> {
    if !cpus.is_finite() || cpus < 0.01 || cpus > f64::from(host) {
        return invalid(format!(
            "Range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available"
        ));
    }
    Ok(cpus.ceil() as u32)
}

/// `-m`: the limit plus the VM's own overhead must fit in the host's memory.
pub(super) fn check_memory(bytes: i64, host: Option<i64>) -> Result<()> {
    let Some(host) = host else { return Ok(()) };
    let vm = bytes.saturating_add(i64::from(GUEST_OVERHEAD_MIB) << 20);
    if vm > host {
        return invalid(format!(
            "invalid memory limit {} MiB: the container's VM needs {} MiB more for its kernel and agent, and the host has only {} MiB",
            bytes >> 20,
            GUEST_OVERHEAD_MIB,
            host >> 20
        ));
    }
    Ok(())
}

/// Refuses Docker options that would reach into the host's namespaces:
/// inside a VM there is no host namespace to join, and pretending would
/// mislead.
fn refuse_host_namespaces(options: &ContainerOptions) -> Result<()> {
    let modes = &options.namespaces;
    for (flag, value) in [
        ("--pid", &modes.pid),
        ("--uts", &modes.uts),
        ("--network", &options.network),
        ("--ipc", &modes.ipc),
    ] {
        match value.as_deref() {
            None | Some("private") | Some("") => {}
            Some("host") => return invalid(format!(
                "{flag}=host is not supported: every Hull container runs in its own virtual machine, whose kernel cannot share the host's namespaces"
            )),
            // It joins that container's VM (see `joined_sandbox`).
            Some(other) if flag == "--network" && other.starts_with("container:") => {}
            Some(other) if other.starts_with("container:") && flag != "--uts" => {
                if options.network.as_deref() != Some(other) {
                    return invalid(format!(
                        "{flag}={other} needs --network={other}: containers share namespaces only inside one Hull VM, which a container joins with --network container:NAME"
                    ));
                }
            }
            Some(_) if flag == "--network" => {}
            Some(other) => return invalid(format!("{flag}={other} is not supported")),
        }
    }
    if options.privileged {
        return invalid("--privileged is not supported: it would give the container the host's devices, which a virtual machine does not have");
    }
    Ok(())
}

/// `--network container:NAME`: the container joins NAME's VM, on its
/// network, with its host name (and its IPC and pid namespaces with `--ipc`
/// and `--pid container:NAME`); what NAME's network owns is refused, as
/// Docker refuses it. The namespaces to join, and NAME's host name.
fn joined_sandbox(
    containers: &crate::container::ContainerStore,
    options: &ContainerOptions,
) -> Result<Option<(hull_protocol::JoinNamespaces, String)>> {
    let Some(mode) = options.network.as_deref() else {
        return Ok(None);
    };
    let Some(name) = mode.strip_prefix("container:") else {
        return Ok(None);
    };
    if !options.publish.is_empty() || options.publish_all {
        return invalid("conflicting options: port publishing and the container type network mode");
    }
    if options.hostname.is_some() {
        return invalid("conflicting options: hostname and the network mode");
    }
    if options.ip.is_some() || !options.aliases.is_empty() {
        return invalid("conflicting options: --ip and --network-alias need a network of the container's own, not the container type network mode");
    }
    let owner = containers.load(&containers.resolve(name)?)?;
    let same = |theirs: &Option<String>| theirs.as_deref() == Some(mode);
    let joins = hull_protocol::JoinNamespaces {
        container_id: owner.id.clone(),
        ipc: same(&options.namespaces.ipc),
        uts: false,
        pid: same(&options.namespaces.pid),
    };
    Ok(Some((joins, owner.config.hostname)))
}

/// `--network ns:PATH` joins a namespace a CNI plugin prepared: the
/// plugin owns addresses and ports there, so Hull's own are refused.
fn check_cni_mode(
    netns: &std::path::Path,
    publish: &[String],
    ip: Option<std::net::Ipv4Addr>,
) -> Result<()> {
    if !netns.exists() {
        return invalid(format!(
            "--network ns:{}: no such network namespace",
            netns.display()
        ));
    }
    if !publish.is_empty() {
        return invalid("-p/-P cannot be used with --network ns:PATH: ports in a CNI-prepared namespace are published by the CNI plugin (portmap)");
    }
    if ip.is_some() {
        return invalid("--ip cannot be used with --network ns:PATH: the guest takes the address the CNI plugin gave the namespace's interface");
    }
    Ok(())
}

/// Random bytes: a fresh 64-hex-digit id, as Docker's container ids, and
/// a name seed.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

/// `HostConfig.PortBindings` as Docker shows it, from `-p` entries.
fn port_bindings(publish: &[String]) -> serde_json::Value {
    use crate::network::ports::HostPort;
    let mut map = serde_json::Map::new();
    for mapping in publish
        .iter()
        .filter_map(|p| crate::network::parse_publish(p).ok())
        .flatten()
    {
        let key = format!("{}/{}", mapping.container_port, mapping.protocol);
        let binding = serde_json::json!({
            "HostIp": mapping.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "HostPort": match mapping.host_port {
                HostPort::Fixed(port) => port.to_string(),
                HostPort::Range(low, high) => format!("{low}-{high}"),
                HostPort::Any => String::new(),
            },
        });
        if let Some(list) = map
            .entry(key)
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
        {
            list.push(binding);
        }
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_bounded_by_the_host() {
        assert_eq!(check_cpus(0.5, 2).unwrap(), 1);
        assert_eq!(check_cpus(1.5, 2).unwrap(), 2);
        for bad in [0.0, 0.001, 3.0, f64::NAN, f64::INFINITY, -1.0] {
            let err = check_cpus(bad, 2).unwrap_err().to_string();
            assert_eq!(
                err,
                "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
            );
        }
    }

    #[test]
    fn memory_and_the_vms_overhead_must_fit_in_the_host() {
        let gib = 1i64 << 30;
        assert!(check_memory(gib, Some(4 * gib)).is_ok());
        assert!(check_memory(gib, None).is_ok());
        let err = check_memory(4 * gib, Some(4 * gib))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 192 MiB more"), "{err}");
    }

    #[test]
    fn the_vm_gets_the_limit_plus_its_overhead() {
        assert_eq!(vm_memory_mib(None), DEFAULT_MEMORY_MIB);
        assert_eq!(vm_memory_mib(Some(6 << 20)), DEFAULT_MEMORY_MIB);
        assert_eq!(vm_memory_mib(Some(512 << 20)), 512 + GUEST_OVERHEAD_MIB);
        assert_eq!(vm_memory_mib(Some(i64::MAX)), u32::MAX);
    }

    #[test]
    fn host_namespaces_and_privileges_are_refused() {
        let mut options = ContainerOptions {
            network: Some("host".into()),
            ..Default::default()
        };
        let err = refuse_host_namespaces(&options).unwrap_err().to_string();
        assert!(err.starts_with("--network=host is not supported"), "{err}");
        options.network = Some("mynet".into());
        assert!(refuse_host_namespaces(&options).is_ok());
        options.namespaces.pid = Some("container:abc".into());
        assert!(refuse_host_namespaces(&options).is_err());
        options.namespaces.pid = None;
        options.privileged = true;
        assert!(refuse_host_namespaces(&options).is_err());
    }

    #[test]
    fn rm_and_a_restart_policy_conflict() {
        let options = ContainerOptions {
            auto_remove: true,
            restart: crate::container::RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0,
            },
            ..Default::default()
        };
        assert_eq!(
            check_options(&options).unwrap_err().to_string(),
            "Conflicting options: --restart and --rm"
        );
    }

    #[test]
    fn log_configs_are_checked() {
        let options = ContainerOptions {
            log_config: crate::logs::LogConfig {
                max_file: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            check_options(&options).unwrap_err().to_string(),
            "max-file cannot be less than 1"
        );
    }

    #[test]
    fn port_bindings_are_shown_as_docker_shows_them() {
        let value = port_bindings(&["127.0.0.1:8080:80".into(), "53/udp".into()]);
        assert_eq!(value["80/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(value["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(value["53/udp"][0]["HostPort"], "");
    }
}
