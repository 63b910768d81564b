//! A container's root file system: a directory of the host's virtio-fs
//! share (where the host joined the image's layers and the container's
//! writable layer with overlayfs), bind-mounted as the container's root,
//! and the mounts of the OCI spec turned into [`MountStep`]s for the child.

use super::process::{MountPoint, MountStep};
use anyhow::{bail, Context, Result};
use hull_protocol::{Rootfs, DEFAULT_DEVICES};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Where virtio-fs shares are mounted in the guest.
const SHARES_DIR: &str = "/run/hull/shares";

/// Mounts the virtio-fs share `tag` once and returns its mount point.
fn mount_share(tag: &str) -> Result<PathBuf> {
    if tag.is_empty() || tag.contains('/') || tag.starts_with('.') {
        bail!("invalid share tag {tag:?}");
    }
    let target = Path::new(SHARES_DIR).join(tag);
    if is_mount_point(&target) {
        return Ok(target);
    }
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    // Not nosuid: set-user-ID programs in the image work as under Docker
    // (the container still has only its capabilities, inside the VM).
    mount(
        Some(tag),
        &target,
        Some("virtiofs"),
        MsFlags::MS_NODEV,
        None::<&str>,
    )
    .with_context(|| format!("mounting virtio-fs share {tag}"))?;
    Ok(target)
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), path.parent().map(fs::metadata)) {
        (Ok(own), Some(Ok(parent))) => own.dev() != parent.dev(),
        _ => false,
    }
}

/// A path from the host must stay inside its share.
fn checked_relative(path: &str) -> Result<&Path> {
    let rel = Path::new(path);
    if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("invalid path in share {path:?}");
    }
    Ok(rel)
}

/// The container's root: a bind mount of its directory in the share.
#[derive(Debug)]
pub struct ContainerRootfs {
    /// `/run/hull/containers/<id>`: holds the mount point `rootfs`.
    pub dir: PathBuf,
    /// The root the container pivots into.
    pub root: PathBuf,
}

impl ContainerRootfs {
    /// Mounts the root file system `spec` names at `dir`/rootfs (pivot_root
    /// needs a mount point).
    pub fn mount(dir: PathBuf, spec: &Rootfs) -> Result<Self> {
        let share = mount_share(&spec.share_tag)?;
        let source = share.join(checked_relative(&spec.path)?);
        if !source.is_dir() {
            bail!(
                "root file system {} is not in share {}",
                spec.path,
                spec.share_tag
            );
        }
        let root = dir.join("rootfs");
        fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        mount(
            Some(&source),
            &root,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("mounting the container's root file system")?;
        Ok(Self { dir, root })
    }

    /// Unmounts the root and removes its mount point (what the container
    /// wrote stays on the host, in its writable layer).
    pub fn remove(&self) -> Result<()> {
        match umount2(&self.root, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(err) => return Err(err).context("unmounting the container's rootfs"),
        }
        fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
    }

    /// Where `dest` (absolute, inside the container) is under the root,
    /// without looking at the file system; `..` is refused.
    fn path_of(&self, dest: &Path) -> Result<PathBuf> {
        let mut path = self.root.clone();
        for component in dest.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => path.push(name),
                Component::ParentDir | Component::Prefix(_) => {
                    bail!("path {} leaves the container's root", dest.display())
                }
            }
        }
        Ok(path)
    }

    /// Makes `dest` (absolute, inside the container) exist as a directory or
    /// file, refusing to go through symlinks: an image must not be able to
    /// redirect a mount onto the agent's own tree.
    pub fn prepare_path(&self, dest: &Path, as_file: bool) -> Result<PathBuf> {
        let mut current = self.root.clone();
        let components: Vec<_> = dest.components().collect();
        for (index, component) in components.iter().enumerate() {
            match component {
                Component::RootDir | Component::CurDir => continue,
                Component::Normal(name) => current.push(name),
                Component::ParentDir | Component::Prefix(_) => {
                    bail!("path {} leaves the container's root", dest.display())
                }
            }
            let last = index + 1 == components.len();
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    bail!(
                        "{} in the image is a symlink; refusing to mount through it",
                        dest.display()
                    )
                }
                Ok(meta) if !last && !meta.is_dir() => {
                    bail!("{} in the image is not a directory", dest.display())
                }
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    if last && as_file {
                        fs::File::create(&current)
                            .with_context(|| format!("creating {}", current.display()))?;
                    } else {
                        fs::create_dir(&current)
                            .with_context(|| format!("creating {}", current.display()))?;
                    }
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("inspecting {}", current.display()))
                }
            }
        }
        Ok(current)
    }
}

