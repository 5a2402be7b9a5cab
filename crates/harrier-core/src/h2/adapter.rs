//! The bytes between the transport and h2: an in-memory pipe behind tokio's `AsyncRead` and
//! `AsyncWrite`, and the waker that tells the engine a connection has work.
//!
//! h2 owns its I/O object, so the pipe is shared (`Rc`) between the h2 connection and the
//! engine's side of it. Everything happens on the connection's I/O thread: no lock.
//! - Read: what the transport handed over and h2 has not read yet; `Pending` when empty (h2
//!   is polled again when more arrives).
//! - Write: appends to the transport's output buffer, lent to the pipe for one drive; past
//!   the drive's room (the write high-water mark, less what the transport still holds)
//!   `Pending`, and h2 keeps its frames (and stops reading) until the socket takes output.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Set by h2 (through the waker) when the connection must be polled again: a stream handle
/// queued a frame, capacity was assigned, a blocked write may go on.
#[derive(Default)]
pub(crate) struct Woken(AtomicBool);

impl Woken {
    /// Whether it was woken since the last call; clears the mark.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.set();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set();
    }
}

/// A connection's waker and its mark.
pub(crate) fn waker() -> (Arc<Woken>, Waker) {
    let woken = Arc::new(Woken::default());
    (woken.clone(), Waker::from(woken))
}

#[derive(Default)]
pub(crate) struct PipeState {
    /// Handed over by the transport; `input[read..]` is not read by h2 yet.
    input: Vec<u8>,
    read: usize,
    /// The transport's output buffer while a drive lends it; empty between drives.
    out: Vec<u8>,
    /// Bytes the output may still take in this drive.
    room: usize,
    /// A write was refused for want of room: h2 waits for a wake.
    blocked: bool,
}

/// The engine's end of the pipe.
#[derive(Clone, Default)]
pub(crate) struct Pipe(Rc<RefCell<PipeState>>);

impl Pipe {
    /// Bytes from the client, read by h2 at its next poll.
    pub fn feed(&self, bytes: &[u8]) {
        let mut s = self.0.borrow_mut();
        if s.read == s.input.len() {
            s.input.clear();
            s.read = 0;
        } else if s.read > 0 && s.read * 2 >= s.input.len() {
            let read = s.read;
            s.input.drain(..read);
            s.read = 0;
        }
        s.input.extend_from_slice(bytes);
    }

    /// Bytes handed over and not read by h2 yet.
    pub fn unread(&self) -> usize {
        let s = self.0.borrow();
        s.input.len() - s.read
    }

    /// Gives back the input buffer's memory once it is all read.
    pub fn trim(&self) {
        let mut s = self.0.borrow_mut();
        if s.read == s.input.len() && s.input.capacity() > 0 {
            s.input = Vec::new();
            s.read = 0;
        }
    }

    /// Lends the transport's output buffer for one drive; `room`: what it may take.
    pub fn lend(&self, out: Vec<u8>, room: usize) {
        let mut s = self.0.borrow_mut();
        s.out = out;
        s.room = room;
        s.blocked = false;
    }

    /// The output buffer back, with what h2 wrote; and whether h2 wanted to write more.
    pub fn take_back(&self) -> (Vec<u8>, bool) {
        let mut s = self.0.borrow_mut();
        (std::mem::take(&mut s.out), s.blocked)
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let s = self.0.borrow();
        s.input.capacity() + s.out.capacity()
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        let available = s.input.len() - s.read;
        if available == 0 {
            // The engine polls again when bytes arrive: no waker to keep.
            return Poll::Pending;
        }
        let n = available.min(buf.remaining());
        let from = s.read;
        buf.put_slice(&s.input[from..from + n]);
        s.read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        if s.room == 0 {
            // Woken by the engine once the socket took output (see `H2Conn::flushed`).
            s.blocked = true;
            return Poll::Pending;
        }
        let n = buf.len().min(s.room);
        s.out.extend_from_slice(&buf[..n]);
        s.room -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The transport writes at the end of the turn.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_read(pipe: &mut Pipe, into: &mut [u8]) -> Poll<usize> {
        let (_, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        let mut buf = ReadBuf::new(into);
        match Pin::new(&mut *pipe).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(buf.filled().len()),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write(pipe: &mut Pipe, bytes: &[u8]) -> Poll<usize> {
        let (_, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut *pipe).poll_write(&mut cx, bytes) {
            Poll::Ready(Ok(n)) => Poll::Ready(n),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => Poll::Pending,
        }
    }

    #[test]
    fn reads_what_was_fed_then_waits() {
        let mut pipe = Pipe::default();
        let mut buf = [0u8; 4];
        assert_eq!(poll_read(&mut pipe, &mut buf), Poll::Pending);
        pipe.feed(b"abcdef");
        assert_eq!(poll_read(&mut pipe, &mut buf), Poll::Ready(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(pipe.unread(), 2);
        pipe.feed(b"gh");
        assert_eq!(poll_read(&mut pipe, &mut buf), Poll::Ready(4));
        assert_eq!(&buf, b"efgh");
        assert_eq!(poll_read(&mut pipe, &mut buf), Poll::Pending);
        pipe.trim();
        assert_eq!(pipe.heap_bytes(), 0);
    }

    #[test]
    fn writes_up_to_the_room_then_blocks() {
        let mut pipe = Pipe::default();
        pipe.lend(b"x".to_vec(), 5);
        assert_eq!(poll_write(&mut pipe, b"abc"), Poll::Ready(3));
        assert_eq!(poll_write(&mut pipe, b"defg"), Poll::Ready(2));
        assert_eq!(poll_write(&mut pipe, b"g"), Poll::Pending);
        let (out, blocked) = pipe.take_back();
        assert_eq!((&out[..], blocked), (&b"xabcde"[..], true));
        pipe.lend(Vec::new(), 10);
        assert_eq!(poll_write(&mut pipe, b"fg"), Poll::Ready(2));
        assert_eq!(pipe.take_back(), (b"fg".to_vec(), false));
    }

    #[test]
    fn the_waker_marks() {
        let (woken, waker) = waker();
        assert!(!woken.take());
        waker.wake_by_ref();
        assert!(woken.is_set());
        assert!(woken.take());
        assert!(!woken.take());
    }
}
