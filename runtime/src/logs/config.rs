//! How a container's output is logged: Docker's `--log-driver` and
//! `--log-opt`, read into a [`LogConfig`] and shown by `inspect` as Docker's
//! `HostConfig.LogConfig`, `{"Type":"json-file","Config":{"max-size":"10m","max-file":"3"}}`.

use crate::units::{format_size, parse_size, InvalidSize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// The option that bounds a log file.
const MAX_SIZE: &str = "max-size";
/// The option that says how many files a log keeps.
const MAX_FILE: &str = "max-file";
/// Options Docker's json-file driver has that Hull does not implement.
const UNSUPPORTED_OPTIONS: [&str; 8] = [
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
    "max-buffer-size",
];

/// Log options that cannot be used; the messages are Docker's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogConfigError {
    /// `--log-driver` names a driver Hull does not have.
    #[error("logger: no log driver named '{0}' is registered (Hull logs with json-file, the default, or none)")]
    UnknownDriver(String),
    /// `--log-opt` with `--log-driver none`.
    #[error("invalid logging opts for driver none")]
    OptionsWithNone,
    /// A key the json-file driver does not know.
    #[error("unknown log opt '{0}' for json-file log driver")]
    UnknownOption(String),
    /// A key Docker's json-file driver knows and Hull does not implement.
    #[error("log opt '{0}' of the json-file log driver is not supported by Hull (it supports max-size and max-file)")]
    UnsupportedOption(String),
    /// `max-size` is no size.
    #[error(transparent)]
    InvalidSize(#[from] InvalidSize),
    /// `max-size=0`.
    #[error("max-size must be a positive number")]
    NonPositiveSize,
    /// `max-file` is no whole number.
    #[error("invalid max-file '{0}': must be a whole number of files")]
    InvalidMaxFile(String),
    /// `max-file` below 1.
    #[error("max-file cannot be less than 1")]
    TooFewFiles,
}

/// Where a container's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogDriver {
    /// Docker's json-file log, which `hull logs` reads.
    #[default]
    JsonFile,
    /// Nowhere: only attached clients see the output.
    None,
}

impl LogDriver {
    /// The driver as Docker names it.
    pub fn name(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::None => "none",
        }
    }

    /// The driver named `name`.
    pub fn parse(name: &str) -> Result<Self, LogConfigError> {
        match name {
            "json-file" => Ok(LogDriver::JsonFile),
            "none" => Ok(LogDriver::None),
            other => Err(LogConfigError::UnknownDriver(other.to_string())),
        }
    }
}

/// A container's logging: its driver and, for json-file, when its log
/// rotates. Shown and stored as Docker's `LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "DockerLogConfig", try_from = "DockerLogConfig")]
pub struct LogConfig {
    /// The driver.
    pub driver: LogDriver,
    /// `max-size`: a log file is rotated before it grows past this many
    /// bytes; `None` (the default, `-1`): never.
    pub max_size: Option<u64>,
    /// `max-file`: how many files the log keeps, the one being written
    /// included (at least 1, the default); only with `max_size`.
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            driver: LogDriver::JsonFile,
            max_size: None,
            max_file: 1,
        }
    }
}

impl LogConfig {
    /// Reads `--log-driver` (`None`: json-file) and the `--log-opt` pairs
    /// (a later key wins, as in Docker's map of them).
    pub fn parse<'a>(
        driver: Option<&str>,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LogConfigError> {
        let driver = driver.map_or(Ok(LogDriver::JsonFile), LogDriver::parse)?;
        let options: BTreeMap<&str, &str> = options.into_iter().collect();
        let mut config = LogConfig {
            driver,
            ..LogConfig::default()
        };
        if driver == LogDriver::None && !options.is_empty() {
            return Err(LogConfigError::OptionsWithNone);
        }
        for (key, value) in options {
            match key {
                MAX_SIZE => config.max_size = parse_max_size(value)?,
                MAX_FILE => config.max_file = parse_max_file(value)?,
                key if UNSUPPORTED_OPTIONS.contains(&key) => {
                    return Err(LogConfigError::UnsupportedOption(key.to_string()))
                }
                key => return Err(LogConfigError::UnknownOption(key.to_string())),
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks a config built field by field as [`Self::parse`] checks its text.
    pub fn validate(&self) -> Result<(), LogConfigError> {
        if self.max_size == Some(0) {
            return Err(LogConfigError::NonPositiveSize);
        }
        if self.max_file < 1 {
            return Err(LogConfigError::TooFewFiles);
        }
        if self.driver == LogDriver::None && *self != Self::none() {
            return Err(LogConfigError::OptionsWithNone);
        }
        Ok(())
    }

    /// The `none` driver: nothing logged.
    pub fn none() -> Self {
        Self {
            driver: LogDriver::None,
            ..Self::default()
        }
    }

    /// The options as Docker shows them (only those that differ from the default).
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        if let Some(bytes) = self.max_size {
            options.insert(MAX_SIZE.to_string(), format_size(bytes));
        }
        if self.max_file != 1 {
            options.insert(MAX_FILE.to_string(), self.max_file.to_string());
        }
        options
    }
}

/// `max-size`: a size, or `-1` for unlimited.
fn parse_max_size(value: &str) -> Result<Option<u64>, LogConfigError> {
    if value == "-1" {
        return Ok(None);
    }
    match parse_size(value)? {
        0 => Err(LogConfigError::NonPositiveSize),
        bytes => Ok(Some(bytes)),
    }
}

/// `max-file`: a whole number, at least 1.
fn parse_max_file(value: &str) -> Result<u32, LogConfigError> {
    let count: i64 = value
        .parse()
        .map_err(|_| LogConfigError::InvalidMaxFile(value.to_string()))?;
    if count < 1 {
        return Err(LogConfigError::TooFewFiles);
    }
    u32::try_from(count).map_err(|_| LogConfigError::InvalidMaxFile(value.to_string()))
}

/// Docker's `LogConfig`, as `inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DockerLogConfig {
    /// The driver's name (empty: the default).
    #[serde(rename = "Type")]
    kind: String,
    /// Its options, as text.
    config: BTreeMap<String, String>,
}

impl From<LogConfig> for DockerLogConfig {
    fn from(config: LogConfig) -> Self {
        Self {
            kind: config.driver.name().to_string(),
            config: config.options(),
        }
    }
}

impl TryFrom<DockerLogConfig> for LogConfig {
    type Error = LogConfigError;

