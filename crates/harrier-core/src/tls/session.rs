//! One connection's TLS: rustls as a byte transformer between the socket and the protocol.
//! Ciphertext is read by the transport (either backend) and handed to rustls; plaintext comes
//! out for the protocol. The protocol's output is handed to rustls, and the records it makes
//! are written by the transport. rustls never sees the socket.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::{ServerConfig, ServerConnection};

use crate::engine::io::{Io, Socket};

/// Records written in one go: rustls hands out one buffer per record; writing them one by one
/// would cost a system call each.
const GATHER: usize = 64 * 1024;

pub(crate) struct TlsSession {
    conn: ServerConnection,
    /// Ciphertext read and not yet taken by rustls: it takes more only as its plaintext is
    /// read out (16 KiB at most waits inside it). Empty, without allocation, almost always.
    backlog: Vec<u8>,
    backlog_pos: usize,
    /// The client will send nothing more (TCP FIN, or its close_notify).
    eof: bool,
    /// The connection was accepted then: a handshake must finish within the header timeout.
    began: Instant,
    /// close_notify is queued (or sent).
    notified: bool,
}

/// What the socket still owes after a read.
pub(crate) struct Plain {
    /// Plaintext bytes put into the caller's buffer.
    pub n: usize,
    /// The socket was read until it had no more and nothing waits in the session: with
    /// edge-triggered polling, nothing more comes until the next readiness.
    pub drained: bool,
}

/// Ciphertext bytes read from the socket by the last `read`, for the figures.
pub(crate) struct Wire(pub usize);

impl TlsSession {
    pub fn new(config: &Arc<ServerConfig>, now: Instant) -> io::Result<TlsSession> {
        let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(TlsSession {
            conn,
            backlog: Vec::new(),
            backlog_pos: 0,
            eof: false,
            began: now,
            notified: false,
        })
    }

    pub fn handshake_overdue(&self, now: Instant, limit: Duration) -> bool {
        !limit.is_zero()
            && self.conn.is_handshaking()
            && now.saturating_duration_since(self.began) >= limit
    }

