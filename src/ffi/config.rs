//! `imstls_config_builder` → `imstls_config`: collect settings, then build an immutable,
//! validated configuration that any number of UEs and drivers share.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::{
    Backoff, Candidate, CertificateRequestPolicy, KeepAlive, KeyLogSink, KxGroup, TlsVersions,
    TrustSource, UeConfig, UeConfigBuilder,
};

use super::boundary::{
    arg, boxed, bytes_arg, enum_arg, guard, opt_arg, out, str_arg, str_array_arg,
};
use super::codes::{imstls_certificate_request_policy, imstls_result, imstls_tls_versions};
use super::error::imstls_error;
use super::failure::Failure;
use super::handle::{self, with, Handle, HasHandle};
use super::log::imstls_log_callback;

/// Collects configuration settings. Create with `imstls_config_builder_new`, set what you
/// need (every setting has a sound default except the P-CSCF), then
/// `imstls_config_builder_build`. Setters validate what they can at once; `build` validates
/// everything. A failing setter or build leaves the builder unchanged and records the reason
/// (`imstls_config_builder_last_error`, with the field at fault).
///
/// Thread safety: usable from any thread; calls on one builder never block each other — a
/// concurrent call returns `IMSTLS_BUSY`.
pub struct imstls_config_builder {
    handle: Handle<UeConfigBuilder>,
}

impl HasHandle for imstls_config_builder {
    type Inner = UeConfigBuilder;
    fn handle(&self) -> &Handle<UeConfigBuilder> {
        &self.handle
    }
}

/// A validated, immutable configuration: P-CSCF candidates, trust, TLS profile, timers.
/// Share it freely: any number of UEs and drivers (each keeps its own reference, so you may
/// free the config right after creating them), and any thread may read it concurrently.
pub struct imstls_config {
    pub(crate) config: UeConfig,
}

/// One setter's change to the builder, applied to a copy: on an error the builder is
/// unchanged. A trait of its own rather than `dyn FnMut` (whose vtable holds a `call_once`
/// shim per setter).
trait Change {
    fn apply(&mut self, copy: UeConfigBuilder) -> Result<UeConfigBuilder, Failure>;
}

/// A setter's change, applied once.
struct Setter<F>(Option<F>);

impl<F> Change for Setter<F>
where
    F: FnOnce(UeConfigBuilder) -> Result<UeConfigBuilder, Failure>,
{
    fn apply(&mut self, copy: UeConfigBuilder) -> Result<UeConfigBuilder, Failure> {
        match self.0.take() {
            Some(change) => change(copy),
            None => Ok(copy),
        }
    }
}

fn update(
    builder: *mut imstls_config_builder,
    change: impl FnOnce(UeConfigBuilder) -> Result<UeConfigBuilder, Failure>,
) -> imstls_result {
    update_dyn(builder, &mut Setter(Some(change)))
}

/// The part of [`update`] that is the same for every setter (the copy, the locking, the
/// swap), in one copy instead of one per export.
#[inline(never)]
fn update_dyn(builder: *mut imstls_config_builder, change: &mut dyn Change) -> imstls_result {
    with(builder.cast_const(), "builder", |locked, _| {
        locked.inner = change.apply(locked.inner.clone())?;
        Ok(())
    })
}

fn millis(value: u64, field: &'static str) -> Result<Duration, Failure> {
    if value == 0 {
        let mut failure = Failure::new(
            imstls_result::IMSTLS_INVALID_CONFIG,
            format!("{field}: must be greater than zero"),
        );
        failure.config_field = field;
        return Err(failure);
    }
    Ok(Duration::from_millis(value))
}

/// Creates an empty builder in `*out`.
///
/// - Ownership: the builder is yours; free it with `imstls_config_builder_free`.
/// - Next: `imstls_config_builder_add_pcscf` (required), trust anchors, then
///   `imstls_config_builder_build`.
/// - Thread safety: any thread.
#[no_mangle]
pub extern "C" fn imstls_config_builder_new(
    out_builder: *mut *mut imstls_config_builder,
) -> imstls_result {
    guard(|| match out(out_builder, "out_builder") {
        Err(failure) => failure.result,
        Ok(slot) => {
            slot.write(handle::into_raw(imstls_config_builder {
                handle: Handle::new(UeConfigBuilder::default()),
            }));
            imstls_result::IMSTLS_OK
        }
    })
}

