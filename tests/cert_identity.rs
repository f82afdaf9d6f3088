//! The P-CSCF identity rule (RFC 5922 §7.1 on webpki's names, docs/CONFORMANCE.md) proven with
//! real chains: an rcgen root → intermediate (with or without RFC 5280 nameConstraints) → leaf,
//! presented by a real rustls server to imstls in memory. Each refusal is checked as the
//! certificate failure the app sees and as the alert the server received.

use std::sync::OnceLock;
use std::time::Instant;

use imstls::_internal_test_exports::tls::{TlsFlow, TlsProfile};
use imstls::{
    AlertDescription, Candidate, CertificateFailure, TlsFailure, TrustSource, UeConfig,
    UeConfigBuilder,
};
use imstls_testkit::chains::{ChainFactory, DnsConstraints, LeafNames};
use imstls_testkit::observation::Observation;
use imstls_testkit::pcscf::PcscfCore;
use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
use imstls_testkit::tls::{server_config_for, TlsVersions};

const VICTIM: &str = "pcscf.ims.victim.net";

fn factory() -> &'static ChainFactory {
    static FACTORY: OnceLock<ChainFactory> = OnceLock::new();
    FACTORY.get_or_init(|| ChainFactory::new().expect("chain keys"))
}

fn corp_only() -> DnsConstraints {
    DnsConstraints {
        permitted_dns: vec![".corp.example".into()],
        ..DnsConstraints::default()
    }
}

fn names(dns: &[&str], uris: &[&str]) -> LeafNames {
    LeafNames {
        dns: dns.iter().map(|s| s.to_string()).collect(),
        uris: uris.iter().map(|s| s.to_string()).collect(),
        ips: Vec::new(),
    }
}

fn config(expected: &str) -> UeConfigBuilder {
    UeConfig::builder()
        .pcscf(format!("{expected}:5061"))
        .trust_anchors(TrustSource::Der(factory().root_der()))
}

struct Outcome {
    result: Result<(), TlsFailure>,
    established: bool,
    alert_seen_by_server: Option<AlertDescription>,
}

/// A full handshake of imstls (expecting `expected`) against a rustls server presenting a
/// chain with `leaf` under an intermediate constrained by `constraints`.
fn handshake(
    builder: UeConfigBuilder,
    expected: &str,
    constraints: Option<&DnsConstraints>,
    leaf: &LeafNames,
    versions: TlsVersions,
) -> Outcome {
    handshake_under(factory(), builder, expected, constraints, leaf, versions)
}

/// [`handshake`] with the chain signed by `factory`.
fn handshake_under(
    factory: &ChainFactory,
    builder: UeConfigBuilder,
    expected: &str,
    constraints: Option<&DnsConstraints>,
    leaf: &LeafNames,
    versions: TlsVersions,
) -> Outcome {
    let identity = factory.chain(constraints, leaf).expect("chain");
    let server = server_config_for(&identity, versions).unwrap();
    let profile = TlsProfile::new(&builder.build().unwrap(), Instant::now()).unwrap();
    let candidate: Candidate = format!("{expected}:5061").parse().unwrap();
    let mut flow = TlsFlow::connect(&profile, &candidate).unwrap();
    let mut core =
        PcscfCore::new(server, SharedRegistrar::new(RegistrarConfig::default()), 1).unwrap();
    core.receive(&flow.take_transmit().expect("a ClientHello"));
    let mut result = Ok(());
    for _ in 0..16 {
        let reply = core.take_output();
        if reply.is_empty() {
            break;
        }
        result = flow.receive(&reply);
        if let Some(out) = flow.take_transmit() {
            core.receive(&out);
        }
        if result.is_err() {
            break;
        }
    }
    Outcome {
        established: result.is_ok() && flow.is_established(),
        result,
        alert_seen_by_server: core.observations().iter().find_map(|o| match o {
            Observation::AlertReceived { description } => Some(*description),
            _ => None,
        }),
    }
}

fn both_versions(mut check: impl FnMut(TlsVersions)) {
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        check(versions);
    }
}

