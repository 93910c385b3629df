//! The staged changes' files in the run folder: `cdc/segments/NNNNNNNN.jsonl` (written by
//! capture, immutable once named), `cdc/capture.json` (the segments, their SHA-256, and the binlog
//! position capture resumes from) and `cdc/apply.json` (how far apply got). Each is written whole
//! and renamed into place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CdcError;
use crate::source::snapshot::BinlogPosition;

pub fn cdc_dir(run: &Path) -> PathBuf {
    run.join("cdc")
}

pub fn segment_path(run: &Path, index: u64) -> PathBuf {
    cdc_dir(run).join("segments").join(format!("{index:08}.jsonl"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// 1, 2, …: the file `segments/{index:08}.jsonl`.
    pub index: u64,
    pub changes: u64,
    pub sha256: String,
    pub first_at: String,
    pub last_at: String,
    /// Commit time of the segment's last change, Unix seconds.
    pub last_ts: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaptureState {
    /// The export's position this capture began at (`replay_from`): ties cdc/ to that export.
    #[serde(default)]
    pub began_at: BinlogPosition,
    /// Where the next capture starts: after the last transaction staged (or merely read).
    pub next: BinlogPosition,
    /// The server `next.file` and offset belong to (`source::position::server_identity`); on any
    /// other server capture resumes by `next.gtid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub segments: Vec<SegmentInfo>,
    pub changes: u64,
    pub updated_at: String,
    /// Changes of XA transactions prepared (before `next`) but not yet committed, by xid: staged
    /// when their XA COMMIT is read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub prepared_xa: std::collections::BTreeMap<String, Vec<super::event::Change>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyState {
    /// Segments fully applied (the next one to read is `segments + 1`).
    pub segments: u64,
    /// Changes of the next segment already applied (when apply stopped inside it, at a DDL).
    pub offset: u64,
    pub changes: u64,
    pub rejected: u64,
    /// Binlog position and commit time of the last change applied.
    pub last_at: Option<String>,
    pub last_ts: Option<u32>,
    pub updated_at: String,
    /// The import generation (`ImportState::generation`) these changes were applied after.
    #[serde(default)]
    pub import_generation: Option<u64>,
    /// Length of `rejects.jsonl` when this state was stored: lines past it were written by an
    /// apply killed before it recorded them, and are written again by the rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_bytes: Option<u64>,
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, CdcError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| CdcError::Damaged { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CdcError::io(path, e)),
    }
}

fn store<T: Serialize>(path: &Path, v: &T) -> Result<(), CdcError> {
    let bytes = serde_json::to_vec_pretty(v).expect("state serializes");
    crate::run_folder::write_atomically(path, &bytes).map_err(|e| CdcError::io(path, e))
}

impl CaptureState {
    pub fn load(run: &Path) -> Result<Option<CaptureState>, CdcError> {
        load(&cdc_dir(run).join("capture.json"))
    }

    pub fn store(&self, run: &Path) -> Result<(), CdcError> {
        store(&cdc_dir(run).join("capture.json"), self)
    }
}

impl ApplyState {
    pub fn load(run: &Path) -> Result<Option<ApplyState>, CdcError> {
        load(&cdc_dir(run).join("apply.json"))
    }

    pub fn store(&self, run: &Path) -> Result<(), CdcError> {
        store(&cdc_dir(run).join("apply.json"), self)
    }
}
