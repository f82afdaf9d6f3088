//! The negative matrix: hostile and broken P-CSCFs, each case run against the real engine
//! with a real peer, the outcome observed (never assumed) and compared with what the case
//! expects. Prints the table at the end and keeps `docs/NEGATIVE_MATRIX.md` current (it is
//! generated from the same case list; `IMSTLS_BLESS=1` rewrites it).
//!
//! Every outcome has three parts:
//! - **event**: the defining engine event with its stable reason code
//!   (`Event::code`, `CertificateFailure::code`, `TlsFailureKind::code`, `LossReason::code`);
//! - **wire**: the TLS alerts that crossed the wire, read from the peer's own log (OpenSSL's
//!   `-msg` trace, the simulator's observation log, the raw fake server's log) or, where no
//!   real peer exists, from the bytes the UE put on the wire;
//! - **then**: what the engine did next (closed for good, back-off and retry, a new flow at
//!   once and registered again, ...).
//!
//! A panic, a hang past the case's bound, or an input error returned to a correct stack is an
//! observed outcome too, and never the expected one.
//!
//! Peers: `openssl` (s_server, real sockets, wall clock, short configured timeouts),
//! `sim-mem` (the simulator's `PcscfCore` in memory on a simulated clock, default timeouts),
//! `sim-socket` (the socket `Simulator`, optionally behind a fault-injecting proxy) and `raw`
//! (a raw-socket fake server for ServerHellos no real server sends).

mod support;

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::{
    Backoff, CertificateRequestPolicy, Event, FlowId, KeepAlive, LossReason, TlsFailure,
    TlsVersions as UeVersions, TransportClosure, TrustSource, Ue, UeConfig, UeConfigBuilder,
    UeState,
};
use imstls_testkit::observation::Observation;
use imstls_testkit::sip::SipMessage;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::{CertKind, Fault, SimConfig, Simulator};
use support::fault_proxy::{FaultProxy, ProxyFault};
use support::legacy_pki::{self, legacy_pki};
use support::openssl::{pem_files, OpensslServer};
use support::raw_peer::{self, RawPeer, RawScript};
use support::socket_link::{Hook, Sent, SocketLink};
use support::wire::{join_or_none, openssl_wire, peer_wire, sim_wire};
use support::{base_config, identity, pki, ConnectMode, World, SERVER_NAME};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

// ----- the case list ----------------------------------------------------------------------

