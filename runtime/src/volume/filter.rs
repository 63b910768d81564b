//! `volume ls --filter` and `volume prune --filter`, as Docker has them:
//! `name=` (a substring), `label=KEY[=VALUE]`, `label!=KEY[=VALUE]`,
//! `dangling=true|false`, `driver=`. Filters with the same key are
//! alternatives; different keys must all match.

use super::{Volume, VolumeError};

/// One `--filter KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFilter {
    key: String,
    value: String,
}

impl VolumeFilter {
    /// Parses `KEY=VALUE`, refusing a key Docker does not have.
    pub fn parse(text: &str) -> Result<Self, VolumeError> {
        let bad = || VolumeError::Filter(text.to_string());
        let (key, value) = match text.split_once("!=") {
            Some(("label", value)) => ("label!", value),
            _ => text.split_once('=').ok_or_else(bad)?,
        };
        match key {
            "name" | "label" | "label!" | "driver" => {}
            "dangling" => {
                if !matches!(value, "true" | "false" | "1" | "0") {
                    return Err(bad());
                }
            }
            _ => return Err(bad()),
        }
        Ok(Self {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// Whether `volume` (mounted by a container or not) passes.
    fn matches(&self, volume: &Volume, in_use: bool) -> bool {
        let label = || match self.value.split_once('=') {
            Some((k, v)) => volume.labels.get(k).is_some_and(|l| l == v),
            None => volume.labels.contains_key(&self.value),
        };
        match self.key.as_str() {
            "name" => volume.name.contains(&self.value),
            "label" => label(),
            "label!" => !label(),
            "driver" => volume.driver == self.value,
            "dangling" => in_use != matches!(self.value.as_str(), "true" | "1"),
            _ => false,
        }
    }

    /// Whether `volume` passes all of `filters` (any of those with one key).
    pub fn all_match(filters: &[VolumeFilter], volume: &Volume, in_use: bool) -> bool {
        crate::filters::all_keys_match(filters, |f| &f.key, |f| f.matches(volume, in_use))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn volume(name: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            name: name.into(),
            driver: "local".into(),
            created_at: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            options: BTreeMap::new(),
            mountpoint: "/x".into(),
        }
    }

    fn passes(filters: &[&str], volume: &Volume, in_use: bool) -> bool {
        let filters: Vec<VolumeFilter> = filters
            .iter()
            .map(|f| VolumeFilter::parse(f).unwrap())
            .collect();
        VolumeFilter::all_match(&filters, volume, in_use)
    }

    #[test]
    fn filters_as_dockers() {
        let data = volume("mydata", &[("env", "prod"), ("tier", "")]);
        assert!(passes(&[], &data, false));
        assert!(passes(&["name=data"], &data, false));
        assert!(!passes(&["name=other"], &data, false));
        assert!(passes(&["name=other", "name=my"], &data, false));
        assert!(passes(&["label=env"], &data, false));
        assert!(passes(&["label=env=prod"], &data, false));
        assert!(!passes(&["label=env=dev"], &data, false));
        assert!(passes(&["label!=env=dev"], &data, false));
        assert!(!passes(&["label!=tier"], &data, false));
        assert!(passes(&["dangling=true"], &data, false));
        assert!(!passes(&["dangling=true"], &data, true));
        assert!(passes(&["dangling=false"], &data, true));
        assert!(!passes(&["dangling=true", "name=other"], &data, false));
        assert!(passes(&["driver=local"], &data, false));
        for bad in ["frob=1", "dangling=maybe", "name"] {
            assert!(VolumeFilter::parse(bad).is_err(), "{bad}");
        }
    }
}
