//! `cdc apply`: the staged changes, segment by segment, through the import's mapping, written to
//! DynamoDB. A record-to-record row becomes PutItem / DeleteItem (a key change deletes the old
//! item and puts the new one). A grouped row owns one part of its item (a pivoted attribute, an
//! entry of a collected map, a member of a collected string set): UpdateItem sets it, or removes
//! it and deletes the item when only its key is left (conditional writes, no read-modify-write).
//! A collected list has no stable place for a row, so it is refused. Changes to one item keep
//! their order (rounds of one write per item; puts and deletes batched 25 a call); other items go
//! in parallel at a WCU budget. The position is checkpointed after the writes it
//! covers, and every write sets a value rather than adding to one, so a replay converges.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::event::Change;
use super::segment::{self, Slice};
use super::state::{segment_path, ApplyState, CaptureState};
use super::CdcError;
use crate::aws::retry::{self, Backoff, Failed, Failure};
use crate::aws::dynamo::{describe, item_to_sdk, to_sdk};
use crate::aws::pacing::Pacer;
use crate::import::writer::MAX_BATCH_ITEMS;

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
    fn table(&self) -> &str {
        match self {
            Write::Put { table, .. } | Write::Delete { table, .. } | Write::Set { table, .. } | Write::Remove { table, .. } => table,
        }
    }

    /// The item this write touches, as a hash of its table and key (two items that collide are
    /// only kept in order as if they were one).
    fn item_hash(&self, buf: &mut Vec<u8>) -> u64 {
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

    fn cost(&self) -> f64 {
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
/// refuses its row: a refused before-image had no item, and a refused after-image leaves none
/// (the old item is deleted, as importing the new values would give no item).
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
        let (before, after) = (refuse(map(&c.before)), refuse(map(&c.after)));
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

#[derive(Default)]
struct Stats {
    writes: AtomicU64,
    /// WCU DynamoDB reports consumed by the writes (our estimate where it reports none), × 1000.
    wcu_milli: AtomicU64,
    throttles: AtomicU64,
    retries: AtomicU64,
}

/// The capacity an answer reports consumed.
trait Consumed {
    fn consumed(&self) -> Option<f64>;
}

macro_rules! consumed_single {
    ($($t:ty),*) => {$(
        impl Consumed for $t {
            fn consumed(&self) -> Option<f64> {
                self.consumed_capacity().and_then(|c| c.capacity_units())
            }
        }
    )*};
}
consumed_single!(
    aws_sdk_dynamodb::operation::put_item::PutItemOutput,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemOutput,
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput
);

impl Consumed for aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput {
    fn consumed(&self) -> Option<f64> {
        let c = self.consumed_capacity();
        (!c.is_empty()).then(|| c.iter().filter_map(|c| c.capacity_units()).sum())
    }
}

type CallError<E> = Failed<SdkError<E, HttpResponse>>;

/// Sends one call through the retry layer with `estimate` WCU reserved first; once answered,
/// the pacer is charged what DynamoDB reports consumed (an update of a large item costs its
/// size, not the one unit reserved for it).
async fn paced<T, E, Fut>(pacer: &Pacer, stats: &Stats, estimate: f64, mut call: impl FnMut() -> Fut) -> Result<T, CallError<E>>
where
    T: Consumed,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    let mut backoff = Backoff::new(retry::ITEMS);
    let on_failure = |f: Failure| {
        stats.retries.fetch_add(1, Ordering::Relaxed);
        if f.throttle() {
            stats.throttles.fetch_add(1, Ordering::Relaxed);
            pacer.throttled();
        }
    };
    let out = retry::send(&mut backoff, on_failure, || {
        let fut = call();
        async move {
            pacer.acquire(estimate).await;
            fut.await
        }
    })
    .await?;
    let used = out.consumed().unwrap_or(estimate);
    pacer.charge(used - estimate);
    pacer.accepted(used);
    stats.writes.fetch_add(1, Ordering::Relaxed);
    stats.wcu_milli.fetch_add((used * 1000.0).round() as u64, Ordering::Relaxed);
    Ok(out)
}

/// A call's failure in words, with why the retry layer stopped.
fn failed<E>(what: &str, f: &CallError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match f.gave_up {
        retry::GaveUp::Fatal => describe(what, &f.error),
        ref g => format!("{} ({g})", describe(what, &f.error)),
    }
}

/// An UpdateItem on `key` with its expression and placeholder names and values.
fn update_item(client: &Client, table: &str, key: &std::collections::HashMap<String, AttributeValue>, expr: &str, names: &[(&str, &str)], values: &[(&str, AttributeValue)]) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let mut u = client.update_item().table_name(table).set_key(Some(key.clone())).update_expression(expr).return_consumed_capacity(ReturnConsumedCapacity::Total);
    for (n, v) in names {
        u = u.expression_attribute_names(*n, *v);
    }
    for (n, v) in values {
        u = u.expression_attribute_values(*n, v.clone());
    }
    u
}

