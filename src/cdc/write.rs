//! The writes `cdc apply` sends: each record-to-record change as PutItem or DeleteItem, each
//! grouped row's part as a conditional UpdateItem, every call through the retry layer with its
//! WCU reserved from the pacer first and the pacer charged what DynamoDB reports consumed. Puts
//! and deletes of distinct items go 25 a call through the one BatchWriteItem loop
//! (`aws::batch_write`); a batch DynamoDB refuses is sent again write by write, so only the
//! writes at fault are rejected. `execute` runs one round of writes (one per item) in parallel.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::apply::{Owned, Write};
use crate::aws::dynamo::{describe, item_to_sdk, to_sdk};
use crate::aws::pacing::Pacer;
use crate::aws::retry::{self, Backoff, Failed, Failure};
use crate::import::writer::MAX_BATCH_ITEMS;

#[derive(Default)]
pub(super) struct Stats {
    pub(super) writes: AtomicU64,
    /// WCU DynamoDB reports consumed by the writes (our estimate where it reports none), × 1000.
    pub(super) wcu_milli: AtomicU64,
    pub(super) throttles: AtomicU64,
    pub(super) retries: AtomicU64,
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
        crate::metrics::retried("apply", f.throttle());
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
    crate::metrics::wcu_consumed("apply", used);
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
pub(super) async fn execute(client: &Client, pacer: &Arc<Pacer>, stats: &Arc<Stats>, writes: Vec<(usize, Write)>, in_flight: usize) -> Result<Vec<(usize, String)>, String> {
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

/// A put or delete of a batch, as the one BatchWriteItem loop sends it.
struct BatchEntry<'a> {
    write: &'a Write,
    primary: Vec<Vec<u8>>,
}

impl crate::aws::batch_write::Entry for BatchEntry<'_> {
    fn request(&self) -> crate::aws::wire::Request<'_> {
        match self.write {
            Write::Put { item, .. } => crate::aws::wire::Request::Put(item),
            Write::Delete { key, .. } => crate::aws::wire::Request::Delete(key),
            _ => unreachable!("only puts and deletes are batched"),
        }
    }

    fn primary(&self) -> &[Vec<u8>] {
        &self.primary
    }

    fn wcu(&self) -> f64 {
        self.write.cost()
    }
}

/// Apply's part of the one BatchWriteItem loop: each call waits for its WCU, the pacer is
/// charged what DynamoDB reports consumed, throttles and handed-back writes slow it.
struct ApplyHooks<'a> {
    pacer: &'a Pacer,
    stats: &'a Stats,
}

impl<'e> crate::aws::batch_write::Hooks<BatchEntry<'e>> for ApplyHooks<'_> {
    async fn before(&self, _entries: &[BatchEntry<'e>], cost: f64) -> crate::aws::batch_write::Before {
        self.pacer.acquire(cost).await;
        crate::aws::batch_write::Before::Send
    }

    fn failed(&self, f: Failure, _entries: &[BatchEntry<'e>], _cost: f64) {
        crate::metrics::retried("apply", f.throttle());
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        if f.throttle() {
            self.stats.throttles.fetch_add(1, Ordering::Relaxed);
            self.pacer.throttled();
        }
    }

    fn written(&self, written: &[BatchEntry<'e>], consumed: Option<f64>, sent_cost: f64) {
        use crate::aws::batch_write::Entry;
        let used = consumed.unwrap_or_else(|| written.iter().map(Entry::wcu).sum());
        self.pacer.charge(used - sent_cost);
        self.pacer.accepted(used);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.wcu_milli.fetch_add((used * 1000.0).round() as u64, Ordering::Relaxed);
        crate::metrics::wcu_consumed("apply", used);
    }

    fn handed_back(&self, _left: &[BatchEntry<'e>], _sent_keys: usize) -> bool {
        crate::metrics::retried("apply", true);
        self.stats.throttles.fetch_add(1, Ordering::Relaxed);
        self.pacer.throttled();
        true
    }
}

/// Puts and deletes of distinct items in one BatchWriteItem, through the one loop
/// (`aws::batch_write`). A batch DynamoDB refuses is sent again write by write, to refuse only
/// the writes at fault.
async fn send_batch(client: &Client, pacer: &Pacer, stats: &Stats, batch: Vec<(usize, Write)>) -> Result<Vec<(usize, String)>, String> {
    use crate::aws::batch_write::{self, BatchError};
    let table = batch[0].1.table().to_string();
    let key_names: Vec<String> = match &batch[0].1 {
        Write::Put { key, .. } | Write::Delete { key, .. } => key.keys().cloned().collect(),
        _ => unreachable!("only puts and deletes are batched"),
    };
    let entries: Vec<BatchEntry<'_>> = batch
        .iter()
        .map(|(_, w)| {
            let (Write::Put { key, .. } | Write::Delete { key, .. } | Write::Set { key, .. } | Write::Remove { key, .. }) = w;
            BatchEntry { write: w, primary: retry::item_primary_key(key, &key_names) }
        })
        .collect();
    match batch_write::write(client, &table, &key_names, entries, &ApplyHooks { pacer, stats }).await {
        Ok(_) => Ok(vec![]),
        Err(BatchError::Stopped) => unreachable!("apply sets no deadline"),
        Err(BatchError::Unprocessed { left, gave_up }) => Err(format!("BatchWriteItem {table}: {left} writes still unprocessed ({gave_up})")),
        Err(BatchError::Failed { failure, .. }) => match send_error(&format!("BatchWriteItem {table}"), &failure) {
            SendError::Abort(r) => Err(r),
            SendError::Refused(_) => {
                let mut refused = Vec::new();
                for (at, w) in &batch {
                    match send(client, pacer, stats, w).await {
                        Ok(()) => {}
                        Err(SendError::Refused(r)) => refused.push((*at, r)),
                        Err(SendError::Abort(r)) => return Err(r),
                    }
                }
                Ok(refused)
            }
        },
    }
}

