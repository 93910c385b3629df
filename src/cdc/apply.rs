//! `cdc apply`: the staged changes, segment by segment, through the import's mapping, written to
//! DynamoDB. A record-to-record row becomes PutItem / DeleteItem (a key change deletes the old
//! item and puts the new one). A grouped row owns one part of its item (a pivoted attribute, an
//! entry of a collected map, a member of a collected string set): UpdateItem sets it, or removes
//! it and deletes the item when only its key is left (conditional writes, no read-modify-write).
//! A collected list has no stable place for a row, so it is refused. Changes to one item keep
//! their order (rounds of one write per item; puts and deletes batched 25 a call); other items go
//! in parallel at a WCU budget. The position is checkpointed after the writes it
//! covers, and every write sets a value rather than adding to one, so a replay converges.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

use super::event::Change;
use super::segment::{self, Slice};
use super::state::{segment_path, ApplyState, CaptureState};
use super::CdcError;
use super::write::{execute, Stats};
use crate::aws::pacing::Pacer;

use crate::manifest::Manifest;
use crate::value::attr::{encode_attr, item_wcu, Attr, Item};
use crate::mapping::compile::{Body, Fragment, MappingPlan, TargetTable};
use crate::mapping::dms::CollectAs;
use crate::value::Cell;

/// How often apply looks for new segments when following.
const POLL: Duration = Duration::from_millis(100);
/// How often apply (and capture) log where they stand.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ApplySettings {
    pub run: crate::sync::RunSource,
    /// How rows become items: must be the import's.
    pub transform: crate::transform::TransformSettings,
    pub dynamo: crate::aws::dynamo::DynamoOptions,
    /// Keep applying new segments as capture stages them (else stop when all are applied).
    pub follow: bool,
    /// Calls in flight (BatchWriteItem of puts and deletes, or single updates).
    pub concurrency: usize,
    /// WCU/s budget; None = unpaced.
    pub wcu: Option<f64>,
    pub quiet: bool,
}

/// What one grouped row owns in its item.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    /// A pivoted attribute.
    Attr(String),
    /// One entry of a collected map.
    Entry { map: String, entry: String },
    /// One member of a collected string set.
    Member { set: String, member: String },
}

/// One DynamoDB write derived from a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// `key` is the item's key attributes (the item holds them too): writes route by it.
    Put { table: String, key: Item, item: Item },
    Delete { table: String, key: Item },
    /// A grouped row's part of its item set.
    Set { table: String, key: Item, owned: Owned, value: Attr },
    /// A grouped row's part removed; the item goes when nothing but its key is left.
    Remove { table: String, key: Item, owned: Owned },
}

impl Write {
    pub(super) fn table(&self) -> &str {
        match self {
            Write::Put { table, .. } | Write::Delete { table, .. } | Write::Set { table, .. } | Write::Remove { table, .. } => table,
        }
    }

    /// The item this write touches, as a hash of its table and key (two items that collide are
    /// only kept in order as if they were one).
    pub(super) fn item_hash(&self, buf: &mut Vec<u8>) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let (Write::Put { key, .. } | Write::Delete { key, .. } | Write::Set { key, .. } | Write::Remove { key, .. }) = self;
        buf.clear();
        buf.extend_from_slice(self.table().as_bytes());
        buf.push(0);
        for (name, v) in key {
            buf.extend_from_slice(name.as_bytes());
            encode_attr(buf, v);
        }
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(&buf[..])
    }

    pub(super) fn cost(&self) -> f64 {
        match self {
            Write::Put { item, .. } => item_wcu(item) as f64,
            _ => 1.0,
        }
    }
}

fn key_of(t: &TargetTable, f: &Fragment) -> Item {
    let mut key = Item::new();
    key.insert(t.partition_key.name.clone(), f.pk.clone());
    if let (Some(def), Some(v)) = (&t.sort_key, &f.sk) {
        key.insert(def.name.clone(), v.clone());
    }
    key
}

/// The part of its item a grouped row's fragment owns, and its value.
fn owned(t: &TargetTable, body: &Body, collect: Option<(&str, CollectAs)>) -> Result<(Owned, Attr), String> {
    match (body, collect) {
        (Body::Pivot(name, v), _) => Ok((Owned::Attr(name.clone()), v.clone())),
        (Body::Collect(k, v), Some((attr, CollectAs::Map))) => Ok((Owned::Entry { map: attr.to_string(), entry: k.clone().unwrap_or_default() }, v.clone())),
        (Body::Collect(_, v), Some((attr, CollectAs::StringSet))) => Ok((Owned::Member { set: attr.to_string(), member: v.display() }, v.clone())),
        _ => Err(format!(
            "table {}: cdc apply cannot keep a collected list in order without reading it first; use \"as\": \"map\" or \"string-set\" for tables that change",
            t.name
        )),
    }
}

