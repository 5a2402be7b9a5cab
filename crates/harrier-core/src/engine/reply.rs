//! Replies from the handler to the engine: a byte format that the JS side writes in one
//! buffer per flush and the I/O thread reads in place, and the inboxes that carry it. The
//! threads driver sends each flush through the inboxes (a copy, for another thread); the
//! inline driver's engine reads the ops where JS wrote them (`Handler::take_written`,
//! `InlineServer::apply`), and only a flush made while a turn is under way is copied.
//!
//! Every op starts with a 20-byte header, little-endian:
//! `u32 op_len` (whole op), `u8 kind`, `u8 thread`, `u16 status`, `u32 slot`, `u32 rid`,
//! `u32 header_count`. `FULL` and `HEAD` then carry `header_count` headers as
//! `u32 name_len, u32 value_len, name, value`; the rest of the op is body bytes
//! (`FULL`: the whole body; `CHUNK`, `END`: one piece of a streamed body; `HEAD`: nothing).
//!
//! `FILE` (`res.sendFile`) has the engine answer with a file, by the static-file rules: its
//! body is the file's path (UTF-8), a status other than 200 replaces the file answer's 200
//! (validators and ranges are then not applied), and its headers are of three
//! kinds by their name's first byte: `:name` an option (`:max-age` seconds in decimal,
//! `:immutable`, `:dotfiles` and `:precompressed` as `1`/`0`, `:index`), `<name` a request
//! header the answer depends on (`<range`, `<if-range`, `<if-none-match`,
//! `<if-modified-since`, `<accept-encoding`), anything else a response header to add.
//!
//! WebSocket ops name the socket by `slot` and `rid` (the id its `WS_OPEN` event gave):
//! - `UPGRADE` accepts the handshake of request `rid` (flagged `UPGRADE`): the engine sends
//!   the 101 it prepared and the connection speaks WebSocket from then on.
//! - `WS_SEND`: the body is one message; `status` holds `WS_BINARY`, `WS_COMPRESS`,
//!   `WS_WANT_DRAIN` (the sender saw the socket over its limit: report when it is not).
//! - `WS_CLOSE`: `status` the close code (0: drop the connection without a close frame),
//!   the body the reason.
//! - `WS_SUBSCRIBE`, `WS_UNSUBSCRIBE`: the body is the topic.
//! - `WS_PUBLISH`: one header whose name is the topic, the body the message, `status` as
//!   for `WS_SEND` in its low byte and, in its high byte, the thread of the socket named
//!   plus one (0: none); sent to every thread (`thread` = `ALL_THREADS`); the socket named,
//!   if any, is left out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::io::Waker;

pub const OP_FULL: u8 = 1;
pub const OP_HEAD: u8 = 2;
pub const OP_CHUNK: u8 = 3;
pub const OP_END: u8 = 4;
pub const OP_FILE: u8 = 5;
pub const OP_UPGRADE: u8 = 6;
pub const OP_WS_SEND: u8 = 7;
pub const OP_WS_CLOSE: u8 = 8;
pub const OP_WS_SUBSCRIBE: u8 = 9;
pub const OP_WS_UNSUBSCRIBE: u8 = 10;
pub const OP_WS_PUBLISH: u8 = 11;
/// The handler took body bytes of a request (the count, 4 bytes little-endian, as the body):
/// a connection held back for an unread body is read again.
pub const OP_CONSUMED: u8 = 12;

/// Milliseconds (4 bytes little-endian, as the body): the engine writes a comment line into
/// this event stream whenever it has been quiet that long (0: never; the engine still ends
/// the stream when a drain begins).
pub const OP_HEARTBEAT: u8 = 13;

/// In an `END`'s status: the body is cut short (`res.destroy()`): no last chunk, the
/// connection closes.
pub const END_ABORT: u16 = 1;

/// In a `CHUNK`'s status: the handler saw the response over its high-water mark and waits
/// for a `DRAIN` event.
pub const CHUNK_WANT_DRAIN: u16 = 1;

pub const WS_BINARY: u16 = 1;
pub const WS_COMPRESS: u16 = 2;
pub const WS_WANT_DRAIN: u16 = 4;

/// The `thread` of an op every I/O thread must apply (a publish).
pub const ALL_THREADS: u8 = 0xff;

