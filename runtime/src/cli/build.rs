//! `hull build`: parses Docker's flags, reads the Dockerfile and context,
//! and hands them to [`crate::build`]; RUN steps run here, each in a
//! container of its own microVM, through the engine's create, start,
//! commit and remove.

use super::engine;
use super::images::{open_store, pull_for_run};
use super::session::{attach_and_wait, Session};
use super::spool::SpooledStdin;
use crate::build::{BuildError, BuildOptions, Context, RunStep, StepRunner};
use crate::config::Paths;
use crate::engine::{CommitRequest, ContainerOptions, ProcessOptions};
use crate::image::{Digest, Reference};
use anyhow::{Context as _, Result};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a finished RUN container's monitor may take to tear it down.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// `hull build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short, long = "tag", value_name = "list")]
    tag: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile"; - reads it from stdin)
    #[arg(short, long, value_name = "string")]
    file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long, value_name = "list")]
    build_arg: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Set the target build stage to build
    #[arg(long, value_name = "string")]
    target: Option<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// The build context: a directory, or - for a Dockerfile on stdin
    #[arg(value_name = "PATH | -")]
    context: String,
}

/// Runs `hull build`.
pub async fn build(paths: &Paths, args: BuildArgs) -> Result<i32> {
    let tags = args
        .tag
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<Result<Vec<_>>>()?;
    let images = open_store(paths)?;
    let stdin_context = TempContext::new(images.root());
    let (dockerfile, context) = if args.context == "-" {
        stdin_context.read_stdin(args.file.as_deref())?
    } else {
        let root = Path::new(&args.context);
        if !root.is_dir() {
            anyhow::bail!(
                "unable to prepare context: path {:?} not found",
                args.context
            );
        }
        let file = args.file.clone().unwrap_or_else(|| root.join("Dockerfile"));
        let dockerfile = if file == Path::new("-") {
            // `-f -`: the Dockerfile on stdin, the context a directory.
            read_bounded(&mut std::io::stdin().lock(), "stdin")?
        } else {
            let mut reader = std::fs::File::open(&file)
                .with_context(|| format!("unable to read the Dockerfile {}", file.display()))?;
            read_bounded(&mut reader, &file.display().to_string())?
        };
        (dockerfile, Some(Context::open(root)?))
    };
    let build_args = args
        .build_arg
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (arg.clone(), std::env::var(arg).unwrap_or_default()),
        })
        .collect();
    let options = BuildOptions {
        dockerfile,
        context,
        build_args,
        no_cache: args.no_cache,
        target: args.target.clone().map(|t| t.to_ascii_lowercase()),
        quiet: args.quiet,
    };
    let runner = VmRunner {
        paths,
        quiet: args.quiet,
    };
    let mut out = std::io::stdout();
    let id = match crate::build::build(&images, &runner, &options, &mut out).await {
        Ok(id) => id,
        // Docker's exit code: the RUN's own (1 if it had none to give).
        Err(err @ BuildError::RunFailed { code, .. }) => {
            return Err(super::ExitWith {
                code: if (1..=255).contains(&code) { code } else { 1 },
                message: err.to_string(),
            }
            .into())
        }
        Err(err) => return Err(err.into()),
    };
    for tag in &tags {
        images.tag(&id.to_string(), &tag.full())?;
    }
    if args.quiet {
        println!("{id}");
    } else {
        println!("Successfully built {}", id.short());
        for tag in &tags {
            println!("Successfully tagged {}", tag.familiar_string());
        }
    }
    Ok(0)
}

/// Reads a Dockerfile, refusing one larger than the parser takes.
fn read_bounded(reader: &mut impl Read, what: &str) -> Result<Vec<u8>> {
    let limit = crate::build::dockerfile::MAX_DOCKERFILE_BYTES;
    let mut data = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {what}"))?;
    if data.len() > limit {
        anyhow::bail!("{what}: the Dockerfile is larger than {limit} bytes");
    }
    Ok(data)
}

/// A context given on stdin (`hull build - < context.tar`), unpacked in a
/// private directory of the image store; removed when dropped.
struct TempContext {
    root: PathBuf,
    dir: PathBuf,
}

impl TempContext {
    fn new(root: &Path) -> TempContext {
        let pid = std::process::id();
        TempContext {
            root: root.to_path_buf(),
            dir: root.join(format!(".tmp-build-{pid}-context")),
        }
    }

