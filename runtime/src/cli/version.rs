//! `hull version` and `hull -v`, laid out as Docker's, with what Hull runs
//! containers on: the backend and its VMM, the guest kernel, virtiofsd.

use super::output::object_template;
use crate::config::{GuestArtifacts, Paths};
use crate::platform::Platform;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::Path;

/// `hull version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Format output using a custom template ('json' for JSON)
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
}

/// Hull's own version.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from (build.rs).
const GIT_COMMIT: &str = env!("HULL_GIT_COMMIT");
/// That commit's time, as Docker prints `Built:`.
const BUILT: &str = env!("HULL_BUILT");
/// The compiler's version.
const RUSTC_VERSION: &str = env!("HULL_RUSTC_VERSION");
/// Docker's CLI context; Hull has one, its state directory.
const CONTEXT: &str = "default";

/// `hull -v`: one line, as `docker -v` prints it.
pub fn short() -> String {
    format!("Hull version {VERSION}, build {GIT_COMMIT}")
}

/// The machine's OS/Arch in Go's spelling (`linux/amd64`).
fn os_arch() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ("linux", arch)
}

/// The first line a program prints for `--version`, if it runs.
fn program_version(program: &Path) -> Option<String> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// The release a Linux kernel image announces (`Linux version X …`),
/// read from the image without booting it.
fn kernel_release(kernel: &Path) -> Option<String> {
    const MARK: &[u8] = b"Linux version ";
    use std::io::Read;
    // Bounded: a vmlinux is tens of MiB; the string is in its first part.
    let mut data = Vec::new();
    std::fs::File::open(kernel)
        .ok()?
        .take(256 << 20)
        .read_to_end(&mut data)
        .ok()?;
    let at = data.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let release = data[at..]
        .iter()
        .take_while(|b| b.is_ascii_graphic())
        .copied()
        .collect::<Vec<u8>>();
    String::from_utf8(release).ok().filter(|r| !r.is_empty())
}

/// The version of the protocol between host and guest agent, which both
/// sides must share.
fn api_version() -> String {
    hull_protocol::PROTOCOL_VERSION.to_string()
}

/// Everything `hull version` shows, as `docker version --format` sees it.
fn details(_paths: &Paths) -> Value {
    let (os, arch) = os_arch();
    let platform = Platform::detect();
    let backend = platform.default_hypervisor();
    let vmm = match backend.name() {
        "hull" => crate::hypervisor::HullVmm::program(),
        _ => crate::hypervisor::find_program("qemu-system-x86_64"),
    };
    let artifacts = GuestArtifacts::resolve(None, None);
    let unknown = || "unknown".to_string();
    let host_kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| unknown());
    json!({
        "Client": {
            "Platform": { "Name": "Hull" },
            "Version": VERSION,
            // Hull has no daemon API: the interface it versions is the one
            // between host and guest agent.
            "ApiVersion": api_version(),
            "Context": CONTEXT,
            "RustVersion": RUSTC_VERSION,
            "GitCommit": GIT_COMMIT,
            "BuildTime": BUILT,
            "Os": os,
            "Arch": arch,
        },
        "Server": {
            "Platform": { "Name": "Hull (daemonless: a monitor per container)" },
            "Version": VERSION,
            "ApiVersion": api_version(),
            "MinAPIVersion": api_version(),
            "RustVersion": RUSTC_VERSION,
            "GitCommit": GIT_COMMIT,
            "BuildTime": BUILT,
            "Os": os,
            "Arch": arch,
            "KernelVersion": host_kernel,
            "Components": [
                {
                    "Name": "Backend",
                    "Version": format!("{} ({})", backend.name(), backend.accel()),
                    "Details": { "VMM": vmm.as_deref().and_then(program_version).unwrap_or_else(unknown) },
                },
                {
                    "Name": "Guest kernel",
                    "Version": kernel_release(&artifacts.kernel).unwrap_or_else(unknown),
                    "Details": { "Path": artifacts.kernel.display().to_string() },
                },
                {
                    "Name": "virtiofsd",
                    "Version": program_version(&artifacts.virtiofsd).unwrap_or_else(unknown),
                    "Details": { "Path": artifacts.virtiofsd.display().to_string() },
                },
            ],
        },
    })
}

/// `hull version [--format …]`.
pub fn version(paths: &Paths, args: VersionArgs) -> Result<i32> {
    let details = details(paths);
    match args.format.as_deref() {
        Some(format) => println!("{}", object_template(format)?.render(&details)?),
        None => print!("{}", text(&details)),
    }
    Ok(0)
}

/// Docker's layout of [`details`].
fn text(details: &Value) -> String {
    let field = |v: &Value| v.as_str().unwrap_or("").to_string();
    let client = &details["Client"];
    let server = &details["Server"];
    let mut out = format!(
        "Client: {}\n Version:           {}\n API version:       {}\n Rust version:      {}\n Git commit:        {}\n Built:             {}\n OS/Arch:           {}/{}\n Context:           {}\n\n\
         Server: {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {}, host-guest protocol)\n  Rust version:     {}\n  Git commit:       {}\n  Built:            {}\n  OS/Arch:          {}/{}\n  Kernel Version:   {}\n",
        field(&client["Platform"]["Name"]),
        field(&client["Version"]),
        field(&client["ApiVersion"]),
        field(&client["RustVersion"]),
        field(&client["GitCommit"]),
        field(&client["BuildTime"]),
        field(&client["Os"]),
        field(&client["Arch"]),
        field(&client["Context"]),
        field(&server["Platform"]["Name"]),
        field(&server["Version"]),
        field(&server["ApiVersion"]),
        field(&server["MinAPIVersion"]),
        field(&server["RustVersion"]),
        field(&server["GitCommit"]),
        field(&server["BuildTime"]),
        field(&server["Os"]),
        field(&server["Arch"]),
        field(&server["KernelVersion"]),
    );
    for component in server["Components"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            " {}:\n  Version:          {}\n",
            field(&component["Name"]),
            field(&component["Version"])
        ));
        if let Some(details) = component["Details"].as_object() {
            for (key, value) in details {
                out.push_str(&format!("  {:<18}{}\n", format!("{key}:"), field(value)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_kernel_release_is_read_from_its_image() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vmlinux");
        let mut data = vec![0u8; 5000];
        data.extend_from_slice(b"Linux version 6.1.192-hull (root@x) #1 SMP\0");
        std::fs::write(&image, data).unwrap();
        assert_eq!(kernel_release(&image).as_deref(), Some("6.1.192-hull"));
        std::fs::write(&image, b"no kernel here").unwrap();
        assert_eq!(kernel_release(&image), None);
    }

    #[test]
    fn text_and_template_show_the_same_details() {
        let details = details(&Paths::new(None));
        let text = text(&details);
        assert!(
            text.starts_with("Client: Hull\n Version:           "),
            "{text}"
        );
        assert!(text.contains(" Guest kernel:\n  Version:"), "{text}");
        let version = object_template("{{.Server.Version}}")
            .unwrap()
            .render(&details)
            .unwrap();
        assert_eq!(version, VERSION);
        assert_eq!(
            short(),
            format!("Hull version {VERSION}, build {GIT_COMMIT}")
        );
        assert!(
            text.contains(&format!(" Git commit:        {GIT_COMMIT}\n")),
            "{text}"
        );
    }
}
