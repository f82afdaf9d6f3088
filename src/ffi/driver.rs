//! `imstls_driver`: the engine with a managed socket (`crate::driver::Driver`). imstls
//! connects, reads, writes, closes and keeps time; the stack answers events.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::driver::{ConnectMode, Driver, DriverError, Waker};
use crate::engine::FlowId;
use crate::os;

use super::binding::imstls_binding;
use super::boundary::{arg, boxed, bytes_arg, enum_arg, guard, opt_str_arg, out};
use super::codes::{imstls_connect_mode, imstls_fd_ownership, imstls_result, imstls_state};
use super::config::imstls_config;
use super::error::imstls_error;
use super::failure::Failure;
use super::handle::{self, imstls_wake_callback, with, with_code, Handle, HasHandle};
use super::log::imstls_log_callback;
use super::output::imstls_output;
use super::ue::{connect_error, duration_s, identity};

/// `imstls_driver_interest` bit: wait until the descriptor is readable (`POLLIN`).
pub const IMSTLS_INTEREST_READABLE: u32 = 1;
/// `imstls_driver_interest` bit: wait until the descriptor is writable (`POLLOUT`).
pub const IMSTLS_INTEREST_WRITABLE: u32 = 2;

/// One UE with a managed socket. Create with `imstls_driver_new`, free with
/// `imstls_driver_free`.
///
/// Drive it either by calling `imstls_driver_run` in a loop (it blocks up to `max_wait_ms`),
/// or from your own event loop: wait for `imstls_driver_fd` with `imstls_driver_interest`,
/// or for `imstls_driver_timeout_ms`, then call `imstls_driver_process`. After either, drain
/// `imstls_driver_poll_event`. The descriptor changes with every new flow: ask again after
/// every call.
///
/// Time: the driver reads `CLOCK_MONOTONIC` itself; no call takes a time.
///
/// Thread safety: every function may be called from any thread. Calls never wait for each
/// other: a call made while another is in progress returns `IMSTLS_BUSY` — except that
/// `imstls_driver_run` holds the driver only while it works, not while it waits, so another
/// thread may call inputs (e.g. `imstls_driver_send_sip`, which writes at once) and the
/// waiting `run` wakes up; and that replacing the wake-up callback waits for a call of the old
/// one running on another thread. A panic inside imstls poisons this driver only.
///
/// Ending a loop that runs on another thread: `imstls_driver_stop` makes a waiting `run`
/// return `IMSTLS_STOPPED` at once (and every later one); leave the loop on that result, join
/// the thread, then `imstls_driver_free`. `imstls_driver_free` itself may also be called while
/// a `run` waits on another thread: that `run` returns `IMSTLS_STOPPED` and the memory is
/// released when it has returned — but no call may *start* on the driver once `free` began,
/// so a loop that could be between two calls must be stopped and joined first.
pub struct imstls_driver {
    handle: Handle<Driver>,
    /// Interrupts a waiting `run` without the lock.
    waker: Waker,
    /// Set by `imstls_driver_stop` and `imstls_driver_free`.
    stopped: AtomicBool,
}

impl imstls_driver {
    /// Stops `run` for good: set the flag first, then wake, so that a `run` that drained the
    /// wake-up pipe before the flag was set still finds a byte in it and does not wait.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl HasHandle for imstls_driver {
    type Inner = Driver;
    fn handle(&self) -> &Handle<Driver> {
        &self.handle
    }
}

impl From<DriverError> for Failure {
    fn from(error: DriverError) -> Self {
        match error {
            DriverError::Engine(e) => e.into(),
            DriverError::NoPendingConnect(flow) => Failure::new(
                imstls_result::IMSTLS_UNKNOWN_FLOW,
                format!("{flow} is not waiting for a socket"),
            ),
            DriverError::WrongMode(mode) => Failure::new(
                imstls_result::IMSTLS_WRONG_MODE,
                format!("not possible in connect mode {mode:?}"),
            ),
            DriverError::Io(e) => Failure::io("socket", &e),
            DriverError::Config(e) => e.into(),
            DriverError::InvalidArgument(why) => Failure::invalid(why),
        }
    }
}

