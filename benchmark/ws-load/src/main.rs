//! ws-load: the WebSocket load generator of harrier's benchmark suite (benchmark/README.md).
//!
//! One thread, epoll through mio, non-blocking sockets, no async runtime: like wrk -t1,
//! the suite pins it to one CPU with taskset. Three modes:
//!
//!   ws-load echo      --url ws://127.0.0.1:PORT/ws/echo [--connections 64] [--inflight 16]
//!                     [--size 32] [--binary] [--deflate] [--duration 5] [--warmup 2]
//!   ws-load broadcast --url ws://127.0.0.1:PORT/ws/broadcast [--connections 1000]
//!                     [--inflight 16] [--size 64] [--duration 5] [--warmup 2]
//!   ws-load idle      --url ws://127.0.0.1:PORT/ws/echo [--connections 10000]
//!                     [--concurrency 200] [--warmup-messages 2000] [--hold 600]
//!
//! echo: every connection keeps `inflight` messages under way (it sends that many, then one
//! more for every echo that comes back). Every echo is checked byte for byte against what
//! was sent (the payload carries the connection and a sequence number, so order is checked
//! too) and must come back with the same opcode (text as text, binary as binary).
//! Messages/s are echoes received in the measured window ÷ its length; latency is from the
//! message's write into the socket buffer to its echo's arrival.
//!
//! broadcast: `connections` subscribers; the first one is also the publisher. The server
//! sends every message it receives on the route to every subscriber (the publisher too). A
//! publish counts as done when every subscriber has it; `inflight` publishes are kept not
//! yet done, so the server always has fan-out queued and the figure is the server's, not a
//! stop-and-wait loop's. Every subscriber must receive every message, intact and in order.
//! Deliveries/s are messages received by all subscribers in the window ÷ its length;
//! latency is from a publish to its arrival at the last subscriber.
//!
//! idle: `--warmup-messages` echoes over 4 connections (then closed), prints
//! {"event":"warm"} and waits for `open` on stdin; then opens `connections` WebSockets
//! (`concurrency` handshakes at a time), sends one message on each and waits for its echo,
//! prints {"ready":true,"open":N,"failed":N,"firstError":…,"ms":N} and holds them idle,
//! answering pings. Commands on stdin: `count` prints {"open":N} (those the server has not
//! closed), `close` closes them all and exits; it exits by itself after `--hold` seconds or
//! when stdin closes.
//!
//! echo and broadcast print {"event":"measure"} when the warm-up ends and the measured
//! window begins (the suite reads the server's /proc counters then), and one JSON line of
//! results when it ends; a failure prints {"error":"…"} and exits with status 1.
//!
//! Every handshake is checked: status 101, Upgrade, Connection, Sec-WebSocket-Accept.
//! Client frames are masked (RFC 6455). `--deflate` offers permessage-deflate (RFC 7692);
//! the server must accept it; its compressed messages are inflated (zlib-rs) and checked,
//! and the client sends compressed messages too (RSV1), unless the server limits the
//! client's window: real deflate blocks, compressed once per distinct body and put
//! together with the message's header (see `send_message`), so that the client's CPU goes
//! to inflating and checking the server's answers rather than to compressing.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const STDIN: Token = Token(usize::MAX - 1);
const HEADER: usize = 16;
const DEFLATE_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
const TEXT: &[u8] = b"The quick brown fox jumps over the lazy dog, message after message; ";
const SETUP_LIMIT: Duration = Duration::from_secs(60);
const STALL_LIMIT: Duration = Duration::from_secs(10);
const IDLE_CONNECT_LIMIT: Duration = Duration::from_secs(20);
const IDLE_WARM_CONNECTIONS: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Echo,
    Broadcast,
    Idle,
}

