//! WORKDIR: the stage's working directory, resolved against the one before
//! it, and made in a layer of its own when the image lacks it, as Docker
//! makes it (root's, mode 0755, parents too).

use super::context;
use super::dockerfile::Instruction;
use super::step::Builder;
use super::words::expand;
use super::BuildError;
use serde_json::json;
use std::path::{Path, PathBuf};

impl Builder<'_> {
    pub(super) fn workdir(&mut self, instruction: &Instruction) -> Result<(), BuildError> {
        let vars = self.vars();
        let dir = expand(&instruction.rest, &vars)?;
        if dir.is_empty() {
            return Err(instruction.error("WORKDIR requires exactly one argument"));
        }
        let stage = self.stage().clone();
        let base = stage.workdir();
        let joined = Path::new(&base).join(&dir);
        let relative = context::clean(&joined.to_string_lossy()).unwrap_or_default();
        let dir = format!("/{}", relative.display());
        self.stage().config.insert("WorkingDir".into(), json!(dir));
        let created_by = format!("{} #(nop) WORKDIR {dir}", self.shell().join(" "));
        let layers = match &stage.image {
            Some(id) => self.layers_of(id)?,
            None => Vec::new(),
        };
        let missing = missing_dirs(&layers, &relative);
        if missing.is_empty() {
            return self.commit_step(&created_by, None);
        }
        self.with_scratch_layer(
            "workdir",
            |out| write_dirs(out, &missing),
            |builder, layer| builder.commit_step(&created_by, Some(layer)),
        )
    }
}

/// The components of `relative` (a clean path below `/`) that the image
/// made of `layers` (bottom first) lacks, outermost first: the topmost
/// layer holding a component decides, and a whiteout there hides it.
fn missing_dirs(layers: &[PathBuf], relative: &Path) -> Vec<PathBuf> {
    let mut prefix = PathBuf::new();
    let mut missing = Vec::new();
    for component in relative.components() {
        prefix.push(component);
        let present = missing.is_empty()
            && layers.iter().rev().find_map(|layer| {
                let meta = std::fs::symlink_metadata(layer.join(&prefix)).ok()?;
                Some(!is_whiteout(&meta))
            }) == Some(true);
        if !present {
            missing.push(prefix.clone());
        }
    }
    missing
}

/// An overlay whiteout: a character device 0:0.
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// A layer of directories `dirs`, root's, mode 0755.
fn write_dirs(out: impl std::io::Write, dirs: &[PathBuf]) -> Result<(), BuildError> {
    let failed = |e: std::io::Error| BuildError::Context(format!("writing the layer: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(out);
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_mtime(now);
        builder
            .append_data(&mut header, dir, std::io::empty())
            .map_err(failed)?;
    }
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_the_layers_lack() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        std::fs::create_dir_all(lower.join("srv/app")).unwrap();
        std::fs::create_dir_all(lower.join("opt/gone")).unwrap();
        std::fs::create_dir_all(upper.join("opt")).unwrap();
        nix::sys::stat::mknod(
            &upper.join("opt/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let layers = [lower, upper];
        assert!(missing_dirs(&layers, Path::new("srv/app")).is_empty());
        assert_eq!(
            missing_dirs(&layers, Path::new("srv/app/x/y")),
            [PathBuf::from("srv/app/x"), PathBuf::from("srv/app/x/y")]
        );
        assert_eq!(
            missing_dirs(&layers, Path::new("opt/gone")),
            [PathBuf::from("opt/gone")]
        );
        assert_eq!(missing_dirs(&[], Path::new("a")), [PathBuf::from("a")]);
        assert!(missing_dirs(&layers, Path::new("")).is_empty());

        let mut tar = Vec::new();
        write_dirs(&mut tar, &[PathBuf::from("a"), PathBuf::from("a/b")]).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<(String, bool, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let dir = e.header().entry_type().is_dir();
                (path, dir, e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            names,
            [
                ("a".to_owned(), true, 0o755),
                ("a/b".to_owned(), true, 0o755)
            ]
        );
    }
}
