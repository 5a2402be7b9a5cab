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
/// promise jobs handlers start run before the turn ends; every answer given meanwhile is
/// left in the shared reply buffer, where the engine reads it in place in the same turn.
pub(crate) struct JsCaller {
    env: sys::napi_env,
    on_batch: sys::napi_ref,
    resource: sys::napi_ref,
    async_context: sys::napi_async_context,
    arena: RefCell<Option<Arena>>,
    replies: std::mem::ManuallyDrop<Rc<SharedReplies>>,
    /// The JS thread it calls. The engine it serves may be let go last on another thread (a
    /// port group's publish held it for a moment while its worker went away): then what it
    /// holds of that thread's environment is left to the environment's teardown.
    owner: std::thread::ThreadId,
}

/// The buffer JS writes its reply ops into (lib/reply-buffer.ts) and two words shared with
/// it: the bytes written and not yet taken, and whether a turn is under way (then JS leaves
/// the taking to the turn's end: no flush of its own, no call into native per batch).
pub(crate) struct SharedReplies {
    env: sys::napi_env,
    buffer: Cell<(sys::napi_ref, *const u8, usize)>,
    words: (sys::napi_ref, *mut u32),
}

const WRITTEN: usize = 0;
const TURN: usize = 1;

impl SharedReplies {
    pub unsafe fn new(
        env: sys::napi_env,
        buffer: sys::napi_value,
        words: sys::napi_value,
    ) -> Result<Rc<SharedReplies>> {
        let mut kind = sys::TypedarrayType::int8_array;
        let (mut len, mut data, mut ab, mut offset) =
            (0usize, ptr::null_mut::<c_void>(), ptr::null_mut(), 0usize);
        check(sys::napi_get_typedarray_info(
            env,
            words,
            &mut kind,
            &mut len,
            &mut data,
            &mut ab,
            &mut offset,
        ))?;
        if kind != sys::TypedarrayType::uint32_array || len < 2 {
            return Err(Error::new(
                Status::InvalidArg,
                "the reply words must be a Uint32Array of 2",
            ));
        }
        let replies = SharedReplies {
            env,
            buffer: Cell::new((ptr::null_mut(), ptr::null(), 0)),
            words: (reference(env, words)?, data as *mut u32),
        };
        replies.follow(buffer)?;
        Ok(Rc::new(replies))
    }

    /// Takes the buffer JS writes into from now on.
    pub unsafe fn follow(&self, buffer: sys::napi_value) -> Result<()> {
        let (mut data, mut len) = (ptr::null_mut::<c_void>(), 0usize);
        check(sys::napi_get_buffer_info(
            self.env, buffer, &mut data, &mut len,
        ))?;
        let new = reference(self.env, buffer)?;
        let (old, _, _) = self.buffer.replace((new, data as *const u8, len));
        if !old.is_null() {
            sys::napi_delete_reference(self.env, old);
        }
        Ok(())
    }

    fn word(&self, i: usize) -> *mut u32 {
        // SAFETY: two words, kept alive by the reference.
        unsafe { self.words.1.add(i) }
    }

    fn begin_turn(&self) {
        unsafe { *self.word(TURN) = 1 };
    }

    /// Ends the turn. What JS wrote during it stays in the buffer until the engine takes it
    /// (`take_written`), before JS runs again.
    fn end_turn(&self) {
        unsafe { *self.word(TURN) = 0 };
    }

    /// Gives what JS wrote and nobody took yet to `apply`, in place, then lets JS write
    /// over it. Not while JS is in a turn (the engine called from a handler).
    fn take_written(&self, apply: &mut dyn FnMut(&[u8])) {
        unsafe {
            let written = *self.word(WRITTEN) as usize;
            if written == 0 || *self.word(TURN) != 0 {
                return;
            }
            let (_, data, len) = self.buffer.get();
            if written <= len {
                // SAFETY: the buffer is kept alive by its reference; JS does not run while
                // `apply` reads it (the engine calls no handler while it applies ops).
                apply(std::slice::from_raw_parts(data, written));
            }
            *self.word(WRITTEN) = 0;
        }
    }
}

