//! Write pacing, in one place: an adaptive token bucket counted in write capacity units (the
//! waits between retries are the retry layer's, `aws::retry`).
//!
//! Callers reserve the WCU of a batch before sending it; the bucket refills at the current rate
//! and holds at most a twentieth of a second of burst, so the rate over any window stays within a
//! few percent of the target. Throttling lowers the rate at most once per second, however many
//! calls were throttled in it, to 95 % of the WCU the table accepted in the last full second
//! (reported by the writers), but never by less than 5 % nor by more than a quarter; every second
//! adds 5 % of the target back, up to the target: an additive-increase / multiplicative-decrease
//! saw whose low edge sits just under what the table really took. (A fixed quarter off, as
//! before, left a target equal to the table's capacity at about 87 % of it on average.)
//!
//! `KeyLanes` paces single partition keys. DynamoDB caps each partition at 1,000 WCU/s, so a key
//! that carries a large share of the writes is throttled on its own while the table has capacity
//! left. A key throttled alone gets a lane: its own adaptive bucket starting below that cap, which
//! climbs back five times faster than the table's. Its items wait in the lane while the other keys
//! keep the table's rate. A lane not used for `LANE_IDLE` is dropped (looked for at most once a
//! `LANE_IDLE`, when a key is throttled): a finished key's lane does not stay for the whole run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Burst the bucket may hold, in seconds of the current rate.
const BURST_SECONDS: f64 = 0.05;
/// The deepest cut of one throttle, and the cut when nothing was accepted in the last second.
const DECREASE_FACTOR: f64 = 0.75;
/// The shallowest cut of one throttle.
const LEAST_DECREASE_FACTOR: f64 = 0.95;
/// Share of the last second's accepted WCU a throttled rate drops to.
const ACCEPTED_SHARE: f64 = 0.95;
const DECREASE_SPACING: Duration = Duration::from_secs(1);
/// Share of the target regained per second.
const RECOVERY_PER_SECOND: f64 = 0.05;
/// A key's lane climbs back faster: overshooting costs one key's retries, not the table's.
const LANE_RECOVERY_PER_SECOND: f64 = 0.25;
/// The rate never drops below this share of the target.
const MIN_SHARE: f64 = 0.02;

#[derive(Debug)]
struct State {
    rate: f64,
    tokens: f64,
    last: Instant,
    last_decrease: Option<Instant>,
    last_recovery: Instant,
    /// WCU accepted since `window_start`, and in the full second before it.
    window_start: Instant,
    accepted_now: f64,
    accepted_last: f64,
}

impl State {
    /// Moves the accepted-WCU window on to the second holding `now`.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(2) {
            self.accepted_last = 0.0;
            self.accepted_now = 0.0;
            self.window_start = now;
        } else if elapsed >= Duration::from_secs(1) {
            self.accepted_last = self.accepted_now;
            self.accepted_now = 0.0;
            self.window_start += Duration::from_secs(1);
        }
    }
}

/// None target: unpaced.
#[derive(Debug)]
pub struct Pacer {
    target: Option<f64>,
    recovery: f64,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(target_wcu: Option<f64>) -> Pacer {
        let now = Instant::now();
        Pacer {
            target: target_wcu.filter(|t| *t > 0.0),
            recovery: RECOVERY_PER_SECOND,
            state: Mutex::new(State {
                rate: target_wcu.unwrap_or(0.0),
                tokens: 0.0,
                last: now,
                last_decrease: None,
                last_recovery: now,
                window_start: now,
                accepted_now: 0.0,
                accepted_last: 0.0,
            }),
        }
    }

    pub fn target(&self) -> Option<f64> {
        self.target
    }

    /// The current rate in WCU/s (the target when unthrottled).
    pub fn rate(&self) -> Option<f64> {
        self.target.map(|_| self.state.lock().unwrap_or_else(|e| e.into_inner()).rate)
    }

