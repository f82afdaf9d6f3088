//! O.4.1 / O.4.2 renegotiation against a real OpenSSL `s_server` (the only peer here that can
//! send a TLS 1.2 HelloRequest). rustls never renegotiates: it answers with a warning
//! no_renegotiation (RFC 5246 §7.4.1.1, RFC 5746 §4.2). If the P-CSCF then aborts, the flow
//! is lost, which the engine turns into a new registration (see `engine_registration.rs`,
//! `loss_while_registered_means_a_new_client_hello_at_once`, whose TLS case is this path).

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use imstls::_internal_test_exports::tls::{Closure, TlsProfile};
use imstls::{AlertDescription, TlsFailureKind, TlsPhase};
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

#[test]
fn a_hello_request_is_refused_with_no_renegotiation_and_an_abort_is_a_lost_flow() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let mut server = OpensslServer::start(&cert, &key, &["-tls1_2"]);
    let (mut flow, mut socket, result) = handshake_over_socket(&profile(), server.port);
    result.unwrap();
    assert_eq!(flow.details().unwrap().version, "TLSv1.2");

    // s_server's interactive "r": SSL_renegotiate, which sends a HelloRequest.
    server.command("r\n");
    let mut buf = [0u8; 4096];
    let mut outcome = None;
    for _ in 0..20 {
        match socket.read(&mut buf) {
            Ok(0) => {
                outcome = Some(match flow.receive_eof() {
                    Closure::Failed(f) => Err(f),
                    Closure::Clean => Ok(()),
                });
                break;
            }
            Ok(n) => {
                let r = flow.receive(&buf[..n]);
                if let Some(out) = flow.take_transmit() {
                    let _ = socket.write_all(&out);
                }
                if r.is_err() {
                    outcome = Some(r);
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // rustls's refusal is on the wire, as a warning.
    server
        .wait_for_line(
            &["<<<", "Alert", "warning no_renegotiation"],
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| {
            panic!(
                "no no_renegotiation warning in the trace:\n{}",
                server.log()
            )
        });
    // OpenSSL 3 answers the refusal by aborting: for the UE the established flow is gone,
    // which the engine handles as a connection loss (O.4.1: register again).
    let failure = outcome
        .expect("the P-CSCF aborted the connection")
        .expect_err("an abort is a failure of the flow");
    assert_eq!(failure.phase, TlsPhase::Established);
    assert!(
        matches!(
            failure.kind,
            TlsFailureKind::PeerAlert | TlsFailureKind::UnexpectedEof
        ),
        "{failure}"
    );
    if failure.kind == TlsFailureKind::PeerAlert {
        assert_eq!(
            failure.alert_received,
            Some(AlertDescription::HandshakeFailure)
        );
    }
}

#[test]
fn a_tls13_key_update_from_the_pcscf_keeps_the_flow_working() {
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let mut server = OpensslServer::start(&cert, &key, &["-tls1_3"]);
    let (mut flow, mut socket, result) = handshake_over_socket(&profile(), server.port);
    result.unwrap();
    // s_server's "k": KeyUpdate (update_not_requested), then a line of data under new keys.
    // s_server takes one stdin read as one command: keep the two apart.
    server.command("k\n");
    std::thread::sleep(Duration::from_millis(300));
    server.command("hello after key update\n");
    let mut buf = [0u8; 4096];
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("hello after key update") {
        let n = socket
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e}: {}", server.log()));
        assert!(n > 0, "connection closed: {}", server.log());
        flow.receive(&buf[..n]).unwrap();
        received.extend_from_slice(&flow.take_plaintext());
    }
    server
        .wait_for_line(&[">>>", "KeyUpdate"], Duration::from_secs(5))
        .unwrap_or_else(|| panic!("s_server sent no KeyUpdate:\n{}", server.log()));
    // The UE can also update its own keys (its rekey input) and keep talking.
    flow.rekey().unwrap();
    flow.send(b"reply\r\n").unwrap();
    socket.write_all(&flow.take_transmit().unwrap()).unwrap();
    server
        .wait_for_line(&["reply"], Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "s_server did not read data after our KeyUpdate:\n{}",
                server.log()
            )
        });
}