impl Drop for SharedReplies {
    fn drop(&mut self) {
        unsafe {
            sys::napi_delete_reference(self.env, self.buffer.get().0);
            sys::napi_delete_reference(self.env, self.words.0);
        }
    }
}

/* 64k of heads (some 300 requests) per arena: what a retained request pins, at most. */
const ARENA_BYTES: usize = 64 * 1024;
const ARENA_WORDS: usize = 16 * 1024;

/// Where batches of request heads are written for JS, one after the other, never over one
/// already handed over: a batch costs JS two views (`subarray`) instead of two buffers of
/// its own (each an allocation, a backing store and a sweep). A request keeps its arena
/// alive while it is referenced, so its data stays valid after `await`; a full arena is let
/// go to the garbage collector and a new one begun. User code never sees an arena: body
/// chunks are copied out of it (lib/app.ts, `ownCopy`).
struct Arena {
    bytes: sys::napi_ref,
    bytes_at: *mut u8,
    bytes_used: usize,
    meta: sys::napi_ref,
    meta_at: *mut u32,
    meta_used: usize,
}

impl Arena {
    unsafe fn new(env: sys::napi_env) -> Option<Arena> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut bytes = ptr::null_mut();
        if sys::napi_create_buffer(env, ARENA_BYTES, &mut data, &mut bytes) != sys::Status::napi_ok
        {
            return None;
        }
        let bytes_at = data as *mut u8;
        // The words' memory as a Buffer too: an ArrayBuffer made by napi is zeroed first,
        // 64k of memset per arena for words that are written before they are read.
        let mut words = ptr::null_mut();
        if sys::napi_create_buffer(env, ARENA_WORDS * 4, &mut data, &mut words)
            != sys::Status::napi_ok
        {
            return None;
        }
        let (mut kind, mut len, mut at, mut buffer, mut offset) = (
            sys::TypedarrayType::uint8_array,
            0usize,
            ptr::null_mut::<c_void>(),
            ptr::null_mut(),
            0usize,
        );
        if sys::napi_get_typedarray_info(
            env,
            words,
            &mut kind,
            &mut len,
            &mut at,
            &mut buffer,
            &mut offset,
        ) != sys::Status::napi_ok
            || offset % 4 != 0
        {
            return None;
        }
        let mut meta = ptr::null_mut();
        if sys::napi_create_typedarray(
            env,
            sys::TypedarrayType::uint32_array,
            ARENA_WORDS,
            buffer,
            offset,
            &mut meta,
        ) != sys::Status::napi_ok
        {
            return None;
        }
        Some(Arena {
            bytes: reference(env, bytes).ok()?,
            bytes_at,
            bytes_used: 0,
            meta: reference(env, meta).ok()?,
            meta_at: data as *mut u32,
            meta_used: 0,
        })
    }

    fn fits(&self, batch: &Batch) -> bool {
        self.bytes_used + batch.bytes.len() <= ARENA_BYTES
            && self.meta_used + batch.meta.len() <= ARENA_WORDS
    }

    unsafe fn release(self, env: sys::napi_env) {
        sys::napi_delete_reference(env, self.bytes);
        sys::napi_delete_reference(env, self.meta);
    }
}

