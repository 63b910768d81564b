//! virtio-fs end to end with the real virtiofsd: hull-vmm does the
//! vhost-user handshake, the test guest brings the device up by hand and
//! sends one FUSE_INIT down the request queue; virtiofsd's reply must come
//! back with the request's id. Then the guest resets the device.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{boot_guest, stderr, stdout};

/// Same value as the test guest's `INIT_UNIQUE`.
const INIT_UNIQUE: &str = "0x48554c4c00000001";

/// virtiofsd: `HULL_VIRTIOFSD`, or the copy scripts/setup.sh builds.
fn virtiofsd_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HULL_VIRTIOFSD") {
        return path.into();
    }
    let built = common::workspace_root().join("target/hull/virtiofsd");
    assert!(
        built.exists(),
        "virtiofsd not found at {} (run scripts/setup.sh or set HULL_VIRTIOFSD)",
        built.display()
    );
    built
}

/// A virtiofsd serving `shared` on `socket`, killed when dropped.
struct Virtiofsd {
    child: Child,
}

impl Virtiofsd {
    fn start(socket: &Path, shared: &Path, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).unwrap();
        let child = Command::new(virtiofsd_path())
            .arg("--socket-path")
            .arg(socket)
            .arg("--shared-dir")
            .arg(shared)
            .args([
                "--sandbox",
                "none",
                "--cache",
                "never",
                "--log-level",
                "debug",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("cannot start virtiofsd");
        let mut daemon = Virtiofsd { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "virtiofsd exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "virtiofsd did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }
}

impl Drop for Virtiofsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn fuse_init_round_trip_through_virtiofsd() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let socket = dir.path().join("fs.sock");
    let log = dir.path().join("virtiofsd.log");
    let daemon = Virtiofsd::start(&socket, &shared, &log);

    let arg = format!("{},tag=hullfs", socket.display());
    let output = boot_guest("fs=1 action=exit:2", &["--fs-socket", &arg]);
    drop(daemon);
    let out = stdout(&output);
    let err = stderr(&output);
    let backend_log = std::fs::read_to_string(&log).unwrap_or_default();
    let describe = format!(
        "status {:?}\n--- stdout\n{out}\n--- stderr\n{err}\n--- virtiofsd\n{backend_log}",
        output.status.code()
    );
    assert_eq!(output.status.code(), Some(2), "{describe}");
    assert!(
        out.contains("virtio_mmio.device=4K@0xd0000000:5"),
        "{describe}"
    );
    for line in ["fs: tag hullfs", "fs: request queues 0x1", "fs: driver ok"] {
        assert!(out.contains(line), "missing {line:?}\n{describe}");
    }
    assert!(
        err.contains("virtio-fs: backend ready (tag hullfs, 2 queues)"),
        "{describe}"
    );
    let reply = out
        .lines()
        .find(|l| l.starts_with("fs: init reply"))
        .unwrap_or_else(|| panic!("no FUSE_INIT reply\n{describe}"));
    assert!(
        reply.contains(&format!("unique {INIT_UNIQUE} error 0x0 major 0x7")),
        "{reply}\n{describe}"
    );
    assert!(out.contains("fs: reset ok"), "{describe}");
}

#[test]
fn missing_virtiofsd_socket_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let arg = format!("{},tag=hullfs", socket.display());
    let output = boot_guest("fs=1", &["--fs-socket", &arg]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("hull-vmm: error: "), "{err}");
    assert!(lines[0].contains("nobody.sock"), "{err}");
}
