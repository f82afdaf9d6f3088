//! TLS session rules, on a simulated clock against the in-memory P-CSCF (real rustls on both
//! ends): the lifetime runs from the full handshake that authenticated the P-CSCF (O.2.1,
//! issue 11 item 3), a TLS 1.2 rekey is a full handshake (item 4), and sessions never outlive
//! the identity that made them (item 7).
//!
//! The simulated P-CSCF keeps its sessions on the real clock (milliseconds pass while the
//! simulated clock runs for hours), so it would resume every session offered: whenever these
//! tests see a full handshake, the UE chose it.

mod support;

use std::time::Duration;

use imstls::{Event, Identity, UeState};
use imstls_testkit::registrar::RegistrarConfig;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::CertKind;
use support::{base_config, pki, World};

const S: fn(u64) -> Duration = Duration::from_secs;
const LIFETIME: Duration = Duration::from_secs(3600);

fn world(versions: TlsVersions) -> World {
    World::with(
        base_config(&pki()),
        CertKind::Good,
        versions,
        RegistrarConfig::default(),
    )
}

/// Every handshake so far: (simulated time, resumed).
fn handshakes(w: &World) -> Vec<(Duration, bool)> {
    w.events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::TlsEstablished { details, .. } => Some((*at, details.resumed)),
            _ => None,
        })
        .collect()
}

/// Reconnects every 50 minutes out to 25 h and checks each handshake against the rule: a
/// resumption only while the last full handshake is less than the lifetime ago.
fn lifetime_runs_from_the_full_handshake(versions: TlsVersions) {
    let mut w = world(versions);
    w.register();
    while w.elapsed() < S(25 * 3600) {
        w.advance(S(50 * 60));
        w.reset_current();
        assert!(
            w.run_until(S(5), |w| w.state() == UeState::Registered),
            "registered again at {:?}: {:?}",
            w.elapsed(),
            w.codes()
        );
    }
    let seen = handshakes(&w);
    assert!(seen.len() >= 31, "{seen:?}");
    let mut last_full: Option<Duration> = None;
    let mut resumed = 0;
    for &(at, was_resumed) in &seen {
        let allowed = last_full.is_some_and(|full| at - full < LIFETIME);
        assert!(
            !was_resumed || allowed,
            "{versions:?}: resumed at {at:?}, the last full handshake was at {last_full:?}; all: {seen:?}"
        );
        if was_resumed {
            resumed += 1;
        } else {
            last_full = Some(at);
        }
    }
    // The server resumes whatever is offered: half the reconnects resume, half are full.
    assert!(
        resumed >= 15,
        "{versions:?}: only {resumed} resumed: {seen:?}"
    );
    let last = seen.last().unwrap();
    assert!(last.0 >= S(25 * 3600), "{seen:?}");
}

#[test]
fn tls12_sessions_resumed_every_50_min_expire_one_hour_after_the_full_handshake() {
    lifetime_runs_from_the_full_handshake(TlsVersions::Tls12Only);
}

#[test]
fn tls13_tickets_resumed_every_50_min_expire_one_hour_after_the_full_handshake() {
    lifetime_runs_from_the_full_handshake(TlsVersions::Tls13Only);
}

#[test]
fn a_reconnect_within_the_lifetime_still_resumes() {
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let mut w = world(versions);
        w.register();
        w.advance(S(59 * 60));
        w.reset_current();
        assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
        let seen = handshakes(&w);
        assert_eq!(seen.iter().map(|h| h.1).collect::<Vec<_>>(), [false, true]);
    }
}

#[test]
fn rekey_on_tls12_is_a_full_handshake_with_fresh_keys() {
    let mut w = world(TlsVersions::Tls12Only);
    w.register();
    w.ue.rekey(w.now).unwrap();
    w.pump();
    assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
    let resumed: Vec<bool> = handshakes(&w).iter().map(|h| h.1).collect();
    assert_eq!(resumed, [false, false], "the rekey flow must not resume");
}

fn other_identity() -> Identity {
    Identity::new("bob@ims.test", &["sip:bob@ims.test"]).unwrap()
}

/// The first handshake after `from` (an index into the events).
fn first_handshake_from(w: &World, from: usize) -> bool {
    w.events[from..]
        .iter()
        .find_map(|(_, e)| match e {
            Event::TlsEstablished { details, .. } => Some(details.resumed),
            _ => None,
        })
        .expect("a handshake")
}

#[test]
fn sessions_do_not_survive_deregistration() {
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let mut w = world(versions);
        w.register();
        w.ue.deregister(w.now).unwrap();
        w.pump();
        assert_eq!(w.state(), UeState::Idle);
        let stored = w.ue.profile().sessions().len();
        let from = w.events.len();
        w.register();
        assert!(
            !first_handshake_from(&w, from),
            "{versions:?}: a registration after de-registration resumed the old session"
        );
        assert_eq!(
            stored, 0,
            "{versions:?}: sessions kept after de-registration"
        );
    }
}

#[test]
fn a_new_identity_does_not_resume_the_previous_identitys_session() {
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let mut w = world(versions);
        w.register();
        let from = w.events.len();
        w.ue.start_registration(w.now, other_identity()).unwrap();
        w.pump();
        assert!(
            !first_handshake_from(&w, from),
            "{versions:?}: user B resumed user A's session"
        );
    }
}

#[test]
fn the_same_identity_starting_again_may_resume() {
    let mut w = world(TlsVersions::Tls13Only);
    w.register();
    let from = w.events.len();
    w.register();
    assert!(first_handshake_from(&w, from), "{:?}", handshakes(&w));
}

#[test]
fn a_full_handshake_after_a_declined_offer_restarts_the_lifetime() {
    for versions in [TlsVersions::Tls12Only, TlsVersions::Tls13Only] {
        let mut w = world(versions);
        w.register();
        w.advance(S(50 * 60));
        // A P-CSCF that lost its session cache: the offer is declined, the handshake is full.
        w.set_server(CertKind::Good, versions, false);
        w.reset_current();
        assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
        w.advance(S(50 * 60));
        w.reset_current();
        assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
        let resumed: Vec<bool> = handshakes(&w).iter().map(|h| h.1).collect();
        // 100 min after the first full handshake, 50 min after the second one.
        assert_eq!(resumed, [false, false, true], "{versions:?}");
    }
}

#[test]
fn binding_debug_output_hides_the_identities() {
    let mut w = world(TlsVersions::Both);
    w.register();
    let binding = w.ue.binding().unwrap();
    let printed = format!("{binding:?} {binding:#?}");
    let ua = imstls_testkit::ua::UaConfig::default();
    assert!(!printed.contains(&ua.impi), "IMPI in Debug: {printed}");
    assert!(!printed.contains(&ua.impu), "IMPU in Debug: {printed}");
    // The rest stays useful for diagnostics.
    assert!(printed.contains("pcscf.ims.test:5061"), "{printed}");
}
