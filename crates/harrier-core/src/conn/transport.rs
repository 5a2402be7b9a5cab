//! The transport under every protocol: the socket through the backend, the bytes read and
//! not yet consumed, the output queue (bytes, then file spans), write accounting, lingering.
//! A protocol never touches the socket: it is handed input and appends output here.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::event_loop::Ctx;
use crate::engine::io::Socket;
use crate::engine::limits::IpState;
use crate::tls::session::TlsSession;

/// How long a closing connection may keep sending before it is dropped; reading what it
/// sends meanwhile keeps the kernel from answering with a reset that would eat our output.
const LINGER: Duration = Duration::from_secs(2);
/// A file sent over TLS is read this much at a time (four records).
const FILE_PIECE: u64 = 64 * 1024;

/* What the thread's pool keeps: output buffers are not grown past it (`append`). */
const SEGMENT: usize = crate::engine::pool::MAX_POOLED_CAPACITY;

/* Output this big is offered to the socket from the caller's memory (`send_parts`), not
copied into the output first: the copy would cost more than the system call it saves. */
const WRITE_THROUGH: usize = 16 * 1024;

/// Output that follows the write buffer, in order: bytes, or a span of a file sent from the
/// file itself (sendfile on Linux, chunked reads elsewhere) so that it is never held whole.
pub(crate) enum Out {
    Bytes(Vec<u8>),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Bytes(b) => b.len(),
            Out::File { len, .. } => *len as usize,
        }
    }
}

/// What a flush achieved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything went to the kernel.
    All,
    /// The socket takes no more for now; the rest waits for writability.
    Blocked,
    /// The socket broke.
    Broken,
}

pub(crate) struct Transport {
    pub sock: Socket,
    /// TLS over the socket, on a TLS listener: input is decrypted before the protocol sees
    /// it, output encrypted as it is written.
    tls: Option<Box<TlsSession>>,
    /// The connection's key in its thread's table.
    pub slot: u32,
    /// The client address's limits, when per-address limits are on.
    pub ip: Option<Arc<IpState>>,
    /// Read and not yet consumed by the protocol; empty (no allocation) whenever a read ends
    /// on a boundary the protocol could use whole.
    pub rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Output after `wbuf` (files and what was queued after them); usually empty.
    queue: VecDeque<Out>,
    /// Output to write before the connection is shut.
    pub close_after_flush: bool,
    /// Set once the write side is shut; the connection is dropped at EOF or at this instant.
    lingering_until: Option<Instant>,
    /// Has output not yet offered to the socket.
    pub dirty: bool,
    /// The last read that brought bytes (or the accept).
    pub last_read: Instant,
    /// The last write that took bytes (or the accept).
    pub last_write: Instant,
    /// Since when output has waited on a socket that takes none of it.
    write_blocked_since: Option<Instant>,
    /// The client's address, once asked for (the access log).
    peer: Option<Option<std::net::IpAddr>>,
}

impl Transport {
    pub fn new(
        sock: Socket,
        slot: u32,
        now: Instant,
        ip: Option<Arc<IpState>>,
        tls: Option<Box<TlsSession>>,
    ) -> Transport {
        Transport {
            sock,
            tls,
            slot,
            ip,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            queue: VecDeque::new(),
            close_after_flush: false,
            lingering_until: None,
            dirty: false,
            last_read: now,
            last_write: now,
            write_blocked_since: None,
            peer: None,
        }
    }

    /// The client's address as the accept gave it: the socket need not be asked.
    pub fn knows_peer(&mut self, ip: std::net::IpAddr) {
        self.peer = Some(Some(ip));
    }

    /// The client's address (asked of the socket once).
    pub fn peer_ip(&mut self, ctx: &Ctx) -> Option<std::net::IpAddr> {
        *self
            .peer
            .get_or_insert_with(|| self.sock.peer_addr(&ctx.io).map(|a| a.ip()))
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.rbuf.capacity()
            + self.wbuf.capacity()
            + self.queue.capacity() * std::mem::size_of::<Out>()
    }

    /// Bytes queued and not yet taken by the kernel.
    pub fn unsent(&self) -> usize {
        self.wbuf.len() - self.wpos + self.queue.iter().map(Out::len).sum::<usize>()
    }

