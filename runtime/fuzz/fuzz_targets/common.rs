//! Shared set-up for the image targets: a throw-away image store per input,
//! nested in directories that must stay empty (so that anything written
//! outside the store shows), OCI/Docker archives built around the input and
//! loaded through `ImageStore::load_archive` (the `hull load` path: bounded
//! reads, digest and size checks, platform selection, config decoding,
//! layer unpacking), and fixed blobs that fuzzed documents can point at
//! through placeholders (a fuzzer cannot find sha256 digests by itself):
//!
//! | placeholder  | expands to                                   |
//! |--------------|----------------------------------------------|
//! | `$CFG`       | `sha256:…` of the fixed image config         |
//! | `$CFGSIZE`   | its size                                     |
//! | `$CFGHEX`    | its bare hex (Docker archive blob paths)     |
//! | `$LAYER`     | `sha256:…` of the fixed gzip layer           |
//! | `$LAYERSIZE` | its size                                     |
//! | `$LAYERHEX`  | its bare hex                                 |
//! | `$DIFF`      | the fixed layer's diff_id (`sha256:…`)       |
//! | `$MAN`       | `sha256:…` of the fixed manifest (→ config+layer) |
//! | `$MANSIZE`   | its size                                     |
//!
//! Input without placeholders reaches Hull byte for byte.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hull_runtime::image::{Digest, ImageStore, LoadedImage, Platform};
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Blobs every archive carries besides the fuzzed document.
pub struct Fixed {
    /// The layer, uncompressed (a legacy Docker archive's `layer.tar`).
    pub layer_tar: Vec<u8>,
    /// The layer, gzip-compressed (the OCI blob).
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    tokens: Vec<(&'static [u8], Vec<u8>)>,
}

fn layer_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, link: Option<&str>, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        header.set_path(path).unwrap();
        header.set_cksum();
        builder.append(&header, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, None, b"");
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        0o644,
        None,
        b"root:x:0:0:root:/root:/bin/sh\nfuzz:x:1000:1000:fuzz:/home/fuzz:/bin/sh\n",
    );
    add("etc/group", tar::EntryType::Regular, 0o644, None, b"root:x:0:\nfuzz:x:1000:\nwheel:x:10:fuzz\n");
    add("bin/", tar::EntryType::Directory, 0o755, None, b"");
    add("bin/sh", tar::EntryType::Regular, 0o755, None, b"#!fuzz\n");
    add("bin/ash", tar::EntryType::Symlink, 0o777, Some("sh"), b"");
    add("bin/busybox", tar::EntryType::Link, 0o755, Some("bin/sh"), b"");
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn host_arch() -> String {
    let host = Platform::host().to_string();
    host.split('/').nth(1).unwrap_or("amd64").to_owned()
}

/// The fixed blobs, built once.
pub fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let layer_tar = layer_tar();
        let layer = gzip(&layer_tar);
        let diff_id = Digest::of_bytes(&layer_tar);
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": host_arch(),
            "os": "linux",
            "config": { "User": "fuzz", "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/" },
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "fuzz" }],
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": Digest::of_bytes(&config).to_string(), "size": config.len() },
            "layers": [{ "mediaType": OCI_LAYER_GZIP, "digest": Digest::of_bytes(&layer).to_string(), "size": layer.len() }],
        }))
        .unwrap();
        let digest = |data: &[u8]| Digest::of_bytes(data).to_string().into_bytes();
        let hex = |data: &[u8]| Digest::of_bytes(data).hex().as_bytes().to_vec();
        let size = |data: &[u8]| data.len().to_string().into_bytes();
        // Longest first: `$CFGSIZE` must not be read as `$CFG` + `SIZE`.
        let mut tokens: Vec<(&'static [u8], Vec<u8>)> = vec![
            (b"$LAYERSIZE", size(&layer)),
            (b"$LAYERHEX", hex(&layer)),
            (b"$CFGSIZE", size(&config)),
            (b"$MANSIZE", size(&manifest)),
            (b"$CFGHEX", hex(&config)),
            (b"$LAYER", digest(&layer)),
            (b"$DIFF", diff_id.to_string().into_bytes()),
            (b"$CFG", digest(&config)),
            (b"$MAN", digest(&manifest)),
        ];
        tokens.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        Fixed {
            layer_tar,
            layer,
            config,
            manifest,
            tokens,
        }
    })
}

/// `data` with the placeholders expanded (bounded: at most ~18x growth,
/// well under Hull's 4 MiB JSON limit for any -max_len used here).
pub fn expand(data: &[u8]) -> Vec<u8> {
    let tokens = &fixed().tokens;
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    'outer: while let Some((&first, tail)) = rest.split_first() {
        if first == b'$' {
            for (token, value) in tokens {
                if rest.starts_with(token) {
                    out.extend_from_slice(value);
                    rest = &rest[token.len()..];
                    continue 'outer;
                }
            }
        }
        out.push(first);
        rest = tail;
    }
    out
}

/// `blobs/sha256/<hex>` of `data`.
pub fn blob_path(data: &[u8]) -> String {
    format!("blobs/sha256/{}", Digest::of_bytes(data).hex())
}

/// The fixed blobs as OCI layout entries.
pub fn fixed_blobs() -> Vec<(String, Vec<u8>)> {
    let f = fixed();
    [&f.config, &f.layer, &f.manifest]
        .into_iter()
        .map(|data| (blob_path(data), data.clone()))
        .collect()
}

/// A tar of regular files.
pub fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// The directories of one run: `<top>/in` holds the input files,
/// `<top>/jail/store` is the image store. Nothing may appear in `<top>` or
/// `<top>/jail` but these, whatever the input.
pub struct Scratch {
    top: tempfile::TempDir,
    inputs: BTreeSet<String>,
}

