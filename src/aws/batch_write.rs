//! The one BatchWriteItem engine. Import's writer, `cdc apply` and table truncation send their
//! puts and deletes through `write`, which loops until every request is written: a call that
//! fails goes through the retry layer (`retry::send`); a call answered with part of its requests
//! handed back (UnprocessedItems) has those matched to the requests sent by primary key
//! (`retry::unprocessed_keys`: DynamoDB may respell a number or reorder a set), and they are sent
//! again after a backoff, progress resetting the attempt count but never the time bound. What
//! the callers do differently — pacing, key lanes, a deadline, counters — they say through
//! `Hooks`, called at fixed points of the one loop (as Vector's AWS sinks share one service and
//! retry logic under their own request builders).

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::types::WriteRequest;
use aws_sdk_dynamodb::Client;

use super::retry::{self, Backoff, Failed, Failure, GaveUp};
use super::wire;

/// One put or delete of a batch.
pub trait Entry {
    fn request(&self) -> wire::Request<'_>;
    /// The primary key's values as `retry` compares them (`item_primary_key`), partition key first.
    fn primary(&self) -> &[Vec<u8>];
    /// WCU the write is expected to cost.
    fn wcu(&self) -> f64;
}

/// What to do before a call.
pub enum Before {
    /// Send now.
    Send,
    /// Stop, unsent (the caller's deadline).
    Stop,
    /// Take `Hooks::set_aside` entries out first, then go on.
    SetAside,
}

/// What a caller does around the one loop. Every method has a default of doing nothing.
pub trait Hooks<E: Entry> {
    /// Whether an entry is taken out of the batch and handed back to the caller (a key with a
    /// lane of its own), checked before each call.
    fn set_aside(&self, _entry: &E) -> bool {
        false
    }

    /// Before each attempt of a call of `entries` costing `cost` WCU: wait for capacity.
    fn before(&self, _entries: &[E], _cost: f64) -> impl Future<Output = Before> + Send {
        async { Before::Send }
    }

    /// A call was answered after `took`.
    fn called(&self, _took: Duration) {}

    /// An attempt failed and the retry layer will try again.
    fn failed(&self, _failure: Failure, _entries: &[E], _cost: f64) {}

    /// A call of `sent_cost` WCU was answered: `written` are the entries it wrote, and
    /// `consumed` what DynamoDB reported consumed (None when it reported nothing).
    fn written(&self, _written: &[E], _consumed: Option<f64>, _sent_cost: f64) {}

    /// `left` were handed back by a call that held `sent_keys` distinct partition keys. True:
    /// back off before sending them again; false: go on at once (they are set aside).
    fn handed_back(&self, _left: &[E], _sent_keys: usize) -> bool {
        true
    }
}

/// Hooks that do nothing: no pacing, no counters (table truncation).
pub struct Plain;

impl<E: Entry> Hooks<E> for Plain {}

/// Why a batch was not written.
#[derive(Debug)]
pub enum BatchError<E> {
    /// Stopped unsent before a call (`Before::Stop`).
    Stopped,
    /// A call failed for good, or its retries ran out: the entries it held, unwritten.
    Failed { failure: Box<Failed<SdkError<BatchWriteItemError, HttpResponse>>>, entries: Vec<E> },
    /// Requests handed back again and again until the backoff gave up.
    Unprocessed { left: usize, gave_up: GaveUp },
}

enum Attempt {
    Sent(aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput),
    Stopped,
    SetAside,
}

/// Writes `entries` to `table` (whose key attributes are `key_names`) in calls of all of them
/// at once (the caller keeps a batch within DynamoDB's 25 requests and 16 MB); returns the
/// entries set aside on the way, unwritten.
pub async fn write<E: Entry, H: Hooks<E>>(client: &Client, table: &str, key_names: &[String], entries: Vec<E>, hooks: &H) -> Result<Vec<E>, BatchError<E>> {
    let mut pending = entries;
    let mut later = Vec::new();
    let mut backoff = Backoff::new(retry::ITEMS);
    while !pending.is_empty() {
        let (aside, now): (Vec<E>, Vec<E>) = pending.into_iter().partition(|e| hooks.set_aside(e));
        later.extend(aside);
        pending = now;
        if pending.is_empty() {
            break;
        }
        let cost: f64 = pending.iter().map(Entry::wcu).sum();
        let body = bytes::Bytes::from(wire::batch_write_body(table, pending.iter().map(Entry::request)));
        let out = retry::send(&mut backoff, |f| hooks.failed(f, &pending, cost), || {
            let (body, pending) = (body.clone(), &pending);
            async move {
                match hooks.before(pending, cost).await {
                    Before::Stop => return Ok(Attempt::Stopped),
                    Before::SetAside => return Ok(Attempt::SetAside),
                    Before::Send => {}
                }
                let t0 = Instant::now();
                let out = wire::batch_write(client, table, body).await;
                hooks.called(t0.elapsed());
                out.map(Attempt::Sent)
            }
        })
        .await;
        let answer = match out {
            Ok(Attempt::Sent(o)) => o,
            Ok(Attempt::SetAside) => continue,
            Ok(Attempt::Stopped) => return Err(BatchError::Stopped),
            Err(failure) => return Err(BatchError::Failed { failure: Box::new(failure), entries: pending }),
        };
        let consumed = answer.consumed_capacity();
        let consumed = (!consumed.is_empty()).then(|| consumed.iter().filter_map(|c| c.capacity_units()).sum::<f64>());
        let back: &[WriteRequest] = answer.unprocessed_items().and_then(|u| u.get(table)).map(Vec::as_slice).unwrap_or_default();
        let left_flags = if back.is_empty() { vec![false; pending.len()] } else { retry::unprocessed_keys(pending.iter().map(Entry::primary), back, key_names) };
        let sent_keys = pending.iter().map(|e| e.primary().first()).collect::<std::collections::HashSet<_>>().len();
        let before = pending.len();
        let (mut left, mut written) = (Vec::new(), Vec::new());
        for (e, handed_back) in pending.into_iter().zip(left_flags) {
            if handed_back {
                left.push(e);
            } else {
                written.push(e);
            }
        }
        hooks.written(&written, consumed, cost);
        pending = left;
        if pending.is_empty() {
            break;
        }
        if pending.len() < before {
            backoff.progress();
        }
        if hooks.handed_back(&pending, sent_keys) {
            if let Err(gave_up) = backoff.wait(Failure::Throttled).await {
                return Err(BatchError::Unprocessed { left: pending.len(), gave_up });
            }
        }
    }
    Ok(later)
}
