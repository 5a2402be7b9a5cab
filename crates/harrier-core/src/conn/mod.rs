//! A client connection: one transport (the socket and its buffers) and the protocol it
//! speaks now. See LIFECYCLE.md for how a connection lives and dies.

pub(crate) mod answers;
pub(crate) mod transport;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::event_loop::Ctx;
use crate::engine::io::Socket;
use crate::engine::limits::IpState;
use crate::engine::reply::ReplyOp;
use crate::h2::conn::H2Conn;
use crate::h2::Sniffed;
use crate::http1::conn::{Http1, Upgrade};
use crate::tls::session::TlsSession;
use crate::ws::conn::WsConn;
use transport::{Drained, Flushed, Transport};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Open,
    Closed,
}

/// What the connection speaks.
pub(crate) enum Protocol {
    Http1(Http1),
    /// After a 101.
    WebSocket(Box<WsConn>),
    /// From the start: the preface in cleartext, ALPN over TLS.
    Http2(Box<H2Conn>),
}

/// Which protocol a new connection speaks, decided once, on its first bytes: over TLS by
/// what ALPN chose (`h2`), in cleartext by the HTTP/2 preface (prior knowledge). Anything else
/// is HTTP/1.1 (where `Upgrade: h2c` is not offered).
fn choose_protocol(t: &Transport, ctx: &Ctx, input: &[u8]) -> Sniffed {
    if !ctx.shared.config.http2.enabled {
        return Sniffed::Http1;
    }
    match t.alpn() {
        Some(b"h2") => Sniffed::Http2,
        Some(_) => Sniffed::Http1,
        // Over TLS without ALPN, as in cleartext: the preface tells.
        None => crate::h2::sniff(input),
    }
}

pub(crate) struct Conn {
    pub t: Transport,
    protocol: Protocol,
    /// Not read for now (backpressure): listed in `Ctx::paused` until resumed.
    paused: bool,
    /// No byte read yet: the protocol may still change (`choose_protocol`).
    undecided: bool,
}

impl Conn {
    pub fn new(
        sock: Socket,
        slot: u32,
        now: Instant,
        ip: Option<Arc<IpState>>,
        tls: Option<Box<TlsSession>>,
    ) -> Conn {
        Conn {
            t: Transport::new(sock, slot, now, ip, tls),
            protocol: Protocol::Http1(Http1::new()),
            paused: false,
            undecided: true,
        }
    }

