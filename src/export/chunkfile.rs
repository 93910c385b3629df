//! Chunk files on disk: written under `<name>.partial`, hashed (SHA-256) and counted while
//! written, fsynced, then renamed to their final name, so a file with a final name is always
//! complete. Also the per-chunk rejects file (JSON lines) and the run folder's path layout.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded in file names, so any
/// schema or table name (spaces, quotes, dots, unicode) maps to one safe path component.
const PATH_UNSAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Longest encoded component kept whole: file systems allow 255 bytes per name, and the
/// component may get a suffix (`.jsonl`).
const MAX_COMPONENT: usize = 200;

/// A name as one safe path component. An encoding longer than `MAX_COMPONENT` (a 64-character
/// name of 4-byte characters encodes to 768 bytes) keeps its first bytes and ends in `~` and 8 hex
/// digits of the name's SHA-256, so it still names one file, distinct from its neighbours'.
pub fn encode_component(name: &str) -> String {
    let encoded = utf8_percent_encode(name, PATH_UNSAFE).to_string();
    if encoded.len() <= MAX_COMPONENT {
        return encoded;
    }
    let mut cut = MAX_COMPONENT - 9;
    // Never inside a `%XX` escape.
    while encoded.as_bytes()[cut.saturating_sub(2)..cut].contains(&b'%') {
        cut -= 1;
    }
    format!("{}~{}", &encoded[..cut], &hex::encode(Sha256::digest(name.as_bytes()))[..8])
}

/// `data/<db>/<table>/<id>.<ext>` relative to the run folder.
pub fn chunk_path(database: &str, table: &str, id: u32, ext: &str) -> String {
    format!("data/{}/{}/{id:05}.{ext}", encode_component(database), encode_component(table))
}

/// `rejects/<db>/<table>/<id>.jsonl` relative to the run folder.
pub fn rejects_path(database: &str, table: &str, id: u32) -> String {
    format!("rejects/{}/{}/{id:05}.jsonl", encode_component(database), encode_component(table))
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), bytes: 0 }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An open `.partial` file that becomes `final_path` on `commit`.
pub struct PendingFile {
    pub final_path: PathBuf,
    partial: PathBuf,
}

pub type ChunkWriter = HashingWriter<BufWriter<File>>;

/// The hash and size of a committed file.
#[derive(Debug, Clone)]
pub struct Committed {
    pub bytes: u64,
    pub sha256: String,
}

impl PendingFile {
    pub fn create(final_path: PathBuf) -> std::io::Result<(PendingFile, ChunkWriter)> {
        if let Some(dir) = final_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut partial = final_path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)?;
        Ok((PendingFile { final_path, partial }, HashingWriter::new(BufWriter::with_capacity(1 << 20, file))))
    }

    /// Flushes, fsyncs and renames; returns the size and SHA-256 of what was written.
    pub fn commit(self, writer: ChunkWriter) -> std::io::Result<Committed> {
        let HashingWriter { inner, hasher, bytes } = writer;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.partial, &self.final_path)?;
        Ok(Committed { bytes, sha256: hex::encode(hasher.finalize()) })
    }
}

/// SHA-256 and size of a file on disk, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<Committed> {
    let mut file = File::open(path)?;
    let mut w = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut w)?;
    Ok(Committed { bytes: w.bytes, sha256: hex::encode(w.hasher.finalize()) })
}

/// Rejected rows of one chunk, opened on the first reject.
pub struct RejectsFile {
    path: PathBuf,
    open: Option<(PendingFile, ChunkWriter)>,
    pub count: u64,
}

impl RejectsFile {
    pub fn new(path: PathBuf) -> Self {
        RejectsFile { path, open: None, count: 0 }
    }

    pub fn write(&mut self, record: &serde_json::Value) -> std::io::Result<()> {
        if self.open.is_none() {
            self.open = Some(PendingFile::create(self.path.clone())?);
        }
        let (_, w) = self.open.as_mut().expect("opened above");
        serde_json::to_writer(&mut *w, record)?;
        w.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Commits the file if any row was rejected; removes a stale one from an earlier attempt.
    pub fn commit(self) -> std::io::Result<u64> {
        match self.open {
            Some((pending, w)) => {
                pending.commit(w)?;
            }
            None => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        Ok(self.count)
    }
}

/// True when an I/O error means the disk is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_safe_component() {
        assert_eq!(chunk_path("my db", "a/b.`c`", 7, "csv"), "data/my%20db/a%2Fb%2E%60c%60/00007.csv");
        assert_eq!(encode_component("ünï"), "%C3%BCn%C3%AF");
        // Regression: a long name made a file name over 255 bytes ("File name too long").
        let emoji = "😀".repeat(64);
        let long = encode_component(&emoji);
        assert!(long.len() <= MAX_COMPONENT && long.contains('~'), "{long}");
        assert!(!long.split('~').next().unwrap().ends_with('%'));
        assert_ne!(long, encode_component(&"😀".repeat(63)));
    }

    #[test]
    fn committed_hash_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/y.bin");
        let (pending, mut w) = PendingFile::create(path.clone()).unwrap();
        w.write_all(b"hello").unwrap();
        assert!(!path.exists(), "no final name before commit");
        let c = pending.commit(w).unwrap();
        assert_eq!(c.bytes, 5);
        assert_eq!(c.sha256, hash_file(&path).unwrap().sha256);
        assert_eq!(c.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    }
}