const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

/// Why a write did not happen.
#[derive(Debug)]
enum SendError {
    /// DynamoDB refuses this write for good (a ValidationException: an item over 400 KB after
    /// the update, a value it cannot store): the change goes to the rejects, apply goes on.
    Refused(String),
    /// Anything else stops apply (retries spent, access denied, a missing table).
    Abort(String),
}

fn send_error<E>(what: &str, f: &CallError<E>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = failed(what, f);
    if f.gave_up == retry::GaveUp::Fatal && f.error.code() == Some("ValidationException") {
        SendError::Refused(text)
    } else {
        SendError::Abort(text)
    }
}

async fn send(client: &Client, pacer: &Pacer, stats: &Stats, w: &Write) -> Result<(), SendError> {
    let cost = w.cost();
    let total = ReturnConsumedCapacity::Total;
    match w {
        Write::Put { table, item, .. } => {
            let sdk = item_to_sdk(item);
            paced(pacer, stats, cost, || client.put_item().table_name(table).set_item(Some(sdk.clone())).return_consumed_capacity(total.clone()).send())
                .await
                .map_err(|e| send_error(&format!("PutItem {table}"), &e))?;
        }
        Write::Delete { table, key } => {
            let sdk = item_to_sdk(key);
            paced(pacer, stats, cost, || client.delete_item().table_name(table).set_key(Some(sdk.clone())).return_consumed_capacity(total.clone()).send())
                .await
                .map_err(|e| send_error(&format!("DeleteItem {table}"), &e))?;
        }
        Write::Set { table, key, owned, value } => {
            let sdk = item_to_sdk(key);
            let update = |expr: &str, names: &[(&str, &str)], values: &[(&str, AttributeValue)]| update_item(client, table, &sdk, expr, names, values);
            let (expr, names, values) = match owned {
                Owned::Attr(a) => ("SET #a = :v", vec![("#a", a.as_str())], vec![(":v", to_sdk(value))]),
                Owned::Entry { map, entry } => {
                    // The map must exist before an entry can be set in it: two idempotent writes.
                    let empty = AttributeValue::M(Default::default());
                    paced(pacer, stats, cost, || update("SET #m = if_not_exists(#m, :e)", &[("#m", map)], &[(":e", empty.clone())]).send())
                        .await
                        .map_err(|e| send_error(&format!("UpdateItem {table}"), &e))?;
                    ("SET #m.#e = :v", vec![("#m", map.as_str()), ("#e", entry.as_str())], vec![(":v", to_sdk(value))])
                }
                Owned::Member { set, member } => ("ADD #s :v", vec![("#s", set.as_str())], vec![(":v", AttributeValue::Ss(vec![member.clone()]))]),
            };
            paced(pacer, stats, cost, || update(expr, &names, &values).send()).await.map_err(|e| send_error(&format!("UpdateItem {table}"), &e))?;
        }
        Write::Remove { table, key, owned } => {
            let sdk = item_to_sdk(key);
            let pk = key.keys().next().cloned().unwrap_or_default();
            let (expr, top, mut names, values) = match owned {
                Owned::Attr(a) => ("REMOVE #a", a, vec![("#a", a.as_str())], vec![]),
                Owned::Entry { map, entry } => ("REMOVE #a.#e", map, vec![("#a", map.as_str()), ("#e", entry.as_str())], vec![]),
                Owned::Member { set, member } => ("DELETE #a :v", set, vec![("#a", set.as_str())], vec![(":v", AttributeValue::Ss(vec![member.clone()]))]),
            };
            names.push(("#k", pk.as_str()));
            let removed = paced(pacer, stats, cost, || {
                update_item(client, table, &sdk, expr, &names, &values).condition_expression("attribute_exists(#k)").return_values(ReturnValue::AllNew).send()
            })
            .await;
            let attrs = match removed {
                Ok(out) => out.attributes.unwrap_or_default(),
                Err(e) if e.error.code() == Some(CONDITION_FAILED) => return Ok(()), // no such item
                Err(e) => return Err(send_error(&format!("UpdateItem {table}"), &e)),
            };
            // What is left of the part's attribute: an empty map counts as gone.
            let part_left = match attrs.get(top.as_str()) {
                Some(AttributeValue::M(m)) => !m.is_empty(),
                Some(_) => true,
                None => false,
            };
            let others = attrs.len() - key.len().min(attrs.len()) - usize::from(attrs.contains_key(top.as_str()));
            if !part_left && others == 0 {
                // Only the key is left: the item's last row went. Delete it unless a row came back.
                let gone = paced(pacer, stats, 1.0, || {
                    client
                        .delete_item()
                        .table_name(table)
                        .set_key(Some(sdk.clone()))
                        .condition_expression("attribute_not_exists(#a) OR size(#a) = :zero")
                        .expression_attribute_names("#a", top)
                        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                        .return_consumed_capacity(total.clone())
                        .send()
                })
                .await;
                match gone {
                    Ok(_) => {}
                    Err(e) if e.error.code() == Some(CONDITION_FAILED) => {}
                    Err(e) => return Err(send_error(&format!("DeleteItem {table}"), &e)),
                }
            }
        }
    }
    Ok(())
}

