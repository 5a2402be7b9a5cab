//! The inline driver: the engine runs on the JS thread, driven by Node's own event loop.
//! libuv watches the poll's descriptor; when it is readable the engine takes one
//! non-blocking turn and calls JS synchronously with the batch. No threadsafe function,
//! no second thread, no context switch per batch.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::rc::Rc;

use harrier_core::{Batch, Handler, InlineServer, Replier, ShutdownSignal};
use napi::bindgen_prelude::*;
use napi::sys;
use napi::JsDeferred;

use crate::uv::UvHandle;
use crate::Resolver;

/* Timeouts are coarse; 100 ms is what the threads driver sweeps at too. */
const TICK_MS: u64 = 100;


/// Calls the JS batch callback from the JS thread, inside a callback scope so that the
/// promise jobs handlers start run before the turn ends; then calls the flush callback so
/// that answers given in those jobs are written in the same turn.
pub(crate) struct JsCaller {
    env: sys::napi_env,
    on_batch: sys::napi_ref,
    on_flush: sys::napi_ref,
    resource: sys::napi_ref,
    async_context: sys::napi_async_context,
}

// The inline driver calls its handler only on the JS thread that created it; the engine's
// Handler bound asks for Send + Sync because the threads driver needs them.
unsafe impl Send for JsCaller {}
unsafe impl Sync for JsCaller {}

unsafe fn reference(env: sys::napi_env, value: sys::napi_value) -> Result<sys::napi_ref> {
    let mut r = ptr::null_mut();
    check(sys::napi_create_reference(env, value, 1, &mut r))?;
    Ok(r)
}

unsafe fn deref(env: sys::napi_env, r: sys::napi_ref) -> sys::napi_value {
    let mut v = ptr::null_mut();
    sys::napi_get_reference_value(env, r, &mut v);
    v
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), "napi call failed in the inline driver"))
    }
}

/// A JS exception from our own callbacks is a bug: surface it as an uncaught exception.
unsafe fn rethrow_pending(env: sys::napi_env, status: sys::napi_status) {
    if status == sys::Status::napi_pending_exception {
        let mut error = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(env, &mut error);
        sys::napi_fatal_exception(env, error);
    }
}

/// A batch is copied into memory V8 owns: cheaper than an external buffer, whose finalizer
/// costs a callback per batch, and the copy is small (heads, not bodies, dominate).
unsafe fn buffer_copy(env: sys::napi_env, data: &[u8]) -> sys::napi_value {
    let mut out = ptr::null_mut();
    let mut at = ptr::null_mut();
    sys::napi_create_buffer_copy(env, data.len(), data.as_ptr().cast(), &mut at, &mut out);
    out
}

unsafe fn u32_array_copy(env: sys::napi_env, data: &[u32]) -> sys::napi_value {
    let mut buffer = ptr::null_mut();
    let mut at: *mut c_void = ptr::null_mut();
    sys::napi_create_arraybuffer(env, data.len() * 4, &mut at, &mut buffer);
    ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u32, data.len());
    let mut out = ptr::null_mut();
    sys::napi_create_typedarray(env, sys::TypedarrayType::uint32_array, data.len(), buffer, 0, &mut out);
    out
}

impl JsCaller {
    pub unsafe fn new(env: sys::napi_env, on_batch: sys::napi_value, on_flush: sys::napi_value) -> Result<JsCaller> {
        let mut resource = ptr::null_mut();
        check(sys::napi_create_object(env, &mut resource))?;
        let mut name = ptr::null_mut();
        check(sys::napi_create_string_utf8(env, c"harrier".as_ptr(), 7, &mut name))?;
        let mut async_context = ptr::null_mut();
        check(sys::napi_async_init(env, resource, name, &mut async_context))?;
        Ok(JsCaller {
            env,
            on_batch: reference(env, on_batch)?,
            on_flush: reference(env, on_flush)?,
            resource: reference(env, resource)?,
            async_context,
        })
    }
}

impl Handler for JsCaller {
    fn on_batch(&self, batch: Batch, _replier: &Replier) {
        unsafe {
            let env = self.env;
            let mut handles = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut handles);
            let mut scope = ptr::null_mut();
            sys::napi_open_callback_scope(env, deref(env, self.resource), self.async_context, &mut scope);
            let bytes = buffer_copy(env, &batch.bytes);
            let meta = u32_array_copy(env, &batch.meta);
            let mut undefined = ptr::null_mut();
            sys::napi_get_undefined(env, &mut undefined);
            let mut result = ptr::null_mut();
            let args = [bytes, meta];
            let status = sys::napi_call_function(env, undefined, deref(env, self.on_batch), 2, args.as_ptr(), &mut result);
            rethrow_pending(env, status);
            // Closing the outermost callback scope runs the promise jobs queued by handlers.
            sys::napi_close_callback_scope(env, scope);
            let status = sys::napi_call_function(env, undefined, deref(env, self.on_flush), 0, ptr::null(), &mut result);
            rethrow_pending(env, status);
            sys::napi_close_handle_scope(env, handles);
        }
    }
}