/// Turns a C string from a path, refusing interior NULs.
pub fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains NUL", path.display()))
}

fn cstr_opt(value: Option<&str>) -> Result<Option<CString>> {
    value
        .map(|v| CString::new(v).context("value contains NUL"))
        .transpose()
}

/// Splits mount options into `MS_*` flags and the file-system data string.
/// Returns (flags, propagation flags, data).
fn parse_options(options: &[String]) -> (libc::c_ulong, libc::c_ulong, Vec<String>) {
    let mut flags: libc::c_ulong = 0;
    let mut propagation: libc::c_ulong = 0;
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "suid" => flags &= !libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "dev" => flags &= !libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "noatime" => flags |= libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "private" => propagation |= libc::MS_PRIVATE,
            "rprivate" => propagation |= libc::MS_PRIVATE | libc::MS_REC,
            "slave" => propagation |= libc::MS_SLAVE,
            "rslave" => propagation |= libc::MS_SLAVE | libc::MS_REC,
            "shared" => propagation |= libc::MS_SHARED,
            "rshared" => propagation |= libc::MS_SHARED | libc::MS_REC,
            other => data.push(other.to_string()),
        }
    }
    (flags, propagation, data)
}

/// The mount steps for the spec's mounts, with mount points created.
pub fn plan_mounts(rootfs: &ContainerRootfs, mounts: &[Mount]) -> Result<Vec<MountStep>> {
    let mut steps = Vec::new();
    // Where a new file system (tmpfs, proc, sysfs, ...) is mounted before.
    let mut fresh: Vec<&Path> = Vec::new();
    // A mount point under one of them is made in it by the child, when that
    // file system is there: its content is the kernel's or the agent's, never
    // the image's. Making it in the root beforehand would leave it in the
    // container's writable layer, hidden, at a round trip to the host each.
    let target_of = |fresh: &[&Path], dest: &Path, as_file: bool| -> Result<PathBuf> {
        if fresh.iter().any(|m| dest != *m && dest.starts_with(m)) {
            rootfs.path_of(dest)
        } else {
            rootfs.prepare_path(dest, as_file)
        }
    };
    for spec_mount in mounts {
        let dest = spec_mount.destination();
        if !dest.is_absolute() {
            bail!("mount destination {} is not absolute", dest.display());
        }
        let options = spec_mount.options().clone().unwrap_or_default();
        let (flags, propagation, data) = parse_options(&options);
        let is_bind = flags & libc::MS_BIND != 0;
        let fstype = match spec_mount.typ().as_deref() {
            // The guest runs cgroup v2 only; inside the container's cgroup
            // namespace this shows the container's own subtree.
            Some("cgroup") => Some("cgroup2"),
            Some("bind") | None => None,
            Some(other) => Some(other),
        };
        let source_is_file = is_bind
            && spec_mount
                .source()
                .as_ref()
                .is_some_and(|s| fs::metadata(s).is_ok_and(|m| !m.is_dir()));
        let target = target_of(&fresh, dest, source_is_file)?;
        if fstype.is_some() && !is_bind {
            fresh.push(dest);
        }
        let data = if data.is_empty() {
            None
        } else {
            Some(data.join(","))
        };
        let remount_flags = (is_bind && flags & !(libc::MS_BIND | libc::MS_REC) != 0).then_some(
            libc::MS_REMOUNT | libc::MS_BIND | (flags & !(libc::MS_BIND | libc::MS_REC)),
        );
        let source = match (&spec_mount.source(), fstype) {
            (Some(source), _) => Some(cstring(source)?),
            (None, Some(fstype)) => Some(CString::new(fstype).context("fstype contains NUL")?),
            (None, None) => bail!("bind mount to {} has no source", dest.display()),
        };
        let point = if source_is_file {
            MountPoint::File
        } else {
            MountPoint::Dir
        };
        steps.push(MountStep {
            point,
            source,
            target: cstring(&target)?,
            fstype: cstr_opt(fstype)?,
            flags: if is_bind {
                flags & (libc::MS_BIND | libc::MS_REC)
            } else {
                flags
            },
            data: if is_bind {
                None
            } else {
                cstr_opt(data.as_deref())?
            },
            remount_flags,
        });
        if propagation != 0 {
            steps.push(MountStep {
                point,
                source: None,
                target: cstring(&target)?,
                fstype: None,
                flags: propagation,
                data: None,
                remount_flags: None,
            });
        }
    }
    // Device nodes: bind the guest's own onto files in the container's /dev
    // (mounted above as a tmpfs by the default spec), as runc does in user
    // namespaces; nothing needs mknod inside the container.
    for device in DEFAULT_DEVICES {
        let target = target_of(&fresh, &Path::new("/dev").join(device), true)?;
        steps.push(MountStep {
            point: MountPoint::File,
            source: Some(cstring(&Path::new("/dev").join(device))?),
            target: cstring(&target)?,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
            remount_flags: None,
        });
    }
    Ok(steps)
}

