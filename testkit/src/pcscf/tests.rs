//! PcscfCore driven in memory against a rustls client trusting the test root.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ProtocolVersion};

use super::*;
use crate::observation::AlertLevel;
use crate::pki::{CertKind, TestPki};
use crate::registrar::RegistrarConfig;
use crate::sip::{Frame, Framer};
use crate::tls::{client_config, server_config, TlsVersions};
use crate::ua::{Ua, UaConfig, UaOutcome};

/// A UE-side rustls client plus a SIP framer for what it receives.
struct Ue {
    tls: ClientConnection,
    framer: Framer,
    error: Option<rustls::Error>,
}

impl Ue {
    fn new(config: Arc<ClientConfig>, name: &str) -> Ue {
        Ue {
            tls: ClientConnection::new(config, ServerName::try_from(name.to_owned()).unwrap())
                .unwrap(),
            framer: Framer::new(),
            error: None,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.tls.writer().write_all(bytes).unwrap();
    }

    fn frames(&mut self) -> Vec<Frame> {
        std::iter::from_fn(|| self.framer.next_frame().unwrap()).collect()
    }

    fn messages(&mut self) -> Vec<SipMessage> {
        self.frames()
            .into_iter()
            .filter_map(|f| match f {
                Frame::Message(m) => Some(SipMessage::parse(&m).unwrap()),
                _ => None,
            })
            .collect()
    }
}

/// Moves bytes both ways until neither side has anything to say.
fn pump(ue: &mut Ue, core: &mut PcscfCore) {
    for _ in 0..50 {
        let mut to_server = Vec::new();
        while ue.tls.wants_write() {
            ue.tls.write_tls(&mut to_server).unwrap();
        }
        if !to_server.is_empty() {
            core.receive(&to_server);
        }
        let to_client = core.take_output();
        let mut rest = &to_client[..];
        while !rest.is_empty() && ue.error.is_none() {
            if ue.tls.read_tls(&mut rest).unwrap() == 0 {
                break;
            }
            match ue.tls.process_new_packets() {
                Ok(state) => {
                    let mut buf = vec![0; state.plaintext_bytes_to_read()];
                    ue.tls.reader().read_exact(&mut buf).unwrap();
                    ue.framer.push(&buf);
                }
                Err(e) => ue.error = Some(e),
            }
        }
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
    }
    panic!("pump did not settle");
}

struct Setup {
    pki: TestPki,
    registrar: SharedRegistrar,
    next_flow: FlowId,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            pki: TestPki::generate("pcscf.ims.test"),
            registrar: SharedRegistrar::new(RegistrarConfig::default()),
            next_flow: 0,
        }
    }

    fn core(&mut self, config: &Arc<ServerConfig>) -> PcscfCore {
        self.next_flow += 1;
        PcscfCore::new(config.clone(), self.registrar.clone(), self.next_flow).unwrap()
    }
}

fn register(ue: &mut Ue, core: &mut PcscfCore, ua: &mut Ua) -> UaOutcome {
    ue.send(&ua.register_request(None));
    pump(ue, core);
    let challenge = ue.messages().pop().unwrap();
    assert_eq!(
        ua.handle_response(&challenge),
        UaOutcome::Challenged { stale: false }
    );
    ue.send(&ua.next_register());
    pump(ue, core);
    let resp = ue.messages().pop().unwrap();
    ua.handle_response(&resp)
}

