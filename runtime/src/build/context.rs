//! The build context and COPY's sources: paths resolved inside a root
//! (the context directory, or a stage's layer) so that nothing outside it
//! is read, `..` and symlinks that lead out refused; `.dockerignore`
//! patterns as Docker matches them; the files a COPY takes, their digest
//! (the cache's key) and the layer made of them.

use super::BuildError;
use crate::glob;
use crate::image::Digest;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path.
const MAX_SYMLINKS: usize = 40;
/// How deep a copied tree may be.
const MAX_DEPTH: usize = 128;

/// A build context: a directory and its `.dockerignore`.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    ignore: Vec<Pattern>,
}

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

impl Context {
    /// The context at `root`, honouring its `.dockerignore`.
    pub fn open(root: &Path) -> Result<Context, BuildError> {
        let root = root
            .canonicalize()
            .map_err(|e| BuildError::Context(format!("{}: {e}", root.display())))?;
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => parse_ignore(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(BuildError::Context(format!(".dockerignore: {e}"))),
        };
        Ok(Context { root, ignore })
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `.dockerignore` leaves out `rel` (or a directory above it).
    pub fn ignored(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let mut ignored = false;
        for pattern in &self.ignore {
            // A pattern matches a path or any directory above it.
            let hit = (1..=parts.len()).any(|n| glob_segments(&pattern.segments, &parts[..n]));
            if hit {
                ignored = !pattern.exclusion;
            }
        }
        ignored
    }
}

/// Docker's `.dockerignore`: comments, blank lines, `!` exceptions, paths
/// cleaned and taken relative to the context.
fn parse_ignore(text: &str) -> Vec<Pattern> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (exclusion, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let segments: Vec<String> = line
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_owned)
                .collect();
            (!segments.is_empty()).then_some(Pattern {
                segments,
                exclusion,
            })
        })
        .collect()
}

/// Whether `path`'s segments match the pattern's (`**` any number of them).
fn glob_segments(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| glob_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => glob::matches(first, name) && glob_segments(rest, tail),
            None => false,
        },
    }
}