/// One row of the matrix. Everything but `run` is data, so that another runner (the C
/// flavour) can take the same list: `id` names the scenario, `peer` the kind of peer, and
/// `expect` uses only stable codes the C API exposes too.
struct Case {
    id: &'static str,
    group: &'static str,
    title: &'static str,
    peer: &'static str,
    expect: [&'static str; 3],
    run: fn() -> Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    event: String,
    wire: String,
    then: String,
}

impl Outcome {
    fn text(&self) -> String {
        format!("{} · {} · {}", self.event, self.wire, self.then)
    }
}

fn expected(case: &Case) -> Outcome {
    Outcome {
        event: case.expect[0].into(),
        wire: case.expect[1].into(),
        then: case.expect[2].into(),
    }
}

const CLOSED: &str = "closed, no retry";
const BACKOFF: &str = "back-off, then a new attempt";
const RECOVERED: &str = "new flow at once, registered again";
const KEPT: &str = "registered on the same flow";

macro_rules! case {
    ($id:literal, $group:literal, $title:literal, $peer:literal, [$e:expr, $w:expr, $t:expr], $run:expr) => {
        Case {
            id: $id,
            group: $group,
            title: $title,
            peer: $peer,
            expect: [$e, $w, $t],
            run: $run,
        }
    };
}

fn cases() -> Vec<Case> {
    vec![
        // --- P-CSCF certificates: OpenSSL s_server (TLS 1.3) and the simulator (TLS 1.2) ---
        case!(
            "cert-expired-openssl",
            "certificate",
            "expired",
            "openssl",
            [
                "certificate_rejected: expired",
                "ue→pcscf fatal certificate_expired",
                CLOSED
            ],
            || openssl_cert(CertKind::Expired, |b| b)
        ),
        case!(
            "cert-expired-sim",
            "certificate",
            "expired",
            "sim-mem",
            [
                "certificate_rejected: expired",
                "ue→pcscf fatal certificate_expired; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::Expired, |b| b)
        ),
        case!(
            "cert-not-yet-valid-openssl",
            "certificate",
            "not yet valid",
            "openssl",
            [
                "certificate_rejected: not_yet_valid",
                "ue→pcscf fatal certificate_expired",
                CLOSED
            ],
            || openssl_cert(CertKind::NotYetValid, |b| b)
        ),
        case!(
            "cert-not-yet-valid-sim",
            "certificate",
            "not yet valid",
            "sim-mem",
            [
                "certificate_rejected: not_yet_valid",
                "ue→pcscf fatal certificate_expired; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::NotYetValid, |b| b)
        ),
        case!(
            "cert-wrong-name-openssl",
            "certificate",
            "wrong name (other.ims.test)",
            "openssl",
            [
                "certificate_rejected: name_mismatch",
                "ue→pcscf fatal bad_certificate",
                CLOSED
            ],
            || openssl_cert(CertKind::WrongName, |b| b)
        ),
        case!(
            "cert-wrong-name-sim",
            "certificate",
            "wrong name (other.ims.test)",
            "sim-mem",
            [
                "certificate_rejected: name_mismatch",
                "ue→pcscf fatal bad_certificate; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::WrongName, |b| b)
        ),
        case!(
            "cert-self-signed-openssl",
            "certificate",
            "self-signed",
            "openssl",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca",
                CLOSED
            ],
            || openssl_cert(CertKind::SelfSigned, |b| b)
        ),
        case!(
            "cert-self-signed-sim",
            "certificate",
            "self-signed",
            "sim-mem",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::SelfSigned, |b| b)
        ),
        case!(
            "cert-unknown-ca-openssl",
            "certificate",
            "unknown CA",
            "openssl",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca",
                CLOSED
            ],
            || openssl_cert(CertKind::UnknownCa, |b| b)
        ),
        case!(
            "cert-unknown-ca-sim",
            "certificate",
            "unknown CA",
            "sim-mem",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::UnknownCa, |b| b)
        ),
        case!(
            "cert-missing-intermediate-openssl",
            "certificate",
            "missing intermediate",
            "openssl",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca",
                CLOSED
            ],
            || openssl_cert(CertKind::MissingIntermediate, |b| b)
        ),
        case!(
            "cert-missing-intermediate-sim",
            "certificate",
            "missing intermediate",
            "sim-mem",
            [
                "certificate_rejected: unknown_issuer",
                "ue→pcscf fatal unknown_ca; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::MissingIntermediate, |b| b)
        ),
        case!(
            "cert-client-auth-eku-openssl",
            "certificate",
            "EKU clientAuth only",
            "openssl",
            [
                "certificate_rejected: wrong_usage",
                "ue→pcscf fatal unsupported_certificate",
                CLOSED
            ],
            || openssl_cert(CertKind::ClientAuthEkuOnly, |b| b)
        ),
        case!(
            "cert-client-auth-eku-sim",
            "certificate",
            "EKU clientAuth only",
            "sim-mem",
            [
                "certificate_rejected: wrong_usage",
                "ue→pcscf fatal unsupported_certificate; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::ClientAuthEkuOnly, |b| b)
        ),
        case!(
            "cert-ca-true-leaf-openssl",
            "certificate",
            "CA:TRUE leaf",
            "openssl",
            [
                "certificate_rejected: ca_used_as_end_entity",
                "ue→pcscf fatal certificate_unknown",
                CLOSED
            ],
            || openssl_cert(CertKind::CaTrueLeaf, |b| b)
        ),
        case!(
            "cert-ca-true-leaf-sim",
            "certificate",
            "CA:TRUE leaf",
            "sim-mem",
            [
                "certificate_rejected: ca_used_as_end_entity",
                "ue→pcscf fatal certificate_unknown; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::CaTrueLeaf, |b| b)
        ),
        case!(
            "cert-rsa1024-openssl",
            "certificate",
            "RSA-1024 leaf (openssl CLI)",
            "openssl",
            [
                "certificate_rejected: bad_signature",
                "ue→pcscf fatal decrypt_error",
                CLOSED
            ],
            || openssl_legacy(Legacy::Rsa1024)
        ),
        case!(
            "cert-rsa1024-sim",
            "certificate",
            "RSA-1024 leaf (openssl CLI)",
            "sim-mem",
            [
                "certificate_rejected: bad_signature",
                "ue→pcscf fatal decrypt_error; ue→pcscf FIN",
                CLOSED
            ],
            || sim_legacy(Legacy::Rsa1024)
        ),
        case!(
            "cert-sha1-openssl",
            "certificate",
            "SHA-1 signed leaf (openssl CLI)",
            "openssl",
            [
                "certificate_rejected: unsupported_algorithm",
                "ue→pcscf fatal decrypt_error",
                CLOSED
            ],
            || openssl_legacy(Legacy::Sha1)
        ),
        case!(
            "cert-sha1-sim",
            "certificate",
            "SHA-1 signed leaf (openssl CLI)",
            "sim-mem",
            [
                "certificate_rejected: unsupported_algorithm",
                "ue→pcscf fatal decrypt_error; ue→pcscf FIN",
                CLOSED
            ],
            || sim_legacy(Legacy::Sha1)
        ),
        case!(
            "cert-wildcard-openssl",
            "certificate",
            "wildcard, not allowed",
            "openssl",
            [
                "certificate_rejected: name_mismatch",
                "ue→pcscf fatal bad_certificate",
                CLOSED
            ],
            || openssl_cert(CertKind::Wildcard, |b| b)
        ),
        case!(
            "cert-wildcard-sim",
            "certificate",
            "wildcard, not allowed",
            "sim-mem",
            [
                "certificate_rejected: name_mismatch",
                "ue→pcscf fatal bad_certificate; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::Wildcard, |b| b)
        ),
        case!(
            "cert-pin-mismatch-openssl",
            "certificate",
            "SPKI pin mismatch",
            "openssl",
            [
                "certificate_rejected: pin_mismatch",
                "ue→pcscf fatal certificate_unknown",
                CLOSED
            ],
            || openssl_cert(CertKind::OtherKey, |b| b
                .spki_pin(pki().good_spki_sha256_base64()))
        ),
        case!(
            "cert-pin-mismatch-sim",
            "certificate",
            "SPKI pin mismatch",
            "sim-mem",
            [
                "certificate_rejected: pin_mismatch",
                "ue→pcscf fatal certificate_unknown; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::OtherKey, |b| b
                .spki_pin(pki().good_spki_sha256_base64()))
        ),
        case!(
            "cert-revoked-openssl",
            "certificate",
            "revoked by CRL",
            "openssl",
            [
                "certificate_rejected: revoked",
                "ue→pcscf fatal certificate_revoked",
                CLOSED
            ],
            || openssl_cert(CertKind::Revoked, |b| b
                .crls(TrustSource::Der(pki().crl_der())))
        ),
        case!(
            "cert-revoked-sim",
            "certificate",
            "revoked by CRL",
            "sim-mem",
            [
                "certificate_rejected: revoked",
                "ue→pcscf fatal certificate_revoked; ue→pcscf FIN",
                CLOSED
            ],
            || sim_cert(CertKind::Revoked, |b| b
                .crls(TrustSource::Der(pki().crl_der())))
        ),
        // --- versions and suites ---
        case!(
            "version-tls10-only",
            "version/suite",
            "TLS 1.0-only server",
            "openssl",
            [
                "tls_failed: protocol_version",
                "pcscf→ue fatal protocol_version",
                CLOSED
            ],
            || openssl_handshake(&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], |b| b)
        ),
        case!(
            "version-tls11-only",
            "version/suite",
            "TLS 1.1-only server",
            "openssl",
            [
                "tls_failed: protocol_version",
                "pcscf→ue fatal protocol_version",
                CLOSED
            ],
            || openssl_handshake(&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], |b| b)
        ),
        case!(
            "version-ssl3-server-hello",
            "version/suite",
            "ServerHello version 0x0300 (SSL 3.0)",
            "raw",
            [
                "tls_failed: protocol_version",
                "ue→pcscf fatal protocol_version",
                CLOSED
            ],
            || raw_hello(|h| raw_peer::server_hello(
                0x0300,
                &raw_peer::client_session_id(h),
                0x002f,
                0,
                &[]
            ))
        ),
        case!(
            "version-tls11-server-hello",
            "version/suite",
            "ServerHello version 0x0302 (TLS 1.1)",
            "raw",
            [
                "tls_failed: protocol_version",
                "ue→pcscf fatal protocol_version",
                CLOSED
            ],
            || raw_hello(|h| raw_peer::server_hello(
                0x0302,
                &raw_peer::client_session_id(h),
                0xc013,
                0,
                &[]
            ))
        ),
        case!(
            "suite-cbc-only",
            "version/suite",
            "TLS 1.2 with CBC suites only",
            "openssl",
            [
                "tls_failed: no_common_cipher_suite",
                "pcscf→ue fatal handshake_failure",
                CLOSED
            ],
            || {
                openssl_handshake(&["-tls1_2", "-cipher",
                "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0"], |b| b)
            }
        ),
        case!(
            "suite-rsa-kx-only",
            "version/suite",
            "TLS 1.2 with RSA key transport only",
            "openssl",
            [
                "tls_failed: no_common_cipher_suite",
                "pcscf→ue fatal handshake_failure",
                CLOSED
            ],
            || openssl_handshake(
                &[
                    "-tls1_2",
                    "-cipher",
                    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA"
                ],
                |b| b
            )
        ),
        case!(
            "suite-unoffered-tls12",
            "version/suite",
            "ServerHello picks an unoffered suite (TLS 1.2, RSA-AES-CBC)",
            "raw",
            [
                "tls_failed: peer_misbehaved",
                "ue→pcscf fatal handshake_failure",
                BACKOFF
            ],
            || raw_hello(|h| raw_peer::server_hello(
                0x0303,
                &raw_peer::client_session_id(h),
                0x002f,
                0,
                &[]
            ))
        ),
        case!(
            "suite-unoffered-tls13",
            "version/suite",
            "ServerHello picks an unoffered suite (TLS 1.3, AES-CCM)",
            "raw",
            [
                "tls_failed: peer_misbehaved",
                "ue→pcscf fatal handshake_failure",
                BACKOFF
            ],
            || raw_hello(|h| raw_peer::server_hello(
                0x0303,
                &raw_peer::client_session_id(h),
                0x1304,
                0,
                &raw_peer::tls13_extensions()
            ))
        ),
        case!(
            "suite-compression",
            "version/suite",
            "ServerHello picks DEFLATE compression",
            "raw",
            [
                "tls_failed: peer_misbehaved",
                "ue→pcscf fatal illegal_parameter",
                BACKOFF
            ],
            || raw_hello(|h| raw_peer::server_hello(
                0x0303,
                &raw_peer::client_session_id(h),
                0xc02b,
                1,
                &[]
            ))
        ),
        case!(
            "version-tls13-only-ue",
            "version/suite",
            "UE narrowed to TLS 1.3, server TLS 1.2 only",
            "sim-mem",
            [
                "tls_failed: protocol_version",
                "pcscf→ue fatal protocol_version; pcscf→ue FIN; ue→pcscf FIN",
                CLOSED
            ],
            sim_tls13_only_ue
        ),
        // --- renegotiation ---
        case!(
            "reneg-hello-request-once",
            "renegotiation",
            "TLS 1.2 HelloRequest once, server aborts",
            "openssl",
            [
                "connection_lost: tls/peer_alert",
                "ue→pcscf warning no_renegotiation; pcscf→ue fatal handshake_failure",
                RECOVERED
            ],
            || openssl_renegotiation(1)
        ),
        case!(
            "reneg-hello-request-twice",
            "renegotiation",
            "TLS 1.2 HelloRequest twice in a row",
            "openssl",
            [
                "connection_lost: tls/peer_misbehaved",
                "ue→pcscf warning no_renegotiation; pcscf→ue fatal handshake_failure",
                RECOVERED
            ],
            || openssl_renegotiation(2)
        ),
        case!(
            "reneg-tls13-key-update",
            "renegotiation",
            "TLS 1.3 KeyUpdate from the server (control)",
            "openssl",
            ["sip_received: MESSAGE", "none", KEPT],
            openssl_key_update
        ),
        // --- client certificate requested ---
        case!(
            "client-cert-verify-tls13",
            "client certificate",
            "-verify 1 (optional), TLS 1.3, policy continue",
            "openssl",
            [
                "client_certificate_requested: sent none",
                "ue→pcscf empty Certificate",
                KEPT
            ],
            || openssl_client_cert(
                &["-verify", "1", "-tls1_3"],
                CertificateRequestPolicy::ContinueWithWarning
            )
        ),
        case!(
            "client-cert-verify-tls12",
            "client certificate",
            "-verify 1 (optional), TLS 1.2, policy continue",
            "openssl",
            [
                "client_certificate_requested: sent none",
                "ue→pcscf empty Certificate",
                KEPT
            ],
            || openssl_client_cert(
                &["-verify", "1", "-tls1_2"],
                CertificateRequestPolicy::ContinueWithWarning
            )
        ),
        case!(
            "client-cert-Verify-tls13",
            "client certificate",
            "-Verify 1 (required), TLS 1.3",
            "openssl",
            [
                "tls_failed: client_certificate_requested",
                "pcscf→ue fatal certificate_required",
                CLOSED
            ],
            || openssl_client_cert(
                &["-Verify", "1", "-tls1_3"],
                CertificateRequestPolicy::ContinueWithWarning
            )
        ),
        case!(
            "client-cert-Verify-tls12",
            "client certificate",
            "-Verify 1 (required), TLS 1.2",
            "openssl",
            [
                "tls_failed: client_certificate_requested",
                "pcscf→ue fatal handshake_failure",
                CLOSED
            ],
            || openssl_client_cert(
                &["-Verify", "1", "-tls1_2"],
                CertificateRequestPolicy::ContinueWithWarning
            )
        ),
        case!(
            "client-cert-abort-openssl",
            "client certificate",
            "-verify 1, policy abort",
            "openssl",
            [
                "tls_failed: client_certificate_requested",
                "ue→pcscf fatal handshake_failure",
                CLOSED
            ],
            || openssl_client_cert(&["-verify", "1"], CertificateRequestPolicy::Abort)
        ),
        case!(
            "client-cert-continue-sim",
            "client certificate",
            "CertificateRequest, policy continue",
            "sim-mem",
            [
                "client_certificate_requested: sent none",
                "ue→pcscf empty Certificate",
                KEPT
            ],
            || sim_client_cert(CertificateRequestPolicy::ContinueWithWarning)
        ),
        case!(
            "client-cert-abort-sim",
            "client certificate",
            "CertificateRequest, policy abort",
            "sim-mem",
            [
                "tls_failed: client_certificate_requested",
                "ue→pcscf encrypted handshake_failure; ue→pcscf FIN",
                CLOSED
            ],
            || sim_client_cert(CertificateRequestPolicy::Abort)
        ),
        // --- wire faults ---
        case!(
            "wire-flipped-bit-mem",
            "wire",
            "flipped bit in a record (MAC failure)",
            "sim-mem",
            [
                "connection_lost: tls/integrity_failure",
                "ue→pcscf encrypted bad_record_mac; ue→pcscf FIN",
                RECOVERED
            ],
            || mem_registered_fault(|w| {
                w.peer().send_ping();
                w.deliver_tampered(|b| {
                    let n = b.len();
                    b[n - 1] ^= 0x01;
                });
            })
        ),
        case!(
            "wire-flipped-bit-socket",
            "wire",
            "flipped bit in a record (MAC failure)",
            "sim-socket",
            [
                "connection_lost: tls/integrity_failure",
                "ue→pcscf encrypted bad_record_mac; pcscf→ue FIN; ue→pcscf FIN",
                RECOVERED
            ],
            || socket_proxy_fault(ProxyFault::FlipBit, true)
        ),
        case!(
            "wire-replayed-record-mem",
            "wire",
            "replayed record",
            "sim-mem",
            [
                "connection_lost: tls/integrity_failure",
                "ue→pcscf encrypted bad_record_mac; ue→pcscf FIN",
                RECOVERED
            ],
            || mem_registered_fault(|w| {
                w.peer().send_ping();
                w.deliver_tampered(|b| {
                    let copy = b.clone();
                    b.extend_from_slice(&copy);
                });
            })
        ),
        case!(
            "wire-replayed-record-socket",
            "wire",
            "replayed record",
            "sim-socket",
            [
                "connection_lost: tls/integrity_failure",
                "ue→pcscf encrypted bad_record_mac; pcscf→ue FIN; ue→pcscf FIN",
                RECOVERED
            ],
            || socket_proxy_fault(ProxyFault::Replay, true)
        ),
        case!(
            "wire-truncated-record-mem",
            "wire",
            "truncated record, then FIN",
            "sim-mem",
            ["connection_lost: eof", "pcscf→ue FIN", RECOVERED],
            || mem_registered_fault(|w| {
                w.peer().send_ping();
                w.deliver_tampered(|b| {
                    let n = b.len();
                    b.truncate(n / 2);
                });
                w.eof_current();
            })
        ),
        case!(
            "wire-truncated-record-socket",
            "wire",
            "truncated record, then FIN",
            "sim-socket",
            ["connection_lost: eof", "ue→pcscf FIN", RECOVERED],
            || socket_proxy_fault(ProxyFault::TruncateThenFin, true)
        ),
        case!(
            "wire-garbage-before-handshake",
            "wire",
            "garbage (HTTP) instead of a ServerHello",
            "sim-mem",
            [
                "tls_failed: malformed_record",
                "ue→pcscf fatal decode_error; ue→pcscf FIN",
                BACKOFF
            ],
            || mem_handshake_bytes(|_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec())
        ),
        case!(
            "wire-garbage-then-server-hello",
            "wire",
            "garbage prefixed to a real ServerHello",
            "sim-mem",
            [
                "tls_failed: malformed_record",
                "ue→pcscf fatal decode_error; ue→pcscf FIN",
                BACKOFF
            ],
            || mem_handshake_bytes(|real| {
                let mut b = b"\x00\x01garbage".to_vec();
                b.extend_from_slice(real);
                b
            })
        ),
        case!(
            "wire-garbage-after-handshake-mem",
            "wire",
            "garbage after the handshake (registered)",
            "sim-mem",
            [
                "connection_lost: tls/malformed_record",
                "ue→pcscf encrypted decode_error; ue→pcscf FIN",
                RECOVERED
            ],
            || mem_registered_fault(|w| {
                let flow = w.ue.current_flow().unwrap();
                let r =
                    w.ue.receive(w.now, flow, b"HTTP/1.1 400 Bad Request\r\n\r\n");
                assert!(r.is_ok());
                w.pump();
            })
        ),
        case!(
            "wire-garbage-after-handshake-socket",
            "wire",
            "garbage after the handshake (registered)",
            "sim-socket",
            [
                "connection_lost: tls/malformed_record",
                "ue→pcscf encrypted decode_error; pcscf→ue FIN; ue→pcscf FIN",
                RECOVERED
            ],
            || socket_proxy_fault(
                ProxyFault::Inject(b"GARBAGE GARBAGE GARBAGE\r\n".to_vec()),
                false
            )
        ),
        case!(
            "wire-oversized-record",
            "wire",
            "record longer than TLS allows (registered)",
            "sim-mem",
            [
                "connection_lost: tls/oversized_record",
                "ue→pcscf encrypted decode_error; ue→pcscf FIN",
                RECOVERED
            ],
            || mem_registered_fault(|w| {
                let flow = w.ue.current_flow().unwrap();
                let mut record = vec![23, 3, 3];
                let len: u16 = 16384 + 2048 + 1;
                record.extend_from_slice(&len.to_be_bytes());
                record.extend(std::iter::repeat_n(0u8, usize::from(len)));
                let r = w.ue.receive(w.now, flow, &record);
                assert!(r.is_ok());
                w.pump();
            })
        ),
        case!(
            "sip-huge-message-in",
            "wire",
            "SIP message over max_sip_message_size from the P-CSCF",
            "sim-mem",
            [
                "connection_lost: framing/message_too_large",
                "ue→pcscf FIN",
                RECOVERED
            ],
            mem_huge_sip_in
        ),
        case!(
            "sip-endless-header",
            "wire",
            "SIP header block that never ends (> 64 KiB)",
            "sim-mem",
            [
                "connection_lost: framing/header_too_large",
                "ue→pcscf FIN",
                RECOVERED
            ],
            mem_endless_header
        ),
        case!(
            "sip-huge-message-out",
            "wire",
            "stack sends a SIP message over max_sip_message_size",
            "sim-mem",
            ["send_sip refused: message_too_large", "none", KEPT],
            mem_huge_sip_out
        ),
        case!(
            "slowloris-handshake-mem",
            "wire",
            "slowloris: ServerHello one byte every 5 s",
            "sim-mem",
            [
                "tls_failed: other (handshake timed out) @15s",
                "ue→pcscf FIN",
                BACKOFF
            ],
            mem_slowloris_handshake
        ),
        case!(
            "slowloris-handshake-socket",
            "wire",
            "slowloris: ServerHello one byte every 300 ms",
            "raw",
            ["tls_failed: other (handshake timed out)", "none", BACKOFF],
            raw_slowloris
        ),
        case!(
            "slowloris-sip-answer",
            "wire",
            "slowloris: the 401 one byte per second",
            "sim-mem",
            [
                "registration_failed: timeout @32s",
                "ue→pcscf close_notify; ue→pcscf FIN",
                BACKOFF
            ],
            mem_slowloris_sip
        ),
        case!(
            "rst-connect-mem",
            "wire",
            "RST while connecting",
            "sim-mem",
            ["connect_failed: reset", "no connection", BACKOFF],
            mem_rst_connect
        ),
        case!(
            "rst-connect-socket",
            "wire",
            "RST to the SYN (closed port)",
            "raw",
            ["connect_failed: refused", "no connection", BACKOFF],
            socket_refused
        ),
        case!(
            "rst-handshake-mem",
            "wire",
            "RST during the handshake",
            "sim-mem",
            ["tls_failed: unexpected_eof", "[replayed] none", BACKOFF],
            mem_rst_handshake
        ),
        case!(
            "rst-handshake-socket",
            "wire",
            "RST right after the ClientHello",
            "raw",
            ["tls_failed: unexpected_eof", "none", BACKOFF],
            || raw_script(RawScript::ResetAfterHello)
        ),
        case!(
            "rst-after-register-mem",
            "wire",
            "RST right after the REGISTER, before any answer",
            "sim-mem",
            ["tls_failed: unexpected_eof", "pcscf→ue RST", BACKOFF],
            mem_rst_after_register
        ),
        case!(
            "rst-after-register-socket",
            "wire",
            "RST after the 401 to the first REGISTER",
            "sim-socket",
            ["connection_lost: reset", "pcscf→ue RST", BACKOFF],
            socket_rst_after_register
        ),
        case!(
            "rst-registered-mem",
            "wire",
            "RST while registered",
            "sim-mem",
            ["connection_lost: reset", "pcscf→ue RST", RECOVERED],
            || mem_registered_fault(|w| w.reset_current())
        ),
        case!(
            "rst-registered-socket",
            "wire",
            "RST while registered",
            "sim-socket",
            ["connection_lost: reset", "pcscf→ue RST", RECOVERED],
            socket_rst_registered
        ),
        case!(
            "silent-drop-mem",
            "wire",
            "silent drop while registered (no pong)",
            "sim-mem",
            ["connection_lost: pong_timeout @10s", "none", RECOVERED],
            mem_silent_drop
        ),
        case!(
            "silent-drop-socket",
            "wire",
            "silent drop while registered (no pong, 3 s bound)",
            "sim-socket",
            ["connection_lost: pong_timeout", "ue→pcscf FIN", RECOVERED],
            socket_silent_drop
        ),
        case!(
            "close-notify-mem",
            "wire",
            "close_notify while registered",
            "sim-mem",
            [
                "connection_lost: closed_by_peer",
                "pcscf→ue close_notify; pcscf→ue FIN; ue→pcscf close_notify; ue→pcscf FIN",
                RECOVERED
            ],
            || mem_registered_fault(|w| {
                w.peer().close_notify();
                w.pump();
            })
        ),
        case!(
            "close-notify-socket",
            "wire",
            "close_notify and FIN while registered",
            "sim-socket",
            [
                "connection_lost: closed_by_peer",
                "pcscf→ue close_notify; pcscf→ue FIN; ue→pcscf close_notify; ue→pcscf FIN",
                RECOVERED
            ],
            socket_close_notify
        ),
        case!(
            "half-close-mem",
            "wire",
            "FIN without close_notify while registered",
            "sim-mem",
            ["connection_lost: eof", "pcscf→ue FIN", RECOVERED],
            || mem_registered_fault(|w| w.eof_current())
        ),
        case!(
            "half-close-socket",
            "wire",
            "FIN without close_notify, peer still reading",
            "sim-socket",
            ["connection_lost: eof", "ue→pcscf FIN", RECOVERED],
            || socket_proxy_fault(ProxyFault::HalfClose, false)
        ),
        case!(
            "connect-blackhole",
            "wire",
            "SYN never answered",
            "sim-mem",
            ["connect_failed: timed_out @10s", "no connection", BACKOFF],
            || mem_connect_mode(ConnectMode::Blackhole)
        ),
        case!(
            "handshake-silent",
            "wire",
            "TCP accepted, TLS never answered",
            "sim-mem",
            [
                "tls_failed: other (handshake timed out) @15s",
                "[replayed] none",
                BACKOFF
            ],
            || mem_connect_mode(ConnectMode::AcceptSilent)
        ),
        case!(
            "close-before-server-hello",
            "wire",
            "close_notify instead of a ServerHello",
            "sim-mem",
            ["tls_failed: unexpected_eof", "[replayed] none", BACKOFF],
            mem_close_before_hello
        ),
    ]
}

// ----- describing what happened -----------------------------------------------------------

fn framing_code(error: &imstls::FramingError) -> &'static str {
    use imstls::FramingError as F;
    match error {
        F::HeaderTooLarge => "header_too_large",
        F::MessageTooLarge { .. } => "message_too_large",
        F::BadContentLength => "bad_content_length",
        F::ConflictingContentLength => "conflicting_content_length",
        F::BadStartLine => "bad_start_line",
        F::BadHeaderBytes => "bad_header_bytes",
        F::NotOneMessage => "not_one_message",
        _ => "other",
    }
}

