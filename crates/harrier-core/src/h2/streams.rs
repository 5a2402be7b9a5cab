//! One HTTP/2 stream as the engine tracks it: the handles h2 gave for it, where its answer
//! stands, its request body, and what is left to send of a file answer.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ::h2::server::SendResponse;
use ::h2::{Reason, RecvStream, SendStream};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::HeadValues;
use crate::engine::event_loop::Ctx;
use crate::http1::Status;
use crate::ops::access_log::LogEntry;
use crate::ops::stats::Protocol;
use crate::statics::{self, Piece};

/// Bytes of a file read for one DATA send: what h2 frames in a few 16 KiB frames.
const FILE_CHUNK: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Nothing sent yet (the handler has the request, or the engine is about to answer).
    Waiting,
    /// The head is out, body pieces follow.
    Streaming,
    Done,
}

pub(crate) struct Stream {
    pub rid: u32,
    pub answer: Answer,
    /// Until the head is sent.
    pub respond: Option<SendResponse<Bytes>>,
    /// After the head, while the body goes on.
    pub send: Option<SendStream<Bytes>>,
    /// The request body, until its end (or until nobody wants it).
    pub body: Option<RecvStream>,
    /// The handler has the request: its body and its abort go to it.
    pub to_handler: bool,
    pub head_only: bool,
    pub since: Instant,
    /// Counted among the requests waiting for the handler (`Ctx::waiting`).
    pub counted: bool,
    /// Body bytes handed to the handler and not yet read by it (`CONSUMED`): the client's
    /// window opens again as it reads.
    pub unreleased: usize,
    /// The body's end came; `body` is kept only to release what the handler reads.
    pub body_ended: bool,
    /// When body bytes last came, or the handler last opened the window (the request's
    /// start before either): a body the client stops sending while the handler has read all
    /// it was given meets `bodyTimeout`.
    pub body_at: Instant,
    /// Body bytes received, refused past `limit` (0: none).
    pub seen: u64,
    pub limit: u64,
    /// A file answer's pieces not sent yet.
    pub file: Option<FileSend>,
    /// The answer's status, and the body bytes sent (for the counters and the access log).
    pub status: u16,
    pub sent: u64,
    /// The client reset it, or the engine gave up on it, before its answer was whole.
    pub aborted: bool,
    /// What the access log will say of it, when the log is on.
    pub log: Option<Box<LogEntry>>,
    /// The handler waits for `DRAIN`: the answer went over its high-water mark.
    pub want_drain: bool,
    /// An event stream's heartbeat: every, and the last write.
    pub heartbeat: Option<(std::time::Duration, Instant)>,
}

pub(crate) struct FileSend {
    pub file: Option<Arc<File>>,
    pub pieces: VecDeque<Piece>,
}

impl Stream {
    pub fn new(rid: u32, now: Instant, respond: SendResponse<Bytes>, body: RecvStream) -> Stream {
        Stream {
            rid,
            answer: Answer::Waiting,
            respond: Some(respond),
            send: None,
            body: Some(body),
            to_handler: false,
            head_only: false,
            since: now,
            counted: false,
            unreleased: 0,
            body_ended: false,
            body_at: now,
            seen: 0,
            limit: 0,
            file: None,
            status: 0,
            sent: 0,
            aborted: false,
            log: None,
            want_drain: false,
            heartbeat: None,
        }
    }

