//! Image commands: `hull images`, `load`, `save`, `import`, `tag`, `rmi`,
//! `history`, and the registry ones, `pull`, `push`, `login`, `logout`.

use super::format::{ago, human_size};
use super::output::{print_listing, Columns};
use super::spool::SpooledStdin;
use crate::config::Paths;
use crate::image::{CommitOptions, ImageFilter, ImageStore};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// `hull images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Format output using a Go template (`table` prefix: with a header; `json`: one object per line)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Filter output based on conditions provided (`dangling=true`, `reference=PATTERN`)
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Only images of this repository (and tag), as `--filter reference=` takes it
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
}

/// `hull save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

/// Writes images to an OCI archive.
pub fn save(paths: &Paths, args: SaveArgs) -> Result<()> {
    use std::io::IsTerminal;
    let store = open_store(paths)?;
    match &args.output {
        Some(path) => {
            // Whole or nothing: a failed save leaves no half archive.
            let tmp = path.with_extension("tmp-hull-save");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            if let Err(err) = store.save(&args.images, std::io::BufWriter::new(file)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(err.into());
            }
            std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        None => store.save(&args.images, std::io::stdout().lock())?,
    }
    Ok(())
}

/// `hull load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "string")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

/// `hull tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image
    source: String,
    /// The new name
    target: String,
}

/// `hull rmi`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

/// `hull history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format (-H=false: bytes and timestamps)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    human: bool,
    /// Format output using a Go template (`table` prefix: with a header; `json`: one object per line)
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// The image
    image: String,
}

/// `hull import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE)
    #[arg(short, long, value_name = "list")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// A tar archive of a file system (as `hull export` writes), or - for stdin
    file: PathBuf,
    /// The new image's name
    reference: Option<String>,
}

/// Makes a single-layer image of a file-system tarball; prints its id.
pub fn import(paths: &Paths, args: ImportArgs) -> Result<()> {
    let store = open_store(paths)?;
    let mut options = CommitOptions {
        message: args.message.clone(),
        ..CommitOptions::default()
    };
    for change in &args.change {
        super::containers::apply_change(&mut options.config, change)?;
    }
    let reference = args.reference.as_deref();
    let loaded = match args.file.as_os_str() == "-" {
        true => {
            let spooled = SpooledStdin::archive(store.root(), "import")?;
            spooled.as_stdin(store.import_tarball_with(spooled.path(), reference, &options))?
        }
        false => store.import_tarball_with(&args.file, reference, &options)?,
    };
    println!("{}", loaded.id);
    Ok(())
}

/// Names an image (`hull tag`).
pub fn tag(paths: &Paths, args: TagArgs) -> Result<()> {
    open_store(paths)?.tag(&args.source, &args.target)?;
    Ok(())
}

