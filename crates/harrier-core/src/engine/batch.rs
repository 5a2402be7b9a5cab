//! The compact view in which requests cross to the handler: one byte buffer and one `u32`
//! array per batch, holding every event one wake of an I/O thread produced. Nothing is
//! encoded per field; the receiver decodes lazily from offsets.
//!
//! `meta[0]` is the I/O thread's index; then events follow, each starting with its kind:
//!
//! | kind | words after the kind |
//! | --- | --- |
//! | `REQUEST` | rid, slot, route, flags, method off/len, target off/len, path len, header count, param count, then per header name off/len, value off/len (names lower-cased), then per param off/len (into `bytes`), then, with `FLAG_PEER`, the client's address off/len (text) |
//! | `BODY` | rid, off, len |
//! | `END` | rid (the body is complete) |
//! | `ABORT` | rid (the client went away, or the engine answered for the handler) |
//! | `WS_OPEN` | id (the upgrade request's rid, which names the WebSocket from now on), slot, client address off/len (text), the chosen subprotocol's index + 1 (0: none), route, param count, then per param off/len |
//! | `WS_MESSAGE` | id, slot, kind (`WS_TEXT`, `WS_BINARY`, `WS_ASCII`: text that is all ASCII), off, len: one whole message |
//! | `WS_CLOSE` | id, slot, code, reason off/len: the WebSocket is closed (1006: without a close frame) |
//! | `WS_DRAIN` | id, slot, bytes still unsent: the socket's output crossed its limit (either way) or emptied after that |

use crate::http1::request::{RequestHead, Span};

pub const EVENT_REQUEST: u32 = 1;
pub const EVENT_BODY: u32 = 2;
pub const EVENT_END: u32 = 3;
pub const EVENT_ABORT: u32 = 4;
pub const EVENT_WS_OPEN: u32 = 5;
pub const EVENT_WS_MESSAGE: u32 = 6;
pub const EVENT_WS_CLOSE: u32 = 7;
pub const EVENT_WS_DRAIN: u32 = 8;
/// A streamed response fell back under the high-water mark: rid, slot, bytes unsent.
pub const EVENT_DRAIN: u32 = 9;

/// Kinds of `WS_MESSAGE`. ASCII text is told apart so that JS can make its string with a
/// plain copy instead of a UTF-8 decode.
pub const WS_TEXT: u32 = 0;
pub const WS_BINARY_MESSAGE: u32 = 1;
pub const WS_ASCII: u32 = 2;

pub const FLAG_HTTP10: u32 = 1;
pub const FLAG_HAS_BODY: u32 = 2;
/// A valid WebSocket handshake: answer with an `UPGRADE` op to accept it.
pub const FLAG_UPGRADE: u32 = 4;
/// The request came over TLS.
pub const FLAG_SECURE: u32 = 8;
/// The request is an HTTP/2 stream.
pub const FLAG_HTTP2: u32 = 16;
/// Two more words follow the request's params: the client's address (text) off/len.
pub const FLAG_PEER: u32 = 32;

/// An address as text: IPv4 by hand (every request carries one; the formatting machinery
/// costs more than the rest of the event), IPv6 as the standard library writes it.
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

/// One batch of events from one I/O thread. The handler owns it: the bytes stay valid for
/// as long as it keeps them, whatever the engine reads next.
pub struct Batch {
    pub thread: u8,
    pub bytes: Vec<u8>,
    pub meta: Vec<u32>,
}

/// Past this many bytes (request bodies, WebSocket messages) a batch is handed over at once
/// rather than growing further: one inline arena's worth, so that every copy of it on the
/// way to JS stays in cache (a turn of 64 sockets × 16 messages of 4 KiB was one 4 MiB batch).
pub(crate) const BATCH_SOFT_LIMIT: usize = 64 << 10;

