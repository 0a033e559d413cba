//! Rate limits: a token bucket per key (`[rate_limit]`; an API key's name, or a webhook's
//! provider and peer address), answered with `429 rate_limited` and `Retry-After`. Limits are
//! per gateway instance. Full buckets are forgotten once many keys are held, so keys chosen by
//! clients (peer addresses) cannot grow memory without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Buckets held before full ones are forgotten (a full bucket equals a missing one).
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<String, Bucket>,
    /// The size at which the next prune runs; doubles while most buckets are in use, so a
    /// prune costs amortised O(1) per check.
    prune_at: usize,
}

impl RateLimiter {
    /// `per_second == 0` disables limiting.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    /// The number of keys with a bucket (for tests).
    pub fn keys(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.map.len() >= buckets.prune_at && !buckets.map.contains_key(key) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.map.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
                b.tokens + elapsed * per_second < burst
            });
            buckets.prune_at = PRUNE_AT.max(buckets.map.len() * 2);
        }
        // A known key is looked up by reference: only a new key allocates its copy.
        if let Some(bucket) = buckets.map.get_mut(key) {
            return self.take(bucket, now);
        }
        let bucket = buckets.map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
        });
        self.take(bucket, now)
    }

    /// Refills `bucket` for the time since its last check, then takes one token from it.
    fn take(&self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies_per_key() {
        let limiter = RateLimiter::new(10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("a", start).is_ok());
        }
        let wait = limiter.check_at("a", start).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(limiter.check_at("b", start).is_ok(), "keys are independent");
        assert!(limiter
            .check_at("a", start + Duration::from_millis(100))
            .is_ok());
    }

    #[test]
    fn full_buckets_are_forgotten_when_many_keys_are_held() {
        let limiter = RateLimiter::new(10, 2);
        let start = Instant::now();
        for i in 0..PRUNE_AT - 1 {
            assert!(limiter.check_at(&format!("peer-{i}"), start).is_ok());
        }
        // A busy key keeps its (empty) bucket through a prune.
        assert!(limiter.check_at("busy", start).is_ok());
        assert!(limiter.check_at("busy", start).is_ok());
        assert_eq!(limiter.keys(), PRUNE_AT);
        // 150 ms later every peer bucket is full again: the next new key prunes them.
        let later = start + Duration::from_millis(150);
        assert!(limiter.check_at("new", later).is_ok());
        assert_eq!(limiter.keys(), 2, "busy and new remain");
        assert!(
            limiter.check_at("busy", later).is_ok(),
            "refilled 1.5 tokens"
        );
        assert!(limiter.check_at("busy", later).is_err(), "the limit holds");
    }

    #[test]
    fn zero_disables() {
        let limiter = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check("a").is_ok());
        }
    }
}
