//! What stands behind every C handle (`imstls_config_builder`, `imstls_ue`,
//! `imstls_driver`): a lock taken with `try_lock` (a concurrent or re-entrant call gets
//! `IMSTLS_BUSY` and never waits), a poison flag set when a call panics, the last error, and
//! the handle's callbacks.
//!
//! Callbacks and the lock: the log callback runs *inside* a call, on the calling thread, with
//! the handle locked — calling back into the same handle from it returns `IMSTLS_BUSY`. The
//! wake-up callback runs *after* the lock is released, so it may call back into imstls
//! freely.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::error::Failure;
use super::log::{self as ffi_log, LogSink};
use super::result::imstls_result;

/// A wake-up callback: "something is ready — outputs or events to poll, or a new socket or
/// deadline to wait for". Called on the thread that made the call which caused it, after
/// imstls released the handle's lock, with the `userdata` given when it was set. It may call
/// any imstls function, including on this handle (e.g. write to an eventfd, post to a Looper,
/// or poll outputs directly).
pub type imstls_wake_callback = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

#[derive(Clone, Copy)]
pub(crate) struct Wake {
    callback: unsafe extern "C" fn(*mut c_void),
    /// The C pointer, kept as an integer: imstls never dereferences it.
    userdata: usize,
}

impl Wake {
    pub(crate) fn new(callback: imstls_wake_callback, userdata: *mut c_void) -> Option<Self> {
        callback.map(|callback| Self {
            callback,
            userdata: userdata as usize,
        })
    }

    fn fire(self) {
        // SAFETY: the callback and userdata were registered together by the application,
        // whose contract is that the callback stays callable with that userdata until it is
        // replaced or the handle is freed. No lock is held.
        unsafe { (self.callback)(self.userdata as *mut c_void) }
    }
}

/// The state under the lock.
pub(crate) struct Locked<T> {
    pub inner: T,
    pub log: Option<LogSink>,
    pub wake: Option<Wake>,
}

/// What one call wants done after it releases the lock.
#[derive(Default)]
pub(crate) struct Call {
    /// Fire the wake-up callback.
    pub wake: bool,
    /// A failure event was delivered: record it as the last error.
    pub event_failure: Option<Failure>,
}

pub(crate) struct Handle<T> {
    state: Mutex<Locked<T>>,
    poisoned: AtomicBool,
    last_error: Mutex<Option<Failure>>,
}

impl<T> Handle<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            state: Mutex::new(Locked {
                inner,
                log: None,
                wake: None,
            }),
            poisoned: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    /// Runs one call on the locked state. `IMSTLS_BUSY` when another call holds the lock
    /// (nothing recorded, nothing done), `IMSTLS_POISONED` after a panic. An `Err` from
    /// `body` becomes the last error. A panic in `body` poisons the handle on its way to the
    /// export's `guard`.
    pub(crate) fn call<R>(
        &self,
        body: impl FnOnce(&mut Locked<T>, &mut Call) -> Result<R, Failure>,
    ) -> Result<R, imstls_result> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(imstls_result::IMSTLS_POISONED);
        }
        let Some(mut locked) = self.state.try_lock() else {
            return Err(imstls_result::IMSTLS_BUSY);
        };
        let poison = PoisonOnUnwind(self);
        let mut call = Call::default();
        let result = {
            let _log = ffi_log::enter(locked.log);
            body(&mut locked, &mut call)
        };
        let wake = locked.wake.filter(|_| call.wake);
        drop(locked);
        std::mem::forget(poison); // no panic: nothing to poison
        match &result {
            Err(failure) => self.record(failure.clone()),
            Ok(_) => {
                if let Some(failure) = call.event_failure {
                    self.record(failure);
                }
            }
        }
        if let Some(wake) = wake {
            wake.fire();
        }
        result.map_err(|f| f.result)
    }

    /// Records a failure that happened outside `call` (e.g. a NULL out-parameter found
    /// before locking) — only used where the handle itself is valid.
    pub(crate) fn record(&self, failure: Failure) {
        *self.last_error.lock() = Some(failure);
    }

    /// The last failure recorded (works on a busy or poisoned handle).
    pub(crate) fn last_error(&self) -> Option<Failure> {
        self.last_error.lock().clone()
    }

    /// True when no call is in progress; `_free` refuses to free a locked handle (a free
    /// from inside a callback would otherwise pull the state from under the running call).
    pub(crate) fn idle(&self) -> bool {
        !self.state.is_locked()
    }
}

/// Poisons the handle when dropped during a panic.
struct PoisonOnUnwind<'a, T>(&'a Handle<T>);

