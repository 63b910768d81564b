//! Registries (`hull pull`, `hull push`, `hull login`) over the OCI
//! distribution API, with the `oci-client` crate.
//!
//! A registry is as hostile as an archive: manifests are read with a size
//! bound (oci-client reads them whole, so Hull fetches them itself, with
//! oci-client's token), every blob is hashed and size-checked before it is
//! stored, and a pulled image goes into the store through the same
//! [`import_image`] as `hull load`, which checks each layer's diff_id.
//! Registries are spoken to over HTTPS, except loopback ones and those in
//! `HULL_INSECURE_REGISTRIES`, which get plain HTTP as Docker's insecure
//! registries do.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::auth::Credentials;
use super::blobs::{MAX_BLOB_SIZE, MAX_JSON_SIZE};
use super::import::{descriptor_digest, import_image};
use super::platform::{is_index_type, is_manifest_type, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use super::table::ImageTable;
use super::{Digest, ImageError, ImageStore, Platform, Reference};

/// Registries (comma-separated `host[:port]`) spoken to over plain HTTP.
pub const INSECURE_REGISTRIES_ENV: &str = "HULL_INSECURE_REGISTRIES";
/// Bound on a manifest or index, as containerd's (4 MiB).
const MAX_MANIFEST_SIZE: u64 = MAX_JSON_SIZE;
/// How deep manifest lists may nest.
const MAX_INDEX_DEPTH: usize = 4;
/// Layers downloaded at once (Docker's default).
const CONCURRENT_DOWNLOADS: usize = 3;
/// Size of the chunks a blob is read from disk in when pushed.
const PUSH_READ_SIZE: usize = 1 << 20;
/// Bound on an error body read from a registry.
const MAX_ERROR_BODY: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a registry may leave a request without an answer, or stall in
/// the middle of a body, before the pull fails.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Sets another [`READ_TIMEOUT`], in seconds.
pub const READ_TIMEOUT_ENV: &str = "HULL_REGISTRY_TIMEOUT";

/// [`READ_TIMEOUT_ENV`] if set, else [`READ_TIMEOUT`].
fn read_timeout() -> Result<Duration, RegistryError> {
    match std::env::var(READ_TIMEOUT_ENV) {
        Ok(text) if !text.is_empty() => text
            .parse::<u64>()
            .ok()
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ImageError::InvalidSetting {
                    name: READ_TIMEOUT_ENV,
                    value: text,
                }
                .into()
            }),
        _ => Ok(READ_TIMEOUT),
    }
}
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// What Hull asks a registry for when it fetches a manifest.
const ACCEPTED_MANIFESTS: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];
const USER_AGENT: &str = concat!("hull/", env!("CARGO_PKG_VERSION"));

/// What can go wrong talking to a registry. The messages follow Docker's.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Storing or reading an image failed (including digest checks).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The registry has no manifest under this tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown {
        /// The reference as the user wrote it, normalised.
        reference: String,
    },
    /// The registry refused or failed a request; `message` is its own
    /// (`unauthorized: authentication required`).
    #[error("{message}")]
    Response {
        /// What the registry said.
        message: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// Why, with its causes.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS roots, crypto provider).
    #[error("cannot set up the HTTP client")]
    HttpSetup(#[source] reqwest::Error),
    /// An oci-client operation failed.
    #[error("{action}")]
    Client {
        /// What was being done, e.g. `pulling blob sha256:…`.
        action: String,
        /// oci-client's error.
        #[source]
        source: OciDistributionError,
    },
    /// A manifest list has no image for the platform asked for.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// The platform asked for.
        platform: Platform,
    },
    /// The registry sent something that is not an image manifest.
    #[error("{reference}: unsupported manifest media type {media_type}")]
    UnsupportedManifest {
        /// The reference pulled.
        reference: String,
        /// What it was.
        media_type: String,
    },
    /// `hull push` of a name the store does not have.
    #[error("An image does not exist locally with the tag: {0}")]
    NoLocalImage(String),
    /// `hull push` of a digest reference.
    #[error("cannot push a digest reference: {0}")]
    PushByDigest(String),
    /// `hull login` was refused.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The URL the credentials were tried on.
        url: String,
        /// The HTTP status, e.g. `401 Unauthorized`.
        status: String,
    },
}