/// One input: runs it, then wakes a `run` blocked in another thread and asks for the
/// wake-up callback.
fn input(
    driver: *mut imstls_driver,
    body: impl FnOnce(&mut Driver) -> Result<(), Failure>,
) -> imstls_result {
    with(driver.cast_const(), "driver", |locked, call| {
        body(&mut locked.inner)?;
        locked.inner.waker().wake();
        call.wake = true;
        Ok(())
    })
}

fn millis_until(at: Instant, now: Instant) -> u64 {
    let wait = at.saturating_duration_since(now);
    let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Creates a driver (managed connect mode, engine idle) in `*out_driver`.
///
/// - `config`: borrowed; the driver keeps its own reference.
/// - Ownership: the driver is yours; free it with `imstls_driver_free`.
/// - Next: optionally `imstls_driver_set_connect_mode`, then
///   `imstls_driver_start_registration`.
/// - Thread safety: any thread.
#[no_mangle]
pub extern "C" fn imstls_driver_new(
    config: *const imstls_config,
    out_driver: *mut *mut imstls_driver,
) -> imstls_result {
    guard(|| {
        let result = arg(config, "config").and_then(|config| {
            let slot = out(out_driver, "out_driver")?;
            let driver = Driver::new(config.config.clone())?;
            slot.write(handle::into_raw(imstls_driver {
                waker: driver.waker(),
                handle: Handle::new(driver),
                stopped: AtomicBool::new(false),
            }));
            Ok(())
        });
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// Frees a driver: the current socket is closed (after writing what is queued); descriptors
/// lent with `IMSTLS_FD_BORROW` are not closed. NULL is a no-op.
///
/// It first stops the driver (see `imstls_driver_stop`) and removes the wake-up callback (a
/// barrier: when `free` returns, no wake-up callback of this driver runs on another thread or
/// will start). A call still running — an `imstls_driver_run` waiting on another thread, which
/// then returns `IMSTLS_STOPPED` without touching the driver, or the call from whose callback
/// `free` is called — keeps the memory (and the socket) until it returns; it is never leaked.
///
/// - Thread safety: any thread, also while `imstls_driver_run` waits on another thread and
///   from inside this driver's callbacks. No call on this driver may start once `free` has
///   begun (stop and join a loop thread first if it could be between two calls).
#[no_mangle]
pub extern "C" fn imstls_driver_free(driver: *mut imstls_driver) {
    guard(|| {
        let Ok(d) = handle::acquire(driver.cast_const(), "driver") else {
            return;
        };
        d.stop();
        handle::clear_wake_callback(&*d);
        // SAFETY: non-NULL (acquired), from `handle::into_raw`; `_free` is called once.
        unsafe { handle::release(driver) };
    })
}

/// Stops the driver's loop from any thread: an `imstls_driver_run` waiting now returns
/// `IMSTLS_STOPPED` at once, without processing, and so does every later `run`. Other calls
/// keep working (drain the last events with `imstls_driver_poll_event`, then
/// `imstls_driver_free`). Stopping is final.
///
/// - Returns `IMSTLS_OK` (also when already stopped).
/// - Thread safety: any thread; never `IMSTLS_BUSY`; works on a poisoned driver.
#[no_mangle]
pub extern "C" fn imstls_driver_stop(driver: *mut imstls_driver) -> imstls_result {
    guard(|| match handle::acquire(driver.cast_const(), "driver") {
        Err(failure) => failure.result,
        Ok(d) => {
            d.stop();
            imstls_result::IMSTLS_OK
        }
    })
}

/// Wakes an `imstls_driver_run` waiting on another thread (or the next one, if none waits):
/// it processes and returns `IMSTLS_OK` at once, e.g. so that its loop can check a flag of
/// yours. Inputs (`imstls_driver_send_sip`, ...) wake it by themselves.
///
/// - Thread safety: any thread; never `IMSTLS_BUSY`; works on a poisoned driver.
#[no_mangle]
pub extern "C" fn imstls_driver_wake(driver: *mut imstls_driver) -> imstls_result {
    guard(|| match handle::acquire(driver.cast_const(), "driver") {
        Err(failure) => failure.result,
        Ok(d) => {
            d.waker.wake();
            imstls_result::IMSTLS_OK
        }
    })
}

/// Chooses who connects new flows: an `imstls_connect_mode` value. Takes effect for the
/// next flow.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_set_connect_mode(
    driver: *mut imstls_driver,
    mode: u32,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            d.set_connect_mode(match enum_arg(mode)? {
                imstls_connect_mode::IMSTLS_CONNECT_MANAGED => ConnectMode::Managed,
                imstls_connect_mode::IMSTLS_CONNECT_EXTERNAL => ConnectMode::External,
            });
            Ok(())
        })
    })
}

