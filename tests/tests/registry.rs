//! Registries: `hull push`, `pull`, `login`, `logout` and the pull `run`
//! does, against a real registry (Debian's docker-registry) that each test
//! starts on the loopback of its own network namespace.

use hull_tests::harness::{ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use hull_tests::registry::{curl, TestRegistry};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// The directory `hull login` keeps credentials in for these tests.
fn config_dir(hull: &Hull) -> PathBuf {
    hull.scratch.path().join("config")
}

/// `hull ARGS` with the test's own credentials file and, if given, another
/// state root (an empty image store, to see layers really downloaded).
fn hull_in(hull: &Hull, root: Option<&Path>, args: &[&str]) -> Output {
    let mut command = hull.command(args);
    command
        .env("HULL_CONFIG", config_dir(hull))
        .env_remove("HULL_INSECURE_REGISTRIES");
    if let Some(root) = root {
        command.env("HULL_ROOT", root);
    }
    command.output().expect("running hull")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// The digest in `TAG: digest: sha256:… size: N`.
fn pushed_digest(push_output: &str) -> String {
    let line = push_output
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .expect("no digest line in push output");
    let digest = line
        .split(": digest: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    digest.to_string()
}

#[test]
fn push_then_pull_by_tag_and_digest_and_run() {
    let hull = Hull::with_busybox();
    let registry = TestRegistry::start(&hull, 5000, None);
    let name = registry.name("test/busybox:v1");
    assert_ok(&hull_in(&hull, None, &["tag", BUSYBOX_IMAGE, &name]), "tag");

    let out = hull_in(&hull, None, &["push", &name]);
    assert_ok(&out, "push");
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "The push refers to repository [{}]\n",
            registry.name("test/busybox")
        )),
        "{text}"
    );
    assert!(text.contains(": Pushed"), "{text}");
    let digest = pushed_digest(&text);
    let local = stdout(&hull_in(
        &hull,
        None,
        &["images", "--digests", "--no-trunc"],
    ));
    assert!(
        local.contains(&digest),
        "pushed digest {digest} is not the local manifest's: {local}"
    );

    // The management form, as Docker's `image push`.
    let again = hull_in(&hull, None, &["image", "push", &name]);
    assert_ok(&again, "second push");
    assert!(
        stdout(&again).contains(": Layer already exists"),
        "{}",
        stdout(&again)
    );
    assert_eq!(pushed_digest(&stdout(&again)), digest);

    // Into an empty store: every layer is downloaded and verified.
    let fresh = hull.scratch.path().join("fresh-root");
    let out = hull_in(&hull, Some(&fresh), &["pull", &name]);
    assert_ok(&out, "pull");
    let text = stdout(&out);
    assert!(text.contains("v1: Pulling from test/busybox\n"), "{text}");
    assert!(text.contains(": Pull complete\n"), "{text}");
    assert!(!text.contains("Already exists"), "{text}");
    assert!(text.contains(&format!("Digest: {digest}\n")), "{text}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}\n")),
        "{text}"
    );
    assert!(text.ends_with(&format!("\n{name}\n")), "{text}");

    let images = stdout(&hull_in(&hull, Some(&fresh), &["images", "--digests"]));
    let row = images
        .lines()
        .find(|l| l.starts_with(&registry.name("test/busybox")))
        .unwrap_or_else(|| panic!("pulled image not listed: {images}"));
    assert!(row.contains("v1") && row.contains(&digest), "{images}");

    let again = hull_in(&hull, Some(&fresh), &["image", "pull", &name]);
    assert_ok(&again, "second pull");
    assert!(
        stdout(&again).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        stdout(&again)
    );

    // The original store has the layers (from load): nothing to download.
    assert_ok(&hull_in(&hull, None, &["rmi", &name]), "rmi");
    let pinned = format!("{}@{digest}", registry.name("test/busybox"));
    let out = hull_in(&hull, None, &["pull", &pinned]);
    assert_ok(&out, "pull by digest");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{digest}: Pulling from test/busybox")),
        "{text}"
    );
    assert!(text.contains(": Already exists"), "{text}");
    assert!(text.contains(&format!("Digest: {digest}")), "{text}");

    let out = hull_in(
        &hull,
        Some(&fresh),
        &["run", "--rm", &name, "echo", "pulled and running"],
    );
    assert_ok(&out, "run of the pulled image");
    assert_eq!(stdout(&out), "pulled and running\n");
}