/// `path` made relative and lexically clean; `..` that leaves the root is
/// refused as Docker refuses it.
pub fn clean(path: &str) -> Result<PathBuf, BuildError> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => out.push(name),
            // (The guard pops: a `..` that has a parent to leave is done.)
            Component::ParentDir if !out.pop() => {
                return Err(BuildError::Context(format!(
                    "forbidden path outside the build context: {path}"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Resolves `rel` inside `root`, following symlinks as the root's own
/// (absolute targets from the root); one that leads out is refused.
/// Returns the path relative to `root`.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, BuildError> {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    let escape = || {
        BuildError::Context(format!(
            "forbidden path outside the build context: {} (a symlink leads out of it)",
            rel.display()
        ))
    };
    while let Some(name) = pending.pop() {
        if name == ".." {
            if !done.pop() {
                return Err(escape());
            }
            continue;
        }
        let candidate = done.join(&name);
        match std::fs::symlink_metadata(root.join(&candidate)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(BuildError::Context(format!(
                        "{}: too many levels of symbolic links",
                        rel.display()
                    )));
                }
                let target = std::fs::read_link(root.join(&candidate))
                    .map_err(|e| BuildError::Context(format!("{}: {e}", rel.display())))?;
                if target.is_absolute() {
                    // Absolute targets are the root's own paths.
                    done = PathBuf::new();
                }
                for component in target.components().rev() {
                    match component {
                        Component::Normal(n) => pending.push(n.to_owned()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done = candidate,
        }
    }
    Ok(done)
}

/// One file, directory or symlink a COPY writes.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// Where it is on the host.
    pub source: PathBuf,
    /// Its path in the image, relative to `/` (for an archive ADD
    /// unpacks, the directory it goes into).
    pub dest: PathBuf,
    /// A tar archive ADD unpacks.
    pub extract: bool,
}

/// What one COPY or ADD writes.
#[derive(Debug, Clone, Default)]
pub struct CopyPlan {
    /// The entries, parents first.
    pub entries: Vec<PlanEntry>,
    /// `--chown`: the owner (uid, gid); by default root's (an archive's
    /// entries keep their own).
    pub owner: Option<(u64, u64)>,
}

/// A source of a COPY: a resolved path on the host, and whether its
/// directories are filtered through `.dockerignore` (context sources).
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it is (resolved, inside its root).
    pub path: PathBuf,
    /// Its path relative to the context, for `.dockerignore`; `None` for
    /// a stage's files.
    pub context_path: Option<PathBuf>,
}

impl CopyPlan {
    /// Plans copying `sources` to `dest` (absolute, already joined to the
    /// working directory; a trailing `/` makes it a directory), as Docker
    /// does: a directory's contents go into `dest`, a file goes to `dest`
    /// itself or into it when it is a directory (or several sources).
    /// With `extract` (ADD), tar archives are unpacked into `dest`.
    pub fn new(
        sources: &[Source],
        dest: &str,
        context: Option<&Context>,
        owner: Option<(u64, u64)>,
        extract: bool,
    ) -> Result<CopyPlan, BuildError> {
        let into_dir = dest.ends_with('/') || sources.len() > 1;
        let dest_root = clean(dest)?;
        let mut plan = CopyPlan {
            entries: Vec::new(),
            owner,
        };
        for source in sources {
            let meta = std::fs::symlink_metadata(&source.path)
                .map_err(|e| BuildError::Context(format!("{}: {e}", source.path.display())))?;
            if meta.is_dir() {
                plan.walk(source, &source.path, &dest_root, context, 0)?;
            } else if extract && meta.is_file() && super::archive::is_archive(&source.path) {
                plan.entries.push(PlanEntry {
                    source: source.path.clone(),
                    dest: dest_root.clone(),
                    extract: true,
                });
            } else {
                let name = source.path.file_name().unwrap_or_default();
                let target = if into_dir {
                    dest_root.join(name)
                } else {
                    dest_root.clone()
                };
                if target.as_os_str().is_empty() {
                    return Err(BuildError::Context("cannot copy a file onto /".to_owned()));
                }
                plan.entries.push(PlanEntry {
                    source: source.path.clone(),
                    dest: target,
                    extract: false,
                });
            }
        }
        Ok(plan)
    }

    fn walk(
        &mut self,
        source: &Source,
        dir: &Path,
        dest: &Path,
        context: Option<&Context>,
        depth: usize,
    ) -> Result<(), BuildError> {
        if depth > MAX_DEPTH {
            return Err(BuildError::Context(format!(
                "{}: directories nested too deep",
                dir.display()
            )));
        }
        if !dest.as_os_str().is_empty() {
            self.entries.push(PlanEntry {
                source: dir.to_owned(),
                dest: dest.to_owned(),
                extract: false,
            });
        }
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .and_then(|d| {
                d.map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| BuildError::Context(format!("{}: {e}", dir.display())))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if let (Some(context), Some(base)) = (context, &source.context_path) {
                let rel = base.join(path.strip_prefix(&source.path).unwrap_or(&path));
                if context.ignored(&rel) {
                    continue;
                }
            }
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| BuildError::Context(format!("{}: {e}", path.display())))?;
            if meta.is_dir() {
                self.walk(source, &path, &dest.join(&name), context, depth + 1)?;
            } else {
                self.entries.push(PlanEntry {
                    source: path,
                    dest: dest.join(&name),
                    extract: false,
                });
            }
        }
        Ok(())
    }

    /// The digest of what the plan writes: paths, types, modes, owners,
    /// link targets and contents (not times), for the cache's key.
    pub fn digest(&self) -> Result<Digest, BuildError> {
        let mut hasher = Sha256::new();
        hasher.update(format!("owner {:?}\n", self.owner));
        for entry in &self.entries {
            let meta = lstat(&entry.source)?;
            hasher.update(format!(
                "{}{}\0{:o}\0{}\0",
                if entry.extract { "extract " } else { "" },
                entry.dest.display(),
                meta.mode(),
                meta.len()
            ));
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&entry.source).map_err(io(&entry.source))?;
                hasher.update(target.as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                let mut file = std::fs::File::open(&entry.source).map_err(io(&entry.source))?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = file.read(&mut buf).map_err(io(&entry.source))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
            }
            hasher.update(b"\n");
        }
        let hex = hex::encode(hasher.finalize());
        Digest::from_hex(&hex).map_err(|e| BuildError::Context(e.to_string()))
    }

    /// Writes the plan as an uncompressed layer tarball.
    pub fn write_layer(&self, out: impl Write) -> Result<(), BuildError> {
        let mut builder = tar::Builder::new(out);
        for entry in &self.entries {
            if entry.extract {
                super::archive::append_archive(
                    &mut builder,
                    &entry.source,
                    &entry.dest,
                    self.owner,
                )?;
                continue;
            }
            let meta = lstat(&entry.source)?;
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&meta);
            let (uid, gid) = self.owner.unwrap_or((0, 0));
            header.set_uid(uid);
            header.set_gid(gid);
            header.set_username("").ok();
            header.set_groupname("").ok();
            let kind = meta.file_type();
            let failed = |e: std::io::Error| BuildError::Context(format!("writing the layer: {e}"));
            if kind.is_symlink() {
                let target = std::fs::read_link(&entry.source).map_err(io(&entry.source))?;
                header.set_size(0);
                builder
                    .append_link(&mut header, &entry.dest, &target)
                    .map_err(failed)?;
            } else if kind.is_file() {
                let file = std::fs::File::open(&entry.source).map_err(io(&entry.source))?;
                builder
                    .append_data(&mut header, &entry.dest, file)
                    .map_err(failed)?;
            } else if kind.is_dir() {
                header.set_size(0);
                builder
                    .append_data(&mut header, &entry.dest, std::io::empty())
                    .map_err(failed)?;
            } else if kind.is_char_device() && meta.rdev() == 0 {
                // An overlay whiteout in a stage's layer: nothing to copy.
            } else {
                return Err(BuildError::Context(format!(
                    "{}: cannot copy a special file",
                    entry.source.display()
                )));
            }
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| BuildError::Context(format!("writing the layer: {e}")))
    }
}