/// Progress of a pull, for the CLI to show (`<layer>: Pull complete`).
#[derive(Debug)]
pub enum PullEvent<'a> {
    /// The manifest is known; layers come next (`TAG: Pulling from REPO`).
    Resolved,
    /// The layer blob is already in the store (`Already exists`).
    LayerExists(&'a Digest),
    /// The layer, of this many bytes, will be downloaded (`Pulling fs layer`).
    LayerWaiting(&'a Digest, u64),
    /// Bytes of the layer downloaded so far, and its size.
    LayerProgress(&'a Digest, u64, u64),
    /// The layer is downloaded and verified (`Download complete`).
    LayerDownloaded(&'a Digest),
    /// The image, this layer included, is unpacked and recorded (`Pull complete`).
    LayerComplete(&'a Digest),
}

/// Progress of a push, for the CLI to show (`<layer>: Pushed`).
#[derive(Debug)]
pub enum PushEvent<'a> {
    /// The layer is about to be checked and sent (`Preparing`).
    Preparing(&'a Digest),
    /// The registry has the layer already (`Layer already exists`).
    LayerExists(&'a Digest),
    /// The layer, of this many bytes, is being sent (`Pushing`).
    Pushing(&'a Digest, u64),
    /// The layer is sent (`Pushed`).
    Pushed(&'a Digest),
}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct PullOutcome {
    /// The digest the reference resolved to in the registry: of the
    /// manifest list when there is one, else of the image manifest.
    pub digest: Digest,
    /// The image id (config digest).
    pub id: Digest,
    /// The store had the image under this name already.
    pub up_to_date: bool,
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: usize,
}

/// Whether registry `domain` (`host[:port]`) is spoken to over plain HTTP:
/// loopback hosts always, as Docker treats 127.0.0.0/8; others when listed
/// in `HULL_INSECURE_REGISTRIES` (by `host:port`, or by `host` for any port).
pub fn is_insecure(domain: &str) -> bool {
    let configured = std::env::var(INSECURE_REGISTRIES_ENV).unwrap_or_default();
    is_insecure_with(domain, &configured)
}

fn is_insecure_with(domain: &str, configured: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    let host = host_of(&domain);
    if host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    configured
        .split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry == domain || entry == host)
}

/// The host of `host[:port]`, without the brackets of an IPv6 address.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    domain.rsplit_once(':').map_or(domain, |(host, _)| host)
}

/// A connection to one registry: oci-client for authentication and blobs,
/// a plain HTTP client for bounded manifest reads and the login check.
struct Registry {
    client: oci_client::Client,
    http: reqwest::Client,
    auth: RegistryAuth,
    credentials: Option<Credentials>,
    scheme: &'static str,
    /// Bearer token for the current operation, when the registry uses them.
    token: Option<String>,
}

/// rustls needs its crypto provider chosen once per process.
fn install_crypto_provider() {
    // Fails only when one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_client() -> Result<reqwest::Client, RegistryError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(read_timeout()?)
        .build()
        .map_err(RegistryError::HttpSetup)
}

impl Registry {
    fn connect(domain: &str, credentials: Option<Credentials>) -> Result<Registry, RegistryError> {
        install_crypto_provider();
        let insecure = is_insecure(domain);
        let registry_host = oci_reference(domain, "x", None)
            .resolve_registry()
            .to_owned();
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![registry_host])
        } else {
            ClientProtocol::Https
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(read_timeout()?),
            user_agent: USER_AGENT,
            platform_resolver: None,
            ..Default::default()
        });
        let auth = match &credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Registry {
            client,
            http: http_client()?,
            auth,
            credentials,
            scheme: if insecure { "http" } else { "https" },
            token: None,
        })
    }

    /// Authenticates for `operation` on the repository of `image`,
    /// keeping the bearer token (if any) for manifest requests.
    async fn authorize(
        &mut self,
        image: &oci_client::Reference,
        operation: RegistryOperation,
    ) -> Result<(), RegistryError> {
        self.token = self
            .client
            .auth(image, &self.auth, operation)
            .await
            .map_err(|source| {
                client_error(format!("authenticating to {}", image.registry()), source)
            })?;
        Ok(())
    }

    fn with_auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.token, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (None, None) => request,
        }
    }

    /// Fetches a manifest or index (at most [`MAX_MANIFEST_SIZE`]); returns
    /// its bytes and media type. `shown` names it in errors.
    async fn fetch_manifest(
        &self,
        image: &oci_client::Reference,
        target: &str,
        shown: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme,
            image.resolve_registry(),
            image.repository(),
            target
        );
        tracing::debug!(%url, "fetching manifest");
        let request = self.with_auth(
            self.http
                .get(&url)
                .header(reqwest::header::ACCEPT, ACCEPTED_MANIFESTS.join(", ")),
        );
        let mut response = request
            .send()
            .await
            .map_err(|err| unreachable(&url, &err))?;
        let status = response.status();
        if !status.is_success() {
            let message = error_message(response).await;
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(RegistryError::ManifestUnknown {
                    reference: shown.to_owned(),
                });
            }
            return Err(RegistryError::Response { message });
        }
        let too_large = || ImageError::TooLarge {
            what: format!("manifest for {shown}"),
            limit: MAX_MANIFEST_SIZE,
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_MANIFEST_SIZE)
        {
            return Err(too_large().into());
        }
        let header_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| unreachable(&url, &err))?
        {
            if (body.len() + chunk.len()) as u64 > MAX_MANIFEST_SIZE {
                return Err(too_large().into());
            }
            body.extend_from_slice(&chunk);
        }
        // The document's own mediaType wins over the header, which some
        // registries get wrong; an index without one has `manifests`.
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|err| ImageError::InvalidJson {
                what: format!("manifest for {shown}"),
                reason: err.to_string(),
            })?;
        let media_type = match document.get("mediaType").and_then(|m| m.as_str()) {
            Some(media_type) => media_type.to_owned(),
            None if document.get("manifests").is_some() => OCI_INDEX.to_owned(),
            None => match header_type {
                Some(header) if is_index_type(&header) || is_manifest_type(&header) => header,
                _ => OCI_MANIFEST.to_owned(),
            },
        };
        Ok((body, media_type))
    }

    /// Downloads blob `descriptor` into the store, verifying its size and
    /// digest; `on_progress` gets the bytes received so far.
    async fn download_blob(
        &self,
        store: &ImageStore,
        image: &oci_client::Reference,
        descriptor: &Descriptor,
        on_progress: impl Fn(u64),
    ) -> Result<(), RegistryError> {
        let digest = descriptor_digest(descriptor)?;
        let wanted = oci_client::manifest::OciDescriptor {
            media_type: descriptor.media_type().to_string(),
            digest: digest.to_string(),
            size: i64::try_from(descriptor.size()).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let action = || format!("pulling blob {digest}");
        let mut stream = self
            .client
            .pull_blob_stream(image, &wanted)
            .await
            .map_err(|source| client_error(action(), source))?;
        let mut writer = store.blobs.writer(&digest, descriptor.size())?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| RegistryError::Unreachable {
                url: format!("{} ({})", image.whole(), digest),
                reason: error_chain(&err),
            })?;
            writer.write(&chunk)?;
            on_progress(writer.written());
        }
        writer.commit()?;
        Ok(())
    }

    /// Uploads a stored blob unless the registry has it; returns whether
    /// it was sent.
    async fn upload_blob(
        &self,
        store: &ImageStore,
        image: &oci_client::Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let exists = self
            .client
            .blob_exists(image, &digest.to_string())
            .await
            .map_err(|source| client_error(format!("checking blob {digest}"), source))?;
        if exists {
            return Ok(false);
        }
        let file = store.blobs.open_blob(digest)?;
        let size = file
            .metadata()
            .map_err(|e| ImageError::io("inspect", store.blobs.path(digest), e))?
            .len();
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            use std::io::Read;
            let mut buffer = vec![0u8; PUSH_READ_SIZE];
            match file.read(&mut buffer) {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    Some((Ok(bytes::Bytes::from(buffer)), file))
                }
                Err(err) => Some((Err(OciDistributionError::IoError(err)), file)),
            }
        });
        self.client
            .push_blob_stream(image, chunks, &digest.to_string(), Some(size))
            .await
            .map_err(|source| client_error(format!("pushing blob {digest}"), source))?;
        Ok(true)
    }
}