/// The writes one change makes, and why part of it was refused. An image that does not map (a
/// value DynamoDB cannot hold, a zero date under `--zero-date reject`) is refused as the import
/// refuses its row: a refused before-image still names its item by its key (deleted or
/// replaced by that key, so the change is no reject when its after-image or its delete is
/// written; a folded part needs more than the key, so there it is a reject), and a refused
/// after-image leaves none (the old item is deleted, as importing the new values would give no
/// item; that change is a reject).
pub fn writes_for(manifest: &Manifest, plan: &MappingPlan, c: &Change, convert: &crate::value::dynamo::ConvertOptions) -> (Vec<Write>, Vec<String>) {
    let mut refused = Vec::new();
    let out = match mapped_writes(manifest, plan, c, convert, &mut refused) {
        Ok(w) => w,
        Err(reason) => {
            refused.push(reason);
            Vec::new()
        }
    };
    (out, refused)
}

fn mapped_writes(manifest: &Manifest, plan: &MappingPlan, c: &Change, convert: &crate::value::dynamo::ConvertOptions, refused: &mut Vec<String>) -> Result<Vec<Write>, String> {
    let schema = &manifest.tables[c.table].schema;
    let temporal = schema.columns.iter().any(|col| col.kind.is_temporal());
    let mut out = Vec::new();
    for src in plan.sources.iter().filter(|s| s.table == c.table) {
        let t = &plan.targets[src.mapper.target];
        let collect = src.mapper.collect_target();
        let map = |img: &Option<Vec<Cell>>| -> Result<Option<Fragment>, String> {
            let Some(cells) = img else { return Ok(None) };
            if !temporal {
                return src.mapper.map_row(schema, t, cells, convert).map(Some);
            }
            // The export's --zero-date policy, as the import saw its effect in the chunks.
            let cells: Vec<Cell> = schema.columns.iter().zip(cells).map(|(col, c)| crate::value::zero_date(col, c.clone(), manifest.options.zero_date)).collect::<Result<_, _>>()?;
            src.mapper.map_row(schema, t, &cells, convert).map(Some)
        };
        let mut refuse = |r: Result<Option<Fragment>, String>| {
            r.unwrap_or_else(|reason| {
                refused.push(format!("target {}: {reason}", t.name));
                None
            })
        };
        // A before-image that does not map names its item by its key alone: a whole-item
        // target's old item is deleted by that key (none may exist: the import refused the row
        // too, unless it ran with other options), and the change is no reject, as its effect
        // is written. A key that does not convert named no item ever written. A folded
        // target's part is named by more than the key: that change stays a reject.
        let before = match map(&c.before) {
            Ok(b) => b,
            Err(reason) => match c.before.as_ref().and_then(|cells| src.mapper.map_key(schema, t, cells, convert)) {
                Some(Ok(key)) => Some(key),
                Some(Err(_)) => None,
                None => refuse(Err(reason)),
            },
        };
        let after = refuse(map(&c.after));
        let table = t.name.clone();
        match (before, after) {
            (None, None) => {}
            (Some(b), None) => out.push(match &b.body {
                Body::Item(_) => Write::Delete { table, key: key_of(t, &b) },
                body => Write::Remove { table, key: key_of(t, &b), owned: owned(t, body, collect)?.0 },
            }),
            (b, Some(a)) => {
                let key = key_of(t, &a);
                match a.body {
                    Body::Item(item) => {
                        if let Some(old) = b.map(|b| key_of(t, &b)).filter(|old| *old != key) {
                            out.push(Write::Delete { table: table.clone(), key: old });
                        }
                        out.push(Write::Put { table, key, item });
                    }
                    body => {
                        let (part, value) = owned(t, &body, collect)?;
                        if let Some(b) = b {
                            let (old, _) = owned(t, &b.body, collect)?;
                            let old_key = key_of(t, &b);
                            if old_key != key || old != part {
                                out.push(Write::Remove { table: table.clone(), key: old_key, owned: old });
                            }
                        }
                        out.push(Write::Set { table, key, owned: part, value });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A rejects-file line for a change: its binlog position, table, operation, source key, reason.
fn reject(manifest: &Manifest, c: &Change, reason: &str) -> serde_json::Value {
    let schema = &manifest.tables[c.table].schema;
    let image = c.after.as_ref().or(c.before.as_ref());
    let key: serde_json::Map<String, serde_json::Value> = schema
        .key_positions()
        .into_iter()
        .map(|i| (schema.columns[i].name.clone(), image.and_then(|cells| cells[i].text()).map(|t| serde_json::Value::String(t.into_owned())).unwrap_or_default()))
        .collect();
    serde_json::json!({"at": c.at, "table": schema.display_name(), "op": c.op, "key": key, "reason": reason})
}

/// The import must be finished first: its snapshot rows would overwrite newer changes. Returns
/// its generation.
fn check_import_done(run: &Path) -> Result<u64, CdcError> {
    let st = crate::transform::state::ImportState::load(&crate::transform::state::work_dir(run)).ok_or(CdcError::NoImport)?;
    let buckets: Vec<_> = st.targets.iter().flat_map(|t| &t.buckets).collect();
    let written = buckets.iter().filter(|b| b.written).count();
    if !st.grouped || written < buckets.len() {
        return Err(CdcError::ImportUnfinished { written, total: buckets.len() });
    }
    Ok(st.generation)
}

/// Changes applied at most per `execute`: a segment keeps whole transactions, so one can hold
/// a million changes, and their writes (items, keys) would all be in memory at once.
const APPLY_SLICE: usize = 20_000;

/// A slice's writes (by index in the slice) and the rejects-file lines of what the mapping
/// refused. Made on the segment reader's thread.
struct Prepared {
    writes: Vec<(usize, Write)>,
    rejects: Vec<serde_json::Value>,
}

fn prepare(manifest: &Manifest, plan: &MappingPlan, convert: &crate::value::dynamo::ConvertOptions, changes: &[Change]) -> Prepared {
    let mut writes = Vec::new();
    let mut rejects = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let (w, refused) = writes_for(manifest, plan, c, convert);
        writes.extend(w.into_iter().map(|w| (i, w)));
        if !refused.is_empty() {
            rejects.push(reject(manifest, c, &refused.join("; ")));
        }
    }
    Prepared { writes, rejects }
}

/// Sends a prepared slice and records the writes refused (the mapping's or DynamoDB's) in the
/// rejects file.
#[allow(clippy::too_many_arguments)]
fn apply_slice(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    pacer: &Arc<Pacer>,
    stats: &Arc<Stats>,
    concurrency: usize,
    manifest: &Manifest,
    changes: &[Change],
    prepared: Prepared,
    rejects_path: &Path,
    state: &mut ApplyState,
) -> Result<(), CdcError> {
    let Prepared { writes, mut rejects } = prepared;
    let refused = rt.block_on(execute(client, pacer, stats, writes, concurrency)).map_err(CdcError::Write)?;
    for (i, reason) in refused {
        rejects.push(reject(manifest, &changes[i], &format!("DynamoDB refused the write: {reason}")));
    }
    if !rejects.is_empty() {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(rejects_path).map_err(|e| CdcError::io(rejects_path, e))?;
        for r in &rejects {
            writeln!(f, "{r}").map_err(|e| CdcError::io(rejects_path, e))?;
        }
        f.sync_all().map_err(|e| CdcError::io(rejects_path, e))?;
        state.rejected += rejects.len() as u64;
        crate::metrics::rejected("apply", rejects.len() as u64);
        state.rejects_bytes = Some(f.metadata().map_err(|e| CdcError::io(rejects_path, e))?.len());
    }
    Ok(())
}

/// Applies staged changes until all are applied (or forever with `follow`).
pub fn run(s: &ApplySettings) -> Result<ApplyState, CdcError> {
    let (run, _lock) = s.run.local_locked("cdc apply")?;
    let generation = check_import_done(&run)?;
    let (manifest, plan, _) = crate::transform::load_plan(&run, s.transform.mapping.as_deref(), &s.transform.convert, &s.transform.auto)?;
    // Refused before anything is written: a list mapping would reject every change one by one.
    if let Some(why) = plan.shared_part(&manifest.tables).or_else(|| plan.collected_list(&manifest.tables)) {
        return Err(CdcError::Unsupported(why));
    }
    let stored = ApplyState::load(&run)?;
    let rejects_path = crate::run::paths::cdc_rejects(&run);
    // Rejects a killed apply wrote but never recorded: its rerun rejects those changes again.
    let recorded = match &stored {
        Some(st) => st.rejects_bytes.or(if st.rejected == 0 { Some(0) } else { None }),
        None => Some(0),
    };
    if let (Some(keep), Ok(meta)) = (recorded, std::fs::metadata(&rejects_path)) {
        if meta.len() > keep {
            let f = std::fs::OpenOptions::new().write(true).open(&rejects_path).map_err(|e| CdcError::io(&rejects_path, e))?;
            f.set_len(keep).and_then(|_| f.sync_all()).map_err(|e| CdcError::io(&rejects_path, e))?;
        }
    }
    let mut state = stored.unwrap_or_default();
    if state.import_generation != Some(generation) {
        if state.changes > 0 || state.segments > 0 {
            // An import wrote snapshot rows after these changes were applied: replay them all.
            tracing::warn!("the import wrote items after the last apply: replaying every staged change from the snapshot position ({} were applied before; apply is idempotent)", state.changes);
            state = ApplyState { import_generation: Some(generation), ..ApplyState::default() };
            let _ = std::fs::remove_file(&rejects_path);
            state.store(&run)?;
        }
        // Else stored with the first checkpoint (capture may not have made cdc/ yet).
        state.import_generation = Some(generation);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(CdcError::Runtime)?;
    let client = rt.block_on(crate::aws::dynamo::build(&s.dynamo));
    let pacer = Arc::new(Pacer::new(s.wcu));
    let stats = Arc::new(Stats::default());
    let mut last_log = Instant::now();
    let mut window = (state.changes, 0u64); // changes and WCU (× 1000) at the last log line
    // Catching up (not following): a bar over the changes staged when apply started.
    let progress = (!s.follow).then(|| {
        let p = crate::progress::Progress::changes("cdc apply", s.quiet);
        let staged = CaptureState::load(&run).ok().flatten().map(|c| c.changes).unwrap_or(0);
        let bar = p.add_table("staged changes".into(), staged, state.changes);
        (p, bar)
    });
    let mut records = super::state::Records::default();
    loop {
        let capture = CaptureState::load(&run)?.unwrap_or_default();
        let Some(info) = records.get(&capture, &run, state.segments + 1)? else {
            if !s.follow {
                break;
            }
            std::thread::sleep(POLL);
            continue;
        };
        let path = segment_path(&run, info.index);
        segment::verify(&path, &info.sha256)?;
        // A segment holds whole transactions, so one can hold a million changes: they are
        // read, mapped and applied in slices, the offset stored after each, so the memory stays
        // bounded and a rerun after a kill resumes at the slice.
        let (manifest, plan, convert) = (&manifest, &plan, &s.transform.convert);
        let ddl = std::thread::scope(|scope| -> Result<Option<Change>, CdcError> {
            let slices = segment::read_slices(scope, path, state.offset as usize, APPLY_SLICE, |changes| prepare(manifest, plan, convert, changes));
            for slice in slices {
                match slice? {
                    Slice::Changes { first, changes, prepared } => {
                        apply_slice(&rt, &client, &pacer, &stats, s.concurrency, manifest, &changes, prepared, &rejects_path, &mut state)?;
                        let last = changes.last().expect("slices are not empty");
                        state.last_at = Some(last.at.clone());
                        state.last_ts = Some(last.ts);
                        state.changes += changes.len() as u64;
                        crate::metrics::applied(changes.len() as u64);
                        state.offset = (first + changes.len()) as u64;
                        state.updated_at = crate::clock::now_rfc3339();
                        state.store(&run)?;
                        if let Some((p, bar)) = &progress {
                            p.advance(*bar, changes.len() as u64, 0);
                            p.set_status(format!("{} WCU sent, {} throttles", stats.wcu_milli.load(Ordering::Relaxed) / 1000, stats.throttles.load(Ordering::Relaxed)));
                        }
                    }
                    Slice::Ddl { index, change } => {
                        state.offset = index as u64;
                        state.updated_at = crate::clock::now_rfc3339();
                        state.store(&run)?;
                        return Ok(Some(change));
                    }
                }
            }
            Ok(None)
        })?;
        if let Some(c) = ddl {
            return Err(CdcError::Ddl {
                table: manifest.tables[c.table].schema.display_name(),
                at: c.at.clone(),
                statement: c.query.clone().unwrap_or_default(),
            });
        }
        state.segments += 1;
        state.offset = 0;
        state.updated_at = crate::clock::now_rfc3339();
        state.store(&run)?;
        if s.follow && last_log.elapsed() > LOG_EVERY && !s.quiet {
            let behind = capture.changes.saturating_sub(state.changes);
            let lag = state.last_ts.map(|t| crate::clock::now_unix().saturating_sub(t as u64)).unwrap_or(0);
            let secs = last_log.elapsed().as_secs_f64().max(0.001);
            let wcu = stats.wcu_milli.load(Ordering::Relaxed);
            tracing::info!(
                "applied to {}: {} changes, {:.0} changes/s, {:.0} WCU/s, {behind} changes behind, lag {lag} s, {} throttles",
                state.last_at.as_deref().unwrap_or("-"),
                state.changes,
                (state.changes - window.0) as f64 / secs,
                (wcu - window.1) as f64 / 1000.0 / secs,
                stats.throttles.load(Ordering::Relaxed)
            );
            window = (state.changes, wcu);
            last_log = Instant::now();
        }
    }
    if let Some((p, _)) = &progress {
        p.finish();
    }
    Ok(state)
}
