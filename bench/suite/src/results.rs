//! What a run measured, as `results.json` keeps it: every sample of every
//! row, the machine and the versions.

use crate::stats::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The environments a row can have samples for, in table order.
pub const ENVS: [&str; 4] = ["hull", "floor", "runc", "host"];

/// An environment's name as the report shows it.
pub fn env_label(env: &str) -> &str {
    match env {
        "hull" => "Hull",
        "floor" => "boot floor",
        "runc" => "runc",
        "host" => "host",
        other => other,
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// The host's kernel release.
    pub kernel: String,
    /// What `/dev/kvm` is (from `hull info`).
    pub kvm: String,
}

/// One measured quantity, with its samples per environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The table it belongs to (`start`, `cpu`, …).
    pub group: String,
    /// A stable key (`start.run_true`).
    pub key: String,
    /// What was measured, in a sentence.
    pub what: String,
    /// The unit of the samples.
    pub unit: String,
    /// Whether a smaller value is better (times, memory).
    pub lower_is_better: bool,
    /// Samples by environment (`hull`, `runc`, `host`, `floor`).
    pub samples: BTreeMap<String, Vec<f64>>,
    /// The same quantity by the workload's own clock, where it has one
    /// (a guest's clock under an emulator can be far off).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub self_timed: BTreeMap<String, Vec<f64>>,
    /// The same quantity by the host's clock: from the arrival of the
    /// workload's begin line to that of its result line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_timed: BTreeMap<String, Vec<f64>>,
}

impl Row {
    /// A row without samples yet.
    pub fn new(group: &str, key: &str, what: &str, unit: &str, lower_is_better: bool) -> Row {
        Row {
            group: group.into(),
            key: key.into(),
            what: what.into(),
            unit: unit.into(),
            lower_is_better,
            samples: BTreeMap::new(),
            self_timed: BTreeMap::new(),
            host_timed: BTreeMap::new(),
        }
    }

    /// The summary of environment `env`'s samples.
    pub fn summary(&self, env: &str) -> Option<Summary> {
        self.samples.get(env).and_then(|s| Summary::of(s))
    }
}

/// A whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// When it ran (UTC).
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// Backend, accelerator and program versions (`hull`, `qemu`, `runc`, …).
    pub versions: BTreeMap<String, String>,
    /// The sizes and repeats it ran with.
    pub config: BTreeMap<String, String>,
    /// Every row.
    pub rows: Vec<Row>,
    /// Remarks a reader needs (failures of a part, caveats).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Groups that failed (their rows are missing).
    #[serde(default)]
    pub failed: Vec<String>,
    /// Seconds the run took.
    #[serde(default)]
    pub seconds: f64,
    /// What the run was made with, for a reader, where the versions do not
    /// say it (a baseline: the configuration before a cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The baseline this run is compared with (`--before`), without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Box<Results>>,
}

/// Reading or writing `results.json`.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid results.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl Results {
    /// The groups in the order their rows first appear.
    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !groups.contains(&row.group.as_str()) {
                groups.push(&row.group);
            }
        }
        groups
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Results, ResultsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ResultsError::Json {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes `path` (pretty-printed).
    pub fn save(&self, path: &Path) -> Result<(), ResultsError> {
        let text = serde_json::to_string_pretty(self).map_err(|source| ResultsError::Json {
            path: path.display().to_string(),
            source,
        })?;
        std::fs::write(path, text + "\n").map_err(|source| ResultsError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}