const OP_HEADER_LEN: usize = 20;

/// One decoded op, borrowing from the buffer it was read from.
pub(crate) struct ReplyOp<'a> {
    pub kind: u8,
    pub thread: u8,
    pub status: u16,
    pub slot: u32,
    pub rid: u32,
    pub header_count: u32,
    /// The whole op, as written.
    pub bytes: &'a [u8],
    headers_and_body: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

impl<'a> ReplyOp<'a> {
    /// The headers, and the body after them; `None` if the op is malformed.
    pub fn split(&self) -> Option<(HeaderIter<'a>, &'a [u8])> {
        let mut pos = 0;
        let b = self.headers_and_body;
        for _ in 0..self.header_count {
            if b.len() < pos + 8 {
                return None;
            }
            let n = u32_at(b, pos) as usize + u32_at(b, pos + 4) as usize;
            pos = pos.checked_add(8 + n).filter(|&p| p <= b.len())?;
        }
        Some((HeaderIter { rest: &b[..pos] }, &b[pos..]))
    }

    /// A `HEARTBEAT` op's interval (its body: milliseconds, u32). 0 is no heartbeat, but the
    /// engine knows the stream (a drain ends it): `Duration::MAX`. `None` if malformed.
    pub fn heartbeat_every(&self) -> Option<std::time::Duration> {
        let (_, ms) = self.split()?;
        let ms = ms
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        Some(if ms == 0 {
            std::time::Duration::MAX
        } else {
            std::time::Duration::from_millis(u64::from(ms))
        })
    }
}

#[derive(Clone)]
pub(crate) struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 8 {
            return None;
        }
        let name_len = u32_at(self.rest, 0) as usize;
        let value_len = u32_at(self.rest, 4) as usize;
        let name = &self.rest[8..8 + name_len];
        let value = &self.rest[8 + name_len..8 + name_len + value_len];
        self.rest = &self.rest[8 + name_len + value_len..];
        Some((name, value))
    }
}

/// Reads ops one after another; stops at the first malformed one.
pub(crate) struct ReplyOps<'a> {
    rest: &'a [u8],
}

impl<'a> ReplyOps<'a> {
    pub fn new(buf: &'a [u8]) -> ReplyOps<'a> {
        ReplyOps { rest: buf }
    }
}

impl<'a> Iterator for ReplyOps<'a> {
    type Item = ReplyOp<'a>;
    fn next(&mut self) -> Option<ReplyOp<'a>> {
        let b = self.rest;
        if b.len() < OP_HEADER_LEN {
            return None;
        }
        let len = u32_at(b, 0) as usize;
        if len < OP_HEADER_LEN || len > b.len() {
            return None;
        }
        self.rest = &b[len..];
        Some(ReplyOp {
            kind: b[4],
            thread: b[5],
            status: u16::from_le_bytes([b[6], b[7]]),
            slot: u32_at(b, 8),
            rid: u32_at(b, 12),
            header_count: u32_at(b, 16),
            bytes: &b[..len],
            headers_and_body: &b[OP_HEADER_LEN..len],
        })
    }
}

/// Writes ops in the reply format; what a Rust handler (a test, a benchmark) uses.
#[derive(Default)]
pub struct ReplyWriter {
    pub buf: Vec<u8>,
}