/// Removes images or their names, refusing images containers use.
pub fn rmi(paths: &Paths, args: RmiArgs) -> Result<i32> {
    let store = open_store(paths)?;
    let containers = crate::container::ContainerStore::open(&paths.root)?.list()?;
    let in_use = |id: &crate::image::Digest| {
        containers
            .iter()
            .find(|c| c.image == id.to_string())
            .map(|c| c.id.clone())
    };
    let mut failed = false;
    for image in &args.images {
        match store.remove(image, args.force, in_use) {
            Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
            Err(err) => {
                eprintln!("hull: {err}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Shows how an image was built, from its config's history, as Docker does:
/// the image id on the newest step, `<missing>` on the others.
pub fn history(paths: &Paths, args: HistoryArgs) -> Result<()> {
    let store = open_store(paths)?;
    let image = store.resolve(&args.image)?;
    let id = if args.no_trunc {
        image.id.to_string()
    } else {
        image.id.short().to_string()
    };
    let steps = image.config.history().clone();
    // Each step that made a layer made the next one, bottom first.
    let mut layers = image.diff_ids.iter();
    let size_text = |bytes: u64| match args.human {
        true => human_size(bytes),
        false => bytes.to_string(),
    };
    let sizes: Vec<String> = steps
        .iter()
        .map(|step| match step.empty_layer().unwrap_or(false) {
            true => size_text(0),
            false => layers
                .next()
                .and_then(|d| store.layer_size(d).ok())
                .map_or_else(|| "-".to_string(), size_text),
        })
        .collect();
    if args.quiet {
        println!("{id}");
        for _ in steps.iter().skip(1) {
            println!("<missing>");
        }
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = steps
        .iter()
        .zip(sizes)
        .rev()
        .enumerate()
        .map(|(index, (step, size))| {
            let mut created_by = step.created_by().clone().unwrap_or_default();
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            let created_at = step.created().clone().unwrap_or_default();
            serde_json::json!({
                "ID": if index == 0 { id.as_str() } else { "<missing>" },
                // Docker's CreatedSince is the timestamp with -H=false.
                "CreatedSince": match args.human {
                    true => ago(step.created().as_deref()),
                    false => created_at.clone(),
                },
                "CreatedAt": created_at,
                "CreatedBy": created_by,
                "Size": size,
                "Comment": step.comment().clone().unwrap_or_default(),
            })
        })
        .collect();
    print_listing(args.format.as_deref(), &HISTORY_COLUMNS, &rows)?;
    Ok(())
}

/// `history`'s fields and Docker's names of their columns.
const HISTORY_COLUMNS: Columns = Columns {
    names: &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ],
    default: "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}",
};

/// `images`'s fields and Docker's names of their columns.
const IMAGES_COLUMNS: Columns = Columns {
    names: &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
    ],
    default: "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
};

/// Opens the image store of `paths`.
pub fn open_store(paths: &Paths) -> Result<ImageStore> {
    ImageStore::open(&paths.image_root()).with_context(|| {
        format!(
            "opening the image store in {}",
            paths.image_root().display()
        )
    })
}

/// Lists images with Docker's columns.
pub fn images(paths: &Paths, args: ImagesArgs) -> Result<()> {
    let mut filters = args
        .filter
        .iter()
        .map(|f| ImageFilter::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    filters.extend(args.repository.clone().map(ImageFilter::Reference));
    let store = open_store(paths)?;
    let mut images = store.list()?;
    images.retain(|image| {
        (args.all || !image.intermediate) && ImageFilter::all_match(&filters, image)
    });
    images.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.repository.cmp(&b.repository))
    });
    let id = |digest: &crate::image::Digest| {
        if args.no_trunc {
            digest.to_string()
        } else {
            digest.short().to_string()
        }
    };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for image in &images {
            if seen.insert(image.id.clone()) {
                println!("{}", id(&image.id));
            }
        }
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            serde_json::json!({
                "ID": id(&image.id),
                "Repository": image.repository,
                "Tag": image.tag,
                "Digest": image.digest.to_string(),
                "CreatedSince": ago(image.created.as_deref()),
                "CreatedAt": image.created.clone().unwrap_or_default(),
                "Size": human_size(image.size),
                "Containers": "N/A",
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "VirtualSize": human_size(image.size),
            })
        })
        .collect();
    let columns = match args.digests {
        true => Columns {
            default: "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}",
            ..IMAGES_COLUMNS
        },
        false => IMAGES_COLUMNS,
    };
    print_listing(args.format.as_deref(), &columns, &rows)?;
    Ok(())
}

/// Loads an OCI image archive.
pub fn load(paths: &Paths, args: LoadArgs) -> Result<()> {
    let store = open_store(paths)?;
    let loaded = match &args.input {
        Some(file) => store.load_archive(file)?,
        None => {
            let spooled = SpooledStdin::archive(store.root(), "load")?;
            spooled.as_stdin(store.load_archive(spooled.path()))?
        }
    };
    if !args.quiet {
        for image in loaded {
            match image.reference {
                Some(reference) => println!("Loaded image: {}", reference.familiar_string()),
                None => println!("Loaded image ID: {}", image.id),
            }
        }
    }
    Ok(())
}

