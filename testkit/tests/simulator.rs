//! The socket simulator against a plain rustls client on 127.0.0.1 and [::1].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls_testkit::sip::{Frame, Framer, SipMessage};
use imstls_testkit::tls::client_config;
use imstls_testkit::{
    CertKind, Fault, Observation, SimConfig, Simulator, TlsVersions, Ua, UaConfig, UaOutcome,
    DEFAULT_IMPU,
};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ProtocolVersion, StreamOwned};

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    tls: StreamOwned<ClientConnection, TcpStream>,
    framer: Framer,
}

impl Client {
    fn connect(sim: &Simulator, config: Arc<ClientConfig>) -> Client {
        let tcp = TcpStream::connect(sim.addr()).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        let name = ServerName::try_from(sim.pki().server_name().to_owned()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        Client {
            tls: StreamOwned::new(conn, tcp),
            framer: Framer::new(),
        }
    }

    fn handshake(&mut self) -> Result<(), io::Error> {
        while self.tls.conn.is_handshaking() {
            self.tls.conn.complete_io(&mut self.tls.sock)?;
        }
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next frame, or the read error / EOF that came instead.
    fn frame(&mut self) -> io::Result<Frame> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.framer.next_frame().unwrap() {
                return Ok(frame);
            }
            match self.tls.read(&mut buf)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.framer.push(&buf[..n]),
            }
        }
    }

    fn message(&mut self) -> SipMessage {
        loop {
            if let Frame::Message(m) = self.frame().unwrap() {
                return SipMessage::parse(&m).unwrap();
            }
        }
    }

    fn set_read_timeout(&self, timeout: Duration) {
        self.tls.sock.set_read_timeout(Some(timeout)).unwrap();
    }
}

fn ua_for(client: &Client) -> Ua {
    Ua::new(UaConfig {
        local_addr: client.tls.sock.local_addr().unwrap(),
        ..UaConfig::default()
    })
}

fn register(client: &mut Client, ua: &mut Ua) -> UaOutcome {
    client.send(&ua.register_request(None));
    let challenge = client.message();
    assert_eq!(
        ua.handle_response(&challenge),
        UaOutcome::Challenged { stale: false }
    );
    client.send(&ua.next_register());
    let answer = client.message();
    ua.handle_response(&answer)
}

fn start(config: SimConfig) -> Simulator {
    Simulator::start(config).unwrap()
}

fn client_cfg(sim: &Simulator) -> Arc<ClientConfig> {
    client_config(sim.pki(), TlsVersions::Both).unwrap()
}

