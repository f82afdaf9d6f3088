//! The C enums, in the order an integrator meets them (configuration, UE, output, driver,
//! results), and their integer conversions. C passes enum-like codes in as `uint32_t`: an
//! out-of-range value in a Rust enum would be undefined behaviour, so they are matched
//! against [`CEnum::ALL`], never transmuted. Each enum is written out (cbindgen reads
//! written-out items only, never macro output) and followed by one `c_enum!` line that
//! lists its values once; everything else is derived from that list.

use std::ffi::CStr;

use crate::engine::UeState;

/// A C enum whose values arrive from C as plain integers.
pub(crate) trait CEnum: Copy + 'static {
    /// The C type name, for error messages.
    const C_NAME: &'static str;
    /// Every value, in declaration order.
    const ALL: &'static [Self];

    /// The integer C sees.
    fn to_u32(self) -> u32;

    /// The value with this integer, if it is one.
    fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.to_u32() == value)
    }
}

/// Implements [`CEnum`] for the enum written out just before it, from one list of its
/// values; `name -> T { VALUE => text, ... }` also gives it a `name(self) -> T` table.
/// `to_u32` is an exhaustive `match` over the list with no wildcard, so a value added to the
/// enum but not to the list, listed twice or unknown to the enum fails to compile: `ALL`
/// cannot fall out of step with the enum.
macro_rules! c_enum {
    ($enum:ident { $($value:ident),+ $(,)? }) => {
        impl CEnum for $enum {
            const C_NAME: &'static str = stringify!($enum);
            const ALL: &'static [Self] = &[$(Self::$value),+];

            #[deny(unreachable_patterns)]
            fn to_u32(self) -> u32 {
                match self {
                    $(Self::$value => Self::$value as u32,)+
                }
            }
        }
    };
    ($enum:ident, $table:ident -> $text:ty { $($value:ident => $entry:expr),+ $(,)? }) => {
        c_enum!($enum { $($value),+ });

        impl $enum {
            pub(crate) fn $table(self) -> $text {
                match self {
                    $(Self::$value => $entry,)+
                }
            }
        }
    };
}

// ---- Configuration (`imstls_config_builder_*`, the log callback) -------------------------

/// Which TLS versions to offer (TLS 1.0/1.1 never: TS 33.210 §6.2, RFC 8996). Passed as a
/// `uint32_t` to `imstls_config_builder_set_tls_versions`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_tls_versions {
    /// TLS 1.3 preferred, TLS 1.2 accepted (the default).
    IMSTLS_TLS_1_3_AND_1_2 = 1,
    /// TLS 1.3 only.
    IMSTLS_TLS_1_3_ONLY = 2,
}

c_enum!(imstls_tls_versions {
    IMSTLS_TLS_1_3_AND_1_2,
    IMSTLS_TLS_1_3_ONLY
});

/// What to do when the P-CSCF sends a CertificateRequest, which O.2.1 forbids. Passed as a
/// `uint32_t` to `imstls_config_builder_set_certificate_request_policy`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_certificate_request_policy {
    /// Send no certificate, carry on, report it with an event (the default).
    IMSTLS_CERTIFICATE_REQUEST_CONTINUE = 1,
    /// Abort the handshake.
    IMSTLS_CERTIFICATE_REQUEST_ABORT = 2,
}

c_enum!(imstls_certificate_request_policy {
    IMSTLS_CERTIFICATE_REQUEST_CONTINUE,
    IMSTLS_CERTIFICATE_REQUEST_ABORT,
});

/// Log levels, most severe first. `IMSTLS_LOG_OFF` (0) turns a handle's logging off.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_log_level {
    /// No logging.
    IMSTLS_LOG_OFF = 0,
    /// Errors.
    IMSTLS_LOG_ERROR = 1,
    /// Warnings (e.g. a P-CSCF certificate rejected, a connection lost).
    IMSTLS_LOG_WARN = 2,
    /// Milestones (TLS up, registered).
    IMSTLS_LOG_INFO = 3,
    /// Every event with its clause.
    IMSTLS_LOG_DEBUG = 4,
    /// Everything, including rustls internals.
    IMSTLS_LOG_TRACE = 5,
}

