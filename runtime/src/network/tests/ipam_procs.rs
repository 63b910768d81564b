//! IPAM under concurrent processes: several copies of this test binary
//! allocate from one lease file at once.

use crate::network::ipam::Ipam;
use crate::network::subnet::Subnet;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

const DIR_VAR: &str = "HULL_TEST_IPAM_DIR";
const TAG_VAR: &str = "HULL_TEST_IPAM_TAG";
const PROCESSES: usize = 4;
const PER_PROCESS: usize = 25;

fn ipam(dir: &Path) -> Ipam {
    let subnet: Subnet = "10.89.0.0/24".parse().unwrap();
    Ipam::new(dir, "testnet", subnet, subnet.first_host())
}

/// The child: allocates `PER_PROCESS` addresses. Ignored in normal runs;
/// started by `processes_never_share_an_address` with its variables set.
#[test]
#[ignore = "helper process of processes_never_share_an_address"]
fn ipam_child_allocates() {
    let (Ok(dir), Ok(tag)) = (std::env::var(DIR_VAR), std::env::var(TAG_VAR)) else {
        return;
    };
    let ipam = ipam(Path::new(&dir));
    for i in 0..PER_PROCESS {
        ipam.allocate(&format!("{tag}-{i}"), None, None).unwrap();
    }
}

#[test]
fn processes_never_share_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "network::tests::ipam_procs::ipam_child_allocates",
                    "--ignored",
                    "--test-threads=1",
                    "--quiet",
                ])
                .env(DIR_VAR, dir.path())
                .env(TAG_VAR, format!("p{p}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "child failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let leases = ipam(dir.path()).leases().unwrap();
    assert_eq!(
        leases.len(),
        PROCESSES * PER_PROCESS,
        "a child's allocations were lost"
    );
    let unique: HashSet<_> = leases.iter().map(|l| l.ip).collect();
    assert_eq!(
        unique.len(),
        leases.len(),
        "an address was handed out twice"
    );
}
