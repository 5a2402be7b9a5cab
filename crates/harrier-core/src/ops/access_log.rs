//! The access log: one line per request (and per WebSocket session), formatted on the I/O
//! thread into a buffer of its own and handed to a writer thread when the buffer fills or
//! every second, so that no request ever waits on the disk. A destination that cannot be
//! written is reported once; the lines meant for it are counted as dropped.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::stats::Stats;
use crate::http1::encode::write_decimal;

/// A thread's buffer is handed over past this.
const HAND_OVER_AT: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The Apache/nginx combined log format.
    Combined,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    pub format: LogFormat,
    /// A file to append to; standard output when absent.
    pub path: Option<PathBuf>,
}

/// What a request's line says about it, taken from its head when it arrives (only when the
/// log is on).
pub(crate) struct LogEntry {
    /// Method, target, user agent, referer, one after the other.
    text: Vec<u8>,
    method: usize,
    target: usize,
    user_agent: Option<usize>,
    referer: Option<usize>,
    pub remote: Option<IpAddr>,
    pub protocol: &'static str,
}

impl LogEntry {
    pub fn new(
        method: &[u8],
        target: &[u8],
        user_agent: Option<&[u8]>,
        referer: Option<&[u8]>,
        remote: Option<IpAddr>,
        protocol: &'static str,
    ) -> LogEntry {
        let mut text = Vec::with_capacity(
            method.len()
                + target.len()
                + user_agent.map_or(0, <[u8]>::len)
                + referer.map_or(0, <[u8]>::len),
        );
        text.extend_from_slice(method);
        text.extend_from_slice(target);
        if let Some(ua) = user_agent {
            text.extend_from_slice(ua);
        }
        if let Some(r) = referer {
            text.extend_from_slice(r);
        }
        LogEntry {
            text,
            method: method.len(),
            target: target.len(),
            user_agent: user_agent.map(<[u8]>::len),
            referer: referer.map(<[u8]>::len),
            remote,
            protocol,
        }
    }

    fn parts(&self) -> (&[u8], &[u8], Option<&[u8]>, Option<&[u8]>) {
        let (method, rest) = self.text.split_at(self.method);
        let (target, rest) = rest.split_at(self.target);
        let (ua, rest) = rest.split_at(self.user_agent.unwrap_or(0));
        let referer = &rest[..self.referer.unwrap_or(0)];
        (
            method,
            target,
            self.user_agent.map(|_| ua),
            self.referer.map(|_| referer),
        )
    }
}

/// How a request ended, for its line.
pub(crate) struct Outcome {
    pub status: u16,
    /// Body bytes of the answer (for a WebSocket session, bytes sent over it).
    pub bytes: u64,
    pub duration: Duration,
    /// The client left before the answer was whole.
    pub aborted: bool,
}

/// One I/O thread's end of the log.
pub(crate) struct ThreadLog {
    format: LogFormat,
    buf: Vec<u8>,
    lines: u64,
    stamp: Stamp,
    to_writer: mpsc::Sender<(Vec<u8>, u64)>,
}

impl ThreadLog {
    pub fn line(&mut self, entry: &LogEntry, outcome: &Outcome) {
        let ended = SystemTime::now();
        let began = ended.checked_sub(outcome.duration).unwrap_or(ended);
        match self.format {
            LogFormat::Combined => combined(&mut self.buf, &mut self.stamp, entry, outcome, began),
            LogFormat::Json => json(&mut self.buf, &mut self.stamp, entry, outcome, began),
        }
        self.lines += 1;
        if self.buf.len() >= HAND_OVER_AT {
            self.hand_over();
        }
    }

    /// Gives what is buffered to the writer thread (the sweep calls this every second).
    pub fn hand_over(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(HAND_OVER_AT + 1024));
        let _ = self.to_writer.send((buf, std::mem::take(&mut self.lines)));
    }
}

impl Drop for ThreadLog {
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// Starts the writer thread; every I/O thread gets a `ThreadLog` from `thread_log`. The
/// writer ends once every `ThreadLog` is dropped and what they sent is written.
pub(crate) struct AccessLog {
    format: LogFormat,
    to_writer: mpsc::Sender<(Vec<u8>, u64)>,
}

impl AccessLog {
    pub fn start(config: &AccessLogConfig, stats: Arc<Stats>) -> std::io::Result<AccessLog> {
        let (to_writer, from_threads) = mpsc::channel::<(Vec<u8>, u64)>();
        let path = config.path.clone();
        std::thread::Builder::new()
            .name("harrier-log".into())
            .spawn(move || write_lines(path, from_threads, &stats))?;
        Ok(AccessLog {
            format: config.format,
            to_writer,
        })
    }

