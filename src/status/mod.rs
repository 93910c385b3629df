//! `mysql2ddb status --from RUN`: one view of every stage of a run, read from the files each
//! stage keeps (so it is right while `export`, `import` or `cdc … --follow` run, from another
//! shell): export (tables, rows, chunks, done), sync, import per table (items, WCU, buckets,
//! rejects, done), capture and apply (position, GTID, changes, lag, rejects), the last verify, and
//! which stages are running now. It asks no server.

use serde::Serialize;

use crate::cdc::state::{ApplyState, CaptureState};
use crate::manifest::Manifest;
use crate::run::paths::{EXPORT_REPORT, IMPORT_REPORT, SYNC_REPORT, VERIFY_REPORT};
use crate::run::{RunError, RunFolder};
use crate::transform::state::ImportState;

/// A state file of the run that could not be read, by the stage that writes it.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Cdc(#[from] crate::cdc::CdcError),
}

#[derive(Debug, Serialize)]
pub struct RunStatus {
    pub run: String,
    /// Stages writing the folder now, with their holder (`pid N on HOST, since T`).
    pub running: Vec<Running>,
    pub export: Option<ExportStatus>,
    pub sync: Option<serde_json::Value>,
    pub import: Option<ImportStatus>,
    pub capture: Option<CaptureStatus>,
    pub apply: Option<ApplyStatus>,
    pub verify: Option<VerifyStatus>,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub stage: String,
    pub holder: String,
}

#[derive(Debug, Serialize)]
pub struct ExportStatus {
    pub complete: bool,
    pub tables: usize,
    /// Rows in complete chunks.
    pub rows: u64,
    pub chunks: usize,
    pub chunks_done: usize,
    pub rejected_rows: u64,
    pub replay_from: Option<String>,
    pub skipped_objects: usize,
}

#[derive(Debug, Serialize)]
pub struct ImportStatus {
    pub tables: Vec<ImportTable>,
    pub done: bool,
}

