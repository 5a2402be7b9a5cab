//! One I/O thread: a mio poll over its listener and connections, the thread's batch of
//! events for the handler, and its inbox of replies.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use slab::Slab;

use super::batch::BatchBuilder;
use super::io::{Fresh, Io, Ready};
use super::pool::BufPool;
use super::reply::{ReplyOp, ReplyOps, ALL_THREADS, OP_WS_PUBLISH, WS_BINARY, WS_COMPRESS};
use super::Shared;
use crate::conn::{Conn, Liveness};
use crate::http1::conn::PendingPool;
use crate::http1::date::CachedDate;
use crate::http1::encode;
use crate::http1::request::{HeadLimits, RequestHead};
use crate::ops::access_log::{LogEntry, Outcome, ThreadLog};
use crate::ops::stats::{Protocol, Refusal, ThreadStats};
use crate::tls::session::TlsSession;
use crate::ws;
use crate::ws::topics::Topics;

/// Timeouts are checked this often; a coarse clock is enough for them.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/* 64k: one read takes what a pipelining client or a fast upload has sent. */
const READ_BUFFER: usize = 64 * 1024;
/// Per-address state is pruned this often (by thread 0).
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Engine-fed event streams (the dashboard's) get a snapshot this often, and the access log
/// is handed to its writer at least this often.
const EVENT_EVERY: Duration = Duration::from_secs(1);

/// Everything a connection needs from its thread while it works.
pub(crate) struct Ctx {
    pub thread: u8,
    /// The backend: connections read and write through it.
    pub io: Io,
    pub shared: Arc<Shared>,
    pub scratch: Vec<u8>,
    /// Ciphertext as read from a TLS socket, before it is decrypted into `scratch` (empty
    /// without TLS).
    pub cipher: Vec<u8>,
    /// TLS records gathered into one write.
    pub gather: Vec<u8>,
    /// This thread's access log lines, when the log is on.
    pub log: Option<ThreadLog>,
    /// Engine-made event streams open on this thread (the dashboard's): connection slot
    /// and request id.
    pub event_streams: Vec<(u32, u32)>,
    /// Streams that get a comment line from the engine when quiet (`OP_HEARTBEAT`): slot
    /// and request id. Checked by the sweep.
    pub heartbeats: Vec<(u32, u32)>,
    pub head: RequestHead,
    pub params: Vec<(u32, u32)>,
    pub batch: BatchBuilder,
    pub date: CachedDate,
    /// HTTP/2 answers' header values, kept for reuse.
    pub h2_values: crate::h2::HeadValues,
    pub pool: BufPool,
    pub pendings: PendingPool,
    /// This thread's WebSocket topics.
    pub topics: Topics,
    /// The thread's WebSocket compressors, by window bits, made on first use. Every socket
    /// is compressed without context takeover, so one serves them all, sends and publishes.
    deflaters: Vec<(u8, ws::deflate::Deflater)>,
    pub now: Instant,
    pub draining: bool,
    /// What a head may hold.
    pub limits: HeadLimits,
    /// `keep-alive: timeout=N\r\n`, or empty.
    pub keep_alive_line: Vec<u8>,
    /// Requests of this thread handed to the handler and not answered yet.
    pub waiting: usize,
    /// This thread's share of `max_pending_requests`.
    pub max_waiting: usize,
    pub write_high_water: usize,
    /// Slots of connections paused for backpressure, resumed when the reason is gone.
    pub paused: Vec<u32>,
    next_rid: u32,
}

impl Ctx {
    /// This thread's counters.
    #[inline]
    pub fn stats(&self) -> &ThreadStats {
        &self.shared.stats.threads[self.thread as usize]
    }

    /// A request done with, over any protocol: counted among those answered (unless it was
    /// aborted) and its access log line written. The duration is read from the turn's clock
    /// (taken when the answers were applied): no clock read per request.
    pub fn request_done(
        &mut self,
        protocol: Protocol,
        status: u16,
        since: Instant,
        sent: u64,
        aborted: bool,
        log: Option<Box<LogEntry>>,
    ) {
        let duration = self.now.saturating_duration_since(since);
        if !aborted {
            self.stats()
                .request(status, protocol, duration.as_micros() as u64);
        }
        if let (Some(log), Some(entry)) = (self.log.as_mut(), log) {
            log.line(
                &entry,
                &Outcome {
                    status,
                    bytes: sent,
                    duration,
                    aborted,
                },
            );
        }
    }

    pub fn deflater(&mut self, window_bits: u8) -> &mut ws::deflate::Deflater {
        let at = match self.deflaters.iter().position(|(b, _)| *b == window_bits) {
            Some(at) => at,
            None => {
                let params = ws::deflate::DeflateParams {
                    server_no_context_takeover: true,
                    deflate_window_bits: window_bits,
                    ..ws::deflate::DeflateParams::default_params()
                };
                self.deflaters
                    .push((window_bits, ws::deflate::Deflater::new(&params)));
                self.deflaters.len() - 1
            }
        };
        &mut self.deflaters[at].1
    }

    pub fn next_rid(&mut self) -> u32 {
        self.next_rid = self.next_rid.wrapping_add(1);
        self.next_rid
    }

    /// Gives the handler everything gathered so far: one call per batch, never per request.
    pub fn hand_over_batch(&mut self) {
        if !self.batch.is_empty() {
            let mut batch = self.batch.take();
            self.shared
                .handler
                .on_batch(&mut batch, &self.shared.replier);
            self.batch.recycle(batch);
        }
    }
}

pub(crate) struct Worker {
    conns: Slab<Conn>,
    ctx: Ctx,
    ready: Vec<Ready>,
    replies: Vec<u8>,
    dirty: Vec<usize>,
    last_sweep: Instant,
    last_prune: Instant,
    last_event: Instant,
    drain_deadline: Option<Instant>,
}

impl Worker {
    pub fn new(thread: u8, io: Io, shared: Arc<Shared>) -> Worker {
        let config = &shared.config;
        let limits = HeadLimits::new(
            config.max_header_count,
            config.max_header_size,
            config.max_url_length,
        );
        let keep_alive_line = encode::keep_alive_line(config.keep_alive_timeout);
        let max_waiting = if config.max_pending_requests == 0 {
            usize::MAX
        } else {
            config.max_pending_requests.div_ceil(shared.threads.max(1))
        };
        let write_high_water = config.write_high_water;
        let cipher = if shared.tls.is_some() {
            vec![0; READ_BUFFER]
        } else {
            Vec::new()
        };
        let log = shared.access_log.as_ref().map(|l| l.thread_log());
        let topics = Topics::counted(shared.topic_counts.clone());
        Worker {
            conns: Slab::new(),
            ctx: Ctx {
                thread,
                io,
                shared,
                scratch: vec![0; READ_BUFFER],
                cipher,
                gather: Vec::new(),
                log,
                event_streams: Vec::new(),
                heartbeats: Vec::new(),
                head: RequestHead::new(),
                params: Vec::with_capacity(8),
                batch: BatchBuilder::new(thread),
                date: CachedDate::new(),
                h2_values: Default::default(),
                pool: BufPool::default(),
                pendings: PendingPool::default(),
                topics,
                deflaters: Vec::new(),
                now: Instant::now(),
                draining: false,
                limits,
                keep_alive_line,
                waiting: 0,
                max_waiting,
                write_high_water,
                paused: Vec::new(),
                next_rid: 0,
            },
            ready: Vec::with_capacity(1024),
            replies: Vec::new(),
            dirty: Vec::new(),
            last_sweep: Instant::now(),
            last_prune: Instant::now(),
            last_event: Instant::now(),
            drain_deadline: None,
        }
    }

    /// Open connections, and what they hold on the heap in all (tests).
    #[cfg(test)]
    pub fn heap_of_connections(&self) -> (usize, usize) {
        (
            self.conns.len(),
            self.conns.iter().map(|(_, c)| c.heap_bytes()).sum(),
        )
    }

    pub fn has_completions(&mut self) -> bool {
        self.ctx.io.has_completions()
    }

    pub fn io_name(&self) -> &'static str {
        self.ctx.io.name()
    }

    /// Hands what the turn queued to the kernel (a completion backend; the inline driver's
    /// turns end here, with nothing else to submit for them).
    pub fn submit(&mut self) {
        self.ctx.io.submit();
    }

    /// The threads driver: this I/O thread's whole life.
    pub fn run(mut self) {
        let thread = self.ctx.thread as usize;
        loop {
            let timeout = if self.ctx.shared.replier.inboxes[thread].sleep() {
                SWEEP_EVERY
            } else {
                Duration::ZERO
            };
            let polled = self.poll_once(timeout);
            self.ctx.shared.replier.inboxes[thread].awake();
            if let Err(e) = polled {
                eprintln!("harrier: I/O thread {thread} cannot poll: {e}");
                break;
            }
            self.after_events();
            if self.finished() {
                break;
            }
        }
        // A thread that stops on an error stops accepting too.
        self.ctx.shared.gate.close();
    }

    /// The inline driver: one non-blocking turn, when the poll's descriptor is readable.
    pub fn step(&mut self) -> io::Result<()> {
        self.poll_once(Duration::ZERO)?;
        self.after_events();
        self.ctx.io.submit();
        Ok(())
    }

    /// Handles what one wait reported: accepts, reads, writes.
    fn poll_once(&mut self, timeout: Duration) -> io::Result<()> {
        let mut ready = std::mem::take(&mut self.ready);
        let waited = self.ctx.io.wait(timeout, &mut ready);
        self.ctx.now = Instant::now();
        self.ctx.date.update(SystemTime::now());
        for r in ready.drain(..) {
            match r {
                Ready::Listener => self.accept(),
                Ready::Conn {
                    key,
                    readable,
                    writable,
                } => self.on_socket(key, readable, writable),
            }
        }
        self.ready = ready;
        waited
    }

    fn after_events(&mut self) {
        self.adopt_arrivals();
        // Hand requests over before writing answers, so that a handler on another thread
        // works while this one writes.
        self.ctx.hand_over_batch();
        self.answer();
        if self.ctx.now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep();
        }
        self.settle();
    }

    /// Whether events wait in the batch for the handler (raised while answering).
    pub fn has_events(&self) -> bool {
        !self.ctx.batch.is_empty()
    }

    /// The end of every turn: hands over what the turn raised (aborts while writing or
    /// sweeping), and starts the drain if a shutdown was asked meanwhile, by another thread or
    /// by the handler itself while it ran (the inline driver): a shutdown asked in a turn
    /// stops accepting in that turn.
    fn settle(&mut self) {
        loop {
            self.ctx.hand_over_batch();
            if self.ctx.draining || !self.ctx.shared.shutdown.load(Ordering::SeqCst) {
                return;
            }
            self.begin_drain();
        }
    }

    /// Applies the replies waiting in this thread's inbox and writes them. What writing
    /// raised for the handler (a response back under its high-water mark, a body read on)
    /// stays in the batch for the end of the turn (`settle`).
    pub fn answer(&mut self) {
        self.take_replies();
        self.flush_dirty();
        // A paused connection resumes once answers free room; what it reads then may be
        // answered at once (a handler on this thread), freeing room again: go on while that
        // happens, a bounded number of rounds, so one deep pipeline cannot hold the loop.
        for _ in 0..64 {
            if self.ctx.paused.is_empty() {
                break;
            }
            self.resume_paused();
            let answered = self.take_replies();
            self.flush_dirty();
            if !answered {
                break;
            }
        }
    }

    /// Reads again from connections paused for backpressure whose reason is gone.
    fn resume_paused(&mut self) {
        if self.ctx.paused.is_empty() {
            return;
        }
        for slot in std::mem::take(&mut self.ctx.paused) {
            self.guarded(slot as usize, |conn, ctx| {
                let alive = conn.resume(ctx);
                if alive == Liveness::Open && conn.t.dirty {
                    return conn.flush(ctx);
                }
                alive
            });
        }
        // Requests read just now go to the handler in this turn.
        self.ctx.hand_over_batch();
    }

    /// Runs `f` on one connection; a panic in it is contained there: the connection is
    /// dropped (its requests aborted), what it added to the batch is undone, the thread and
    /// every other connection go on. Closes the connection when `f` says it is closed.
    fn guarded(&mut self, key: usize, f: impl FnOnce(&mut Conn, &mut Ctx) -> Liveness) -> Liveness {
        let Some(conn) = self.conns.get_mut(key) else {
            return Liveness::Closed;
        };
        let mark = self.ctx.batch.mark();
        let ctx = &mut self.ctx;
        match catch_unwind(AssertUnwindSafe(|| f(conn, ctx))) {
            Ok(Liveness::Open) => Liveness::Open,
            Ok(Liveness::Closed) => {
                self.close(key);
                Liveness::Closed
            }
            Err(_) => {
                eprintln!(
                    "harrier: internal error on a connection; it was dropped, the server goes on"
                );
                self.ctx.batch.rollback(mark);
                if self.ctx.scratch.len() != READ_BUFFER {
                    self.ctx.scratch = vec![0; READ_BUFFER];
                }
                if let Some(mut conn) = self.conns.try_remove(key) {
                    self.forget(&conn);
                    let ctx = &mut self.ctx;
                    if catch_unwind(AssertUnwindSafe(|| conn.abort_all(ctx))).is_err() {
                        self.ctx.batch.rollback(mark);
                    }
                    conn.t.sock.close(&mut self.ctx.io);
                }
                Liveness::Closed
            }
        }
    }

    /// Timers only (the inline driver calls this from a libuv timer).
    pub fn tick(&mut self) {
        self.ctx.now = Instant::now();
        self.ctx.date.update(SystemTime::now());
        self.sweep();
        self.resume_paused();
        self.settle();
    }

    /// Draining is over: nothing is left to answer or close.
    pub fn finished(&self) -> bool {
        self.ctx.draining && self.conns.is_empty() && self.ctx.io.quiet()
    }

    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.ctx.io.raw_fd()
    }

    fn accept(&mut self) {
        loop {
            match self.ctx.io.accept() {
                Ok(fresh) => self.admit(fresh),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The gate shut the listener (a shutdown began): nothing more comes from it.
                Err(_) if self.ctx.shared.shutdown.load(Ordering::SeqCst) => return,
                Err(e) => {
                    // Out of descriptors, most often: leave the rest in the backlog for later.
                    eprintln!("harrier: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Serves the connections the accept point handed to this thread (`Balance::Handoff`);
    /// once draining, they are closed, as the listener would refuse them.
    fn adopt_arrivals(&mut self) {
        let thread = self.ctx.thread as usize;
        for stream in self.ctx.shared.replier.inboxes[thread].take_arrivals() {
            if self.ctx.draining {
                continue;
            }
            match self.ctx.io.adopt(stream.into()) {
                Ok(fresh) => self.admit(fresh),
                Err(e) => eprintln!("harrier: a connection handed over was lost: {e}"),
            }
        }
    }

    /// Registers a connection just accepted, unless a limit refuses it.
    fn admit(&mut self, fresh: Fresh) {
        let shared = &self.ctx.shared;
        let max = shared.config.max_connections;
        if max > 0 && shared.open.load(Ordering::Relaxed) >= max {
            // Closed at once: the connections already open are not disturbed.
            self.ctx.stats().refused(Refusal::ConnectionLimit);
            return;
        }
        let ip = match (
            &shared.ips,
            shared.ips.as_ref().and_then(|_| fresh.peer_ip()),
        ) {
            (Some(table), Some(peer)) => match table.open(peer, self.ctx.now) {
                Some(state) => Some(state),
                None => {
                    self.ctx.stats().refused(Refusal::ConnectionLimit);
                    return;
                }
            },
            _ => None,
        };
        let tls = match &shared.tls {
            Some(config) => match TlsSession::new(config, self.ctx.now) {
                Ok(session) => Some(Box::new(session)),
                Err(e) => {
                    eprintln!("harrier: TLS session: {e}");
                    if let (Some(table), Some(state)) = (&shared.ips, ip) {
                        table.close(&state);
                    }
                    return;
                }
            },
            None => None,
        };
        fresh.set_nodelay();
        let peer = fresh.accepted_peer();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        match self.ctx.io.register(fresh, key) {
            Ok(sock) => {
                shared.open.fetch_add(1, Ordering::Relaxed);
                self.ctx.stats().accepted();
                let conn = entry.insert(Conn::new(sock, key as u32, self.ctx.now, ip, tls));
                if let Some(peer) = peer {
                    conn.t.knows_peer(peer);
                }
            }
            Err(_) => {
                if let (Some(table), Some(state)) = (&shared.ips, ip) {
                    table.close(&state);
                }
            }
        }
    }

    fn on_socket(&mut self, key: usize, readable: bool, writable: bool) {
        let handed = self.ctx.batch.handed();
        self.guarded(key, |conn, ctx| {
            let mut alive = Liveness::Open;
            if readable {
                alive = conn.on_readable(ctx);
            }
            if alive == Liveness::Open && (writable || conn.t.dirty) {
                alive = conn.flush(ctx);
            }
            alive
        });
        if self.ctx.batch.handed() != handed {
            // A batch filled up while this socket was read (large messages, bodies) and went
            // to the handler: what it answered is applied now, while it is in cache, not after
            // the turn's other sockets have filled several more; it is written at the turn's
            // end with the rest (one write per socket per turn, as before).
            self.take_replies();
        }
    }

    /// Applies what the inbox holds, and what the handler left in place; false if neither
    /// held anything.
    fn take_replies(&mut self) -> bool {
        let thread = self.ctx.thread as usize;
        let mut taken = false;
        if self.ctx.shared.replier.inboxes[thread].take(&mut self.replies) {
            let replies = std::mem::take(&mut self.replies);
            self.apply_ops(&replies);
            self.replies = replies;
            taken = true;
        }
        let shared = self.ctx.shared.clone();
        shared.handler.take_written(&mut |ops| {
            self.apply_in_place(ops);
            taken = true;
        });
        taken
    }

    /// Applies ops read where the handler wrote them, as `Replier::send` would route them:
    /// those for this thread, and publishes, which the port group's other engines get too.
    pub fn apply_in_place(&mut self, ops: &[u8]) {
        if let Some(group) = &self.ctx.shared.replier.group {
            for op in ReplyOps::new(ops) {
                if op.thread == ALL_THREADS {
                    group.forward(&self.ctx.shared.replier.inboxes, op.bytes);
                }
            }
        }
        self.apply_ops(ops);
    }

    /// Applies ops in order (stopping at a malformed one) and marks what they dirtied.
    fn apply_ops(&mut self, ops: &[u8]) {
        // The answers are applied (and written) now: the clock the latency figures read.
        self.ctx.now = Instant::now();
        let thread = self.ctx.thread;
        for op in ReplyOps::new(ops) {
            if op.kind == OP_WS_PUBLISH {
                self.publish(&op);
                continue;
            }
            // Ops read in place were not routed: another thread's are not this one's.
            if op.thread != thread && op.thread != ALL_THREADS {
                continue;
            }
            let key = op.slot as usize;
            if !self.conns.contains(key) {
                continue;
            }
            let alive = self.guarded(key, |conn, ctx| conn.apply(ctx, &op));
            if alive == Liveness::Open && self.conns.get(key).is_some_and(|c| c.t.dirty) {
                self.dirty.push(key);
            }
        }
    }

    /// Frames a published message once (and compresses it at most once) and queues it for
    /// every subscriber of its topic on this thread but the one it names.
    fn publish(&mut self, op: &ReplyOp) {
        let Some((mut headers, message)) = op.split() else {
            return;
        };
        let Some((topic, _)) = headers.next() else {
            return;
        };
        let Some(id) = self.ctx.topics.find(topic) else {
            return;
        };
        let opcode = if op.status & WS_BINARY != 0 {
            ws::frame::BINARY
        } else {
            ws::frame::TEXT
        };
        let mut plain = Vec::new();
        // By the window the subscriber allows: a compressed frame per window size in use.
        let mut compressed: Vec<(u8, Vec<u8>)> = Vec::new();
        // The socket left out, if it lives on this thread (ids are per thread).
        let except = (op.status >> 8 == self.ctx.thread as u16 + 1).then_some((op.slot, op.rid));
        let subscribers = self.ctx.topics.take_subscribers(id);
        for &slot in &subscribers {
            let key = slot as usize;
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(ws) = conn.websocket() else { continue };
            if except == Some((slot, ws.id())) {
                continue;
            }
            let window = ws.deflate_window_bits().filter(|_| {
                op.status & WS_COMPRESS != 0 && message.len() >= ws.deflate_threshold()
            });
            let frame = match window {
                Some(bits) => {
                    let at = match compressed.iter().position(|(b, _)| *b == bits) {
                        Some(at) => at,
                        None => {
                            let mut frame = Vec::new();
                            self.ctx
                                .deflater(bits)
                                .write_frame(&mut frame, opcode, message);
                            compressed.push((bits, frame));
                            compressed.len() - 1
                        }
                    };
                    &compressed[at].1
                }
                None => {
                    if plain.is_empty() {
                        ws::frame::write_frame(&mut plain, opcode, message);
                    }
                    &plain
                }
            };
            if conn.deliver(&mut self.ctx, frame) {
                self.dirty.push(key);
            }
        }
        self.ctx.topics.restore(id, subscribers);
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
            if self.conns.get(key).is_some_and(|c| c.t.dirty) {
                self.guarded(key, |conn, ctx| conn.flush(ctx));
            }
        }
        self.dirty = dirty;
        // Connections dirtied while reading (a 404, a 100 Continue) are flushed by on_socket.
    }

    fn sweep(&mut self) {
        self.last_sweep = self.ctx.now;
        let timeout = self.ctx.shared.config.handler_timeout;
        let now = self.ctx.now;
        let force = self.drain_deadline.is_some_and(|d| now >= d);
        for key in 0..self.conns.capacity() {
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            if force || conn.linger_expired(now) {
                self.close(key);
                continue;
            }
            self.guarded(key, |conn, ctx| {
                if !timeout.is_zero() {
                    conn.expire(ctx, timeout);
                }
                if conn.check_timers(ctx) == Liveness::Closed {
                    return Liveness::Closed;
                }
                if conn.t.dirty {
                    return conn.flush(ctx);
                }
                Liveness::Open
            });
        }
        self.ctx.io.maintain(now);
        self.ctx.pool.trim();
        self.beat_hearts();
        let idle = self.conns.iter().filter(|(_, c)| c.is_idle()).count();
        self.ctx.stats().set_gauges(idle, self.ctx.waiting);
        if now.saturating_duration_since(self.last_event) >= EVENT_EVERY {
            self.last_event = now;
            self.push_events();
            if let Some(log) = self.ctx.log.as_mut() {
                log.hand_over();
            }
        }
        if self.ctx.thread == 0 && now.saturating_duration_since(self.last_prune) >= PRUNE_EVERY {
            self.last_prune = now;
            if let Some(table) = &self.ctx.shared.ips {
                table.prune(now);
            }
        }
    }

    /// A comment line into every heartbeat stream quiet for its interval; streams that ended
    /// leave the list.
    fn beat_hearts(&mut self) {
        if self.ctx.heartbeats.is_empty() {
            return;
        }
        let mut beats = std::mem::take(&mut self.ctx.heartbeats);
        beats.retain(|&(slot, rid)| {
            let mut alive = false;
            let open = self.guarded(slot as usize, |conn, ctx| match conn.heartbeat(ctx, rid) {
                None => Liveness::Open,
                Some(wrote) => {
                    alive = true;
                    if wrote {
                        conn.flush(ctx)
                    } else {
                        Liveness::Open
                    }
                }
            });
            alive && open == Liveness::Open
        });
        beats.append(&mut self.ctx.heartbeats);
        self.ctx.heartbeats = beats;
    }

    /// A snapshot to every engine-fed event stream on this thread.
    fn push_events(&mut self) {
        if self.ctx.event_streams.is_empty() {
            return;
        }
        let event = crate::ops::snapshot_event(&self.ctx.shared.snapshot());
        let mut streams = std::mem::take(&mut self.ctx.event_streams);
        streams.retain(|&(slot, rid)| {
            let mut pushed = false;
            let alive = self.guarded(slot as usize, |conn, ctx| {
                pushed = conn.push_event(ctx, rid, &event);
                if pushed {
                    conn.flush(ctx)
                } else {
                    Liveness::Open
                }
            });
            pushed && alive == Liveness::Open
        });
        streams.append(&mut self.ctx.event_streams);
        self.ctx.event_streams = streams;
    }

    /// Stops accepting and closes idle connections; busy ones close after their last answer.
    fn begin_drain(&mut self) {
        // Connections the kernel completed already are taken and served (or closed if idle),
        // rather than reset with the listener; the gate keeps those it finds as it closes.
        self.accept();
        self.ctx.draining = true;
        self.drain_deadline = Some(self.ctx.now + self.ctx.shared.config.drain_timeout);
        self.stop_listening();
        // An idle connection has no answer to protect: it is closed at once, not lingered.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle() && !c.is_lingering())
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close(key);
        }
        // Event streams end (they would hold the drain to its deadline): the engine's own
        // and the handlers' (`res.eventStream()`).
        let mut streams = std::mem::take(&mut self.ctx.event_streams);
        streams.append(&mut self.ctx.heartbeats);
        for (slot, rid) in streams {
            self.guarded(slot as usize, |conn, ctx| {
                conn.end_event_stream(ctx, rid);
                conn.flush(ctx)
            });
        }
        // WebSockets are asked to close (1001) and close when the client answers; HTTP/2
        // connections get GOAWAY and close once their streams in flight are answered.
        let sockets: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.hears_go_away())
            .map(|(k, _)| k)
            .collect();
        for key in sockets {
            self.guarded(key, |conn, ctx| {
                conn.go_away(ctx);
                conn.flush(ctx)
            });
        }
    }

    /// The port refuses connections from now on (the gate may have closed already, from the
    /// thread that called for the shutdown); the connections the gate took as it closed are
    /// served here.
    fn stop_listening(&mut self) {
        self.ctx.shared.gate.close();
        self.ctx.io.close_listener();
        for fd in self.ctx.shared.gate.take_backlog() {
            match self.ctx.io.adopt(fd) {
                Ok(fresh) => self.admit(fresh),
                Err(e) => eprintln!(
                    "harrier: a connection taken while closing the listener was lost: {e}"
                ),
            }
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.forget(&conn);
            conn.t.say_goodbye(&mut self.ctx);
            conn.abort_all(&mut self.ctx);
            conn.t.sock.close(&mut self.ctx.io);
        }
    }

    /// Takes a closing connection off the counts.
    fn forget(&self, conn: &Conn) {
        let shared = &self.ctx.shared;
        shared.open.fetch_sub(1, Ordering::Relaxed);
        if let (Some(table), Some(state)) = (&shared.ips, &conn.t.ip) {
            table.close(state);
        }
    }
}
