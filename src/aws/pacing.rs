//! Write pacing, in one place: an adaptive token bucket counted in write capacity units (the
//! waits between retries are the retry layer's, `aws::retry`).
//!
//! Callers reserve the WCU of a batch before sending it; the bucket refills at the current rate
//! and holds at most a twentieth of a second of burst, so the rate over any window stays within a
//! few percent of the target. Throttling multiplies the rate by 0.75 (at most once per second,
//! however many calls were throttled in it); every second adds 5 % of the target back, up to the
//! target: the classic additive-increase / multiplicative-decrease saw below the real capacity.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Burst the bucket may hold, in seconds of the current rate.
const BURST_SECONDS: f64 = 0.05;
const DECREASE_FACTOR: f64 = 0.75;
const DECREASE_SPACING: Duration = Duration::from_secs(1);
/// Share of the target regained per second.
const RECOVERY_PER_SECOND: f64 = 0.05;
/// The rate never drops below this share of the target.
const MIN_SHARE: f64 = 0.02;

#[derive(Debug)]
struct State {
    rate: f64,
    tokens: f64,
    last: Instant,
    last_decrease: Option<Instant>,
    last_recovery: Instant,
}

/// None target: unpaced.
#[derive(Debug)]
pub struct Pacer {
    target: Option<f64>,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(target_wcu: Option<f64>) -> Pacer {
        let now = Instant::now();
        Pacer {
            target: target_wcu.filter(|t| *t > 0.0),
            state: Mutex::new(State { rate: target_wcu.unwrap_or(0.0), tokens: 0.0, last: now, last_decrease: None, last_recovery: now }),
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
        s.rate = (s.rate + target * RECOVERY_PER_SECOND * secs).min(target);
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

    /// A write was throttled: lower the rate.
    pub fn throttled(&self) {
        let Some(target) = self.target else { return };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.last_decrease.is_none_or(|d| now.duration_since(d) >= DECREASE_SPACING) {
            s.rate = (s.rate * DECREASE_FACTOR).max(target * MIN_SHARE);
            s.last_decrease = Some(now);
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
}
