//! `imstls_ue`: the sans-IO registration engine for C. The caller owns the socket and the
//! clock: it feeds inputs (each with its monotonic `now_ms`) and, after **every** input,
//! drains `imstls_ue_poll_output` until it returns `IMSTLS_NOTHING_MORE`, then waits for
//! socket input or the deadline of `imstls_ue_next_timeout`.

use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::engine::{FlowId, Identity, LossReason, Output, TransportClosure, TransportError, Ue};

use super::binding::imstls_binding;
use super::boundary::{
    arg, boxed, bytes_arg, enum_arg, guard, opt_str_arg, out, str_arg, str_array_arg,
};
use super::clock::Clock;
use super::codes::{imstls_connect_error, imstls_result, imstls_state, imstls_transport_closure};
use super::config::imstls_config;
use super::error::imstls_error;
use super::failure::Failure;
use super::handle::{self, imstls_wake_callback, with, with_code, Handle, HasHandle};
use super::log::imstls_log_callback;
use super::output::imstls_output;

pub(crate) fn connect_error(reason: u32, detail: Option<&str>) -> Result<TransportError, Failure> {
    use imstls_connect_error as C;
    Ok(match enum_arg(reason)? {
        C::IMSTLS_CONNECT_REFUSED => TransportError::Refused,
        C::IMSTLS_CONNECT_UNREACHABLE => TransportError::Unreachable,
        C::IMSTLS_CONNECT_TIMED_OUT => TransportError::TimedOut,
        C::IMSTLS_CONNECT_RESET => TransportError::Reset,
        C::IMSTLS_CONNECT_UNRESOLVED => TransportError::Unresolved,
        C::IMSTLS_CONNECT_OTHER => {
            TransportError::Other(detail.unwrap_or("connect failed").to_owned())
        }
    })
}

pub(crate) fn identity(
    impi: *const c_char,
    impus: *const *const c_char,
    impu_count: usize,
) -> Result<Identity, Failure> {
    let impi = str_arg(impi, "impi")?;
    let impus = str_array_arg(impus, impu_count, "impus")?;
    Ok(Identity::new(impi, &impus)?)
}

pub(crate) fn duration_s(seconds: u32) -> Option<Duration> {
    (seconds > 0).then(|| Duration::from_secs(seconds.into()))
}

/// The engine state behind an `imstls_ue`.
pub(crate) struct UeInner {
    ue: Ue,
    clock: Clock,
}

/// One UE: the registration state machine of TS 33.203 Annex O, sans-IO. Create with
/// `imstls_ue_new`, free with `imstls_ue_free`.
///
/// Thread safety: every function may be called from any thread. Calls on one UE never wait
/// for each other: a call made while another is in progress (another thread, or a callback
/// re-entering) returns `IMSTLS_BUSY` and does nothing (only `imstls_ue_set_wake_callback`
/// waits, for a call of the old callback on another thread). A panic inside imstls (a bug) makes
/// that call return `IMSTLS_PANIC` and poisons this UE only (later calls:
/// `IMSTLS_POISONED`).
///
/// Time: every input takes `now_ms`, milliseconds of a monotonic clock of your choice
/// (e.g. `CLOCK_MONOTONIC`); a value smaller than one seen before counts as that one.
/// Deadlines come back in the same clock, rounded up.
pub struct imstls_ue {
    handle: Handle<UeInner>,
}

impl HasHandle for imstls_ue {
    type Inner = UeInner;
    fn handle(&self) -> &Handle<UeInner> {
        &self.handle
    }
}

/// One input: maps the time, runs it, and asks for the wake-up callback (outputs are ready
/// after every accepted input).
fn input(
    ue: *mut imstls_ue,
    now_ms: u64,
    body: impl FnOnce(&mut Ue, Instant) -> Result<(), Failure>,
) -> imstls_result {
    with(ue.cast_const(), "ue", |locked, call| {
        let inner = &mut locked.inner;
        let now = inner.clock.instant(now_ms)?;
        body(&mut inner.ue, now)?;
        call.wake = true;
        Ok(())
    })
}