struct Args {
    mode: Mode,
    url: String,
    addr: SocketAddr,
    host: String,
    path: String,
    connections: usize,
    inflight: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    deflate: bool,
    binary: bool,
    concurrency: usize,
    warmup_messages: usize,
    hold: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: ws-load echo|broadcast|idle --url ws://HOST:PORT/PATH [--connections N] [--inflight N] \
         [--size BYTES] [--binary] [--deflate] [--duration S] [--warmup S] [--concurrency N] \
         [--warmup-messages N] [--hold S]"
    );
    std::process::exit(2)
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mode = match argv.first().map(String::as_str) {
        Some("echo") => Mode::Echo,
        Some("broadcast") => Mode::Broadcast,
        Some("idle") => Mode::Idle,
        Some("-h") | Some("--help") | None => usage(),
        Some(other) => return Err(format!("unknown mode {other:?} (echo, broadcast, idle)")),
    };
    let mut url = None;
    let (mut connections, mut inflight, mut size) = match mode {
        Mode::Echo => (64, 16, 32),
        Mode::Broadcast => (1000, 16, 64),
        Mode::Idle => (10_000, 1, 32),
    };
    let (mut duration, mut warmup, mut deflate, mut binary) = (5.0, 2.0, false, false);
    let (mut concurrency, mut warmup_messages, mut hold) = (200, 2000, 600.0);
    let mut i = 1;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let mut value = || -> Result<String, String> {
            i += 1;
            argv.get(i).cloned().ok_or_else(|| format!("{flag} needs a value"))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: cannot read {v:?}"))
        }
        match flag {
            "--url" => url = Some(value()?),
            "--connections" => connections = num(flag, value()?)?,
            "--inflight" => inflight = num(flag, value()?)?,
            "--size" => size = num(flag, value()?)?,
            "--duration" => duration = num(flag, value()?)?,
            "--warmup" => warmup = num(flag, value()?)?,
            "--concurrency" => concurrency = num(flag, value()?)?,
            "--warmup-messages" => warmup_messages = num(flag, value()?)?,
            "--hold" => hold = num(flag, value()?)?,
            "--deflate" => deflate = true,
            "--binary" => binary = true,
            "--text" => binary = false,
            "-h" | "--help" => usage(),
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    let url = url.ok_or("--url ws://HOST:PORT/PATH is required")?;
    let rest = url.strip_prefix("ws://").ok_or_else(|| format!("--url {url:?}: only ws:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    if size < HEADER {
        return Err(format!("--size must be at least {HEADER} (the sequence header)"));
    }
    if connections == 0 || inflight == 0 || concurrency == 0 {
        return Err("--connections, --inflight and --concurrency must be at least 1".into());
    }
    if mode == Mode::Broadcast && connections > u32::MAX as usize {
        return Err("too many subscribers".into());
    }
    Ok(Args {
        mode,
        url: url.clone(),
        addr,
        host: authority.to_string(),
        path,
        connections,
        inflight,
        size,
        duration,
        warmup,
        deflate,
        binary,
        concurrency,
        warmup_messages,
        hold,
    })
}

/// Raises the soft open-file limit to the hard one (the suite also runs it under `ulimit -n`).
fn raise_nofile() {
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt_str(s: &Option<String>) -> String {
    s.as_deref().map(json_str).unwrap_or_else(|| "null".into())
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------- payloads

/// The bytes after the header: a pattern long enough that any offset below 256 still
/// leaves `size` bytes. Text: a sentence repeated (compressible, for permessage-deflate);
/// binary: bytes of the whole range, not UTF-8.
fn pattern(size: usize, binary: bool) -> Vec<u8> {
    let len = size + 256;
    if binary {
        (0..len).map(|i| ((i * 31 + 7) % 251) as u8 ^ 0x80).collect()
    } else {
        TEXT.iter().copied().cycle().take(len).collect()
    }
}

/// 8 lower-case hex digits of `conn`, then 8 of `seq`.
fn header(conn: u32, seq: u32) -> [u8; HEADER] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; HEADER];
    for i in 0..8 {
        out[i] = DIGITS[((conn >> ((7 - i) * 4)) & 15) as usize];
        out[8 + i] = DIGITS[((seq >> ((7 - i) * 4)) & 15) as usize];
    }
    out
}

fn offset_of(seq: u32, binary: bool) -> usize {
    if binary {
        (seq % 251) as usize
    } else {
        (seq as usize) % TEXT.len()
    }
}

/// Message `seq` of connection `conn`: 8 hex digits of each, then the pattern from an
/// offset that depends on `seq` (so that a message mixed up with another shows).
fn fill_payload(buf: &mut Vec<u8>, pat: &[u8], conn: u32, seq: u32, size: usize, binary: bool) {
    buf.clear();
    buf.extend_from_slice(&header(conn, seq));
    let off = offset_of(seq, binary);
    buf.extend_from_slice(&pat[off..off + size - HEADER]);
}

fn check_payload(msg: &[u8], pat: &[u8], conn: u32, seq: u32, size: usize, binary: bool) -> Result<(), String> {
    let head = header(conn, seq);
    let off = offset_of(seq, binary);
    let body = &pat[off..off + size - HEADER];
    if msg.len() == size && msg[..HEADER] == head[..] && msg[HEADER..] == *body {
        return Ok(());
    }
    let got = String::from_utf8_lossy(&msg[..msg.len().min(HEADER)]).into_owned();
    let first = msg
        .iter()
        .zip(head.iter().chain(body.iter()))
        .position(|(a, b)| a != b)
        .unwrap_or(msg.len().min(size));
    Err(format!(
        "expected message {seq} ({size} bytes, starting {:?}), got {} bytes starting {got:?}, first difference at byte {first}",
        String::from_utf8_lossy(&head),
        msg.len()
    ))
}

fn mask_in_place(buf: &mut [u8], key: [u8; 4]) {
    let k = u32::from_ne_bytes(key) as u64;
    let k64 = k | (k << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().unwrap()) ^ k64;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// One masked client frame, appended to `out`.
fn frame_into(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload: &[u8], key: [u8; 4]) {
    let len = payload.len();
    out.reserve(len + 14);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    mask_in_place(&mut out[start..], key);
}

/// One message through the deflater, sync-flushed, without the final 00 00 ff ff (RFC 7692 7.2.1).
fn deflate_into(d: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    out.reserve(input.len() / 2 + 64);
    let start = d.total_in();
    loop {
        let done = (d.total_in() - start) as usize;
        d.compress_vec(&input[done..], out, FlushCompress::Sync).map_err(|e| format!("deflate: {e}"))?;
        if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(256));
    }
    if out.ends_with(&DEFLATE_TAIL) {
        out.truncate(out.len() - 4);
    }
    Ok(())
}

/// One compressed message (with 00 00 ff ff put back) through the inflater. True when the
/// server ended its deflate stream (BFINAL), after which the inflater must start afresh.
fn inflate_into(z: &mut Decompress, input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
    out.clear();
    let mut ended = false;
    for (part, flush) in [(input, FlushDecompress::None), (&DEFLATE_TAIL[..], FlushDecompress::Sync)] {
        let start = z.total_in();
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(8192));
            }
            let (in_before, out_before) = (z.total_in(), z.total_out());
            let done = (z.total_in() - start) as usize;
            let status = z.decompress_vec(&part[done..], out, flush).map_err(|e| format!("inflate: {e}"))?;
            if status == Status::StreamEnd {
                ended = true;
                break;
            }
            let done = (z.total_in() - start) as usize;
            if done == part.len() && out.len() < out.capacity() {
                break;
            }
            if z.total_in() == in_before && z.total_out() == out_before && out.len() < out.capacity() {
                return Err("inflate: no progress (corrupt compressed message?)".into());
            }
        }
        if ended {
            break;
        }
    }
    Ok(ended)
}

// ---------------------------------------------------------------- connections

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Connecting,
    Handshake,
    Open,
    Closed,
}

