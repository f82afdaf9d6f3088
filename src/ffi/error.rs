//! `imstls_error`: a structured failure — the result code, a message, and for TLS failures
//! the alerts that crossed the wire, the certificate reason and the expected and presented
//! names. A handle's last error is read as an `imstls_error` copy; an output carrying a
//! failure lends one. Also `imstls_result_str`, the message of a bare result code.

use std::ffi::{c_char, CString};

use crate::tls::alert_name;

use super::boundary::{arg, c_string, copy_out, free_boxed, guard, opt_arg, out};
use super::codes::{imstls_result, CEnum};
use super::failure::{Failure, TlsDetail};

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

/// A structured failure. Read it with the `imstls_error_*` accessors; every string they
/// return is NUL-terminated UTF-8 owned by the `imstls_error` and valid until it is freed
/// (`""` when the field does not apply, never NULL for a non-NULL error).
///
/// An `imstls_error` is immutable: any thread may read it; free it once. One obtained from
/// `imstls_ue_last_error`, `imstls_driver_last_error` or `imstls_config_builder_last_error`
/// is yours to free with `imstls_error_free`; one lent by `imstls_output_error` belongs to
/// the output and must not be freed.
pub struct imstls_error {
    result: imstls_result,
    message: CString,
    tls_failure: CString,
    certificate: CString,
    alert_sent: Option<u8>,
    alert_received: Option<u8>,
    alert_sent_name: CString,
    alert_received_name: CString,
    expected_name: CString,
    presented_names: Vec<CString>,
    config_field: CString,
    sip_status: u16,
}

impl imstls_error {
    pub(crate) fn new(failure: &Failure) -> Self {
        let name = |alert: Option<u8>| {
            c_string(alert.map_or("", |a| alert_name(rustls::AlertDescription::from(a))))
        };
        let none = TlsDetail::default();
        let tls = failure.tls.as_deref().unwrap_or(&none);
        Self {
            result: failure.result,
            message: c_string(&failure.message),
            tls_failure: c_string(tls.kind),
            certificate: c_string(tls.certificate),
            alert_sent: tls.alert_sent,
            alert_received: tls.alert_received,
            alert_sent_name: name(tls.alert_sent),
            alert_received_name: name(tls.alert_received),
            expected_name: c_string(&tls.expected_name),
            presented_names: tls.presented_names.iter().map(|n| c_string(n)).collect(),
            config_field: c_string(failure.config_field),
            sip_status: failure.sip_status,
        }
    }
}

fn error_str(
    error: *const imstls_error,
    field: impl FnOnce(&imstls_error) -> &CString,
) -> *const c_char {
    opt_arg(error).map_or(c"".as_ptr(), |e| field(e).as_ptr())
}

/// The result code of the failure (`IMSTLS_OK` for a NULL `error`).
///
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_result(error: *const imstls_error) -> imstls_result {
    guard(|| opt_arg(error).map_or(imstls_result::IMSTLS_OK, |e| e.result))
}

/// A one-line English description, without personal data (no IMPI/IMPU, no SIP content).
///
/// - Lifetime: borrowed from `error`, valid until the error is freed.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_message(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.message))
}

