//! The readiness backend: a mio poll (epoll, kqueue) over the thread's listener, its waker
//! and its connections, each registered once, edge-triggered, for both directions.

use std::fs::File;
use std::io;
use std::net::TcpListener as StdListener;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::{Fresh, Ready, Socket, Waker};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

pub(crate) struct PollIo {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
}

impl PollIo {
    pub fn new(listener: Option<StdListener>) -> io::Result<(PollIo, Waker)> {
        let poll = Poll::new()?;
        let waker = Waker::Poll(mio::Waker::new(poll.registry(), WAKER)?);
        let mut listener = listener.map(TcpListener::from_std);
        if let Some(l) = listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        Ok((
            PollIo {
                poll,
                events: Events::with_capacity(1024),
                listener,
            },
            waker,
        ))
    }

    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<Ready>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            match event.token() {
                LISTENER => ready.push(Ready::Listener),
                WAKER => {}
                Token(key) => ready.push(Ready::Conn {
                    key,
                    readable: event.is_readable(),
                    writable: event.is_writable(),
                }),
            }
        }
        Ok(())
    }

    pub fn accept(&mut self) -> io::Result<Fresh> {
        match self.listener.as_ref() {
            Some(l) => l.accept().map(|(s, peer)| Fresh::Poll(s, Some(peer))),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    pub fn register(&mut self, mut sock: TcpStream, key: usize) -> io::Result<Socket> {
        // Edge-triggered, both directions, registered once: no re-arming per write.
        self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(Socket::Poll(sock))
    }

    pub fn close_listener(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }
}

/// A write, with `MSG_MORE` when more follows at once (Linux; elsewhere a plain write).
#[inline]
pub(crate) fn write(sock: &mut TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    if more {
        use std::os::fd::AsRawFd;
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        return if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
    }
    let _ = more;
    io::Write::write(sock, buf)
}

/// Sends what it can of a file span straight from the file with sendfile(2). Returns whether
/// bytes moved; `len` left over means the socket is full.
#[cfg(target_os = "linux")]
pub(crate) fn send_file(
    sock: &TcpStream,
    file: &File,
    offset: &mut u64,
    len: &mut u64,
    _wbuf: &mut Vec<u8>,
) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut sent = false;
    while *len > 0 {
        let mut off = *offset as libc::off_t;
        let count = (*len).min(1 << 30) as usize;
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(sent),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than announced",
            ));
        }
        *offset += n as u64;
        *len -= n as u64;
        sent = true;
    }
    Ok(sent)
}

/// Without sendfile: one chunk is read into `wbuf` (empty on entry) for the caller to write.
#[cfg(not(target_os = "linux"))]
pub(crate) fn send_file(
    _sock: &TcpStream,
    file: &File,
    offset: &mut u64,
    len: &mut u64,
    wbuf: &mut Vec<u8>,
) -> io::Result<bool> {
    use crate::statics;
    let chunk = statics::read_span(file, *offset, (*len).min(statics::INLINE_LIMIT))?;
    if chunk.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than announced",
        ));
    }
    *offset += chunk.len() as u64;
    *len -= chunk.len() as u64;
    wbuf.extend_from_slice(&chunk);
    Ok(false)
}
