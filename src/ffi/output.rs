//! `imstls_output`: one thing for the caller to do (connect, transmit, close) or to know (an
//! event), as an immutable object with accessors. Returned by `imstls_ue_poll_output` and
//! `imstls_driver_poll_event`; the caller owns it and frees it with `imstls_output_free`.

use std::ffi::{c_char, CString};

use zeroize::Zeroizing;

use crate::config::{Host, UeConfig};
use crate::engine::{CandidateFailure, Event, LossReason, Output, RegisterReason, RekeyMethod};

use super::boundary::{arg, c_string, copy_out, free_boxed, guard, opt_arg, out};
use super::codes::{
    imstls_event_kind, imstls_output_type, imstls_register_reason, imstls_result, imstls_state,
};
use super::error::imstls_error;
use super::failure::Failure;

/// `imstls_output_flags` bit: the challenge carried stale=true.
pub const IMSTLS_FLAG_STALE: u32 = 1;
/// `imstls_output_flags` bit: the UE was registered on the lost flow.
pub const IMSTLS_FLAG_WAS_REGISTERED: u32 = 2;
/// `imstls_output_flags` bit: imstls retries by itself after a back-off.
pub const IMSTLS_FLAG_RETRYING: u32 = 4;
/// `imstls_output_flags` bit: the TLS handshake resumed a session.
pub const IMSTLS_FLAG_RESUMED: u32 = 8;
/// `imstls_output_flags` bit: the handshake was aborted (client-certificate policy).
pub const IMSTLS_FLAG_ABORTED: u32 = 16;

/// One output or event. Immutable; every accessor may be called from any thread. Strings are
/// NUL-terminated UTF-8 borrowed from the output (valid until `imstls_output_free`), `""`
/// when the field does not apply, never NULL for a non-NULL output (except
/// `imstls_output_error`). No string carries personal data except `data` of a SIP message.
pub struct imstls_output {
    kind: imstls_output_type,
    event: imstls_event_kind,
    event_name: CString,
    flow: u64,
    candidate: u32,
    host: CString,
    port: u16,
    data: Zeroizing<Vec<u8>>,
    reason: CString,
    register_reason: imstls_register_reason,
    detail: CString,
    clause: CString,
    sip_status: u16,
    attempt: u32,
    delay_ms: u64,
    expires_s: u64,
    refresh_in_s: u64,
    flags: u32,
    purged_sessions: usize,
    dropped_bytes: usize,
    tls_version: CString,
    cipher_suite: CString,
    kx_group: CString,
    error: Option<Box<imstls_error>>,
    failed_candidates: Vec<FailedCandidate>,
}

/// One candidate's failed attempt, as C reads it.
struct FailedCandidate {
    candidate: u32,
    flow: u64,
    target: CString,
    reason: CString,
    detail: CString,
}

impl FailedCandidate {
    fn new(failure: &CandidateFailure) -> Self {
        Self {
            candidate: u32::try_from(failure.candidate).unwrap_or(u32::MAX),
            flow: failure.flow.0,
            target: c_string(&failure.target),
            reason: c_string(failure.reason.code()),
            detail: c_string(&failure.reason.to_string()),
        }
    }
}

impl imstls_output {
    fn blank(kind: imstls_output_type) -> Self {
        Self {
            kind,
            event: imstls_event_kind::IMSTLS_EVENT_NONE,
            event_name: CString::default(),
            flow: 0,
            candidate: 0,
            host: CString::default(),
            port: 0,
            data: Zeroizing::new(Vec::new()),
            reason: CString::default(),
            register_reason: imstls_register_reason::IMSTLS_REGISTER_REASON_NONE,
            detail: CString::default(),
            clause: CString::default(),
            sip_status: 0,
            attempt: 0,
            delay_ms: 0,
            expires_s: 0,
            refresh_in_s: 0,
            flags: 0,
            purged_sessions: 0,
            dropped_bytes: 0,
            tls_version: CString::default(),
            cipher_suite: CString::default(),
            kx_group: CString::default(),
            error: None,
            failed_candidates: Vec::new(),
        }
    }

