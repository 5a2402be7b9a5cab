//! The I/O backends: what moves bytes between sockets and the engine. The protocol code
//! (connection.rs, http1/) is the same for both; a backend only accepts, reads, writes,
//! sends files and reports which connections have something to say.
//!
//! - `poll`: mio, readiness (epoll on Linux, kqueue on macOS and the BSDs).
//! - `uring`: io_uring on Linux: completions, with received data in buffers the kernel picks
//!   from a shared pool (an idle connection holds none) and file spans read by the ring.
//!
//! Both present the same readiness-style surface to a connection: `read` gives what has
//! arrived or `WouldBlock`, `write` takes bytes or says `WouldBlock` until the socket can take
//! more; a completion backend keeps an operation outstanding behind that surface.

mod poll;
#[cfg(target_os = "linux")]
mod uring;

use std::fs::File;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which backend a server is asked to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring where the kernel allows it, else the readiness backend (with one log line).
    Auto,
    /// mio: epoll, kqueue.
    #[default]
    Poll,
    /// io_uring; starting fails where it cannot work.
    Uring,
}

impl Backend {
    pub fn parse(name: &str) -> Option<Backend> {
        match name {
            "auto" => Some(Backend::Auto),
            "epoll" | "kqueue" | "poll" => Some(Backend::Poll),
            "uring" | "io_uring" => Some(Backend::Uring),
            _ => None,
        }
    }
}

/// The name of the readiness backend on this platform.
pub const POLL_NAME: &str = if cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "solaris"
)) {
    "epoll"
} else if cfg!(windows) {
    "iocp"
} else {
    "kqueue"
};

/// What a wait reported.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ready {
    /// Connections wait to be accepted.
    Listener,
    Conn {
        key: usize,
        readable: bool,
        writable: bool,
    },
}

/// Asks whether io_uring can run here and picks the backend for `asked`. Says why when
/// `Auto` falls back; an error when `Uring` cannot be had.
pub(crate) fn choose(asked: Backend) -> io::Result<Backend> {
    match asked {
        Backend::Poll => Ok(Backend::Poll),
        Backend::Uring => match uring_refusal() {
            None => Ok(Backend::Uring),
            Some(why) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring cannot be used here: {why}"),
            )),
        },
        Backend::Auto => match uring_refusal() {
            None => Ok(Backend::Uring),
            Some(why) => {
                eprintln!("harrier: io_uring unavailable ({why}); using {POLL_NAME}");
                Ok(Backend::Poll)
            }
        },
    }
}

#[cfg(target_os = "linux")]
fn uring_refusal() -> Option<String> {
    uring::refusal()
}

#[cfg(not(target_os = "linux"))]
fn uring_refusal() -> Option<String> {
    Some("io_uring is Linux-only".into())
}

/// One I/O thread's backend.
pub(crate) enum Io {
    Poll(poll::PollIo),
    #[cfg(target_os = "linux")]
    Uring(uring::UringIo),
}

/// Wakes an I/O thread blocked in `Io::wait`, from any thread.
pub(crate) enum Waker {
    Poll(mio::Waker),
    #[cfg(target_os = "linux")]
    Event(std::os::fd::OwnedFd),
}

