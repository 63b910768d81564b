//! `hull cp`: copies between a container's root file system and the host,
//! with Docker's rules for files, directories, `/.` and `-`.
//!
//! A container's file system is written by its guest, which must be taken
//! to be hostile: any name in it may be a symbolic link to `/`, and may
//! become one between two looks while the container runs. So a container
//! path is resolved only by openat2(2) with `RESOLVE_IN_ROOT` from a
//! descriptor of the container's root (absolute links and `..` stay inside
//! it, as the guest sees them), and everything below is reached one
//! component at a time from directory descriptors with `O_NOFOLLOW`; no
//! host path is ever made by joining strings.
//!
//! Every copy is a tar stream, as under Docker: the source side writes an
//! archive of what it finds (symbolic links archived as links, never
//! followed), the destination side extracts it. `-` is that stream on
//! stdout or stdin; a copy between two trees runs both ends at once over a
//! pipe.

mod fd;

use crate::idmap::{FsIdentity, IdRange};
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How many symbolic links a path may go through, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

/// How deep a tree the walks go (they recurse): a guest can nest
/// directories without end, and must not overflow the host's stack.
const MAX_TREE_DEPTH: usize = 256;

/// How [`archive_tree`] treats overlayfs' markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A merged file system (a view): everything is content.
    Merged,
    /// An overlay upper directory: character devices 0:0 become OCI
    /// whiteouts (`.wh.NAME`), opaque directories get `.wh..wh..opq`.
    Upper,
}

/// A copy failed.
#[derive(Debug, Error)]
pub enum CopyError {
    /// The path does not exist (in the container, or on the host).
    #[error("{}", not_found_text(path, container.as_deref()))]
    NotFound {
        /// The path as given.
        path: String,
        /// The container's name, when the path is in one.
        container: Option<String>,
    },
    /// A path that must be a directory is not one.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A directory cannot replace an existing file.
    #[error("cannot copy directory: {path} exists and is not a directory")]
    CannotCopyDirectory {
        /// The destination.
        path: String,
    },
    /// A file cannot become a directory that does not exist (`DEST/`).
    #[error("no such directory: {path}")]
    NoSuchDirectory {
        /// The destination.
        path: String,
    },
    /// An archive from stdin goes into a directory only.
    #[error("extraction point is not a directory: {path}")]
    ExtractionPointNotDirectory {
        /// The destination.
        path: String,
    },
    /// A path loops through symbolic links.
    #[error("too many levels of symbolic links: {path}")]
    TooManyLinks {
        /// The path.
        path: String,
    },
    /// An archive entry's name would leave the destination.
    #[error("archive entry {entry} is not a path inside the destination")]
    UnsafeEntry {
        /// The entry's name.
        entry: String,
    },
    /// A directory an archive entry goes into is something else (a
    /// symbolic link, which extraction never follows).
    #[error("archive entry {entry}: {component} is not a directory")]
    ParentNotDirectory {
        /// The entry's name.
        entry: String,
        /// The component in its way.
        component: String,
    },
    /// A path is not text the CLI can pass on (a NUL byte, or not UTF-8
    /// where a link target must be joined to it).
    #[error("unusable path {0:?}")]
    BadPath(String),
    /// A file-system call failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A tree nests deeper than [`MAX_TREE_DEPTH`].
    #[error("{path}: directories nest more than {MAX_TREE_DEPTH} deep")]
    TooDeep {
        /// Where the walk stopped.
        path: String,
    },
    /// One end of the copy died.
    #[error("the copy's {0} thread panicked")]
    Worker(&'static str),
}

fn not_found_text(path: &str, container: Option<&str>) -> String {
    match container {
        Some(name) => format!("Could not find the file {path} in container {name}"),
        None => format!("lstat {path}: no such file or directory"),
    }
}

fn io_error(
    what: &'static str,
    path: impl Into<String>,
) -> impl FnOnce(std::io::Error) -> CopyError {
    let path = path.into();
    move |source| CopyError::Io { what, path, source }
}

/// `-a` and `-L`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: keep the archive's uid and gid (else root in a container, the
    /// caller on the host).
    pub archive: bool,
    /// `-L`: follow a symbolic link at the end of the source path.
    pub follow_link: bool,
}

/// One side of a copy: a container's root file system, or the host.
#[derive(Debug)]
pub struct Tree {
    /// The directory that is `/` for the container's paths; `None` for
    /// the host, whose paths resolve as this process's do.
    root: Option<OwnedFd>,
    /// The container's name, for messages.
    container: Option<String>,
    /// The host ids of the container's ids, when they are shifted: the
    /// overlay an unprivileged virtiofsd serves (see [`crate::idmap`]).
    ids: Option<IdRange>,
}

impl Tree {
    /// The host's file system: paths as the user gives them.
    pub fn host() -> Self {
        Self {
            root: None,
            container: None,
            ids: None,
        }
    }

    /// A container's file system, whose `/` is the directory `root`.
    pub fn container(root: OwnedFd, name: &str) -> Self {
        Self {
            root: Some(root),
            container: Some(name.to_string()),
            ids: None,
        }
    }

