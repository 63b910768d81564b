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
            vec![
                image.repository.clone(),
                image.tag.clone(),
                id(&image.id),
                ago(image.created.as_deref()),
                human_size(image.size),
            ]
        })
        .collect();
    print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
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
