//! Stage one: `mysql2ddb export`. Discovers tables, opens the snapshot, plans chunks and exports
//! them through one work queue served by `--threads` snapshot connections, recording every
//! step in the manifest. A rerun resumes: complete chunks whose file still hashes to the
//! manifest's SHA-256 are kept, the rest are redone under a new snapshot (recorded with its own
//! binlog position). Hands the run folder (manifest + chunk files) to sync and import.

pub mod chunk;
pub mod chunkfile;
pub mod csv_sink;
pub mod parquet_sink;
mod queue;
pub mod report;
pub mod settings;

pub use settings::ExportSettings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use rayon::prelude::*;
use thiserror::Error;
use tracing::{info, warn};

use crate::manifest::{
    ChunkEntry, ChunkFormat, ChunkState, ColumnEncoding, Compression, ExportOptions, Manifest, ManifestError,
    SourceInfo, TableEntry, ToolInfo, FORMAT_VERSION,
};
use crate::progress::Progress;
use crate::source::plan::{plan_table, ChunkRange, Strategy};
use crate::source::schema::{discover, TableSchema};
use crate::source::types::ZeroDatePolicy;
use crate::source::{connect, snapshot, SourceError};
use chunk::{export_chunk, ChunkJob, ChunkOutcome};
use crate::run::{chunk_path, hash_file, is_disk_full, rejects_path};
use queue::{Task, WorkQueue};
use report::ExportReport;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("disk full writing {path} (table {table}, chunk {chunk}); free space and rerun to resume")]
    DiskFull { table: String, chunk: u32, path: PathBuf },
    #[error("table {table}, chunk {chunk}: writing {path}: {source}")]
    ChunkIo { table: String, chunk: u32, path: PathBuf, source: std::io::Error },
    #[error("table {table}, chunk {chunk}: writing {path}: {source}")]
    Sink { table: String, chunk: u32, path: PathBuf, source: SinkError },
    #[error("table {table}, chunk {chunk}: {reason}. Rerun the same command once the source answers: finished chunks are kept and this one is read again")]
    SourceLost { table: String, chunk: u32, reason: String },
    #[error("{0}")]
    Incompatible(String),
    #[error("output folder {path}: {source}")]
    OutDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] crate::run::lock::LockError),
    #[error("stopped because another worker failed")]
    Cancelled,
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error("a worker thread panicked: {0}")]
    WorkerPanic(String),
    /// A read of a chunk's rows failed; `export_chunk` turns it into `SourceLost` or `Source`.
    #[error("reading rows: {0}")]
    Read(#[from] mysql::Error),
}

impl ExportError {
    fn chunk_io(table: &str, chunk: u32, path: &Path, source: std::io::Error) -> ExportError {
        if is_disk_full(&source) {
            return ExportError::DiskFull { table: table.into(), chunk, path: path.into() };
        }
        ExportError::ChunkIo { table: table.into(), chunk, path: path.into(), source }
    }

    fn sink(table: &str, chunk: u32, path: &Path, source: SinkError) -> ExportError {
        let io = match &source {
            SinkError::Io(e) => Some(e),
            SinkError::Parquet(parquet::errors::ParquetError::External(e)) => e.downcast_ref::<std::io::Error>(),
            _ => None,
        };
        if io.is_some_and(is_disk_full) || source.to_string().contains("No space left") {
            return ExportError::DiskFull { table: table.into(), chunk, path: path.into() };
        }
        ExportError::Sink { table: table.into(), chunk, path: path.into(), source }
    }
}

/// What chunk writers need to know, shared by all workers.
pub struct ExportOptionsRef {
    pub run: PathBuf,
    pub format: ChunkFormat,
    pub compression: Compression,
    pub zero_date: ZeroDatePolicy,
    pub row_group_bytes: usize,
    /// The source's read bound, named when a chunk's read times out.
    pub source_timeout: Option<std::time::Duration>,
    /// Count rows and rejects in the process's metrics.
    pub metrics: bool,
}

