//! The engine's figures: counters each I/O thread keeps for itself (one writer each, so a
//! count is a plain load and store, no locked instruction on the hot path), read and summed
//! by whoever asks for a snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Latency histogram: 16 buckets per power of two of microseconds (values within 6.25% of
/// each other share a bucket), from 0 up to 2^30 µs (18 minutes); longer ones go in the last.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
const MAX_EXP: u32 = 30;
pub(crate) const BUCKETS: usize = (MAX_EXP - SUB_BITS + 1) as usize * SUB;

/// The bucket of a latency in whole microseconds.
pub(crate) fn bucket(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros();
    let sub = (us >> (exp - SUB_BITS)) as usize & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The smallest latency (µs) of a bucket.
pub(crate) fn bucket_floor(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index / SUB) as u32 + SUB_BITS - 1;
    (1u64 << exp) + (((index % SUB) as u64) << (exp - SUB_BITS))
}

/// Status classes, 1xx to 5xx.
pub(crate) const CLASSES: usize = 5;

/// What a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http10 = 0,
    Http11 = 1,
    Http2 = 2,
}
pub(crate) const PROTOCOLS: usize = 3;
pub(crate) const PROTOCOL_NAMES: [&str; PROTOCOLS] = ["http/1.0", "http/1.1", "h2"];

/// Answers the engine gives instead of the handler when a request is refused, and
/// connections closed at once by a connection limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest = 0,
    Timeout = 1,
    TooLarge = 2,
    UriTooLong = 3,
    TooManyRequests = 4,
    HeadersTooLarge = 5,
    Unavailable = 6,
    ConnectionLimit = 7,
}
pub(crate) const REFUSALS: usize = 8;
pub(crate) const REFUSAL_NAMES: [&str; REFUSALS] = [
    "400",
    "408",
    "413",
    "414",
    "429",
    "431",
    "503",
    "connectionLimit",
];

impl Refusal {
    /// The refusal an engine-made answer with this status is, if it is one.
    pub fn of_status(status: u16) -> Option<Refusal> {
        Some(match status {
            400 => Refusal::BadRequest,
            408 => Refusal::Timeout,
            413 => Refusal::TooLarge,
            414 => Refusal::UriTooLong,
            429 => Refusal::TooManyRequests,
            431 => Refusal::HeadersTooLarge,
            503 => Refusal::Unavailable,
            _ => return None,
        })
    }
}

/// One thread's counters. Only that thread writes them.
pub(crate) struct ThreadStats {
    by_class: [AtomicU64; CLASSES],
    by_protocol: [AtomicU64; PROTOCOLS],
    latency: Box<[AtomicU64; BUCKETS]>,
    latency_sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub(crate) accepted: AtomicU64,
    refusals: [AtomicU64; REFUSALS],
    ws_open: AtomicU64,
    ws_in: AtomicU64,
    ws_out: AtomicU64,
    /// Gauges the sweep sets (every 100 ms).
    idle: AtomicU64,
    in_flight: AtomicU64,
}

