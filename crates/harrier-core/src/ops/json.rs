//! A snapshot as JSON: what `app.metrics()` returns and what the dashboard's event stream
//! carries. Times in milliseconds, sizes in bytes, totals since the start.

use std::fmt::Write;

use super::stats::{Snapshot, PROTOCOL_NAMES, REFUSAL_NAMES};

/// A snapshot as one Server-Sent Event.
pub fn snapshot_event(s: &Snapshot) -> Vec<u8> {
    let json = snapshot_json(s);
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json.as_bytes());
    event.extend_from_slice(b"\n\n");
    event
}

pub fn snapshot_json(s: &Snapshot) -> String {
    let mut o = String::with_capacity(2048);
    let ms = |us: f64| us / 1000.0;
    let _ = write!(o, "{{\"uptimeSeconds\":{:.3},", s.uptime_seconds);
    let _ = write!(
        o,
        "\"requests\":{{\"total\":{},\"byStatus\":{{",
        s.requests()
    );
    for (i, n) in s.by_class.iter().enumerate() {
        let _ = write!(o, "{}\"{}xx\":{n}", if i > 0 { "," } else { "" }, i + 1);
    }
    o.push_str("},\"byProtocol\":{");
    for (i, n) in s.by_protocol.iter().enumerate() {
        let _ = write!(
            o,
            "{}\"{}\":{n}",
            if i > 0 { "," } else { "" },
            PROTOCOL_NAMES[i]
        );
    }
    let _ = write!(o, "}},\"inFlight\":{}}},", s.in_flight);
    let count: u64 = s.latency.iter().sum();
    let _ = write!(
        o,
        "\"latency\":{{\"count\":{count},\"sumMs\":{:.3},\"p50Ms\":{:.3},\"p90Ms\":{:.3},\"p99Ms\":{:.3},\"p999Ms\":{:.3},\"buckets\":[",
        ms(s.latency_sum_us as f64),
        ms(s.quantile_us(0.5)),
        ms(s.quantile_us(0.9)),
        ms(s.quantile_us(0.99)),
        ms(s.quantile_us(0.999)),
    );
    for (i, (bound, n)) in s.power_of_two_buckets().iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"leMs\":{},\"count\":{n}}}",
            if i > 0 { "," } else { "" },
            *bound as f64 / 1000.0
        );
    }
    let _ = write!(
        o,
        "]}},\"bytes\":{{\"in\":{},\"out\":{}}},",
        s.bytes_in, s.bytes_out
    );
    let _ = write!(
        o,
        "\"connections\":{{\"open\":{},\"idle\":{},\"accepted\":{}}},",
        s.open, s.idle, s.accepted
    );
    o.push_str("\"refusals\":{");
    for (i, n) in s.refusals.iter().enumerate() {
        let _ = write!(
            o,
            "{}\"{}\":{n}",
            if i > 0 { "," } else { "" },
            REFUSAL_NAMES[i]
        );
    }
    let _ = write!(
        o,
        "}},\"websockets\":{{\"open\":{},\"messagesIn\":{},\"messagesOut\":{}}},",
        s.ws_open, s.ws_in, s.ws_out
    );
    let [p50, p99, max] = s.loop_delay.map(|ns| ns as f64 / 1e6);
    let _ = write!(o, "\"process\":{{\"rssBytes\":{},\"eventLoopDelayMs\":{{\"p50\":{p50:.3},\"p99\":{p99:.3},\"max\":{max:.3}}}}},", s.rss_bytes);
    let _ = write!(o, "\"accessLog\":{{\"droppedLines\":{}}}}}", s.log_dropped);
    o
}
