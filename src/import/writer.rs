//! Writes a target table's items with BatchWriteItem: a feeder thread reads the pending buckets'
//! item files into batches (25 items / 16 MB), a fixed number of tasks send them, each batch's
//! WCU reserved from the `Pacer` first. Failures and UnprocessedItems go through the retry layer
//! (`aws::retry`): a throttle lowers the rate, every retry waits with jitter, and a batch gives up
//! after the layer's attempt and time bounds. A bucket is reported done once all its batches are
//! written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, ReturnConsumedCapacity, WriteRequest};
use aws_sdk_dynamodb::Client;
use tokio::sync::mpsc;

use crate::aws::dynamo::{describe, item_to_sdk};
use crate::transform::group::read_items;
use crate::aws::pacing::Pacer;
use crate::aws::retry::{self, Backoff, Failure};
use crate::value::attr::{item_size, item_wcu, Item};
use crate::progress::Progress;

/// BatchWriteItem takes at most 25 put or delete requests per call (DynamoDB API limit).
pub const MAX_BATCH_ITEMS: usize = 25;
/// …and at most 16 MB of request data per call.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct WriteStats {
    pub items: AtomicU64,
    pub batches: AtomicU64,
    /// Consumed capacity reported by DynamoDB, in thousandths of a WCU.
    pub consumed_milli: AtomicU64,
    /// WCU by our own size accounting, for items written.
    pub estimated_wcu: AtomicU64,
    pub throttles: AtomicU64,
    pub retries: AtomicU64,
    /// Milliseconds per BatchWriteItem call.
    pub latencies_ms: Mutex<Vec<u32>>,
}

impl WriteStats {
    pub fn consumed(&self) -> f64 {
        self.consumed_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("writing table {table}, bucket {bucket}: {reason}")]
pub struct WriteError {
    pub table: String,
    pub bucket: u32,
    pub reason: String,
}

struct Batch {
    bucket: u32,
    items: Vec<Item>,
    /// Set on a bucket's last batch: how many batches the bucket has.
    of: Option<u32>,
}

pub struct Writer {
    pub client: Client,
    pub table: String,
    /// The table's key attributes, to match UnprocessedItems to the requests sent.
    pub key_names: Vec<String>,
    pub pacer: Arc<Pacer>,
    pub stats: Arc<WriteStats>,
    pub concurrency: usize,
    /// Stop feeding batches at this moment (the benchmark's time limit); batches sent finish.
    pub deadline: Option<Instant>,
    /// Write the buckets again from the first until the deadline (the benchmark on a small run).
    pub cycle: bool,
}

impl Writer {
    /// Writes the given buckets' item files; `done(bucket)` runs as each bucket completes.
    pub async fn write_buckets(
        &self,
        items_dir: PathBuf,
        buckets: Vec<u32>,
        progress: &Progress,
        progress_table: usize,
        mut done: impl FnMut(u32),
    ) -> Result<(), WriteError> {
        let (tx, rx) = mpsc::channel::<Batch>(self.concurrency * 2);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u32, Option<u32>)>();
        let table = self.table.clone();
        let feeder_done = done_tx.clone();
        let (deadline, cycle) = (self.deadline, self.cycle && self.deadline.is_some());
        let past = move || deadline.is_some_and(|d| Instant::now() >= d);
        let feeder = std::thread::spawn(move || -> Result<(), WriteError> {
            let order: Box<dyn Iterator<Item = u32>> = if cycle { Box::new(buckets.into_iter().cycle()) } else { Box::new(buckets.into_iter()) };
            for bucket in order {
                if past() {
                    return Ok(());
                }
                let items = read_items(&items_dir, bucket).map_err(|reason| WriteError { table: table.clone(), bucket, reason })?;
                let mut batches: Vec<Vec<Item>> = Vec::new();
                let (mut cur, mut bytes) = (Vec::new(), 0usize);
                for item in items {
                    let size = item_size(&item);
                    if cur.len() == MAX_BATCH_ITEMS || bytes + size > MAX_BATCH_BYTES {
                        batches.push(std::mem::take(&mut cur));
                        bytes = 0;
                    }
                    bytes += size;
                    cur.push(item);
                }
                if !cur.is_empty() {
                    batches.push(cur);
                }
                let n = batches.len() as u32;
                if n == 0 {
                    let _ = feeder_done.send((bucket, Some(0)));
                }
                for (i, items) in batches.into_iter().enumerate() {
                    let of = (i as u32 + 1 == n).then_some(n);
                    if past() || tx.blocking_send(Batch { bucket, items, of }).is_err() {
                        return Ok(()); // the writers stopped on an error
                    }
                }
            }
            Ok(())
        });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let failure: Arc<Mutex<Option<WriteError>>> = Arc::new(Mutex::new(None));
        let mut tasks = Vec::new();
        for _ in 0..self.concurrency {
            let rx = rx.clone();
            let done_tx = done_tx.clone();
            let failure = failure.clone();
            let ctx = (self.client.clone(), self.table.clone(), self.key_names.clone(), self.pacer.clone(), self.stats.clone(), progress.clone());
            tasks.push(tokio::spawn(async move {
                let (client, table, key_names, pacer, stats, progress) = ctx;
                let target = Target { client: &client, table: &table, key_names: &key_names, pacer: &pacer, stats: &stats };
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(batch) = next else { return };
                    if past() {
                        continue; // drain what was queued before the deadline
                    }
                    let (bucket, of, n) = (batch.bucket, batch.of, batch.items.len() as u64);
                    let bytes: usize = batch.items.iter().map(item_size).sum();
                    if let Err(reason) = send_batch(&target, batch.items, deadline).await {
                        failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(WriteError { table: table.clone(), bucket, reason });
                        rx.lock().await.close();
                        return;
                    }
                    progress.advance(progress_table, n, bytes as u64);
                    let _ = done_tx.send((bucket, of));
                }
            }));
        }
        drop(done_tx);
        let mut counts: HashMap<u32, (u32, Option<u32>)> = HashMap::new();
        let status_every = std::time::Duration::from_millis(500);
        let mut last_status = Instant::now();
        let started = Instant::now();
        while let Some((bucket, of)) = done_rx.recv().await {
            let c = counts.entry(bucket).or_insert((0, None));
            if of != Some(0) {
                c.0 += 1;
            }
            if of.is_some() {
                c.1 = of;
            }
            if c.1 == Some(c.0) {
                counts.remove(&bucket);
                done(bucket);
            }
            if last_status.elapsed() > status_every {
                last_status = Instant::now();
                progress.set_status(self.status(started));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        let fed = feeder.join().unwrap_or_else(|_| Err(WriteError { table: self.table.clone(), bucket: 0, reason: "the feeder thread panicked".into() }));
        if let Some(e) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        fed
    }

    fn status(&self, started: Instant) -> String {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let target = match self.pacer.target() {
            Some(t) => format!(" (target {t:.0}, now {:.0})", self.pacer.rate().unwrap_or(t)),
            None => " (unpaced)".into(),
        };
        format!(
            "{:.0} WCU/s{target}  throttles {}  retries {}",
            self.stats.consumed() / secs,
            self.stats.throttles.load(Ordering::Relaxed),
            self.stats.retries.load(Ordering::Relaxed)
        )
    }
}

/// Where a batch goes and what it counts.
struct Target<'a> {
    client: &'a Client,
    table: &'a str,
    key_names: &'a [String],
    pacer: &'a Pacer,
    stats: &'a WriteStats,
}