    /// A container's file system mounted at `dir` (a host path of Hull's
    /// own: a view or the writable overlay), which must be an overlay.
    pub fn container_at(dir: &Path, name: &str) -> Result<Self, CopyError> {
        let shown = dir.display().to_string();
        let root = open_host_dir(dir, libc::O_PATH)?;
        let kind = fd::fs_type(&root).map_err(io_error("inspecting", shown.clone()))?;
        if kind != fd::OVERLAYFS_SUPER_MAGIC {
            return Err(CopyError::Io {
                what: "expected an overlay at",
                path: shown,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(Self::container(root, name))
    }

    fn is_container(&self) -> bool {
        self.root.is_some()
    }

    fn dir_fd(&self) -> RawFd {
        self.root
            .as_ref()
            .map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd)
    }

    /// Container paths resolve inside the root, and never through a magic
    /// link or onto another mount; host paths as usual.
    fn resolve_flags(&self) -> u64 {
        if self.is_container() {
            fd::RESOLVE_IN_ROOT | fd::RESOLVE_NO_MAGICLINKS | fd::RESOLVE_NO_XDEV
        } else {
            0
        }
    }

    /// The directory at `path` (following links, inside the root).
    fn open_dir(&self, path: &str) -> Result<OwnedFd, CopyError> {
        let c_path = CString::new(path).map_err(|_| CopyError::BadPath(path.to_string()))?;
        fd::openat2(
            self.dir_fd(),
            &c_path,
            libc::O_PATH | libc::O_DIRECTORY,
            self.resolve_flags(),
        )
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ENOENT) => self.not_found(path),
            Some(libc::ENOTDIR) => CopyError::NotADirectory {
                path: path.to_string(),
            },
            Some(libc::ELOOP) => CopyError::TooManyLinks {
                path: path.to_string(),
            },
            _ => CopyError::Io {
                what: "opening",
                path: path.to_string(),
                source: err,
            },
        })
    }

    /// A path as messages show it: container paths from `/`, as Docker.
    fn shown(&self, path: &str) -> String {
        if self.is_container() && !path.starts_with('/') {
            format!("/{path}")
        } else {
            path.to_string()
        }
    }

    fn not_found(&self, path: &str) -> CopyError {
        CopyError::NotFound {
            path: path.to_string(),
            container: self.container.clone(),
        }
    }

    /// How an archive is extracted into this tree.
    fn policy(&self, options: CopyOptions) -> Policy {
        let owner = match (options.archive, self.is_container()) {
            (true, _) => Owner::Keep,
            // Docker: files copied into a container belong to its root.
            (false, true) => Owner::Root,
            // ... and those copied out to whoever ran the command.
            (false, false) => Owner::Caller,
        };
        Policy {
            owner,
            // The guest chose these files: no set-user-ID program of its
            // choosing appears on the host, and no device node (a copy of
            // the host's disk, world-writable) either.
            host_bound: !self.is_container(),
            ids: self.ids,
        }
    }
}

/// A path as `cp` reads its spelling: the directory it is in, its last
/// component, and what a trailing `/` or `/.` asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spelling {
    /// The directory holding it (resolved through links).
    parent: String,
    /// Its last component; `.` when the path names a directory as a whole
    /// (`/`, `DIR/.`, `DIR/..`).
    name: String,
    /// It ends with `/` or `/.`: it must be a directory.
    asserts_dir: bool,
    /// It ends with `/.`: a directory's contents, not the directory.
    contents: bool,
}

/// Reads a path's spelling; container paths are relative to the
/// container's `/` whether or not they start with one.
fn spell(path: &str, in_container: bool) -> Spelling {
    let path = if in_container && !path.starts_with('/') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let trimmed = path.trim_end_matches('/');
    let asserts_slash = trimmed.len() != path.len();
    let (parent, last) = match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None if trimmed.is_empty() => ("/", ""),
        None => (".", trimmed),
    };
    match last {
        // `/`, `DIR/.` and `DIR/..` name a directory as a whole: the
        // kernel resolves it (inside the root), never a lookup of `..`
        // from a descriptor, which would leave the root.
        "" | "." | ".." => Spelling {
            parent: if trimmed.is_empty() {
                "/".to_string()
            } else {
                trimmed.to_string()
            },
            name: ".".to_string(),
            asserts_dir: true,
            contents: true,
        },
        _ => Spelling {
            parent: parent.to_string(),
            name: last.to_string(),
            asserts_dir: asserts_slash,
            contents: false,
        },
    }
}

/// What a path led to: the directory holding it and its name there (`.`:
/// the directory itself), with what it is, if it exists.
#[derive(Debug)]
struct Located {
    dir: OwnedFd,
    name: CString,
    stat: Option<libc::stat>,
}

impl Located {
    fn is_dir(&self) -> bool {
        self.stat.as_ref().is_some_and(fd::is_dir)
    }
}

