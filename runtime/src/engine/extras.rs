//! Docker's `run` options that shape a container beyond its image, process
//! and mounts: labels, the stop signal and timeout, ulimits, the size of
//! /dev/shm, extra /etc/hosts and resolv.conf entries, and `--platform`.
//! Checked here, recorded as `docker inspect` shows them, applied to the
//! spec; the network's /etc files take the entries when they are written.

use super::options::ContainerOptions;
use super::{EngineError, Result};
use crate::container::{ContainerConfig, HostConfig};
use crate::image::Image;
use crate::ulimit::Ulimit;
use anyhow::Context;
use oci_spec::runtime::{MountBuilder, Spec};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The checked extras of one container.
#[derive(Debug, Clone, Default)]
pub(super) struct Extras {
    labels: BTreeMap<String, String>,
    stop_signal: String,
    stop_timeout: Option<u64>,
    ulimits: Vec<Ulimit>,
    shm_size: Option<i64>,
    extra_hosts: Vec<String>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
    init: bool,
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::Invalid(message.into())
}

impl Extras {
    /// Checks `options`' extras against `image` (its labels and STOPSIGNAL
    /// are the defaults, its platform must be the one asked for).
    pub(super) fn of(options: &ContainerOptions, image: &Image) -> Result<Extras> {
        check_platform(options.platform.as_deref(), image)?;
        let image_config = image.config.config().clone().unwrap_or_default();
        let mut labels: BTreeMap<String, String> = image_config
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(options.labels.clone());
        let stop_signal = match options
            .stop_signal
            .clone()
            .or_else(|| image_config.stop_signal().clone())
        {
            Some(signal) => {
                crate::signal::parse_signal(&signal).map_err(|e| invalid(e.to_string()))?;
                signal
            }
            None => String::new(),
        };
        let ulimits = options
            .ulimits
            .iter()
            .map(|u| Ulimit::parse(u).map_err(|e| invalid(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        if let Some(size) = options.shm_size {
            if size <= 0 {
                return Err(invalid("invalid --shm-size: it must be greater than 0"));
            }
        }
        for host in &options.etc.extra_hosts {
            let valid = host
                .split_once(':')
                .is_some_and(|(name, ip)| !name.is_empty() && ip.parse::<IpAddr>().is_ok());
            if !valid {
                return Err(invalid(format!(
                    "invalid argument \"{host}\" for \"--add-host\" flag: invalid IP address in add-host: \"{host}\""
                )));
            }
        }
        for server in &options.etc.dns {
            if server.parse::<IpAddr>().is_err() {
                return Err(invalid(format!(
                    "invalid argument \"{server}\" for \"--dns\" flag: {server} is not an ip address"
                )));
            }
        }
        Ok(Extras {
            labels,
            stop_signal,
            stop_timeout: options.stop_timeout,
            ulimits,
            shm_size: options.shm_size,
            extra_hosts: options.etc.extra_hosts.clone(),
            dns: options.etc.dns.clone(),
            dns_search: options.etc.dns_search.clone(),
            dns_options: options.etc.dns_options.clone(),
            init: options.init,
        })
    }

    /// Sets the process's rlimits, the size of its /dev/shm, and its init.
    pub(super) fn apply(&self, spec: &mut Spec) -> Result<()> {
        if self.init {
            add_init(spec)?;
        }
        if !self.ulimits.is_empty() {
            let rlimits = self
                .ulimits
                .iter()
                .map(|u| u.rlimit().map_err(|e| invalid(e.to_string())))
                .collect::<Result<Vec<_>>>()?;
            if let Some(process) = spec.process_mut() {
                let mut all = process.rlimits().clone().unwrap_or_default();
                all.retain(|r| !rlimits.iter().any(|n| n.typ() == r.typ()));
                all.extend(rlimits);
                process.set_rlimits(Some(all));
            }
        }
        if let Some(size) = self.shm_size {
            let shm = MountBuilder::default()
                .destination("/dev/shm")
                .typ("tmpfs")
                .source("shm")
                .options(
                    ["nosuid", "noexec", "nodev", "mode=1777"]
                        .map(String::from)
                        .into_iter()
                        .chain([format!("size={size}")])
                        .collect::<Vec<_>>(),
                )
                .build()
                .context("building the /dev/shm mount")?;
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.retain(|m| m.destination() != std::path::Path::new("/dev/shm"));
            mounts.push(shm);
            spec.set_mounts(Some(mounts));
        }
        Ok(())
    }

    /// Records them as `docker inspect` shows them.
    pub(super) fn record(&self, config: &mut ContainerConfig, host: &mut HostConfig) {
        config.labels = self.labels.clone();
        config.stop_signal = self.stop_signal.clone();
        config.stop_timeout = self.stop_timeout;
        host.ulimits = self.ulimits.clone();
        host.shm_size = self.shm_size.unwrap_or(0);
        host.extra_hosts = self.extra_hosts.clone();
        host.dns = self.dns.clone();
        host.dns_search = self.dns_search.clone();
        host.dns_options = self.dns_options.clone();
        host.init = self.init.then_some(true);
    }
}

/// Where the container's init is.
const INIT_PATH: &str = "/dev/init";
/// The guest's file it is: the agent's own binary, which runs as Docker's
/// docker-init when started so.
const GUEST_AGENT: &str = hull_protocol::INIT_BINARY;

/// `--init`: the process runs under `/dev/init --`, the agent's binary
/// bound there read-only (as Docker binds docker-init).
fn add_init(spec: &mut Spec) -> Result<()> {
    let init = MountBuilder::default()
        .destination(INIT_PATH)
        .typ("bind")
        .source(GUEST_AGENT)
        .options(vec!["bind".to_string(), "ro".to_string()])
        .build()
        .context("building the /dev/init mount")?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(init);
    spec.set_mounts(Some(mounts));
    if let Some(process) = spec.process_mut() {
        let args = process.args().clone().unwrap_or_default();
        process.set_args(Some(
            [INIT_PATH.to_string(), "--".to_string()]
                .into_iter()
                .chain(args)
                .collect(),
        ));
    }
    Ok(())
}

/// `--platform OS/ARCH[/VARIANT]` (or `ARCH`) against the image's.
fn check_platform(platform: Option<&str>, image: &Image) -> Result<()> {
    let Some(wanted) = platform else {
        return Ok(());
    };
    let normal = |arch: &str| match arch {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_ascii_lowercase(),
    };
    let mut parts = wanted.split('/');
    let (os, arch) = match (parts.next(), parts.next()) {
        (Some(arch), None) => ("linux".to_string(), normal(arch)),
        (Some(os), Some(arch)) => (os.to_ascii_lowercase(), normal(arch)),
        _ => return Err(invalid(format!("invalid platform: {wanted}"))),
    };
    let actual_os = image.config.os().to_string();
    let actual_arch = normal(&image.config.architecture().to_string());
    if os != actual_os || arch != actual_arch {
        let name = image
            .reference
            .as_ref()
            .map_or_else(|| image.id.to_string(), ToString::to_string);
        return Err(invalid(format!(
            "image with reference {name} was found but does not match the specified platform: wanted {os}/{arch}, actual: {actual_os}/{actual_arch}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_runs_the_process_under_dev_init() {
        let mut spec = Spec::default();
        let extras = Extras {
            init: true,
            ..Default::default()
        };
        extras.apply(&mut spec).unwrap();
        let args = spec.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args[..3], ["/dev/init", "--", "sh"]);
        let last = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(last.destination(), std::path::Path::new("/dev/init"));
        assert_eq!(
            last.source().as_deref(),
            Some(std::path::Path::new(hull_protocol::INIT_BINARY))
        );
    }

    #[test]
    fn ulimits_replace_the_specs_and_shm_gets_its_size() {
        let mut spec = Spec::default();
        let extras = Extras {
            ulimits: vec![Ulimit::parse("nofile=100:200").unwrap()],
            shm_size: Some(32 << 20),
            ..Default::default()
        };
        extras.apply(&mut spec).unwrap();
        let rlimits = spec.process().as_ref().unwrap().rlimits().clone().unwrap();
        let nofile: Vec<_> = rlimits
            .iter()
            .filter(|r| r.typ() == oci_spec::runtime::PosixRlimitType::RlimitNofile)
            .collect();
        assert_eq!(nofile.len(), 1);
        assert_eq!((nofile[0].soft(), nofile[0].hard()), (100, 200));
        let shm: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .filter(|m| m.destination() == std::path::Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert!(shm[0]
            .options()
            .iter()
            .flatten()
            .any(|o| o == "size=33554432"));
    }
}
