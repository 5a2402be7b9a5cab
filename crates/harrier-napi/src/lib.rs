//! The napi bridge: starts the engine for a JS app under one of two drivers, carries batches
//! of requests to one JS callback, and takes replies back in one call per flush.
//!
//! - `inline` (unix): the engine runs on the JS thread, driven by libuv (see `inline.rs`).
//! - `threads`: I/O threads hand batches over a threadsafe function (see `threads.rs`).

#[cfg(unix)]
mod inline;
mod threads;
#[cfg(unix)]
mod uv;

use std::sync::Mutex;
use std::time::Duration;

use harrier_core::ops::{AccessLogConfig, LogFormat, OpsRoute};
use harrier_core::tls::{CertSet, MinVersion, PemPair, TlsSettings};
use harrier_core::{
    Backend, Config, Replier, Router, Server, StaticMount, StaticOptions, WsOptions,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi(object)]
pub struct ListenOptions {
    pub host: String,
    pub port: u32,
    /// `inline` (the JS thread runs the engine) or `threads` (I/O threads).
    pub driver: String,
    /// For `threads`; 0 or absent: one per core.
    pub io_threads: Option<u32>,
    /// `auto`, `epoll` or `uring`; absent: the engine's default.
    pub io: Option<String>,
    pub handler_timeout_ms: Option<u32>,
    pub drain_timeout_ms: Option<u32>,
    pub header_timeout_ms: Option<u32>,
    pub body_timeout_ms: Option<u32>,
    pub keep_alive_timeout_ms: Option<u32>,
    pub write_timeout_ms: Option<u32>,
    pub max_header_size: Option<u32>,
    pub max_header_count: Option<u32>,
    pub max_url_length: Option<u32>,
    /// Bytes; a double so that limits past 4 GiB can be said.
    pub max_body_size: Option<f64>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    /// Requests per second per client address.
    pub rate_limit: Option<f64>,
    pub rate_burst: Option<u32>,
    pub max_pending_requests: Option<u32>,
    /// HTTP/2 on the same port (default on).
    pub http2: Option<bool>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub http2_initial_window_size: Option<u32>,
    /// 0 or absent: `max_header_size`.
    pub http2_max_header_list_size: Option<u32>,
    /// TLS on this listener: certificates as PEM (JS reads the files).
    pub tls: Option<TlsOptions>,
    /// `combined` or `json`: one access log line per request; absent: no log.
    pub access_log_format: Option<String>,
    /// The file the access log is appended to; absent: standard output.
    pub access_log_path: Option<String>,
    /// Bytes a streamed response may have unsent before `write()` says wait, and bytes of
    /// a request body delivered and not yet taken before the connection is held back.
    pub high_water_mark: Option<f64>,
    /// `founds` or `joins`: this engine is one of several of this process on one port, each
    /// with its own listener (SO_REUSEPORT), sharing pub/sub, figures and the drain. The
    /// founder binds (port 0 picks one); the others join its port. Inline driver only.
    pub port_group: Option<String>,
    /// The member's number in its port group (a worker's id), for the figures per member.
    pub group_member: Option<u32>,
    /// `reuseport` (a listener per thread, the kernel spreads connections: Linux) or
    /// `handoff` (one accept point hands them out in turn); absent: the platform's.
    pub balance: Option<String>,
}

#[napi(object)]
pub struct TlsOptions {
    /// The chain, leaf first, PEM.
    pub cert: Buffer,
    /// PKCS#8, PKCS#1 RSA or SEC1 EC, PEM.
    pub key: Buffer,
    /// More certificates, chosen by server name (exact, or `*.example.com`).
    pub sni: Option<Vec<SniCert>>,
    /// `TLSv1.2` (default) or `TLSv1.3`.
    pub min_version: Option<String>,
}

#[napi(object)]
pub struct SniCert {
    pub name: String,
    pub cert: Buffer,
    pub key: Buffer,
}

