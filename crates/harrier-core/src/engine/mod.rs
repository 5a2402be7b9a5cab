//! The engine: N I/O threads, each a mio poll with its own listener, parsing HTTP/1.1,
//! routing, batching requests for the handler and writing its replies.

mod accept_point;
pub(crate) mod batch;
pub(crate) mod config;
pub(crate) mod event_loop;
pub(crate) mod group;
pub(crate) mod io;
pub(crate) mod limits;
mod listener;
pub(crate) mod pool;
pub(crate) mod reply;

use std::io as stdio;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;

pub use batch::{
    Batch, Event, RequestView, EVENT_ABORT, EVENT_BODY, EVENT_END, EVENT_REQUEST, FLAG_HAS_BODY,
    FLAG_HTTP10, FLAG_SECURE,
};
pub use config::{Balance, Config, Http2Options, WsOptions};
pub use group::{GroupJoin, GroupRole, PortGroup};
pub use io::{Backend, POLL_NAME};
pub use listener::ListenError;
pub use reply::{Replier, ReplyWriter, RequestRef, OP_CHUNK, OP_END, OP_FILE, OP_FULL, OP_HEAD};

use crate::ops::access_log::AccessLog;
use crate::ops::stats::Stats;
use crate::router::Router;
use accept_point::{AcceptPoint, Seats};
use event_loop::Worker;
use reply::Inbox;

/// What the engine calls with each batch of requests. It answers through the `Replier`,
/// from any thread, at any later time.
pub trait Handler: Send + Sync + 'static {
    /// A handler that keeps the batch takes its vectors (`std::mem::take`); what it leaves
    /// is reused for the next batch.
    fn on_batch(&self, batch: &mut Batch, replier: &Replier);

    /// Ops the handler left where it wrote them instead of sending them (the inline
    /// driver: the JS reply buffer), given to `apply` to be read in place, with no copy
    /// through the inbox. The engine asks on its own thread, between calls to `on_batch`,
    /// whenever it takes its inbox.
    fn take_written(&self, _apply: &mut dyn FnMut(&[u8])) {}
}

pub(crate) struct Shared {
    pub config: Config,
    pub router: Router,
    pub handler: Box<dyn Handler>,
    pub replier: Replier,
    pub shutdown: AtomicBool,
    /// Closes every listener at once, from any thread.
    pub gate: listener::Gate,
    /// I/O threads serving this engine.
    pub threads: usize,
    /// Open connections, all threads together.
    pub open: AtomicUsize,
    /// Per-address limits, when any is on.
    pub ips: Option<limits::IpTable>,
    /// Every connection speaks TLS with this, when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub stats: Arc<Stats>,
    /// A drain was announced (`Metrics::announce_drain`): health routes answer 503 while the
    /// server still serves, so that load balancers stop sending before it stops accepting.
    pub drain_announced: AtomicBool,
    /// Where the I/O threads' access log lines go, when the log is on.
    pub access_log: Option<AccessLog>,
    /// The engines serving the same port in this process, when this one is of a group.
    pub group: Option<Arc<PortGroup>>,
    /// Subscribers per topic, all threads together, when the engine is of a group (whose
    /// subscriber counts sum these).
    pub topic_counts: Option<Arc<group::TopicCounts>>,
    /// The engine's own accept point, when its I/O threads share one listener
    /// (`Balance::Handoff`; a port group's is the group's).
    pub accept_point: OnceLock<AcceptPoint>,
}

impl Shared {
    /// The figures now: this engine's, or its group's summed.
    pub(crate) fn snapshot(&self) -> crate::ops::Snapshot {
        self.group
            .as_ref()
            .and_then(|g| g.snapshot())
            .unwrap_or_else(|| self.own_snapshot())
    }

    /// This engine's own figures.
    pub(crate) fn own_snapshot(&self) -> crate::ops::Snapshot {
        self.stats
            .snapshot(self.open.load(Ordering::Relaxed) as u64)
    }

    /// Refuses new connections at once (see `listener::Gate`) and asks the I/O threads to
    /// drain at the end of their turn.
    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.gate.close();
        if let Some(point) = self.accept_point.get() {
            point.stop();
        }
        if let Some(group) = &self.group {
            group.member_stopping();
        }
    }
}

/// A running server.
/// A handle on a server's figures.
#[derive(Clone)]
pub struct Metrics(Arc<Shared>);

impl Metrics {
    /// The figures now, summed over the I/O threads.
    pub fn snapshot(&self) -> crate::ops::Snapshot {
        self.0.snapshot()
    }