    /// Whether a streamed answer the handler saw over its high-water mark can take more now:
    /// h2 assigns capacity once the stream's buffered data is under its send buffer size (the
    /// high-water mark) and the client's window has room.
    pub fn drained(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(send) = self.send.as_mut() else {
            // Ended or gone: nothing more will be written.
            return true;
        };
        send.reserve_capacity(1);
        match send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(n))) if n > 0 => {
                send.reserve_capacity(0);
                true
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => true,
            _ => false,
        }
    }

    /// Counts the stream among the requests answered (unless it was aborted) and writes its
    /// access log line.
    pub fn record(&mut self, ctx: &mut Ctx) {
        let aborted = self.aborted || self.answer != Answer::Done;
        ctx.request_done(
            Protocol::Http2,
            self.status,
            self.since,
            self.sent,
            aborted,
            self.log.take(),
        );
    }

    /// Opens the client's window by `n` of the bytes the handler was handed (all: `usize::MAX`);
    /// an ended body is let go once nothing is left to release.
    pub fn release(&mut self, n: usize) {
        let n = n.min(self.unreleased);
        self.unreleased -= n;
        if let Some(body) = self.body.as_mut() {
            if n > 0 {
                let _ = body.flow_control().release_capacity(n);
            }
            if self.body_ended && self.unreleased == 0 {
                self.body = None;
            }
        }
    }

    /// The handler no longer holds this request unanswered.
    pub fn uncount(&mut self, ctx: &mut Ctx) {
        if self.counted {
            self.counted = false;
            ctx.waiting -= 1;
        }
    }

    /// Nothing is left to do for it: its handles can go (h2 sends what it still buffers).
    pub fn finished(&self) -> bool {
        self.answer == Answer::Done && self.body.is_none() && self.file.is_none()
    }

    /// Sends the head; `end`: nothing follows it. The stream keeps its send handle unless
    /// it ended. False if the stream is gone (reset).
    pub fn send_head(&mut self, head: http::Response<()>, end: bool) -> bool {
        let Some(mut respond) = self.respond.take() else {
            return false;
        };
        match respond.send_response(head, end) {
            Ok(send) => {
                if !end {
                    self.send = Some(send);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// A piece of the body; `end`: the last.
    pub fn send_data(&mut self, data: Bytes, end: bool) {
        self.sent += data.len() as u64;
        if let Some(send) = self.send.as_mut() {
            if send.send_data(data, end).is_err() {
                self.send = None;
            }
        }
        if end {
            self.send = None;
        }
    }

    /// Stops the stream (a body over its limit while the answer streams).
    pub fn reset(&mut self, reason: Reason) {
        if let Some(send) = self.send.as_mut() {
            send.send_reset(reason);
        } else if let Some(respond) = self.respond.as_mut() {
            respond.send_reset(reason);
        }
        self.let_go();
    }

    /// Gives up on the stream (reset by either side): its handles dropped, its answer over,
    /// counted as aborted.
    pub fn let_go(&mut self) {
        self.send = None;
        self.respond = None;
        self.file = None;
        self.body = None;
        self.answer = Answer::Done;
        self.aborted = true;
    }

    /// Whether the client reset the stream (or the connection failed) while it was answered.
    pub fn poll_reset(&mut self, cx: &mut Context<'_>) -> bool {
        let polled = match (&mut self.respond, &mut self.send) {
            (Some(r), _) => r.poll_reset(cx),
            (None, Some(s)) => s.poll_reset(cx),
            _ => Poll::Pending,
        };
        polled.is_ready()
    }

    /// Sends what flow control allows of a file answer: bytes pieces at once (h2 buffers
    /// them), file spans as capacity is assigned, read a chunk at a time.
    pub fn pump_file(&mut self, cx: &mut Context<'_>) {
        let Some(fs) = self.file.as_mut() else { return };
        let Some(send) = self.send.as_mut() else {
            self.file = None;
            return;
        };
        loop {
            let last = fs.pieces.len() <= 1;
            match fs.pieces.front_mut() {
                None => {
                    let _ = send.send_data(Bytes::new(), true);
                    break;
                }
                Some(Piece::Bytes(b)) => {
                    let b = std::mem::take(b);
                    fs.pieces.pop_front();
                    self.sent += b.len() as u64;
                    let _ = send.send_data(Bytes::from(b), last);
                    if last {
                        break;
                    }
                }
                Some(Piece::Shared(b, span)) => {
                    let data = Bytes::copy_from_slice(&b[span.clone()]);
                    fs.pieces.pop_front();
                    self.sent += data.len() as u64;
                    let _ = send.send_data(data, last);
                    if last {
                        break;
                    }
                }
                Some(Piece::File { offset, len }) => {
                    if *len == 0 {
                        fs.pieces.pop_front();
                        continue;
                    }
                    send.reserve_capacity((*len).min(FILE_CHUNK) as usize);
                    match send.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(n))) if n > 0 => {
                            let want = (n as u64).min(*len);
                            let read = fs
                                .file
                                .as_ref()
                                .map(|f| statics::read_span(f, *offset, want));
                            match read {
                                Some(Ok(bytes)) if !bytes.is_empty() => {
                                    *offset += bytes.len() as u64;
                                    *len -= bytes.len() as u64;
                                    let end = *len == 0 && last;
                                    self.sent += bytes.len() as u64;
                                    if *len == 0 {
                                        fs.pieces.pop_front();
                                    }
                                    let _ = send.send_data(Bytes::from(bytes), end);
                                    if end {
                                        break;
                                    }
                                }
                                // The file shrank or broke: the promised length cannot be kept.
                                _ => {
                                    send.send_reset(Reason::INTERNAL_ERROR);
                                    self.aborted = true;
                                    break;
                                }
                            }
                        }
                        Poll::Ready(Some(Ok(_))) | Poll::Pending => return,
                        // The stream is gone.
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => break,
                    }
                }
            }
        }
        self.file = None;
        self.send = None;
    }
}