#[napi(object)]
pub struct RouteSpec {
    /// Upper-case method, or `*` for every method.
    pub method: String,
    pub path: String,
    /// Replaces `max_body_size` for this route.
    pub body_limit: Option<f64>,
    /// A directory the engine serves for this route (`app.static`), with its options.
    pub static_root: Option<String>,
    pub max_age: Option<f64>,
    pub immutable: Option<bool>,
    pub index: Option<String>,
    pub fallback: Option<String>,
    /// `allow` or `ignore`.
    pub dotfiles: Option<String>,
    pub precompressed: Option<bool>,
    /// A WebSocket endpoint (`app.ws`), with its options.
    pub websocket: Option<bool>,
    pub max_payload_length: Option<f64>,
    pub idle_timeout_ms: Option<f64>,
    pub backpressure_limit: Option<f64>,
    pub protocols: Option<Vec<String>>,
    pub per_message_deflate: Option<bool>,
    pub deflate_threshold: Option<f64>,
    /// The route has an `upgrade` callback: each handshake waits for it.
    pub upgrade_in_handler: Option<bool>,
    /// The engine answers it with its own figures: `metrics`, `health`, `dashboard` or
    /// `dashboardEvents`.
    pub ops: Option<String>,
}

fn ops_route(route: &RouteSpec) -> Result<Option<OpsRoute>> {
    Ok(match route.ops.as_deref() {
        None => None,
        Some("metrics") => Some(OpsRoute::Metrics),
        Some("health") => Some(OpsRoute::Health),
        Some("dashboard") => Some(OpsRoute::Dashboard),
        Some("dashboardEvents") => Some(OpsRoute::DashboardEvents),
        Some(other) => {
            return Err(Error::new(
                Status::InvalidArg,
                format!("unknown engine route {other:?}"),
            ))
        }
    })
}

fn websocket(route: &RouteSpec) -> Result<Option<std::sync::Arc<WsOptions>>> {
    if route.websocket != Some(true) {
        return Ok(None);
    }
    let mut options = WsOptions::default();
    if let Some(n) = route.max_payload_length {
        options.max_payload = bytes_option(n, "maxPayloadLength")? as usize;
    }
    if let Some(ms) = route.idle_timeout_ms {
        options.idle_timeout = Duration::from_millis(bytes_option(ms, "idleTimeout")?);
    }
    if let Some(n) = route.backpressure_limit {
        options.backpressure_limit = bytes_option(n, "backpressureLimit")? as usize;
    }
    options.protocols = route.protocols.clone().unwrap_or_default();
    options.deflate = route.per_message_deflate.unwrap_or(false);
    options.upgrade_in_handler = route.upgrade_in_handler.unwrap_or(false);
    if let Some(n) = route.deflate_threshold {
        options.deflate_threshold = bytes_option(n, "perMessageDeflate.threshold")? as usize;
    }
    Ok(Some(std::sync::Arc::new(options)))
}

fn static_mount(route: &RouteSpec) -> Result<Option<std::sync::Arc<StaticMount>>> {
    let Some(root) = &route.static_root else {
        return Ok(None);
    };
    let mut options = StaticOptions::default();
    if let Some(age) = route.max_age {
        options.max_age = Some(bytes_option(age, "maxAge")?);
    }
    options.immutable = route.immutable.unwrap_or(false);
    if let Some(index) = &route.index {
        options.index = if index.is_empty() {
            None
        } else {
            Some(index.clone())
        };
    }
    options.fallback = route.fallback.clone().filter(|f| !f.is_empty());
    options.dotfiles = route.dotfiles.as_deref() == Some("allow");
    options.precompressed = route.precompressed.unwrap_or(true);
    let mount = StaticMount::new(root, options)
        .map_err(|e| Error::new(Status::InvalidArg, format!("static root {root:?}: {e}")))?;
    Ok(Some(std::sync::Arc::new(mount)))
}

/// Checks a route without starting anything, so that `app.get` can throw at once; returns
/// the names of its params in the order the engine reports them.
#[napi]
pub fn check_route(method: String, path: String) -> Result<Vec<String>> {
    let mut router = Router::new();
    router
        .add(&method, &path, 0)
        .map_err(|e| Error::new(Status::InvalidArg, e.0))?;
    Router::param_names(&path).map_err(|e| Error::new(Status::InvalidArg, e.0))
}

/// Whether this platform has the inline driver.
#[napi]
pub fn inline_supported() -> bool {
    cfg!(unix)
}

fn group_at(host: &str, port: u32) -> Option<std::sync::Arc<harrier_core::PortGroup>> {
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port = u16::try_from(port).ok()?;
    harrier_core::PortGroup::find(std::net::SocketAddr::new(ip, port))
}

