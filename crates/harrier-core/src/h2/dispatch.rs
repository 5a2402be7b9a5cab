//! New streams and the engine's own answers over HTTP/2: a stream accepted by `H2Conn::poll`
//! is routed (the rate limit, the router, as for HTTP/1.1 through `conn/answers.rs`) and either
//! answered here (404, 405, 413, 414, 426, 429, 503, static files, the ops routes and their
//! event stream) or handed to the handler as a `REQUEST` event.

use ::h2::server::SendResponse;
use ::h2::{Reason, RecvStream};
use bytes::Bytes;
use http::header::HeaderMap;

use super::conn::H2Conn;
use super::streams::{self, Answer, FileSend, Stream};
use crate::conn::answers;
use crate::conn::transport::Transport;
use crate::engine::batch::{FLAG_HAS_BODY, FLAG_HTTP2};
use crate::engine::event_loop::Ctx;
use crate::http1::encode::decimal;
use crate::http1::Status;
use crate::ops::access_log::LogEntry;
use crate::ops::stats::Refusal;
use crate::ops::{self, OpsRoute};
use crate::router::RouteMatch;
use crate::statics::{Piece, Plan};

impl H2Conn {
    /// A new stream: the engine answers it, or it goes to the handler.
    pub(super) fn accept(
        &mut self,
        t: &mut Transport,
        ctx: &mut Ctx,
        request: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
    ) {
        let rid = ctx.next_rid();
        let (parts, body) = request.into_parts();
        let has_body = !body.is_end_stream();
        let mut s = Stream::new(rid, ctx.now, respond, body);
        let method = parts.method.as_str().as_bytes();
        s.head_only = method == b"HEAD";
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes();
        let path_len = target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(target.len());
        let path = &target[..path_len];
        let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
        let headers = &parts.headers;
        if ctx.log.is_some() {
            let header = |name: http::header::HeaderName| headers.get(name).map(|v| v.as_bytes());
            let entry = LogEntry::new(
                method,
                target,
                header(http::header::USER_AGENT),
                header(http::header::REFERER),
                t.peer_ip(ctx),
                "h2",
            );
            s.log = Some(Box::new(entry));
        }
        let max_url = ctx.shared.config.max_url_length;
        if max_url > 0 && target.len() > max_url {
            self.answer_new(ctx, s, Status::URI_TOO_LONG, &[]);
            return;
        }
        let mut number = [0u8; 20];
        match answers::route(ctx, &t.ip, method, path) {
            Err(secs) => self.answer_new(
                ctx,
                s,
                Status::TOO_MANY_REQUESTS,
                &[(b"retry-after", decimal(&mut number, secs))],
            ),
            // WebSocket over HTTP/2 (RFC 8441) is not offered: such a client uses HTTP/1.1.
            Ok(RouteMatch::Found { route }) if ctx.shared.config.websocket(route).is_some() => {
                self.answer_new(ctx, s, Status(426), &[])
            }
            Ok(RouteMatch::Found { route }) if ctx.shared.config.ops_route(route).is_some() => {
                let kind = ctx.shared.config.ops_route(route).unwrap();
                s.body = None;
                let i = self.track(s);
                self.answer_ops(t, ctx, i, kind);
            }
            Ok(RouteMatch::Found { route }) if ctx.shared.config.static_mount(route).is_some() => {
                let mount = ctx.shared.config.static_mount(route).unwrap().clone();
                let plan = answers::mount_plan(
                    &mount,
                    &ctx.params,
                    path,
                    &target[path_len..],
                    request_headers(authority, headers),
                );
                s.body = None;
                let i = self.track(s);
                self.answer_plan(ctx, i, plan);
            }
            Ok(RouteMatch::Found { route }) => {
                let limit = ctx.shared.config.body_limit(route);
                let declared = headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                if limit > 0 && declared > limit {
                    self.answer_new(ctx, s, Status::CONTENT_TOO_LARGE, &[]);
                } else if ctx.waiting >= ctx.max_waiting {
                    self.answer_new(
                        ctx,
                        s,
                        Status::SERVICE_UNAVAILABLE,
                        &[(b"retry-after", b"1")],
                    );
                } else {
                    let flags =
                        FLAG_HTTP2 | t.secure_flag() | if has_body { FLAG_HAS_BODY } else { 0 };
                    let cookies = joined_cookies(headers);
                    let fields = request_headers(authority, headers)
                        .filter(|(n, _)| cookies.is_none() || *n != b"cookie");
                    let cookie = cookies.as_deref().map(|c| (&b"cookie"[..], c));
                    let peer = t.peer_ip(ctx);
                    ctx.batch.request_parts(
                        rid,
                        t.slot,
                        route,
                        flags,
                        method,
                        target,
                        path_len,
                        fields.chain(cookie),
                        &ctx.params,
                        peer,
                    );
                    s.to_handler = true;
                    s.limit = limit;
                    s.counted = true;
                    ctx.waiting += 1;
                    if !has_body {
                        s.body = None;
                    }
                    self.track(s);
                    if ctx.batch.is_full() {
                        ctx.hand_over_batch();
                    }
                }
            }
            Ok(RouteMatch::MethodNotAllowed { allow }) => self.answer_new(
                ctx,
                s,
                Status::METHOD_NOT_ALLOWED,
                &[(b"allow", allow.as_bytes())],
            ),
            Ok(RouteMatch::NotFound) => self.answer_new(ctx, s, Status::NOT_FOUND, &[]),
        }
    }

