//! Leaving nothing behind: what the suite made (its network namespaces,
//! Hull's and runc's containers, processes it started, its scratch
//! directory) is recorded here as it is made, and removed at the end, on
//! an error, and on Ctrl-C or SIGTERM. Only processes the suite started
//! (or that run in its own namespaces, under its own Hull root) are killed,
//! by pid.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Set on Ctrl-C or SIGTERM: nothing new is started after it.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether the suite is being stopped.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Hull's state to tear down: its binary and environment.
#[derive(Debug, Clone)]
pub struct HullState {
    /// The hull binary.
    pub bin: PathBuf,
    /// The network namespace it runs in.
    pub netns: String,
    /// `HULL_ROOT`.
    pub root: PathBuf,
    /// `HULL_RUN_DIR`.
    pub run: PathBuf,
}

#[derive(Debug, Default, Clone)]
struct State {
    scratch: Option<PathBuf>,
    netns: Vec<String>,
    hull: Option<HullState>,
    runc_root: Option<PathBuf>,
    pids: Vec<u32>,
}

/// The registry of what to remove.
#[derive(Debug, Default)]
pub struct Janitor {
    state: Mutex<State>,
}

/// The process's janitor.
pub fn janitor() -> &'static Janitor {
    static JANITOR: OnceLock<Janitor> = OnceLock::new();
    JANITOR.get_or_init(Janitor::default)
}

/// Runs a clean-up command quietly, bounded in time; its failure is logged.
fn quiet(args: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").args(args);
    match cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(err) => {
            tracing::warn!("clean-up: {}: {err}", args.join(" "));
            String::new()
        }
    }
}

/// The parent pid of `pid`, from /proc.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every process whose ancestry reaches one of `roots` (the roots too).
pub fn with_descendants(roots: &[u32]) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<u32> = roots.to_vec();
    loop {
        let before = found.len();
        for &pid in &all {
            if !found.contains(&pid) && parent(pid).is_some_and(|p| found.contains(&p)) {
                found.push(pid);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// The pids in network namespace `netns`.
pub fn netns_pids(netns: &str) -> Vec<u32> {
    quiet(&["ip", "netns", "pids", netns])
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sends SIGKILL to `pid`.
fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a pid the suite started; no memory is shared.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

impl Janitor {
    fn with<F: FnOnce(&mut State)>(&self, f: F) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state);
    }

    /// The scratch directory, removed last.
    pub fn scratch(&self, dir: PathBuf) {
        self.with(|s| s.scratch = Some(dir));
    }

    /// A network namespace the suite made.
    pub fn netns(&self, name: &str) {
        self.with(|s| s.netns.push(name.into()));
    }

    /// Hull's containers, under this root, to remove.
    pub fn hull(&self, hull: HullState) {
        self.with(|s| s.hull = Some(hull));
    }

    /// runc's state directory: its containers are deleted.
    pub fn runc_root(&self, root: PathBuf) {
        self.with(|s| s.runc_root = Some(root));
    }

    /// A process the suite started and leaves running.
    pub fn pid(&self, pid: u32) {
        self.with(|s| s.pids.push(pid));
    }

    /// Removes everything recorded; safe to call more than once (a second
    /// call catches what a command under way made meanwhile).
    pub fn clean(&self) {
        let state = {
            let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            guard.clone()
        };
        for &pid in &state.pids {
            kill(pid);
        }
        if let Some(hull) = &state.hull {
            clean_hull(hull);
        }
        if let Some(root) = &state.runc_root {
            let root = root.to_string_lossy();
            for id in quiet(&["runc", "--root", &root, "list", "-q"]).split_whitespace() {
                quiet(&["runc", "--root", &root, "delete", "-f", id]);
            }
        }
        for ns in &state.netns {
            for pid in netns_pids(ns) {
                kill(pid);
            }
            quiet(&["ip", "netns", "del", ns]);
        }
        if let Some(dir) = &state.scratch {
            unmount_under(dir);
            if let Err(err) = std::fs::remove_dir_all(dir) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {err}", dir.display());
                }
            }
        }
    }
}

/// `hull rm -f` of every container under the suite's root, then SIGKILL
/// to what is left of their monitors' process trees (virtiofsd runs in a
/// namespace of its own, so the netns alone does not find it).
fn clean_hull(hull: &HullState) {
    let netns_monitors: Vec<u32> = netns_pids(&hull.netns)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("__monitor"))
                .unwrap_or(false)
        })
        .collect();
    let leftovers = with_descendants(&netns_monitors);
    let run = |args: &[&str]| {
        let mut full = vec!["env".to_string()];
        full.push(format!("HULL_ROOT={}", hull.root.display()));
        full.push(format!("HULL_RUN_DIR={}", hull.run.display()));
        full.extend(["ip", "netns", "exec", &hull.netns].map(String::from));
        full.push(hull.bin.display().to_string());
        full.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        quiet(&refs)
    };
    let ids = run(&["ps", "-aq"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        run(&args);
    }
    for pid in leftovers {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill(pid);
        }
    }
}

/// Unmounts whatever is mounted under `dir` (deepest first).
fn unmount_under(dir: &std::path::Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        quiet(&["umount", "-l", p]);
    }
}

/// Cleans up on Ctrl-C or SIGTERM, then exits with 130.
pub fn on_signal() {
    let result = ctrlc::set_handler(|| {
        STOPPING.store(true, Ordering::SeqCst);
        eprintln!("hull-bench: interrupted; cleaning up");
        janitor().clean();
        // A command that was under way may have made something since.
        std::thread::sleep(std::time::Duration::from_secs(2));
        janitor().clean();
        std::process::exit(130);
    });
    if let Err(err) = result {
        tracing::warn!("no Ctrl-C handler: {err}");
    }
}
