//! The Annex O TLS profile, proven against a real rustls server (the simulated P-CSCF) in
//! memory: certificate failures with the alert the server actually received, both TLS
//! versions, the ClientHello on the wire, session lifetime and purge, CertificateRequest.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::_internal_test_exports::tls::{Closure, TlsFlow, TlsProfile};
use imstls::{
    AlertDescription, Candidate, CertificateFailure, CertificateRequestPolicy, TlsFailure,
    TlsFailureKind, TlsVersions as UeVersions, TrustSource, UeConfigBuilder,
};
use imstls_testkit::observation::Observation;
use imstls_testkit::pcscf::PcscfCore;
use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
use imstls_testkit::tls::{server_config, TlsVersions};
use imstls_testkit::CertKind;
use rustls::ServerConfig;
use support::{base_config, client_hello, pki, SERVER_NAME};

struct Pair {
    flow: TlsFlow,
    core: PcscfCore,
    first_flight: Vec<u8>,
}

fn profile(builder: UeConfigBuilder) -> TlsProfile {
    TlsProfile::new(&builder.build().unwrap(), Instant::now()).unwrap()
}

fn candidate() -> Candidate {
    format!("{SERVER_NAME}:5061").parse().unwrap()
}

/// Runs a handshake in memory until it completes or fails; returns the UE-side result.
fn handshake(
    profile: &TlsProfile,
    candidate: &Candidate,
    server: Arc<ServerConfig>,
) -> (Pair, Result<(), TlsFailure>) {
    let registrar = SharedRegistrar::new(RegistrarConfig::default());
    let mut flow = TlsFlow::connect(profile, candidate).unwrap();
    let mut core = PcscfCore::new(server, registrar, 1).unwrap();
    let first_flight = flow.take_transmit().expect("a ClientHello");
    core.receive(&first_flight);
    let mut result = Ok(());
    for _ in 0..16 {
        let reply = core.take_output();
        if reply.is_empty() {
            break;
        }
        result = flow.receive(&reply);
        // Whatever the UE queued (Finished, or the fatal alert) goes to the server.
        if let Some(out) = flow.take_transmit() {
            core.receive(&out);
        }
        if result.is_err() {
            break;
        }
    }
    (
        Pair {
            flow,
            core,
            first_flight,
        },
        result,
    )
}

fn server(kind: CertKind, versions: TlsVersions) -> Arc<ServerConfig> {
    server_config(&pki(), kind, versions, false).unwrap()
}

fn alert_seen_by_server(core: &PcscfCore) -> Option<AlertDescription> {
    core.observations().iter().find_map(|o| match o {
        Observation::AlertReceived { description } => Some(*description),
        _ => None,
    })
}

fn assert_rejected(
    builder: UeConfigBuilder,
    kind: CertKind,
    versions: TlsVersions,
    expected: fn(&CertificateFailure) -> bool,
    alert: AlertDescription,
) {
    let profile = profile(builder);
    let (pair, result) = handshake(&profile, &candidate(), server(kind, versions));
    let failure = result.expect_err("the certificate must be rejected");
    let reason = failure
        .certificate()
        .unwrap_or_else(|| panic!("{kind:?}: not a certificate failure: {failure}"));
    assert!(
        expected(reason),
        "{kind:?} ({versions:?}): unexpected reason {reason:?}"
    );
    assert_eq!(
        failure.alert_sent,
        Some(alert),
        "{kind:?}: alert imstls reports"
    );
    assert_eq!(
        alert_seen_by_server(&pair.core),
        Some(alert),
        "{kind:?} ({versions:?}): alert the server received; observations {:?}",
        pair.core.observations()
    );
    assert!(pair.flow.is_closed());
    assert!(!pair
        .core
        .observations()
        .iter()
        .any(|o| matches!(o, Observation::HandshakeDone { .. })));
}

