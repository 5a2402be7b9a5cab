//! A snapshot in the Prometheus text exposition format (0.0.4): what `metricsRoute` answers.

use std::fmt::Write;

use super::stats::{Snapshot, PROTOCOL_NAMES, REFUSAL_NAMES};

pub const CONTENT_TYPE: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

pub fn exposition(s: &Snapshot) -> String {
    let mut o = String::with_capacity(8192);
    family(
        &mut o,
        "harrier_http_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (i, n) in s.by_class.iter().enumerate() {
        let _ = writeln!(
            o,
            "harrier_http_requests_total{{status=\"{}xx\"}} {n}",
            i + 1
        );
    }
    family(
        &mut o,
        "harrier_http_requests_by_protocol_total",
        "counter",
        "Requests answered, by protocol.",
    );
    for (i, n) in s.by_protocol.iter().enumerate() {
        let _ = writeln!(
            o,
            "harrier_http_requests_by_protocol_total{{protocol=\"{}\"}} {n}",
            PROTOCOL_NAMES[i]
        );
    }
    family(
        &mut o,
        "harrier_http_requests_in_flight",
        "gauge",
        "Requests the handler holds, not yet answered.",
    );
    let _ = writeln!(o, "harrier_http_requests_in_flight {}", s.in_flight);
    family(
        &mut o,
        "harrier_http_request_duration_seconds",
        "histogram",
        "From the end of a request's head to the last byte of its answer handed to the socket.",
    );
    let buckets = s.power_of_two_buckets();
    for (bound, n) in &buckets {
        let _ = writeln!(
            o,
            "harrier_http_request_duration_seconds_bucket{{le=\"{}\"}} {n}",
            *bound as f64 / 1e6
        );
    }
    let count = buckets.last().map_or(0, |b| b.1);
    let _ = writeln!(
        o,
        "harrier_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        o,
        "harrier_http_request_duration_seconds_sum {}",
        s.latency_sum_us as f64 / 1e6
    );
    let _ = writeln!(o, "harrier_http_request_duration_seconds_count {count}");
    family(
        &mut o,
        "harrier_http_received_bytes_total",
        "counter",
        "Bytes read from clients.",
    );
    let _ = writeln!(o, "harrier_http_received_bytes_total {}", s.bytes_in);
    family(
        &mut o,
        "harrier_http_sent_bytes_total",
        "counter",
        "Bytes written to clients.",
    );
    let _ = writeln!(o, "harrier_http_sent_bytes_total {}", s.bytes_out);
    family(
        &mut o,
        "harrier_connections_open",
        "gauge",
        "Client connections open.",
    );
    let _ = writeln!(o, "harrier_connections_open {}", s.open);
    family(
        &mut o,
        "harrier_connections_idle",
        "gauge",
        "Open client connections with no request under way.",
    );
    let _ = writeln!(o, "harrier_connections_idle {}", s.idle);
    family(
        &mut o,
        "harrier_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    );
    let _ = writeln!(o, "harrier_connections_accepted_total {}", s.accepted);
    family(
        &mut o,
        "harrier_refusals_total",
        "counter",
        "Requests the engine refused (by status) and connections a limit closed.",
    );
    for (i, n) in s.refusals.iter().enumerate() {
        let reason = match REFUSAL_NAMES[i] {
            "connectionLimit" => "connection_limit",
            code => code,
        };
        let _ = writeln!(o, "harrier_refusals_total{{reason=\"{reason}\"}} {n}");
    }
    family(
        &mut o,
        "harrier_websockets_open",
        "gauge",
        "WebSockets open.",
    );
    let _ = writeln!(o, "harrier_websockets_open {}", s.ws_open);
    family(
        &mut o,
        "harrier_websocket_messages_received_total",
        "counter",
        "WebSocket messages received.",
    );
    let _ = writeln!(o, "harrier_websocket_messages_received_total {}", s.ws_in);
    family(
        &mut o,
        "harrier_websocket_messages_sent_total",
        "counter",
        "WebSocket messages sent (a publish counts once per subscriber).",
    );
    let _ = writeln!(o, "harrier_websocket_messages_sent_total {}", s.ws_out);
    family(
        &mut o,
        "harrier_process_resident_memory_bytes",
        "gauge",
        "Resident set size of the process.",
    );
    let _ = writeln!(o, "harrier_process_resident_memory_bytes {}", s.rss_bytes);
    family(
        &mut o,
        "harrier_event_loop_delay_seconds",
        "gauge",
        "Event-loop delay of the JavaScript thread over the last second, as it last reported it.",
    );
    for (stat, ns) in [
        ("p50", s.loop_delay[0]),
        ("p99", s.loop_delay[1]),
        ("max", s.loop_delay[2]),
    ] {
        let _ = writeln!(
            o,
            "harrier_event_loop_delay_seconds{{stat=\"{stat}\"}} {}",
            ns as f64 / 1e9
        );
    }
    family(
        &mut o,
        "harrier_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(o, "harrier_uptime_seconds {:.3}", s.uptime_seconds);
    family(
        &mut o,
        "harrier_access_log_dropped_lines_total",
        "counter",
        "Access log lines that could not be written.",
    );
    let _ = writeln!(
        o,
        "harrier_access_log_dropped_lines_total {}",
        s.log_dropped
    );
    o
}