#[test]
fn full_handshake_and_registration_over_tls13_and_tls12() {
    for (versions, expected) in [
        (TlsVersions::Tls13Only, ProtocolVersion::TLSv1_3),
        (TlsVersions::Tls12Only, ProtocolVersion::TLSv1_2),
    ] {
        let mut s = Setup::new();
        let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
        let mut core = s.core(&server);
        let mut ue = Ue::new(client_config(&s.pki, versions).unwrap(), "pcscf.ims.test");
        pump(&mut ue, &mut core);
        assert!(ue.error.is_none(), "{:?}", ue.error);
        assert!(!core.is_handshaking());
        assert_eq!(core.handshake_kind(), Some(HandshakeKind::Full));
        let obs = core.observations().to_vec();
        assert!(
            matches!(&obs[0], Observation::HandshakeDone { version, resumed: false, sni: Some(sni), .. }
                if *version == expected && sni == "pcscf.ims.test"),
            "{obs:?}"
        );
        assert!(matches!(
            obs[1],
            Observation::KeyExchange { group: Some(_) }
        ));

        let mut ua = Ua::new(UaConfig::default());
        assert!(matches!(
            register(&mut ue, &mut core, &mut ua),
            UaOutcome::Registered { .. }
        ));
        let registers: Vec<_> = core
            .observations()
            .iter()
            .filter_map(|o| match o {
                Observation::RegisterSeen {
                    authorized,
                    first_on_connection,
                    has_outbound,
                    ..
                } => Some((*authorized, *first_on_connection, *has_outbound)),
                _ => None,
            })
            .collect();
        assert_eq!(registers, [(false, true, true), (true, false, true)]);
        assert!(core
            .observations()
            .contains(&Observation::ResponseSent(401)));
        assert!(core
            .observations()
            .contains(&Observation::ResponseSent(200)));
        assert!(s.registrar.is_registered(crate::registrar::DEFAULT_IMPU));
        drop(core);
        assert!(!s.registrar.is_registered(crate::registrar::DEFAULT_IMPU));
    }
}

#[test]
fn a_second_connection_resumes_with_the_same_server_config() {
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut s = Setup::new();
        let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
        let client = client_config(&s.pki, versions).unwrap();
        for expect_resumed in [false, true] {
            let mut core = s.core(&server);
            let mut ue = Ue::new(client.clone(), "pcscf.ims.test");
            pump(&mut ue, &mut core);
            // Some application data so that TLS 1.3 tickets reach the client.
            ue.send(b"\r\n\r\n");
            pump(&mut ue, &mut core);
            assert!(ue.error.is_none(), "{versions:?}: {:?}", ue.error);
            assert!(
                core.observations().iter().any(|o| matches!(o,
                    Observation::HandshakeDone { resumed, .. } if *resumed == expect_resumed)),
                "{versions:?}: {:?}",
                core.observations()
            );
            let expected_kind = if expect_resumed {
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            assert_eq!(core.handshake_kind(), Some(expected_kind));
        }
    }
}

#[test]
fn the_ues_fatal_alert_is_observed_for_bad_certificates() {
    let cases = [
        (CertKind::Expired, AlertDescription::CertificateExpired),
        (CertKind::NotYetValid, AlertDescription::CertificateExpired),
        (CertKind::WrongName, AlertDescription::BadCertificate),
        (CertKind::UnknownCa, AlertDescription::UnknownCA),
        (
            CertKind::ClientAuthEkuOnly,
            AlertDescription::UnsupportedCertificate,
        ),
    ];
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut s = Setup::new();
        for (kind, alert) in cases {
            let server = server_config(&s.pki, kind, TlsVersions::Both, false).unwrap();
            let mut core = s.core(&server);
            let mut ue = Ue::new(client_config(&s.pki, versions).unwrap(), "pcscf.ims.test");
            pump(&mut ue, &mut core);
            assert!(ue.error.is_some(), "{kind:?}");
            assert!(core.is_closed());
            // TLS 1.2 sends the alert in a plaintext record, whose level the core decodes;
            // TLS 1.3 encrypts it under the handshake keys: only rustls's report shows it.
            let mut expected = Vec::new();
            if versions == TlsVersions::Tls12Only {
                expected.push(Observation::AlertRecordReceived {
                    level: AlertLevel::Fatal,
                    description: alert,
                });
            }
            expected.push(Observation::AlertReceived { description: alert });
            assert_eq!(core.observations(), expected, "{kind:?} {versions:?}");
        }
    }
}

#[test]
fn the_servers_own_fatal_alert_is_flushed_after_garbage() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut core = s.core(&server);
    // A ClientHello record whose body is 4 bytes of nonsense.
    core.receive(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\xff\xff\xff\xff");
    assert!(
        matches!(core.observations(), [Observation::TlsError(_)]),
        "{:?}",
        core.observations()
    );
    let out = core.take_output();
    assert_eq!(out.first(), Some(&0x15), "an alert record is sent: {out:?}");
    // The core's own trace shows the alert it wrote, with the level byte from the record.
    assert!(
        matches!(
            core.observations(),
            [
                Observation::TlsError(_),
                Observation::AlertRecordSent {
                    level: AlertLevel::Fatal,
                    description: AlertDescription::DecodeError,
                }
            ]
        ),
        "{:?}",
        core.observations()
    );
    assert!(core.is_closed());
    core.receive(b"more");
    assert_eq!(core.observations().len(), 2);
}