pub(crate) struct BatchBuilder {
    thread: u8,
    bytes: Vec<u8>,
    meta: Vec<u32>,
    /// Counts batches handed over, so that a mark knows whether it still applies.
    generation: u64,
    /// The bytes of the batch last taken: how to start the next if the handler kept them.
    taken_bytes: usize,
}

/* A batch's vectors are reused for the next one unless they grew past this (a burst of
bodies): then they are let go, so a thread does not hold a peak's memory for ever. */
const REUSED_CAPACITY: usize = 256 * 1024;

/// Where a batch stood before some work, to undo what that work added if it failed halfway.
#[derive(Clone, Copy)]
pub(crate) struct BatchMark {
    generation: u64,
    meta: usize,
    bytes: usize,
}

impl BatchBuilder {
    pub fn new(thread: u8) -> BatchBuilder {
        BatchBuilder {
            thread,
            bytes: Vec::new(),
            meta: vec![thread as u32],
            generation: 0,
            taken_bytes: 0,
        }
    }

    pub fn mark(&self) -> BatchMark {
        BatchMark {
            generation: self.generation,
            meta: self.meta.len(),
            bytes: self.bytes.len(),
        }
    }

    /// Drops every event added since `mark` (all of this batch, if it was started since).
    pub fn rollback(&mut self, mark: BatchMark) {
        let (meta, bytes) = if mark.generation == self.generation {
            (mark.meta, mark.bytes)
        } else {
            (1, 0)
        };
        self.meta.truncate(meta.max(1));
        self.bytes.truncate(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.meta.len() == 1
    }

    fn event(&mut self, words: &[u32]) {
        self.meta.extend_from_slice(words);
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() >= BATCH_SOFT_LIMIT
    }

    fn copy(&mut self, data: &[u8]) -> u32 {
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(data);
        off
    }

    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        rid: u32,
        slot: u32,
        route: u32,
        input: &[u8],
        head: &RequestHead,
        params: &[(u32, u32)],
        extra_flags: u32,
        peer: Option<std::net::IpAddr>,
    ) {
        // The head is copied whole, so every span keeps its offset relative to `base`.
        let base = self.bytes.len() as u32;
        let head_bytes = &input[..head.len];
        self.bytes.extend_from_slice(head_bytes);
        let mut flags = extra_flags;
        if head.http10 {
            flags |= FLAG_HTTP10;
        }
        if head.body != crate::http1::request::BodyFraming::None {
            flags |= FLAG_HAS_BODY;
        }
        if peer.is_some() {
            flags |= FLAG_PEER;
        }
        let path_off = base + head.target.start;
        self.meta.extend_from_slice(&[
            EVENT_REQUEST,
            rid,
            slot,
            route,
            flags,
            base + head.method.start,
            head.method.len,
            path_off,
            head.target.len,
            head.path_len,
            head.headers.len() as u32,
            params.len() as u32,
        ]);
        for (name, value) in &head.headers {
            let Span { start, len } = *name;
            self.bytes[(base + start) as usize..(base + start + len) as usize]
                .make_ascii_lowercase();
            self.meta
                .extend_from_slice(&[base + start, len, base + value.start, value.len]);
        }
        self.params_and_peer(path_off, params, peer);
    }

    /// A request's route params (offsets into its path) and, when given, the client's
    /// address: the end of every request event.
    #[inline]
    fn params_and_peer(
        &mut self,
        path_off: u32,
        params: &[(u32, u32)],
        peer: Option<std::net::IpAddr>,
    ) {
        for &(start, len) in params {
            self.meta.extend_from_slice(&[path_off + start, len]);
        }
        if let Some(ip) = peer {
            let off = self.bytes.len();
            write_ip(&mut self.bytes, ip);
            let len = self.bytes.len() - off;
            self.meta.extend_from_slice(&[off as u32, len as u32]);
        }
    }

