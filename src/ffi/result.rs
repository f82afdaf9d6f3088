//! `imstls_result`: what every fallible function returns.

use std::ffi::{c_char, CStr};

use super::boundary::guard;

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

impl imstls_result {
    /// The static message for this code.
    pub(crate) fn message(self) -> &'static CStr {
        use imstls_result as R;
        match self {
            R::IMSTLS_OK => c"ok",
            R::IMSTLS_NOTHING_MORE => c"nothing more now",
            R::IMSTLS_NOT_AVAILABLE => c"not available now",
            R::IMSTLS_NULL_ARGUMENT => c"a required pointer argument is NULL",
            R::IMSTLS_INVALID_UTF8 => c"a string argument is not valid UTF-8",
            R::IMSTLS_INVALID_ARGUMENT => c"an argument is out of range",
            R::IMSTLS_BUFFER_TOO_SMALL => c"the buffer is too small; the needed size was reported",
            R::IMSTLS_INVALID_IDENTITY => c"the IMPI or an IMPU is unusable",
            R::IMSTLS_BAD_SIP_MESSAGE => c"not exactly one well-formed SIP message",
            R::IMSTLS_WRONG_STATE => c"the operation does not fit the current state",
            R::IMSTLS_UNKNOWN_FLOW => c"the flow is not the current one",
            R::IMSTLS_REGISTER_FIRST => {
                c"only REGISTER may be sent on a flow that is not registered (TS 33.203 O.4.2)"
            }
            R::IMSTLS_REGISTER_IN_FLIGHT => c"a REGISTER is already waiting for its answer",
            R::IMSTLS_WRONG_MODE => c"the driver is not in the connect mode this call needs",
            R::IMSTLS_STALE_REPORT => {
                c"the answer arrived on a flow that is no longer current; it was not applied"
            }
            R::IMSTLS_REFUSED => c"the engine refused the input",
            R::IMSTLS_BUSY => c"another call on this handle is in progress",
            R::IMSTLS_PANIC => c"imstls panicked inside the call; the handle is poisoned",
            R::IMSTLS_POISONED => c"the handle is poisoned by an earlier panic",
            R::IMSTLS_STOPPED => c"the driver was stopped",
            R::IMSTLS_INVALID_CONFIG => c"a configuration value cannot be used",
            R::IMSTLS_CONFIG_FILE => c"a configuration file could not be read",
            R::IMSTLS_CERTIFICATE_REJECTED => c"the P-CSCF certificate was rejected",
            R::IMSTLS_TLS_FAILED => c"the TLS handshake failed",
            R::IMSTLS_CONNECTION_LOST => c"the connection to the P-CSCF was lost",
            R::IMSTLS_CONNECT_FAILED => c"the TCP connection could not be made",
            R::IMSTLS_REGISTRATION_FAILED => c"the registration failed",
            R::IMSTLS_IO_ERROR => c"a system call failed",
            R::IMSTLS_LOGGER_UNAVAILABLE => c"another logger owns the log facade in this process",
        }
    }

    /// Every code, for the validation of incoming integers.
    const ALL: [imstls_result; 29] = {
        use imstls_result as R;
        [
            R::IMSTLS_OK,
            R::IMSTLS_NOTHING_MORE,
            R::IMSTLS_NOT_AVAILABLE,
            R::IMSTLS_NULL_ARGUMENT,
            R::IMSTLS_INVALID_UTF8,
            R::IMSTLS_INVALID_ARGUMENT,
            R::IMSTLS_BUFFER_TOO_SMALL,
            R::IMSTLS_INVALID_IDENTITY,
            R::IMSTLS_BAD_SIP_MESSAGE,
            R::IMSTLS_WRONG_STATE,
            R::IMSTLS_UNKNOWN_FLOW,
            R::IMSTLS_REGISTER_FIRST,
            R::IMSTLS_REGISTER_IN_FLIGHT,
            R::IMSTLS_WRONG_MODE,
            R::IMSTLS_STALE_REPORT,
            R::IMSTLS_REFUSED,
            R::IMSTLS_BUSY,
            R::IMSTLS_PANIC,
            R::IMSTLS_POISONED,
            R::IMSTLS_STOPPED,
            R::IMSTLS_INVALID_CONFIG,
            R::IMSTLS_CONFIG_FILE,
            R::IMSTLS_CERTIFICATE_REJECTED,
            R::IMSTLS_TLS_FAILED,
            R::IMSTLS_CONNECTION_LOST,
            R::IMSTLS_CONNECT_FAILED,
            R::IMSTLS_REGISTRATION_FAILED,
            R::IMSTLS_IO_ERROR,
            R::IMSTLS_LOGGER_UNAVAILABLE,
        ]
    };

    /// The code with this value, if it is one (an out-of-range enum value would be UB, so
    /// integers from C are matched, never transmuted).
    pub(crate) fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u32 == value)
    }
}

/// A static, NUL-terminated English message for a result code. Any value is accepted;
/// unknown values give "unknown result code".
///
/// - Ownership: the string is static; never free it.
/// - Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn imstls_result_str(result: u32) -> *const c_char {
    guard(|| {
        imstls_result::from_u32(result)
            .map_or(c"unknown result code", imstls_result::message)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_families_are_hundreds() {
        for code in imstls_result::ALL {
            assert_eq!(imstls_result::from_u32(code as u32), Some(code));
            assert!(!code.message().to_bytes().is_empty());
        }
        assert_eq!(imstls_result::from_u32(7), None);
        assert_eq!(imstls_result::from_u32(u32::MAX), None);
    }
}
