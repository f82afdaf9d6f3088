//! Against a real OpenSSL `s_server` speaking only what the 2010 Annex O text asked for:
//! TLS 1.0 / 1.1 only, or TLS 1.2 with only CBC suites. imstls refuses both with distinct,
//! clear errors, and the fatal alert is read from OpenSSL's own trace.

mod support;

use std::time::Duration;

use imstls::_internal_test_exports::tls::TlsProfile;
use imstls::{AlertDescription, TlsFailureKind};
use imstls_testkit::CertKind;
use support::openssl::{handshake_over_socket, pem_files, OpensslServer};
use support::{base_config, pki};

fn profile() -> TlsProfile {
    TlsProfile::new(
        &base_config(&pki()).build().unwrap(),
        std::time::Instant::now(),
    )
    .unwrap()
}

fn obsolete_version_is_refused(flag: &str) {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = OpensslServer::start(&cert, &key, &[flag, "-cipher", "DEFAULT@SECLEVEL=0"]);
    let (_flow, _socket, result) = handshake_over_socket(&profile(), server.port);
    let failure = result.expect_err("an obsolete-TLS P-CSCF must be refused");
    assert_eq!(failure.kind, TlsFailureKind::ProtocolVersion, "{failure}");
    assert!(failure.is_permanent());
    assert!(
        failure.to_string().contains("obsolete TLS"),
        "clear message: {failure}"
    );
    // Whichever side notices first puts a fatal protocol_version alert on the wire: OpenSSL
    // finds no common version in supported_versions and says so; if it had answered with a
    // TLS 1.x ServerHello, rustls would have sent the alert instead.
    let direction = match (failure.alert_sent, failure.alert_received) {
        (None, Some(AlertDescription::ProtocolVersion)) => ">>>",
        (Some(AlertDescription::ProtocolVersion), _) => "<<<",
        other => panic!("no protocol_version alert on the wire: {other:?}"),
    };
    server
        .wait_for_line(
            &[direction, "Alert", "fatal protocol_version"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| {
            panic!(
                "s_server trace shows no protocol_version alert:\n{}",
                server.log()
            )
        });
}

#[test]
fn a_tls10_only_pcscf_is_refused_with_protocol_version() {
    obsolete_version_is_refused("-tls1");
}

#[test]
fn a_tls11_only_pcscf_is_refused_with_protocol_version() {
    obsolete_version_is_refused("-tls1_1");
}

#[test]
fn a_cbc_only_tls12_pcscf_is_refused_with_no_common_cipher_suite() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = OpensslServer::start(
        &cert,
        &key,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0",
        ],
    );
    let (_flow, _socket, result) = handshake_over_socket(&profile(), server.port);
    let failure = result.expect_err("a CBC-only P-CSCF must be refused");
    assert_eq!(
        failure.kind,
        TlsFailureKind::NoCommonCipherSuite,
        "{failure}"
    );
    assert!(failure.is_permanent());
    assert!(
        failure.to_string().contains("no common cipher suite"),
        "{failure}"
    );
    // OpenSSL found nothing it accepts in the AEAD-only offer and said so on the wire.
    assert_eq!(
        failure.alert_received,
        Some(AlertDescription::HandshakeFailure)
    );
    server
        .wait_for_line(
            &[">>>", "Alert", "handshake_failure"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| {
            panic!(
                "s_server trace shows no handshake_failure alert:\n{}",
                server.log()
            )
        });
}

#[test]
fn a_modern_openssl_pcscf_is_accepted_on_both_versions() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    for (flag, version) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let server = OpensslServer::start(&cert, &key, &[flag]);
        let (flow, _socket, result) = handshake_over_socket(&profile(), server.port);
        result.unwrap_or_else(|e| panic!("{flag}: {e}\n{}", server.log()));
        assert_eq!(flow.details().unwrap().version, version);
    }
}