/// Runs the writes in rounds: round k holds the k-th write of every item, so a round never
/// touches an item twice and rounds keep each item's order. Within a round, puts and deletes go
/// in BatchWriteItem calls of 25, updates one by one, `in_flight` calls at a time. Each write
/// carries the index of its change; the writes DynamoDB refused come back with it.
async fn execute(client: &Client, pacer: &Arc<Pacer>, stats: &Arc<Stats>, writes: Vec<(usize, Write)>, in_flight: usize) -> Result<Vec<(usize, String)>, String> {
    use futures::StreamExt;
    // The k-th write of an item goes in round k.
    let mut rounds: Vec<Vec<(usize, Write)>> = Vec::new();
    let mut writes_of: std::collections::HashMap<u64, usize> = std::collections::HashMap::with_capacity(writes.len());
    let mut buf = Vec::new();
    for w in writes {
        let n = writes_of.entry(w.1.item_hash(&mut buf)).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(w);
        *n += 1;
    }
    let mut refused = Vec::new();
    for round in rounds {
        // Writes are moved, never cloned: a round can hold a write for every item changed.
        let mut single = Vec::new();
        let mut by_table: std::collections::BTreeMap<String, Vec<(usize, Write)>> = Default::default();
        for w in round {
            if matches!(w.1, Write::Put { .. } | Write::Delete { .. }) {
                match by_table.get_mut(w.1.table()) {
                    Some(ws) => ws.push(w),
                    None => drop(by_table.insert(w.1.table().to_string(), vec![w])),
                }
            } else {
                single.push(w);
            }
        }
        let mut batches: Vec<Vec<(usize, Write)>> = Vec::new();
        for ws in by_table.into_values() {
            let mut ws = ws.into_iter().peekable();
            while ws.peek().is_some() {
                batches.push(ws.by_ref().take(MAX_BATCH_ITEMS).collect());
            }
        }
        // Each call is a task of its own, so building, signing and answering calls spread over
        // the runtime's threads; the guard stops the calls still running when apply gives up.
        let calls = batches
            .into_iter()
            .map(|b| {
                let (client, pacer, stats) = (client.clone(), pacer.clone(), stats.clone());
                Task::spawn(async move { send_batch(&client, &pacer, &stats, b).await })
            })
            .chain(single.into_iter().map(|(at, w)| {
                let (client, pacer, stats) = (client.clone(), pacer.clone(), stats.clone());
                Task::spawn(async move {
                    match send(&client, &pacer, &stats, &w).await {
                        Ok(()) => Ok(vec![]),
                        Err(SendError::Refused(r)) => Ok(vec![(at, r)]),
                        Err(SendError::Abort(r)) => Err(r),
                    }
                })
            }));
        let mut running = futures::stream::iter(calls).buffer_unordered(in_flight.max(1));
        while let Some(r) = running.next().await {
            refused.extend(r?);
        }
    }
    Ok(refused)
}

/// A spawned call, stopped when dropped before it is answered (apply gave up on another call).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(f: impl Future<Output = T> + Send + 'static) -> Self {
        Task(tokio::spawn(f))
    }
}

impl<T> Future for Task<Result<T, String>> {
    type Output = Result<T, String>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| r.unwrap_or_else(|e| Err(format!("a write task ended: {e}"))))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Puts and deletes of distinct items in one BatchWriteItem, unprocessed ones (matched by key)
