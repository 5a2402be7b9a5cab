//! What the engine can be told, with its defaults. For every timeout and limit, 0 turns it off.

use std::sync::Arc;
use std::time::Duration;

use super::io::Backend;
use crate::ops::{AccessLogConfig, OpsRoute};
use crate::statics::StaticMount;
use crate::tls::TlsSettings;

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// I/O threads, each with its own poll and listener; 0 means one per core.
    pub io_threads: usize,
    /// The I/O backend: mio (epoll, kqueue), io_uring, or io_uring where the kernel allows it.
    pub io: Backend,
    /// A request whose handler has not started answering by then gets 503.
    pub handler_timeout: Duration,
    /// How long `shutdown` waits for in-flight requests before closing what is left.
    pub drain_timeout: Duration,

    /// A request head must arrive whole within this, from its first byte: else 408 and close
    /// (slowloris).
    pub header_timeout: Duration,
    /// A request body that makes no progress for this long: 408 (or, once the handler has
    /// started answering, an abort) and close.
    pub body_timeout: Duration,
    /// A connection with no request under way (before its first, or between two) is closed
    /// after this; announced as `keep-alive: timeout=N` on responses that keep it.
    pub keep_alive_timeout: Duration,
    /// A response that the client does not take (no byte written) for this long: close.
    pub write_timeout: Duration,

    /// Bytes of the header section (field lines after the request line): past it, 431.
    pub max_header_size: usize,
    /// Header fields: past it, 431 (at most 1024).
    pub max_header_count: usize,
    /// Bytes of the request target: past it, 414.
    pub max_url_length: usize,
    /// Bytes of a request body: past it, 413 (at once for a `Content-Length`, the moment a
    /// chunked body crosses it) and close.
    pub max_body_size: u64,
    /// Per route (index = route id): a body limit that replaces `max_body_size` for it.
    pub route_body_limits: Vec<Option<u64>>,
    /// Per route (index = route id): a directory the engine serves for it, never calling
    /// the handler. Such a route is a `GET` route ending in `/*` (the path under the mount).
    pub statics: Vec<Option<Arc<StaticMount>>>,
    /// Per route (index = route id): the WebSocket endpoint it is, if any. Such a route is a
    /// `GET` route; a request to it that is no valid handshake is answered by the engine.
    pub websockets: Vec<Option<Arc<WsOptions>>>,
    /// Per route (index = route id): the engine's own figures it answers with, if any
    /// (metrics, health, the dashboard). Such a route is a `GET` route.
    pub ops_routes: Vec<Option<OpsRoute>>,
    /// One line per request and WebSocket session, when set.
    pub access_log: Option<AccessLogConfig>,

    /// Open connections, all threads together: past it, new ones are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address: past it, its new ones are closed at once.
    pub max_connections_per_ip: usize,
    /// Requests per second from one client address (a token bucket): past it, 429 with
    /// `Retry-After`.
    pub rate_limit: f64,
    /// The bucket's size: how many requests an address may send at once (0: one second's worth).
    pub rate_burst: u32,
    /// Requests handed to the handler and not answered yet: past it, new requests get 503 with
    /// `Retry-After` from the engine, and connections with a request waiting are not read
    /// until the count falls. Split evenly between I/O threads.
    pub max_pending_requests: usize,
    /// A connection whose unsent output exceeds this is not read (no new requests parsed)
    /// until the client takes it.
    pub write_high_water: usize,
    /// Bytes a streamed response may have unsent before the handler is told to wait (`write`
    /// returns false until a `DRAIN`), and bytes of a request body delivered to the handler
    /// and not yet taken before its connection is no longer read.
    pub high_water_mark: usize,
    /// TLS on every connection of the listener, when set.
    pub tls: Option<TlsSettings>,
    /// HTTP/2 on the same port: h2c by prior knowledge in cleartext (the preface), h2 by ALPN
    /// over TLS.
    pub http2: Http2Options,
    /// One engine of several in this process on one port (one listener each, SO_REUSEPORT),
    /// sharing pub/sub, subscriber counts, figures and the drain (`engine::group`). Inline
    /// engines only (one thread each).
    pub port_group: Option<super::group::GroupJoin>,
    /// How new connections are spread over the listeners of one port (several I/O threads,
    /// or a port group).
    pub balance: Balance,
}

