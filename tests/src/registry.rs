//! A real registry for tests: Debian's docker-registry, on the loopback of
//! a test's own network namespace.

use crate::harness::{stdout, Hull};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's registry (package docker-registry).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A docker-registry serving from a temporary directory, listening on
/// 127.0.0.1 inside a test's network namespace (so any port is free),
/// killed when dropped.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    /// Starts a registry on `127.0.0.1:port` in `hull`'s namespace, with
    /// htpasswd authentication when `users` is given (`(name, password)`).
    pub fn start(hull: &Hull, port: u16, users: Option<&[(&str, &str)]>) -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install docker-registry (scripts/setup.sh does)"
        );
        let dir = hull.scratch.path().join(format!("registry-{port}"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            dir.join("data").display()
        );
        if let Some(users) = users {
            let htpasswd = dir.join("htpasswd");
            let lines: String = users
                .iter()
                .map(|(name, password)| format!("{name}:{}\n", bcrypt::hash(password, 4).unwrap()))
                .collect();
            std::fs::write(&htpasswd, lines).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hull-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        // `ip netns exec` execs the registry: the child's pid is the registry's.
        let child = hull
            .in_netns([REGISTRY_BIN, "serve", config_path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let registry = TestRegistry { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = curl(
                hull,
                &[
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://{}/v2/", registry.address),
                ],
            );
            let code = stdout(&out);
            if code == "200" || code == "401" {
                return registry;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not come up: {}",
                std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ADDRESS/path`.
    pub fn name(&self, path: &str) -> String {
        format!("{}/{path}", self.address)
    }
}

/// `curl -sS ARGS` inside the test's namespace.
pub fn curl(hull: &Hull, args: &[&str]) -> Output {
    hull.in_netns(["curl", "-sS"].iter().chain(args))
        .output()
        .expect("running curl")
}