#[test]
fn the_record_scanner_finds_alerts_across_any_chunking() {
    // A handshake record, a plaintext warning alert, an encrypted-looking alert (TLS 1.2,
    // 26 bytes), then a plaintext fatal alert; fed one byte at a time and all at once.
    let mut stream = vec![22, 3, 3, 0, 3, 1, 2, 3];
    stream.extend_from_slice(&[21, 3, 3, 0, 2, 1, 100]);
    stream.extend_from_slice(&[21, 3, 3, 0, 26]);
    stream.extend_from_slice(&[0xee; 26]);
    stream.extend_from_slice(&[21, 3, 3, 0, 2, 2, 20]);
    let expected = vec![
        RecordSeen::PlaintextAlert(AlertLevel::Warning, AlertDescription::NoRenegotiation),
        RecordSeen::EncryptedAlert,
        RecordSeen::PlaintextAlert(AlertLevel::Fatal, AlertDescription::BadRecordMac),
    ];
    assert_eq!(RecordScanner::default().feed(&stream), expected);
    let mut scanner = RecordScanner::default();
    let bytewise: Vec<RecordSeen> = stream.iter().flat_map(|b| scanner.feed(&[*b])).collect();
    assert_eq!(bytewise, expected);
    // Not TLS: the scanner stops rather than invent records from text.
    let mut scanner = RecordScanner::default();
    assert!(scanner
        .feed(b"HTTP/1.1 400 \x15\x03\x03\x00\x02\x02\x14")
        .is_empty());
}

#[test]
fn keepalives_terminating_requests_and_responses() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut core = s.core(&server);
    let mut ue = Ue::new(
        client_config(&s.pki, TlsVersions::Both).unwrap(),
        "pcscf.ims.test",
    );
    pump(&mut ue, &mut core);
    let mut ua = Ua::new(UaConfig::default());
    register(&mut ue, &mut core, &mut ua);

    ue.send(b"\r\n\r\n");
    pump(&mut ue, &mut core);
    assert_eq!(ue.frames(), [Frame::Pong]);
    core.send_ping();
    pump(&mut ue, &mut core);
    assert_eq!(ue.frames(), [Frame::Ping]);
    ue.send(b"\r\n");

    core.send_request(b"MESSAGE sip:alice@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS pcscf;branch=z9hG4bKx\r\nFrom: <sip:bob@ims.test>;tag=b\r\nTo: <sip:alice@ims.test>\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi");
    pump(&mut ue, &mut core);
    let msg = ue.messages().pop().unwrap();
    assert_eq!(msg.body, b"hi");
    ue.send(&ua.answer(&msg, 200));
    ue.send(&ua.request("OPTIONS", "sip:pcscf.ims.test", b""));
    pump(&mut ue, &mut core);
    assert_eq!(ue.messages().pop().unwrap().status(), Some(200));

    let obs = core.observations();
    for expected in [
        Observation::PingReceived,
        Observation::PongSent,
        Observation::PingSent,
        Observation::PongReceived,
        Observation::RequestSent {
            method: "MESSAGE".into(),
        },
        Observation::ResponseReceived(200),
        Observation::RequestSeen {
            method: "OPTIONS".into(),
        },
    ] {
        assert!(obs.contains(&expected), "{expected:?} missing from {obs:?}");
    }

    core.close_notify();
    pump(&mut ue, &mut core);
    assert!(core.is_closed());
    assert!(ue.tls.process_new_packets().unwrap().peer_has_closed());
}

#[test]
fn a_requested_client_certificate_is_reported_empty() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, true).unwrap();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut core = s.core(&server);
        core.set_client_cert_requested(true);
        let mut ue = Ue::new(client_config(&s.pki, versions).unwrap(), "pcscf.ims.test");
        pump(&mut ue, &mut core);
        assert!(ue.error.is_none());
        assert!(
            core.observations()
                .contains(&Observation::ClientCertificateSent { empty: true }),
            "{:?}",
            core.observations()
        );
    }
}