    fn try_from(docker: DockerLogConfig) -> Result<Self, Self::Error> {
        let driver = Some(docker.kind.as_str()).filter(|kind| !kind.is_empty());
        LogConfig::parse(
            driver,
            docker
                .config
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(driver: Option<&str>, options: &[(&str, &str)]) -> Result<LogConfig, LogConfigError> {
        LogConfig::parse(driver, options.iter().copied())
    }

    #[test]
    fn json_file_unbounded_by_default() {
        let config = parse(None, &[]).unwrap();
        assert_eq!(config, LogConfig::default());
        assert_eq!(config.max_size, None);
        assert_eq!(config.max_file, 1);
        assert_eq!(parse(Some("json-file"), &[]).unwrap(), config);
        assert_eq!(
            parse(None, &[("max-size", "-1")]).unwrap(),
            LogConfig::default()
        );
    }

    #[test]
    fn max_size_and_max_file() {
        let config = parse(None, &[("max-size", "10m"), ("max-file", "3")]).unwrap();
        assert_eq!(config.max_size, Some(10_000_000));
        assert_eq!(config.max_file, 3);
        // Docker takes max-file alone too; it only matters with max-size.
        let config = parse(None, &[("max-file", "2")]).unwrap();
        assert_eq!((config.max_size, config.max_file), (None, 2));
        // A later value wins.
        let config = parse(None, &[("max-size", "1k"), ("max-size", "2k")]).unwrap();
        assert_eq!(config.max_size, Some(2_000));
    }

    #[test]
    fn bad_options_are_refused_as_docker_refuses_them() {
        let error =
            |driver, options: &[(&str, &str)]| parse(driver, options).unwrap_err().to_string();
        assert_eq!(
            error(None, &[("foo", "bar")]),
            "unknown log opt 'foo' for json-file log driver"
        );
        assert!(error(None, &[("compress", "true")]).contains("not supported by Hull"));
        assert_eq!(error(None, &[("max-size", "lots")]), "invalid size: 'lots'");
        assert_eq!(error(None, &[("max-size", "")]), "invalid size: ''");
        assert_eq!(
            error(None, &[("max-size", "0")]),
            "max-size must be a positive number"
        );
        assert_eq!(
            error(None, &[("max-size", "1k"), ("max-file", "0")]),
            "max-file cannot be less than 1"
        );
        assert_eq!(
            error(None, &[("max-file", "-3")]),
            "max-file cannot be less than 1"
        );
        assert!(error(None, &[("max-file", "two")]).starts_with("invalid max-file 'two'"));
        assert!(error(None, &[("max-file", "99999999999")]).starts_with("invalid max-file"));
        assert!(error(Some("syslog"), &[])
            .starts_with("logger: no log driver named 'syslog' is registered"));
        assert_eq!(
            error(Some("none"), &[("max-size", "1k")]),
            "invalid logging opts for driver none"
        );
    }

    #[test]
    fn the_none_driver() {
        let config = parse(Some("none"), &[]).unwrap();
        assert_eq!(config, LogConfig::none());
        assert_eq!(config.validate(), Ok(()));
        let odd = LogConfig {
            max_size: Some(1),
            ..LogConfig::none()
        };
        assert_eq!(odd.validate(), Err(LogConfigError::OptionsWithNone));
    }

    #[test]
    fn shown_as_dockers_log_config() {
        let config = parse(None, &[("max-size", "10m"), ("max-file", "3")]).unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::json!({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
        );
        assert_eq!(
            serde_json::to_value(LogConfig::default()).unwrap(),
            serde_json::json!({"Type": "json-file", "Config": {}})
        );
        assert_eq!(
            serde_json::to_value(LogConfig::none()).unwrap(),
            serde_json::json!({"Type": "none", "Config": {}})
        );
        for config in [config, LogConfig::default(), LogConfig::none()] {
            let text = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<LogConfig>(&text).unwrap(), config);
        }
        // Written by something else: an empty type is the default driver.
        let empty: LogConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, LogConfig::default());
        assert!(serde_json::from_str::<LogConfig>(r#"{"Type":"syslog"}"#).is_err());
    }
}
