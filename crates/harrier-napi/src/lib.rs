//! The napi bridge: starts the engine for a JS app, carries batches of requests to one JS
//! callback through a threadsafe function, and takes replies back in one call per flush.

use std::sync::Mutex;
use std::time::Duration;

use harrier_core::{Batch, Config, Handler, Replier, Router, Server};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// Weak: a listening server is kept alive by the JS side (a referenced handle), so that
/// nothing native holds the process once the app is closed.
type BatchCallback = ThreadsafeFunction<Batch, (), FnArgs<(Buffer, Uint32Array)>, Status, false, true>;

struct JsHandler {
    callback: BatchCallback,
}

impl Handler for JsHandler {
    fn on_batch(&self, batch: Batch, _replier: &Replier) {
        // NonBlocking: the queue is unbounded, and an I/O thread must never wait on JS.
        self.callback.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

#[napi(object)]
pub struct ListenOptions {
    pub host: String,
    pub port: u32,
    /// 0 or absent: one per core.
    pub io_threads: Option<u32>,
    pub handler_timeout_ms: Option<u32>,
    pub drain_timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct RouteSpec {
    /// Upper-case method, or `*` for every method.
    pub method: String,
    pub path: String,
}

/// Checks route paths without starting anything, so that `app.get` can throw at once.
#[napi]
pub fn check_route(method: String, path: String) -> Result<Vec<String>> {
    let mut router = Router::new();
    router.add(&method, &path, 0).map_err(|e| Error::new(Status::InvalidArg, e.0))?;
    Router::param_names(&path).map_err(|e| Error::new(Status::InvalidArg, e.0))
}

#[napi]
pub struct NativeServer {
    /// Taken by `close`; behind a lock so that `close` needs no `&mut` borrow of the JS object
    /// while `respond` calls keep coming during the drain.
    server: Mutex<Option<Server>>,
    replier: Replier,
    port: u32,
    host: String,
}

#[napi]
impl NativeServer {
    /// Binds and starts the I/O threads; `on_batch(bytes, meta)` receives every batch.
    #[napi(factory)]
    pub fn listen(
        options: ListenOptions,
        routes: Vec<RouteSpec>,
        on_batch: Function<FnArgs<(Buffer, Uint32Array)>, ()>,
    ) -> Result<NativeServer> {
        let mut router = Router::new();
        for (id, route) in routes.iter().enumerate() {
            router.add(&route.method, &route.path, id as u32).map_err(|e| Error::new(Status::InvalidArg, e.0))?;
        }
        let port = u16::try_from(options.port).map_err(|_| Error::new(Status::InvalidArg, format!("port {} is out of range", options.port)))?;
        let mut config = Config { host: options.host, port, ..Config::default() };
        if let Some(n) = options.io_threads {
            config.io_threads = n as usize;
        }
        if let Some(ms) = options.handler_timeout_ms {
            config.handler_timeout = Duration::from_millis(ms as u64);
        }
        if let Some(ms) = options.drain_timeout_ms {
            config.drain_timeout = Duration::from_millis(ms as u64);
        }
        let callback: BatchCallback = on_batch
            .build_threadsafe_function::<Batch>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|ctx| Ok(FnArgs::from((Buffer::from(ctx.value.bytes), Uint32Array::new(ctx.value.meta)))))?;
        let server = Server::start(config, router, Box::new(JsHandler { callback }))
            .map_err(|e| Error::new(Status::GenericFailure, format!("listen failed: {e}")))?;
        let addr = server.local_addr();
        Ok(NativeServer { replier: server.replier(), port: addr.port() as u32, host: addr.ip().to_string(), server: Mutex::new(Some(server)) })
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Every reply op finished in one JS turn, in one call.
    #[napi]
    pub fn respond(&self, ops: &[u8]) {
        self.replier.send(ops);
    }

    /// Stops accepting, finishes what is in flight, and resolves when every I/O thread is done.
    #[napi]
    pub fn close(&self) -> AsyncTask<Drain> {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = &server {
            server.shutdown();
        }
        AsyncTask::new(Drain { server })
    }
}

pub struct Drain {
    server: Option<Server>,
}

impl Task for Drain {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        if let Some(server) = self.server.take() {
            server.join();
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}
