//! The one retry layer of every DynamoDB call the tool makes (import, cdc apply, verify, table
//! preparation). `classify` sorts a failure into throttled, transient or fatal; a `Backoff` is
//! one logical operation's budget: it waits with decorrelated jitter (each wait drawn between the
//! base and three times the previous wait, capped) and gives up after a number of failed attempts
//! or a total time, whichever comes first. A partial answer (UnprocessedItems/Keys) is a
//! throttle for the part left; progress resets the attempt count but never the time bound.
//! `send` runs one call under a `Backoff`; `unprocessed_keys` matches what DynamoDB hands back to the
//! requests by primary key. Time is tokio's, so tests run it on a paused (virtual) clock.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use tokio::time::Instant;

/// How a failed call should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The table's capacity was exceeded: slow the pacer, wait, send again.
    Throttled,
    /// One partition's limit was exceeded (DynamoDB's ThrottlingReason
    /// `…KeyRangeThroughputExceeded`): slow the keys the call held, not the table.
    KeyThrottled,
    /// Server errors, account request limits, transport trouble: wait, send again.
    Transient,
    /// A bad request, missing table, refused credentials: sending again cannot help.
    Fatal,
}

impl Failure {
    /// A throttle of the table or of some of its keys.
    pub fn throttle(self) -> bool {
        matches!(self, Failure::Throttled | Failure::KeyThrottled)
    }
}

/// The bounds of one operation's retries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Smallest wait.
    pub base: Duration,
    /// Largest wait.
    pub cap: Duration,
    /// Failed attempts in a row (without progress) before giving up.
    pub max_attempts: u32,
    /// Total time an operation may spend, retries included.
    pub max_elapsed: Duration,
}

/// Writes and reads of items: throttling under a tight capacity can last a while.
pub const ITEMS: Policy = Policy { base: Duration::from_millis(50), cap: Duration::from_secs(10), max_attempts: 40, max_elapsed: Duration::from_secs(15 * 60) };

/// Why an operation stopped retrying.
#[derive(Debug, Clone, PartialEq)]
pub enum GaveUp {
    Fatal,
    Attempts(u32),
    Time(Duration),
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GaveUp::Fatal => write!(f, "not retried"),
            GaveUp::Attempts(n) => write!(f, "gave up after {n} attempts"),
            GaveUp::Time(d) => write!(f, "gave up after {:.0} s of retries", d.as_secs_f64()),
        }
    }
}

/// One operation's retry budget.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    started: Instant,
    failures: u32,
    prev: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff { policy, started: Instant::now(), failures: 0, prev: policy.base, rng: fastrand::Rng::new() }
    }

    /// A seeded backoff, for tests that check the waits.
    pub fn seeded(policy: Policy, seed: u64) -> Backoff {
        Backoff { rng: fastrand::Rng::with_seed(seed), ..Backoff::new(policy) }
    }

    /// The wait before the next attempt after a failure of `kind`, or why not to make one.
    pub fn next(&mut self, kind: Failure) -> Result<Duration, GaveUp> {
        if kind == Failure::Fatal {
            return Err(GaveUp::Fatal);
        }
        self.failures += 1;
        if self.failures >= self.policy.max_attempts {
            return Err(GaveUp::Attempts(self.failures));
        }
        let (base, cap) = (self.policy.base.as_secs_f64(), self.policy.cap.as_secs_f64());
        let high = (self.prev.as_secs_f64() * 3.0).max(base);
        let wait = Duration::from_secs_f64((base + self.rng.f64() * (high - base)).min(cap));
        let elapsed = self.started.elapsed();
        if elapsed + wait > self.policy.max_elapsed {
            return Err(GaveUp::Time(elapsed));
        }
        self.prev = wait;
        Ok(wait)
    }

    /// Some of the work went through: the count of failures in a row starts again.
    pub fn progress(&mut self) {
        self.failures = 0;
        self.prev = self.policy.base;
    }

    /// Waits as `next` says, or returns why not.
    pub async fn wait(&mut self, kind: Failure) -> Result<(), GaveUp> {
        let d = self.next(kind)?;
        tokio::time::sleep(d).await;
        Ok(())
    }
}