fn failure_text(failure: &TlsFailure) -> String {
    match failure.certificate() {
        Some(c) => c.code().to_owned(),
        None => match &failure.kind {
            imstls::TlsFailureKind::Other(why) => format!("other ({why})"),
            kind => kind.code().to_owned(),
        },
    }
}

/// The text of an event that defines a case's outcome, or `None` for ordinary events.
fn defining(event: &Event) -> Option<String> {
    Some(match event {
        Event::CertificateRejected { failure, .. } => {
            format!("certificate_rejected: {}", failure_text(failure))
        }
        Event::TlsFailed { failure, .. } => format!("tls_failed: {}", failure_text(failure)),
        Event::ConnectionLost { reason, .. } => format!(
            "connection_lost: {}",
            match reason {
                LossReason::Tls(f) => format!("tls/{}", failure_text(f)),
                LossReason::Framing(e) => format!("framing/{}", framing_code(e)),
                other => other.code().to_owned(),
            }
        ),
        Event::ConnectFailed { reason, .. } => format!(
            "connect_failed: {}",
            match reason {
                imstls::TransportError::Refused => "refused".to_owned(),
                imstls::TransportError::Unreachable => "unreachable".to_owned(),
                imstls::TransportError::TimedOut => "timed_out".to_owned(),
                imstls::TransportError::Reset => "reset".to_owned(),
                imstls::TransportError::Other(why) => format!("other ({why})"),
                imstls::TransportError::Unresolved => "unresolved".to_owned(),
            }
        ),
        Event::ClientCertificateRequested { aborted: false, .. } => {
            "client_certificate_requested: sent none".to_owned()
        }
        Event::RegistrationFailed { reason, .. } => {
            format!("registration_failed: {}", reason.code())
        }
        _ => return None,
    })
}

