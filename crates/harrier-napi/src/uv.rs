//! The few libuv calls the inline driver needs, resolved from the Node binary at load time:
//! a poll watcher on the engine's epoll/kqueue descriptor and a timer for its timeouts.

use std::ffi::{c_int, c_void};

use napi::sys;

pub(crate) const UV_READABLE: c_int = 1;
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;

/* Larger than any uv_poll_t or uv_timer_t on the platforms Node supports. */
const HANDLE_BYTES: usize = 512;

#[repr(C, align(16))]
pub(crate) struct HandleMem([u8; HANDLE_BYTES]);

pub(crate) type PollCb = extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
pub(crate) type TimerCb = extern "C" fn(handle: *mut c_void);
pub(crate) type CloseCb = extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_timer_init(event_loop: *mut sys::uv_loop_s, handle: *mut c_void) -> c_int;
    fn uv_timer_start(handle: *mut c_void, cb: TimerCb, timeout: u64, repeat: u64) -> c_int;
    fn uv_close(handle: *mut c_void, cb: CloseCb);
    fn uv_unref(handle: *mut c_void);
}

/// A libuv handle whose memory we own; `data` (the first field of every handle) points at
/// what its callbacks need.
pub(crate) struct UvHandle(*mut HandleMem);

impl UvHandle {
    fn alloc(kind: c_int, data: *const c_void) -> UvHandle {
        assert!(
            unsafe { uv_handle_size(kind) } <= HANDLE_BYTES,
            "libuv handle larger than expected"
        );
        let mem = Box::into_raw(Box::new(HandleMem([0; HANDLE_BYTES])));
        unsafe { *(mem as *mut *const c_void) = data };
        UvHandle(mem)
    }

    pub fn ptr(&self) -> *mut c_void {
        self.0 as *mut c_void
    }

    /// Watches `fd` for readability; unreferenced: the JS side decides what keeps the process up.
    pub unsafe fn poll(
        event_loop: *mut sys::uv_loop_s,
        fd: c_int,
        data: *const c_void,
        cb: PollCb,
    ) -> Result<UvHandle, c_int> {
        let h = UvHandle::alloc(UV_POLL, data);
        let rc = uv_poll_init(event_loop, h.ptr(), fd);
        if rc != 0 {
            drop(Box::from_raw(h.0));
            return Err(rc);
        }
        let rc = uv_poll_start(h.ptr(), UV_READABLE, cb);
        uv_unref(h.ptr());
        if rc != 0 {
            h.close(free_only);
            return Err(rc);
        }
        Ok(h)
    }

    pub unsafe fn timer(
        event_loop: *mut sys::uv_loop_s,
        every_ms: u64,
        data: *const c_void,
        cb: TimerCb,
    ) -> Result<UvHandle, c_int> {
        let h = UvHandle::alloc(UV_TIMER, data);
        let rc = uv_timer_init(event_loop, h.ptr());
        if rc != 0 {
            drop(Box::from_raw(h.0));
            return Err(rc);
        }
        uv_timer_start(h.ptr(), cb, every_ms, every_ms);
        uv_unref(h.ptr());
        Ok(h)
    }

    /// Closes the handle; `cb` runs later on the loop and must call `free`.
    pub unsafe fn close(self, cb: CloseCb) {
        uv_close(self.ptr(), cb);
    }

    pub unsafe fn data(handle: *mut c_void) -> *const c_void {
        *(handle as *mut *const c_void)
    }

    /// Frees the memory of a closed handle (from its close callback).
    pub unsafe fn free(handle: *mut c_void) {
        drop(Box::from_raw(handle as *mut HandleMem));
    }
}

extern "C" fn free_only(handle: *mut c_void) {
    unsafe { UvHandle::free(handle) }
}
