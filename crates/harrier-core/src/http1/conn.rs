//! HTTP/1.1 over a transport: the bytes read become requests for the handler (pipelined,
//! in order), the handler's replies become responses, written in request order whatever
//! order they come back in. The engine's own answers (static files, errors) take the same
//! path.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::answers;
use crate::conn::transport::{Out, Transport};
use crate::conn::Liveness;
use crate::engine::batch::FLAG_UPGRADE;
use crate::engine::config::WsOptions;
use crate::engine::event_loop::Ctx;
use crate::engine::reply::{
    ReplyOp, CHUNK_WANT_DRAIN, END_ABORT, OP_CHUNK, OP_CONSUMED, OP_END, OP_FILE, OP_FULL, OP_HEAD,
    OP_HEARTBEAT, OP_UPGRADE,
};
use crate::http1::chunked::{Chunk, ChunkedDecoder};
use crate::http1::encode::{self, decimal, Framing, Persistence};
use crate::http1::request::{parse_head, BodyFraming, Parse};
use crate::http1::Status;
use crate::ops::access_log::LogEntry;
use crate::ops::stats::{Protocol, Refusal};
use crate::ops::{self, OpsRoute};
use crate::router::RouteMatch;
use crate::statics::{Piece, Plan};
use crate::ws::deflate::DeflateConfig;
use crate::ws::handshake::{self, Accepted};

/// A connection with this many requests in flight is not read further until some are
/// answered: a client that pipelines without reading cannot queue without end.
const MAX_PIPELINED: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The handler has the request and has not started the response.
    Waiting,
    /// Head sent (or buffered), body chunks follow.
    Streaming,
    Done,
}

/// Lists of request records handed between a thread's connections, as buffers are
/// (`BufPool`): a connection holds one only while it has requests in flight.
#[derive(Default)]
pub(crate) struct PendingPool {
    free: Vec<VecDeque<Pending>>,
}

impl PendingPool {
    /* As many as buffers are pooled: what a burst of busy connections leaves. */
    const MAX_POOLED: usize = 256;

    fn get(&mut self) -> VecDeque<Pending> {
        self.free.pop().unwrap_or_default()
    }

    fn put(&mut self, list: VecDeque<Pending>) {
        // A list a deep pipeline grew is let go rather than kept.
        if self.free.len() < Self::MAX_POOLED && list.capacity() <= 16 {
            debug_assert!(list.is_empty());
            self.free.push(list);
        }
    }
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
    /// Counted among the requests waiting for the handler (`Ctx::waiting`).
    counted: bool,
    /// Bytes of a response finished before those of earlier requests: held back to keep order.
    out: Vec<u8>,
    /// What follows `out` for a file answered while held back: spans of the file, streamed.
    tail: Vec<Out>,
    /// A WebSocket handshake the engine found valid, waiting for the handler's word.
    upgrade: Option<Box<Upgrade>>,
    /// The answer's status, once its head is written.
    status: u16,
    /// Body bytes of the answer so far.
    sent: u64,
    /// What the access log line will say, when the log is on.
    log: Option<Box<LogEntry>>,
    /// The handler waits for a `DRAIN` event: sent once this answer's unsent bytes fall to
    /// the high-water mark.
    want_drain: bool,
    /// Body bytes handed to the handler and not yet taken by it (`CONSUMED` ops).
    unread: u64,
    /// An event stream with engine heartbeats: the interval, and when it last wrote.
    heartbeat: Option<(Duration, Instant)>,
}

/// A checked WebSocket handshake: what the 101 says and what the socket will allow.
pub(crate) struct Upgrade {
    pub id: u32,
    pub accepted: Accepted,
    pub options: Arc<WsOptions>,
    pub route: u32,
    /// The request's path, and its route params as spans into it: the `WS_OPEN` event
    /// carries them when the handler did not see the request.
    pub path: Vec<u8>,
    pub params: Vec<(u32, u32)>,
    /// The handler said yes (an `UPGRADE` op): the 101 is queued.
    pub agreed: bool,
    /// The handshake's access log entry: the session's line is written when it ends.
    pub log: Option<Box<LogEntry>>,
}

impl Pending {
    fn new(rid: u32, now: Instant) -> Pending {
        Pending {
            rid,
            answer: Answer::Waiting,
            head_only: false,
            http10: false,
            keep_alive: false,
            close: false,
            chunked: false,
            body_allowed: true,
            since: now,
            counted: false,
            out: Vec::new(),
            tail: Vec::new(),
            upgrade: None,
            status: 0,
            sent: 0,
            log: None,
            want_drain: false,
            unread: 0,
            heartbeat: None,
        }
    }

    fn protocol(&self) -> Protocol {
        if self.http10 {
            Protocol::Http10
        } else {
            Protocol::Http11
        }
    }

    /// Counts the request among those answered, and writes its log line.
    fn finished(&mut self, ctx: &mut Ctx, aborted: bool) {
        let protocol = self.protocol();
        ctx.request_done(
            protocol,
            self.status,
            self.since,
            self.sent,
            aborted,
            self.log.take(),
        );
    }

    /// The handler no longer holds this request unanswered.
    fn uncount(&mut self, ctx: &mut Ctx) {
        if self.counted {
            self.counted = false;
            ctx.waiting -= 1;
        }
    }
}

