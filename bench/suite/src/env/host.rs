//! The bare host: the same static programs, run directly, on a directory
//! of the scratch area's file system.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host as an environment.
pub struct Host {
    /// The directory the file workloads use on the host.
    pub dir: PathBuf,
    /// busybox's `true` from the rootfs (the same binary the containers run).
    pub true_bin: PathBuf,
}

impl Host {
    /// Makes the host's work directory.
    pub fn setup(scratch: &Path, rootfs: &Path) -> Result<Host> {
        let dir = scratch.join("host-dir");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Host {
            dir,
            true_bin: rootfs.join("bin/true"),
        })
    }

    /// A container directory argument mapped to the host's directory.
    pub fn map_dir(&self, arg: &str) -> String {
        if arg == super::ROOT_DIR || arg == super::VOLUME_DIR {
            self.dir.display().to_string()
        } else {
            arg.to_string()
        }
    }

    /// fork+exec of `true` (busybox's, as in the containers).
    pub fn true_cmd(&self) -> Command {
        Command::new(&self.true_bin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_container_directories() {
        let host = Host {
            dir: PathBuf::from("/s/host-dir"),
            true_bin: PathBuf::from("/s/rootfs/bin/true"),
        };
        assert_eq!(host.map_dir("/vol"), "/s/host-dir");
        assert_eq!(host.map_dir("/var/bench"), "/s/host-dir");
        assert_eq!(host.map_dir("16"), "16");
    }
}
