//! A large row's staged line kept in a file instead of memory. A row whose values pass
//! `cdc::event`'s bound is rendered value by value into a file in the run's spill folder
//! (`cdc/spill/`), each large value in pieces (`CellView::write_json_to`), so capture holds
//! the row image once and never its line (a 64 MB BLOB's line is 89 MB of base64). The line
//! is copied into its segment, or into the transaction's spill file, through a small buffer.
//! The file goes when the last handle on it is dropped; a capture that starts removes any a
//! killed one left, with the spill folder.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Names each file a process makes.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Read and write buffers' size: what a large line costs in memory.
const PIECE: usize = 256 << 10;

/// A line's body on disk (what follows `{"at":"…",`, without the newline).
#[derive(Debug, PartialEq)]
pub struct LineFile {
    pub path: PathBuf,
    pub len: u64,
}

impl Drop for LineFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A line being written: `finish` gives its file; dropped unfinished (a value refused, a
/// write failed), it removes the file.
pub struct LineWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl LineWriter {
    /// A new file in `dir`, made if missing.
    pub fn create(dir: &Path) -> std::io::Result<LineWriter> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("line-{}-{}.json", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let out = BufWriter::with_capacity(PIECE, File::create(&path)?);
        Ok(LineWriter { path, out: Some(out) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn out(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("a line's writer until it is finished")
    }

    /// Flushes the line (not synced: a line lives until its segment is recorded, and a
    /// capture killed before then reads its transaction again).
    pub fn finish(mut self) -> std::io::Result<LineFile> {
        // Once taken, the file is the `LineFile`'s to remove (or, on an error here, this one's).
        let out = self.out.take().expect("finished once");
        let mut line = LineFile { path: self.path.clone(), len: 0 };
        let f = out.into_inner().map_err(|e| e.into_error())?;
        line.len = f.metadata()?.len();
        Ok(line)
    }
}

impl LineFile {
    /// Hands the line to `put` in pieces; fails if the file no longer holds what was written.
    pub fn copy(&self, mut put: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        let mut f = File::open(&self.path)?;
        let mut buf = vec![0u8; PIECE];
        let mut copied = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            put(&buf[..n])?;
        }
        if copied != self.len {
            let why = format!("{} holds {copied} bytes of a staged line of {}", self.path.display(), self.len);
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_line_is_copied_in_pieces_and_its_file_goes_with_its_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LineWriter::create(&dir.path().join("spill")).unwrap();
        let body: Vec<u8> = (0..PIECE * 2 + 17).map(|i| b'a' + (i % 26) as u8).collect();
        w.out().write_all(&body).unwrap();
        let line = std::sync::Arc::new(w.finish().unwrap());
        let (path, other) = (line.path.clone(), line.clone());
        let mut pieces = Vec::new();
        line.copy(|p| {
            pieces.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        assert!(pieces.len() >= 3 && pieces.iter().all(|p| p.len() <= PIECE), "{} pieces", pieces.len());
        assert_eq!(pieces.concat(), body);
        drop(line);
        assert!(path.exists(), "a clone still holds the line");
        drop(other);
        assert!(!path.exists(), "the last handle removes the file");
    }

    #[test]
    fn a_line_dropped_before_it_is_finished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LineWriter::create(dir.path()).unwrap();
        w.out().write_all(b"half a line").unwrap();
        let path = w.path().to_path_buf();
        assert!(path.exists());
        drop(w);
        assert!(!path.exists());
    }

    #[test]
    fn a_line_file_cut_short_is_an_error_not_a_short_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LineWriter::create(dir.path()).unwrap();
        w.out().write_all(b"0123456789").unwrap();
        let line = w.finish().unwrap();
        std::fs::OpenOptions::new().write(true).open(&line.path).unwrap().set_len(4).unwrap();
        let err = line.copy(|_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("holds 4 bytes of a staged line of 10"), "{err}");
    }
}
