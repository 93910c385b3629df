//! Stage two, second half: the items `transform` grouped from a run folder (local, or s3://…
//! downloaded and verified first) are written to DynamoDB. `tables` prepares the target tables;
//! `writer` sends BatchWriteItem calls paced by `aws::pacing` and retried by `aws::retry`, and
//! marks each bucket written in the transform's checkpoint so a rerun resumes; `s3_import` is
//! the other road (`--via s3-import`: DynamoDB's Import from S3 loads a new table from the same
//! items); `report` writes import-report.json.

pub mod report;
pub mod s3_import;
pub mod tables;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;


use serde::{Deserialize, Serialize};

use crate::progress::Progress;
use crate::transform::group::BucketStats;
use crate::transform::state::{target_dir, work_dir};
use crate::transform::{TransformSettings, Transformed};
use report::{ImportReport, TargetReport};

/// How the items reach DynamoDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// BatchWriteItem at a target WCU rate.
    #[default]
    Writes,
    /// DynamoDB's Import from S3 (new tables only, no write capacity used).
    S3Import,
}

crate::choices!(Via { "writes" => Via::Writes, "s3-import" => Via::S3Import });

/// New on-demand tables sustain up to 4,000 WCU/s at first; `--wcu-fraction` applies to this.
pub const ON_DEMAND_DEFAULT_WCU: f64 = 4000.0;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Mapping(#[from] crate::mapping::dms::MappingError),
    #[error("{path}: {source}{}", crate::run::disk_full_hint(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error(transparent)]
    Transform(#[from] crate::transform::TransformError),
    #[error(transparent)]
    Write(#[from] writer::WriteError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Lock(#[from] crate::run::lock::LockError),
}

fn io(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io { path: path.to_path_buf(), source }
}

#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Where the run is.
    pub run: crate::sync::RunSource,
    /// How rows become items (mapping, conversions, grouping memory).
    pub transform: TransformSettings,
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
    /// `--via s3-import` and its options; None: paced writes.
    pub s3_import: Option<s3_import::S3ImportOptions>,
}

/// Binds the checkpoint to the tables it wrote: a target whose recorded table is not the one at
/// this endpoint now (another endpoint, account or region, or dropped and created again), or
/// that no longer exists, is imported afresh, prepared as a new import (`--table-prep`).
async fn check_targets(client: &aws_sdk_dynamodb::Client, endpoint: Option<&str>, state: &mut crate::transform::state::ImportState) -> Result<(), (String, String)> {
    for t in state.targets.iter_mut().filter(|t| t.started()) {
        let now = tables::identity(client, &t.table.name, endpoint).await.map_err(|r| (t.table.name.clone(), r))?;
        let finished_s3 = t.s3_import.is_some() && t.buckets.iter().all(|b| b.written);
        let why = match (&t.written_to, &now) {
            // An Import from S3 not finished (running, failed, its answer lost) is followed by
            // its ClientToken (`s3_import`), which knows its table: not redone here.
            (None, _) if t.s3_import.is_some() && !finished_s3 => continue,
            (_, None) => "it does not exist here".to_string(),
            (Some(was), Some(now)) if was.known() && now.known() && was.same_table(now) => continue,
            (Some(was), Some(now)) if was.known() && now.known() => format!("the checkpoint was written to {}, this is {}", was.display(), now.display()),
            // Imported from S3 into a table of this name: it cannot be imported into it again.
            (_, Some(now)) if finished_s3 => {
                tracing::warn!(table = %t.table.name, "the checkpoint does not record which table its Import from S3 created; taking {} as that table (verify it)", now.display());
                t.written_to = Some(now.clone());
                continue;
            }
            (_, Some(_)) => "the checkpoint does not record which table it wrote to (written by an earlier version, or the endpoint names no table ARN)".to_string(),
        };
        tracing::warn!(table = %t.table.name, "{why}: importing this table afresh");
        t.forget_writes();
    }
    Ok(())
}

/// Runs the import; returns the report (also written to import-report.json).
pub fn run(s: &ImportSettings) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let (run, _lock) = s.run.local_locked("import")?;
    let work = work_dir(&run);
    let Transformed { manifest, plan, mut state } = crate::transform::transform(&run, &work, &s.transform)?;
    for sk in &plan.skipped {
        tracing::warn!("skipping table {}: {}", sk.table, sk.reason);
    }
    if let Some(why) = plan.shared_part(&manifest.tables) {
        tracing::warn!("this mapping imports, but `cdc apply` will refuse it: {why}");
    }

    if s.dry_run {
        let mut tables: Vec<TargetReport> = state.targets.iter().map(TargetReport::planned).collect();
        if let Some(o) = &s.s3_import {
            // The import files are prepared (not uploaded, no ImportTable): their objects and size.
            for (t, r) in state.targets.iter().zip(tables.iter_mut()) {
                let (w, _) = s3_import::prepare_files(&work, t, o.compression)?;
                r.s3_import = Some(s3_import::ImportRecord { source: format!("{}/", s3_import::table_location(&o.prefix, &t.table.name)), objects: w.files.len() as u64, items: w.items, bytes: w.bytes, ..Default::default() });
            }
        }
        let report = ImportReport::build(&s.run.from, &started_at, started.elapsed(), &state, tables, plan.names(&manifest.tables), plan.skipped.clone());
        report.write(&run).map_err(|e| io(&run, e))?;
        return Ok(report);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ImportError::Runtime)?;
    let endpoint = s.dynamo.endpoint.clone().or_else(|| ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"].iter().find_map(|k| std::env::var(k).ok()));
    let control = rt.block_on(crate::aws::dynamo::build(&crate::aws::dynamo::DynamoOptions { sdk_retries: true, ..s.dynamo.clone() }));
    rt.block_on(check_targets(&control, endpoint.as_deref(), &mut state)).map_err(|(table, reason)| ImportError::Table { table, reason })?;
    state.store(&work).map_err(|e| io(&work, e))?;
    if state.targets.iter().flat_map(|t| &t.buckets).any(|b| !b.written) {
        // Snapshot rows are about to be written: changes apply made since may be overwritten, so
        // apply will replay every staged change from the snapshot position (it is idempotent).
        state.generation += 1;
        state.store(&work).map_err(|e| io(&work, e))?;
        if crate::run::paths::apply_state(&run).exists() {
            tracing::warn!("this import writes snapshot rows over what `cdc apply` applied: the next `cdc apply` replays every staged change from the snapshot position");
        }
    }
    let mut reports = Vec::new();
    let state = Arc::new(Mutex::new(state));
    rt.block_on(async {
        // Writes retry in `writer` (counted, paced); control-plane calls use the SDK's retries.
        let client = crate::aws::dynamo::build(&s.dynamo).await;
        let n_targets = state.lock().unwrap_or_else(|e| e.into_inner()).targets.len();
        for ti in 0..n_targets {
            let (target, prepared, done) = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                (st.targets[ti].table.clone(), st.targets[ti].prepared, st.targets[ti].buckets.iter().all(|b| b.written))
            };
            if let Some(o) = &s.s3_import {
                if done {
                    tracing::info!(table = %target.name, "imported already: nothing to do");
                    let st = state.lock().unwrap_or_else(|e| e.into_inner());
                    reports.push(TargetReport { s3_import: st.targets[ti].s3_import.clone(), ..TargetReport::planned(&st.targets[ti]) });
                } else {
                    reports.push(s3_import::import_target(&control, &s.run.sync, o, &s.tables, &work, ti, &state, s.quiet).await?);
                    let written_to = tables::identity(&control, &target.name, endpoint.as_deref()).await.map_err(|reason| ImportError::Table { table: target.name.clone(), reason })?;
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    st.targets[ti].written_to = written_to;
                    st.store(&work).map_err(|e| io(&work, e))?;
                }
                continue;
            }
            let provisioned = tables::prepare(&control, &target, &s.tables, !prepared).await.map_err(|reason| ImportError::Table { table: target.name.clone(), reason })?;
            let written_to = tables::identity(&control, &target.name, endpoint.as_deref()).await.map_err(|reason| ImportError::Table { table: target.name.clone(), reason })?;
            {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.targets[ti].prepared = true;
                st.targets[ti].written_to = written_to;
                st.store(&work).map_err(|e| io(&work, e))?;
            }
            let rate = match s.wcu {
                Some(w) if w <= 0.0 => None,
                Some(w) => Some(w),
                None => Some(provisioned.map(|p| p as f64).unwrap_or(ON_DEMAND_DEFAULT_WCU) * s.wcu_fraction),
            };
            let (pending, total_items, done_items): (Vec<(u32, u32)>, u64, u64) = {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                let b = &st.targets[ti].buckets;
                // The largest buckets first: a bucket holding a hot partition key is the long pole,
                // and its key's lane then runs beside the other buckets instead of after them.
                let mut pending: Vec<&BucketStats> = b.iter().filter(|b| !b.written).collect();
                pending.sort_by_key(|b| std::cmp::Reverse(b.items));
                (pending.iter().map(|b| (b.id, b.batches_written)).collect(), b.iter().map(|b| b.items).sum(), b.iter().filter(|b| b.written).map(|b| b.items).sum())
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
            let (t0, cpu0) = (Instant::now(), report::process_cpu_seconds());
            tracing::info!(table = %target.name, "writing {} items in {} buckets at {}", total_items - done_items, pending.len(), rate.map(|r| format!("{r:.0} WCU/s")).unwrap_or_else(|| "no pacing".into()));
            let st2 = state.clone();
            let work2 = work.clone();
            let mut store_err = None;
            writer
                .write_buckets(target_dir(&work, &target.name, "items"), pending, &progress, bar, |event| {
                    let mut st = st2.lock().unwrap_or_else(|e| e.into_inner());
                    let (id, done, batches) = match event {
                        writer::BucketEvent::Done(id) => (id, true, 0),
                        writer::BucketEvent::Partial { bucket, batches } => (bucket, false, batches),
                    };
                    if let Some(b) = st.targets[ti].buckets.iter_mut().find(|b: &&mut BucketStats| b.id == id) {
                        b.written |= done;
                        b.batches_written = if done { 0 } else { batches };
                    }
                    if let Err(e) = st.store(&work2) {
                        store_err.get_or_insert(e);
                    }
                })
                .await?;
            progress.finish();
            if let Some(e) = store_err {
                return Err(io(&work, e));
            }
            let st = state.lock().unwrap_or_else(|e| e.into_inner());
            reports.push(TargetReport::build(&st.targets[ti], &writer, rate, t0.elapsed(), report::process_cpu_seconds() - cpu0));
        }
        Ok::<(), ImportError>(())
    })?;
    let st = state.lock().unwrap_or_else(|e| e.into_inner());
    let report = ImportReport::build(&s.run.from, &started_at, started.elapsed(), &st, reports, plan.names(&manifest.tables), plan.skipped.clone());
    report.write(&run).map_err(|e| io(&run, e))?;
    Ok(report)
}