/// Finds `path` in `tree`. Links in the directories above it are followed
/// (inside a container's root); a link at the end only when `follow` says
/// so or a trailing `/` asserts a directory.
fn locate(tree: &Tree, path: &str, follow: bool) -> Result<(Spelling, Located), CopyError> {
    let given = spell(path, tree.is_container());
    let mut spelling = given.clone();
    for _ in 0..=MAX_SYMLINKS {
        if spelling.name == "." {
            let dir = tree.open_dir(&spelling.parent)?;
            let stat = fd::fstat(&dir).map_err(io_error("inspecting", spelling.parent.clone()))?;
            return Ok((
                given,
                Located {
                    dir,
                    name: c".".to_owned(),
                    stat: Some(stat),
                },
            ));
        }
        let dir = tree.open_dir(&spelling.parent)?;
        let name = CString::new(spelling.name.as_str())
            .map_err(|_| CopyError::BadPath(path.to_string()))?;
        let stat = fd::fstatat(dir.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(io_error("inspecting", path))?;
        let is_link = stat.is_some_and(|s| fd::file_type(s.st_mode) == libc::S_IFLNK);
        if is_link && (follow || spelling.asserts_dir) {
            let target = fd::readlinkat(dir.as_raw_fd(), &name)
                .map_err(io_error("reading the link", path))?;
            let target =
                String::from_utf8(target).map_err(|_| CopyError::BadPath(path.to_string()))?;
            // Relative to the link's directory, as spelled: the kernel
            // resolves any `..` in it from the real directory.
            let mut next = if target.starts_with('/') {
                target
            } else {
                format!("{}/{target}", spelling.parent.trim_end_matches('/'))
            };
            if spelling.asserts_dir {
                next.push('/');
            }
            spelling = spell(&next, tree.is_container());
            continue;
        }
        if spelling.asserts_dir && stat.is_some() && !stat.as_ref().is_some_and(fd::is_dir) {
            return Err(CopyError::NotADirectory {
                path: path.to_string(),
            });
        }
        return Ok((given, Located { dir, name, stat }));
    }
    Err(CopyError::TooManyLinks {
        path: path.to_string(),
    })
}

/// Finds a copy's source; a missing one is reported by its whole path,
/// as Docker does, whichever of its directories is missing.
fn locate_source(
    tree: &Tree,
    path: &str,
    options: CopyOptions,
) -> Result<(Spelling, Located), CopyError> {
    match locate(tree, path, options.follow_link) {
        Err(CopyError::NotFound { .. }) => Err(tree.not_found(&tree.shown(path))),
        other => other,
    }
}

/// Where Docker's rules put a source at an existing or missing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Into the destination directory, under the source's own name.
    IntoDirectory,
    /// At the destination path itself (created, or a file replaced).
    AtDestination,
}

/// Why Docker's rules refuse a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A directory onto an existing file.
    DirectoryOntoFile,
    /// A file to `DEST/` that does not exist.
    NoSuchDirectory,
}

/// Docker's table (`docker cp` reference, "SRC_PATH specifies a file" ...).
fn placement(
    source_is_dir: bool,
    dest_exists: bool,
    dest_is_dir: bool,
    dest_asserts_dir: bool,
) -> Result<Placement, Refusal> {
    match (dest_exists, dest_is_dir) {
        (true, true) => Ok(Placement::IntoDirectory),
        (true, false) if source_is_dir => Err(Refusal::DirectoryOntoFile),
        (true, false) => Ok(Placement::AtDestination),
        (false, _) if source_is_dir => Ok(Placement::AtDestination),
        (false, _) if dest_asserts_dir => Err(Refusal::NoSuchDirectory),
        (false, _) => Ok(Placement::AtDestination),
    }
}

/// Copies `from_path` in `from` to `to_path` in `to`, as `docker cp` does.
/// Returns the size of the archive that went across.
pub fn copy(
    from: &Tree,
    from_path: &str,
    to: &Tree,
    to_path: &str,
    options: CopyOptions,
) -> Result<u64, CopyError> {
    let (source_spelling, source) = locate_source(from, from_path, options)?;
    if source.stat.is_none() {
        return Err(from.not_found(&from.shown(from_path)));
    }
    let (dest_spelling, dest) = locate(to, to_path, true)?;
    let placed = placement(
        source.is_dir(),
        dest.stat.is_some(),
        dest.is_dir(),
        dest_spelling.asserts_dir,
    )
    .map_err(|refusal| match refusal {
        Refusal::DirectoryOntoFile => CopyError::CannotCopyDirectory {
            path: to_path.to_string(),
        },
        Refusal::NoSuchDirectory => CopyError::NoSuchDirectory {
            path: to_path.to_string(),
        },
    })?;
    let (target_dir, root_name) = match placed {
        Placement::IntoDirectory => (
            dest.directory(to_path)?,
            if source_spelling.contents {
                ".".to_string()
            } else {
                source_spelling.name.clone()
            },
        ),
        Placement::AtDestination => (dest.dir, dest_spelling_name(&dest.name)),
    };
    tracing::debug!(
        from = from_path,
        to = to_path,
        ?placed,
        root_name,
        "copying"
    );
    let policy = to.policy(options);
    let (reader, writer) = std::io::pipe().map_err(io_error("making a pipe for", to_path))?;
    std::thread::scope(|scope| {
        let source = &source;
        let root_name = &root_name;
        let producer = scope.spawn(move || {
            let mut counted = Counted {
                inner: writer,
                bytes: 0,
            };
            write_archive(source, Path::new(root_name), &mut counted).map(|()| counted.bytes)
        });
        let extracted = extract(reader, &target_dir, policy);
        let produced = producer
            .join()
            .map_err(|_| CopyError::Worker("archiving"))?;
        match (produced, extracted) {
            (Ok(bytes), Ok(())) => Ok(bytes),
            // The extraction stopped first (a refused entry): the archive's
            // writer only found the pipe closed.
            (Err(CopyError::Io { source, .. }), Err(refused))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Err(refused)
            }
            // An archive cut short by a failed reader is that reader's fault.
            (Err(failed), _) | (Ok(_), Err(failed)) => Err(failed),
        }
    })
}

fn dest_spelling_name(name: &CStr) -> String {
    String::from_utf8_lossy(name.to_bytes()).into_owned()
}

impl Located {
    /// The directory this names (itself when its name is `.`).
    fn directory(&self, shown: &str) -> Result<OwnedFd, CopyError> {
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        fd::openat(self.dir.as_raw_fd(), &self.name, flags, 0).map_err(|err| {
            match err.raw_os_error() {
                // It became a link (or a file) since it was looked at.
                Some(libc::ENOTDIR | libc::ELOOP) => CopyError::NotADirectory {
                    path: shown.to_string(),
                },
                _ => CopyError::Io {
                    what: "opening",
                    path: shown.to_string(),
                    source: err,
                },
            }
        })
    }
}