/// oci-client's reference for `domain/path` at `tag` or `digest`.
fn oci_reference(
    domain: &str,
    path: &str,
    tag_or_digest: Option<(&str, bool)>,
) -> oci_client::Reference {
    match tag_or_digest {
        Some((digest, true)) => oci_client::Reference::with_digest(
            domain.to_owned(),
            path.to_owned(),
            digest.to_owned(),
        ),
        Some((tag, false)) => {
            oci_client::Reference::with_tag(domain.to_owned(), path.to_owned(), tag.to_owned())
        }
        None => {
            oci_client::Reference::with_tag(domain.to_owned(), path.to_owned(), "latest".to_owned())
        }
    }
}

/// The tag or digest a reference names a manifest by in the registry.
fn target_of(reference: &Reference) -> (String, bool) {
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => (digest.to_string(), true),
        (None, Some(tag)) => (tag.to_owned(), false),
        (None, None) => ("latest".to_owned(), false),
    }
}

/// Pulls `reference` for `platform` into `store`, as `docker pull` does:
/// blobs the store has are not downloaded again, the rest are verified,
/// and the image is recorded under `reference`. A pull that fails keeps
/// none of the blobs it stored.
pub async fn pull(
    store: &ImageStore,
    reference: &Reference,
    platform: &Platform,
    credentials: Option<Credentials>,
    progress: &dyn Fn(PullEvent<'_>),
) -> Result<PullOutcome, RegistryError> {
    let pulled = pull_into(store, reference, platform, credentials, progress).await;
    if pulled.is_err() {
        store.discard_new_blobs();
    }
    pulled
}

async fn pull_into(
    store: &ImageStore,
    reference: &Reference,
    platform: &Platform,
    credentials: Option<Credentials>,
    progress: &dyn Fn(PullEvent<'_>),
) -> Result<PullOutcome, RegistryError> {
    let mut registry = Registry::connect(reference.domain(), credentials)?;
    let (target, by_digest) = target_of(reference);
    let image = oci_reference(
        reference.domain(),
        reference.path(),
        Some((&target, by_digest)),
    );
    registry.authorize(&image, RegistryOperation::Pull).await?;

    let shown = reference.familiar_string();
    let (mut data, mut media_type) = registry.fetch_manifest(&image, &target, &shown).await?;
    let top_digest = Digest::of_bytes(&data);
    if let Some(pinned) = reference.digest() {
        if *pinned != top_digest {
            return Err(ImageError::BlobDigestMismatch {
                digest: pinned.clone(),
                actual: top_digest,
            }
            .into());
        }
    }
    let mut manifest_digest = top_digest.clone();
    let mut depth = 0;
    while is_index_type(&media_type) {
        depth += 1;
        if depth > MAX_INDEX_DEPTH {
            return Err(ImageError::InvalidJson {
                what: format!("manifest list for {shown}"),
                reason: format!("manifest lists nest more than {MAX_INDEX_DEPTH} deep"),
            }
            .into());
        }
        let index: ImageIndex = parse_json(&data, &format!("manifest list {manifest_digest}"))?;
        let chosen = platform.select(index.manifests()).ok_or_else(|| {
            RegistryError::NoMatchingPlatform {
                platform: platform.clone(),
            }
        })?;
        let digest = descriptor_digest(chosen)?;
        if chosen.size() > MAX_MANIFEST_SIZE {
            return Err(ImageError::TooLarge {
                what: format!("manifest {digest}"),
                limit: MAX_MANIFEST_SIZE,
            }
            .into());
        }
        (data, media_type) = registry
            .fetch_manifest(&image, &digest.to_string(), &shown)
            .await?;
        check_fetched(&digest, chosen.size(), &data)?;
        manifest_digest = digest;
    }
    if !is_manifest_type(&media_type) {
        return Err(RegistryError::UnsupportedManifest {
            reference: shown,
            media_type,
        });
    }
    let manifest: ImageManifest = parse_json(&data, &format!("manifest {manifest_digest}"))?;

    if let Ok(existing) = store.resolve(&reference.full()) {
        if existing.manifest_digest == manifest_digest {
            progress(PullEvent::Resolved);
            // `name@digest` may have resolved through another name of the
            // repository: record it as pulled.
            ImageTable::update(store.root(), |table| {
                table
                    .references
                    .insert(reference.full(), manifest_digest.clone());
            })?;
            return Ok(PullOutcome {
                digest: top_digest,
                id: existing.id,
                up_to_date: true,
            });
        }
    }
    progress(PullEvent::Resolved);

    let config = manifest.config();
    if config.size() > MAX_JSON_SIZE {
        return Err(ImageError::TooLarge {
            what: format!("image config {}", config.digest()),
            limit: MAX_JSON_SIZE,
        }
        .into());
    }
    let config_digest = descriptor_digest(config)?;
    if store.blobs.size(&config_digest)? != Some(config.size()) {
        registry
            .download_blob(store, &image, config, |_| {})
            .await?;
    }

    let mut wanted = Vec::new();
    let mut seen = HashSet::new();
    for layer in manifest.layers() {
        let digest = descriptor_digest(layer)?;
        if layer.size() > MAX_BLOB_SIZE {
            return Err(ImageError::TooLarge {
                what: format!("layer {digest}"),
                limit: MAX_BLOB_SIZE,
            }
            .into());
        }
        if !seen.insert(digest.clone()) {
            continue;
        }
        if store.blobs.size(&digest)? == Some(layer.size()) {
            progress(PullEvent::LayerExists(&digest));
        } else {
            progress(PullEvent::LayerWaiting(&digest, layer.size()));
            wanted.push((digest, layer));
        }
    }
    let registry = &registry;
    let image_ref = &image;
    let mut downloads =
        futures_util::stream::iter(wanted.iter().map(|(digest, layer)| async move {
            let size = layer.size();
            registry
                .download_blob(store, image_ref, layer, |downloaded| {
                    progress(PullEvent::LayerProgress(digest, downloaded, size))
                })
                .await
                .map(|()| digest)
        }))
        .buffer_unordered(CONCURRENT_DOWNLOADS);
    while let Some(done) = downloads.next().await {
        progress(PullEvent::LayerDownloaded(done?));
    }
    drop(downloads);

    store.blobs.ingest(&manifest_digest, &data[..])?;
    let id = import_image(store, &manifest_digest, &manifest, Some(reference))?;
    for (digest, _) in &wanted {
        progress(PullEvent::LayerComplete(digest));
    }
    Ok(PullOutcome {
        digest: top_digest,
        id,
        up_to_date: false,
    })
}

/// Pushes the image named `reference` from `store` to its registry, as
/// `docker push` does: layers and config the registry lacks, then the
/// manifest, byte for byte as stored (so its digest is the image's).
pub async fn push(
    store: &ImageStore,
    reference: &Reference,
    credentials: Option<Credentials>,
    progress: &dyn Fn(PushEvent<'_>),
) -> Result<PushOutcome, RegistryError> {
    if reference.digest().is_some() {
        return Err(RegistryError::PushByDigest(reference.familiar_string()));
    }
    let image = match store.resolve(&reference.full()) {
        Ok(image) => image,
        Err(ImageError::NotFound(_)) => {
            return Err(RegistryError::NoLocalImage(reference.familiar_string()))
        }
        Err(err) => return Err(err.into()),
    };
    let data = store.blobs.read_small(
        &image.manifest_digest,
        &format!("manifest {}", image.manifest_digest),
    )?;
    let manifest: ImageManifest =
        parse_json(&data, &format!("manifest {}", image.manifest_digest))?;
    let (tag, _) = target_of(reference);
    let mut registry = Registry::connect(reference.domain(), credentials)?;
    let target = oci_reference(reference.domain(), reference.path(), Some((&tag, false)));
    registry.authorize(&target, RegistryOperation::Push).await?;

    // Docker lists the top layer first.
    let layers: Vec<(Digest, u64)> = manifest
        .layers()
        .iter()
        .rev()
        .map(|layer| descriptor_digest(layer).map(|d| (d, layer.size())))
        .collect::<Result<_, _>>()?;
    for (digest, _) in &layers {
        progress(PushEvent::Preparing(digest));
    }
    let mut pushed = HashSet::new();
    for (digest, size) in &layers {
        if !pushed.insert(digest.clone()) {
            continue;
        }
        progress(PushEvent::Pushing(digest, *size));
        if registry.upload_blob(store, &target, digest).await? {
            progress(PushEvent::Pushed(digest));
        } else {
            progress(PushEvent::LayerExists(digest));
        }
    }
    registry
        .upload_blob(store, &target, &descriptor_digest(manifest.config())?)
        .await?;

    let media_type = serde_json::from_slice::<serde_json::Value>(&data)
        .ok()
        .and_then(|m| {
            m.get("mediaType")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| OCI_MANIFEST.to_owned());
    let content_type = reqwest::header::HeaderValue::from_str(&media_type).map_err(|_| {
        RegistryError::UnsupportedManifest {
            reference: reference.familiar_string(),
            media_type: media_type.clone(),
        }
    })?;
    let size = data.len();
    registry
        .client
        .push_manifest_raw(&target, data, content_type)
        .await
        .map_err(|source| {
            client_error(
                format!("pushing manifest {}", image.manifest_digest),
                source,
            )
        })?;
    Ok(PushOutcome {
        tag,
        digest: image.manifest_digest,
        size,
    })
}

/// Checks `credentials` against registry `domain` (`GET /v2/`, then its
/// Basic or token challenge), as `docker login` does.
pub async fn login(domain: &str, credentials: &Credentials) -> Result<(), RegistryError> {
    let host = oci_reference(domain, "x", None)
        .resolve_registry()
        .to_owned();
    let scheme = if is_insecure(domain) { "http" } else { "https" };
    let url = format!("{scheme}://{host}/v2/");
    let http = http_client()?;
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|err| unreachable(&url, &err))?;
    if response.status().is_success() {
        return Ok(());
    }
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(RegistryError::LoginFailed {
            url,
            status: response.status().to_string(),
        });
    }
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(Challenge::parse)
        .unwrap_or_default();
    let (check_url, request) = match challenge
        .realm
        .filter(|_| challenge.scheme.eq_ignore_ascii_case("bearer"))
    {
        Some(realm) => {
            let mut query = vec![
                ("account", credentials.username.clone()),
                ("client_id", "hull".to_owned()),
            ];
            if let Some(service) = challenge.service {
                query.push(("service", service));
            }
            (realm.clone(), http.get(&realm).query(&query))
        }
        None => (url.clone(), http.get(&url)),
    };
    let response = request
        .basic_auth(&credentials.username, Some(&credentials.password))
        .send()
        .await
        .map_err(|err| unreachable(&check_url, &err))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(RegistryError::LoginFailed {
            url,
            status: response.status().to_string(),
        })
    }
}

/// A `WWW-Authenticate` challenge: its scheme and the parameters Hull uses.
#[derive(Debug, Default, PartialEq)]
struct Challenge {
    scheme: String,
    realm: Option<String>,
    service: Option<String>,
}

impl Challenge {
    /// Parses `Scheme key="value",key="value"` (the first challenge only).
    fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        let mut challenge = Challenge {
            scheme: scheme.to_owned(),
            ..Default::default()
        };
        let mut rest = params.trim();
        while !rest.is_empty() {
            let Some((key, after)) = rest.split_once('=') else {
                break;
            };
            let key = key.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, remainder) = match after.strip_prefix('"') {
                Some(quoted) => match quoted.split_once('"') {
                    Some((value, remainder)) => (value, remainder),
                    None => (quoted, ""),
                },
                None => after.split_once(',').map_or((after, ""), |(v, r)| (v, r)),
            };
            match key.as_str() {
                "realm" => challenge.realm = Some(value.to_owned()),
                "service" => challenge.service = Some(value.to_owned()),
                _ => {}
            }
            rest = remainder.trim_start().trim_start_matches(',').trim_start();
        }
        challenge
    }
}