impl Drop for JsCaller {
    fn drop(&mut self) {
        unsafe {
            sys::napi_delete_reference(self.env, self.on_batch);
            sys::napi_delete_reference(self.env, self.on_flush);
            sys::napi_delete_reference(self.env, self.resource);
            sys::napi_async_destroy(self.env, self.async_context);
        }
    }
}

pub(crate) struct InlineDriver {
    /// Dropped once finished: the engine's descriptors (poll or ring, listener) go with it.
    engine: RefCell<Option<InlineServer>>,
    replier: Replier,
    stop: ShutdownSignal,
    poll: RefCell<Option<UvHandle>>,
    timer: RefCell<Option<UvHandle>>,
    finished: Cell<bool>,
    waiting: RefCell<Vec<JsDeferred<(), Resolver>>>,
}

impl InlineDriver {
    pub fn start(env: &Env, engine: InlineServer) -> Result<Rc<InlineDriver>> {
        let driver = Rc::new(InlineDriver {
            replier: engine.replier(),
            stop: engine.shutdown_signal(),
            engine: RefCell::new(Some(engine)),
            poll: RefCell::new(None),
            timer: RefCell::new(None),
            finished: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
        });
        unsafe {
            let mut event_loop = ptr::null_mut();
            check(sys::napi_get_uv_event_loop(env.raw(), &mut event_loop))?;
            let fd = driver.engine.borrow().as_ref().map_or(-1, |e| e.raw_fd()) as c_int;
            // Each handle holds a strong count, given back by its close callback.
            let data = Rc::into_raw(driver.clone()) as *const c_void;
            let poll = UvHandle::poll(event_loop, fd, data, on_poll).map_err(|rc| {
                drop(Rc::from_raw(data as *const InlineDriver));
                Error::new(Status::GenericFailure, format!("libuv refused to watch the engine's descriptor ({rc})"))
            })?;
            *driver.poll.borrow_mut() = Some(poll);
            let data = Rc::into_raw(driver.clone()) as *const c_void;
            let timer = UvHandle::timer(event_loop, TICK_MS, data, on_timer).map_err(|rc| {
                drop(Rc::from_raw(data as *const InlineDriver));
                Error::new(Status::GenericFailure, format!("libuv refused a timer ({rc})"))
            })?;
            *driver.timer.borrow_mut() = Some(timer);
        }
        // Connections may have arrived between bind and watch: take a first turn.
        driver.turn(|e| e.step().map_err(|e| e.to_string()));
        Ok(driver)
    }

    /// Runs `f` on the engine unless a turn is already under way (JS called back into us from
    /// inside one: what it asked for is picked up when that turn ends).
    fn turn(&self, f: impl FnOnce(&mut InlineServer) -> std::result::Result<(), String>) {
        let Ok(mut slot) = self.engine.try_borrow_mut() else { return };
        let Some(engine) = slot.as_mut() else { return };
        if let Err(e) = f(engine) {
            eprintln!("harrier: inline driver: {e}");
        }
        engine.answer();
        // What the answers just submitted completed at once (io_uring sends) is taken now:
        // left in the ring, it would wake the loop again for nothing but bookkeeping.
        for _ in 0..4 {
            if !engine.has_completions() {
                break;
            }
            if let Err(e) = engine.step() {
                eprintln!("harrier: inline driver: {e}");
            }
            engine.answer();
        }
        let finished = engine.finished();
        drop(slot);
        if finished {
            self.finish();
        }
    }

    pub fn respond(&self, ops: &[u8]) {
        self.replier.send(ops);
        self.turn(|_| Ok(()));
    }

    /// Starts a graceful shutdown; `done` is resolved once the last connection is closed.
    pub fn close(&self, done: JsDeferred<(), Resolver>) {
        if self.finished.get() {
            done.resolve(|_| Ok(()));
            return;
        }
        self.waiting.borrow_mut().push(done);
        // The port refuses connections from here on, even when close() comes from a handler
        // in the middle of a turn; the drain starts at that turn's end, or now.
        self.stop.raise();
        self.turn(|e| {
            e.tick();
            Ok(())
        });
    }

    fn finish(&self) {
        if self.finished.replace(true) {
            return;
        }
        unsafe {
            if let Some(h) = self.poll.borrow_mut().take() {
                h.close(on_closed);
            }
            if let Some(h) = self.timer.borrow_mut().take() {
                h.close(on_closed);
            }
        }
        drop(self.engine.borrow_mut().take());
        for deferred in self.waiting.borrow_mut().drain(..) {
            deferred.resolve(|_| Ok(()));
        }
    }
}

unsafe fn driver_of<'a>(handle: *mut c_void) -> &'a InlineDriver {
    &*(UvHandle::data(handle) as *const InlineDriver)
}

extern "C" fn on_poll(handle: *mut c_void, _status: c_int, _events: c_int) {
    let driver = unsafe { driver_of(handle) };
    driver.turn(|e| e.step().map_err(|e| e.to_string()));
}

extern "C" fn on_timer(handle: *mut c_void) {
    let driver = unsafe { driver_of(handle) };
    driver.turn(|e| {
        e.tick();
        Ok(())
    });
}

extern "C" fn on_closed(handle: *mut c_void) {
    unsafe {
        drop(Rc::from_raw(UvHandle::data(handle) as *const InlineDriver));
        UvHandle::free(handle);
    }
}
