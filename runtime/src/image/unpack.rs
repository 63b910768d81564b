//! Safe unpacking of (hostile) layer tars into overlayfs-format directories.
//!
//! The `tar` crate is only used to iterate entries; every file is created
//! here with `*at()` calls relative to descriptors of directories we opened
//! ourselves with `O_NOFOLLOW`, so no entry (`../x`, `/x`, a path through a
//! symlink planted by an earlier entry, a hardlink to a file outside) can
//! make us read or write anything outside the layer directory.
//!
//! OCI whiteouts become overlayfs whiteouts, which is what the guest's
//! overlay mount expects from its lowerdirs:
//! - `dir/.wh.name` → character device 0:0 `dir/name`;
//! - `dir/.wh..wh..opq` → xattr `trusted.overlay.opaque=y` on `dir`.
//!
//! Not supported (yet): PAX xattrs (`SCHILY.xattr.*`, e.g. file
//! capabilities) are ignored; GNU sparse entries are refused.

use std::collections::BTreeMap;
use std::fs::{self, File, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use xattr::FileExt as _;

use super::digest::{limit_exceeded, DigestReader};
use super::fsutil::{self, copy_stream, open_at, CopyFailure, TempGuard};
use super::{Digest, ImageError};

/// Bound on a layer's uncompressed size (the tar stream, headers included):
/// a small layer that inflates past it (a decompression bomb) is refused,
/// and nothing of it is kept.
pub(crate) const MAX_LAYER_SIZE: u64 = 16 << 30;
/// Sets another bound than [`MAX_LAYER_SIZE`] (`512m`, `64g`: Docker's size
/// syntax), for hosts whose disks are smaller.
pub const MAX_LAYER_SIZE_ENV: &str = "HULL_MAX_LAYER_SIZE";

/// The bound on a layer's uncompressed size: [`MAX_LAYER_SIZE_ENV`] if set,
/// else [`MAX_LAYER_SIZE`].
pub(crate) fn max_layer_size() -> Result<u64, ImageError> {
    match std::env::var(MAX_LAYER_SIZE_ENV) {
        Ok(text) if !text.is_empty() => crate::units::parse_size(&text)
            .ok()
            .filter(|&size| size > 0)
            .ok_or(ImageError::InvalidSetting {
                name: MAX_LAYER_SIZE_ENV,
                value: text,
            }),
        _ => Ok(MAX_LAYER_SIZE),
    }
}
/// Bound on the number of entries in one layer.
pub(crate) const MAX_LAYER_ENTRIES: u64 = 1_000_000;
/// Bound on an entry's path or link target, in bytes (Linux's PATH_MAX).
pub(crate) const MAX_PATH_LEN: usize = 4096;

/// Prefix of an OCI whiteout file name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata names (`.wh..wh.plnk`, …), which carry nothing an
/// overlay needs.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The OCI opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Mode of directories that a layer uses without listing them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Makes sure layer `diff_id` is unpacked under `layers_root` and returns its
/// directory, `layers_root/<diff_id hex>`.
///
/// An existing directory is reused as is: that is how images share layers.
/// Otherwise the blob is unpacked into `layers_root/.tmp-<random>`, its
/// uncompressed stream hashed and compared with `diff_id`, and only then
/// renamed into place. On any failure the temporary directory is removed.
pub(crate) fn ensure_layer(
    layers_root: &Path,
    blob: &Path,
    blob_digest: &Digest,
    media_type: &str,
    diff_id: &Digest,
) -> Result<PathBuf, ImageError> {
    let final_dir = layers_root.join(diff_id.hex());
    if fsutil::is_dir(&final_dir) {
        return Ok(final_dir);
    }
    if media_type.contains("zstd") || !media_type.contains("tar") {
        return Err(ImageError::UnsupportedMediaType {
            layer: blob_digest.clone(),
            media_type: media_type.to_owned(),
        });
    }

    let temp = TempGuard::new(layers_root.join(fsutil::temp_name()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(temp.path())
        .map_err(|e| ImageError::io("create directory", temp.path(), e))?;
    let root = File::open(temp.path())
        .map(OwnedFd::from)
        .map_err(|e| ImageError::io("open directory", temp.path(), e))?;

    let file = File::open(blob).map_err(|e| ImageError::io("open blob", blob, e))?;
    let mut compressed = BufReader::new(file);
    let is_gzip = compressed
        .fill_buf()
        .map_err(|e| ImageError::io("read blob", blob, e))?
        .starts_with(&[0x1f, 0x8b]);
    let decompressed: Box<dyn Read> = if is_gzip {
        Box::new(MultiGzDecoder::new(compressed))
    } else {
        Box::new(compressed)
    };
    let mut stream = DigestReader::new(decompressed, max_layer_size()?);
    let stream_error = |err: io::Error| match limit_exceeded(&err) {
        Some(limit) => ImageError::TooLarge {
            what: format!("layer {blob_digest} (uncompressed)"),
            limit,
        },
        None => ImageError::io("read layer", blob, err),
    };

    Unpacker::new(root.as_fd(), blob_digest).unpack(&mut stream, &stream_error)?;
    // The diff_id covers the whole stream, including the zero blocks after
    // the end-of-archive marker that the tar reader does not consume.
    stream.drain().map_err(stream_error)?;
    let (actual, _) = stream.finish();
    if actual != *diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: blob_digest.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }

    fs::set_permissions(temp.path(), Permissions::from_mode(IMPLICIT_DIR_MODE))
        .map_err(|e| ImageError::io("set mode of", temp.path(), e))?;
    // Make the content durable before the rename publishes it: a layer dir
    // under its final name is trusted forever after.
    nix::unistd::syncfs(root.as_raw_fd())
        .map_err(|e| ImageError::io("sync", temp.path(), e.into()))?;
    match nix::fcntl::renameat2(
        None,
        temp.path(),
        None,
        &final_dir,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => {
            temp.keep();
            fsutil::sync_dir(layers_root)?;
        }
        // Another `hull load` finished the same layer first: use theirs and
        // let the guard delete ours.
        Err(Errno::EEXIST | Errno::ENOTEMPTY) if fsutil::is_dir(&final_dir) => {}
        Err(err) => return Err(ImageError::io("rename layer into", &final_dir, err.into())),
    }
    Ok(final_dir)
}

/// Normalises a tar entry path into its components: strips `./` and `.`
/// and repeated slashes; refuses empty, absolute, NUL-containing and `..`
/// paths. `.` and `./` give no components (the layer root).
pub(crate) fn normalize_path(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.is_empty() {
        return Err("has an empty path");
    }
    if raw.len() > MAX_PATH_LEN {
        return Err("has a path longer than 4096 bytes");
    }
    if raw.contains(&0) {
        return Err("has a NUL byte in its path");
    }
    if raw.starts_with(b"/") {
        return Err("has an absolute path");
    }
    let mut components = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("has a '..' component"),
            _ => components.push(component),
        }
    }
    Ok(components)
}