/// The symlinks runc puts in every container's /dev, as (target, link).
pub fn dev_symlinks(rootfs: &ContainerRootfs) -> Result<Vec<(CString, CString)>> {
    [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ]
    .into_iter()
    .map(|(target, name)| {
        Ok((
            CString::new(target)?,
            cstring(&rootfs.root.join("dev").join(name))?,
        ))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["nosuid", "ro", "mode=755", "size=65536k", "rprivate"]
            .map(String::from)
            .to_vec();
        let (flags, propagation, data) = parse_options(&opts);
        assert_eq!(flags, libc::MS_NOSUID | libc::MS_RDONLY);
        assert_eq!(propagation, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(data, vec!["mode=755", "size=65536k"]);
    }

    #[test]
    fn layer_paths_stay_in_the_share() {
        assert!(checked_relative("layers/abc").is_ok());
        for bad in ["", "/abs", "../up", "a/../../b", "./x"] {
            assert!(checked_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_points_refuse_symlinks() {
        let dir = std::env::temp_dir().join(format!("hull-agent-test-{}", std::process::id()));
        let root = dir.join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        let rootfs = ContainerRootfs {
            dir: dir.clone(),
            root: root.clone(),
        };
        assert_eq!(
            rootfs.prepare_path(Path::new("/etc/hosts"), true).unwrap(),
            root.join("etc/hosts")
        );
        assert!(root.join("etc/hosts").is_file());
        assert!(rootfs.prepare_path(Path::new("/escape/x"), false).is_err());
        assert!(rootfs.prepare_path(Path::new("/../x"), false).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn mount_points_on_a_new_file_system_are_left_to_the_child() {
        use oci_spec::runtime::MountBuilder;
        let dir = std::env::temp_dir().join(format!("hull-agent-plan-{}", std::process::id()));
        let root = dir.join("rootfs");
        fs::create_dir_all(&root).unwrap();
        let rootfs = ContainerRootfs {
            dir: dir.clone(),
            root: root.clone(),
        };
        let mount = |dest: &str, typ: &str, source: &str, options: &[&str]| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source(source)
                .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        let mounts = [
            mount("/dev", "tmpfs", "tmpfs", &["nosuid"]),
            mount("/dev/pts", "devpts", "devpts", &[]),
            mount("/data", "bind", "/tmp", &["rbind"]),
            mount("/data/sub", "bind", "/tmp", &["rbind"]),
        ];
        let steps = plan_mounts(&rootfs, &mounts).unwrap();
        // The new file system's own mount point is made in the root; what
        // goes on it is not, though its steps name it.
        assert!(root.join("dev").is_dir());
        assert!(!root.join("dev/pts").exists());
        assert!(!root.join("dev/null").exists());
        let targets: Vec<_> = steps.iter().map(|s| s.target.clone()).collect();
        assert!(targets.contains(&cstring(&root.join("dev/pts")).unwrap()));
        assert!(targets.contains(&cstring(&root.join("dev/null")).unwrap()));
        // Under a bind mount (content from elsewhere): checked and made.
        assert!(root.join("data/sub").is_dir());
        assert!(rootfs.path_of(Path::new("/dev/../x")).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