/// Writes `from_path` in `from` to `out` as a tar archive, as `docker cp
/// CONTAINER:SRC -` does: entries named from the source's last component
/// (`.` for `DIR/.`). Returns the archive's size.
pub fn archive_to(
    from: &Tree,
    from_path: &str,
    options: CopyOptions,
    out: impl Write,
) -> Result<u64, CopyError> {
    let (spelling, source) = locate_source(from, from_path, options)?;
    if source.stat.is_none() {
        return Err(from.not_found(&from.shown(from_path)));
    }
    let root_name = if spelling.contents {
        "."
    } else {
        spelling.name.as_str()
    };
    let mut counted = Counted {
        inner: out,
        bytes: 0,
    };
    write_archive(&source, Path::new(root_name), &mut counted)?;
    Ok(counted.bytes)
}

/// Extracts the tar archive `input` into the directory `to_path` of `to`,
/// as `docker cp - CONTAINER:DEST` does.
pub fn extract_into(
    input: impl Read,
    to: &Tree,
    to_path: &str,
    options: CopyOptions,
) -> Result<(), CopyError> {
    let (_, dest) = locate(to, to_path, true)?;
    if dest.stat.is_none() {
        return Err(to.not_found(&to.shown(to_path)));
    }
    if !dest.is_dir() {
        return Err(CopyError::ExtractionPointNotDirectory {
            path: to_path.to_string(),
        });
    }
    let dir = dest.directory(to_path)?;
    extract(input, &dir, to.policy(options))
}

/// A writer that counts what goes through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(data)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Archives the entry `source` under the name `root_name`, and all below it.
fn write_archive(source: &Located, root_name: &Path, out: impl Write) -> Result<(), CopyError> {
    let mut writer = ArchiveWriter {
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        kind: TreeKind::Merged,
        exclude: std::collections::HashSet::new(),
    };
    writer.append(source.dir.as_raw_fd(), &source.name, root_name, true)?;
    writer
        .builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io_error(
            "writing the archive of",
            root_name.display().to_string(),
        ))
}

/// A tar writer walking a tree by descriptors: never by joined paths, which
/// would follow a link a running guest swaps in for a directory.
struct ArchiveWriter<W: Write> {
    builder: tar::Builder<W>,
    /// Files with several links, by (device, inode): the first name archived.
    links: HashMap<(u64, u64), PathBuf>,
    /// Whether the tree is an overlay upper directory, whose whiteouts and
    /// opaque directories become OCI's.
    kind: TreeKind,
    /// Entries (by archive name) left out, with all below them.
    exclude: std::collections::HashSet<PathBuf>,
}

/// The overlay private xattr that marks an opaque directory.
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// Archives everything below the directory `root` (entries named relative
/// to it, the root itself left out), by descriptors: a running guest
/// swapping a directory for a link, or a file for a FIFO or a device,
/// leads the walk nowhere. For an overlay upper directory
/// ([`TreeKind::Upper`]) whiteouts become `.wh.NAME` files and opaque
/// directories get `.wh..wh..opq`, as OCI layers have them.
pub fn archive_tree(
    root: &Path,
    kind: TreeKind,
    exclude: std::collections::HashSet<PathBuf>,
    out: impl Write,
) -> Result<(), CopyError> {
    let dir = open_host_dir(root, libc::O_RDONLY)?;
    let mut writer = ArchiveWriter {
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        kind,
        exclude,
    };
    writer.append_below(DirStack::new(dir, PathBuf::new())?)?;
    let shown = root.display().to_string();
    writer
        .builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io_error("writing the archive of", shown))
}

/// Directories gone through without recursion (a guest may nest them
/// deeply): the open directories on the way down, each with its names and
/// the next one to give.
struct DirStack {
    frames: Vec<(OwnedFd, PathBuf, Vec<CString>, usize)>,
}

impl DirStack {
    /// Starts in `dir`, whose entries are named below `path`.
    fn new(dir: OwnedFd, path: PathBuf) -> Result<Self, CopyError> {
        let mut stack = Self { frames: Vec::new() };
        stack.descend(dir, path)?;
        Ok(stack)
    }

    /// The next entry: the directory holding it, its name, its path.
    fn next(&mut self) -> Option<(RawFd, CString, PathBuf)> {
        loop {
            let (dir, prefix, names, next) = self.frames.last_mut()?;
            match names.get(*next) {
                Some(name) => {
                    *next += 1;
                    return Some((
                        dir.as_raw_fd(),
                        name.clone(),
                        prefix.join(OsStr::from_bytes(name.to_bytes())),
                    ));
                }
                None => {
                    self.frames.pop();
                }
            }
        }
    }

    /// Goes through `dir` (named `path`) before what is left here.
    fn descend(&mut self, dir: OwnedFd, path: PathBuf) -> Result<(), CopyError> {
        if self.frames.len() >= MAX_TREE_DEPTH {
            return Err(CopyError::TooDeep {
                path: path.display().to_string(),
            });
        }
        let names =
            fd::read_dir_names(&dir).map_err(io_error("reading", path.display().to_string()))?;
        self.frames.push((dir, path, names, 0));
        Ok(())
    }
}

/// One entry of a tree [`walk`] visits.
pub struct WalkEntry<'a> {
    /// Its path below the root.
    pub path: &'a Path,
    /// Its `lstat`.
    pub stat: &'a libc::stat,
}