/// Anything the layer can sort into a `Failure`.
pub trait Classify {
    fn failure(&self) -> Failure;
}

impl<E: ProvideErrorMetadata> Classify for SdkError<E, HttpResponse> {
    fn failure(&self) -> Failure {
        classify(self)
    }
}

/// Error codes that mean the table's (or index's) capacity was exceeded.
const THROTTLED: &[&str] = &["ProvisionedThroughputExceededException", "ThrottlingException", "ThrottlingError", "TransactionInProgressException"];
/// Codes worth another attempt that are not the table's capacity.
const TRANSIENT: &[&str] = &["RequestLimitExceeded", "InternalServerError", "ServiceUnavailable", "InternalFailure", "ServiceUnavailableException", "LimitExceededException"];

/// The ThrottlingReason suffix of a partition's limit, and of a table's own limit.
const KEY_RANGE: &str = "KeyRangeThroughputExceeded";
const TABLE_RANGE: &str = "ProvisionedThroughputExceeded\"";

/// Sorts an SDK failure.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Failure::Transient,
        // Connection refused/reset, timeouts and a connection closed before the answer was
        // complete (a server restarted mid-call: the connector marks it transient) are worth
        // another try; a missing credential provider (also a dispatch failure) is not.
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() || d.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError) => Failure::Transient,
        SdkError::DispatchFailure(_) => Failure::Fatal,
        SdkError::ServiceError(s) => {
            let code = err.code().unwrap_or("");
            if THROTTLED.contains(&code) {
                // DynamoDB names a partition's limit in the exception's ThrottlingReasons.
                let body = s.raw().body().bytes().unwrap_or_default();
                let key_range = body.windows(KEY_RANGE.len()).any(|w| w == KEY_RANGE.as_bytes());
                if key_range && !body.windows(TABLE_RANGE.len()).any(|w| w == TABLE_RANGE.as_bytes()) {
                    Failure::KeyThrottled
                } else {
                    Failure::Throttled
                }
            } else if TRANSIENT.contains(&code) || s.raw().status().as_u16() >= 500 {
                Failure::Transient
            } else {
                Failure::Fatal
            }
        }
        _ => Failure::Fatal,
    }
}

/// A call that failed for good, with why the layer stopped.
#[derive(Debug)]
pub struct Failed<E> {
    pub error: E,
    pub gave_up: GaveUp,
}

/// Runs `call` until it succeeds, waiting under `backoff` between attempts. `on_failure` sees
/// every failure that can be retried (to count it, or slow the pacer on a throttle); a fatal
/// one is returned at once and is no retry.
pub async fn send<T, E, Fut>(backoff: &mut Backoff, mut on_failure: impl FnMut(Failure), mut call: impl FnMut() -> Fut) -> Result<T, Failed<E>>
where
    Fut: Future<Output = Result<T, E>>,
    E: Classify,
{
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(error) => {
                let kind = error.failure();
                if kind == Failure::Fatal {
                    return Err(Failed { error, gave_up: GaveUp::Fatal });
                }
                on_failure(kind);
                if let Err(gave_up) = backoff.wait(kind).await {
                    return Err(Failed { error, gave_up });
                }
            }
        }
    }
}

/// A number as DynamoDB compares it: sign, significant digits and exponent, so `1.50`, `1.5`
/// and `15E-1` are one value.
pub fn canonical_number(n: &str) -> String {
    let n = n.trim();
    let (neg, body) = match n.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, n.strip_prefix('+').unwrap_or(n)),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}");
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let sig = digits.trim_matches('0');
    if sig.is_empty() {
        return "0".into();
    }
    // value = 0.sig × 10^point
    let point = int.len() as i64 - lead as i64 + exp;
    format!("{}0.{sig}e{point}", if neg { "-" } else { "" })
}

