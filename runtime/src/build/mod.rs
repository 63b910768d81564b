//! `hull build`: a Dockerfile built as Docker's classic builder builds it,
//! one image per step, with no daemon. Parsing is [`dockerfile`], word
//! processing and substitution [`words`], the context and COPY's files
//! [`context`] (ADD's archives [`archive`]), the layer cache [`cache`], and each instruction's work
//! [`step`] (COPY and ADD: [`copy`], WORKDIR: [`workdir`]). A RUN runs in a container of its own microVM through a
//! [`StepRunner`] (the CLI's, over the engine's create, start, commit and
//! remove), so an untrusted Dockerfile's commands never run on the host.

pub mod archive;
pub mod cache;
pub mod context;
mod copy;
pub mod dockerfile;
mod step;
#[cfg(test)]
mod tests;
pub mod words;
mod workdir;

use crate::image::{CommitOptions, Digest, ImageError, ImageStore};
use std::future::Future;
use thiserror::Error;

pub use context::Context;

/// A build failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The Dockerfile cannot be parsed (Docker's `Dockerfile parse error
    /// line N: ...`).
    #[error("{0}")]
    Parse(String),
    /// A variable substitution is malformed.
    #[error("failed to process \"{0}\"")]
    Substitution(String),
    /// A path of the context (or of a stage) cannot be used.
    #[error("{0}")]
    Context(String),
    /// An instruction cannot be carried out.
    #[error("{0}")]
    Invalid(String),
    /// A RUN's command failed, as Docker words it.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// The command, its words joined by spaces.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Running a step failed.
    #[error("{0:#}")]
    Runner(anyhow::Error),
}

/// A RUN step: its command in a container of `image`, changes committed.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// The image to run (its id).
    pub image: String,
    /// The command, whole (no entrypoint applies).
    pub argv: Vec<String>,
    /// Its environment, `NAME=VALUE` (the stage's ENV and ARGs).
    pub env: Vec<String>,
    /// Its working directory.
    pub workdir: Option<String>,
    /// Its user.
    pub user: Option<String>,
    /// What to record when committing its changes.
    pub commit: CommitOptions,
}

/// Runs RUN steps and fetches base images: the part of a build that needs
/// VMs and registries.
pub trait StepRunner {
    /// Runs `step` to completion in a new container and commits its
    /// changes; returns the new image's id. A non-zero exit is
    /// [`BuildError::RunFailed`]. The container is removed either way.
    fn run(&self, step: &RunStep) -> impl Future<Output = Result<Digest, BuildError>>;
    /// Makes sure the image `name` is in the store (pulling it if missing).
    fn pull(&self, name: &str) -> impl Future<Output = Result<(), BuildError>>;
}

/// What to build.
#[derive(Debug)]
pub struct BuildOptions {
    /// The Dockerfile's content.
    pub dockerfile: Vec<u8>,
    /// The context (none for a Dockerfile given on stdin).
    pub context: Option<Context>,
    /// `--build-arg NAME=VALUE`.
    pub build_args: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--target`: the last stage built.
    pub target: Option<String>,
    /// `-q`: no step output.
    pub quiet: bool,
}

/// Builds the Dockerfile; returns the final image's id. Step output goes
/// to `out` (unless quiet).
pub async fn build(
    images: &ImageStore,
    runner: &impl StepRunner,
    options: &BuildOptions,
    out: &mut dyn std::io::Write,
) -> Result<Digest, BuildError> {
    let instructions = dockerfile::parse(&options.dockerfile)?;
    let mut builder = step::Builder::new(images, options, out);
    builder.run(runner, &instructions).await
}