c_enum!(imstls_log_level {
    IMSTLS_LOG_OFF,
    IMSTLS_LOG_ERROR,
    IMSTLS_LOG_WARN,
    IMSTLS_LOG_INFO,
    IMSTLS_LOG_DEBUG,
    IMSTLS_LOG_TRACE,
});

// ---- The sans-IO UE (`imstls_ue_*`) ------------------------------------------------------

/// What the engine waits for (`imstls_ue_state()`, `imstls_driver_state()`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_state {
    /// No registration wanted: waiting for `start_registration`.
    IMSTLS_STATE_IDLE = 1,
    /// Waiting for the TCP connect result.
    IMSTLS_STATE_CONNECTING = 2,
    /// Waiting for the TLS handshake.
    IMSTLS_STATE_HANDSHAKING = 3,
    /// Flow up: waiting for the stack's REGISTER.
    IMSTLS_STATE_AWAITING_REGISTER = 4,
    /// REGISTER sent: waiting for the stack to report the answer.
    IMSTLS_STATE_REGISTERING = 5,
    /// Registered (refreshes run in this state).
    IMSTLS_STATE_REGISTERED = 6,
    /// De-REGISTER due or sent.
    IMSTLS_STATE_DEREGISTERING = 7,
    /// Waiting out an RFC 5626 §4.5 back-off.
    IMSTLS_STATE_BACKING_OFF = 8,
    /// Stopped after a failure that is not retried automatically (certificate, 4xx):
    /// waiting for a new `start_registration`.
    IMSTLS_STATE_CLOSED = 9,
}

c_enum!(imstls_state, name -> &'static str {
    IMSTLS_STATE_IDLE => "idle",
    IMSTLS_STATE_CONNECTING => "connecting",
    IMSTLS_STATE_HANDSHAKING => "handshaking",
    IMSTLS_STATE_AWAITING_REGISTER => "awaiting_register",
    IMSTLS_STATE_REGISTERING => "registering",
    IMSTLS_STATE_REGISTERED => "registered",
    IMSTLS_STATE_DEREGISTERING => "deregistering",
    IMSTLS_STATE_BACKING_OFF => "backing_off",
    IMSTLS_STATE_CLOSED => "closed",
});

impl From<UeState> for imstls_state {
    fn from(state: UeState) -> Self {
        use imstls_state as S;
        match state {
            UeState::Idle => S::IMSTLS_STATE_IDLE,
            UeState::Connecting => S::IMSTLS_STATE_CONNECTING,
            UeState::Handshaking => S::IMSTLS_STATE_HANDSHAKING,
            UeState::AwaitingRegister => S::IMSTLS_STATE_AWAITING_REGISTER,
            UeState::Registering => S::IMSTLS_STATE_REGISTERING,
            UeState::Registered => S::IMSTLS_STATE_REGISTERED,
            UeState::Deregistering => S::IMSTLS_STATE_DEREGISTERING,
            UeState::BackingOff => S::IMSTLS_STATE_BACKING_OFF,
            UeState::Closed => S::IMSTLS_STATE_CLOSED,
        }
    }
}

/// Why a TCP connect failed, for `imstls_ue_connect_failed` / `imstls_driver_connect_failed`
/// (passed as a `uint32_t`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_connect_error {
    /// ECONNREFUSED.
    IMSTLS_CONNECT_REFUSED = 1,
    /// Host or network unreachable.
    IMSTLS_CONNECT_UNREACHABLE = 2,
    /// The connect timed out.
    IMSTLS_CONNECT_TIMED_OUT = 3,
    /// Reset by the peer.
    IMSTLS_CONNECT_RESET = 4,
    /// Anything else (describe it in `detail`).
    IMSTLS_CONNECT_OTHER = 5,
    /// The P-CSCF's name did not resolve to any address.
    IMSTLS_CONNECT_UNRESOLVED = 6,
}

c_enum!(imstls_connect_error {
    IMSTLS_CONNECT_REFUSED,
    IMSTLS_CONNECT_UNREACHABLE,
    IMSTLS_CONNECT_TIMED_OUT,
    IMSTLS_CONNECT_RESET,
    IMSTLS_CONNECT_OTHER,
    IMSTLS_CONNECT_UNRESOLVED,
});

/// How the caller's socket ended, for `imstls_ue_transport_closed` (passed as a `uint32_t`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_transport_closure {
    /// `read` returned 0 (FIN).
    IMSTLS_CLOSURE_EOF = 1,
    /// ECONNRESET.
    IMSTLS_CLOSURE_RESET = 2,
    /// Another socket error (describe it in `detail`).
    IMSTLS_CLOSURE_ERROR = 3,
}