    fn set_target(&mut self, config: &UeConfig, candidate: usize) {
        if let Some(target) = config.candidates().get(candidate) {
            self.candidate = u32::try_from(candidate).unwrap_or(u32::MAX);
            self.host = c_string(&host_text(&target.host));
            self.port = target.port;
        }
    }

    /// The C form of an engine output; `None` for `Output::Timeout` (not an object in C).
    pub(crate) fn from_output(output: Output, config: &UeConfig) -> Option<Self> {
        Some(match output {
            Output::Connect {
                flow,
                candidate,
                host,
                port,
            } => {
                let mut this = Self::blank(imstls_output_type::IMSTLS_OUTPUT_CONNECT);
                this.flow = flow.0;
                this.candidate = u32::try_from(candidate).unwrap_or(u32::MAX);
                this.host = c_string(&host_text(&host));
                this.port = port;
                this
            }
            Output::Transmit { flow, data } => {
                let mut this = Self::blank(imstls_output_type::IMSTLS_OUTPUT_TRANSMIT);
                this.flow = flow.0;
                this.data = Zeroizing::new(data);
                this
            }
            Output::Close { flow } => {
                let mut this = Self::blank(imstls_output_type::IMSTLS_OUTPUT_CLOSE);
                this.flow = flow.0;
                this
            }
            Output::Event(event) => Self::from_event(event, config),
            // Timeout is `IMSTLS_NOTHING_MORE` plus `_next_timeout` in C; an output this
            // version does not know cannot be acted on.
            _ => return None,
        })
    }

