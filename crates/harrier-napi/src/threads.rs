//! The threads driver: N I/O threads hand batches to JS through a threadsafe function and
//! write the answers themselves.

use harrier_core::{Batch, Handler, Replier, Server};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsDeferred;

use crate::Resolver;

/// Weak: a listening server is kept alive by the JS side (a referenced handle), so that
/// nothing native holds the process once the app is closed.
pub(crate) type BatchCallback =
    ThreadsafeFunction<Batch, (), FnArgs<(Buffer, Uint32Array)>, Status, false, true>;

pub(crate) struct TsfnHandler {
    pub callback: BatchCallback,
}

impl Handler for TsfnHandler {
    fn on_batch(&self, batch: &mut Batch, _replier: &Replier) {
        // The batch crosses to the JS thread: it is taken whole (the engine starts anew).
        let batch = Batch {
            thread: batch.thread,
            bytes: std::mem::take(&mut batch.bytes),
            meta: std::mem::take(&mut batch.meta),
        };
        // NonBlocking: the queue is unbounded, and an I/O thread must never wait on JS.
        self.callback
            .call(batch, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

pub(crate) fn callback(
    on_batch: Function<FnArgs<(Buffer, Uint32Array)>, ()>,
) -> Result<BatchCallback> {
    on_batch
        .build_threadsafe_function::<Batch>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(|ctx| {
            Ok(FnArgs::from((
                Buffer::from(ctx.value.bytes),
                Uint32Array::new(ctx.value.meta),
            )))
        })
}

/// Starts the drain and waits for the I/O threads on a thread of its own, so that JS keeps
/// serving the in-flight requests meanwhile; then resolves `done` on the JS thread.
pub(crate) fn drain(server: Option<Server>, done: JsDeferred<(), Resolver>) {
    let Some(server) = server else {
        done.resolve(|_| Ok(()));
        return;
    };
    server.shutdown();
    let spawned = std::thread::Builder::new()
        .name("harrier-drain".into())
        .spawn(move || {
            server.join();
            done.resolve(|_| Ok(()));
        });
    if let Err(e) = spawned {
        eprintln!("harrier: cannot wait for the I/O threads: {e}");
    }
}
