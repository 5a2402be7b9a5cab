//! A WebSocket over a transport, after the 101: frames in become whole messages for the
//! handler (pings answered, the close handshake done here), the handler's sends become
//! frames out. Its life is one `State`.

use std::sync::Arc;

use crate::ops::access_log::{LogEntry, Outcome};
use std::time::{Duration, Instant};

use super::deflate::DeflateParams;
use super::frame::{self, BINARY, PING, PONG, TEXT};
use super::reader::{Event, Fail, Reader};
use crate::conn::transport::Transport;
use crate::conn::Liveness;
use crate::engine::config::WsOptions;
use crate::engine::event_loop::Ctx;
use crate::engine::reply::{
    ReplyOp, OP_WS_CLOSE, OP_WS_SEND, OP_WS_SUBSCRIBE, OP_WS_UNSUBSCRIBE, WS_BINARY, WS_COMPRESS,
    WS_WANT_DRAIN,
};

/// How long a close the server began waits for the client's answer before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// A socket silent this long lets go of its inflater's zlib state (~47 KiB) when the client
/// starts every message afresh (`client_no_context_takeover`); made again on the next one.
const INFLATER_IDLE: Duration = Duration::from_secs(1);

/// 1006 is never sent: it tells the handler the connection ended without a close frame.
const ABNORMAL: u16 = 1006;
const GOING_AWAY: u16 = 1001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The server sent its close frame; the client's answer is awaited.
    Closing {
        since: Instant,
    },
    /// Both sides are done, or the connection failed: the handler has been told.
    Closed,
}

pub(crate) struct WsConn {
    /// The upgrade request's id: what events and ops name this WebSocket by.
    id: u32,
    /// Its connection's slot, told with every event so that JS finds the socket by it.
    slot: u32,
    options: Arc<WsOptions>,
    reader: Reader,
    /// The window of compressed frames sent to it (through the thread's shared compressor);
    /// `None` without permessage-deflate.
    deflate_window_bits: Option<u8>,
    state: State,
    /// The last time the client sent anything.
    last_heard: Instant,
    /// A ping went out for the silence since `last_heard`.
    pinged: bool,
    /// The handler saw the socket over its limit and waits for `WS_DRAIN`.
    want_drain: bool,
    /// The unsent bytes the handler last heard of.
    reported: usize,
    /// Topic ids this socket is subscribed to (in its thread's table).
    topics: Vec<u32>,
    /// The session's access log line, when the log is on.
    session: Option<Box<Session>>,
}

/// What the access log line of a WebSocket session says, written when it ends.
pub(crate) struct Session {
    pub entry: Box<LogEntry>,
    pub opened: Instant,
    /// Bytes of the frames sent to the client.
    pub sent: u64,
}