/// Visits everything below the directory `root` (the root left out),
/// parents before children, by descriptors (see [`archive_tree`]).
pub fn walk(root: &Path, visit: &mut dyn FnMut(WalkEntry<'_>)) -> Result<(), CopyError> {
    let mut stack = DirStack::new(open_host_dir(root, libc::O_RDONLY)?, PathBuf::new())?;
    while let Some((dir, child, path)) = stack.next() {
        // Gone meanwhile (a running guest): nothing to visit.
        let Some(stat) = fd::fstatat(dir, &child, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(io_error("inspecting", path.display().to_string()))?
        else {
            continue;
        };
        visit(WalkEntry {
            path: &path,
            stat: &stat,
        });
        if !fd::is_dir(&stat) {
            continue;
        }
        match fd::openat(
            dir,
            &child,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(opened) => stack.descend(opened, path)?,
            // Swapped for something else meanwhile: not followed.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) => {}
            Err(err) => return Err(io_error("opening", path.display().to_string())(err)),
        }
    }
    Ok(())
}

/// Whether `path` (relative) exists in the tree at `root`, resolved inside
/// it as the guest would (its links stay in it), without following a last
/// link.
pub fn exists_in(root: &OwnedFd, path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    fd::openat2(
        root.as_raw_fd(),
        &path,
        libc::O_PATH | libc::O_NOFOLLOW,
        fd::RESOLVE_IN_ROOT | fd::RESOLVE_NO_MAGICLINKS,
    )
    .is_ok()
}

/// Opens a trusted host directory (an image layer) to resolve paths in.
pub fn open_dir(path: &Path) -> Result<OwnedFd, CopyError> {
    open_host_dir(path, libc::O_PATH)
}

/// Opens the host directory `path` (given by the host, not a guest) with
/// `flags` besides `O_DIRECTORY`.
fn open_host_dir(path: &Path, flags: libc::c_int) -> Result<OwnedFd, CopyError> {
    let shown = path.display().to_string();
    let c_path =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| CopyError::BadPath(shown.clone()))?;
    fd::openat(libc::AT_FDCWD, &c_path, flags | libc::O_DIRECTORY, 0)
        .map_err(io_error("opening", shown))
}

fn header_for(stat: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(stat.st_mode & 0o7777);
    header.set_uid(stat.st_uid.into());
    header.set_gid(stat.st_gid.into());
    header.set_mtime(stat.st_mtime.max(0) as u64);
    header.set_size(0);
    header
}

impl<W: Write> ArchiveWriter<W> {
    /// Archives `name` in `dir` as `archive_name`.
    fn append(
        &mut self,
        dir: RawFd,
        name: &CStr,
        archive_name: &Path,
        root: bool,
    ) -> Result<(), CopyError> {
        let Some(opened) = self.append_entry(dir, name, archive_name, root)? else {
            return Ok(());
        };
        self.append_below(DirStack::new(opened, archive_name.to_path_buf())?)
    }

    /// Archives everything `stack` goes through, without recursion (a
    /// guest may nest directories deeply).
    fn append_below(&mut self, mut stack: DirStack) -> Result<(), CopyError> {
        while let Some((dir, child, child_name)) = stack.next() {
            if let Some(opened) = self.append_entry(dir, &child, &child_name, false)? {
                stack.descend(opened, child_name)?;
            }
        }
        Ok(())
    }

    /// Archives the one entry `name` in `dir` as `archive_name`; for a
    /// directory, returns it opened, for the caller to go through.
    fn append_entry(
        &mut self,
        dir: RawFd,
        name: &CStr,
        archive_name: &Path,
        root: bool,
    ) -> Result<Option<OwnedFd>, CopyError> {
        if self.exclude.contains(archive_name) {
            return Ok(None);
        }
        let shown = || archive_name.display().to_string();
        let Some(stat) = fd::fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(io_error("inspecting", shown()))?
        else {
            if root {
                return Err(CopyError::NotFound {
                    path: shown(),
                    container: None,
                });
            }
            // Removed (by a running guest) since its directory was read.
            tracing::debug!(entry = %shown(), "vanished while archiving");
            return Ok(None);
        };
        match fd::file_type(stat.st_mode) {
            libc::S_IFDIR => {
                let opened = match fd::openat(
                    dir,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                ) {
                    Ok(opened) => opened,
                    Err(err)
                        if !root
                            && matches!(
                                err.raw_os_error(),
                                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                            ) =>
                    {
                        tracing::debug!(entry = %shown(), "changed while archiving");
                        return Ok(None);
                    }
                    Err(err) => return Err(io_error("opening", shown())(err)),
                };
                let stat = fd::fstat(&opened).map_err(io_error("inspecting", shown()))?;
                let mut header = header_for(&stat, tar::EntryType::Directory);
                self.builder
                    .append_data(&mut header, archive_name, std::io::empty())
                    .map_err(io_error("archiving", shown()))?;
                if self.kind == TreeKind::Upper && is_opaque(&opened) {
                    self.append_empty(&stat, &archive_name.join(".wh..wh..opq"))?;
                }
                return Ok(Some(opened));
            }
            libc::S_IFREG => {
                if stat.st_nlink > 1 {
                    let key = (stat.st_dev, stat.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut header = header_for(&stat, tar::EntryType::Link);
                        self.builder
                            .append_link(&mut header, archive_name, first)
                            .map_err(io_error("archiving", shown()))?;
                        return Ok(None);
                    }
                    self.links.insert(key, archive_name.to_path_buf());
                }
                // O_NONBLOCK: a FIFO swapped in meanwhile must not hang us.
                let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
                let opened = match fd::openat(dir, name, flags, 0) {
                    Ok(opened) => opened,
                    Err(err)
                        if !root
                            && matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) =>
                    {
                        tracing::debug!(entry = %shown(), "changed while archiving");
                        return Ok(None);
                    }
                    Err(err) => return Err(io_error("opening", shown())(err)),
                };
                let stat = fd::fstat(&opened).map_err(io_error("inspecting", shown()))?;
                if fd::file_type(stat.st_mode) != libc::S_IFREG {
                    tracing::debug!(entry = %shown(), "changed while archiving");
                    return Ok(None);
                }
                let size = u64::try_from(stat.st_size).unwrap_or(0);
                let mut header = header_for(&stat, tar::EntryType::Regular);
                header.set_size(size);
                // A file a running guest shortens meanwhile is padded, so
                // the entry keeps the size its header says.
                let data = std::fs::File::from(opened)
                    .take(size)
                    .chain(std::io::repeat(0))
                    .take(size);
                self.builder
                    .append_data(&mut header, archive_name, data)
                    .map_err(io_error("archiving", shown()))?;
            }
            libc::S_IFLNK => {
                let target = match fd::readlinkat(dir, name) {
                    Ok(target) => target,
                    Err(err)
                        if !root
                            && matches!(err.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) =>
                    {
                        return Ok(None)
                    }
                    Err(err) => return Err(io_error("reading the link", shown())(err)),
                };
                let mut header = header_for(&stat, tar::EntryType::Symlink);
                self.builder
                    .append_link(
                        &mut header,
                        archive_name,
                        Path::new(OsStr::from_bytes(&target)),
                    )
                    .map_err(io_error("archiving", shown()))?;
            }
            libc::S_IFCHR if self.kind == TreeKind::Upper && stat.st_rdev == 0 => {
                let mut whiteout = std::ffi::OsString::from(".wh.");
                whiteout.push(OsStr::from_bytes(name.to_bytes()));
                self.append_empty(&stat, &archive_name.with_file_name(whiteout))?;
            }
            kind @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
                let entry_type = match kind {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut header = header_for(&stat, entry_type);
                header
                    .set_device_major(libc::major(stat.st_rdev))
                    .and_then(|()| header.set_device_minor(libc::minor(stat.st_rdev)))
                    .and_then(|()| {
                        self.builder
                            .append_data(&mut header, archive_name, std::io::empty())
                    })
                    .map_err(io_error("archiving", shown()))?;
            }
            // Sockets have no tar form (Docker leaves them out too).
            _ => tracing::debug!(entry = %shown(), "not archiving a socket"),
        }
        Ok(None)
    }

    /// An empty regular file (an OCI whiteout marker), owned and timed as `like`.
    fn append_empty(&mut self, like: &libc::stat, archive_name: &Path) -> Result<(), CopyError> {
        let mut header = header_for(like, tar::EntryType::Regular);
        header.set_mode(0o644);
        self.builder
            .append_data(&mut header, archive_name, std::io::empty())
            .map_err(io_error("archiving", archive_name.display().to_string()))
    }
}