    pub fn has_no_output(&self) -> bool {
        self.wpos >= self.wbuf.len()
            && self.queue.is_empty()
            && !self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// `FLAG_SECURE` for requests over TLS.
    pub fn secure_flag(&self) -> u32 {
        if self.tls.is_some() {
            crate::engine::batch::FLAG_SECURE
        } else {
            0
        }
    }

    /// A TLS handshake still unfinished `limit` after the accept.
    pub fn handshake_overdue(&self, now: Instant, limit: Duration) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.handshake_overdue(now, limit))
    }

    /// The protocol agreed on by ALPN, once a TLS handshake is done.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tls.as_ref().and_then(|t| t.alpn())
    }

    pub fn is_lingering(&self) -> bool {
        self.lingering_until.is_some()
    }

    pub fn linger_expired(&self, now: Instant) -> bool {
        self.lingering_until.is_some_and(|t| now >= t)
    }

    /// Whether output has waited longer than `limit` on a socket that takes none of it.
    pub fn write_timed_out(&self, now: Instant, limit: Duration) -> bool {
        self.write_blocked_since
            .is_some_and(|since| !limit.is_zero() && now.saturating_duration_since(since) >= limit)
    }

    /// Reads into `into`; also says whether the socket has nothing more for now (edge-
    /// triggered polling then tells when it has). `Ok((0, _))` is the end of the stream.
    pub fn read(&mut self, ctx: &mut Ctx, into: &mut [u8]) -> io::Result<(usize, bool)> {
        let Some(tls) = self.tls.as_mut() else {
            let n = self.sock.read(&mut ctx.io, into)?;
            ctx.stats().bytes_in(n);
            // A read that did not fill the room it had drained the socket.
            return Ok((n, n < into.len()));
        };
        let mut wire = crate::tls::session::Wire(0);
        let read = tls.read(
            &mut self.sock,
            &mut ctx.io,
            &mut ctx.cipher,
            into,
            &mut wire,
        );
        ctx.stats().bytes_in(wire.0);
        // Handshake messages (or an alert) to answer with.
        self.dirty |= tls.wants_write();
        read.map(|plain| (plain.n, plain.drained))
    }

    /// Reads, appending to `rbuf`; as `read`.
    pub fn read_more(&mut self, ctx: &mut Ctx) -> io::Result<(usize, bool)> {
        self.rbuf.reserve(16 * 1024);
        let len = self.rbuf.len();
        let cap = self.rbuf.capacity();
        self.rbuf.resize(cap, 0);
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let r = self.read(ctx, &mut rbuf[len..]);
        rbuf.truncate(len + r.as_ref().map_or(0, |(n, _)| *n));
        self.rbuf = rbuf;
        r
    }

    /// The buffer to append the next output to: the write buffer, or the end of the queue
    /// behind a file being sent. Give it back with `put_out`.
    pub fn take_out(&mut self, ctx: &mut Ctx) -> Vec<u8> {
        if self.queue.is_empty() {
            if self.wbuf.capacity() == 0 {
                self.wbuf = ctx.pool.get();
            }
            std::mem::take(&mut self.wbuf)
        } else if let Some(Out::Bytes(_)) = self.queue.back() {
            let Some(Out::Bytes(b)) = self.queue.pop_back() else {
                unreachable!()
            };
            b
        } else {
            ctx.pool.get()
        }
    }

    pub fn put_out(&mut self, out: Vec<u8>) {
        if self.queue.is_empty() {
            self.wbuf = out;
        } else if !out.is_empty() {
            self.queue.push_back(Out::Bytes(out));
        }
        self.dirty = true;
    }

    /// Appends bytes to the output.
    pub fn push(&mut self, ctx: &mut Ctx, bytes: &[u8]) {
        self.append(ctx, bytes.len(), |out, _| out.extend_from_slice(bytes));
    }

    /// Appends `parts` to the output. Large ones (`WRITE_THROUGH` and more: a streamed
    /// chunk) are offered to the socket first from where they lie when nothing waits before
    /// them (plaintext on a readiness backend), not copied into the output just to be
    /// written from there.
    pub fn send_parts(&mut self, ctx: &mut Ctx, parts: &[&[u8]]) {
        let total = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut taken = if total >= WRITE_THROUGH {
            self.write_through(ctx, parts)
        } else {
            0
        };
        let rest = total - taken;
        if rest == 0 {
            // Flushed all the same: what follows a flush (drains reported, the next answer
            // started) follows this write too.
            self.dirty = true;
            return;
        }
        self.append(ctx, rest, |out, _| {
            for part in parts {
                if taken >= part.len() {
                    taken -= part.len();
                    continue;
                }
                out.extend_from_slice(&part[taken..]);
                taken = 0;
            }
        });
    }

    /// The bytes of `parts` the socket took at once (0 if anything is queued before them,
    /// over TLS, on a completion backend, or when the socket takes none: a broken socket
    /// is found by the flush that follows).
    fn write_through(&mut self, ctx: &mut Ctx, parts: &[&[u8]]) -> usize {
        if self.tls.is_some() || !self.has_no_output() || self.lingering_until.is_some() {
            return 0;
        }
        let mut slices = [io::IoSlice::new(&[]); 4];
        let n = parts.len().min(slices.len());
        for (slice, part) in slices.iter_mut().zip(&parts[..n]) {
            *slice = io::IoSlice::new(part);
        }
        match self.sock.write_now(&slices[..n]) {
            Some(Ok(n)) if n > 0 => {
                ctx.stats().bytes_out(n);
                self.last_write = ctx.now;
                n
            }
            _ => 0,
        }
    }

    /// Appends what `write` writes (about `more` bytes) to the output: in its last buffer,
    /// or in a new one queued after it when that buffer would grow past `SEGMENT`. Large
    /// output (a turn of big messages or chunks) is then a row of pooled buffers, not one
    /// that grows by copying itself and is freed, too big to pool, once written.
    pub fn append(
        &mut self,
        ctx: &mut Ctx,
        more: usize,
        write: impl FnOnce(&mut Vec<u8>, &mut Ctx),
    ) {
        let last = match self.queue.back() {
            None => self.wbuf.len(),
            Some(Out::Bytes(b)) => b.len(),
            Some(Out::File { .. }) => 0,
        };
        if last > 0 && last + more > SEGMENT {
            let mut fresh = ctx.pool.get();
            write(&mut fresh, ctx);
            self.queue.push_back(Out::Bytes(fresh));
            self.dirty = true;
            return;
        }
        let mut out = self.take_out(ctx);
        write(&mut out, ctx);
        self.put_out(out);
    }

    /// Appends output that follows what is queued (file spans, held-back bytes).
    pub fn queue_after(&mut self, rest: impl IntoIterator<Item = Out>) {
        self.queue.extend(rest);
        self.dirty = true;
    }

    /// Writes what is queued, as far as the socket takes it.
    pub fn flush(&mut self, ctx: &mut Ctx) -> Flushed {
        if self.tls.is_some() {
            return self.flush_tls(ctx);
        }
        self.dirty = false;
        let mut progressed = false;
        loop {
            while self.wpos < self.wbuf.len() {
                // A head followed by a file is held back for the file's first bytes: one
                // segment, as with TCP_CORK, rather than a small one then the file.
                let more = matches!(self.queue.front(), Some(Out::File { .. }));
                match self.sock.write(&mut ctx.io, &self.wbuf[self.wpos..], more) {
                    Ok(0) => return Flushed::Broken,
                    Ok(n) => {
                        self.wpos += n;
                        progressed = true;
                        ctx.stats().bytes_out(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return self.write_blocked(ctx, progressed)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Flushed::Broken,
                }
            }
            self.wpos = 0;
            self.wbuf.clear();
            match self.queue.pop_front() {
                None => break,
                Some(Out::Bytes(b)) => {
                    let old = std::mem::replace(&mut self.wbuf, b);
                    ctx.pool.put(old);
                }
                Some(Out::File {
                    file,
                    mut offset,
                    mut len,
                }) => {
                    let start = offset;
                    match self.sock.send_file(
                        &mut ctx.io,
                        &file,
                        &mut offset,
                        &mut len,
                        &mut self.wbuf,
                    ) {
                        Ok(sent) => {
                            // What the kernel took from the file itself; what was read into
                            // the (empty) write buffer instead is counted when written.
                            ctx.stats().bytes_out(
                                ((offset - start) as usize).saturating_sub(self.wbuf.len()),
                            );
                            progressed |= sent;
                            if len > 0 {
                                self.queue.push_front(Out::File { file, offset, len });
                                if self.wbuf.is_empty() {
                                    return self.write_blocked(ctx, progressed);
                                }
                            }
                        }
                        // The file shrank or broke: the promised length cannot be kept.
                        Err(_) => return Flushed::Broken,
                    }
                }
            }
        }
        self.all_flushed(ctx, progressed)
    }

    /// `flush` over TLS: the output is encrypted as the socket takes it (rustls holds 64 KiB
    /// of records at most), files read into the write buffer a piece at a time (no
    /// sendfile: the bytes must pass through the cipher).
    fn flush_tls(&mut self, ctx: &mut Ctx) -> Flushed {
        self.dirty = false;
        let Some(tls) = self.tls.as_mut() else {
            return Flushed::Broken;
        };
        let mut progressed = false;
        loop {
            match tls.send(&mut self.sock, &mut ctx.io, &mut ctx.gather) {
                Ok(sent) if sent.all => {
                    ctx.stats().bytes_out(sent.bytes);
                    progressed |= sent.bytes > 0;
                }
                Ok(sent) => {
                    ctx.stats().bytes_out(sent.bytes);
                    return self.write_blocked(ctx, progressed || sent.bytes > 0);
                }
                Err(_) => return Flushed::Broken,
            }
            if self.wpos < self.wbuf.len() {
                let n = tls.write_plain(&self.wbuf[self.wpos..]);
                if n == 0 {
                    // Before the handshake ends rustls holds what it is given; it has all it takes.
                    return self.write_blocked(ctx, progressed);
                }
                self.wpos += n;
                continue;
            }
            self.wpos = 0;
            self.wbuf.clear();
            match self.queue.pop_front() {
                None => break,
                Some(Out::Bytes(b)) => {
                    let old = std::mem::replace(&mut self.wbuf, b);
                    ctx.pool.put(old);
                }
                Some(Out::File { file, offset, len }) => {
                    let piece = len.min(FILE_PIECE) as usize;
                    self.wbuf.resize(piece, 0);
                    match crate::statics::read_at(&file, &mut self.wbuf, offset) {
                        Ok(n) if n > 0 => {
                            self.wbuf.truncate(n);
                            if (n as u64) < len {
                                self.queue.push_front(Out::File {
                                    file,
                                    offset: offset + n as u64,
                                    len: len - n as u64,
                                });
                            }
                        }
                        // The file shrank or broke: the promised length cannot be kept.
                        _ => return Flushed::Broken,
                    }
                }
            }
        }
        self.all_flushed(ctx, progressed)
    }

    fn all_flushed(&mut self, ctx: &Ctx, progressed: bool) -> Flushed {
        if progressed {
            self.last_write = ctx.now;
        }
        self.write_blocked_since = None;
        self.wpos = 0;
        self.wbuf.clear();
        Flushed::All
    }

    fn write_blocked(&mut self, ctx: &Ctx, progressed: bool) -> Flushed {
        if progressed || self.write_blocked_since.is_none() {
            self.write_blocked_since = Some(ctx.now);
        }
        if progressed {
            self.last_write = ctx.now;
        }
        Flushed::Blocked
    }

    /// Gives the write buffer back to the pool once everything is written: an idle
    /// connection keeps no buffer.
    pub fn release_output(&mut self, ctx: &mut Ctx) {
        if self.has_no_output() {
            ctx.pool.put(std::mem::take(&mut self.wbuf));
        }
    }

    /// Gives the input buffer back to the pool once it is used up.
    pub fn release_input(&mut self, ctx: &mut Ctx) {
        if self.rbuf.is_empty() {
            ctx.pool.put(std::mem::take(&mut self.rbuf));
        }
    }

    /// Shuts the write side and waits (briefly) for the client to close its side. `Closed`
    /// when the socket is gone or the client has closed already.
    pub fn linger(&mut self, ctx: &mut Ctx) -> Drained {
        if self.lingering_until.is_none() {
            if let Some(tls) = self.tls.as_mut() {
                // Says the answer is whole (a truncation attack looks like a bare FIN); the
                // write side is shut only once it is out, when the socket next takes output.
                tls.close_notify();
                match tls.send(&mut self.sock, &mut ctx.io, &mut ctx.gather) {
                    Ok(sent) if !sent.all => {
                        ctx.stats().bytes_out(sent.bytes);
                        return Drained::Pending;
                    }
                    Ok(sent) => ctx.stats().bytes_out(sent.bytes),
                    Err(_) => return Drained::Eof,
                }
            }
            if self.sock.shutdown_write(&mut ctx.io).is_err() {
                return Drained::Eof;
            }
            self.lingering_until = Some(ctx.now + LINGER);
        }
        self.discard_input(ctx)
    }

    /// Before the connection is dropped: a TLS client is told (close_notify), as far as the
    /// socket takes it now.
    pub fn say_goodbye(&mut self, ctx: &mut Ctx) {
        if let Some(tls) = self.tls.as_mut().filter(|t| !t.is_handshaking()) {
            tls.close_notify();
            if let Ok(sent) = tls.send(&mut self.sock, &mut ctx.io, &mut ctx.gather) {
                ctx.stats().bytes_out(sent.bytes);
            }
        }
    }

    /// Reads and drops what the client sends, until it has no more or closes.
    pub fn discard_input(&mut self, ctx: &mut Ctx) -> Drained {
        loop {
            match self.sock.read(&mut ctx.io, &mut ctx.scratch) {
                Ok(0) => return Drained::Eof,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Drained::Eof,
            }
        }
    }

    /// Drops every buffer (the connection is closing).
    pub fn release_all(&mut self, ctx: &mut Ctx) {
        ctx.pool.put(std::mem::take(&mut self.wbuf));
        ctx.pool.put(std::mem::take(&mut self.rbuf));
        self.queue.clear();
        if let Some(tls) = self.tls.as_mut() {
            tls.release();
        }
    }
}

/// What reading-and-dropping found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The client has more to say later.
    Pending,
    /// The client closed (or the socket broke).
    Eof,
}