    /// A request whose parts are not one parsed head (an HTTP/2 stream): each is copied.
    /// Header names must be lower-case already; `params` are spans into the path.
    #[allow(clippy::too_many_arguments)]
    pub fn request_parts<'a>(
        &mut self,
        rid: u32,
        slot: u32,
        route: u32,
        flags: u32,
        method: &[u8],
        target: &[u8],
        path_len: usize,
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        params: &[(u32, u32)],
        peer: Option<std::net::IpAddr>,
    ) {
        let flags = if peer.is_some() {
            flags | FLAG_PEER
        } else {
            flags
        };
        let method_off = self.copy(method);
        let path_off = self.copy(target);
        let at = self.meta.len();
        self.meta.extend_from_slice(&[
            EVENT_REQUEST,
            rid,
            slot,
            route,
            flags,
            method_off,
            method.len() as u32,
            path_off,
            target.len() as u32,
            path_len as u32,
            0,
            params.len() as u32,
        ]);
        let mut count = 0;
        for (name, value) in headers {
            let name_off = self.copy(name);
            let value_off = self.copy(value);
            self.meta.extend_from_slice(&[
                name_off,
                name.len() as u32,
                value_off,
                value.len() as u32,
            ]);
            count += 1;
        }
        self.meta[at + 10] = count;
        self.params_and_peer(path_off, params, peer);
    }

    pub fn body(&mut self, rid: u32, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let off = self.copy(data);
        self.event(&[EVENT_BODY, rid, off, data.len() as u32]);
    }

    pub fn end(&mut self, rid: u32) {
        self.event(&[EVENT_END, rid]);
    }

    pub fn abort(&mut self, rid: u32) {
        self.event(&[EVENT_ABORT, rid]);
    }

    /// `params`: spans into `path`, the upgrade request's path.
    #[allow(clippy::too_many_arguments)]
    pub fn ws_open(
        &mut self,
        id: u32,
        slot: u32,
        peer: Option<std::net::SocketAddr>,
        protocol: Option<usize>,
        route: u32,
        path: &[u8],
        params: &[(u32, u32)],
    ) {
        use std::io::Write;
        let off = self.bytes.len();
        if let Some(peer) = peer {
            let _ = write!(self.bytes, "{}", peer.ip());
        }
        let len = self.bytes.len() - off;
        let base = self.copy(path);
        let protocol = protocol.map_or(0, |i| i as u32 + 1);
        self.event(&[
            EVENT_WS_OPEN,
            id,
            slot,
            off as u32,
            len as u32,
            protocol,
            route,
            params.len() as u32,
        ]);
        for &(start, len) in params {
            self.meta.extend_from_slice(&[base + start, len]);
        }
    }

    pub fn ws_message(&mut self, id: u32, slot: u32, binary: bool, data: &[u8]) {
        let kind = if binary {
            WS_BINARY_MESSAGE
        } else if data.is_ascii() {
            WS_ASCII
        } else {
            WS_TEXT
        };
        let off = self.copy(data);
        self.event(&[EVENT_WS_MESSAGE, id, slot, kind, off, data.len() as u32]);
    }

    pub fn ws_close(&mut self, id: u32, slot: u32, code: u16, reason: &[u8]) {
        let off = self.copy(reason);
        self.event(&[
            EVENT_WS_CLOSE,
            id,
            slot,
            code as u32,
            off,
            reason.len() as u32,
        ]);
    }

    pub fn ws_drain(&mut self, id: u32, slot: u32, unsent: usize) {
        self.event(&[
            EVENT_WS_DRAIN,
            id,
            slot,
            unsent.min(u32::MAX as usize) as u32,
        ]);
    }

    pub fn drain(&mut self, rid: u32, slot: u32, unsent: usize) {
        self.event(&[EVENT_DRAIN, rid, slot, unsent.min(u32::MAX as usize) as u32]);
    }

    /// How many batches were handed over so far: a change tells that one went mid-turn.
    pub fn handed(&self) -> u64 {
        self.generation
    }

    /// The batch gathered so far, to hand over; give it back with `recycle` once handled.
    pub fn take(&mut self) -> Batch {
        self.generation += 1;
        self.taken_bytes = self.bytes.len();
        Batch {
            thread: self.thread,
            bytes: std::mem::take(&mut self.bytes),
            meta: std::mem::take(&mut self.meta),
        }
    }

    /// Starts the next batch in the vectors of the one handled, unless the handler kept
    /// them: no allocation per batch.
    pub fn recycle(&mut self, batch: Batch) {
        let Batch {
            mut bytes,
            mut meta,
            ..
        } = batch;
        if meta.capacity() == 0 || meta.capacity() * 4 > REUSED_CAPACITY {
            meta = Vec::with_capacity(64);
        }
        meta.clear();
        meta.push(self.thread as u32);
        self.meta = meta;
        if bytes.capacity() == 0 && self.taken_bytes >= BATCH_SOFT_LIMIT {
            // The handler kept the bytes of a full batch (handed over in its own memory): the
            // next is likely as large, and growing to it by doubling would copy it four times.
            // Under glibc's mmap threshold (128 KiB), so it comes from the heap.
            self.bytes = Vec::with_capacity(BATCH_SOFT_LIMIT + BATCH_SOFT_LIMIT / 2);
        } else if bytes.capacity() <= REUSED_CAPACITY {
            bytes.clear();
            self.bytes = bytes;
        }
    }
}

