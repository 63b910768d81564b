//! File I/O: a sequential write (with fsync) and read back, and small files
//! created, stat'ed and unlinked.

use crate::{Phase, Result};
use std::io::{Read, Write};

const CHUNK: usize = 1 << 20;

/// The byte pattern of chunk `i`.
fn chunk(i: u64) -> Vec<u8> {
    (0..CHUNK)
        .map(|j| (j as u64).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// A sum over one byte in each 4 KiB (the check of a read, cheap enough
/// not to weigh on the read's time).
fn sum(data: &[u8]) -> u64 {
    data.iter().step_by(4096).map(|&b| u64::from(b)).sum()
}

/// Writes `mib` MiB to `dir/seq.dat` in 1 MiB chunks and fsyncs it
/// (`seq_write`), then reads it back (`seq_read`: from the page cache where
/// the environment keeps one) and removes it. Both checks are the byte sum,
/// which must agree.
pub fn sequential(dir: &str, mib: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {dir}: {e}"))?;
    let path = format!("{dir}/seq.dat");
    let chunks: Vec<Vec<u8>> = (0..mib.min(8)).map(chunk).collect();
    let expected: u64 = (0..mib)
        .map(|i| sum(&chunks[(i % chunks.len().max(1) as u64) as usize]))
        .sum();

    let phase = Phase::begin("seq_write");
    let mut file = std::fs::File::create(&path).map_err(|e| format!("creating {path}: {e}"))?;
    for i in 0..mib {
        let data = &chunks[(i % chunks.len() as u64) as usize];
        file.write_all(data)
            .map_err(|e| format!("writing {path}: {e}"))?;
    }
    file.sync_all().map_err(|e| format!("fsync {path}: {e}"))?;
    drop(file);
    phase.end(mib, mib << 20, format!("sum={expected}"));

    let phase = Phase::begin("seq_read");
    let mut file = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut total, mut read) = (0u64, 0u64);
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("reading {path}: {e}"))?;
        if n == 0 {
            break;
        }
        total += sum(&buf[..n]);
        read += n as u64;
    }
    if read != mib << 20 || total != expected {
        return Err(format!(
            "read back {read} bytes (sum {total}), wrote {} (sum {expected})",
            mib << 20
        ));
    }
    phase.end(mib, read, format!("sum={total}"));
    std::fs::remove_file(&path).map_err(|e| format!("removing {path}: {e}"))
}

/// Creates `n` files of 1 KiB in `dir/small`, stats each (checking its
/// size), then unlinks each: three measurements.
pub fn small_files(dir: &str, n: u64) -> Result<()> {
    let sub = format!("{dir}/small");
    std::fs::create_dir_all(&sub).map_err(|e| format!("creating {sub}: {e}"))?;
    let data = [7u8; 1024];
    let path = |i: u64| format!("{sub}/f{i}");

    let phase = Phase::begin("files_create");
    for i in 0..n {
        let p = path(i);
        let mut f = std::fs::File::create(&p).map_err(|e| format!("creating {p}: {e}"))?;
        f.write_all(&data)
            .map_err(|e| format!("writing {p}: {e}"))?;
    }
    phase.end(n, n * 1024, format!("n={n}"));

    let phase = Phase::begin("files_stat");
    let mut bytes = 0u64;
    for i in 0..n {
        let p = path(i);
        bytes += std::fs::metadata(&p)
            .map_err(|e| format!("stat {p}: {e}"))?
            .len();
    }
    if bytes != n * 1024 {
        return Err(format!("stat saw {bytes} bytes in {n} files of 1 KiB"));
    }
    phase.end(n, 0, format!("n={n}"));

    let phase = Phase::begin("files_unlink");
    for i in 0..n {
        let p = path(i);
        std::fs::remove_file(&p).map_err(|e| format!("unlinking {p}: {e}"))?;
    }
    let left = std::fs::read_dir(&sub)
        .map_err(|e| format!("listing {sub}: {e}"))?
        .count();
    if left != 0 {
        return Err(format!("{left} files left after unlinking"));
    }
    phase.end(n, 0, format!("n={n}"));
    std::fs::remove_dir(&sub).map_err(|e| format!("removing {sub}: {e}"))
}