fn address(text: Option<&str>, what: &str) -> Result<Option<SocketAddr>, Failure> {
    text.map(|t| {
        t.parse::<SocketAddr>()
            .map_err(|_| Failure::invalid(format!("{what} {t:?} is not an address:port")))
    })
    .transpose()
}

/// Creates a UE in `IMSTLS_STATE_IDLE` in `*out_ue`. `now_ms` starts its clock.
///
/// - `config`: borrowed; the UE keeps its own reference (you may free `config` at once).
/// - Ownership: the UE is yours; free it with `imstls_ue_free`.
/// - Next: `imstls_ue_start_registration`.
/// - Thread safety: any thread.
#[no_mangle]
pub extern "C" fn imstls_ue_new(
    config: *const imstls_config,
    now_ms: u64,
    out_ue: *mut *mut imstls_ue,
) -> imstls_result {
    guard(|| {
        let result = arg(config, "config").and_then(|config| {
            let slot = out(out_ue, "out_ue")?;
            let mut clock = Clock::new(now_ms);
            let now = clock.instant(now_ms)?;
            let ue = Ue::new(config.config.clone(), now)?;
            slot.write(handle::into_raw(imstls_ue {
                handle: Handle::new(UeInner { ue, clock }),
            }));
            Ok(())
        });
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// Frees a UE (identities and buffered SIP bytes are zeroized); NULL is a no-op. Sockets are
/// yours: close them yourself. A UE with a call in progress (e.g. freed from inside its own
/// log callback) is not freed. Removes the wake-up callback first, as
/// `imstls_ue_set_wake_callback(ue, NULL, NULL)` does (a barrier).
///
/// - Thread safety: not concurrently with any other call on this UE.
#[no_mangle]
pub extern "C" fn imstls_ue_free(ue: *mut imstls_ue) {
    guard(|| handle::free(ue))
}

/// Starts a registration procedure for the IMPI (a `user@realm` NAI) and `impu_count` IMPUs
/// (`sip:`, `sips:` or `tel:` URIs) — TS 33.203 O.4.1: one at a time. An incomplete procedure
/// is torn down first (flow closed, its TLS sessions purged, queued bytes dropped; event
/// SUPERSEDED).
///
/// - Strings: NUL-terminated UTF-8, borrowed for the call (copied; zeroized when dropped).
/// - Next: drain `imstls_ue_poll_output`: a CONNECT output comes first.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on this UE is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_start_registration(
    ue: *mut imstls_ue,
    now_ms: u64,
    impi: *const c_char,
    impus: *const *const c_char,
    impu_count: usize,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let identity = identity(impi, impus, impu_count)?;
            Ok(engine.start_registration(now, identity)?)
        })
    })
}

/// Sends one complete SIP message on the current flow (after `IMSTLS_EVENT_REGISTER_NOW`:
/// the REGISTER). O.4.2: until registered, only REGISTER may go (`IMSTLS_REGISTER_FIRST`).
/// The message must be strict RFC 3261: CRLF line ends only, no folded lines, exactly one
/// Content-Length equal to the body's length; anything else is `IMSTLS_BAD_SIP_MESSAGE` and
/// the handle's last error names the rule (docs/CONFORMANCE.md, "Outgoing SIP").
///
/// - `message`, `len`: borrowed for the call (encrypted at once; the plaintext copy is
///   zeroized).
/// - Next: drain `imstls_ue_poll_output` (a TRANSMIT follows).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_send_sip(
    ue: *mut imstls_ue,
    now_ms: u64,
    message: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let message = bytes_arg(message, len, "message")?;
            Ok(engine.send_sip(now, message)?)
        })
    })
}