/// Asserts a name mismatch for `expected` whose presented names include `presented`.
fn assert_name_mismatch(outcome: &Outcome, expected: &str, presented: &str) {
    let failure = outcome
        .result
        .as_ref()
        .expect_err("the certificate must be refused");
    match failure.certificate() {
        Some(CertificateFailure::NameMismatch {
            expected: e,
            presented: p,
        }) => {
            assert_eq!(e, expected);
            assert!(
                p.iter().any(|name| name.contains(presented)),
                "presented {p:?} lacks {presented}"
            );
        }
        other => panic!("not a name mismatch: {other:?} ({failure})"),
    }
    assert_eq!(
        outcome.alert_seen_by_server,
        Some(AlertDescription::BadCertificate)
    );
    assert!(!outcome.established);
}

// Issue 11 item 1: a CA restricted to .corp.example cannot vouch for a P-CSCF elsewhere by a
// sip: URI SAN (webpki does not apply DNS constraints to URI names).
#[test]
fn sip_uri_san_outside_the_cas_name_constraints_is_not_an_identity() {
    both_versions(|versions| {
        let outcome = handshake(
            config(VICTIM),
            VICTIM,
            Some(&corp_only()),
            &names(&["x.corp.example"], &["sip:pcscf.ims.victim.net"]),
            versions,
        );
        assert_name_mismatch(&outcome, VICTIM, "x.corp.example");
    });
}

// Issue 11 item 2: a user part hidden behind ';' or '?' ("user" may contain both, RFC 3261
// §25.1 user-unreserved) makes the URI name a user at attacker.example, not a domain.
#[test]
fn sip_uri_with_user_part_behind_semicolon_or_question_mark_is_not_a_domain() {
    for uri in [
        "sip:pcscf.ims.victim.net;x@attacker.example",
        "sip:pcscf.ims.victim.net?x@attacker.example",
    ] {
        both_versions(|versions| {
            let outcome = handshake(
                config(VICTIM),
                VICTIM,
                None,
                &names(&["attacker.example"], &[uri]),
                versions,
            );
            assert_name_mismatch(&outcome, VICTIM, "attacker.example");
        });
    }
}

// A sip: URI SAN alone never makes an identity: its host must also be a DNS SAN that webpki
// validated (and applied the chain's name constraints to).
#[test]
fn uri_only_certificate_is_refused() {
    both_versions(|versions| {
        let outcome = handshake(
            config(VICTIM),
            VICTIM,
            None,
            &names(&[], &["sip:pcscf.ims.victim.net"]),
            versions,
        );
        assert_name_mismatch(&outcome, VICTIM, "sip:pcscf.ims.victim.net");
    });
}

#[test]
fn dns_san_violating_the_cas_name_constraints_is_refused() {
    both_versions(|versions| {
        let outcome = handshake(
            config(VICTIM),
            VICTIM,
            Some(&corp_only()),
            &names(&[VICTIM], &["sip:pcscf.ims.victim.net"]),
            versions,
        );
        let failure = outcome.result.as_ref().expect_err("must be refused");
        let reason = failure.certificate().expect("a certificate failure");
        assert!(
            format!("{reason:?}").contains("NameConstraintViolation"),
            "{reason:?}"
        );
        assert!(outcome.alert_seen_by_server.is_some());
        assert!(!outcome.established);
    });
}

#[test]
fn legitimate_leaf_under_a_constrained_ca_is_accepted() {
    let name = "pcscf.corp.example";
    for leaf in [
        names(&[name], &["sip:pcscf.corp.example"]),
        names(&[name], &[]),
        names(
            &["other.corp.example", name],
            &["sip:pcscf.corp.example:5061;transport=tls"],
        ),
        // A URI with a user part names a user: it is no domain identity, the DNS SAN decides.
        names(&[name], &["sip:alice@pcscf.corp.example"]),
    ] {
        both_versions(|versions| {
            let outcome = handshake(config(name), name, Some(&corp_only()), &leaf, versions);
            if let Err(e) = &outcome.result {
                panic!("{leaf:?} ({versions:?}): {e}");
            }
            assert!(outcome.established, "{leaf:?}");
        });
    }
}

// RFC 5922 §7.1: when domain sip: URIs exist, one of them must name the P-CSCF even though a
// DNS SAN does.
#[test]
fn sip_uri_identities_take_precedence_over_dns_names() {
    let outcome = handshake(
        config(VICTIM),
        VICTIM,
        None,
        &names(&[VICTIM], &["sip:other.ims.victim.net"]),
        TlsVersions::Both,
    );
    assert_name_mismatch(&outcome, VICTIM, "sip:other.ims.victim.net");
}