#[test]
fn every_certificate_failure_is_rejected_with_its_alert_on_the_wire() {
    use AlertDescription as A;
    use CertificateFailure as F;
    let pki = pki();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let base = || base_config(&pki);
        assert_rejected(
            base(),
            CertKind::Expired,
            versions,
            |r| {
                matches!(
                    r,
                    F::Expired {
                        not_after: Some(_),
                        ..
                    }
                )
            },
            A::CertificateExpired,
        );
        assert_rejected(
            base(),
            CertKind::NotYetValid,
            versions,
            |r| {
                matches!(
                    r,
                    F::NotYetValid {
                        not_before: Some(_),
                        ..
                    }
                )
            },
            A::CertificateExpired,
        );
        assert_rejected(
            base(),
            CertKind::SelfSigned,
            versions,
            |r| *r == F::UnknownIssuer,
            A::UnknownCA,
        );
        assert_rejected(
            base(),
            CertKind::UnknownCa,
            versions,
            |r| *r == F::UnknownIssuer,
            A::UnknownCA,
        );
        assert_rejected(
            base(),
            CertKind::MissingIntermediate,
            versions,
            |r| *r == F::UnknownIssuer,
            A::UnknownCA,
        );
        assert_rejected(
            base(),
            CertKind::ClientAuthEkuOnly,
            versions,
            |r| *r == F::WrongUsage,
            A::UnsupportedCertificate,
        );
        assert_rejected(
            base(),
            CertKind::CaTrueLeaf,
            versions,
            |r| *r == F::CaUsedAsEndEntity,
            A::CertificateUnknown,
        );
        assert_rejected(
            base(),
            CertKind::WrongName,
            versions,
            |r| matches!(r, F::NameMismatch { expected, presented } if expected == SERVER_NAME && presented.iter().any(|p| p.contains("other.ims.test"))),
            A::BadCertificate,
        );
        assert_rejected(
            base(),
            CertKind::UriWithUserPart,
            versions,
            |r| matches!(r, F::NameMismatch { .. }),
            A::BadCertificate,
        );
        // A sip: URI alone is no identity: its host must also be a DNS SAN webpki validated
        // (webpki applies no DNS name constraint to URI names; docs/CONFORMANCE.md).
        assert_rejected(
            base(),
            CertKind::UriSanOnly,
            versions,
            |r| matches!(r, F::NameMismatch { presented, .. } if presented == &["sip:pcscf.ims.test"]),
            A::BadCertificate,
        );
        assert_rejected(
            base(),
            CertKind::CnOnly,
            versions,
            |r| matches!(r, F::NameMismatch { presented, .. } if presented.is_empty()),
            A::BadCertificate,
        );
        assert_rejected(
            base(),
            CertKind::Wildcard,
            versions,
            |r| matches!(r, F::NameMismatch { .. }),
            A::BadCertificate,
        );
        assert_rejected(
            base().crls(TrustSource::Der(pki.crl_der())),
            CertKind::Revoked,
            versions,
            |r| *r == F::Revoked,
            A::CertificateRevoked,
        );
        assert_rejected(
            base().spki_pin(pki.good_spki_sha256_base64()),
            CertKind::OtherKey,
            versions,
            |r| *r == F::PinMismatch,
            A::CertificateUnknown,
        );
    }
}

#[test]
fn accepted_identities_follow_rfc5922() {
    let pki = pki();
    for kind in [CertKind::Good, CertKind::DnsSanOnly] {
        let (pair, result) = handshake(
            &profile(base_config(&pki)),
            &candidate(),
            server(kind, TlsVersions::Both),
        );
        result.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(pair.flow.is_established(), "{kind:?}");
    }
    // Wildcards only when opted in.
    let (_, result) = handshake(
        &profile(base_config(&pki).allow_wildcard_certificates(true)),
        &candidate(),
        server(CertKind::Wildcard, TlsVersions::Both),
    );
    result.unwrap();
    // The pin of the good key passes.
    let (_, result) = handshake(
        &profile(base_config(&pki).spki_pin(pki.good_spki_sha256_base64())),
        &candidate(),
        server(CertKind::Good, TlsVersions::Both),
    );
    result.unwrap();
    // Revocation checking does not reject a good certificate.
    let (_, result) = handshake(
        &profile(base_config(&pki).crls(TrustSource::Pem(pki.crl_pem().into_bytes()))),
        &candidate(),
        server(CertKind::Good, TlsVersions::Both),
    );
    result.unwrap();
}