thread_local! {
    /// The engine's event codes of the case running on this thread, for a failure message.
    static EVENTS: RefCell<String> = const { RefCell::new(String::new()) };
}

fn note_events(codes: &[&str]) {
    EVENTS.with(|e| *e.borrow_mut() = codes.join(" "));
}

/// The first defining event at or after `from`: its index, time and text.
fn first_defining(events: &[(Duration, Event)], from: usize) -> Option<(usize, Duration, String)> {
    events
        .iter()
        .enumerate()
        .skip(from)
        .find_map(|(i, (t, e))| defining(e).map(|text| (i, *t, text)))
}

/// What the engine did after the defining event at `index`.
fn then_text(events: &[(Duration, Event)], index: usize, state: UeState) -> String {
    let after: Vec<&'static str> = events[index + 1..].iter().map(|(_, e)| e.code()).collect();
    let position = |code: &str| after.iter().position(|c| *c == code);
    match (position("backoff"), position("connecting")) {
        (Some(b), c) if c.is_none_or(|c| c > b) => {
            if after[b..].contains(&"connecting") {
                BACKOFF.into()
            } else {
                "back-off, no new attempt seen".into()
            }
        }
        (_, Some(c)) => {
            if after[c..].contains(&"registered") {
                RECOVERED.into()
            } else {
                "new flow at once, not registered".into()
            }
        }
        _ if state == UeState::Closed => CLOSED.into(),
        _ if after.contains(&"registered") && state == UeState::Registered => KEPT.into(),
        _ => format!("{state:?}"),
    }
}

// ----- sim-mem: the simulator's PcscfCore in memory, on a simulated clock -----------------

/// The wire of `flow`, from its simulated P-CSCF's own log. Where the test
/// itself played the P-CSCF (bytes injected into the UE), a rustls server is fed everything
/// the UE sent on that flow after the fact and its log is read instead (`[replayed]`): still
/// the peer's decoding, never the UE's events. `no connection` when the UE sent nothing.
fn mem_wire(w: &World, flow: FlowId) -> String {
    if let Some(log) = w.peer_log(flow) {
        return peer_wire(&log);
    }
    let sent = w.wire_of(flow);
    if sent.is_empty() {
        return "no connection".into();
    }
    let mut listener =
        imstls_testkit::PcscfCore::new(w.server.clone(), w.registrar.clone(), 999).expect("server");
    listener.receive(&sent);
    let log: Vec<Observation> = listener
        .observations()
        .iter()
        .filter(|o| {
            matches!(
                o,
                Observation::AlertRecordReceived { .. }
                    | Observation::AlertReceived { .. }
                    | Observation::PeerClosed
            )
        })
        .cloned()
        .collect();
    format!("[replayed] {}", peer_wire(&log))
}

/// The outcome of a simulated run: the first defining event from `from` on (with its
/// simulated time when `timed`), the wire, and what followed.
fn mem_outcome(w: &World, from: usize, timed: bool) -> Outcome {
    note_events(&w.codes());
    assert!(
        w.input_errors.is_empty(),
        "the engine refused a correct stack: {:?}",
        w.input_errors
    );
    let Some((index, at, text)) = first_defining(&w.events, from) else {
        return Outcome {
            event: format!("no defining event (events {:?})", w.codes_from(from)),
            wire: "-".into(),
            then: format!("{:?}", w.state()),
        };
    };
    let at = at - w.events.get(from).map_or(Duration::ZERO, |(t, _)| *t);
    let event = if timed {
        format!("{text} @{}s", at.as_secs())
    } else {
        text
    };
    Outcome {
        event,
        wire: match flow_at(&w.events, index) {
            Some(flow) => mem_wire(w, flow),
            None => "no flow".into(),
        },
        then: then_text(&w.events, index, w.state()),
    }
}

/// The flow the event at `index` is about: the one it names, or else (a REGISTER transaction
/// failing, say) the latest flow named before it.
fn flow_at(events: &[(Duration, Event)], index: usize) -> Option<FlowId> {
    events[..=index].iter().rev().find_map(|(_, e)| e.flow())
}

/// Lets the case play out: an hour of simulated time is past every bound and back-off.
fn settle(w: &mut World) {
    w.advance(S(3600));
}

fn sim_cert(kind: CertKind, tweak: fn(UeConfigBuilder) -> UeConfigBuilder) -> Outcome {
    let mut w = World::new(tweak(base_config(&pki())));
    w.set_server(kind, TlsVersions::Tls12Only, false);
    w.start_registration();
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

#[derive(Clone, Copy)]
enum Legacy {
    Rsa1024,
    Sha1,
}

fn legacy_leaf(which: Legacy) -> &'static legacy_pki::LegacyLeaf {
    match which {
        Legacy::Rsa1024 => &legacy_pki().rsa1024,
        Legacy::Sha1 => &legacy_pki().sha1,
    }
}

fn sim_legacy(which: Legacy) -> Outcome {
    let mut w = World::new(
        UeConfig::builder()
            .pcscf(format!("{SERVER_NAME}:5061"))
            .trust_anchors_pem(legacy_pki().root_pem.clone())
            .random_seed(42),
    );
    w.server = legacy_pki::server_config(legacy_leaf(which), TlsVersions::Tls12Only)
        .expect("the simulator serves the openssl-made certificate");
    w.start_registration();
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

fn sim_tls13_only_ue() -> Outcome {
    let mut w = World::new(base_config(&pki()).tls_versions(UeVersions::Tls13Only));
    w.set_server(CertKind::Good, TlsVersions::Tls12Only, false);
    w.start_registration();
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

fn sim_client_cert(policy: CertificateRequestPolicy) -> Outcome {
    let mut w = World::new(base_config(&pki()).certificate_request_policy(policy));
    w.set_server(CertKind::Good, TlsVersions::Both, true);
    // Attach the simulated P-CSCF by hand, told that it requests a certificate, so that it
    // reports the Certificate message it gets.
    w.connect = vec![ConnectMode::AcceptSilent];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    let mut core = imstls_testkit::PcscfCore::new(w.server.clone(), w.registrar.clone(), flow.0)
        .expect("server");
    core.set_client_cert_requested(true);
    core.receive(&w.wire_of(flow));
    w.peers.insert(
        flow,
        support::Peer {
            core,
            eof_sent: false,
        },
    );
    w.connect = vec![ConnectMode::Accept];
    w.pump();
    w.advance(S(5));
    mem_outcome(&w, 0, false)
}

/// Registers (proving the flow with a pong), then applies `fault`; the outcome is read from
/// the events after the fault.
fn mem_registered_fault(fault: fn(&mut World)) -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.register();
    w.advance(S(1)); // the first pong proves the flow (RFC 5626 §4.5)
    assert!(w.count("pong_received") > 0);
    let from = w.events.len();
    fault(&mut w);
    w.advance(S(60));
    mem_outcome(&w, from, false)
}

/// The P-CSCF "answers" the ClientHello with `bytes(real ServerHello flight)`.
fn mem_handshake_bytes(bytes: fn(&[u8]) -> Vec<u8>) -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![ConnectMode::AcceptSilent];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    // A real server's first flight, from a PcscfCore fed the UE's ClientHello.
    let mut core =
        imstls_testkit::PcscfCore::new(w.server.clone(), w.registrar.clone(), 99).expect("server");
    core.receive(&w.wire_of(flow));
    let real = core.take_output();
    let hello_len = w.wire_of(flow).len();
    let r = w.ue.receive(w.now, flow, &bytes(&real));
    assert!(r.is_ok());
    w.pump();
    hand_back(&mut w, flow, core, hello_len);
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

/// The P-CSCF the test drove by hand gets what the UE sent on `flow` after its first
/// `seen` bytes and, once the UE closed the flow, the end of the stream; its log is kept
/// as the flow's peer log.
fn hand_back(w: &mut World, flow: FlowId, mut core: imstls_testkit::PcscfCore, seen: usize) {
    let sent = w.wire_of(flow);
    core.receive(&sent[seen.min(sent.len())..]);
    if w.closed.contains(&flow) {
        core.transport_eof();
    }
    w.ended.push((flow, core.take_observations()));
}

fn mem_huge_sip_in() -> Outcome {
    mem_registered_fault(|w| {
        let body = vec![b'x'; 200 * 1024];
        let mut message = format!(
            "MESSAGE sip:alice@ims.test SIP/2.0\r\nCall-ID: huge\r\nCSeq: 1 MESSAGE\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        message.extend_from_slice(&body);
        w.peer().send_request(&message);
        w.pump();
    })
}

fn mem_endless_header() -> Outcome {
    mem_registered_fault(|w| {
        // No blank line: the header block never ends. Sent in pieces (a rustls send buffer
        // holds 64 KiB).
        w.peer()
            .send_request(b"MESSAGE sip:alice@ims.test SIP/2.0\r\n");
        for i in 0..40 {
            if w.ue.current_flow().is_none() || w.peers.is_empty() {
                break;
            }
            let mut piece = Vec::new();
            for j in 0..50 {
                piece.extend_from_slice(
                    format!("X-Filler-{i}-{j}: {}\r\n", "y".repeat(40)).as_bytes(),
                );
            }
            w.peer().send_request(&piece);
            w.pump();
            if w.count("connection_lost") > 0 {
                break;
            }
        }
    })
}

fn mem_huge_sip_out() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.register();
    w.advance(S(1));
    let from = w.events.len();
    let max = w.ue.config().max_sip_message_size();
    let body = "x".repeat(max + 1);
    let message = w.ua.request("MESSAGE", "sip:bob@ims.test", body.as_bytes());
    let event = match w.ue.send_sip(w.now, &message) {
        Err(imstls::UeError::BadMessage(e)) => {
            // The error names the limit.
            let text = e.to_string();
            assert!(text.contains(&max.to_string()), "{text}");
            format!("send_sip refused: {}", framing_code(&e))
        }
        other => format!("send_sip returned {other:?}"),
    };
    w.advance(S(60));
    let lost = w.events[from..]
        .iter()
        .any(|(_, e)| e.code() == "connection_lost");
    let flow = w.ue.current_flow().expect("still registered on a flow");
    Outcome {
        event,
        wire: mem_wire(&w, flow),
        then: if !lost && w.state() == UeState::Registered {
            KEPT.into()
        } else {
            format!("{:?}", w.state())
        },
    }
}

/// The peer's first flight trickles one byte every 5 s: only the handshake timeout ends it.
fn mem_slowloris_handshake() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![ConnectMode::AcceptSilent];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    let mut core =
        imstls_testkit::PcscfCore::new(w.server.clone(), w.registrar.clone(), 99).expect("server");
    core.receive(&w.wire_of(flow));
    let hello_len = w.wire_of(flow).len();
    let flight = core.take_output();
    for byte in flight {
        if w.ue.current_flow() != Some(flow) {
            break;
        }
        let r = w.ue.receive(w.now, flow, &[byte]);
        assert!(r.is_ok());
        w.advance(S(5));
    }
    hand_back(&mut w, flow, core, hello_len);
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, true)
}

