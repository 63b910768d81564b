//! Each instruction's work, stage by stage: the stage's image and config,
//! Docker's step output (`Step 1/5 : ...`, ` ---> id`, `Using cache`), the
//! cache consulted, and a new image committed per step.

use super::cache::{self, BuildCache};
use super::dockerfile::{Command, Instruction};
use super::words::{expand, expand_words, key_values};
use super::{BuildError, BuildOptions, RunStep, StepRunner};
use crate::image::{CommitOptions, Digest, ImageStore};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// One stage as built so far.
#[derive(Debug, Clone)]
pub(super) struct Stage {
    /// Its `AS` name.
    pub(super) name: Option<String>,
    /// Its current image's id (`None`: `FROM scratch`, nothing yet).
    pub(super) image: Option<String>,
    /// Its image's `config` (Env, Cmd, WorkingDir, ...).
    pub(super) config: Map<String, Value>,
    /// ARGs in scope, with their values.
    pub(super) args: Vec<(String, String)>,
}

impl Stage {
    /// Its working directory (`/` until a WORKDIR or the image sets one).
    pub(super) fn workdir(&self) -> String {
        self.config
            .get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_owned()
    }
}

/// A build in progress.
pub(super) struct Builder<'a> {
    pub(super) images: &'a ImageStore,
    pub(super) options: &'a BuildOptions,
    out: &'a mut dyn Write,
    cache: BuildCache,
    stages: Vec<Stage>,
    /// ARGs declared before the first FROM.
    global_args: Vec<(String, String)>,
    /// Build args a Dockerfile declared.
    used_args: Vec<String>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        images: &'a ImageStore,
        options: &'a BuildOptions,
        out: &'a mut dyn Write,
    ) -> Builder<'a> {
        Builder {
            images,
            options,
            out,
            cache: BuildCache::new(images),
            stages: Vec::new(),
            global_args: Vec::new(),
            used_args: Vec::new(),
        }
    }

    fn say(&mut self, text: impl std::fmt::Display) {
        if !self.options.quiet {
            let _ = writeln!(self.out, "{text}");
            let _ = self.out.flush();
        }
    }

    /// Runs the instructions up to the end of the target stage.
    pub(super) async fn run(
        &mut self,
        runner: &impl StepRunner,
        instructions: &[Instruction],
    ) -> Result<Digest, BuildError> {
        let first_from = instructions
            .iter()
            .position(|i| i.keyword == "FROM")
            .ok_or_else(|| BuildError::Parse("no build stage in current context".to_owned()))?;
        for arg in &instructions[..first_from] {
            if arg.keyword != "ARG" {
                return Err(arg.error(format!(
                    "{} is not allowed before the first FROM",
                    arg.keyword
                )));
            }
            let declared = self.declare_args(arg, &[])?;
            self.global_args.extend(declared);
        }
        let steps = &instructions[first_from..];
        let end = self.target_end(steps)?;
        let steps = &steps[..end];
        for (index, instruction) in steps.iter().enumerate() {
            self.say(format_args!(
                "Step {}/{} : {}",
                index + 1,
                steps.len(),
                instruction.text()
            ));
            self.step(runner, instruction).await?;
        }
        let unused: Vec<&str> = self
            .options
            .build_args
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !self.used_args.iter().any(|u| u == name))
            .collect();
        if !unused.is_empty() {
            eprintln!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
        let image = self
            .stages
            .last()
            .and_then(|s| s.image.clone())
            .ok_or_else(|| {
                BuildError::Invalid("No image was generated. Is your Dockerfile empty?".to_owned())
            })?;
        Ok(self.images.resolve(&image)?.id)
    }

    /// How many instructions (from the first FROM) `--target` builds.
    fn target_end(&self, steps: &[Instruction]) -> Result<usize, BuildError> {
        let Some(target) = &self.options.target else {
            return Ok(steps.len());
        };
        let mut found = false;
        for (index, instruction) in steps.iter().enumerate() {
            if instruction.keyword == "FROM" {
                if found {
                    return Ok(index);
                }
                let words: Vec<&str> = instruction.rest.split_whitespace().collect();
                found = matches!(words.as_slice(), [_, as_, name]
                    if as_.eq_ignore_ascii_case("as") && name.eq_ignore_ascii_case(target));
            }
        }
        if found {
            Ok(steps.len())
        } else {
            Err(BuildError::Invalid(format!(
                "failed to reach build target {target} in Dockerfile"
            )))
        }
    }

    pub(super) fn stage(&mut self) -> &mut Stage {
        // `run` starts with a FROM, which pushes the first stage.
        if self.stages.is_empty() {
            self.stages.push(Stage {
                name: None,
                image: None,
                config: Map::new(),
                args: Vec::new(),
            });
        }
        let last = self.stages.len() - 1;
        &mut self.stages[last]
    }

    /// The variables a stage's words see: its ARGs, then its ENV.
    pub(super) fn vars(&mut self) -> Vec<(String, String)> {
        let stage = self.stage();
        let mut vars = stage.args.clone();
        vars.extend(env_pairs(&stage.config));
        vars
    }

    /// Declares ARGs: values from `--build-arg`, else defaults, else (in
    /// a stage) the global ARG of that name.
    fn declare_args(
        &mut self,
        instruction: &Instruction,
        vars: &[(String, String)],
    ) -> Result<Vec<(String, String)>, BuildError> {
        let mut declared = Vec::new();
        for word in expand_words(&instruction.rest, vars)? {
            let (name, default) = match word.split_once('=') {
                Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                None => (word.clone(), None),
            };
            if name.is_empty() {
                return Err(instruction.error("ARG requires a name"));
            }
            self.used_args.push(name.clone());
            let value = self
                .options
                .build_args
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or(default)
                .or_else(|| {
                    self.global_args
                        .iter()
                        .rev()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.clone())
                });
            declared.push((name, value.unwrap_or_default()));
        }
        if declared.is_empty() {
            return Err(instruction.error("ARG requires exactly one argument"));
        }
        Ok(declared)
    }

    async fn step(
        &mut self,
        runner: &impl StepRunner,
        instruction: &Instruction,
    ) -> Result<(), BuildError> {
        let keyword = instruction.keyword.as_str();
        match keyword {
            "FROM" => return self.from(runner, instruction).await,
            "RUN" => return self.run_step(runner, instruction).await,
            "COPY" | "ADD" => return self.copy(instruction),
            "WORKDIR" => return self.workdir(instruction),
            _ => {}
        }
        let vars = self.vars();
        let shell = self.shell();
        let stage = self.stage();
        let config = &mut stage.config;
        let message = match keyword {
            "ENV" => {
                instruction.check_flags(&[])?;
                let pairs = key_values(&instruction.rest, &vars, true)
                    .map_err(|e| instruction.error(format!("ENV {e}")))?;
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                for (name, value) in &pairs {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != name);
                    env.push(format!("{name}={value}"));
                }
                config.insert("Env".into(), json!(env));
                format!(" ENV {}", pairs_text(&pairs))
            }
            "LABEL" => {
                instruction.check_flags(&[])?;
                let pairs = key_values(&instruction.rest, &vars, false)
                    .map_err(|e| instruction.error(format!("LABEL {e}")))?;
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                if let Some(labels) = labels.as_object_mut() {
                    for (name, value) in &pairs {
                        labels.insert(name.clone(), json!(value));
                    }
                }
                let shown: Vec<String> = pairs
                    .iter()
                    .map(|(n, v)| format!("{n}={}", serde_json::to_string(v).unwrap_or_default()))
                    .collect();
                format!(" LABEL {}", shown.join(" "))
            }
            "USER" => {
                let user = expand(&instruction.rest, &vars)?;
                if user.is_empty() {
                    return Err(instruction.error("USER requires exactly one argument"));
                }
                config.insert("User".into(), json!(user));
                format!(" USER {user}")
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = match instruction.command()? {
                    Command::Exec(list) => list,
                    Command::Shell(text) => shell.iter().cloned().chain([text]).collect(),
                };
                let field = if keyword == "CMD" {
                    "Cmd"
                } else {
                    "Entrypoint"
                };
                config.insert(field.into(), json!(argv));
                if keyword == "ENTRYPOINT" {
                    // As Docker: a new entrypoint drops the base image's command.
                    config.insert("Cmd".into(), Value::Null);
                }
                format!(" {keyword} {}", go_list(&argv))
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for word in expand_words(&instruction.rest, &vars)? {
                    let port = if word.contains('/') {
                        word
                    } else {
                        format!("{word}/tcp")
                    };
                    ports.push(port);
                }
                let exposed = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !exposed.is_object() {
                    *exposed = json!({});
                }
                if let Some(exposed) = exposed.as_object_mut() {
                    for port in &ports {
                        exposed.insert(port.clone(), json!({}));
                    }
                }
                format!(" EXPOSE {}", ports.join(" "))
            }
            "VOLUME" => {
                let paths = match instruction.json_array() {
                    Some(list) => list,
                    None => expand_words(&instruction.rest, &vars)?,
                };
                let volumes = config.entry("Volumes").or_insert_with(|| json!({}));
                if !volumes.is_object() {
                    *volumes = json!({});
                }
                if let Some(volumes) = volumes.as_object_mut() {
                    for path in &paths {
                        volumes.insert(path.clone(), json!({}));
                    }
                }
                format!(" VOLUME {}", go_list(&paths))
            }
            "STOPSIGNAL" => {
                let signal = expand(&instruction.rest, &vars)?;
                config.insert("StopSignal".into(), json!(signal));
                format!(" STOPSIGNAL {signal}")
            }
            "SHELL" => {
                let list = instruction
                    .json_array()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| {
                        instruction.error("SHELL requires the arguments to be in JSON form")
                    })?;
                config.insert("Shell".into(), json!(list));
                format!(" SHELL {}", go_list(&list))
            }
            "ARG" => {
                let declared = self.declare_args(instruction, &vars)?;
                let text: Vec<String> = instruction
                    .rest
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                self.stage().args.extend(declared);
                format!(" ARG {}", text.join(" "))
            }
            "MAINTAINER" => format!(" MAINTAINER {}", instruction.rest),
            other => {
                return Err(instruction.error(format!("{other} is not supported by hull build yet")))
            }
        };
        let created_by = format!("{} #(nop) {message}", shell.join(" "));
        self.commit_config(&created_by)
    }

    /// The stage's SHELL (`/bin/sh -c` by default).
    pub(super) fn shell(&mut self) -> Vec<String> {
        self.stage()
            .config
            .get("Shell")
            .and_then(|s| serde_json::from_value::<Vec<String>>(s.clone()).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// Records a config-only step as an image with no new layer.
    fn commit_config(&mut self, created_by: &str) -> Result<(), BuildError> {
        self.commit_step(created_by, None)
    }

    /// Records a step that changed the stage's config and, with `layer`
    /// (an uncompressed tarball), its files.
    pub(super) fn commit_step(
        &mut self,
        created_by: &str,
        layer: Option<&Path>,
    ) -> Result<(), BuildError> {
        let stage = self.stage().clone();
        let parent = stage.image.clone().unwrap_or_default();
        let config_text = serde_json::to_string(&stage.config).unwrap_or_default();
        let key = cache::key(&parent, &format!("{created_by}\n{config_text}"), None);
        if let Some(id) = self.cached(&key) {
            self.stage().image = Some(id);
            return Ok(());
        }
        let base = match &stage.image {
            Some(id) => Some(self.images.resolve(id)?),
            None => None,
        };
        let options = commit_options(created_by, &stage.config);
        let id = self.images.commit(base.as_ref(), layer, &options, None)?;
        self.done(&key, &id);
        Ok(())
    }

    /// Writes a layer with `write` to a scratch tarball in the image store
    /// (`name` tells it apart), hands its path to `commit`, and removes it
    /// whichever way that went.
    pub(super) fn with_scratch_layer<T>(
        &mut self,
        name: &str,
        write: impl FnOnce(std::io::BufWriter<std::fs::File>) -> Result<(), BuildError>,
        commit: impl FnOnce(&mut Self, &Path) -> Result<T, BuildError>,
    ) -> Result<T, BuildError> {
        let layer = self
            .images
            .root()
            .join(format!(".tmp-build-{}-{name}.tar", std::process::id()));
        let written = std::fs::File::create(&layer)
            .map_err(|e| BuildError::Context(format!("{}: {e}", layer.display())))
            .and_then(|file| write(std::io::BufWriter::new(file)));
        let committed = written.and_then(|()| commit(self, &layer));
        let _ = std::fs::remove_file(&layer);
        committed
    }

    /// A cache hit for `key`, said as Docker says it.
    pub(super) fn cached(&mut self, key: &str) -> Option<String> {
        if self.options.no_cache {
            return None;
        }
        let id = self.cache.lookup(self.images, key)?;
        self.say(" ---> Using cache");
        self.say(format_args!(" ---> {}", short(&id)));
        Some(id)
    }

    /// A step made the image `id`.
    pub(super) fn done(&mut self, key: &str, id: &Digest) {
        self.cache.insert(key, &id.to_string());
        self.say(format_args!(" ---> {}", id.short()));
        self.stage().image = Some(id.to_string());
    }

    async fn from(
        &mut self,
        runner: &impl StepRunner,
        instruction: &Instruction,
    ) -> Result<(), BuildError> {
        instruction.check_flags(&["platform"])?;
        let words = expand_words(&instruction.rest, &self.global_args)?;
        let (base, name) = match words.as_slice() {
            [base] => (base.clone(), None),
            [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
                (base.clone(), Some(name.to_ascii_lowercase()))
            }
            _ => return Err(instruction.error("FROM requires either one or three arguments")),
        };
        let image = if base.eq_ignore_ascii_case("scratch") {
            None
        } else if let Some(stage) = self.find_stage(&base) {
            stage.image.clone()
        } else {
            runner.pull(&base).await?;
            Some(self.images.resolve(&base)?.id.to_string())
        };
        let config = match &image {
            Some(id) => image_config(self.images, id)?,
            None => Map::new(),
        };
        match &image {
            Some(id) => self.say(format_args!(" ---> {}", short(id))),
            None => self.say(" ---> "),
        }
        self.stages.push(Stage {
            name,
            image,
            config,
            args: Vec::new(),
        });
        Ok(())
    }

    /// A previous stage, by `AS` name or index.
    pub(super) fn find_stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        if let Some(stage) = self
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(stage);
        }
        name.parse::<usize>().ok().and_then(|i| self.stages.get(i))
    }

    async fn run_step(
        &mut self,
        runner: &impl StepRunner,
        instruction: &Instruction,
    ) -> Result<(), BuildError> {
        instruction.check_flags(&[])?;
        let shell = self.shell();
        let argv = match instruction.command()? {
            Command::Exec(list) => list,
            Command::Shell(text) => shell.iter().cloned().chain([text]).collect(),
        };
        let stage = self.stage().clone();
        let Some(image) = stage.image.clone() else {
            return Err(instruction.error("RUN needs an image with a shell: FROM scratch has none"));
        };
        let created_by = argv.join(" ");
        let mut env: Vec<String> = env_pairs(&stage.config)
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        for (name, value) in &stage.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').is_some_and(|(n, _)| n == name))
            {
                env.push(format!("{name}={value}"));
            }
        }
        let args_text: Vec<String> = stage.args.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let key = cache::key(
            &image,
            &format!(
                "RUN {created_by}\n{}\n{}",
                args_text.join(" "),
                serde_json::to_string(&stage.config).unwrap_or_default()
            ),
            None,
        );
        if let Some(id) = self.cached(&key) {
            self.stage().image = Some(id);
            return Ok(());
        }
        let string = |field: &str| {
            stage
                .config
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let step = RunStep {
            image,
            argv,
            env,
            workdir: string("WorkingDir"),
            user: string("User"),
            commit: commit_options(&created_by, &stage.config),
        };
        let id = runner.run(&step).await?;
        self.done(&key, &id);
        Ok(())
    }
}

/// `(name, value)` of a config's `Env`.
fn env_pairs(config: &Map<String, Value>) -> Vec<(String, String)> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(|e| {
                    let (n, v) = e.split_once('=').unwrap_or((e, ""));
                    (n.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An image's `config`, as JSON fields.
fn image_config(images: &ImageStore, id: &str) -> Result<Map<String, Value>, BuildError> {
    let image = images.resolve(id)?;
    Ok(
        match images
            .config_json(&image)?
            .get_mut("config")
            .map(Value::take)
        {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        },
    )
}

pub(super) fn commit_options(created_by: &str, config: &Map<String, Value>) -> CommitOptions {
    CommitOptions {
        author: None,
        message: None,
        created_by: created_by.to_owned(),
        config: config.clone(),
    }
}

fn pairs_text(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A list as Go's `%q` of a slice prints it: `["/bin/sh" "-c" "x"]`.
fn go_list(list: &[String]) -> String {
    let quoted: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// The 12 hex digits Docker shows of an id.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_texts_as_docker() {
        assert_eq!(
            go_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