/// sent again. A batch DynamoDB refuses is sent again write by write, to refuse only the writes
/// at fault.
async fn send_batch(client: &Client, pacer: &Pacer, stats: &Stats, batch: Vec<(usize, Write)>) -> Result<Vec<(usize, String)>, String> {
    use crate::aws::wire::{self, Request};
    let table = batch[0].1.table().to_string();
    let key_names: Vec<String> = match &batch[0].1 {
        Write::Put { key, .. } | Write::Delete { key, .. } => key.keys().cloned().collect(),
        _ => unreachable!("only puts and deletes are batched"),
    };
    // Each write as its request, its key and its cost.
    let mut pending: Vec<(Request, &Item, f64)> = batch
        .iter()
        .map(|(_, w)| match w {
            Write::Put { item, key, .. } => (Request::Put(item), key, w.cost()),
            Write::Delete { key, .. } => (Request::Delete(key), key, w.cost()),
            _ => unreachable!("only puts and deletes are batched"),
        })
        .collect();
    let mut backoff = Backoff::new(retry::ITEMS);
    while !pending.is_empty() {
        let cost: f64 = pending.iter().map(|p| p.2).sum();
        let body = bytes::Bytes::from(wire::batch_write_body(&table, pending.iter().map(|p| p.0)));
        let call = || wire::batch_write(client, &table, body.clone());
        let out = match paced(pacer, stats, cost, call).await {
            Ok(out) => out,
            Err(e) => match send_error(&format!("BatchWriteItem {table}"), &e) {
                SendError::Abort(r) => return Err(r),
                SendError::Refused(_) => {
                    let mut refused = Vec::new();
                    for (at, w) in &batch {
                        match send(client, pacer, stats, w).await {
                            Ok(()) => {}
                            Err(SendError::Refused(r)) => refused.push((*at, r)),
                            Err(SendError::Abort(r)) => return Err(r),
                        }
                    }
                    return Ok(refused);
                }
            },
        };
        let back = out.unprocessed_items().and_then(|u| u.get(&table)).map(Vec::as_slice).unwrap_or_default();
        if back.is_empty() {
            break;
        }
        // Keys (as `retry` compares them) only when some came back.
        let sent: Vec<Vec<Vec<u8>>> = pending.iter().map(|p| retry::item_primary_key(p.1, &key_names)).collect();
        let left = retry::unprocessed_keys(sent.iter().map(Vec::as_slice), back, &key_names);
        let before = pending.len();
        pending = pending.into_iter().zip(left).filter(|(_, l)| *l).map(|(p, _)| p).collect();
        if pending.len() < before {
            backoff.progress();
        }
        if !pending.is_empty() {
            stats.throttles.fetch_add(1, Ordering::Relaxed);
            pacer.throttled();
            if let Err(g) = backoff.wait(Failure::Throttled).await {
                return Err(format!("BatchWriteItem {table}: {} writes still unprocessed ({g})", pending.len()));
            }
        }
    }
    Ok(vec![])
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
        state.rejects_bytes = Some(f.metadata().map_err(|e| CdcError::io(rejects_path, e))?.len());
    }
    Ok(())
}

/// Applies staged changes until all are applied (or forever with `follow`).
pub fn run(s: &ApplySettings) -> Result<ApplyState, CdcError> {
    let run = s.run.local()?;
    let generation = check_import_done(&run)?;
    let (manifest, plan, _) = crate::transform::load_plan(&run, s.transform.mapping.as_deref(), &s.transform.convert, &s.transform.auto)?;
    // Refused before anything is written: a list mapping would reject every change one by one.
    if let Some(why) = plan.shared_part(&manifest.tables).or_else(|| plan.collected_list(&manifest.tables)) {
        return Err(CdcError::Unsupported(why));
    }
    let stored = ApplyState::load(&run)?;
    let rejects_path = super::state::cdc_dir(&run).join("rejects.jsonl");
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
                        state.offset = (first + changes.len()) as u64;
                        state.updated_at = crate::manifest::now_rfc3339();
                        state.store(&run)?;
                        if let Some((p, bar)) = &progress {
                            p.advance(*bar, changes.len() as u64, 0);
                            p.set_status(format!("{} WCU sent, {} throttles", stats.wcu_milli.load(Ordering::Relaxed) / 1000, stats.throttles.load(Ordering::Relaxed)));
                        }
                    }
                    Slice::Ddl { index, change } => {
                        state.offset = index as u64;
                        state.updated_at = crate::manifest::now_rfc3339();
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
        state.updated_at = crate::manifest::now_rfc3339();
        state.store(&run)?;
        if s.follow && last_log.elapsed() > LOG_EVERY && !s.quiet {
            let behind = capture.changes.saturating_sub(state.changes);
            let lag = state.last_ts.map(|t| crate::cdc::now_unix().saturating_sub(t as u64)).unwrap_or(0);
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