/// RFC 8305's Connection Attempt Delay in milliseconds (managed mode): how long one connect
/// attempt runs alone before the next address of the candidate is tried as well (default
/// 250, allowed 10 to 2000). Takes effect for the next flow.
///
/// - Returns `IMSTLS_INVALID_ARGUMENT` outside 10..=2000 (nothing changed).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_set_connection_attempt_delay_ms(
    driver: *mut imstls_driver,
    delay_ms: u32,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            Ok(d.set_connection_attempt_delay(Duration::from_millis(delay_ms.into()))?)
        })
    })
}

/// Starts a registration procedure (see `imstls_ue_start_registration`) and, in managed
/// mode, starts connecting (a host name is resolved on a resolver thread, never this one:
/// `imstls_driver_fd` is then the driver's wake-up descriptor, readable when the answer is
/// in; a name that does not resolve fails the attempt with `CONNECT_FAILED`, reason
/// `"unresolved"`).
///
/// - Strings: NUL-terminated UTF-8, borrowed for the call.
/// - Next: run the loop; answer `IMSTLS_EVENT_REGISTER_NOW` with `imstls_driver_send_sip`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_start_registration(
    driver: *mut imstls_driver,
    impi: *const c_char,
    impus: *const *const c_char,
    impu_count: usize,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            let identity = identity(impi, impus, impu_count)?;
            Ok(d.start_registration(identity)?)
        })
    })
}

/// Sends one complete SIP message on the current flow (see `imstls_ue_send_sip`); the TLS
/// records are written at once when the socket takes them.
///
/// - `message`, `len`: borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_send_sip(
    driver: *mut imstls_driver,
    message: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            let message = bytes_arg(message, len, "message")?;
            Ok(d.send_sip(message)?)
        })
    })
}

/// The stack got a 401/407 (see `imstls_ue_registration_challenged`).
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer;
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_registration_challenged(
    driver: *mut imstls_driver,
    flow: u64,
    stale: bool,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            Ok(d.registration_challenged(FlowId(flow), stale)?)
        })
    })
}

/// The stack got a 2xx (see `imstls_ue_registration_succeeded`; `flow_timer_s` 0: none).
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer;
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_registration_succeeded(
    driver: *mut imstls_driver,
    flow: u64,
    expires_s: u32,
    flow_timer_s: u32,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            Ok(d.registration_succeeded(
                FlowId(flow),
                Duration::from_secs(expires_s.into()),
                duration_s(flow_timer_s),
            )?)
        })
    })
}

/// The stack got a final error 300–699 (see `imstls_ue_registration_failed`;
/// `retry_after_s` 0: none).
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer;
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_registration_failed(
    driver: *mut imstls_driver,
    flow: u64,
    status: u32,
    retry_after_s: u32,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            let status = u16::try_from(status)
                .map_err(|_| Failure::invalid("status must be a final error, 300..=699"))?;
            Ok(d.registration_failed(FlowId(flow), status, duration_s(retry_after_s))?)
        })
    })
}

/// De-registers (see `imstls_ue_deregister`).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_deregister(driver: *mut imstls_driver) -> imstls_result {
    guard(|| input(driver, |d| Ok(d.deregister()?)))
}

/// The device changed network: the socket is closed, a new flow and registration start.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_network_changed(driver: *mut imstls_driver) -> imstls_result {
    guard(|| input(driver, |d| Ok(d.network_changed()?)))
}

/// Fresh keys (see `imstls_ue_rekey`).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_rekey(driver: *mut imstls_driver) -> imstls_result {
    guard(|| input(driver, |d| Ok(d.rekey()?)))
}