/// `hull pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (e.g. linux/arm64)
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

/// `hull push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

/// `hull login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long, value_name = "string")]
    username: Option<String>,
    /// Password
    #[arg(short, long, value_name = "string")]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// The registry (host[:port]); Docker Hub when omitted
    server: Option<String>,
}

/// `hull logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry (host[:port]); Docker Hub when omitted
    server: Option<String>,
}

/// Docker Hub, the registry `login` and `logout` default to.
const DEFAULT_REGISTRY: &str = "docker.io";

/// Where pull progress goes: stdout for `hull pull`, stderr for the pull
/// `hull run` does first (whose stdout is the container's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressTo {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Shows a pull as Docker does: one progress bar per layer on a terminal,
/// plain `<layer>: <status>` lines otherwise.
struct PullDisplay {
    header: String,
    to: ProgressTo,
    bars: Option<indicatif::MultiProgress>,
    /// Each layer's bar, in the order the layers were announced.
    layers: std::cell::RefCell<Vec<(crate::image::Digest, indicatif::ProgressBar)>>,
    quiet: bool,
}

impl PullDisplay {
    fn new(header: String, to: ProgressTo, quiet: bool) -> PullDisplay {
        use std::io::IsTerminal;
        let terminal = match to {
            ProgressTo::Stdout => std::io::stdout().is_terminal(),
            ProgressTo::Stderr => std::io::stderr().is_terminal(),
        };
        let bars = (terminal && !quiet).then(|| {
            indicatif::MultiProgress::with_draw_target(match to {
                ProgressTo::Stdout => indicatif::ProgressDrawTarget::stdout(),
                ProgressTo::Stderr => indicatif::ProgressDrawTarget::stderr(),
            })
        });
        PullDisplay {
            header,
            to,
            bars,
            layers: Default::default(),
            quiet,
        }
    }

    /// Done with the bars: each layer's last status stays on screen as a
    /// plain line, as Docker leaves them; later lines go below.
    fn finish(mut self) -> PullDisplay {
        if let Some(bars) = self.bars.take() {
            let _ = bars.clear();
            for (layer, bar) in self.layers.borrow().iter() {
                self.line(&format!("{}: {}", layer.short(), bar.message()));
            }
        }
        self
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match (&self.bars, self.to) {
            // Above the bars while there are some; plain before the first.
            (Some(bars), _) if !self.layers.borrow().is_empty() => {
                let _ = bars.println(text);
            }
            (_, ProgressTo::Stdout) => println!("{text}"),
            (_, ProgressTo::Stderr) => eprintln!("{text}"),
        }
    }

    /// The bar of `layer`, made on first use.
    fn bar(
        &self,
        bars: &indicatif::MultiProgress,
        layer: &crate::image::Digest,
        size: u64,
    ) -> indicatif::ProgressBar {
        self.bar_with(
            bars,
            layer,
            size,
            "{prefix}: {msg:<17} {wide_bar} {bytes}/{total_bytes}",
        )
    }

    /// The bar of `layer`, made with `template` on first use.
    fn bar_with(
        &self,
        bars: &indicatif::MultiProgress,
        layer: &crate::image::Digest,
        size: u64,
        template: &str,
    ) -> indicatif::ProgressBar {
        let mut layers = self.layers.borrow_mut();
        if let Some((_, bar)) = layers.iter().find(|(known, _)| known == layer) {
            return bar.clone();
        }
        let bar = bars.add(indicatif::ProgressBar::new(size));
        let style = indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(layer.short().to_owned());
        layers.push((layer.clone(), bar.clone()));
        bar
    }

