//! Change data capture: the changes the application makes while the migration runs, from the
//! source's binlog to DynamoDB. `capture` reads the binlog from the export's snapshot position
//! and stages whole transactions durably in the run folder (`state` names the files); `apply`
//! maps them with the import's mapping and writes them; `check` vets the server's settings;
//! `txn` groups binlog events into transactions (savepoints, XA, rotation), `ddl` finds the
//! statements that redefine a captured table; `event` is the staged form of a change. `status` and `cutover` below read the two
//! checkpoints: how far behind apply is, and when the source can be switched off.

pub mod apply;
pub mod capture;
pub mod check;
pub mod classify;
pub mod ddl;
pub mod event;
pub mod events;
pub mod large_line;
pub mod large_rows;
pub mod resume;
pub mod segment;
pub mod spill;
pub mod state;
pub mod txn;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use serde::Serialize;

use crate::source::connect::SourceConfig;
use crate::source::position::ServerPosition;
use crate::source::snapshot::BinlogPosition;
use state::{ApplyState, CaptureState};

#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Run(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Transform(#[from] crate::transform::TransformError),
    #[error(transparent)]
    Lock(#[from] crate::run::lock::LockError),
    #[error("{run}: no manifest.json (is this a run folder written by export?)")]
    NoManifest { run: PathBuf },
    #[error("the export recorded no binlog position (binlog off, or --consistency none); capture needs one: enable the binlog and export again")]
    NoPosition,
    #[error("{cdc}: holds changes captured for an earlier export of this folder (from {earlier}; the manifest now starts at {now}); delete that folder to capture for this export")]
    EarlierExport { cdc: PathBuf, earlier: String, now: String },
    #[error("{run}: no capture yet (run `mysql2ddb cdc capture`)")]
    NoCapture { run: PathBuf },
    #[error("no import of this run yet: run the import first (apply writes the changes made after its snapshot)")]
    NoImport,
    #[error("the import of this run has not finished ({written} of {total} buckets written): finish it first, or its rows would overwrite newer changes")]
    ImportUnfinished { written: usize, total: usize },
    /// The run's tables or mapping cannot be followed (a charset, a shared grouped part).
    #[error("{0}")]
    Unsupported(String),
    #[error("the source's settings do not allow change capture:\n  {}", .0.join("\n  "))]
    Settings(Vec<String>),
    #[error("source: {0}")]
    Connect(#[from] crate::source::SourceError),
    #[error("source: {what}: {source}")]
    Source { what: String, source: mysql::Error },
    #[error("binlog at {at}: {reason}")]
    Binlog { at: String, reason: String },
    /// The connection to the source failed (closed, reset, not answering), not the data.
    #[error("binlog at {at}: {reason}. Rerun `mysql2ddb cdc capture` to go on from its last staged position (with --follow it reconnects by itself, for --reconnect-for seconds)")]
    SourceLost { at: String, reason: String },
    #[error("the source was lost ({reason}) and did not come back within {seconds} s of reconnecting (--reconnect-for). Capture stands at its last staged position: rerun `mysql2ddb cdc capture --follow` once the source answers (after a failover, point --source at the new server: capture resumes there by GTID)")]
    SourceGone { reason: String, seconds: u64 },
    #[error("{path}: {source}{}", crate::run::disk_full_hint(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("writing to DynamoDB: {0}")]
    Write(String),
    #[error("stopped at {at}: table {table} was changed by `{statement}`. The run's schema no longer describes its rows: export that table again (a new run), import it, and capture from the new run's position")]
    Ddl { table: String, at: String, statement: String },
    #[error("binlog at {at}: a statement-logged {verb} changes captured table {table}; its rows are not in the binlog as row events, so capture cannot follow it (that session ran with binlog_format STATEMENT or MIXED). Set binlog_format = ROW globally and in my.cnf (RDS: the parameter group), reconnect the application's sessions (a session keeps the format it opened with), then export again. The statement: {statement}")]
    StatementDml { at: String, verb: String, table: String, statement: String },
    #[error("cutover: gave up after {seconds} s waiting for {what}; are `cdc capture --follow` and `cdc apply --follow` running?")]
    CutoverTimeout { seconds: u64, what: String },
    #[error("cutover: {late} changes were made to the captured tables after the final position {at}: the writes did not stop; do not switch yet")]
    WritesDidNotStop { late: u64, at: String },
    #[error("{reason}; {undone}")]
    CutoverFailed { reason: String, undone: String },
    #[error("cutover: reading the confirmation: {0}")]
    Confirm(std::io::Error),
}

impl CdcError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> CdcError {
        CdcError::Io { path: path.to_path_buf(), source }
    }

    fn source(what: impl Into<String>, source: mysql::Error) -> CdcError {
        CdcError::Source { what: what.into(), source }
    }
}

