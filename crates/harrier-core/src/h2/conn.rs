//! HTTP/2 over a transport. The engine drives h2 by hand: bytes read go into the pipe
//! (`adapter.rs`), then a drive polls the handshake, `poll_accept` until `Pending` (every new
//! stream becomes a `REQUEST` event, or an answer of the engine's own: `dispatch.rs`), each
//! stream's body (`BODY`/`END`; its window opens again as the handler reads it, `CONSUMED`)
//! and reset (`ABORT`), and what file answers still have to send. Reply ops queue frames in h2 and wake the
//! connection; the turn's flush drives it again, so that every frame a turn produced goes out
//! in the one write of that flush.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::h2::server::{Connection, Handshake};
use ::h2::Reason;
use bytes::Bytes;

use super::adapter::{self, Pipe, Woken};
use super::dispatch::over_limit;
use super::limits::{self, Resets};
use super::streams::{self, Answer, Stream};
use crate::conn::answers;
use crate::conn::transport::Transport;
use crate::conn::Liveness;
use crate::engine::event_loop::Ctx;
use crate::engine::reply::{
    ReplyOp, CHUNK_WANT_DRAIN, END_ABORT, OP_CHUNK, OP_CONSUMED, OP_END, OP_FILE, OP_FULL, OP_HEAD,
    OP_HEARTBEAT,
};
use crate::http1::Status;

/// Output the pipe may hold when the engine sets no write high-water mark.
const DEFAULT_HIGH_WATER: usize = 256 * 1024;
/// Rounds of polling in one drive while h2 keeps waking itself; what is left waits for the
/// next event.
const MAX_ROUNDS: usize = 64;

/// Boxed: h2's connection is over a kilobyte, and a drive takes it out of `H2Conn::state`
/// and puts it back each round.
pub(super) enum State {
    Handshaking(Box<Handshake<Pipe, Bytes>>),
    Serving(Box<Connection<Pipe, Bytes>>),
    /// h2 is done with the connection: closed, or failed (its GOAWAY is in the output).
    Done,
}

pub(crate) struct H2Conn {
    pub(super) state: State,
    pub(super) pipe: Pipe,
    pub(super) woken: Arc<Woken>,
    pub(super) waker: Waker,
    pub(super) streams: Vec<Stream>,
    pub(super) resets: Resets,
    /// h2 wanted to write more than the pipe took: drive again once the socket takes output.
    pub(super) blocked: bool,
    pub(super) going_away: bool,
}

impl H2Conn {
    pub fn new(ctx: &Ctx) -> H2Conn {
        let pipe = Pipe::default();
        let (woken, waker) = adapter::waker();
        let handshake = limits::builder(&ctx.shared.config).handshake(pipe.clone());
        H2Conn {
            state: State::Handshaking(Box::new(handshake)),
            pipe,
            woken,
            waker,
            streams: Vec::new(),
            resets: Resets::default(),
            blocked: false,
            going_away: false,
        }
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.pipe.heap_bytes() + self.streams.capacity() * std::mem::size_of::<Stream>()
    }

    /// Whether more input is wanted at all.
    pub fn reads(&self) -> bool {
        !matches!(self.state, State::Done)
    }

    /// h2 is done and has nothing more to say.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Input waits until h2 has read what it was given and the client takes its output.
    pub fn must_pause(&self, t: &Transport, ctx: &Ctx) -> bool {
        self.pipe.unread() > 0 || (ctx.write_high_water > 0 && t.unsent() > ctx.write_high_water)
    }

    /// Whether h2 has work a drive would do.
    pub fn wants_drive(&self) -> bool {
        self.woken.is_set() || self.blocked
    }

    /// Bytes from the client; h2 reads them now.
    pub fn consume(&mut self, t: &mut Transport, ctx: &mut Ctx, input: &[u8]) -> usize {
        self.pipe.feed(input);
        self.drive(t, ctx);
        input.len()
    }

    /// Polls h2 with the transport's output lent to the pipe.
    pub fn drive(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        let high_water = if ctx.write_high_water > 0 {
            ctx.write_high_water
        } else {
            DEFAULT_HIGH_WATER
        };
        let room = high_water.saturating_sub(t.unsent());
        let out = t.take_out(ctx);
        self.pipe.lend(out, room);
        self.poll(t, ctx);
        let (out, blocked) = self.pipe.take_back();
        self.blocked = blocked;
        t.put_out(out);
        self.pipe.trim();
        if self.is_done() {
            t.close_after_flush = true;
        }
    }

