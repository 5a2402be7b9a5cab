//! One I/O thread: a mio poll over its listener and connections, the thread's batch of
//! events for the handler, and its inbox of replies.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::batch::BatchBuilder;
use super::connection::{Conn, Liveness};
use super::pool::BufPool;
use super::reply::ReplyOps;
use super::Shared;
use crate::http1::date::CachedDate;
use crate::http1::request::RequestHead;

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Timeouts are checked this often; a coarse clock is enough for them.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/* 64k: one read takes what a pipelining client or a fast upload has sent. */
const READ_BUFFER: usize = 64 * 1024;

/// Everything a connection needs from its thread while it works.
pub(crate) struct Ctx {
    pub thread: u8,
    pub shared: Arc<Shared>,
    pub scratch: Vec<u8>,
    pub head: RequestHead,
    pub params: Vec<(u32, u32)>,
    pub batch: BatchBuilder,
    pub date: CachedDate,
    pub pool: BufPool,
    pub now: Instant,
    pub draining: bool,
    next_rid: u32,
}

impl Ctx {
    pub fn next_rid(&mut self) -> u32 {
        self.next_rid = self.next_rid.wrapping_add(1);
        self.next_rid
    }

    /// Gives the handler everything gathered so far: one call per batch, never per request.
    pub fn hand_over_batch(&mut self) {
        if !self.batch.is_empty() {
            let batch = self.batch.take();
            self.shared.handler.on_batch(batch, &self.shared.replier);
        }
    }
}

pub(crate) struct Worker {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ctx: Ctx,
    events: Option<Events>,
    replies: Vec<u8>,
    dirty: Vec<usize>,
    last_sweep: Instant,
    drain_deadline: Option<Instant>,
}

impl Worker {
    pub fn new(thread: u8, poll: Poll, mut listener: Option<TcpListener>, shared: Arc<Shared>) -> io::Result<Worker> {
        if let Some(l) = listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        Ok(Worker {
            poll,
            listener,
            conns: Slab::new(),
            ctx: Ctx {
                thread,
                shared,
                scratch: vec![0; READ_BUFFER],
                head: RequestHead::new(),
                params: Vec::with_capacity(8),
                batch: BatchBuilder::new(thread),
                date: CachedDate::new(),
                pool: BufPool::default(),
                now: Instant::now(),
                draining: false,
                next_rid: 0,
            },
            events: Some(Events::with_capacity(1024)),
            replies: Vec::new(),
            dirty: Vec::new(),
            last_sweep: Instant::now(),
            drain_deadline: None,
        })
    }

    /// The threads driver: this I/O thread's whole life.
    pub fn run(mut self) {
        let thread = self.ctx.thread as usize;
        loop {
            let timeout = if self.ctx.shared.replier.inboxes[thread].sleep() { SWEEP_EVERY } else { Duration::ZERO };
            let polled = self.poll_once(timeout);
            self.ctx.shared.replier.inboxes[thread].awake();
            if let Err(e) = polled {
                eprintln!("harrier: I/O thread {thread} cannot poll: {e}");
                break;
            }
            self.after_events();
            if self.finished() {
                break;
            }
        }
    }

    /// The inline driver: one non-blocking turn, when the poll's descriptor is readable.
    pub fn step(&mut self) -> io::Result<()> {
        self.poll_once(Duration::ZERO)?;
        self.after_events();
        Ok(())
    }

