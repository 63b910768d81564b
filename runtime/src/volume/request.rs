//! What `-v`, `--mount` and `--tmpfs` ask for, parsed as Docker parses
//! them: a host path, a named or anonymous volume, or a tmpfs.

use super::store::check_name;
use super::VolumeError;
use std::path::PathBuf;

/// The options every tmpfs starts with, as Docker's.
const TMPFS_DEFAULTS: [&str; 3] = ["noexec", "nosuid", "nodev"];

/// One mount a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host path (`-v /host:/ctr`, `--mount type=bind`).
    Bind {
        /// The host path.
        source: PathBuf,
        /// The container path, cleaned.
        destination: String,
        /// Read-only.
        readonly: bool,
        /// `--mount` (the source must exist) rather than `-v` (it is made).
        must_exist: bool,
    },
    /// A volume: named, or anonymous (`-v /ctr`, an image's `VOLUME`).
    Volume {
        /// Its name; `None` for a new anonymous volume.
        name: Option<String>,
        /// The container path, cleaned.
        destination: String,
        /// Read-only.
        readonly: bool,
        /// `nocopy`: the image's files at the path are not copied in.
        nocopy: bool,
        /// The mode `inspect` shows (`z` for `-v NAME:/ctr`, as Docker's).
        mode: String,
    },
    /// A tmpfs the guest mounts (`--tmpfs`, `--mount type=tmpfs`).
    Tmpfs {
        /// The container path, cleaned.
        destination: String,
        /// Mount options (Docker's defaults first).
        options: Vec<String>,
        /// As given to `--tmpfs` (its value in `HostConfig.Tmpfs`); `None`
        /// for `--mount`.
        tmpfs_flag: Option<String>,
    },
}

/// `path` as a container path Docker accepts: absolute, not `/`, no `..`,
/// no NUL; `.` components and repeated or trailing slashes dropped.
pub fn clean_destination(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("/{}", parts.join("/")))
}

impl MountRequest {
    /// The container path.
    pub fn destination(&self) -> &str {
        match self {
            MountRequest::Bind { destination, .. }
            | MountRequest::Volume { destination, .. }
            | MountRequest::Tmpfs { destination, .. } => destination,
        }
    }

    /// An anonymous volume at `destination` (an image's `VOLUME` line, which
    /// the image controls: checked like any container path).
    pub fn anonymous(destination: &str) -> Result<Self, VolumeError> {
        let cleaned = clean_destination(destination).ok_or_else(|| VolumeError::Destination {
            spec: destination.to_string(),
            destination: destination.to_string(),
        })?;
        Ok(MountRequest::Volume {
            name: None,
            destination: cleaned,
            readonly: false,
            nocopy: false,
            mode: String::new(),
        })
    }

