//! Stage two: a run folder (local, or s3://… downloaded and verified first) becomes DynamoDB
//! items. `reader` reads chunk files back into typed cells; the mapping (`crate::mapping`) turns
//! rows into fragments; `spill` scatters them into buckets by partition key and `group` folds
//! each bucket into items (in parallel, memory bounded by bucket size); `tables` prepares the
//! target tables; `writer` sends BatchWriteItem calls paced by `aws::pacing` and retried by `aws::retry`; `state` checkpoints
//! every step so a rerun resumes; `report` writes import-report.json.

pub mod group;
pub mod reader;
pub mod report;
pub mod spill;
pub mod state;
pub mod tables;
pub mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use crate::manifest::{ChunkState, Manifest};
use crate::mapping::compile::{AutoOptions, MappingPlan};
use crate::value::dynamo::ConvertOptions;
use crate::mapping::dms::TableMapping;
use crate::progress::Progress;
use group::{BucketStats, OnDuplicate};
use report::{ImportReport, TargetReport};
use spill::{Record, Spill};
use state::{fingerprint, target_dir, work_dir, ImportState, TargetState};

/// New on-demand tables sustain up to 4,000 WCU/s at first; `--wcu-fraction` applies to this.
pub const ON_DEMAND_DEFAULT_WCU: f64 = 4000.0;
/// Upper bound on buckets per target table.
const MAX_BUCKETS: u64 = 4096;
/// Rows per bucket at most (default of --bucket-rows): also the most a resumed import rewrites.
pub const DEFAULT_BUCKET_ROWS: u64 = 200_000;
/// In-memory size of grouped rows relative to their chunk files (measured on Parquet chunks).
const MEMORY_EXPANSION: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Mapping(#[from] crate::mapping::dms::MappingError),
    #[error(transparent)]
    Read(#[from] reader::ReadError),
    #[error("{0}")]
    Io(String),
    #[error("{count} rows map to a DynamoDB key (or pivoted attribute) already taken; nothing was written. Examples:\n  {}\nFix the mapping's keys, or pass --on-duplicate last-wins to keep the last row in source key order.", examples.join("\n  "))]
    Duplicates { count: u64, examples: Vec<String> },
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error(transparent)]
    Write(#[from] writer::WriteError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

fn io(what: &Path, e: impl std::fmt::Display) -> ImportError {
    ImportError::Io(format!("{}: {e}", what.display()))
}

#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// A run folder, or s3://bucket/prefix.
    pub from: String,
    /// Local copy of an s3:// run.
    pub spool: Option<PathBuf>,
    pub sync: crate::sync::SyncOptions,
    pub mapping: Option<PathBuf>,
    pub convert: ConvertOptions,
    pub auto: AutoOptions,
    pub on_duplicate: OnDuplicate,
    /// Memory for grouping, MiB (buckets are sized so that the threads' buckets fit).
    pub memory_mb: u64,
    /// Source rows per bucket at most: the resume granularity.
    pub bucket_rows: u64,
    /// WCU/s per table; 0 = unpaced.
    pub wcu: Option<f64>,
    pub wcu_fraction: f64,
    pub concurrency: usize,
    pub tables: tables::TableOptions,
    pub dynamo: crate::aws::dynamo::DynamoOptions,
    pub restart: bool,
    pub quiet: bool,
    /// Map and group only: report items and WCU, write nothing to DynamoDB.
    pub dry_run: bool,
    /// Another command's work folder for its dry run (`state::dry_run_dir`): the import's own
    /// checkpoint and report are left alone. None: the import's own folder.
    pub work: Option<PathBuf>,
}

/// Resolves `from` to a local run folder, downloading an s3:// run (verified) first.
pub fn local_run(from: &str, spool: Option<&Path>, sync: &crate::sync::SyncOptions) -> Result<PathBuf, ImportError> {
    match crate::sync::S3Location::parse(from) {
        Some(loc) => {
            let dir = spool.map(Path::to_path_buf).unwrap_or_else(|| loc.default_spool());
            crate::sync::download_dir(&loc, &dir, sync)?;
            Ok(dir)
        }
        None => Ok(PathBuf::from(from)),
    }
}

/// Loads a complete manifest and builds the mapping plan from it.
pub fn load_plan(run: &Path, mapping: Option<&Path>, convert: &ConvertOptions, auto: &AutoOptions) -> Result<(Manifest, MappingPlan, String), ImportError> {
    let manifest = Manifest::load(run)
        .map_err(|e| ImportError::Input(e.to_string()))?
        .ok_or_else(|| ImportError::Input(format!("{}: no manifest.json (is this a run folder written by export?)", run.display())))?;
    if !manifest.complete {
        return Err(ImportError::Input(format!("{}: the export is not complete; rerun the export to finish it", run.display())));
    }
    let text = match mapping {
        Some(p) => std::fs::read_to_string(p).map_err(|e| io(p, e))?,
        None => String::new(),
    };
    let parsed = match mapping {
        Some(p) => Some(TableMapping::parse(&text).map_err(|e| ImportError::Input(format!("{}: {e}", p.display())))?),
        None => None,
    };
    let plan = MappingPlan::build(&manifest.tables, parsed.as_ref(), convert, auto)?;
    Ok((manifest, plan, text))
}

fn bucket_count(manifest: &Manifest, plan: &MappingPlan, target: usize, memory_mb: u64, bucket_rows: u64) -> (u32, u64) {
    let (mut bytes, mut rows) = (0u64, 0u64);
    for s in plan.sources.iter().filter(|s| s.mapper.target == target) {
        for c in &manifest.tables[s.table].chunks {
            bytes += c.bytes;
            rows += c.rows;
        }
    }
    let per_bucket = (memory_mb.max(16) << 20) / rayon::current_num_threads().max(1) as u64;
    let by_memory = (bytes * MEMORY_EXPANSION).div_ceil(per_bucket.max(1));
    let by_rows = rows.div_ceil(bucket_rows.max(1));
    (by_memory.max(by_rows).clamp(1, MAX_BUCKETS) as u32, rows)
}

/// Reads every chunk, maps its rows and spills them; then groups every bucket into items.
fn spill_and_group(run: &Path, work: &Path, manifest: &Manifest, plan: &MappingPlan, s: &ImportSettings, state: &mut ImportState) -> Result<(), ImportError> {
    for what in ["spill", "items", "rejects"] {
        let _ = std::fs::remove_dir_all(work.join(what));
    }
    let mut spills = Vec::new();
    state.targets.clear();
    for (i, t) in plan.targets.iter().enumerate() {
        let (buckets, rows) = bucket_count(manifest, plan, i, s.memory_mb, s.bucket_rows);
        spills.push(Spill::create(target_dir(work, &t.name, "spill"), buckets).map_err(|e| io(work, e))?);
        std::fs::create_dir_all(target_dir(work, &t.name, "items")).map_err(|e| io(work, e))?;
        state.targets.push(TargetState { table: t.clone(), prepared: false, source_rows: rows, rejected_rows: 0, conflicts: 0, buckets: Vec::new() });
    }
    std::fs::create_dir_all(work.join("rejects")).map_err(|e| io(work, e))?;
    let rejects: Vec<Mutex<std::io::BufWriter<std::fs::File>>> = plan
        .targets
        .iter()
        .map(|t| {
            let p = work.join("rejects").join(format!("{}.jsonl", crate::run_folder::encode_component(&t.name)));
            std::fs::File::create(&p).map(|f| Mutex::new(std::io::BufWriter::new(f))).map_err(|e| io(&p, e))
        })
        .collect::<Result<_, _>>()?;
    let rejected: Vec<std::sync::atomic::AtomicU64> = plan.targets.iter().map(|_| Default::default()).collect();

    let progress = Progress::new("mapping", s.quiet);
    let mut jobs = Vec::new();
    for (si, src) in plan.sources.iter().enumerate() {
        let entry = &manifest.tables[src.table];
        let rows: u64 = entry.chunks.iter().map(|c| c.rows).sum();
        let bar = progress.add_table(entry.schema.display_name(), rows, 0);
        for (ci, c) in entry.chunks.iter().enumerate() {
            if c.state == ChunkState::Complete {
                jobs.push((si, ci, bar));
            }
        }
    }
    jobs.par_iter().try_for_each(|&(si, ci, bar)| -> Result<(), ImportError> {
        let src = &plan.sources[si];
        let entry = &manifest.tables[src.table];
        let chunk = &entry.chunks[ci];
        let target = &plan.targets[src.mapper.target];
        let spill = &spills[src.mapper.target];
        let mut buf = spill.buffer();
        let mut local_rejects = Vec::new();
        let mut n = 0u64;
        reader::read_chunk(run, entry, chunk, |row, cells| {
            n += 1;
            let seq = spill::row_seq(src.table, chunk.id, row);
            match src.mapper.map_row(&entry.schema, target, cells, &s.convert) {
                Ok(fragment) => {
                    let source_key = src.mapper.source_key_text(&entry.schema, cells);
                    buf.push(&Record { seq, source_key, fragment }).map_err(|e| reader::ReadError { file: "spill".into(), reason: e.to_string() })
                }
                Err(reason) => {
                    local_rejects.push(json!({
                        "table": entry.schema.display_name(), "chunk": chunk.id, "row_in_chunk": row,
                        "key": src.mapper.source_key(&entry.schema, cells), "target": target.name, "reason": reason,
                    }));
                    Ok(())
                }
            }
        })?;
        buf.flush().map_err(|e| io(work, e))?;
        if !local_rejects.is_empty() {
            rejected[src.mapper.target].fetch_add(local_rejects.len() as u64, Ordering::Relaxed);
            let mut w = rejects[src.mapper.target].lock().unwrap_or_else(|e| e.into_inner());
            for r in &local_rejects {
                writeln!(w, "{r}").map_err(|e| io(work, e))?;
            }
        }
        progress.advance(bar, n, chunk.bytes);
        Ok(())
    })?;
    progress.finish();

    // Group every bucket of every target in parallel.
    let jobs: Vec<(usize, u32)> = spills.iter().enumerate().flat_map(|(t, sp)| (0..sp.buckets).map(move |b| (t, b))).collect();
    let grouped: Vec<(usize, group::Grouped)> = jobs
        .par_iter()
        .map(|&(t, b)| {
            let target = &plan.targets[t];
            let collect = plan.sources.iter().find(|s| s.mapper.target == t).and_then(|s| s.mapper.collect_target());
            let g = group::group_bucket(target, collect, s.on_duplicate, &target_dir(work, &target.name, "spill"), &target_dir(work, &target.name, "items"), b)
                .map_err(ImportError::Io)?;
            let _ = std::fs::remove_file(Spill::path(&target_dir(work, &target.name, "spill"), b));
            Ok((t, g))
        })
        .collect::<Result<_, ImportError>>()?;
    let (mut conflicts, mut examples) = (0u64, Vec::new());
    for (t, g) in grouped {
        let ts = &mut state.targets[t];
        conflicts += g.conflicts;
        ts.conflicts += g.conflicts;
        examples.extend(g.examples.into_iter().map(|e| format!("table {}: {e}", plan.targets[t].name)));
        if !g.rejects.is_empty() {
            ts.rejected_rows += g.rejected_rows;
            let mut w = rejects[t].lock().unwrap_or_else(|e| e.into_inner());
            for r in &g.rejects {
                writeln!(w, "{r}").map_err(|e| io(work, e))?;
            }
        }
        ts.buckets.push(g.stats);
    }
    for (t, w) in rejects.iter().enumerate() {
        w.lock().unwrap_or_else(|e| e.into_inner()).flush().map_err(|e| io(work, e))?;
        state.targets[t].rejected_rows += rejected[t].load(Ordering::Relaxed);
        state.targets[t].buckets.sort_by_key(|b| b.id);
    }
    if conflicts > 0 && s.on_duplicate == OnDuplicate::Error {
        examples.truncate(10);
        return Err(ImportError::Duplicates { count: conflicts, examples });
    }
    state.grouped = true;
    Ok(())
}

/// Runs the import; returns the report (also written to import-report.json).
pub fn run(s: &ImportSettings) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let started_at = crate::manifest::now_rfc3339();
    let run = local_run(&s.from, s.spool.as_deref(), &s.sync)?;
    let (manifest, plan, mapping_text) = load_plan(&run, s.mapping.as_deref(), &s.convert, &s.auto)?;
    for sk in &plan.skipped {
        tracing::warn!("skipping table {}: {}", sk.table, sk.reason);
    }
    if let (None, Some(why)) = (&s.work, plan.shared_part(&manifest.tables)) {
        tracing::warn!("this mapping imports, but `cdc apply` will refuse it: {why}");
    }
    let options = json!({"convert": s.convert, "auto": s.auto.table_name_template, "on_duplicate": s.on_duplicate, "bucket_rows": s.bucket_rows, "memory_mb": s.memory_mb});
    let fp = fingerprint(&manifest, &mapping_text, &options);
    let work = s.work.clone().unwrap_or_else(|| work_dir(&run));
    let mut state = match ImportState::load(&work) {
        Some(st) if st.fingerprint == fp && !s.restart => st,
        Some(old) => {
            tracing::info!("the run, mapping or options changed since the last import (or --restart): starting over");
            // The generation counts on: cdc apply compares it with the one it applied after.
            ImportState { fingerprint: fp.clone(), generation: old.generation, ..Default::default() }
        }
        None => ImportState { fingerprint: fp.clone(), ..Default::default() },
    };
    if !state.grouped {
        spill_and_group(&run, &work, &manifest, &plan, s, &mut state)?;
        state.store(&work).map_err(|e| io(&work, e))?;
    } else {
        tracing::info!("resuming: items are grouped already; {} of {} buckets written", state.targets.iter().flat_map(|t| &t.buckets).filter(|b| b.written).count(), state.targets.iter().map(|t| t.buckets.len()).sum::<usize>());
    }

    if s.dry_run {
        let tables = state.targets.iter().map(TargetReport::planned).collect();
        let report = ImportReport::build(&s.from, &started_at, started.elapsed(), &state, tables, plan.names(&manifest.tables), plan.skipped.clone());
        if s.work.is_none() {
            report.write(&run).map_err(|e| io(&run, e))?;
        }
        return Ok(report);
    }
    if state.targets.iter().flat_map(|t| &t.buckets).any(|b| !b.written) {
        // Snapshot rows are about to be written: changes apply made since may be overwritten, so
        // apply will replay every staged change from the snapshot position (it is idempotent).
        state.generation += 1;
        state.store(&work).map_err(|e| io(&work, e))?;
        if run.join("cdc").join("apply.json").exists() {
            tracing::warn!("this import writes snapshot rows over what `cdc apply` applied: the next `cdc apply` replays every staged change from the snapshot position");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| ImportError::Io(e.to_string()))?;
    let mut reports = Vec::new();
    let state = Arc::new(Mutex::new(state));
    rt.block_on(async {
        // Writes retry in `writer` (counted, paced); control-plane calls use the SDK's retries.
        let client = crate::aws::dynamo::build(&s.dynamo).await;
        let control = crate::aws::dynamo::build(&crate::aws::dynamo::DynamoOptions { sdk_retries: true, ..s.dynamo.clone() }).await;
        let n_targets = state.lock().unwrap_or_else(|e| e.into_inner()).targets.len();
        for ti in 0..n_targets {
            let (target, prepared) = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                (st.targets[ti].table.clone(), st.targets[ti].prepared)
            };
            let provisioned = tables::prepare(&control, &target, &s.tables, !prepared).await.map_err(|reason| ImportError::Table { table: target.name.clone(), reason })?;
            {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.targets[ti].prepared = true;
                st.store(&work).map_err(|e| io(&work, e))?;
            }
            let rate = match s.wcu {
                Some(w) if w <= 0.0 => None,
                Some(w) => Some(w),
                None => Some(provisioned.map(|p| p as f64).unwrap_or(ON_DEMAND_DEFAULT_WCU) * s.wcu_fraction),
            };
            let (pending, total_items, done_items): (Vec<u32>, u64, u64) = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                let b = &st.targets[ti].buckets;
                (b.iter().filter(|b| !b.written).map(|b| b.id).collect(), b.iter().map(|b| b.items).sum(), b.iter().filter(|b| b.written).map(|b| b.items).sum())
            };
            let progress = Progress::items("import", s.quiet);
            let bar = progress.add_table(target.name.clone(), total_items, done_items);
            let writer = writer::Writer {
                client: client.clone(),
                table: target.name.clone(),
                key_names: target.key_names(),
                pacer: Arc::new(crate::aws::pacing::Pacer::new(rate)),
                stats: Arc::new(writer::WriteStats::default()),
                concurrency: s.concurrency.max(1),
                deadline: None,
                cycle: false,
            };
            let t0 = Instant::now();
            tracing::info!(table = %target.name, "writing {} items in {} buckets at {}", total_items - done_items, pending.len(), rate.map(|r| format!("{r:.0} WCU/s")).unwrap_or_else(|| "no pacing".into()));
            let st2 = state.clone();
            let work2 = work.clone();
            let mut store_err = None;
            writer
                .write_buckets(target_dir(&work, &target.name, "items"), pending, &progress, bar, |bucket| {
                    let mut st = st2.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(b) = st.targets[ti].buckets.iter_mut().find(|b: &&mut BucketStats| b.id == bucket) {
                        b.written = true;
                    }
                    if let Err(e) = st.store(&work2) {
                        store_err.get_or_insert(e.to_string());
                    }
                })
                .await?;
            progress.finish();
            if let Some(e) = store_err {
                return Err(ImportError::Io(format!("{}: {e}", run.display())));
            }
            let st = state.lock().unwrap_or_else(|e| e.into_inner());
            reports.push(TargetReport::build(&st.targets[ti], &writer, rate, t0.elapsed()));
        }
        Ok::<(), ImportError>(())
    })?;
    let st = state.lock().unwrap_or_else(|e| e.into_inner());
    let report = ImportReport::build(&s.from, &started_at, started.elapsed(), &st, reports, plan.names(&manifest.tables), plan.skipped.clone());
    report.write(&run).map_err(|e| io(&run, e))?;
    Ok(report)
}
