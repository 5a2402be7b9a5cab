//! The io_uring backend: one ring per I/O thread. Each connection keeps one multishot
//! receive outstanding, whose buffers the kernel picks from a ring of buffers shared by the
//! thread (so an idle connection holds none; a connection that is not read holds at most
//! `MAX_HELD`), and at most one send; a file span is read by the ring in
//! chunks, the next chunk read while the last is sent. One `io_uring_enter` submits every
//! operation a turn queued and collects what completed.
//!
//! Every buffer an operation points to lives in this struct (heap storage that does not
//! move while the operation is outstanding); a socket the engine closes stays in the table,
//! unreadable, until its last operation completes.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::{Fresh, Ready, Socket, Waker};

/* 4096 entries: a turn over a few thousand busy connections submits in one call. */
const RING_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 4 * RING_ENTRIES;
/// Receive buffers shared by a thread's connections: only data not yet parsed holds one.
/// A power of two (the kernel's buffer ring).
const RECV_BUFFERS: u16 = 256;
/// Buffers a connection may hold unread before its receive is called off (a connection
/// paused for backpressure, a pipelining client): the rest waits in the kernel.
const MAX_HELD: usize = 2;
/* 16k: a pipelined burst or an upload chunk in one completion, 4 MiB a thread in all. */
const RECV_BUFFER_SIZE: usize = 16 * 1024;
const RECV_GROUP: u16 = 1;
/// A file is read this much at a time: two chunks per download at most (one being sent,
/// one being read), so many downloads of a large file never hold it whole.
const FILE_CHUNK: usize = 128 * 1024;
/// Send buffers kept for reuse, and the largest kept.
const MAX_SPARE: usize = 256;
const MAX_SPARE_CAPACITY: usize = 256 * 1024;
/* 1 MiB a write: a response larger than that is taken as the socket takes it, so that a
client that reads nothing is seen as such (the write timeout) and memory stays bounded; large
enough that a few sends fill a loopback socket's buffers. */
const MAX_WRITE: usize = 1024 * 1024;
/* 64k: a file span this small is read at once (from the page cache, as a cached copy would
be) and leaves with its head in one send; larger ones are read by the ring, chunk by chunk. */
const SMALL_FILE: u64 = 64 * 1024;
/// How long a closed connection's output already taken may take to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

// What a completion is for: the low byte of its user data (the socket id above it).
const RECV: u64 = 1;
const SEND: u64 = 2;
const FILE_READ: u64 = 3;
const ACCEPT: u64 = 4;
const WAKE: u64 = 5;
const CANCEL: u64 = 7;

/// io_uring_enter's flag to run deferred completion work and reap (the ABI's value).
const ENTER_GETEVENTS: u32 = 1;

fn tag(id: u32, kind: u64) -> u64 {
    (id as u64) << 8 | kind
}

