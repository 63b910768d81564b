//! The sha256 content digest used to name blobs, layers and images, and a
//! reader that hashes (and bounds) everything read through it.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// The only algorithm Hull stores content under.
const ALGORITHM_PREFIX: &str = "sha256:";

/// Length of a sha256 digest in hex characters.
const HEX_LEN: usize = 64;

/// Length of the short form shown as `IMAGE ID` (as `docker images` does).
const SHORT_LEN: usize = 12;

/// A validated sha256 content digest, written `sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The 64 lowercase hex characters (without the `sha256:` prefix).
    hex: String,
}

impl Digest {
    /// Builds a digest from its 64 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Result<Digest, ImageError> {
        if is_sha256_hex(hex) {
            Ok(Digest {
                hex: hex.to_owned(),
            })
        } else {
            Err(ImageError::InvalidDigest(hex.to_owned()))
        }
    }

    /// The sha256 digest of `data`.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    /// The 64 hex characters, e.g. a blob's file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as shown in the `IMAGE ID` column.
    pub fn short(&self) -> &str {
        &self.hex[..SHORT_LEN]
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }
}

/// Whether `s` is exactly 64 lowercase hex characters (the canonical form;
/// upper case is refused so one blob never has two names).
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM_PREFIX}{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Digest, ImageError> {
        match s.strip_prefix(ALGORITHM_PREFIX) {
            Some(hex) if is_sha256_hex(hex) => Ok(Digest {
                hex: hex.to_owned(),
            }),
            _ => Err(ImageError::InvalidDigest(s.to_owned())),
        }
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Wraps a reader: hashes every byte read through it, and fails with an
/// `io::Error` carrying [`LimitExceeded`] once more than `limit` bytes went
/// through, so a hostile stream (e.g. a gzip bomb) cannot make us read (or
/// write to disk) forever.
pub(crate) struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    bytes_read: u64,
    limit: u64,
}

/// Marker carried inside the `io::Error` produced when a [`DigestReader`]
/// passes its limit, so callers can turn it back into a precise error.
#[derive(Debug)]
pub(crate) struct LimitExceeded {
    /// The limit that was passed, in bytes.
    pub limit: u64,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream is larger than {} bytes", self.limit)
    }
}

impl std::error::Error for LimitExceeded {}

impl<R: Read> DigestReader<R> {
    /// Hashes `inner`, refusing to deliver more than `limit` bytes.
    pub(crate) fn new(inner: R, limit: u64) -> DigestReader<R> {
        DigestReader {
            inner,
            hasher: Sha256::new(),
            bytes_read: 0,
            limit,
        }
    }

    /// Reads whatever is left (still bounded) so the digest covers the whole
    /// stream, e.g. the zero padding after a tar's end marker.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    /// The digest of everything read so far and its length in bytes.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.bytes_read)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes_read = self.bytes_read.saturating_add(n as u64);
        if self.bytes_read > self.limit {
            return Err(io::Error::other(LimitExceeded { limit: self.limit }));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// If `err` came from a [`DigestReader`] passing its limit, that limit.
pub(crate) fn limit_exceeded(err: &io::Error) -> Option<u64> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        .map(|exceeded| exceeded.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let text = format!("sha256:{EMPTY_SHA256}");
        let digest: Digest = text.parse().unwrap();
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest.hex(), EMPTY_SHA256);
        assert_eq!(digest.short(), "e3b0c44298fc");
        assert_eq!(Digest::of_bytes(b""), digest);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            EMPTY_SHA256,
            "sha256:",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/",
            "sha256:../0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reader_hashes_and_bounds() {
        let mut reader = DigestReader::new(&b"hello"[..], 5);
        reader.drain().unwrap();
        let (digest, len) = reader.finish();
        assert_eq!(len, 5);
        assert_eq!(digest, Digest::of_bytes(b"hello"));

        let mut reader = DigestReader::new(&b"hello!"[..], 5);
        let err = reader.drain().unwrap_err();
        assert_eq!(limit_exceeded(&err), Some(5));
    }
}
