//! System calls: a cheap one (getpid), a file open/close, a process spawn.

use crate::{Phase, Result};

/// `n` getpid calls (std calls the C library's getpid, a real system call
/// under musl). The check counts the calls that returned a pid.
pub fn getpid(n: u64) {
    let phase = Phase::begin("getpid");
    let mut ok = 0u64;
    for _ in 0..n {
        ok += u64::from(std::hint::black_box(std::process::id()) != 0);
    }
    phase.end(n, 0, format!("n={ok}"));
}

/// `n` open+close pairs of one file in `dir`.
pub fn open_close(n: u64, dir: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir}: {e}"))?;
    let path = format!("{dir}/openclose.dat");
    std::fs::write(&path, b"x").map_err(|e| format!("writing {path}: {e}"))?;
    let phase = Phase::begin("openclose");
    for _ in 0..n {
        let file = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        drop(file);
    }
    phase.end(n, 0, format!("n={n}"));
    std::fs::remove_file(&path).map_err(|e| format!("removing {path}: {e}"))
}

/// `n` times: start this program again (`nop`: fork/vfork, exec, exit) and
/// wait for it. The check counts the successful children.
pub fn spawn(n: u64) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let phase = Phase::begin("spawn");
    let mut ok = 0u64;
    for _ in 0..n {
        let status = std::process::Command::new(&exe)
            .arg("nop")
            .status()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        ok += u64::from(status.success());
    }
    if ok != n {
        return Err(format!("{} of {n} children failed", n - ok));
    }
    phase.end(n, 0, format!("n={ok}"));
    Ok(())
}