/// An answer to the first REGISTER trickles one byte per second: Timer F bounds it.
fn mem_slowloris_sip() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.peer_answer_limit = Some(0); // the simulated P-CSCF ignores the REGISTER...
    w.start_registration();
    assert_eq!(w.state(), UeState::Registering);
    let flow = w.ue.current_flow().expect("a flow");
    let mut peer = w.peers.remove(&flow).expect("a peer");
    let wire_from = w.wire.len();
    // ...and the test trickles a 401 instead.
    peer.core.send_request(
        b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKslow\r\n\
          From: <sip:alice@ims.test>;tag=1\r\nTo: <sip:alice@ims.test>;tag=2\r\n\
          Call-ID: slow\r\nCSeq: 1 REGISTER\r\n\
          WWW-Authenticate: Digest realm=\"ims.test\", nonce=\"abc\", qop=\"auth\"\r\n\
          Content-Length: 0\r\n\r\n",
    );
    let answer = peer.core.take_output();
    for byte in answer {
        if w.ue.current_flow() != Some(flow) {
            break;
        }
        let r = w.ue.receive(w.now, flow, &[byte]);
        assert!(r.is_ok());
        w.advance(S(1));
    }
    // The peer gets what the UE sent meanwhile and, if the UE closed the flow, the end of the
    // stream, so that its log shows how the flow ended (it answers nothing: limit 0).
    for (f, bytes) in &w.wire[wire_from..] {
        if *f == flow {
            peer.core.receive(bytes);
        }
    }
    if w.closed.contains(&flow) {
        peer.core.transport_eof();
        w.ended.push((flow, peer.core.take_observations()));
    } else {
        w.peers.insert(flow, peer);
    }
    w.peer_answer_limit = None;
    settle(&mut w);
    mem_outcome(&w, 0, true)
}

fn mem_rst_connect() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![ConnectMode::Blackhole];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    let r = w.ue.transport_closed(w.now, flow, TransportClosure::Reset);
    assert!(r.is_ok());
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

fn mem_rst_handshake() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![ConnectMode::AcceptSilent];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    let r = w.ue.transport_closed(w.now, flow, TransportClosure::Reset);
    assert!(r.is_ok());
    w.pump();
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

fn mem_rst_after_register() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.peer_answer_limit = Some(0);
    w.start_registration();
    assert_eq!(w.state(), UeState::Registering);
    w.peer_answer_limit = None;
    w.reset_current();
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

fn mem_silent_drop() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.register();
    w.advance(S(1));
    let from = w.events.len();
    w.silence_current();
    // The next ping is due within 120 s; its pong never comes.
    let ping_from = w.events.len();
    w.run_until(S(200), |w| w.count("connection_lost") > 0);
    // Time the loss from the ping it follows.
    let ping_at = w.events[ping_from..]
        .iter()
        .find(|(_, e)| e.code() == "keepalive_sent")
        .map(|(t, _)| *t)
        .expect("a ping went out");
    w.advance(S(60));
    let mut outcome = mem_outcome(&w, from, false);
    if let Some((_, at, _)) = first_defining(&w.events, from) {
        outcome.event = format!("{} @{}s", outcome.event, (at - ping_at).as_secs());
    }
    outcome
}

fn mem_connect_mode(mode: ConnectMode) -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![mode];
    w.start_registration();
    w.run_until(S(100), |w| w.count("backoff") > 0);
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, true)
}

fn mem_close_before_hello() -> Outcome {
    let mut w = World::new(base_config(&pki()));
    w.connect = vec![ConnectMode::AcceptSilent];
    w.start_registration();
    let flow = w.ue.current_flow().expect("a flow");
    // A close_notify alert record instead of the ServerHello, then FIN.
    let r = w.ue.receive(w.now, flow, &[21, 3, 3, 0, 2, 1, 0]);
    assert!(r.is_ok());
    w.pump();
    if w.ue.current_flow() == Some(flow) {
        let r = w.ue.transport_closed(w.now, flow, TransportClosure::Eof);
        assert!(r.is_ok());
        w.pump();
    }
    w.connect = vec![ConnectMode::Accept];
    settle(&mut w);
    mem_outcome(&w, 0, false)
}

// ----- real sockets: OpenSSL, the socket simulator, the raw fake server ------------------

/// The UE for a peer on 127.0.0.1:`port`: bounds short enough that every socket case ends
/// within seconds, yet loose enough that a loaded 2-core machine does not trip them in a case
/// that is not about them (a loopback handshake takes milliseconds), and a short back-off so
/// that its retry is seen.
fn socket_config(port: u16, root_pem: String) -> UeConfigBuilder {
    UeConfig::builder()
        .pcscf(format!("127.0.0.1:{port}"))
        .server_name(SERVER_NAME)
        .trust_anchors_pem(root_pem)
        .random_seed(7)
        .connect_timeout(S(5))
        .handshake_timeout(S(5))
        .registration_timeout(S(5))
        .backoff(Backoff {
            base_all_failed: MS(300),
            base_not_all_failed: MS(300),
            max: S(1),
        })
        .keepalive(KeepAlive {
            pong_timeout: S(3),
            ..KeepAlive::default()
        })
}

/// The longest a socket case can take to play out, from the UE's own bounds: one attempt
/// that runs every bound to its end (connect, handshake, REGISTER, a pong), the longest
/// back-off, a second attempt as long, and a margin for a loaded machine. Cases end as soon
/// as their outcome is seen; this only bounds a case that hangs.
fn scenario_bound(link: &SocketLink) -> Duration {
    let c = link.ue.config();
    let attempt = c.connect_timeout()
        + c.handshake_timeout()
        + c.registration_timeout()
        + c.keepalive().pong_timeout;
    2 * attempt + c.backoff().max + S(5)
}

fn new_link<'a>(config: UeConfigBuilder) -> SocketLink<'a> {
    let ue = Ue::new(config.build().expect("valid config"), Instant::now()).unwrap();
    SocketLink::new(ue, Ua::new(UaConfig::default()))
}

fn start(link: &mut SocketLink) {
    link.ue
        .start_registration(Instant::now(), identity())
        .expect("start");
}

/// The outcome of a socket run from event `from`, with `wire` read from the peer.
fn socket_outcome(link: &SocketLink, from: usize, wire: String) -> Outcome {
    note_events(&link.codes());
    assert!(
        link.input_errors.is_empty(),
        "the engine refused a correct stack: {:?}",
        link.input_errors
    );
    match first_defining(&link.events, from) {
        Some((index, _, event)) => Outcome {
            event,
            wire,
            then: then_text(&link.events, index, link.ue.state()),
        },
        None => Outcome {
            event: format!("no defining event (events {:?})", &link.codes()[from..]),
            wire,
            then: format!("{:?}", link.ue.state()),
        },
    }
}

/// Runs until the case has played out: a defining event, then either the engine closed, a
/// back-off was followed by a new attempt, or a new flow registered. Bounded by
/// [`scenario_bound`].
fn play_out(link: &mut SocketLink, from: usize) {
    let limit = scenario_bound(link);
    link.run_until(limit, |l| match first_defining(&l.events, from) {
        Some((i, _, _)) => {
            let after: Vec<&str> = l.events[i + 1..].iter().map(|(_, e)| e.code()).collect();
            let closed = l.ue.state() == UeState::Closed;
            let retried = after.contains(&"backoff") && after.contains(&"connecting");
            let recovered = after.contains(&"connecting") && after.contains(&"registered");
            closed || retried || recovered
        }
        None => false,
    });
    // A closed engine must stay closed: give a wrong retry the chance to show.
    link.run_for(MS(300));
}

/// What s_server's trace must show before it is read (bounded wait: its output arrives
/// through pipes).
enum TraceEnd {
    /// The end of the first connection: `CONNECTION CLOSED` after a shutdown, or the `ERROR`
    /// line s_server prints when the connection fails (after the alerts of that connection).
    ConnectionEnded,
    /// A line starting with the direction and containing the text (a connection that stays
    /// open).
    Line(&'static str, &'static str),
}

