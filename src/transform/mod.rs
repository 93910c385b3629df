//! Stage two, first half: a run folder's chunks become grouped items on disk, the same for every
//! command that needs them (import writes them, estimate prices them, verify compares them,
//! bench replays them, and a later S3-import path will upload them). `reader` reads chunk files
//! back into typed cells (each checked against the manifest's SHA-256); the mapping
//! (`crate::mapping`) turns rows into fragments; `spill` scatters them into buckets by item key;
//! `group` folds each bucket into items (in parallel, each within its share of `--memory-mb`),
//! finding duplicates, collisions and items over 400 KB before anything is written; `state` is
//! the checkpoint (grouped buckets, and which the import has written), so a rerun resumes.

pub mod group;
pub mod reader;
pub mod source_rows;
pub mod spill;
pub mod state;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rayon::prelude::*;
use serde_json::json;

use crate::manifest::{ChunkState, Manifest};
use crate::mapping::compile::{AutoOptions, MappingPlan};
use crate::mapping::dms::TableMapping;
use crate::progress::Progress;
use crate::value::dynamo::ConvertOptions;
use group::OnDuplicate;
use spill::{Record, Spill};
use state::{fingerprint, target_dir, ImportState, TargetState};

/// Upper bound on buckets per target table: the count grows with the data (a bucket per share of
/// the grouping memory), this only keeps a file count sane; a bucket that comes out larger than
/// its memory is split when it is grouped.
const MAX_BUCKETS: u64 = 1 << 20;
/// In-memory size of grouped rows relative to their chunk files (measured on Parquet chunks).
const MEMORY_EXPANSION: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{run}: no manifest.json (is this a run folder written by export?)")]
    NoManifest { run: PathBuf },
    #[error("{run}: the export is not complete; rerun the export to finish it")]
    Incomplete { run: PathBuf },
    #[error("mapping {path}: {source}")]
    MappingFile { path: PathBuf, source: crate::mapping::dms::MappingError },
    #[error(transparent)]
    Mapping(#[from] crate::mapping::dms::MappingError),
    #[error(transparent)]
    Read(#[from] reader::ReadError),
    #[error("{path}: {source}{}", crate::run::disk_full_hint(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("table {table}, bucket {bucket}: {reason}")]
    Group { table: String, bucket: u32, reason: String },
    #[error("{count} rows map to a DynamoDB key (or pivoted attribute) already taken; nothing was written. Examples:\n  {}\nFix the mapping's keys, or pass --on-duplicate last-wins to keep the last row in source key order.", examples.join("\n  "))]
    Duplicates { count: u64, examples: Vec<String> },
}

fn io(path: &Path, source: std::io::Error) -> TransformError {
    TransformError::Io { path: path.to_path_buf(), source }
}

/// How rows become items.
#[derive(Debug, Clone)]
pub struct TransformSettings {
    pub mapping: Option<PathBuf>,
    pub convert: ConvertOptions,
    pub auto: AutoOptions,
    pub on_duplicate: OnDuplicate,
    /// Memory for grouping, MiB (buckets are sized so that the threads' buckets fit).
    pub memory_mb: u64,
    /// Source rows per bucket at most: the resume granularity.
    pub bucket_rows: u64,
    /// Group again even when the checkpoint says the same run was grouped already.
    pub restart: bool,
    pub quiet: bool,
}

/// A transformed run: its manifest, the mapping plan, and the checkpoint naming the item files.
pub struct Transformed {
    pub manifest: Manifest,
    pub plan: MappingPlan,
    pub state: ImportState,
}

/// Groups the run's rows into item files under `work` (or finds them grouped by an earlier run
/// with the same run, mapping and options), and returns the checkpoint.
pub fn transform(run: &Path, work: &Path, s: &TransformSettings) -> Result<Transformed, TransformError> {
    let (manifest, plan, mapping_text) = load_plan(run, s.mapping.as_deref(), &s.convert, &s.auto)?;
    let options = json!({"convert": s.convert, "auto": s.auto.table_name_template, "on_duplicate": s.on_duplicate, "bucket_rows": s.bucket_rows, "memory_mb": s.memory_mb});
    let fp = fingerprint(&manifest, &mapping_text, &options);
    let mut state = match ImportState::load(work) {
        Some(st) if st.fingerprint == fp && !s.restart => st,
        Some(old) => {
            tracing::info!("the run, mapping or options changed since the last grouping (or --restart): starting over");
            // The generation counts on: cdc apply compares it with the one it applied after.
            ImportState { fingerprint: fp.clone(), generation: old.generation, ..Default::default() }
        }
        None => ImportState { fingerprint: fp.clone(), ..Default::default() },
    };
    if !state.grouped {
        spill_and_group(run, work, &manifest, &plan, s, &mut state)?;
        state.store(work).map_err(|e| io(work, e))?;
    } else {
        tracing::info!(
            "resuming: items are grouped already; {} of {} buckets written",
            state.targets.iter().flat_map(|t| &t.buckets).filter(|b| b.written).count(),
            state.targets.iter().map(|t| t.buckets.len()).sum::<usize>()
        );
    }
    Ok(Transformed { manifest, plan, state })
}

/// Loads a complete manifest and builds the mapping plan from it.
pub fn load_plan(run: &Path, mapping: Option<&Path>, convert: &ConvertOptions, auto: &AutoOptions) -> Result<(Manifest, MappingPlan, String), TransformError> {
    let manifest = Manifest::load(run)?.ok_or_else(|| TransformError::NoManifest { run: run.to_path_buf() })?;
    if !manifest.complete {
        return Err(TransformError::Incomplete { run: run.to_path_buf() });
    }
    let text = match mapping {
        Some(p) => std::fs::read_to_string(p).map_err(|e| io(p, e))?,
        None => String::new(),
    };
    let parsed = match mapping {
        Some(p) => Some(TableMapping::parse(&text).map_err(|source| TransformError::MappingFile { path: p.to_path_buf(), source })?),
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
    let per_bucket = bucket_budget(memory_mb);
    let by_memory = (bytes * MEMORY_EXPANSION).div_ceil(per_bucket.max(1));
    let by_rows = rows.div_ceil(bucket_rows.max(1));
    (by_memory.max(by_rows).clamp(1, MAX_BUCKETS) as u32, rows)
}

/// The memory one bucket may take while it is grouped: the budget shared by the threads.
fn bucket_budget(memory_mb: u64) -> u64 {
    (memory_mb.max(16) << 20) / rayon::current_num_threads().max(1) as u64
}

/// Reads every chunk, maps its rows and spills them; then groups every bucket into items.
fn spill_and_group(run: &Path, work: &Path, manifest: &Manifest, plan: &MappingPlan, s: &TransformSettings, state: &mut ImportState) -> Result<(), TransformError> {
    // Rejects count in the metrics for the import, not for a dry run (estimate, verify, bench).
    let counted = work == crate::run::paths::import_dir(run);
    for what in ["spill", "items", "rejects"] {
        let _ = std::fs::remove_dir_all(work.join(what));
    }
    let mut spills = Vec::new();
    state.targets.clear();
    for (i, t) in plan.targets.iter().enumerate() {
        let (buckets, rows) = bucket_count(manifest, plan, i, s.memory_mb, s.bucket_rows);
        spills.push(Spill::create(target_dir(work, &t.name, "spill"), buckets).map_err(|e| io(work, e))?);
        std::fs::create_dir_all(target_dir(work, &t.name, "items")).map_err(|e| io(work, e))?;
        state.targets.push(TargetState { table: t.clone(), prepared: false, source_rows: rows, rejected_rows: 0, conflicts: 0, buckets: Vec::new(), s3_import: None, written_to: None });
    }
    std::fs::create_dir_all(work.join("rejects")).map_err(|e| io(work, e))?;
    let rejects: Vec<Mutex<std::io::BufWriter<std::fs::File>>> = plan
        .targets
        .iter()
        .map(|t| {
            let p = work.join("rejects").join(format!("{}.jsonl", crate::run::encode_component(&t.name)));
            std::fs::File::create(&p).map(|f| Mutex::new(std::io::BufWriter::new(f))).map_err(|e| io(&p, e))
        })
        .collect::<Result<_, _>>()?;
    let rejected: Vec<std::sync::atomic::AtomicU64> = plan.targets.iter().map(|_| Default::default()).collect();

    let started = std::time::Instant::now();
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
    jobs.par_iter().try_for_each(|&(si, ci, bar)| -> Result<(), TransformError> {
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
                    buf.push(&Record { seq, fragment }).map_err(|e| reader::ReadError {
                        file: target_dir(work, &target.name, "spill").display().to_string(),
                        reason: format!("spilling the rows of table {} for target {}: {e}{}", entry.schema.display_name(), target.name, crate::run::disk_full_hint(&e)),
                    })
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
            if counted {
                crate::metrics::rejected("import", local_rejects.len() as u64);
            }
            let mut w = rejects[src.mapper.target].lock().unwrap_or_else(|e| e.into_inner());
            for r in &local_rejects {
                writeln!(w, "{r}").map_err(|e| io(work, e))?;
            }
        }
        progress.advance(bar, n, chunk.bytes);
        Ok(())
    })?;
    progress.finish();
    tracing::debug!("read, mapped and spilled in {:.2} s", started.elapsed().as_secs_f64());
    let started = std::time::Instant::now();

    // Group every bucket of every target in parallel.
    let jobs: Vec<(usize, u32)> = spills.iter().enumerate().flat_map(|(t, sp)| (0..sp.buckets).map(move |b| (t, b))).collect();
    let grouped: Vec<(usize, group::Grouped)> = jobs
        .par_iter()
        .map(|&(t, b)| {
            let target = &plan.targets[t];
            let collect = plan.sources.iter().find(|s| s.mapper.target == t).and_then(|s| s.mapper.collect_target());
            let g = group::group_bucket(target, collect, s.on_duplicate, &target_dir(work, &target.name, "spill"), &target_dir(work, &target.name, "items"), b, bucket_budget(s.memory_mb))
                .map_err(|reason| TransformError::Group { table: target.name.clone(), bucket: b, reason })?;
            let _ = std::fs::remove_file(Spill::path(&target_dir(work, &target.name, "spill"), b));
            Ok((t, g))
        })
        .collect::<Result<_, TransformError>>()?;
    tracing::debug!("grouped in {:.2} s", started.elapsed().as_secs_f64());
    // The rows the examples and rejects name, read back from their chunks.
    let named = grouped.iter().flat_map(|(_, g)| g.examples.iter().flat_map(|c| c.rows()).chain(g.oversize.iter().flat_map(|o| o.source_rows.iter().copied())));
    let found = source_rows::resolve(run, manifest, plan, named)?;
    let row = |seq: u128| source_rows::show(&found, seq);
    let (mut conflicts, mut examples) = (0u64, Vec::new());
    for (t, g) in grouped {
        let ts = &mut state.targets[t];
        conflicts += g.conflicts;
        ts.conflicts += g.conflicts;
        examples.extend(g.examples.iter().map(|e| format!("table {}: {}", plan.targets[t].name, e.render(&row))));
        if !g.oversize.is_empty() {
            ts.rejected_rows += g.rejected_rows;
            let mut w = rejects[t].lock().unwrap_or_else(|e| e.into_inner());
            for o in &g.oversize {
                let r = json!({
                    "table": plan.targets[t].name, "key": o.key, "source_rows": o.source_rows.iter().map(|&s| row(s)).collect::<Vec<_>>(),
                    "rows": o.rows, "reason": o.reason(),
                });
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
        return Err(TransformError::Duplicates { count: conflicts, examples });
    }
    state.grouped = true;
    Ok(())
}