    /// The C form of an engine event.
    pub(crate) fn from_event(event: Event, config: &UeConfig) -> Self {
        use imstls_event_kind as E;
        let mut this = Self::blank(imstls_output_type::IMSTLS_OUTPUT_EVENT);
        this.event_name = c_string(event.code());
        this.detail = c_string(&event.to_string());
        this.clause = c_string(event.clause());
        this.error = Failure::from_event(&event).map(|f| Box::new(imstls_error::new(&f)));
        this.event = match event {
            Event::Connecting {
                flow,
                candidate,
                attempt,
                ..
            } => {
                this.flow = flow.0;
                this.set_target(config, candidate);
                this.attempt = attempt;
                E::IMSTLS_EVENT_CONNECTING
            }
            Event::ConnectFailed { flow, reason } => {
                this.flow = flow.0;
                this.reason = c_string(reason.code());
                E::IMSTLS_EVENT_CONNECT_FAILED
            }
            Event::TlsEstablished { flow, details } => {
                this.flow = flow.0;
                this.tls_version = c_string(details.version);
                this.cipher_suite = c_string(details.cipher_suite);
                this.kx_group = c_string(details.key_exchange_group.unwrap_or(""));
                if details.resumed {
                    this.flags |= IMSTLS_FLAG_RESUMED;
                }
                E::IMSTLS_EVENT_TLS_ESTABLISHED
            }
            Event::ClientCertificateRequested { flow, aborted } => {
                this.flow = flow.0;
                if aborted {
                    this.flags |= IMSTLS_FLAG_ABORTED;
                }
                E::IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED
            }
            Event::CertificateRejected { flow, failure } => {
                this.flow = flow.0;
                this.reason = c_string(failure.certificate().map_or("other", |c| c.code()));
                E::IMSTLS_EVENT_CERTIFICATE_REJECTED
            }
            Event::TlsFailed { flow, failure } => {
                this.flow = flow.0;
                this.reason = c_string(failure.kind.code());
                E::IMSTLS_EVENT_TLS_FAILED
            }
            Event::RegisterNow { flow, reason } => {
                this.flow = flow.0;
                this.reason = c_string(reason.code());
                this.register_reason = register_reason(reason);
                E::IMSTLS_EVENT_REGISTER_NOW
            }
            Event::Registering { flow, kind } => {
                this.flow = flow.0;
                this.reason = c_string(kind.code());
                E::IMSTLS_EVENT_REGISTERING
            }
            Event::Challenged { flow, stale } => {
                this.flow = flow.0;
                if stale {
                    this.flags |= IMSTLS_FLAG_STALE;
                }
                E::IMSTLS_EVENT_CHALLENGED
            }
            Event::Registered {
                flow,
                expires,
                refresh_in,
            } => {
                this.flow = flow.0;
                this.expires_s = expires.as_secs();
                this.refresh_in_s = refresh_in.as_secs();
                E::IMSTLS_EVENT_REGISTERED
            }
            Event::ConnectionLost {
                flow,
                reason,
                registered,
            } => {
                this.flow = flow.0;
                this.reason = c_string(reason.code());
                if let LossReason::QueueOverflow { queued, .. }
                | LossReason::PeerNotReading { queued } = reason
                {
                    this.dropped_bytes = queued;
                }
                if registered {
                    this.flags |= IMSTLS_FLAG_WAS_REGISTERED;
                }
                E::IMSTLS_EVENT_CONNECTION_LOST
            }
            Event::BackingOff {
                attempt,
                delay,
                candidates,
            } => {
                this.attempt = attempt;
                this.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                this.failed_candidates = candidates.iter().map(FailedCandidate::new).collect();
                E::IMSTLS_EVENT_BACKING_OFF
            }
            Event::Superseded { abandoned } => {
                this.flow = abandoned.flow.map_or(0, |f| f.0);
                this.reason = c_string(imstls_state::from(abandoned.state).name());
                this.purged_sessions = abandoned.purged_sessions;
                this.dropped_bytes = abandoned.dropped_bytes;
                E::IMSTLS_EVENT_SUPERSEDED
            }
            Event::RegistrationFailed {
                status,
                reason,
                retrying,
                candidates,
            } => {
                this.failed_candidates = candidates.iter().map(FailedCandidate::new).collect();
                this.sip_status = status.unwrap_or(0);
                this.reason = c_string(reason.code());
                if retrying {
                    this.flags |= IMSTLS_FLAG_RETRYING;
                }
                E::IMSTLS_EVENT_REGISTRATION_FAILED
            }
            Event::Deregistered => E::IMSTLS_EVENT_DEREGISTERED,
            Event::SipReceived { flow, message } => {
                this.flow = flow.0;
                this.data = message;
                E::IMSTLS_EVENT_SIP_RECEIVED
            }
            Event::KeepAliveSent { flow } => {
                this.flow = flow.0;
                E::IMSTLS_EVENT_KEEPALIVE_SENT
            }
            Event::PongReceived { flow } => {
                this.flow = flow.0;
                E::IMSTLS_EVENT_PONG_RECEIVED
            }
            Event::PingAnswered { flow } => {
                this.flow = flow.0;
                E::IMSTLS_EVENT_PING_ANSWERED
            }
            Event::Rekeyed { flow, method } => {
                this.flow = flow.0;
                this.reason = c_string(match method {
                    RekeyMethod::KeyUpdate => "key_update",
                    RekeyMethod::NewFlow => "new_flow",
                });
                E::IMSTLS_EVENT_REKEYED
            }
            Event::KeyLogEnabled { flow } => {
                this.flow = flow.0;
                E::IMSTLS_EVENT_KEY_LOG_ENABLED
            }
            #[allow(unreachable_patterns)] // `Event` is non-exhaustive
            _ => E::IMSTLS_EVENT_OTHER,
        };
        this
    }
}

/// A host as C wants it: a name, or an IP literal without brackets.
fn host_text(host: &Host) -> String {
    match host {
        Host::Name(name) => name.clone(),
        Host::Ip(ip) => ip.to_string(),
    }
}

