//! The engine: N I/O threads, each a mio poll with its own listener, parsing HTTP/1.1,
//! routing, batching requests for the handler and writing its replies.

pub(crate) mod batch;
mod config;
mod connection;
mod event_loop;
mod io;
mod limits;
mod listener;
mod pool;
mod reply;

use std::io as stdio;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use batch::{Batch, Event, RequestView, EVENT_ABORT, EVENT_BODY, EVENT_END, EVENT_REQUEST, FLAG_HAS_BODY, FLAG_HTTP10};
pub use config::Config;
pub use io::{Backend, POLL_NAME};
pub use reply::{Replier, ReplyWriter, RequestRef, OP_CHUNK, OP_END, OP_FILE, OP_FULL, OP_HEAD};

use crate::router::Router;
use event_loop::Worker;
use reply::Inbox;

/// What the engine calls with each batch of requests. It answers through the `Replier`,
/// from any thread, at any later time.
pub trait Handler: Send + Sync + 'static {
    fn on_batch(&self, batch: Batch, replier: &Replier);
}

pub(crate) struct Shared {
    pub config: Config,
    pub router: Router,
    pub handler: Box<dyn Handler>,
    pub replier: Replier,
    pub shutdown: AtomicBool,
    /// I/O threads serving this engine.
    pub threads: usize,
    /// Open connections, all threads together.
    pub open: AtomicUsize,
    /// Per-address limits, when any is on.
    pub ips: Option<limits::IpTable>,
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    backend: &'static str,
}

/// Binds a listener per loop (one, where SO_REUSEPORT is missing), picks the I/O backend and
/// builds the shared state.
fn prepare(config: Config, router: Router, handler: Box<dyn Handler>, count: usize, own_threads: bool) -> stdio::Result<(Arc<Shared>, Vec<Worker>, SocketAddr)> {
    let backend = io::choose(config.io)?;
    let addr = listener::resolve(&config.host, config.port)?;
    let mut ios = Vec::with_capacity(count);
    let mut inboxes = Vec::with_capacity(count);
    let mut local_addr = addr;
    for i in 0..count {
        let listener = if i == 0 || listener::REUSE_PORT {
            // Port 0 is resolved by the first bind; the others join that port.
            let l = listener::bind(local_addr, listener::REUSE_PORT)?;
            local_addr = l.local_addr()?;
            Some(l)
        } else {
            None
        };
        let (io, waker) = io::Io::new(backend, listener, own_threads)?;
        inboxes.push(Inbox::new(waker));
        ios.push(io);
    }
    let ips = limits::IpTable::new(config.max_connections_per_ip, config.rate_limit, config.rate_burst);
    let shared = Arc::new(Shared {
        config,
        router,
        handler,
        replier: Replier { inboxes: inboxes.into() },
        shutdown: AtomicBool::new(false),
        threads: count,
        open: AtomicUsize::new(0),
        ips,
    });
    let workers = ios.into_iter().enumerate().map(|(i, io)| Worker::new(i as u8, io, shared.clone())).collect();
    Ok((shared, workers, local_addr))
}

impl Server {
    /// Binds and starts the I/O threads; returns once every listener is bound.
    pub fn start(config: Config, router: Router, handler: Box<dyn Handler>) -> stdio::Result<Server> {
        let count = config.thread_count();
        let (shared, workers, local_addr) = prepare(config, router, handler, count, true)?;
        let backend = workers[0].io_name();
        let mut threads = Vec::with_capacity(count);
        for (i, worker) in workers.into_iter().enumerate() {
            threads.push(std::thread::Builder::new().name(format!("harrier-io-{i}")).spawn(move || worker.run())?);
        }
        Ok(Server { shared, threads, local_addr, backend })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The I/O backend serving: "uring", or the readiness backend's name ("epoll", "kqueue").
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn replier(&self) -> Replier {
        self.shared.replier.clone()
    }

    /// Starts a graceful shutdown: stop accepting, finish what is in flight, close.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for inbox in self.shared.replier.inboxes.iter() {
            inbox.wake();
        }
    }

    /// Waits for every I/O thread to finish (after `shutdown`).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The engine on the caller's thread, with no thread of its own: whoever owns it watches
/// `raw_fd` (readable means events wait) and calls `step`, calls `tick` every 100 ms or so,
/// and `answer` after replies were sent. The handler is called synchronously from `step`.
/// This is what Node's own event loop drives on the JS thread: no handoff, no context switch.
pub struct InlineServer {
    shared: Arc<Shared>,
    worker: Worker,
    local_addr: SocketAddr,
}

impl InlineServer {
    pub fn start(config: Config, router: Router, handler: Box<dyn Handler>) -> stdio::Result<InlineServer> {
        let (shared, mut workers, local_addr) = prepare(config, router, handler, 1, false)?;
        Ok(InlineServer { shared, worker: workers.pop().unwrap(), local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn replier(&self) -> Replier {
        self.shared.replier.clone()
    }

    /// The I/O backend serving: "uring", or the readiness backend's name ("epoll", "kqueue").
    pub fn backend(&self) -> &'static str {
        self.worker.io_name()
    }

    /// The backend's descriptor (the poll's, or the ring's): readable when `step` has work.
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.worker.raw_fd()
    }

    /// Reads, dispatches (calling the handler), and writes what was answered meanwhile.
    pub fn step(&mut self) -> stdio::Result<()> {
        self.worker.step()
    }

    /// Whether the backend already holds completions for another `step` (io_uring: sends that
    /// finished as they were submitted). Taking them in the same turn saves a wake-up.
    pub fn has_completions(&mut self) -> bool {
        self.worker.has_completions()
    }

    /// Applies and writes replies sent since the last turn.
    pub fn answer(&mut self) {
        self.worker.answer();
        self.worker.submit();
    }

    /// Timeouts and drain progress.
    pub fn tick(&mut self) {
        self.worker.tick();
        self.worker.submit();
    }

    /// Starts a graceful shutdown; `finished` tells when it is over.
    pub fn shutdown(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.worker.tick();
        self.worker.submit();
    }

    pub fn finished(&self) -> bool {
        self.worker.finished()
    }
}

#[cfg(test)]
mod tests;