/// How the connections to one port are spread over the threads that serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// A listener per thread with SO_REUSEPORT: the kernel picks one by a hash of the
    /// connection's addresses. Only Linux spreads them so.
    ReusePort,
    /// One listener, accepted by a thread of its own that hands each connection to the
    /// next serving thread in turn (`engine::accept_point`): for platforms whose
    /// SO_REUSEPORT gives every connection to one socket (macOS, the BSDs) or lacks it.
    Handoff,
}

impl Balance {
    /// What spreads connections on this platform.
    pub const fn platform() -> Balance {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Balance::ReusePort
        } else {
            Balance::Handoff
        }
    }
}

/// What HTTP/2 connections allow.
#[derive(Debug, Clone)]
pub struct Http2Options {
    /// Off: every connection is HTTP/1.1 (a preface is a bad request).
    pub enabled: bool,
    /// Streams a client may have open at once: past it, `REFUSED_STREAM`.
    pub max_concurrent_streams: u32,
    /// The flow-control window of each request body (the connection's is four times it): what
    /// a client may send before the handler has read it (`CONSUMED`).
    pub initial_window_size: u32,
    /// Bytes of a request's header list (HPACK-decoded, 32 bytes per field counted as the
    /// RFC says); 0: `max_header_size`.
    pub max_header_list_size: u32,
}

impl Default for Http2Options {
    fn default() -> Http2Options {
        Http2Options {
            enabled: true,
            max_concurrent_streams: 100,
            initial_window_size: 1024 * 1024,
            max_header_list_size: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 0,
            io_threads: 0,
            io: Backend::default(),
            handler_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_header_size: 16 * 1024,
            max_header_count: 100,
            max_url_length: 8 * 1024,
            max_body_size: 1024 * 1024,
            route_body_limits: Vec::new(),
            statics: Vec::new(),
            websockets: Vec::new(),
            ops_routes: Vec::new(),
            access_log: None,
            max_connections: 10_000,
            max_connections_per_ip: 0,
            rate_limit: 0.0,
            rate_burst: 0,
            max_pending_requests: 4096,
            write_high_water: 256 * 1024,
            tls: None,
            http2: Http2Options::default(),
            high_water_mark: 64 * 1024,
            port_group: None,
            balance: Balance::platform(),
        }
    }
}

impl Config {
    pub(crate) fn thread_count(&self) -> usize {
        let n = if self.io_threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.io_threads
        };
        n.min(64)
    }

    /// The static mount a route serves, if any.
    pub(crate) fn static_mount(&self, route: u32) -> Option<&Arc<StaticMount>> {
        self.statics.get(route as usize).and_then(Option::as_ref)
    }

    /// The WebSocket endpoint a route is, if any.
    pub(crate) fn websocket(&self, route: u32) -> Option<&Arc<WsOptions>> {
        self.websockets.get(route as usize).and_then(Option::as_ref)
    }

    /// The engine's own answer a route is, if any.
    pub(crate) fn ops_route(&self, route: u32) -> Option<OpsRoute> {
        self.ops_routes.get(route as usize).copied().flatten()
    }

    /// The body limit of a route (0: none).
    pub(crate) fn body_limit(&self, route: u32) -> u64 {
        self.route_body_limits
            .get(route as usize)
            .copied()
            .flatten()
            .unwrap_or(self.max_body_size)
    }
}

/// What a WebSocket endpoint allows.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Bytes of one message after reassembly and inflation: past it, close 1009.
    pub max_payload: usize,
    /// Without any frame from the client for half of this, a ping; for all of it, the
    /// connection is dropped. Zero: never.
    pub idle_timeout: Duration,
    /// Unsent bytes past which a send reports backpressure.
    pub backpressure_limit: usize,
    /// Subprotocols, in the server's order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate offered to clients that ask for it.
    pub deflate: bool,
    /// Messages shorter than this are sent uncompressed.
    pub deflate_threshold: usize,
    /// The handler decides each upgrade (a `REQUEST` event flagged `UPGRADE`, answered with
    /// an `UPGRADE` op or a refusal); otherwise the engine sends the 101 itself and the
    /// handler hears of the socket first in its `WS_OPEN`.
    pub upgrade_in_handler: bool,
}

impl Default for WsOptions {
    fn default() -> WsOptions {
        WsOptions {
            max_payload: 16 * 1024 * 1024,
            idle_timeout: Duration::from_secs(120),
            backpressure_limit: 1024 * 1024,
            protocols: Vec::new(),
            deflate: false,
            deflate_threshold: 1024,
            upgrade_in_handler: false,
        }
    }
}