/// Where scratch directories go: `HULL_FUZZ_TMPDIR`, else /dev/shm (tmpfs:
/// fsync and syncfs cost nothing), else the system temp dir.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("HULL_FUZZ_TMPDIR") {
        return dir.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_owned();
    }
    std::env::temp_dir()
}

impl Scratch {
    pub fn new() -> Scratch {
        let top = tempfile::Builder::new()
            .prefix("hull-fuzz-")
            .tempdir_in(scratch_base())
            .expect("create scratch directory");
        fs::create_dir(top.path().join("in")).unwrap();
        fs::create_dir_all(top.path().join("jail/store")).unwrap();
        Scratch {
            top,
            inputs: BTreeSet::new(),
        }
    }

    pub fn store_root(&self) -> PathBuf {
        self.top.path().join("jail/store")
    }

    /// Writes an input file under `<top>/in`.
    pub fn input(&mut self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.top.path().join("in").join(name);
        fs::write(&path, data).unwrap();
        self.inputs.insert(name.to_owned());
        path
    }

    pub fn open_store(&self) -> ImageStore {
        ImageStore::open(&self.store_root()).expect("open a fresh image store")
    }

    /// Asserts nothing was written outside the store, and that the store
    /// holds only what a store holds (no temporary file or directory left
    /// behind by a failed load).
    pub fn check(&self) {
        let names = |dir: &Path| -> BTreeSet<String> {
            fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let top = self.top.path();
        assert_eq!(names(top), set(&["in", "jail"]), "something was written outside the store, in {}", top.display());
        assert_eq!(names(&top.join("jail")), set(&["store"]), "something was written outside the store, in {}/jail", top.display());
        assert_eq!(names(&top.join("in")), self.inputs, "the input directory changed");

        let root = self.store_root();
        let extra: Vec<String> = names(&root)
            .into_iter()
            .filter(|n| !matches!(n.as_str(), "blobs" | "layers" | "images.json" | "lock"))
            .collect();
        assert!(extra.is_empty(), "unexpected entries left in the store root: {extra:?}");
        let extra: Vec<String> = names(&root.join("blobs")).into_iter().filter(|n| n != "sha256").collect();
        assert!(extra.is_empty(), "temporary files left in blobs/: {extra:?}");
        for name in names(&root.join("blobs/sha256")) {
            assert!(is_hex64(&name), "unexpected entry blobs/sha256/{name}");
        }
        for name in names(&root.join("layers")) {
            assert!(is_hex64(&name), "temporary entry left in layers/: {name}");
            let meta = fs::symlink_metadata(root.join("layers").join(&name)).unwrap();
            assert!(meta.is_dir(), "layers/{name} is not a directory");
        }
    }
}

/// With HULL_FUZZ_DEBUG set (e.g. when replaying a seed with `cargo fuzz
/// run TARGET FILE`), prints what Hull made of the input.
pub fn debug<T: std::fmt::Debug, E: std::fmt::Display>(what: &str, result: &Result<T, E>) {
    if std::env::var_os("HULL_FUZZ_DEBUG").is_some() {
        match result {
            Ok(value) => eprintln!("{what}: ok: {value:?}"),
            Err(err) => eprintln!("{what}: error: {err}"),
        }
    }
}

fn is_hex64(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Loads an OCI layout whose index.json names `top` (of `media_type`, as
/// image `name`), with `blobs` and the fixed blobs beside it.
pub fn load_layout(media_type: &str, top: &[u8], name: &str, blobs: Vec<(String, Vec<u8>)>) {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": Digest::of_bytes(top).to_string(),
            "size": top.len(),
            "annotations": { "io.containerd.image.name": name },
        }],
    });
    let mut files = vec![
        ("oci-layout".to_owned(), OCI_LAYOUT.to_vec()),
        ("index.json".to_owned(), serde_json::to_vec(&index).unwrap()),
        (blob_path(top), top.to_vec()),
    ];
    files.extend(blobs);
    files.extend(fixed_blobs());
    load(&files);
}

/// Loads `files` as one archive into a fresh store; checks confinement;
/// exercises what a loaded image is used for.
pub fn load(files: &[(String, Vec<u8>)]) {
    let mut scratch = Scratch::new();
    let path = scratch.input("archive.tar", &archive(files));
    let store = scratch.open_store();
    let result = store.load_archive(&path);
    debug("load_archive", &result);
    scratch.check();
    if let Ok(loaded) = result {
        exercise(&store, &loaded);
        scratch.check();
    }
}

/// What Hull does with images once loaded: list them, resolve them by id
/// and name (which decodes the config again), build a container spec from
/// the config (user lookup in the layers' /etc/passwd), save them.
pub fn exercise(store: &ImageStore, loaded: &[LoadedImage]) {
    let _ = store.list();
    for image in loaded {
        let resolved = store
            .resolve(&image.id.to_string())
            .unwrap_or_else(|e| panic!("a loaded image does not resolve by its id {}: {e}", image.id));
        if let Some(reference) = &image.reference {
            let _ = store.resolve(&reference.full());
            let _ = store.resolve(&reference.familiar_string());
        }
        let layers: Vec<PathBuf> = resolved.diff_ids.iter().map(|d| store.layer_dir(d)).collect();
        for diff_id in &resolved.diff_ids {
            let _ = store.layer_size(diff_id);
        }
        let _ = hull_runtime::spec::build(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            resolved.config.config().as_ref(),
            &hull_runtime::spec::RunOptions::default(),
            &layers,
        );
    }
    let names: Vec<String> = loaded.iter().map(|i| i.id.to_string()).collect();
    let _ = store.save(&names, std::io::sink());
}