/// Copies the message (NUL-terminated) into `buf` of `capacity` bytes.
///
/// - Returns `IMSTLS_OK` and sets `*needed` to the bytes written (NUL included), or
///   `IMSTLS_BUFFER_TOO_SMALL` and sets `*needed` to the size required (`buf` untouched;
///   pass `capacity` 0 and `buf` NULL to ask for the size).
/// - Thread safety: any thread.
#[no_mangle]
pub extern "C" fn imstls_error_copy_message(
    error: *const imstls_error,
    buf: *mut c_char,
    capacity: usize,
    needed: *mut usize,
) -> imstls_result {
    guard(|| {
        let result = arg(error, "error")
            .and_then(|e| copy_out(e.message.as_bytes(), true, buf.cast(), capacity, needed));
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// The TLS failure kind as a stable code (`"certificate"`, `"protocol_version"`,
/// `"no_common_cipher_suite"`, `"peer_alert"`, `"unexpected_eof"`, ...); `""` when the failure
/// is not a TLS failure.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_tls_failure(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.tls_failure))
}

/// Why the P-CSCF certificate was rejected, as a stable code: `"expired"`,
/// `"not_yet_valid"`, `"unknown_issuer"`, `"name_mismatch"`, `"bad_signature"`,
/// `"unsupported_algorithm"`, `"wrong_usage"`, `"ca_used_as_end_entity"`, `"pin_mismatch"`,
/// `"revoked"`, `"revocation_status_unknown"`, `"malformed"`, `"other"`; `""` otherwise.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_certificate_failure(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.certificate))
}

/// The fatal TLS alert imstls sent (TS 33.203 O.3.1.2: already written to the wire before
/// the close), as its RFC 8446 number in `*alert` (e.g. 45 for certificate_expired).
///
/// - Returns `IMSTLS_OK`, or `IMSTLS_NOT_AVAILABLE` when no alert was sent (`*alert`
///   untouched).
///
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_alert_sent(
    error: *const imstls_error,
    alert: *mut u8,
) -> imstls_result {
    guard(|| alert_out(error, alert, |e| e.alert_sent))
}

/// The fatal TLS alert the peer sent, as its number; see `imstls_error_alert_sent`.
///
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_alert_received(
    error: *const imstls_error,
    alert: *mut u8,
) -> imstls_result {
    guard(|| alert_out(error, alert, |e| e.alert_received))
}

fn alert_out(
    error: *const imstls_error,
    alert: *mut u8,
    field: impl FnOnce(&imstls_error) -> Option<u8>,
) -> imstls_result {
    let result = arg(error, "error").and_then(|e| {
        let alert = out(alert, "alert")?;
        Ok(field(e).map(|a| alert.write(a)))
    });
    match result {
        Ok(Some(())) => imstls_result::IMSTLS_OK,
        Ok(None) => imstls_result::IMSTLS_NOT_AVAILABLE,
        Err(f) => f.result,
    }
}

/// The RFC 8446 name of the alert imstls sent (`"certificate_expired"`, `"bad_certificate"`,
/// `"unknown_ca"`, ...); `""` when none.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_alert_sent_name(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.alert_sent_name))
}

/// The RFC 8446 name of the alert the peer sent; `""` when none.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_alert_received_name(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.alert_received_name))
}

/// For a `"name_mismatch"` certificate failure: the P-CSCF identity imstls expected (RFC
/// 5922); `""` otherwise.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_expected_name(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.expected_name))
}

/// For a `"name_mismatch"` certificate failure: how many names the certificate presented.
///
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_presented_name_count(error: *const imstls_error) -> usize {
    guard(|| opt_arg(error).map_or(0, |e| e.presented_names.len()))
}

/// The `index`-th name the certificate presented (`sip:` URI, DNS or IP SAN); NULL when
/// `index` is out of range.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_presented_name(
    error: *const imstls_error,
    index: usize,
) -> *const c_char {
    guard(|| {
        opt_arg(error)
            .and_then(|e| e.presented_names.get(index))
            .map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// For `IMSTLS_INVALID_CONFIG` / `IMSTLS_CONFIG_FILE`: the configuration field at fault
/// (`"pcscf"`, `"server_name"`, `"trust_anchors"`, `"kx_groups"`, ...); `""` otherwise.
///
/// - Lifetime: borrowed from `error`.
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_config_field(error: *const imstls_error) -> *const c_char {
    guard(|| error_str(error, |e| &e.config_field))
}

/// For `IMSTLS_REGISTRATION_FAILED`: the SIP status the registrar answered (e.g. 403); 0 when
/// there was none (a timeout).
///
/// - Thread safety: any thread; the error is immutable.
#[no_mangle]
pub extern "C" fn imstls_error_sip_status(error: *const imstls_error) -> u16 {
    guard(|| opt_arg(error).map_or(0, |e| e.sip_status))
}

/// Frees an error obtained from a `_last_error` function. NULL is a no-op. Never free the
/// error an output lends (`imstls_output_error`).
///
/// - Thread safety: once, when no other thread reads the error.
#[no_mangle]
pub extern "C" fn imstls_error_free(error: *mut imstls_error) {
    guard(|| free_boxed(error))
}
