//! The export's per-chunk rejects file (JSON lines), written like a chunk file: whole or absent.

use std::io::Write;
use std::path::PathBuf;

use crate::run::{ChunkWriter, PendingFile};

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