#[test]
fn registers_over_ipv4_and_ipv6_loopback() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let bind: SocketAddr = bind.parse().unwrap();
        let sim = match Simulator::start(SimConfig {
            bind,
            ..SimConfig::default()
        }) {
            Ok(sim) => sim,
            Err(e) if bind.is_ipv6() && e.kind() == io::ErrorKind::AddrNotAvailable => {
                eprintln!("skipping [::1]: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(sim.addr().ip(), bind.ip());
        let mut client = Client::connect(&sim, client_cfg(&sim));
        client.handshake().unwrap();
        let mut ua = ua_for(&client);
        assert!(matches!(
            register(&mut client, &mut ua),
            UaOutcome::Registered { expires: 3600, .. }
        ));
        assert!(sim.registrar().is_registered(DEFAULT_IMPU));
        let done = sim
            .wait_for(WAIT, |o| matches!(o, Observation::HandshakeDone { .. }))
            .unwrap();
        assert!(matches!(done, Observation::HandshakeDone {
            version: ProtocolVersion::TLSv1_3, resumed: false, sni: Some(ref s), ..
        } if s == "pcscf.ims.test"));
        sim.wait_for(WAIT, |o| {
            matches!(
                o,
                Observation::RegisterSeen {
                    authorized: true,
                    first_on_connection: false,
                    ..
                }
            )
        })
        .unwrap();
        assert!(sim
            .wait_for(WAIT, |o| *o == Observation::ResponseSent(200))
            .is_some());
        assert_eq!(sim.connection_count(), 1);
        sim.shutdown();
    }
}

#[test]
fn close_connections_sends_close_notify_then_fin() {
    let sim = start(SimConfig::default());
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    sim.close_connections();
    let err = client.frame().unwrap_err();
    assert_eq!(
        err.kind(),
        io::ErrorKind::UnexpectedEof,
        "clean close_notify gives Ok(0)"
    );
    assert!(client
        .tls
        .conn
        .process_new_packets()
        .unwrap()
        .peer_has_closed());
    sim.wait_for(WAIT, |o| *o == Observation::CloseNotifySent)
        .unwrap();
}

#[test]
fn kill_connections_resets_them() {
    let sim = start(SimConfig::default());
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    sim.wait_for(WAIT, |o| matches!(o, Observation::HandshakeDone { .. }))
        .unwrap();
    sim.kill_connections();
    sim.wait_for(WAIT, |o| *o == Observation::ResetSent)
        .unwrap();
    let err = client.frame().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!(sim.open_connections(), 0);
}

#[test]
fn client_certificate_request_is_answered_empty() {
    let sim = start(SimConfig {
        request_client_cert: true,
        ..SimConfig::default()
    });
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    client.send(b"\r\n\r\n");
    assert_eq!(client.frame().unwrap(), Frame::Pong);
    sim.wait_for(WAIT, |o| {
        *o == Observation::ClientCertificateSent { empty: true }
    })
    .unwrap();
}

#[test]
fn second_connection_resumes_and_a_changed_certificate_does_not() {
    let sim = start(SimConfig::default());
    let config = client_cfg(&sim);
    for _ in 0..2 {
        let mut client = Client::connect(&sim, config.clone());
        client.handshake().unwrap();
        client.send(b"\r\n\r\n");
        assert_eq!(client.frame().unwrap(), Frame::Pong); // tickets have arrived by now
    }
    let resumed = sim
        .wait_for_count(WAIT, 2, |o| matches!(o, Observation::HandshakeDone { .. }))
        .unwrap();
    assert!(matches!(
        resumed[0].1,
        Observation::HandshakeDone { resumed: false, .. }
    ));
    assert!(matches!(
        resumed[1].1,
        Observation::HandshakeDone { resumed: true, .. }
    ));

    sim.set_cert(CertKind::Expired);
    let mut client = Client::connect(&sim, config);
    assert!(client.handshake().is_err());
    let (conn, _) = sim
        .wait_for_entry(WAIT, |_, o| matches!(o, Observation::AlertReceived { .. }))
        .unwrap();
    assert_eq!(conn, 3);
    assert!(sim.observations().contains(&(
        3,
        Observation::AlertReceived {
            description: AlertDescription::CertificateExpired
        }
    )));
}

#[test]
fn terminating_requests_reach_open_connections() {
    let sim = start(SimConfig::default());
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    let mut ua = ua_for(&client);
    register(&mut client, &mut ua);
    sim.send_to_all(
        b"MESSAGE sip:alice@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bKm\r\n\
          From: <sip:bob@ims.test>;tag=b\r\nTo: <sip:alice@ims.test>\r\nCall-ID: m1\r\n\
          CSeq: 1 MESSAGE\r\nContent-Length: 5\r\n\r\nhello",
    );
    let msg = client.message();
    assert_eq!(msg.method(), Some("MESSAGE"));
    client.send(&ua.answer(&msg, 200));
    sim.wait_for(WAIT, |o| *o == Observation::ResponseReceived(200))
        .unwrap();
    sim.ping_all();
    assert_eq!(client.frame().unwrap(), Frame::Ping);
}

#[test]
fn close_and_reset_after_messages() {
    for (fault, expected) in [
        (Fault::CloseAfterMessages(1), io::ErrorKind::UnexpectedEof),
        (Fault::ResetAfterMessages(1), io::ErrorKind::ConnectionReset),
    ] {
        let sim = start(SimConfig {
            fault: fault.clone(),
            ..SimConfig::default()
        });
        let mut client = Client::connect(&sim, client_cfg(&sim));
        client.handshake().unwrap();
        let mut ua = ua_for(&client);
        client.send(&ua.register_request(None));
        assert_eq!(client.message().status(), Some(401));
        let err = client.frame().unwrap_err();
        assert_eq!(err.kind(), expected, "{fault:?}: {err}");
    }
}

#[test]
fn silent_after_messages_answers_nothing_more() {
    let sim = start(SimConfig::default());
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    let mut ua = ua_for(&client);
    assert!(matches!(
        register(&mut client, &mut ua),
        UaOutcome::Registered { .. }
    ));
    sim.set_fault(Fault::SilentAfterMessages(0));
    client.send(b"\r\n\r\n");
    sim.wait_for(WAIT, |o| *o == Observation::PingReceived)
        .unwrap();
    client.set_read_timeout(Duration::from_millis(200));
    let err = client.frame().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(!sim
        .observations()
        .iter()
        .any(|(_, o)| *o == Observation::PongSent));
}

#[test]
fn delayed_responses_arrive_late() {
    let sim = start(SimConfig {
        fault: Fault::DelayResponses(Duration::from_millis(300)),
        ..SimConfig::default()
    });
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    let started = Instant::now();
    client.send(b"\r\n\r\n");
    assert_eq!(client.frame().unwrap(), Frame::Pong);
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn reset_on_accept_and_silent_handshake() {
    let sim = start(SimConfig {
        fault: Fault::ResetOnAccept,
        ..SimConfig::default()
    });
    let mut client = Client::connect(&sim, client_cfg(&sim));
    assert!(client.handshake().is_err());

    sim.set_fault(Fault::SilentHandshake);
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.set_read_timeout(Duration::from_millis(200));
    let err = client.handshake().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );

    // Shutting down with a connection still open must not hang.
    let started = Instant::now();
    sim.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn tls12_only_simulator_and_registrar_knobs() {
    let sim = start(SimConfig {
        tls_versions: TlsVersions::Tls12Only,
        ..SimConfig::default()
    });
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    assert_eq!(
        client.tls.conn.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    sim.registrar().set_reject_all_with(Some(503));
    let mut ua = ua_for(&client);
    client.send(&ua.register_request(None));
    let resp = client.message();
    assert!(matches!(
        ua.handle_response(&resp),
        UaOutcome::Failed { status: 503, .. }
    ));
}

#[test]
fn dropping_the_simulator_closes_open_connections() {
    let sim = start(SimConfig::default());
    let mut client = Client::connect(&sim, client_cfg(&sim));
    client.handshake().unwrap();
    let mut ua = ua_for(&client);
    register(&mut client, &mut ua);
    let started = Instant::now();
    drop(sim);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(client.frame().is_err());
}