#[derive(Debug, Serialize)]
pub struct ImportTable {
    pub table: String,
    pub source_rows: u64,
    pub items: u64,
    pub wcu: u64,
    pub buckets: usize,
    pub buckets_written: usize,
    pub rejected_rows: u64,
    pub done: bool,
    /// WCU/s the last import run achieved on it, from import-report.json.
    pub achieved_wcu_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CaptureStatus {
    pub at: String,
    pub gtid: Option<String>,
    pub server: Option<String>,
    pub changes: u64,
    pub segments: u64,
}

#[derive(Debug, Serialize)]
pub struct ApplyStatus {
    pub at: Option<String>,
    pub changes: u64,
    pub behind_changes: u64,
    pub lag_seconds: u64,
    pub rejected: u64,
}

#[derive(Debug, Serialize)]
pub struct VerifyStatus {
    pub differences: u64,
    pub tables: usize,
    pub sample: Option<f64>,
    pub rejected_rows: u64,
    pub rejected_changes: u64,
}

/// Reads every stage's files of `run`.
pub fn status(run: &RunFolder) -> Result<RunStatus, StatusError> {
    let export = Manifest::load(run.root())?.map(|m| {
        let chunks = m.tables.iter().flat_map(|t| &t.chunks);
        let done: Vec<_> = chunks.clone().filter(|c| c.state == crate::manifest::ChunkState::Complete).collect();
        ExportStatus {
            complete: m.complete,
            tables: m.tables.len(),
            rows: done.iter().map(|c| c.rows).sum(),
            chunks: chunks.count(),
            chunks_done: done.len(),
            rejected_rows: done.iter().map(|c| c.rejected_rows).sum(),
            replay_from: m.replay_from.as_ref().map(|p| p.display()),
            skipped_objects: 0,
        }
    });
    let export = match (export, run.report(EXPORT_REPORT)?) {
        (Some(mut e), Some(r)) => {
            e.skipped_objects = r["skipped_objects"].as_array().map(Vec::len).unwrap_or(0);
            Some(e)
        }
        (e, _) => e,
    };
    let import_report = run.report(IMPORT_REPORT)?;
    let import = ImportState::load(&run.import_dir()).filter(|st| st.grouped || !st.targets.is_empty()).map(|st| {
        let tables: Vec<ImportTable> = st
            .targets
            .iter()
            .map(|t| {
                let reported = import_report.as_ref().and_then(|r| r["tables"].as_array()?.iter().find(|x| x["table"] == t.table.name.as_str()).cloned());
                ImportTable {
                    table: t.table.name.clone(),
                    source_rows: t.source_rows,
                    items: t.items(),
                    wcu: t.wcu(),
                    buckets: t.buckets.len(),
                    buckets_written: t.buckets.iter().filter(|b| b.written).count(),
                    rejected_rows: t.rejected_rows,
                    done: st.grouped && !t.buckets.is_empty() && t.buckets.iter().all(|b| b.written),
                    achieved_wcu_per_second: reported.and_then(|r| r["achieved_wcu_per_second"].as_f64()),
                }
            })
            .collect();
        ImportStatus { done: !tables.is_empty() && tables.iter().all(|t| t.done), tables }
    });
    let capture_state = CaptureState::load(run.root())?;
    let apply_state = ApplyState::load(run.root())?;
    let capture = capture_state.as_ref().map(|c| CaptureStatus { at: c.next.display(), gtid: c.next.gtid.clone(), server: c.server.clone(), changes: c.changes, segments: c.staged() });
    let apply = match (&capture_state, &apply_state) {
        (Some(cap), Some(ap)) => {
            let behind = cap.changes.saturating_sub(ap.changes);
            let newest = cap.newest().map(|s| s.last_ts as u64);
            let lag = match (behind, newest, ap.last_ts) {
                (0, _, _) => 0,
                (_, Some(n), Some(a)) => n.saturating_sub(a as u64),
                (_, Some(n), None) => crate::clock::now_unix().saturating_sub(n).max(1),
                _ => 0,
            };
            Some(ApplyStatus { at: ap.last_at.clone(), changes: ap.changes, behind_changes: behind, lag_seconds: lag, rejected: ap.rejected })
        }
        _ => None,
    };
    let verify = run.report(VERIFY_REPORT)?.map(|r| VerifyStatus {
        differences: r["differences"].as_u64().unwrap_or(0),
        tables: r["tables"].as_array().map(Vec::len).unwrap_or(0),
        sample: r["sample"].as_f64(),
        rejected_rows: r["rejected_rows"].as_u64().unwrap_or(0),
        rejected_changes: r["rejected_changes"].as_u64().unwrap_or(0),
    });
    Ok(RunStatus {
        run: run.root().display().to_string(),
        running: run.running().into_iter().map(|(stage, holder)| Running { stage, holder }).collect(),
        export,
        sync: run.report(SYNC_REPORT)?,
        import,
        capture,
        apply,
        verify,
    })
}

/// Sets the metrics' run gauges from one reading of the run folder (`metrics::serve`'s poll); a
/// file being rewritten is read next time.
pub fn publish(run: &RunFolder) {
    let running = run.running();
    let running: Vec<(&str, bool)> = crate::run::STAGES.iter().map(|s| (*s, running.iter().any(|(r, _)| r == s))).collect();
    let Ok(st) = status(run) else {
        // A file being rewritten: which stages run is still known; the rest is read next time.
        crate::metrics::publish(&crate::metrics::RunGauges { running, ..Default::default() });
        return;
    };
    let capture = CaptureState::load(run.root()).ok().flatten();
    // Before apply's first change (the whole import long), everything staged is behind.
    let apply = st.apply.as_ref().map(|a| (a.changes, a.behind_changes, a.lag_seconds)).or_else(|| {
        capture.as_ref().map(|c| {
            let lag = if c.changes == 0 { 0 } else { c.newest().map(|n| crate::clock::now_unix().saturating_sub(n.last_ts as u64).max(1)).unwrap_or(0) };
            (0, c.changes, lag)
        })
    });
    crate::metrics::publish(&crate::metrics::RunGauges {
        running,
        export: st.export.as_ref().map(|e| (e.complete, e.rows)),
        import: st.import.as_ref().map(|i| (i.done, i.tables.iter().map(|t| (t.table.as_str(), t.items)).collect())),
        capture: capture.as_ref().map(|c| (c.changes, c.next.file.as_str(), c.next.position)),
        apply,
        verify_differences: st.verify.as_ref().map(|v| v.differences),
    });
}

/// The status as the lines `mysql2ddb status` prints.
pub fn render(s: &RunStatus) -> String {
    let mut out = format!("run {}\n", s.run);
    for r in &s.running {
        out.push_str(&format!("running: {} ({})\n", r.stage, r.holder));
    }
    match &s.export {
        Some(e) => out.push_str(&format!(
            "export:  {}: {} tables, {} rows in {} of {} chunks, {} rejected{}{}\n",
            if e.complete { "complete" } else { "not complete" },
            e.tables,
            e.rows,
            e.chunks_done,
            e.chunks,
            e.rejected_rows,
            e.replay_from.as_deref().map(|p| format!("; changes replay from {p}")).unwrap_or_default(),
            if e.skipped_objects > 0 { format!("; {} objects not exported (export-report.json)", e.skipped_objects) } else { String::new() }
        )),
        None => out.push_str("export:  not started (no manifest.json)\n"),
    }
    if let Some(r) = &s.sync {
        out.push_str(&format!(
            "sync:    {} to {}: {} files, {} sent, {} up to date\n",
            r["direction"].as_str().unwrap_or("?"),
            r["to"].as_str().unwrap_or("?"),
            r["files"],
            r["transferred"].as_u64().unwrap_or(0) + r["replaced"].as_u64().unwrap_or(0),
            r["skipped"]
        ));
    }
    match &s.import {
        Some(i) => {
            for t in &i.tables {
                out.push_str(&format!(
                    "import:  {}: {} items ({} source rows), {} WCU, {} of {} buckets written, {} rejected{}{}\n",
                    t.table,
                    t.items,
                    t.source_rows,
                    t.wcu,
                    t.buckets_written,
                    t.buckets,
                    t.rejected_rows,
                    t.achieved_wcu_per_second.map(|w| format!(", last at {w:.0} WCU/s")).unwrap_or_default(),
                    if t.done { " — done" } else { "" }
                ));
            }
        }
        None => out.push_str("import:  not started\n"),
    }
    match &s.capture {
        Some(c) => out.push_str(&format!("capture: at {} ({} changes in {} segments){}\n", c.at, c.changes, c.segments, c.gtid.as_deref().map(|g| format!(", GTID {g}")).unwrap_or_default())),
        None => out.push_str("capture: not started\n"),
    }
    if let Some(a) = &s.apply {
        out.push_str(&format!(
            "apply:   at {} ({} changes), {} behind, lag {} s, {} rejected\n",
            a.at.as_deref().unwrap_or("-"),
            a.changes,
            a.behind_changes,
            a.lag_seconds,
            a.rejected
        ));
    }
    if let Some(v) = &s.verify {
        out.push_str(&format!(
            "verify:  {} differences in {} tables{}{}\n",
            v.differences,
            v.tables,
            v.sample.map(|p| format!(" (a {:.2}% sample)", p * 100.0)).unwrap_or_default(),
            if v.rejected_rows + v.rejected_changes > 0 { format!("; {} rejected rows and {} rejected changes are not in DynamoDB", v.rejected_rows, v.rejected_changes) } else { String::new() }
        ));
    }
    out
}
