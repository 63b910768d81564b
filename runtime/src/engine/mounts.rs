//! A new container's mounts: its `-v`, `--mount` and `--tmpfs` flags and
//! its image's `VOLUME` lines, turned into directories shared with the
//! sandbox (host paths, and volumes made on first use) and tmpfs mounts
//! the guest makes; then the OCI spec's mounts and what `inspect` shows.

use super::bundle::MAX_SHARED_MOUNTS;
use super::create::{invalid, random_bytes};
use super::{ContainerOptions, Engine, Result};
use crate::copy::{CopyError, CopyOptions, Tree};
use crate::rootfs::RootfsLayers;
use crate::sandbox::ContainerShare;
use crate::volume::{
    BindVolume, MountRequest, VolumeError, VolumeLock, VolumeStore, ANONYMOUS_LABEL, LOCAL_DRIVER,
};
use anyhow::Context;
use oci_spec::runtime::{Mount, MountBuilder};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// A new container's mounts, with the volume store's lock held (when it
/// mounts volumes) until the container's record exists.
pub(super) struct ContainerMounts {
    /// The store and its lock, if any volume is mounted.
    volumes: Option<(VolumeStore, VolumeLock)>,
    /// Directories shared into the container (the sandbox plan's volumes).
    pub shared: Vec<BindVolume>,
    /// tmpfs mounts: container path and options.
    tmpfs: Vec<(String, Vec<String>)>,
    /// `Mounts`, as `docker inspect` shows them.
    pub inspect: Vec<Value>,
    /// `HostConfig.Binds`: the `-v` values with a source.
    pub binds: Vec<String>,
    /// `HostConfig.Tmpfs`: `--tmpfs` paths and their options.
    pub tmpfs_config: BTreeMap<String, String>,
    /// The volumes made for this container (removed if it is not made).
    made: Vec<String>,
    /// The volumes that get the image's files at their path, if empty:
    /// container path and volume name.
    copy_up: Vec<(String, String)>,
}

/// The container's mount requests: the flags', then the image's `VOLUME`
/// paths that no flag mounts over.
fn requests(options: &ContainerOptions, image_volumes: &[String]) -> Result<Vec<MountRequest>> {
    let mut requests = Vec::new();
    for spec in &options.volumes {
        requests.push(MountRequest::parse_volume(spec)?);
    }
    for spec in &options.mounts {
        requests.push(MountRequest::parse_mount(spec)?);
    }
    for spec in &options.tmpfs {
        requests.push(MountRequest::parse_tmpfs(spec)?);
    }
    let mut seen = HashSet::new();
    for request in &requests {
        if !seen.insert(request.destination().to_string()) {
            return Err(VolumeError::Duplicate(request.destination().to_string()).into());
        }
    }
    let mut image_volumes = image_volumes.to_vec();
    image_volumes.sort();
    for path in image_volumes {
        let request = MountRequest::anonymous(&path)?;
        if seen.insert(request.destination().to_string()) {
            requests.push(request);
        }
    }
    let shared = requests
        .iter()
        .filter(|r| !matches!(r, MountRequest::Tmpfs { .. }))
        .count();
    if shared > MAX_SHARED_MOUNTS {
        return invalid(format!(
            "more than {MAX_SHARED_MOUNTS} host paths and volumes are mounted into the container"
        ));
    }
    Ok(requests)
}

/// Checks the mount flags alone, before the image is looked for (or
/// pulled), as Docker's CLI does.
pub(super) fn check_flags(options: &ContainerOptions) -> Result<()> {
    requests(options, &[]).map(|_| ())
}

impl Engine {
    /// Prepares the mounts of a container created with `options` from an
    /// image with `image_volumes`: host paths checked (or made, for `-v`),
    /// volumes made on first use.
    pub(super) fn prepare_mounts(
        &self,
        options: &ContainerOptions,
        image_volumes: &[String],
    ) -> Result<ContainerMounts> {
        let requests = requests(options, image_volumes)?;
        let volumes = if requests
            .iter()
            .any(|r| matches!(r, MountRequest::Volume { .. }))
        {
            let store = self.volumes()?;
            let lock = store.lock()?;
            Some((store, lock))
        } else {
            None
        };
        let mut mounts = ContainerMounts {
            volumes,
            shared: Vec::new(),
            tmpfs: Vec::new(),
            inspect: Vec::new(),
            binds: Vec::new(),
            tmpfs_config: BTreeMap::new(),
            made: Vec::new(),
            copy_up: Vec::new(),
        };
        // The `-v` values come first.
        for (index, request) in requests.into_iter().enumerate() {
            if let Err(err) = mounts.add(request, options.volumes.get(index)) {
                mounts.discard();
                return Err(err);
            }
        }
        Ok(mounts)
    }
}

