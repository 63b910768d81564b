//! `images --filter` and `images [REPOSITORY[:TAG]]`, as Docker has them:
//! `dangling=true|false` (untagged or not) and `reference=PATTERN`
//! (Go's `path.Match` on `repository:tag`, or on the repository alone).
//! Filters with the same key are alternatives; different keys must all
//! match.

use super::{ImageError, ImageSummary};

/// One `--filter KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    /// `dangling=`: untagged images (true), or tagged ones (false).
    Dangling(bool),
    /// `reference=`: a name pattern, `busybox`, `hull.test/*:1.*`.
    Reference(String),
}

impl ImageFilter {
    /// Parses `KEY=VALUE`, refusing a key or value Docker refuses.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let bad = || ImageError::Filter(text.to_string());
        match text.split_once('=').ok_or_else(bad)? {
            ("dangling", "true" | "1") => Ok(Self::Dangling(true)),
            ("dangling", "false" | "0") => Ok(Self::Dangling(false)),
            ("reference", pattern) if !pattern.is_empty() => {
                Ok(Self::Reference(pattern.to_string()))
            }
            _ => Err(bad()),
        }
    }

    fn key(&self) -> &str {
        match self {
            Self::Dangling(_) => "dangling",
            Self::Reference(_) => "reference",
        }
    }

    /// Whether `image` (one of `ImageStore::list`'s rows) passes.
    fn matches(&self, image: &ImageSummary) -> bool {
        let untagged = image.is_untagged();
        match self {
            Self::Dangling(wanted) => untagged == *wanted,
            Self::Reference(pattern) => {
                !untagged
                    && (crate::glob::path_matches(
                        pattern,
                        &format!("{}:{}", image.repository, image.tag),
                    ) || crate::glob::path_matches(pattern, &image.repository))
            }
        }
    }

    /// Whether `image` passes all of `filters` (any of those with one key).
    pub fn all_match(filters: &[Self], image: &ImageSummary) -> bool {
        crate::filters::all_keys_match(filters, Self::key, |f| f.matches(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    fn image(repository: &str, tag: &str) -> ImageSummary {
        let digest = Digest::of_bytes(b"x");
        ImageSummary {
            repository: repository.into(),
            tag: tag.into(),
            id: digest.clone(),
            digest,
            created: None,
            size: 0,
            intermediate: false,
        }
    }

    fn passes(filters: &[&str], image: &ImageSummary) -> bool {
        let filters: Vec<ImageFilter> = filters
            .iter()
            .map(|f| ImageFilter::parse(f).unwrap())
            .collect();
        ImageFilter::all_match(&filters, image)
    }

    #[test]
    fn filters_as_dockers() {
        let busybox = image("hull.test/busybox", "1.36");
        let none = image("<none>", "<none>");
        assert!(passes(&[], &busybox));
        assert!(passes(&["reference=hull.test/busybox"], &busybox));
        assert!(passes(&["reference=hull.test/busybox:1.36"], &busybox));
        assert!(passes(&["reference=hull.test/*:1.*"], &busybox));
        assert!(!passes(&["reference=busybox"], &busybox));
        assert!(!passes(&["reference=*"], &busybox));
        assert!(!passes(&["reference=hull.test/busybox:latest"], &busybox));
        assert!(passes(&["reference=x", "reference=hull.test/*"], &busybox));
        assert!(!passes(
            &["reference=hull.test/*", "dangling=true"],
            &busybox
        ));
        assert!(passes(&["dangling=true"], &none));
        assert!(!passes(&["dangling=false"], &none));
        assert!(!passes(&["reference=*"], &none));
        for bad in ["dangling=maybe", "label=x", "reference=", "nokey"] {
            assert!(
                matches!(ImageFilter::parse(bad), Err(ImageError::Filter(_))),
                "{bad}"
            );
        }
    }
}
