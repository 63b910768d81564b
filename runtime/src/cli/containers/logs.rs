//! `hull logs`: a container's output from its log, as Docker shows it
//! (`--follow`, `--since`, `--tail`, `--timestamps`).

use super::load;
use crate::config::Paths;
use crate::container::Status;
use crate::container::{monitor_alive, reconcile};
use crate::logs::{LogDriver, LogEntry, LogReader};
use crate::timefmt;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// `hull logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// The container
    container: String,
}

/// `--since`: an RFC 3339 time, Unix seconds, or a duration ago (`10s`, `42m`, `2h`).
fn parse_since(text: &str) -> Result<SystemTime> {
    if let Some(time) = timefmt::parse(text) {
        return Ok(time);
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow!("invalid value for \"since\": {text}"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("invalid value for \"since\": {text}"),
    };
    Ok(SystemTime::now() - Duration::from_secs_f64(seconds))
}

/// Prints a container's log: its rotated files, oldest first, then the
/// current one; with `-f`, what is written next, until the container is done.
pub async fn logs(paths: &Paths, args: LogsArgs) -> Result<i32> {
    let (store, record) = load(paths, &args.container)?;
    if record.host_config.log_config.driver == LogDriver::None {
        bail!("configured logging driver does not support reading");
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow!("invalid value for --tail: {n}"))?,
        ),
    };
    let wanted = |entry: &LogEntry| {
        since.is_none_or(|since| timefmt::parse(&entry.time).is_some_and(|t| t >= since))
    };
    let path = std::path::PathBuf::from(&record.log_path);
    let mut reader =
        LogReader::open(&path).with_context(|| format!("reading {}", path.display()))?;
    // The last `--tail` entries; only these are held, however long the log.
    let mut last: VecDeque<LogEntry> = VecDeque::with_capacity(tail.unwrap_or(0).min(4096));
    reader.read_new(|entry| {
        if !wanted(&entry) {
            return;
        }
        match tail {
            Some(0) => {}
            Some(n) => {
                if last.len() == n {
                    last.pop_front();
                }
                last.push_back(entry);
            }
            None => print_entry(&entry, args.timestamps),
        }
    })?;
    last.iter()
        .for_each(|entry| print_entry(entry, args.timestamps));
    flush_output();
    if !args.follow {
        return Ok(0);
    }
    loop {
        let mut current = store.load(&record.id).unwrap_or_else(|_| record.clone());
        reconcile(&store, &mut current);
        let done = !matches!(
            current.state.status,
            Status::Running | Status::Restarting | Status::Paused | Status::Created
        ) && !monitor_alive(current.hull_sandbox.monitor_pid);
        if !done {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // When done: one last read, for lines written just before the exit.
        reader.read_new(|entry| {
            if wanted(&entry) {
                print_entry(&entry, args.timestamps)
            }
        })?;
        flush_output();
        if done {
            return Ok(0);
        }
    }
}

/// Prints a log entry to stdout or stderr, as its stream was.
fn print_entry(entry: &LogEntry, timestamps: bool) {
    use std::io::Write;
    let text = if timestamps {
        format!("{} {}", entry.time, entry.log)
    } else {
        entry.log.clone()
    };
    let _ = if entry.stream == "stderr" {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())
    };
}

/// Flushes what `print_entry` printed.
fn flush_output() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