/// Each member's own figures and the sum, as JSON: `{ total, workers: [{ id, accepted,
/// requests, open, inFlight }] }`.
fn group_json(group: &harrier_core::PortGroup) -> Option<String> {
    let total = group.snapshot()?;
    let workers: Vec<String> = group
        .members()
        .iter()
        .map(|(id, s)| {
            format!(
                "{{\"id\":{id},\"accepted\":{},\"requests\":{},\"open\":{},\"inFlight\":{}}}",
                s.accepted,
                s.requests(),
                s.open,
                s.in_flight
            )
        })
        .collect();
    Some(format!(
        "{{\"total\":{},\"workers\":[{}]}}",
        harrier_core::ops::snapshot_json(&total),
        workers.join(",")
    ))
}

/// The figures of the port group on `host:port` in this process (from any thread: the
/// main thread of `serve()` has no engine of its own); `null` if there is none.
#[napi]
pub fn group_metrics_json(host: String, port: u32) -> Option<String> {
    group_at(&host, port).and_then(|g| group_json(&g))
}

/// Every member of the port group on `host:port` answers its health route with 503 from
/// now on; false if there is no such group.
#[napi]
pub fn group_announce_drain(host: String, port: u32) -> bool {
    group_at(&host, port).map(|g| g.announce_drain()).is_some()
}

/// Resolves the promise `close` returned.
pub(crate) type Resolver = fn(Env) -> Result<()>;

enum Driver {
    /// Taken by `close`; behind a lock so that `close` needs no `&mut` borrow of the JS
    /// object while `respond` calls keep coming during the drain.
    Threads {
        server: Mutex<Option<Server>>,
        replier: Replier,
    },
    #[cfg(unix)]
    Inline(std::rc::Rc<inline::InlineDriver>),
}

/// The certificates of a `tls` option, checked; an error names the option and the reason,
/// with `code: 'ERR_HARRIER_TLS'`.
fn cert_set(env: &Env, tls: &TlsOptions) -> Result<CertSet> {
    let default = PemPair {
        cert: tls.cert.to_vec(),
        key: tls.key.to_vec(),
    };
    let sni: Vec<(String, PemPair)> = tls
        .sni
        .iter()
        .flatten()
        .map(|e| {
            (
                e.name.clone(),
                PemPair {
                    cert: e.cert.to_vec(),
                    key: e.key.to_vec(),
                },
            )
        })
        .collect();
    CertSet::from_pem("tls", &default, &sni).map_err(|e| tls_error(env, &e.to_string()))
}

fn tls_error(env: &Env, message: &str) -> Error {
    let made = env
        .create_error(Error::new(
            Status::InvalidArg,
            format!("harrier: {message}"),
        ))
        .and_then(|mut error| {
            error.set("code", "ERR_HARRIER_TLS")?;
            Ok(Error::from(error.to_unknown()))
        });
    made.unwrap_or_else(|e| e)
}

fn tls_settings(env: &Env, tls: &TlsOptions) -> Result<TlsSettings> {
    let min_version = match tls.min_version.as_deref() {
        None => MinVersion::default(),
        Some(name) => MinVersion::parse(name).ok_or_else(|| {
            tls_error(
                env,
                &format!("tls.minVersion: must be 'TLSv1.2' or 'TLSv1.3', got {name:?}"),
            )
        })?,
    };
    Ok(TlsSettings::new(cert_set(env, tls)?, min_version))
}

#[napi]
pub struct NativeServer {
    driver: Driver,
    /// The listener's certificates, for `reloadTls`.
    tls: Option<TlsSettings>,
    metrics: harrier_core::Metrics,
    port: u32,
    host: String,
    io: &'static str,
}