/// s_server's trace once it shows `end`; a trace that never does is returned as it is and
/// says so (which no expected row contains).
fn openssl_trace(server: &OpensslServer, end: TraceEnd) -> String {
    let deadline = Instant::now() + S(10);
    loop {
        let log = server.log();
        let seen = log.lines().any(|l| match end {
            TraceEnd::ConnectionEnded => l == "ERROR" || l.contains("CONNECTION CLOSED"),
            TraceEnd::Line(direction, what) => l.starts_with(direction) && l.contains(what),
        });
        if seen {
            return log;
        }
        if Instant::now() >= deadline {
            return format!("{log}(the trace did not show the end awaited within 10 s)\n");
        }
        std::thread::sleep(MS(10));
    }
}

fn openssl_run(
    cert: &std::path::Path,
    key: &std::path::Path,
    flags: &[&str],
    config: impl FnOnce(u16) -> UeConfigBuilder,
) -> Outcome {
    let server = OpensslServer::start(cert, key, flags);
    let mut link = new_link(config(server.port));
    start(&mut link);
    play_out(&mut link, 0);
    let wire = openssl_wire(&openssl_trace(&server, TraceEnd::ConnectionEnded));
    socket_outcome(&link, 0, wire)
}

fn openssl_cert(kind: CertKind, tweak: fn(UeConfigBuilder) -> UeConfigBuilder) -> Outcome {
    let (_dir, cert, key) = pem_files(kind);
    openssl_run(&cert, &key, &[], |port| {
        tweak(socket_config(port, pki().root_pem()))
    })
}

fn openssl_legacy(which: Legacy) -> Outcome {
    let leaf = legacy_leaf(which);
    openssl_run(
        &leaf.chain,
        &leaf.key,
        &["-cipher", "DEFAULT@SECLEVEL=0"],
        |port| socket_config(port, legacy_pki().root_pem.clone()),
    )
}

fn openssl_handshake(flags: &[&str], tweak: fn(UeConfigBuilder) -> UeConfigBuilder) -> Outcome {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    openssl_run(&cert, &key, flags, |port| {
        tweak(socket_config(port, pki().root_pem()))
    })
}

/// s_server as a scripted registrar: every REGISTER gets a 200 OK and every ping a pong,
/// written to its stdin (which it sends as application data).
fn openssl_registrar_hook<'a>(server: &'a RefCell<OpensslServer>) -> Hook<'a> {
    Box::new(move |ua: &Ua, sent: Sent<'_>| match sent {
        Sent::Sip(request) => {
            let msg = SipMessage::parse(request).expect("the stack sends valid SIP");
            if msg.method() == Some("REGISTER") {
                let answer = ua.answer(&msg, 200);
                server
                    .borrow_mut()
                    .command(std::str::from_utf8(&answer).expect("ASCII"));
            }
        }
        Sent::Ping => server.borrow_mut().command("\r\n"),
        Sent::Event(_) => {}
    })
}

fn openssl_renegotiation(requests: usize) -> Outcome {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = RefCell::new(OpensslServer::start(&cert, &key, &["-tls1_2"]));
    let port = server.borrow().port;
    let mut link = new_link(socket_config(port, pki().root_pem()));
    link.hook = Some(openssl_registrar_hook(&server));
    start(&mut link);
    let bound = scenario_bound(&link);
    assert!(
        link.run_until(bound, |l| l.count("pong_received") > 0),
        "registered over OpenSSL: {:?}",
        link.codes()
    );
    let from = link.events.len();
    // The UE reads nothing while the HelloRequests go out, so that they arrive together:
    // each command is sent once s_server's trace shows the previous HelloRequest left.
    for sent in 1..=requests {
        server.borrow_mut().command("r\n");
        let left = wait_for_count(&server.borrow(), ">>>", "HelloRequest", sent, S(10));
        assert!(left, "s_server sent HelloRequest {sent}");
    }
    play_out(&mut link, from);
    let trace = openssl_trace(&server.borrow(), TraceEnd::ConnectionEnded);
    let hello_requests = trace
        .lines()
        .filter(|l| l.starts_with(">>>") && l.contains("HelloRequest"))
        .count();
    assert_eq!(hello_requests, requests, "HelloRequests sent:\n{trace}");
    // Only the alerts of the first connection matter here.
    let first = trace.split("ACCEPT").nth(1).unwrap_or(&trace).to_owned();
    socket_outcome(&link, from, openssl_wire(&first))
}

fn openssl_key_update() -> Outcome {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = RefCell::new(OpensslServer::start(&cert, &key, &["-tls1_3"]));
    let port = server.borrow().port;
    let mut link = new_link(socket_config(port, pki().root_pem()));
    link.hook = Some(openssl_registrar_hook(&server));
    start(&mut link);
    let bound = scenario_bound(&link);
    assert!(link.run_until(bound, |l| l.count("pong_received") > 0));
    let from = link.events.len();
    server.borrow_mut().command("k\n");
    let sent = wait_for_count(&server.borrow(), ">>>", "KeyUpdate", 1, S(10));
    assert!(sent, "s_server sent a KeyUpdate");
    // A terminating request under the new keys.
    let message = "MESSAGE sip:alice@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bK1\r\nFrom: <sip:bob@ims.test>;tag=1\r\nTo: <sip:alice@ims.test>\r\nCall-ID: ku\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
    server.borrow_mut().command(message);
    link.run_until(bound, |l| {
        l.events[from..]
            .iter()
            .any(|(_, e)| e.code() == "sip_received")
    });
    let trace = openssl_trace(&server.borrow(), TraceEnd::Line(">>>", "KeyUpdate"));
    assert!(
        trace
            .lines()
            .any(|l| l.starts_with(">>>") && l.contains("KeyUpdate")),
        "s_server sent a KeyUpdate:\n{trace}"
    );
    let received = link.events[from..].iter().find_map(|(_, e)| match e {
        Event::SipReceived { message, .. } => SipMessage::parse(message)
            .ok()
            .and_then(|m| m.method().map(str::to_owned)),
        _ => None,
    });
    let lost = link.events[from..]
        .iter()
        .any(|(_, e)| defining(e).is_some());
    Outcome {
        event: match received {
            Some(method) if !lost => format!("sip_received: {method}"),
            _ => format!("events {:?}", &link.codes()[from..]),
        },
        wire: openssl_wire(&trace),
        then: if !lost && link.ue.state() == UeState::Registered {
            KEPT.into()
        } else {
            format!("{:?}", link.ue.state())
        },
    }
}

fn openssl_client_cert(flags: &[&str], policy: CertificateRequestPolicy) -> Outcome {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = RefCell::new(OpensslServer::start(&cert, &key, flags));
    let port = server.borrow().port;
    let mut link =
        new_link(socket_config(port, pki().root_pem()).certificate_request_policy(policy));
    link.hook = Some(openssl_registrar_hook(&server));
    start(&mut link);
    let bound = scenario_bound(&link);
    link.run_until(bound, |l| {
        l.ue.state() == UeState::Closed || l.count("backoff") > 0 || l.count("pong_received") > 0
    });
    // A closed engine must stay closed: give a wrong retry the chance to show.
    link.run_for(MS(300));
    let failed = link
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::TlsFailed { .. }));
    // A failed handshake ends the connection; a kept one shows the UE's Certificate message.
    let marker = if failed {
        TraceEnd::ConnectionEnded
    } else {
        TraceEnd::Line("<<<", "Certificate")
    };
    let trace = openssl_trace(&server.borrow(), marker);
    let mut wire = openssl_wire(&trace);
    // The UE's (empty) Certificate message: 7 bytes in TLS 1.2, 8 in TLS 1.3.
    let empty_certificate = trace.lines().any(|l| {
        l.starts_with("<<<")
            && l.contains("Certificate")
            && (l.contains("[length 0007]") || l.contains("[length 0008]"))
    });
    if !failed {
        wire = if empty_certificate {
            "ue→pcscf empty Certificate".into()
        } else {
            format!("no empty Certificate in the trace ({wire})")
        };
    }
    // For the defining event skip the warning that precedes a failure on TLS 1.3.
    let from = if failed {
        link.events
            .iter()
            .position(|(_, e)| matches!(e, Event::TlsFailed { .. }))
            .unwrap_or(0)
    } else {
        0
    };
    socket_outcome(&link, from, wire)
}

fn raw_script(script: RawScript) -> Outcome {
    let peer = RawPeer::start(script);
    let mut link = new_link(socket_config(peer.port, pki().root_pem()));
    start(&mut link);
    play_out(&mut link, 0);
    let events_outcome = socket_outcome(&link, 0, String::new());
    drop(link); // closes the socket: the peer logs the end of the stream
    let wire = raw_run_wire(&peer);
    Outcome {
        wire,
        ..events_outcome
    }
}

/// The UE's alerts on the first connection (a retry after back-off sends its own).
fn raw_run_wire(peer: &RawPeer) -> String {
    // The first connection is over once the peer logged its end: the UE's FIN or an error,
    // or the peer's own reset.
    let deadline = Instant::now() + S(10);
    while !peer
        .log()
        .iter()
        .any(|l| l.starts_with("<<< eof") || l.starts_with("<<< error") || l == ">>> reset")
        && Instant::now() < deadline
    {
        std::thread::sleep(MS(10));
    }
    join_or_none(
        peer.log()
            .iter()
            .skip(1)
            .take_while(|l| *l != "accepted")
            .filter_map(|l| l.strip_prefix("<<< alert "))
            .map(|a| format!("ue→pcscf {a}"))
            .collect(),
    )
}

fn raw_hello(reply: fn(&[u8]) -> Vec<u8>) -> Outcome {
    raw_script(RawScript::Reply(reply))
}

fn raw_slowloris() -> Outcome {
    // A ServerHello header that promises more than ever comes.
    let mut bytes = vec![0x16, 3, 3, 0, 80, 2, 0, 0, 76, 3, 3];
    bytes.extend(0u8..60);
    raw_script(RawScript::Trickle {
        bytes,
        every: MS(300),
    })
}

fn socket_refused() -> Outcome {
    // A port bound but never listened on, held for the whole case so that no other process
    // can take it: the kernel answers the SYN with RST.
    let closed =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    closed.bind(&any.into()).expect("bind loopback");
    let port = closed
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("a bound port");
    let mut link = new_link(socket_config(port, pki().root_pem()));
    start(&mut link);
    play_out(&mut link, 0);
    drop(closed);
    socket_outcome(&link, 0, "no connection".into())
}