fn register_reason(reason: RegisterReason) -> imstls_register_reason {
    use imstls_register_reason as R;
    match reason {
        RegisterReason::Initial => R::IMSTLS_REGISTER_REASON_INITIAL,
        RegisterReason::Challenge { stale: false } => R::IMSTLS_REGISTER_REASON_CHALLENGE,
        RegisterReason::Challenge { stale: true } => R::IMSTLS_REGISTER_REASON_STALE_CHALLENGE,
        RegisterReason::Refresh => R::IMSTLS_REGISTER_REASON_REFRESH,
        RegisterReason::Recovery => R::IMSTLS_REGISTER_REASON_RECOVERY,
        RegisterReason::NetworkChanged => R::IMSTLS_REGISTER_REASON_NETWORK_CHANGED,
        RegisterReason::Rekey => R::IMSTLS_REGISTER_REASON_REKEY,
        RegisterReason::Deregister => R::IMSTLS_REGISTER_REASON_DEREGISTER,
    }
}

fn field<T: Default>(output: *const imstls_output, get: impl FnOnce(&imstls_output) -> T) -> T {
    opt_arg(output).map_or_else(T::default, get)
}

fn text(
    output: *const imstls_output,
    get: impl FnOnce(&imstls_output) -> &CString,
) -> *const c_char {
    opt_arg(output).map_or(c"".as_ptr(), |o| get(o).as_ptr())
}

/// What the output asks of you (`IMSTLS_OUTPUT_NONE` for NULL).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_kind(output: *const imstls_output) -> imstls_output_type {
    guard(|| opt_arg(output).map_or(imstls_output_type::IMSTLS_OUTPUT_NONE, |o| o.kind))
}

/// Which event this is (`IMSTLS_EVENT_NONE` unless the kind is `IMSTLS_OUTPUT_EVENT`).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_event(output: *const imstls_output) -> imstls_event_kind {
    guard(|| opt_arg(output).map_or(imstls_event_kind::IMSTLS_EVENT_NONE, |o| o.event))
}

/// The event's stable snake_case name (`"registered"`, `"certificate_rejected"`, ...), the
/// same as the Rust `Event::code()` and the `ue` CLI's JSON; `""` for non-events.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_event_name(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.event_name))
}

/// The flow the output is about (flows count from 1); 0 when none (e.g. BACKING_OFF).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_flow(output: *const imstls_output) -> u64 {
    guard(|| field(output, |o| o.flow))
}

/// CONNECT and CONNECTING: the index of the P-CSCF candidate (configuration order).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_candidate(output: *const imstls_output) -> u32 {
    guard(|| field(output, |o| o.candidate))
}

/// CONNECT and CONNECTING: the host to connect to — a DNS name (you resolve it) or an IP
/// literal without brackets.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_host(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.host))
}

/// CONNECT and CONNECTING: the TCP port.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_port(output: *const imstls_output) -> u16 {
    guard(|| field(output, |o| o.port))
}

