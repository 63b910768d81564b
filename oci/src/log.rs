//! Errors where the caller looks for them: containerd's runc shim and
//! conmon read `--log` (JSON lines with `--log-format json`, as runc writes
//! them) when a verb fails; stderr gets the same line.

use std::io::Write;
use std::path::PathBuf;

/// How `--log` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"`.
    Text,
    /// `{"level":"error","msg":"…","time":"…"}`.
    Json,
}

/// Writes a verb's failure.
#[derive(Debug)]
pub struct Logger {
    path: Option<PathBuf>,
    format: LogFormat,
}

impl Logger {
    /// A logger writing to `path` (if any) in `format`.
    pub fn new(path: Option<PathBuf>, format: LogFormat) -> Self {
        Self { path, format }
    }

    /// Sends `tracing` output to the log file (`HULL_LOG` sets the level;
    /// `--debug` makes it debug), never to the container's stdio.
    pub fn init_tracing(&self, debug: bool) {
        let Some(file) = self.open() else {
            return;
        };
        let filter = std::env::var("HULL_LOG")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| if debug { "debug" } else { "warn" }.into());
        let _ = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    }

    /// Writes `err` as one line to the log and to stderr.
    pub fn error(&self, err: &dyn std::error::Error) {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        let message = message.replace('\n', " ");
        if let Some(mut file) = self.open() {
            let time = hull_runtime::timefmt::now();
            let line = match self.format {
                LogFormat::Json => serde_json::json!({
                    "level": "error",
                    "msg": message,
                    "time": time,
                })
                .to_string(),
                LogFormat::Text => format!("time=\"{time}\" level=error msg={message:?}"),
            };
            let _ = writeln!(file, "{line}");
        }
        eprintln!("hull-oci: {message}");
    }

    fn open(&self) -> Option<std::fs::File> {
        let path = self.path.as_ref()?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    }
}