/// Waits (bounded) until s_server's trace has `count` lines starting with `direction` and
/// containing `what`.
fn wait_for_count(
    server: &OpensslServer,
    direction: &str,
    what: &str,
    count: usize,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let seen = server
            .log()
            .lines()
            .filter(|l| l.starts_with(direction) && l.contains(what))
            .count();
        if seen >= count {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(MS(10));
    }
}

// ----- the socket simulator -------------------------------------------------------------

fn simulator() -> Simulator {
    Simulator::start_with_pki(SimConfig::default(), pki()).expect("loopback simulator")
}

/// The simulator's number for the connection that completed the latest handshake.
fn registered_connection(sim: &Simulator) -> usize {
    sim.observations()
        .iter()
        .rev()
        .find(|(_, o)| matches!(o, Observation::HandshakeDone { .. }))
        .map(|(c, _)| *c)
        .expect("a handshake completed")
}

/// Registers through the socket simulator (optionally behind the fault proxy) and proves the
/// flow with a pong; returns the index of the next event.
fn socket_registered(link: &mut SocketLink) -> usize {
    start(link);
    let bound = scenario_bound(link);
    assert!(
        link.run_until(bound, |l| l.count("pong_received") > 0),
        "registered over sockets: {:?}",
        link.codes()
    );
    link.events.len()
}
fn socket_finish(link: &mut SocketLink, sim: &Simulator, from: usize, conn: usize) -> Outcome {
    play_out(link, from);
    let wire = sim_wire(sim, conn);
    socket_outcome(link, from, wire)
}

/// Registered through the fault proxy, then `fault` on the P-CSCF → UE direction; with
/// `needs_traffic`, the simulator pings so that there is a record to corrupt.
fn socket_proxy_fault(fault: ProxyFault, needs_traffic: bool) -> Outcome {
    let sim = simulator();
    let proxy = FaultProxy::start(sim.addr());
    let mut link = new_link(socket_config(proxy.port, pki().root_pem()));
    let from = socket_registered(&mut link);
    let conn = registered_connection(&sim);
    proxy.inject(fault);
    if needs_traffic {
        sim.ping_all();
    }
    socket_finish(&mut link, &sim, from, conn)
}

fn socket_rst_after_register() -> Outcome {
    let sim = simulator();
    sim.set_fault(Fault::ResetAfterMessages(1));
    let sim = Arc::new(sim);
    let mut link = new_link(socket_config(sim.addr().port(), pki().root_pem()));
    // Lift the fault once it has struck, before the engine reconnects.
    let lifter = sim.clone();
    link.hook = Some(Box::new(move |_: &Ua, sent: Sent<'_>| {
        if let Sent::Event(e) = sent {
            if defining(e).is_some() {
                lifter.set_fault(Fault::None);
            }
        }
    }));
    start(&mut link);
    socket_finish(&mut link, &sim, 0, 1)
}

fn socket_rst_registered() -> Outcome {
    let sim = simulator();
    let mut link = new_link(socket_config(sim.addr().port(), pki().root_pem()));
    let from = socket_registered(&mut link);
    let conn = registered_connection(&sim);
    sim.kill_connections();
    socket_finish(&mut link, &sim, from, conn)
}

fn socket_close_notify() -> Outcome {
    let sim = simulator();
    let mut link = new_link(socket_config(sim.addr().port(), pki().root_pem()));
    let from = socket_registered(&mut link);
    let conn = registered_connection(&sim);
    sim.close_connections();
    socket_finish(&mut link, &sim, from, conn)
}

fn socket_silent_drop() -> Outcome {
    let sim = Arc::new(simulator());
    // A 2 s Flow-Timer makes the UE ping every 1.6–2 s.
    sim.registrar().set_flow_timer(Some(2));
    let mut link = new_link(socket_config(sim.addr().port(), pki().root_pem()));
    let lifter = sim.clone();
    link.hook = Some(Box::new(move |_: &Ua, sent: Sent<'_>| {
        if let Sent::Event(e) = sent {
            if defining(e).is_some() {
                lifter.set_fault(Fault::None);
            }
        }
    }));
    let from = socket_registered(&mut link);
    let conn = registered_connection(&sim);
    sim.set_fault(Fault::SilentAfterMessages(0));
    socket_finish(&mut link, &sim, from, conn)
}

// ----- the run, the table and the document ----------------------------------------------

fn run_case(case: &Case) -> Outcome {
    match std::panic::catch_unwind(case.run) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Outcome {
                event: format!("PANIC: {}", why.lines().next().unwrap_or_default()),
                wire: "-".into(),
                then: "-".into(),
            }
        }
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn table(cases: &[Case], observed: &[Outcome], with_observed: bool) -> String {
    let mut out = String::new();
    if with_observed {
        out.push_str("| # | id | group | case | peer | expected (event · wire · then) | observed | verdict |\n|---|---|---|---|---|---|---|---|\n");
    } else {
        out.push_str("| # | id | group | case | peer | event | wire | then |\n|---|---|---|---|---|---|---|---|\n");
    }
    for (i, case) in cases.iter().enumerate() {
        let exp = expected(case);
        if with_observed {
            let obs = &observed[i];
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                i + 1,
                case.id,
                case.group,
                cell(case.title),
                case.peer,
                cell(&exp.text()),
                cell(&obs.text()),
                if *obs == exp {
                    "as expected"
                } else {
                    "**NOT AS EXPECTED**"
                }
            ));
        } else {
            let obs = &observed[i];
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                i + 1,
                case.id,
                case.group,
                cell(case.title),
                case.peer,
                cell(&obs.event),
                cell(&obs.wire),
                cell(&obs.then)
            ));
        }
    }
    out
}

/// The document: the observed rows of a run in which every case was as expected (so also the
/// expected rows, which is what the staleness check compares).
fn document(cases: &[Case], observed: &[Outcome]) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for case in cases {
        match groups.iter_mut().find(|(g, _)| *g == case.group) {
            Some((_, n)) => *n += 1,
            None => groups.push((case.group, 1)),
        }
    }
    let counts: Vec<String> = groups.iter().map(|(g, n)| format!("{g} {n}")).collect();
    let mut per_scenario: std::collections::BTreeMap<&str, usize> = Default::default();
    for case in cases {
        *per_scenario.entry(scenario(case.id)).or_default() += 1;
    }
    let twice = per_scenario.values().filter(|n| **n == 2).count();
    format!(
        "# Negative matrix\n\n\
         <!-- generated by tests/negative_matrix.rs from the rows its cases observed; do not edit\n     \
         by hand. Regenerate: IMSTLS_BLESS=1 cargo test --test negative_matrix -->\n\n\
         {} peer runs of {} distinct scenarios: {} scenarios run once, {} run against two peers\n\
         (the same certificate or wire fault served by OpenSSL and by the simulator, or by the\n\
         in-memory and the socket simulator). By group: {}. Each peer run is its own `#[test]` in\n\
         `tests/negative_matrix.rs`, named after its id, so a failure names its case; each writes\n\
         its observed row, and the run that completes the set prints the table of observed beside\n\
         expected rows (and, with `IMSTLS_BLESS=1`, writes this file from the observed rows, only\n\
         when every one is as expected). The expected outcome has three parts:\n\n\
         - **event**: the engine event that defines the outcome, with its stable reason code\n  \
         (`Event::code`, `CertificateFailure::code`, `TlsFailureKind::code`, `LossReason::code`),\n  \
         and for cases on the simulated clock the time it came at (`@15s`: the configured bound);\n\
         - **wire**: what crossed the wire, as the **peer** logged it, never taken from the UE's\n  \
         events: OpenSSL's `-msg` trace; the simulator's own observation log (for `sim-mem` and\n  \
         `sim-socket`), which decodes the plaintext alert records it reads and writes (so the\n  \
         level shown is the level byte on the wire), lists as `encrypted X` an alert only its\n  \
         rustls could see (TLS 1.3, or after ChangeCipherSpec: `Error::AlertReceived`), logs its\n  \
         own close_notify and FIN/RST and the UE's close_notify (rustls `peer_has_closed`) and\n  \
         FIN/RST; the raw fake server's log. `[replayed]`: the test itself played the P-CSCF\n  \
         (bytes injected into the UE), and a rustls server was fed everything the UE sent on that\n  \
         flow afterwards; its decoding is shown. `no connection`: the UE never got a TCP\n  \
         connection; `none`: the peer logged nothing of these kinds;\n\
         - **then**: what the engine did next.\n\n\
         Peers: `openssl` = OpenSSL `s_server` on loopback, port 0, reporting the port it bound\n\
         (certificate cases negotiate TLS 1.3; renegotiation and client-certificate cases script\n\
         it as a registrar through its stdin); `sim-mem` = the simulator's `PcscfCore` (a real\n\
         rustls server and registrar) in memory on a simulated clock, default timeouts\n\
         (certificate cases negotiate TLS 1.2, so the UE's alert is a plaintext record);\n\
         `sim-socket` = the socket `Simulator`, for wire faults (some behind a fault-injecting TCP\n\
         proxy, in which case the simulator's FIN/RST are those of its leg to the proxy); `raw` =\n\
         a raw-socket fake server for ServerHellos no real server sends. Socket cases configure\n\
         bounds (connect, handshake and REGISTER 5 s, pong 3 s, back-off ≤ 1 s) and wait for\n\
         their outcome at most twice every bound plus 5 s; they end as soon as it is seen.\n\
         RSA-1024 and SHA-1 certificates are made with the `openssl` command line tool.\n\n\
         The list is data (id, group, peer, expected codes) so that another runner, such as the\n\
         C flavour under Valgrind, can take the same rows and compare its own observations.\n\n\
         Answering the P-CSCF's close_notify (rows close-notify-*), the UE sends its own\n\
         close_notify before its FIN, and both simulators log it: RFC 8446 §6.1, \"Each party\n\
         MUST send a \"close_notify\" alert before closing its write side of the connection,\n\
         unless it has already sent some error alert.\" (Until 2026-12-05 the UE closed with a\n\
         bare FIN; these rows caught it.)\n\n\
         {}",
        cases.len(),
        per_scenario.len(),
        per_scenario.len() - twice,
        twice,
        counts.join(", "),
        table(cases, observed, false)
    )
}

// ----- one test per case; the table from their observations ---------------------------