c_enum!(imstls_transport_closure {
    IMSTLS_CLOSURE_EOF,
    IMSTLS_CLOSURE_RESET,
    IMSTLS_CLOSURE_ERROR,
});

// ---- Outputs and events (`imstls_output_*`) ----------------------------------------------

/// What an output asks of the caller.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_output_type {
    /// Not an output (the value accessors give for NULL).
    IMSTLS_OUTPUT_NONE = 0,
    /// Open a TCP connection to `imstls_output_host`:`imstls_output_port` for flow
    /// `imstls_output_flow`, then report `imstls_ue_connected` or `imstls_ue_connect_failed`
    /// (sans-IO), or adopt a socket with `imstls_driver_adopt_fd` (driver in external-connect
    /// mode).
    IMSTLS_OUTPUT_CONNECT = 1,
    /// Write `imstls_output_data` to the flow's socket, in order (sans-IO only).
    IMSTLS_OUTPUT_TRANSMIT = 2,
    /// Close the flow's socket, after writing every earlier TRANSMIT for it: a fatal alert
    /// may be among them (TS 33.203 O.3.1.2) (sans-IO only).
    IMSTLS_OUTPUT_CLOSE = 3,
    /// Something happened: see `imstls_output_event`.
    IMSTLS_OUTPUT_EVENT = 4,
}

c_enum!(imstls_output_type {
    IMSTLS_OUTPUT_NONE,
    IMSTLS_OUTPUT_CONNECT,
    IMSTLS_OUTPUT_TRANSMIT,
    IMSTLS_OUTPUT_CLOSE,
    IMSTLS_OUTPUT_EVENT,
});

/// Which event an `IMSTLS_OUTPUT_EVENT` is. `imstls_output_event_name` gives the same as a
/// stable string; `imstls_output_clause` the clause of TS 33.203 (or RFC) behind it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_event_kind {
    /// Not an event.
    IMSTLS_EVENT_NONE = 0,
    /// A new flow is being opened (`host`, `port`, `candidate`, `attempt`).
    IMSTLS_EVENT_CONNECTING = 1,
    /// The TCP connection could not be made (`reason`: refused, unreachable, timed_out,
    /// reset, other; `error`).
    IMSTLS_EVENT_CONNECT_FAILED = 2,
    /// TLS is up (`tls_version`, `cipher_suite`, `kx_group`, flag RESUMED).
    IMSTLS_EVENT_TLS_ESTABLISHED = 3,
    /// The P-CSCF sent a CertificateRequest, which O.2.1 forbids (flag ABORTED).
    IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED = 4,
    /// The P-CSCF certificate was rejected; the fatal alert was written before the close
    /// (`reason`: expired, name_mismatch, ...; `error` has alert and names).
    IMSTLS_EVENT_CERTIFICATE_REJECTED = 5,
    /// The TLS handshake failed for another reason (`reason`, `error`).
    IMSTLS_EVENT_TLS_FAILED = 6,
    /// Send a REGISTER on this flow now (`register_reason`). The one event that needs an
    /// answer: build the REGISTER and call `send_sip`.
    IMSTLS_EVENT_REGISTER_NOW = 7,
    /// A REGISTER went out (`reason`: register, refresh, deregister).
    IMSTLS_EVENT_REGISTERING = 8,
    /// The stack reported a 401/407; the next REGISTER goes on the same flow (flag STALE).
    IMSTLS_EVENT_CHALLENGED = 9,
    /// Registered (`expires_s`, `refresh_in_s`).
    IMSTLS_EVENT_REGISTERED = 10,
    /// The flow was lost (`reason`, flag WAS_REGISTERED, `error`; for `"peer_not_reading"`
    /// and `"queue_overflow"`, `dropped_bytes`); a new flow follows.
    IMSTLS_EVENT_CONNECTION_LOST = 11,
    /// Waiting before the next attempt (`attempt`, `delay_ms`; RFC 5626 §4.5). When every
    /// candidate failed in the round, `imstls_output_failed_candidate_count` and the
    /// `imstls_output_failed_candidate_*` accessors give each candidate's failure.
    IMSTLS_EVENT_BACKING_OFF = 12,
    /// An incomplete registration was torn down (O.4.1): `flow` (0 if none),
    /// `purged_sessions`, `dropped_bytes`, `reason` = the state it was in.
    IMSTLS_EVENT_SUPERSEDED = 13,
    /// The registration failed (`sip_status`, `reason`, flag RETRYING). With `reason` `"tls"`
    /// every candidate was tried and each failed for its TLS configuration (no common
    /// version, suite or group; a client certificate demanded under the abort policy): the
    /// `imstls_output_failed_candidate_*` accessors list them, one per candidate. With
    /// `"certificate"` they list the candidates tried before and the rejected one last.
    IMSTLS_EVENT_REGISTRATION_FAILED = 14,
    /// De-registered; the flow is closed.
    IMSTLS_EVENT_DEREGISTERED = 15,
    /// A SIP message arrived (`data`): a response, or a request on the registered flow.
    IMSTLS_EVENT_SIP_RECEIVED = 16,
    /// A CRLF keep-alive ping was sent.
    IMSTLS_EVENT_KEEPALIVE_SENT = 17,
    /// The pong arrived.
    IMSTLS_EVENT_PONG_RECEIVED = 18,
    /// The P-CSCF pinged and imstls answered: one pong per read, however many pings it held.
    IMSTLS_EVENT_PING_ANSWERED = 19,
    /// Keys were refreshed (`reason`: key_update, new_flow).
    IMSTLS_EVENT_REKEYED = 20,
    /// Warning: this flow's TLS secrets go to the key log the application configured
    /// (`imstls_config_builder_set_key_log_file` / `_callback`): it can be decrypted.
    IMSTLS_EVENT_KEY_LOG_ENABLED = 21,
    /// An event this version of the C API does not name; `imstls_output_event_name` has it.
    IMSTLS_EVENT_OTHER = 255,
}