/// Metadata applied to directories after all entries, so a read-only or
/// non-searchable directory mode cannot get in the way of its own content
/// and adding children does not disturb its mtime.
struct DirMeta {
    mode: u32,
    mtime: Option<i64>,
}

/// Ownership, mode and time of an entry, PAX overrides applied.
struct EntryMeta {
    uid: Uid,
    gid: Gid,
    mode: u32,
    mtime: i64,
}

/// Result of one entry: `Ok`, or an error that is not yet tied to a layer.
enum EntryError {
    /// The entry is refused; the text completes "layer entry 'x' …".
    Unsafe(String),
    /// A filesystem call failed.
    Io(&'static str, io::Error),
    /// Reading the tar stream failed.
    Stream(io::Error),
}

impl From<&'static str> for EntryError {
    fn from(reason: &'static str) -> EntryError {
        EntryError::Unsafe(reason.to_owned())
    }
}

/// Shorthand: an errno from a filesystem call as an [`EntryError::Io`].
fn fs_err(action: &'static str) -> impl FnOnce(Errno) -> EntryError {
    move |errno| EntryError::Io(action, errno.into())
}

/// Unpacks the entries of one layer below one directory descriptor.
struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    layer: &'a Digest,
    /// Directories to finish, keyed by their components.
    dirs: BTreeMap<Vec<Vec<u8>>, DirMeta>,
    /// The directory opened last, reused by the next walk that goes
    /// through it (tars list a directory's entries together). Safe to keep:
    /// a directory, once created, is never removed or replaced while we
    /// unpack, so the descriptor always names the directory at that path.
    last_dir: Option<(Vec<Vec<u8>>, OwnedFd)>,
}