#[test]
fn a_pcscf_reached_by_ip_is_checked_against_the_configured_fqdn_with_sni() {
    let pki = pki();
    let by_ip: Candidate = "127.0.0.1:5061".parse().unwrap();
    let profile = profile(
        imstls::UeConfig::builder()
            .pcscf("127.0.0.1:5061")
            .server_name(SERVER_NAME)
            .trust_anchors_pem(pki.root_pem()),
    );
    let (pair, result) = handshake(&profile, &by_ip, server(CertKind::Good, TlsVersions::Both));
    result.unwrap();
    assert_eq!(
        client_hello::parse(&pair.first_flight)
            .server_name
            .as_deref(),
        Some(SERVER_NAME)
    );
    assert_eq!(pair.core.sni(), Some(SERVER_NAME));
}

#[test]
fn a_pcscf_reached_by_ip_without_fqdn_needs_an_ip_san_and_sends_no_sni() {
    let pki = pki();
    let by_ip: Candidate = "127.0.0.1:5061".parse().unwrap();
    let profile = profile(
        imstls::UeConfig::builder()
            .pcscf("127.0.0.1")
            .trust_anchors_pem(pki.root_pem()),
    );
    let (pair, result) = handshake(&profile, &by_ip, server(CertKind::IpSan, TlsVersions::Both));
    result.unwrap();
    assert_eq!(client_hello::parse(&pair.first_flight).server_name, None);
    let (_, result) = handshake(&profile, &by_ip, server(CertKind::Good, TlsVersions::Both));
    let failure = result.unwrap_err();
    assert!(
        matches!(failure.certificate(), Some(CertificateFailure::NameMismatch { expected, .. }) if expected == "127.0.0.1")
    );
}

#[test]
fn tls13_and_tls12_both_work_and_report_their_parameters() {
    let pki = pki();
    let (pair, result) = handshake(
        &profile(base_config(&pki)),
        &candidate(),
        server(CertKind::Good, TlsVersions::Tls13Only),
    );
    result.unwrap();
    let details = pair.flow.details().unwrap();
    assert_eq!(details.version, "TLSv1.3");
    assert!(details.cipher_suite.starts_with("TLS13_"));
    assert_eq!(details.key_exchange_group, Some(DEFAULT_FIRST_GROUP));
    assert!(!details.resumed);
    let cert = details.peer_certificate().unwrap();
    assert!(cert
        .subject_alt_names
        .iter()
        .any(|s| s == "URI:sip:pcscf.ims.test"));
    // Debug shows the summary, read on demand, not the certificate's bytes.
    let debug = format!("{details:?}");
    assert!(
        debug.contains("peer_certificate: Some(PeerCertificate {"),
        "{debug}"
    );
    assert!(debug.contains("URI:sip:pcscf.ims.test"), "{debug}");

    let (pair, result) = handshake(
        &profile(base_config(&pki)),
        &candidate(),
        server(CertKind::Good, TlsVersions::Tls12Only),
    );
    result.unwrap();
    let details = pair.flow.details().unwrap();
    assert_eq!(details.version, "TLSv1.2");
    assert!(
        details.cipher_suite.starts_with("TLS_ECDHE_"),
        "{}",
        details.cipher_suite
    );
    assert!(details.cipher_suite.contains("GCM") || details.cipher_suite.contains("CHACHA20"));
}

