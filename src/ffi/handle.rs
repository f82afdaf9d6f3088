//! What stands behind every C handle (`imstls_config_builder`, `imstls_ue`,
//! `imstls_driver`): a lock taken with `try_lock` (a concurrent or re-entrant call gets
//! `IMSTLS_BUSY` and never waits), a poison flag set when a call panics, the last error, and
//! the handle's callbacks.
//!
//! Memory: a handle is reference-counted. The pointer C holds is one reference; every call
//! takes its own for as long as it runs, so a `_free` that meets a running call (a
//! `imstls_driver_run` waiting on another thread, or the call whose callback frees) only
//! drops C's reference, and the memory goes with the last call out.
//!
//! Callbacks and the lock: the log callback runs *inside* a call, on the calling thread, with
//! the handle locked — calling back into the same handle from it returns `IMSTLS_BUSY`. The
//! wake-up callback runs *after* the lock is released, so it may call back into imstls
//! freely. Replacing the wake-up callback is a barrier (see [`WakeSlot::replace`]).

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::codes::imstls_result;
use super::failure::Failure;
use super::log::{self as ffi_log, LogSink};

/// A wake-up callback: "something is ready — outputs or events to poll, or a new socket or
/// deadline to wait for". Called on the thread that made the call which caused it, after
/// imstls released the handle's lock, with the `userdata` given when it was set. It may call
/// any imstls function, including on this handle (e.g. write to an eventfd, post to a Looper,
/// or poll outputs directly).
///
/// Replacing it (`_set_wake_callback`, also with NULL) and `_free` are barriers: when they
/// return, no call of the old callback is running on another thread and none will start, so
/// its `userdata` may be freed. Called from inside a wake-up callback (of any handle) they do
/// not wait, since waiting there could deadlock: calls that already started may still be
/// running then (the one the caller is in, at least).
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
        // whose contract is that the callback stays callable with that userdata until its
        // replacement (or `_free`) returns; `WakeSlot` makes those wait for this call. No
        // lock is held.
        unsafe { (self.callback)(self.userdata as *mut c_void) }
    }
}

thread_local! {
    /// How many wake-up callbacks (of any handle) this thread is inside.
    static IN_WAKE_CALLBACK: Cell<u32> = const { Cell::new(0) };
}

fn in_wake_callback() -> bool {
    IN_WAKE_CALLBACK.try_with(Cell::get).unwrap_or(0) > 0
}

/// A handle's wake-up callback and the calls of it in progress.
#[derive(Default)]
pub(crate) struct WakeSlot {
    state: Mutex<WakeState>,
    finished: Condvar,
}

#[derive(Default)]
struct WakeState {
    current: Option<Wake>,
    /// Bumped by every replacement.
    generation: u64,
    /// The generation of every call running now (one entry per call).
    running: Vec<u64>,
}

impl WakeSlot {
    /// Calls the current callback, if any, registered as running until it returns.
    fn fire(&self) {
        let (wake, generation) = {
            let mut state = self.state.lock();
            let Some(wake) = state.current else {
                return;
            };
            let generation = state.generation;
            state.running.push(generation);
            (wake, generation)
        };
        let _running = Running::enter(self, generation);
        wake.fire();
    }

    /// Installs `wake` (`None`: no callback). Then, unless this thread is inside a wake-up
    /// callback, waits until every call of an earlier callback has returned: afterwards no
    /// call of the old pair runs or starts, and its userdata may be freed. Inside a callback
    /// it does not wait (the callbacks it would wait for may be waiting for this one).
    pub(crate) fn replace(&self, wake: Option<Wake>) {
        let mut state = self.state.lock();
        state.current = wake;
        state.generation += 1;
        let replaced = state.generation;
        if in_wake_callback() {
            return;
        }
        while state.running.iter().any(|g| *g < replaced) {
            self.finished.wait(&mut state);
        }
    }
}

/// One call of a wake-up callback in progress.
struct Running<'a> {
    slot: &'a WakeSlot,
    generation: u64,
}

impl<'a> Running<'a> {
    fn enter(slot: &'a WakeSlot, generation: u64) -> Self {
        let _ = IN_WAKE_CALLBACK.try_with(|depth| depth.set(depth.get() + 1));
        Self { slot, generation }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = IN_WAKE_CALLBACK.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
        let mut state = self.slot.state.lock();
        if let Some(i) = state.running.iter().position(|g| *g == self.generation) {
            state.running.swap_remove(i);
        }
        drop(state);
        self.slot.finished.notify_all();
    }
}

/// The state under the lock.
pub(crate) struct Locked<T> {
    pub inner: T,
    pub log: Option<LogSink>,
}