/// The stack got a 401/407 to the REGISTER (`stale`: the challenge said stale=true,
/// O.3.1.3). The next REGISTER goes on the same flow: a REGISTER_NOW follows.
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer.
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow: the answer
///   belongs to an earlier procedure or attempt (O.4.1).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_registration_challenged(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    stale: bool,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            Ok(engine.registration_challenged(now, FlowId(flow), stale)?)
        })
    })
}

/// The stack got a 2xx to the REGISTER: `expires_s` as granted (> 0, except for the answer
/// to a de-REGISTER), `flow_timer_s` the RFC 5626 Flow-Timer (0: none). Schedules the
/// refresh and keep-alives.
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer;
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_registration_succeeded(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    expires_s: u32,
    flow_timer_s: u32,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            Ok(engine.registration_succeeded(
                now,
                FlowId(flow),
                Duration::from_secs(expires_s.into()),
                duration_s(flow_timer_s),
            )?)
        })
    })
}

/// The stack got a final error (300–699) to the REGISTER; `retry_after_s` is its
/// Retry-After (0: none). O.3.1.1: the flow is closed and its session deleted; 408, 480,
/// 500, 503, 504 are retried after a back-off, other codes stop (`IMSTLS_STATE_CLOSED`).
///
/// - `flow`: the flow of the `IMSTLS_EVENT_SIP_RECEIVED` event that carried the answer;
///   `IMSTLS_STALE_REPORT` (nothing applied) when it is not the current flow.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_registration_failed(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    status: u32,
    retry_after_s: u32,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let status = u16::try_from(status)
                .map_err(|_| Failure::invalid("status must be a final error, 300..=699"))?;
            Ok(engine.registration_failed(now, FlowId(flow), status, duration_s(retry_after_s))?)
        })
    })
}

/// De-registers: when registered, a REGISTER_NOW with reason DEREGISTER asks for a
/// REGISTER with Expires: 0; report its 2xx with `imstls_ue_registration_succeeded` (any
/// expiry). An incomplete procedure is simply torn down.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_deregister(ue: *mut imstls_ue, now_ms: u64) -> imstls_result {
    guard(|| input(ue, now_ms, |engine, now| Ok(engine.deregister(now)?)))
}

/// The device changed network: the flow is torn down and a new flow and registration start
/// at once (O.4.1).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_network_changed(ue: *mut imstls_ue, now_ms: u64) -> imstls_result {
    guard(|| input(ue, now_ms, |engine, now| Ok(engine.network_changed(now)?)))
}

/// Fresh keys for the registered flow: a TLS 1.3 KeyUpdate, or on TLS 1.2 a new flow and a
/// new registration (rustls never renegotiates).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_rekey(ue: *mut imstls_ue, now_ms: u64) -> imstls_result {
    guard(|| input(ue, now_ms, |engine, now| Ok(engine.rekey(now)?)))
}

/// Your TCP connection for `flow` (from a CONNECT output) is up. `local_addr` and
/// `remote_addr` are `"ip:port"` / `"[v6]:port"` strings for the binding view, or NULL.
/// Starts the TLS handshake: a TRANSMIT (ClientHello) follows.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_connected(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    local_addr: *const c_char,
    remote_addr: *const c_char,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let local = address(opt_str_arg(local_addr, "local_addr")?, "local_addr")?;
            let remote = address(opt_str_arg(remote_addr, "remote_addr")?, "remote_addr")?;
            Ok(engine.connected(now, FlowId(flow), local, remote)?)
        })
    })
}

/// Your TCP connect for `flow` failed: `reason` is an `imstls_connect_error` value, `detail`
/// an optional description (NULL allowed). imstls tries the next candidate or backs off.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_connect_failed(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    reason: u32,
    detail: *const c_char,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let reason = connect_error(reason, opt_str_arg(detail, "detail")?)?;
            Ok(engine.connect_failed(now, FlowId(flow), reason)?)
        })
    })
}