#[test]
fn tls13_only_profile_refuses_a_tls12_only_server() {
    let pki = pki();
    let (pair, result) = handshake(
        &profile(base_config(&pki).tls_versions(UeVersions::Tls13Only)),
        &candidate(),
        server(CertKind::Good, TlsVersions::Tls12Only),
    );
    let failure = result.unwrap_err();
    assert_eq!(failure.kind, TlsFailureKind::ProtocolVersion, "{failure}");
    assert!(failure.is_permanent());
    assert!(
        failure.alert_received == Some(AlertDescription::ProtocolVersion)
            || alert_seen_by_server(&pair.core) == Some(AlertDescription::ProtocolVersion)
    );
}

#[test]
fn client_hello_offers_only_the_annex_o_profile() {
    let pki = pki();
    let registrar = SharedRegistrar::new(RegistrarConfig::default());
    let _ = registrar;
    for builder in [
        base_config(&pki),
        base_config(&pki).tls_versions(UeVersions::Tls13Only),
    ] {
        let tls13_only = builder.clone().build().unwrap().tls_versions() == UeVersions::Tls13Only;
        let profile = profile(builder);
        let mut flow = TlsFlow::connect(&profile, &candidate()).unwrap();
        let hello = client_hello::parse(&flow.take_transmit().unwrap());
        assert_eq!(
            hello.compression_methods,
            vec![0],
            "only the null compression method"
        );
        assert_eq!(hello.legacy_version, 0x0303);
        let allowed: &[u16] = &[
            0x1301, 0x1302, 0x1303, // TLS 1.3 AEAD
            0xc02b, 0xc02c, 0xcca9, // ECDHE-ECDSA AES-GCM / ChaCha20
            0xc02f, 0xc030, 0xcca8, // ECDHE-RSA AES-GCM / ChaCha20
            0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
        ];
        for suite in &hello.cipher_suites {
            assert!(
                allowed.contains(suite),
                "offered suite {suite:#06x} is outside the profile"
            );
        }
        for forbidden in [
            0x0000u16, 0x0002, 0x0001, 0x003b, 0x000a, 0x002f, 0x0035, 0x009c, 0x0018, 0x001a,
            0x0034, 0xc009, 0xc013,
        ] {
            assert!(
                !hello.cipher_suites.contains(&forbidden),
                "{forbidden:#06x} offered"
            );
        }
        assert!(
            hello.cipher_suites.iter().any(|s| *s != 0x00ff),
            "at least one real suite"
        );
        if tls13_only {
            assert_eq!(hello.supported_versions, vec![0x0304]);
            assert!(hello
                .cipher_suites
                .iter()
                .all(|s| (0x1301..=0x1303).contains(s) || *s == 0x00ff));
        } else {
            assert_eq!(hello.supported_versions, vec![0x0304, 0x0303]);
        }
        assert!(
            !hello.supported_versions.iter().any(|v| *v <= 0x0302),
            "never TLS 1.1 or older"
        );
        assert_eq!(hello.supported_groups, DEFAULT_GROUP_IDS);
        assert_eq!(hello.key_share_groups[0], DEFAULT_GROUP_IDS[0]);
        assert_eq!(hello.server_name.as_deref(), Some(SERVER_NAME));
        assert!(flow.take_transmit().is_none());
    }
}

/// The default groups the ClientHello offers, by crypto provider: with aws-lc-rs the hybrid
/// post-quantum group first, then X25519, P-256, P-384; ring has no post-quantum group.
const DEFAULT_GROUP_IDS: &[u16] = if cfg!(feature = "aws-lc-rs") {
    &[0x11ec, 0x001d, 0x0017, 0x0018]
} else {
    &[0x001d, 0x0017, 0x0018]
};

/// The group a server that supports every group agrees on: the first one offered.
const DEFAULT_FIRST_GROUP: &str = if cfg!(feature = "aws-lc-rs") {
    "X25519MLKEM768"
} else {
    "X25519"
};