impl Waker {
    pub fn wake(&self) {
        match self {
            Waker::Poll(w) => {
                let _ = w.wake();
            }
            #[cfg(target_os = "linux")]
            Waker::Event(fd) => {
                use std::os::fd::AsRawFd;
                let one = 1u64;
                // EAGAIN means the counter is already non-zero: the thread will wake anyway.
                unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
    }
}

/// A connection just accepted, not yet registered.
pub(crate) enum Fresh {
    /// With the client's address when `accept` gave it (not for a connection handed over).
    Poll(mio::net::TcpStream, Option<std::net::SocketAddr>),
    #[cfg(target_os = "linux")]
    Uring(std::os::fd::OwnedFd),
}

impl Fresh {
    pub fn set_nodelay(&self) {
        let _ = match self {
            Fresh::Poll(s, _) => s.set_nodelay(true),
            #[cfg(target_os = "linux")]
            Fresh::Uring(fd) => socket2::SockRef::from(fd).set_tcp_nodelay(true),
        };
    }

    /// The client's address as `accept` gave it, without asking the socket.
    pub fn accepted_peer(&self) -> Option<IpAddr> {
        match self {
            Fresh::Poll(_, peer) => peer.map(|a| a.ip()),
            #[cfg(target_os = "linux")]
            Fresh::Uring(_) => None,
        }
    }

    /// The client's address (a syscall on io_uring: asked only when per-address limits are on).
    pub fn peer_ip(&self) -> Option<IpAddr> {
        match self {
            Fresh::Poll(_, Some(peer)) => Some(peer.ip()),
            Fresh::Poll(s, None) => s.peer_addr().ok().map(|a| a.ip()),
            #[cfg(target_os = "linux")]
            Fresh::Uring(fd) => socket2::SockRef::from(fd)
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.ip()),
        }
    }
}

/// A registered connection's socket, as its connection sees it.
pub(crate) enum Socket {
    Poll(mio::net::TcpStream),
    /// An entry in the ring's socket table.
    #[cfg(target_os = "linux")]
    Uring(u32),
}

impl Io {
    /// A backend of the kind chosen, with the thread's listener (if it has one) and the
    /// waker other threads use to rouse it.
    /// `waits_in_io`: the thread blocks in `wait` (threads driver), rather than in an event
    /// loop that watches `raw_fd` (inline driver).
    pub fn new(
        backend: Backend,
        listener: Option<TcpListener>,
        waits_in_io: bool,
    ) -> io::Result<(Io, Waker)> {
        match backend {
            Backend::Poll => poll::PollIo::new(listener).map(|(io, w)| (Io::Poll(io), w)),
            #[cfg(target_os = "linux")]
            Backend::Uring => {
                uring::UringIo::new(listener, waits_in_io).map(|(io, w)| (Io::Uring(io), w))
            }
            #[cfg(not(target_os = "linux"))]
            Backend::Uring => {
                let _ = waits_in_io;
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "io_uring is Linux-only",
                ))
            }
            Backend::Auto => unreachable!("the backend is chosen before threads are built"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Io::Poll(_) => POLL_NAME,
            #[cfg(target_os = "linux")]
            Io::Uring(_) => "uring",
        }
    }

    /// Waits up to `timeout` (zero: not at all) and lists what became ready. A completion
    /// backend submits what was queued first.
    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<Ready>) -> io::Result<()> {
        match self {
            Io::Poll(p) => p.wait(timeout, ready),
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.wait(timeout, ready),
        }
    }

    /// Hands queued operations to the kernel (the end of an inline turn: nothing else would).
    pub fn submit(&mut self) {
        match self {
            Io::Poll(_) => {}
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.submit(),
        }
    }

    /// Whether completions already wait (an inline turn takes them before returning to the
    /// event loop, rather than be woken again for them).
    pub fn has_completions(&mut self) -> bool {
        match self {
            Io::Poll(_) => false,
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.has_completions(),
        }
    }

    /// The next connection waiting to be accepted; `WouldBlock` when there is none.
    pub fn accept(&mut self) -> io::Result<Fresh> {
        match self {
            Io::Poll(p) => p.accept(),
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.accept(),
        }
    }

    /// A connection accepted elsewhere (by the listener gate, blocking), made this
    /// backend's.
    #[cfg(unix)]
    pub fn adopt(&self, fd: std::os::fd::OwnedFd) -> io::Result<Fresh> {
        match self {
            Io::Poll(_) => {
                let s = std::net::TcpStream::from(fd);
                s.set_nonblocking(true)?;
                Ok(Fresh::Poll(mio::net::TcpStream::from_std(s), None))
            }
            #[cfg(target_os = "linux")]
            Io::Uring(_) => Ok(Fresh::Uring(fd)),
        }
    }

    #[cfg(windows)]
    pub fn adopt(&self, fd: std::os::windows::io::OwnedSocket) -> io::Result<Fresh> {
        let s = std::net::TcpStream::from(fd);
        s.set_nonblocking(true)?;
        Ok(Fresh::Poll(mio::net::TcpStream::from_std(s), None))
    }

    /// Starts watching a connection under `key`.
    pub fn register(&mut self, fresh: Fresh, key: usize) -> io::Result<Socket> {
        match (self, fresh) {
            (Io::Poll(p), Fresh::Poll(s, _)) => p.register(s, key),
            #[cfg(target_os = "linux")]
            (Io::Uring(u), Fresh::Uring(fd)) => Ok(u.register(fd, key)),
            #[allow(unreachable_patterns)]
            _ => unreachable!("a socket of another backend"),
        }
    }

    /// Stops accepting: the listener is closed (connections the kernel completed meanwhile go
    /// to another thread's listener or are reset).
    pub fn close_listener(&mut self) {
        match self {
            Io::Poll(p) => p.close_listener(),
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.close_listener(),
        }
    }

    /// Nothing is outstanding in the kernel (a completion backend waits for its last
    /// operations before it may be dropped without losing output).
    pub fn quiet(&self) -> bool {
        match self {
            Io::Poll(_) => true,
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.quiet(),
        }
    }

    /// Sockets closed with output still on its way are given until `now + grace` to send it.
    pub fn maintain(&mut self, now: Instant) {
        match self {
            Io::Poll(_) => {}
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.maintain(now),
        }
    }

    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Io::Poll(p) => p.raw_fd(),
            #[cfg(target_os = "linux")]
            Io::Uring(u) => u.raw_fd(),
        }
    }
}