impl<'a> Unpacker<'a> {
    fn new(root: BorrowedFd<'a>, layer: &'a Digest) -> Unpacker<'a> {
        Unpacker {
            root,
            layer,
            dirs: BTreeMap::new(),
            last_dir: None,
        }
    }

    /// Applies every entry of the tar in `stream`, then the directory
    /// metadata. `stream_error` turns read failures into errors.
    fn unpack(
        mut self,
        stream: &mut impl Read,
        stream_error: &dyn Fn(io::Error) -> ImageError,
    ) -> Result<(), ImageError> {
        let mut archive = tar::Archive::new(stream);
        let entries = archive.entries().map_err(stream_error)?;
        for (index, entry) in entries.enumerate() {
            if index as u64 >= MAX_LAYER_ENTRIES {
                return Err(ImageError::TooLarge {
                    what: format!("number of entries in layer {}", self.layer),
                    limit: MAX_LAYER_ENTRIES,
                });
            }
            let mut entry = entry.map_err(stream_error)?;
            let raw_path = entry.path_bytes().into_owned();
            self.apply(&mut entry, &raw_path).map_err(|err| match err {
                EntryError::Stream(err) => stream_error(err),
                other => self.entry_error(&raw_path, other),
            })?;
        }
        self.finish_dirs()
    }

    fn entry_error(&self, raw_path: &[u8], err: EntryError) -> ImageError {
        let entry = display_path(raw_path);
        let (action, source) = match err {
            EntryError::Unsafe(reason) => {
                return ImageError::UnsafeLayerEntry {
                    layer: self.layer.clone(),
                    entry,
                    reason,
                }
            }
            EntryError::Io(action, source) => (action, source),
            EntryError::Stream(source) => ("read data of", source),
        };
        ImageError::LayerEntryIo {
            layer: self.layer.clone(),
            entry,
            action,
            source,
        }
    }

    fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_path: &[u8],
    ) -> Result<(), EntryError> {
        use tar::EntryType;

        let kind = entry.header().entry_type();
        // Global PAX headers carry defaults we do not use; long-name and
        // PAX records are folded into the next entry by the tar crate.
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let components = normalize_path(raw_path)?;
        let Some((name, parents)) = components.split_last() else {
            // `./` is the layer root itself; its metadata is ours to choose.
            return if kind == EntryType::Directory {
                Ok(())
            } else {
                Err("has an empty path".into())
            };
        };
        let name: &[u8] = name;

        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = self.open_dir(parents, true)?;
            return if name == OPAQUE_MARKER {
                let dir = File::from(parent);
                dir.set_xattr(OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(|e| EntryError::Io("mark directory opaque for", e))
            } else if name.starts_with(WHITEOUT_META_PREFIX) {
                Ok(())
            } else if target.is_empty() || target == b"." || target == b".." {
                Err("is a whiteout of an invalid name".into())
            } else {
                remove_non_dir(parent.as_fd(), target)?;
                nix::sys::stat::mknodat(
                    Some(parent.as_raw_fd()),
                    target,
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    nix::sys::stat::makedev(0, 0),
                )
                .map_err(fs_err("create whiteout for"))
            };
        }

        let meta = entry_meta(entry)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let parent = self.open_dir(parents, true)?;
                write_file(parent.as_fd(), name, entry, &meta)
            }
            EntryType::Directory => {
                let parent = self.open_dir(parents, true)?;
                match stat_at(parent.as_fd(), name)? {
                    Some(stat) if is_type(&stat, SFlag::S_IFDIR) => {}
                    existing => {
                        if existing.is_some() {
                            unlink_at(parent.as_fd(), name)?;
                        }
                        nix::sys::stat::mkdirat(
                            Some(parent.as_raw_fd()),
                            name,
                            Mode::from_bits_truncate(0o700),
                        )
                        .map_err(fs_err("create directory"))?;
                    }
                }
                chown_at(parent.as_fd(), name, &meta)?;
                self.dirs.insert(
                    owned(&components),
                    DirMeta {
                        mode: meta.mode,
                        mtime: Some(meta.mtime),
                    },
                );
                Ok(())
            }
            EntryType::Symlink => {
                let target = link_target(entry)?;
                let parent = self.open_dir(parents, true)?;
                remove_non_dir(parent.as_fd(), name)?;
                // The target is stored verbatim: it is only ever resolved
                // inside the guest, never by us on the host.
                nix::unistd::symlinkat(target.as_slice(), Some(parent.as_raw_fd()), name)
                    .map_err(fs_err("create symlink"))?;
                chown_at(parent.as_fd(), name, &meta)?;
                set_mtime_at(parent.as_fd(), name, meta.mtime)
            }
            EntryType::Link => {
                let target = link_target(entry)?;
                let target_components = normalize_path(&target).map_err(|reason| {
                    EntryError::Unsafe(format!("is a hardlink whose target {reason}"))
                })?;
                let Some((target_name, target_parents)) = target_components.split_last() else {
                    return Err("is a hardlink to the layer root".into());
                };
                if target_components == components {
                    return Err("is a hardlink to itself".into());
                }
                let target_parent = self.open_dir(target_parents, false)?;
                let target_text = display_path(&target);
                match stat_at(target_parent.as_fd(), target_name)? {
                    Some(stat) if is_type(&stat, SFlag::S_IFREG) => {}
                    Some(_) => {
                        return Err(EntryError::Unsafe(format!(
                            "is a hardlink to '{target_text}', which is not a regular file"
                        )))
                    }
                    None => {
                        return Err(EntryError::Unsafe(format!(
                            "is a hardlink to '{target_text}', which is not in this layer"
                        )))
                    }
                }
                let parent = self.open_dir(parents, true)?;
                remove_non_dir(parent.as_fd(), name)?;
                // No AT_SYMLINK_FOLLOW: link exactly the inode we checked.
                nix::unistd::linkat(
                    Some(target_parent.as_raw_fd()),
                    *target_name,
                    Some(parent.as_raw_fd()),
                    name,
                    AtFlags::empty(),
                )
                .map_err(fs_err("create hardlink"))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind_flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let parent = self.open_dir(parents, true)?;
                remove_non_dir(parent.as_fd(), name)?;
                nix::sys::stat::mknodat(
                    Some(parent.as_raw_fd()),
                    name,
                    kind_flag,
                    Mode::empty(),
                    nix::sys::stat::makedev(major.into(), minor.into()),
                )
                .map_err(fs_err("create device node"))?;
                chown_at(parent.as_fd(), name, &meta)?;
                // The node was just created by us in a directory only we
                // write to, so following the final name is harmless (and
                // Linux has no fchmodat without following).
                nix::sys::stat::fchmodat(
                    Some(parent.as_raw_fd()),
                    name,
                    Mode::from_bits_truncate(meta.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(fs_err("set mode of"))?;
                set_mtime_at(parent.as_fd(), name, meta.mtime)
            }
            EntryType::GNUSparse => Err("is a sparse file, which is not supported".into()),
            other => Err(EntryError::Unsafe(format!(
                "has unsupported type '{}'",
                char::from(other.as_byte()).escape_default()
            ))),
        }
    }

    /// Opens the directory `components` below the root without following
    /// any symlink, creating missing directories when `create` is set.
    fn open_dir(&mut self, components: &[&[u8]], create: bool) -> Result<OwnedFd, EntryError> {
        const DIR_FLAGS: OFlag = OFlag::O_RDONLY
            .union(OFlag::O_DIRECTORY)
            .union(OFlag::O_NOFOLLOW);
        let (start, base) = match &self.last_dir {
            Some((path, fd))
                if path.len() <= components.len()
                    && path.iter().zip(components).all(|(a, b)| a.as_slice() == *b) =>
            {
                (path.len(), fd.as_fd())
            }
            _ => (0, self.root),
        };
        let mut current = base
            .try_clone_to_owned()
            .map_err(|e| EntryError::Io("open parent directory of", e))?;
        for (depth, component) in components.iter().enumerate().skip(start) {
            let opened = match open_at(current.as_fd(), component, DIR_FLAGS, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    nix::sys::stat::mkdirat(
                        Some(current.as_raw_fd()),
                        *component,
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(fs_err("create parent directory for"))?;
                    self.dirs.insert(
                        owned(&components[..=depth]),
                        DirMeta {
                            mode: IMPLICIT_DIR_MODE,
                            mtime: None,
                        },
                    );
                    open_at(current.as_fd(), component, DIR_FLAGS, Mode::empty())
                }
                other => other,
            };
            current = match opened {
                Ok(fd) => fd,
                Err(errno) => {
                    let prefix = display_path(&components[..=depth].join(&b'/'));
                    return Err(match stat_at(current.as_fd(), component)? {
                        Some(stat) if is_type(&stat, SFlag::S_IFLNK) => {
                            EntryError::Unsafe(format!("goes through symlink '{prefix}'"))
                        }
                        Some(stat) if !is_type(&stat, SFlag::S_IFDIR) => EntryError::Unsafe(
                            format!("goes through '{prefix}', which is not a directory"),
                        ),
                        None => EntryError::Unsafe(format!(
                            "goes through '{prefix}', which is not in this layer"
                        )),
                        Some(_) => EntryError::Io("open parent directory of", errno.into()),
                    });
                }
            };
        }
        if start < components.len() {
            let cached = current
                .try_clone()
                .map_err(|e| EntryError::Io("open parent directory of", e))?;
            self.last_dir = Some((owned(components), cached));
        }
        Ok(current)
    }

    /// Applies directory modes and mtimes, deepest first so that a parent
    /// made non-searchable cannot block its children.
    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(components, _)| std::cmp::Reverse(components.len()));
        for (components, meta) in dirs {
            let raw_path = components.join(&b'/');
            let borrowed: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
            let finish = |unpacker: &mut Unpacker<'_>| -> Result<(), EntryError> {
                let Some((name, parents)) = borrowed.split_last() else {
                    return Ok(());
                };
                let parent = unpacker.open_dir(parents, false)?;
                nix::sys::stat::fchmodat(
                    Some(parent.as_raw_fd()),
                    *name,
                    Mode::from_bits_truncate(meta.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(fs_err("set mode of"))?;
                match meta.mtime {
                    Some(mtime) => set_mtime_at(parent.as_fd(), name, mtime),
                    None => Ok(()),
                }
            };
            finish(self).map_err(|err| self.entry_error(&raw_path, err))?;
        }
        Ok(())
    }
}