/// One event of a batch, decoded: what a Rust handler reads (the JS side decodes the same
/// layout lazily in lib/request.ts).
#[derive(Debug)]
pub enum Event<'a> {
    Request(RequestView<'a>),
    Body {
        rid: u32,
        data: &'a [u8],
    },
    End {
        rid: u32,
    },
    Abort {
        rid: u32,
    },
    WsOpen {
        id: u32,
        slot: u32,
        peer: &'a [u8],
        protocol: u32,
    },
    WsMessage {
        id: u32,
        binary: bool,
        data: &'a [u8],
    },
    WsClose {
        id: u32,
        code: u16,
        reason: &'a [u8],
    },
    WsDrain {
        id: u32,
        unsent: u32,
    },
    Drain {
        rid: u32,
        unsent: u32,
    },
}

/// A request event: spans resolved against the batch's bytes.
#[derive(Debug)]
pub struct RequestView<'a> {
    pub to: super::RequestRef,
    pub route: u32,
    pub flags: u32,
    pub method: &'a [u8],
    /// Path and query, as sent.
    pub target: &'a [u8],
    pub path_len: usize,
    /// Header names (lower-cased) and values, and route params, as `u32` spans into `bytes`.
    words: &'a [u32],
    header_count: usize,
    bytes: &'a [u8],
}

impl<'a> RequestView<'a> {
    pub fn path(&self) -> &'a [u8] {
        &self.target[..self.path_len]
    }

    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.words[..self.header_count * 4]
            .chunks_exact(4)
            .map(|w| (span(self.bytes, w[0], w[1]), span(self.bytes, w[2], w[3])))
    }

    /// A header by lower-case name (the first, if several).
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Route params in the order of the route's names.
    pub fn params(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.words[self.header_count * 4..]
            .chunks_exact(2)
            .map(|w| span(self.bytes, w[0], w[1]))
    }
}

fn span(bytes: &[u8], off: u32, len: u32) -> &[u8] {
    &bytes[off as usize..(off + len) as usize]
}

impl Batch {
    /// The batch's events in order.
    pub fn events(&self) -> Events<'_> {
        Events { batch: self, at: 1 }
    }
}