/// TRANSMIT: the TLS records to write; SIP_RECEIVED: the whole SIP message. `*data` and
/// `*len` are set (length 0 for outputs without bytes).
///
/// - Lifetime: `*data` is borrowed from `output`, valid until `imstls_output_free` (the
///   bytes are zeroized then). No copy is made; see `imstls_output_copy_data` for one.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_data(
    output: *const imstls_output,
    data: *mut *const u8,
    len: *mut usize,
) -> imstls_result {
    guard(|| {
        let result = arg(output, "output").and_then(|o| {
            let data = out(data, "data")?;
            let len = out(len, "len")?;
            data.write(o.data.as_ptr());
            len.write(o.data.len());
            Ok(())
        });
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// Copies the output's bytes (see `imstls_output_data`; no NUL is added) into `buf` of
/// `capacity` bytes.
///
/// - Returns `IMSTLS_OK` with `*needed` = bytes copied, or `IMSTLS_BUFFER_TOO_SMALL` with
///   `*needed` = the size required (`buf` untouched; `buf` may be NULL with `capacity` 0 to
///   ask).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_copy_data(
    output: *const imstls_output,
    buf: *mut u8,
    capacity: usize,
    needed: *mut usize,
) -> imstls_result {
    guard(|| {
        let result =
            arg(output, "output").and_then(|o| copy_out(&o.data, false, buf, capacity, needed));
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// A stable code qualifying the event: CONNECT_FAILED → `"refused"`/`"unreachable"`/
/// `"timed_out"`/`"reset"`/`"other"`/`"unresolved"`; CERTIFICATE_REJECTED → `"expired"`, `"name_mismatch"`,
/// ... (see `imstls_error_certificate_failure`); TLS_FAILED → the TLS failure kind;
/// REGISTER_NOW → `"initial"`, `"challenge"`, ...; REGISTERING → `"register"`/`"refresh"`/
/// `"deregister"`; CONNECTION_LOST → `"reset"`, `"eof"`, `"pong_timeout"`, ...;
/// REGISTRATION_FAILED → `"rejected"`, `"timeout"`, `"certificate"`, ...; SUPERSEDED → the
/// state abandoned; REKEYED → `"key_update"`/`"new_flow"`. `""` otherwise.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_reason(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.reason))
}

/// REGISTER_NOW: which REGISTER to build.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_register_reason(
    output: *const imstls_output,
) -> imstls_register_reason {
    guard(|| {
        opt_arg(output).map_or(imstls_register_reason::IMSTLS_REGISTER_REASON_NONE, |o| {
            o.register_reason
        })
    })
}

/// One line of English describing the event, without personal data (fit for a log).
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_detail(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.detail))
}

/// The clause of TS 33.203 Annex O (or the RFC / TS) the event carries out, e.g.
/// `"TS 33.203 O.3.1.2"` — the conformance log a test lab reads.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_clause(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.clause))
}

/// REGISTRATION_FAILED: the SIP status the stack reported; 0 when none (a timeout).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_sip_status(output: *const imstls_output) -> u16 {
    guard(|| field(output, |o| o.sip_status))
}

/// CONNECTING: the attempt number within the procedure (1 first); BACKING_OFF: the
/// consecutive failures so far.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_attempt(output: *const imstls_output) -> u32 {
    guard(|| field(output, |o| o.attempt))
}

/// BACKING_OFF: how long imstls waits before the next attempt, in milliseconds.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_delay_ms(output: *const imstls_output) -> u64 {
    guard(|| field(output, |o| o.delay_ms))
}

/// REGISTERED: the granted expiry, in seconds.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_expires_s(output: *const imstls_output) -> u64 {
    guard(|| field(output, |o| o.expires_s))
}

/// REGISTERED: when the refresh will be due, in seconds from now (TS 24.229 §5.1.1.4.1).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_refresh_in_s(output: *const imstls_output) -> u64 {
    guard(|| field(output, |o| o.refresh_in_s))
}

/// `IMSTLS_FLAG_*` bits: STALE (CHALLENGED), WAS_REGISTERED (CONNECTION_LOST), RETRYING
/// (REGISTRATION_FAILED), RESUMED (TLS_ESTABLISHED), ABORTED (CLIENT_CERTIFICATE_REQUESTED).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_flags(output: *const imstls_output) -> u32 {
    guard(|| field(output, |o| o.flags))
}

/// SUPERSEDED: TLS sessions and tickets of the abandoned procedure that were purged (O.4.1).
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_purged_sessions(output: *const imstls_output) -> usize {
    guard(|| field(output, |o| o.purged_sessions))
}

/// SUPERSEDED: queued bytes (outgoing and partly received) that were dropped.
/// CONNECTION_LOST with reason `"peer_not_reading"` or `"queue_overflow"`: the bytes the
/// capped queue held when the flow was failed.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_dropped_bytes(output: *const imstls_output) -> usize {
    guard(|| field(output, |o| o.dropped_bytes))
}

/// TLS_ESTABLISHED: `"TLSv1.3"` or `"TLSv1.2"`.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_tls_version(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.tls_version))
}

/// TLS_ESTABLISHED: the IANA cipher suite name, e.g. `"TLS13_AES_256_GCM_SHA384"`.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_cipher_suite(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.cipher_suite))
}