enum ReadState {
    Head,
    /// `rid` is `None` for a request answered by the engine: its body is read and dropped.
    Length {
        rid: Option<u32>,
        left: u64,
    },
    /// `seen` body bytes so far, refused past `limit` (0: none).
    Chunked {
        rid: Option<u32>,
        decoder: ChunkedDecoder,
        seen: u64,
        limit: u64,
    },
}

/// The HTTP/1.1 side of a connection.
pub(crate) struct Http1 {
    read: ReadState,
    inflight: VecDeque<Pending>,
    /// A request closed the connection or was malformed: nothing after it is read.
    stop_reading: bool,
    /// The request being read is the last (`Connection: close`, HTTP/1.0): its body is read,
    /// then reading stops.
    last_request: bool,
    /// When the first byte of the head being read arrived; `None` between requests.
    head_since: Option<Instant>,
    /// A body broke off while its response was being streamed: the connection must go.
    pub doomed: bool,
    /// A WebSocket handshake is in flight: nothing after it is HTTP, so nothing more is
    /// parsed; what follows waits in the input buffer for the protocol that will read it.
    upgrading: bool,
    /// The handshake's 101 is written: the connection speaks WebSocket from now on.
    switch: Option<Box<Upgrade>>,
}

impl Http1 {
    pub fn new() -> Http1 {
        Http1 {
            read: ReadState::Head,
            inflight: VecDeque::new(),
            stop_reading: false,
            last_request: false,
            head_since: None,
            doomed: false,
            upgrading: false,
            switch: None,
        }
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.inflight.capacity() * std::mem::size_of::<Pending>()
    }

    /// Nothing in flight, nothing half-read, nothing to write.
    pub fn is_idle(&self, t: &Transport) -> bool {
        self.inflight.is_empty()
            && t.rbuf.is_empty()
            && matches!(self.read, ReadState::Head)
            && t.has_no_output()
    }

    /// Whether more input is wanted at all (else it is read and dropped).
    pub fn reads(&self) -> bool {
        !self.stop_reading
    }

    pub fn stop_reading(&mut self) {
        self.stop_reading = true;
    }