    /// Reserves `cost` WCU and returns how long to wait before sending.
    pub fn reserve(&self, cost: f64) -> Duration {
        let Some(target) = self.target else { return Duration::ZERO };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let secs = now.duration_since(s.last_recovery).as_secs_f64();
        s.rate = (s.rate + target * self.recovery * secs).min(target);
        s.last_recovery = now;
        let elapsed = now.duration_since(s.last).as_secs_f64();
        s.last = now;
        s.tokens = (s.tokens + elapsed * s.rate).min(s.rate * BURST_SECONDS);
        s.tokens -= cost;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / s.rate)
        }
    }

    /// Async form of `reserve`.
    pub async fn acquire(&self, cost: f64) {
        let wait = self.reserve(cost);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Charges `extra` WCU beyond what was reserved (DynamoDB reported more consumed than the
    /// estimate; negative: less). The next reservations wait for the debt.
    pub fn charge(&self, extra: f64) {
        if self.target.is_none() || extra == 0.0 {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = s.rate * BURST_SECONDS;
        s.tokens = (s.tokens - extra).min(cap);
    }

    /// The table accepted `wcu` (written items or changes): what a throttle measures its cut by.
    pub fn accepted(&self, wcu: f64) {
        self.accepted_at(wcu, Instant::now());
    }

    fn accepted_at(&self, wcu: f64, now: Instant) {
        if self.target.is_none() {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.roll(now);
        s.accepted_now += wcu;
    }

    /// A write was throttled: lower the rate.
    pub fn throttled(&self) {
        self.throttled_at(Instant::now());
    }

    fn throttled_at(&self, now: Instant) {
        let Some(target) = self.target else { return };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.roll(now);
        if s.last_decrease.is_none_or(|d| now.saturating_duration_since(d) >= DECREASE_SPACING) {
            let lowered = (s.accepted_last * ACCEPTED_SHARE).clamp(s.rate * DECREASE_FACTOR, s.rate * LEAST_DECREASE_FACTOR);
            s.rate = lowered.max(target * MIN_SHARE);
            s.last_decrease = Some(now);
        }
    }
}

/// DynamoDB's write limit of one partition, which bounds the writes to one partition key value.
pub const PARTITION_WCU: f64 = 1000.0;
/// A lane unused this long is dropped: by then it has climbed back to the partition limit (a
/// quarter of it per second) or its key is done.
pub const LANE_IDLE: Duration = Duration::from_secs(30);

/// One key's lane: its pacer, and a turn taken to reserve from it, so reservations are made one
/// at a time just before each send and a lane's rate change applies to the next one.
#[derive(Debug)]
struct Lane {
    pacer: Pacer,
    turn: tokio::sync::Mutex<()>,
    last_used: Mutex<Instant>,
}

#[derive(Debug)]
struct LaneMap {
    lanes: HashMap<Vec<u8>, Arc<Lane>>,
    last_prune: Instant,
}

impl Default for LaneMap {
    fn default() -> Self {
        LaneMap { lanes: HashMap::new(), last_prune: Instant::now() }
    }
}

/// Per-key pacers for the keys throttled on their own (see the module note).
#[derive(Debug, Default)]
pub struct KeyLanes {
    map: Mutex<LaneMap>,
}

impl KeyLanes {
    fn get(&self, key: &[u8]) -> Option<Arc<Lane>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).lanes.get(key).cloned()
    }

    /// How many lanes there are.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).lanes.len()
    }

    /// Whether the key was throttled on its own.
    pub fn laned(&self, key: &[u8]) -> bool {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).lanes.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current rate of a key's lane.
    pub fn rate(&self, key: &[u8]) -> Option<f64> {
        self.get(key).and_then(|l| l.pacer.rate())
    }

    /// The key was throttled on its own: lower its lane (made at the partition limit).
    pub fn throttled(&self, key: &[u8]) {
        self.throttled_at(key, Instant::now());
    }

    fn throttled_at(&self, key: &[u8], now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Lanes idle for LANE_IDLE go, looked for at most once per LANE_IDLE.
        if now.saturating_duration_since(map.last_prune) >= LANE_IDLE {
            map.lanes.retain(|_, l| now.saturating_duration_since(*l.last_used.lock().unwrap_or_else(|e| e.into_inner())) < LANE_IDLE);
            map.last_prune = now;
        }
        let lane = map.lanes.entry(key.to_vec()).or_insert_with(|| {
            Arc::new(Lane { pacer: Pacer { recovery: LANE_RECOVERY_PER_SECOND, ..Pacer::new(Some(PARTITION_WCU)) }, turn: tokio::sync::Mutex::new(()), last_used: Mutex::new(now) })
        });
        *lane.last_used.lock().unwrap_or_else(|e| e.into_inner()) = now;
        lane.pacer.throttled();
    }

    /// Waits until the given keys' lanes let `cost` WCU of each through (keys without a lane do
    /// not wait).
    pub async fn wait<'a>(&self, keys: impl Iterator<Item = (&'a [u8], f64)>) {
        let mut costs: Vec<(Arc<Lane>, f64)> = Vec::new();
        for (k, cost) in keys {
            if let Some(lane) = self.get(k) {
                match costs.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &lane)) {
                    Some((_, c)) => *c += cost,
                    None => costs.push((lane, cost)),
                }
            }
        }
        for (lane, cost) in costs {
            *lane.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            let _turn = lane.turn.lock().await;
            lane.pacer.acquire(cost).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_space_out_at_the_target_rate() {
        let p = Pacer::new(Some(1000.0));
        let mut total = Duration::ZERO;
        for _ in 0..40 {
            total = p.reserve(25.0);
        }
        // 1000 WCU reserved at 1000 WCU/s: the last reservation waits about one second.
        assert!(total > Duration::from_millis(900) && total < Duration::from_millis(1100), "{total:?}");
        assert_eq!(Pacer::new(None).reserve(1e9), Duration::ZERO);
    }

    #[test]
    fn consumed_capacity_beyond_the_reservation_is_paid_by_the_next_one() {
        let p = Pacer::new(Some(100.0));
        let _ = p.reserve(1.0);
        // DynamoDB said the update cost 50 units, not the one reserved.
        p.charge(49.0);
        let wait = p.reserve(1.0);
        assert!(wait > Duration::from_millis(450) && wait < Duration::from_millis(560), "{wait:?}");
    }

    #[test]
    fn throttling_lowers_the_rate_once_per_spacing() {
        let p = Pacer::new(Some(1000.0));
        p.throttled();
        p.throttled();
        assert!((p.rate().unwrap() - 750.0).abs() < 1.0);
    }

    #[test]
    fn a_throttle_lowers_the_rate_to_just_under_what_the_table_accepted() {
        let p = Pacer::new(Some(4000.0));
        let t0 = Instant::now();
        // 3,900 WCU accepted in the first second, then a throttle in the second one.
        for i in 0..39 {
            p.accepted_at(100.0, t0 + Duration::from_millis(i * 25));
        }
        p.throttled_at(t0 + Duration::from_millis(1_200));
        assert!((p.rate().unwrap() - 3_705.0).abs() < 1.0, "{:?}", p.rate());

        // One lump accepted at t0, a throttle `after` it: the rate it leaves.
        let rate_after = |accepted: f64, after: u64| {
            let p = Pacer::new(Some(4000.0));
            p.accepted_at(accepted, t0);
            p.throttled_at(t0 + Duration::from_millis(after));
            p.rate().unwrap()
        };
        // A table that took far less than the rate: the cut is a quarter, no deeper.
        assert!((rate_after(1_000.0, 1_500) - 3_000.0).abs() < 1.0);
        // One that took all of it: still a cut of 5 %.
        assert!((rate_after(5_000.0, 1_500) - 3_800.0).abs() < 1.0);
        // What was accepted two seconds ago or earlier does not count.
        assert!((rate_after(3_900.0, 2_500) - 3_000.0).abs() < 1.0);
    }

    /// Regression: a lane went only when its key was written again, so the lanes of finished
    /// keys stayed for the whole run, and past 10,000 every new throttle scanned them all under
    /// the lock every item takes.
    #[test]
    fn lanes_of_keys_no_longer_used_expire() {
        let lanes = KeyLanes::default();
        let t0 = Instant::now();
        for i in 0..20_000u32 {
            lanes.throttled_at(&i.to_le_bytes(), t0);
        }
        assert_eq!(lanes.len(), 20_000, "no lane is idle yet");
        lanes.throttled_at(b"still-hot", t0 + LANE_IDLE / 2);
        lanes.throttled_at(b"new", t0 + LANE_IDLE + Duration::from_secs(1));
        assert_eq!(lanes.len(), 2, "the 20,000 idle lanes went; the recent and the new stay");
        assert!(lanes.laned(b"still-hot") && lanes.laned(b"new"));
    }

    #[tokio::test]
    async fn a_throttled_key_gets_a_lane_the_others_do_not_wait_for() {
        let lanes = KeyLanes::default();
        lanes.throttled(b"hot");
        assert!(!lanes.laned(b"cold"));
        assert_eq!(lanes.rate(b"hot"), Some(PARTITION_WCU * DECREASE_FACTOR));
        let t0 = Instant::now();
        lanes.wait([(&b"cold"[..], 1e6)].into_iter()).await;
        assert!(t0.elapsed() < Duration::from_millis(50), "a key without a lane does not wait");
        // 500 WCU of the hot key at 750 WCU/s (a little more as the lane recovers): at least
        // 0.6 s, however fast the machine.
        for _ in 0..20 {
            lanes.wait([(&b"hot"[..], 25.0), (&b"cold"[..], 25.0)].into_iter()).await;
        }
        let took = t0.elapsed();
        assert!(took > Duration::from_millis(600) && took < Duration::from_secs(3), "{took:?}");
    }
}