/// TLS_ESTABLISHED: the key-exchange group, e.g. `"X25519MLKEM768"` (`""` on a TLS 1.2
/// resumption).
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_kx_group(output: *const imstls_output) -> *const c_char {
    guard(|| text(output, |o| &o.kx_group))
}

/// CERTIFICATE_REJECTED, TLS_FAILED, CONNECT_FAILED, CONNECTION_LOST, REGISTRATION_FAILED:
/// the failure in detail (alerts, certificate reason, expected and presented names); NULL
/// for other outputs.
///
/// - Lifetime: borrowed from `output` — do **not** pass it to `imstls_error_free`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_error(output: *const imstls_output) -> *const imstls_error {
    guard(|| {
        opt_arg(output)
            .and_then(|o| o.error.as_deref())
            .map_or(std::ptr::null(), |e| e as *const imstls_error)
    })
}

/// BACKING_OFF and REGISTRATION_FAILED: how many candidates failed in the round that ended
/// (failover), in the order tried; 0 for other outputs. Index them from 0 with the
/// `imstls_output_failed_candidate_*` accessors.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate_count(output: *const imstls_output) -> usize {
    guard(|| field(output, |o| o.failed_candidates.len()))
}

fn failed_candidate<T: Default>(
    output: *const imstls_output,
    index: usize,
    get: impl FnOnce(&FailedCandidate) -> T,
) -> T {
    field(output, |o| {
        o.failed_candidates.get(index).map(get).unwrap_or_default()
    })
}

fn failed_candidate_text(
    output: *const imstls_output,
    index: usize,
    get: impl FnOnce(&FailedCandidate) -> &CString,
) -> *const c_char {
    opt_arg(output)
        .and_then(|o| o.failed_candidates.get(index))
        .map_or(c"".as_ptr(), |f| get(f).as_ptr())
}

/// The `index`-th failed candidate's position in the configuration (as CONNECTING's
/// `imstls_output_candidate`); `UINT32_MAX` when `index` is out of range.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate(
    output: *const imstls_output,
    index: usize,
) -> u32 {
    guard(|| {
        opt_arg(output)
            .and_then(|o| o.failed_candidates.get(index))
            .map_or(u32::MAX, |f| f.candidate)
    })
}

/// The flow of the `index`-th failed candidate's attempt; 0 when out of range.
///
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate_flow(
    output: *const imstls_output,
    index: usize,
) -> u64 {
    guard(|| failed_candidate(output, index, |f| f.flow))
}

/// `"host:port"` of the `index`-th failed candidate; `""` when out of range.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate_target(
    output: *const imstls_output,
    index: usize,
) -> *const c_char {
    guard(|| failed_candidate_text(output, index, |f| &f.target))
}

/// Why the `index`-th candidate failed, a stable code: `"connect_refused"`,
/// `"connect_unreachable"`, `"connect_timed_out"`, `"connect_reset"`, `"connect_other"`,
/// `"connect_unresolved"`, a
/// TLS failure kind (`"no_common_cipher_suite"`, `"protocol_version"`, `"no_common_group"`,
/// `"client_certificate_requested"`, `"unexpected_eof"`, ...) or a certificate failure
/// (`"expired"`, `"name_mismatch"`, ...); `""` when out of range.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate_reason(
    output: *const imstls_output,
    index: usize,
) -> *const c_char {
    guard(|| failed_candidate_text(output, index, |f| &f.reason))
}

/// One line of English on the `index`-th candidate's failure (alerts included), without
/// personal data; `""` when out of range.
///
/// - Lifetime: borrowed from `output`.
/// - Thread safety: any thread; the output is immutable.
#[no_mangle]
pub extern "C" fn imstls_output_failed_candidate_detail(
    output: *const imstls_output,
    index: usize,
) -> *const c_char {
    guard(|| failed_candidate_text(output, index, |f| &f.detail))
}

/// Frees an output (its bytes are zeroized); NULL is a no-op.
///
/// - Thread safety: once, when no other thread reads it.
#[no_mangle]
pub extern "C" fn imstls_output_free(output: *mut imstls_output) {
    guard(|| free_boxed(output))
}
