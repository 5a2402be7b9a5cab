//! One client connection: the bytes read and not yet parsed, the requests handed to the
//! handler and not yet answered (in request order), and the bytes waiting to be written.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::event_loop::Ctx;
use super::reply::{ReplyOp, OP_CHUNK, OP_END, OP_FULL, OP_HEAD};
use crate::http1::chunked::{Chunk, ChunkedDecoder};
use crate::http1::encode::{self, Framing, Persistence};
use crate::http1::request::{parse_head, BodyFraming, Parse};
use crate::http1::Status;
use crate::router::RouteMatch;

/// A head that has not ended within this many bytes is refused (431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a closing connection may keep sending before it is dropped; reading what it
/// sends meanwhile keeps the kernel from answering with a reset that would eat our response.
const LINGER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The handler has the request and has not started the response.
    Waiting,
    /// Head sent (or buffered), body chunks follow.
    Streaming,
    Done,
}

/// A request in flight, in the order the client sent it.
struct Pending {
    rid: u32,
    answer: Answer,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    /// The response decided to close the connection after it.
    close: bool,
    chunked: bool,
    body_allowed: bool,
    since: Instant,
    /// Bytes of a response finished before those of earlier requests: held back to keep order.
    out: Vec<u8>,
}

enum ReadState {
    Head,
    /// `rid` is `None` for a request answered by the engine: its body is read and dropped.
    Length { rid: Option<u32>, left: u64 },
    Chunked { rid: Option<u32>, decoder: ChunkedDecoder },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Open,
    Closed,
}

pub(crate) struct Conn {
    pub sock: TcpStream,
    pub slot: u32,
    /// Unparsed bytes; empty (no allocation) whenever a read ends on a request boundary.
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    read: ReadState,
    inflight: VecDeque<Pending>,
    /// A request closed the connection or was malformed: nothing after it is read.
    stop_reading: bool,
    close_after_flush: bool,
    /// Set once the write side is shut; the connection is dropped at EOF or at this instant.
    lingering_until: Option<Instant>,
    pub dirty: bool,
}

impl Conn {
    pub fn new(sock: TcpStream, slot: u32) -> Conn {
        Conn {
            sock,
            slot,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            read: ReadState::Head,
            inflight: VecDeque::new(),
            stop_reading: false,
            close_after_flush: false,
            lingering_until: None,
            dirty: false,
        }
    }