    fn event(&self, event: crate::image::registry::PullEvent<'_>) {
        use crate::image::registry::PullEvent;
        let status = |layer: &crate::image::Digest, text: &str| {
            self.line(&format!("{}: {text}", layer.short()))
        };
        let Some(bars) = &self.bars else {
            match event {
                PullEvent::Resolved => self.line(&self.header),
                PullEvent::LayerExists(layer) => status(layer, "Already exists"),
                PullEvent::LayerWaiting(layer, _) => status(layer, "Pulling fs layer"),
                PullEvent::LayerProgress(..) => {}
                PullEvent::LayerDownloaded(layer) => status(layer, "Download complete"),
                PullEvent::LayerComplete(layer) => status(layer, "Pull complete"),
            }
            return;
        };
        match event {
            PullEvent::Resolved => self.line(&self.header),
            PullEvent::LayerExists(layer) => {
                self.bar_with(bars, layer, 0, "{prefix}: {msg}")
                    .finish_with_message("Already exists");
            }
            PullEvent::LayerWaiting(layer, size) => {
                self.bar(bars, layer, size).set_message("Pulling fs layer")
            }
            PullEvent::LayerProgress(layer, downloaded, size) => {
                let bar = self.bar(bars, layer, size);
                bar.set_message("Downloading");
                bar.set_position(downloaded);
            }
            PullEvent::LayerDownloaded(layer) => {
                self.bar(bars, layer, 0).set_message("Download complete")
            }
            PullEvent::LayerComplete(layer) => self
                .bar(bars, layer, 0)
                .finish_with_message("Pull complete"),
        }
    }
}

/// The credentials `hull login` stored for registry `domain`, if any.
fn stored_credentials(domain: &str) -> Result<Option<crate::image::auth::Credentials>> {
    let path = crate::image::auth::AuthFile::default_path()?;
    Ok(crate::image::auth::AuthFile::load(&path)?.get(domain)?)
}

/// Pulls `name` (progress to `to`, Docker's lines); returns the image id.
pub async fn pull_image(
    paths: &Paths,
    name: &str,
    platform: Option<&str>,
    to: ProgressTo,
    quiet: bool,
) -> Result<crate::image::Digest> {
    use crate::image::{registry, Platform, Reference};
    let store = open_store(paths)?;
    let reference = Reference::parse(name)?;
    let platform = match platform {
        Some(text) => text.parse::<Platform>()?,
        None => Platform::host(),
    };
    let credentials = stored_credentials(reference.domain())?;
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let target = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, tag) => tag.unwrap_or("latest").to_owned(),
    };
    let display = PullDisplay::new(
        format!("{target}: Pulling from {}", reference.path()),
        to,
        quiet,
    );
    if !last_component.contains([':', '@']) {
        display.line("Using default tag: latest");
    }
    let outcome = registry::pull(&store, &reference, &platform, credentials, &|event| {
        display.event(event)
    })
    .await?;
    // The bars are all finished and stay on screen, as Docker's do; what
    // follows goes below them.
    let display = display.finish();
    display.line(&format!("Digest: {}", outcome.digest));
    let status = if outcome.up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    display.line(&format!("Status: {status} {}", reference.familiar_string()));
    Ok(outcome.id)
}

/// `hull pull`: as `docker pull`, ending with the image's full name.
pub async fn pull(paths: &Paths, args: PullArgs) -> Result<()> {
    pull_image(
        paths,
        &args.name,
        args.platform.as_deref(),
        ProgressTo::Stdout,
        args.quiet,
    )
    .await?;
    println!("{}", crate::image::Reference::parse(&args.name)?.full());
    Ok(())
}

/// Before `hull run`/`create`: pulls `name` as `--pull` says (`missing`,
/// the default, pulls only what the store lacks, saying so on stderr as
/// Docker does; `always`; `never`).
pub async fn pull_for_run(paths: &Paths, name: &str, policy: &str) -> Result<()> {
    match policy {
        "never" => Ok(()),
        "always" => pull_image(paths, name, None, ProgressTo::Stderr, false)
            .await
            .map(drop),
        "missing" => match open_store(paths)?.resolve(name) {
            Ok(_) => Ok(()),
            Err(crate::image::ImageError::NotFound(_)) => {
                let reference = crate::image::Reference::parse(name)?;
                eprintln!(
                    "Unable to find image '{}' locally",
                    reference.familiar_string()
                );
                pull_image(paths, name, None, ProgressTo::Stderr, false)
                    .await
                    .map(drop)
            }
            Err(err) => Err(err.into()),
        },
        other => anyhow::bail!(
            "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
        ),
    }
}