    fn poll(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..MAX_ROUNDS {
            self.woken.take();
            let mut state = std::mem::replace(&mut self.state, State::Done);
            if let State::Handshaking(handshake) = &mut state {
                match Pin::new(handshake).poll(&mut cx) {
                    Poll::Ready(Ok(conn)) => {
                        state = State::Serving(Box::new(conn));
                        if self.going_away {
                            if let State::Serving(conn) = &mut state {
                                conn.graceful_shutdown();
                            }
                        }
                    }
                    Poll::Ready(Err(_)) => state = State::Done,
                    Poll::Pending => {}
                }
            }
            if let State::Serving(conn) = &mut state {
                loop {
                    match conn.poll_accept(&mut cx) {
                        Poll::Ready(Some(Ok((request, respond)))) => {
                            self.accept(t, ctx, request, respond)
                        }
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                            state = State::Done;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
            self.state = state;
            if self.is_done() {
                self.abort_all(ctx);
                return;
            }
            self.poll_streams(&mut cx, ctx, t.slot);
            if !self.woken.is_set() {
                break;
            }
        }
    }

    /// Lets go of the stream at `i`, done with: counted, logged, its handles dropped.
    pub(super) fn retire(&mut self, ctx: &mut Ctx, i: usize) {
        let mut s = self.streams.swap_remove(i);
        s.record(ctx);
    }

    /// Applies one reply op from the handler; ops for streams no longer open are dropped.
    pub fn apply(&mut self, t: &mut Transport, ctx: &mut Ctx, op: &ReplyOp) {
        t.dirty = true;
        let Some(i) = self.streams.iter().position(|s| s.rid == op.rid) else {
            return;
        };
        let answer = self.streams[i].answer;
        match (op.kind, answer) {
            (OP_HEARTBEAT, Answer::Streaming) => {
                let Some(every) = op.heartbeat_every() else {
                    return;
                };
                let s = &mut self.streams[i];
                if s.heartbeat.is_none() {
                    s.heartbeat = Some((every, ctx.now));
                    ctx.heartbeats.push((t.slot, s.rid));
                }
                return;
            }
            (OP_CONSUMED, _) => {
                let Some((_, n)) = op.split() else { return };
                let Ok(n) = <[u8; 4]>::try_from(n) else {
                    return;
                };
                let s = &mut self.streams[i];
                s.release(u32::from_le_bytes(n) as usize);
                // The client may send again from now: its silence counts from here, not
                // from before the handler held it back.
                s.body_at = ctx.now;
                self.woken.set();
            }
            (OP_FILE, Answer::Waiting) => {
                if let Some(plan) = answers::file_plan(op) {
                    self.answer_plan(ctx, i, plan);
                    self.resets.answered();
                }
            }
            (OP_FULL | OP_HEAD, Answer::Waiting) => {
                let Some((headers, body)) = op.split() else {
                    return;
                };
                let s = &mut self.streams[i];
                s.uncount(ctx);
                let status = if (200..=999).contains(&op.status) {
                    Status(op.status)
                } else {
                    Status::INTERNAL_SERVER_ERROR
                };
                s.status = status.0;
                let streamed = op.kind == OP_HEAD;
                let allows_body = status.allows_body();
                let length = (!streamed && allows_body).then_some(body.len() as u64);
                let mut head = streams::head(status, &mut ctx.h2_values, ctx.date.bytes(), length);
                for (name, value) in headers {
                    streams::add_header(head.headers_mut(), &mut ctx.h2_values, name, value);
                }
                let body_allowed = !s.head_only && allows_body;
                if streamed {
                    s.send_head(head, !body_allowed);
                    s.answer = Answer::Streaming;
                } else {
                    let end = !body_allowed || body.is_empty();
                    if s.send_head(head, end) && !end {
                        s.send_data(Bytes::copy_from_slice(body), true);
                    }
                    s.answer = Answer::Done;
                    self.resets.answered();
                }
            }
            (OP_END, Answer::Streaming) if op.status & END_ABORT != 0 => {
                // Cut short (`res.destroy()`): the stream is reset, the connection goes on.
                self.streams[i].reset(Reason::CANCEL);
                self.streams[i].aborted = true;
                self.woken.set();
            }
            (OP_CHUNK | OP_END, Answer::Streaming) => {
                let Some((_, body)) = op.split() else { return };
                let s = &mut self.streams[i];
                if op.kind == OP_CHUNK && op.status & CHUNK_WANT_DRAIN != 0 {
                    s.want_drain = true;
                }
                if let Some((_, last)) = s.heartbeat.as_mut() {
                    *last = ctx.now;
                }
                let end = op.kind == OP_END;
                if end || !body.is_empty() {
                    s.send_data(Bytes::copy_from_slice(body), end);
                }
                if end {
                    s.send = None;
                    s.answer = Answer::Done;
                    self.resets.answered();
                }
            }
            // Answered twice, or a chunk without a head: the first answer stands.
            _ => return,
        }
        let s = &mut self.streams[i];
        if s.answer == Answer::Done && s.unreleased > 0 {
            // Answered: the handler reads no more of the body, the client may finish it.
            s.release(usize::MAX);
            self.woken.set();
        }
        if self.streams[i].finished() {
            self.retire(ctx, i);
        }
    }

    /// Request bodies into the batch, resets seen, file answers pumped; finished streams let go.
    fn poll_streams(&mut self, cx: &mut Context<'_>, ctx: &mut Ctx, slot: u32) {
        let mut calm = false;
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            if let Some(body) = s.body.as_mut().filter(|_| !s.body_ended) {
                loop {
                    match body.poll_data(cx) {
                        Poll::Ready(Some(Ok(data))) => {
                            s.seen += data.len() as u64;
                            s.body_at = ctx.now;
                            if s.limit > 0 && s.seen > s.limit {
                                over_limit(s, ctx);
                                break;
                            }
                            if s.to_handler && s.answer != Answer::Done {
                                // The window opens again as the handler reads (`CONSUMED`).
                                s.unreleased += data.len();
                                ctx.batch.body(s.rid, &data);
                                if ctx.batch.is_full() {
                                    ctx.hand_over_batch();
                                }
                            } else {
                                let _ = body.flow_control().release_capacity(data.len());
                            }
                        }
                        Poll::Ready(None) => {
                            if s.to_handler && s.answer != Answer::Done {
                                ctx.batch.end(s.rid);
                            }
                            s.body_ended = true;
                            if s.unreleased == 0 {
                                s.body = None;
                            }
                            break;
                        }
                        // The body broke (a length it did not keep, a reset): the request is gone.
                        Poll::Ready(Some(Err(_))) => {
                            if s.answer != Answer::Done {
                                if s.to_handler {
                                    ctx.batch.abort(s.rid);
                                }
                                s.uncount(ctx);
                                s.reset(Reason::PROTOCOL_ERROR);
                            }
                            s.body = None;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
            if s.answer != Answer::Done && s.poll_reset(cx) {
                if s.to_handler {
                    ctx.batch.abort(s.rid);
                    calm |= self.resets.reset();
                }
                s.uncount(ctx);
                s.let_go();
            }
            if s.file.is_some() {
                s.pump_file(cx);
            }
            if s.want_drain && s.drained(cx) {
                s.want_drain = false;
                if !s.aborted {
                    ctx.batch.drain(s.rid, slot, 0);
                }
            }
            if s.finished() {
                self.retire(ctx, i);
                continue;
            }
            i += 1;
        }
        if calm {
            if let State::Serving(conn) = &mut self.state {
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                self.woken.set();
            }
        }
    }

    /// Answers with 503 every stream whose handler has not started answering in time.
    pub fn expire(&mut self, t: &mut Transport, ctx: &mut Ctx, timeout: Duration) {
        let mut any = false;
        for i in 0..self.streams.len() {
            let s = &self.streams[i];
            if s.to_handler
                && s.answer == Answer::Waiting
                && ctx.now.duration_since(s.since) >= timeout
            {
                ctx.batch.abort(s.rid);
                // Nobody wants the rest of its body now.
                self.streams[i].body = None;
                self.answer_in_engine(ctx, i, Status::SERVICE_UNAVAILABLE, &[]);
                any = true;
            }
        }
        if any {
            self.after_engine_answers(t, ctx);
        }
    }

    /// After the engine answered or reset streams itself: those finished let go, and the
    /// connection is written.
    fn after_engine_answers(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        let mut i = 0;
        while i < self.streams.len() {
            if self.streams[i].finished() {
                self.retire(ctx, i);
            } else {
                i += 1;
            }
        }
        t.dirty = true;
    }

    /// The connection clocks: the preface and settings must come within the header timeout;
    /// a connection with no stream for the keep-alive timeout is sent GOAWAY and closed; a
    /// request body that stops for the body timeout ends its stream (below).
    pub fn check_timers(&mut self, t: &mut Transport, ctx: &mut Ctx) -> Liveness {
        let now = ctx.now;
        let config = &ctx.shared.config;
        let (header_timeout, body_timeout, keep_alive_timeout) = (
            config.header_timeout,
            config.body_timeout,
            config.keep_alive_timeout,
        );
        let over = |since: std::time::Instant, limit: Duration| {
            !limit.is_zero() && now.saturating_duration_since(since) >= limit
        };
        let mut stalled = false;
        for i in 0..self.streams.len() {
            let s = &self.streams[i];
            // A handler that has not read what it was given holds the client back by the
            // window: that wait is the handler's, not the client's.
            if s.body.is_some()
                && !s.body_ended
                && s.unreleased == 0
                && over(s.body_at, body_timeout)
            {
                self.body_stalled(ctx, i);
                stalled = true;
            }
        }
        if stalled {
            self.after_engine_answers(t, ctx);
        }
        match &mut self.state {
            State::Handshaking(_) if over(t.last_read.min(t.last_write), header_timeout) => {
                return Liveness::Closed
            }
            State::Serving(conn)
                if self.streams.is_empty()
                    && !conn.has_streams()
                    && t.has_no_output()
                    && over(t.last_read.max(t.last_write), keep_alive_timeout) =>
            {
                conn.abrupt_shutdown(Reason::NO_ERROR);
                self.woken.set();
                t.dirty = true;
            }
            _ => {}
        }
        Liveness::Open
    }

    /// The client stopped sending the body of stream `i` for the body timeout, as HTTP/1.1's
    /// 408: the handler hears of an abort (`req.signal`, a body read that fails); a stream
    /// not yet answered gets `408`, one whose answer is under way is reset (it can no longer
    /// end well); the rest of the body is not wanted.
    fn body_stalled(&mut self, ctx: &mut Ctx, i: usize) {
        let s = &mut self.streams[i];
        s.body = None;
        s.body_ended = true;
        if s.answer == Answer::Done {
            return;
        }
        if s.to_handler {
            ctx.batch.abort(s.rid);
        }
        if s.answer == Answer::Waiting {
            self.answer_in_engine(ctx, i, Status::REQUEST_TIMEOUT, &[]);
        } else {
            s.aborted = true;
            s.uncount(ctx);
            s.reset(Reason::CANCEL);
        }
        self.woken.set();
    }

    /// A shutdown began: GOAWAY, the streams in flight finish, then the connection closes.
    pub fn go_away(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        self.going_away = true;
        match &mut self.state {
            // Nothing in flight: the last GOAWAY at once, as an idle HTTP/1.1 connection closes.
            State::Serving(conn) if self.streams.is_empty() && !conn.has_streams() => {
                conn.abrupt_shutdown(Reason::NO_ERROR)
            }
            State::Serving(conn) => conn.graceful_shutdown(),
            // Not even its settings yet: nothing to say.
            State::Handshaking(_) => self.state = State::Done,
            State::Done => {}
        }
        self.drive(t, ctx);
    }

    /// Everything written: an idle connection keeps no buffer; whether it should now close.
    pub fn after_flush(&mut self, t: &mut Transport, ctx: &mut Ctx) -> bool {
        t.release_output(ctx);
        self.is_done()
    }

    /// The connection is going away: tell the handler about every stream it still holds.
    pub fn abort_all(&mut self, ctx: &mut Ctx) {
        for mut s in std::mem::take(&mut self.streams) {
            s.uncount(ctx);
            if s.to_handler && s.answer != Answer::Done {
                ctx.batch.abort(s.rid);
            }
            if s.answer != Answer::Done || s.body.is_some() || s.file.is_some() {
                s.aborted = true;
            }
            s.record(ctx);
        }
    }
}