/// Bytes read from `flow`'s socket.
///
/// - `data`, `len`: borrowed for the call (processed at once).
/// - Next: drain `imstls_ue_poll_output`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress (the bytes
///   were not taken: feed them again).
#[no_mangle]
pub extern "C" fn imstls_ue_receive(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    data: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let data = bytes_arg(data, len, "data")?;
            Ok(engine.receive(now, FlowId(flow), data)?)
        })
    })
}

/// The P-CSCF does not read: the TLS bytes of `flow` your socket has not taken reached the cap
/// you keep for your write buffer (`queued_bytes` of them). Like the driver at its
/// `driver_outgoing_bytes` cap, the flow fails (CONNECTION_LOST, reason `"peer_not_reading"`,
/// a CLOSE follows: drop what you queued for it) and a new registration follows after an
/// RFC 5626 §4.5 back-off.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_peer_not_reading(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    queued_bytes: usize,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let reason = LossReason::PeerNotReading {
                queued: queued_bytes,
            };
            Ok(engine.queue_overflowed(now, FlowId(flow), reason)?)
        })
    })
}

/// Your socket for `flow` ended: `closure` is an `imstls_transport_closure` value, `detail`
/// an optional description (NULL allowed). Close the socket yourself.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_transport_closed(
    ue: *mut imstls_ue,
    now_ms: u64,
    flow: u64,
    closure: u32,
    detail: *const c_char,
) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            let detail = opt_str_arg(detail, "detail")?;
            use imstls_transport_closure as T;
            let closure = match enum_arg(closure)? {
                T::IMSTLS_CLOSURE_EOF => TransportClosure::Eof,
                T::IMSTLS_CLOSURE_RESET => TransportClosure::Reset,
                T::IMSTLS_CLOSURE_ERROR => {
                    TransportClosure::Error(detail.unwrap_or("socket error").to_owned())
                }
            };
            Ok(engine.transport_closed(now, FlowId(flow), closure)?)
        })
    })
}

/// Time passed: fires every timer due at `now_ms`. Call it at the deadline of
/// `imstls_ue_next_timeout` (calling it early or often is harmless).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_handle_timeout(ue: *mut imstls_ue, now_ms: u64) -> imstls_result {
    guard(|| {
        input(ue, now_ms, |engine, now| {
            engine.handle_timeout(now);
            Ok(())
        })
    })
}

/// The next output in `*out_output`: CONNECT, TRANSMIT, CLOSE or EVENT, in the order they
/// must be acted on. Returns `IMSTLS_NOTHING_MORE` (and leaves `*out_output` untouched) when
/// the queue is drained: then wait for socket input or `imstls_ue_next_timeout`. A failure
/// event also becomes the UE's last error.
///
/// - Ownership: the output is yours; free it with `imstls_output_free`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_poll_output(
    ue: *mut imstls_ue,
    out_output: *mut *mut imstls_output,
) -> imstls_result {
    guard(|| {
        with_code(ue.cast_const(), "ue", |locked, call| {
            let slot = out(out_output, "out_output")?;
            let engine = &mut locked.inner.ue;
            loop {
                let output = engine.poll_output();
                if let Output::Timeout(_) = output {
                    return Ok(imstls_result::IMSTLS_NOTHING_MORE);
                }
                if let Output::Event(event) = &output {
                    call.event_failure = Failure::from_event(event);
                }
                if let Some(output) = imstls_output::from_output(output, engine.config()) {
                    slot.write(boxed(output));
                    return Ok(imstls_result::IMSTLS_OK);
                }
            }
        })
    })
}

