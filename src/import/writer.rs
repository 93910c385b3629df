//! Writes a target table's items with BatchWriteItem: a feeder thread reads the pending buckets'
//! item files into batches (25 items / 16 MB), a fixed number of tasks send them, each batch's
//! WCU reserved from the `Pacer` first. Failures and UnprocessedItems go through the retry layer
//! (`aws::retry`): every retry waits with jitter, and a batch gives up after the layer's attempt
//! and time bounds. A throttle of the table lowers the table's rate; a throttle of some keys only
//! (a partition's limit: DynamoDB says so in the exception, or a call hands back few of its keys)
//! gives those keys a lane (`pacing::KeyLanes`). A batch's items of laned keys are set aside and
//! sent by a task of their own at their lane's pace, so the sending tasks keep the other keys at
//! the table's rate; what is set aside is bounded (`DEFERRED_BYTES`), past it a task waits for the
//! lane itself. A bucket's batches are made the same way on every run (the item file is checked
//! against its SHA-256, `scatter` and the batching are deterministic), so the number of its
//! batches written without a gap is a checkpoint: it is reported every `CHECKPOINT_EVERY` and a
//! rerun skips those batches, so a kill costs seconds of writing, not the bucket. A bucket is
//! reported done once all its batches are written.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use tokio::sync::mpsc;

use crate::aws::dynamo::describe;
use crate::aws::batch_write::{self, BatchError, Before};
use crate::aws::wire;
use crate::transform::group::read_items;
use crate::aws::pacing::{KeyLanes, Pacer};
use crate::aws::retry::{self, Failure};
use crate::metrics;
use crate::value::attr::{item_size, size_wcu, Item};
use crate::progress::Progress;

/// BatchWriteItem takes at most 25 put or delete requests per call (DynamoDB API limit).
pub const MAX_BATCH_ITEMS: usize = 25;
/// …and at most 16 MB of request data per call.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Items of laned keys set aside at most at once, in bytes of item data.
const DEFERRED_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct WriteStats {
    pub items: AtomicU64,
    pub batches: AtomicU64,
    /// Consumed capacity reported by DynamoDB, in thousandths of a WCU.
    pub consumed_milli: AtomicU64,
    /// WCU by our own size accounting, for items written.
    pub estimated_wcu: AtomicU64,
    pub throttles: AtomicU64,
    /// Throttles of some keys only (a partition's limit), counted in `throttles` too.
    pub key_throttles: AtomicU64,
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
    /// The batch's place among its bucket's batches.
    index: u32,
    /// Each item with its size (`item_size`), measured once.
    items: Vec<(Item, usize)>,
}

/// What the feeder and the sending tasks tell the bookkeeping loop.
enum Note {
    /// A bucket's batches: `first` were written by an earlier run, `total` in all.
    Plan { bucket: u32, first: u32, total: u32 },
    Written { bucket: u32, index: u32 },
}

/// What `write_buckets` reports of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketEvent {
    /// The bucket's first `batches` batches are written (a checkpoint within the bucket).
    Partial { bucket: u32, batches: u32 },
    Done(u32),
}

