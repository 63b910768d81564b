//! Docker image references (`busybox`, `localhost:5000/x:1`, `a/b@sha256:…`):
//! parsing with Docker's grammar and normalisation rules, so names mean the
//! same thing (and fail with the same messages) as with `docker`.

use std::fmt;
use std::str::FromStr;

use super::digest::{is_sha256_hex, Digest};
use super::ImageError;

/// Registry that names without a domain belong to.
const DEFAULT_DOMAIN: &str = "docker.io";
/// Old spelling of [`DEFAULT_DOMAIN`], normalised away as Docker does.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Namespace of official images (`busybox` is `library/busybox`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag given to a name that has neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// Docker's limit on `domain/path`.
const MAX_NAME_LEN: usize = 255;
/// Docker's limit on a tag (`[\w][\w.-]{0,127}`).
const MAX_TAG_LEN: usize = 128;

/// The generic message Docker prints for any malformed reference.
const INVALID_FORMAT: &str = "invalid reference format";

/// A normalised Docker image reference: `domain/path[:tag][@digest]`, with
/// the default domain, the `library/` namespace and the `latest` tag filled
/// in as `docker` does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference the way `docker` does:
    /// `busybox` → `docker.io/library/busybox:latest`,
    /// `localhost:5000/x` → `localhost:5000/x:latest`,
    /// `example.com/a/b@sha256:…` keeps its digest and gets no tag.
    pub fn parse(text: &str) -> Result<Reference, ImageError> {
        if is_sha256_hex(text) {
            return Err(invalid(format!(
                "invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_domain(text);

        // Docker checks case on everything before the first ':' of the
        // remainder, before the grammar, to give this friendlier message.
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(invalid(format!(
                "{INVALID_FORMAT}: repository name ({remote}) must be lowercase"
            )));
        }

        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((before, digest)) => (before, Some(parse_digest(digest)?)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_and_tag.rsplit_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (name_and_tag, None),
        };

        if !is_valid_domain(&domain) || !is_valid_path(path) {
            return Err(invalid(INVALID_FORMAT.to_owned()));
        }
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(invalid(INVALID_FORMAT.to_owned()));
            }
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "{INVALID_FORMAT}: repository name must not be more than {MAX_NAME_LEN} characters"
            )));
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    /// The registry part, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within its registry: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The repository name with its domain: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as `docker images` shows it in its REPOSITORY column:
    /// `busybox`, `someone/tool`, `localhost:5000/x`.
    pub fn familiar(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(official) if !official.contains('/') => official.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The tag, if any (`latest` when the text had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest pinned with `@sha256:…`, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The complete normalised form, the key in `images.json`:
    /// `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        with_tag_and_digest(self.name(), self)
    }

    /// The short form `docker` prints (e.g. `Loaded image: busybox:latest`).
    pub fn familiar_string(&self) -> String {
        with_tag_and_digest(self.familiar(), self)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(text: &str) -> Result<Reference, ImageError> {
        Reference::parse(text)
    }
}

fn with_tag_and_digest(mut text: String, reference: &Reference) -> String {
    if let Some(tag) = &reference.tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = &reference.digest {
        text.push('@');
        text.push_str(&digest.to_string());
    }
    text
}

fn invalid(message: String) -> ImageError {
    ImageError::InvalidReference(message)
}

/// Docker's `splitDockerDomain`: the first component is a registry only when
/// it looks like one (has `.` or `:`, is `localhost`, or has upper case).
fn split_domain(text: &str) -> (String, String) {
    let (mut domain, mut remainder) = match text.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), text.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

fn parse_digest(text: &str) -> Result<Digest, ImageError> {
    // Docker accepts other algorithms; Hull stores sha256 only, and a
    // reference pinned to anything else could never resolve.
    text.parse().map_err(|_| invalid(INVALID_FORMAT.to_owned()))
}

/// `host[:port]`, host being dot-separated `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
/// components or a bracketed IPv6 address.
fn is_valid_domain(domain: &str) -> bool {
    if let Some(rest) = domain.strip_prefix('[') {
        let Some((ipv6, after)) = rest.split_once(']') else {
            return false;
        };
        let ipv6_ok = !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        let port_ok = match after.strip_prefix(':') {
            Some(port) => is_valid_port(port),
            None => after.is_empty(),
        };
        return ipv6_ok && port_ok;
    }
    let (host, port_ok) = match domain.split_once(':') {
        Some((host, port)) => (host, is_valid_port(port)),
        None => (domain, true),
    };
    port_ok && host.split('.').all(is_valid_domain_component)
}

fn is_valid_port(port: &str) -> bool {
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
}

fn is_valid_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// Slash-separated components, each `[a-z0-9]+` joined by `.`, `_`, `__` or
/// runs of `-`.
fn is_valid_path(path: &str) -> bool {
    path.split('/').all(is_valid_path_component)
}

fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator_start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[separator_start..i];
        let separator_ok =
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !separator_ok {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LEN
        && is_word(bytes[0])
        && bytes.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let digest = format!("sha256:{HEX}");
        let cases: Vec<(String, String, String, Option<&str>)> = vec![
            // input, full(), familiar(), tag()
            (
                "busybox".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox".into(),
                Some("latest"),
            ),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
                "busybox".into(),
                Some("1.36"),
            ),
            (
                "ubuntu:22.04".into(),
                "docker.io/library/ubuntu:22.04".into(),
                "ubuntu".into(),
                Some("22.04"),
            ),
            (
                "docker.io/library/busybox:latest".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox".into(),
                Some("latest"),
            ),
            (
                "index.docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox".into(),
                Some("latest"),
            ),
            (
                "someone/tool".into(),
                "docker.io/someone/tool:latest".into(),
                "someone/tool".into(),
                Some("latest"),
            ),
            (
                "docker.io/library/a/b".into(),
                "docker.io/library/a/b:latest".into(),
                "library/a/b".into(),
                Some("latest"),
            ),
            (
                "localhost:5000/x".into(),
                "localhost:5000/x:latest".into(),
                "localhost:5000/x".into(),
                Some("latest"),
            ),
            (
                "localhost/x:v1".into(),
                "localhost/x:v1".into(),
                "localhost/x".into(),
                Some("v1"),
            ),
            (
                "ghcr.io/o/r:V1_x-y.z".into(),
                "ghcr.io/o/r:V1_x-y.z".into(),
                "ghcr.io/o/r".into(),
                Some("V1_x-y.z"),
            ),
            (
                "[::1]:5000/x".into(),
                "[::1]:5000/x:latest".into(),
                "[::1]:5000/x".into(),
                Some("latest"),
            ),
            (
                "a__b/c.d/e--f_g".into(),
                "docker.io/a__b/c.d/e--f_g:latest".into(),
                "a__b/c.d/e--f_g".into(),
                Some("latest"),
            ),
            (
                format!("example.com/a/b@{digest}"),
                format!("example.com/a/b@{digest}"),
                "example.com/a/b".into(),
                None,
            ),
            (
                format!("busybox:1@{digest}"),
                format!("docker.io/library/busybox:1@{digest}"),
                "busybox".into(),
                Some("1"),
            ),
        ];
        for (input, full, familiar, tag) in cases {
            let reference =
                Reference::parse(&input).unwrap_or_else(|e| panic!("{input:?} was rejected: {e}"));
            assert_eq!(reference.full(), full, "full() of {input:?}");
            assert_eq!(reference.familiar(), familiar, "familiar() of {input:?}");
            assert_eq!(reference.tag(), tag, "tag() of {input:?}");
            assert_eq!(
                Reference::parse(&full).unwrap(),
                reference,
                "{full:?} is not a fixed point"
            );
        }
        let pinned = Reference::parse(&format!("example.com/a/b@{digest}")).unwrap();
        assert_eq!(pinned.digest().unwrap().hex(), HEX);
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar_string(),
            "busybox:latest"
        );
    }

    #[test]
    fn rejects_like_docker() {
        let cases: Vec<(String, &str)> = vec![
            ("Busybox".into(), "invalid reference format: repository name (library/Busybox) must be lowercase"),
            ("someone/Tool:1".into(), "invalid reference format: repository name (someone/Tool) must be lowercase"),
            ("".into(), "invalid reference format"),
            (":tag".into(), "invalid reference format"),
            ("busybox:".into(), "invalid reference format"),
            ("busybox:-x".into(), "invalid reference format"),
            ("busybox@sha256:abc".into(), "invalid reference format"),
            ("a//b".into(), "invalid reference format"),
            ("a/b/".into(), "invalid reference format"),
            ("-a".into(), "invalid reference format"),
            ("a_-b".into(), "invalid reference format"),
            ("a..b".into(), "invalid reference format"),
            ("a b".into(), "invalid reference format"),
            ("example.com:port/x".into(), "invalid reference format"),
            ("-bad.com/x".into(), "invalid reference format"),
            (format!("busybox:{}", "t".repeat(129)), "invalid reference format"),
            (
                HEX.into(),
                "invalid repository name (0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef), cannot specify 64-byte hexadecimal strings",
            ),
            (
                format!("example.com/{}", "a".repeat(250)),
                "invalid reference format: repository name must not be more than 255 characters",
            ),
        ];
        for (input, message) in cases {
            match Reference::parse(&input) {
                Ok(reference) => panic!("{input:?} was accepted as {reference}"),
                Err(err) => assert_eq!(err.to_string(), message, "message for {input:?}"),
            }
        }
    }
}