#[test]
fn past_the_answer_limit_nothing_is_answered() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut core = s.core(&server);
    let mut ue = Ue::new(
        client_config(&s.pki, TlsVersions::Both).unwrap(),
        "pcscf.ims.test",
    );
    pump(&mut ue, &mut core);
    core.set_answer_limit(Some(1));
    let mut ua = Ua::new(UaConfig::default());
    ue.send(&ua.register_request(None));
    ue.send(b"\r\n\r\n");
    ue.send(&ua.register_request(None));
    pump(&mut ue, &mut core);
    assert_eq!(ue.messages().len(), 1);
    assert_eq!(core.answered(), 1);
    let obs = core.observations();
    assert!(obs.contains(&Observation::PingReceived));
    assert!(!obs.contains(&Observation::PongSent));
    assert!(obs.contains(&Observation::RequestIgnored {
        method: "REGISTER".into()
    }));
}

#[test]
fn a_framing_error_closes_the_connection() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut core = s.core(&server);
    let mut ue = Ue::new(
        client_config(&s.pki, TlsVersions::Both).unwrap(),
        "pcscf.ims.test",
    );
    pump(&mut ue, &mut core);
    ue.send(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
    pump(&mut ue, &mut core);
    assert!(matches!(
        core.observations().last(),
        Some(Observation::CloseNotifySent)
    ));
    assert!(core.is_closed());
}

#[test]
fn the_factory_shares_registrar_and_resumes_sessions() {
    let pki = Arc::new(TestPki::generate("pcscf.ims.test"));
    let mut factory = PcscfFactory::new(pki.clone());
    let client = client_config(&pki, TlsVersions::Both).unwrap();
    let mut ua = Ua::new(UaConfig::default());

    let mut first = factory.connection().unwrap();
    let mut ue = Ue::new(client.clone(), "pcscf.ims.test");
    pump(&mut ue, &mut first);
    assert!(matches!(
        register(&mut ue, &mut first, &mut ua),
        UaOutcome::Registered { .. }
    ));
    assert!(factory
        .registrar()
        .is_registered(crate::registrar::DEFAULT_IMPU));
    drop(first);

    let mut second = factory.connection().unwrap();
    assert_eq!(second.flow(), 2);
    let mut ue = Ue::new(client.clone(), "pcscf.ims.test");
    pump(&mut ue, &mut second);
    assert_eq!(second.handshake_kind(), Some(HandshakeKind::Resumed));

    factory.set_cert(CertKind::WrongName);
    let mut third = factory.connection().unwrap();
    let mut ue = Ue::new(client, "pcscf.ims.test");
    pump(&mut ue, &mut third);
    assert_eq!(
        third.observations(),
        [Observation::AlertReceived {
            description: AlertDescription::BadCertificate
        }]
    );
}

#[test]
fn the_end_of_the_stream_reports_the_bytes_each_way() {
    let mut s = Setup::new();
    let server = server_config(&s.pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut core = s.core(&server);
    let mut ue = Ue::new(
        client_config(&s.pki, TlsVersions::Both).unwrap(),
        "pcscf.ims.test",
    );
    // The bytes are counted here, independently of the core's own counters.
    let (mut to_core, mut to_ue) = (0, 0);
    for _ in 0..10 {
        let mut out = Vec::new();
        while ue.tls.wants_write() {
            ue.tls.write_tls(&mut out).unwrap();
        }
        to_core += out.len();
        core.receive(&out);
        let back = core.take_output();
        to_ue += back.len();
        let mut rest = &back[..];
        while !rest.is_empty() {
            ue.tls.read_tls(&mut rest).unwrap();
            ue.tls.process_new_packets().unwrap();
        }
    }
    assert!(!ue.tls.is_handshaking());
    core.transport_eof();
    let traffic = core.observations().iter().find_map(|o| match o {
        Observation::Traffic { received, sent } => Some((*received, *sent)),
        _ => None,
    });
    assert_eq!(traffic, Some((to_core, to_ue)));
}