    /// The client closed its side while reading stopped: the connection goes once nothing
    /// is left to answer.
    pub fn done_at_eof(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Whether to stop taking new requests from this connection for now: its output is not
    /// being taken, it has too many requests in flight, or the handler is behind and this
    /// connection already has a request waiting for it. A body is read on while its handler keeps up (see `body_unread_over`).
    pub fn must_pause(&self, t: &Transport, ctx: &Ctx) -> bool {
        self.body_unread_over(ctx)
            || matches!(self.read, ReadState::Head)
                && (self.upgrading
                    || (ctx.write_high_water > 0 && t.unsent() > ctx.write_high_water)
                    || self.inflight.len() >= MAX_PIPELINED
                    || (ctx.waiting >= ctx.max_waiting && self.inflight.iter().any(|p| p.counted)))
    }

    /// The body being read has more unread by its handler than the high-water mark: the
    /// client is held back (TCP) until the handler takes some.
    fn body_unread_over(&self, ctx: &Ctx) -> bool {
        let rid = match &self.read {
            ReadState::Length { rid: Some(rid), .. }
            | ReadState::Chunked { rid: Some(rid), .. } => *rid,
            _ => return false,
        };
        let mark = ctx.shared.config.high_water_mark as u64;
        mark > 0
            && self
                .inflight
                .iter()
                .rev()
                .any(|p| p.rid == rid && p.answer != Answer::Done && p.unread > mark)
    }

    fn delivered(&mut self, rid: u32, n: usize) {
        if let Some(p) = self.inflight.iter_mut().rev().find(|p| p.rid == rid) {
            p.unread += n as u64;
        }
    }

    /// After a flush: tells the handlers waiting for `drain` whose answers fell back to the
    /// high-water mark.
    pub fn report_drains(&mut self, t: &Transport, ctx: &mut Ctx) {
        let mark = ctx.shared.config.high_water_mark;
        for (i, p) in self.inflight.iter_mut().enumerate() {
            if !p.want_drain {
                continue;
            }
            // The oldest answer is in the transport's output; later ones wait in their own.
            let unsent = if i == 0 { t.unsent() } else { p.out.len() };
            if unsent <= mark {
                p.want_drain = false;
                ctx.batch.drain(p.rid, t.slot, unsent);
            }
        }
    }

    /// A head left partial starts its clock; none left, no clock.
    pub fn after_parse(&mut self, t: &Transport, ctx: &Ctx) {
        if t.rbuf.is_empty() {
            self.head_since = None;
        } else if self.head_since.is_none() {
            self.head_since = Some(ctx.now);
        }
    }

    /// The WebSocket handshake whose 101 is out, once: the connection changes protocol.
    pub fn take_switch(&mut self) -> Option<Box<Upgrade>> {
        self.switch.take()
    }

    /// Everything written: an idle connection keeps no buffer; whether it should now close.
    pub fn after_flush(&mut self, t: &mut Transport, ctx: &mut Ctx) -> bool {
        if self.inflight.is_empty() {
            t.release_output(ctx);
        }
        t.close_after_flush || (ctx.draining && self.is_idle(t))
    }

    pub fn parse(&mut self, t: &mut Transport, ctx: &mut Ctx, input: &[u8]) -> usize {
        let mut pos = 0;
        while pos < input.len() && !self.stop_reading {
            match &mut self.read {
                ReadState::Head => {
                    if self.last_request {
                        self.stop_reading = true;
                        break;
                    }
                    if self.upgrading {
                        break;
                    }
                    if self.must_pause(t, ctx) {
                        // The rest waits in the input buffer; the connection pauses.
                        break;
                    }
                    match parse_head(&input[pos..], &mut ctx.head, &ctx.limits) {
                        Ok(Parse::Complete) => {
                            self.dispatch(t, ctx, &input[pos..]);
                            pos += ctx.head.len;
                            self.head_since = None;
                        }
                        Ok(Parse::Partial) => break,
                        Err(status) => {
                            self.refuse(t, ctx, status);
                            break;
                        }
                    }
                }
                ReadState::Length { rid, left } => {
                    let n = (*left).min((input.len() - pos) as u64) as usize;
                    *left -= n as u64;
                    let (rid, done) = (*rid, *left == 0);
                    if let Some(rid) = rid {
                        ctx.batch.body(rid, &input[pos..pos + n]);
                        self.delivered(rid, n);
                        if done {
                            ctx.batch.end(rid);
                        }
                    }
                    if done {
                        self.read = ReadState::Head;
                    }
                    pos += n;
                }
                ReadState::Chunked {
                    rid,
                    decoder,
                    seen,
                    limit,
                } => {
                    let rid = *rid;
                    match decoder.decode(&input[pos..]) {
                        Ok((Chunk::Data { start, len }, used)) => {
                            *seen += len as u64;
                            if *limit > 0 && *seen > *limit {
                                // The moment the body crosses its limit: nothing more is read.
                                self.fail_body(t, ctx, rid, Status::CONTENT_TOO_LARGE);
                                break;
                            }
                            if let Some(rid) = rid {
                                ctx.batch.body(rid, &input[pos + start..pos + start + len]);
                                self.delivered(rid, len);
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
                            self.fail_body(t, ctx, rid, status);
                            break;
                        }
                    }
                }
            }
            if ctx.batch.is_full() {
                ctx.hand_over_batch();
            }
        }
        if self.last_request && matches!(self.read, ReadState::Head) {
            // The last request's body is in: nothing after it is read.
            self.stop_reading = true;
        }
        pos
    }

    fn dispatch(&mut self, t: &mut Transport, ctx: &mut Ctx, input: &[u8]) {
        #[cfg(test)]
        if ctx.head.target.slice(input) == b"/__panic__" {
            panic!("harrier test hook: a panic while dispatching");
        }
        let rid = ctx.next_rid();
        let head = &ctx.head;
        let method = head.method.slice(input);
        let path_start = head.target.start as usize;
        let path = &input[path_start..path_start + head.path_len as usize];
        let mut pending = Pending {
            head_only: method == b"HEAD",
            http10: head.http10,
            keep_alive: head.keep_alive,
            ..Pending::new(rid, ctx.now)
        };
        if ctx.log.is_some() {
            pending.log = Some(Box::new(log_entry(t, ctx, input)));
        }
        let head = &ctx.head;
        let body = head.body;
        let expect_continue = head.expect_continue;
        let declared = if let BodyFraming::Length(n) = body {
            n
        } else {
            0
        };
        let default_limit = ctx.shared.config.max_body_size;
        let mut number = [0u8; 20];

        // Everything the engine answers itself is decided before the handler sees anything.
        let (routed, rate) = match answers::route(ctx, &t.ip, method, path) {
            Ok(routed) => (routed, Ok(())),
            Err(secs) => (RouteMatch::NotFound, Err(secs)),
        };
        let (to_handler, limit) = match (&routed, rate) {
            (_, Err(secs)) => {
                self.answer_new(
                    t,
                    ctx,
                    pending,
                    Status::TOO_MANY_REQUESTS,
                    &[(b"retry-after", decimal(&mut number, secs))],
                    expect_continue || declared > default_limit,
                );
                (None, default_limit)
            }
            (RouteMatch::Found { route }, Ok(()))
                if ctx.shared.config.websocket(*route).is_some() =>
            {
                let options = ctx.shared.config.websocket(*route).unwrap().clone();
                // Without context takeover on the server's side: one compressor per thread serves every
                // socket (and every publish), rather than ~330 KiB of zlib state per socket.
                let deflate = options.deflate.then(|| DeflateConfig {
                    server_no_context_takeover: true,
                    ..DeflateConfig::default()
                });
                let headers = ctx
                    .head
                    .headers
                    .iter()
                    .map(|(n, v)| (n.slice(input), v.slice(input)));
                // Whatever happens, nothing after this request is HTTP/1.1 to keep alive.
                pending.keep_alive = false;
                match handshake::check(
                    headers,
                    ctx.head.http10,
                    body != BodyFraming::None,
                    &options.protocols,
                    deflate.as_ref(),
                ) {
                    Err(refusal) => {
                        let status = Status(refusal.status());
                        self.answer_new(t, ctx, pending, status, refusal.extra_headers(), true);
                        (None, default_limit)
                    }
                    Ok(accepted) if !options.upgrade_in_handler => {
                        // Nobody to ask: the 101 goes out now (after the answers before it).
                        let upgrade = Upgrade {
                            id: rid,
                            accepted,
                            options,
                            route: *route,
                            path: path.to_vec(),
                            params: ctx.params.clone(),
                            agreed: false,
                            log: None,
                        };
                        pending.upgrade = Some(Box::new(upgrade));
                        let i = self.track(ctx, pending);
                        self.upgrading = true;
                        self.agree_upgrade(t, ctx, i);
                        (None, default_limit)
                    }
                    Ok(accepted) if ctx.waiting < ctx.max_waiting => {
                        to_handler(t, ctx, rid, *route, input, FLAG_UPGRADE);
                        pending.upgrade = Some(Box::new(Upgrade {
                            id: rid,
                            accepted,
                            options,
                            route: *route,
                            path: Vec::new(),
                            params: Vec::new(),
                            agreed: false,
                            log: None,
                        }));
                        pending.counted = true;
                        ctx.waiting += 1;
                        self.track(ctx, pending);
                        self.upgrading = true;
                        (None, default_limit)
                    }
                    Ok(_) => {
                        self.answer_new(
                            t,
                            ctx,
                            pending,
                            Status::SERVICE_UNAVAILABLE,
                            &[(b"retry-after", b"1")],
                            true,
                        );
                        (None, default_limit)
                    }
                }
            }
            (RouteMatch::Found { route }, Ok(()))
                if ctx.shared.config.ops_route(*route).is_some() =>
            {
                let kind = ctx.shared.config.ops_route(*route).unwrap();
                if expect_continue || declared > default_limit {
                    pending.keep_alive = false;
                }
                let i = self.track(ctx, pending);
                self.answer_ops(t, ctx, i, kind);
                (None, default_limit)
            }
            (RouteMatch::Found { route }, Ok(()))
                if ctx.shared.config.static_mount(*route).is_some() =>
            {
                let mount = ctx.shared.config.static_mount(*route).unwrap();
                let query = &ctx.head.target.slice(input)[path.len()..];
                let plan = answers::mount_plan(
                    mount,
                    &ctx.params,
                    path,
                    query,
                    ctx.head
                        .headers
                        .iter()
                        .map(|(n, v)| (n.slice(input), v.slice(input))),
                );
                if expect_continue || declared > default_limit {
                    pending.keep_alive = false;
                }
                let i = self.track(ctx, pending);
                self.answer_plan(t, ctx, i, plan);
                (None, default_limit)
            }
            (RouteMatch::Found { route }, Ok(())) => {
                let limit = ctx.shared.config.body_limit(*route);
                if limit > 0 && declared > limit {
                    // Refused on the declared length alone: the body is not read.
                    pending.keep_alive = false;
                    self.answer_new(t, ctx, pending, Status::CONTENT_TOO_LARGE, &[], true);
                    self.stop_reading = true;
                    self.read = ReadState::Head;
                    return;
                }
                if ctx.waiting >= ctx.max_waiting {
                    self.answer_new(
                        t,
                        ctx,
                        pending,
                        Status::SERVICE_UNAVAILABLE,
                        &[(b"retry-after", b"1")],
                        expect_continue || declared > default_limit,
                    );
                    (None, default_limit)
                } else {
                    to_handler(t, ctx, rid, *route, input, 0);
                    if expect_continue && self.inflight.is_empty() {
                        let mut out = self.take_out(t, ctx, 0);
                        encode::status_line(&mut out, Status::CONTINUE);
                        encode::end_head(&mut out);
                        self.put_out(t, 0, out);
                    }
                    pending.counted = true;
                    ctx.waiting += 1;
                    self.track(ctx, pending);
                    (Some(rid), limit)
                }
            }
            (RouteMatch::MethodNotAllowed { allow }, Ok(())) => {
                self.answer_new(
                    t,
                    ctx,
                    pending,
                    Status::METHOD_NOT_ALLOWED,
                    &[(b"allow", allow.as_bytes())],
                    expect_continue || declared > default_limit,
                );
                (None, default_limit)
            }
            (RouteMatch::NotFound, Ok(())) => {
                self.answer_new(
                    t,
                    ctx,
                    pending,
                    Status::NOT_FOUND,
                    &[],
                    expect_continue || declared > default_limit,
                );
                (None, default_limit)
            }
        };
        if !ctx.head.keep_alive {
            self.last_request = true;
            if body == BodyFraming::None {
                self.stop_reading = true;
            }
        }
        self.read = match body {
            BodyFraming::None => ReadState::Head,
            BodyFraming::Length(left) => ReadState::Length {
                rid: to_handler,
                left,
            },
            BodyFraming::Chunked => ReadState::Chunked {
                rid: to_handler,
                decoder: ChunkedDecoder::new(),
                seen: 0,
                limit,
            },
        };
    }

    /// Answers a request the handler will not see. `close` when its body is not worth reading
    /// (too large), or the client may be holding it back (`Expect: 100-continue`).
    fn answer_new(
        &mut self,
        t: &mut Transport,
        ctx: &mut Ctx,
        mut pending: Pending,
        status: Status,
        extra: &[(&[u8], &[u8])],
        close: bool,
    ) {
        if close {
            pending.keep_alive = false;
        }
        let i = self.track(ctx, pending);
        self.answer_in_engine(t, ctx, i, status, extra, status.reason().as_bytes());
    }

    /// A malformed request: answer with `status` after what is in flight, then close.
    fn refuse(&mut self, t: &mut Transport, ctx: &mut Ctx, status: Status) {
        let rid = ctx.next_rid();
        let i = self.track(
            ctx,
            Pending {
                close: true,
                ..Pending::new(rid, ctx.now)
            },
        );
        self.stop_reading = true;
        self.answer_in_engine(t, ctx, i, status, &[], status.reason().as_bytes());
    }

    /// A body that broke its framing after the handler got the request.
    fn fail_body(&mut self, t: &mut Transport, ctx: &mut Ctx, rid: Option<u32>, status: Status) {
        self.stop_reading = true;
        let waiting = rid.and_then(|rid| {
            self.inflight
                .iter()
                .position(|p| p.rid == rid && p.answer == Answer::Waiting)
        });
        match waiting {
            Some(i) => {
                ctx.batch.abort(self.inflight[i].rid);
                self.inflight[i].keep_alive = false;
                self.answer_in_engine(t, ctx, i, status, &[], status.reason().as_bytes());
            }
            None => {
                if let Some(rid) = rid {
                    ctx.batch.abort(rid);
                }
                if rid.is_some_and(|rid| {
                    self.inflight
                        .iter()
                        .any(|p| p.rid == rid && p.answer == Answer::Streaming)
                }) {
                    // Its response is under way and can no longer end well: drop the connection.
                    self.doomed = true;
                } else if rid.is_some_and(|rid| !self.inflight.iter().any(|p| p.rid == rid))
                    && self.inflight.is_empty()
                {
                    // The handler answered in full before the body ended: nothing to tell the
                    // client but the close.
                    t.close_after_flush = true;
                    t.dirty = true;
                } else {
                    self.refuse(t, ctx, status);
                }
            }
        }
    }

    /// Answers the request at `i` with a short text, as if its handler had.
    fn answer_in_engine(
        &mut self,
        t: &mut Transport,
        ctx: &mut Ctx,
        i: usize,
        status: Status,
        extra: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        if let Some(why) = Refusal::of_status(status.0) {
            ctx.stats().refused(why);
        }
        self.answer_own(t, ctx, i, status, b"text/plain; charset=utf-8", extra, body);
    }

    /// Answers the request at `i` with a body the engine made, of the type given.
    #[allow(clippy::too_many_arguments)]
    fn answer_own(
        &mut self,
        t: &mut Transport,
        ctx: &mut Ctx,
        i: usize,
        status: Status,
        content_type: &[u8],
        extra: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        let mut out = self.take_out(t, ctx, i);
        let persistence = self.persistence(ctx, i, false);
        let p = &mut self.inflight[i];
        p.uncount(ctx);
        p.status = status.0;
        let body = if p.head_only { b"" } else { body };
        p.sent = body.len() as u64;
        encode::simple(
            &mut out,
            status,
            ctx.date.bytes(),
            persistence,
            &ctx.keep_alive_line,
            content_type,
            extra,
            body,
        );
        p.answer = Answer::Done;
        self.put_out(t, i, out);
        if i == 0 {
            self.advance(t, ctx);
        }
    }

    /// Answers the request at `i` with the engine's own figures (metrics, health, the
    /// dashboard): the handler never sees it.
    fn answer_ops(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize, kind: OpsRoute) {
        match ops::own_answer(kind, ctx) {
            Some(a) => self.answer_own(
                t,
                ctx,
                i,
                a.status,
                a.content_type,
                &[(b"cache-control", a.cache_control)],
                &a.body,
            ),
            None => self.open_event_stream(t, ctx, i),
        }
    }

    /// Starts an event stream the engine feeds (`push_event`): the head now, with the first
    /// event, then one event each time the thread has one.
    fn open_event_stream(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize) {
        let mut out = self.take_out(t, ctx, i);
        // While draining only the last request in flight closes: those pipelined before it
        // are answered in full.
        let drain_close = ctx.draining && i + 1 == self.inflight.len();
        let p = &mut self.inflight[i];
        p.uncount(ctx);
        let framing = if p.http10 {
            Framing::UntilClose
        } else {
            Framing::Chunked
        };
        let persistence = persistence(p, drain_close, framing == Framing::UntilClose);
        p.close = persistence == Persistence::Close;
        p.status = 200;
        encode::status_line(&mut out, Status::OK);
        encode::engine_headers(
            &mut out,
            ctx.date.bytes(),
            framing,
            persistence,
            &ctx.keep_alive_line,
        );
        out.extend_from_slice(b"content-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\n");
        encode::end_head(&mut out);
        p.chunked = framing == Framing::Chunked;
        p.body_allowed = !p.head_only;
        let rid = p.rid;
        if p.head_only {
            p.answer = Answer::Done;
            self.put_out(t, i, out);
        } else {
            p.answer = Answer::Streaming;
            self.put_out(t, i, out);
            ctx.event_streams.push((t.slot, rid));
            let event = ops::snapshot_event(&ctx.shared.snapshot());
            self.push_event(t, ctx, rid, &event);
        }
        if i == 0 {
            self.advance(t, ctx);
        }
    }

    /// Writes an event to an engine-fed stream; false once that stream is gone.
    pub fn push_event(&mut self, t: &mut Transport, ctx: &mut Ctx, rid: u32, event: &[u8]) -> bool {
        let Some(i) = self
            .inflight
            .iter()
            .position(|p| p.rid == rid && p.answer == Answer::Streaming)
        else {
            return false;
        };
        let mut out = self.take_out(t, ctx, i);
        let p = &mut self.inflight[i];
        if p.chunked {
            encode::chunk(&mut out, event);
        } else {
            out.extend_from_slice(event);
        }
        p.sent += event.len() as u64;
        self.put_out(t, i, out);
        true
    }

    /// Writes a comment line into a heartbeat stream quiet for its interval: `None` once the
    /// stream is gone, else whether it wrote.
    pub fn heartbeat(&mut self, t: &mut Transport, ctx: &mut Ctx, rid: u32) -> Option<bool> {
        let i = self
            .inflight
            .iter()
            .position(|p| p.rid == rid && p.answer == Answer::Streaming)?;
        let (every, last) = self.inflight[i].heartbeat?;
        if ctx.now.saturating_duration_since(last) < every {
            return Some(false);
        }
        self.inflight[i].heartbeat = Some((every, ctx.now));
        let mut out = self.take_out(t, ctx, i);
        let p = &mut self.inflight[i];
        if p.chunked {
            encode::chunk(&mut out, b":\n\n");
        } else {
            out.extend_from_slice(b":\n\n");
        }
        p.sent += 3;
        self.put_out(t, i, out);
        Some(true)
    }

    /// Ends an engine-fed stream (a drain began); the connection closes after it.
    pub fn end_event_stream(&mut self, t: &mut Transport, ctx: &mut Ctx, rid: u32) {
        let Some(i) = self
            .inflight
            .iter()
            .position(|p| p.rid == rid && p.answer == Answer::Streaming)
        else {
            return;
        };
        let mut out = self.take_out(t, ctx, i);
        let p = &mut self.inflight[i];
        if p.chunked {
            encode::last_chunk(&mut out);
        }
        p.close = true;
        p.answer = Answer::Done;
        self.put_out(t, i, out);
        if i == 0 {
            self.advance(t, ctx);
        }
    }

    /// Answers the request at `i` with a static file plan: head and small bodies into its
    /// buffer, file spans streamed after them.
    fn answer_plan(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize, plan: Plan) {
        let mut out = self.take_out(t, ctx, i);
        let persistence = self.persistence(ctx, i, false);
        let p = &mut self.inflight[i];
        p.uncount(ctx);
        let framing = if plan.status.allows_body() {
            Framing::Length(plan.length as usize)
        } else {
            Framing::Empty
        };
        p.status = plan.status.0;
        p.sent = if p.head_only || !plan.status.allows_body() {
            0
        } else {
            plan.length
        };
        encode::status_line(&mut out, plan.status);
        encode::engine_headers(
            &mut out,
            ctx.date.bytes(),
            framing,
            persistence,
            &ctx.keep_alive_line,
        );
        out.extend_from_slice(&plan.headers);
        encode::end_head(&mut out);
        let mut rest = Vec::new();
        if !p.head_only && plan.status.allows_body() {
            let file = plan.file;
            for piece in plan.pieces {
                match piece {
                    Piece::Bytes(b) if rest.is_empty() => out.extend_from_slice(&b),
                    Piece::Bytes(b) => rest.push(Out::Bytes(b)),
                    Piece::Shared(b, span) if rest.is_empty() => out.extend_from_slice(&b[span]),
                    Piece::Shared(b, span) => rest.push(Out::Bytes(b[span].to_vec())),
                    Piece::File { offset, len } => match &file {
                        Some(file) if len > 0 => rest.push(Out::File {
                            file: file.clone(),
                            offset,
                            len,
                        }),
                        _ => {}
                    },
                }
            }
        }
        p.answer = Answer::Done;
        self.put_out(t, i, out);
        if i == 0 {
            t.queue_after(rest);
            self.advance(t, ctx);
        } else {
            self.inflight[i].tail = rest;
        }
    }

    /// Applies a `FILE` op (`res.sendFile`): the file it names answers the request at `i`.
    fn answer_file(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize, op: &ReplyOp) {
        let Some(plan) = answers::file_plan(op) else {
            return;
        };
        self.answer_plan(t, ctx, i, plan);
    }

    /// The buffer that the response of request `i` is written into: the transport's output
    /// for the oldest request, a holding buffer for later ones.
    fn take_out(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize) -> Vec<u8> {
        if i == 0 {
            t.take_out(ctx)
        } else {
            std::mem::take(&mut self.inflight[i].out)
        }
    }

    fn put_out(&mut self, t: &mut Transport, i: usize, out: Vec<u8>) {
        if i == 0 {
            t.put_out(out);
        } else {
            self.inflight[i].out = out;
            t.dirty = true;
        }
    }

    /// Adds a request to those in flight, in a record list from the thread's pool if this
    /// connection holds none; returns its index.
    fn track(&mut self, ctx: &mut Ctx, pending: Pending) -> usize {
        if self.inflight.capacity() == 0 {
            self.inflight = ctx.pendings.get();
        }
        self.inflight.push_back(pending);
        self.inflight.len() - 1
    }

    /// Retires finished responses from the front, moving held-back bytes into the write
    /// buffer. Once none is left in flight, the record list goes back to the thread's pool:
    /// an idle connection holds none (it would be 4 records, 320 bytes, for ever).
    fn advance(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        self.retire_done(t, ctx);
        if self.inflight.is_empty() && self.inflight.capacity() > 0 {
            ctx.pendings.put(std::mem::take(&mut self.inflight));
        }
    }

    fn retire_done(&mut self, t: &mut Transport, ctx: &mut Ctx) {
        while self
            .inflight
            .front()
            .is_some_and(|p| p.answer == Answer::Done)
        {
            let mut done = self.inflight.pop_front().unwrap();
            if let Some(mut upgrade) = done.upgrade.take().filter(|u| u.agreed) {
                // Nothing was parsed after the handshake: nothing else is in flight.
                ctx.stats().request(
                    101,
                    done.protocol(),
                    ctx.now.saturating_duration_since(done.since).as_micros() as u64,
                );
                upgrade.log = done.log.take();
                self.switch = Some(upgrade);
                self.stop_reading = true;
                break;
            }
            done.finished(ctx, false);
            if done.close {
                t.close_after_flush = true;
                self.stop_reading = true;
                for mut p in self.inflight.drain(..) {
                    p.uncount(ctx);
                    if p.answer != Answer::Done {
                        ctx.batch.abort(p.rid);
                    }
                }
                break;
            }
            if let Some(next) = self.inflight.front_mut() {
                let tail = std::mem::take(&mut next.tail);
                if !next.out.is_empty() {
                    let held = std::mem::take(&mut next.out);
                    let mut out = self.take_out(t, ctx, 0);
                    out.extend_from_slice(&held);
                    self.put_out(t, 0, out);
                    ctx.pool.put(held);
                }
                t.queue_after(tail);
            }
        }
    }

    /// Applies one reply op from the handler; ops for requests no longer in flight are dropped.
    pub fn apply(&mut self, t: &mut Transport, ctx: &mut Ctx, op: &ReplyOp) {
        let Some(i) = self.inflight.iter().position(|p| p.rid == op.rid) else {
            return;
        };
        if op.kind == OP_UPGRADE {
            self.agree_upgrade(t, ctx, i);
            return;
        }
        if op.kind == OP_HEARTBEAT {
            if let Some(every) = op.heartbeat_every() {
                let p = &mut self.inflight[i];
                if p.answer == Answer::Streaming && p.heartbeat.is_none() {
                    p.heartbeat = Some((every, ctx.now));
                    ctx.heartbeats.push((t.slot, p.rid));
                }
            }
            return;
        }
        if op.kind == OP_CONSUMED {
            if let Some((_, count)) = op.split() {
                let n = count
                    .get(..4)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                let p = &mut self.inflight[i];
                p.unread = p.unread.saturating_sub(u64::from(n));
            }
            return;
        }
        if op.kind == OP_FILE {
            if self.inflight[i].answer == Answer::Waiting {
                self.answer_file(t, ctx, i, op);
            }
            return;
        }
        let Some((headers, body)) = op.split() else {
            return;
        };
        let answer = self.inflight[i].answer;
        match (op.kind, answer) {
            (OP_FULL | OP_HEAD, Answer::Waiting) => {
                let mut out = self.take_out(t, ctx, i);
                // While draining only the last request in flight closes: those pipelined before it
                // are answered in full.
                let drain_close = ctx.draining && i + 1 == self.inflight.len();
                let p = &mut self.inflight[i];
                p.uncount(ctx);
                let status = if (200..=999).contains(&op.status) {
                    Status(op.status)
                } else {
                    Status::INTERNAL_SERVER_ERROR
                };
                let mut close_asked = false;
                for (name, value) in headers.clone() {
                    if name.eq_ignore_ascii_case(b"connection")
                        && value.eq_ignore_ascii_case(b"close")
                    {
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
                let persistence = persistence(
                    p,
                    drain_close,
                    close_asked || framing == Framing::UntilClose,
                );
                encode::status_line(&mut out, status);
                encode::engine_headers(
                    &mut out,
                    ctx.date.bytes(),
                    framing,
                    persistence,
                    &ctx.keep_alive_line,
                );
                for (name, value) in headers {
                    if !encode::is_engine_header(name) {
                        encode::header(&mut out, name, value);
                    }
                }
                encode::end_head(&mut out);
                p.body_allowed = !p.head_only && status.allows_body();
                p.status = status.0;
                p.chunked = framing == Framing::Chunked;
                p.close = persistence == Persistence::Close;
                if streamed {
                    p.answer = Answer::Streaming;
                } else {
                    if p.body_allowed {
                        out.extend_from_slice(body);
                        p.sent = body.len() as u64;
                    }
                    p.answer = Answer::Done;
                }
                self.put_out(t, i, out);
            }
            (OP_CHUNK | OP_END, Answer::Streaming) => {
                let p = &mut self.inflight[i];
                if op.kind == OP_CHUNK && op.status & CHUNK_WANT_DRAIN != 0 {
                    p.want_drain = true;
                }
                if let Some((_, last)) = p.heartbeat.as_mut() {
                    *last = ctx.now;
                }
                if op.kind == OP_END && op.status & END_ABORT != 0 {
                    // Cut short: no last chunk; the connection closes once it is written.
                    p.close = true;
                    p.answer = Answer::Done;
                    t.dirty = true;
                    if i == 0 {
                        self.advance(t, ctx);
                    }
                    return;
                }
                let body = if p.body_allowed { body } else { &[][..] };
                let last = op.kind == OP_END && p.body_allowed;
                p.sent += body.len() as u64;
                if op.kind == OP_END {
                    p.answer = Answer::Done;
                }
                let size = encode::ChunkSize::new(body.len());
                let parts = if p.chunked {
                    size.parts(body, last)
                } else {
                    [body, &[][..], &[][..]]
                };
                if i == 0 {
                    t.send_parts(ctx, &parts);
                } else {
                    let out = &mut self.inflight[i].out;
                    parts.iter().for_each(|part| out.extend_from_slice(part));
                    t.dirty = true;
                }
            }
            // Answered twice, or a chunk without a head: the first answer stands.
            _ => return,
        }
        if i == 0 && self.inflight[0].answer == Answer::Done {
            self.advance(t, ctx);
        }
    }

    /// The handler accepts the handshake of request `i`: its 101 is queued, and once it is
    /// the oldest answer the connection changes protocol.
    fn agree_upgrade(&mut self, t: &mut Transport, ctx: &mut Ctx, i: usize) {
        let p = &mut self.inflight[i];
        if p.answer != Answer::Waiting {
            return;
        }
        let Some(upgrade) = p.upgrade.as_mut() else {
            return;
        };
        upgrade.agreed = true;
        let mut out = self.take_out(t, ctx, i);
        let p = &mut self.inflight[i];
        let upgrade = p.upgrade.as_ref().unwrap();
        handshake::write_101(&mut out, &upgrade.accepted, &upgrade.options.protocols);
        p.uncount(ctx);
        p.answer = Answer::Done;
        self.put_out(t, i, out);
        if i == 0 {
            self.advance(t, ctx);
        }
    }

    /// Answers with 503 every request whose handler has not started answering in time.
    pub fn expire(&mut self, t: &mut Transport, ctx: &mut Ctx, timeout: Duration) {
        let mut i = 0;
        while i < self.inflight.len() {
            let p = &self.inflight[i];
            if p.answer == Answer::Waiting && ctx.now.duration_since(p.since) >= timeout {
                ctx.batch.abort(p.rid);
                let before = self.inflight.len();
                self.answer_in_engine(
                    t,
                    ctx,
                    i,
                    Status::SERVICE_UNAVAILABLE,
                    &[],
                    b"Service Unavailable",
                );
                if self.inflight.len() < before {
                    continue; // the front was retired; index `i` now names the next request
                }
            }
            i += 1;
        }
    }

    /// The request clocks, checked by the sweep: a head that takes too long (408), a body
    /// that stops (408), an idle keep-alive connection.
    pub fn check_timers(&mut self, t: &mut Transport, ctx: &mut Ctx) -> Liveness {
        if self.stop_reading {
            return Liveness::Open;
        }
        let now = ctx.now;
        let config = &ctx.shared.config;
        let over = |since: Instant, limit: Duration| {
            !limit.is_zero() && now.saturating_duration_since(since) >= limit
        };
        let (header_timeout, body_timeout, idle_timeout) = (
            config.header_timeout,
            config.body_timeout,
            config.keep_alive_timeout,
        );
        match &self.read {
            ReadState::Head => {
                if let Some(since) = self.head_since {
                    if over(since, header_timeout) {
                        self.refuse(t, ctx, Status::REQUEST_TIMEOUT);
                    }
                } else if self.is_idle(t) && over(t.last_read.max(t.last_write), idle_timeout) {
                    return Liveness::Closed;
                }
            }
            ReadState::Length { rid, .. } | ReadState::Chunked { rid, .. } => {
                if over(t.last_read, body_timeout) {
                    let rid = *rid;
                    self.fail_body(t, ctx, rid, Status::REQUEST_TIMEOUT);
                    if self.doomed {
                        return Liveness::Closed;
                    }
                }
            }
        }
        Liveness::Open
    }

    /// The connection is going away: tell the handler about every request it still holds.
    pub fn abort_all(&mut self, ctx: &mut Ctx) {
        for mut p in self.inflight.drain(..) {
            p.uncount(ctx);
            if p.answer != Answer::Done {
                ctx.batch.abort(p.rid);
            }
            p.finished(ctx, true);
        }
    }
}

/// Hands the request whose head is in `ctx.head` to the handler, with the flags of its
/// connection (TLS, the client's address) and `extra`.
fn to_handler(t: &mut Transport, ctx: &mut Ctx, rid: u32, route: u32, input: &[u8], extra: u32) {
    let peer = t.peer_ip(ctx);
    ctx.batch.request(
        rid,
        t.slot,
        route,
        input,
        &ctx.head,
        &ctx.params,
        extra | t.secure_flag(),
        peer,
    );
}

/// What the access log will say of the request whose head is in `ctx.head`.
fn log_entry(t: &mut Transport, ctx: &Ctx, input: &[u8]) -> LogEntry {
    let head = &ctx.head;
    let header = |name: &[u8]| {
        head.headers
            .iter()
            .find(|(n, _)| n.slice(input).eq_ignore_ascii_case(name))
            .map(|(_, v)| v.slice(input))
    };
    let protocol = if head.http10 { "http/1.0" } else { "http/1.1" };
    LogEntry::new(
        head.method.slice(input),
        head.target.slice(input),
        header(b"user-agent"),
        header(b"referer"),
        t.peer_ip(ctx),
        protocol,
    )
}

impl Http1 {
    /// Whether the connection stays open after the answer to request `i` (recorded on it).
    /// While draining only the last request in flight closes: those pipelined before it are
    /// answered in full.
    fn persistence(&mut self, ctx: &Ctx, i: usize, close_asked: bool) -> Persistence {
        let drain_close = ctx.draining && i + 1 == self.inflight.len();
        let p = &mut self.inflight[i];
        let decided = persistence(p, drain_close, close_asked);
        p.close = decided == Persistence::Close;
        decided
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