impl WsConn {
    pub fn new(
        id: u32,
        slot: u32,
        options: Arc<WsOptions>,
        deflate: Option<DeflateParams>,
        now: Instant,
        log: Option<Box<LogEntry>>,
    ) -> WsConn {
        let inflater = deflate.as_ref().map(super::deflate::Inflater::new);
        WsConn {
            id,
            slot,
            reader: Reader::new(options.max_payload, inflater),
            deflate_window_bits: deflate.as_ref().map(|d| d.deflate_window_bits),
            options,
            state: State::Open,
            last_heard: now,
            pinged: false,
            want_drain: false,
            reported: 0,
            topics: Vec::new(),
            session: log.map(|entry| {
                Box::new(Session {
                    entry,
                    opened: now,
                    sent: 0,
                })
            }),
        }
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.reader.heap_bytes() + self.topics.capacity() * 4
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether frames are still read (after the close, input is dropped).
    pub fn reads(&self) -> bool {
        self.state != State::Closed
    }

    /// Whether a publish is still delivered to it.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// A client that sends while taking nothing of what it is sent is not read further
    /// until it does: its pongs and echoes would queue without end.
    pub fn must_pause(&self, t: &Transport, ctx: &Ctx) -> bool {
        ctx.write_high_water > 0
            && t.unsent() > self.options.backpressure_limit.max(ctx.write_high_water)
    }

    /// Reads frames from `input`; returns the bytes used (what is left is half a header).
    pub fn consume(&mut self, t: &mut Transport, ctx: &mut Ctx, input: &mut [u8]) -> usize {
        let (id, slot) = (self.id, self.slot);
        let mut closed: Option<(u16, Vec<u8>)> = None;
        let fed = self.reader.feed(input, &mut |event| match event {
            Event::Text(message) => {
                ctx.stats().ws_message_in();
                ctx.batch.ws_message(id, slot, false, message)
            }
            Event::Binary(message) => {
                ctx.stats().ws_message_in();
                ctx.batch.ws_message(id, slot, true, message)
            }
            Event::Ping(payload) => {
                let mut out = t.take_out(ctx);
                frame::write_frame(&mut out, PONG, payload);
                t.put_out(out);
            }
            Event::Pong(_) => {}
            Event::Close { code, reason } => closed = Some((code, reason.to_vec())),
        });
        self.last_heard = ctx.now;
        self.pinged = false;
        if ctx.batch.is_full() {
            ctx.hand_over_batch();
        }
        match fed {
            Ok(used) => {
                if let Some((code, reason)) = closed {
                    self.close_with(t, ctx, code, &reason);
                }
                used
            }
            Err(Fail { code, reason }) => {
                self.close_with(t, ctx, code, reason.as_bytes());
                input.len()
            }
        }
    }

    /// Ends the socket with a close frame of `code` and `reason` unless the server sent its
    /// own already: the echo of a client's close, or the error a bad frame is closed with.
    /// The handler is told either way; the connection closes once that is written.
    fn close_with(&mut self, t: &mut Transport, ctx: &mut Ctx, code: u16, reason: &[u8]) {
        if self.state == State::Open {
            let mut out = t.take_out(ctx);
            frame::write_close(&mut out, code, reason);
            t.put_out(out);
        }
        self.finish(t, ctx, code, reason);
    }

    /// Tells the handler the socket is closed, once; the connection closes after its output.
    fn finish(&mut self, t: &mut Transport, ctx: &mut Ctx, code: u16, reason: &[u8]) {
        if self.state != State::Closed {
            self.state = State::Closed;
            ctx.batch.ws_close(self.id, self.slot, code, reason);
        }
        t.close_after_flush = true;
        t.dirty = true;
    }

    /// Applies one op of the handler's. `Closed` when it asks for the connection to go now.
    pub fn apply(&mut self, t: &mut Transport, ctx: &mut Ctx, op: &ReplyOp) -> Liveness {
        if op.rid != self.id {
            return Liveness::Open;
        }
        let Some((_, body)) = op.split() else {
            return Liveness::Open;
        };
        match op.kind {
            OP_WS_SEND => {
                if op.status & WS_WANT_DRAIN != 0 {
                    self.want_drain = true;
                }
                if self.state == State::Open {
                    self.send(t, ctx, op.status, body);
                }
            }
            OP_WS_CLOSE if op.status == 0 => {
                if self.state != State::Closed {
                    self.state = State::Closed;
                    ctx.batch.ws_close(self.id, self.slot, ABNORMAL, b"");
                }
                return Liveness::Closed;
            }
            OP_WS_CLOSE => self.begin_close(t, ctx, op.status, body),
            OP_WS_SUBSCRIBE => {
                if let Some(topic) = ctx.topics.subscribe(body, t.slot) {
                    self.topics.push(topic);
                }
            }
            OP_WS_UNSUBSCRIBE => {
                if let Some(topic) = ctx.topics.find(body) {
                    if let Some(at) = self.topics.iter().position(|&x| x == topic) {
                        self.topics.swap_remove(at);
                        ctx.topics.unsubscribe(topic, t.slot);
                    }
                }
            }
            _ => {}
        }
        Liveness::Open
    }

    fn send(&mut self, t: &mut Transport, ctx: &mut Ctx, flags: u16, message: &[u8]) {
        let opcode = if flags & WS_BINARY != 0 { BINARY } else { TEXT };
        let mut written = 0;
        let compress = match self.deflate_window_bits {
            Some(bits)
                if flags & WS_COMPRESS != 0 && message.len() >= self.options.deflate_threshold =>
            {
                Some(bits)
            }
            _ => None,
        };
        t.append(
            ctx,
            frame::header_len(message.len()) + message.len(),
            |out, ctx| {
                let before = out.len();
                match compress {
                    Some(bits) => ctx.deflater(bits).write_frame(out, opcode, message),
                    None => frame::write_frame(out, opcode, message),
                }
                written = out.len() - before;
            },
        );
        if let Some(session) = self.session.as_mut() {
            session.sent += written as u64;
        }
        ctx.stats().ws_messages_out(1);
    }

    /// Queues a frame published to a topic (framed once for every subscriber).
    pub fn deliver(&mut self, t: &mut Transport, ctx: &mut Ctx, frame: &[u8]) {
        if let Some(session) = self.session.as_mut() {
            session.sent += frame.len() as u64;
        }
        ctx.stats().ws_messages_out(1);
        t.push(ctx, frame);
    }

    /// The window a compressed frame sent to this socket may use; `None` without
    /// permessage-deflate.
    pub fn deflate_window_bits(&self) -> Option<u8> {
        self.deflate_window_bits
    }

    pub fn deflate_threshold(&self) -> usize {
        self.options.deflate_threshold
    }

    /// The server begins the close handshake.
    fn begin_close(&mut self, t: &mut Transport, ctx: &mut Ctx, code: u16, reason: &[u8]) {
        if self.state != State::Open {
            return;
        }
        let mut out = t.take_out(ctx);
        frame::write_close(&mut out, code, reason);
        t.put_out(out);
        self.state = State::Closing { since: ctx.now };
    }

    /// The server is shutting down: every WebSocket is asked to close with 1001.
    pub fn go_away(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        self.begin_close(t, ctx, GOING_AWAY, b"server shutting down");
    }

    /// The sweep: a ping after half the idle timeout of silence, the end after all of it; a
    /// close handshake the client does not finish.
    pub fn check_timers(&mut self, t: &mut Transport, ctx: &mut Ctx) -> Liveness {
        if ctx.now.saturating_duration_since(self.last_heard) >= INFLATER_IDLE {
            self.reader.release_inflater();
        }
        match self.state {
            State::Closing { since } if ctx.now.saturating_duration_since(since) >= CLOSE_WAIT => {
                self.finish(t, ctx, ABNORMAL, b"close handshake timed out");
                Liveness::Closed
            }
            State::Open if !self.options.idle_timeout.is_zero() => {
                let silent = ctx.now.saturating_duration_since(self.last_heard);
                if silent >= self.options.idle_timeout {
                    self.finish(t, ctx, ABNORMAL, b"idle timeout");
                    return Liveness::Closed;
                }
                if !self.pinged && silent >= self.options.idle_timeout / 2 {
                    self.pinged = true;
                    let mut out = t.take_out(ctx);
                    frame::write_frame(&mut out, PING, b"");
                    t.put_out(out);
                }
                Liveness::Open
            }
            _ => Liveness::Open,
        }
    }

    /// After a flush: the handler hears how much is unsent when that crosses the limit
    /// (either way), when it empties after that, and when it waits for a drain; not after
    /// every write, which would cost a call into JS per turn. Whether the connection should
    /// now close.
    pub fn after_flush(&mut self, t: &mut Transport, ctx: &mut Ctx, all_written: bool) -> bool {
        let (unsent, limit, told) = (t.unsent(), self.options.backpressure_limit, self.reported);
        let crossed = (unsent >= limit) != (told >= limit);
        if crossed || (told > 0 && unsent == 0) || (self.want_drain && unsent < limit) {
            self.reported = unsent;
            self.want_drain = false;
            ctx.batch.ws_drain(self.id, self.slot, unsent);
        }
        if all_written {
            // An idle WebSocket holds no buffer.
            t.release_output(ctx);
        }
        all_written && t.close_after_flush
    }

    /// The connection is going away: the handler hears of it (1006 if no close was
    /// exchanged), and its subscriptions end.
    pub fn abort(&mut self, ctx: &mut Ctx, slot: u32) {
        if self.state != State::Closed {
            self.state = State::Closed;
            ctx.batch.ws_close(self.id, self.slot, ABNORMAL, b"");
        }
        for topic in self.topics.drain(..) {
            ctx.topics.unsubscribe(topic, slot);
        }
        ctx.stats().ws_closed();
        if let (Some(log), Some(session)) = (ctx.log.as_mut(), self.session.take()) {
            let duration = Instant::now().saturating_duration_since(session.opened);
            log.line(
                &session.entry,
                &Outcome {
                    status: 101,
                    bytes: session.sent,
                    duration,
                    aborted: false,
                },
            );
        }
    }
}
