//! Registry credentials (`hull login`/`logout`): one JSON file in the
//! shape of Docker's `config.json` (`{"auths": {"SERVER": {"auth":
//! base64("USER:PASSWORD")}}}`), readable by its owner only.
//!
//! The file is `$HULL_CONFIG/auth.json`, else `$XDG_CONFIG_HOME/hull/auth.json`,
//! else `~/.config/hull/auth.json`. Keys other than `auths`, and fields of
//! an entry other than `auth`, are kept as they are.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::fsutil::{self, TempGuard};
use super::ImageError;

/// The directory variable that overrides where the auth file lives.
pub const CONFIG_DIR_ENV: &str = "HULL_CONFIG";
/// The auth file's name in that directory.
const AUTH_FILE_NAME: &str = "auth.json";
/// Bound on the auth file (it holds a few lines per registry).
const MAX_AUTH_FILE_SIZE: u64 = 1 << 20;
/// The key Docker stores Docker Hub's credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The auth file, read into memory; [`AuthFile::save`] writes it back.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    document: serde_json::Map<String, serde_json::Value>,
}

impl AuthFile {
    /// Where the auth file is by default (see the module docs).
    pub fn default_path() -> Result<PathBuf, ImageError> {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = env_dir(CONFIG_DIR_ENV) {
            return Ok(dir.join(AUTH_FILE_NAME));
        }
        if let Some(dir) = env_dir("XDG_CONFIG_HOME") {
            return Ok(dir.join("hull").join(AUTH_FILE_NAME));
        }
        match env_dir("HOME") {
            Some(home) => Ok(home.join(".config").join("hull").join(AUTH_FILE_NAME)),
            None => Err(ImageError::io(
                "find the configuration directory for",
                AUTH_FILE_NAME,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("none of {CONFIG_DIR_ENV}, XDG_CONFIG_HOME and HOME is set"),
                ),
            )),
        }
    }

    /// Reads the auth file at `path`; a missing file has no credentials.
    pub fn load(path: &Path) -> Result<AuthFile, ImageError> {
        let document = match fs::File::open(path) {
            Ok(file) => {
                let data =
                    fsutil::read_bounded(file, MAX_AUTH_FILE_SIZE, "auth file").map_err(|err| {
                        fsutil::too_large(&err).unwrap_or_else(|| ImageError::io("read", path, err))
                    })?;
                serde_json::from_slice(&data).map_err(|err| ImageError::InvalidJson {
                    what: path.display().to_string(),
                    reason: err.to_string(),
                })?
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(err) => return Err(ImageError::io("open", path, err)),
        };
        Ok(AuthFile {
            path: path.to_owned(),
            document,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials stored for registry `domain` (`127.0.0.1:5000`,
    /// `docker.io`), if any. Entries written as URLs
    /// (`https://registry.example.com/v1/`) count for their host.
    pub fn get(&self, domain: &str) -> Result<Option<Credentials>, ImageError> {
        let wanted = server_key(domain);
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        let entry = auths.get(&wanted).or_else(|| {
            auths
                .iter()
                .find(|(key, _)| server_key(key) == wanted)
                .map(|(_, value)| value)
        });
        let Some(encoded) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
            return Ok(None);
        };
        let invalid = |reason: &str| ImageError::InvalidJson {
            what: format!("{} (entry for {wanted})", self.path.display()),
            reason: reason.to_owned(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid("auth is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid("auth is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid("auth is not USER:PASSWORD"))?;
        Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }))
    }

    /// Stores credentials for `domain`, replacing any it had.
    pub fn set(&mut self, domain: &str, credentials: &Credentials) {
        let encoded = encode_credentials(credentials);
        let key = server_key(domain);
        let auths = self
            .document
            .entry("auths")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !auths.is_object() {
            *auths = serde_json::Value::Object(serde_json::Map::new());
        }
        if let Some(auths) = auths.as_object_mut() {
            auths.retain(|existing, _| existing == &key || server_key(existing) != key);
            let entry = auths.entry(key).or_insert_with(|| serde_json::json!({}));
            if !entry.is_object() {
                *entry = serde_json::json!({});
            }
            entry["auth"] = encoded.into();
        }
    }

    /// Forgets the credentials for `domain`; returns whether there were any.
    pub fn remove(&mut self, domain: &str) -> bool {
        let key = server_key(domain);
        let Some(auths) = self
            .document
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
        else {
            return false;
        };
        let before = auths.len();
        auths.retain(|existing, _| server_key(existing) != key);
        auths.len() != before
    }

    /// Writes the file back atomically, mode 0600, in a 0700 directory
    /// created if missing.
    pub fn save(&self) -> Result<(), ImageError> {
        use std::io::Write;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ImageError::io("create directory", dir, e))?;
        let data =
            serde_json::to_vec_pretty(&self.document).map_err(|err| ImageError::InvalidJson {
                what: self.path.display().to_string(),
                reason: err.to_string(),
            })?;
        let temp = TempGuard::new(dir.join(fsutil::temp_name()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp.path())
            .map_err(|e| ImageError::io("create", temp.path(), e))?;
        // The mode given to open() is masked by the umask; this one is not.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| ImageError::io("set the mode of", temp.path(), e))?;
        file.write_all(&data)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| ImageError::io("write", temp.path(), e))?;
        fs::rename(temp.path(), &self.path).map_err(|e| ImageError::io("write", &self.path, e))?;
        temp.keep();
        Ok(())
    }

    fn auths(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.document.get("auths").and_then(|a| a.as_object())
    }
}

/// The registry a `hull login`/`logout` argument names: its `host[:port]`
/// in lower case, URLs reduced to their host, and Docker Hub's aliases
/// (`index.docker.io`, `https://index.docker.io/v1/`) to `docker.io`.
pub fn registry_domain(server: &str) -> String {
    let without_scheme = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// The key a registry's credentials are stored under: its `host[:port]`,
/// except Docker Hub's, which Docker stores as `https://index.docker.io/v1/`.
pub fn server_key(server: &str) -> String {
    match registry_domain(server) {
        hub if hub == "docker.io" => DOCKER_HUB_KEY.to_owned(),
        domain => domain,
    }
}

/// `base64("USER:PASSWORD")`, the `auth` field of an entry.
fn encode_credentials(credentials: &Credentials) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.username, credentials.password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn credentials(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn round_trip_in_dockers_shape_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/auth.json");
        let mut file = AuthFile::load(&path).unwrap();
        assert_eq!(file.get("127.0.0.1:5000").unwrap(), None);
        file.set("127.0.0.1:5000", &credentials("alice", "se:cret"));
        file.set("docker.io", &credentials("bob", "pw"));
        file.save().unwrap();

        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            json["auths"]["127.0.0.1:5000"]["auth"],
            "YWxpY2U6c2U6Y3JldA=="
        );
        assert!(json["auths"]["https://index.docker.io/v1/"]["auth"].is_string());

        let file = AuthFile::load(&path).unwrap();
        assert_eq!(
            file.get("127.0.0.1:5000").unwrap(),
            Some(credentials("alice", "se:cret"))
        );
        assert_eq!(
            file.get("index.docker.io").unwrap(),
            Some(credentials("bob", "pw"))
        );
        assert_eq!(file.get("127.0.0.1:5001").unwrap(), None);
    }

    #[test]
    fn remove_and_keep_other_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let text = r#"{"auths":{"https://registry.example.com/v1/":{"auth":"dTpw","email":"x@y"},"other:5000":{"auth":"dTpw"}},"credsStore":"none"}"#;
        fs::write(&path, text).unwrap();
        let mut file = AuthFile::load(&path).unwrap();
        assert_eq!(
            file.get("registry.example.com").unwrap(),
            Some(credentials("u", "p"))
        );
        file.set("other:5000", &credentials("v", "q"));
        assert!(file.remove("registry.example.com"));
        assert!(!file.remove("registry.example.com"));
        file.save().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["credsStore"], "none");
        assert_eq!(json["auths"].as_object().unwrap().len(), 1);
        assert_eq!(
            AuthFile::load(&path).unwrap().get("other:5000").unwrap(),
            Some(credentials("v", "q"))
        );
    }

    #[test]
    fn malformed_entries_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(
            &path,
            r#"{"auths":{"r:1":{"auth":"not base64!"},"r:2":{"auth":"bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        let file = AuthFile::load(&path).unwrap();
        assert!(file.get("r:1").is_err());
        assert!(
            file.get("r:2").is_err(),
            "USER:PASSWORD without a colon was accepted"
        );
        fs::write(&path, "not json").unwrap();
        assert!(AuthFile::load(&path).is_err());
    }

    #[test]
    fn server_keys_follow_docker() {
        assert_eq!(server_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(
            server_key("https://index.docker.io/v1/"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(server_key("http://LocalHost:5000/v2/"), "localhost:5000");
        assert_eq!(server_key("[::1]:5000"), "[::1]:5000");
        assert_eq!(registry_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_domain("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