/// Frees a builder; NULL is a no-op. Configurations built from it stay valid.
///
/// - Thread safety: not while another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_free(builder: *mut imstls_config_builder) {
    guard(|| handle::free(builder))
}

/// Adds a P-CSCF candidate, tried in the order added: `host`, `host:port`, `v4`, `v4:port`,
/// `[v6]`, `[v6]:port` (port 5061 unless given). Checked at once (`IMSTLS_INVALID_CONFIG`).
///
/// - `candidate`: NUL-terminated UTF-8, borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` if another call on the builder is running.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_pcscf(
    builder: *mut imstls_config_builder,
    candidate: *const c_char,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let candidate = str_arg(candidate, "candidate")?;
            candidate.parse::<Candidate>()?;
            Ok(b.pcscf(candidate))
        })
    })
}

/// Sets the P-CSCF FQDN the certificate must name (RFC 5922), sent as SNI. Needed when a
/// candidate is an IP address and the certificate names the FQDN.
///
/// - `fqdn`: NUL-terminated UTF-8, borrowed for the call. Validated by `build`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_server_name(
    builder: *mut imstls_config_builder,
    fqdn: *const c_char,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.server_name(str_arg(fqdn, "fqdn")?))))
}

/// Adds operator trust anchors from PEM in memory (one or more certificates). Without any
/// trust anchor the Mozilla roots (webpki-roots) are used; a library built without the
/// `webpki-roots` feature fails `_build` with `IMSTLS_INVALID_CONFIG` (field `trust_anchors`).
///
/// - `pem`, `len`: borrowed for the call (copied).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_trust_anchors_pem(
    builder: *mut imstls_config_builder,
    pem: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let pem = bytes_arg(pem, len, "pem")?;
            Ok(b.trust_anchors(TrustSource::Pem(pem.to_vec())))
        })
    })
}

/// Adds one DER-encoded trust anchor from memory.
///
/// - `der`, `len`: borrowed for the call (copied).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_trust_anchors_der(
    builder: *mut imstls_config_builder,
    der: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let der = bytes_arg(der, len, "der")?;
            Ok(b.trust_anchors(TrustSource::Der(der.to_vec())))
        })
    })
}

/// Adds trust anchors from a file (PEM with one or more certificates, or one DER
/// certificate). The file is read by `build` (`IMSTLS_CONFIG_FILE` if it cannot be).
///
/// - `path`: NUL-terminated UTF-8, borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_trust_anchors_file(
    builder: *mut imstls_config_builder,
    path: *const c_char,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let path = str_arg(path, "path")?;
            Ok(b.trust_anchors(TrustSource::File(path.into())))
        })
    })
}

/// Adds certificate revocation lists from PEM in memory (supplied, never fetched).
///
/// - `pem`, `len`: borrowed for the call (copied).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_crls_pem(
    builder: *mut imstls_config_builder,
    pem: *const u8,
    len: usize,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let pem = bytes_arg(pem, len, "pem")?;
            Ok(b.crls(TrustSource::Pem(pem.to_vec())))
        })
    })
}

/// Adds CRLs from a file (PEM or one DER CRL), read by `build`.
///
/// - `path`: NUL-terminated UTF-8, borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_crls_file(
    builder: *mut imstls_config_builder,
    path: *const c_char,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let path = str_arg(path, "path")?;
            Ok(b.crls(TrustSource::File(path.into())))
        })
    })
}

/// Adds an SPKI SHA-256 pin (standard base64, 44 characters). With pins, the P-CSCF key must
/// match one of them (checked in addition to the chain and the name).
///
/// - `base64`: NUL-terminated UTF-8, borrowed for the call. Validated by `build`.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_add_spki_pin(
    builder: *mut imstls_config_builder,
    base64: *const c_char,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.spki_pin(str_arg(base64, "base64")?))))
}

/// Which TLS versions to offer: an `imstls_tls_versions` value (others →
/// `IMSTLS_INVALID_ARGUMENT`).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_tls_versions(
    builder: *mut imstls_config_builder,
    versions: u32,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let versions = match enum_arg(versions)? {
                imstls_tls_versions::IMSTLS_TLS_1_3_AND_1_2 => TlsVersions::Tls13AndTls12,
                imstls_tls_versions::IMSTLS_TLS_1_3_ONLY => TlsVersions::Tls13Only,
            };
            Ok(b.tls_versions(versions))
        })
    })
}

