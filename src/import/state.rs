//! The import checkpoint, `import/state.json` in the run folder: which inputs it was built from
//! (a fingerprint of the chunks, the mapping and the options), whether spilling and grouping
//! finished, which tables were prepared, and per bucket whether its items are written. Stored
//! atomically after every change, so a rerun after kill -9 skips finished buckets and rewrites
//! only the unfinished ones (writes are idempotent puts of whole items).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::group::BucketStats;
use crate::manifest::{write_atomically, Manifest};
use crate::mapping::compile::TargetTable;

pub const WORK_DIR: &str = "import";
const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportState {
    pub fingerprint: String,
    pub grouped: bool,
    pub targets: Vec<TargetState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetState {
    pub table: TargetTable,
    pub prepared: bool,
    pub source_rows: u64,
    pub rejected_rows: u64,
    /// Duplicate keys or colliding pivots resolved by --on-duplicate last-wins.
    pub conflicts: u64,
    pub buckets: Vec<BucketStats>,
}

impl TargetState {
    pub fn items(&self) -> u64 {
        self.buckets.iter().map(|b| b.items).sum()
    }

    pub fn wcu(&self) -> u64 {
        self.buckets.iter().map(|b| b.wcu).sum()
    }
}

pub fn work_dir(run: &Path) -> PathBuf {
    run.join(WORK_DIR)
}

/// Folder of a target's spill or item files.
pub fn target_dir(run: &Path, target: &str, what: &str) -> PathBuf {
    work_dir(run).join(what).join(crate::export::chunkfile::encode_component(target))
}

impl ImportState {
    pub fn load(run: &Path) -> Option<ImportState> {
        let text = std::fs::read(work_dir(run).join(STATE_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn store(&self, run: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(work_dir(run))?;
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomically(&work_dir(run).join(STATE_FILE), &bytes)
    }
}

/// Identifies the inputs of an import: tool version, every chunk's SHA-256, the mapping text and
/// the options that change items. A different fingerprint means the checkpoint does not apply.
pub fn fingerprint(manifest: &Manifest, mapping_text: &str, options: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for t in &manifest.tables {
        h.update(t.schema.display_name().as_bytes());
        for c in &t.chunks {
            h.update(c.sha256.as_deref().unwrap_or("-").as_bytes());
        }
    }
    h.update(mapping_text.as_bytes());
    h.update(options.to_string().as_bytes());
    hex::encode(h.finalize())
}
