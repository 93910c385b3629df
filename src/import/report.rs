//! `import-report.json`: per target table the items written, WCU (DynamoDB's consumed figure and
//! our own estimate), throttles, retries, rejected rows and batch latency; totals on top; which
//! DynamoDB table each source table went to, and the tables skipped with the reason.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::transform::state::{ImportState, TargetState};
use super::writer::Writer;
use crate::mapping::compile::{SkippedTable, TableName};

pub use crate::run::paths::IMPORT_REPORT as REPORT_FILE;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    pub from: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub items: u64,
    pub wcu_consumed: f64,
    pub throttles: u64,
    pub retries: u64,
    pub rejected_rows: u64,
    pub tables: Vec<TargetReport>,
    /// Which DynamoDB table each source table went to.
    #[serde(default)]
    pub names: Vec<TableName>,
    /// Selected tables automatic mode could not key: not written (the exit status says so).
    #[serde(default)]
    pub skipped: Vec<SkippedTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    pub table: String,
    pub source_rows: u64,
    /// Items of the table (all buckets, including those written by an earlier run).
    pub items: u64,
    /// Items written by this run.
    pub items_written: u64,
    pub wcu_estimated: u64,
    pub wcu_consumed: f64,
    pub target_wcu_per_second: Option<f64>,
    pub achieved_wcu_per_second: f64,
    pub throttles: u64,
    /// Throttles of some partition keys only (a partition's limit), counted in `throttles` too:
    /// those keys were slowed in lanes of their own, not the table.
    #[serde(default)]
    pub key_throttles: u64,
    pub retries: u64,
    pub batches: u64,
    pub batch_latency_ms_p50: u32,
    pub batch_latency_ms_p99: u32,
    pub rejected_rows: u64,
    pub conflicts_resolved: u64,
    pub duration_seconds: f64,
    /// CPU time this process spent in the write phase (user + system, every thread).
    #[serde(default)]
    pub cpu_seconds: f64,
    /// `--via s3-import`: the import's ARN, source, objects, bytes and final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_import: Option<super::s3_import::ImportRecord>,
}

/// CPU time used by this process so far, user and system, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl TargetReport {
    /// A target's figures after mapping and grouping, before any write (--dry-run).
    pub fn planned(t: &TargetState) -> TargetReport {
        TargetReport {
            table: t.table.name.clone(),
            source_rows: t.source_rows,
            items: t.items(),
            items_written: 0,
            wcu_estimated: t.wcu(),
            wcu_consumed: 0.0,
            target_wcu_per_second: None,
            achieved_wcu_per_second: 0.0,
            throttles: 0,
            key_throttles: 0,
            retries: 0,
            batches: 0,
            batch_latency_ms_p50: 0,
            batch_latency_ms_p99: 0,
            rejected_rows: t.rejected_rows,
            conflicts_resolved: t.conflicts,
            duration_seconds: 0.0,
            cpu_seconds: 0.0,
            s3_import: None,
        }
    }

    pub fn build(t: &TargetState, w: &Writer, target: Option<f64>, took: Duration, cpu_seconds: f64) -> TargetReport {
        let mut lat = w.stats.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lat.sort_unstable();
        let consumed = w.stats.consumed();
        TargetReport {
            table: t.table.name.clone(),
            source_rows: t.source_rows,
            items: t.items(),
            items_written: w.stats.items.load(Ordering::Relaxed),
            wcu_estimated: w.stats.estimated_wcu.load(Ordering::Relaxed),
            wcu_consumed: consumed,
            target_wcu_per_second: target,
            achieved_wcu_per_second: consumed / took.as_secs_f64().max(1e-3),
            throttles: w.stats.throttles.load(Ordering::Relaxed),
            key_throttles: w.stats.key_throttles.load(Ordering::Relaxed),
            retries: w.stats.retries.load(Ordering::Relaxed),
            batches: w.stats.batches.load(Ordering::Relaxed),
            batch_latency_ms_p50: percentile(&lat, 0.5),
            batch_latency_ms_p99: percentile(&lat, 0.99),
            rejected_rows: t.rejected_rows,
            conflicts_resolved: t.conflicts,
            duration_seconds: took.as_secs_f64(),
            cpu_seconds,
            s3_import: None,
        }
    }
}

impl ImportReport {
    pub fn build(from: &str, started_at: &str, took: Duration, st: &ImportState, tables: Vec<TargetReport>, names: Vec<TableName>, skipped: Vec<SkippedTable>) -> ImportReport {
        ImportReport {
            from: from.to_string(),
            started_at: started_at.to_string(),
            finished_at: crate::clock::now_rfc3339(),
            duration_seconds: took.as_secs_f64(),
            items: tables.iter().map(|t| t.items_written).sum(),
            wcu_consumed: tables.iter().map(|t| t.wcu_consumed).sum(),
            throttles: tables.iter().map(|t| t.throttles).sum(),
            retries: tables.iter().map(|t| t.retries).sum(),
            rejected_rows: st.targets.iter().map(|t| t.rejected_rows).sum(),
            tables,
            names,
            skipped,
        }
    }

    pub fn write(&self, run: &Path) -> std::io::Result<()> {
        crate::run::json::write(&run.join(REPORT_FILE), self)
    }
}