fn full_then_resume(profile: &TlsProfile, server: &Arc<ServerConfig>) -> bool {
    let (mut pair, result) = handshake(profile, &candidate(), server.clone());
    result.unwrap();
    // Let the post-handshake tickets reach the client.
    let tickets = pair.core.take_output();
    if !tickets.is_empty() {
        pair.flow.receive(&tickets).unwrap();
    }
    let (pair, result) = handshake(profile, &candidate(), server.clone());
    result.unwrap();
    pair.flow.details().unwrap().resumed
}

#[test]
fn a_session_resumes_within_its_lifetime_only() {
    let pki = pki();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let server = server(CertKind::Good, versions);
        let start = Instant::now();
        let config = base_config(&pki)
            .session_lifetime(Duration::from_secs(3600))
            .build()
            .unwrap();
        let profile = TlsProfile::new(&config, start).unwrap();

        // First connection full, second resumed: within the lifetime.
        assert!(
            !handshake(&profile, &candidate(), server.clone())
                .0
                .flow
                .details()
                .unwrap()
                .resumed
        );
        assert!(
            !profile.sessions().is_empty(),
            "{versions:?}: a session was stored"
        );
        assert!(
            full_then_resume(&profile, &server),
            "{versions:?}: resumed within the lifetime"
        );

        // After the lifetime nothing resumes.
        profile
            .sessions()
            .set_now(start + Duration::from_secs(3601));
        assert_eq!(profile.sessions().len(), 0);
        let (pair, result) = handshake(&profile, &candidate(), server.clone());
        result.unwrap();
        assert!(
            !pair.flow.details().unwrap().resumed,
            "{versions:?}: expired session not used"
        );
    }
}

#[test]
fn a_purged_session_is_not_resumed() {
    let pki = pki();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let server = server(CertKind::Good, versions);
        let profile = profile(base_config(&pki));
        let mark = profile.sessions().mark();
        let (mut pair, result) = handshake(&profile, &candidate(), server.clone());
        result.unwrap();
        let tickets = pair.core.take_output();
        if !tickets.is_empty() {
            pair.flow.receive(&tickets).unwrap();
        }
        assert!(profile.sessions().purge_since(mark) > 0, "{versions:?}");
        let (pair, result) = handshake(&profile, &candidate(), server.clone());
        result.unwrap();
        assert!(
            !pair.flow.details().unwrap().resumed,
            "{versions:?}: purged session must not resume"
        );
        // A session stored before the mark survives a purge of what came after it.
        let (mut pair, _) = handshake(&profile, &candidate(), server.clone());
        let tickets = pair.core.take_output();
        if !tickets.is_empty() {
            pair.flow.receive(&tickets).unwrap();
        }
        let later = profile.sessions().mark();
        assert_eq!(profile.sessions().purge_since(later), 0);
        let (pair, _) = handshake(&profile, &candidate(), server.clone());
        assert!(pair.flow.details().unwrap().resumed, "{versions:?}");
    }
}

#[test]
fn sessions_are_not_resumed_towards_another_pcscf_identity() {
    let pki = pki();
    let server = server(CertKind::Good, TlsVersions::Tls13Only);
    let profile = profile(
        imstls::UeConfig::builder()
            .pcscf(format!("{SERVER_NAME}:5061"))
            .pcscf("other.ims.test:5061")
            .trust_anchors_pem(pki.root_pem()),
    );
    let (mut pair, result) = handshake(&profile, &candidate(), server.clone());
    result.unwrap();
    let tickets = pair.core.take_output();
    pair.flow.receive(&tickets).unwrap();
    // Towards another name nothing is offered (and the certificate would not match anyway).
    let other: Candidate = "other.ims.test:5061".parse().unwrap();
    let mut flow = TlsFlow::connect(&profile, &other).unwrap();
    let hello = client_hello::parse(&flow.take_transmit().unwrap());
    assert!(
        !hello.extensions.contains(&41),
        "no pre_shared_key offered to another identity"
    );
}