/// A call's body behind a `dyn`, so that the work around it is not copied per export. A
/// trait of its own rather than `dyn FnMut`, whose vtable also holds a `call_once` shim for
/// every body (linked, never called).
trait Body<T> {
    fn run(&mut self, locked: &mut Locked<T>, call: &mut Call) -> Result<(), Failure>;
}

type DynBody<'a, T> = dyn Body<T> + 'a;

/// A body that runs once and keeps its value.
struct Once<F, R> {
    body: Option<F>,
    value: Option<R>,
}

impl<F, R> Once<F, R> {
    fn new(body: F) -> Self {
        Self {
            body: Some(body),
            value: None,
        }
    }

    /// The value, once `run` has run the body and the body succeeded.
    fn value(self) -> Result<R, imstls_result> {
        self.value.ok_or(imstls_result::IMSTLS_PANIC)
    }
}

impl<T, R, F> Body<T> for Once<F, R>
where
    F: FnOnce(&mut Locked<T>, &mut Call) -> Result<R, Failure>,
{
    fn run(&mut self, locked: &mut Locked<T>, call: &mut Call) -> Result<(), Failure> {
        if let Some(body) = self.body.take() {
            self.value = Some(body(locked, call)?);
        }
        Ok(())
    }
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
    wake: WakeSlot,
}

impl<T> Handle<T> {
    pub(crate) fn new(inner: T) -> Self {
        Self {
            state: Mutex::new(Locked { inner, log: None }),
            poisoned: AtomicBool::new(false),
            last_error: Mutex::new(None),
            wake: WakeSlot::default(),
        }
    }

    /// Runs one call on the locked state. `IMSTLS_BUSY` when another call holds the lock
    /// (nothing recorded, nothing done), `IMSTLS_POISONED` after a panic. An `Err` from
    /// `body` becomes the last error. A panic in `body` poisons the handle on its way to the
    /// export's `guard`.
    ///
    /// Only this thin wrapper is generic over the body (one copy per export); the work around
    /// it is [`Handle::call_dyn`], one copy per handle type.
    pub(crate) fn call<R>(
        &self,
        body: impl FnOnce(&mut Locked<T>, &mut Call) -> Result<R, Failure>,
    ) -> Result<R, imstls_result> {
        let mut once = Once::new(body);
        self.call_dyn(&mut once)?;
        once.value()
    }

    #[inline(never)]
    fn call_dyn(&self, body: &mut DynBody<'_, T>) -> Result<(), imstls_result> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(imstls_result::IMSTLS_POISONED);
        }
        let Some(mut locked) = self.state.try_lock() else {
            return Err(imstls_result::IMSTLS_BUSY);
        };
        let poison = PoisonOnUnwind {
            poisoned: &self.poisoned,
            last_error: &self.last_error,
        };
        let mut call = Call::default();
        let result = {
            let _log = ffi_log::enter(locked.log);
            body.run(&mut locked, &mut call)
        };
        drop(locked);
        std::mem::forget(poison); // no panic: nothing to poison
        finish(&self.last_error, &self.wake, result, call)
    }

    /// True when no call is in progress; `_free` refuses to free a locked handle (a free
    /// from inside a callback would otherwise pull the state from under the running call).
    pub(crate) fn idle(&self) -> bool {
        !self.state.is_locked()
    }
}

/// The end of every call, after the lock is released: records the failure (the body's, or
/// the failure event it delivered), then fires the wake-up callback if asked. Not generic:
/// one copy for all handle types.
fn finish(
    last_error: &Mutex<Option<Failure>>,
    wake: &WakeSlot,
    result: Result<(), Failure>,
    call: Call,
) -> Result<(), imstls_result> {
    let outcome = match result {
        Err(failure) => {
            let code = failure.result;
            *last_error.lock() = Some(failure);
            Err(code)
        }
        Ok(()) => {
            if let Some(failure) = call.event_failure {
                *last_error.lock() = Some(failure);
            }
            Ok(())
        }
    };
    if call.wake {
        wake.fire();
    }
    outcome
}

