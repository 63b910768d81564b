//! ADD of a local tar archive (plain, gzip, bzip2 or xz, as Docker takes
//! them): its entries go into the
//! layer below the destination directory, as Docker unpacks them. Names
//! are cleaned (no absolute paths, no `..` leaving the destination); the
//! image store's unpacker checks the layer again when it is recorded.

use super::context::clean;
use super::BuildError;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// The most entries one archive may add.
const MAX_ENTRIES: usize = 1_000_000;

/// How an archive is compressed, told by its first bytes (as Docker tells).
#[derive(Debug, PartialEq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

impl Compression {
    fn of(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// The content of the file at `path`, decompressed.
fn open_decompressed(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    Ok(match Compression::of(reader.fill_buf()?) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        Compression::None => Box::new(reader),
    })
}

/// Whether the file at `path` is a tar archive, plain or compressed (by
/// content, as Docker decides).
pub fn is_archive(path: &Path) -> bool {
    let mut header = [0u8; 512];
    open_decompressed(path)
        .and_then(|mut input| input.read_exact(&mut header))
        .is_ok()
        && is_tar_header(&header)
}

/// A POSIX (`ustar`) or GNU tar header.
fn is_tar_header(header: &[u8; 512]) -> bool {
    &header[257..262] == b"ustar"
}

/// Appends the archive at `source`'s entries to `builder`, below `dest`
/// (relative to the image's root); `owner` replaces their owners.
pub fn append_archive<W: Write>(
    builder: &mut tar::Builder<W>,
    source: &Path,
    dest: &Path,
    owner: Option<(u64, u64)>,
) -> Result<(), BuildError> {
    let failed = |e: std::io::Error| BuildError::Context(format!("{}: {e}", source.display()));
    let mut archive = tar::Archive::new(open_decompressed(source).map_err(failed)?);
    for (count, entry) in archive.entries().map_err(failed)?.enumerate() {
        if count == MAX_ENTRIES {
            return Err(BuildError::Context(format!(
                "{}: more than {MAX_ENTRIES} entries",
                source.display()
            )));
        }
        let mut entry = entry.map_err(failed)?;
        let name = entry.path().map_err(failed)?.to_string_lossy().into_owned();
        let rel = clean(&name).map_err(|_| {
            BuildError::Context(format!(
                "{}: the entry {name:?} leaves its directory",
                source.display()
            ))
        })?;
        let path = dest.join(&rel);
        if path.as_os_str().is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        // Blank numeric fields (some writers leave them so) read as 0.
        if header.uid().is_err() {
            header.set_uid(0);
        }
        if header.gid().is_err() {
            header.set_gid(0);
        }
        if header.mtime().is_err() {
            header.set_mtime(0);
        }
        if let Some((uid, gid)) = owner {
            header.set_uid(uid);
            header.set_gid(gid);
        }
        let kind = header.entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(failed)?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() {
                // Hard links name entries of the same archive.
                dest.join(clean(&target)?)
            } else {
                target.into()
            };
            builder
                .append_link(&mut header, &path, &target)
                .map_err(failed)?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            builder
                .append_data(&mut header, &path, &mut entry)
                .map_err(failed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn archives_are_unpacked_below_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.tar");
        std::fs::write(&plain, tar_of(&[("x/y", b"hi"), ("./z", b"z")])).unwrap();
        let gz = dir.path().join("b.bin");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&tar_of(&[("f", b"f")])).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let bz = dir.path().join("d.tar.bz2");
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        encoder.write_all(&tar_of(&[("g", b"g")])).unwrap();
        std::fs::write(&bz, encoder.finish().unwrap()).unwrap();
        let xz = dir.path().join("e.txz");
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
        encoder.write_all(&tar_of(&[("h", b"h")])).unwrap();
        std::fs::write(&xz, encoder.finish().unwrap()).unwrap();
        let text = dir.path().join("c.tar");
        std::fs::write(&text, b"not a tar").unwrap();
        let compressed_text = dir.path().join("c.txt.xz");
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
        encoder.write_all(b"not a tar either").unwrap();
        std::fs::write(&compressed_text, encoder.finish().unwrap()).unwrap();
        for archive in [&plain, &gz, &bz, &xz] {
            assert!(is_archive(archive), "{}", archive.display());
        }
        assert!(!is_archive(&text));
        assert!(!is_archive(&compressed_text));

        let mut builder = tar::Builder::new(Vec::new());
        append_archive(&mut builder, &plain, Path::new("opt"), Some((5, 6))).unwrap();
        append_archive(&mut builder, &gz, Path::new("opt"), None).unwrap();
        append_archive(&mut builder, &bz, Path::new("opt"), None).unwrap();
        append_archive(&mut builder, &xz, Path::new("opt"), None).unwrap();
        let data = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(&data[..]);
        let names: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("opt/x/y".to_string(), 5),
                ("opt/z".to_string(), 5),
                ("opt/f".to_string(), 0),
                ("opt/g".to_string(), 0),
                ("opt/h".to_string(), 0)
            ]
        );
    }

    #[test]
    fn escaping_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let evil = dir.path().join("evil.tar");
        let mut data = tar_of(&[("ok", b"x")]);
        // A name with `..` (the tar crate refuses to write one, so patch it).
        let name = b"../../x";
        data[..name.len()].copy_from_slice(name);
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(&data[..512]);
        header.set_cksum();
        data[..512].copy_from_slice(header.as_bytes());
        std::fs::write(&evil, &data).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let err = append_archive(&mut builder, &evil, Path::new("opt"), None).unwrap_err();
        assert!(err.to_string().contains("leaves its directory"), "{err}");
    }
}