/// External connect mode: hands in the socket for `flow` (from an `IMSTLS_EVENT_CONNECTING`
/// event: its host and port say where to connect), connected or with a non-blocking
/// connect in progress. `ownership` is an `imstls_fd_ownership` value saying who closes
/// `fd`.
///
/// - Returns `IMSTLS_OK`; `IMSTLS_WRONG_MODE` in managed mode; `IMSTLS_UNKNOWN_FLOW` when
///   `flow` does not wait for a socket; `IMSTLS_INVALID_ARGUMENT` when `fd` is not an open
///   stream socket or `ownership` is unknown — in these cases `fd` stays yours.
///   `IMSTLS_IO_ERROR`: the socket could not be set up after it was taken (with
///   `IMSTLS_FD_TRANSFER` it has been closed).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_adopt_fd(
    driver: *mut imstls_driver,
    flow: u64,
    fd: c_int,
    ownership: u32,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            let transfer = match enum_arg(ownership)? {
                imstls_fd_ownership::IMSTLS_FD_TRANSFER => true,
                imstls_fd_ownership::IMSTLS_FD_BORROW => false,
            };
            if d.connect_mode() != ConnectMode::External {
                return Err(DriverError::WrongMode(d.connect_mode()).into());
            }
            if d.pending_connect().map(|r| r.flow) != Some(FlowId(flow)) {
                return Err(DriverError::NoPendingConnect(FlowId(flow)).into());
            }
            // SAFETY: the documented contract: `fd` is an open descriptor of the caller's,
            // given up on success when `ownership` is IMSTLS_FD_TRANSFER. All checks that
            // can fail after ownership moved were made above.
            let owned = unsafe { os::adopt_socket(fd, transfer) }
                .map_err(|e| Failure::invalid(format!("fd {fd}: {e}")))?;
            Ok(d.adopt(FlowId(flow), owned)?)
        })
    })
}

/// External connect mode: you could not connect `flow`: `reason` is an
/// `imstls_connect_error` value, `detail` optional (NULL allowed).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_connect_failed(
    driver: *mut imstls_driver,
    flow: u64,
    reason: u32,
    detail: *const c_char,
) -> imstls_result {
    guard(|| {
        input(driver, |d| {
            let reason = connect_error(reason, opt_str_arg(detail, "detail")?)?;
            Ok(d.connect_failed(FlowId(flow), reason)?)
        })
    })
}