/// When imstls next needs `imstls_ue_handle_timeout`, in your clock's milliseconds (rounded
/// up), in `*deadline_ms`. `IMSTLS_NOT_AVAILABLE` when no timer runs (wait for input only).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_next_timeout(
    ue: *const imstls_ue,
    deadline_ms: *mut u64,
) -> imstls_result {
    guard(|| {
        with_code(ue, "ue", |locked, _| {
            let slot = out(deadline_ms, "deadline_ms")?;
            Ok(match locked.inner.ue.next_timeout() {
                Some(at) => {
                    slot.write(locked.inner.clock.millis(at));
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// What the UE waits for, in `*out_state`.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_state(
    ue: *const imstls_ue,
    out_state: *mut imstls_state,
) -> imstls_result {
    guard(|| {
        with(ue, "ue", |locked, _| {
            out(out_state, "out_state")?.write(locked.inner.ue.state().into());
            Ok(())
        })
    })
}

/// The current flow in `*out_flow`; `IMSTLS_NOT_AVAILABLE` when there is none.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_current_flow(
    ue: *const imstls_ue,
    out_flow: *mut u64,
) -> imstls_result {
    guard(|| {
        with_code(ue, "ue", |locked, _| {
            let slot = out(out_flow, "out_flow")?;
            Ok(match locked.inner.ue.current_flow() {
                Some(flow) => {
                    slot.write(flow.0);
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// A snapshot of the O.2.2 binding in `*out_binding` once TLS is up;
/// `IMSTLS_NOT_AVAILABLE` before.
///
/// - Ownership: the binding is yours; free it with `imstls_binding_free`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_binding(
    ue: *const imstls_ue,
    out_binding: *mut *mut imstls_binding,
) -> imstls_result {
    guard(|| {
        with_code(ue, "ue", |locked, _| {
            let slot = out(out_binding, "out_binding")?;
            Ok(match locked.inner.ue.binding() {
                Some(binding) => {
                    slot.write(boxed(imstls_binding::new(&binding)));
                    imstls_result::IMSTLS_OK
                }
                None => imstls_result::IMSTLS_NOT_AVAILABLE,
            })
        })
    })
}

/// The UE's last failure — of a call (`IMSTLS_BUSY` excepted) or a failure event delivered
/// by `imstls_ue_poll_output` — as a copy in `*out_error` (free it with `imstls_error_free`).
/// `IMSTLS_NOT_AVAILABLE` when nothing failed yet. Works on a busy or poisoned UE.
///
/// - Thread safety: any thread, even while another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_last_error(
    ue: *const imstls_ue,
    out_error: *mut *mut imstls_error,
) -> imstls_result {
    guard(|| handle::last_error(ue, out_error))
}

/// Sends this UE's log records up to `level` (an `imstls_log_level`) to `callback` with
/// `userdata`; NULL or `IMSTLS_LOG_OFF` turns them off. See `imstls_log_callback`: it runs
/// during calls on this UE, with the UE locked (re-entering gets `IMSTLS_BUSY`).
///
/// - Returns `IMSTLS_LOGGER_UNAVAILABLE` when the process's Rust code installed another
///   `log` logger.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call is in progress.
#[no_mangle]
pub extern "C" fn imstls_ue_set_log_callback(
    ue: *mut imstls_ue,
    callback: imstls_log_callback,
    userdata: *mut c_void,
    level: u32,
) -> imstls_result {
    guard(|| handle::set_log_callback(ue.cast_const(), callback, userdata, level))
}

/// Calls `callback(userdata)` after every accepted input, once the UE is unlocked: outputs
/// are ready (useful when inputs come from another thread than the one that drains the UE).
/// NULL turns it off. See `imstls_wake_callback`.
///
/// A barrier: when it returns, no call of the previous callback is running on another thread
/// and none will start, so the previous `userdata` may be freed (it waits for such a call to
/// return). From inside a wake-up callback it does not wait.
///
/// - Thread safety: any thread; never `IMSTLS_BUSY` (works while another call is in
///   progress, and on a poisoned UE).
#[no_mangle]
pub extern "C" fn imstls_ue_set_wake_callback(
    ue: *mut imstls_ue,
    callback: imstls_wake_callback,
    userdata: *mut c_void,
) -> imstls_result {
    guard(|| handle::set_wake_callback(ue.cast_const(), callback, userdata))
}
