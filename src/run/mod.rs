//! The run folder as one thing: where each of its files is and how each is read, for a view of
//! the whole run (`status`). The stages still build some of their own paths; the readers here
//! are the stages' own (`Manifest::load`, `ImportState::load`, `CaptureState::load`, …), so this
//! module adds no second reading of any file.

pub mod metrics;
pub mod migrate;
pub mod preflight;
pub mod status;

use std::path::{Path, PathBuf};

use crate::cdc::state::{ApplyState, CaptureState};
use crate::manifest::Manifest;
use crate::transform::state::ImportState;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Cdc(#[from] crate::cdc::CdcError),
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error("{path}: {reason}")]
    Report { path: PathBuf, reason: String },
}

/// A local run folder (an s3:// run's spool is one too).
#[derive(Debug, Clone)]
pub struct RunFolder {
    root: PathBuf,
}

/// The reports each stage leaves in the run folder.
pub const EXPORT_REPORT: &str = crate::export::report::REPORT_FILE;
pub const SYNC_REPORT: &str = crate::sync::local::SYNC_REPORT;
pub const IMPORT_REPORT: &str = crate::import::report::REPORT_FILE;
pub const VERIFY_REPORT: &str = "verify-report.json";
/// The stages that hold a lock while they write (`run_folder::lock`).
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

    pub fn manifest(&self) -> Result<Option<Manifest>, RunError> {
        Ok(Manifest::load(&self.root)?)
    }

    /// A stage's JSON report, when it wrote one.
    pub fn report(&self, name: &str) -> Result<Option<serde_json::Value>, RunError> {
        match std::fs::read(self.path(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| self.err(name, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    pub fn import_state(&self) -> Option<ImportState> {
        ImportState::load(&crate::transform::state::work_dir(&self.root))
    }

    pub fn capture_state(&self) -> Result<Option<CaptureState>, RunError> {
        Ok(CaptureState::load(&self.root)?)
    }

    pub fn apply_state(&self) -> Result<Option<ApplyState>, RunError> {
        Ok(ApplyState::load(&self.root)?)
    }

    /// The stages writing the folder now, with who holds each.
    pub fn running(&self) -> Vec<(String, String)> {
        STAGES.iter().filter_map(|s| crate::run_folder::lock::holder(&self.root, s).map(|h| (s.to_string(), h))).collect()
    }

    fn err(&self, name: &str, e: impl std::fmt::Display) -> RunError {
        RunError::Report { path: self.path(name), reason: e.to_string() }
    }
}
