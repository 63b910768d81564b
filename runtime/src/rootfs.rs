//! A container's root file system on the host: the image's unpacked layers
//! as overlayfs lower layers under the container's own writable layer.
//!
//! The writable layer (`rw/upper`, with overlayfs' `rw/work`) lives in the
//! container's directory, so it outlives the microVM: a restarted container
//! keeps what it wrote, and `commit`, `export` and `cp` work on stopped
//! containers too, as under Docker. This is Kata Containers' model (the
//! host assembles the rootfs, virtio-fs shares it) rather than a writable
//! layer in guest memory.
//!
//! Nothing is mounted in the host's mount namespace:
//! * while a sandbox runs, the read-write overlay exists only in virtiofsd's
//!   private mount namespace (see [`crate::virtiofsd`]);
//! * host-side readers get a read-only *view*: the upper directory and the
//!   layers all as lower layers (whiteouts in a lower layer hide what is
//!   below, as in the upper one), mounted in a mount namespace of one
//!   thread's own ([`RootfsLayers::with_view`]) that ends with the thread.
//!   A view never conflicts with the running overlay's upper directory.
//! * `cp` into a stopped container mounts the read-write overlay the same
//!   way ([`RootfsLayers::with_writable`]); into a running one it goes
//!   through virtiofsd's own mount (see [`crate::copy`]).
//! * [`write_layer_tar`] reads the upper directory directly, for `commit`.

use crate::lockfile::LockFile;
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The directory, in a container's directory, holding its writable layer.
pub const RW_DIR: &str = "rw";

/// The kernel takes at most a page of mount options.
const MAX_MOUNT_DATA: usize = 4095;

/// A host-side operation on a container's root file system failed.
#[derive(Debug, Error)]
pub enum RootfsError {
    /// A file-system call failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The overlay's options do not fit in one mount call.
    #[error("the image has too many layers ({0}) to mount as one overlay")]
    TooManyLayers(usize),
    /// A path cannot be given to the kernel.
    #[error("path {0} cannot be an overlay option")]
    BadPath(PathBuf),
    /// The writable layer is mounted by a sandbox (or another copy).
    #[error("the container's file system is in use by its sandbox")]
    InUse,
    /// The worker thread could not run or died.
    #[error("mounting a view of the container's file system: {0}")]
    Worker(String),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError {
    let path = path.to_path_buf();
    move |source| RootfsError::Io { what, path, source }
}

/// One overlayfs mount, prepared before any fork or namespace change: the
/// directory to resolve relative layer names from, and the option string.
#[derive(Debug, Clone)]
pub struct OverlayMount {
    /// Directory to `chdir` to before mounting (short relative lower
    /// layer names keep the options within a page).
    pub cwd: CString,
    /// `lowerdir=…[,upperdir=…,workdir=…],…`.
    pub data: CString,
    /// The directories holding its layers, absolute: the lower layers'
    /// common parent (else each lower layer), then the writable layer's
    /// parent (`rw`, holding `upper` and `work`). An idmapped view of each,
    /// mounted over it, serves an overlay to a user namespace (see
    /// [`crate::idmap`]).
    pub layer_dirs: Vec<CString>,
}

/// The layers of one container's root file system.
#[derive(Debug, Clone)]
pub struct RootfsLayers {
    /// The image's layer directories, bottom first.
    layers: Vec<PathBuf>,
    /// The container's writable layer.
    upper: PathBuf,
    /// overlayfs' work directory, beside it.
    work: PathBuf,
}

impl RootfsLayers {
    /// The layers of the container whose directory is `container_dir`, on
    /// the image layers `layer_dirs` (bottom first).
    pub fn new(container_dir: &Path, layer_dirs: Vec<PathBuf>) -> Self {
        let rw = container_dir.join(RW_DIR);
        Self {
            layers: layer_dirs,
            upper: rw.join("upper"),
            work: rw.join("work"),
        }
    }

