//! Platforms (`linux/amd64`, `linux/arm64/v8`): which image of a manifest
//! list or OCI image index Hull takes, for `hull load` and `hull pull`.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Arch, Descriptor, Os};

use super::ImageError;

/// An OS, CPU architecture and optional variant, in OCI (Go) spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    os: Os,
    architecture: Arch,
    variant: Option<String>,
}

impl Platform {
    /// The platform Hull's guests run: linux on the host's CPU architecture.
    pub fn host() -> Platform {
        Platform {
            os: Os::Linux,
            architecture: host_arch(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one. A platform without a
    /// variant matches any variant (as `linux/arm64` takes `linux/arm64/v8`);
    /// `arm64/v8` also matches an arm64 entry that names no variant, since
    /// v8 is arm64's only variant in practice.
    pub fn matches(&self, platform: &oci_spec::image::Platform) -> bool {
        if *platform.os() != self.os || *platform.architecture() != self.architecture {
            return false;
        }
        match (&self.variant, platform.variant()) {
            (None, _) => true,
            (Some(wanted), Some(variant)) => wanted == variant,
            (Some(wanted), None) => self.architecture == Arch::ARM64 && wanted == "v8",
        }
    }

    /// The entry of an index's `manifests` to use for this platform: the
    /// first image (or nested index) whose platform matches; when no entry
    /// names a platform at all, the first image. `None` when nothing fits.
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        let candidates: Vec<&Descriptor> = manifests
            .iter()
            .filter(|d| is_index(d) || is_manifest(d))
            .collect();
        if candidates.iter().any(|d| d.platform().is_some()) {
            candidates
                .into_iter()
                .find(|d| d.platform().as_ref().is_some_and(|p| self.matches(p)))
        } else {
            candidates.into_iter().next()
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;

    /// `os[/arch[/variant]]`, as `docker pull --platform` takes it; the
    /// architecture defaults to the host's. Spellings are normalised as
    /// containerd does (`x86_64` is `amd64`, `aarch64` is `arm64`).
    fn from_str(text: &str) -> Result<Platform, ImageError> {
        let invalid = || ImageError::InvalidPlatform(text.to_owned());
        let lower = text.to_ascii_lowercase();
        let mut parts = lower.split('/');
        let os = parts
            .next()
            .filter(|os| !os.is_empty())
            .ok_or_else(invalid)?;
        let architecture = match parts.next() {
            None => host_arch(),
            Some("") => return Err(invalid()),
            Some("x86_64" | "x86-64") => Arch::Amd64,
            Some("aarch64") => Arch::ARM64,
            Some(arch) => Arch::from(arch),
        };
        let variant = match parts.next() {
            None => None,
            Some("") => return Err(invalid()),
            Some(variant) => Some(variant.to_owned()),
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Platform {
            os: Os::from(os),
            architecture,
            variant,
        })
    }
}

/// The host's CPU architecture in OCI (Go) spelling, as text.
pub(crate) fn host_architecture() -> String {
    host_arch().to_string()
}

/// The host's CPU architecture in OCI (Go) spelling.
fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}

/// Media type of a Docker manifest list (the pre-OCI image index).
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a Docker image manifest (schema 2).
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Whether a descriptor points at an image index or manifest list.
pub(crate) fn is_index(descriptor: &Descriptor) -> bool {
    is_index_type(descriptor.media_type().as_ref())
}

/// Whether a descriptor points at an image manifest.
pub(crate) fn is_manifest(descriptor: &Descriptor) -> bool {
    is_manifest_type(descriptor.media_type().as_ref())
}

/// Whether a media type is an OCI image index or a Docker manifest list.
pub(crate) fn is_index_type(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json" || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a media type is an OCI or Docker image manifest.
pub(crate) fn is_manifest_type(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.manifest.v1+json" || media_type == DOCKER_MANIFEST
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest_byte: char, platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        let mut json = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", digest_byte.to_string().repeat(64)),
            "size": 100,
        });
        if let Some((os, arch, variant)) = platform {
            json["platform"] = serde_json::json!({ "os": os, "architecture": arch });
            if let Some(variant) = variant {
                json["platform"]["variant"] = variant.into();
            }
        }
        serde_json::from_value(json).unwrap()
    }

    fn chosen(platform: &str, manifests: &[Descriptor]) -> Option<char> {
        let platform: Platform = platform.parse().unwrap();
        platform
            .select(manifests)
            .map(|d| d.digest().as_ref().chars().last().unwrap())
    }

    #[test]
    fn parses_docker_spellings() {
        assert_eq!(
            "linux/amd64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            "Linux/ARM64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!("linux".parse::<Platform>().unwrap(), Platform::host());
        for bad in ["", "/amd64", "linux/", "linux/arm/v7/x", "linux/arm64/"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn selects_the_platform_asked_for() {
        let manifests = [
            entry('a', Some(("linux", "arm64", Some("v8")))),
            entry('b', Some(("linux", "amd64", None))),
            entry('c', Some(("linux", "arm", Some("v7")))),
            entry('d', Some(("windows", "amd64", None))),
        ];
        assert_eq!(chosen("linux/amd64", &manifests), Some('b'));
        assert_eq!(chosen("linux/arm64", &manifests), Some('a'));
        assert_eq!(chosen("linux/arm64/v8", &manifests), Some('a'));
        assert_eq!(chosen("linux/arm/v7", &manifests), Some('c'));
        assert_eq!(chosen("linux/arm/v6", &manifests), None);
        assert_eq!(chosen("windows/amd64", &manifests), Some('d'));
        assert_eq!(chosen("linux/s390x", &manifests), None);
    }

    #[test]
    fn arm64_v8_matches_an_entry_without_variant() {
        let manifests = [
            entry('a', Some(("linux", "amd64", None))),
            entry('e', Some(("linux", "arm64", None))),
        ];
        assert_eq!(chosen("linux/arm64/v8", &manifests), Some('e'));
    }

    #[test]
    fn without_platforms_the_first_image_is_taken() {
        let mut attestation = entry('f', None);
        attestation.set_media_type(oci_spec::image::MediaType::Other(
            "application/vnd.in-toto+json".into(),
        ));
        let manifests = [attestation, entry('1', None), entry('2', None)];
        assert_eq!(chosen("linux/amd64", &manifests), Some('1'));
    }
}