/// How often the batches written without a gap are reported: a kill costs about this much
/// writing (plus the batches in flight).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A bucket being written: the batches done out of order past `next`, the first not yet done.
struct Track {
    next: u32,
    total: u32,
    done: std::collections::BTreeSet<u32>,
    reported: u32,
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
    /// Writes `buckets` (id, batches an earlier run wrote) and reports each bucket's progress
    /// and end to `on` (not while cycling, as the bench does).
    pub async fn write_buckets(
        &self,
        items_dir: PathBuf,
        buckets: Vec<(u32, u32)>,
        progress: &Progress,
        progress_table: usize,
        mut on: impl FnMut(BucketEvent),
    ) -> Result<(), WriteError> {
        let (tx, rx) = mpsc::channel::<Batch>(self.concurrency * 2);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Note>();
        let table = self.table.clone();
        let feeder_done = done_tx.clone();
        let (deadline, cycle) = (self.deadline, self.cycle && self.deadline.is_some());
        let past = move || deadline.is_some_and(|d| Instant::now() >= d);
        let feeder_progress = progress.clone();
        let feeder = std::thread::spawn(move || -> Result<(), WriteError> {
            let order: Box<dyn Iterator<Item = (u32, u32)>> = if cycle { Box::new(buckets.into_iter().cycle()) } else { Box::new(buckets.into_iter()) };
            for (bucket, written) in order {
                if past() {
                    return Ok(());
                }
                let items = scatter(read_items(&items_dir, bucket).map_err(|reason| WriteError { table: table.clone(), bucket, reason })?);
                let mut batches: Vec<Vec<(Item, usize)>> = Vec::new();
                let (mut cur, mut bytes) = (Vec::new(), 0usize);
                for item in items {
                    let size = item_size(&item);
                    if cur.len() == MAX_BATCH_ITEMS || bytes + size > MAX_BATCH_BYTES {
                        batches.push(std::mem::take(&mut cur));
                        bytes = 0;
                    }
                    bytes += size;
                    cur.push((item, size));
                }
                if !cur.is_empty() {
                    batches.push(cur);
                }
                let total = batches.len() as u32;
                let first = match written {
                    _ if cycle => 0,
                    w if w > total => {
                        tracing::warn!(table = %table, bucket, "the checkpoint records {w} batches written of a bucket that has {total}: writing it whole");
                        0
                    }
                    w => w,
                };
                let _ = feeder_done.send(Note::Plan { bucket, first, total });
                let skipped = batches.iter().take(first as usize).flatten();
                let (items, bytes) = skipped.fold((0u64, 0u64), |(n, b), (_, size)| (n + 1, b + *size as u64));
                feeder_progress.advance(progress_table, items, bytes);
                for (i, items) in batches.into_iter().enumerate().skip(first as usize) {
                    if past() || tx.blocking_send(Batch { bucket, index: i as u32, items }).is_err() {
                        return Ok(()); // the writers stopped on an error
                    }
                }
            }
            Ok(())
        });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let failure: Arc<Mutex<Option<WriteError>>> = Arc::new(Mutex::new(None));
        let target = Arc::new(Target {
            client: self.client.clone(),
            table: self.table.clone(),
            key_names: self.key_names.clone(),
            pacer: self.pacer.clone(),
            lanes: Arc::new(KeyLanes::default()),
            stats: self.stats.clone(),
        });
        let set_aside = Arc::new(tokio::sync::Semaphore::new(DEFERRED_BYTES / 1024));
        let mut tasks = Vec::new();
        for _ in 0..self.concurrency {
            let (rx, done_tx, failure, target, set_aside, progress) = (rx.clone(), done_tx.clone(), failure.clone(), target.clone(), set_aside.clone(), progress.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(batch) = next else { return };
                    if past() {
                        continue; // drain what was queued before the deadline
                    }
                    let (bucket, index, n) = (batch.bucket, batch.index, batch.items.len() as u64);
                    let bytes: usize = batch.items.iter().map(|(_, size)| size).sum();
                    let pending = batch.items.into_iter().map(|(it, size)| target.pending(it, size)).collect();
                    let later = match send_batch(&target, pending, deadline, true).await {
                        Ok(later) => later,
                        Err(reason) => return stop(&failure, &rx, WriteError { table: target.table.clone(), bucket, reason }).await,
                    };
                    // The items of laned keys go at their lanes' pace in a task of their own; past
                    // the bound on what is set aside, this task waits for them itself.
                    let kb = (later.iter().map(|p| p.bytes).sum::<usize>() / 1024).max(1) as u32;
                    let permit = if later.is_empty() { None } else { set_aside.clone().try_acquire_many_owned(kb).ok() };
                    let finish = {
                        let (target, done_tx, progress, rx, failure) = (target.clone(), done_tx.clone(), progress.clone(), rx.clone(), failure.clone());
                        async move {
                            // Each key's items in calls of their own, side by side: a hot
                            // key's queue must not hold back a cold key that was refused once.
                            let sends = by_key(later).into_iter().map(|items| send_batch(&target, items, deadline, false));
                            for out in futures::future::join_all(sends).await {
                                if let Err(reason) = out {
                                    return stop(&failure, &rx, WriteError { table: target.table.clone(), bucket, reason }).await;
                                }
                            }
                            progress.advance(progress_table, n, bytes as u64);
                            let _ = done_tx.send(Note::Written { bucket, index });
                        }
                    };
                    match permit {
                        Some(permit) => {
                            tokio::spawn(async move {
                                finish.await;
                                drop(permit);
                            });
                        }
                        None => finish.await,
                    }
                }
            }));
        }
        drop(done_tx);
        let mut tracks: HashMap<u32, Track> = HashMap::new();
        let status_every = std::time::Duration::from_millis(500);
        let mut last_status = Instant::now();
        let mut last_checkpoint = Instant::now();
        let started = Instant::now();
        while let Some(note) = done_rx.recv().await {
            match note {
                // Cycling (the bench) writes buckets again and again: nothing to report.
                _ if cycle => {}
                Note::Plan { bucket, first, total } if first >= total => on(BucketEvent::Done(bucket)),
                Note::Plan { bucket, first, total } => {
                    tracks.insert(bucket, Track { next: first, total, done: Default::default(), reported: first });
                }
                Note::Written { bucket, index } => {
                    if let Some(t) = tracks.get_mut(&bucket) {
                        t.done.insert(index);
                        while t.done.remove(&t.next) {
                            t.next += 1;
                        }
                        if t.next == t.total {
                            tracks.remove(&bucket);
                            on(BucketEvent::Done(bucket));
                        }
                    }
                }
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                for (&bucket, t) in tracks.iter_mut().filter(|(_, t)| t.next > t.reported) {
                    t.reported = t.next;
                    on(BucketEvent::Partial { bucket, batches: t.next });
                }
            }
            if last_status.elapsed() > status_every {
                last_status = Instant::now();
                progress.set_status(self.status(started));
            }
        }
        // What was written without a gap is kept even when the run stops on an error.
        for (&bucket, t) in tracks.iter().filter(|(_, t)| t.next > t.reported) {
            on(BucketEvent::Partial { bucket, batches: t.next });
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

/// A bucket's items in a scattered order. The item file holds one partition key's items together;
/// written in that order a key with many items would load one partition at a time (a rolling hot
/// partition) and hold the sending tasks on it. Taking every `step`-th item (a step coprime with
/// the count, near the golden ratio of it) spreads any run evenly over the bucket, in O(n) and
/// deterministically.
fn scatter(items: Vec<Item>) -> Vec<Item> {
    let n = items.len();
    if n < 3 {
        return items;
    }
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut step = (n as f64 * 0.618_033_988_7) as usize;
    while gcd(step, n) != 1 {
        step += 1;
    }
    let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    (0..n).map(|i| slots[(i * step) % n].take().expect("a permutation visits each slot once")).collect()
}

/// Where a batch goes and what it counts.
struct Target {
    client: Client,
    table: String,
    key_names: Vec<String>,
    pacer: Arc<Pacer>,
    lanes: Arc<KeyLanes>,
    stats: Arc<WriteStats>,
}

/// One item waiting to be written.
struct Pending {
    item: Item,
    wcu: u64,
    bytes: usize,
    /// The primary key's values, as `retry` compares keys (`attr_key_part`); the partition
    /// key's first.
    primary: Vec<Vec<u8>>,
}

impl Pending {
    /// The partition key's value, by which keys get lanes.
    fn key(&self) -> &[u8] {
        &self.primary[0]
    }
}

impl Target {
    fn pending(&self, item: Item, bytes: usize) -> Pending {
        let primary = retry::item_primary_key(&item, &self.key_names);
        Pending { item, wcu: size_wcu(bytes), bytes, primary }
    }

    /// Some keys were throttled on their own: lower their lanes.
    fn keys_throttled<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        self.stats.key_throttles.fetch_add(1, Ordering::Relaxed);
        let mut seen = std::collections::HashSet::new();
        for k in keys.filter(|k| seen.insert(*k)) {
            self.lanes.throttled(k);
        }
    }
}