/// The descriptor to wait on in `*out_fd`: the flow's socket (while connect attempts race,
/// the newest; `imstls_driver_timeout_ms` then asks for a call every 25 ms to look at the
/// others), or while a name is resolved the driver's wake-up descriptor (readable when the
/// answer is in); `IMSTLS_NOT_AVAILABLE` when there is none (wait for the timeout only). It
/// changes with every new flow and attempt: ask again after each call. Never close it
/// yourself.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_fd(
    driver: *const imstls_driver,
    out_fd: *mut c_int,
) -> imstls_result {
    guard(|| {
        with_code(driver, "driver", |locked, _| {
            let slot = out(out_fd, "out_fd")?;
            Ok(match locked.inner.fd() {
                Some(fd) => {
                    slot.write(fd);
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// What to wait for on `imstls_driver_fd`, as `IMSTLS_INTEREST_*` bits in `*out_interest`
/// (`IMSTLS_INTEREST_READABLE` while a name is resolved, 0 when there is no descriptor).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_interest(
    driver: *const imstls_driver,
    out_interest: *mut u32,
) -> imstls_result {
    guard(|| {
        with(driver, "driver", |locked, _| {
            let slot = out(out_interest, "out_interest")?;
            let interest = locked.inner.interest();
            slot.write(
                if interest.readable {
                    IMSTLS_INTEREST_READABLE
                } else {
                    0
                } | if interest.writable {
                    IMSTLS_INTEREST_WRITABLE
                } else {
                    0
                },
            );
            Ok(())
        })
    })
}

/// Milliseconds from now (rounded up) until `imstls_driver_process` must run at the latest,
/// in `*out_ms`; `IMSTLS_NOT_AVAILABLE` when no timer runs (wait for the socket only).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_timeout_ms(
    driver: *const imstls_driver,
    out_ms: *mut u64,
) -> imstls_result {
    guard(|| {
        with_code(driver, "driver", |locked, _| {
            let slot = out(out_ms, "out_ms")?;
            Ok(match locked.inner.next_timeout() {
                Some(at) => {
                    slot.write(millis_until(at, crate::driver::now()));
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// What the driver holds now, in bytes: TLS bytes its socket has not taken yet in
/// `*out_outgoing` (capped by `driver_outgoing_bytes`, see
/// `imstls_config_builder_set_queue_limits`) and events not yet taken with
/// `imstls_driver_poll_event` in `*out_events` (capped by `driver_event_bytes`). Either
/// pointer may be NULL when that figure is not wanted.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_queued_bytes(
    driver: *const imstls_driver,
    out_outgoing: *mut usize,
    out_events: *mut usize,
) -> imstls_result {
    guard(|| {
        with(driver, "driver", |locked, _| {
            if !out_outgoing.is_null() {
                out(out_outgoing, "out_outgoing")?.write(locked.inner.queued_outgoing_bytes());
            }
            if !out_events.is_null() {
                out(out_events, "out_events")?.write(locked.inner.queued_event_bytes());
            }
            Ok(())
        })
    })
}

/// Does everything possible without blocking: finishes a connect, writes, reads, fires due
/// timers. Call it when the socket is ready or the timeout passed (any other time is
/// harmless), then drain `imstls_driver_poll_event`. Reading stops after a read that brought
/// an `IMSTLS_EVENT_SIP_RECEIVED`, so that the stack reports its answer before a later read
/// (such as the P-CSCF's close) is processed: drain the events, then call it again.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_process(driver: *mut imstls_driver) -> imstls_result {
    guard(|| {
        with(driver.cast_const(), "driver", |locked, _| {
            locked.inner.process(crate::driver::now());
            Ok(())
        })
    })
}

/// Blocks for at most `max_wait_ms` until the socket is ready, a timer is due, or another
/// thread's input needs attention, then processes. Returns at once when events are
/// waiting. Drain `imstls_driver_poll_event` afterwards.
///
/// The driver is locked only while it works, not while it waits: other threads' calls go
/// through meanwhile. If another thread holds the driver when the wait ends, `run` returns
/// `IMSTLS_OK` without processing (that thread did its part; readiness is kept for the next
/// `run`). `imstls_driver_wake` ends the wait early; `imstls_driver_stop` and
/// `imstls_driver_free` end it with `IMSTLS_STOPPED`.
///
/// - Returns `IMSTLS_OK`; `IMSTLS_STOPPED` once the driver is stopped (nothing processed:
///   leave your loop); `IMSTLS_IO_ERROR` when `poll(2)` failed.
/// - Thread safety: any thread; `IMSTLS_BUSY` (nothing done) when another call is in
///   progress as it starts.
#[no_mangle]
pub extern "C" fn imstls_driver_run(driver: *mut imstls_driver, max_wait_ms: u32) -> imstls_result {
    guard(|| {
        // Our own reference: a `free` on another thread during the wait leaves the driver,
        // its wake-up pipe and its socket alive until this call returns.
        let d = match handle::acquire(driver.cast_const(), "driver") {
            Ok(d) => d,
            Err(failure) => return failure.result,
        };
        if d.stopped() {
            return imstls_result::IMSTLS_STOPPED;
        }
        let plan = d.handle().call(|locked, _| {
            locked.inner.process(crate::driver::now());
            Ok(locked
                .inner
                .prepare_wait(Duration::from_millis(max_wait_ms.into())))
        });
        let plan = match plan {
            Ok(plan) => plan,
            Err(code) => return code,
        };
        // Checked after `process` drained the wake-up pipe: a stop from now on leaves a byte
        // in it, so the wait below cannot miss it.
        if d.stopped() {
            return imstls_result::IMSTLS_STOPPED;
        }
        let waited = if plan.timeout() == Some(Duration::ZERO) {
            Ok(false)
        } else {
            plan.wait()
        };
        if d.stopped() {
            return imstls_result::IMSTLS_STOPPED;
        }
        let result = d
            .handle()
            .call(|locked, _| {
                waited.map_err(|e| Failure::io("poll", &e))?;
                locked.inner.process(crate::driver::now());
                Ok(imstls_result::IMSTLS_OK)
            })
            .unwrap_or_else(|code| code);
        match result {
            // Another thread is working on the driver right now: it performs what its own
            // call caused, and the socket's readiness waits for the next run (poll(2) is
            // level-triggered), so nothing is lost.
            imstls_result::IMSTLS_BUSY => imstls_result::IMSTLS_OK,
            other => other,
        }
    })
}

/// The next event in `*out_event` (an `imstls_output` of kind `IMSTLS_OUTPUT_EVENT`), or
/// `IMSTLS_NOTHING_MORE` (`*out_event` untouched). A failure event also becomes the
/// driver's last error.
///
/// - Ownership: the output is yours; free it with `imstls_output_free`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_poll_event(
    driver: *mut imstls_driver,
    out_event: *mut *mut imstls_output,
) -> imstls_result {
    guard(|| {
        with_code(driver.cast_const(), "driver", |locked, call| {
            let slot = out(out_event, "out_event")?;
            let Some(event) = locked.inner.poll_event() else {
                return Ok(imstls_result::IMSTLS_NOTHING_MORE);
            };
            call.event_failure = Failure::from_event(&event);
            let output = imstls_output::from_event(event, locked.inner.ue().config());
            slot.write(boxed(output));
            Ok(imstls_result::IMSTLS_OK)
        })
    })
}

/// What the engine waits for, in `*out_state`.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_state(
    driver: *const imstls_driver,
    out_state: *mut imstls_state,
) -> imstls_result {
    guard(|| {
        with(driver, "driver", |locked, _| {
            out(out_state, "out_state")?.write(locked.inner.state().into());
            Ok(())
        })
    })
}

/// A snapshot of the O.2.2 binding in `*out_binding` once TLS is up;
/// `IMSTLS_NOT_AVAILABLE` before.
///
/// - Ownership: yours; free it with `imstls_binding_free`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_binding(
    driver: *const imstls_driver,
    out_binding: *mut *mut imstls_binding,
) -> imstls_result {
    guard(|| {
        with_code(driver, "driver", |locked, _| {
            let slot = out(out_binding, "out_binding")?;
            Ok(match locked.inner.binding() {
                Some(binding) => {
                    slot.write(boxed(imstls_binding::new(&binding)));
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// The driver's last failure (of a call, `IMSTLS_BUSY` excepted, or a failure event
/// delivered by `imstls_driver_poll_event`) as a copy in `*out_error`; free it with
/// `imstls_error_free`. `IMSTLS_NOT_AVAILABLE` when nothing failed yet.
///
/// - Thread safety: any thread, even while another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_last_error(
    driver: *const imstls_driver,
    out_error: *mut *mut imstls_error,
) -> imstls_result {
    guard(|| handle::last_error(driver, out_error))
}

/// Sends this driver's log records up to `level` to `callback` (see
/// `imstls_ue_set_log_callback`; re-entering this driver from the callback gets
/// `IMSTLS_BUSY`).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_driver_set_log_callback(
    driver: *mut imstls_driver,
    callback: imstls_log_callback,
    userdata: *mut c_void,
    level: u32,
) -> imstls_result {
    guard(|| handle::set_log_callback(driver.cast_const(), callback, userdata, level))
}

/// Calls `callback(userdata)` after every accepted input, once the driver is unlocked, so
/// that a loop running in another thread re-reads the descriptor, interest and timeout and
/// drains events (e.g. write to an eventfd the loop watches). NULL turns it off. A thread
/// blocked in `imstls_driver_run` is woken without it.
///
/// A barrier: when it returns, no call of the previous callback is running on another thread
/// and none will start, so the previous `userdata` may be freed (it waits for such a call to
/// return). From inside a wake-up callback it does not wait: the new callback is used by the
/// calls that start afterwards, and calls already running finish with the old one.
///
/// - Thread safety: any thread; never `IMSTLS_BUSY` (works while another call is in
///   progress, and on a poisoned driver).
#[no_mangle]
pub extern "C" fn imstls_driver_set_wake_callback(
    driver: *mut imstls_driver,
    callback: imstls_wake_callback,
    userdata: *mut c_void,
) -> imstls_result {
    guard(|| handle::set_wake_callback(driver.cast_const(), callback, userdata))
}
