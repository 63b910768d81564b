//! `--ulimit NAME=SOFT[:HARD]` as Docker reads it (go-units' `ParseUlimit`),
//! and the OCI rlimits it becomes (the agent sets them on the container's
//! process in the guest).

use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A `--ulimit` value Hull cannot use (Docker's wording).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UlimitError {
    /// Not `NAME=SOFT[:HARD]`, or a limit that is not a number.
    #[error("invalid ulimit argument: {0}")]
    Argument(String),
    /// A name Linux has no limit of.
    #[error("invalid ulimit type: {0}")]
    Type(String),
    /// The soft limit is above the hard one.
    #[error("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")]
    SoftAboveHard {
        /// The soft limit.
        soft: i64,
        /// The hard limit.
        hard: i64,
    },
}

/// One limit, as `docker inspect` shows it under `HostConfig.Ulimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// `nofile`, `nproc`, ...
    pub name: String,
    /// The hard limit (-1: unlimited).
    pub hard: i64,
    /// The soft limit (-1: unlimited).
    pub soft: i64,
}

/// The limits `--ulimit` may name, and their rlimit.
const NAMES: [(&str, PosixRlimitType); 15] = [
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (a hard limit defaults to the soft one).
    pub fn parse(text: &str) -> Result<Ulimit, UlimitError> {
        let argument = || UlimitError::Argument(text.to_string());
        let (name, limits) = text.split_once('=').ok_or_else(argument)?;
        if !NAMES.iter().any(|(known, _)| *known == name) {
            return Err(UlimitError::Type(name.to_string()));
        }
        let number = |n: &str| n.parse::<i64>().map_err(|_| argument());
        let (soft, hard) = match limits.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => (number(limits)?, number(limits)?),
        };
        if soft > hard && hard != -1 {
            return Err(UlimitError::SoftAboveHard { soft, hard });
        }
        Ok(Ulimit {
            name: name.to_string(),
            hard,
            soft,
        })
    }

    /// The OCI rlimit it is (-1 becomes RLIM_INFINITY).
    pub fn rlimit(&self) -> Result<PosixRlimit, UlimitError> {
        let typ = NAMES
            .iter()
            .find(|(name, _)| *name == self.name)
            .map(|(_, typ)| *typ)
            .ok_or_else(|| UlimitError::Type(self.name.clone()))?;
        let value = |limit: i64| u64::try_from(limit).unwrap_or(u64::MAX);
        PosixRlimitBuilder::default()
            .typ(typ)
            .soft(value(self.soft))
            .hard(value(self.hard))
            .build()
            .map_err(|e| UlimitError::Argument(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_as_docker_reads_them() {
        let nofile = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((nofile.soft, nofile.hard), (1024, 2048));
        let core = Ulimit::parse("core=-1").unwrap();
        assert_eq!((core.soft, core.hard), (-1, -1));
        let rlimit = nofile.rlimit().unwrap();
        assert_eq!(rlimit.typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((rlimit.soft(), rlimit.hard()), (1024, 2048));
        assert_eq!(core.rlimit().unwrap().hard(), u64::MAX);
    }

    #[test]
    fn bad_limits_say_why() {
        assert_eq!(
            Ulimit::parse("nofile").unwrap_err().to_string(),
            "invalid ulimit argument: nofile"
        );
        assert_eq!(
            Ulimit::parse("files=1").unwrap_err().to_string(),
            "invalid ulimit type: files"
        );
        assert_eq!(
            Ulimit::parse("nofile=2:1").unwrap_err().to_string(),
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        );
        assert!(Ulimit::parse("nofile=x").is_err());
    }
}
