//! Standard input kept in a file, for an archive that is read more than
//! once (`load`, `import -`, `build -`): in a private file of the image
//! store's directory, removed when dropped.

use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Standard input, in a file.
#[derive(Debug)]
pub struct SpooledStdin {
    path: PathBuf,
}

impl SpooledStdin {
    /// Copies standard input, an archive, into a file in `dir`; `what`
    /// names the use (`load`). A terminal, or nothing at all, is refused as
    /// Docker refuses a terminal: there is no archive to read.
    pub fn archive(dir: &Path, what: &str) -> Result<Self> {
        if std::io::stdin().is_terminal() {
            anyhow::bail!("requested {what} from stdin, but stdin is empty");
        }
        let spooled = Self::read(dir, what)?;
        if std::fs::metadata(&spooled.path).map_or(0, |m| m.len()) == 0 {
            anyhow::bail!("requested {what} from stdin, but stdin is empty");
        }
        Ok(spooled)
    }

    /// Copies standard input, whatever it is (a terminal too: `build -`
    /// takes a Dockerfile typed there), into a file in `dir`.
    pub fn read(dir: &Path, what: &str) -> Result<Self> {
        let path = dir.join(format!(".tmp-{what}-{}-stdin", std::process::id()));
        let spooled = Self { path };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&spooled.path)
            .with_context(|| format!("creating {}", spooled.path.display()))?;
        std::io::copy(&mut std::io::stdin().lock(), &mut out).context("reading stdin")?;
        Ok(spooled)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error about the file, told as one about standard input (the
    /// file's name means nothing to the user).
    pub fn as_stdin<T, E: std::fmt::Display>(&self, result: Result<T, E>) -> Result<T> {
        let path = self.path.display().to_string();
        result.map_err(|err| anyhow::anyhow!("{}", err.to_string().replace(&path, "stdin")))
    }
}

impl Drop for SpooledStdin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