    /// Docker's `-v [SOURCE:]DEST[:OPTIONS]`: a host path, a volume's name,
    /// or nothing (an anonymous volume).
    pub fn parse_volume(spec: &str) -> Result<Self, VolumeError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (source, destination, mode) = match parts.as_slice() {
            [destination] => (None, *destination, None),
            [source, destination] => (Some(*source), *destination, None),
            [source, destination, mode] => (Some(*source), *destination, Some(*mode)),
            _ => return Err(VolumeError::Invalid(spec.to_string())),
        };
        if source.is_some_and(str::is_empty) || destination.is_empty() {
            return Err(VolumeError::Invalid(spec.to_string()));
        }
        let destination =
            clean_destination(destination).ok_or_else(|| VolumeError::Destination {
                spec: spec.to_string(),
                destination: destination.to_string(),
            })?;
        let is_bind = source.is_some_and(|s| s.starts_with('/'));
        let (mut readonly, mut nocopy) = (false, false);
        for option in mode.into_iter().flat_map(|m| m.split(',')) {
            match option {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "nocopy" if !is_bind => nocopy = true,
                // SELinux relabelling and propagation mean nothing across a VM boundary.
                "z" | "Z" | "rprivate" | "private" | "rslave" | "slave" | "rshared" | "shared" => {}
                other => {
                    return Err(VolumeError::Mode {
                        spec: spec.to_string(),
                        mode: other.to_string(),
                    })
                }
            }
        }
        match source {
            Some(source) if is_bind => Ok(MountRequest::Bind {
                source: PathBuf::from(source),
                destination,
                readonly,
                must_exist: false,
            }),
            Some(name) => {
                check_name(name)?;
                Ok(MountRequest::Volume {
                    name: Some(name.to_string()),
                    destination,
                    readonly,
                    nocopy,
                    mode: mode.unwrap_or("z").to_string(),
                })
            }
            None => Ok(MountRequest::Volume {
                name: None,
                destination,
                readonly,
                nocopy,
                mode: mode.unwrap_or_default().to_string(),
            }),
        }
    }

    /// Docker's `--mount type=bind|volume|tmpfs,source=…,target=…,readonly,…`.
    pub fn parse_mount(spec: &str) -> Result<Self, VolumeError> {
        let bad = |reason: String| VolumeError::Flag {
            flag: "mount",
            spec: spec.to_string(),
            reason,
        };
        let mut kind = "volume".to_string();
        let (mut source, mut target) = (None::<String>, None::<String>);
        let (mut readonly, mut nocopy) = (false, false);
        let mut tmpfs_options = Vec::new();
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = match field.split_once('=') {
                Some((key, value)) => (key.trim().to_ascii_lowercase(), Some(value.trim())),
                None => (field.trim().to_ascii_lowercase(), None),
            };
            let flag = |value: Option<&str>| match value {
                None | Some("1") | Some("true") => Ok(true),
                Some("0") | Some("false") => Ok(false),
                Some(other) => Err(bad(format!("invalid value for {key}: {other}"))),
            };
            let text = |value: Option<&str>| {
                value
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("invalid field '{field}' must be a key=value pair")))
            };
            match key.as_str() {
                "type" => kind = text(value)?,
                "source" | "src" => source = Some(text(value)?),
                "target" | "destination" | "dst" => target = Some(text(value)?),
                "readonly" | "ro" => readonly = flag(value)?,
                "volume-nocopy" => nocopy = flag(value)?,
                "volume-driver" => {
                    let driver = text(value)?;
                    if driver != super::LOCAL_DRIVER {
                        return Err(VolumeError::Driver(driver));
                    }
                }
                // Meaningless across a VM boundary, as on Linux for consistency.
                "consistency" | "bind-propagation" | "bind-nonrecursive" => {}
                "tmpfs-size" => {
                    let size = text(value)?;
                    check_tmpfs_value("size", &size).map_err(bad)?;
                    tmpfs_options.push(format!("size={size}"));
                }
                "tmpfs-mode" => {
                    let mode = text(value)?;
                    check_tmpfs_value("mode", &mode).map_err(bad)?;
                    tmpfs_options.push(format!("mode={mode}"));
                }
                _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
            }
        }
        let target = target.ok_or_else(|| bad("target is required".into()))?;
        let destination = clean_destination(&target).ok_or_else(|| {
            bad(format!(
                "invalid mount path: '{target}' mount path must be absolute and not /"
            ))
        })?;
        let source = source.filter(|s| !s.is_empty());
        match kind.as_str() {
            "bind" => {
                let source = source.ok_or_else(|| {
                    bad(
                        "invalid mount config for type \"bind\": field Source must not be empty"
                            .into(),
                    )
                })?;
                if !source.starts_with('/') {
                    return Err(bad(format!("invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute")));
                }
                Ok(MountRequest::Bind {
                    source: PathBuf::from(source),
                    destination,
                    readonly,
                    must_exist: true,
                })
            }
            "volume" => {
                if let Some(name) = &source {
                    check_name(name)?;
                }
                Ok(MountRequest::Volume {
                    name: source,
                    destination,
                    readonly,
                    nocopy,
                    mode: String::new(),
                })
            }
            "tmpfs" => {
                if source.is_some() {
                    return Err(bad(
                        "invalid mount config for type \"tmpfs\": field Source must not be specified"
                            .into(),
                    ));
                }
                let mut options: Vec<String> = TMPFS_DEFAULTS.map(String::from).to_vec();
                if readonly {
                    options.push("ro".into());
                }
                options.extend(tmpfs_options);
                Ok(MountRequest::Tmpfs {
                    destination,
                    options,
                    tmpfs_flag: None,
                })
            }
            other => Err(bad(format!("invalid mount type: '{other}'"))),
        }
    }

    /// Docker's `--tmpfs /path[:OPTIONS]`.
    pub fn parse_tmpfs(spec: &str) -> Result<Self, VolumeError> {
        let bad = |reason: String| VolumeError::Flag {
            flag: "tmpfs",
            spec: spec.to_string(),
            reason,
        };
        let (path, given) = spec.split_once(':').unwrap_or((spec, ""));
        let destination = clean_destination(path).ok_or_else(|| {
            bad(format!(
                "invalid mount path: '{path}' mount path must be absolute and not /"
            ))
        })?;
        let mut options: Vec<String> = TMPFS_DEFAULTS.map(String::from).to_vec();
        for option in given.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some((key, value)) => check_tmpfs_value(key, value).map_err(bad)?,
                None if TMPFS_FLAGS.contains(&option) => {}
                None => return Err(bad(format!("invalid tmpfs option \"{option}\""))),
            }
            options.push(option.to_string());
        }
        Ok(MountRequest::Tmpfs {
            destination,
            options,
            tmpfs_flag: Some(given.to_string()),
        })
    }
}

