//! RFC 7627 extended master secret on TLS 1.2, against a real OpenSSL `s_server` whose EMS
//! support is switched off: imstls refuses the handshake with a clear error and puts a fatal
//! handshake_failure alert on the wire, read from OpenSSL's own trace.

mod support;

use std::time::Duration;

use imstls::_internal_test_exports::tls::TlsProfile;
use imstls::AlertDescription;
use imstls_testkit::CertKind;
use support::openssl::{handshake_over_socket, pem_files, tempdir::TempDir, OpensslServer};
use support::{base_config, pki};

fn profile() -> TlsProfile {
    TlsProfile::new(
        &base_config(&pki()).build().unwrap(),
        std::time::Instant::now(),
    )
    .unwrap()
}

/// An OpenSSL configuration that turns EMS off (s_server has no command-line switch for it).
fn no_ems_config(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path().join("no-ems.cnf");
    std::fs::write(
        &path,
        "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n\
         [tls]\nOptions = -ExtendedMasterSecret\n",
    )
    .unwrap();
    path
}

#[test]
fn a_tls12_pcscf_without_extended_master_secret_is_refused() {
    let (dir, cert, key) = pem_files(CertKind::Good);
    let config = no_ems_config(&dir);
    let server = OpensslServer::start_with_config(&cert, &key, &["-tls1_2"], &config);
    let (_flow, _socket, result) = handshake_over_socket(&profile(), server.port);
    let failure = match result {
        Ok(()) => panic!(
            "a TLS 1.2 handshake without the extended master secret was accepted\n{}",
            server.log()
        ),
        Err(failure) => failure,
    };
    assert_eq!(
        failure.kind.code(),
        "extended_master_secret_required",
        "{failure}"
    );
    assert!(failure.is_permanent(), "{failure}");
    assert!(
        failure.to_string().contains("extended master secret"),
        "clear message: {failure}"
    );
    assert_eq!(failure.alert_sent, Some(AlertDescription::HandshakeFailure));
    // The peer's own trace: its ServerHello carried no extended_master_secret extension and
    // the alert arrived.
    server
        .wait_for_line(
            &["<<<", "Alert", "fatal handshake_failure"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("s_server saw no handshake_failure alert:\n{}", server.log()));
}

#[test]
fn the_same_pcscf_with_extended_master_secret_is_accepted() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = OpensslServer::start(&cert, &key, &["-tls1_2"]);
    let (flow, _socket, result) = handshake_over_socket(&profile(), server.port);
    result.unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(flow.details().unwrap().version, "TLSv1.2");
}