    /// The JS thread's event-loop delay (ns), for the figures the engine answers with.
    pub fn report_loop_delay(&self, p50: u64, p99: u64, max: u64) {
        self.0.stats.report_loop_delay(p50, p99, max);
    }

    /// From now on health routes answer `503 draining`; everything else is served as before.
    pub fn announce_drain(&self) {
        self.0.drain_announced.store(true, Ordering::SeqCst);
    }

    /// The port group this engine serves in, if any.
    pub fn group(&self) -> Option<Arc<PortGroup>> {
        self.0.group.clone()
    }

    /// Sockets subscribed to `topic` on the other engines of this one's group (0 alone).
    pub fn peer_subscriber_count(&self, topic: &[u8]) -> u64 {
        self.0.group.as_ref().map_or(0, |g| {
            g.subscriber_count(topic, Some(&self.0.replier.inboxes))
        })
    }
}

pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    backend: &'static str,
}

/// The listeners of an engine: one per I/O thread (`None` for those that have none), and
/// the one its accept point takes, when connections are handed out (`Balance::Handoff`).
struct Bound {
    per_thread: Vec<Option<std::net::TcpListener>>,
    accept_point: Option<std::net::TcpListener>,
    local_addr: SocketAddr,
}

/// Binds a listener per loop (one, where SO_REUSEPORT is missing), or the one an accept
/// point hands out, and picks the I/O backend.
fn bind_all(config: &Config, count: usize) -> stdio::Result<(io::Backend, Bound)> {
    let backend = io::choose(config.io)?;
    let mut local_addr = listener::resolve(&config.host, config.port)?;
    if config.balance == Balance::Handoff && (count > 1 || config.port_group.is_some()) {
        // A member joining a group is served by the group's accept point (or binds one
        // once it is in the group, if none runs: see `PortGroup::ensure_accept_point`).
        let accept_point = match config.port_group.map(|g| g.role) {
            Some(GroupRole::Joins) => None,
            _ => {
                let l = listener::bind(local_addr, listener::Group::Alone)?;
                local_addr = l.local_addr()?;
                Some(l)
            }
        };
        let per_thread = (0..count).map(|_| None).collect();
        return Ok((
            backend,
            Bound {
                per_thread,
                accept_point,
                local_addr,
            },
        ));
    }
    let mut per_thread = Vec::with_capacity(count);
    for i in 0..count {
        per_thread.push(if i == 0 || listener::REUSE_PORT {
            // Port 0 is resolved by the first bind; the others join that port.
            let group = match (count > 1 && listener::REUSE_PORT, i) {
                // One engine of a port group: founds it or joins it, as it was told.
                (false, _) => match config.port_group.map(|g| g.role) {
                    Some(GroupRole::Founds) if listener::REUSE_PORT => listener::Group::Founds,
                    Some(GroupRole::Joins) if listener::REUSE_PORT => listener::Group::Joins,
                    _ => listener::Group::Alone,
                },
                (true, 0) => listener::Group::Founds,
                (true, _) => listener::Group::Joins,
            };
            let l = listener::bind(local_addr, group)?;
            local_addr = l.local_addr()?;
            Some(l)
        } else {
            None
        });
    }
    Ok((
        backend,
        Bound {
            per_thread,
            accept_point: None,
            local_addr,
        },
    ))
}

impl Bound {
    /// The gate closes the threads' listeners and an engine's own accept point's; a port
    /// group's accept point is the group's to close (`PortGroup::member_stopping`).
    fn gate(&self, config: &Config) -> stdio::Result<listener::Gate> {
        let own_point = self
            .accept_point
            .as_ref()
            .filter(|_| config.port_group.is_none());
        listener::Gate::new(self.per_thread.iter().flatten().chain(own_point))
    }

    /// Starts the accept point, once the engine it hands connections to exists.
    fn start_accept_point(
        accept_point: Option<std::net::TcpListener>,
        shared: &Arc<Shared>,
    ) -> stdio::Result<()> {
        match &shared.group {
            Some(group) if shared.config.balance == Balance::Handoff => {
                group.ensure_accept_point(accept_point)
            }
            _ => {
                if let Some(l) = accept_point {
                    let point = AcceptPoint::start(l, Seats::Engine(Arc::downgrade(shared)))?;
                    let _ = shared.accept_point.set(point);
                }
                Ok(())
            }
        }
    }
}