// A sip: URI that does not parse by the RFC 3261 grammar is ambiguous: refused, not skipped.
#[test]
fn malformed_sip_uri_san_is_refused() {
    for uri in [
        "sip:pcscf.ims.victim.net:50x61",
        "sip:pcscf.ims.victim.net@",
        "sip:pcscf..ims.victim.net",
        "sip:pcscf.ims.victim.net;a=b@c=d",
        "sip:pcscf.ims.victim.net/evil",
    ] {
        let outcome = handshake(
            config(VICTIM),
            VICTIM,
            None,
            &names(&[VICTIM], &[uri]),
            TlsVersions::Both,
        );
        assert_name_mismatch(&outcome, VICTIM, VICTIM);
    }
}

#[test]
fn wildcard_dns_san_under_a_constrained_ca_needs_the_opt_in() {
    let name = "pcscf.corp.example";
    let leaf = names(&["*.corp.example"], &[]);
    let outcome = handshake(
        config(name),
        name,
        Some(&corp_only()),
        &leaf,
        TlsVersions::Both,
    );
    assert_name_mismatch(&outcome, name, "*.corp.example");
    let outcome = handshake(
        config(name).allow_wildcard_certificates(true),
        name,
        Some(&corp_only()),
        &leaf,
        TlsVersions::Both,
    );
    assert!(outcome.established, "{:?}", outcome.result.err());
}

#[test]
fn ip_expected_needs_an_ip_san_even_with_a_matching_sip_uri() {
    let ip = "127.0.0.1";
    let leaf = LeafNames {
        dns: Vec::new(),
        uris: vec!["sip:127.0.0.1".into()],
        ips: Vec::new(),
    };
    let outcome = handshake(config(ip), ip, None, &leaf, TlsVersions::Both);
    assert_name_mismatch(&outcome, ip, "sip:127.0.0.1");
    let leaf = LeafNames {
        ips: vec![ip.parse().unwrap()],
        ..leaf
    };
    let outcome = handshake(config(ip), ip, None, &leaf, TlsVersions::Both);
    assert!(outcome.established, "{:?}", outcome.result.err());
}

#[test]
fn ip_san_outside_the_cas_ip_constraints_is_refused() {
    let ip = "127.0.0.1";
    let constraints = DnsConstraints {
        permitted_ip: vec![("10.0.0.0".parse().unwrap(), 8)],
        ..DnsConstraints::default()
    };
    let leaf = LeafNames {
        ips: vec![ip.parse().unwrap()],
        ..LeafNames::default()
    };
    let outcome = handshake(config(ip), ip, Some(&constraints), &leaf, TlsVersions::Both);
    let failure = outcome.result.as_ref().expect_err("must be refused");
    let reason = failure.certificate().expect("a certificate failure");
    assert!(
        format!("{reason:?}").contains("NameConstraintViolation"),
        "{reason:?}"
    );
    assert!(!outcome.established);
}

// Item 1 with the constraint on the trust anchor itself (as a constrained root in a public
// root store would have it).
#[test]
fn sip_uri_san_outside_a_constrained_trust_anchor_is_not_an_identity() {
    let constrained = ChainFactory::with_root_constraints(Some(&corp_only())).expect("keys");
    let config = |name: &str| {
        UeConfig::builder()
            .pcscf(format!("{name}:5061"))
            .trust_anchors(TrustSource::Der(constrained.root_der()))
    };
    let outcome = handshake_under(
        &constrained,
        config(VICTIM),
        VICTIM,
        None,
        &names(&["x.corp.example"], &["sip:pcscf.ims.victim.net"]),
        TlsVersions::Both,
    );
    assert_name_mismatch(&outcome, VICTIM, "x.corp.example");
    // The anchor's constraint is live: a DNS SAN outside it is refused for it.
    let outcome = handshake_under(
        &constrained,
        config(VICTIM),
        VICTIM,
        None,
        &names(&[VICTIM], &[]),
        TlsVersions::Both,
    );
    let failure = outcome.result.as_ref().expect_err("must be refused");
    assert!(
        format!("{:?}", failure.certificate()).contains("NameConstraintViolation"),
        "{failure}"
    );
    // And inside it all is well.
    let name = "pcscf.corp.example";
    let outcome = handshake_under(
        &constrained,
        config(name),
        name,
        None,
        &names(&[name], &["sip:pcscf.corp.example"]),
        TlsVersions::Both,
    );
    assert!(outcome.established, "{:?}", outcome.result.err());
}
