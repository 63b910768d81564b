//! `spec`: a starting `config.json` in the bundle directory, as runc
//! writes one (`sh` on a terminal, the default namespaces, mounts and
//! capabilities), for a user to edit.

use crate::error::OciError;
use oci_spec::runtime::Spec;
use std::path::Path;

/// Writes the default spec to `bundle/config.json`; refuses to replace one.
pub fn spec(bundle: &Path) -> Result<(), OciError> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(OciError::Invalid(
            "File config.json exists. Remove it first".into(),
        ));
    }
    let mut default = Spec::default();
    // runc's starting process is `sh` on a terminal.
    if let Some(process) = default.process_mut() {
        process.set_terminal(Some(true));
    }
    let text = serde_json::to_string_pretty(&default)
        .map_err(|e| OciError::Setup(format!("encoding the spec: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(OciError::io("writing", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_spec_once() {
        let dir = tempfile::tempdir().unwrap();
        spec(dir.path()).unwrap();
        let written: Spec =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(written.root().as_ref().unwrap().path(), Path::new("rootfs"));
        assert!(written
            .process()
            .as_ref()
            .unwrap()
            .terminal()
            .unwrap_or(false));
        let again = spec(dir.path()).unwrap_err().to_string();
        assert_eq!(again, "File config.json exists. Remove it first");
    }
}