/// The listener's rustls configuration, if it speaks TLS: made before anything is bound, so
/// that a bad one leaves nothing listening.
fn tls_config(config: &Config) -> stdio::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(settings) = &config.tls else {
        return Ok(None);
    };
    settings
        .server_config(if config.http2.enabled { ALPN_H2 } else { ALPN })
        .map(Some)
        .map_err(|e| stdio::Error::new(stdio::ErrorKind::InvalidInput, e))
}

/// What a TLS listener offers by ALPN, in order of preference. A client that offers only
/// other protocols is refused with the `no_application_protocol` alert.
const ALPN: &[&[u8]] = &[b"http/1.1"];
/// The same, with HTTP/2 on.
const ALPN_H2: &[&[u8]] = &[b"h2", b"http/1.1"];

#[allow(clippy::too_many_arguments)]
fn shared(
    config: Config,
    router: Router,
    handler: Box<dyn Handler>,
    wakers: Vec<io::Waker>,
    gate: listener::Gate,
    tls: Option<Arc<rustls::ServerConfig>>,
    local_addr: SocketAddr,
) -> stdio::Result<Arc<Shared>> {
    let group = config
        .port_group
        .map(|join| (join.member, PortGroup::enter(local_addr, join.role)));
    let threads = wakers.len();
    let stats = Arc::new(Stats::new(threads));
    let access_log = config
        .access_log
        .as_ref()
        .map(|c| AccessLog::start(c, stats.clone()))
        .transpose()?;
    let ips = limits::IpTable::new(
        config.max_connections_per_ip,
        config.rate_limit,
        config.rate_burst,
    );
    Ok(Arc::new(Shared {
        config,
        router,
        handler,
        replier: Replier {
            inboxes: wakers
                .into_iter()
                .map(Inbox::new)
                .collect::<Vec<_>>()
                .into(),
            group: group.as_ref().map(|(_, g)| g.clone()),
        },
        shutdown: AtomicBool::new(false),
        gate,
        threads,
        open: AtomicUsize::new(0),
        ips,
        tls,
        stats,
        drain_announced: AtomicBool::new(false),
        access_log,
        topic_counts: group.as_ref().map(|_| Arc::default()),
        group: group.as_ref().map(|(_, g)| g.clone()),
        accept_point: OnceLock::new(),
    }))
    .map(|shared| {
        if let Some((member, g)) = &group {
            g.join(*member, &shared);
        }
        shared
    })
}

/// An I/O thread's first words to the thread starting the server: its backend is made (by
/// itself, see `Server::start`), here is how to wake it; or why it could not be made.
type Started = stdio::Result<io::Waker>;