/// The items split for sending: each key with several items in a call of its own (a hot key's,
/// which waits for its lane), the keys with one item together (cold keys refused once in a
/// full second, whose fresh lanes let them go at once).
fn by_key(items: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    for p in items {
        match groups.iter_mut().find(|g| g[0].key() == p.key()) {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    let (mut out, singles): (Vec<Vec<Pending>>, Vec<Vec<Pending>>) = groups.into_iter().partition(|g| g.len() > 1);
    let singles: Vec<Pending> = singles.into_iter().flatten().collect();
    if !singles.is_empty() {
        out.push(singles);
    }
    out
}

/// Keeps the first failure and stops the sending tasks (the feeder then stops too).
async fn stop(failure: &Mutex<Option<WriteError>>, rx: &tokio::sync::Mutex<mpsc::Receiver<Batch>>, e: WriteError) {
    failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
    rx.lock().await.close();
}

impl batch_write::Entry for Pending {
    fn request(&self) -> wire::Request<'_> {
        wire::Request::Put(&self.item)
    }

    fn primary(&self) -> &[Vec<u8>] {
        &self.primary
    }

    fn wcu(&self) -> f64 {
        self.wcu as f64
    }
}

/// The import's part of the one BatchWriteItem loop: its pacer and key lanes, its counters,
/// the benchmark's deadline, and (with `set_aside`) items of laned keys handed back to be sent
/// at their lane's pace.
struct ImportHooks<'a> {
    t: &'a Target,
    deadline: Option<Instant>,
    set_aside: bool,
}

