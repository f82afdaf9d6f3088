//! Regression tests for library bugs the negative matrix found (each also a matrix row).

mod support;

use std::time::Duration;

use imstls::_internal_test_exports::tls::TlsProfile;
use imstls::{AlertDescription, TlsFailureKind};
use imstls_testkit::CertKind;
use support::openssl::{handshake_over_socket, pem_files, OpensslServer};
use support::{base_config, pki};

/// Matrix row `client-cert-Verify-tls12`. A TLS 1.2 P-CSCF that insists on a client
/// certificate answers the UE's empty Certificate with a fatal handshake_failure (OpenSSL
/// `-Verify`). That was reported as a passing `PeerAlert` and retried after a back-off for
/// ever, while the same P-CSCF on TLS 1.3 (certificate_required) stopped the UE: both are the
/// O.2.1 "P-CSCF requested a client certificate" failure, which retrying cannot fix.
#[test]
fn a_tls12_pcscf_demanding_a_client_certificate_is_a_client_certificate_failure() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = OpensslServer::start(&cert, &key, &["-Verify", "1", "-tls1_2"]);
    let profile = TlsProfile::new(
        &base_config(&pki()).build().unwrap(),
        std::time::Instant::now(),
    )
    .unwrap();
    let (_flow, _socket, result) = handshake_over_socket(&profile, server.port);
    let failure = result.expect_err("the P-CSCF demands a certificate");
    assert_eq!(
        failure.alert_received,
        Some(AlertDescription::HandshakeFailure)
    );
    assert_eq!(
        failure.kind,
        TlsFailureKind::ClientCertificateRequested,
        "{failure}"
    );
    assert!(failure.is_permanent());
    server
        .wait_for_line(
            &[">>>", "Alert", "fatal handshake_failure"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no handshake_failure in the trace:\n{}", server.log()));
}