    /// The writable layer's directory.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// Creates the writable layer if it does not exist yet. `rw` is 0700:
    /// no other host user may reach into what a guest wrote.
    pub fn create(&self) -> Result<(), RootfsError> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(rw) = self.upper.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(rw)
                .map_err(io_error("creating", rw))?;
        }
        for dir in [&self.upper, &self.work] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io_error("creating", dir))?;
        }
        Ok(())
    }

    /// Takes the writable layer's lock, which whoever mounts it read-write
    /// holds meanwhile: a monitor for its sandbox's life, `cp` for a copy
    /// into a stopped container. (An upper directory must never serve two
    /// overlays at once.) Blocks while another holds it.
    pub fn lock_writable(&self) -> Result<LockFile, RootfsError> {
        self.create()?;
        let path = self.lock_path();
        LockFile::acquire(&path).map_err(io_error("locking", &path))
    }

    /// As [`Self::lock_writable`], but `None` at once if it is held.
    pub fn try_lock_writable(&self) -> Result<Option<LockFile>, RootfsError> {
        self.create()?;
        let path = self.lock_path();
        LockFile::try_acquire(&path).map_err(io_error("locking", &path))
    }

    fn lock_path(&self) -> PathBuf {
        self.upper.with_file_name("lock")
    }

    /// The read-write overlay a sandbox shares with its guest.
    pub fn writable_mount(&self) -> Result<OverlayMount, RootfsError> {
        // No redirects, no metacopy, no index: the upper directory stays a
        // plain tree of changes that commit can turn into a layer.
        let extra = format!(
            ",upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            option_path(&self.upper)?,
            option_path(&self.work)?
        );
        self.overlay(None, &extra)
    }

    /// The read-only view: the writable layer on top, as a lower layer.
    pub fn view_mount(&self) -> Result<OverlayMount, RootfsError> {
        self.overlay(Some(&self.upper), "")
    }

    fn overlay(&self, top: Option<&Path>, extra: &str) -> Result<OverlayMount, RootfsError> {
        let cwd = match self.layers.first().and_then(|l| l.parent()) {
            Some(parent) if self.layers.iter().all(|l| l.parent() == Some(parent)) => {
                parent.to_path_buf()
            }
            _ => PathBuf::from("/"),
        };
        let mut lowers = Vec::with_capacity(self.layers.len() + 1);
        if let Some(top) = top {
            lowers.push(option_path(top)?);
        }
        for layer in self.layers.iter().rev() {
            let relative = layer.strip_prefix(&cwd).unwrap_or(layer);
            lowers.push(option_path(relative)?);
        }
        if lowers.is_empty() {
            // overlayfs needs a lower layer; an image without layers gets
            // an empty one (the writable layer's parent holds it).
            let empty = self.upper.with_file_name("empty");
            std::fs::create_dir_all(&empty).map_err(io_error("creating", &empty))?;
            lowers.push(option_path(&empty)?);
        }
        let data = format!("lowerdir={}{extra}", lowers.join(":"));
        if data.len() > MAX_MOUNT_DATA {
            return Err(RootfsError::TooManyLayers(self.layers.len()));
        }
        let mut layer_dirs = if cwd == Path::new("/") {
            self.layers
                .iter()
                .map(|layer| cstring(layer))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![cstring(&cwd)?]
        };
        if let Some(rw) = self.upper.parent() {
            layer_dirs.push(cstring(rw)?);
        }
        Ok(OverlayMount {
            cwd: cstring(&cwd)?,
            data: CString::new(data).map_err(|_| RootfsError::BadPath(cwd.clone()))?,
            layer_dirs,
        })
    }

    /// Runs `work` with the container's file system mounted read-only at a
    /// fresh directory under `scratch`, in a mount namespace private to a
    /// thread of its own; the mount goes when the thread ends.
    pub fn with_view<T, F>(&self, scratch: &Path, work: F) -> Result<T, RootfsError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> T + Send + 'static,
    {
        // A container created but never started has no writable layer yet.
        self.create()?;
        with_private_mount(self.view_mount()?, libc::MS_RDONLY, scratch, "view", work)
    }

    /// As [`Self::with_view`], but read-write: the overlay with the
    /// container's writable layer as its upper directory, for writing into
    /// a stopped container (`cp`). Only while no sandbox runs: an upper and
    /// work directory must not serve two overlays at once (that is the
    /// running overlay's, in virtiofsd's namespace).
    pub fn with_writable<T, F>(&self, scratch: &Path, work: F) -> Result<T, RootfsError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> T + Send + 'static,
    {
        let Some(_writable_layer) = self.try_lock_writable()? else {
            return Err(RootfsError::InUse);
        };
        with_private_mount(self.writable_mount()?, 0, scratch, "writable", work)
    }
}