/// Checks a fetched manifest has the digest and size its descriptor gave.
fn check_fetched(digest: &Digest, size: u64, data: &[u8]) -> Result<(), ImageError> {
    let actual = Digest::of_bytes(data);
    if actual != *digest {
        return Err(ImageError::BlobDigestMismatch {
            digest: digest.clone(),
            actual,
        });
    }
    if data.len() as u64 != size {
        return Err(ImageError::BlobSizeMismatch {
            digest: digest.clone(),
            expected: size,
            actual: data.len() as u64,
        });
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|err| ImageError::InvalidJson {
        what: what.to_owned(),
        reason: err.to_string(),
    })
}

fn client_error(action: String, source: OciDistributionError) -> RegistryError {
    // The registry's own words, as Docker prints them, when it gave any.
    if let OciDistributionError::RegistryError { envelope, .. } = &source {
        if let Some(first) = envelope.errors.first() {
            return RegistryError::Response {
                message: format!(
                    "{}: {}",
                    code_text(&serde_json::to_value(&first.code).unwrap_or_default()),
                    first.message
                ),
            };
        }
    }
    let unauthorized = match &source {
        OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::RequestError(err) => {
            err.status() == Some(reqwest::StatusCode::UNAUTHORIZED)
        }
        _ => false,
    };
    if unauthorized {
        return RegistryError::Response {
            message: "unauthorized: authentication required".to_owned(),
        };
    }
    RegistryError::Client { action, source }
}