impl<T> Drop for PoisonOnUnwind<'_, T> {
    fn drop(&mut self) {
        // Only reached while unwinding: the normal path forgets the guard.
        self.0.poisoned.store(true, Ordering::Release);
        if let Some(mut slot) = self.0.last_error.try_lock() {
            *slot = Some(Failure::new(
                imstls_result::IMSTLS_PANIC,
                "imstls panicked inside a call; this handle is poisoned (please report the bug)",
            ));
        }
    }
}

/// A C handle type with a [`Handle`] inside.
pub(crate) trait HasHandle {
    type Inner;
    fn handle(&self) -> &Handle<Self::Inner>;
}

/// Runs `body` on the handle behind `ptr`: NULL → `IMSTLS_NULL_ARGUMENT`; busy →
/// `IMSTLS_BUSY`; poisoned → `IMSTLS_POISONED`; `Ok(())` → `IMSTLS_OK`; `Err` → its code
/// (recorded as the last error).
pub(crate) fn with<H: HasHandle>(
    ptr: *const H,
    what: &'static str,
    body: impl FnOnce(&mut Locked<H::Inner>, &mut Call) -> Result<(), Failure>,
) -> imstls_result {
    with_code(ptr, what, |locked, call| {
        body(locked, call).map(|()| imstls_result::IMSTLS_OK)
    })
}

/// Like [`with`], for calls that succeed with a code other than `IMSTLS_OK`
/// (`IMSTLS_NOTHING_MORE`, `IMSTLS_NOT_AVAILABLE`).
pub(crate) fn with_code<H: HasHandle>(
    ptr: *const H,
    what: &'static str,
    body: impl FnOnce(&mut Locked<H::Inner>, &mut Call) -> Result<imstls_result, Failure>,
) -> imstls_result {
    match super::boundary::arg(ptr, what) {
        Err(failure) => failure.result,
        Ok(h) => h.handle().call(body).unwrap_or_else(|code| code),
    }
}

/// `_last_error`: a copy of the handle's last failure in `*out` (free it with
/// `imstls_error_free`), or `IMSTLS_NOT_AVAILABLE` when nothing failed yet. Works on a busy or
/// poisoned handle.
pub(crate) fn last_error<H: HasHandle>(
    ptr: *const H,
    out: *mut *mut super::error::imstls_error,
) -> imstls_result {
    let result = super::boundary::arg(ptr, "handle").and_then(|h| {
        let out = super::boundary::out(out, "out")?;
        Ok(h.handle().last_error().map(|failure| {
            out.write(super::boundary::boxed(super::error::imstls_error::new(
                &failure,
            )))
        }))
    });
    match result {
        Ok(Some(())) => imstls_result::IMSTLS_OK,
        Ok(None) => imstls_result::IMSTLS_NOT_AVAILABLE,
        Err(failure) => failure.result,
    }
}

/// `_set_log_callback`.
pub(crate) fn set_log_callback<H: HasHandle>(
    ptr: *const H,
    callback: super::log::imstls_log_callback,
    userdata: *mut c_void,
    level: u32,
) -> imstls_result {
    with(ptr, "handle", |locked, _| {
        locked.log = ffi_log::sink(callback, userdata, level)?;
        Ok(())
    })
}

/// `_set_wake_callback`.
pub(crate) fn set_wake_callback<H: HasHandle>(
    ptr: *const H,
    callback: imstls_wake_callback,
    userdata: *mut c_void,
) -> imstls_result {
    with(ptr, "handle", |locked, _| {
        locked.wake = Wake::new(callback, userdata);
        Ok(())
    })
}

/// `_free`: NULL is a no-op. A handle with a call in progress (a `_free` from inside one of
/// its own callbacks, or racing another thread) is not freed — leaking it is the only safe
/// choice — and a poisoned handle is freed normally.
pub(crate) fn free<H: HasHandle>(ptr: *mut H) {
    if let Ok(h) = super::boundary::arg(ptr.cast_const(), "handle") {
        if !h.handle().idle() {
            return;
        }
    }
    super::boundary::free_boxed(ptr);
}

/// Like [`with`], returning the body's value (for exports that continue after the call).
pub(crate) fn call<H: HasHandle, R>(
    ptr: *const H,
    what: &'static str,
    body: impl FnOnce(&mut Locked<H::Inner>, &mut Call) -> Result<R, Failure>,
) -> Result<R, imstls_result> {
    match super::boundary::arg(ptr, what) {
        Err(failure) => Err(failure.result),
        Ok(h) => h.handle().call(body),
    }
}