fn config(options: &ListenOptions) -> Result<Config> {
    let port = u16::try_from(options.port).map_err(|_| {
        Error::new(
            Status::InvalidArg,
            format!("port {} is out of range", options.port),
        )
    })?;
    let mut config = Config {
        host: options.host.clone(),
        port,
        ..Config::default()
    };
    if let Some(n) = options.io_threads {
        config.io_threads = n as usize;
    }
    if let Some(name) = &options.io {
        config.io = Backend::parse(name).ok_or_else(|| {
            Error::new(
                Status::InvalidArg,
                format!("io must be 'auto', 'epoll' or 'uring', got {name:?}"),
            )
        })?;
    }
    if let Some(ms) = options.handler_timeout_ms {
        config.handler_timeout = Duration::from_millis(ms as u64);
    }
    if let Some(ms) = options.drain_timeout_ms {
        config.drain_timeout = Duration::from_millis(ms as u64);
    }
    let ms = |v: Option<u32>, default: Duration| {
        v.map_or(default, |ms| Duration::from_millis(ms as u64))
    };
    config.header_timeout = ms(options.header_timeout_ms, config.header_timeout);
    config.body_timeout = ms(options.body_timeout_ms, config.body_timeout);
    config.keep_alive_timeout = ms(options.keep_alive_timeout_ms, config.keep_alive_timeout);
    config.write_timeout = ms(options.write_timeout_ms, config.write_timeout);
    let count = |v: Option<u32>, default: usize| v.map_or(default, |n| n as usize);
    config.max_header_size = count(options.max_header_size, config.max_header_size);
    config.max_header_count = count(options.max_header_count, config.max_header_count);
    config.max_url_length = count(options.max_url_length, config.max_url_length);
    config.max_connections = count(options.max_connections, config.max_connections);
    config.max_connections_per_ip = count(
        options.max_connections_per_ip,
        config.max_connections_per_ip,
    );
    config.max_pending_requests = count(options.max_pending_requests, config.max_pending_requests);
    if let Some(bytes) = options.max_body_size {
        config.max_body_size = bytes_option(bytes, "maxBodySize")?;
    }
    if let Some(rate) = options.rate_limit {
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Error::new(
                Status::InvalidArg,
                format!("rateLimit must be a non-negative number, got {rate}"),
            ));
        }
        config.rate_limit = rate;
    }
    if let Some(n) = options.rate_burst {
        config.rate_burst = n;
    }
    if let Some(on) = options.http2 {
        config.http2.enabled = on;
    }
    if let Some(n) = options.http2_max_concurrent_streams {
        config.http2.max_concurrent_streams = n;
    }
    if let Some(n) = options.http2_initial_window_size {
        if !(1..=(1 << 31) - 1).contains(&n) {
            return Err(Error::new(
                Status::InvalidArg,
                format!("http2.initialWindowSize must be 1 to 2147483647, got {n}"),
            ));
        }
        config.http2.initial_window_size = n;
    }
    if let Some(n) = options.http2_max_header_list_size {
        config.http2.max_header_list_size = n;
    }
    if let Some(bytes) = options.high_water_mark {
        config.high_water_mark = bytes_option(bytes, "highWaterMark")? as usize;
    }
    if let Some(role) = &options.port_group {
        let role = match role.as_str() {
            "founds" => harrier_core::GroupRole::Founds,
            "joins" => harrier_core::GroupRole::Joins,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("portGroup must be 'founds' or 'joins', got {other:?}"),
                ))
            }
        };
        if options.driver != "inline" {
            return Err(Error::new(
                Status::InvalidArg,
                "a port group needs the inline driver",
            ));
        }
        config.port_group = Some(harrier_core::GroupJoin {
            role,
            member: options.group_member.unwrap_or(0),
        });
    }
    if let Some(balance) = &options.balance {
        config.balance = match balance.as_str() {
            "reuseport" => harrier_core::Balance::ReusePort,
            "handoff" => harrier_core::Balance::Handoff,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("balance must be 'reuseport' or 'handoff', got {other:?}"),
                ))
            }
        };
    }
    if let Some(format) = &options.access_log_format {
        let format = match format.as_str() {
            "combined" => LogFormat::Combined,
            "json" => LogFormat::Json,
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("accessLog format must be 'combined' or 'json', got {other:?}"),
                ))
            }
        };
        config.access_log = Some(AccessLogConfig {
            format,
            path: options
                .access_log_path
                .as_ref()
                .map(std::path::PathBuf::from),
        });
    }
    Ok(config)
}