/// The tmpfs options without a value that the guest agent knows.
const TMPFS_FLAGS: [&str; 13] = [
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "sync",
    "noatime",
    "nodiratime",
    "relatime",
    "strictatime",
];

/// A tmpfs option with a value: `size` (bytes, with k/m/g, or a
/// percentage), `mode` (octal), `uid`, `gid`, `nr_inodes`, `nr_blocks`.
fn check_tmpfs_value(key: &str, value: &str) -> Result<(), String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fine = match key {
        "size" | "nr_inodes" | "nr_blocks" => {
            let number = value.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
            digits(number) && value.len() - number.len() <= 1
        }
        "mode" => value.len() <= 4 && digits(value) && value.bytes().all(|b| b < b'8'),
        "uid" | "gid" => digits(value),
        _ => return Err(format!("invalid tmpfs option \"{key}={value}\"")),
    };
    if fine {
        Ok(())
    } else {
        Err(format!("invalid tmpfs option \"{key}={value}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: Option<&str>, destination: &str, readonly: bool) -> MountRequest {
        MountRequest::Volume {
            name: name.map(String::from),
            destination: destination.into(),
            readonly,
            nocopy: false,
            mode: String::new(),
        }
    }

    #[test]
    fn destinations_are_cleaned_and_checked() {
        assert_eq!(clean_destination("/a//b/./c/").as_deref(), Some("/a/b/c"));
        for bad in ["", "/", "//", "relative", "/a/../b", "/..", "/a\0b"] {
            assert_eq!(clean_destination(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dash_v_tells_binds_named_and_anonymous_volumes_apart() {
        assert_eq!(
            MountRequest::parse_volume("/srv/data:/data:ro").unwrap(),
            MountRequest::Bind {
                source: "/srv/data".into(),
                destination: "/data".into(),
                readonly: true,
                must_exist: false,
            }
        );
        let named = MountRequest::parse_volume("data:/data/").unwrap();
        assert!(
            matches!(&named, MountRequest::Volume { name: Some(n), destination, mode, .. }
            if n == "data" && destination == "/data" && mode == "z")
        );
        let ro = MountRequest::parse_volume("data:/data:ro,nocopy").unwrap();
        assert!(matches!(
            ro,
            MountRequest::Volume {
                readonly: true,
                nocopy: true,
                ..
            }
        ));
        assert_eq!(
            MountRequest::parse_volume("/scratch").unwrap(),
            volume(None, "/scratch", false)
        );
    }

    #[test]
    fn dash_v_refuses_what_docker_refuses() {
        let err = |spec: &str| MountRequest::parse_volume(spec).unwrap_err();
        assert!(matches!(err("/a:b"), VolumeError::Destination { .. }));
        assert!(matches!(err("/a:/"), VolumeError::Destination { .. }));
        assert!(matches!(
            err("/a:/x/../.."),
            VolumeError::Destination { .. }
        ));
        assert!(matches!(err("data"), VolumeError::Destination { .. }));
        assert!(matches!(err("/a:/b:rx"), VolumeError::Mode { .. }));
        assert!(matches!(err("/a:/b:nocopy"), VolumeError::Mode { .. }));
        assert!(matches!(err("/a:/b:ro:x"), VolumeError::Invalid(_)));
        assert!(matches!(err(":/b"), VolumeError::Invalid(_)));
        assert!(matches!(err("./data:/d"), VolumeError::InvalidName(_)));
        assert!(matches!(err("x:/d"), VolumeError::NameTooShort(_)));
        assert_eq!(
            err("./data:/d").to_string(),
            "create ./data: \"./data\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
    }

    #[test]
    fn dash_dash_mount_fields() {
        assert_eq!(
            MountRequest::parse_mount("type=volume,source=data,target=/data,readonly").unwrap(),
            volume(Some("data"), "/data", true)
        );
        assert_eq!(
            MountRequest::parse_mount("target=/d,ro=false").unwrap(),
            volume(None, "/d", false)
        );
        assert!(matches!(
            MountRequest::parse_mount("type=bind,src=/srv,dst=/d,readonly=1").unwrap(),
            MountRequest::Bind {
                readonly: true,
                must_exist: true,
                ..
            }
        ));
        let tmpfs =
            MountRequest::parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770")
                .unwrap();
        assert_eq!(
            tmpfs,
            MountRequest::Tmpfs {
                destination: "/t".into(),
                options: ["noexec", "nosuid", "nodev", "size=1m", "mode=1770"]
                    .map(String::from)
                    .to_vec(),
                tmpfs_flag: None,
            }
        );
        for (bad, says) in [
            ("type=volume,source=data", "target is required"),
            ("type=bind,target=/d", "field Source must not be empty"),
            ("type=bind,source=rel,target=/d", "must be absolute"),
            ("type=tmpfs,source=x,target=/d", "must not be specified"),
            ("type=nfs,target=/d", "invalid mount type"),
            ("target=/d,frob=1", "unexpected key 'frob'"),
            ("target=/d,readonly=maybe", "invalid value"),
            ("target=/", "mount path must be absolute"),
            (
                "type=tmpfs,target=/d,tmpfs-mode=999",
                "invalid tmpfs option",
            ),
        ] {
            let err = MountRequest::parse_mount(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.starts_with("invalid argument \""), "{err}");
        }
        assert!(matches!(
            MountRequest::parse_mount("target=/d,volume-driver=nfs"),
            Err(VolumeError::Driver(_))
        ));
    }

    #[test]
    fn dash_dash_tmpfs_options() {
        assert_eq!(
            MountRequest::parse_tmpfs("/run:rw,exec,size=64k").unwrap(),
            MountRequest::Tmpfs {
                destination: "/run".into(),
                options: ["noexec", "nosuid", "nodev", "rw", "exec", "size=64k"]
                    .map(String::from)
                    .to_vec(),
                tmpfs_flag: Some("rw,exec,size=64k".into()),
            }
        );
        assert_eq!(
            MountRequest::parse_tmpfs("/scratch").unwrap().destination(),
            "/scratch"
        );
        for bad in [
            "scratch",
            "/",
            "/x:bogus",
            "/x:size=lots",
            "/x:mode=8",
            "/x:uid=-1",
        ] {
            assert!(MountRequest::parse_tmpfs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_volume_paths_are_checked() {
        assert_eq!(
            MountRequest::anonymous("/var/lib/data/").unwrap(),
            volume(None, "/var/lib/data", false)
        );
        for hostile in ["../../etc", "/a/../../..", "/", "rel"] {
            assert!(MountRequest::anonymous(hostile).is_err(), "{hostile}");
        }
    }
}
