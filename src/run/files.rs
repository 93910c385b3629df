//! Files that are whole or absent: a `.partial` file hashed (SHA-256) and counted while
//! written, fsynced, then renamed (`PendingFile`); small state files written through a synced
//! temporary sibling (`write_atomically`); the hash of a file on disk; disk-full detection.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// Writes `bytes` to `path` through a temporary sibling, fsyncs, renames, fsyncs the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// True when an I/O error means the disk is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

/// The way out of a full disk, to follow an I/O error's text ("" for any other error).
pub fn disk_full_hint(e: &std::io::Error) -> &'static str {
    if is_disk_full(e) {
        ": the disk is full. Free space (or give the run folder more) and rerun the same command: it resumes where it stopped"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert!(!dir.path().join("m.json.tmp").exists());
    }
}