#[test]
fn a_certificate_request_is_detected_and_by_default_answered_with_no_certificate() {
    let pki = pki();
    let server = server_config(&pki, CertKind::Good, TlsVersions::Both, true).unwrap();
    let profile = profile(base_config(&pki));
    let registrar = SharedRegistrar::new(RegistrarConfig::default());
    let mut flow = TlsFlow::connect(&profile, &candidate()).unwrap();
    let mut core = PcscfCore::new(server, registrar, 1).unwrap();
    core.set_client_cert_requested(true);
    for _ in 0..8 {
        if let Some(out) = flow.take_transmit() {
            core.receive(&out);
        }
        let reply = core.take_output();
        if reply.is_empty() {
            break;
        }
        flow.receive(&reply).unwrap();
    }
    assert!(flow.is_established());
    assert!(flow.certificate_requested());
    assert!(
        core.observations()
            .contains(&Observation::ClientCertificateSent { empty: true }),
        "{:?}",
        core.observations()
    );
}

#[test]
fn a_certificate_request_aborts_the_handshake_when_the_policy_says_so() {
    let pki = pki();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let server = server_config(&pki, CertKind::Good, versions, true).unwrap();
        let profile =
            profile(base_config(&pki).certificate_request_policy(CertificateRequestPolicy::Abort));
        let (pair, result) = handshake(&profile, &candidate(), server);
        let failure = result.unwrap_err();
        assert_eq!(
            failure.kind,
            TlsFailureKind::ClientCertificateRequested,
            "{versions:?}"
        );
        assert_eq!(failure.alert_sent, Some(AlertDescription::HandshakeFailure));
        assert_eq!(
            alert_seen_by_server(&pair.core),
            Some(AlertDescription::HandshakeFailure),
            "{versions:?}"
        );
    }
}

#[test]
fn an_oversized_record_from_the_peer_is_a_clear_error() {
    let pki = pki();
    let (mut pair, result) = handshake(
        &profile(base_config(&pki)),
        &candidate(),
        server(CertKind::Good, TlsVersions::Tls13Only),
    );
    result.unwrap();
    // An application_data record longer than any TLS version allows (2^14 + 2048 is the
    // TLS 1.2 ciphertext limit, which rustls also tolerates for TLS 1.3).
    let mut record = vec![23, 3, 3];
    let len: u16 = 16384 + 2048 + 1;
    record.extend_from_slice(&len.to_be_bytes());
    record.extend(std::iter::repeat_n(0u8, len as usize));
    let failure = pair.flow.receive(&record).unwrap_err();
    assert_eq!(failure.kind, TlsFailureKind::OversizedRecord, "{failure}");
    // rustls answers a record too long to deframe with decode_error.
    assert_eq!(failure.alert_sent, Some(AlertDescription::DecodeError));
    let _ = pair
        .flow
        .take_transmit()
        .expect("the record_overflow alert is queued");
}

#[test]
fn garbage_instead_of_a_server_hello_is_a_clear_error() {
    let pki = pki();
    let profile = profile(base_config(&pki));
    let mut flow = TlsFlow::connect(&profile, &candidate()).unwrap();
    flow.take_transmit();
    let failure = flow
        .receive(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        .unwrap_err();
    assert_eq!(failure.kind, TlsFailureKind::MalformedRecord, "{failure}");
    assert!(flow.take_transmit().is_some(), "an alert goes out");
}

#[test]
fn eof_mid_handshake_is_reported_as_such() {
    let pki = pki();
    let profile = profile(base_config(&pki));
    let mut flow = TlsFlow::connect(&profile, &candidate()).unwrap();
    flow.take_transmit();
    match flow.receive_eof() {
        Closure::Failed(f) => assert_eq!(f.kind, TlsFailureKind::UnexpectedEof),
        other => panic!("{other:?}"),
    }
}