pub struct Events<'a> {
    batch: &'a Batch,
    at: usize,
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        let m = &self.batch.meta;
        let b = &self.batch.bytes;
        let i = self.at;
        if i >= m.len() {
            return None;
        }
        let (event, words) = match m[i] {
            EVENT_REQUEST => {
                let (headers, params) = (m[i + 10] as usize, m[i + 11] as usize);
                let spans = 12 + headers * 4 + params * 2;
                let words = spans + if m[i + 4] & FLAG_PEER != 0 { 2 } else { 0 };
                let view = RequestView {
                    to: super::RequestRef {
                        thread: self.batch.thread,
                        slot: m[i + 2],
                        rid: m[i + 1],
                    },
                    route: m[i + 3],
                    flags: m[i + 4],
                    method: span(b, m[i + 5], m[i + 6]),
                    target: span(b, m[i + 7], m[i + 8]),
                    path_len: m[i + 9] as usize,
                    words: &m[i + 12..i + spans],
                    header_count: headers,
                    bytes: b,
                };
                (Event::Request(view), words)
            }
            EVENT_BODY => (
                Event::Body {
                    rid: m[i + 1],
                    data: span(b, m[i + 2], m[i + 3]),
                },
                4,
            ),
            EVENT_END => (Event::End { rid: m[i + 1] }, 2),
            EVENT_ABORT => (Event::Abort { rid: m[i + 1] }, 2),
            EVENT_WS_OPEN => (
                Event::WsOpen {
                    id: m[i + 1],
                    slot: m[i + 2],
                    peer: span(b, m[i + 3], m[i + 4]),
                    protocol: m[i + 5],
                },
                8 + 2 * m[i + 7] as usize,
            ),
            EVENT_WS_MESSAGE => (
                Event::WsMessage {
                    id: m[i + 1],
                    binary: m[i + 3] == WS_BINARY_MESSAGE,
                    data: span(b, m[i + 4], m[i + 5]),
                },
                6,
            ),
            EVENT_WS_CLOSE => (
                Event::WsClose {
                    id: m[i + 1],
                    code: m[i + 3] as u16,
                    reason: span(b, m[i + 4], m[i + 5]),
                },
                6,
            ),
            EVENT_WS_DRAIN => (
                Event::WsDrain {
                    id: m[i + 1],
                    unsent: m[i + 3],
                },
                4,
            ),
            EVENT_DRAIN => (
                Event::Drain {
                    rid: m[i + 1],
                    unsent: m[i + 3],
                },
                4,
            ),
            _ => return None,
        };
        self.at = i + words;
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::request::{parse_head, HeadLimits, Parse};

    #[test]
    fn a_full_batch_whose_bytes_the_handler_kept_starts_the_next_at_full_size() {
        let mut b = BatchBuilder::new(0);
        b.ws_message(1, 2, true, &vec![7u8; BATCH_SOFT_LIMIT]);
        assert!(b.is_full());
        let mut batch = b.take();
        let kept = std::mem::take(&mut batch.bytes); // the inline driver's own-memory hand-over
        assert_eq!(kept.len(), BATCH_SOFT_LIMIT);
        b.recycle(batch);
        assert!(
            b.bytes.capacity() >= BATCH_SOFT_LIMIT,
            "no doubling up to the next full batch"
        );
        assert!(
            b.bytes.capacity() < 128 * 1024,
            "under glibc's mmap threshold"
        );
        // A small batch kept by the handler (the threads driver keeps every one) does not.
        b.ws_message(1, 2, true, b"small");
        let mut batch = b.take();
        batch.bytes = Vec::new();
        b.recycle(batch);
        assert_eq!(b.bytes.capacity(), 0);
        // A batch handed back is reused as it was.
        b.ws_message(1, 2, true, b"again");
        let batch = b.take();
        let capacity = batch.bytes.capacity();
        b.recycle(batch);
        assert_eq!(b.bytes.capacity(), capacity);
        assert!(b.is_empty());
    }

    #[test]
    fn events_decode_what_the_builder_wrote() {
        let input =
            b"POST /users/42?q=1 HTTP/1.1\r\nHost: x\r\nX-Thing: Yes\r\nContent-Length: 3\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_head(input, &mut head, &HeadLimits::new(100, 16384, 8192)),
            Ok(Parse::Complete)
        ));
        let mut b = BatchBuilder::new(3);
        b.request(7, 9, 2, input, &head, &[(7, 2)], 0, None);
        b.body(7, b"abc");
        b.end(7);
        b.abort(8);
        let batch = b.take();
        let events: Vec<Event> = batch.events().collect();
        assert_eq!(events.len(), 4);
        let Event::Request(req) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (req.to.thread, req.to.slot, req.to.rid, req.route),
            (3, 9, 7, 2)
        );
        assert_eq!(
            (req.method, req.target, req.path()),
            (&b"POST"[..], &b"/users/42?q=1"[..], &b"/users/42"[..])
        );
        assert_eq!(req.flags & FLAG_HAS_BODY, FLAG_HAS_BODY);
        assert_eq!(
            req.header(b"x-thing"),
            Some(&b"Yes"[..]),
            "names lower-cased, values as sent"
        );
        assert_eq!(req.params().collect::<Vec<_>>(), vec![&b"42"[..]]);
        assert!(matches!(
            events[1],
            Event::Body {
                rid: 7,
                data: b"abc"
            }
        ));
        assert!(matches!(events[2], Event::End { rid: 7 }));
        assert!(matches!(events[3], Event::Abort { rid: 8 }));
    }

    #[test]
    fn requests_made_of_parts_decode_alike() {
        let mut b = BatchBuilder::new(1);
        let headers: [(&[u8], &[u8]); 2] = [(b"host", b"example.com"), (b"accept", b"*/*")];
        b.request_parts(
            5,
            3,
            1,
            FLAG_HTTP2 | FLAG_HAS_BODY,
            b"PUT",
            b"/files/a.txt?v=2",
            12,
            headers.into_iter(),
            &[(7, 5)],
            None,
        );
        let batch = b.take();
        let Some(Event::Request(req)) = batch.events().next() else {
            panic!()
        };
        assert_eq!(
            (req.to.slot, req.to.rid, req.route, req.flags),
            (3, 5, 1, FLAG_HTTP2 | FLAG_HAS_BODY)
        );
        assert_eq!(
            (req.method, req.target, req.path()),
            (&b"PUT"[..], &b"/files/a.txt?v=2"[..], &b"/files/a.txt"[..])
        );
        assert_eq!(req.header(b"host"), Some(&b"example.com"[..]));
        assert_eq!(req.headers().count(), 2);
        assert_eq!(req.params().collect::<Vec<_>>(), vec![&b"a.txt"[..]]);
    }

    #[test]
    fn a_request_with_its_peer_keeps_its_params_and_the_next_event() {
        let input = b"GET /users/42 HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut head = RequestHead::new();
        assert!(matches!(
            parse_head(input, &mut head, &HeadLimits::new(100, 16384, 8192)),
            Ok(Parse::Complete)
        ));
        let mut b = BatchBuilder::new(0);
        let peer = "127.0.0.1".parse().ok();
        b.request(7, 9, 2, input, &head, &[(7, 2)], 0, peer);
        b.end(7);
        let batch = b.take();
        let events: Vec<Event> = batch.events().collect();
        assert_eq!(events.len(), 2, "{events:?}");
        let Event::Request(req) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(req.flags & FLAG_PEER, FLAG_PEER);
        assert_eq!(req.params().collect::<Vec<_>>(), vec![&b"42"[..]]);
        let at = batch.meta.len() - 2 - 2;
        let (off, len) = (batch.meta[at] as usize, batch.meta[at + 1] as usize);
        assert_eq!(&batch.bytes[off..off + len], b"127.0.0.1");
        assert!(matches!(events[1], Event::End { rid: 7 }));
    }

    #[test]
    fn addresses_are_written_as_the_standard_library_writes_them() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.250.255",
            "127.0.0.1",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = text.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
    }
}