/// Key-exchange groups in preference order, by name: `"X25519MLKEM768"` (aws-lc-rs builds),
/// `"X25519"`, `"secp256r1"` (or `"P-256"`), `"secp384r1"` (or `"P-384"`). P-256 must be
/// among them (TS 33.210 §6.2; checked by `build`).
///
/// - `names`: `count` NUL-terminated UTF-8 strings, borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_kx_groups(
    builder: *mut imstls_config_builder,
    names: *const *const c_char,
    count: usize,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let names = str_array_arg(names, count, "names")?;
            let mut groups = Vec::with_capacity(names.len());
            for name in names {
                groups.push(name.parse::<KxGroup>()?);
            }
            Ok(b.kx_groups(&groups))
        })
    })
}

/// Accepts wildcard certificates (`*.example.net`), which RFC 5922 forbids (default false).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_allow_wildcard_certificates(
    builder: *mut imstls_config_builder,
    allow: bool,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.allow_wildcard_certificates(allow))))
}

/// What to do on a P-CSCF CertificateRequest: an `imstls_certificate_request_policy` value.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_certificate_request_policy(
    builder: *mut imstls_config_builder,
    policy: u32,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            use imstls_certificate_request_policy as P;
            let policy = match enum_arg(policy)? {
                P::IMSTLS_CERTIFICATE_REQUEST_CONTINUE => {
                    CertificateRequestPolicy::ContinueWithWarning
                }
                P::IMSTLS_CERTIFICATE_REQUEST_ABORT => CertificateRequestPolicy::Abort,
            };
            Ok(b.certificate_request_policy(policy))
        })
    })
}

/// TLS session lifetime for resumption, in milliseconds (default 3 600 000; at most 24 h).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_session_lifetime_ms(
    builder: *mut imstls_config_builder,
    lifetime_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.session_lifetime(millis(lifetime_ms, "session_lifetime")?))
        })
    })
}

/// Enables or disables TLS session resumption (default enabled).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_resumption(
    builder: *mut imstls_config_builder,
    enabled: bool,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.resumption(enabled))))
}

/// TCP connect timeout in milliseconds (default 10 000, at most 600 000).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_connect_timeout_ms(
    builder: *mut imstls_config_builder,
    timeout_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.connect_timeout(millis(timeout_ms, "connect_timeout")?))
        })
    })
}

/// TLS handshake timeout in milliseconds (default 15 000, at most 600 000).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_handshake_timeout_ms(
    builder: *mut imstls_config_builder,
    timeout_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.handshake_timeout(millis(timeout_ms, "handshake_timeout")?))
        })
    })
}

/// How long a REGISTER may stay unanswered, in milliseconds (default 32 000 = SIP Timer F;
/// TS 33.203 O.3.1.4).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_registration_timeout_ms(
    builder: *mut imstls_config_builder,
    timeout_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.registration_timeout(millis(timeout_ms, "registration_timeout")?))
        })
    })
}

/// RFC 5626 keep-alive: CRLF pings once registered (default on), the battery-saving interval
/// (672–840 s instead of 95–120 s when the P-CSCF gives no Flow-Timer), and how long to wait
/// for the pong (default 10 000 ms).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_keepalive(
    builder: *mut imstls_config_builder,
    enabled: bool,
    battery_saving: bool,
    pong_timeout_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.keepalive(KeepAlive {
                enabled,
                battery_saving,
                pong_timeout: millis(pong_timeout_ms, "keepalive.pong_timeout")?,
            }))
        })
    })
}

/// RFC 5626 §4.5 back-off constants in milliseconds: base time when every candidate failed
/// (default 30 000), otherwise (default 90 000), and the cap (default 1 800 000).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_backoff(
    builder: *mut imstls_config_builder,
    base_all_failed_ms: u64,
    base_not_all_failed_ms: u64,
    max_ms: u64,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(b.backoff(Backoff {
                base_all_failed: millis(base_all_failed_ms, "backoff.base_all_failed")?,
                base_not_all_failed: millis(base_not_all_failed_ms, "backoff.base_not_all_failed")?,
                max: millis(max_ms, "backoff.max")?,
            }))
        })
    })
}

/// Largest SIP message accepted or sent, in bytes (default 131 072; 1 KiB ..= 16 MiB).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_max_sip_message_size(
    builder: *mut imstls_config_builder,
    bytes: usize,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.max_sip_message_size(bytes))))
}

