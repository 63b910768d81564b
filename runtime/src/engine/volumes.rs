//! Volumes as the engine manages them: made, listed with the containers
//! that mount them, removed only when no container does, pruned; and the
//! anonymous volumes that go with a container removed with `rm -v` or
//! `run --rm`.

use super::{Engine, Result};
use crate::container::ContainerRecord;
use crate::volume::{Volume, VolumeError, VolumeFilter, VolumeStore};
use std::collections::{BTreeMap, BTreeSet};

/// The names of the volumes a container mounts, from its record's `Mounts`.
pub(super) fn mounted_volumes(record: &ContainerRecord) -> impl Iterator<Item = &str> {
    record.mounts.iter().filter_map(|mount| {
        (mount.get("Type")?.as_str()? == "volume")
            .then(|| mount.get("Name")?.as_str())
            .flatten()
    })
}

impl Engine {
    /// The volume store.
    pub fn volumes(&self) -> Result<VolumeStore> {
        Ok(VolumeStore::open(&self.paths.root)?)
    }

    /// Which containers (full ids) mount each volume that any mounts.
    pub fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for record in self.containers()?.list()? {
            for name in mounted_volumes(&record) {
                users
                    .entry(name.to_string())
                    .or_default()
                    .push(record.id.clone());
            }
        }
        Ok(users)
    }

    /// `volume create`: volume `name` (a fresh 64-hex-digit one if none),
    /// made unless it exists.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume> {
        let store = self.volumes()?;
        let name = match name {
            Some(name) => name.to_string(),
            None => hex::encode(super::create::random_bytes::<32>()?),
        };
        let lock = store.lock()?;
        Ok(store.create(&lock, &name, labels)?.0)
    }

    /// `volume rm`: removes volume `name` unless a container mounts it
    /// (running or not, as Docker refuses); with `force`, a missing volume
    /// is no error.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let store = self.volumes()?;
        let lock = store.lock()?;
        if let Err(err) = store.get(name) {
            return match err {
                VolumeError::NotFound(_) if force => Ok(()),
                err => Err(err.into()),
            };
        }
        if let Some(containers) = self.volume_users()?.remove(name) {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                containers,
            }
            .into());
        }
        store.remove(&lock, name)?;
        Ok(())
    }

    /// `volume prune`: removes the volumes no container mounts that pass
    /// `filters`: only anonymous ones unless `all` (`prune -a`), as Docker
    /// 23 and later (20.10 removed named volumes too, with their data).
    /// Returns their names and the bytes they held.
    pub fn prune_volumes(&self, filters: &[VolumeFilter], all: bool) -> Result<(Vec<String>, u64)> {
        let store = self.volumes()?;
        let lock = store.lock()?;
        let users = self.volume_users()?;
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for volume in store.list()? {
            if users.contains_key(&volume.name)
                || !(all || volume.is_anonymous())
                || !VolumeFilter::all_match(filters, &volume, false)
            {
                continue;
            }
            let size = store.size(&volume.name);
            match store.remove(&lock, &volume.name) {
                Ok(()) => {
                    reclaimed += size;
                    removed.push(volume.name);
                }
                Err(VolumeError::NotFound(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok((removed, reclaimed))
    }

    /// After container `record` is gone (`rm -v`, `run --rm`): removes the
    /// anonymous volumes it mounted that no other container mounts. Named
    /// volumes stay, as Docker keeps them. Failures are logged: the
    /// container is gone whatever happens here.
    pub fn release_anonymous_volumes(&self, record: &ContainerRecord) {
        let names: BTreeSet<&str> = mounted_volumes(record).collect();
        if names.is_empty() {
            return;
        }
        let released = (|| -> Result<()> {
            let store = self.volumes()?;
            let lock = store.lock()?;
            let users = self.volume_users()?;
            for name in names {
                let anonymous = match store.get(name) {
                    Ok(volume) => volume.is_anonymous(),
                    Err(VolumeError::NotFound(_)) => continue,
                    Err(err) => return Err(err.into()),
                };
                let others = users
                    .get(name)
                    .is_some_and(|ids| ids.iter().any(|id| *id != record.id));
                if anonymous && !others {
                    store.remove(&lock, name)?;
                }
            }
            Ok(())
        })();
        if let Err(err) = released {
            tracing::warn!(
                "container {}: removing its anonymous volumes: {err:#}",
                &record.id[..record.id.len().min(12)]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;
    use crate::container::{ContainerConfig, HostConfig};
    use crate::engine::EngineError;
    use crate::volume::ANONYMOUS_LABEL;

    fn engine(root: &std::path::Path) -> Engine {
        Engine::new(Paths {
            root: root.to_path_buf(),
            run: root.join("run"),
        })
    }

    /// A container record that mounts `volumes`, stored.
    fn container(engine: &Engine, id: &str, volumes: &[&str]) -> ContainerRecord {
        let mut record = ContainerRecord::new(
            id.into(),
            format!("c{id}"),
            "sha256:abc".into(),
            "busybox".into(),
            ContainerConfig::default(),
            HostConfig::default(),
        );
        record.mounts = volumes
            .iter()
            .map(|name| serde_json::json!({"Type": "volume", "Name": name, "Destination": "/d"}))
            .collect();
        record
            .mounts
            .push(serde_json::json!({"Type": "bind", "Source": "/srv", "Destination": "/srv"}));
        engine.containers().unwrap().create(&record, &[]).unwrap();
        record
    }

    fn names(engine: &Engine) -> Vec<String> {
        let store = engine.volumes().unwrap();
        store.list().unwrap().into_iter().map(|v| v.name).collect()
    }

    #[test]
    fn a_volume_in_use_is_not_removed() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(root.path());
        engine.create_volume(Some("data"), BTreeMap::new()).unwrap();
        let id = "a".repeat(64);
        let record = container(&engine, &id, &["data"]);
        assert_eq!(engine.volume_users().unwrap()["data"], vec![id.clone()]);
        let err = engine.remove_volume("data", true).unwrap_err();
        assert!(matches!(
            err,
            EngineError::Volume(VolumeError::InUse { .. })
        ));
        assert_eq!(
            err.to_string(),
            format!("remove data: volume is in use - [{id}]")
        );
        assert_eq!(names(&engine), ["data"]);
        engine.containers().unwrap().remove(&record).unwrap();
        engine.remove_volume("data", false).unwrap();
        assert!(names(&engine).is_empty());
        // Gone: an error, unless forced.
        assert!(matches!(
            engine.remove_volume("data", false),
            Err(EngineError::Volume(VolumeError::NotFound(_)))
        ));
        engine.remove_volume("data", true).unwrap();
    }

    #[test]
    fn prune_takes_what_no_container_mounts() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(root.path());
        let labelled = BTreeMap::from([("keep".to_string(), "no".to_string())]);
        for name in ["used", "unused"] {
            engine.create_volume(Some(name), BTreeMap::new()).unwrap();
        }
        engine.create_volume(Some("tagged"), labelled).unwrap();
        let data = engine.volumes().unwrap().get("unused").unwrap().mountpoint;
        std::fs::write(data.join("f"), b"1234").unwrap();
        container(&engine, &"b".repeat(64), &["used"]);

        let anonymous = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
        engine
            .create_volume(Some(&"a".repeat(64)), anonymous)
            .unwrap();

        // Without `all`, only the anonymous one.
        let (removed, _) = engine.prune_volumes(&[], false).unwrap();
        assert_eq!(removed, ["a".repeat(64)]);
        let only_tagged = [VolumeFilter::parse("label=keep").unwrap()];
        let (removed, _) = engine.prune_volumes(&only_tagged, true).unwrap();
        assert_eq!(removed, ["tagged"]);
        let (removed, reclaimed) = engine.prune_volumes(&[], true).unwrap();
        assert_eq!((removed, reclaimed), (vec!["unused".to_string()], 4));
        assert_eq!(names(&engine), ["used"]);
    }

    #[test]
    fn anonymous_volumes_go_with_their_container_named_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(root.path());
        let anonymous = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
        let (mine, shared) = ("1".repeat(64), "2".repeat(64));
        engine
            .create_volume(Some(&mine), anonymous.clone())
            .unwrap();
        engine.create_volume(Some(&shared), anonymous).unwrap();
        engine
            .create_volume(Some("named"), BTreeMap::new())
            .unwrap();
        let record = container(&engine, &"c".repeat(64), &[&mine, &shared, "named"]);
        // Another container mounts `shared` too.
        container(&engine, &"d".repeat(64), &[&shared]);
        engine.containers().unwrap().remove(&record).unwrap();
        engine.release_anonymous_volumes(&record);
        let mut left = names(&engine);
        left.sort();
        assert_eq!(left, [shared, "named".to_string()]);
    }

    #[test]
    fn a_nameless_volume_gets_a_hex_name() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(root.path());
        let volume = engine.create_volume(None, BTreeMap::new()).unwrap();
        assert_eq!(volume.name.len(), 64);
        assert!(volume.name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!volume.is_anonymous());
        assert!(matches!(
            engine.create_volume(Some("../x"), BTreeMap::new()),
            Err(EngineError::Volume(VolumeError::InvalidName(_)))
        ));
    }
}
