//! The run folder's one owner: where every file of a run is (`paths`), how a file is written
//! whole or not at all (`files`), names as safe path components (`names`), one writer per
//! stage (`lock`), and `RunFolder`, a run folder as one value with a method for each of its
//! files. Stages ask here for every path; this module depends on no stage, so every stage can
//! (the stages' own state types read and write through these paths; `status` reads them all).

pub mod files;
pub mod json;
pub mod lock;
pub mod names;
pub mod paths;

pub use files::{disk_full_hint, hash_file, is_disk_full, write_atomically, ChunkWriter, Committed, HashingWriter, PendingFile};
pub use names::{chunk_path, encode_component, rejects_path};

use std::path::{Path, PathBuf};

/// A file of the run that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// A local run folder (an s3:// run's spool is one too).
#[derive(Debug, Clone)]
pub struct RunFolder {
    root: PathBuf,
}

/// The stages that hold a lock while they write (`lock`).
pub const STAGES: [&str; 8] = ["export", "import", "cdc capture", "cdc apply", "verify", "estimate", "bench", "sync"];

impl RunFolder {
    pub fn new(root: impl Into<PathBuf>) -> RunFolder {
        RunFolder { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn manifest(&self) -> PathBuf {
        self.path(paths::MANIFEST)
    }

    pub fn import_dir(&self) -> PathBuf {
        paths::import_dir(&self.root)
    }

    pub fn dry_run_dir(&self, command: &str) -> PathBuf {
        paths::dry_run_dir(&self.root, command)
    }

    pub fn cdc_dir(&self) -> PathBuf {
        paths::cdc_dir(&self.root)
    }

    pub fn capture_state(&self) -> PathBuf {
        paths::capture_state(&self.root)
    }

    pub fn apply_state(&self) -> PathBuf {
        paths::apply_state(&self.root)
    }

    pub fn segment(&self, index: u64) -> PathBuf {
        paths::segment_path(&self.root, index)
    }

    pub fn cdc_rejects(&self) -> PathBuf {
        paths::cdc_rejects(&self.root)
    }

    pub fn verify_source(&self) -> PathBuf {
        paths::verify_source(&self.root)
    }

    pub fn lock(&self, stage: &str) -> PathBuf {
        paths::lock_path(&self.root, stage)
    }

    /// A stage's JSON report (`paths::EXPORT_REPORT`, …), when it wrote one.
    pub fn report(&self, name: &str) -> Result<Option<serde_json::Value>, RunError> {
        json::read(&self.path(name))
    }

    /// The stages writing the folder now, with who holds each.
    pub fn running(&self) -> Vec<(String, String)> {
        STAGES.iter().filter_map(|s| lock::holder(&self.root, s).map(|h| (s.to_string(), h))).collect()
    }
}