/// A batch as the JS callback takes it: `(bytes, meta)`, or views of an arena's
/// `(bytes, meta, bytesStart, bytesEnd, metaStart, metaEnd)`.
struct BatchArgs {
    values: [sys::napi_value; 6],
    count: usize,
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
        Err(Error::new(
            Status::from(status),
            "napi call failed in the inline driver",
        ))
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

/* A batch this large (WebSocket messages, bodies) goes to JS in its own memory, not copied
into an arena: an external buffer's finalizer costs less than the copy, and JS hands a
socket's messages views of a batch that holds nothing else (lib/app.ts). */
const OWN_MEMORY_BYTES: usize = 32 * 1024;

/// The batch's bytes, given to JS as they are: the buffer frees them when collected.
/// Copied where the runtime allows no external buffers.
unsafe fn buffer_own(env: sys::napi_env, data: Vec<u8>) -> sys::napi_value {
    unsafe extern "C" fn free(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
        drop(Box::from_raw(hint as *mut Vec<u8>));
    }
    let mut data = Box::new(data);
    let (at, len) = (data.as_mut_ptr(), data.len());
    let hint = Box::into_raw(data);
    let mut out = ptr::null_mut();
    if sys::napi_create_external_buffer(env, len, at.cast(), Some(free), hint.cast(), &mut out)
        != sys::Status::napi_ok
    {
        let data = Box::from_raw(hint);
        return buffer_copy(env, &data);
    }
    out
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
    sys::napi_create_typedarray(
        env,
        sys::TypedarrayType::uint32_array,
        data.len(),
        buffer,
        0,
        &mut out,
    );
    out
}

impl JsCaller {
    pub unsafe fn new(
        env: sys::napi_env,
        on_batch: sys::napi_value,
        replies: Rc<SharedReplies>,
    ) -> Result<JsCaller> {
        let mut resource = ptr::null_mut();
        check(sys::napi_create_object(env, &mut resource))?;
        let mut name = ptr::null_mut();
        check(sys::napi_create_string_utf8(
            env,
            c"harrier".as_ptr(),
            7,
            &mut name,
        ))?;
        let mut async_context = ptr::null_mut();
        check(sys::napi_async_init(
            env,
            resource,
            name,
            &mut async_context,
        ))?;
        Ok(JsCaller {
            env,
            on_batch: reference(env, on_batch)?,
            resource: reference(env, resource)?,
            async_context,
            arena: RefCell::new(None),
            replies: std::mem::ManuallyDrop::new(replies),
            owner: std::thread::current().id(),
        })
    }

    /// Puts the batch where JS reads it: its own memory (`OWN_MEMORY_BYTES` or more), the
    /// current arena, a new one, or (more words than an arena holds) buffers of its own.
    unsafe fn batch_args(&self, batch: &mut Batch) -> BatchArgs {
        let env = self.env;
        let mut values = [ptr::null_mut(); 6];
        if batch.bytes.len() >= OWN_MEMORY_BYTES {
            values[0] = buffer_own(env, std::mem::take(&mut batch.bytes));
            values[1] = u32_array_copy(env, &batch.meta);
            return BatchArgs { values, count: 2 };
        }
        if let Some((b0, b1, m0, m1)) = self.into_arena(batch) {
            let slot = self.arena.borrow();
            let arena = slot.as_ref().unwrap();
            values[0] = deref(env, arena.bytes);
            values[1] = deref(env, arena.meta);
            for (i, n) in [b0, b1, m0, m1].into_iter().enumerate() {
                sys::napi_create_uint32(env, n as u32, &mut values[2 + i]);
            }
            return BatchArgs { values, count: 6 };
        }
        values[0] = buffer_copy(env, &batch.bytes);
        values[1] = u32_array_copy(env, &batch.meta);
        BatchArgs { values, count: 2 }
    }

    /// Copies the batch into the current arena (or a new one); returns where it lies
    /// (bytes start and end, words start and end), or `None` when it does not fit one.
    unsafe fn into_arena(&self, batch: &Batch) -> Option<(usize, usize, usize, usize)> {
        if batch.bytes.len() > ARENA_BYTES || batch.meta.len() > ARENA_WORDS {
            return None;
        }
        let mut slot = self.arena.borrow_mut();
        if !slot.as_ref().is_some_and(|a| a.fits(batch)) {
            if let Some(full) = slot.take() {
                full.release(self.env);
            }
            *slot = Arena::new(self.env);
        }
        let arena = slot.as_mut()?;
        // SAFETY: both regions are inside the arena's buffers (checked by `fits`), which the
        // references keep alive, and no view handed to JS covers them yet.
        ptr::copy_nonoverlapping(
            batch.bytes.as_ptr(),
            arena.bytes_at.add(arena.bytes_used),
            batch.bytes.len(),
        );
        ptr::copy_nonoverlapping(
            batch.meta.as_ptr(),
            arena.meta_at.add(arena.meta_used),
            batch.meta.len(),
        );
        let (b0, m0) = (arena.bytes_used, arena.meta_used);
        arena.bytes_used += batch.bytes.len();
        arena.meta_used += batch.meta.len();
        Some((b0, arena.bytes_used, m0, arena.meta_used))
    }
}

impl Handler for JsCaller {
    fn on_batch(&self, batch: &mut Batch, _replier: &Replier) {
        unsafe {
            let env = self.env;
            let mut handles = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut handles);
            self.replies.begin_turn();
            let mut scope = ptr::null_mut();
            sys::napi_open_callback_scope(
                env,
                deref(env, self.resource),
                self.async_context,
                &mut scope,
            );
            let args = self.batch_args(batch);
            let mut undefined = ptr::null_mut();
            sys::napi_get_undefined(env, &mut undefined);
            let mut result = ptr::null_mut();
            let status = sys::napi_call_function(
                env,
                undefined,
                deref(env, self.on_batch),
                args.count,
                args.values.as_ptr(),
                &mut result,
            );
            rethrow_pending(env, status);
            // Closing the outermost callback scope runs the promise jobs queued by handlers:
            // what they answered is taken with the rest, in this turn.
            sys::napi_close_callback_scope(env, scope);
            self.replies.end_turn();
            sys::napi_close_handle_scope(env, handles);
        }
    }