    fn track(&mut self, s: Stream) -> usize {
        self.streams.push(s);
        self.streams.len() - 1
    }

    /// Answers a stream the handler will not see; its body is not wanted.
    fn answer_new(
        &mut self,
        ctx: &mut Ctx,
        mut s: Stream,
        status: Status,
        extra: &[(&[u8], &[u8])],
    ) {
        s.body = None;
        let i = self.track(s);
        self.answer_in_engine(ctx, i, status, extra);
    }

    /// Answers the stream at `i` with a short text, as if its handler had.
    pub(super) fn answer_in_engine(
        &mut self,
        ctx: &mut Ctx,
        i: usize,
        status: Status,
        extra: &[(&[u8], &[u8])],
    ) {
        if let Some(why) = Refusal::of_status(status.0) {
            ctx.stats().refused(why);
        }
        self.answer_own(
            ctx,
            i,
            status,
            b"text/plain; charset=utf-8",
            extra,
            status.reason().as_bytes(),
        );
    }

    /// Answers the stream at `i` with a body the engine made, of the type given.
    fn answer_own(
        &mut self,
        ctx: &mut Ctx,
        i: usize,
        status: Status,
        content_type: &[u8],
        extra: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        let s = &mut self.streams[i];
        s.uncount(ctx);
        s.status = status.0;
        let mut head = streams::head(
            status,
            &mut ctx.h2_values,
            ctx.date.bytes(),
            Some(body.len() as u64),
        );
        let h = head.headers_mut();
        streams::add_header(h, &mut ctx.h2_values, b"content-type", content_type);
        for (name, value) in extra {
            streams::add_header(h, &mut ctx.h2_values, name, value);
        }
        let end = s.head_only || body.is_empty();
        if s.send_head(head, end) && !end {
            s.send_data(Bytes::copy_from_slice(body), true);
        }
        s.answer = Answer::Done;
        self.woken.set();
    }

    /// Answers the stream at `i` with the engine's own figures (metrics, health, the
    /// dashboard and its event stream): the handler never sees it.
    fn answer_ops(&mut self, t: &Transport, ctx: &mut Ctx, i: usize, kind: OpsRoute) {
        if let Some(a) = ops::own_answer(kind, ctx) {
            self.answer_own(
                ctx,
                i,
                a.status,
                a.content_type,
                &[(b"cache-control", a.cache_control)],
                &a.body,
            );
            return;
        }
        // The dashboard's event stream, fed by the engine.
        let s = &mut self.streams[i];
        s.uncount(ctx);
        s.status = 200;
        let mut head = streams::head(Status::OK, &mut ctx.h2_values, ctx.date.bytes(), None);
        for (name, value) in [
            (&b"content-type"[..], &b"text/event-stream"[..]),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ] {
            streams::add_header(head.headers_mut(), &mut ctx.h2_values, name, value);
        }
        let head_only = s.head_only;
        let rid = s.rid;
        if s.send_head(head, head_only) && !head_only {
            s.answer = Answer::Streaming;
            ctx.event_streams.push((t.slot, rid));
            let event = ops::snapshot_event(&ctx.shared.snapshot());
            self.push_event(rid, &event);
        } else {
            s.answer = Answer::Done;
        }
        self.woken.set();
    }

