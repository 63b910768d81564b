//! `hull images` and `hull load`.

use super::format::{ago, human_size, print_table};
use crate::config::Paths;
use crate::image::ImageStore;
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
    /// Show all images (Hull keeps no intermediate images, so the same list)
    #[arg(short, long)]
    all: bool,
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
            let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
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
    #[arg(short, long, value_name = "FILE")]
    input: PathBuf,
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
    /// The image
    image: String,
}

/// `hull import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A tar archive of a file system (as `hull export` writes)
    file: PathBuf,
    /// The new image's name
    reference: Option<String>,
}

/// Makes a single-layer image of a file-system tarball; prints its id.
pub fn import(paths: &Paths, args: ImportArgs) -> Result<()> {
    let loaded = open_store(paths)?.import_tarball(&args.file, args.reference.as_deref())?;
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
    let in_use = |id: &crate::image::Digest| containers.iter().find(|c| c.image == id.to_string()).map(|c| c.id.clone());
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
    let image = open_store(paths)?.resolve(&args.image)?;
    let id = if args.no_trunc { image.id.to_string() } else { image.id.short().to_string() };
    let steps = image.config.history().clone();
    if args.quiet {
        println!("{id}");
        for _ in steps.iter().skip(1) {
            println!("<missing>");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .rev()
        .enumerate()
        .map(|(index, step)| {
            let mut created_by = step.created_by().clone().unwrap_or_default();
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            vec![
                if index == 0 { id.clone() } else { "<missing>".into() },
                ago(step.created().as_deref()),
                created_by,
                if step.empty_layer().unwrap_or(false) { "0B".into() } else { "-".into() },
                step.comment().clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows);
    Ok(())
}

/// Opens the image store of `paths`.
pub fn open_store(paths: &Paths) -> Result<ImageStore> {
    ImageStore::open(&paths.image_root()).with_context(|| format!("opening the image store in {}", paths.image_root().display()))
}

/// Lists images with Docker's columns.
pub fn images(paths: &Paths, args: ImagesArgs) -> Result<()> {
    let store = open_store(paths)?;
    let mut images = store.list()?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.repository.cmp(&b.repository)));
    let id = |digest: &crate::image::Digest| if args.no_trunc { digest.to_string() } else { digest.short().to_string() };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for image in &images {
            if seen.insert(image.id.clone()) {
                println!("{}", id(&image.id));
            }
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|image| {
            let mut row = vec![image.repository.clone(), image.tag.clone()];
            if args.digests {
                row.push(image.digest.to_string());
            }
            row.extend([id(&image.id), ago(image.created.as_deref()), human_size(image.size)]);
            row
        })
        .collect();
    if args.digests {
        print_table(&["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"], &rows);
    } else {
        print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    }
    Ok(())
}

/// Loads an OCI image archive.
pub fn load(paths: &Paths, args: LoadArgs) -> Result<()> {
    let store = open_store(paths)?;
    let loaded = store.load_archive(&args.input)?;
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