/// A key attribute in a form equal for equal DynamoDB values.
pub fn key_part(v: &AttributeValue) -> Vec<u8> {
    match v {
        AttributeValue::S(s) => [b"S".as_slice(), s.as_bytes()].concat(),
        AttributeValue::N(n) => [b"N".as_slice(), canonical_number(n).as_bytes()].concat(),
        AttributeValue::B(b) => [b"B".as_slice(), b.as_ref()].concat(),
        other => format!("{other:?}").into_bytes(),
    }
}

/// `key_part` of one of our own values (the same bytes the SDK's value gives).
pub fn attr_key_part(v: &crate::value::attr::Attr) -> Vec<u8> {
    use crate::value::attr::Attr;
    match v {
        Attr::S(s) => [b"S".as_slice(), s.as_bytes()].concat(),
        Attr::N(n) => [b"N".as_slice(), canonical_number(n).as_bytes()].concat(),
        Attr::B(b) => [b"B".as_slice(), b.as_slice()].concat(),
        other => key_part(&crate::aws::dynamo::to_sdk(other)),
    }
}

/// Which of the sent requests (their primary keys, `attr_key_part` per key attribute) DynamoDB
/// handed back unprocessed, by primary key: a re-serialised string set or another spelling of a
/// number is still the same request.
pub fn unprocessed_keys<'a>(sent: impl Iterator<Item = &'a [Vec<u8>]>, back: &[WriteRequest], key_names: &[String]) -> Vec<bool> {
    let back: std::collections::HashSet<Vec<Vec<u8>>> = back.iter().filter_map(|r| request_key(r, key_names)).collect();
    sent.map(|k| back.contains(k)).collect()
}

/// `primary_key` of one of our own items or keys (the same bytes the SDK's map gives).
pub fn item_primary_key(item: &crate::value::attr::Item, key_names: &[String]) -> Vec<Vec<u8>> {
    key_names.iter().map(|n| item.get(n).map(attr_key_part).unwrap_or_default()).collect()
}

/// The primary key of an item or key map, given the key's attribute names.
pub fn primary_key(item: &HashMap<String, AttributeValue>, key_names: &[String]) -> Vec<Vec<u8>> {
    key_names.iter().map(|n| item.get(n).map(key_part).unwrap_or_default()).collect()
}

fn request_key(r: &WriteRequest, key_names: &[String]) -> Option<Vec<Vec<u8>>> {
    if let Some(p) = r.put_request() {
        return Some(primary_key(p.item(), key_names));
    }
    r.delete_request().map(|d| primary_key(d.key(), key_names))
}