/// Poisons the handle when dropped during a panic.
/// Not generic over the handle type: one drop for all of them.
struct PoisonOnUnwind<'a> {
    poisoned: &'a AtomicBool,
    last_error: &'a Mutex<Option<Failure>>,
}

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        // Only reached while unwinding: the normal path forgets the guard.
        self.poisoned.store(true, Ordering::Release);
        if let Some(mut slot) = self.last_error.try_lock() {
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

/// A new handle for C: one reference, owned by the pointer (released by [`free`]).
pub(crate) fn into_raw<H: HasHandle>(handle: H) -> *mut H {
    Arc::into_raw(Arc::new(handle)).cast_mut()
}

/// A reference to the handle behind `ptr` for the length of one call, so that a `_free`
/// during the call cannot pull the memory from under it. NULL → `IMSTLS_NULL_ARGUMENT`.
pub(crate) fn acquire<H: HasHandle>(ptr: *const H, what: &'static str) -> Result<Arc<H>, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: a non-NULL handle passed to an export came from `into_raw` and has not been
    // freed (each function's documented contract), so C's reference keeps the count at one
    // at least while we add ours.
    unsafe {
        Arc::increment_strong_count(ptr);
        Ok(Arc::from_raw(ptr))
    }
}

/// Drops C's reference to a handle; the memory goes when the last running call ends.
///
/// # Safety
///
/// `ptr` is non-NULL, came from [`into_raw`] and is released once (`_free`'s contract).
pub(crate) unsafe fn release<H: HasHandle>(ptr: *mut H) {
    // SAFETY: the caller's contract above.
    drop(unsafe { Arc::from_raw(ptr.cast_const()) });
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
    call(ptr, what, body).unwrap_or_else(|code| code)
}

/// `_last_error`: a copy of the handle's last failure in `*out` (free it with
/// `imstls_error_free`), or `IMSTLS_NOT_AVAILABLE` when nothing failed yet. Works on a busy or
/// poisoned handle.
pub(crate) fn last_error<H: HasHandle>(
    ptr: *const H,
    out: *mut *mut super::error::imstls_error,
) -> imstls_result {
    match acquire(ptr, "handle") {
        Ok(h) => copy_last_error(&h.handle().last_error, out),
        Err(failure) => failure.result,
    }
}

/// The part of [`last_error`] that does not depend on the handle type.
fn copy_last_error(
    last_error: &Mutex<Option<Failure>>,
    out: *mut *mut super::error::imstls_error,
) -> imstls_result {
    let out = match super::boundary::out(out, "out") {
        Ok(out) => out,
        Err(failure) => return failure.result,
    };
    match last_error.lock().clone() {
        Some(failure) => {
            out.write(super::boundary::boxed(super::error::imstls_error::new(
                &failure,
            )));
            imstls_result::IMSTLS_OK
        }
        None => imstls_result::IMSTLS_NOT_AVAILABLE,
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

/// `_set_wake_callback`: a barrier ([`WakeSlot::replace`]). It does not take the handle's
/// lock, so it works while another call is in progress and on a poisoned handle.
pub(crate) fn set_wake_callback<H: HasHandle>(
    ptr: *const H,
    callback: imstls_wake_callback,
    userdata: *mut c_void,
) -> imstls_result {
    match acquire(ptr, "handle") {
        Err(failure) => failure.result,
        Ok(h) => {
            h.handle().wake.replace(Wake::new(callback, userdata));
            imstls_result::IMSTLS_OK
        }
    }
}

/// Removes the wake-up callback as a barrier (see [`WakeSlot::replace`]); for `_free`.
pub(crate) fn clear_wake_callback<H: HasHandle>(handle: &H) {
    handle.handle().wake.replace(None);
}

/// `_free`: NULL is a no-op. A handle with a call in progress (a `_free` from inside its own
/// log callback, or racing another thread) is not freed — leaking it is the only safe choice
/// — and a poisoned handle is freed normally. Otherwise the wake-up callback is removed (a
/// barrier) and C's reference dropped: a call still on its way out (e.g. the one whose wake-up
/// callback frees) keeps the memory until it returns.
pub(crate) fn free<H: HasHandle>(ptr: *mut H) {
    let Ok(h) = acquire(ptr.cast_const(), "handle") else {
        return;
    };
    if !h.handle().idle() {
        return;
    }
    clear_wake_callback(&*h);
    // SAFETY: non-NULL (acquired), from `into_raw`, and `_free` is called once per handle.
    unsafe { release(ptr) };
}

/// Like [`with`], returning the body's value (for exports that continue after the call).
///
/// Generic over the body only as far as it must be: the rest is [`call_on`], one copy per
/// handle type.
pub(crate) fn call<H: HasHandle, R>(
    ptr: *const H,
    what: &'static str,
    body: impl FnOnce(&mut Locked<H::Inner>, &mut Call) -> Result<R, Failure>,
) -> Result<R, imstls_result> {
    let mut once = Once::new(body);
    call_on(ptr, what, &mut once)?;
    once.value()
}

#[inline(never)]
fn call_on<H: HasHandle>(
    ptr: *const H,
    what: &'static str,
    body: &mut DynBody<'_, H::Inner>,
) -> Result<(), imstls_result> {
    let h = acquire(ptr, what).map_err(|failure| failure.result)?;
    let result = h.handle().call_dyn(body);
    result
}