impl Server {
    /// Binds and starts the I/O threads; returns once every listener is bound and every
    /// thread has its backend.
    ///
    /// Each thread makes its own backend: an io_uring ring belongs to the threads that made
    /// or used it, and when it is dropped the kernel interrupts each of them (task work with
    /// TWA_SIGNAL, which ends a blocking call such as a socket read with a timeout in EINTR).
    /// Made on the I/O thread, the ring has no other thread to interrupt.
    pub fn start(
        config: Config,
        router: Router,
        handler: Box<dyn Handler>,
    ) -> stdio::Result<Server> {
        let count = config.thread_count();
        let tls = tls_config(&config)?;
        let (backend, bound) = bind_all(&config, count)?;
        let gate = bound.gate(&config)?;
        let Bound {
            per_thread: listeners,
            accept_point,
            local_addr,
        } = bound;
        let (started_tx, started_rx) = mpsc::channel::<(usize, Started)>();
        let mut threads = Vec::with_capacity(count);
        let mut handoffs = Vec::with_capacity(count);
        for (i, listener) in listeners.into_iter().enumerate() {
            let started = started_tx.clone();
            let (handoff, shared_rx) = mpsc::sync_channel::<Arc<Shared>>(1);
            handoffs.push(handoff);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("harrier-io-{i}"))
                    .spawn(move || {
                        let (io, waker) = match io::Io::new(backend, listener, true) {
                            Ok(made) => made,
                            Err(e) => {
                                let _ = started.send((i, Err(e)));
                                return;
                            }
                        };
                        let _ = started.send((i, Ok(waker)));
                        drop(started);
                        // No shared state: another thread failed to start, and this one ends.
                        if let Ok(shared) = shared_rx.recv() {
                            Worker::new(i as u8, io, shared).run();
                        }
                    })?,
            );
        }
        drop(started_tx);
        let mut wakers: Vec<Option<io::Waker>> = (0..count).map(|_| None).collect();
        let mut failed = None;
        for (i, started) in started_rx.iter() {
            match started {
                Ok(waker) => wakers[i] = Some(waker),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed.or_else(|| {
            wakers
                .iter()
                .any(Option::is_none)
                .then(|| stdio::Error::other("an I/O thread ended while starting"))
        }) {
            drop(handoffs);
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        let shared = match shared(
            config,
            router,
            handler,
            wakers.into_iter().flatten().collect(),
            gate,
            tls,
            local_addr,
        ) {
            Ok(shared) => shared,
            Err(e) => {
                drop(handoffs);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        };
        for handoff in handoffs {
            let _ = handoff.send(shared.clone());
        }
        if let Err(e) = Bound::start_accept_point(accept_point, &shared) {
            shared.begin_shutdown();
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        let backend = match backend {
            io::Backend::Poll => POLL_NAME,
            _ => "uring",
        };
        Ok(Server {
            shared,
            threads,
            local_addr,
            backend,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The I/O backend serving: "uring", or the readiness backend's name ("epoll", "kqueue").
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The engine's figures, readable from any thread while it runs (and after).
    pub fn metrics(&self) -> Metrics {
        Metrics(self.shared.clone())
    }

    pub fn replier(&self) -> Replier {
        self.shared.replier.clone()
    }

    /// Starts a graceful shutdown: stop accepting, finish what is in flight, close. Returns
    /// once no I/O thread accepts any more: a connection attempted after this is refused.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
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
    pub fn start(
        config: Config,
        router: Router,
        handler: Box<dyn Handler>,
    ) -> stdio::Result<InlineServer> {
        let tls = tls_config(&config)?;
        let (backend, bound) = bind_all(&config, 1)?;
        let gate = bound.gate(&config)?;
        let Bound {
            per_thread: mut listeners,
            accept_point,
            local_addr,
        } = bound;
        let (io, waker) = io::Io::new(backend, listeners.pop().flatten(), false)?;
        let shared = shared(config, router, handler, vec![waker], gate, tls, local_addr)?;
        Bound::start_accept_point(accept_point, &shared)?;
        Ok(InlineServer {
            worker: Worker::new(0, io, shared.clone()),
            shared,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The engine's figures, readable from any thread while it runs (and after).
    pub fn metrics(&self) -> Metrics {
        Metrics(self.shared.clone())
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

    /// Applies `ops` where they lie (the caller's buffer, free again on return), as if they
    /// had been sent; `answer` writes them.
    pub fn apply(&mut self, ops: &[u8]) {
        self.worker.apply_in_place(ops);
    }

    /// Applies and writes replies sent since the last turn. What that raised for the
    /// handler (a `DRAIN`, a body read on) is not handed over from here, inside a call from
    /// JS: the engine's own waker asks for a turn, whose end hands it over with the promise
    /// jobs it starts run as usual.
    pub fn answer(&mut self) {
        self.worker.answer();
        self.worker.submit();
        if self.worker.has_events() {
            self.shared.replier.inboxes[0].wake();
        }
    }

    /// Timeouts and drain progress.
    pub fn tick(&mut self) {
        self.worker.tick();
        self.worker.submit();
    }

    /// What asks this engine to shut down from anywhere, even from inside one of its turns
    /// (a handler calling `close()`): the turn under way starts the drain before it ends.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            shared: self.shared.clone(),
        }
    }

    /// Starts a graceful shutdown; `finished` tells when it is over.
    pub fn shutdown(&mut self) {
        self.shutdown_signal().raise();
        self.worker.tick();
        self.worker.submit();
    }

    pub fn finished(&self) -> bool {
        self.worker.finished()
    }

    /// Ends the engine at once, without a drain (its thread is going away: a worker that
    /// crashed): the listener stops listening, connections and what was accepted meanwhile
    /// are closed (their requests fail), and the engine leaves its port group.
    pub fn abandon(self) {
        self.shared.begin_shutdown();
        drop(self.shared.gate.take_backlog());
        if let Some(group) = &self.shared.group {
            group.leave(&self.shared);
        }
        drop(self.worker);
    }
}

/// Asks an inline engine to shut down; its next turn's end (or the end of the one under way)
/// starts the drain. See `InlineServer::shutdown_signal`.
#[derive(Clone)]
pub struct ShutdownSignal {
    shared: Arc<Shared>,
}

impl ShutdownSignal {
    /// Refuses new connections at once (see `listener::Gate`) and asks for the drain.
    pub fn raise(&self) {
        self.shared.begin_shutdown();
    }
}

#[cfg(test)]
mod tests;