/// Whether overlayfs marked the open directory opaque.
fn is_opaque(dir: &OwnedFd) -> bool {
    let mut value = [0u8; 2];
    // SAFETY: fgetxattr writes at most `value.len()` bytes into `value`.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            OPAQUE_XATTR.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Who extracted files belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The archive's uid and gid (`-a`).
    Keep,
    /// uid and gid 0 (into a container).
    Root,
    /// Whoever runs `cp` (onto the host).
    Caller,
}

/// How an archive is extracted.
#[derive(Debug, Clone, Copy)]
struct Policy {
    owner: Owner,
    /// Onto the host, from a guest: no set-user/group-ID bits, no devices.
    host_bound: bool,
    /// The destination's ids are shifted: files are written as, and given
    /// to, these host ids.
    ids: Option<IdRange>,
}

impl Policy {
    fn owner_of(&self, header: &tar::Header) -> std::io::Result<Option<(u32, u32)>> {
        Ok(match self.owner {
            Owner::Keep => {
                let id = |value: u64| {
                    u32::try_from(value)
                        .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))
                };
                Some((
                    self.host_id(id(header.uid()?)?)?,
                    self.host_id(id(header.gid()?)?)?,
                ))
            }
            Owner::Root => Some((self.host_id(0)?, self.host_id(0)?)),
            Owner::Caller => None,
        })
    }

    /// The host id of the destination's `id`.
    fn host_id(&self, id: u32) -> std::io::Result<u32> {
        match self.ids {
            Some(range) => range.to_host(id).ok_or_else(|| {
                std::io::Error::other(format!(
                    "id {id} is not one the container maps (0 to {})",
                    crate::idmap::ID_COUNT - 1
                ))
            }),
            None => Ok(id),
        }
    }

    /// The permission bits a non-directory gets.
    fn file_mode(&self, mode: u32) -> libc::mode_t {
        let mode = mode & 0o7777;
        if self.host_bound {
            mode & !(libc::S_ISUID | libc::S_ISGID)
        } else {
            mode
        }
    }
}

/// An archive entry's name as components below the destination: `/` and
/// `.` dropped, `..` refused.
fn archive_components(name: &[u8]) -> Option<Vec<CString>> {
    let mut components = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            _ => components.push(CString::new(part).ok()?),
        }
    }
    Some(components)
}