/// Runs `work` in a thread of its own, with `mount` mounted (with `flags`
/// besides nodev and nosuid) at a fresh directory under `scratch`, in that
/// thread's private mount namespace; the mount goes when the thread ends.
fn with_private_mount<T, F>(
    mount: OverlayMount,
    flags: libc::c_ulong,
    scratch: &Path,
    kind: &str,
    work: F,
) -> Result<T, RootfsError>
where
    T: Send + 'static,
    F: FnOnce(&Path) -> T + Send + 'static,
{
    let point = scratch.join(format!("{kind}-{}-{:x}", std::process::id(), rand_u64()));
    // (All of it: another view may just have removed `scratch`.)
    std::fs::create_dir_all(&point).map_err(io_error("creating", &point))?;
    let point_c = cstring(&point)?;
    let thread_point = point.clone();
    let result = std::thread::Builder::new()
        .name(format!("hull-rootfs-{kind}"))
        .spawn(move || -> Result<T, RootfsError> {
            mount_private_overlay(&mount, &point_c, flags).map_err(io_error(
                "mounting the container's file system at",
                &thread_point,
            ))?;
            let output = work(&thread_point);
            // The namespace dies with this thread anyway; unmount first
            // so the directory can go.
            // SAFETY: umount2 on a NUL-terminated path we own.
            unsafe { libc::umount2(point_c.as_ptr(), libc::MNT_DETACH) };
            Ok(output)
        })
        .map_err(|e| RootfsError::Worker(e.to_string()))?
        .join()
        .map_err(|_| RootfsError::Worker("the thread panicked".into()))?;
    let _ = std::fs::remove_dir(&point);
    // Only if empty: no other view is using it.
    let _ = std::fs::remove_dir(scratch);
    result
}

/// One line of `hull diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A` added, `C` changed, `D` deleted, as Docker prints them.
    pub kind: char,
    /// The path in the container, from `/`.
    pub path: String,
}

impl RootfsLayers {
    /// What the container changed, from its writable layer: a whiteout is
    /// a deletion, a path the image has is a change, any other an addition.
    /// `mount_points` (relative, see [`crate::sandbox::mount_points`]) are
    /// Hull's, not the container's: they, what lies below them, and the
    /// directories changed only to hold them are left out, as Docker's init
    /// layer keeps them out of sight. The writable layer is walked by
    /// descriptors and paths are looked up in the image's layers inside each
    /// layer's root (see [`crate::copy::walk`]): a guest's links lead nowhere.
    pub fn changes(
        &self,
        mount_points: &HashSet<PathBuf>,
    ) -> Result<Vec<Change>, crate::copy::CopyError> {
        Ok(self.classify(mount_points)?.0)
    }

    /// What of the writable layer is Hull's (see [`Self::changes`]):
    /// relative paths for [`crate::copy::archive_tree`] to leave out.
    pub fn hidden_entries(
        &self,
        mount_points: &HashSet<PathBuf>,
    ) -> Result<HashSet<PathBuf>, crate::copy::CopyError> {
        Ok(self.classify(mount_points)?.1)
    }

    fn classify(
        &self,
        mount_points: &HashSet<PathBuf>,
    ) -> Result<(Vec<Change>, HashSet<PathBuf>), crate::copy::CopyError> {
        let mut entries: Vec<(PathBuf, char, bool)> = Vec::new();
        if self.upper.is_dir() {
            let layers = self
                .layers
                .iter()
                .map(|layer| crate::copy::open_dir(layer))
                .collect::<Result<Vec<_>, _>>()?;
            crate::copy::walk(&self.upper, &mut |entry| {
                let mode = entry.stat.st_mode & libc::S_IFMT;
                let kind = if mode == libc::S_IFCHR && entry.stat.st_rdev == 0 {
                    'D'
                } else if layers
                    .iter()
                    .any(|layer| crate::copy::exists_in(layer, entry.path))
                {
                    'C'
                } else {
                    'A'
                };
                entries.push((entry.path.to_path_buf(), kind, mode == libc::S_IFDIR));
            })?;
        }
        // A directory is the container's change only if something of the
        // container's is in it, or nothing at all (mkdir, or a copy-up by
        // chmod). Deepest first, so a directory's contents are decided
        // before it is.
        entries.sort_by_key(|(path, ..)| std::cmp::Reverse(path.components().count()));
        let mut hidden = HashSet::new();
        let (mut hidden_below, mut shown_below) = (HashSet::new(), HashSet::new());
        for (path, _, is_dir) in &entries {
            let hide = path.ancestors().any(|a| mount_points.contains(a))
                || (*is_dir && hidden_below.contains(path) && !shown_below.contains(path));
            let below = if hide {
                &mut hidden_below
            } else {
                &mut shown_below
            };
            below.extend(path.ancestors().skip(1).map(Path::to_path_buf));
            if hide {
                hidden.insert(path.clone());
            }
        }
        let mut changes: Vec<Change> = entries
            .into_iter()
            .filter(|(path, ..)| !hidden.contains(path))
            .map(|(path, kind, _)| Change {
                kind,
                path: format!("/{}", path.display()),
            })
            .collect();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((changes, hidden))
    }
}