/// Why io_uring cannot serve here, or `None` if it can: the ring is refused (seccomp in a
/// container, `kernel.io_uring_disabled`), or the kernel lacks an operation this backend uses.
pub(crate) fn refusal() -> Option<String> {
    static ANSWER: OnceLock<Option<String>> = OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

/// Runs on a thread of its own, which ends with it: a dropped ring interrupts every thread
/// that made or used it (see `Server::start`), and this one must not be the caller's.
fn probe() -> Option<String> {
    std::thread::Builder::new()
        .name("harrier-probe".into())
        .spawn(probe_here)
        .map_err(|e| format!("cannot start a thread: {e}"))
        .and_then(|t| t.join().map_err(|_| "the probe panicked".to_string()))
        .unwrap_or_else(Some)
}

fn probe_here() -> Option<String> {
    let ring = match IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => return Some(format!("io_uring_setup: {e}")),
    };
    if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_skip_cqe_on_success() {
        return Some("the kernel's io_uring is too old (Linux 6.0 or later is needed)".into());
    }
    let mut probe = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Some(format!("io_uring_register: {e}"));
    }
    let needed = [
        (opcode::Recv::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::Accept::CODE, "accept"),
        (opcode::Read::CODE, "read"),
        (opcode::AsyncCancel::CODE, "async_cancel"),
        // Multishot accept (5.19) and receive, buffer rings (6.0): send_zc (6.0) is the
        // probe-able mark of that age.
        (opcode::SendZc::CODE, "send_zc"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Some(format!(
                "the kernel's io_uring lacks {name} (Linux 6.0 or later is needed)"
            ));
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recv {
    Idle,
    Armed,
    /// Called off (too much held unread); armed again once read.
    Cancelling,
    /// The pool was empty: armed again once buffers come back.
    Starved,
}

/// The receive buffers and the ring through which they are given to the kernel: a buffer
/// given back is one entry written and the ring's tail moved, no system call.
struct BufRing {
    pool: Box<[u8]>,
    /// `RECV_BUFFERS` entries, page-aligned (mmap), shared with the kernel.
    entries: *mut types::BufRingEntry,
    tail: u16,
}

impl BufRing {
    fn new() -> io::Result<BufRing> {
        let size = RECV_BUFFERS as usize * std::mem::size_of::<types::BufRingEntry>();
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut ring = BufRing {
            pool: vec![0u8; RECV_BUFFERS as usize * RECV_BUFFER_SIZE].into_boxed_slice(),
            entries: mem.cast(),
            tail: 0,
        };
        for bid in 0..RECV_BUFFERS {
            ring.give(bid);
        }
        Ok(ring)
    }

    fn give(&mut self, bid: u16) {
        // SAFETY: the entry is inside the mapping; the kernel reads it only past the tail
        // published below.
        unsafe {
            let e = &mut *self.entries.add((self.tail & (RECV_BUFFERS - 1)) as usize);
            e.set_addr(self.pool.as_ptr().add(bid as usize * RECV_BUFFER_SIZE) as u64);
            e.set_len(RECV_BUFFER_SIZE as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail =
                types::BufRingEntry::tail(self.entries) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    fn bytes(&self, bid: u16, from: u32, to: u32) -> &[u8] {
        let start = bid as usize * RECV_BUFFER_SIZE;
        &self.pool[start + from as usize..start + to as usize]
    }
}

// SAFETY: the mapping is owned by the ring of one I/O thread and moves with it.
unsafe impl Send for BufRing {}

impl Drop for BufRing {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(
                self.entries.cast(),
                RECV_BUFFERS as usize * std::mem::size_of::<types::BufRingEntry>(),
            )
        };
    }
}

/// A file span being read by the ring for one socket.
struct FileRead {
    file: Arc<File>,
    /// Where the next chunk starts.
    offset: u64,
    buf: Vec<u8>,
    busy: bool,
    /// `buf` holds the chunk at `offset`.
    ready: bool,
    err: Option<io::Error>,
}

struct USock {
    fd: OwnedFd,
    /// The connection's key in the thread's connection table.
    key: usize,
    /// False once the engine closed it: it only waits for its operations to end.
    open: bool,
    /// Operations outstanding.
    ops: u8,
    recv: Recv,
    /// Received and not yet read, in order: (buffer id, read position, end).
    rx: VecDeque<(u16, u32, u32)>,
    eof: bool,
    rx_err: Option<i32>,
    tx: Vec<u8>,
    tx_pos: usize,
    tx_busy: bool,
    /// `tx` holds bytes not sent yet: a head waiting for the file that follows it.
    tx_held: bool,
    tx_err: Option<i32>,
    /// The write side is to be shut once `tx` is sent (or was).
    shut_wr: bool,
    file: Option<FileRead>,
}

impl USock {
    fn new(fd: OwnedFd, key: usize) -> USock {
        USock {
            fd,
            key,
            open: true,
            ops: 0,
            recv: Recv::Idle,
            rx: VecDeque::new(),
            eof: false,
            rx_err: None,
            tx: Vec::new(),
            tx_pos: 0,
            tx_busy: false,
            tx_held: false,
            tx_err: None,
            shut_wr: false,
            file: None,
        }
    }
}

pub(crate) struct UringIo {
    /// Made by the thread that serves it, its only submitter (`SINGLE_ISSUER`): a ring
    /// interrupts the threads that made or used it when it is dropped.
    ring: IoUring,
    socks: Slab<USock>,
    listener: Option<TcpListener>,
    /// The multishot accept is outstanding.
    accepting: bool,
    /// A listener being closed: kept until its accept is cancelled.
    closing_listener: Option<TcpListener>,
    accepted: VecDeque<OwnedFd>,
    wake_fd: OwnedFd,
    wake_buf: Box<u64>,
    bufs: BufRing,
    /// Buffers given back since the starved sockets were last armed.
    returned: usize,
    starved: Vec<u32>,
    spare: Vec<Vec<u8>>,
    /// Closed sockets still sending, with when to give up.
    retired: Vec<(u32, Instant)>,
    /// Completions taken but not handled yet (taken to make room when submitting failed).
    backlog: Vec<(u64, i32, u32)>,
}

impl UringIo {
    /// `waits_in_ring`: the thread blocks in the ring itself (the threads driver). Then
    /// completion work is deferred until it asks; otherwise (the inline driver, whose loop
    /// watches the ring's descriptor from epoll) work must run when it comes, for the
    /// descriptor to turn readable, but without interrupting the thread (`COOP_TASKRUN`).
    pub fn new(listener: Option<TcpListener>, waits_in_ring: bool) -> io::Result<(UringIo, Waker)> {
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize(CQ_ENTRIES)
            .setup_submit_all()
            .setup_single_issuer()
            .setup_taskrun_flag();
        if waits_in_ring {
            builder.setup_defer_taskrun();
        } else {
            builder.setup_coop_taskrun();
        }
        let ring = match builder.build(RING_ENTRIES) {
            Ok(ring) => ring,
            // Before 6.1: completion work interrupts the thread, as it always did.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .setup_submit_all()
                .build(RING_ENTRIES)?,
            Err(e) => return Err(e),
        };
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if wake < 0 {
            return Err(io::Error::last_os_error());
        }
        let wake_fd = unsafe { OwnedFd::from_raw_fd(wake) };
        let waker = Waker::Event(wake_fd.try_clone()?);
        let mut io = UringIo {
            ring,
            socks: Slab::new(),
            listener,
            accepting: false,
            closing_listener: None,
            accepted: VecDeque::new(),
            wake_fd,
            wake_buf: Box::new(0),
            bufs: BufRing::new()?,
            returned: 0,
            starved: Vec::new(),
            spare: Vec::new(),
            retired: Vec::new(),
            backlog: Vec::new(),
        };
        io.register_buffers()?;
        io.arm_wake();
        io.arm_accept();
        Ok((io, waker))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Queues one operation; when the queue is full, hands it to the kernel first.
    fn push(&mut self, sqe: squeue::Entry) {
        for _ in 0..64 {
            // SAFETY: what the entry points to (receive pool, send and file buffers, the wake
            // counter) is owned by this struct and outlives the operation (see the module doc).
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            if self.enter().is_err() {
                // The completion queue is full (EBUSY): take completions to make room.
                let mut cq = self.ring.completion();
                cq.sync();
                self.backlog
                    .extend(cq.map(|c| (c.user_data(), c.result(), c.flags())));
            }
        }
        // The ring takes nothing: the operation is lost, and its connection ends on its timers.
        eprintln!("harrier: io_uring refuses new operations; one was dropped");
    }

    /// Submits what is queued and, with deferred completion work, runs it (so that what
    /// completed shows in the queue), without waiting.
    fn enter(&mut self) -> io::Result<usize> {
        let queued = self.ring.submission().len() as u32;
        // With deferred or cooperative completion work, the kernel flags work waiting to run.
        let work = self.ring.submission().taskrun();
        if queued == 0 && !work {
            return Ok(0);
        }
        let flags = if work { ENTER_GETEVENTS } else { 0 };
        // SAFETY: no argument is passed.
        unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(queued, 0, flags, None)
        }
    }

    /// Shares the buffer ring with the kernel.
    fn register_buffers(&mut self) -> io::Result<()> {
        // SAFETY: the entries' mapping lives as long as this struct, after the ring (field
        // order: `ring` is dropped first).
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                self.bufs.entries as u64,
                RECV_BUFFERS,
                RECV_GROUP,
                0,
            )
        }
    }

    /// Completions wait to be taken (those of sends that finished as they were submitted).
    pub fn has_completions(&mut self) -> bool {
        !self.ring.completion().is_empty()
            || !self.backlog.is_empty()
            || self.ring.submission().taskrun()
    }

    /// The end of an inline turn: connections the pool ran dry on are armed again if buffers
    /// came back, and everything queued goes to the kernel.
    pub fn submit(&mut self) {
        self.arm_starved();
        let _ = self.enter();
    }

    pub fn wait(&mut self, timeout: Duration, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.arm_starved();
        let entered = if timeout.is_zero() {
            self.enter()
        } else {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        if let Err(e) = entered {
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => return Err(e),
            }
        }
        let mut done = std::mem::take(&mut self.backlog);
        done.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, res, flags) in &done {
            self.complete(data, res, flags, ready);
        }
        done.clear();
        if self.backlog.is_empty() {
            self.backlog = done;
        }
        Ok(())
    }

    fn complete(&mut self, data: u64, res: i32, flags: u32, ready: &mut Vec<Ready>) {
        let id = (data >> 8) as u32;
        match data & 0xff {
            RECV => self.on_recv(id, res, flags, ready),
            SEND => self.on_send(id, res, ready),
            FILE_READ => self.on_file_read(id, res, ready),
            ACCEPT => self.on_accept(res, flags, ready),
            WAKE if res >= 0 => self.arm_wake(),
            _ => {}
        }
    }

    fn on_recv(&mut self, id: u32, res: i32, flags: u32, ready: &mut Vec<Ready>) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some(s) = self.socks.get_mut(id as usize) else {
            if let Some(b) = bid {
                self.bufs.give(b);
                self.returned += 1;
            }
            return;
        };
        if !more {
            s.ops -= 1;
            s.recv = Recv::Idle;
        }
        if !s.open {
            if let Some(b) = bid {
                self.bufs.give(b);
                self.returned += 1;
            }
            self.release_if_done(id);
            return;
        }
        let key = s.key;
        if res > 0 {
            match bid {
                Some(b) => s.rx.push_back((b, 0, res as u32)),
                None => s.rx_err = Some(libc::EIO),
            }
            if s.rx.len() >= MAX_HELD && s.recv == Recv::Armed {
                // Enough held unread: the rest waits in the kernel until this is read.
                s.recv = Recv::Cancelling;
                let sqe = opcode::AsyncCancel::new(tag(id, RECV))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(CANCEL);
                self.push(sqe);
                ready.push(Ready::Conn {
                    key,
                    readable: true,
                    writable: false,
                });
                return;
            }
        } else if res == 0 {
            s.eof = true;
        } else if -res == libc::ENOBUFS {
            s.recv = Recv::Starved;
            self.starved.push(id);
            return;
        } else if -res != libc::ECANCELED && -res != libc::EINTR && -res != libc::EAGAIN {
            s.rx_err = Some(-res);
        }
        // A receive that ended (called off, interrupted, or stopped by the kernel) is armed
        // again unless enough is held unread, the stream ended, or it failed.
        if s.recv == Recv::Idle {
            self.arm_recv(id);
        }
        if res >= 0 || self.socks[id as usize].rx_err.is_some() {
            ready.push(Ready::Conn {
                key,
                readable: true,
                writable: false,
            });
        }
    }

    fn on_send(&mut self, id: u32, res: i32, ready: &mut Vec<Ready>) {
        let Some(s) = self.socks.get_mut(id as usize) else {
            return;
        };
        s.ops -= 1;
        s.tx_busy = false;
        if res <= 0 {
            s.tx_err = Some(if res == 0 { libc::EPIPE } else { -res });
        } else {
            s.tx_pos += res as usize;
            if s.tx_pos < s.tx.len() {
                // The socket took part: the rest goes at once, still ours to finish.
                self.send(id);
                return;
            }
            s.tx_pos = 0;
            let tx = std::mem::take(&mut s.tx);
            if s.shut_wr {
                unsafe { libc::shutdown(s.fd.as_raw_fd(), libc::SHUT_WR) };
            }
            self.keep_spare(tx);
        }
        self.report_writable(id, ready);
    }

    /// After a send or a file read completed: the connection may write again (or, closed,
    /// its entry may go).
    fn report_writable(&mut self, id: u32, ready: &mut Vec<Ready>) {
        let s = &self.socks[id as usize];
        if !s.open {
            self.release_if_done(id);
            return;
        }
        ready.push(Ready::Conn {
            key: s.key,
            readable: false,
            writable: true,
        });
    }

    fn on_file_read(&mut self, id: u32, res: i32, ready: &mut Vec<Ready>) {
        let Some(s) = self.socks.get_mut(id as usize) else {
            return;
        };
        s.ops -= 1;
        if let Some(f) = s.file.as_mut() {
            f.busy = false;
            if res < 0 {
                f.err = Some(io::Error::from_raw_os_error(-res));
            } else if res == 0 {
                f.err = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than announced",
                ));
            } else {
                // SAFETY: the kernel wrote `res` bytes into the chunk's spare capacity.
                unsafe { f.buf.set_len(res as usize) };
                f.ready = true;
            }
        }
        self.report_writable(id, ready);
    }

    fn on_accept(&mut self, res: i32, flags: u32, ready: &mut Vec<Ready>) {
        if res >= 0 {
            self.accepted
                .push_back(unsafe { OwnedFd::from_raw_fd(res) });
            ready.push(Ready::Listener);
        } else if -res != libc::ECANCELED && -res != libc::EINVAL && self.listener.is_some() {
            // (EINVAL: the listener gate shut the socket; the drain is about to close it.)
            // Out of descriptors, most often: the rest waits in the backlog; `maintain` re-arms.
            eprintln!(
                "harrier: accept failed: {}",
                io::Error::from_raw_os_error(-res)
            );
        }
        if !cqueue::more(flags) {
            self.accepting = false;
            if self.listener.is_none() {
                self.closing_listener = None;
            } else if res >= 0 {
                self.arm_accept();
            }
        }
    }

    fn arm_accept(&mut self) {
        let Some(l) = self.listener.as_ref() else {
            return;
        };
        if self.accepting {
            return;
        }
        let sqe = opcode::AcceptMulti::new(types::Fd(l.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(tag(0, ACCEPT));
        self.accepting = true;
        self.push(sqe);
    }

    fn arm_wake(&mut self) {
        let sqe = opcode::Read::new(
            types::Fd(self.wake_fd.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(WAKE);
        self.push(sqe);
    }

    fn arm_recv(&mut self, id: u32) {
        let s = &mut self.socks[id as usize];
        if !s.open || s.recv != Recv::Idle || s.rx.len() >= MAX_HELD || s.eof || s.rx_err.is_some()
        {
            return;
        }
        s.recv = Recv::Armed;
        s.ops += 1;
        // Multishot: armed once, it reports every arrival until called off or out of buffers.
        let sqe = opcode::RecvMulti::new(types::Fd(s.fd.as_raw_fd()), RECV_GROUP)
            .build()
            .user_data(tag(id, RECV));
        self.push(sqe);
    }

    /// Arms sockets that found the pool empty, as many as buffers came back.
    fn arm_starved(&mut self) {
        if self.starved.is_empty() || self.returned == 0 {
            return;
        }
        let n = self.returned.min(self.starved.len());
        self.returned = 0;
        let woken: Vec<u32> = self.starved.drain(..n).collect();
        for id in woken {
            if let Some(s) = self.socks.get_mut(id as usize) {
                if s.recv == Recv::Starved {
                    s.recv = Recv::Idle;
                    self.arm_recv(id);
                }
            }
        }
    }

    fn send(&mut self, id: u32) {
        let s = &mut self.socks[id as usize];
        let rest = &s.tx[s.tx_pos..];
        let sqe = opcode::Send::new(
            types::Fd(s.fd.as_raw_fd()),
            rest.as_ptr(),
            rest.len() as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(tag(id, SEND));
        s.tx_busy = true;
        s.ops += 1;
        self.push(sqe);
    }

    fn keep_spare(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0
            && buf.capacity() <= MAX_SPARE_CAPACITY
            && self.spare.len() < MAX_SPARE
        {
            buf.clear();
            self.spare.push(buf);
        }
    }

    pub fn accept(&mut self) -> io::Result<Fresh> {
        self.accepted
            .pop_front()
            .map(Fresh::Uring)
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }

    pub fn peer_addr(&self, id: u32) -> Option<std::net::SocketAddr> {
        let s = self.socks.get(id as usize)?;
        socket2::SockRef::from(&s.fd).peer_addr().ok()?.as_socket()
    }

    pub fn register(&mut self, fd: OwnedFd, key: usize) -> Socket {
        let id = self.socks.insert(USock::new(fd, key)) as u32;
        self.arm_recv(id);
        Socket::Uring(id)
    }

    /// Copies out what has arrived, as much as `buf` takes across the buffers held (a short
    /// read means none is left, as on a socket).
    pub fn read(&mut self, id: u32, buf: &mut [u8]) -> io::Result<usize> {
        let s = &mut self.socks[id as usize];
        let mut n = 0;
        while n < buf.len() {
            let Some((bid, pos, end)) = s.rx.front_mut() else {
                break;
            };
            let take = (buf.len() - n).min((*end - *pos) as usize);
            buf[n..n + take].copy_from_slice(self.bufs.bytes(*bid, *pos, *pos + take as u32));
            n += take;
            *pos += take as u32;
            if *pos == *end {
                let bid = *bid;
                s.rx.pop_front();
                self.bufs.give(bid);
                self.returned += 1;
            }
        }
        if n > 0 {
            if s.recv == Recv::Idle {
                self.arm_recv(id);
            }
            return Ok(n);
        }
        if s.eof {
            return Ok(0);
        }
        if let Some(e) = s.rx_err {
            return Err(io::Error::from_raw_os_error(e));
        }
        if s.recv == Recv::Idle {
            self.arm_recv(id);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// `more`: a file follows at once; the bytes are held to leave with its first chunk.
    pub fn write(&mut self, id: u32, buf: &[u8], more: bool) -> io::Result<usize> {
        let s = &mut self.socks[id as usize];
        if let Some(e) = s.tx_err {
            return Err(io::Error::from_raw_os_error(e));
        }
        if s.tx_busy {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if s.shut_wr {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if s.tx.capacity() == 0 {
            s.tx = self.spare.pop().unwrap_or_default();
        }
        let n = buf.len().min(MAX_WRITE.saturating_sub(s.tx.len()).max(1));
        s.tx.extend_from_slice(&buf[..n]);
        s.tx_pos = 0;
        if more && s.tx.len() < MAX_WRITE {
            s.tx_held = true;
        } else {
            s.tx_held = false;
            self.send(id);
        }
        Ok(n)
    }

    /// Hands the next chunk of the span to the socket when it is read and the socket is free,
    /// and starts reading the chunk after it meanwhile.
    pub fn send_file(
        &mut self,
        id: u32,
        file: &Arc<File>,
        offset: &mut u64,
        len: &mut u64,
    ) -> io::Result<bool> {
        let s = &mut self.socks[id as usize];
        if let Some(e) = s.tx_err {
            return Err(io::Error::from_raw_os_error(e));
        }
        if !s.tx_busy && s.file.is_none() && *len > 0 && *len <= SMALL_FILE {
            // Small: read now and sent with what is held (the head) in one send.
            if s.tx.capacity() == 0 {
                s.tx = self.spare.pop().unwrap_or_default();
            }
            let start = s.tx.len();
            s.tx.resize(start + *len as usize, 0);
            if let Err(e) = read_exact_at(file, &mut s.tx[start..], *offset) {
                s.tx.truncate(start);
                return Err(e);
            }
            *offset += *len;
            *len = 0;
            s.tx_held = false;
            s.tx_pos = 0;
            self.send(id);
            return Ok(true);
        }
        if s.tx_held {
            // A head held for a large file goes now; the file follows chunk by chunk.
            s.tx_held = false;
            self.send(id);
            return Ok(true);
        }
        let s = &mut self.socks[id as usize];
        let stale = s
            .file
            .as_ref()
            .is_some_and(|f| !f.busy && (!Arc::ptr_eq(&f.file, file) || f.offset != *offset));
        if stale || s.file.is_none() {
            let buf = s
                .file
                .take()
                .map(|f| f.buf)
                .unwrap_or_else(|| Vec::with_capacity(FILE_CHUNK));
            s.file = Some(FileRead {
                file: file.clone(),
                offset: *offset,
                buf,
                busy: false,
                ready: false,
                err: None,
            });
        }
        let f = s.file.as_mut().unwrap();
        if let Some(e) = f.err.take() {
            return Err(e);
        }
        let mut sent = false;
        if !s.tx_busy && f.ready && f.offset == *offset {
            let n = f.buf.len() as u64;
            let spare = self.spare.pop().unwrap_or_default();
            let chunk = std::mem::replace(&mut f.buf, spare);
            f.ready = false;
            f.offset += n;
            *offset += n;
            *len -= n;
            s.tx = chunk;
            s.tx_pos = 0;
            self.send(id);
            sent = true;
        }
        let s = &mut self.socks[id as usize];
        let f = s.file.as_mut().unwrap();
        if *len == 0 {
            if !f.busy {
                let f = s.file.take().unwrap();
                self.keep_spare(f.buf);
            }
        } else if !f.busy && !f.ready {
            let want = (*len).min(FILE_CHUNK as u64) as usize;
            f.buf.clear();
            f.buf.reserve(want);
            let sqe = opcode::Read::new(
                types::Fd(f.file.as_raw_fd()),
                f.buf.as_mut_ptr(),
                want as u32,
            )
            .offset(f.offset)
            .build()
            .user_data(tag(id, FILE_READ));
            f.busy = true;
            s.ops += 1;
            self.push(sqe);
        }
        Ok(sent)
    }

    pub fn shutdown_write(&mut self, id: u32) -> io::Result<()> {
        let s = &mut self.socks[id as usize];
        if s.shut_wr {
            return Ok(());
        }
        s.shut_wr = true;
        if s.tx_busy {
            return Ok(()); // done when the send completes
        }
        if unsafe { libc::shutdown(s.fd.as_raw_fd(), libc::SHUT_WR) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn close(&mut self, id: u32) {
        let s = &mut self.socks[id as usize];
        s.open = false;
        let (armed, sending) = (s.recv == Recv::Armed, s.tx_busy);
        for (bid, _, _) in std::mem::take(&mut s.rx) {
            self.bufs.give(bid);
            self.returned += 1;
        }
        if sending {
            // What the socket took is sent first (as the kernel would from its own buffer);
            // the receive is called off meanwhile.
            if armed {
                let sqe = opcode::AsyncCancel::new(tag(id, RECV))
                    .build()
                    .flags(squeue::Flags::SKIP_SUCCESS)
                    .user_data(CANCEL);
                self.push(sqe);
            }
            self.retired.push((id, Instant::now() + CLOSE_GRACE));
        } else {
            // The client sees the close now; the receive outstanding ends with it.
            unsafe { libc::shutdown(self.socks[id as usize].fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        self.release_if_done(id);
    }

    /// Frees a closed socket's entry (closing its descriptor) once no operation holds it.
    fn release_if_done(&mut self, id: u32) {
        let s = &self.socks[id as usize];
        if s.open || s.ops > 0 {
            return;
        }
        let s = self.socks.remove(id as usize);
        self.keep_spare(s.tx);
        if let Some(f) = s.file {
            self.keep_spare(f.buf);
        }
    }

    pub fn close_listener(&mut self) {
        if let Some(l) = self.listener.take() {
            // The gate shut the socket (see `listener::Gate`): closing the descriptor would
            // not be enough, the multishot accept holds the socket, which would go on
            // accepting. Shut, it refuses new connections and that accept ends; the
            // descriptor goes when its completion arrives.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
            if self.accepting {
                self.closing_listener = Some(l);
            }
        }
    }

    /// Nothing outstanding: every closed socket has finished and left.
    pub fn quiet(&self) -> bool {
        self.socks.is_empty() && self.closing_listener.is_none()
    }

    pub fn maintain(&mut self, now: Instant) {
        if !self.retired.is_empty() {
            let socks = &self.socks;
            self.retired.retain(|&(id, deadline)| {
                let Some(s) = socks.get(id as usize) else {
                    return false;
                };
                if s.open || !s.tx_busy {
                    return false;
                }
                if now >= deadline {
                    // The client takes nothing: the send ends with an error, the entry goes.
                    unsafe { libc::shutdown(s.fd.as_raw_fd(), libc::SHUT_RDWR) };
                    return false;
                }
                true
            });
        }
        // An accept that stopped on an error (out of descriptors) is tried again.
        self.arm_accept();
    }
}

/// Fills `buf` from `file` at `offset`; a file that ends first is an error (it shrank).
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than announced",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for UringIo {
    fn drop(&mut self) {
        // Operations still outstanding point into buffers about to be freed: end them first.
        for (_, s) in self.socks.iter() {
            unsafe { libc::shutdown(s.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        if self.accepting {
            if let Some(l) = self.listener.take() {
                self.closing_listener = Some(l);
            }
            let sqe = opcode::AsyncCancel::new(tag(0, ACCEPT))
                .build()
                .user_data(CANCEL);
            self.push(sqe);
        }
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        self.push(cancel_all);
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut ready = Vec::new();
        while (self.socks.iter().any(|(_, s)| s.ops > 0) || self.accepting)
            && Instant::now() < deadline
        {
            if self.wait(Duration::from_millis(10), &mut ready).is_err() {
                break;
            }
            for (_, s) in self.socks.iter_mut() {
                s.open = false;
            }
            ready.clear();
        }
    }
}