/// How many 401/407 challenges one registration procedure may receive (default 3).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_max_challenges(
    builder: *mut imstls_config_builder,
    count: u32,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.max_challenges(count))))
}

/// How many of its latest events each UE keeps in its conformance log (default 128, at most
/// 4096; 0 keeps none). The log is readable from Rust only; C sees each event's clause as it
/// happens (`imstls_output_clause`), so a C stack can set 0 and save about 3 KiB per
/// long-running UE. Out of range: `imstls_config_builder_build` fails with
/// `IMSTLS_INVALID_CONFIG` naming `conformance_log_entries`.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_conformance_log_entries(
    builder: *mut imstls_config_builder,
    entries: usize,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.conformance_log_entries(entries))))
}

/// Caps, in bytes, on what a P-CSCF that does not read or a caller that does not drain can
/// make imstls hold (0: the default, 1 MiB each; otherwise at least twice the largest SIP
/// message and at most 1 GiB):
///
/// - `engine_output_bytes`: outputs not yet taken with `imstls_ue_poll_output`;
/// - `driver_outgoing_bytes`: TLS bytes the driver's socket has not taken (the P-CSCF does
///   not read): the flow fails with reason `"peer_not_reading"`;
/// - `driver_event_bytes`: events not yet taken with `imstls_driver_poll_event`.
///
/// At a cap the flow fails (CONNECTION_LOST, reason `"queue_overflow"` for the two queues)
/// and recovery backs off (RFC 5626 §4.5). Out of range: `imstls_config_builder_build` fails
/// with `IMSTLS_INVALID_CONFIG` naming `max_engine_output_bytes`, `max_driver_outgoing_bytes`
/// or `max_driver_event_bytes`.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_queue_limits(
    builder: *mut imstls_config_builder,
    engine_output_bytes: usize,
    driver_outgoing_bytes: usize,
    driver_event_bytes: usize,
) -> imstls_result {
    guard(|| {
        update(builder, |mut b| {
            if engine_output_bytes != 0 {
                b = b.max_engine_output_bytes(engine_output_bytes);
            }
            if driver_outgoing_bytes != 0 {
                b = b.max_driver_outgoing_bytes(driver_outgoing_bytes);
            }
            if driver_event_bytes != 0 {
                b = b.max_driver_event_bytes(driver_event_bytes);
            }
            Ok(b)
        })
    })
}

/// Seeds the engine's jitter, for reproducible tests (default: from the crypto provider's
/// secure random source).
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_random_seed(
    builder: *mut imstls_config_builder,
    seed: u64,
) -> imstls_result {
    guard(|| update(builder, |b| Ok(b.random_seed(seed))))
}

/// Validates everything and builds a configuration in `*out_config`. The builder is not
/// consumed: change it and build again if you like.
///
/// - Returns `IMSTLS_OK`; `IMSTLS_INVALID_CONFIG` or `IMSTLS_CONFIG_FILE` with the field at
///   fault in `imstls_config_builder_last_error` (`*out_config` untouched).
/// - Ownership: the configuration is yours; free it with `imstls_config_free`.
/// - Next: `imstls_ue_new` (sans-IO) or `imstls_driver_new` (managed socket).
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_build(
    builder: *const imstls_config_builder,
    out_config: *mut *mut imstls_config,
) -> imstls_result {
    guard(|| {
        with(builder, "builder", |locked, _| {
            let slot = out(out_config, "out_config")?;
            let config = locked.inner.clone().build()?;
            slot.write(boxed(imstls_config { config }));
            Ok(())
        })
    })
}

/// The builder's last failure (a copy in `*out_error`, free it with `imstls_error_free`);
/// `IMSTLS_NOT_AVAILABLE` when nothing failed yet.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_last_error(
    builder: *const imstls_config_builder,
    out_error: *mut *mut imstls_error,
) -> imstls_result {
    guard(|| handle::last_error(builder, out_error))
}

/// Sends the log records of calls on this builder (e.g. trust-anchor loading) to `callback`;
/// see `imstls_log_callback`. NULL or `IMSTLS_LOG_OFF` turns logging off.
///
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_log_callback(
    builder: *mut imstls_config_builder,
    callback: imstls_log_callback,
    userdata: *mut c_void,
    level: u32,
) -> imstls_result {
    guard(|| handle::set_log_callback(builder.cast_const(), callback, userdata, level))
}

