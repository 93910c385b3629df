//! The JSON run report of an export (`export-report.json` in the run folder): rows and bytes per
//! table, chunks written and kept from an earlier run, rejects and values changed by a policy,
//! duration, and the binlog position catch-up starts from. No credentials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::manifest::{ChunkState, Manifest};
use super::ExportSettings;
use crate::source::snapshot::BinlogPosition;

pub use crate::run::paths::EXPORT_REPORT as REPORT_FILE;

#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub source: String,
    pub out: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub complete: bool,
    pub rows: u64,
    pub bytes: u64,
    pub rejected_rows: u64,
    pub chunks_written: usize,
    pub chunks_kept: usize,
    pub replay_from: Option<BinlogPosition>,
    /// The consistency mode of this run's snapshot (what `auto` chose) and why.
    pub consistency: Option<String>,
    pub consistency_reason: Option<String>,
    pub tables: Vec<TableReport>,
    /// Selected objects that are not exported (views, sequences) and why.
    pub skipped_objects: Vec<crate::source::schema::SkippedObject>,
    /// Which client read the rows of this run's worker sessions: `fast row reader (PLUGIN[, TLS])`
    /// or `mysql driver` (asked for, or the fast reader could not serve the connection).
    pub row_readers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    pub strategy: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub chunks: usize,
    pub chunks_kept: usize,
    pub rejected_rows: u64,
    pub policy_counts: BTreeMap<String, u64>,
    /// `point-in-time`, `replay-from` (no snapshot: MyISAM/Aria, or no-lock) or `none`.
    pub guarantee: Option<String>,
}

impl ExportReport {
    /// `kept[t]`: chunks of table t that were already complete before this run.
    pub fn build(m: &Manifest, kept: &[usize], s: &ExportSettings, started_at: &str, took: Duration) -> ExportReport {
        let tables: Vec<TableReport> = m
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let done = t.chunks.iter().filter(|c| c.state == ChunkState::Complete);
                let mut policy_counts = BTreeMap::new();
                for c in t.chunks.iter() {
                    for (col, n) in &c.policy_counts {
                        *policy_counts.entry(col.clone()).or_insert(0) += n;
                    }
                }
                TableReport {
                    table: t.schema.display_name(),
                    strategy: t.strategy.map(|s| format!("{s:?}")),
                    rows: done.clone().map(|c| c.rows).sum(),
                    bytes: done.clone().map(|c| c.bytes).sum(),
                    chunks: t.chunks.len(),
                    chunks_kept: kept.get(i).copied().unwrap_or(0),
                    rejected_rows: done.map(|c| c.rejected_rows).sum(),
                    policy_counts,
                    guarantee: m.table_guarantee(t),
                }
            })
            .collect();
        let chunks_kept: usize = tables.iter().map(|t| t.chunks_kept).sum();
        let chunks_total: usize = tables.iter().map(|t| t.chunks).sum();
        ExportReport {
            source: s.source.to_string(),
            out: s.out.display().to_string(),
            started_at: started_at.to_string(),
            finished_at: crate::clock::now_rfc3339(),
            duration_seconds: took.as_secs_f64(),
            complete: m.complete,
            rows: tables.iter().map(|t| t.rows).sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            rejected_rows: tables.iter().map(|t| t.rejected_rows).sum(),
            chunks_written: chunks_total - chunks_kept,
            chunks_kept,
            replay_from: m.replay_from.clone(),
            consistency: m.snapshots.last().map(|s| crate::choice::Choice::name(s.consistency).to_string()),
            consistency_reason: m.snapshots.last().and_then(|s| s.reason.clone()),
            tables,
            skipped_objects: Vec::new(),
            row_readers: Vec::new(),
        }
    }

    pub fn write(&self, run: &Path) -> std::io::Result<()> {
        crate::run::json::write(&run.join(REPORT_FILE), self)
    }
}
