//! The import checkpoint, `import/state.json` in the run folder: which inputs it was built from
//! (a fingerprint of the chunks, the mapping and the options), whether spilling and grouping
//! finished, which tables were prepared, and per bucket whether its items are written. Stored
//! atomically after every change, so a rerun after kill -9 skips finished buckets and rewrites
//! only the unfinished ones (writes are idempotent puts of whole items).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::group::BucketStats;
use crate::manifest::Manifest;
use crate::mapping::compile::TargetTable;

use crate::run::paths::IMPORT_STATE as STATE_FILE;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportState {
    pub fingerprint: String,
    pub grouped: bool,
    pub targets: Vec<TargetState>,
    /// Counts the imports that began writing items to DynamoDB. `cdc apply` records the one it
    /// applied after; a later one may have written snapshot rows over applied changes, so apply
    /// replays every staged change from the snapshot position.
    #[serde(default)]
    pub generation: u64,
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
    /// `import --via s3-import`: the table's ImportTable request, kept so a rerun follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_import: Option<ImportRecord>,
    /// The DynamoDB table this checkpoint's writes went to: a rerun against another one (another
    /// endpoint, account or region, or the table dropped and created again) imports afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_to: Option<TableIdentity>,
}

/// A DynamoDB table as DescribeTable names it: its ARN (account, region, name) and creation
/// time tell it from any other table, on any endpoint. The endpoint is kept for messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableIdentity {
    pub arn: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl TableIdentity {
    /// Both parts present (an endpoint may answer without them).
    pub fn known(&self) -> bool {
        !self.arn.is_empty() && !self.created.is_empty()
    }

    pub fn same_table(&self, other: &TableIdentity) -> bool {
        self.arn == other.arn && self.created == other.created
    }

    pub fn display(&self) -> String {
        format!("{} created {}{}", self.arn, self.created, self.endpoint.as_deref().map(|e| format!(" at {e}")).unwrap_or_default())
    }
}

impl TargetState {
    pub fn items(&self) -> u64 {
        self.buckets.iter().map(|b| b.items).sum()
    }

    pub fn wcu(&self) -> u64 {
        self.buckets.iter().map(|b| b.wcu).sum()
    }

    /// Has anything of this target been done in DynamoDB?
    pub fn started(&self) -> bool {
        self.prepared || self.s3_import.is_some() || self.buckets.iter().any(|b| b.written)
    }

    /// Forgets what was done in DynamoDB (not the grouped items): the next run prepares the
    /// table and writes every bucket again.
    pub fn forget_writes(&mut self) {
        self.prepared = false;
        self.s3_import = None;
        self.written_to = None;
        for b in &mut self.buckets {
            b.written = false;
            b.batches_written = 0;
        }
    }
}

pub use crate::run::paths::{dry_run_dir, import_dir as work_dir, target_dir};

/// What the checkpoint keeps of a table's Import from S3 (`import::s3_import` makes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub client_token: String,
    /// None: the attempt is kept, its ImportTable not answered yet (or the answer was lost).
    pub import_arn: Option<String>,
    /// s3://bucket/prefix/table/ the files went to.
    pub source: String,
    pub objects: u64,
    pub items: u64,
    /// Item text before compression (what the service prices by).
    pub bytes: u64,
    #[serde(default)]
    pub status: Option<String>,
    /// Which attempt of this import (1, 2, …): each has a ClientToken of its own.
    #[serde(default)]
    pub attempt: u32,
}

impl ImportState {
    /// The checkpoint in work folder `work`.
    /// (One this version cannot read is taken as none: its fingerprint could not be checked,
    /// so the import starts over.)
    pub fn load(work: &Path) -> Option<ImportState> {
        crate::run::json::read(&work.join(STATE_FILE)).ok().flatten()
    }

    pub fn store(&self, work: &Path) -> std::io::Result<()> {
        crate::run::json::write(&work.join(STATE_FILE), self)
    }
}

/// Identifies the inputs of an import: tool version, every chunk's SHA-256, the mapping text and
/// the options that change items. A different fingerprint means the checkpoint does not apply.
pub fn fingerprint(manifest: &Manifest, mapping_text: &str, options: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    // The spill record format (2: 128-bit row order).
    h.update(b"spill-2");
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