impl batch_write::Hooks<Pending> for ImportHooks<'_> {
    fn set_aside(&self, p: &Pending) -> bool {
        self.set_aside && self.t.lanes.laned(p.key())
    }

    async fn before(&self, pending: &[Pending], cost: f64) -> Before {
        let t = self.t;
        if self.set_aside && pending.iter().any(|p| t.lanes.laned(p.key())) {
            return Before::SetAside;
        }
        t.lanes.wait(pending.iter().map(|p| (p.key(), p.wcu as f64))).await;
        let wait = t.pacer.reserve(cost);
        if self.deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return Before::Stop;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Before::Send
    }

    fn called(&self, took: std::time::Duration) {
        let stats = &self.t.stats;
        stats.latencies_ms.lock().unwrap_or_else(|e| e.into_inner()).push(took.as_millis() as u32);
        stats.batches.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, f: Failure, pending: &[Pending], cost: f64) {
        let (t, stats) = (self.t, &self.t.stats);
        stats.retries.fetch_add(1, Ordering::Relaxed);
        if f.throttle() {
            stats.throttles.fetch_add(1, Ordering::Relaxed);
        }
        metrics::retried("import", f.throttle());
        match f {
            Failure::KeyThrottled => {
                t.keys_throttled(pending.iter().map(|p| p.key()));
                t.pacer.charge(-cost);
            }
            Failure::Throttled => {
                tracing::debug!(table = %t.table, "the table's capacity was exceeded: lowering its rate");
                t.pacer.throttled()
            }
            _ => {}
        }
    }

    fn written(&self, written: &[Pending], consumed: Option<f64>, _sent_cost: f64) {
        let stats = &self.t.stats;
        stats.consumed_milli.fetch_add((consumed.unwrap_or(0.0) * 1000.0).round() as u64, Ordering::Relaxed);
        stats.items.fetch_add(written.len() as u64, Ordering::Relaxed);
        metrics::written(&self.t.table, written.len() as u64, consumed.unwrap_or(0.0));
        let accepted: u64 = written.iter().map(|p| p.wcu).sum();
        stats.estimated_wcu.fetch_add(accepted, Ordering::Relaxed);
        self.t.pacer.accepted(accepted as f64);
    }

    fn handed_back(&self, left: &[Pending], sent_keys: usize) -> bool {
        let t = self.t;
        t.stats.retries.fetch_add(1, Ordering::Relaxed);
        t.stats.throttles.fetch_add(1, Ordering::Relaxed);
        metrics::retried("import", true);
        // Up to three quarters of the call's keys handed back, or only keys already laned: those
        // keys' partitions are full, not the table. (A call's keys fall into partitions at
        // random, so half of them in one partition is not rare; three quarters is.) A table out
        // of capacity also refuses whole calls, which lower its rate.
        let left_keys: std::collections::HashSet<&[u8]> = left.iter().map(|p| p.key()).collect();
        if left_keys.len() * 4 <= sent_keys * 3 || left_keys.iter().all(|k| t.lanes.laned(k)) {
            t.keys_throttled(left_keys.into_iter());
            // The table had room: what was handed back consumed none of it.
            t.pacer.charge(-(left.iter().map(|p| p.wcu).sum::<u64>() as f64));
            !self.set_aside // set aside at the top, without a wait
        } else {
            tracing::debug!(table = %t.table, "{} of the call's {sent_keys} partition keys handed back: lowering the table's rate", left_keys.len());
            t.pacer.throttled();
            true
        }
    }
}