/// In the calling thread: a private mount namespace, then `mount` at
/// `point`, with `flags` (`MS_RDONLY` for a view) besides nodev and nosuid.
/// The thread must be one of Hull's own (the process's other threads keep
/// the host's namespace: `unshare(CLONE_NEWNS)` gives this thread its own
/// file-system context).
fn mount_private_overlay(
    mount: &OverlayMount,
    point: &CString,
    flags: libc::c_ulong,
) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // The work that follows resolves the user's relative paths (`cp x .`)
    // from this thread's working directory: come back to it after the mount.
    let cwd = std::fs::File::open(".")?;
    // SAFETY: plain system calls on NUL-terminated strings and a descriptor
    // that outlive them.
    unsafe {
        crate::mount_api::unshare_mounts(libc::MS_PRIVATE)?;
        check(libc::chdir(mount.cwd.as_ptr()))?;
        let flags = flags | libc::MS_NODEV | libc::MS_NOSUID;
        let mounted = check(libc::mount(
            c"overlay".as_ptr(),
            point.as_ptr(),
            c"overlay".as_ptr(),
            flags,
            mount.data.as_ptr().cast(),
        ));
        check(libc::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd)))?;
        mounted
    }
}

/// A path as an overlay option: no `,` `:` or `\` (its separators).
fn option_path(path: &Path) -> Result<String, RootfsError> {
    match path.to_str() {
        Some(text) if !text.contains([',', ':', '\\']) => Ok(text.to_string()),
        _ => Err(RootfsError::BadPath(path.to_path_buf())),
    }
}

