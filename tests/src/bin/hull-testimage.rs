//! Writes Hull's busybox test image as an OCI archive.
//!
//! usage: hull-testimage OUT.tar [NAME]

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .context("usage: hull-testimage OUT.tar [NAME]")?;
    let name = args.next().unwrap_or_else(|| "busybox:latest".into());
    hull_tests::write_busybox_archive(std::path::Path::new(&out), &name)?;
    println!("{out}");
    Ok(())
}