    /// Writes an event to an engine-fed stream; false once that stream is gone.
    pub fn push_event(&mut self, rid: u32, event: &[u8]) -> bool {
        let Some(s) = self
            .streams
            .iter_mut()
            .find(|s| s.rid == rid && s.answer == Answer::Streaming && s.send.is_some())
        else {
            return false;
        };
        s.send_data(Bytes::copy_from_slice(event), false);
        self.woken.set();
        s.send.is_some()
    }

    /// Writes a comment line into a heartbeat stream quiet for its interval: `None` once the
    /// stream is gone, else whether it wrote.
    pub fn heartbeat(&mut self, ctx: &mut Ctx, rid: u32) -> Option<bool> {
        let s = self
            .streams
            .iter_mut()
            .find(|s| s.rid == rid && s.answer == Answer::Streaming)?;
        let (every, last) = s.heartbeat?;
        if ctx.now.saturating_duration_since(last) < every {
            return Some(false);
        }
        s.heartbeat = Some((every, ctx.now));
        s.send_data(Bytes::from_static(b":\n\n"), false);
        self.woken.set();
        Some(true)
    }

    /// Ends an engine-fed stream (a drain began).
    pub fn end_event_stream(&mut self, ctx: &mut Ctx, rid: u32) {
        let Some(i) = self
            .streams
            .iter()
            .position(|s| s.rid == rid && s.answer == Answer::Streaming)
        else {
            return;
        };
        let s = &mut self.streams[i];
        s.send_data(Bytes::new(), true);
        s.answer = Answer::Done;
        self.woken.set();
        if self.streams[i].finished() {
            self.retire(ctx, i);
        }
    }

    /// Answers the stream at `i` with a static file plan: head now, body pieces as flow
    /// control lets them go.
    pub(super) fn answer_plan(&mut self, ctx: &mut Ctx, i: usize, plan: Plan) {
        let s = &mut self.streams[i];
        s.uncount(ctx);
        s.status = plan.status.0;
        let allows_body = plan.status.allows_body();
        let mut head = streams::head(
            plan.status,
            &mut ctx.h2_values,
            ctx.date.bytes(),
            allows_body.then_some(plan.length),
        );
        for (name, value) in answers::plan_headers(&plan.headers) {
            streams::add_header(head.headers_mut(), &mut ctx.h2_values, name, value);
        }
        let end = s.head_only || !allows_body || plan.length == 0;
        if s.send_head(head, end) && !end {
            s.file = Some(FileSend {
                file: plan.file,
                pieces: plan
                    .pieces
                    .into_iter()
                    .filter(|p| !matches!(p, Piece::File { len: 0, .. }))
                    .collect(),
            });
        }
        s.answer = Answer::Done;
        self.woken.set();
    }
}

/// A request body past its limit: 413 if the handler has not answered (it is told the
/// request is gone), else the stream is reset.
pub(super) fn over_limit(s: &mut Stream, ctx: &mut Ctx) {
    if s.to_handler && s.answer != Answer::Done {
        ctx.batch.abort(s.rid);
    }
    s.uncount(ctx);
    s.body = None;
    if s.answer == Answer::Waiting {
        let status = Status::CONTENT_TOO_LARGE;
        s.status = status.0;
        if let Some(why) = Refusal::of_status(status.0) {
            ctx.stats().refused(why);
        }
        let body = status.reason().as_bytes();
        let mut head = streams::head(
            status,
            &mut ctx.h2_values,
            ctx.date.bytes(),
            Some(body.len() as u64),
        );
        head.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let end = s.head_only;
        if s.send_head(head, end) && !end {
            s.send_data(Bytes::from_static(body), true);
        }
        s.answer = Answer::Done;
    } else {
        s.reset(Reason::CANCEL);
    }
}

/// The request's headers as the handler sees them: `:authority` as `host`, then the rest.
fn request_headers<'a>(
    authority: Option<&'a [u8]>,
    headers: &'a HeaderMap,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    let host = authority.map(|a| (&b"host"[..], a));
    host.into_iter().chain(
        headers
            .iter()
            .filter(move |(n, _)| authority.is_none() || *n != http::header::HOST)
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    )
}

/// HTTP/2 clients may split `cookie` into one field per cookie (RFC 9113 8.2.3): joined
/// back with `; `, when there are several.
fn joined_cookies(headers: &HeaderMap) -> Option<Vec<u8>> {
    let mut all = headers.get_all(http::header::COOKIE).iter();
    let first = all.next()?;
    let second = all.next()?;
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(all) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    Some(joined)
}