    /// The protocol the client and the server agreed on by ALPN, once the handshake is done.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Records waiting for the socket (handshake messages, alerts, encrypted output).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Reads plaintext into `into`: what the session holds, then from the socket until `into`
    /// is full or the socket has no more. `n == 0` with `drained` is the end of the stream;
    /// `WouldBlock` means nothing came. A record that fails (garbage, plaintext sent to a TLS
    /// port, a bad handshake) is an `InvalidData` error, after the alert rustls made is sent.
    pub fn read(
        &mut self,
        sock: &mut Socket,
        io: &mut Io,
        cipher: &mut [u8],
        into: &mut [u8],
        wire: &mut Wire,
    ) -> io::Result<Plain> {
        let mut filled = 0;
        loop {
            filled += self.take_plaintext(&mut into[filled..])?;
            if filled == into.len() {
                return Ok(Plain {
                    n: filled,
                    drained: false,
                });
            }
            if self.eof {
                // Plaintext first; the end of the stream on the next call. Bytes after a
                // close_notify are dropped.
                self.release();
                return Ok(Plain {
                    n: filled,
                    drained: filled == 0,
                });
            }
            if self.backlog_pos < self.backlog.len() {
                let mut backlog = std::mem::take(&mut self.backlog);
                let used = self.feed(sock, io, &backlog[self.backlog_pos..]);
                self.backlog_pos += used?;
                if self.backlog_pos == backlog.len() {
                    backlog.clear();
                    self.backlog_pos = 0;
                }
                self.backlog = backlog;
                continue;
            }
            match sock.read(io, cipher) {
                Ok(0) => {
                    self.eof = true;
                    // Tells rustls the stream ended (a close without close_notify).
                    let _ = self.conn.read_tls(&mut io::empty());
                }
                Ok(n) => {
                    wire.0 += n;
                    let used = self.feed(sock, io, &cipher[..n])?;
                    if used < n {
                        self.backlog.extend_from_slice(&cipher[used..n]);
                    }
                    if n < cipher.len() {
                        // A short read emptied the socket: what it brought is all there is.
                        filled += self.take_plaintext(&mut into[filled..])?;
                        if filled == into.len() || !self.backlog.is_empty() || self.eof {
                            continue;
                        }
                        if filled == 0 {
                            return Err(io::ErrorKind::WouldBlock.into());
                        }
                        return Ok(Plain {
                            n: filled,
                            drained: true,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => {
                    return Ok(Plain {
                        n: filled,
                        drained: true,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn take_plaintext(&mut self, into: &mut [u8]) -> io::Result<usize> {
        if into.is_empty() {
            return Ok(0);
        }
        match self.conn.reader().read(into) {
            Ok(0) => {
                // close_notify.
                self.eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.eof = true;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Hands ciphertext to rustls until it takes no more (its plaintext buffer is full);
    /// returns how much it took.
    fn feed(&mut self, sock: &mut Socket, io: &mut Io, mut cipher: &[u8]) -> io::Result<usize> {
        let len = cipher.len();
        while !cipher.is_empty() {
            match self.conn.read_tls(&mut cipher) {
                Ok(0) => {
                    // After the client's close_notify: what follows is dropped.
                    self.eof = true;
                    return Ok(len);
                }
                Ok(_) => {}
                Err(e) => {
                    // Its plaintext buffer is full: the rest waits until that is read out.
                    // Anything else (a record too large to buffer) ends the connection.
                    if self
                        .conn
                        .process_new_packets()
                        .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
                    {
                        break;
                    }
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            if let Err(e) = self.conn.process_new_packets() {
                // rustls queued the alert that says why; the connection ends after it.
                let _ = self.send(sock, io, &mut Vec::new());
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(len - cipher.len())
    }

    /// Encrypts as much of `plain` as rustls takes now (it holds 64 KiB of records at most);
    /// returns how much.
    pub fn write_plain(&mut self, plain: &[u8]) -> usize {
        self.conn.writer().write(plain).unwrap_or(0)
    }

    /// Writes the records rustls holds, as far as the socket takes them; `gather` is a
    /// scratch buffer.
    pub fn send(
        &mut self,
        sock: &mut Socket,
        io: &mut Io,
        gather: &mut Vec<u8>,
    ) -> io::Result<Sent> {
        let mut out = SocketWriter {
            sock,
            io,
            gather,
            bytes: 0,
        };
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => out.bytes += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Sent {
                        all: false,
                        bytes: out.bytes,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Sent {
            all: true,
            bytes: out.bytes,
        })
    }

    /// Queues the close_notify alert (sent by the next `send`), once.
    pub fn close_notify(&mut self) {
        if !self.notified {
            self.notified = true;
            self.conn.send_close_notify();
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn release(&mut self) {
        self.backlog = Vec::new();
        self.backlog_pos = 0;
    }
}

/// What `send` achieved.
pub(crate) struct Sent {
    /// Every record went to the kernel.
    pub all: bool,
    /// Bytes that did.
    pub bytes: usize,
}

/// The socket as rustls' writer: several records are gathered into one write.
struct SocketWriter<'a> {
    sock: &'a mut Socket,
    io: &'a mut Io,
    gather: &'a mut Vec<u8>,
    bytes: usize,
}

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(self.io, buf, false)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut pieces = bufs.iter().map(|b| &**b).filter(|b| !b.is_empty());
        let Some(first) = pieces.next() else {
            return Ok(0);
        };
        let Some(second) = pieces.next() else {
            return self.sock.write(self.io, first, false);
        };
        self.gather.clear();
        self.gather.extend_from_slice(first);
        for piece in std::iter::once(second).chain(pieces) {
            if self.gather.len() + piece.len() > GATHER {
                break;
            }
            self.gather.extend_from_slice(piece);
        }
        let written = self.sock.write(self.io, self.gather, false);
        self.gather.clear();
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