fn unreachable(url: &str, err: &reqwest::Error) -> RegistryError {
    RegistryError::Unreachable {
        url: url.to_owned(),
        reason: error_chain(err),
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `MANIFEST_UNKNOWN` → `manifest unknown`, as Docker shows error codes.
fn code_text(code: &serde_json::Value) -> String {
    code.as_str()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// The registry's explanation of a failed response (its first error as
/// `code: message`), else the HTTP status.
async fn error_message(mut response: reqwest::Response) -> String {
    let status = response.status();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    match first {
        Some(error) => format!(
            "{}: {}",
            code_text(error.get("code").unwrap_or(&serde_json::Value::Null)),
            error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
        ),
        None if status == reqwest::StatusCode::UNAUTHORIZED => {
            "unauthorized: authentication required".to_owned()
        }
        None => format!("unexpected status from the registry: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_insecure_others_only_when_listed() {
        for domain in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(is_insecure_with(domain, ""), "{domain}");
        }
        for domain in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com:5000",
        ] {
            assert!(!is_insecure_with(domain, ""), "{domain}");
        }
        let listed = "registry.example.com:5000, 10.0.0.1";
        assert!(is_insecure_with("registry.example.com:5000", listed));
        assert!(!is_insecure_with("registry.example.com:5001", listed));
        assert!(is_insecure_with("10.0.0.1:443", listed));
        assert!(is_insecure_with("10.0.0.1", listed));
    }

    #[test]
    fn challenges_are_parsed() {
        let bearer = Challenge::parse(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:x:pull""#,
        );
        assert_eq!(bearer.scheme, "Bearer");
        assert_eq!(
            bearer.realm.as_deref(),
            Some("https://auth.example.com/token")
        );
        assert_eq!(bearer.service.as_deref(), Some("registry.example.com"));
        let basic = Challenge::parse(r#"Basic realm="Registry Realm""#);
        assert_eq!(basic.scheme, "Basic");
        assert_eq!(basic.realm.as_deref(), Some("Registry Realm"));
        assert_eq!(Challenge::parse("").realm, None);
    }

    /// A registry speaking just enough of the distribution API over plain
    /// HTTP on 127.0.0.1, with Docker Hub's bearer-token flow: `/v2/…`
    /// wants `Bearer good-token`, which `/token` gives for `alice:secret`.
    mod fake {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        pub const TOKEN: &str = "good-token";
        pub const USER: &str = "alice";
        pub const PASSWORD: &str = "secret";

        #[derive(Default)]
        pub struct Content {
            /// Path under `/v2/` → (content type, body).
            pub routes: HashMap<String, (String, Vec<u8>)>,
            /// Requests seen, as `METHOD PATH`.
            pub log: Vec<String>,
        }

        pub async fn start(content: Content) -> (String, Arc<Mutex<Content>>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let content = Arc::new(Mutex::new(content));
            let shared = content.clone();
            let realm = format!("http://{address}/token");
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(answer(socket, shared.clone(), realm.clone()));
                }
            });
            (address, content)
        }

        async fn answer(
            mut socket: tokio::net::TcpStream,
            content: Arc<Mutex<Content>>,
            realm: String,
        ) {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or_default().split_whitespace();
            let (method, target) = (
                first.next().unwrap_or_default().to_owned(),
                first.next().unwrap_or_default().to_owned(),
            );
            let authorization = lines
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default();
            let path = target.split('?').next().unwrap_or_default().to_owned();
            content.lock().unwrap().log.push(format!("{method} {path}"));
            let basic = {
                use base64::Engine as _;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
                )
            };
            let challenge =
                format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n");
            let unauthorized = (
                401,
                challenge,
                "application/json".to_owned(),
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
            let (status, extra, content_type, body) = if path == "/token" {
                if authorization == basic {
                    (
                        200,
                        String::new(),
                        "application/json".to_owned(),
                        format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes(),
                    )
                } else {
                    (
                        401,
                        String::new(),
                        "application/json".to_owned(),
                        b"{}".to_vec(),
                    )
                }
            } else if authorization != format!("Bearer {TOKEN}") {
                unauthorized
            } else if path == "/v2/" {
                (
                    200,
                    String::new(),
                    "application/json".to_owned(),
                    b"{}".to_vec(),
                )
            } else {
                match content
                    .lock()
                    .unwrap()
                    .routes
                    .get(path.trim_start_matches("/v2/"))
                {
                    Some((content_type, body)) => {
                        (200, String::new(), content_type.clone(), body.clone())
                    }
                    None => (
                        404,
                        String::new(),
                        "application/json".to_owned(),
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                            .to_vec(),
                    ),
                }
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            if method != "HEAD" {
                let _ = socket.write_all(&body).await;
            }
            let _ = socket.shutdown().await;
        }
    }

    use crate::image::testutil::{TestEntry, TestImage, TestLayer};

    /// An image's blobs, as a registry serves them: (manifest, config, layers).
    fn image_blobs(architecture: &str, layer: &TestLayer) -> (Vec<u8>, Vec<u8>, Digest) {
        let mut config: serde_json::Value =
            serde_json::from_slice(&TestImage::new(None, vec![layer.clone()]).config_json())
                .unwrap();
        config["architecture"] = architecture.into();
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of_bytes(&config).to_string(), "size": config.len() },
            "layers": [{ "mediaType": layer.media_type, "digest": layer.digest().to_string(), "size": layer.blob.len() }],
        }))
        .unwrap();
        let config_digest = Digest::of_bytes(&config);
        (manifest, config, config_digest)
    }

    fn credentials(password: &str) -> Option<Credentials> {
        Some(Credentials {
            username: fake::USER.into(),
            password: password.into(),
        })
    }

    /// A registry with `repo:latest` an index of an arm64 and a host image.
    async fn registry_with_index(
        layer: &TestLayer,
        tamper_layer: bool,
    ) -> (
        String,
        Digest,
        Digest,
        std::sync::Arc<std::sync::Mutex<fake::Content>>,
    ) {
        let mut content = fake::Content::default();
        let mut layer_blob = layer.blob.clone();
        if tamper_layer {
            let last = layer_blob.len() - 1;
            layer_blob[last] ^= 1;
        }
        content.routes.insert(
            format!("repo/blobs/{}", layer.digest()),
            ("application/octet-stream".into(), layer_blob),
        );
        let mut entries = Vec::new();
        let mut host_id = None;
        let host_arch = Platform::host()
            .to_string()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        for architecture in ["arm64", host_arch.as_str()] {
            let (manifest, config, config_digest) = image_blobs(architecture, layer);
            let manifest_digest = Digest::of_bytes(&manifest);
            entries.push(serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": manifest_digest.to_string(), "size": manifest.len(),
                "platform": { "os": "linux", "architecture": architecture },
            }));
            content.routes.insert(
                format!("repo/blobs/{config_digest}"),
                ("application/octet-stream".into(), config),
            );
            content.routes.insert(
                format!("repo/manifests/{manifest_digest}"),
                (OCI_MANIFEST.into(), manifest),
            );
            host_id = Some(config_digest);
        }
        let index = serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries })).unwrap();
        let index_digest = Digest::of_bytes(&index);
        content
            .routes
            .insert("repo/manifests/latest".into(), (OCI_INDEX.into(), index));
        let (address, content) = fake::start(content).await;
        (address, index_digest, host_id.unwrap(), content)
    }

    fn test_layer() -> TestLayer {
        TestLayer::gzip(&[
            TestEntry::dir("etc"),
            TestEntry::file("etc/motd", &[b'x'; 2000]),
        ])
    }

    #[tokio::test]
    async fn pulls_through_a_token_server_and_a_manifest_list() {
        let layer = test_layer();
        let (address, index_digest, host_id, content) = registry_with_index(&layer, false).await;
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("image")).unwrap();
        let reference = Reference::parse(&format!("{address}/repo")).unwrap();
        let events = std::cell::RefCell::new(Vec::new());
        let record = |event: PullEvent<'_>| {
            events.borrow_mut().push(
                format!("{event:?}")
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        };

        let outcome = pull(
            &store,
            &reference,
            &Platform::host(),
            credentials(fake::PASSWORD),
            &record,
        )
        .await
        .unwrap();
        assert_eq!(outcome.digest, index_digest);
        assert_eq!(outcome.id, host_id, "the host's image was not chosen");
        assert!(!outcome.up_to_date);
        events.borrow_mut().dedup();
        assert_eq!(
            *events.borrow(),
            [
                "Resolved",
                "LayerWaiting",
                "LayerProgress",
                "LayerDownloaded",
                "LayerComplete"
            ]
        );
        assert_eq!(store.resolve(&reference.full()).unwrap().id, host_id);
        assert!(
            content
                .lock()
                .unwrap()
                .log
                .iter()
                .any(|r| r == "GET /token"),
            "no token was asked for"
        );

        let again = pull(
            &store,
            &reference,
            &Platform::host(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap();
        assert!(again.up_to_date);
        let arm = pull(
            &store,
            &reference,
            &"linux/arm64".parse().unwrap(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap();
        assert_ne!(arm.id, host_id);
        let downloads = content
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|r| r.contains(&layer.digest().to_string()))
            .count();
        assert_eq!(downloads, 1, "a layer the store had was downloaded again");

        let err = pull(
            &store,
            &reference,
            &"linux/s390x".parse().unwrap(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        let missing = Reference::parse(&format!("{address}/repo:nope")).unwrap();
        let err = pull(
            &store,
            &missing,
            &Platform::host(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("manifest for {address}/repo:nope not found: manifest unknown")
        );
        assert!(pull(
            &store,
            &reference,
            &Platform::host(),
            credentials("wrong"),
            &|_| {}
        )
        .await
        .is_err());
        assert!(pull(&store, &reference, &Platform::host(), None, &|_| {})
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_layer_that_does_not_match_its_digest_is_not_stored() {
        let layer = test_layer();
        let (address, _, _, _) = registry_with_index(&layer, true).await;
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("image")).unwrap();
        let reference = Reference::parse(&format!("{address}/repo")).unwrap();
        let err = pull(
            &store,
            &reference,
            &Platform::host(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains(&layer.digest().to_string()),
            "{err}"
        );
        assert_eq!(store.blobs.size(&layer.digest()).unwrap(), None);
        assert!(store.list().unwrap().is_empty());
    }

    #[tokio::test]
    async fn oversized_manifests_are_refused() {
        let mut content = fake::Content::default();
        let huge = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","pad":"{}"}}"#,
            "x".repeat(5 << 20)
        );
        content.routes.insert(
            "repo/manifests/latest".into(),
            (OCI_MANIFEST.into(), huge.into_bytes()),
        );
        let (address, _) = fake::start(content).await;
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("image")).unwrap();
        let reference = Reference::parse(&format!("{address}/repo")).unwrap();
        let err = pull(
            &store,
            &reference,
            &Platform::host(),
            credentials(fake::PASSWORD),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than the limit of 4194304 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn login_asks_the_token_server() {
        let (address, _) = fake::start(fake::Content::default()).await;
        let right = credentials(fake::PASSWORD).unwrap();
        login(&address, &right).await.unwrap();
        let wrong = credentials("wrong").unwrap();
        let err = login(&address, &wrong).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("login attempt to http://{address}/v2/ failed with status: 401 Unauthorized")
        );
    }

    #[test]
    fn fetched_manifests_are_checked() {
        let data = br#"{"schemaVersion":2}"#;
        let digest = Digest::of_bytes(data);
        assert!(check_fetched(&digest, data.len() as u64, data).is_ok());
        assert!(check_fetched(&digest, 3, data).is_err());
        assert!(check_fetched(&Digest::of_bytes(b"other"), data.len() as u64, data).is_err());
    }
}