/// Sends the items until every one is written (or, past the `deadline`, stops unsent). With
/// `set_aside`, the items of laned keys are handed back instead of waited for.
async fn send_batch(t: &Target, pending: Vec<Pending>, deadline: Option<Instant>, set_aside: bool) -> Result<Vec<Pending>, String> {
    match batch_write::write(&t.client, &t.table, &t.key_names, pending, &ImportHooks { t, deadline, set_aside }).await {
        Ok(later) => Ok(later),
        Err(BatchError::Stopped) => Ok(Vec::new()), // past the deadline
        Err(BatchError::Failed { failure, entries }) => {
            // The request is refused as a whole: say which items it held, by key.
            let keys: Vec<String> = entries
                .iter()
                .map(|p| crate::value::attr::item_to_json(&p.item.iter().filter(|(k, _)| t.key_names.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect()).to_string())
                .collect();
            let keys: String = keys.join(", ").chars().take(600).collect();
            Err(format!("{} ({}; the batch held the items with keys {keys})", describe("BatchWriteItem", &failure.error), failure.gave_up))
        }
        Err(BatchError::Unprocessed { left, gave_up }) => Err(format!("BatchWriteItem {}: {left} items still unprocessed ({gave_up})", t.table)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::attr::Attr;

    #[test]
    fn a_run_of_one_key_is_spread_over_the_bucket() {
        let item = |k: &str, i: usize| -> Item { [("pk".to_string(), Attr::S(k.into())), ("sk".to_string(), Attr::N(i.to_string()))].into_iter().collect() };
        // 30 % of the bucket under one key, together at its end, as the item file holds it.
        let items: Vec<Item> = (0..7000).map(|i| item(&format!("k{i}"), i)).chain((0..3000).map(|i| item("hot", i))).collect();
        let out = scatter(items.clone());
        assert_eq!(out.len(), items.len());
        let mut sorted = out.clone();
        sorted.sort_by_key(|i| (format!("{:?}", i["pk"]), format!("{:?}", i["sk"])));
        let mut expected = items;
        expected.sort_by_key(|i| (format!("{:?}", i["pk"]), format!("{:?}", i["sk"])));
        assert_eq!(sorted, expected, "every item once");
        // Every stretch of 100 items carries between 20 and 40 of the hot key's.
        for w in out.chunks(100) {
            let hot = w.iter().filter(|i| i["pk"] == Attr::S("hot".into())).count();
            assert!((20..=40).contains(&hot), "{hot} hot items in a stretch of 100");
        }
    }

    #[test]
    fn set_aside_items_go_by_key_with_the_single_ones_together() {
        let pending = |k: &str, i: u64| Pending { item: Item::new(), wcu: i, bytes: 1, primary: vec![k.as_bytes().to_vec(), i.to_string().into_bytes()] };
        let items = vec![pending("hot", 1), pending("a", 2), pending("hot", 3), pending("b", 4), pending("warm", 5), pending("warm", 6), pending("hot", 7)];
        let groups: Vec<Vec<(String, u64)>> = by_key(items)
            .into_iter()
            .map(|g| g.iter().map(|p| (String::from_utf8(p.key().to_vec()).unwrap(), p.wcu)).collect())
            .collect();
        let g = |v: &[(&str, u64)]| v.iter().map(|(k, w)| (k.to_string(), *w)).collect::<Vec<_>>();
        assert_eq!(groups, vec![g(&[("hot", 1), ("hot", 3), ("hot", 7)]), g(&[("warm", 5), ("warm", 6)]), g(&[("a", 2), ("b", 4)])]);
        assert!(by_key(Vec::new()).is_empty());
    }
}