enum Event {
    /// One more range of a table being planned (the plan is complete at `PlanDone`).
    ChunkPlanned { table: usize, range: ChunkRange },
    PlanDone { table: usize, strategy: Strategy },
    ChunkDone { table: usize, index: usize, outcome: ChunkOutcome },
    Failed(ExportError),
}

/// Turns transparent huge pages off for this process. Export allocates and frees row buffers
/// and column chunks all the time; with huge pages the allocator's fresh segments were faulted
/// in and zeroed 2 MB at a time, a seventh of the client's CPU and half its resident memory
/// (`bench.orders`, 4 threads: 0.5 s of system time → 0.15 s, peak RSS 205 → 125 MB).
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's policy.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Pre-flight: binary logs that expire within a day (RDS keeps none by default) are named, with
/// what to run next; capture reads them from the position this export records.
fn warn_on_short_retention(control: &mut mysql::Conn) {
    use crate::source::retention::Retention;
    let kept = crate::source::retention::read(control);
    match &kept {
        Ok(r) if r.seconds.is_some_and(|s| s < 24 * 3600) => warn!(
            "binary logs are kept {:.1} h ({}): capture must read them from this export's position before the server purges them. After the export, `mysql2ddb estimate --source …` compares that with the import's time and prints the command that raises it; or start `mysql2ddb cdc capture --follow` as soon as the export ends",
            r.seconds.unwrap_or(0) as f64 / 3600.0,
            r.setting
        ),
        Ok(r) => info!(retention = %r.setting, "binlog retention"),
        Err(e) => warn!("binlog retention unknown: {e}"),
    }
    if let Ok(Retention { warning: Some(w), .. }) = &kept {
        warn!("binlog retention: {w}");
    }
}