    fn take_written(&self, apply: &mut dyn FnMut(&[u8])) {
        self.replies.take_written(apply);
    }
}

impl Drop for JsCaller {
    fn drop(&mut self) {
        if std::thread::current().id() != self.owner {
            return;
        }
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.replies);
            sys::napi_delete_reference(self.env, self.on_batch);
            sys::napi_delete_reference(self.env, self.resource);
            if let Some(arena) = self.arena.borrow_mut().take() {
                arena.release(self.env);
            }
            sys::napi_async_destroy(self.env, self.async_context);
        }
    }
}

pub(crate) struct InlineDriver {
    /// Dropped once finished: the engine's descriptors (poll or ring, listener) go with it.
    engine: RefCell<Option<InlineServer>>,
    replier: Replier,
    replies: Rc<SharedReplies>,
    stop: ShutdownSignal,
    poll: RefCell<Option<UvHandle>>,
    timer: RefCell<Option<UvHandle>>,
    finished: Cell<bool>,
    waiting: RefCell<Vec<JsDeferred<(), Resolver>>>,
    /// The hook Node calls when this thread's environment goes away while the engine still
    /// runs (a worker thread that crashed or exited): registered until the engine finishes.
    cleanup: Cell<sys::napi_async_cleanup_hook_handle>,
    /// Set once the environment is being torn down: the hook to remove once the libuv
    /// handles are closed.
    teardown: Cell<sys::napi_async_cleanup_hook_handle>,
    /// libuv handles not closed yet.
    open_handles: Cell<u8>,
}

impl InlineDriver {
    pub fn start(
        env: &Env,
        engine: InlineServer,
        replies: Rc<SharedReplies>,
    ) -> Result<Rc<InlineDriver>> {
        let driver = Rc::new(InlineDriver {
            replier: engine.replier(),
            replies,
            stop: engine.shutdown_signal(),
            engine: RefCell::new(Some(engine)),
            poll: RefCell::new(None),
            timer: RefCell::new(None),
            finished: Cell::new(false),
            waiting: RefCell::new(Vec::new()),
            cleanup: Cell::new(ptr::null_mut()),
            teardown: Cell::new(ptr::null_mut()),
            open_handles: Cell::new(0),
        });
        unsafe {
            let mut event_loop = ptr::null_mut();
            check(sys::napi_get_uv_event_loop(env.raw(), &mut event_loop))?;
            let fd = driver.engine.borrow().as_ref().map_or(-1, |e| e.raw_fd()) as c_int;
            // Each handle holds a strong count, given back by its close callback.
            let data = Rc::into_raw(driver.clone()) as *const c_void;
            let poll = UvHandle::poll(event_loop, fd, data, on_poll).map_err(|rc| {
                drop(Rc::from_raw(data as *const InlineDriver));
                Error::new(
                    Status::GenericFailure,
                    format!("libuv refused to watch the engine's descriptor ({rc})"),
                )
            })?;
            *driver.poll.borrow_mut() = Some(poll);
            let data = Rc::into_raw(driver.clone()) as *const c_void;
            let timer = UvHandle::timer(event_loop, TICK_MS, data, on_timer).map_err(|rc| {
                drop(Rc::from_raw(data as *const InlineDriver));
                Error::new(
                    Status::GenericFailure,
                    format!("libuv refused a timer ({rc})"),
                )
            })?;
            *driver.timer.borrow_mut() = Some(timer);
            driver.open_handles.set(2);
            // The hook holds a strong count too, given back when it is removed or has run.
            let data = Rc::into_raw(driver.clone()) as *mut c_void;
            let mut hook = ptr::null_mut();
            if sys::napi_add_async_cleanup_hook(env.raw(), Some(on_env_teardown), data, &mut hook)
                == sys::Status::napi_ok
            {
                driver.cleanup.set(hook);
            } else {
                drop(Rc::from_raw(data as *const InlineDriver));
            }
        }
        // Connections may have arrived between bind and watch: take a first turn.
        driver.turn(|e| e.step().map_err(|e| e.to_string()));
        Ok(driver)
    }