/// `hull push`: as `docker push`, ending with `TAG: digest: sha256:… size: N`.
pub async fn push(paths: &Paths, args: PushArgs) -> Result<()> {
    use crate::image::registry::{self, PushEvent};
    let store = open_store(paths)?;
    let reference = crate::image::Reference::parse(&args.name)?;
    let credentials = stored_credentials(reference.domain())?;
    let line = |text: String| {
        if !args.quiet {
            println!("{text}");
        }
    };
    line(format!(
        "The push refers to repository [{}]",
        reference.name()
    ));
    let progress = |event: PushEvent<'_>| match event {
        PushEvent::Preparing(layer) => line(format!("{}: Preparing", layer.short())),
        PushEvent::Pushing(..) => {}
        PushEvent::LayerExists(layer) => line(format!("{}: Layer already exists", layer.short())),
        PushEvent::Pushed(layer) => line(format!("{}: Pushed", layer.short())),
    };
    let outcome = registry::push(&store, &reference, credentials, &progress).await?;
    if args.quiet {
        println!("{}", reference.full());
    } else {
        println!(
            "{}: digest: {} size: {}",
            outcome.tag, outcome.digest, outcome.size
        );
    }
    Ok(())
}

/// `hull login`: checks the credentials with the registry, then stores
/// them (mode 0600) for `pull` and `push`.
pub async fn login(args: LoginArgs) -> Result<()> {
    use crate::image::auth::{registry_domain, AuthFile, Credentials};
    use std::io::{IsTerminal, Read, Write};
    let domain = registry_domain(args.server.as_deref().unwrap_or(DEFAULT_REGISTRY));
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password_stdin && args.username.is_none() {
        anyhow::bail!("Must provide --username with --password-stdin");
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let interactive = std::io::stdin().is_terminal();
    let prompt = |label: &str| -> Result<String> {
        if !interactive {
            anyhow::bail!("Cannot perform an interactive login from a non TTY device");
        }
        eprint!("{label}: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    let username = match args.username {
        Some(username) => username,
        None => prompt("Username")?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(password), _) => password,
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .take(64 << 10)
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => {
            let echo = without_echo();
            let password = prompt("Password");
            drop(echo);
            eprintln!();
            password?
        }
    };
    if username.is_empty() {
        anyhow::bail!("Username is required");
    }
    if password.is_empty() {
        anyhow::bail!("Password is required");
    }
    let credentials = Credentials { username, password };
    crate::image::registry::login(&domain, &credentials).await?;
    let mut file = AuthFile::load(&AuthFile::default_path()?)?;
    file.set(&domain, &credentials);
    file.save()?;
    println!("Login Succeeded");
    Ok(())
}

/// Turns the terminal's echo off until the guard is dropped (for a
/// password prompt); does nothing when stdin is not a terminal.
fn without_echo() -> Option<impl Drop> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    struct Restore(nix::sys::termios::Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
        }
    }
    let saved = tcgetattr(std::io::stdin()).ok()?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(std::io::stdin(), SetArg::TCSANOW, &quiet).ok()?;
    Some(Restore(saved))
}

/// `hull logout`: forgets the stored credentials of a registry.
pub fn logout(args: LogoutArgs) -> Result<()> {
    use crate::image::auth::{server_key, AuthFile};
    let server = args.server.as_deref().unwrap_or(DEFAULT_REGISTRY);
    let mut file = AuthFile::load(&AuthFile::default_path()?)?;
    let key = server_key(server);
    if file.remove(server) {
        file.save()?;
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(())
}