impl ReplyWriter {
    fn op(
        &mut self,
        kind: u8,
        thread: u8,
        status: u16,
        slot: u32,
        rid: u32,
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&[kind, thread]);
        self.buf.extend_from_slice(&status.to_le_bytes());
        self.buf.extend_from_slice(&slot.to_le_bytes());
        self.buf.extend_from_slice(&rid.to_le_bytes());
        self.buf
            .extend_from_slice(&(headers.len() as u32).to_le_bytes());
        for (name, value) in headers {
            self.buf
                .extend_from_slice(&(name.len() as u32).to_le_bytes());
            self.buf
                .extend_from_slice(&(value.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(name);
            self.buf.extend_from_slice(value);
        }
        self.buf.extend_from_slice(body);
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    pub fn full(&mut self, to: RequestRef, status: u16, headers: &[(&[u8], &[u8])], body: &[u8]) {
        self.op(OP_FULL, to.thread, status, to.slot, to.rid, headers, body);
    }

    pub fn head(&mut self, to: RequestRef, status: u16, headers: &[(&[u8], &[u8])]) {
        self.op(OP_HEAD, to.thread, status, to.slot, to.rid, headers, b"");
    }

    pub fn chunk(&mut self, to: RequestRef, data: &[u8]) {
        self.op(OP_CHUNK, to.thread, 0, to.slot, to.rid, &[], data);
    }

    pub fn end(&mut self, to: RequestRef, data: &[u8]) {
        self.op(OP_END, to.thread, 0, to.slot, to.rid, &[], data);
    }

    /// The handler took `bytes` of request `to`'s body: past the high-water mark of unread
    /// body the engine stops reading the connection until the handler says so (HTTP/1.1), or
    /// opens the client's window by that much (HTTP/2).
    pub fn consumed(&mut self, to: RequestRef, bytes: u32) {
        self.op(
            OP_CONSUMED,
            to.thread,
            0,
            to.slot,
            to.rid,
            &[],
            &bytes.to_le_bytes(),
        );
    }

    /// Accepts the WebSocket handshake of request `to`.
    pub fn upgrade(&mut self, to: RequestRef) {
        self.op(OP_UPGRADE, to.thread, 0, to.slot, to.rid, &[], b"");
    }

    pub fn ws_send(&mut self, to: RequestRef, flags: u16, message: &[u8]) {
        self.op(OP_WS_SEND, to.thread, flags, to.slot, to.rid, &[], message);
    }

    pub fn ws_close(&mut self, to: RequestRef, code: u16, reason: &[u8]) {
        self.op(OP_WS_CLOSE, to.thread, code, to.slot, to.rid, &[], reason);
    }

    pub fn ws_subscribe(&mut self, to: RequestRef, topic: &[u8], on: bool) {
        self.op(
            if on {
                OP_WS_SUBSCRIBE
            } else {
                OP_WS_UNSUBSCRIBE
            },
            to.thread,
            0,
            to.slot,
            to.rid,
            &[],
            topic,
        );
    }

    /// To every subscriber of `topic`, but `except` (rid 0: none).
    pub fn ws_publish(
        &mut self,
        except: Option<RequestRef>,
        topic: &[u8],
        flags: u16,
        message: &[u8],
    ) {
        let (thread, slot, rid) =
            except.map_or((0, 0, 0), |r| (r.thread as u16 + 1, r.slot, r.rid));
        self.op(
            OP_WS_PUBLISH,
            ALL_THREADS,
            flags | thread << 8,
            slot,
            rid,
            &[(topic, b"")],
            message,
        );
    }

    /// Answers with the file at `path`; `headers` as the format above describes.
    pub fn file(&mut self, to: RequestRef, headers: &[(&[u8], &[u8])], path: &[u8]) {
        self.op(OP_FILE, to.thread, 0, to.slot, to.rid, headers, path);
    }
}

/// Names one request for a reply: the I/O thread, the connection's slot, the request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRef {
    pub thread: u8,
    pub slot: u32,
    pub rid: u32,
}

/// One I/O thread's inbox: ops appended by `Replier::send`, taken whole by the thread.
pub(crate) struct Inbox {
    ops: Mutex<Vec<u8>>,
    has_ops: AtomicBool,
    /// Connections the accept point handed to this thread (`Balance::Handoff`).
    arrivals: Mutex<Vec<std::net::TcpStream>>,
    has_arrivals: AtomicBool,
    /// Set while the thread blocks in poll: only then is a wake-up (a syscall) needed.
    sleeping: AtomicBool,
    waker: Waker,
}

impl Inbox {
    pub fn new(waker: Waker) -> Inbox {
        Inbox {
            ops: Mutex::new(Vec::new()),
            has_ops: AtomicBool::new(false),
            arrivals: Mutex::new(Vec::new()),
            has_arrivals: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            waker,
        }
    }

    fn push(&self, op: &[u8]) {
        self.ops.lock().unwrap().extend_from_slice(op);
    }