    /// Runs `f` on the engine unless a turn is already under way (JS called back into us from
    /// inside one: what it asked for is picked up when that turn ends).
    fn turn(&self, f: impl FnOnce(&mut InlineServer) -> std::result::Result<(), String>) {
        let Ok(mut slot) = self.engine.try_borrow_mut() else {
            return;
        };
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

    pub fn reply_buffer(&self, buffer: sys::napi_value) -> Result<()> {
        unsafe { self.replies.follow(buffer) }
    }

    /// Ops JS flushed outside a turn: applied where they lie, or, when the engine is in a
    /// turn already (JS called from inside one), copied to its inbox for that turn's end.
    pub fn respond(&self, ops: &[u8]) {
        match self.engine.try_borrow_mut() {
            Ok(mut slot) => {
                if let Some(engine) = slot.as_mut() {
                    engine.apply(ops);
                }
            }
            Err(_) => self.replier.send(ops),
        }
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
        let hook = self.cleanup.replace(ptr::null_mut());
        if !hook.is_null() {
            unsafe {
                sys::napi_remove_async_cleanup_hook(hook);
                // The hook's strong count; the caller and the handles still hold theirs.
                drop(Rc::from_raw(self as *const InlineDriver));
            }
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
        let driver = Rc::from_raw(UvHandle::data(handle) as *const InlineDriver);
        UvHandle::free(handle);
        let open = driver.open_handles.get().saturating_sub(1);
        driver.open_handles.set(open);
        if open == 0 {
            let hook = driver.teardown.replace(ptr::null_mut());
            if !hook.is_null() {
                // The environment's teardown waited for these handles: it may go on.
                sys::napi_remove_async_cleanup_hook(hook);
            }
        }
    }
}

/// The thread's environment goes away with the engine still running (a worker that
/// crashed, called `process.exit`, or was terminated): the engine is dropped without a
/// drain (its connections close, their requests fail; the listener stops listening, so
/// the kernel hands the port's new connections to the other listeners of its group), and
/// the libuv handles are closed before the loop is.
unsafe extern "C" fn on_env_teardown(hook: sys::napi_async_cleanup_hook_handle, data: *mut c_void) {
    let driver = Rc::from_raw(data as *const InlineDriver);
    driver.cleanup.set(ptr::null_mut());
    if driver.finished.replace(true) {
        sys::napi_remove_async_cleanup_hook(hook);
        return;
    }
    if let Ok(mut slot) = driver.engine.try_borrow_mut() {
        if let Some(engine) = slot.take() {
            engine.abandon();
        }
    }
    // Nobody is left to hear of the close: its promises are let go unresolved.
    for deferred in driver.waiting.borrow_mut().drain(..) {
        std::mem::forget(deferred);
    }
    driver.teardown.set(hook);
    let handles = [
        driver.poll.borrow_mut().take(),
        driver.timer.borrow_mut().take(),
    ];
    let mut closing = 0;
    for h in handles.into_iter().flatten() {
        h.close(on_closed);
        closing += 1;
    }
    if closing == 0 {
        driver.teardown.set(ptr::null_mut());
        sys::napi_remove_async_cleanup_hook(hook);
    }
}
