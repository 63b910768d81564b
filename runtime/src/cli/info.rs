//! `hull info`: the host, the backend Hull picks, and where things are.

use super::images::open_store;
use crate::config::{GuestArtifacts, Paths};
use crate::platform::Platform;
use anyhow::Result;

/// `hull info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {}

/// Prints `key: value` lines, one fact each.
pub fn info(paths: &Paths, _args: InfoArgs) -> Result<()> {
    let platform = Platform::detect();
    let hypervisor = platform.default_hypervisor();
    let artifacts = GuestArtifacts::resolve(None, None);
    let images = open_store(paths).and_then(|store| Ok(store.list()?.len()));
    println!("backend: {}", hypervisor.name());
    println!("accel: {}", hypervisor.accel());
    println!("backend chosen because: {}", platform.explain_default());
    println!("kvm: {}", platform.describe_kvm());
    println!("kernel: {}", artifacts.kernel.display());
    println!("initramfs: {}", artifacts.initrd.display());
    println!("virtiofsd: {}", artifacts.virtiofsd.display());
    println!("root: {}", paths.root.display());
    println!("run dir: {}", paths.run.display());
    match images {
        Ok(count) => println!("images: {count}"),
        Err(err) => println!("images: unknown ({err:#})"),
    }
    for missing in artifacts.missing() {
        println!("warning: missing {missing}");
    }
    Ok(())
}
