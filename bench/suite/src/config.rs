//! The suite's sizes and repeats: flags, each with an environment variable.

use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to run with and how much.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// The hull binary.
    #[arg(long, env = "HULL_BIN", default_value = "target/release/hull")]
    pub hull: PathBuf,
    /// Hull's guest kernel, initramfs and virtiofsd (passed on as HULL_LIB_DIR).
    #[arg(long, env = "HULL_LIB_DIR")]
    pub lib_dir: Option<PathBuf>,
    /// The workload program (static, musl): hull-bench-work.
    #[arg(
        long,
        env = "BENCH_WORK",
        default_value = "target/x86_64-unknown-linux-musl/release/hull-bench-work"
    )]
    pub work: PathBuf,
    /// Hull's VMM backend (`hull run --vmm`: qemu, hull, qemu-tcg, qemu-kvm);
    /// Hull's default when unset. The boot floor is QEMU's: left out with `hull`.
    #[arg(long, env = "BENCH_VMM")]
    pub vmm: Option<String>,
    /// A static busybox for the rootfs.
    #[arg(long, env = "BENCH_BUSYBOX", default_value = "/bin/busybox")]
    pub busybox: PathBuf,
    /// Groups to run (start, exec, compute, net, density), comma-separated.
    #[arg(long, env = "BENCH_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Timed runs of each workload and of exec.
    #[arg(long, env = "BENCH_RUNS", default_value_t = 5)]
    pub runs: usize,
    /// Timed runs of a cold start (and of the boot floor).
    #[arg(long, env = "BENCH_START_RUNS", default_value_t = 8)]
    pub start_runs: usize,
    /// Untimed runs before the timed ones, the same for every environment.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 1)]
    pub warmup: usize,
    /// Container counts started at once.
    #[arg(long, env = "BENCH_PARALLEL", value_delimiter = ',', default_values_t = [1usize, 5, 10])]
    pub parallel: Vec<usize>,
    /// Timed runs of each start-at-once count.
    #[arg(long, env = "BENCH_PARALLEL_RUNS", default_value_t = 3)]
    pub parallel_runs: usize,
    /// Idle container counts of the density curve.
    #[arg(long, env = "BENCH_DENSITY", value_delimiter = ',', default_values_t = [1usize, 5, 10, 20])]
    pub density: Vec<usize>,
    /// `exec true`s into one idle container before its memory is read again.
    #[arg(long, env = "BENCH_BUSY_EXECS", default_value_t = 300)]
    pub busy_execs: usize,
    /// MiB hashed by the compute kernel.
    #[arg(long, env = "BENCH_HASH_MIB", default_value_t = 32)]
    pub hash_mib: u64,
    /// MiB of the memory copy's buffers, and how many copies.
    #[arg(long, env = "BENCH_COPY_MIB", default_value_t = 16)]
    pub copy_mib: u64,
    /// Copies of the buffer.
    #[arg(long, env = "BENCH_COPY_ROUNDS", default_value_t = 8)]
    pub copy_rounds: u64,
    /// getpid calls.
    #[arg(long, env = "BENCH_GETPID", default_value_t = 200_000)]
    pub getpid: u64,
    /// open+close pairs.
    #[arg(long, env = "BENCH_OPENCLOSE", default_value_t = 1000)]
    pub openclose: u64,
    /// Processes spawned (fork+exec+wait).
    #[arg(long, env = "BENCH_SPAWN", default_value_t = 20)]
    pub spawn: u64,
    /// MiB written (and fsync'ed) then read.
    #[arg(long, env = "BENCH_IO_MIB", default_value_t = 16)]
    pub io_mib: u64,
    /// Small files created, stat'ed and unlinked.
    #[arg(long, env = "BENCH_FILES", default_value_t = 200)]
    pub files: u64,
    /// MiB pushed over TCP.
    #[arg(long, env = "BENCH_NET_MIB", default_value_t = 64)]
    pub net_mib: u64,
    /// HTTP requests, one after another (latency).
    #[arg(long, env = "BENCH_HTTP_REQUESTS", default_value_t = 50)]
    pub http_requests: u64,
    /// HTTP requests from 4 concurrent clients (connections per second).
    #[arg(long, env = "BENCH_HTTP_LOAD", default_value_t = 200)]
    pub http_load: u64,
    /// A baseline run's results.json: the report sets Hull's figures
    /// beside it ("before and after").
    #[arg(long, env = "BENCH_BEFORE")]
    pub before: Option<PathBuf>,
}

impl Config {
    /// Whether group `name` is to run.
    pub fn runs_group(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == name)
    }

    /// The sizes, for the report.
    pub fn summary(&self) -> BTreeMap<String, String> {
        let list = |v: &[usize]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/")
        };
        [
            ("runs", self.runs.to_string()),
            ("vmm", self.vmm.clone().unwrap_or_else(|| "default".into())),
            ("start_runs", self.start_runs.to_string()),
            ("warmup", self.warmup.to_string()),
            ("parallel", list(&self.parallel)),
            ("parallel_runs", self.parallel_runs.to_string()),
            ("density", list(&self.density)),
            ("busy_execs", self.busy_execs.to_string()),
            ("hash_mib", self.hash_mib.to_string()),
            ("copy", format!("{}MiB×{}", self.copy_mib, self.copy_rounds)),
            ("getpid", self.getpid.to_string()),
            ("openclose", self.openclose.to_string()),
            ("spawn", self.spawn.to_string()),
            ("io_mib", self.io_mib.to_string()),
            ("files", self.files.to_string()),
            ("net_mib", self.net_mib.to_string()),
            ("http", format!("{}+{}", self.http_requests, self.http_load)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