c_enum!(imstls_event_kind {
    IMSTLS_EVENT_NONE,
    IMSTLS_EVENT_CONNECTING,
    IMSTLS_EVENT_CONNECT_FAILED,
    IMSTLS_EVENT_TLS_ESTABLISHED,
    IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED,
    IMSTLS_EVENT_CERTIFICATE_REJECTED,
    IMSTLS_EVENT_TLS_FAILED,
    IMSTLS_EVENT_REGISTER_NOW,
    IMSTLS_EVENT_REGISTERING,
    IMSTLS_EVENT_CHALLENGED,
    IMSTLS_EVENT_REGISTERED,
    IMSTLS_EVENT_CONNECTION_LOST,
    IMSTLS_EVENT_BACKING_OFF,
    IMSTLS_EVENT_SUPERSEDED,
    IMSTLS_EVENT_REGISTRATION_FAILED,
    IMSTLS_EVENT_DEREGISTERED,
    IMSTLS_EVENT_SIP_RECEIVED,
    IMSTLS_EVENT_KEEPALIVE_SENT,
    IMSTLS_EVENT_PONG_RECEIVED,
    IMSTLS_EVENT_PING_ANSWERED,
    IMSTLS_EVENT_REKEYED,
    IMSTLS_EVENT_KEY_LOG_ENABLED,
    IMSTLS_EVENT_OTHER,
});

/// Why a REGISTER is due (`IMSTLS_EVENT_REGISTER_NOW`): what kind of REGISTER to build.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_register_reason {
    /// Not a REGISTER_NOW event.
    IMSTLS_REGISTER_REASON_NONE = 0,
    /// A new registration started: new Call-ID, no credentials yet.
    IMSTLS_REGISTER_REASON_INITIAL = 1,
    /// Answer the 401/407 just reported, on the same flow.
    IMSTLS_REGISTER_REASON_CHALLENGE = 2,
    /// Answer a stale=true challenge with the same credentials (O.3.1.3).
    IMSTLS_REGISTER_REASON_STALE_CHALLENGE = 3,
    /// Refresh the registration on its flow (O.4.3).
    IMSTLS_REGISTER_REASON_REFRESH = 4,
    /// The flow was lost: a new registration on the new flow (O.4.1).
    IMSTLS_REGISTER_REASON_RECOVERY = 5,
    /// The network changed: a new registration on the new flow.
    IMSTLS_REGISTER_REASON_NETWORK_CHANGED = 6,
    /// A TLS 1.2 flow was replaced for fresh keys: a new registration.
    IMSTLS_REGISTER_REASON_REKEY = 7,
    /// De-register: REGISTER with Expires: 0.
    IMSTLS_REGISTER_REASON_DEREGISTER = 8,
}

