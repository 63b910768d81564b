//! COPY and ADD: sources from the context (resolved inside it, filtered by
//! `.dockerignore`, wildcards expanded) or from a previous stage's layers
//! (`--from`), the destination resolved against the stage's WORKDIR as
//! Docker resolves it, and one layer made of them on the host, no VM.

use super::cache;
use super::context::{self, CopyPlan, Source};
use super::dockerfile::Instruction;
use super::step::{commit_options, Builder};
use super::words::{expand, expand_words};
use super::BuildError;
use std::path::{Path, PathBuf};

impl Builder<'_> {
    pub(super) fn copy(&mut self, instruction: &Instruction) -> Result<(), BuildError> {
        instruction.check_flags(&["from", "chown", "chmod", "link"])?;
        let add = instruction.keyword == "ADD";
        let vars = self.vars();
        let mut words = match instruction.json_array() {
            Some(list) => list
                .iter()
                .map(|w| expand(w, &vars))
                .collect::<Result<Vec<_>, _>>()?,
            None => expand_words(&instruction.rest, &vars)?,
        };
        if words.len() < 2 {
            return Err(instruction.error(format!(
                "{} requires at least two arguments",
                instruction.keyword
            )));
        }
        let dest = words.pop().unwrap_or_default();
        let stage = self.stage().clone();
        let owner = match instruction.flag("chown") {
            Some(chown) => {
                let layers = match &stage.image {
                    Some(id) => self.layers_of(id)?,
                    None => Vec::new(),
                };
                Some(resolve_chown(&expand(chown, &vars)?, &layers).map_err(|e| {
                    instruction.error(format!(
                        "unable to convert uid/gid chown string to host mapping: {e}"
                    ))
                })?)
            }
            None => None,
        };
        let workdir = stage.workdir();
        let mut dest_path = Path::new(&workdir)
            .join(&dest)
            .to_string_lossy()
            .into_owned();
        if (dest.ends_with('/') || dest == "." || dest.ends_with("/.")) && !dest_path.ends_with('/')
        {
            dest_path.push('/');
        }
        let (sources, from_context) = match instruction.flag("from") {
            Some(from) => (self.stage_sources(instruction, from, &words)?, false),
            None => {
                for source in &words {
                    if add && (source.contains("://") || source.starts_with("git@")) {
                        return Err(instruction.error(format!(
                            "ADD of a URL ({source}) is not supported by hull build: download it in a RUN step"
                        )));
                    }
                }
                (self.context_sources(&words)?, true)
            }
        };
        let context = if from_context {
            self.options.context.as_ref()
        } else {
            None
        };
        let plan = CopyPlan::new(&sources, &dest_path, context, owner, add)?;
        let digest = plan.digest()?;
        let kind = match sources.as_slice() {
            [one] if one.path.is_dir() => "dir",
            [_] => "file",
            _ => "multi",
        };
        let created_by = format!(
            "{} #(nop) {} {kind}:{} in {dest_path} ",
            self.shell().join(" "),
            instruction.keyword,
            digest.hex()
        );
        let parent = stage.image.clone().unwrap_or_default();
        let key = cache::key(&parent, &instruction.text(), Some(&digest));
        if let Some(id) = self.cached(&key) {
            self.stage().image = Some(id);
            return Ok(());
        }
        let id = self.with_scratch_layer(
            &digest.hex()[..12],
            |out| plan.write_layer(out),
            |builder, layer| {
                let base = match &stage.image {
                    Some(id) => Some(builder.images.resolve(id)?),
                    None => None,
                };
                let options = commit_options(&created_by, &stage.config);
                Ok(builder
                    .images
                    .commit(base.as_ref(), Some(layer), &options, None)?)
            },
        )?;
        self.done(&key, &id);
        Ok(())
    }

    /// COPY's sources in the context, resolved inside it.
    fn context_sources(&self, words: &[String]) -> Result<Vec<Source>, BuildError> {
        let context = self.options.context.as_ref().ok_or_else(|| {
            BuildError::Context("COPY needs a build context: none was given (stdin)".to_owned())
        })?;
        let mut sources = Vec::new();
        for word in words {
            let rel = context::clean(word)?;
            let matches = if has_wildcard(word) {
                glob_in(context.root(), &rel)?
            } else {
                vec![rel]
            };
            for rel in matches {
                if context.ignored(&rel) {
                    return Err(BuildError::Context(format!(
                        "COPY failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                        rel.display()
                    )));
                }
                let resolved = context::resolve(context.root(), &rel)?;
                let path = context.root().join(&resolved);
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(BuildError::Context(format!(
                        "COPY failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist",
                        rel.display()
                    )));
                }
                sources.push(Source {
                    path,
                    context_path: Some(rel),
                });
            }
        }
        if sources.is_empty() {
            return Err(BuildError::Context(
                "COPY failed: no source files were specified".to_owned(),
            ));
        }
        Ok(sources)
    }

    /// COPY --from's sources: in a previous stage's (or an image's)
    /// layers, the topmost layer holding each path.
    fn stage_sources(
        &self,
        instruction: &Instruction,
        from: &str,
        words: &[String],
    ) -> Result<Vec<Source>, BuildError> {
        let image = match self.find_stage(from) {
            Some(stage) => stage.image.clone().ok_or_else(|| {
                instruction.error(format!("stage {from} has no files (FROM scratch)"))
            })?,
            None => self.images.resolve(from)?.id.to_string(),
        };
        let mut layers = self.layers_of(&image)?;
        layers.reverse();
        let mut sources = Vec::new();
        for word in words {
            let rel = context::clean(word)?;
            let found = layers.iter().find_map(|layer| {
                let resolved = context::resolve(layer, &rel).ok()?;
                let path = layer.join(resolved);
                std::fs::symlink_metadata(&path).ok().map(|_| path)
            });
            match found {
                Some(path) => sources.push(Source {
                    path,
                    context_path: None,
                }),
                None => {
                    return Err(BuildError::Context(format!(
                        "COPY failed: stat {word}: file does not exist"
                    )))
                }
            }
        }
        Ok(sources)
    }

    /// The layer directories of image `id`, bottom first.
    pub(super) fn layers_of(&self, id: &str) -> Result<Vec<PathBuf>, BuildError> {
        let image = self.images.resolve(id)?;
        Ok(image
            .diff_ids
            .iter()
            .map(|d| self.images.layer_dir(d))
            .collect())
    }
}