/// Adds to a counter only this thread writes: no read-modify-write instruction needed.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl ThreadStats {
    pub fn new() -> ThreadStats {
        ThreadStats {
            by_class: Default::default(),
            by_protocol: Default::default(),
            latency: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            latency_sum_us: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refusals: Default::default(),
            ws_open: AtomicU64::new(0),
            ws_in: AtomicU64::new(0),
            ws_out: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    /// A request answered: its status, what it came over, and how long from its head to
    /// the last byte of its answer handed to the transport.
    #[inline]
    pub fn request(&self, status: u16, protocol: Protocol, latency_us: u64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        bump(&self.by_class[class], 1);
        bump(&self.by_protocol[protocol as usize], 1);
        bump(&self.latency[bucket(latency_us)], 1);
        bump(&self.latency_sum_us, latency_us);
    }

    #[inline]
    pub fn bytes_in(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }

    #[inline]
    pub fn bytes_out(&self, n: usize) {
        bump(&self.bytes_out, n as u64);
    }

    pub fn accepted(&self) {
        bump(&self.accepted, 1);
    }

    pub fn refused(&self, why: Refusal) {
        bump(&self.refusals[why as usize], 1);
    }

    pub fn ws_opened(&self) {
        bump(&self.ws_open, 1);
    }

    pub fn ws_closed(&self) {
        self.ws_open
            .store(self.ws_open.load(Relaxed).saturating_sub(1), Relaxed);
    }

    #[inline]
    pub fn ws_message_in(&self) {
        bump(&self.ws_in, 1);
    }

    #[inline]
    pub fn ws_messages_out(&self, n: u64) {
        bump(&self.ws_out, n);
    }

    pub fn set_gauges(&self, idle: usize, in_flight: usize) {
        self.idle.store(idle as u64, Relaxed);
        self.in_flight.store(in_flight as u64, Relaxed);
    }
}

/// The JS thread's event-loop delay, as it last reported it (nanoseconds).
#[derive(Default)]
pub(crate) struct LoopDelay {
    pub p50: AtomicU64,
    pub p99: AtomicU64,
    pub max: AtomicU64,
}

/// Every thread's counters, and what is not per thread.
pub(crate) struct Stats {
    pub threads: Vec<ThreadStats>,
    pub started: Instant,
    pub loop_delay: LoopDelay,
    /// Access log lines that could not be written (counted by the log's writer thread).
    pub log_dropped: AtomicU64,
}

/// The figures at one moment, summed over the threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub uptime_seconds: f64,
    pub by_class: [u64; CLASSES],
    pub by_protocol: [u64; PROTOCOLS],
    pub in_flight: u64,
    /// Per bucket (not cumulative).
    pub latency: Vec<u64>,
    pub latency_sum_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub open: u64,
    pub idle: u64,
    pub accepted: u64,
    pub refusals: [u64; REFUSALS],
    pub ws_open: u64,
    pub ws_in: u64,
    pub ws_out: u64,
    pub rss_bytes: u64,
    /// Event-loop delay of the JS thread, ns.
    pub loop_delay: [u64; 3],
    pub log_dropped: u64,
}

impl Stats {
    pub fn new(threads: usize) -> Stats {
        Stats {
            threads: (0..threads).map(|_| ThreadStats::new()).collect(),
            started: Instant::now(),
            loop_delay: LoopDelay::default(),
            log_dropped: AtomicU64::new(0),
        }
    }

    pub fn report_loop_delay(&self, p50: u64, p99: u64, max: u64) {
        self.loop_delay.p50.store(p50, Relaxed);
        self.loop_delay.p99.store(p99, Relaxed);
        self.loop_delay.max.store(max, Relaxed);
    }

    pub fn snapshot(&self, open: u64) -> Snapshot {
        let mut s = Snapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            by_class: [0; CLASSES],
            by_protocol: [0; PROTOCOLS],
            in_flight: 0,
            latency: vec![0; BUCKETS],
            latency_sum_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            open,
            idle: 0,
            accepted: 0,
            refusals: [0; REFUSALS],
            ws_open: 0,
            ws_in: 0,
            ws_out: 0,
            rss_bytes: rss_bytes(),
            loop_delay: [
                self.loop_delay.p50.load(Relaxed),
                self.loop_delay.p99.load(Relaxed),
                self.loop_delay.max.load(Relaxed),
            ],
            log_dropped: self.log_dropped.load(Relaxed),
        };
        let add = |into: &mut [u64], from: &[AtomicU64]| {
            into.iter_mut()
                .zip(from)
                .for_each(|(a, b)| *a += b.load(Relaxed))
        };
        for t in &self.threads {
            add(&mut s.by_class, &t.by_class);
            add(&mut s.by_protocol, &t.by_protocol);
            add(&mut s.latency, &t.latency[..]);
            add(&mut s.refusals, &t.refusals);
            s.latency_sum_us += t.latency_sum_us.load(Relaxed);
            s.bytes_in += t.bytes_in.load(Relaxed);
            s.bytes_out += t.bytes_out.load(Relaxed);
            s.accepted += t.accepted.load(Relaxed);
            s.ws_open += t.ws_open.load(Relaxed);
            s.ws_in += t.ws_in.load(Relaxed);
            s.ws_out += t.ws_out.load(Relaxed);
            s.idle += t.idle.load(Relaxed);
            s.in_flight += t.in_flight.load(Relaxed);
        }
        s.idle = s.idle.min(open);
        s
    }
}