    /// Nothing in flight, nothing half-read, nothing to write.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty() && self.rbuf.is_empty() && matches!(self.read, ReadState::Head) && self.wpos >= self.wbuf.len()
    }

    pub fn is_lingering(&self) -> bool {
        self.lingering_until.is_some()
    }

    /// Reads until the socket has no more, parsing and dispatching as it goes.
    pub fn on_readable(&mut self, ctx: &mut Ctx) -> Liveness {
        loop {
            if self.lingering_until.is_some() || self.stop_reading {
                return self.discard_input(ctx);
            }
            let result = if self.rbuf.is_empty() {
                self.sock.read(&mut ctx.scratch)
            } else {
                self.rbuf.reserve(16 * 1024);
                let len = self.rbuf.len();
                let cap = self.rbuf.capacity();
                self.rbuf.resize(cap, 0);
                let r = self.sock.read(&mut self.rbuf[len..]);
                self.rbuf.truncate(len + *r.as_ref().unwrap_or(&0));
                r
            };
            match result {
                Ok(0) => return Liveness::Closed,
                Ok(n) => {
                    if self.rbuf.is_empty() {
                        let scratch = std::mem::take(&mut ctx.scratch);
                        let used = self.parse(ctx, &scratch[..n]);
                        if used < n && !self.stop_reading {
                            self.rbuf = ctx.pool.get();
                            self.rbuf.extend_from_slice(&scratch[used..n]);
                        }
                        ctx.scratch = scratch;
                    } else {
                        let rbuf = std::mem::take(&mut self.rbuf);
                        let used = self.parse(ctx, &rbuf);
                        self.rbuf = rbuf;
                        self.rbuf.drain(..used);
                        if self.rbuf.is_empty() || self.stop_reading {
                            ctx.pool.put(std::mem::take(&mut self.rbuf));
                        }
                    }
                    if n < ctx.scratch.len() && self.rbuf.is_empty() {
                        // A short read drained the socket; with edge-triggered polling there is
                        // no need to try again and hear WouldBlock.
                        return Liveness::Open;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Liveness::Closed,
            }
        }
    }

    /// After the last request the connection will serve: read and drop, until EOF.
    fn discard_input(&mut self, ctx: &mut Ctx) -> Liveness {
        loop {
            match self.sock.read(&mut ctx.scratch) {
                Ok(0) => return if self.lingering_until.is_some() || self.inflight.is_empty() { Liveness::Closed } else { Liveness::Open },
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Liveness::Closed,
            }
        }
    }

    /// Parses as many requests and body bytes from `input` as it holds; returns the bytes used.
    fn parse(&mut self, ctx: &mut Ctx, input: &[u8]) -> usize {
        let mut pos = 0;
        while pos < input.len() && !self.stop_reading {
            match &mut self.read {
                ReadState::Head => match parse_head(&input[pos..], &mut ctx.head) {
                    Ok(Parse::Complete) => {
                        self.dispatch(ctx, &input[pos..]);
                        pos += ctx.head.len;
                    }
                    Ok(Parse::Partial) => {
                        if input.len() - pos > MAX_HEAD_BYTES {
                            self.refuse(ctx, Status::HEADERS_TOO_LARGE);
                        }
                        break;
                    }
                    Err(status) => {
                        self.refuse(ctx, status);
                        break;
                    }
                },
                ReadState::Length { rid, left } => {
                    let n = (*left).min((input.len() - pos) as u64) as usize;
                    *left -= n as u64;
                    let (rid, done) = (*rid, *left == 0);
                    if let Some(rid) = rid {
                        ctx.batch.body(rid, &input[pos..pos + n]);
                        if done {
                            ctx.batch.end(rid);
                        }
                    }
                    if done {
                        self.read = ReadState::Head;
                    }
                    pos += n;
                }
                ReadState::Chunked { rid, decoder } => {
                    let rid = *rid;
                    match decoder.decode(&input[pos..]) {
                        Ok((Chunk::Data { start, len }, used)) => {
                            if let Some(rid) = rid {
                                ctx.batch.body(rid, &input[pos + start..pos + start + len]);
                            }
                            pos += used;
                        }
                        Ok((Chunk::End, used)) => {
                            if let Some(rid) = rid {
                                ctx.batch.end(rid);
                            }
                            self.read = ReadState::Head;
                            pos += used;
                        }
                        Ok((Chunk::NeedMore, used)) => {
                            pos += used;
                            break;
                        }
                        Err(status) => {
                            self.fail_body(ctx, rid, status);
                            break;
                        }
                    }
                }
            }
            if ctx.batch.is_full() {
                ctx.hand_over_batch();
            }
        }
        pos
    }

    fn dispatch(&mut self, ctx: &mut Ctx, input: &[u8]) {
        let rid = ctx.next_rid();
        let head = &ctx.head;
        let method = head.method.slice(input);
        let path_start = head.target.start as usize;
        let path = &input[path_start..path_start + head.path_len as usize];
        let mut pending = Pending {
            rid,
            answer: Answer::Waiting,
            head_only: method == b"HEAD",
            http10: head.http10,
            keep_alive: head.keep_alive,
            close: false,
            chunked: false,
            body_allowed: true,
            since: ctx.now,
            out: Vec::new(),
        };
        let routed = ctx.shared.router.find(method, path, &mut ctx.params);
        let to_handler = match routed {
            RouteMatch::Found { route } => {
                ctx.batch.request(rid, self.slot, route, input, head, &ctx.params);
                if head.expect_continue && self.inflight.is_empty() {
                    self.take_wbuf(ctx);
                    encode::status_line(&mut self.wbuf, Status::CONTINUE);
                    encode::end_head(&mut self.wbuf);
                    self.dirty = true;
                }
                self.inflight.push_back(pending);
                Some(rid)
            }
            RouteMatch::NotFound | RouteMatch::MethodNotAllowed { .. } => {
                if head.expect_continue {
                    // The client may be holding its body back; close rather than guess.
                    pending.keep_alive = false;
                }
                self.inflight.push_back(pending);
                let i = self.inflight.len() - 1;
                match routed {
                    RouteMatch::MethodNotAllowed { allow } => {
                        self.answer_in_engine(ctx, i, Status::METHOD_NOT_ALLOWED, &[(b"allow", allow.as_bytes())], b"Method Not Allowed")
                    }
                    _ => self.answer_in_engine(ctx, i, Status::NOT_FOUND, &[], b"Not Found"),
                }
                None
            }
        };
        let head = &ctx.head;
        if !head.keep_alive {
            self.stop_reading = true;
        }
        self.read = match head.body {
            BodyFraming::None => ReadState::Head,
            BodyFraming::Length(left) => ReadState::Length { rid: to_handler, left },
            BodyFraming::Chunked => ReadState::Chunked { rid: to_handler, decoder: ChunkedDecoder::new() },
        };
    }

    /// A malformed request: answer with `status` after what is in flight, then close.
    fn refuse(&mut self, ctx: &mut Ctx, status: Status) {
        let rid = ctx.next_rid();
        self.inflight.push_back(Pending {
            rid,
            answer: Answer::Waiting,
            head_only: false,
            http10: false,
            keep_alive: false,
            close: true,
            chunked: false,
            body_allowed: true,
            since: ctx.now,
            out: Vec::new(),
        });
        self.stop_reading = true;
        let i = self.inflight.len() - 1;
        self.answer_in_engine(ctx, i, status, &[], status.reason().as_bytes());
    }

    /// A body that broke its framing after the handler got the request.
    fn fail_body(&mut self, ctx: &mut Ctx, rid: Option<u32>, status: Status) {
        self.stop_reading = true;
        let waiting = rid.and_then(|rid| self.inflight.iter().position(|p| p.rid == rid && p.answer == Answer::Waiting));
        match waiting {
            Some(i) => {
                ctx.batch.abort(self.inflight[i].rid);
                self.inflight[i].keep_alive = false;
                self.answer_in_engine(ctx, i, status, &[], status.reason().as_bytes());
            }
            None => {
                if let Some(rid) = rid {
                    ctx.batch.abort(rid);
                }
                self.refuse(ctx, status);
            }
        }
    }

    /// Answers the request at `i` with a short text, as if its handler had.
    fn answer_in_engine(&mut self, ctx: &mut Ctx, i: usize, status: Status, extra: &[(&[u8], &[u8])], body: &[u8]) {
        let mut out = self.take_out(ctx, i);
        let p = &mut self.inflight[i];
        let persistence = persistence(p, ctx.draining, false);
        p.close = persistence == Persistence::Close;
        encode::simple(&mut out, status, ctx.date.bytes(), persistence, extra, if p.head_only { b"" } else { body });
        p.answer = Answer::Done;
        self.put_out(i, out);
        if i == 0 {
            self.advance(ctx);
        }
    }

    /// The buffer that the response of request `i` is written into: the connection's write
    /// buffer for the oldest request, a holding buffer for later ones.
    fn take_out(&mut self, ctx: &mut Ctx, i: usize) -> Vec<u8> {
        if i == 0 {
            self.take_wbuf(ctx);
            std::mem::take(&mut self.wbuf)
        } else {
            std::mem::take(&mut self.inflight[i].out)
        }
    }

    fn put_out(&mut self, i: usize, out: Vec<u8>) {
        if i == 0 {
            self.wbuf = out;
        } else {
            self.inflight[i].out = out;
        }
        self.dirty = true;
    }

    fn take_wbuf(&mut self, ctx: &mut Ctx) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = ctx.pool.get();
        }
    }

    /// Retires finished responses from the front, moving held-back bytes into the write buffer.
    fn advance(&mut self, ctx: &mut Ctx) {
        while self.inflight.front().is_some_and(|p| p.answer == Answer::Done) {
            let done = self.inflight.pop_front().unwrap();
            if done.close {
                self.close_after_flush = true;
                self.stop_reading = true;
                for p in self.inflight.drain(..) {
                    if p.answer != Answer::Done {
                        ctx.batch.abort(p.rid);
                    }
                }
                break;
            }
            if let Some(next) = self.inflight.front_mut() {
                if !next.out.is_empty() {
                    let held = std::mem::take(&mut next.out);
                    self.wbuf.extend_from_slice(&held);
                    ctx.pool.put(held);
                }
            }
        }
    }

    /// Applies one reply op from the handler; ops for requests no longer in flight are dropped.
    pub fn apply(&mut self, ctx: &mut Ctx, op: &ReplyOp) {
        let Some(i) = self.inflight.iter().position(|p| p.rid == op.rid) else { return };
        let Some((headers, body)) = op.split() else { return };
        let answer = self.inflight[i].answer;
        match (op.kind, answer) {
            (OP_FULL | OP_HEAD, Answer::Waiting) => {
                let mut out = self.take_out(ctx, i);
                let p = &mut self.inflight[i];
                let status = if (200..=999).contains(&op.status) { Status(op.status) } else { Status::INTERNAL_SERVER_ERROR };
                let mut close_asked = false;
                for (name, value) in headers.clone() {
                    if name.eq_ignore_ascii_case(b"connection") && value.eq_ignore_ascii_case(b"close") {
                        close_asked = true;
                    }
                }
                let streamed = op.kind == OP_HEAD;
                let framing = if !status.allows_body() {
                    Framing::Empty
                } else if !streamed {
                    Framing::Length(body.len())
                } else if p.http10 {
                    Framing::UntilClose
                } else {
                    Framing::Chunked
                };
                let persistence = persistence(p, ctx.draining, close_asked || framing == Framing::UntilClose);
                encode::status_line(&mut out, status);
                encode::engine_headers(&mut out, ctx.date.bytes(), framing, persistence);
                for (name, value) in headers {
                    if !encode::is_engine_header(name) {
                        encode::header(&mut out, name, value);
                    }
                }
                encode::end_head(&mut out);
                p.body_allowed = !p.head_only && status.allows_body();
                p.chunked = framing == Framing::Chunked;
                p.close = persistence == Persistence::Close;
                if streamed {
                    p.answer = Answer::Streaming;
                } else {
                    if p.body_allowed {
                        out.extend_from_slice(body);
                    }
                    p.answer = Answer::Done;
                }
                self.put_out(i, out);
            }
            (OP_CHUNK | OP_END, Answer::Streaming) => {
                let mut out = self.take_out(ctx, i);
                let p = &mut self.inflight[i];
                if p.body_allowed {
                    if p.chunked {
                        encode::chunk(&mut out, body);
                    } else {
                        out.extend_from_slice(body);
                    }
                }
                if op.kind == OP_END {
                    if p.body_allowed && p.chunked {
                        encode::last_chunk(&mut out);
                    }
                    p.answer = Answer::Done;
                }
                self.put_out(i, out);
            }
            // Answered twice, or a chunk without a head: the first answer stands.
            _ => return,
        }
        if i == 0 && self.inflight[0].answer == Answer::Done {
            self.advance(ctx);
        }
    }

    /// Answers with 503 every request whose handler has not started answering in time.
    pub fn expire(&mut self, ctx: &mut Ctx, timeout: Duration) {
        let mut i = 0;
        while i < self.inflight.len() {
            let p = &self.inflight[i];
            if p.answer == Answer::Waiting && ctx.now.duration_since(p.since) >= timeout {
                ctx.batch.abort(p.rid);
                let before = self.inflight.len();
                self.answer_in_engine(ctx, i, Status::SERVICE_UNAVAILABLE, &[], b"Service Unavailable");
                if self.inflight.len() < before {
                    continue; // the front was retired; index `i` now names the next request
                }
            }
            i += 1;
        }
    }

    /// Writes what is buffered. Returns `Closed` once a closing connection has said all.
    pub fn flush(&mut self, ctx: &mut Ctx) -> Liveness {
        self.dirty = false;
        while self.wpos < self.wbuf.len() {
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Liveness::Closed,
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Liveness::Closed,
            }
        }
        self.wpos = 0;
        self.wbuf.clear();
        if self.inflight.is_empty() {
            // An idle connection keeps no buffer.
            ctx.pool.put(std::mem::take(&mut self.wbuf));
        }
        if self.close_after_flush || (ctx.draining && self.is_idle()) {
            return self.linger(ctx);
        }
        Liveness::Open
    }

    /// Shuts the write side and waits (briefly) for the client to close its side.
    pub fn linger(&mut self, ctx: &mut Ctx) -> Liveness {
        if self.lingering_until.is_none() {
            if self.sock.shutdown(std::net::Shutdown::Write).is_err() {
                return Liveness::Closed;
            }
            self.lingering_until = Some(ctx.now + LINGER);
            self.stop_reading = true;
        }
        self.discard_input(ctx)
    }

    pub fn linger_expired(&self, now: Instant) -> bool {
        self.lingering_until.is_some_and(|t| now >= t)
    }

    /// The connection is going away: tell the handler about every request it still holds.
    pub fn abort_all(&mut self, ctx: &mut Ctx) {
        for p in self.inflight.drain(..) {
            if p.answer != Answer::Done {
                ctx.batch.abort(p.rid);
            }
        }
        ctx.pool.put(std::mem::take(&mut self.wbuf));
        ctx.pool.put(std::mem::take(&mut self.rbuf));
    }
}

fn persistence(p: &Pending, draining: bool, close_asked: bool) -> Persistence {
    if !p.keep_alive || draining || close_asked || p.close {
        Persistence::Close
    } else if p.http10 {
        Persistence::KeepAlive10
    } else {
        Persistence::KeepAlive11
    }
}