/// Where capture and apply stand.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The source's current binlog end, when the source was asked.
    pub source_at: Option<String>,
    pub captured_to: String,
    pub captured_changes: u64,
    pub segments: u64,
    pub applied_changes: u64,
    pub applied_segments: u64,
    pub applied_to: Option<String>,
    /// Changes staged and not yet applied.
    pub behind_changes: u64,
    /// Seconds between the newest staged change's commit and the last applied one's (0 when
    /// nothing is waiting).
    pub lag_seconds: u64,
    pub rejected: u64,
}

/// The source's current binlog end (SHOW MASTER STATUS).
pub fn source_position(source: &SourceConfig) -> Result<ServerPosition, CdcError> {
    let mut conn = source.connect()?;
    let (_, flavor) = crate::source::connect::server_version(&mut conn)?;
    let at = crate::source::position::binlog_position(&mut conn, flavor, source)?;
    let at = at.ok_or_else(|| CdcError::Settings(vec!["SHOW MASTER STATUS is empty: the binary log is off".into()]))?;
    let server = crate::source::position::server_identity(&mut conn, flavor)?;
    Ok(ServerPosition::new(Some(server), at))
}

/// Whether capture has reached `target` (a position of the cutover's source): on the server
/// capture reads, by file and offset; on another (after a failover) by GTID set, or an error.
fn captured_reached(cap: &CaptureState, target: &ServerPosition) -> Result<bool, CdcError> {
    ServerPosition::new(cap.server.clone(), cap.next.clone())
        .reached(target)
        .map_err(|why| CdcError::Settings(vec![format!("cutover cannot tell whether capture has reached the source's position: {why}")]))
}

pub fn status(run: &Path, source: Option<&SourceConfig>) -> Result<Status, CdcError> {
    let cap = CaptureState::load(run)?.ok_or_else(|| CdcError::NoCapture { run: run.to_path_buf() })?;
    let ap = ApplyState::load(run)?.unwrap_or_default();
    let newest = cap.newest().map(|s| s.last_ts as u64);
    let behind = cap.changes.saturating_sub(ap.changes);
    let lag = match (behind, newest, ap.last_ts) {
        (0, _, _) => 0,
        (_, Some(n), Some(a)) => n.saturating_sub(a as u64),
        (_, Some(n), None) => crate::clock::now_unix().saturating_sub(n).max(1),
        _ => 0,
    };
    Ok(Status {
        source_at: source.map(source_position).transpose()?.map(|p| p.at.display()),
        captured_to: cap.next.display(),
        captured_changes: cap.changes,
        segments: cap.staged(),
        applied_changes: ap.changes,
        applied_segments: ap.segments,
        applied_to: ap.last_at,
        behind_changes: behind,
        lag_seconds: lag,
        rejected: ap.rejected,
    })
}

/// Changes staged but not applied that cutover still accepts before asking writes to stop: the
/// lag is in whole seconds, so this also bounds the pause when a second holds many changes.
const CUTOVER_MAX_BEHIND: u64 = 10_000;

/// What cutover measured.
#[derive(Debug, Clone, Serialize)]
pub struct Cutover {
    /// The source position when writes stopped (or were to stop): everything up to it is applied.
    pub final_at: String,
    /// Seconds from that moment until apply had caught up: the write pause the switch needs.
    pub pause_seconds: f64,
}

/// How cutover knows the application's writes have stopped.
#[derive(Debug, Clone, Copy)]
pub enum WritesStop {
    /// It makes the source read-only itself.
    ReadOnly,
    /// No change on the captured tables for this long after asking for the stop.
    Quiet(Duration),
    /// The operator presses Enter.
    Confirm,
}