impl Snapshot {
    /// Adds another engine's figures (a port group's): counts and gauges add up; the
    /// process's memory and the JS threads' loop delays are not summed (the larger stays).
    pub fn add(&mut self, o: &Snapshot) {
        let add =
            |into: &mut [u64], from: &[u64]| into.iter_mut().zip(from).for_each(|(a, b)| *a += b);
        self.uptime_seconds = self.uptime_seconds.max(o.uptime_seconds);
        add(&mut self.by_class, &o.by_class);
        add(&mut self.by_protocol, &o.by_protocol);
        add(&mut self.latency, &o.latency);
        add(&mut self.refusals, &o.refusals);
        self.in_flight += o.in_flight;
        self.latency_sum_us += o.latency_sum_us;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.open += o.open;
        self.idle += o.idle;
        self.accepted += o.accepted;
        self.ws_open += o.ws_open;
        self.ws_in += o.ws_in;
        self.ws_out += o.ws_out;
        self.rss_bytes = self.rss_bytes.max(o.rss_bytes);
        for (a, b) in self.loop_delay.iter_mut().zip(o.loop_delay) {
            *a = (*a).max(b);
        }
        self.log_dropped += o.log_dropped;
    }

    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// The latency (µs) under which a fraction `q` of the requests were answered: the middle
    /// of the bucket that holds that rank. 0 without requests.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let count: u64 = self.latency.iter().sum();
        if count == 0 {
            return 0.0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let low = bucket_floor(i) as f64;
                let high = if i + 1 < BUCKETS {
                    bucket_floor(i + 1) as f64
                } else {
                    low * 2.0
                };
                return (low + high) / 2.0;
            }
        }
        0.0
    }

    /// Cumulative counts at each power of two of microseconds (2^0 ..= 2^MAX_EXP): how many
    /// requests took less than that.
    pub fn power_of_two_buckets(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(MAX_EXP as usize + 1);
        let mut cumulative = 0;
        let mut next = 0;
        for exp in 0..=MAX_EXP {
            let bound = 1u64 << exp;
            // Buckets wholly below the bound: the bucket of a power of two starts at it.
            let end = if exp == MAX_EXP {
                BUCKETS
            } else {
                bucket(bound)
            };
            while next < end {
                cumulative += self.latency[next];
                next += 1;
            }
            out.push((bound, cumulative));
        }
        out
    }
}

/// The process's resident set, bytes (0 where the platform does not say).
fn rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(pages) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
            {
                // SAFETY: sysconf has no preconditions.
                let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
                return pages * page.max(0) as u64;
            }
        }
        0
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(bucket_floor(b) <= us, "{us} in {b}");
            if b + 1 < BUCKETS {
                assert!(us < bucket_floor(b + 1), "{us}");
            }
            last = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for exp in 0..MAX_EXP {
            assert_eq!(
                bucket_floor(bucket(1 << exp)),
                1 << exp,
                "a power of two starts its bucket"
            );
        }
    }

    #[test]
    fn quantiles_and_cumulative_buckets() {
        let stats = Stats::new(2);
        for _ in 0..90 {
            stats.threads[0].request(200, Protocol::Http11, 100);
        }
        for _ in 0..10 {
            stats.threads[1].request(503, Protocol::Http10, 10_000);
        }
        let s = stats.snapshot(0);
        assert_eq!(s.requests(), 100);
        assert_eq!(s.by_class, [0, 90, 0, 0, 10]);
        assert_eq!(s.by_protocol, [10, 90, 0]);
        assert_eq!(s.latency_sum_us, 90 * 100 + 10 * 10_000);
        let p50 = s.quantile_us(0.5);
        assert!((96.0..=104.0).contains(&p50), "{p50}");
        let p99 = s.quantile_us(0.99);
        assert!((9_700.0..=10_300.0).contains(&p99), "{p99}");
        let cumulative = s.power_of_two_buckets();
        let below = |us: u64| cumulative.iter().find(|(b, _)| *b == us).unwrap().1;
        assert_eq!(below(64), 0);
        assert_eq!(below(128), 90);
        assert_eq!(below(8192), 90);
        assert_eq!(below(16384), 100);
        assert_eq!(cumulative.last().unwrap().1, 100);
    }
}
