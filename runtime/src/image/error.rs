//! The image store's error type.

use std::io;
use std::path::PathBuf;

use super::Digest;

/// Everything that can go wrong while importing, listing or resolving
/// images. Each message says what failed and on which path or digest; the
/// CLI adds the `Error: ` prefix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image has this name, tag, digest or id.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A container uses the image (`rmi` without `-f`); the message is Docker's.
    #[error("{0}")]
    InUse(String),

    /// A short image id matches several images.
    #[error("image id prefix '{0}' matches more than one image")]
    AmbiguousId(String),

    /// An image reference does not follow Docker's grammar; the message is
    /// Docker's own (e.g. `invalid reference format`).
    #[error("{0}")]
    InvalidReference(String),

    /// A `--platform` value is not `os[/arch[/variant]]`.
    #[error("invalid platform '{0}': expected os[/arch[/variant]], e.g. linux/amd64")]
    InvalidPlatform(String),

    /// A digest is not `sha256:` followed by 64 lowercase hex characters.
    #[error("invalid digest '{0}': expected sha256:<64 lowercase hex characters>")]
    InvalidDigest(String),

    /// A filesystem operation on the store or the archive failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `create directory`.
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The archive given to `hull load` is not a usable OCI image layout.
    #[error("invalid image archive {}: {reason}", path.display())]
    InvalidArchive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A blob's content does not hash to the digest it is stored under.
    #[error("blob {digest} does not match its digest (its content hashes to {actual})")]
    BlobDigestMismatch {
        /// The digest the blob claimed.
        digest: Digest,
        /// The digest of its actual content.
        actual: Digest,
    },

    /// A blob's size differs from the size its descriptor announces.
    #[error("blob {digest} is {actual} bytes but its descriptor says {expected} bytes")]
    BlobSizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The size of the blob.
        actual: u64,
    },

    /// A manifest, config or index blob the archive refers to is absent.
    #[error("blob {0} missing from archive")]
    MissingBlob(Digest),

    /// A layer blob the manifest refers to is absent.
    #[error("layer {0} missing from archive")]
    MissingLayer(Digest),

    /// A JSON document (index, manifest, config, `images.json`) is malformed.
    #[error("{what} is not valid: {reason}")]
    InvalidJson {
        /// Which document, e.g. `manifest sha256:…`.
        what: String,
        /// The parser's complaint.
        reason: String,
    },

    /// Something read from an untrusted source passed its size bound.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large, e.g. `index.json`.
        what: String,
        /// The bound, in bytes.
        limit: u64,
    },

    /// A `--filter` Docker does not have (`images --filter`).
    #[error("Invalid filter '{0}'")]
    Filter(String),

    /// A setting from the environment cannot be read.
    #[error("invalid {name}: '{value}'")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },

    /// A manifest's layer list and its config's `rootfs.diff_ids` disagree.
    #[error("manifest {manifest} lists {layers} layers but its config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// The manifest.
        manifest: Digest,
        /// How many layers it lists.
        layers: usize,
        /// How many diff_ids the config lists.
        diff_ids: usize,
    },

    /// A layer is in a format Hull cannot unpack (e.g. zstd).
    #[error("layer {layer} has unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// The layer blob.
        layer: Digest,
        /// Its media type.
        media_type: String,
    },

    /// A layer contains an entry Hull refuses to unpack: an escaping path,
    /// a path through a symlink, a dangling hardlink, an unsupported type…
    #[error("layer entry '{entry}' {reason} (in layer {layer})")]
    UnsafeLayerEntry {
        /// The layer blob.
        layer: Digest,
        /// The entry's path as written in the tar (control characters escaped).
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// Creating a layer entry on disk failed.
    #[error("cannot {action} layer entry '{entry}' (in layer {layer})")]
    LayerEntryIo {
        /// The layer blob.
        layer: Digest,
        /// The entry's path as written in the tar.
        entry: String,
        /// What was being done, e.g. `create file`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A layer's uncompressed content does not hash to the config's diff_id.
    #[error(
        "layer {layer} unpacks to {actual}, but the image config says its diff_id is {expected}"
    )]
    DiffIdMismatch {
        /// The layer blob.
        layer: Digest,
        /// The diff_id in the image config.
        expected: Digest,
        /// The digest of the uncompressed layer.
        actual: Digest,
    },

    /// The store's own files are inconsistent (e.g. a recorded image whose
    /// config blob is gone).
    #[error("image store {} is corrupt: {reason}", path.display())]
    CorruptStore {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> ImageError {
        ImageError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