fn cstring(path: &Path) -> Result<CString, RootfsError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| RootfsError::BadPath(path.to_path_buf()))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::TreeKind;

    fn entries(archive: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut reader = tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn upper_directories_become_oci_layers() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/motd"), "hi").unwrap();
        std::fs::hard_link(upper.join("etc/motd"), upper.join("etc/motd2")).unwrap();
        std::os::unix::fs::symlink("/nowhere", upper.join("link")).unwrap();
        // A whiteout, as overlayfs makes it.
        let whiteout = CString::new(upper.join("etc/gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod on a path we own.
        assert_eq!(
            unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) },
            0
        );
        std::fs::create_dir(upper.join("opaque")).unwrap();
        xattr::set(upper.join("opaque"), "trusted.overlay.opaque", b"y").unwrap();
        // A daemon's socket has no tar form: left out, as Docker does.
        let _socket = std::os::unix::net::UnixListener::bind(upper.join("app.sock")).unwrap();

        let mut layer = Vec::new();
        crate::copy::archive_tree(upper, TreeKind::Upper, HashSet::new(), &mut layer).unwrap();
        let found = entries(&layer);
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc",
                "etc/.wh.gone",
                "etc/motd",
                "etc/motd2",
                "link",
                "opaque",
                "opaque/.wh..wh..opq"
            ]
        );
        assert_eq!(found[3].1, tar::EntryType::Link);
        assert_eq!(found[4].1, tar::EntryType::Symlink);

        // A merged tree keeps devices as they are.
        let mut merged = Vec::new();
        crate::copy::archive_tree(upper, TreeKind::Merged, HashSet::new(), &mut merged).unwrap();
        assert!(entries(&merged)
            .iter()
            .any(|(n, t)| n == "etc/gone" && *t == tar::EntryType::Char));
    }

    #[test]
    fn the_writable_layer_serves_one_mount_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layers/base");
        std::fs::create_dir_all(&layer).unwrap();
        let rootfs = RootfsLayers::new(&dir.path().join("container"), vec![layer]);
        let sandbox = rootfs.lock_writable().unwrap();
        assert!(matches!(
            rootfs.with_writable(&dir.path().join("scratch"), |_| ()),
            Err(RootfsError::InUse)
        ));
        drop(sandbox);
        rootfs
            .with_writable(&dir.path().join("scratch"), |root| {
                std::fs::write(root.join("copied"), "x").unwrap()
            })
            .unwrap();
        assert!(rootfs.upper().join("copied").exists());
    }

    #[test]
    fn mount_points_and_what_holds_them_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layers/base");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::create_dir_all(layer.join("var/lib")).unwrap();
        let rootfs = RootfsLayers::new(&dir.path().join("container"), vec![layer]);
        rootfs.create().unwrap();
        let upper = rootfs.upper();
        for d in ["etc", "dev", "proc", "var/lib/app", "made"] {
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        for f in ["etc/hosts", "dev/null", "var/lib/app/data"] {
            std::fs::write(upper.join(f), "").unwrap();
        }
        let points: HashSet<PathBuf> = ["etc/hosts", "dev", "proc", "var/lib/app"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let changes: Vec<String> = rootfs
            .changes(&points)
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        assert_eq!(changes, ["A /made"], "only the container's own mkdir");
        let hidden = rootfs.hidden_entries(&points).unwrap();
        for path in [
            "etc",
            "etc/hosts",
            "dev",
            "dev/null",
            "proc",
            "var",
            "var/lib",
            "var/lib/app",
        ] {
            assert!(hidden.contains(Path::new(path)), "{path} not hidden");
        }
    }

    #[test]
    fn overlay_options_use_short_layer_names() {
        let layers = vec![
            PathBuf::from("/var/lib/hull/image/layers/aaa"),
            PathBuf::from("/var/lib/hull/image/layers/bbb"),
        ];
        let rootfs = RootfsLayers::new(Path::new("/var/lib/hull/containers/c1"), layers);
        let writable = rootfs.writable_mount().unwrap();
        assert_eq!(writable.cwd.to_str().unwrap(), "/var/lib/hull/image/layers");
        let data = writable.data.to_str().unwrap();
        assert!(data.starts_with("lowerdir=bbb:aaa,upperdir=/var/lib/hull/containers/c1/rw/upper,workdir=/var/lib/hull/containers/c1/rw/work"), "{data}");
        let view = rootfs.view_mount().unwrap();
        assert_eq!(
            view.data.to_str().unwrap(),
            "lowerdir=/var/lib/hull/containers/c1/rw/upper:bbb:aaa"
        );
        let many = RootfsLayers::new(
            Path::new("/c"),
            (0..200)
                .map(|i| PathBuf::from(format!("/l/{i:064}")))
                .collect(),
        );
        assert!(matches!(
            many.writable_mount(),
            Err(RootfsError::TooManyLayers(200))
        ));
        let bad = RootfsLayers::new(Path::new("/c:d"), vec![PathBuf::from("/l/a")]);
        assert!(matches!(bad.writable_mount(), Err(RootfsError::BadPath(_))));
    }

    #[test]
    fn a_view_shows_the_writable_layer_over_the_image_and_leaves_no_mount() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layers/base");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(layer.join("etc/base"), "base").unwrap();
        std::fs::write(layer.join("etc/removed"), "x").unwrap();
        let rootfs = RootfsLayers::new(&dir.path().join("container"), vec![layer]);
        rootfs.create().unwrap();
        std::fs::create_dir(rootfs.upper().join("etc")).unwrap();
        std::fs::write(rootfs.upper().join("etc/new"), "new").unwrap();
        let whiteout =
            CString::new(rootfs.upper().join("etc/removed").as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod on a path we own.
        assert_eq!(
            unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) },
            0
        );

        let scratch = dir.path().join("scratch");
        let listing = rootfs
            .with_view(&scratch, |root| {
                let mut names: Vec<String> = std::fs::read_dir(root.join("etc"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                (
                    names,
                    std::fs::write(root.join("etc/attempt"), "x").is_err(),
                )
            })
            .unwrap();
        assert_eq!(listing, (vec!["base".to_string(), "new".to_string()], true));
        assert!(!scratch.exists(), "the view's mount point stayed");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains("hull-rootfs") && !mounts.contains(scratch.to_str().unwrap()),
            "a view leaked into the host's namespace"
        );
    }

    #[test]
    fn a_writable_mount_writes_into_the_writable_layer_and_leaves_no_mount() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layers/base");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(layer.join("etc/base"), "base").unwrap();
        let rootfs = RootfsLayers::new(&dir.path().join("container"), vec![layer.clone()]);
        let scratch = dir.path().join("scratch");
        rootfs
            .with_writable(&scratch, |root| {
                std::fs::write(root.join("etc/new"), "new").unwrap();
                std::fs::remove_file(root.join("etc/base")).unwrap();
            })
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(rootfs.upper().join("etc/new")).unwrap(),
            "new"
        );
        assert!(
            std::fs::read_to_string(layer.join("etc/base")).is_ok(),
            "the image's layer changed"
        );
        let listing = rootfs
            .with_view(&scratch, |root| root.join("etc/base").exists())
            .unwrap();
        assert!(!listing, "the removal did not reach the writable layer");
        assert!(
            std::fs::read_dir(&scratch).map_or(true, |mut d| d.next().is_none()),
            "the mount point stayed"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(scratch.to_str().unwrap()),
            "the mount leaked into the host's namespace"
        );
    }
}
