//! What Hull's end-to-end tests share: OCI image archives built from
//! Debian's busybox-static (and hostile ones built by hand), and a harness
//! that runs the real `hull` binary against a state root of its own.

pub mod containerd;
pub mod cri;
pub mod harness;
pub mod registry;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::Path;

/// Where Debian's busybox-static installs busybox.
pub const BUSYBOX: &str = "/bin/busybox";

/// One entry of a layer tarball. Paths are written to the tar header as
/// given, unchecked, so that tests can build hostile layers.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Path in the layer.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Path in the layer.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Path in the layer.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A hard link to an earlier entry.
    Hardlink {
        /// Path in the layer.
        path: String,
        /// The earlier entry's path.
        target: String,
    },
}

impl Entry {
    /// A regular file with mode 0644.
    pub fn file(path: &str, data: &[u8]) -> Self {
        Entry::File {
            path: path.into(),
            mode: 0o644,
            data: data.to_vec(),
        }
    }

    /// A directory with mode 0755.
    pub fn dir(path: &str) -> Self {
        Entry::Dir {
            path: path.into(),
            mode: 0o755,
        }
    }

    /// A symbolic link.
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
}

/// Writes `text` into a tar header field without the tar crate's path checks.
fn raw_name(field: &mut [u8], text: &str) -> Result<()> {
    if text.len() > field.len() {
        bail!("name {text} is too long for a plain tar header");
    }
    field.fill(0);
    field[..text.len()].copy_from_slice(text.as_bytes());
    Ok(())
}

/// A layer tarball (uncompressed) of `entries`.
pub fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        let (path, data): (&str, &[u8]) = match entry {
            Entry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                (path, &[])
            }
            Entry::File { path, mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (path, data)
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                raw_name(&mut header.as_old_mut().linkname, target)?;
                (path, &[])
            }
            Entry::Hardlink { path, target } => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                raw_name(&mut header.as_old_mut().linkname, target)?;
                (path, &[])
            }
        };
        raw_name(&mut header.as_old_mut().name, path)?;
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data)?;
    }
    Ok(builder.into_inner()?)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// The process settings of an image's config.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub workdir: String,
    /// `User`.
    pub user: String,
    /// `Volumes`: the image's `VOLUME` paths.
    pub volumes: Vec<String>,
}

/// Writes an OCI image archive (a tar of an OCI layout) named `name` with
/// the given layers (bottom first, gzip-compressed in the archive).
pub fn write_oci_archive(
    out: &Path,
    name: &str,
    layers: &[Vec<u8>],
    settings: &ImageSettings,
) -> Result<()> {
    write_archive(out, name, layers, settings, false)
}

fn write_archive(
    out: &Path,
    name: &str,
    layers: &[Vec<u8>],
    settings: &ImageSettings,
    docker_manifest: bool,
) -> Result<()> {
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(layer)));
        let compressed = gzip(layer)?;
        let digest = sha256_hex(&compressed);
        layer_descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{digest}"),
            "size": compressed.len(),
        }));
        blobs.push((digest, compressed));
    }
    let config = serde_json::json!({
        "created": "2026-11-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": settings.cmd,
            "Entrypoint": if settings.entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(settings.entrypoint) },
            "Env": settings.env,
            "WorkingDir": settings.workdir,
            "User": settings.user,
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": [{ "created": "2026-11-01T00:00:00Z", "created_by": "hull-tests" }],
    });
    let mut config = config;
    if !settings.volumes.is_empty() {
        let volumes: serde_json::Map<String, serde_json::Value> = settings
            .volumes
            .iter()
            .map(|path| (path.clone(), serde_json::json!({})))
            .collect();
        config["config"]["Volumes"] = serde_json::Value::Object(volumes);
    }
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = sha256_hex(&config_bytes);
    blobs.push((config_digest.clone(), config_bytes.clone()));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config_bytes.len(),
        },
        "layers": layer_descriptors.clone(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = sha256_hex(&manifest_bytes);
    blobs.push((manifest_digest.clone(), manifest_bytes.clone()));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest_bytes.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap_or("latest"),
            },
        }],
    });

    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut archive = tar::Builder::new(file);
    let mut add = |path: &str, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, path, data)?;
        Ok(())
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &serde_json::to_vec(&index)?)?;
    if docker_manifest {
        let layer_paths: Vec<String> = layer_descriptors
            .iter()
            .filter_map(|d| d["digest"].as_str())
            .map(|d| format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
            .collect();
        let docker = serde_json::json!([{
            "Config": format!("blobs/sha256/{config_digest}"),
            "RepoTags": [name],
            "Layers": layer_paths,
        }]);
        add("manifest.json", &serde_json::to_vec(&docker)?)?;
    }
    for (digest, data) in &blobs {
        add(&format!("blobs/sha256/{digest}"), data)?;
    }
    archive.into_inner()?.sync_all()?;
    Ok(())
}

/// The entries of a busybox root file system: busybox and a link per applet.
pub fn busybox_rootfs() -> Result<Vec<Entry>> {
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("reading {BUSYBOX} (apt-get install busybox-static)"))?;
    let output = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .context("listing busybox applets")?;
    let mut entries = vec![
        Entry::dir("bin"),
        Entry::dir("etc"),
        Entry::dir("root"),
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
        Entry::dir("home"),
        Entry::dir("home/user"),
        Entry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: busybox,
        },
        Entry::file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        Entry::file("etc/group", b"root:x:0:\nuser:x:1000:\nwheel:x:10:user\nnogroup:x:65534:\n"),
    ];
    for applet in String::from_utf8_lossy(&output.stdout).lines() {
        let applet = applet.trim();
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            entries.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
        }
    }
    Ok(entries)
}

/// Writes the standard test image: busybox-static as one layer, `sh` as its command.
pub fn write_busybox_archive(out: &Path, name: &str) -> Result<()> {
    let layer = layer_tar(&busybox_rootfs()?)?;
    let settings = ImageSettings {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..Default::default()
    };
    // Docker's manifest.json beside the OCI layout: `docker load` (20.10)
    // reads it, Hull the layout.
    write_archive(out, name, &[layer], &settings, true)
}