/// Sends one batch until every item is written (or, past the `deadline`, stops unsent).
async fn send_batch(t: &Target<'_>, items: Vec<Item>, deadline: Option<Instant>) -> Result<(), String> {
    let mut pending: Vec<(WriteRequest, u64)> = items
        .iter()
        .map(|it| (WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item_to_sdk(it))).build().expect("item set")).build(), item_wcu(it)))
        .collect();
    let stats = t.stats;
    let mut backoff = Backoff::new(retry::ITEMS);
    let on_failure = |f: Failure| {
        stats.retries.fetch_add(1, Ordering::Relaxed);
        if f == Failure::Throttled {
            stats.throttles.fetch_add(1, Ordering::Relaxed);
            t.pacer.throttled();
        }
    };
    while !pending.is_empty() {
        let cost: u64 = pending.iter().map(|p| p.1).sum();
        let requests: Vec<WriteRequest> = pending.iter().map(|p| p.0.clone()).collect();
        let out = retry::send(&mut backoff, on_failure, || {
            let requests = requests.clone();
            async move {
                let wait = t.pacer.reserve(cost as f64);
                if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                    return Ok(None);
                }
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let t0 = Instant::now();
                let out = t.client.batch_write_item().request_items(t.table, requests).return_consumed_capacity(ReturnConsumedCapacity::Total).send().await;
                stats.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()).push(t0.elapsed().as_millis() as u32);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                out.map(Some)
            }
        })
        .await;
        let o = match out {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(()), // past the deadline
            Err(f) => {
                // The request is refused as a whole: say which items it held, by key.
                let keys: Vec<String> = items.iter().map(|i| crate::value::attr::item_to_json(&i.iter().filter(|(k, _)| t.key_names.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect()).to_string()).collect();
                let keys: String = keys.join(", ").chars().take(600).collect();
                return Err(format!("{} ({}; the batch held the items with keys {keys})", describe("BatchWriteItem", &f.error), f.gave_up));
            }
        };
        let consumed: f64 = o.consumed_capacity().iter().filter_map(|c| c.capacity_units()).sum();
        stats.consumed_milli.fetch_add((consumed * 1000.0).round() as u64, Ordering::Relaxed);
        let back: &[WriteRequest] = o.unprocessed_items().and_then(|u| u.get(t.table)).map(Vec::as_slice).unwrap_or_default();
        let left_flags = retry::unprocessed(&requests, back, t.key_names);
        let before = pending.len();
        let mut left = Vec::new();
        for ((req, cost), left_over) in pending.drain(..).zip(left_flags) {
            if left_over {
                left.push((req, cost));
            } else {
                stats.items.fetch_add(1, Ordering::Relaxed);
                stats.estimated_wcu.fetch_add(cost, Ordering::Relaxed);
            }
        }
        pending = left;
        if pending.len() < before {
            backoff.progress();
        }
        if !pending.is_empty() {
            on_failure(Failure::Throttled);
            if let Err(g) = backoff.wait(Failure::Throttled).await {
                return Err(format!("BatchWriteItem {}: {} items still unprocessed ({g})", t.table, pending.len()));
            }
        }
    }
    Ok(())
}
