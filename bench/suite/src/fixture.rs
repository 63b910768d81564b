//! A small fixed `results.json` for the rendering tests.

use crate::results::Results;

/// A small fixed results.json, as a run writes it.
pub const FIXTURE: &str = r#"{
  "date": "2026-12-03T12:00:00Z",
  "machine": {"cpu": "Test CPU", "cores": 2, "memory_mib": 24105,
              "kernel": "6.1.0-test", "kvm": "none"},
  "versions": {"backend": "qemu", "accel": "tcg", "hull": "hull 0.1.0",
               "qemu": "QEMU emulator version 7.2.0", "runc": "runc version 1.1.5"},
  "config": {"runs": "3"},
  "rows": [
    {"group": "start", "key": "start.run_true", "what": "run --rm true, cold",
     "unit": "ms", "lower_is_better": true,
     "samples": {"hull": [1500, 1600, 1550, 1700], "floor": [1000, 1100],
                 "runc": [25, 30, 27], "host": [1.0, 1.2, 0.8]}},
    {"group": "start", "key": "start.phase_boot", "what": "boot phase",
     "unit": "ms", "lower_is_better": true, "samples": {"hull": [900]}},
    {"group": "network", "key": "net.tcp", "what": "TCP throughput",
     "unit": "Gbit/s", "lower_is_better": false,
     "samples": {"hull": [0.4, 0.5], "runc": [8.0, 9.0], "host": [20.0]}},
    {"group": "density", "key": "density.n1", "what": "host memory, 1 idle container",
     "unit": "MiB", "lower_is_better": true, "samples": {"hull": [95.0], "runc": [0.5]}},
    {"group": "density", "key": "density.n5", "what": "host memory, 5 idle containers",
     "unit": "MiB", "lower_is_better": true, "samples": {"hull": [470.0], "runc": [2.5]}}
  ],
  "notes": ["a note"],
  "seconds": 600
}"#;

/// The fixture, parsed.
pub fn fixture() -> Results {
    match serde_json::from_str(FIXTURE) {
        Ok(r) => r,
        Err(err) => panic!("fixture: {err}"),
    }
}