/// Waits until apply is within `max_lag`; then has writes stopped (read-only, or asks and waits
/// for a quiet period or the operator's Enter) and takes the source's position as final; waits
/// until everything up to it is captured and applied. Changes that arrive on the captured
/// tables after the final position (writes that did not stop) are reported and waited out:
/// "switch now" is never said while they change. Capture and apply must be following.
pub fn cutover(run: &Path, source: &SourceConfig, max_lag: Duration, stop: WritesStop, timeout: Duration) -> Result<Cutover, CdcError> {
    let deadline = Instant::now() + timeout;
    let wait = |what: &str| -> Result<(), CdcError> {
        if Instant::now() > deadline {
            return Err(CdcError::CutoverTimeout { seconds: timeout.as_secs(), what: what.to_string() });
        }
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    };
    loop {
        let s = status(run, None)?;
        if s.lag_seconds <= max_lag.as_secs() && s.behind_changes < CUTOVER_MAX_BEHIND {
            break;
        }
        wait("the lag to drop")?;
    }
    let captured = || -> Result<CaptureState, CdcError> { Ok(CaptureState::load(run)?.unwrap_or_default()) };
    // Captures up to the source's current position, then returns that position.
    let caught_up_position = || -> Result<BinlogPosition, CdcError> {
        let pos = source_position(source)?;
        while !captured_reached(&captured()?, &pos)? {
            wait("capture to reach the source's position")?;
        }
        Ok(pos.at)
    };
    match stop {
        WritesStop::ReadOnly => {
            let mut conn = source.connect()?;
            conn.query_drop("SET GLOBAL read_only = ON").map_err(|e| CdcError::source("SET GLOBAL read_only = ON (needs the SUPER or READ_ONLY ADMIN privilege)", e))?;
            tracing::info!("the source is read-only now");
            // A cutover that fails from here must not leave the application unable to write.
            return final_position(run, stop, &wait, &captured, &caught_up_position).map_err(|e| undo_read_only(source, e));
        }
        WritesStop::Confirm => {
            println!("lag is under {} s: stop the application's writes to the source, then press Enter", max_lag.as_secs_f64());
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(CdcError::Confirm)?;
        }
        WritesStop::Quiet(_) => println!("lag is under {} s: stop the application's writes to the source now", max_lag.as_secs_f64()),
    }
    final_position(run, stop, &wait, &captured, &caught_up_position)
}

/// A failed read-only cutover: the source is made writable again, and the error says so (or
/// says loudly that it is still read-only, and how to undo it).
fn undo_read_only(source: &SourceConfig, e: CdcError) -> CdcError {
    let undone = source.connect().map_err(|e| e.to_string()).and_then(|mut c| c.query_drop("SET GLOBAL read_only = OFF").map_err(|e| e.to_string()));
    let said = match undone {
        Ok(()) => "the source was made writable again (SET GLOBAL read_only = OFF)".to_string(),
        Err(why) => format!("THE SOURCE IS STILL READ-ONLY ({why}): run SET GLOBAL read_only = OFF on it now"),
    };
    tracing::warn!("cutover failed: {said}");
    CdcError::CutoverFailed { reason: e.to_string(), undone: said }
}

/// Waits until everything up to the source's position after the stop is applied; returns it.
fn final_position(
    run: &Path,
    stop: WritesStop,
    wait: &dyn Fn(&str) -> Result<(), CdcError>,
    captured: &dyn Fn() -> Result<CaptureState, CdcError>,
    caught_up_position: &dyn Fn() -> Result<BinlogPosition, CdcError>,
) -> Result<Cutover, CdcError> {
    let t0 = Instant::now();
    let mut fin;
    loop {
        if let WritesStop::Quiet(period) = stop {
            wait_quiet(captured, caught_up_position, wait, period)?;
        }
        fin = caught_up_position()?;
        let changes_at_fin = captured()?.changes;
        loop {
            let ap = ApplyState::load(run)?.unwrap_or_default();
            let cap = captured()?;
            if ap.segments >= cap.staged() && ap.offset == 0 && ap.changes >= changes_at_fin {
                break;
            }
            wait("apply to reach the final position")?;
        }
        // Writes that did not stop: the captured tables changed after the final position.
        caught_up_position()?;
        let late = captured()?.changes - changes_at_fin;
        if late == 0 {
            break;
        }
        println!("{late} changes reached the captured tables after {}: writes have not stopped; waiting for them to stop", fin.display());
        if !matches!(stop, WritesStop::Quiet(_)) {
            return Err(CdcError::WritesDidNotStop { late, at: fin.display() });
        }
    }
    Ok(Cutover { final_at: fin.display(), pause_seconds: t0.elapsed().as_secs_f64() })
}

/// Waits until no change reached the captured tables for `period` (capture kept up with the
/// source all along), printing while they still change.
fn wait_quiet(
    captured: &dyn Fn() -> Result<CaptureState, CdcError>,
    caught_up: &dyn Fn() -> Result<BinlogPosition, CdcError>,
    wait: &dyn Fn(&str) -> Result<(), CdcError>,
    period: Duration,
) -> Result<(), CdcError> {
    let mut last = captured()?.changes;
    let mut since = Instant::now();
    let mut said = Instant::now() - Duration::from_secs(60);
    loop {
        caught_up()?;
        let now = captured()?.changes;
        if now != last {
            if said.elapsed() >= Duration::from_secs(2) {
                println!("the captured tables still change ({} changes in the last moments): waiting for {:.0} s without one", now - last, period.as_secs_f64());
                said = Instant::now();
            }
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= period {
            return Ok(());
        }
        wait("the captured tables to stop changing")?;
    }
}