impl ContainerMounts {
    /// Adds one request; `given` is its `-v` value, if it came from one.
    fn add(&mut self, request: MountRequest, given: Option<&String>) -> Result<()> {
        match request {
            MountRequest::Bind {
                source,
                destination,
                readonly,
                must_exist,
            } => {
                let bind = BindVolume::host(source, destination, readonly);
                if must_exist && !bind.source.exists() {
                    return invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        bind.source.display()
                    ));
                }
                bind.ensure_source()?;
                self.inspect.push(bind.inspect());
                if given.is_some() {
                    self.binds.push(bind.bind_string());
                }
                self.shared.push(bind);
            }
            MountRequest::Volume {
                name,
                destination,
                readonly,
                nocopy,
                mode,
            } => {
                let Some((store, lock)) = &self.volumes else {
                    return invalid("a volume is mounted without the volume store");
                };
                let (name, labels) = match name {
                    Some(name) => (name, BTreeMap::new()),
                    None => (
                        hex::encode(random_bytes::<32>()?),
                        BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]),
                    ),
                };
                let (volume, new) = store.create(lock, &name, labels)?;
                if new {
                    self.made.push(name.clone());
                }
                self.inspect.push(json!({
                    "Type": "volume",
                    "Name": name,
                    "Source": volume.mountpoint,
                    "Destination": destination,
                    "Driver": LOCAL_DRIVER,
                    "Mode": mode,
                    "RW": !readonly,
                    "Propagation": "",
                }));
                if let Some(given) = given.filter(|g| g.contains(':') && !g.starts_with('/')) {
                    self.binds.push(given.clone());
                }
                if !nocopy {
                    self.copy_up.push((destination.clone(), name.clone()));
                }
                self.shared.push(BindVolume {
                    source: volume.mountpoint,
                    destination,
                    readonly,
                    name: Some(name),
                });
            }
            MountRequest::Tmpfs {
                destination,
                options,
                tmpfs_flag,
            } => {
                match tmpfs_flag {
                    Some(flag) => {
                        self.tmpfs_config.insert(destination.clone(), flag);
                    }
                    None => self.inspect.push(json!({
                        "Type": "tmpfs",
                        "Source": "",
                        "Destination": destination,
                        "Mode": "",
                        "RW": !options.iter().any(|o| o == "ro"),
                        "Propagation": "",
                    })),
                }
                self.tmpfs.push((destination, options));
            }
        }
        Ok(())
    }

    /// The spec's mounts for these: each shared directory bound from its
    /// place in the sandbox's share, each tmpfs made in the guest; parents
    /// before what is mounted below them (the caller sorts again with the
    /// mounts it adds).
    pub(super) fn spec_mounts(&self, share: &ContainerShare) -> Result<Vec<Mount>> {
        let mut mounts: Vec<(usize, Mount)> = Vec::new();
        let depth = |path: &str| path.split('/').filter(|p| !p.is_empty()).count();
        for (index, volume) in self.shared.iter().enumerate() {
            let mut options = vec!["rbind".to_string()];
            if volume.readonly {
                options.push("ro".to_string());
            }
            let mount = MountBuilder::default()
                .destination(&volume.destination)
                .typ("bind")
                .source(ContainerShare::guest_path(&share.volume(index)))
                .options(options)
                .build()
                .context("building a mount")?;
            mounts.push((depth(&volume.destination), mount));
        }
        for (destination, options) in &self.tmpfs {
            let mount = MountBuilder::default()
                .destination(destination)
                .typ("tmpfs")
                .source("tmpfs")
                .options(options.clone())
                .build()
                .context("building a mount")?;
            mounts.push((depth(destination), mount));
        }
        mounts.sort_by_key(|(depth, _)| *depth);
        Ok(mounts.into_iter().map(|(_, mount)| mount).collect())
    }

    /// Copies the image's files at each new volume's path into it, as
    /// Docker does for an empty volume, from a read-only view of the new
    /// container's root (`rootfs`). The image is not trusted: its paths
    /// resolve inside the view, and set-user-ID bits and device nodes are
    /// not copied.
    pub(super) fn copy_image_content(&self, rootfs: &RootfsLayers, scratch: &Path) -> Result<()> {
        let Some((store, _)) = &self.volumes else {
            return Ok(());
        };
        let wanted: Vec<(String, PathBuf)> = self
            .copy_up
            .iter()
            .filter(|(_, name)| store.is_empty(name))
            .filter_map(|(destination, name)| {
                Some((destination.clone(), store.get(name).ok()?.mountpoint))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let copied = rootfs
            .with_view(scratch, move |root| -> Result<(), CopyError> {
                let image = Tree::container_at(root, "image")?;
                for (destination, data) in wanted {
                    let options = CopyOptions {
                        archive: true,
                        follow_link: false,
                    };
                    let from = format!("{destination}/.");
                    let to = data.display().to_string();
                    match crate::copy::copy(&image, &from, &Tree::host(), &to, options) {
                        Ok(_) => tracing::debug!("copied the image's {destination} into {to}"),
                        // Nothing there, or no directory: nothing to copy.
                        Err(CopyError::NotFound { .. } | CopyError::NotADirectory { .. }) => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            })
            .context("viewing the image to copy its files into a volume")?;
        copied.context("copying the image's files into a volume")?;
        Ok(())
    }

    /// Removes the volumes made for a container that was not made after all.
    pub(super) fn discard(&mut self) {
        let Some((store, lock)) = &self.volumes else {
            return;
        };
        for name in self.made.drain(..) {
            if let Err(err) = store.remove(lock, &name) {
                tracing::warn!("removing volume {name}: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(volumes: &[&str], mounts: &[&str], tmpfs: &[&str]) -> ContainerOptions {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        ContainerOptions {
            volumes: strings(volumes),
            mounts: strings(mounts),
            tmpfs: strings(tmpfs),
            ..Default::default()
        }
    }

    #[test]
    fn flags_mount_over_the_images_volumes() {
        let options = options(&["data:/data"], &["type=volume,target=/cache"], &["/tmp"]);
        let image = ["/data/".to_string(), "/var/log".to_string()];
        let requests = requests(&options, &image).unwrap();
        let destinations: Vec<&str> = requests.iter().map(|r| r.destination()).collect();
        assert_eq!(destinations, ["/data", "/cache", "/tmp", "/var/log"]);
        assert!(matches!(
            &requests[3],
            MountRequest::Volume { name: None, .. }
        ));
    }

    #[test]
    fn one_path_takes_one_mount() {
        let err = requests(&options(&["a1:/d"], &[], &["/d/"]), &[]).unwrap_err();
        assert_eq!(err.to_string(), "Duplicate mount point: /d");
    }

    #[test]
    fn an_image_cannot_ask_for_endless_or_escaping_volumes() {
        let many: Vec<String> = (0..=MAX_SHARED_MOUNTS).map(|i| format!("/v{i}")).collect();
        assert!(requests(&options(&[], &[], &[]), &many).is_err());
        let escaping = ["/../../etc".to_string()];
        assert!(requests(&options(&[], &[], &[]), &escaping).is_err());
    }

    #[test]
    fn mounts_are_made_parents_first() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::new(crate::config::Paths {
            root: root.path().to_path_buf(),
            run: root.path().join("run"),
        });
        let options = options(&["named1:/a/b/c:ro", "/anon"], &[], &["/a:size=1m"]);
        let mut mounts = engine.prepare_mounts(&options, &[]).unwrap();
        let spec = mounts.spec_mounts(&ContainerShare::own()).unwrap();
        let order: Vec<String> = spec
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(order, ["/anon", "/a", "/a/b/c"]);
        assert_eq!(spec[1].typ().as_deref(), Some("tmpfs"));
        assert_eq!(mounts.binds, ["named1:/a/b/c:ro"]);
        assert_eq!(mounts.tmpfs_config["/a"], "size=1m");
        assert_eq!(mounts.inspect[0]["Type"], "volume");
        assert_eq!(mounts.inspect[0]["Name"], "named1");
        assert_eq!(mounts.inspect[0]["RW"], false);
        assert_eq!(mounts.inspect[0]["Mode"], "ro");
        let anonymous = mounts.inspect[1]["Name"].as_str().unwrap().to_string();
        let store = engine.volumes().unwrap();
        assert!(store.get(&anonymous).unwrap().is_anonymous());
        assert!(mounts.shared.iter().all(|v| v.name.is_some()));
        // The container was not made: what was made for it goes.
        mounts.discard();
        assert!(store.list().unwrap().is_empty());
    }
}