#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{PutRequest};

    struct Fake(Failure);
    impl Classify for Fake {
        fn failure(&self) -> Failure {
            self.0
        }
    }

    const P: Policy = Policy { base: Duration::from_millis(50), cap: Duration::from_secs(2), max_attempts: 8, max_elapsed: Duration::from_secs(60) };

    struct Fails(Failure);
    impl Classify for Fails {
        fn failure(&self) -> Failure {
            self.0
        }
    }

    /// Regression: a fatal error (a bad request) was counted as a retry, though none followed.
    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_is_no_retry_and_a_transient_one_is() {
        let mut seen = Vec::new();
        let out: Result<(), _> = send(&mut Backoff::seeded(P, 1), |f| seen.push(f), || async { Err(Fails(Failure::Fatal)) }).await;
        assert!(matches!(out, Err(Failed { gave_up: GaveUp::Fatal, .. })));
        assert!(seen.is_empty(), "{seen:?}");
        let mut calls = 0;
        let out = send(&mut Backoff::seeded(P, 1), |f| seen.push(f), || {
            calls += 1;
            let first = calls == 1;
            async move { if first { Err(Fails(Failure::Transient)) } else { Ok(7) } }
        })
        .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(seen, vec![Failure::Transient]);
    }

    #[test]
    fn waits_are_decorrelated_jitter_within_base_and_cap() {
        let mut b = Backoff::seeded(P, 7);
        let mut prev = P.base;
        for _ in 0..7 {
            let w = b.next(Failure::Throttled).unwrap();
            assert!(w >= P.base && w <= P.cap, "{w:?}");
            assert!(w <= (prev * 3).max(P.base), "{w:?} after {prev:?}");
            prev = w;
        }
        assert_eq!(b.next(Failure::Throttled), Err(GaveUp::Attempts(8)));
        assert_eq!(Backoff::new(P).next(Failure::Fatal), Err(GaveUp::Fatal));
    }

    #[test]
    fn progress_restarts_the_count() {
        let mut b = Backoff::seeded(P, 1);
        for _ in 0..100 {
            for _ in 0..5 {
                b.next(Failure::Transient).unwrap();
            }
            b.progress();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_that_never_ends_stops_at_the_time_bound() {
        let policy = Policy { max_attempts: u32::MAX, ..P };
        let t0 = Instant::now();
        let mut b = Backoff::seeded(policy, 3);
        let mut calls = 0;
        let mut throttles = 0;
        let r: Result<(), _> = send(&mut b, |f| throttles += (f == Failure::Throttled) as u32, || {
            calls += 1;
            async { Err(Fake(Failure::Throttled)) }
        })
        .await;
        let e = r.unwrap_err();
        assert!(matches!(e.gave_up, GaveUp::Time(_)), "{:?}", e.gave_up);
        let spent = t0.elapsed();
        assert!(spent <= policy.max_elapsed && spent >= policy.max_elapsed - policy.cap, "{spent:?}");
        assert_eq!(calls, throttles);
        assert!(calls > 20, "{calls}");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_then_succeed_and_fatal_ones_are_not() {
        let t0 = Instant::now();
        let mut b = Backoff::seeded(P, 5);
        let mut left = 3;
        let r = send(&mut b, |_| {}, || {
            left -= 1;
            let out = if left >= 0 { Err(Fake(Failure::Transient)) } else { Ok(42) };
            async move { out }
        })
        .await;
        assert_eq!(r.ok(), Some(42));
        assert!(t0.elapsed() >= P.base * 4, "three waits of at least the base");
        let mut b = Backoff::new(P);
        let mut calls = 0;
        let r: Result<(), _> = send(&mut b, |_| {}, || {
            calls += 1;
            async { Err(Fake(Failure::Fatal)) }
        })
        .await;
        assert_eq!(r.unwrap_err().gave_up, GaveUp::Fatal);
        assert_eq!(calls, 1);
    }

    #[test]
    fn numbers_compare_as_dynamodb_does() {
        assert_eq!(canonical_number("1.50"), canonical_number("1.5"));
        assert_eq!(canonical_number("15E-1"), canonical_number("1.5"));
        assert_eq!(canonical_number("-007"), canonical_number("-7.0"));
        assert_eq!(canonical_number("0.000"), "0");
        assert_ne!(canonical_number("15"), canonical_number("1.5"));
        assert_ne!(canonical_number("-1"), canonical_number("1"));
    }

    #[test]
    fn unprocessed_requests_are_matched_by_key_not_by_equality() {
        let put = |k: &str, ss: Vec<&str>| {
            let item = HashMap::from([
                ("pk".to_string(), AttributeValue::N(k.into())),
                ("tags".to_string(), AttributeValue::Ss(ss.into_iter().map(String::from).collect())),
            ]);
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        };
        // Sent as our own values (a key written `1.50`), handed back respelled with the set reordered.
        let sent_keys: Vec<Vec<Vec<u8>>> = ["1.50", "2"].iter().map(|k| vec![attr_key_part(&crate::value::attr::Attr::N(k.to_string()))]).collect();
        let sent = [put("1.50", vec!["a", "b"]), put("2", vec!["c"])];
        let back = vec![put("1.5", vec!["b", "a"])];
        let keys = vec!["pk".to_string()];
        assert_eq!(unprocessed_keys(sent_keys.iter().map(Vec::as_slice), &back, &keys), vec![true, false]);
        assert!(!sent.contains(&back[0]), "deep equality would have counted it written");
    }
}
