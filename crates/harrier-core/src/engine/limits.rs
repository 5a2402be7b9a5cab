//! Per-client-address state shared by the I/O threads: open connections and a token bucket of
//! requests. Looked up once per connection (at accept), not per request: a connection keeps
//! its address's entry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(crate) struct IpState {
    conns: AtomicUsize,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub(crate) struct IpTable {
    map: Mutex<HashMap<IpAddr, Arc<IpState>>>,
    max_conns: usize,
    /// Tokens per second; 0: no rate limit.
    rate: f64,
    burst: f64,
}

impl IpTable {
    /// `None` when neither limit is on: then nothing is looked up at all.
    pub fn new(max_conns: usize, rate: f64, burst: u32) -> Option<IpTable> {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        if max_conns == 0 && rate == 0.0 {
            return None;
        }
        let burst = if burst > 0 {
            burst as f64
        } else {
            rate.ceil().max(1.0)
        };
        Some(IpTable {
            map: Mutex::new(HashMap::new()),
            max_conns,
            rate,
            burst,
        })
    }

    /// Counts a new connection from `ip`; `None` if the address has too many already.
    pub fn open(&self, ip: IpAddr, now: Instant) -> Option<Arc<IpState>> {
        let state = {
            let mut map = self.map.lock().unwrap();
            map.entry(ip)
                .or_insert_with(|| {
                    Arc::new(IpState {
                        conns: AtomicUsize::new(0),
                        bucket: Mutex::new(Bucket {
                            tokens: self.burst,
                            last: now,
                        }),
                    })
                })
                .clone()
        };
        if self.max_conns > 0 && state.conns.load(Ordering::Relaxed) >= self.max_conns {
            return None;
        }
        state.conns.fetch_add(1, Ordering::Relaxed);
        Some(state)
    }

    pub fn close(&self, state: &IpState) {
        state.conns.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes a token for one request; `Err(seconds)` says when the next one will be there.
    pub fn take(&self, state: &IpState, now: Instant) -> Result<(), u64> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let mut b = state.bucket.lock().unwrap();
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Forgets addresses with no connection whose bucket has refilled: they would start afresh.
    pub fn prune(&self, now: Instant) {
        let refill = if self.rate > 0.0 {
            self.burst / self.rate
        } else {
            0.0
        };
        self.map.lock().unwrap().retain(|_, s| {
            Arc::strong_count(s) > 1
                || now
                    .saturating_duration_since(s.bucket.lock().unwrap().last)
                    .as_secs_f64()
                    < refill
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_the_rate() {
        let t = IpTable::new(0, 2.0, 3).unwrap();
        let now = Instant::now();
        let s = t.open("10.0.0.1".parse().unwrap(), now).unwrap();
        assert!(t.take(&s, now).is_ok() && t.take(&s, now).is_ok() && t.take(&s, now).is_ok());
        assert_eq!(t.take(&s, now), Err(1));
        assert!(t.take(&s, now + Duration::from_millis(500)).is_ok());
        assert!(t.take(&s, now + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn caps_connections_per_address() {
        let t = IpTable::new(2, 0.0, 0).unwrap();
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = t.open(ip, now).unwrap();
        let _b = t.open(ip, now).unwrap();
        assert!(t.open(ip, now).is_none());
        assert!(t.open("10.0.0.2".parse().unwrap(), now).is_some());
        t.close(&a);
        drop(a);
        assert!(t.open(ip, now).is_some());
        assert!(IpTable::new(0, 0.0, 0).is_none());
    }
}