/// `--chown=user[:group]`: names looked up in the image's /etc/passwd and
/// /etc/group, numbers taken as they are; a user alone gives its uid as the
/// gid too, as Docker does.
fn resolve_chown(text: &str, layers: &[PathBuf]) -> Result<(u64, u64), String> {
    let (user, group) = text.split_once(':').unwrap_or((text, ""));
    let id_in = |file: &str, what: &str, name: &str| -> Result<u64, String> {
        if let Ok(id) = name.parse() {
            return Ok(id);
        }
        let accounts = crate::spec::read_image_file(layers, file).unwrap_or_default();
        crate::spec::id_of(&accounts, name)
            .map(u64::from)
            .ok_or_else(|| format!("can't find {what} for {name}: no such {what}: {name}"))
    };
    if user.is_empty() {
        return Err(format!("invalid chown string {text:?}"));
    }
    let uid = id_in("etc/passwd", "uid", user)?;
    let gid = match group {
        "" => uid,
        group => id_in("etc/group", "gid", group)?,
    };
    Ok((uid, gid))
}

fn has_wildcard(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// The context's paths matching `pattern` (wildcards per segment).
fn glob_in(root: &Path, pattern: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut found = vec![PathBuf::new()];
    for segment in pattern.components() {
        let segment = segment.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for dir in &found {
            if !has_wildcard(&segment) {
                next.push(dir.join(&segment));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| crate::glob::matches(&segment, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_and_wildcards() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_chown("1:2", &[]), Ok((1, 2)));
        assert_eq!(resolve_chown("7", &[]), Ok((7, 7)));
        assert!(resolve_chown("app", &[])
            .unwrap_err()
            .contains("no such uid: app"));
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(
            layer.join("etc/passwd"),
            "app:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(layer.join("etc/group"), "staff:x:50:app\n").unwrap();
        let layers = [layer];
        assert_eq!(resolve_chown("app", &layers), Ok((1000, 1000)));
        assert_eq!(resolve_chown("app:staff", &layers), Ok((1000, 50)));
        assert_eq!(resolve_chown("0:staff", &layers), Ok((0, 50)));
        assert!(resolve_chown("app:nogroup", &layers)
            .unwrap_err()
            .contains("no such gid"));
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.txt", "c.md"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(
            glob_in(dir.path(), Path::new("*.txt")).unwrap(),
            vec![PathBuf::from("a.txt"), PathBuf::from("b.txt")]
        );
    }
}