fn bytes_option(bytes: f64, name: &str) -> Result<u64> {
    if bytes.is_finite() && bytes >= 0.0 && bytes.fract() == 0.0 && bytes < 2f64.powi(63) {
        Ok(bytes as u64)
    } else {
        Err(Error::new(
            Status::InvalidArg,
            format!("{name} must be a non-negative integer, got {bytes}"),
        ))
    }
}

/// A listener that could not be had is thrown as Node's `net.Server` throws it (`code`,
/// `errno`, `syscall`, `address`, `port`, and its message); a backend that cannot run here is
/// said as such (`io unavailable: ...`), and the JS side gives it its own error code.
fn listen_error(env: &Env, e: std::io::Error) -> Error {
    if let Some(refused) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<harrier_core::ListenError>())
    {
        return node_error(env, refused)
            .unwrap_or_else(|_| Error::new(Status::GenericFailure, refused.to_string()));
    }
    if e.kind() == std::io::ErrorKind::Unsupported {
        return Error::new(Status::GenericFailure, format!("io unavailable: {e}"));
    }
    Error::new(Status::GenericFailure, format!("listen failed: {e}"))
}

fn node_error(env: &Env, refused: &harrier_core::ListenError) -> Result<Error> {
    let mut error = env.create_error(Error::new(Status::GenericFailure, refused.to_string()))?;
    error.set("code", refused.code.as_str())?;
    if refused.errno != 0 {
        error.set("errno", refused.errno)?;
    }
    error.set("syscall", refused.syscall)?;
    if refused.syscall == "getaddrinfo" {
        error.set("hostname", refused.address.as_str())?;
    } else {
        error.set("address", refused.address.as_str())?;
        error.set("port", refused.port as u32)?;
    }
    Ok(Error::from(error.to_unknown()))
}

