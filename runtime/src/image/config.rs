//! Decoding an image's configuration blob, as the image spec defines it.

use super::ImageError;
use oci_spec::image::ImageConfiguration;

/// Decodes the configuration blob `data` (`what` names it in errors).
/// `history` is optional in the image spec (builders such as ko and some
/// `docker import`s leave it out) but required by `oci-spec`: an absent one
/// is read as empty.
pub(crate) fn decode(data: &[u8], what: &str) -> Result<ImageConfiguration, ImageError> {
    let invalid = |err: serde_json::Error| ImageError::InvalidJson {
        what: what.to_string(),
        reason: err.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_slice(data).map_err(invalid)?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("history")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_value(value).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_optional_and_other_fields_are_not() {
        let without =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config = decode(without, "config").unwrap();
        assert!(config.history().is_empty());
        assert!(decode(br#"{"architecture":"amd64","os":"linux"}"#, "config").is_err());
        let err = decode(b"[1]", "image config sha256:x").unwrap_err();
        assert!(err.to_string().contains("image config sha256:x"), "{err}");
    }
}