    fn notify(&self) {
        self.has_ops.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Ops from another engine (a publish in a port group): its thread may be the JS thread
    /// of another worker, driven by libuv, which never says it sleeps: always woken.
    pub(crate) fn push_from_afar(&self, op: &[u8]) {
        self.push(op);
        self.has_ops.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// A connection for this thread to serve, from the accept point. The thread may be the
    /// JS thread of a worker, driven by libuv, which never says it sleeps: always woken.
    pub(crate) fn hand(&self, stream: std::net::TcpStream) {
        self.arrivals.lock().unwrap().push(stream);
        self.has_arrivals.store(true, Ordering::SeqCst);
        // A thread about to block sees it and does not.
        self.has_ops.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// The connections handed to this thread since the last call.
    pub(crate) fn take_arrivals(&self) -> Vec<std::net::TcpStream> {
        if !self.has_arrivals.load(Ordering::Relaxed)
            || !self.has_arrivals.swap(false, Ordering::SeqCst)
        {
            return Vec::new();
        }
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }

    /// Swaps the pending ops into `into` (emptied first); false if there were none.
    pub fn take(&self, into: &mut Vec<u8>) -> bool {
        into.clear();
        if !self.has_ops.swap(false, Ordering::SeqCst) {
            return false;
        }
        std::mem::swap(&mut *self.ops.lock().unwrap(), into);
        !into.is_empty()
    }

    /// Marks the thread as about to block; returns false if ops arrived meanwhile.
    pub fn sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        !self.has_ops.load(Ordering::SeqCst)
    }

    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

/// Hands replies to the I/O threads. Cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Replier {
    pub(crate) inboxes: Arc<[Inbox]>,
    /// The other engines on this port, to which publishes go too.
    pub(crate) group: Option<Arc<super::group::PortGroup>>,
}

impl Replier {
    /// Routes every op in `ops` to its thread's inbox, then wakes each thread at most once.
    /// A run of ops for one thread goes in with one lock and one copy (with one I/O thread,
    /// the whole flush).
    pub fn send(&self, ops: &[u8]) {
        let mut touched = 0u64;
        let mut rest = ops;
        while rest.len() >= OP_HEADER_LEN {
            let thread = rest[5];
            let mut run = 0;
            while rest.len() - run >= OP_HEADER_LEN && rest[run + 5] == thread {
                let len = u32_at(rest, run) as usize;
                if len < OP_HEADER_LEN || len > rest.len() - run {
                    break;
                }
                run += len;
            }
            if run == 0 {
                break; // malformed: what follows is not read
            }
            if thread == ALL_THREADS {
                for (i, inbox) in self.inboxes.iter().enumerate() {
                    inbox.push(&rest[..run]);
                    touched |= 1 << (i % 64);
                }
                if let Some(group) = &self.group {
                    group.forward(&self.inboxes, &rest[..run]);
                }
            } else if let Some(inbox) = self.inboxes.get(thread as usize) {
                inbox.push(&rest[..run]);
                touched |= 1 << (thread % 64);
            }
            rest = &rest[run..];
        }
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if touched & (1 << (i % 64)) != 0 {
                inbox.notify();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let to = RequestRef {
            thread: 1,
            slot: 7,
            rid: 99,
        };
        let mut w = ReplyWriter::default();
        w.full(to, 201, &[(b"a", b"bc"), (b"x-long", b"value")], b"body");
        w.chunk(to, b"piece");
        let ops: Vec<_> = ReplyOps::new(&w.buf).collect();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].kind, ops[0].status, ops[0].slot, ops[0].rid),
            (OP_FULL, 201, 7, 99)
        );
        let (headers, body) = ops[0].split().unwrap();
        assert_eq!(
            headers.collect::<Vec<_>>(),
            vec![(&b"a"[..], &b"bc"[..]), (&b"x-long"[..], &b"value"[..])]
        );
        assert_eq!(body, b"body");
        assert_eq!(ops[1].split().unwrap().1, b"piece");
    }

    #[test]
    fn malformed_ops_stop_reading() {
        let mut w = ReplyWriter::default();
        w.full(
            RequestRef {
                thread: 0,
                slot: 0,
                rid: 0,
            },
            200,
            &[(b"a", b"b")],
            b"",
        );
        let mut bad = w.buf.clone();
        bad[0] = 200; // claims more bytes than there are
        assert_eq!(ReplyOps::new(&bad).count(), 0);
        let mut bad = w.buf.clone();
        bad[16] = 9; // claims more headers than there are
        assert!(ReplyOps::new(&bad).next().unwrap().split().is_none());
    }
}