impl Socket {
    /// Reads what has arrived: `Ok(0)` at end of stream, `WouldBlock` when nothing waits.
    #[inline]
    pub fn read(&mut self, io: &mut Io, buf: &mut [u8]) -> io::Result<usize> {
        match (self, io) {
            (Socket::Poll(s), _) => io::Read::read(s, buf),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.read(*id, buf),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
    }

    /// Takes bytes to send: how many, or `WouldBlock` while the socket can take none. `more`:
    /// more follows at once (a file after its head): the kernel may hold these for it.
    #[inline]
    pub fn write(&mut self, io: &mut Io, buf: &[u8], more: bool) -> io::Result<usize> {
        match (self, io) {
            (Socket::Poll(s), _) => poll::write(s, buf, more),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.write(*id, buf, more),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
    }

    /// Sends from the caller's memory at once where the backend allows it: a readiness
    /// backend, whose caller's buffers are free again on return. `None` for a completion
    /// backend, which owns what it sends until the send completes.
    #[inline]
    pub fn write_now(&mut self, parts: &[io::IoSlice]) -> Option<io::Result<usize>> {
        match self {
            Socket::Poll(s) => Some(io::Write::write_vectored(s, parts)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Sends what it can of a file span, from the file itself where the backend can (the
    /// span's `offset` and `len` move by what was taken); returns whether bytes moved. Where
    /// the file must pass through memory, a chunk may be put in `wbuf` (empty on entry) for
    /// the caller to write.
    pub fn send_file(
        &mut self,
        io: &mut Io,
        file: &Arc<File>,
        offset: &mut u64,
        len: &mut u64,
        wbuf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        match (self, io) {
            (Socket::Poll(s), _) => poll::send_file(s, file, offset, len, wbuf),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.send_file(*id, file, offset, len),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
    }

    /// The client's address (a syscall: asked once per WebSocket, not per request).
    pub fn peer_addr(&self, io: &Io) -> Option<std::net::SocketAddr> {
        match (self, io) {
            (Socket::Poll(s), _) => s.peer_addr().ok(),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.peer_addr(*id),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Shuts the write side once everything taken was sent.
    pub fn shutdown_write(&mut self, io: &mut Io) -> io::Result<()> {
        match (self, io) {
            (Socket::Poll(s), _) => s.shutdown(std::net::Shutdown::Write),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.shutdown_write(*id),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
    }

    /// Stops watching the socket and closes it (on io_uring, once output already taken is
    /// sent and no operation holds it).
    pub fn close(self, io: &mut Io) {
        match (self, io) {
            // Closing the descriptor takes it out of the epoll set (it is never
            // duplicated): no EPOLL_CTL_DEL first, a system call per connection saved.
            (Socket::Poll(s), _) => drop(s),
            #[cfg(target_os = "linux")]
            (Socket::Uring(id), Io::Uring(u)) => u.close(id),
            #[allow(unreachable_patterns)]
            _ => unreachable!(),
        }
    }
}