/// Runs (or resumes) an export; returns the report, also written to the run folder.
pub fn run(settings: &ExportSettings) -> Result<ExportReport, ExportError> {
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let run = settings.out.clone();
    let out_err = |source| ExportError::OutDir { path: run.clone(), source };
    std::fs::create_dir_all(&run).map_err(out_err)?;
    let _lock = crate::run::lock::acquire(&run, "export")?;
    if settings.restart {
        // Starting over deletes the chunks a running import or capture reads.
        crate::run::lock::check_free(&run, &["import", "cdc capture", "cdc apply"])?;
        for sub in ["data", "rejects"] {
            match std::fs::remove_dir_all(run.join(sub)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(out_err(e)),
                _ => {}
            }
        }
        match std::fs::remove_file(Manifest::path(&run)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(out_err(e)),
            _ => {}
        }
    }
    std::fs::create_dir_all(&run).map_err(out_err)?;

    let mut control = settings.source.connect()?;
    let (server_version, flavor) = connect::server_version(&mut control)?;
    let (mut tables, skipped_objects) = discover(&mut control, &settings.filter)?;
    for o in &skipped_objects {
        warn!("not exported: {} ({}): {}", o.name, o.kind, o.reason);
    }
    for t in tables.iter().filter(|t| !t.fk_cascades.is_empty()) {
        warn!(
            "table {}: its parent changes it through {}: InnoDB does not write those child changes to the binlog, so `cdc capture` refuses this table unless given --allow-fk-cascades (see docs/cdc.md, \"Foreign keys\")",
            t.display_name(),
            t.fk_cascades.join("; ")
        );
    }
    for t in tables.iter().filter(|t| t.system_versioned) {
        warn!(
            "table {} is system-versioned: its current rows are exported, its history is not (DynamoDB keeps one version of an item); `cdc capture` refuses it, as its binlog carries history rows",
            t.display_name()
        );
    }
    // Stall-free mode's own watermark table is never part of the migration.
    tables.retain(|t| !(Some(t.database.as_str()) == settings.watermark_schema.as_deref() && t.table == snapshot::WATERMARK_TABLE));
    if settings.consistency != snapshot::Consistency::None {
        warn_on_short_retention(&mut control);
    }
    drop(control);
    info!(source = %settings.source, server = %server_version, tables = tables.len(), "discovered");
    if tables.is_empty() {
        warn!("no table matches; nothing to export");
    }

    let mut manifest = match Manifest::load(&run)? {
        Some(existing) => resume_manifest(existing, &tables, settings)?,
        None => Manifest {
            format_version: FORMAT_VERSION,
            tool: ToolInfo { name: "mysql2ddb".into(), version: env!("CARGO_PKG_VERSION").into() },
            created_at: crate::clock::now_rfc3339(),
            updated_at: String::new(),
            source: SourceInfo {
                host: settings.source.host.clone(),
                port: settings.source.port,
                user: settings.source.user.clone(),
                server_version: server_version.clone(),
                flavor,
            },
            options: ExportOptions {
                format: settings.format,
                compression: settings.compression,
                chunk_rows: settings.chunk_rows,
                consistency: settings.consistency,
                zero_date: settings.zero_date,
                csv_null: (settings.format == ChunkFormat::Csv).then(|| csv_sink::CSV_NULL.to_string()),
                selection: Some(settings.filter.clone()),
            },
            snapshots: Vec::new(),
            replay_from: None,
            complete: false,
            tables: tables.iter().map(|t| new_entry(t, settings.zero_date)).collect(),
        },
    };

    // What is left to do: tables to plan, chunks to (re)write.
    let mut tasks: Vec<Task> = Vec::new();
    let mut order: Vec<usize> = (0..manifest.tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(manifest.tables[i].schema.estimated_bytes));
    for &t in &order {
        let entry = &manifest.tables[t];
        if entry.strategy.is_none() {
            tasks.push(Task::Plan { table: t });
        } else {
            for (index, c) in entry.chunks.iter().enumerate() {
                if c.state != ChunkState::Complete {
                    tasks.push(Task::Chunk(job_for(entry, t, index)));
                }
            }
        }
    }
    let skipped: Vec<usize> = manifest
        .tables
        .iter()
        .map(|t| t.chunks.iter().filter(|c| c.state == ChunkState::Complete).count())
        .collect();

    let progress = Progress::new("export", settings.quiet);
    for entry in &manifest.tables {
        let done: u64 = entry.chunks.iter().filter(|c| c.state == ChunkState::Complete).map(|c| c.rows).sum();
        progress.add_table(entry.schema.display_name(), entry.schema.estimated_rows.max(done), done);
    }

    let mut readers: Vec<String> = Vec::new();
    if !tasks.is_empty() {
        let threads = settings.threads.clamp(1, 256);
        // Snapshots of killed runs that completed no chunk say nothing any chunk needs: keeping
        // them made the list grow with every kill.
        let used: std::collections::HashSet<u32> = manifest.tables.iter().flat_map(|t| t.chunks.iter().filter_map(|c| c.snapshot)).collect();
        manifest.snapshots.retain(|s| used.contains(&s.id));
        let snapshot_id = manifest.snapshots.iter().map(|s| s.id + 1).max().unwrap_or(0);
        let names: Vec<(String, String)> = manifest.tables.iter().map(|t| (t.schema.database.clone(), t.schema.table.clone())).collect();
        let request = snapshot::SnapshotRequest {
            source: &settings.source,
            flavor,
            consistency: settings.consistency,
            threads,
            id: snapshot_id,
            tables: &names,
            watermark: settings.watermark_schema.as_deref(),
            lock_wait_seconds: settings.lock_wait_seconds,
            reader: settings.row_reader,
        };
        let (conns, snap) = snapshot::open(&request)?;
        readers = conns.iter().map(|c| c.describe()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        info!(reader = %readers.join(", "), "worker sessions");
        info!(consistency = crate::choice::Choice::name(snap.consistency), reason = snap.reason.as_deref().unwrap_or("asked for"), "snapshot mode");
        match &snap.binlog {
            Some(p) => info!(file = %p.file, position = p.position, gtid = ?p.gtid, guarantee = %snap.guarantee, "snapshot"),
            None => warn!("no binlog position recorded (binary log off or not readable): binlog catch-up cannot start from this export"),
        }
        if snap.guarantee == "point-in-time" {
            for t in manifest.tables.iter().filter(|t| !t.schema.has_snapshots()) {
                warn!(
                    "table {} is {}: it has no snapshot, so its chunks are read as it changes after the lock; its guarantee is replay-from (cdc capture and apply from the recorded position make DynamoDB equal to it)",
                    t.schema.display_name(),
                    t.schema.engine.as_deref().unwrap_or("?")
                );
            }
        }
        manifest.snapshots.push(snap);
        manifest.store(&run)?;
        let uploader = settings.upload.as_ref().map(|(dest, opts)| crate::sync::ChunkUploader::spawn(&run, dest, opts));
        let result = execute(&mut manifest, tasks, conns, snapshot_id, settings, &progress, uploader.as_ref());
        // Export errors come first; an upload error surfaces after a clean export.
        let sent = uploader.map(|u| u.finish());
        result?;
        if let Some(sent) = sent {
            info!(objects = sent?, "chunks uploaded while exporting");
        }
    } else {
        manifest.store(&run)?;
        info!("every chunk is already complete; nothing to do");
    }
    progress.finish();
    // Hand the chunk hashes computed while writing to sync, so it need not read the files again.
    let known: Vec<(String, u64, String)> = manifest
        .tables
        .iter()
        .flat_map(|t| t.chunks.iter())
        .filter_map(|c| c.sha256.clone().map(|sha| (c.file.clone(), c.bytes, sha)))
        .collect();
    if let Err(e) = crate::sync::local::remember(&run, &known) {
        warn!(error = %e, "could not record chunk hashes for sync; it will hash the files itself");
    }

    let mut report = ExportReport::build(&manifest, &skipped, settings, &started_at, started.elapsed());
    report.skipped_objects = skipped_objects;
    report.row_readers = readers;
    report.write(&run).map_err(out_err)?;
    if let Some((dest, opts)) = &settings.upload {
        // Everything not yet sent (and a check of what was), then the manifest, last.
        let r = crate::sync::upload_dir(&run, dest, opts)?;
        info!(to = %dest, sent = r.transferred + r.replaced, up_to_date = r.skipped, "run folder synced");
    }
    Ok(report)
}

/// Serves the queue with one thread per connection; the calling thread records events.
fn execute(
    manifest: &mut Manifest,
    tasks: Vec<Task>,
    conns: Vec<crate::source::session::Session>,
    snapshot_id: u32,
    settings: &ExportSettings,
    progress: &Progress,
    uploader: Option<&crate::sync::ChunkUploader>,
) -> Result<(), ExportError> {
    let run = settings.out.clone();
    let queue = Arc::new(WorkQueue::default());
    let cancel = Arc::new(AtomicBool::new(false));
    let schemas: Arc<Vec<TableSchema>> = Arc::new(manifest.tables.iter().map(|t| t.schema.clone()).collect());
    let opts = Arc::new(ExportOptionsRef {
        run: run.clone(),
        format: settings.format,
        compression: settings.compression,
        zero_date: settings.zero_date,
        row_group_bytes: settings.row_group_bytes,
        source_timeout: settings.source.timeout,
        metrics: settings.metrics,
    });
    let mut outstanding = tasks.len();
    for t in tasks {
        queue.push_back(t);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let mut workers = Vec::new();
    for mut conn in conns {
        let (queue, cancel, schemas, opts, tx, progress) =
            (queue.clone(), cancel.clone(), schemas.clone(), opts.clone(), tx.clone(), progress.clone());
        let (chunk_rows, key_bounds) = (settings.chunk_rows, settings.key_bounds);
        workers.push(std::thread::spawn(move || {
            while let Some(task) = queue.pop() {
                let event = match task {
                    Task::Plan { table } => {
                        let mut emit = |range| {
                            let _ = tx.send(Event::ChunkPlanned { table, range });
                        };
                        match plan_table(&mut conn, &schemas[table], chunk_rows, key_bounds, &mut emit) {
                            Ok(strategy) => Event::PlanDone { table, strategy },
                            Err(e) => Event::Failed(e.into()),
                        }
                    }
                    Task::Chunk(job) => {
                        match export_chunk(&mut conn, &schemas[job.table], &job, &opts, &progress, &cancel) {
                            Ok(outcome) => Event::ChunkDone { table: job.table, index: job.index, outcome },
                            Err(e) => Event::Failed(e),
                        }
                    }
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut first_error: Option<ExportError> = None;
    if outstanding == 0 {
        queue.close(false);
    }
    while let Ok(event) = rx.recv() {
        if !matches!(event, Event::ChunkPlanned { .. }) {
            outstanding -= 1;
        }
        match event {
            Event::ChunkPlanned { table, range } => {
                let entry = &mut manifest.tables[table];
                let id = entry.chunks.len() as u32 + 1;
                entry.chunks.push(ChunkEntry {
                    id,
                    range,
                    state: ChunkState::Pending,
                    file: chunk_path(&entry.schema.database, &entry.schema.table, id, settings.format.extension()),
                    rows: 0,
                    bytes: 0,
                    sha256: None,
                    snapshot: None,
                    rejected_rows: 0,
                    rejects_file: None,
                    policy_counts: Default::default(),
                });
                if first_error.is_none() {
                    outstanding += 1;
                    queue.push_back(Task::Chunk(job_for(entry, table, entry.chunks.len() - 1)));
                }
            }
            Event::PlanDone { table, strategy } => {
                let entry = &mut manifest.tables[table];
                if strategy == Strategy::SingleStream {
                    warn!(table = %entry.schema.display_name(), "no primary key and no unique key over NOT NULL columns: read as one stream by one connection");
                }
                // Only now is the plan complete; a crash before this re-plans the table.
                entry.strategy = Some(strategy);
            }
            Event::ChunkDone { table, index, outcome } => {
                let entry = &mut manifest.tables[table];
                let c = &mut entry.chunks[index];
                c.state = ChunkState::Complete;
                c.rows = outcome.rows;
                c.bytes = outcome.bytes;
                c.sha256 = Some(outcome.sha256);
                c.snapshot = Some(snapshot_id);
                c.rejected_rows = outcome.rejected;
                c.rejects_file = (outcome.rejected > 0).then(|| rejects_path(&entry.schema.database, &entry.schema.table, c.id));
                c.policy_counts = outcome.policy_counts;
                if let Some(u) = uploader {
                    u.chunk_done(&c.file, c.sha256.clone().map(|sha| (c.bytes, sha)));
                    if let Some(r) = &c.rejects_file {
                        u.chunk_done(r, None);
                    }
                }
                if entry.strategy.is_some() && entry.chunks.iter().all(|c| c.state == ChunkState::Complete) {
                    progress.table_done(table);
                }
            }
            Event::Failed(ExportError::Cancelled) => {}
            Event::Failed(e) => {
                if first_error.is_none() {
                    cancel.store(true, Ordering::Relaxed);
                    queue.close(true);
                    first_error = Some(e);
                }
            }
        }
        if let Err(e) = manifest.store(&run) {
            first_error.get_or_insert(e.into());
            cancel.store(true, Ordering::Relaxed);
            queue.close(true);
        }
        if outstanding == 0 || first_error.is_some() {
            queue.close(first_error.is_some());
        }
    }
    for w in workers {
        if let Err(panic) = w.join() {
            let msg = panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "unknown".into());
            first_error.get_or_insert(ExportError::WorkerPanic(msg));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn job_for(entry: &TableEntry, table: usize, index: usize) -> ChunkJob {
    let c = &entry.chunks[index];
    ChunkJob {
        table,
        index,
        id: c.id,
        range: c.range.clone(),
        file: c.file.clone(),
        rejects: rejects_path(&entry.schema.database, &entry.schema.table, c.id),
    }
}

fn new_entry(schema: &TableSchema, zero_date: ZeroDatePolicy) -> TableEntry {
    let mut entry = TableEntry {
        schema: schema.clone(),
        encodings: schema
            .columns
            .iter()
            .map(|c| ColumnEncoding {
                column: c.name.clone(),
                arrow_type: c.kind.arrow_type(zero_date).to_string(),
                csv: c.kind.csv_encoding(zero_date).to_string(),
            })
            .collect(),
        strategy: None,
        chunks: Vec::new(),
        guarantee: None,
        columns_sha256: None,
    };
    entry.columns_sha256 = Some(entry.columns_digest());
    entry
}

/// Checks an earlier run's manifest against this run, keeps chunks whose files still match
/// their SHA-256, and adds tables that are new to this run.
fn resume_manifest(mut m: Manifest, tables: &[TableSchema], settings: &ExportSettings) -> Result<Manifest, ExportError> {
    let o = &m.options;
    if o.format != settings.format || o.zero_date != settings.zero_date {
        return Err(ExportError::Incompatible(format!(
            "{} holds a {:?} export with zero-date policy {:?}; this run asks for {:?} with {:?}. \
             Use --restart to discard it, or another --out",
            settings.out.display(),
            o.format,
            o.zero_date,
            settings.format,
            settings.zero_date
        )));
    }
    if let Some(old) = o.selection.as_ref().filter(|old| **old != settings.filter) {
        let show = |f: &crate::source::schema::TableFilter| {
            let all = |v: &Vec<String>| if v.is_empty() { "all".to_string() } else { v.join(",") };
            format!("--databases {} --tables {}", all(&f.databases), all(&f.tables))
        };
        return Err(ExportError::Incompatible(format!(
            "{} holds an export of {}; this run selects {}. Its tables would be merged into that run. Use --restart to discard it, or another --out",
            settings.out.display(),
            show(old),
            show(&settings.filter)
        )));
    }
    for t in tables {
        match m.tables.iter().find(|e| e.schema.database == t.database && e.schema.table == t.table) {
            Some(e) if e.schema.columns != t.columns || e.schema.key != t.key => {
                return Err(ExportError::Incompatible(format!(
                    "table {} changed since the first run (columns or key differ); rerun with --restart",
                    t.display_name()
                )));
            }
            Some(_) => {}
            None => m.tables.push(new_entry(t, settings.zero_date)),
        }
    }
    for e in m.tables.iter_mut().filter(|e| e.strategy.is_none() && !e.chunks.is_empty()) {
        warn!(table = %e.schema.display_name(), "planning of this table was interrupted: planning it again");
        e.chunks.clear();
    }
    for e in &m.tables {
        let incomplete = e.strategy.is_none() || e.chunks.iter().any(|c| c.state != ChunkState::Complete);
        if incomplete && !tables.iter().any(|t| t.database == e.schema.database && t.table == e.schema.table) {
            return Err(ExportError::Source(SourceError::TableGone {
                table: e.schema.display_name(),
                detail: "it is in the unfinished manifest but no longer on the server (or no longer selected)".into(),
            }));
        }
    }
    // Verify complete chunks in parallel: a missing or altered file is redone.
    let run = settings.out.clone();
    let checks: Vec<(usize, usize)> = m
        .tables
        .iter()
        .enumerate()
        .flat_map(|(t, e)| {
            e.chunks.iter().enumerate().filter(|(_, c)| c.state == ChunkState::Complete).map(move |(i, _)| (t, i))
        })
        .collect();
    let bad: Vec<(usize, usize)> = checks
        .par_iter()
        .filter(|&&(t, i)| {
            let c = &m.tables[t].chunks[i];
            match hash_file(&run.join(&c.file)) {
                Ok(h) => Some(h.sha256) != c.sha256 || h.bytes != c.bytes,
                Err(_) => true,
            }
        })
        .copied()
        .collect();
    let kept = checks.len() - bad.len();
    for (t, i) in bad {
        let name = m.tables[t].schema.display_name();
        let c = &mut m.tables[t].chunks[i];
        warn!(table = %name, chunk = c.id, file = %c.file, "chunk file missing or altered since it was written: redoing it");
        c.state = ChunkState::Pending;
    }
    info!(kept, "resuming an earlier export");
    Ok(m)
}