/// Headers that mean something for one HTTP/1.1 connection only (RFC 9113 8.2.2), or that
/// the engine writes itself: a handler's are dropped.
pub(crate) fn is_dropped_header(name: &[u8]) -> bool {
    const DROPPED: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"te",
        b"content-length",
        b"date",
    ];
    DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
}

/// A response head with the engine's own headers.
pub(crate) fn head(
    status: Status,
    values: &mut HeadValues,
    date: &[u8],
    length: Option<u64>,
) -> http::Response<()> {
    let mut r = http::Response::new(());
    *r.status_mut() =
        http::StatusCode::from_u16(status.0).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Some(v) = values.date(date) {
        h.insert(http::header::DATE, v);
    }
    if let Some(n) = length {
        h.insert(http::header::CONTENT_LENGTH, values.length(n));
    }
    r
}

/// Adds one header of the handler's (or of a file answer); false if it is dropped or
/// malformed.
pub(crate) fn add_header(
    headers: &mut HeaderMap,
    values: &mut HeadValues,
    name: &[u8],
    value: &[u8],
) -> bool {
    if is_dropped_header(name) {
        return false;
    }
    let value = if name.eq_ignore_ascii_case(b"content-type") {
        values.content_type(value).ok_or(())
    } else {
        HeaderValue::from_bytes(value).map_err(|_| ())
    };
    match (HeaderName::from_bytes(name), value) {
        (Ok(name), Ok(value)) => {
            headers.append(name, value);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_dropped() {
        let mut h = HeaderMap::new();
        let v = &mut HeadValues::default();
        for name in [
            "Connection",
            "keep-alive",
            "Transfer-Encoding",
            "upgrade",
            "proxy-connection",
            "content-length",
        ] {
            assert!(!add_header(&mut h, v, name.as_bytes(), b"x"), "{name}");
        }
        assert!(add_header(&mut h, v, b"X-Thing", b"1"));
        assert!(add_header(&mut h, v, b"set-cookie", b"a=1"));
        assert!(add_header(&mut h, v, b"set-cookie", b"b=2"));
        assert!(!add_header(&mut h, v, b"bad name", b"x"));
        assert!(!add_header(&mut h, v, b"x-bad", b"a\r\nb"));
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("x-thing").unwrap(), "1");
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn heads_carry_date_and_length() {
        let r = head(
            Status(404),
            &mut HeadValues::default(),
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            Some(9),
        );
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-length"], "9");
        assert_eq!(r.headers()["date"], "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(head(Status(204), &mut HeadValues::default(), b"x", None)
            .headers()
            .get("content-length")
            .is_none());
    }
}