/// Where each case writes its observed row, one directory per run of the test binary (all
/// its tests share the process), so that the table is assembled from this run only.
fn rows_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("negative-matrix")
        .join(format!("run-{}", std::process::id()))
}

fn encode(outcome: &Outcome) -> String {
    [&outcome.event, &outcome.wire, &outcome.then]
        .map(|part| part.replace(['\t', '\n'], " "))
        .join("\t")
}

fn decode(row: &str) -> Option<Outcome> {
    let mut parts = row.trim_end_matches('\n').split('\t');
    Some(Outcome {
        event: parts.next()?.to_owned(),
        wire: parts.next()?.to_owned(),
        then: parts.next()?.to_owned(),
    })
}

/// Runs one case, writes its observed row, and once every case of this run has written one,
/// prints the whole table (and with `IMSTLS_BLESS=1` writes docs/NEGATIVE_MATRIX.md from the
/// observed rows, only when every one is as expected). Fails unless the case is as expected.
fn check(id: &str) {
    let cases = cases();
    let index = cases
        .iter()
        .position(|c| c.id == id)
        .expect("a case with this id");
    let case = &cases[index];
    let started = Instant::now();
    let observed = run_case(case);
    let seconds = started.elapsed().as_secs_f64();
    let dir = rows_dir();
    std::fs::create_dir_all(&dir).expect("rows directory");
    let row = dir.join(format!("{index:03}.row"));
    std::fs::write(row.with_extension("tmp"), encode(&observed)).expect("write the row");
    std::fs::rename(row.with_extension("tmp"), &row).expect("publish the row");
    let _ = std::io::stderr().write_all(
        format!(
            "negative matrix {id}: {} in {seconds:.1} s\n",
            if observed == expected(case) {
                "as expected"
            } else {
                "NOT AS EXPECTED"
            }
        )
        .as_bytes(),
    );
    assemble(&cases, &dir);
    let exp = expected(case);
    let events = EVENTS.with(|e| e.borrow().clone());
    assert!(
        observed == exp,
        "{id} ({}, peer {}): not as expected\n  expected: {}\n  observed: {}\n  events: {events}",
        case.title,
        case.peer,
        exp.text(),
        observed.text()
    );
}

/// Once every case has a row in `dir`: prints the table of observations and, when blessing
/// and all are as expected, writes the document from them.
fn assemble(cases: &[Case], dir: &std::path::Path) {
    let observed: Option<Vec<Outcome>> = (0..cases.len())
        .map(|i| {
            std::fs::read_to_string(dir.join(format!("{i:03}.row")))
                .ok()
                .and_then(|row| decode(&row))
        })
        .collect();
    let Some(observed) = observed else {
        return; // other cases are still running (or were filtered out)
    };
    // Only one test assembles: the one that creates the marker.
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("assembled"))
        .is_err()
    {
        return;
    }
    let failed: Vec<&str> = cases
        .iter()
        .zip(&observed)
        .filter(|(c, o)| expected(c) != **o)
        .map(|(c, _)| c.id)
        .collect();
    let report = format!(
        "\nNEGATIVE MATRIX: {} peer runs of {} scenarios, {} as expected, {} not\n{}\n",
        cases.len(),
        scenario_count(cases),
        cases.len() - failed.len(),
        failed.len(),
        table(cases, &observed, true)
    );
    // libtest captures eprintln!; the table must reach the terminal.
    let _ = std::io::stderr().write_all(report.as_bytes());
    if std::env::var_os("IMSTLS_BLESS").is_some() && failed.is_empty() {
        std::fs::write(doc_path(), document(cases, &observed))
            .expect("write docs/NEGATIVE_MATRIX.md");
    }
}

fn doc_path() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/docs/NEGATIVE_MATRIX.md")
}

/// The scenario a case runs: its id without the peer suffix, so that one fault run against
/// two peers counts once.
fn scenario(id: &str) -> &str {
    ["-openssl", "-sim", "-mem", "-socket"]
        .iter()
        .find_map(|suffix| id.strip_suffix(suffix))
        .unwrap_or(id)
}

fn scenario_count(cases: &[Case]) -> usize {
    let scenarios: std::collections::BTreeSet<&str> =
        cases.iter().map(|c| scenario(c.id)).collect();
    scenarios.len()
}

/// The list is sound (unique ids, one test per case) and the committed document is the one a
/// green run writes (every observed row equal to its expected row).
#[test]
fn case_list_and_document() {
    let cases = cases();
    let ids: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), cases.len(), "case ids are unique");
    let tested: std::collections::BTreeSet<&str> = TESTED.iter().copied().collect();
    assert_eq!(ids, tested, "every case has its own #[test]");
    if std::env::var_os("IMSTLS_BLESS").is_some() {
        return; // the run that completes the rows writes the document
    }
    let expected: Vec<Outcome> = cases.iter().map(expected).collect();
    let committed = std::fs::read_to_string(doc_path()).unwrap_or_default();
    assert!(
        committed == document(&cases, &expected),
        "docs/NEGATIVE_MATRIX.md is stale: IMSTLS_BLESS=1 cargo test --test negative_matrix"
    );
}

macro_rules! case_tests {
    ($($name:ident => $id:literal,)*) => {
        $(
            #[test]
            fn $name() {
                check($id)
            }
        )*
        const TESTED: &[&str] = &[$($id),*];
    };
}

case_tests! {
    cert_expired_openssl => "cert-expired-openssl",
    cert_expired_sim => "cert-expired-sim",
    cert_not_yet_valid_openssl => "cert-not-yet-valid-openssl",
    cert_not_yet_valid_sim => "cert-not-yet-valid-sim",
    cert_wrong_name_openssl => "cert-wrong-name-openssl",
    cert_wrong_name_sim => "cert-wrong-name-sim",
    cert_self_signed_openssl => "cert-self-signed-openssl",
    cert_self_signed_sim => "cert-self-signed-sim",
    cert_unknown_ca_openssl => "cert-unknown-ca-openssl",
    cert_unknown_ca_sim => "cert-unknown-ca-sim",
    cert_missing_intermediate_openssl => "cert-missing-intermediate-openssl",
    cert_missing_intermediate_sim => "cert-missing-intermediate-sim",
    cert_client_auth_eku_openssl => "cert-client-auth-eku-openssl",
    cert_client_auth_eku_sim => "cert-client-auth-eku-sim",
    cert_ca_true_leaf_openssl => "cert-ca-true-leaf-openssl",
    cert_ca_true_leaf_sim => "cert-ca-true-leaf-sim",
    cert_rsa1024_openssl => "cert-rsa1024-openssl",
    cert_rsa1024_sim => "cert-rsa1024-sim",
    cert_sha1_openssl => "cert-sha1-openssl",
    cert_sha1_sim => "cert-sha1-sim",
    cert_wildcard_openssl => "cert-wildcard-openssl",
    cert_wildcard_sim => "cert-wildcard-sim",
    cert_pin_mismatch_openssl => "cert-pin-mismatch-openssl",
    cert_pin_mismatch_sim => "cert-pin-mismatch-sim",
    cert_revoked_openssl => "cert-revoked-openssl",
    cert_revoked_sim => "cert-revoked-sim",
    version_tls10_only => "version-tls10-only",
    version_tls11_only => "version-tls11-only",
    version_ssl3_server_hello => "version-ssl3-server-hello",
    version_tls11_server_hello => "version-tls11-server-hello",
    suite_cbc_only => "suite-cbc-only",
    suite_rsa_kx_only => "suite-rsa-kx-only",
    suite_unoffered_tls12 => "suite-unoffered-tls12",
    suite_unoffered_tls13 => "suite-unoffered-tls13",
    suite_compression => "suite-compression",
    version_tls13_only_ue => "version-tls13-only-ue",
    reneg_hello_request_once => "reneg-hello-request-once",
    reneg_hello_request_twice => "reneg-hello-request-twice",
    reneg_tls13_key_update => "reneg-tls13-key-update",
    client_cert_verify_tls13 => "client-cert-verify-tls13",
    client_cert_verify_tls12 => "client-cert-verify-tls12",
    client_cert_verify_required_tls13 => "client-cert-Verify-tls13",
    client_cert_verify_required_tls12 => "client-cert-Verify-tls12",
    client_cert_abort_openssl => "client-cert-abort-openssl",
    client_cert_continue_sim => "client-cert-continue-sim",
    client_cert_abort_sim => "client-cert-abort-sim",
    wire_flipped_bit_mem => "wire-flipped-bit-mem",
    wire_flipped_bit_socket => "wire-flipped-bit-socket",
    wire_replayed_record_mem => "wire-replayed-record-mem",
    wire_replayed_record_socket => "wire-replayed-record-socket",
    wire_truncated_record_mem => "wire-truncated-record-mem",
    wire_truncated_record_socket => "wire-truncated-record-socket",
    wire_garbage_before_handshake => "wire-garbage-before-handshake",
    wire_garbage_then_server_hello => "wire-garbage-then-server-hello",
    wire_garbage_after_handshake_mem => "wire-garbage-after-handshake-mem",
    wire_garbage_after_handshake_socket => "wire-garbage-after-handshake-socket",
    wire_oversized_record => "wire-oversized-record",
    sip_huge_message_in => "sip-huge-message-in",
    sip_endless_header => "sip-endless-header",
    sip_huge_message_out => "sip-huge-message-out",
    slowloris_handshake_mem => "slowloris-handshake-mem",
    slowloris_handshake_socket => "slowloris-handshake-socket",
    slowloris_sip_answer => "slowloris-sip-answer",
    rst_connect_mem => "rst-connect-mem",
    rst_connect_socket => "rst-connect-socket",
    rst_handshake_mem => "rst-handshake-mem",
    rst_handshake_socket => "rst-handshake-socket",
    rst_after_register_mem => "rst-after-register-mem",
    rst_after_register_socket => "rst-after-register-socket",
    rst_registered_mem => "rst-registered-mem",
    rst_registered_socket => "rst-registered-socket",
    silent_drop_mem => "silent-drop-mem",
    silent_drop_socket => "silent-drop-socket",
    close_notify_mem => "close-notify-mem",
    close_notify_socket => "close-notify-socket",
    half_close_mem => "half-close-mem",
    half_close_socket => "half-close-socket",
    connect_blackhole => "connect-blackhole",
    handshake_silent => "handshake-silent",
    close_before_server_hello => "close-before-server-hello",
}