c_enum!(imstls_register_reason {
    IMSTLS_REGISTER_REASON_NONE,
    IMSTLS_REGISTER_REASON_INITIAL,
    IMSTLS_REGISTER_REASON_CHALLENGE,
    IMSTLS_REGISTER_REASON_STALE_CHALLENGE,
    IMSTLS_REGISTER_REASON_REFRESH,
    IMSTLS_REGISTER_REASON_RECOVERY,
    IMSTLS_REGISTER_REASON_NETWORK_CHANGED,
    IMSTLS_REGISTER_REASON_REKEY,
    IMSTLS_REGISTER_REASON_DEREGISTER,
});

// ---- The managed driver (`imstls_driver_*`) ----------------------------------------------

/// Who opens the TCP connections of a driver (passed as a `uint32_t` to
/// `imstls_driver_set_connect_mode`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_connect_mode {
    /// The driver resolves, connects (IPv6 and IPv4, every address) and owns the sockets.
    /// The default.
    IMSTLS_CONNECT_MANAGED = 1,
    /// The application creates and connects each flow's socket (e.g. bound to an Android
    /// `Network`) and hands it in with `imstls_driver_adopt_fd`.
    IMSTLS_CONNECT_EXTERNAL = 2,
}

c_enum!(imstls_connect_mode {
    IMSTLS_CONNECT_MANAGED,
    IMSTLS_CONNECT_EXTERNAL
});

/// Who closes a descriptor handed to `imstls_driver_adopt_fd` (passed as a `uint32_t`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_fd_ownership {
    /// The driver owns the descriptor from a successful call on, sets close-on-exec on it and
    /// closes it when the flow ends. (On error it stays yours.)
    IMSTLS_FD_TRANSFER = 1,
    /// The descriptor stays yours: the driver works on a duplicate (close-on-exec) and never
    /// closes yours; when the flow ends it shuts the connection down (`shutdown(2)`) and
    /// closes its duplicate. Close yours whenever you like after the adopt call. The
    /// duplicate shares your open file description, so the driver never changes its status
    /// flags: a blocking descriptor stays blocking (the driver asks for non-blocking I/O per
    /// call, `MSG_DONTWAIT`). It does set `TCP_NODELAY` on the connection.
    IMSTLS_FD_BORROW = 2,
}

c_enum!(imstls_fd_ownership {
    IMSTLS_FD_TRANSFER,
    IMSTLS_FD_BORROW
});

// ---- Results (every fallible function) ---------------------------------------------------