    /// What this connection holds on the heap (its buffers and lists), for the tests that
    /// check an idle one holds nothing.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.t.heap_bytes()
            + match &self.protocol {
                Protocol::Http1(h) => h.heap_bytes(),
                Protocol::WebSocket(w) => w.heap_bytes(),
                Protocol::Http2(h) => h.heap_bytes(),
            }
    }

    pub fn is_idle(&self) -> bool {
        match &self.protocol {
            Protocol::Http1(h) => h.is_idle(&self.t),
            // Never closed as idle by a drain: it is asked to close (`go_away`).
            Protocol::WebSocket(_) | Protocol::Http2(_) => false,
        }
    }

    pub fn is_lingering(&self) -> bool {
        self.t.is_lingering()
    }

    pub fn linger_expired(&self, now: Instant) -> bool {
        self.t.linger_expired(now)
    }

    fn reads(&self) -> bool {
        match &self.protocol {
            Protocol::Http1(h) => h.reads(),
            Protocol::WebSocket(w) => w.reads(),
            Protocol::Http2(h) => h.reads(),
        }
    }

    fn must_pause(&self, ctx: &Ctx) -> bool {
        match &self.protocol {
            Protocol::Http1(h) => h.must_pause(&self.t, ctx),
            Protocol::WebSocket(w) => w.must_pause(&self.t, ctx),
            Protocol::Http2(h) => h.must_pause(&self.t, ctx),
        }
    }

    fn doomed(&self) -> bool {
        match &self.protocol {
            Protocol::Http1(h) => h.doomed,
            Protocol::WebSocket(_) | Protocol::Http2(_) => false,
        }
    }

    /// Hands `input` to the protocol; returns the bytes it used.
    fn consume(&mut self, ctx: &mut Ctx, input: &mut [u8]) -> usize {
        if self.undecided {
            match choose_protocol(&self.t, ctx, input) {
                Sniffed::NeedMore => return 0,
                Sniffed::Http2 => {
                    self.undecided = false;
                    self.protocol = Protocol::Http2(Box::new(H2Conn::new(ctx)));
                }
                Sniffed::Http1 => {
                    self.undecided = false;
                    if let Protocol::Http1(h) = &mut self.protocol {
                        if ctx.shared.config.http2.enabled && crate::http1::request::not_http(input)
                        {
                            // On a port that speaks HTTP/2 too, first bytes that are no HTTP/1.x
                            // request line (no `HTTP/` version) are an invalid connection preface
                            // (RFC 9113 3.4): the connection is closed without an answer the
                            // client could not read. With HTTP/2 off they get their 400.
                            h.doomed = true;
                            return input.len();
                        }
                    }
                }
            }
        }
        match &mut self.protocol {
            Protocol::Http1(h) => {
                let used = h.parse(&mut self.t, ctx, input);
                // A handshake the engine accepted itself: its 101 is out already.
                if let Some(upgrade) = h.take_switch() {
                    self.become_websocket(ctx, *upgrade);
                }
                used
            }
            Protocol::WebSocket(w) => w.consume(&mut self.t, ctx, input),
            Protocol::Http2(h) => h.consume(&mut self.t, ctx, input),
        }
    }

    fn after_parse(&mut self, ctx: &mut Ctx) {
        match &mut self.protocol {
            Protocol::Http1(h) => h.after_parse(&self.t, ctx),
            Protocol::WebSocket(_) | Protocol::Http2(_) => {}
        }
    }

    /// Reads until the socket has no more, handing the bytes to the protocol as they come.
    pub fn on_readable(&mut self, ctx: &mut Ctx) -> Liveness {
        loop {
            if self.t.is_lingering() || !self.reads() {
                return self.discard_input(ctx);
            }
            if self.must_pause(ctx) {
                // What the client sends meanwhile waits in the kernel: its window closes.
                self.pause(ctx);
                return Liveness::Open;
            }
            // The reason to pause is gone (its slot in `ctx.paused` is skipped when resumed):
            // with edge-triggered polling, this event may be the last word the socket says.
            self.paused = false;
            let buffered = !self.t.rbuf.is_empty();
            let result = if buffered {
                self.t.read_more(ctx)
            } else {
                let mut scratch = std::mem::take(&mut ctx.scratch);
                let r = self.t.read(ctx, &mut scratch);
                ctx.scratch = scratch;
                r
            };
            match result {
                Ok((0, _)) => return Liveness::Closed,
                Ok((n, drained)) => {
                    self.t.last_read = ctx.now;
                    if buffered {
                        self.consume_buffered(ctx);
                    } else {
                        let mut scratch = std::mem::take(&mut ctx.scratch);
                        let used = self.consume(ctx, &mut scratch[..n]);
                        if used < n && self.reads() {
                            self.t.rbuf = ctx.pool.get();
                            self.t.rbuf.extend_from_slice(&scratch[used..n]);
                        }
                        ctx.scratch = scratch;
                        self.after_parse(ctx);
                    }
                    if self.doomed() {
                        return Liveness::Closed;
                    }
                    if drained && self.t.rbuf.is_empty() {
                        // The socket has nothing more for now; with edge-triggered polling
                        // there is no need to try again and hear WouldBlock.
                        return Liveness::Open;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Liveness::Closed,
            }
        }
    }

    /// Hands what the input buffer holds to the protocol; gives the buffer back to the pool
    /// once it is used up.
    fn consume_buffered(&mut self, ctx: &mut Ctx) {
        let mut rbuf = std::mem::take(&mut self.t.rbuf);
        let used = self.consume(ctx, &mut rbuf);
        rbuf.drain(..used);
        self.t.rbuf = rbuf;
        if !self.reads() {
            self.t.rbuf.clear();
        }
        self.t.release_input(ctx);
        self.after_parse(ctx);
    }

    fn pause(&mut self, ctx: &mut Ctx) {
        if !self.paused {
            self.paused = true;
            ctx.paused.push(self.t.slot);
        }
    }

    /// Called for a paused connection when the engine's state changed: reads again (what is
    /// buffered first) if the reason to pause is gone.
    pub fn resume(&mut self, ctx: &mut Ctx) -> Liveness {
        if !self.paused {
            return Liveness::Open;
        }
        if !self.t.is_lingering() && self.reads() && self.must_pause(ctx) {
            ctx.paused.push(self.t.slot);
            return Liveness::Open;
        }
        self.paused = false;
        if !self.t.rbuf.is_empty() && self.reads() {
            self.consume_buffered(ctx);
            if self.doomed() {
                return Liveness::Closed;
            }
        }
        self.on_readable(ctx)
    }

    /// After the last input the connection will take: read and drop, until EOF.
    fn discard_input(&mut self, ctx: &mut Ctx) -> Liveness {
        match self.t.discard_input(ctx) {
            Drained::Pending => Liveness::Open,
            Drained::Eof if self.t.is_lingering() => Liveness::Closed,
            Drained::Eof => match &self.protocol {
                Protocol::Http1(h) if !h.done_at_eof() => Liveness::Open,
                _ => Liveness::Closed,
            },
        }
    }

    /// Applies one reply op from the handler; `Closed` when it drops the connection.
    pub fn apply(&mut self, ctx: &mut Ctx, op: &ReplyOp) -> Liveness {
        match &mut self.protocol {
            Protocol::Http1(h) => {
                h.apply(&mut self.t, ctx, op);
                if let Some(upgrade) = h.take_switch() {
                    self.become_websocket(ctx, *upgrade);
                }
                Liveness::Open
            }
            Protocol::WebSocket(w) => w.apply(&mut self.t, ctx, op),
            Protocol::Http2(h) => {
                h.apply(&mut self.t, ctx, op);
                Liveness::Open
            }
        }
    }

    /// The 101 is out: the same transport carries WebSocket frames from now on. What the
    /// client sent after its handshake waits in the input buffer (the connection was paused),
    /// read when the paused connections resume at the end of this turn.
    fn become_websocket(&mut self, ctx: &mut Ctx, upgrade: Upgrade) {
        let Upgrade {
            id,
            accepted,
            options,
            route,
            path,
            params,
            log,
            ..
        } = upgrade;
        let peer = self.t.sock.peer_addr(&ctx.io);
        ctx.batch.ws_open(
            id,
            self.t.slot,
            peer,
            accepted.protocol,
            route,
            &path,
            &params,
        );
        ctx.stats().ws_opened();
        self.protocol = Protocol::WebSocket(Box::new(WsConn::new(
            id,
            self.t.slot,
            options,
            accepted.deflate,
            ctx.now,
            log,
        )));
        self.t.last_read = ctx.now;
        self.pause(ctx);
    }

    /// A frame published to a topic this WebSocket is subscribed to; false if it is closing.
    pub fn deliver(&mut self, ctx: &mut Ctx, frame: &[u8]) -> bool {
        match &mut self.protocol {
            Protocol::WebSocket(w) if w.is_open() => {
                w.deliver(&mut self.t, ctx, frame);
                true
            }
            _ => false,
        }
    }

    /// An event for an engine-fed stream of this connection; false once it is gone.
    pub fn push_event(&mut self, ctx: &mut Ctx, rid: u32, event: &[u8]) -> bool {
        match &mut self.protocol {
            Protocol::Http1(h) => h.push_event(&mut self.t, ctx, rid, event),
            Protocol::Http2(h) => {
                self.t.dirty = true;
                h.push_event(rid, event)
            }
            Protocol::WebSocket(_) => false,
        }
    }

    /// A heartbeat stream's turn: `None` once it is gone, else whether a comment line went out.
    pub fn heartbeat(&mut self, ctx: &mut Ctx, rid: u32) -> Option<bool> {
        match &mut self.protocol {
            Protocol::Http1(h) => h.heartbeat(&mut self.t, ctx, rid),
            Protocol::Http2(h) => {
                let beat = h.heartbeat(ctx, rid);
                if beat == Some(true) {
                    self.t.dirty = true;
                }
                beat
            }
            Protocol::WebSocket(_) => None,
        }
    }

    /// Ends an engine-fed stream: the connection closes after it.
    pub fn end_event_stream(&mut self, ctx: &mut Ctx, rid: u32) {
        match &mut self.protocol {
            Protocol::Http1(h) => h.end_event_stream(&mut self.t, ctx, rid),
            Protocol::Http2(h) => {
                self.t.dirty = true;
                h.end_event_stream(ctx, rid);
            }
            Protocol::WebSocket(_) => {}
        }
    }

    /// The WebSocket id, if the connection is one.
    pub fn websocket(&self) -> Option<&WsConn> {
        match &self.protocol {
            Protocol::WebSocket(w) => Some(w),
            Protocol::Http1(_) | Protocol::Http2(_) => None,
        }
    }

    /// Whether a shutdown must tell this connection (`go_away`) rather than wait for it.
    pub fn hears_go_away(&self) -> bool {
        matches!(self.protocol, Protocol::WebSocket(_) | Protocol::Http2(_))
    }

    /// A shutdown began: a WebSocket is asked to close (1001), HTTP/2 gets GOAWAY (its
    /// streams in flight finish); HTTP/1.1 ends on its own.
    pub fn go_away(&mut self, ctx: &mut Ctx) {
        match &mut self.protocol {
            Protocol::WebSocket(w) => w.go_away(&mut self.t, ctx),
            Protocol::Http2(h) => h.go_away(&mut self.t, ctx),
            Protocol::Http1(_) => {}
        }
    }

    /// Answers with 503 every request whose handler has not started answering in time.
    pub fn expire(&mut self, ctx: &mut Ctx, timeout: Duration) {
        match &mut self.protocol {
            Protocol::Http1(h) => h.expire(&mut self.t, ctx, timeout),
            Protocol::Http2(h) => h.expire(&mut self.t, ctx, timeout),
            Protocol::WebSocket(_) => {}
        }
    }

    /// The connection's clocks, checked by the sweep: a client that takes no output, then
    /// the protocol's own.
    pub fn check_timers(&mut self, ctx: &mut Ctx) -> Liveness {
        if self
            .t
            .write_timed_out(ctx.now, ctx.shared.config.write_timeout)
            || self
                .t
                .handshake_overdue(ctx.now, ctx.shared.config.header_timeout)
        {
            return Liveness::Closed;
        }
        if self.t.is_lingering() || self.paused {
            return Liveness::Open;
        }
        match &mut self.protocol {
            Protocol::Http1(h) => h.check_timers(&mut self.t, ctx),
            Protocol::WebSocket(w) => w.check_timers(&mut self.t, ctx),
            Protocol::Http2(h) => h.check_timers(&mut self.t, ctx),
        }
    }

    /// Writes what is queued. Returns `Closed` once a closing connection has said all.
    pub fn flush(&mut self, ctx: &mut Ctx) -> Liveness {
        if let Protocol::Http2(h) = &mut self.protocol {
            return match h2_flush(h, &mut self.t, ctx) {
                Flushed::Broken => Liveness::Closed,
                Flushed::Blocked => Liveness::Open,
                Flushed::All if h.after_flush(&mut self.t, ctx) => self.linger(ctx),
                Flushed::All => Liveness::Open,
            };
        }
        let flushed = self.t.flush(ctx);
        if let Protocol::Http1(h) = &mut self.protocol {
            if flushed != Flushed::Broken {
                h.report_drains(&self.t, ctx);
            }
        }
        if let Protocol::WebSocket(w) = &mut self.protocol {
            if flushed != Flushed::Broken
                && w.after_flush(&mut self.t, ctx, flushed == Flushed::All)
            {
                return self.linger(ctx);
            }
        }
        match flushed {
            Flushed::Broken => Liveness::Closed,
            Flushed::Blocked => Liveness::Open,
            Flushed::All => {
                let close = match &mut self.protocol {
                    Protocol::Http1(h) => h.after_flush(&mut self.t, ctx),
                    Protocol::WebSocket(_) | Protocol::Http2(_) => false,
                };
                if close {
                    self.linger(ctx)
                } else {
                    Liveness::Open
                }
            }
        }
    }

    /// Shuts the write side and waits (briefly) for the client to close its side.
    pub fn linger(&mut self, ctx: &mut Ctx) -> Liveness {
        if let Protocol::Http1(h) = &mut self.protocol {
            h.stop_reading();
        }
        match self.t.linger(ctx) {
            Drained::Pending => Liveness::Open,
            Drained::Eof => Liveness::Closed,
        }
    }

    /// The connection is going away: tell the handler about everything it still holds.
    pub fn abort_all(&mut self, ctx: &mut Ctx) {
        self.paused = false;
        match &mut self.protocol {
            Protocol::Http1(h) => h.abort_all(ctx),
            Protocol::WebSocket(w) => w.abort(ctx, self.t.slot),
            Protocol::Http2(h) => h.abort_all(ctx),
        }
        self.t.release_all(ctx);
    }
}

/// Drives h2 and writes what it produced, again while it has more to say and the socket
/// takes it (h2 held frames back for the pipe's room, or a stream's window opened).
fn h2_flush(h: &mut H2Conn, t: &mut Transport, ctx: &mut Ctx) -> Flushed {
    for _ in 0..64 {
        if h.wants_drive() {
            h.drive(t, ctx);
        }
        let flushed = t.flush(ctx);
        if flushed != Flushed::All || !h.wants_drive() {
            return flushed;
        }
    }
    // Still more: left for the next turn (the connection stays dirty).
    t.dirty = true;
    Flushed::All
}
