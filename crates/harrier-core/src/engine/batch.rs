//! The compact view in which requests cross to the handler: one byte buffer and one `u32`
//! array per batch, holding every event one wake of an I/O thread produced. Nothing is
//! encoded per field; the receiver decodes lazily from offsets.
//!
//! `meta[0]` is the I/O thread's index; then events follow, each starting with its kind:
//!
//! | kind | words after the kind |
//! | --- | --- |
//! | `REQUEST` | rid, slot, route, flags, method off/len, target off/len, path len, header count, param count, then per header name off/len, value off/len (names lower-cased), then per param off/len (into `bytes`) |
//! | `BODY` | rid, off, len |
//! | `END` | rid (the body is complete) |
//! | `ABORT` | rid (the client went away, or the engine answered for the handler) |

use crate::http1::request::{RequestHead, Span};

pub const EVENT_REQUEST: u32 = 1;
pub const EVENT_BODY: u32 = 2;
pub const EVENT_END: u32 = 3;
pub const EVENT_ABORT: u32 = 4;

pub const FLAG_HTTP10: u32 = 1;
pub const FLAG_HAS_BODY: u32 = 2;

/// One batch of events from one I/O thread. The handler owns it: the bytes stay valid for
/// as long as it keeps them, whatever the engine reads next.
pub struct Batch {
    pub thread: u8,
    pub bytes: Vec<u8>,
    pub meta: Vec<u32>,
}

/// Past this many body bytes a batch is handed over at once rather than growing further.
pub(crate) const BATCH_SOFT_LIMIT: usize = 1 << 20;

pub(crate) struct BatchBuilder {
    thread: u8,
    bytes: Vec<u8>,
    meta: Vec<u32>,
    /// Counts batches handed over, so that a mark knows whether it still applies.
    generation: u64,
}

/// Where a batch stood before some work, to undo what that work added if it failed halfway.
#[derive(Clone, Copy)]
pub(crate) struct BatchMark {
    generation: u64,
    meta: usize,
    bytes: usize,
}

impl BatchBuilder {
    pub fn new(thread: u8) -> BatchBuilder {
        BatchBuilder { thread, bytes: Vec::new(), meta: vec![thread as u32], generation: 0 }
    }

    pub fn mark(&self) -> BatchMark {
        BatchMark { generation: self.generation, meta: self.meta.len(), bytes: self.bytes.len() }
    }

    /// Drops every event added since `mark` (all of this batch, if it was started since).
    pub fn rollback(&mut self, mark: BatchMark) {
        let (meta, bytes) = if mark.generation == self.generation { (mark.meta, mark.bytes) } else { (1, 0) };
        self.meta.truncate(meta.max(1));
        self.bytes.truncate(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.meta.len() == 1
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
    pub fn request(&mut self, rid: u32, slot: u32, route: u32, input: &[u8], head: &RequestHead, params: &[(u32, u32)]) {
        // The head is copied whole, so every span keeps its offset relative to `base`.
        let base = self.bytes.len() as u32;
        let head_bytes = &input[..head.len];
        self.bytes.extend_from_slice(head_bytes);
        let mut flags = 0;
        if head.http10 {
            flags |= FLAG_HTTP10;
        }
        if head.body != crate::http1::request::BodyFraming::None {
            flags |= FLAG_HAS_BODY;
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
            self.bytes[(base + start) as usize..(base + start + len) as usize].make_ascii_lowercase();
            self.meta.extend_from_slice(&[base + start, len, base + value.start, value.len]);
        }
        for &(start, len) in params {
            self.meta.extend_from_slice(&[path_off + start, len]);
        }
    }

    pub fn body(&mut self, rid: u32, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let off = self.copy(data);
        self.meta.extend_from_slice(&[EVENT_BODY, rid, off, data.len() as u32]);
    }

    pub fn end(&mut self, rid: u32) {
        self.meta.extend_from_slice(&[EVENT_END, rid]);
    }

    pub fn abort(&mut self, rid: u32) {
        self.meta.extend_from_slice(&[EVENT_ABORT, rid]);
    }

    pub fn take(&mut self) -> Batch {
        let cap = self.meta.capacity();
        let meta = std::mem::replace(&mut self.meta, Vec::with_capacity(cap));
        self.meta.push(self.thread as u32);
        self.generation += 1;
        Batch { thread: self.thread, bytes: std::mem::take(&mut self.bytes), meta }
    }
}