#[napi]
impl NativeServer {
    /// Binds and starts the engine. `on_batch(bytes, meta)` receives every batch. The reply
    /// buffer and its shared words (`[bytes written, a turn under way]`) are where JS writes
    /// its answers: the inline driver takes them itself at the end of each batch, after its
    /// promise jobs ran (no call back into JS for it); `replyBuffer()` follows the buffer
    /// when JS grows it.
    #[napi(factory)]
    pub fn listen(
        env: Env,
        options: ListenOptions,
        routes: Vec<RouteSpec>,
        #[napi(
            ts_arg_type = "(bytes: Buffer, meta: Uint32Array, bytesStart?: number, bytesEnd?: number, metaStart?: number, metaEnd?: number) => void"
        )]
        on_batch: Function<FnArgs<(Buffer, Uint32Array)>, ()>,
        #[napi(ts_arg_type = "Buffer")] reply_buffer: Unknown,
        #[napi(ts_arg_type = "Uint32Array")] reply_shared: Unknown,
    ) -> Result<NativeServer> {
        let mut router = Router::new();
        for (id, route) in routes.iter().enumerate() {
            router
                .add(&route.method, &route.path, id as u32)
                .map_err(|e| Error::new(Status::InvalidArg, e.0))?;
        }
        let mut config = config(&options)?;
        let tls = options
            .tls
            .as_ref()
            .map(|tls| tls_settings(&env, tls))
            .transpose()?;
        config.tls = tls.clone();
        for route in &routes {
            config.route_body_limits.push(
                route
                    .body_limit
                    .map(|b| bytes_option(b, "bodyLimit"))
                    .transpose()?,
            );
            config.statics.push(static_mount(route)?);
            config.websockets.push(websocket(route)?);
            config.ops_routes.push(ops_route(route)?);
        }
        let (driver, addr, io, metrics) = match options.driver.as_str() {
            "threads" => {
                let handler = threads::TsfnHandler {
                    callback: threads::callback(on_batch)?,
                };
                let server = Server::start(config, router, Box::new(handler))
                    .map_err(|e| listen_error(&env, e))?;
                let (addr, io, metrics) = (server.local_addr(), server.backend(), server.metrics());
                (
                    Driver::Threads {
                        replier: server.replier(),
                        server: Mutex::new(Some(server)),
                    },
                    addr,
                    io,
                    metrics,
                )
            }
            #[cfg(unix)]
            "inline" => {
                let replies = unsafe {
                    inline::SharedReplies::new(env.raw(), reply_buffer.raw(), reply_shared.raw())?
                };
                let handler =
                    unsafe { inline::JsCaller::new(env.raw(), on_batch.raw(), replies.clone())? };
                let engine = harrier_core::InlineServer::start(config, router, Box::new(handler))
                    .map_err(|e| listen_error(&env, e))?;
                let (addr, io, metrics) = (engine.local_addr(), engine.backend(), engine.metrics());
                (
                    Driver::Inline(inline::InlineDriver::start(&env, engine, replies)?),
                    addr,
                    io,
                    metrics,
                )
            }
            other => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("unknown driver {other:?} on this platform"),
                ))
            }
        };
        #[cfg(not(unix))]
        let _ = (&reply_buffer, &reply_shared);
        Ok(NativeServer {
            driver,
            tls,
            metrics,
            port: addr.port() as u32,
            host: addr.ip().to_string(),
            io,
        })
    }

    /// The I/O backend serving: `uring`, or `epoll` (`kqueue`, `iocp`).
    #[napi(getter)]
    pub fn io(&self) -> String {
        self.io.to_string()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The reply buffer JS writes into from now on (it grew); see `listen`.
    #[napi(ts_args_type = "buffer: Buffer")]
    pub fn reply_buffer(&self, buffer: Unknown) -> Result<()> {
        match &self.driver {
            Driver::Threads { .. } => Ok(()),
            #[cfg(unix)]
            Driver::Inline(d) => d.reply_buffer(buffer.raw()),
        }
    }

    /// New handshakes use these certificates; open connections keep theirs. Throws (and the
    /// old certificates stay) if they cannot serve.
    #[napi]
    pub fn reload_tls(&self, env: Env, tls: TlsOptions) -> Result<()> {
        let Some(settings) = &self.tls else {
            return Err(tls_error(
                &env,
                "reloadTls: this app does not listen with TLS",
            ));
        };
        settings.reload(cert_set(&env, &tls)?);
        Ok(())
    }

    /// The engine's figures as JSON (the shape `app.metrics()` documents).
    #[napi]
    pub fn metrics_json(&self) -> String {
        harrier_core::ops::snapshot_json(&self.metrics.snapshot())
    }

    /// The JS thread's event-loop delay (ms) over the last interval, for the figures the
    /// engine answers with while JS may be busy.
    #[napi]
    pub fn report_loop_delay(&self, p50_ms: f64, p99_ms: f64, max_ms: f64) {
        let ns = |ms: f64| {
            if ms.is_finite() && ms > 0.0 {
                (ms * 1e6) as u64
            } else {
                0
            }
        };
        self.metrics
            .report_loop_delay(ns(p50_ms), ns(p99_ms), ns(max_ms));
    }

    /// Sockets subscribed to `topic` on the other engines of this one's port group.
    #[napi]
    pub fn peer_subscriber_count(&self, topic: String) -> u32 {
        self.metrics.peer_subscriber_count(topic.as_bytes()) as u32
    }

    /// Whether this engine is of a port group.
    #[napi(getter)]
    pub fn grouped(&self) -> bool {
        self.metrics.group().is_some()
    }

    /// The figures of this engine's port group (see `groupMetricsJson`); `null` alone.
    #[napi]
    pub fn group_metrics_json(&self) -> Option<String> {
        self.metrics.group().and_then(|g| group_json(&g))
    }

    /// Health routes answer 503 from now on (a drain is coming: `drainDelay`).
    #[napi]
    pub fn announce_drain(&self) {
        self.metrics.announce_drain();
    }

    /// Every reply op finished in one JS turn, in one call.
    #[napi]
    pub fn respond(&self, ops: &[u8]) {
        match &self.driver {
            Driver::Threads { replier, .. } => replier.send(ops),
            #[cfg(unix)]
            Driver::Inline(d) => d.respond(ops),
        }
    }

    /// Stops accepting, finishes what is in flight, and resolves when the engine is done.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        match &self.driver {
            Driver::Threads { server, .. } => {
                let (deferred, promise) = env.create_deferred::<(), Resolver>()?;
                threads::drain(server.lock().unwrap().take(), deferred);
                Ok(promise.to_unknown())
            }
            #[cfg(unix)]
            Driver::Inline(d) => {
                let (deferred, promise) = env.create_deferred::<(), Resolver>()?;
                d.close(deferred);
                Ok(promise.to_unknown())
            }
        }
    }
}