#[test]
fn missing_images_fail_clearly_and_run_pulls_what_it_lacks() {
    let hull = Hull::with_busybox();
    let registry = TestRegistry::start(&hull, 5000, None);
    let name = registry.name("test/busybox:v1");
    assert_ok(&hull_in(&hull, None, &["tag", BUSYBOX_IMAGE, &name]), "tag");
    assert_ok(&hull_in(&hull, None, &["push", &name]), "push");

    let missing = registry.name("test/nope:latest");
    let out = hull_in(&hull, None, &["pull", &missing]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "manifest for {missing} not found: manifest unknown"
        )),
        "{}",
        stderr(&out)
    );
    let out = hull_in(&hull, None, &["pull", &registry.name("test/busybox:v2")]);
    assert_eq!(out.status.code(), Some(1));
    let out = hull_in(&hull, None, &["push", &registry.name("test/other:v1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("An image does not exist locally with the tag"),
        "{}",
        stderr(&out)
    );

    let fresh = hull.scratch.path().join("fresh-root");
    let out = hull_in(
        &hull,
        Some(&fresh),
        &["run", "--rm", "--pull", "never", &name, "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let out = hull_in(&hull, Some(&fresh), &["run", "--rm", &missing, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not found: manifest unknown"),
        "{}",
        stderr(&out)
    );

    let out = hull_in(
        &hull,
        Some(&fresh),
        &["run", "--rm", &name, "echo", "auto-pulled"],
    );
    assert_ok(&out, "run of a missing image");
    assert_eq!(
        stdout(&out),
        "auto-pulled\n",
        "the pull's output went to stdout"
    );
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("Unable to find image '{name}' locally\n")),
        "{err}"
    );
    assert!(err.contains("Status: Downloaded newer image for"), "{err}");
    let out = hull_in(&hull, Some(&fresh), &["run", "--rm", &name, "true"]);
    assert_ok(&out, "second run");
    assert!(
        !stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn login_and_logout_with_htpasswd() {
    let hull = Hull::with_busybox();
    let registry = TestRegistry::start(&hull, 5001, Some(&[("alice", "wonderland")]));
    let name = registry.name("private/busybox:v1");
    assert_ok(&hull_in(&hull, None, &["tag", BUSYBOX_IMAGE, &name]), "tag");
    let auth_file = config_dir(&hull).join("auth.json");

    let out = hull_in(&hull, None, &["push", &name]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "push without credentials: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));

    let out = hull
        .command([
            "login",
            "-u",
            "alice",
            "--password-stdin",
            &registry.address,
        ])
        .env("HULL_CONFIG", config_dir(&hull))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"wrong\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a wrong password was accepted: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(!auth_file.exists(), "a failed login stored credentials");

    let out = hull
        .command([
            "login",
            "-u",
            "alice",
            "--password-stdin",
            &registry.address,
        ])
        .env("HULL_CONFIG", config_dir(&hull))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"wonderland\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_ok(&out, "login");
    assert_eq!(stdout(&out), "Login Succeeded\n");
    let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth file has mode {mode:o}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    let encoded = json["auths"][&registry.address]["auth"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
        b"alice:wonderland"
    );

    assert_ok(&hull_in(&hull, None, &["push", &name]), "push after login");
    let fresh = hull.scratch.path().join("fresh-root");
    let out = hull_in(&hull, Some(&fresh), &["pull", &name]);
    assert_ok(&out, "pull after login");

    let out = hull_in(&hull, None, &["logout", &registry.address]);
    assert_ok(&out, "logout");
    assert_eq!(
        stdout(&out),
        format!("Removing login credentials for {}\n", registry.address)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    assert!(json["auths"].get(&registry.address).is_none(), "{json}");

    let other_root = hull.scratch.path().join("other-root");
    let out = hull_in(&hull, Some(&other_root), &["pull", &name]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pull after logout: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
}

/// Uploads `data` as a blob of `repository` with the registry's API.
fn upload_blob(hull: &Hull, registry: &TestRegistry, repository: &str, data: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
    let file = hull.scratch.path().join("upload.blob");
    std::fs::write(&file, data).unwrap();
    let out = curl(
        hull,
        &[
            "-i",
            "-X",
            "POST",
            &format!("http://{}/v2/{repository}/blobs/uploads/", registry.address),
        ],
    );
    let headers = stdout(&out);
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no upload location: {headers}"))
        .trim()
        .to_string();
    let separator = if location.contains('?') { '&' } else { '?' };
    let out = curl(
        hull,
        &[
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{location}{separator}digest={digest}"),
        ],
    );
    assert!(out.status.success(), "blob upload failed: {}", stderr(&out));
    digest
}

/// Puts a manifest or index under `tag`; returns its digest.
fn put_manifest(
    hull: &Hull,
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    media_type: &str,
    data: &[u8],
) -> String {
    use sha2::Digest as _;
    let file = hull.scratch.path().join("upload.manifest");
    std::fs::write(&file, data).unwrap();
    let out = curl(
        hull,
        &[
            "-f",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!(
                "http://{}/v2/{repository}/manifests/{tag}",
                registry.address
            ),
        ],
    );
    assert!(
        out.status.success(),
        "manifest upload failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[test]
fn pull_takes_the_platform_from_a_manifest_list() {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let hull = Hull::with_busybox();
    let registry = TestRegistry::start(&hull, 5000, None);
    let amd64_name = registry.name("test/multi:amd64");
    assert_ok(
        &hull_in(&hull, None, &["tag", BUSYBOX_IMAGE, &amd64_name]),
        "tag",
    );
    let out = hull_in(&hull, None, &["push", &amd64_name]);
    assert_ok(&out, "push");
    let amd64_digest = pushed_digest(&stdout(&out));

    // An arm64 twin: the same layers, a config saying arm64.
    let out = curl(
        &hull,
        &[
            "-f",
            "-H",
            &format!("Accept: {OCI_MANIFEST}"),
            &format!("http://{}/v2/test/multi/manifests/amd64", registry.address),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let amd64_manifest_bytes = out.stdout.clone();
    let mut manifest: serde_json::Value = serde_json::from_slice(&amd64_manifest_bytes).unwrap();
    let amd64_config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let out = curl(
        &hull,
        &[
            "-f",
            &format!(
                "http://{}/v2/test/multi/blobs/{amd64_config_digest}",
                registry.address
            ),
        ],
    );
    let mut config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let arm64_config = serde_json::to_vec(&config).unwrap();
    let arm64_config_digest = upload_blob(&hull, &registry, "test/multi", &arm64_config);
    manifest["config"]["digest"] = arm64_config_digest.clone().into();
    manifest["config"]["size"] = arm64_config.len().into();
    let arm64_manifest = serde_json::to_vec(&manifest).unwrap();
    let arm64_digest = put_manifest(
        &hull,
        &registry,
        "test/multi",
        "arm64",
        OCI_MANIFEST,
        &arm64_manifest,
    );

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": OCI_MANIFEST, "digest": arm64_digest, "size": arm64_manifest.len(),
              "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
            { "mediaType": OCI_MANIFEST, "digest": amd64_digest, "size": amd64_manifest_bytes.len(),
              "platform": { "os": "linux", "architecture": "amd64" } },
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    let index_digest = put_manifest(
        &hull,
        &registry,
        "test/multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );

    let name = registry.name("test/multi:latest");
    let image_id = |root: &Path| {
        stdout(&hull_in(&hull, Some(root), &["images", "-q", "--no-trunc"]))
            .trim()
            .to_string()
    };

    let default_root = hull.scratch.path().join("default-root");
    let out = hull_in(&hull, Some(&default_root), &["pull", &name]);
    assert_ok(&out, "pull of a manifest list");
    assert!(
        stdout(&out).contains(&format!("Digest: {index_digest}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        image_id(&default_root),
        amd64_config_digest,
        "the amd64 image was not chosen"
    );

    let arm_root = hull.scratch.path().join("arm-root");
    let out = hull_in(
        &hull,
        Some(&arm_root),
        &["pull", "--platform", "linux/arm64", &name],
    );
    assert_ok(&out, "pull --platform linux/arm64");
    assert_eq!(
        image_id(&arm_root),
        arm64_config_digest,
        "the arm64 image was not chosen"
    );

    let out = hull_in(
        &hull,
        Some(&arm_root),
        &["pull", "--platform", "linux/s390x", &name],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        stderr(&out)
    );
}

/// Regular files under `dir`, recursively (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => found.extend(files_under(&path)),
            Ok(_) => found.push(path),
            Err(_) => {}
        }
    }
    found
}

/// A registry that misbehaves, on the loopback of `hull`'s network
/// namespace; the repository in the path picks how:
/// - `stall`: a manifest's headers, 10 bytes of its body, then nothing;
/// - `endless`: a manifest body that never ends;
/// - `bigblob`: a good manifest and config whose layer never ends.
///
/// Returns its `host:port`.
fn start_hostile_registry(hull: &Hull) -> String {
    use sha2::Digest as _;
    use std::io::{Read, Write};
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#.to_vec();
    let config_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&config)));
    let layer_digest = format!("sha256:{}", "ab".repeat(32));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": 1024}],
    })
    .to_string();
    // The listener is made in the namespace (a thread's setns), then
    // served from anywhere.
    let netns = std::fs::File::open(format!("/run/netns/{}", hull.netns)).unwrap();
    let listener = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: moves this thread alone into the test's namespace.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let (manifest, config) = (manifest.clone(), config.clone());
            let (config_digest, layer_digest) = (config_digest.clone(), layer_digest.clone());
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let mut first = text.split_whitespace();
                let (method, path) = (
                    first.next().unwrap_or_default(),
                    first.next().unwrap_or_default(),
                );
                let head = method == "HEAD";
                let answer = |socket: &mut std::net::TcpStream, kind: &str, body: &[u8]| {
                    let _ = write!(
                        socket,
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nDocker-Content-Digest: sha256:{}\r\n\r\n",
                        body.len(),
                        hex::encode(sha2::Sha256::digest(body))
                    );
                    if !head {
                        let _ = socket.write_all(body);
                    }
                };
                let manifest_type = "application/vnd.oci.image.manifest.v1+json";
                let endless = |socket: &mut std::net::TcpStream, kind: &str| {
                    let _ = write!(
                        socket,
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n{{\"a\":\""
                    );
                    let chunk = [b'x'; 64 << 10];
                    while !head && socket.write_all(&chunk).is_ok() {}
                };
                match path {
                    "/v2/" => answer(&mut socket, "application/json", b"{}"),
                    "/v2/stall/manifests/latest" => {
                        let _ = write!(
                            socket,
                            "HTTP/1.1 200 OK\r\nContent-Type: {manifest_type}\r\nContent-Length: 1000\r\n\r\n{{\"schemaV"
                        );
                        std::thread::sleep(std::time::Duration::from_secs(300));
                    }
                    "/v2/endless/manifests/latest" => endless(&mut socket, manifest_type),
                    "/v2/bigblob/manifests/latest" => {
                        answer(&mut socket, manifest_type, manifest.as_bytes())
                    }
                    p if p == format!("/v2/bigblob/blobs/{config_digest}") => {
                        answer(&mut socket, "application/octet-stream", &config)
                    }
                    p if p == format!("/v2/bigblob/blobs/{layer_digest}") => {
                        endless(&mut socket, "application/octet-stream")
                    }
                    _ => {
                        let _ = socket.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 57\r\n\r\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"none\"}]}",
                        );
                    }
                }
            });
        }
    });
    address
}