    /// Handles what one poll reported: reads, accepts, writes.
    fn poll_once(&mut self, timeout: Duration) -> io::Result<()> {
        let mut events = self.events.take().unwrap_or_else(|| Events::with_capacity(1024));
        let polled = self.poll.poll(&mut events, Some(timeout));
        self.ctx.now = Instant::now();
        self.ctx.date.update(SystemTime::now());
        if let Err(e) = polled {
            self.events = Some(events);
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) };
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept(),
                WAKER => {}
                Token(key) => self.on_socket(key, event.is_readable(), event.is_writable()),
            }
        }
        self.events = Some(events);
        Ok(())
    }

    fn after_events(&mut self) {
        // Hand requests over before writing answers, so that a handler on another thread
        // works while this one writes.
        self.ctx.hand_over_batch();
        self.answer();
        if self.ctx.now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep();
        }
        if !self.ctx.draining && self.ctx.shared.shutdown.load(Ordering::SeqCst) {
            self.begin_drain();
        }
        // Aborts raised while writing or sweeping.
        self.ctx.hand_over_batch();
    }

    /// Applies the replies waiting in this thread's inbox and writes them.
    pub fn answer(&mut self) {
        self.take_replies();
        self.flush_dirty();
    }

    /// Timers only (the inline driver calls this from a libuv timer).
    pub fn tick(&mut self) {
        self.ctx.now = Instant::now();
        self.ctx.date.update(SystemTime::now());
        self.sweep();
        if !self.ctx.draining && self.ctx.shared.shutdown.load(Ordering::SeqCst) {
            self.begin_drain();
        }
        self.ctx.hand_over_batch();
    }

    /// Draining is over: nothing is left to answer or close.
    pub fn finished(&self) -> bool {
        self.ctx.draining && self.conns.is_empty()
    }

    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }

    fn accept(&mut self) {
        let Some(listener) = self.listener.as_ref() else { return };
        loop {
            match listener.accept() {
                Ok((mut sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    // Edge-triggered, both directions, registered once: no re-arming per write.
                    if self.poll.registry().register(&mut sock, Token(key), Interest::READABLE | Interest::WRITABLE).is_ok() {
                        entry.insert(Conn::new(sock, key as u32));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, most often: leave the rest in the backlog for later.
                    eprintln!("harrier: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_socket(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let mut alive = Liveness::Open;
        if readable {
            alive = conn.on_readable(&mut self.ctx);
        }
        if alive == Liveness::Open && (writable || conn.dirty) {
            alive = conn.flush(&mut self.ctx);
        }
        if alive == Liveness::Closed {
            self.close(key);
        }
    }

    fn take_replies(&mut self) {
        let thread = self.ctx.thread as usize;
        if !self.ctx.shared.replier.inboxes[thread].take(&mut self.replies) {
            return;
        }
        for op in ReplyOps::new(&self.replies) {
            if let Some(conn) = self.conns.get_mut(op.slot as usize) {
                conn.apply(&mut self.ctx, &op);
                if conn.dirty {
                    self.dirty.push(op.slot as usize);
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.dirty && conn.flush(&mut self.ctx) == Liveness::Closed {
                    self.close(key);
                }
            }
        }
        // Connections dirtied while reading (a 404, a 100 Continue) are flushed by on_socket.
    }

    fn sweep(&mut self) {
        self.last_sweep = self.ctx.now;
        let timeout = self.ctx.shared.config.handler_timeout;
        let now = self.ctx.now;
        let force = self.drain_deadline.is_some_and(|d| now >= d);
        let mut closing = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if force || conn.linger_expired(now) {
                closing.push(key);
                continue;
            }
            conn.expire(&mut self.ctx, timeout);
            if conn.dirty && conn.flush(&mut self.ctx) == Liveness::Closed {
                closing.push(key);
            }
        }
        for key in closing {
            self.close(key);
        }
    }

    /// Stops accepting and closes idle connections; busy ones close after their last answer.
    fn begin_drain(&mut self) {
        self.ctx.draining = true;
        self.drain_deadline = Some(self.ctx.now + self.ctx.shared.config.drain_timeout);
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        // An idle connection has no answer to protect: it is closed at once, not lingered.
        let idle: Vec<usize> = self.conns.iter().filter(|(_, c)| c.is_idle() && !c.is_lingering()).map(|(k, _)| k).collect();
        for key in idle {
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            conn.abort_all(&mut self.ctx);
            let _ = self.poll.registry().deregister(&mut conn.sock);
        }
    }
}