/// Creates regular file `name` in `parent` with the entry's data and
/// metadata. Anything but a directory already there is replaced (later
/// entries win, as in `tar -x`).
fn write_file<R: Read>(
    parent: BorrowedFd<'_>,
    name: &[u8],
    entry: &mut tar::Entry<'_, R>,
    meta: &EntryMeta,
) -> Result<(), EntryError> {
    remove_non_dir(parent, name)?;
    let fd = open_at(
        parent,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(fs_err("create file"))?;
    let mut file = File::from(fd);
    copy_stream(entry, &mut file).map_err(|failure| match failure {
        CopyFailure::Read(err) => EntryError::Stream(err),
        CopyFailure::Write(err) => EntryError::Io("write file", err),
    })?;
    // chown before chmod: chown clears setuid/setgid bits.
    std::os::unix::fs::fchown(&file, Some(meta.uid.as_raw()), Some(meta.gid.as_raw()))
        .map_err(|e| EntryError::Io("set owner of", e))?;
    file.set_permissions(Permissions::from_mode(meta.mode))
        .map_err(|e| EntryError::Io("set mode of", e))?;
    let time = TimeSpec::new(meta.mtime, 0);
    nix::sys::stat::futimens(file.as_raw_fd(), &time, &time).map_err(fs_err("set time of"))
}

/// The entry's owner, mode and mtime, with PAX `uid`/`gid`/`mtime` records
/// taking precedence over the fixed-width header fields.
fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<EntryMeta, EntryError> {
    let header = entry.header();
    let mut uid = header.uid().map_err(|_| "has an invalid uid field")?;
    let mut gid = header.gid().map_err(|_| "has an invalid gid field")?;
    let mode = header.mode().map_err(|_| "has an invalid mode field")? & 0o7777;
    let mut mtime = header.mtime().map_err(|_| "has an invalid mtime field")? as i64;
    if let Some(extensions) = entry.pax_extensions().map_err(EntryError::Stream)? {
        for extension in extensions {
            let extension = extension.map_err(|_| "has a malformed PAX header")?;
            let value = extension.value().unwrap_or_default();
            match extension.key() {
                Ok("uid") => uid = value.parse().map_err(|_| "has an invalid PAX uid")?,
                Ok("gid") => gid = value.parse().map_err(|_| "has an invalid PAX gid")?,
                Ok("mtime") => {
                    let seconds = value.split('.').next().unwrap_or_default();
                    mtime = seconds.parse().map_err(|_| "has an invalid PAX mtime")?;
                }
                _ => {}
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| "has a uid out of range")?;
    let gid = u32::try_from(gid).map_err(|_| "has a gid out of range")?;
    Ok(EntryMeta {
        uid: Uid::from_raw(uid),
        gid: Gid::from_raw(gid),
        mode,
        mtime,
    })
}

/// A symlink's or hardlink's target, bounded and non-empty.
fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Vec<u8>, EntryError> {
    let target = entry
        .link_name_bytes()
        .map(|name| name.into_owned())
        .unwrap_or_default();
    if target.is_empty() {
        return Err("is a link with an empty target".into());
    }
    if target.len() > MAX_PATH_LEN || target.contains(&0) {
        return Err("has an invalid link target".into());
    }
    Ok(target)
}

/// `fstatat(parent, name, AT_SYMLINK_NOFOLLOW)`, `None` when absent.
fn stat_at(parent: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileStat>, EntryError> {
    match nix::sys::stat::fstatat(Some(parent.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(EntryError::Io("inspect", errno.into())),
    }
}

fn is_type(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == kind
}

/// Makes room for a non-directory at `name`: an existing non-directory is
/// unlinked (never followed); an existing directory is refused rather than
/// deleted recursively.
fn remove_non_dir(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), EntryError> {
    match stat_at(parent, name)? {
        None => Ok(()),
        Some(stat) if is_type(&stat, SFlag::S_IFDIR) => {
            Err("would replace a directory with a non-directory".into())
        }
        Some(_) => unlink_at(parent, name),
    }
}

fn unlink_at(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), EntryError> {
    nix::unistd::unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)
        .map_err(fs_err("replace"))
}

fn chown_at(parent: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> Result<(), EntryError> {
    nix::unistd::fchownat(
        Some(parent.as_raw_fd()),
        name,
        Some(meta.uid),
        Some(meta.gid),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(fs_err("set owner of"))
}

fn set_mtime_at(parent: BorrowedFd<'_>, name: &[u8], mtime: i64) -> Result<(), EntryError> {
    let time = TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        Some(parent.as_raw_fd()),
        name,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(fs_err("set time of"))
}

fn owned(components: &[&[u8]]) -> Vec<Vec<u8>> {
    components.iter().map(|c| c.to_vec()).collect()
}

/// An entry path for messages: lossy UTF-8 with control characters escaped,
/// so a hostile name cannot play tricks on the terminal.
fn display_path(raw: &[u8]) -> String {
    let mut text = String::with_capacity(raw.len());
    for c in String::from_utf8_lossy(raw).chars() {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    text
}

/// Total size of the regular files in an unpacked layer, hardlinks counted
/// once; the "SIZE" of an image is the sum over its layers.
pub(crate) fn layer_size(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0u64;
    let mut seen_links = std::collections::HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            fs::read_dir(&current).map_err(|e| ImageError::io("read directory", &current, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("read directory", &current, e))?;
            // DirEntry::metadata does not follow symlinks.
            let meta = entry
                .metadata()
                .map_err(|e| ImageError::io("inspect", entry.path(), e))?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file()
                && (meta.nlink() == 1 || seen_links.insert((meta.dev(), meta.ino())))
            {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