fn lstat(path: &Path) -> Result<std::fs::Metadata, BuildError> {
    std::fs::symlink_metadata(path).map_err(io(path))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::Context(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_is_refused() {
        assert!(clean("../etc/passwd").is_err());
        assert!(clean("a/../../b").is_err());
        assert_eq!(clean("/a/./b/../c").unwrap(), PathBuf::from("a/c"));
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink("d", root.join("in")).unwrap();
        std::os::unix::fs::symlink("/d/f", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../etc", root.join("d/out")).unwrap();
        std::os::unix::fs::symlink("/", root.join("d/rootlink")).unwrap();
        assert_eq!(
            resolve(root, Path::new("in/f")).unwrap(),
            PathBuf::from("d/f")
        );
        assert_eq!(
            resolve(root, Path::new("abs")).unwrap(),
            PathBuf::from("d/f")
        );
        assert_eq!(
            resolve(root, Path::new("d/rootlink/d/f")).unwrap(),
            PathBuf::from("d/f")
        );
        let err = resolve(root, Path::new("d/out/passwd")).unwrap_err();
        assert!(
            err.to_string().contains("outside the build context"),
            "{err}"
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, Path::new("loop")).is_err());
    }

    #[test]
    fn dockerignore_as_docker() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".dockerignore"),
            "# comment\n*.log\n/secret\n**/tmp\nbuild/\n!keep.log\n",
        )
        .unwrap();
        let context = Context::open(dir.path()).unwrap();
        let ignored = |p: &str| context.ignored(Path::new(p));
        assert!(ignored("a.log"));
        assert!(!ignored("keep.log"));
        assert!(!ignored("sub/a.log"));
        assert!(ignored("secret"));
        assert!(ignored("secret/inner"));
        assert!(ignored("x/y/tmp/z"));
        assert!(ignored("build/out"));
        assert!(!ignored("src/main.rs"));
    }

    #[test]
    fn copy_plan_and_layer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/sub")).unwrap();
        std::fs::write(root.join("src/a"), b"a").unwrap();
        std::fs::write(root.join("src/sub/skip.log"), b"no").unwrap();
        std::fs::write(root.join(".dockerignore"), "**/*.log\n").unwrap();
        let context = Context::open(root).unwrap();
        let source = |rel: &str| Source {
            path: context.root().join(rel),
            context_path: Some(PathBuf::from(rel)),
        };
        let plan = CopyPlan::new(
            &[source("src")],
            "/app/",
            Some(&context),
            Some((1, 2)),
            false,
        )
        .unwrap();
        let dests: Vec<_> = plan.entries.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(
            dests,
            vec![
                PathBuf::from("app"),
                PathBuf::from("app/a"),
                PathBuf::from("app/sub")
            ]
        );
        let file = CopyPlan::new(&[source("src/a")], "/x/b", Some(&context), None, false).unwrap();
        assert_eq!(file.entries[0].dest, PathBuf::from("x/b"));
        let into = CopyPlan::new(&[source("src/a")], "/x/", Some(&context), None, false).unwrap();
        assert_eq!(into.entries[0].dest, PathBuf::from("x/a"));
        let before = plan.digest().unwrap();
        std::fs::write(root.join("src/a"), b"b").unwrap();
        assert_ne!(before, plan.digest().unwrap());
        let mut tar = Vec::new();
        plan.write_layer(&mut tar).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let owners: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().into_owned(), e.header().uid().unwrap())
            })
            .collect();
        assert_eq!(owners.len(), 3);
        assert!(owners.iter().all(|(_, uid)| *uid == 1));
    }
}