/// **Debugging only.** Appends every flow's TLS secrets to the file at `path` as NSS
/// key-log lines (`CLIENT_RANDOM ...`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...`) for Wireshark:
/// whoever holds the file can decrypt the flows. Off unless called; `SSLKEYLOGFILE` is never
/// read. Each flow then starts with `IMSTLS_EVENT_KEY_LOG_ENABLED`. `build` creates (mode 0600)
/// or opens the file for appending (`IMSTLS_CONFIG_FILE`, field `key_log`, if it cannot).
///
/// - `path`: NUL-terminated UTF-8, borrowed for the call.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_key_log_file(
    builder: *mut imstls_config_builder,
    path: *const c_char,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            let path = str_arg(path, "path")?;
            Ok(b.key_log_file(path))
        })
    })
}

/// A key-log callback: one NSS key-log line (`LABEL <client random hex> <secret hex>`,
/// no newline), NUL-terminated, `len` bytes without the NUL, valid only during the call. It
/// holds a TLS secret: write it where the engineer asked and nowhere else.
///
/// It runs on the thread that drives the TLS handshake (the one calling into the UE or
/// driver) while that handle is locked: do not call back into it. It must not unwind or
/// `longjmp`.
pub type imstls_key_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, line: *const c_char, len: usize)>;

/// The C callback as a [`KeyLogSink`].
struct CallbackKeyLog {
    callback: unsafe extern "C" fn(*mut c_void, *const c_char, usize),
    /// The C pointer, kept as an integer: imstls never dereferences it.
    userdata: usize,
}

impl KeyLogSink for CallbackKeyLog {
    fn write_line(&self, line: &str) {
        let mut text = Zeroizing::new(Vec::with_capacity(line.len() + 1));
        text.extend_from_slice(line.as_bytes());
        text.push(0);
        // SAFETY: the application registered this callback with this userdata and keeps both
        // valid while any configuration built with them (or UE/driver made from it) lives;
        // `text` is NUL-terminated and lives until the call returns.
        unsafe {
            (self.callback)(
                self.userdata as *mut c_void,
                text.as_ptr().cast(),
                line.len(),
            )
        }
    }
}

/// **Debugging only.** As `imstls_config_builder_set_key_log_file`, but each line goes to
/// `callback` with `userdata`. NULL `callback` turns the key log off.
///
/// - `userdata`: never dereferenced by imstls; must stay valid while any configuration built
///   from this builder, or any UE or driver made from one, exists.
/// - Thread safety: any thread; `IMSTLS_BUSY` when another call on the builder is in progress.
#[no_mangle]
pub extern "C" fn imstls_config_builder_set_key_log_callback(
    builder: *mut imstls_config_builder,
    callback: imstls_key_log_callback,
    userdata: *mut c_void,
) -> imstls_result {
    guard(|| {
        update(builder, |b| {
            Ok(match callback {
                Some(callback) => b.key_log_sink(Arc::new(CallbackKeyLog {
                    callback,
                    userdata: userdata as usize,
                })),
                None => b.key_log_off(),
            })
        })
    })
}

/// Another reference to the same configuration in `*out_config` (nothing is copied).
///
/// - Ownership: free each reference with `imstls_config_free`.
/// - Thread safety: any thread, concurrently with anything except freeing `config`.
#[no_mangle]
pub extern "C" fn imstls_config_clone(
    config: *const imstls_config,
    out_config: *mut *mut imstls_config,
) -> imstls_result {
    guard(|| {
        let result = arg(config, "config").and_then(|c| {
            out(out_config, "out_config")?.write(boxed(imstls_config {
                config: c.config.clone(),
            }));
            Ok(())
        });
        result.map_or_else(|f| f.result, |()| imstls_result::IMSTLS_OK)
    })
}

/// How many P-CSCF candidates the configuration holds (0 for NULL).
///
/// - Thread safety: any thread; the configuration is immutable.
#[no_mangle]
pub extern "C" fn imstls_config_candidate_count(config: *const imstls_config) -> usize {
    guard(|| opt_arg(config).map_or(0, |c| c.config.candidates().len()))
}

/// Frees this reference to a configuration; NULL is a no-op. UEs and drivers created from it
/// keep their own reference.
///
/// - Thread safety: once per reference, not while another thread uses this reference.
#[no_mangle]
pub extern "C" fn imstls_config_free(config: *mut imstls_config) {
    guard(|| super::boundary::free_boxed(config))
}