    pub fn thread_log(&self) -> ThreadLog {
        ThreadLog {
            format: self.format,
            buf: Vec::with_capacity(HAND_OVER_AT + 1024),
            lines: 0,
            stamp: Stamp::default(),
            to_writer: self.to_writer.clone(),
        }
    }
}

fn write_lines(path: Option<PathBuf>, from_threads: mpsc::Receiver<(Vec<u8>, u64)>, stats: &Stats) {
    let mut out: Result<Box<dyn Write>, String> = match &path {
        None => Ok(Box::new(std::io::stdout())),
        Some(p) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(|f| Box::new(f) as Box<dyn Write>)
            .map_err(|e| format!("{}: {e}", p.display())),
    };
    let mut reported = false;
    for (buf, lines) in from_threads {
        let written = match &mut out {
            Ok(w) => w
                .write_all(&buf)
                .and_then(|_| w.flush())
                .map_err(|e| match &path {
                    Some(p) => format!("{}: {e}", p.display()),
                    None => format!("standard output: {e}"),
                }),
            Err(e) => Err(e.clone()),
        };
        if let Err(why) = written {
            if !reported {
                eprintln!("harrier: the access log cannot be written ({why}); its lines are dropped (counted in harrier_access_log_dropped_lines_total)");
                reported = true;
            }
            stats
                .log_dropped
                .fetch_add(lines, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The time of a line, formatted once per second.
#[derive(Default)]
pub(crate) struct Stamp {
    secs: u64,
    /// `01/Dec/2026:13:20:00 +0000`
    combined: Vec<u8>,
    /// `2026-12-01T13:20:00`
    iso: Vec<u8>,
}

impl Stamp {
    /// The stamps of `t`, and its milliseconds.
    fn at(&mut self, t: SystemTime) -> (&[u8], &[u8], u32) {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.combined.is_empty() || since.as_secs() != self.secs {
            self.secs = since.as_secs();
            let (y, mo, d, h, mi, s, _) = civil(t);
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            self.combined.clear();
            let _ = write!(
                self.combined,
                "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
                MONTHS[mo as usize - 1]
            );
            self.iso.clear();
            let _ = write!(self.iso, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        }
        (&self.combined, &self.iso, since.subsec_millis())
    }
}

fn remote(o: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    o.push(b'.');
                }
                write_decimal(o, u64::from(*octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(o, "{v6}");
        }
    }
}

fn combined(o: &mut Vec<u8>, stamp: &mut Stamp, e: &LogEntry, r: &Outcome, began: SystemTime) {
    let (method, target, ua, referer) = e.parts();
    match e.remote {
        Some(ip) => remote(o, ip),
        None => o.push(b'-'),
    }
    o.extend_from_slice(b" - - [");
    o.extend_from_slice(stamp.at(began).0);
    o.extend_from_slice(b"] \"");
    escaped(o, method);
    o.push(b' ');
    escaped(o, target);
    o.push(b' ');
    o.extend_from_slice(protocol_upper(e.protocol).as_bytes());
    o.extend_from_slice(b"\" ");
    write_decimal(o, u64::from(r.status));
    o.push(b' ');
    if r.bytes == 0 {
        o.push(b'-');
    } else {
        write_decimal(o, r.bytes);
    }
    for field in [referer, ua] {
        o.extend_from_slice(b" \"");
        match field {
            Some(v) => escaped(o, v),
            None => o.push(b'-'),
        }
        o.push(b'"');
    }
    o.push(b'\n');
}

fn protocol_upper(p: &str) -> &str {
    match p {
        "http/1.0" => "HTTP/1.0",
        "http/1.1" => "HTTP/1.1",
        "h2" => "HTTP/2.0",
        other => other,
    }
}

/// Bytes that go into a line as they are: printable ASCII but quotes and backslashes.
fn plain(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// As nginx does: quotes, backslashes, control and non-ASCII bytes as `\xHH`.
fn escaped(o: &mut Vec<u8>, v: &[u8]) {
    if plain(v) {
        o.extend_from_slice(v);
        return;
    }
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(o, "\\x{b:02X}");
        } else {
            o.push(b);
        }
    }
}

fn json(o: &mut Vec<u8>, stamp: &mut Stamp, e: &LogEntry, r: &Outcome, began: SystemTime) {
    let (method, target, ua, referer) = e.parts();
    let (_, iso, ms) = stamp.at(began);
    o.extend_from_slice(b"{\"time\":\"");
    o.extend_from_slice(iso);
    o.push(b'.');
    o.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
    ]);
    o.extend_from_slice(b"Z\",\"remote\":");
    match e.remote {
        Some(ip) => {
            o.push(b'"');
            remote(o, ip);
            o.push(b'"');
        }
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"method\":");
    json_string(o, method);
    o.extend_from_slice(b",\"target\":");
    json_string(o, target);
    o.extend_from_slice(b",\"protocol\":\"");
    o.extend_from_slice(protocol_upper(e.protocol).as_bytes());
    o.extend_from_slice(b"\",\"status\":");
    write_decimal(o, u64::from(r.status));
    o.extend_from_slice(b",\"bytes\":");
    write_decimal(o, r.bytes);
    o.extend_from_slice(b",\"duration_us\":");
    write_decimal(o, r.duration.as_micros() as u64);
    o.extend_from_slice(b",\"user_agent\":");
    match ua {
        Some(v) => json_string(o, v),
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"referer\":");
    match referer {
        Some(v) => json_string(o, v),
        None => o.extend_from_slice(b"null"),
    }
    if r.aborted {
        o.extend_from_slice(b",\"aborted\":true");
    }
    o.extend_from_slice(b"}\n");
}

/// A JSON string of header bytes: UTF-8 kept, anything else (and controls) escaped, so that
/// every line parses.
fn json_string(o: &mut Vec<u8>, v: &[u8]) {
    o.push(b'"');
    if plain(v) {
        o.extend_from_slice(v);
        o.push(b'"');
        return;
    }
    for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => o.extend_from_slice(b"\\\""),
                '\\' => o.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(o, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut b = [0; 4];
                    o.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            // Latin-1 as a header byte is usually meant: shown as that code point.
            let _ = write!(o, "\\u{:04x}", b);
        }
    }
    o.push(b'"');
}

/// UTC calendar fields of a time: year, month, day, hour, minute, second, millisecond.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a date in the proleptic Gregorian calendar, eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        since.subsec_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let at = |s: u64| civil(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), (1970, 1, 1, 0, 0, 0, 0));
        assert_eq!(at(951_782_400), (2000, 2, 29, 0, 0, 0, 0));
        assert_eq!(at(1_796_083_199), (2026, 11, 30, 23, 59, 59, 0));
        assert_eq!(at(4_107_542_400), (2100, 3, 1, 0, 0, 0, 0));
    }

    fn entry() -> LogEntry {
        LogEntry::new(
            b"GET",
            b"/a?b=\"c\"",
            Some(b"curl/8.5"),
            None,
            Some("127.0.0.1".parse().unwrap()),
            "http/1.1",
        )
    }

    #[test]
    fn combined_lines() {
        let mut o = Vec::new();
        let outcome = Outcome {
            status: 200,
            bytes: 13,
            duration: Duration::ZERO,
            aborted: false,
        };
        combined(
            &mut o,
            &mut Stamp::default(),
            &entry(),
            &outcome,
            UNIX_EPOCH + Duration::from_secs(1_796_083_199),
        );
        assert_eq!(String::from_utf8(o).unwrap(), "127.0.0.1 - - [30/Nov/2026:23:59:59 +0000] \"GET /a?b=\\x22c\\x22 HTTP/1.1\" 200 13 \"-\" \"curl/8.5\"\n");
    }

    #[test]
    fn json_lines() {
        let mut o = Vec::new();
        let outcome = Outcome {
            status: 404,
            bytes: 0,
            duration: Duration::from_micros(52),
            aborted: true,
        };
        let e = LogEntry::new(b"GET", b"/\xff", None, Some(b"http://x/"), None, "http/1.0");
        json(
            &mut o,
            &mut Stamp::default(),
            &e,
            &outcome,
            UNIX_EPOCH + Duration::from_millis(1_796_083_199_123),
        );
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "{\"time\":\"2026-11-30T23:59:59.123Z\",\"remote\":null,\"method\":\"GET\",\"target\":\"/\\u00ff\",\"protocol\":\"HTTP/1.0\",\"status\":404,\"bytes\":0,\"duration_us\":52,\"user_agent\":null,\"referer\":\"http://x/\",\"aborted\":true}\n"
        );
    }
}