/// The outcome of a call. `IMSTLS_OK` is 0. Values are grouped by hundreds into families and
/// are never reused: a retired value stays retired.
///
/// - 0–99: no error (`IMSTLS_OK`, `IMSTLS_NOTHING_MORE`, `IMSTLS_NOT_AVAILABLE`)
/// - 100–199: a bad argument
/// - 200–299: the call does not fit the current state (call order)
/// - 300–399: the handle itself (busy, panicked, poisoned)
/// - 400–499: configuration
/// - 500–599: network and peer failures (recorded as a handle's last error when their event
///   is delivered; no function returns them)
/// - 600–699: the operating system
///
/// Functions return it as a `uint32_t`-sized value; functions that take a result code (such
/// as `imstls_result_str`) take a plain `uint32_t` and accept any value.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum imstls_result {
    /// Success.
    IMSTLS_OK = 0,
    /// Nothing more now: the output queue is drained, or there is no event to deliver. Not an
    /// error.
    IMSTLS_NOTHING_MORE = 1,
    /// The thing asked for does not exist now (no binding before TLS is up, no alert, no
    /// timer, no socket). Not an error.
    IMSTLS_NOT_AVAILABLE = 2,
    /// A required pointer argument was NULL.
    IMSTLS_NULL_ARGUMENT = 100,
    /// A string argument was not valid UTF-8.
    IMSTLS_INVALID_UTF8 = 101,
    /// An argument is out of range (an unknown enum code, a malformed address, a zero expiry...).
    IMSTLS_INVALID_ARGUMENT = 102,
    /// The caller's buffer is too small; the needed size was written to the size out-parameter.
    IMSTLS_BUFFER_TOO_SMALL = 103,
    /// The IMPI or an IMPU is unusable.
    IMSTLS_INVALID_IDENTITY = 104,
    /// The buffer given to `send_sip` is not exactly one well-formed SIP message in the strict
    /// form imstls sends (RFC 3261: CRLF line ends only, `name: value` header lines without
    /// folding, one Content-Length equal to the body's length); the handle's last error names
    /// the rule that failed.
    IMSTLS_BAD_SIP_MESSAGE = 105,
    /// The operation does not fit the current state (e.g. `send_sip` before a flow is up).
    IMSTLS_WRONG_STATE = 200,
    /// The flow is not the current one (a late input from an old socket).
    IMSTLS_UNKNOWN_FLOW = 201,
    /// TS 33.203 O.4.2: only REGISTER may be sent on a flow that is not registered.
    IMSTLS_REGISTER_FIRST = 202,
    /// A REGISTER is already waiting for its answer.
    IMSTLS_REGISTER_IN_FLIGHT = 203,
    /// The driver is not in the connect mode this call needs.
    IMSTLS_WRONG_MODE = 204,
    /// A REGISTER answer was reported for a flow that is no longer the current one: it
    /// answers an earlier procedure or attempt and was not applied (TS 33.203 O.4.1).
    IMSTLS_STALE_REPORT = 205,
    /// The engine refused the input for a reason this version of the C API does not name;
    /// the handle's last error has the message.
    IMSTLS_REFUSED = 299,
    /// Another call on this handle is in progress (another thread, or a re-entrant call from
    /// a callback). Nothing was done; try again later. Never blocks.
    IMSTLS_BUSY = 300,
    /// imstls panicked inside this call (a bug). The handle is now poisoned.
    IMSTLS_PANIC = 301,
    /// An earlier call on this handle panicked; only `_free` and `_last_error` still work.
    IMSTLS_POISONED = 302,
    /// The driver was stopped (`imstls_driver_stop` or `imstls_driver_free`):
    /// `imstls_driver_run` returns at once without processing. Leave the loop.
    IMSTLS_STOPPED = 303,
    /// A configuration value cannot be used; the builder's last error names the field.
    IMSTLS_INVALID_CONFIG = 400,
    /// A configuration file (trust anchors, CRLs) could not be read.
    IMSTLS_CONFIG_FILE = 401,
    /// Failure event: the P-CSCF certificate was rejected (TS 33.203 O.3.1.2).
    IMSTLS_CERTIFICATE_REJECTED = 500,
    /// Failure event: the TLS handshake failed for another reason.
    IMSTLS_TLS_FAILED = 501,
    /// Failure event: an established flow was lost.
    IMSTLS_CONNECTION_LOST = 502,
    /// Failure event: a TCP connect failed.
    IMSTLS_CONNECT_FAILED = 503,
    /// Failure event: the registrar rejected the registration, or it timed out.
    IMSTLS_REGISTRATION_FAILED = 504,
    /// A system call failed (socket, poll).
    IMSTLS_IO_ERROR = 600,
    /// The `log` facade already has another logger in this process, so imstls cannot
    /// deliver log records to a callback.
    IMSTLS_LOGGER_UNAVAILABLE = 601,
}