/// The directory `components` below `dest`, never through a symbolic link;
/// missing ones are made when `create` says so.
fn open_beneath(
    dest: &OwnedFd,
    components: &[CString],
    create: Option<Policy>,
    entry: &str,
) -> Result<OwnedFd, CopyError> {
    let mut current = fd::openat(dest.as_raw_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(io_error("opening the destination of", entry))?;
    let resolve = fd::RESOLVE_BENEATH | fd::RESOLVE_NO_SYMLINKS | fd::RESOLVE_NO_MAGICLINKS;
    for component in components {
        let open = |dir: &OwnedFd| {
            fd::openat2(
                dir.as_raw_fd(),
                component,
                libc::O_PATH | libc::O_DIRECTORY,
                resolve,
            )
        };
        let opened = match open(&current) {
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) && create.is_some() => {
                match fd::mkdirat(current.as_raw_fd(), component, 0o755) {
                    Err(err) if err.raw_os_error() != Some(libc::EEXIST) => {
                        return Err(io_error("creating a directory for", entry)(err))
                    }
                    _ => {}
                }
                if let Some(
                    policy @ Policy {
                        owner: Owner::Root, ..
                    },
                ) = create
                {
                    let root = policy
                        .host_id(0)
                        .map_err(io_error("changing the owner of a directory for", entry))?;
                    fd::lchownat(current.as_raw_fd(), component, root, root)
                        .map_err(io_error("changing the owner of a directory for", entry))?;
                }
                open(&current)
            }
            other => other,
        };
        current = opened.map_err(|err| match err.raw_os_error() {
            Some(libc::ENOTDIR | libc::ELOOP | libc::EXDEV) => CopyError::ParentNotDirectory {
                entry: entry.to_string(),
                component: String::from_utf8_lossy(component.to_bytes()).into_owned(),
            },
            _ => CopyError::Io {
                what: "opening a directory for",
                path: entry.to_string(),
                source: err,
            },
        })?;
    }
    Ok(current)
}

