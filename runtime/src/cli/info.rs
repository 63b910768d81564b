//! `hull info`: the host, the backend Hull picks, and where things are;
//! `--format` sees them under Docker's names (`.Containers`, `.Images`,
//! `.ServerVersion`, …) and Hull's own (`.Backend`, `.GuestKernel`, …).

use super::images::open_store;
use super::output::object_template;
use crate::config::{GuestArtifacts, Paths};
use crate::container::{ContainerStore, Status};
use crate::platform::Platform;
use anyhow::Result;
use serde_json::{json, Value};

/// `hull info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Format output using a custom template ('json' for JSON)
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
}

/// Everything `hull info` shows.
fn details(paths: &Paths) -> Value {
    let platform = Platform::detect();
    let hypervisor = platform.default_hypervisor();
    let artifacts = GuestArtifacts::resolve(None, None);
    let images = open_store(paths).and_then(|store| Ok(store.list()?.len()));
    let containers = ContainerStore::open(&paths.root)
        .and_then(|store| store.list())
        .unwrap_or_default();
    let count = |status: Status| {
        containers
            .iter()
            .filter(|c| c.state.status == status)
            .count()
    };
    let running = count(Status::Running);
    let paused = count(Status::Paused);
    let mut warnings: Vec<String> = artifacts
        .missing()
        .into_iter()
        .map(|missing| format!("missing {missing}"))
        .collect();
    if let Err(err) = &images {
        warnings.push(format!("images: unknown ({err:#})"));
    }
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    json!({
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images.ok(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "KernelVersion": field(|u| u.release()),
        "OSType": "linux",
        "Architecture": field(|u| u.machine()),
        "Name": field(|u| u.nodename()),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "DockerRootDir": paths.root.display().to_string(),
        "Backend": hypervisor.name(),
        "Accel": hypervisor.accel(),
        "AccelOptions": hypervisor.accel_options(),
        "BackendReason": platform.explain_default(),
        "KVM": platform.describe_kvm(),
        "GuestKernel": artifacts.kernel.display().to_string(),
        "Initramfs": artifacts.initrd.display().to_string(),
        "Virtiofsd": artifacts.virtiofsd.display().to_string(),
        "RunDir": paths.run.display().to_string(),
        "Warnings": warnings,
    })
}

/// Docker's layout of [`details`] (`Client:`, then `Server:` with its
/// containers by state, images, versions and the host), with what Hull
/// runs containers on among the server's lines; warnings last.
fn text(details: &Value) -> String {
    let field = |key: &str| match &details[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::from("Client:\n Context:    default\n Debug Mode: false\n\nServer:\n");
    for (indent, label, key) in [
        (" ", "Containers", "Containers"),
        ("  ", "Running", "ContainersRunning"),
        ("  ", "Paused", "ContainersPaused"),
        ("  ", "Stopped", "ContainersStopped"),
        (" ", "Images", "Images"),
        (" ", "Server Version", "ServerVersion"),
        (" ", "Backend", "Backend"),
        ("  ", "Accel", "Accel"),
        ("  ", "Accel Options", "AccelOptions"),
        ("  ", "Chosen Because", "BackendReason"),
        (" ", "KVM", "KVM"),
        (" ", "Guest Kernel", "GuestKernel"),
        (" ", "Initramfs", "Initramfs"),
        (" ", "Virtiofsd", "Virtiofsd"),
        (" ", "Kernel Version", "KernelVersion"),
        (" ", "OSType", "OSType"),
        (" ", "Architecture", "Architecture"),
        (" ", "CPUs", "NCPU"),
        (" ", "Name", "Name"),
        (" ", "Hull Root Dir", "DockerRootDir"),
        (" ", "Run Dir", "RunDir"),
    ] {
        let value = field(key);
        if !value.is_empty() {
            out.push_str(&format!("{indent}{label}: {value}\n"));
        }
    }
    for warning in details["Warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "WARNING: {}\n",
            warning.as_str().unwrap_or_default()
        ));
    }
    out
}

/// Prints what Hull runs on, as Docker lays it out or through `--format`.
pub fn info(paths: &Paths, args: InfoArgs) -> Result<()> {
    let details = details(paths);
    match args.format.as_deref() {
        Some(format) => println!("{}", object_template(format)?.render(&details)?),
        None => print!("{}", text(&details)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_template_show_the_same_details() {
        let root = tempfile::tempdir().unwrap();
        let details = details(&Paths::new(Some(root.path().to_path_buf())));
        let text = text(&details);
        assert!(
            text.starts_with("Client:\n Context:    default\n"),
            "{text}"
        );
        assert!(
            text.contains("\nServer:\n Containers: 0\n  Running: 0\n"),
            "{text}"
        );
        assert!(text.contains("\n Backend: "), "{text}");
        assert!(
            text.contains(&format!(" Hull Root Dir: {}\n", root.path().display())),
            "{text}"
        );
        let rendered = object_template("{{.Containers}} {{.DockerRootDir}}")
            .unwrap()
            .render(&details)
            .unwrap();
        assert_eq!(rendered, format!("0 {}", root.path().display()));
    }
}