#[test]
fn hostile_registries_fail_in_bounded_time_and_leave_nothing() {
    let hull = Hull::new();
    let registry = start_hostile_registry(&hull);
    let pull = |repository: &str| {
        let started = std::time::Instant::now();
        let out = hull
            .command(["pull", &format!("{registry}/{repository}:latest")])
            // A stall fails after 3 s here (120 s by default).
            .env("HULL_REGISTRY_TIMEOUT", "3")
            .output()
            .expect("running hull");
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{repository}: {}", stdout(&out));
        assert!(
            took < std::time::Duration::from_secs(60),
            "{repository}: the pull took {took:?}"
        );
        stderr(&out)
    };
    let said = pull("stall");
    assert!(
        said.contains("timed out") || said.contains("timeout"),
        "{said}"
    );
    let said = pull("endless");
    assert!(
        said.contains("larger than the limit of 4194304 bytes"),
        "{said}"
    );
    let said = pull("bigblob");
    assert!(said.contains("1024"), "{said}");
    // Nothing of them was kept.
    assert_eq!(ok(&hull, &["images", "-q"]), "");
    let left = files_under(&hull.root().join("image/blobs"));
    assert!(left.is_empty(), "{left:?}");
    let left = files_under(&hull.root().join("image/layers"));
    assert!(left.is_empty(), "{left:?}");
    // A bad setting is an error, not a default.
    let out = hull
        .command(["pull", &format!("{registry}/stall:latest")])
        .env("HULL_REGISTRY_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid HULL_REGISTRY_TIMEOUT: 'soon'"),
        "{}",
        stderr(&out)
    );
}