/// Removes `name` in `dir`, a whole tree if it is a directory, without
/// following links.
fn remove_tree(dir: RawFd, name: &CStr, stat: &libc::stat, entry: &str) -> Result<(), CopyError> {
    if fd::is_dir(stat) {
        let opened = fd::openat(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(io_error("opening, to replace it,", entry))?;
        for child in
            fd::read_dir_names(&opened).map_err(io_error("reading, to replace it,", entry))?
        {
            if let Some(child_stat) =
                fd::fstatat(opened.as_raw_fd(), &child, libc::AT_SYMLINK_NOFOLLOW)
                    .map_err(io_error("inspecting", entry))?
            {
                remove_tree(opened.as_raw_fd(), &child, &child_stat, entry)?;
            }
        }
        fd::unlinkat(dir, name, libc::AT_REMOVEDIR)
            .map_err(io_error("removing, to replace it,", entry))
    } else {
        fd::unlinkat(dir, name, 0).map_err(io_error("removing, to replace it,", entry))
    }
}

/// Extracts a tar archive into the directory `dest` under `policy`.
fn extract(input: impl Read, dest: &OwnedFd, policy: Policy) -> Result<(), CopyError> {
    let Some(ids) = policy.ids else {
        return extract_entries(input, dest, policy);
    };
    // Written as the range's root, whose files are the container's root's.
    let identity =
        FsIdentity::of(ids).map_err(io_error("taking the ids of", "the container's root"))?;
    // SAFETY: this thread is root's, and does nothing else until the
    // extraction ends (the archive is produced on another).
    unsafe { identity.scope(|| extract_entries(input, dest, policy)) }
        .map_err(io_error("taking the ids of", "the container's root"))?
}

/// [`extract`]'s work, as the identity it chose.
fn extract_entries(input: impl Read, dest: &OwnedFd, policy: Policy) -> Result<(), CopyError> {
    let mut archive = tar::Archive::new(input);
    // Directories get their times last: what goes into them changes them.
    let mut directory_times: Vec<(Vec<CString>, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(io_error("reading", "the archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(io_error("reading", "the archive"))?;
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let components = archive_components(&raw_name).ok_or_else(|| CopyError::UnsafeEntry {
            entry: shown.clone(),
        })?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let bad_header = io_error("reading the header of", shown.clone());
        let mode = header.mode().map_err(bad_header)?;
        let mtime = i64::try_from(
            header
                .mtime()
                .map_err(io_error("reading the header of", shown.clone()))?,
        )
        .unwrap_or(0);
        let owner = policy
            .owner_of(&header)
            .map_err(io_error("reading the owner of", shown.clone()))?;
        let Some((name, parents)) = components.split_last() else {
            // The archive's root (`.`): the destination directory itself.
            if kind.is_dir() {
                let dir = fd::openat(
                    dest.as_raw_fd(),
                    c".",
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
                .map_err(io_error("opening", shown.clone()))?;
                apply_owner_and_mode(&dir, owner, mode & 0o7777, &shown)?;
                directory_times.push((Vec::new(), mtime));
            }
            continue;
        };
        let parent = open_beneath(dest, parents, Some(policy), &shown)?;
        let parent_fd = parent.as_raw_fd();
        let existing = fd::fstatat(parent_fd, name, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(io_error("inspecting", shown.clone()))?;
        let keep_existing_dir = kind.is_dir() && existing.as_ref().is_some_and(fd::is_dir);
        if let (Some(stat), false) = (existing.as_ref(), keep_existing_dir) {
            // As Docker: what is in the way goes, unless both are directories.
            // (A file is replaced, not rewritten: a running guest reading
            // it meanwhile sees the old or the new one, never a mix; it may
            // see the old one until virtiofsd's one-second entry timeout.)
            remove_tree(parent_fd, name, stat, &shown)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !keep_existing_dir {
                    fd::mkdirat(parent_fd, name, 0o700)
                        .map_err(io_error("creating", shown.clone()))?;
                }
                let dir = fd::openat(
                    parent_fd,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(io_error("opening", shown.clone()))?;
                apply_owner_and_mode(&dir, owner, mode & 0o7777, &shown)?;
                directory_times.push((components.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                let file = fd::openat(parent_fd, name, flags, 0o600)
                    .map_err(io_error("creating", shown.clone()))?;
                let mut file = std::fs::File::from(file);
                std::io::copy(&mut entry, &mut file).map_err(io_error("writing", shown.clone()))?;
                // chown before chmod: chown clears set-user-ID bits.
                apply_owner_and_mode(&file, owner, policy.file_mode(mode), &shown)?;
                fd::set_times(&file, mtime)
                    .map_err(io_error("setting the times of", shown.clone()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| CopyError::UnsafeEntry {
                        entry: shown.clone(),
                    })?;
                let target =
                    CString::new(target.into_owned()).map_err(|_| CopyError::UnsafeEntry {
                        entry: shown.clone(),
                    })?;
                fd::symlinkat(&target, parent_fd, name)
                    .map_err(io_error("creating", shown.clone()))?;
                if let Some((uid, gid)) = owner {
                    fd::lchownat(parent_fd, name, uid, gid)
                        .map_err(io_error("changing the owner of", shown.clone()))?;
                }
                fd::set_times_at(parent_fd, name, mtime)
                    .map_err(io_error("setting the times of", shown.clone()))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| CopyError::UnsafeEntry {
                        entry: shown.clone(),
                    })?;
                let target_components =
                    archive_components(&target).ok_or_else(|| CopyError::UnsafeEntry {
                        entry: shown.clone(),
                    })?;
                let Some((target_name, target_parents)) = target_components.split_last() else {
                    return Err(CopyError::UnsafeEntry { entry: shown });
                };
                let target_dir = open_beneath(dest, target_parents, None, &shown)?;
                fd::linkat(target_dir.as_raw_fd(), target_name, parent_fd, name)
                    .map_err(io_error("linking", shown.clone()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let type_bits = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if policy.host_bound && type_bits != libc::S_IFIFO {
                    tracing::warn!(entry = %shown, "not copying a device node from a container onto the host");
                    continue;
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                fd::mknodat(
                    parent_fd,
                    name,
                    type_bits | 0o600,
                    libc::makedev(major, minor),
                )
                .map_err(io_error("creating", shown.clone()))?;
                let node = fd::openat(parent_fd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                    .map_err(io_error("opening", shown.clone()))?;
                let stat = fd::fstat(&node).map_err(io_error("inspecting", shown.clone()))?;
                if fd::file_type(stat.st_mode) != type_bits {
                    return Err(io_error("creating", shown)(
                        std::io::Error::from_raw_os_error(libc::EEXIST),
                    ));
                }
                if let Some((uid, gid)) = owner {
                    fd::fchown(&node, uid, gid)
                        .map_err(io_error("changing the owner of", shown.clone()))?;
                }
                fd::chmod_path_fd(&node, policy.file_mode(mode))
                    .map_err(io_error("changing the mode of", shown.clone()))?;
                fd::set_times_at(parent_fd, name, mtime)
                    .map_err(io_error("setting the times of", shown.clone()))?;
            }
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "skipping an archive entry of this kind")
            }
        }
    }
    for (components, mtime) in directory_times.iter().rev() {
        let opened = open_beneath(dest, components, None, "").and_then(|dir| {
            fd::openat(dir.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(io_error("opening", ""))
        });
        match opened.map(|dir| fd::set_times(&dir, *mtime)) {
            Ok(Ok(())) => {}
            // Changed meanwhile (a running guest): its times are its own.
            Ok(Err(err)) => tracing::debug!(%err, "setting a directory's times"),
            Err(err) => tracing::debug!(%err, "reopening a directory to set its times"),
        }
    }
    Ok(())
}

fn apply_owner_and_mode(
    file: &impl AsRawFd,
    owner: Option<(u32, u32)>,
    mode: libc::mode_t,
    shown: &str,
) -> Result<(), CopyError> {
    if let Some((uid, gid)) = owner {
        fd::fchown(file, uid, gid).map_err(io_error("changing the owner of", shown))?;
    }
    fd::fchmod(file, mode).map_err(io_error("changing the mode of", shown))
}

/// The root file system of running container `name`, as its virtiofsd
/// serves it: virtiofsd (`--sandbox=namespace`) forks a child that pivots
/// into the share directory, whose `rootfs` is the read-write overlay. If
/// that virtiofsd is unprivileged, the tree's ids are its range's.
pub fn running_rootfs(virtiofsd_pid: i64, name: &str) -> Result<Tree, CopyError> {
    let pid = u32::try_from(virtiofsd_pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| CopyError::Io {
            what: "finding virtiofsd",
            path: virtiofsd_pid.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ESRCH),
        })?;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let candidates = children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .chain(std::iter::once(pid));
    for candidate in candidates {
        let comm = std::fs::read_to_string(format!("/proc/{candidate}/comm")).unwrap_or_default();
        if comm.trim_end() != "virtiofsd" {
            continue;
        }
        let path = CString::new(format!("/proc/{candidate}/root/rootfs"))
            .map_err(|_| CopyError::BadPath(candidate.to_string()))?;
        let Ok(root) = fd::openat(libc::AT_FDCWD, &path, libc::O_PATH | libc::O_DIRECTORY, 0)
        else {
            continue;
        };
        if fd::fs_type(&root).ok() == Some(fd::OVERLAYFS_SUPER_MAGIC) {
            let ids = IdRange::of_process(candidate).map_err(io_error(
                "reading the user namespace of",
                format!("/proc/{candidate}"),
            ))?;
            tracing::debug!(pid = candidate, ?ids, "writing through virtiofsd's overlay");
            let mut tree = Tree::container(root, name);
            tree.ids = ids;
            return Ok(tree);
        }
    }
    Err(CopyError::Io {
        what: "finding the container's file system in virtiofsd",
        path: format!("/proc/{pid}"),
        source: std::io::Error::from_raw_os_error(libc::ENOENT),
    })
}

#[cfg(test)]
mod tests;
