//! `hull-bench-work`: the benchmark suite's workloads, one small static
//! program that runs unchanged in a Hull guest, in a runc container and on
//! the host, so that the three run the same instructions.
//!
//! Each measured phase prints two JSON lines on stdout, flushed at once:
//! `{"begin":NAME}` as it starts, then
//! `{"name":…,"ops":…,"bytes":…,"ns":…,"check":…}` as it ends: what ran,
//! how many operations and bytes it did, its own elapsed time in
//! nanoseconds (the process's start and exec are not in it) and a check
//! value (a hash, a count) that the suite compares across environments, so
//! a run that did not do the work is caught. The suite times the phase by
//! its own clock too, from the arrival of the first line to that of the
//! second, less the pause between the begin line and the work (see
//! [`Phase::begin`]): a guest's clock cannot be trusted under an emulator
//! (Hull's guest kernel falls back to a jiffies clock under QEMU's TCG,
//! which loses ticks while the vCPU is busy).
//!
//! usage: hull-bench-work nop
//!        hull-bench-work hash MIB | memcpy MIB ROUNDS
//!        hull-bench-work getpid N | openclose N DIR | spawn N
//!        hull-bench-work seqio DIR MIB | smallfiles DIR N
//!        hull-bench-work sink PORT | tcp-push ADDR MIB
//!        hull-bench-work http-get ADDR N | http-load ADDR N THREADS
#![deny(missing_docs)]

mod cpu;
mod io;
mod net;
mod sys;

use std::time::Duration;

/// The pause between a begin line and the start of the work.
pub const PAUSE: Duration = Duration::from_millis(20);

/// A measured phase under way: [`Phase::begin`] prints its start line.
pub struct Phase {
    name: &'static str,
    start: std::time::Instant,
}

impl Phase {
    /// Prints `{"begin":NAME,"pause_ns":…}`, sleeps that long, then
    /// starts the clock. The pause lets the line leave before the work
    /// takes the CPU: in a one-vCPU guest, hull-agent forwards it only when
    /// it gets to run.
    pub fn begin(name: &'static str) -> Phase {
        println!("{{\"begin\":\"{name}\",\"pause_ns\":{}}}", PAUSE.as_nanos());
        std::thread::sleep(PAUSE);
        Phase {
            name,
            start: std::time::Instant::now(),
        }
    }

    /// Stops the clock and prints the measurement.
    pub fn end(self, ops: u64, bytes: u64, check: String) {
        let elapsed = self.start.elapsed();
        let m = Measurement {
            name: self.name,
            ops,
            bytes,
            elapsed,
            check,
        };
        println!("{}", m.to_json());
    }
}

/// One measurement, printed as a JSON line.
pub struct Measurement {
    /// What was measured (a stable key, e.g. `getpid`).
    pub name: &'static str,
    /// Operations done (calls, files, requests, words hashed).
    pub ops: u64,
    /// Bytes moved, 0 where that means nothing.
    pub bytes: u64,
    /// The workload's own elapsed time.
    pub elapsed: Duration,
    /// A value that shows the work happened (a hash, a count).
    pub check: String,
}

impl Measurement {
    /// The measurement as one line of JSON.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"name\":\"{}\",\"ops\":{},\"bytes\":{},\"ns\":{},\"check\":\"{}\"}}",
            self.name,
            self.ops,
            self.bytes,
            self.elapsed.as_nanos(),
            self.check.replace(['"', '\\'], "_")
        )
    }
}

/// A workload's failure, printed on stderr.
pub type Result<T> = std::result::Result<T, String>;

/// Parses argument `index` as a number.
fn number(args: &[String], index: usize) -> Result<u64> {
    let raw = args
        .get(index)
        .ok_or_else(|| format!("argument {index} is missing"))?;
    raw.parse()
        .map_err(|err| format!("argument {index} ({raw}): {err}"))
}

/// Argument `index` as a string.
fn text(args: &[String], index: usize) -> Result<&str> {
    args.get(index)
        .map(String::as_str)
        .ok_or_else(|| format!("argument {index} is missing"))
}

/// Runs the workload `args[0]` names; its phases print their lines.
fn run(args: &[String]) -> Result<()> {
    let what = text(args, 0)?;
    match what {
        "nop" => Ok(()),
        "hash" => {
            cpu::hash(number(args, 1)?);
            Ok(())
        }
        "memcpy" => {
            cpu::memcpy(number(args, 1)?, number(args, 2)?);
            Ok(())
        }
        "getpid" => {
            sys::getpid(number(args, 1)?);
            Ok(())
        }
        "openclose" => sys::open_close(number(args, 1)?, text(args, 2)?),
        "spawn" => sys::spawn(number(args, 1)?),
        "seqio" => io::sequential(text(args, 1)?, number(args, 2)?),
        "smallfiles" => io::small_files(text(args, 1)?, number(args, 2)?),
        "sink" => net::sink(number(args, 1)?),
        "tcp-push" => net::tcp_push(text(args, 1)?, number(args, 2)?),
        "http-get" => net::http_get(text(args, 1)?, number(args, 2)?),
        "http-load" => net::http_load(text(args, 1)?, number(args, 2)?, number(args, 3)?),
        other => Err(format!("unknown workload {other:?}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => {}
        Err(err) => {
            eprintln!("hull-bench-work {}: {err}", args.join(" "));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_is_one_json_line() {
        let m = Measurement {
            name: "hash",
            ops: 2,
            bytes: 16,
            elapsed: Duration::from_micros(1500),
            check: "a\"b".into(),
        };
        assert_eq!(
            m.to_json(),
            r#"{"name":"hash","ops":2,"bytes":16,"ns":1500000,"check":"a_b"}"#
        );
    }

    #[test]
    fn arguments() {
        let args: Vec<String> = ["hash", "16"].iter().map(|s| s.to_string()).collect();
        assert_eq!(number(&args, 1), Ok(16));
        assert!(number(&args, 2).is_err());
        assert!(number(&args, 0).is_err());
        assert!(run(&["bogus".to_string()]).is_err());
    }
}