c_enum!(imstls_result, message -> &'static CStr {
    IMSTLS_OK => c"ok",
    IMSTLS_NOTHING_MORE => c"nothing more now",
    IMSTLS_NOT_AVAILABLE => c"not available now",
    IMSTLS_NULL_ARGUMENT => c"a required pointer argument is NULL",
    IMSTLS_INVALID_UTF8 => c"a string argument is not valid UTF-8",
    IMSTLS_INVALID_ARGUMENT => c"an argument is out of range",
    IMSTLS_BUFFER_TOO_SMALL => c"the buffer is too small; the needed size was reported",
    IMSTLS_INVALID_IDENTITY => c"the IMPI or an IMPU is unusable",
    IMSTLS_BAD_SIP_MESSAGE => c"not exactly one well-formed SIP message",
    IMSTLS_WRONG_STATE => c"the operation does not fit the current state",
    IMSTLS_UNKNOWN_FLOW => c"the flow is not the current one",
    IMSTLS_REGISTER_FIRST => {
        c"only REGISTER may be sent on a flow that is not registered (TS 33.203 O.4.2)"
    },
    IMSTLS_REGISTER_IN_FLIGHT => c"a REGISTER is already waiting for its answer",
    IMSTLS_WRONG_MODE => c"the driver is not in the connect mode this call needs",
    IMSTLS_STALE_REPORT => {
        c"the answer arrived on a flow that is no longer current; it was not applied"
    },
    IMSTLS_REFUSED => c"the engine refused the input",
    IMSTLS_BUSY => c"another call on this handle is in progress",
    IMSTLS_PANIC => c"imstls panicked inside the call; the handle is poisoned",
    IMSTLS_POISONED => c"the handle is poisoned by an earlier panic",
    IMSTLS_STOPPED => c"the driver was stopped",
    IMSTLS_INVALID_CONFIG => c"a configuration value cannot be used",
    IMSTLS_CONFIG_FILE => c"a configuration file could not be read",
    IMSTLS_CERTIFICATE_REJECTED => c"the P-CSCF certificate was rejected",
    IMSTLS_TLS_FAILED => c"the TLS handshake failed",
    IMSTLS_CONNECTION_LOST => c"the connection to the P-CSCF was lost",
    IMSTLS_CONNECT_FAILED => c"the TCP connection could not be made",
    IMSTLS_REGISTRATION_FAILED => c"the registration failed",
    IMSTLS_IO_ERROR => c"a system call failed",
    IMSTLS_LOGGER_UNAVAILABLE => c"another logger owns the log facade in this process",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value round-trips through its integer; integers that are no value are refused.
    fn round_trips<E: CEnum + PartialEq + std::fmt::Debug>() {
        assert!(!E::ALL.is_empty(), "{}", E::C_NAME);
        for value in E::ALL {
            assert_eq!(E::from_u32(value.to_u32()), Some(*value), "{}", E::C_NAME);
        }
        let largest = E::ALL.iter().map(|v| v.to_u32()).max().unwrap_or(0);
        for outside in [largest + 1, u32::MAX] {
            assert_eq!(E::from_u32(outside), None, "{} {outside}", E::C_NAME);
        }
    }

    #[test]
    fn every_c_enum_round_trips_and_refuses_other_integers() {
        round_trips::<imstls_tls_versions>();
        round_trips::<imstls_certificate_request_policy>();
        round_trips::<imstls_log_level>();
        round_trips::<imstls_state>();
        round_trips::<imstls_connect_error>();
        round_trips::<imstls_transport_closure>();
        round_trips::<imstls_output_type>();
        round_trips::<imstls_event_kind>();
        round_trips::<imstls_register_reason>();
        round_trips::<imstls_connect_mode>();
        round_trips::<imstls_fd_ownership>();
        round_trips::<imstls_result>();
    }

    #[test]
    fn the_lists_hold_every_value_in_declaration_order() {
        // Values with gaps: the list is the enum's, not a range.
        assert_eq!(imstls_result::ALL.len(), 29);
        assert_eq!(imstls_result::from_u32(7), None);
        assert_eq!(
            imstls_result::from_u32(299),
            Some(imstls_result::IMSTLS_REFUSED)
        );
        assert_eq!(imstls_event_kind::ALL.len(), 23);
        assert_eq!(
            imstls_event_kind::ALL.last(),
            Some(&imstls_event_kind::IMSTLS_EVENT_OTHER)
        );
        assert_eq!(imstls_event_kind::from_u32(22), None);
        let codes: Vec<u32> = imstls_state::ALL.iter().map(|s| s.to_u32()).collect();
        assert_eq!(codes, (1..=9).collect::<Vec<_>>());
        assert_eq!(imstls_connect_mode::C_NAME, "imstls_connect_mode");
    }

    #[test]
    fn tables_have_an_entry_for_every_value() {
        for code in imstls_result::ALL {
            assert!(!code.message().to_bytes().is_empty(), "{code:?}");
        }
        let names: Vec<&str> = imstls_state::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "idle",
                "connecting",
                "handshaking",
                "awaiting_register",
                "registering",
                "registered",
                "deregistering",
                "backing_off",
                "closed"
            ]
        );
        assert_eq!(
            imstls_state::from(UeState::AwaitingRegister),
            imstls_state::IMSTLS_STATE_AWAITING_REGISTER
        );
    }
}