struct Conn {
    id: u32,
    stream: TcpStream,
    state: State,
    key: String,
    started: Instant,
    rbuf: Vec<u8>,
    out: Vec<u8>,
    opos: usize,
    inflater: Option<Decompress>,
    compress: bool,
    frag: Vec<u8>,
    frag_op: u8,
    frag_rsv1: bool,
    sent: u32,
    recv: u32,
    sent_at: VecDeque<Instant>,
    done: bool,
}

fn flush(c: &mut Conn) -> Result<(), String> {
    while c.opos < c.out.len() {
        match c.stream.write(&c.out[c.opos..]) {
            Ok(0) => return Err("write returned 0".into()),
            Ok(n) => c.opos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    if c.opos == c.out.len() {
        c.out.clear();
        c.opos = 0;
    } else if c.opos > 1 << 20 {
        c.out.drain(..c.opos);
        c.opos = 0;
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Negotiated {
    extensions: Option<String>,
    deflate: bool,
    server_no_context: bool,
    client_no_context: bool,
    client_may_compress: bool,
}

fn check_handshake(head: &[u8], key: &str, offered_deflate: bool) -> Result<Negotiated, String> {
    let text = std::str::from_utf8(head).map_err(|_| "handshake answer is not text".to_string())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake answered {status:?}, expected \"HTTP/1.1 101 Switching Protocols\""));
    }
    let (mut upgrade, mut connection, mut accept, mut extensions) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = Some(value),
            "connection" => connection = Some(value),
            "sec-websocket-accept" => accept = Some(value),
            "sec-websocket-extensions" => {
                extensions = Some(match extensions {
                    Some(before) => format!("{before}, {value}"),
                    None => value,
                })
            }
            _ => {}
        }
    }
    if !upgrade.as_deref().is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(format!("handshake: Upgrade is {upgrade:?}, expected websocket"));
    }
    if !connection.as_deref().is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))) {
        return Err(format!("handshake: Connection is {connection:?}, expected upgrade"));
    }
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    if accept.as_deref() != Some(want.as_str()) {
        return Err(format!("handshake: Sec-WebSocket-Accept is {accept:?}, expected {want:?}"));
    }
    let mut n = Negotiated { extensions: extensions.clone(), ..Default::default() };
    if let Some(ext) = &extensions {
        if !offered_deflate {
            return Err(format!("handshake: the server chose extensions that were not offered: {ext}"));
        }
        let mut params = ext.split(';').map(str::trim);
        if params.next() != Some("permessage-deflate") || ext.contains(',') {
            return Err(format!("handshake: unexpected Sec-WebSocket-Extensions {ext:?}"));
        }
        n.deflate = true;
        n.client_may_compress = true;
        for p in params {
            let (name, value) = match p.split_once('=') {
                Some((a, b)) => (a.trim(), Some(b.trim().trim_matches('"'))),
                None => (p, None),
            };
            match name {
                "server_no_context_takeover" => n.server_no_context = true,
                "client_no_context_takeover" => n.client_no_context = true,
                "server_max_window_bits" => {}
                // Not offered, so the server should not send it; if it limits the client's
                // window below 15 (which this deflater cannot do), the client does not compress.
                "client_max_window_bits" => {
                    if value.and_then(|v| v.parse::<u8>().ok()).unwrap_or(15) < 15 {
                        n.client_may_compress = false
                    }
                }
                other => return Err(format!("handshake: unknown permessage-deflate parameter {other:?} in {ext:?}")),
            }
        }
    }
    if offered_deflate && !n.deflate {
        return Err("handshake: the server did not accept permessage-deflate".into());
    }
    Ok(n)
}

// ---------------------------------------------------------------- the run

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    // idle mode
    IdleWarm,
    IdleWaitOpen,
    IdleOpening,
    IdleHolding,
}

struct Run {
    a: Args,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    rng: u64,
    pat: Vec<u8>,
    scratch: Vec<u8>,
    payload: Vec<u8>,
    zbuf: Vec<u8>,
    zcache: Vec<Vec<u8>>,
    phase: Phase,
    phase_at: Instant,
    setup_started: Instant,
    last_progress: Instant,
    // connections of the current batch: [first, first + total)
    first: usize,
    total: usize,
    next_open: usize,
    opened: usize,
    failed: usize,
    first_error: Option<String>,
    negotiated: Option<String>,
    // figures of the measured window
    received: u64,
    latencies: Vec<u64>,
    // broadcast
    bc_low: u32,
    bc_next: u32,
    bc_counts: VecDeque<u32>,
    bc_sent_at: VecDeque<Instant>,
    bc_publishes: u64,
    // idle
    warm_done: usize,
    open_requested: bool,
    idle_ready: usize,
    done_count: usize,
    last_expiry_scan: Instant,
    setup_ms: u64,
    stdin_buf: Vec<u8>,
    exit: Option<i32>,
}