    /// Reads stdin: a tar archive (plain or gzip) is the context, with
    /// the Dockerfile in it (`file`, default `Dockerfile`); anything else
    /// is the Dockerfile itself, with no context, as Docker reads it.
    fn read_stdin(&self, file: Option<&Path>) -> Result<(Vec<u8>, Option<Context>)> {
        let spooled = SpooledStdin::read(&self.root, "build")?;
        let archive = spooled.path();
        if !crate::build::archive::is_archive(archive) {
            let mut reader = std::fs::File::open(archive)?;
            return Ok((read_bounded(&mut reader, "stdin")?, None));
        }
        let mut input = std::io::BufReader::new(std::fs::File::open(archive)?);
        let gzip = std::io::BufRead::fill_buf(&mut input)?.starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn Read> = if gzip {
            Box::new(flate2::read::GzDecoder::new(input))
        } else {
            Box::new(input)
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        // The tar crate keeps entries inside the directory (no `..`, no
        // writing through the archive's own symlinks).
        let mut archive = tar::Archive::new(input);
        archive.set_preserve_permissions(false);
        archive
            .unpack(&self.dir)
            .context("unpacking the build context from stdin")?;
        let context = Context::open(&self.dir)?;
        let name = file.unwrap_or(Path::new("Dockerfile"));
        let rel = crate::build::context::clean(&name.to_string_lossy())?;
        let resolved = crate::build::context::resolve(context.root(), &rel)?;
        let mut reader = std::fs::File::open(context.root().join(resolved)).with_context(|| {
            format!(
                "unable to read the Dockerfile {} in the context",
                name.display()
            )
        })?;
        Ok((read_bounded(&mut reader, "the Dockerfile")?, Some(context)))
    }
}

impl Drop for TempContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs RUN steps in microVMs.
struct VmRunner<'a> {
    paths: &'a Paths,
    quiet: bool,
}

impl StepRunner for VmRunner<'_> {
    async fn run(&self, step: &RunStep) -> Result<Digest, BuildError> {
        let engine = engine(self.paths);
        let options = ContainerOptions {
            image: step.image.clone(),
            command: step.argv.clone(),
            entrypoint: Some(String::new()),
            process: ProcessOptions {
                env: step.env.clone(),
                workdir: step.workdir.clone(),
                user: step.user.clone(),
                ..Default::default()
            },
            boot_timeout_secs: 60,
            ..Default::default()
        };
        let id = engine
            .create(&options)
            .map_err(|e| BuildError::Runner(e.into()))?;
        if !self.quiet {
            println!(" ---> Running in {}", &id[..12]);
        }
        let result = self.run_and_commit(&id, step).await;
        if let Err(err) = engine.remove_container(&id, true, true).await {
            tracing::warn!("removing the build container {id}: {err}");
        }
        if !self.quiet {
            println!("Removing intermediate container {}", &id[..12]);
        }
        result
    }

    async fn pull(&self, name: &str) -> Result<(), BuildError> {
        pull_for_run(self.paths, name, "missing")
            .await
            .map_err(BuildError::Runner)
    }
}

impl VmRunner<'_> {
    /// Starts the container `id`, waits for its command, and commits its
    /// changes if it succeeded.
    async fn run_and_commit(&self, id: &str, step: &RunStep) -> Result<Digest, BuildError> {
        let engine = engine(self.paths);
        let runner = |e: anyhow::Error| BuildError::Runner(e);
        let spawned = engine
            .spawn_monitor(id)
            .await
            .map_err(|e| runner(e.into()))?;
        let how = Session {
            interactive: false,
            tty: false,
            proxy_signals: true,
            output: !self.quiet,
            detach_keys: Default::default(),
        };
        let code = attach_and_wait(&spawned.client, how, Some((self.paths, id)))
            .await
            .map_err(runner)?;
        let _ = tokio::time::timeout(TEARDOWN_TIMEOUT, engine.torn_down(id, spawned.pid)).await;
        if code != 0 {
            return Err(BuildError::RunFailed {
                command: step.argv.join(" "),
                code,
            });
        }
        let request = CommitRequest {
            options: step.commit.clone(),
            pause: false,
            reference: None,
        };
        engine
            .commit(id, &request)
            .await
            .map_err(|e| runner(e.into()))
    }
}