impl Run {
    fn new(a: Args) -> io::Result<Run> {
        let now = Instant::now();
        let seed = now.elapsed().as_nanos() as u64
            ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
            ^ (std::process::id() as u64) << 32;
        Ok(Run {
            pat: pattern(a.size, a.binary),
            a,
            poll: Poll::new()?,
            conns: Vec::new(),
            rng: seed | 1,
            scratch: vec![0; 256 * 1024],
            payload: Vec::new(),
            zbuf: Vec::new(),
            zcache: Vec::new(),
            phase: Phase::Setup,
            phase_at: now,
            setup_started: now,
            last_progress: now,
            first: 0,
            total: 0,
            next_open: 0,
            opened: 0,
            failed: 0,
            first_error: None,
            negotiated: None,
            received: 0,
            latencies: Vec::new(),
            bc_low: 0,
            bc_next: 0,
            bc_counts: VecDeque::new(),
            bc_sent_at: VecDeque::new(),
            bc_publishes: 0,
            warm_done: 0,
            open_requested: false,
            idle_ready: 0,
            done_count: 0,
            last_expiry_scan: now,
            setup_ms: 0,
            stdin_buf: Vec::new(),
            exit: None,
        })
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A batch of `total` connections to open, `concurrency` handshakes at a time.
    fn begin_batch(&mut self, total: usize) {
        self.first = self.conns.len();
        self.total = total;
        self.next_open = 0;
        self.opened = 0;
        self.failed = 0;
        self.setup_started = Instant::now();
        self.conns.reserve(total);
    }

    /// Connections started and not yet through: the handshake (load modes), the echo (idle).
    fn in_progress(&self) -> usize {
        if self.phase == Phase::IdleOpening {
            self.next_open - self.done_count - self.failed
        } else {
            self.next_open - self.opened - self.failed
        }
    }

    /// Idle connections that have not had their echo within the limit fail.
    fn expire_idle_handshakes(&mut self, now: Instant) {
        if now - self.last_expiry_scan < Duration::from_secs(1) {
            return;
        }
        self.last_expiry_scan = now;
        for idx in self.first..self.first + self.next_open {
            let late = matches!(&self.conns[idx], Some(c) if !c.done && now - c.started > IDLE_CONNECT_LIMIT);
            if late {
                let mut c = self.conns[idx].take().unwrap();
                let _ = self.poll.registry().deregister(&mut c.stream);
                let state = c.state;
                drop(c);
                let _ = self.conn_failed(format!("no echo within {} s ({state:?})", IDLE_CONNECT_LIMIT.as_secs()));
            }
        }
    }

    fn describe_inflight(&self) -> String {
        match self.a.mode {
            Mode::Broadcast => {
                let lagging = self.conns[self.first..self.first + self.total]
                    .iter()
                    .flatten()
                    .filter(|c| c.recv == self.bc_low)
                    .count();
                format!("{} publishes, {lagging} subscribers still waiting for message {}", self.bc_counts.len(), self.bc_low)
            }
            _ => {
                let waiting: usize = self.conns[self.first..self.first + self.total].iter().flatten().map(|c| c.sent_at.len()).sum();
                format!("{waiting} messages")
            }
        }
    }

    fn open_more(&mut self) -> Result<(), String> {
        while self.next_open < self.total && self.in_progress() < self.a.concurrency {
            let idx = self.first + self.next_open;
            self.next_open += 1;
            let mut stream = match TcpStream::connect(self.a.addr) {
                Ok(s) => s,
                Err(e) => {
                    self.conns.push(None);
                    self.conn_failed(format!("connect: {e}"))?;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            self.poll
                .registry()
                .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("epoll register: {e}"))?;
            let key_bytes: [u8; 16] = {
                let (x, y) = (self.random(), self.random());
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&x.to_le_bytes());
                k[8..].copy_from_slice(&y.to_le_bytes());
                k
            };
            let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
            let mut out = Vec::with_capacity(256);
            write!(
                out,
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
                self.a.path,
                self.a.host,
                key,
                if self.a.deflate && self.phase != Phase::IdleWarm { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" }
            )
            .unwrap();
            debug_assert_eq!(self.conns.len(), idx);
            self.conns.push(Some(Conn {
                id: (idx - self.first) as u32,
                stream,
                state: State::Connecting,
                key,
                started: Instant::now(),
                rbuf: Vec::new(),
                out,
                opos: 0,
                inflater: None,
                compress: false,
                frag: Vec::new(),
                frag_op: 0,
                frag_rsv1: false,
                sent: 0,
                recv: 0,
                sent_at: VecDeque::new(),
                done: false,
            }));
        }
        Ok(())
    }

    /// A connection that could not open: fatal, except while opening the idle connections.
    fn conn_failed(&mut self, error: String) -> Result<(), String> {
        self.failed += 1;
        if self.phase == Phase::IdleOpening {
            self.first_error.get_or_insert(error);
            Ok(())
        } else {
            Err(error)
        }
    }

    fn handle(&mut self, idx: usize) {
        let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) else { return };
        let result = self.drive(&mut c);
        match result {
            Ok(()) => self.conns[idx] = Some(c),
            Err(e) => {
                let _ = self.poll.registry().deregister(&mut c.stream);
                let was_ready = c.done;
                c.state = State::Closed;
                drop(c);
                let e = format!("connection {}: {e}", idx - self.first.min(idx));
                match self.phase {
                    _ if was_ready => {
                        // An idle connection the server closed (`count` shows it), or a
                        // warm-up connection closing after its last echo.
                        if matches!(self.phase, Phase::IdleOpening | Phase::IdleHolding) {
                            self.idle_ready -= 1;
                        }
                    }
                    Phase::IdleOpening => {
                        let _ = self.conn_failed(e);
                    }
                    Phase::IdleHolding | Phase::IdleWaitOpen => {}
                    _ => self.fatal(e),
                }
            }
        }
    }

    fn fatal(&mut self, error: String) {
        if self.exit.is_none() {
            say(&format!("{{\"error\":{}}}", json_str(&error)));
            eprintln!("ws-load: {error}");
            self.exit = Some(1);
        }
    }

    /// Everything a readiness event on one connection calls for: the connect's outcome,
    /// pending writes, every byte there is to read (edge-triggered), the writes that caused.
    fn drive(&mut self, c: &mut Conn) -> Result<(), String> {
        if c.state == State::Connecting {
            if let Some(e) = c.stream.take_error().map_err(|e| format!("connect: {e}"))? {
                return Err(format!("connect: {e}"));
            }
            match c.stream.peer_addr() {
                Ok(_) => c.state = State::Handshake,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        flush(c)?;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.read_all(c, &mut scratch);
        self.scratch = scratch;
        result?;
        flush(c)
    }

    fn read_all(&mut self, c: &mut Conn, scratch: &mut [u8]) -> Result<(), String> {
        loop {
            match c.stream.read(scratch) {
                Ok(0) => {
                    return Err(if c.state == State::Handshake {
                        "closed by the server during the handshake".into()
                    } else {
                        "closed by the server".into()
                    })
                }
                Ok(n) => {
                    let data = &scratch[..n];
                    if c.rbuf.is_empty() {
                        let used = self.parse(c, data)?;
                        c.rbuf.extend_from_slice(&data[used..]);
                    } else {
                        c.rbuf.extend_from_slice(data);
                        let buf = std::mem::take(&mut c.rbuf);
                        let used = self.parse(c, &buf);
                        c.rbuf = buf;
                        c.rbuf.drain(..used?);
                    }
                    if c.out.len() - c.opos > 256 * 1024 {
                        flush(c)?;
                    }
                    // A read that did not fill the buffer took all there was: mio's
                    // readiness is edge-triggered, and bytes that come after it raise a new
                    // event. Reading on until WouldBlock would cost a second read per event.
                    if n < scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Parses the handshake's answer, then whole frames; returns the bytes used.
    fn parse(&mut self, c: &mut Conn, buf: &[u8]) -> Result<usize, String> {
        let mut pos = 0;
        if c.state == State::Handshake {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > 16 * 1024 {
                    return Err("handshake answer longer than 16 KiB".into());
                }
                return Ok(0);
            };
            let n = check_handshake(&buf[..end], &c.key, self.a.deflate && self.phase != Phase::IdleWarm)?;
            if n.deflate {
                // The inflater goes on from message to message: with context takeover the
                // server's messages refer back to earlier ones; without, they do not, and
                // the history kept does no harm.
                c.inflater = Some(Decompress::new(false));
                c.compress = n.client_may_compress;
            }
            if self.negotiated.is_none() {
                self.negotiated = n.extensions;
            }
            c.state = State::Open;
            c.rbuf = Vec::new();
            pos = end + 4;
            self.on_open(c)?;
        }
        while c.state == State::Open {
            let rest = &buf[pos..];
            if rest.len() < 2 {
                break;
            }
            let (b0, b1) = (rest[0], rest[1]);
            if b1 & 0x80 != 0 {
                return Err("the server sent a masked frame".into());
            }
            if b0 & 0x30 != 0 {
                return Err(format!("the server set RSV2/RSV3 (first byte {b0:#04x})"));
            }
            let (hdr, len) = match b1 & 0x7f {
                126 => {
                    if rest.len() < 4 {
                        break;
                    }
                    (4, u16::from_be_bytes([rest[2], rest[3]]) as usize)
                }
                127 => {
                    if rest.len() < 10 {
                        break;
                    }
                    (10, u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize)
                }
                n => (2, n as usize),
            };
            if len > 64 << 20 {
                return Err(format!("frame of {len} bytes"));
            }
            if rest.len() < hdr + len {
                break;
            }
            pos += hdr + len;
            self.on_frame(c, b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f, &rest[hdr..hdr + len])?;
        }
        Ok(pos)
    }

    fn on_frame(&mut self, c: &mut Conn, fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Result<(), String> {
        match opcode {
            0x8 => {
                let code = if payload.len() >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { 1005 };
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
                Err(format!("closed by the server (close frame, code {code}{})", if reason.is_empty() { String::new() } else { format!(", {reason:?}") }))
            }
            0x9 => {
                let key = self.random().to_le_bytes();
                frame_into(&mut c.out, 0xA, false, payload, [key[0], key[1], key[2], key[3]]);
                Ok(())
            }
            0xA => Ok(()),
            0x0 => {
                if c.frag_op == 0 {
                    return Err("a continuation frame outside a fragmented message".into());
                }
                c.frag.extend_from_slice(payload);
                if fin {
                    let op = c.frag_op;
                    c.frag_op = 0;
                    let data = std::mem::take(&mut c.frag);
                    let result = self.on_data(c, op, c.frag_rsv1, &data);
                    c.frag = data;
                    c.frag.clear();
                    result?;
                }
                Ok(())
            }
            0x1 | 0x2 => {
                if c.frag_op != 0 {
                    return Err("a new message inside a fragmented one".into());
                }
                if fin {
                    self.on_data(c, opcode, rsv1, payload)
                } else {
                    c.frag_op = opcode;
                    c.frag_rsv1 = rsv1;
                    c.frag.clear();
                    c.frag.extend_from_slice(payload);
                    Ok(())
                }
            }
            other => Err(format!("unknown opcode {other:#x}")),
        }
    }

    fn on_data(&mut self, c: &mut Conn, opcode: u8, compressed: bool, data: &[u8]) -> Result<(), String> {
        if !compressed {
            return self.on_message(c, opcode, data);
        }
        let Some(z) = c.inflater.as_mut() else {
            return Err("a compressed message (RSV1) without permessage-deflate".into());
        };
        let mut out = std::mem::take(&mut self.zbuf);
        let ended = inflate_into(z, data, &mut out);
        let result = match ended {
            Ok(ended) => {
                if ended {
                    z.reset(false);
                }
                self.on_message(c, opcode, &out)
            }
            Err(e) => Err(e),
        };
        self.zbuf = out;
        result
    }

    /// Sends message `c.sent` of this connection (echo and idle modes).
    fn send_next(&mut self, c: &mut Conn) -> Result<(), String> {
        let mut payload = std::mem::take(&mut self.payload);
        fill_payload(&mut payload, &self.pat, c.id, c.sent, self.a.size, self.a.binary);
        let off = offset_of(c.sent, self.a.binary);
        c.sent = c.sent.wrapping_add(1);
        let result = self.send_message(c, &payload, off);
        self.payload = payload;
        c.sent_at.push_back(Instant::now());
        result
    }

    /// A message (`payload`, whose body is the pattern from `off`) framed into `c.out`;
    /// compressed where permessage-deflate was agreed.
    ///
    /// A compressed message is built, not compressed each time, so that the client's CPU
    /// goes to checking the server's answers: a stored block with the 16-byte header, then
    /// the body's deflate blocks, compressed once per offset (they refer to nothing before
    /// them, which a deflate stream, with or without context takeover, allows).
    fn send_message(&mut self, c: &mut Conn, payload: &[u8], off: usize) -> Result<(), String> {
        let opcode = if self.a.binary { 0x2 } else { 0x1 };
        let k = self.random().to_le_bytes();
        let key = [k[0], k[1], k[2], k[3]];
        if !c.compress {
            frame_into(&mut c.out, opcode, false, payload, key);
            return Ok(());
        }
        if self.zcache.len() <= off {
            self.zcache.resize(off + 1, Vec::new());
        }
        if self.zcache[off].is_empty() {
            let mut d = Compress::new(Compression::default(), false);
            let mut body = Vec::new();
            deflate_into(&mut d, &payload[HEADER..], &mut body)?;
            self.zcache[off] = body;
        }
        let mut z = std::mem::take(&mut self.zbuf);
        z.clear();
        // Stored block: BFINAL 0, BTYPE 00, then LEN and its complement, little-endian.
        let len = HEADER as u16;
        z.push(0);
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(&payload[..HEADER]);
        z.extend_from_slice(&self.zcache[off]);
        frame_into(&mut c.out, opcode, true, &z, key);
        self.zbuf = z;
        Ok(())
    }

    fn on_open(&mut self, c: &mut Conn) -> Result<(), String> {
        self.opened += 1;
        self.last_progress = Instant::now();
        match self.phase {
            // Every connection sends its first message at once (the others wait until all are open).
            Phase::IdleWarm | Phase::IdleOpening => self.send_next(c),
            _ => Ok(()),
        }
    }

    fn on_message(&mut self, c: &mut Conn, opcode: u8, msg: &[u8]) -> Result<(), String> {
        let want = if self.a.binary { 0x2 } else { 0x1 };
        if opcode != want {
            return Err(format!(
                "message {} came back as {}, sent as {}",
                c.recv,
                if opcode == 1 { "text" } else { "binary" },
                if want == 1 { "text" } else { "binary" }
            ));
        }
        let now = Instant::now();
        self.last_progress = now;
        match self.a.mode {
            Mode::Echo | Mode::Idle => {
                let seq = c.recv;
                check_payload(msg, &self.pat, c.id, seq, self.a.size, self.a.binary)?;
                c.recv = c.recv.wrapping_add(1);
                let sent_at = c.sent_at.pop_front().ok_or("an echo of a message never sent")?;
                match self.phase {
                    Phase::Warmup => self.send_next(c)?,
                    Phase::Measure => {
                        self.received += 1;
                        self.latencies.push((now - sent_at).as_nanos() as u64);
                        self.send_next(c)?;
                    }
                    Phase::IdleWarm => {
                        let quota = self.a.warmup_messages.div_ceil(IDLE_WARM_CONNECTIONS).max(1);
                        if (c.recv as usize) < quota {
                            self.send_next(c)?;
                        } else if !c.done {
                            c.done = true;
                            self.warm_done += 1;
                        }
                    }
                    Phase::IdleOpening if !c.done => {
                        c.done = true;
                        self.done_count += 1;
                        self.idle_ready += 1;
                        c.sent_at = VecDeque::new();
                        c.rbuf = Vec::new();
                        c.out.shrink_to(256);
                    }
                    _ => return Err(format!("an echo in phase {:?}", self.phase)),
                }
                Ok(())
            }
            Mode::Broadcast => {
                let seq = c.recv;
                check_payload(msg, &self.pat, 0, seq, self.a.size, self.a.binary)?;
                c.recv = c.recv.wrapping_add(1);
                let i = seq.wrapping_sub(self.bc_low) as usize;
                if i >= self.bc_counts.len() {
                    return Err(format!("subscriber {} got message {seq} again", c.id));
                }
                self.bc_counts[i] += 1;
                if self.phase == Phase::Measure {
                    self.received += 1;
                }
                let mut completed = 0;
                while self.bc_counts.front() == Some(&(self.total as u32)) {
                    self.bc_counts.pop_front();
                    let t = self.bc_sent_at.pop_front().unwrap();
                    if self.phase == Phase::Measure {
                        self.latencies.push((now - t).as_nanos() as u64);
                        self.bc_publishes += 1;
                    }
                    self.bc_low = self.bc_low.wrapping_add(1);
                    completed += 1;
                }
                for _ in 0..completed {
                    if matches!(self.phase, Phase::Warmup | Phase::Measure) {
                        self.publish(Some(c))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The publisher (connection 0 of the batch) sends the next message. `current`: the
    /// connection being driven, which may be the publisher itself (then its writes are
    /// flushed when its event is done).
    fn publish(&mut self, current: Option<&mut Conn>) -> Result<(), String> {
        let mut payload = std::mem::take(&mut self.payload);
        fill_payload(&mut payload, &self.pat, 0, self.bc_next, self.a.size, self.a.binary);
        let off = offset_of(self.bc_next, self.a.binary);
        self.bc_next = self.bc_next.wrapping_add(1);
        self.bc_counts.push_back(0);
        self.bc_sent_at.push_back(Instant::now());
        let result = match current {
            Some(c) if c.id == 0 => self.send_message(c, &payload, off),
            _ => {
                let idx = self.first;
                let mut p = self.conns[idx].take().ok_or("the publisher is gone")?;
                let r = self.send_message(&mut p, &payload, off).and_then(|_| flush(&mut p));
                self.conns[idx] = Some(p);
                r
            }
        };
        self.payload = payload;
        result
    }

    /// The load begins once every connection is open.
    fn start_load(&mut self) -> Result<(), String> {
        self.phase = Phase::Warmup;
        self.phase_at = Instant::now();
        self.last_progress = self.phase_at;
        match self.a.mode {
            Mode::Echo => {
                for idx in self.first..self.first + self.total {
                    let mut c = self.conns[idx].take().unwrap();
                    let mut r = Ok(());
                    for _ in 0..self.a.inflight {
                        r = r.and_then(|_| self.send_next(&mut c));
                    }
                    let r = r.and_then(|_| flush(&mut c));
                    self.conns[idx] = Some(c);
                    r?;
                }
            }
            Mode::Broadcast => {
                for _ in 0..self.a.inflight {
                    self.publish(None)?;
                }
            }
            Mode::Idle => unreachable!(),
        }
        if self.a.warmup <= 0.0 {
            self.begin_measure();
        }
        Ok(())
    }

    fn begin_measure(&mut self) {
        self.phase = Phase::Measure;
        self.phase_at = Instant::now();
        self.received = 0;
        self.bc_publishes = 0;
        self.latencies.clear();
        self.latencies.reserve(1 << 20);
        say("{\"event\":\"measure\"}");
    }

    fn percentile(sorted: &[u64], q: f64) -> String {
        if sorted.is_empty() {
            return "null".into();
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        format!("{:.4}", sorted[rank - 1] as f64 / 1e6)
    }

    fn finish(&mut self) {
        let seconds = self.phase_at.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut self.latencies);
        lat.sort_unstable();
        let p = |q| Self::percentile(&lat, q);
        let common = format!(
            "\"url\":{},\"size\":{},\"binary\":{},\"deflate\":{},\"extensions\":{},\"inflight\":{},\"seconds\":{:.4},\"setupMs\":{}",
            json_str(&self.a.url),
            self.a.size,
            self.a.binary,
            self.a.deflate,
            json_opt_str(&self.negotiated),
            self.a.inflight,
            seconds,
            self.setup_ms
        );
        let rate = self.received as f64 / seconds;
        let line = match self.a.mode {
            Mode::Echo => format!(
                "{{\"mode\":\"echo\",\"connections\":{},\"messages\":{},\"messagesPerSec\":{:.1},\"p50Ms\":{},\"p90Ms\":{},\"p99Ms\":{},\"maxMs\":{},{common}}}",
                self.total,
                self.received,
                rate,
                p(0.5),
                p(0.9),
                p(0.99),
                p(1.0)
            ),
            Mode::Broadcast => format!(
                "{{\"mode\":\"broadcast\",\"subscribers\":{},\"publishes\":{},\"publishesPerSec\":{:.1},\"deliveries\":{},\"deliveriesPerSec\":{:.1},\"p50Ms\":{},\"p90Ms\":{},\"p99Ms\":{},\"maxMs\":{},{common}}}",
                self.total,
                self.bc_publishes,
                self.bc_publishes as f64 / seconds,
                self.received,
                rate,
                p(0.5),
                p(0.9),
                p(0.99),
                p(1.0)
            ),
            Mode::Idle => unreachable!(),
        };
        say(&line);
        self.exit = Some(0);
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                // stdin closed: nobody will ask anything more.
                self.exit = Some(0);
                return;
            }
            if n < 0 {
                return; // EAGAIN (or an error: then nothing more comes either way)
            }
            self.stdin_buf.extend_from_slice(&buf[..n as usize]);
            while let Some(at) = self.stdin_buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.stdin_buf.drain(..=at).collect();
                match String::from_utf8_lossy(&line).trim() {
                    "open" => self.open_requested = true,
                    "count" => say(&format!("{{\"open\":{}}}", self.idle_ready)),
                    "close" => self.exit = Some(0),
                    _ => {}
                }
            }
        }
    }

    /// Phase changes, connections still to open, time limits. Returns how long poll may wait.
    fn tick(&mut self) -> Result<Duration, String> {
        let now = Instant::now();
        let mut wait = Duration::from_millis(500);
        match self.phase {
            Phase::Setup | Phase::IdleWarm | Phase::IdleOpening => {
                self.open_more()?;
                if self.phase == Phase::IdleOpening {
                    self.expire_idle_handshakes(now);
                } else if now - self.setup_started > SETUP_LIMIT {
                    return Err(format!(
                        "only {} of {} connections open after {} s",
                        self.opened,
                        self.total,
                        SETUP_LIMIT.as_secs()
                    ));
                }
            }
            _ => {}
        }
        match self.phase {
            Phase::Setup if self.opened == self.total => {
                self.setup_ms = self.setup_started.elapsed().as_millis() as u64;
                self.start_load()?;
            }
            Phase::Warmup | Phase::Measure => {
                let length = if self.phase == Phase::Warmup { self.a.warmup } else { self.a.duration };
                let end = self.phase_at + Duration::from_secs_f64(length);
                if now >= end {
                    if self.phase == Phase::Warmup {
                        self.begin_measure();
                        wait = Duration::from_secs_f64(self.a.duration).min(wait);
                    } else {
                        self.finish();
                        return Ok(Duration::ZERO);
                    }
                } else {
                    wait = (end - now).min(wait);
                }
                if now - self.last_progress > STALL_LIMIT {
                    return Err(format!("no message for {} s ({} in flight)", STALL_LIMIT.as_secs(), self.describe_inflight()));
                }
            }
            Phase::IdleWarm if self.warm_done == self.total => {
                // The warm-up connections go away; the suite reads RSS, then says `open`.
                for idx in self.first..self.first + self.total {
                    if let Some(mut c) = self.conns[idx].take() {
                        let k = self.random().to_le_bytes();
                        frame_into(&mut c.out, 0x8, false, &1000u16.to_be_bytes(), [k[0], k[1], k[2], k[3]]);
                        let _ = flush(&mut c);
                        let _ = self.poll.registry().deregister(&mut c.stream);
                    }
                }
                self.setup_ms = self.setup_started.elapsed().as_millis() as u64;
                say(&format!(
                    "{{\"event\":\"warm\",\"connections\":{},\"messages\":{},\"ms\":{}}}",
                    self.total,
                    self.warm_done * self.a.warmup_messages.div_ceil(IDLE_WARM_CONNECTIONS).max(1),
                    self.setup_ms
                ));
                self.phase = Phase::IdleWaitOpen;
            }
            Phase::IdleWaitOpen if self.open_requested => {
                self.phase = Phase::IdleOpening;
                self.begin_batch(self.a.connections);
                self.idle_ready = 0;
                self.done_count = 0;
                self.first_error = None;
                self.open_more()?;
            }
            Phase::IdleOpening if self.done_count + self.failed == self.total => {
                // Every connection has had its echo (or failed): they are all idle now.
                self.phase = Phase::IdleHolding;
                self.phase_at = now;
                say(&format!(
                    "{{\"ready\":true,\"open\":{},\"failed\":{},\"firstError\":{},\"ms\":{}}}",
                    self.idle_ready,
                    self.failed,
                    json_opt_str(&self.first_error),
                    self.setup_started.elapsed().as_millis()
                ));
            }
            Phase::IdleHolding if now - self.phase_at > Duration::from_secs_f64(self.a.hold) => self.exit = Some(0),
            _ => {}
        }
        Ok(wait)
    }
}

fn run(a: Args) -> Result<i32, String> {
    let mode = a.mode;
    let mut r = Run::new(a).map_err(|e| format!("epoll: {e}"))?;
    match mode {
        Mode::Echo | Mode::Broadcast => r.begin_batch(r.a.connections),
        Mode::Idle => {
            // Commands come on stdin: non-blocking, polled with the sockets.
            unsafe {
                let flags = libc::fcntl(0, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(0, libc::F_SETFL, flags | libc::O_NONBLOCK);
                }
            }
            if r.poll.registry().register(&mut SourceFd(&0), STDIN, Interest::READABLE).is_err() {
                // Not a pipe or terminal (e.g. /dev/null): open at once, hold for --hold seconds.
                r.open_requested = true;
            }
            r.phase = Phase::IdleWarm;
            r.begin_batch(IDLE_WARM_CONNECTIONS);
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut wait = Duration::ZERO;
    loop {
        if let Some(code) = r.exit {
            return Ok(code);
        }
        if let Err(e) = r.poll.poll(&mut events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("epoll_wait: {e}"));
            }
        }
        for event in events.iter() {
            if event.token() == STDIN {
                r.read_stdin();
            } else {
                r.handle(event.token().0);
            }
            if r.exit.is_some() {
                break;
            }
        }
        if r.exit.is_some() {
            continue;
        }
        match r.tick() {
            Ok(w) => wait = w,
            Err(e) => r.fatal(e),
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws-load: {e}");
            usage()
        }
    };
    raise_nofile();
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            say(&format!("{{\"error\":{}}}", json_str(&e)));
            eprintln!("ws-load: {e}");
            1
        }
    };
    // The sockets close with the process.
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_and_matches_bytewise() {
        let key = [1, 2, 3, 0xff];
        let data: Vec<u8> = (0..37).collect();
        let mut masked = data.clone();
        mask_in_place(&mut masked, key);
        for (i, (m, d)) in masked.iter().zip(&data).enumerate() {
            assert_eq!(*m, d ^ key[i % 4]);
        }
        mask_in_place(&mut masked, key);
        assert_eq!(masked, data);
    }

    #[test]
    fn payloads_check() {
        for binary in [false, true] {
            let pat = pattern(4096, binary);
            let mut buf = Vec::new();
            fill_payload(&mut buf, &pat, 7, 12345, 4096, binary);
            assert_eq!(buf.len(), 4096);
            assert!(check_payload(&buf, &pat, 7, 12345, 4096, binary).is_ok());
            assert!(check_payload(&buf, &pat, 7, 12346, 4096, binary).is_err());
            buf[100] ^= 1;
            assert!(check_payload(&buf, &pat, 7, 12345, 4096, binary).is_err());
        }
    }

    #[test]
    fn deflate_inflate_round_trip() {
        let pat = pattern(4096, false);
        let mut d = Compress::new(Compression::fast(), false);
        let mut z = Decompress::new(false);
        let (mut msg, mut comp, mut back) = (Vec::new(), Vec::new(), Vec::new());
        for seq in 0..50 {
            fill_payload(&mut msg, &pat, 1, seq, 4096, false);
            deflate_into(&mut d, &msg, &mut comp).unwrap();
            assert!(comp.len() < 400, "compressible: {} bytes", comp.len());
            assert!(!inflate_into(&mut z, &comp, &mut back).unwrap());
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn built_compressed_messages_inflate_to_the_message() {
        // A stored block with the header, then the body's blocks compressed on their own:
        // what send_message builds, inflated by one inflater from message to message.
        let pat = pattern(4096, false);
        let mut z = Decompress::new(false);
        let (mut msg, mut body, mut back) = (Vec::new(), Vec::new(), Vec::new());
        for seq in 0..100u32 {
            fill_payload(&mut msg, &pat, 3, seq, 4096, false);
            deflate_into(&mut Compress::new(Compression::default(), false), &msg[HEADER..], &mut body).unwrap();
            let mut frame = vec![0, 16, 0, !16u8, 0xff];
            frame.extend_from_slice(&msg[..HEADER]);
            frame.extend_from_slice(&body);
            assert!(frame.len() < 300);
            assert!(!inflate_into(&mut z, &frame, &mut back).unwrap());
            assert_eq!(back, msg, "message {seq}");
        }
    }

    #[test]
    fn handshake_checks_accept() {
        // RFC 6455's example key and accept.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        assert!(check_handshake(ok.as_bytes(), key, false).is_ok());
        assert!(check_handshake(ok.replace("s3p", "x3p").as_bytes(), key, false).is_err());
        assert!(check_handshake(b"HTTP/1.1 404 Not Found\r\n", key, false).is_err());
        assert!(check_handshake(ok.as_bytes(), key, true).unwrap_err().contains("permessage-deflate"));
        let deflate = format!("{ok}\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        let n = check_handshake(deflate.as_bytes(), key, true).unwrap();
        assert!(n.deflate && n.server_no_context && n.client_no_context && n.client_may_compress);
    }
}
