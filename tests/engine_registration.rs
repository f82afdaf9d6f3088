//! Engine tests on a simulated clock against the in-memory simulated P-CSCF (real rustls
//! server + registrar). One test per state-machine invariant
//! (`Ue::check_invariants`) and per Annex O clause.

mod support;

use std::time::Duration;

use imstls::{
    AlertDescription, Event, FailureReason, KeepAlive, LossReason, RegisterReason, RekeyMethod,
    UeError, UeState,
};
use imstls_testkit::observation::Observation;
use imstls_testkit::registrar::RegistrarConfig;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::CertKind;
use support::{base_config, client_hello, pki, ConnectMode, StackMode, World};

const S: fn(u64) -> Duration = Duration::from_secs;

fn world() -> World {
    World::new(base_config(&pki()))
}

fn registered_world() -> World {
    let mut w = world();
    w.register();
    w
}

fn connecting_times(w: &World) -> Vec<Duration> {
    w.times("connecting")
}

fn backoff_delays(w: &World) -> Vec<Duration> {
    w.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::BackingOff { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect()
}

fn in_window(d: Duration, low: u64, high: u64) -> bool {
    d >= S(low) && d <= S(high)
}

// ----- basic registration ---------------------------------------------------------------

#[test]
fn registers_with_digest_challenge_over_tls13() {
    let w = registered_world();
    let expected = [
        "connecting",
        "tls_established",
        "register_now",
        "registering",
        "sip_received",
        "challenged",
        "register_now",
        "registering",
        "sip_received",
        "registered",
    ];
    assert_eq!(&w.codes()[..expected.len()], &expected, "{:?}", w.codes());
    assert!(w.input_errors.is_empty(), "{:?}", w.input_errors);
    let Some((_, Event::TlsEstablished { details, .. })) = w.last("tls_established") else {
        unreachable!()
    };
    assert_eq!(details.version, "TLSv1.3");
    // The first group offered: the hybrid post-quantum one with aws-lc-rs, X25519 with ring.
    let expected_group = if cfg!(feature = "aws-lc-rs") {
        "X25519MLKEM768"
    } else {
        "X25519"
    };
    assert_eq!(details.key_exchange_group, Some(expected_group));
    assert!(w.registrar.is_registered(&UaConfig::default().impu));
}

#[test]
fn registers_over_tls12() {
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Tls12Only,
        RegistrarConfig::default(),
    );
    w.register();
    assert_eq!(w.ue.binding().unwrap().tls.version, "TLSv1.2");
}

#[test]
fn binding_reports_the_o22_association() {
    let w = registered_world();
    let binding = w.ue.binding().unwrap();
    assert!(binding.registered);
    assert_eq!(binding.impi, UaConfig::default().impi);
    assert_eq!(binding.impus, vec![UaConfig::default().impu]);
    assert_eq!(binding.pcscf, "pcscf.ims.test:5061");
    assert_eq!(binding.remote_addr, Some("127.0.0.1:5061".parse().unwrap()));
    assert_eq!(binding.tls.version, "TLSv1.3");
}

#[test]
fn every_event_is_logged_with_its_clause() {
    let w = registered_world();
    let log: Vec<_> = w.ue.conformance_log().collect();
    assert_eq!(log.len(), w.events.len());
    assert!(log.iter().all(|e| !e.clause.is_empty()));
    let registered = log.iter().find(|e| e.event == "registered").unwrap();
    assert_eq!(registered.clause, "TS 24.229 §5.1.1.4.1");
    let first_register = log.iter().find(|e| e.event == "register_now").unwrap();
    assert_eq!(first_register.clause, "TS 33.203 O.4.2");
    // Entries name their flow; the log holds codes and clauses only, no personal data.
    assert_eq!(registered.flow, w.ue.current_flow());
    assert!(log
        .iter()
        .filter(|e| e.event == "backoff")
        .all(|e| e.flow.is_none()));
}

#[test]
fn the_conformance_log_keeps_the_configured_number_of_latest_entries() {
    let mut w = World::new(base_config(&pki()).conformance_log_entries(4));
    w.register();
    assert!(w.events.len() > 4);
    let log: Vec<_> = w.ue.conformance_log().map(|e| e.event).collect();
    let latest: Vec<_> = w.events[w.events.len() - 4..]
        .iter()
        .map(|(_, e)| e.code())
        .collect();
    assert_eq!(log, latest);

    // 0: no log at all, and the engine works the same.
    let mut w = World::new(base_config(&pki()).conformance_log_entries(0));
    w.register();
    assert_eq!(w.state(), UeState::Registered);
    assert_eq!(w.ue.conformance_log().count(), 0);
}

// ----- invariant 2: REGISTER first ------------------------------------------------------

#[test]
fn only_register_may_be_sent_on_a_flow_that_is_not_registered() {
    let mut w = world();
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    let message = w.ua.request("MESSAGE", "sip:bob@ims.test", b"hi");
    assert_eq!(w.ue.send_sip(w.now, &message), Err(UeError::RegisterFirst));
    let register = {
        w.ua.new_registration();
        w.ua.next_register()
    };
    w.ue.send_sip(w.now, &register).unwrap();
    assert_eq!(
        w.ue.send_sip(w.now, &register),
        Err(UeError::RegisterInFlight)
    );
    assert_eq!(w.ue.send_sip(w.now, &message), Err(UeError::RegisterFirst));
    // Not one SIP message: refused.
    assert!(matches!(
        w.ue.send_sip(w.now, b"REGISTER sip:x SIP/2.0\r\n"),
        Err(UeError::BadMessage(_))
    ));
}

#[test]
fn every_new_flow_carries_register_first() {
    let mut w = registered_world();
    w.reset_current();
    assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
    w.network_changed_now();
    assert!(w.run_until(S(5), |w| w.state() == UeState::Registered));
    let firsts: Vec<bool> = w
        .finished
        .iter()
        .flat_map(|(_, core)| core.observations().iter())
        .chain(w.peers.values().flat_map(|p| p.core.observations().iter()))
        .filter_map(|o| match o {
            Observation::RegisterSeen {
                first_on_connection: true,
                ..
            } => Some(true),
            Observation::RequestSeen { .. } => Some(false),
            _ => None,
        })
        .collect();
    assert!(firsts.len() >= 2, "{firsts:?}");
    assert!(firsts.iter().all(|f| *f));
    assert!(connecting_times(&w).len() >= 3);
}

#[test]
fn after_registration_any_request_may_be_sent_and_answered() {
    let mut w = registered_world();
    let message = w.ua.request("MESSAGE", "sip:bob@ims.test", b"hello");
    w.ue.send_sip(w.now, &message).unwrap();
    w.pump();
    assert!(w.peer().observations().contains(&Observation::RequestSeen {
        method: "MESSAGE".into()
    }));
}

#[test]
fn terminating_requests_are_delivered_on_the_registered_flow() {
    let mut w = registered_world();
    let before = w.count("sip_received");
    let request = b"MESSAGE sip:alice@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bK1\r\nFrom: <sip:bob@ims.test>;tag=1\r\nTo: <sip:alice@ims.test>\r\nCall-ID: term-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 2\r\n\r\nhi";
    w.peer().send_request(request);
    w.pump();
    assert_eq!(w.count("sip_received"), before + 1);
    assert!(w
        .peer()
        .observations()
        .contains(&Observation::ResponseReceived(200)));
}

// ----- invariant 1: one procedure at a time ---------------------------------------------

fn superseded(w: &World) -> imstls::Abandoned {
    match w.last("superseded") {
        Some((_, Event::Superseded { abandoned })) => abandoned.clone(),
        _ => panic!("no superseded event: {:?}", w.codes()),
    }
}

#[test]
fn superseding_during_connect_closes_the_attempt_and_starts_again() {
    let mut w = world();
    w.connect[0] = ConnectMode::Blackhole;
    w.start_registration();
    assert_eq!(w.state(), UeState::Connecting);
    let old = w.ue.current_flow().unwrap();
    w.connect[0] = ConnectMode::Accept;
    w.start_registration();
    let abandoned = superseded(&w);
    assert_eq!(abandoned.state, UeState::Connecting);
    assert_eq!(abandoned.flow, Some(old));
    assert!(w.closed.contains(&old));
    assert_eq!(w.state(), UeState::Registered);
    assert_ne!(w.ue.current_flow(), Some(old));
}

#[test]
fn superseding_during_handshake_closes_the_attempt_and_starts_again() {
    let mut w = world();
    w.connect[0] = ConnectMode::AcceptSilent;
    w.start_registration();
    assert_eq!(w.state(), UeState::Handshaking);
    let old = w.ue.current_flow().unwrap();
    w.connect[0] = ConnectMode::Accept;
    w.start_registration();
    let abandoned = superseded(&w);
    assert_eq!(abandoned.state, UeState::Handshaking);
    assert!(w.closed.contains(&old));
    assert_eq!(w.state(), UeState::Registered);
}

#[test]
fn superseding_after_401_purges_the_tls_session_the_procedure_created() {
    let mut w = world();
    w.stack_mode = StackMode::HoldAfterChallenge;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    assert!(w.ue.registration_in_progress());
    let stored = w.ue.profile().sessions().len();
    assert!(stored > 0, "TLS 1.3 tickets arrived during the procedure");
    let old = w.ue.current_flow().unwrap();

    w.stack_mode = StackMode::Auto;
    w.start_registration();
    let abandoned = superseded(&w);
    assert_eq!(abandoned.state, UeState::AwaitingRegister);
    assert_eq!(abandoned.flow, Some(old));
    assert_eq!(
        abandoned.purged_sessions, stored,
        "every ticket of the incomplete procedure"
    );
    assert!(w.closed.contains(&old));
    // The new procedure's handshake is a full one: nothing of the old one survived.
    let new_flow = w.ue.current_flow().unwrap();
    let hello = client_hello::parse(&w.wire_of(new_flow));
    assert!(!hello.extensions.contains(&41), "no pre_shared_key offered");
    let Some((_, Event::TlsEstablished { details, .. })) = w.last("tls_established") else {
        unreachable!()
    };
    assert!(!details.resumed);
    assert_eq!(w.state(), UeState::Registered);
}

#[test]
fn superseding_drops_the_abandoned_flows_queued_bytes() {
    let mut w = world();
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    // The stack sends REGISTER; the engine queues its bytes but nobody polls yet.
    let register = {
        w.ua.new_registration();
        w.ua.next_register()
    };
    let old = w.ue.current_flow().unwrap();
    w.ue.send_sip(w.now, &register).unwrap();
    w.ue.start_registration(w.now, support::identity()).unwrap();
    // Drain outputs by hand: nothing may be transmitted on the old flow any more, not even a
    // close_notify (it would follow the dropped records' sequence numbers).
    let mut old_bytes = 0;
    loop {
        match w.ue.poll_output() {
            imstls::Output::Transmit { flow, data } if flow == old => old_bytes += data.len(),
            imstls::Output::Event(Event::Superseded { abandoned }) => {
                assert!(abandoned.dropped_bytes >= register.len(), "{abandoned:?}");
            }
            imstls::Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(old_bytes, 0, "nothing went out on the abandoned flow");
}

/// Issue 11 item 6, read by the P-CSCF (a real rustls server fed the UE's bytes): when a
/// supersede drops records that were already encrypted, whatever follows on the old flow
/// must not be a record with a skipped sequence number ("cannot decrypt peer's message").
#[test]
fn superseding_with_encrypted_records_queued_closes_cleanly_for_the_pcscf() {
    let mut w = registered_world();
    let old = w.ue.current_flow().unwrap();
    // The stack sends a request; its records are encrypted and queued but nobody polls yet.
    let message = w.ua.request("MESSAGE", "sip:bob@ims.test", b"hello");
    w.ue.send_sip(w.now, &message).unwrap();
    w.ue.start_registration(w.now, support::identity()).unwrap();
    w.pump();
    let seen = closed_peer_log(&w, old);
    assert!(
        !seen.iter().any(|o| matches!(o, Observation::TlsError(_))),
        "the P-CSCF saw a TLS error on the superseded flow: {seen:?}"
    );
    assert!(
        !seen.contains(&Observation::RequestSeen {
            method: "MESSAGE".into()
        }),
        "the dropped request never reached the P-CSCF: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|o| matches!(o, Observation::TransportClosed { .. })),
        "the P-CSCF saw the stream end: {seen:?}"
    );
    assert_eq!(w.state(), UeState::Registered);
}

/// With nothing queued, superseding a registered flow still ends it with a close_notify the
/// P-CSCF can read (clean close, not a bare FIN).
#[test]
fn superseding_an_idle_registered_flow_sends_a_readable_close_notify() {
    let mut w = registered_world();
    let old = w.ue.current_flow().unwrap();
    w.start_registration();
    let seen = closed_peer_log(&w, old);
    assert!(
        !seen.iter().any(|o| matches!(o, Observation::TlsError(_))),
        "{seen:?}"
    );
    assert!(seen.contains(&Observation::PeerClosed), "{seen:?}");
    assert!(
        seen.contains(&Observation::TransportClosed { clean: true }),
        "{seen:?}"
    );
}

#[test]
fn starting_again_while_registered_closes_the_registered_flow() {
    let mut w = registered_world();
    let old = w.ue.current_flow().unwrap();
    w.start_registration();
    assert_eq!(superseded(&w).state, UeState::Registered);
    assert!(w.closed.contains(&old));
    assert_eq!(w.state(), UeState::Registered);
}

// ----- invariant 3: connection loss -----------------------------------------------------

fn assert_immediate_reconnect(w: &mut World, lose: impl FnOnce(&mut World), reason: &str) {
    let loss_at = w.now;
    let connects_before = connecting_times(w).len();
    let old = w.ue.current_flow().unwrap();
    lose(w);
    let Some((
        at,
        Event::ConnectionLost {
            reason: got,
            registered,
            ..
        },
    )) = w.last("connection_lost")
    else {
        panic!("no connection_lost: {:?}", w.codes())
    };
    assert_eq!(got.code(), reason);
    assert!(*registered);
    assert_eq!(*at, loss_at - w.start);
    let times = connecting_times(w);
    assert_eq!(times.len(), connects_before + 1, "{reason}: one new flow");
    assert_eq!(
        times[connects_before],
        loss_at - w.start,
        "{reason}: without delay"
    );
    let new = w.ue.current_flow().unwrap();
    assert_ne!(new, old);
    // The new ClientHello is on the wire already, resuming the registered session.
    let hello = client_hello::parse(&w.wire_of(new));
    assert!(
        hello.extensions.contains(&41),
        "{reason}: resumption offered"
    );
    assert_eq!(w.state(), UeState::Registered, "{reason}: registered again");
    assert!(w.input_errors.is_empty(), "{:?}", w.input_errors);
}

#[test]
fn loss_while_registered_means_a_new_client_hello_at_once() {
    let mut w = registered_world();
    assert_immediate_reconnect(&mut w, |w| w.reset_current(), "reset");
    w.advance(S(1));
    assert_immediate_reconnect(&mut w, |w| w.eof_current(), "eof");
    w.advance(S(1));
    assert_immediate_reconnect(
        &mut w,
        |w| {
            let flow = w.ue.current_flow().unwrap();
            w.peers.remove(&flow);
            w.ue.transport_closed(
                w.now,
                flow,
                imstls::TransportClosure::Error("EHOSTUNREACH".into()),
            )
            .unwrap();
            w.pump();
        },
        "io_error",
    );
    w.advance(S(1));
    assert_immediate_reconnect(
        &mut w,
        |w| {
            w.peer().close_notify();
            w.pump();
        },
        "closed_by_peer",
    );
    w.advance(S(1));
    assert_immediate_reconnect(
        &mut w,
        |w| {
            w.peer().send_ping();
            w.deliver_tampered(|bytes| {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x01;
            });
        },
        "tls",
    );
    let Some((
        _,
        Event::ConnectionLost {
            reason: LossReason::Tls(failure),
            ..
        },
    )) = w.last("connection_lost")
    else {
        unreachable!()
    };
    assert_eq!(failure.kind, imstls::TlsFailureKind::IntegrityFailure);
    assert_eq!(failure.alert_sent, Some(AlertDescription::BadRecordMac));
}

#[test]
fn three_consecutive_failures_back_off_per_rfc5626() {
    let mut w = registered_world();
    w.connect[0] = ConnectMode::Refuse;
    w.reset_current();
    // First retry after losing a proven flow: immediate; it fails.
    let times = connecting_times(&w);
    assert_eq!(*times.last().unwrap(), w.elapsed());
    // Then three back-offs: W = 30·2^n, waits uniform in [W/2, W].
    w.run_until(S(1000), |w| {
        backoff_delays(w).len() >= 3 && w.state() == UeState::BackingOff
    });
    let delays = backoff_delays(&w);
    assert!(in_window(delays[0], 30, 60), "{delays:?}");
    assert!(in_window(delays[1], 60, 120), "{delays:?}");
    assert!(in_window(delays[2], 120, 240), "{delays:?}");
    let attempts: Vec<u32> = w
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::BackingOff { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(&attempts[..3], &[1, 2, 3]);
    // Each reconnect happens exactly when its back-off ends (connects[0] registered the
    // first time, connects[1] was the immediate retry).
    let connects = connecting_times(&w);
    let offs = w.times("backoff");
    for i in 0..2 {
        assert_eq!(connects[2 + i], offs[i] + delays[i]);
    }
    // The P-CSCF comes back: registered, and the count resets once the flow proves healthy.
    w.connect[0] = ConnectMode::Accept;
    assert!(w.run_until(S(300), |w| w.state() == UeState::Registered));
    assert_eq!(w.ue.consecutive_failures(), 0);
}

#[test]
fn a_pcscf_closing_after_every_200_ok_cannot_cause_a_reconnect_storm() {
    let mut w = world();
    // The P-CSCF answers 401 and 200 and nothing more (no pong), then closes.
    w.peer_answer_limit = Some(2);
    w.start_registration();
    for _ in 0..4 {
        assert!(w.run_until(S(2000), |w| w.state() == UeState::Registered));
        w.reset_current();
    }
    let delays = backoff_delays(&w);
    assert_eq!(delays.len(), 4, "{:?}", w.codes());
    // The flow never proved itself, so every loss counts. It was the UE's only flow, so "all
    // of the flows ... have failed" (RFC 5626 §4.5): 30·2^n windows, growing.
    assert!(in_window(delays[0], 30, 60), "{delays:?}");
    assert!(in_window(delays[1], 60, 120), "{delays:?}");
    assert!(in_window(delays[2], 120, 240), "{delays:?}");
    assert!(in_window(delays[3], 240, 480), "{delays:?}");
}

#[test]
fn the_first_wait_after_an_unproven_flow_is_30_to_60_s_with_one_candidate() {
    // RFC 5626 §4.5: base-time 30 s "if all of the flows to every URI in the outbound proxy
    // set have failed"; a UE with one registration flow has no other flow once it fails. The
    // P-CSCF answers 401 and 200, then closes before the pong (a real registrar did this).
    let mut w = world();
    w.peer_answer_limit = Some(2);
    w.start_registration();
    assert_eq!(w.state(), UeState::Registered);
    assert_eq!(w.count("keepalive_sent"), 1, "a ping right after the 200");
    assert_eq!(w.count("pong_received"), 0);
    let lost_at = w.elapsed();
    w.eof_current();
    assert_eq!(w.state(), UeState::BackingOff, "{:?}", w.codes());
    let delays = backoff_delays(&w);
    assert_eq!(delays.len(), 1, "{:?}", w.codes());
    assert!(in_window(delays[0], 30, 60), "first wait {:?}", delays[0]);
    // The next attempt starts exactly when that wait ends.
    w.peer_answer_limit = None;
    assert!(w.run_until(S(61), |w| w.state() == UeState::Registered));
    assert_eq!(connecting_times(&w)[1], lost_at + delays[0]);
}

#[test]
fn the_first_wait_stays_in_30_to_60_s_whatever_the_jitter_seed() {
    // The window, not one lucky draw: many seeds, every first wait in [30 s, 60 s].
    for seed in 0..20 {
        let mut w = World::new(base_config(&pki()).random_seed(seed));
        w.peer_answer_limit = Some(2);
        w.start_registration();
        w.reset_current();
        let delays = backoff_delays(&w);
        assert!(in_window(delays[0], 30, 60), "seed {seed}: {delays:?}");
    }
}

#[test]
fn a_refused_candidate_fails_over_to_the_next_at_once() {
    let pki = pki();
    let mut w = World::new(base_config(&pki).pcscf("pcscf.ims.test:5062"));
    w.connect[0] = ConnectMode::Refuse;
    w.register();
    let targets: Vec<String> = w
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Connecting { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["pcscf.ims.test:5061", "pcscf.ims.test:5062"]);
    assert_eq!(connecting_times(&w), vec![S(0), S(0)]);
    assert_eq!(w.ue.binding().unwrap().pcscf, "pcscf.ims.test:5062");
}

#[test]
fn when_every_candidate_fails_the_round_backs_off_then_starts_over() {
    let pki = pki();
    let mut w = World::new(base_config(&pki).pcscf("pcscf.ims.test:5062"));
    w.connect = vec![ConnectMode::Refuse, ConnectMode::Refuse];
    w.start_registration();
    assert_eq!(w.state(), UeState::BackingOff);
    assert_eq!(connecting_times(&w).len(), 2);
    assert!(in_window(backoff_delays(&w)[0], 30, 60));
    w.connect[0] = ConnectMode::Accept;
    assert!(w.run_until(S(61), |w| w.state() == UeState::Registered));
}

// ----- failover across candidates -------------------------------------------------------

/// A P-CSCF whose only key-exchange group is P-384, which `failover_config` does not offer:
/// rustls answers the ClientHello with handshake_failure (no common parameters).
fn p384_only_server() -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let identity = pki().leaf(CertKind::Good);
    let mut provider = (*imstls_testkit::tls::provider()).clone();
    provider
        .kx_groups
        .retain(|g| g.name() == rustls::NamedGroup::secp384r1);
    let chain = identity
        .chain_der
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::try_from(identity.key_der).unwrap();
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

fn client_cert_server() -> std::sync::Arc<rustls::ServerConfig> {
    imstls_testkit::tls::server_config(&pki(), CertKind::Good, TlsVersions::Both, true).unwrap()
}

/// Three candidates; no P-384 offered, and a CertificateRequest aborts the handshake.
fn failover_config() -> imstls::UeConfigBuilder {
    base_config(&pki())
        .pcscf("pcscf.ims.test:5062")
        .pcscf("pcscf.ims.test:5063")
        .kx_groups(&[imstls::KxGroup::X25519, imstls::KxGroup::P256])
        .certificate_request_policy(imstls::CertificateRequestPolicy::Abort)
}

fn tls_failure_codes(w: &World) -> Vec<(usize, &'static str)> {
    let mut candidate_of = std::collections::BTreeMap::new();
    let mut codes = Vec::new();
    for (_, event) in &w.events {
        match event {
            Event::Connecting {
                flow, candidate, ..
            } => {
                candidate_of.insert(*flow, *candidate);
            }
            Event::TlsFailed { flow, failure } => {
                codes.push((candidate_of[flow], failure.kind.code()));
            }
            _ => {}
        }
    }
    codes
}

#[test]
fn a_configuration_failure_fails_over_to_the_next_candidate_until_one_works() {
    let mut w = World::new(failover_config());
    w.candidate_servers.insert(0, p384_only_server());
    w.candidate_servers.insert(1, client_cert_server());
    w.start_registration();
    assert_eq!(w.state(), UeState::Registered, "{:?}", w.codes());
    assert_eq!(
        tls_failure_codes(&w),
        vec![
            (0, "no_common_cipher_suite"),
            (1, "client_certificate_requested")
        ]
    );
    assert_eq!(connecting_times(&w), vec![S(0), S(0), S(0)], "at once");
    assert_eq!(w.ue.binding().unwrap().pcscf, "pcscf.ims.test:5063");
    assert_eq!(w.count("registration_failed"), 0);
}

#[test]
fn a_refused_connect_and_a_configuration_failure_both_fail_over() {
    let mut w = World::new(failover_config());
    w.connect[0] = ConnectMode::Refuse;
    w.candidate_servers.insert(1, p384_only_server());
    w.start_registration();
    assert_eq!(w.state(), UeState::Registered, "{:?}", w.codes());
    assert_eq!(w.count("connect_failed"), 1);
    assert_eq!(tls_failure_codes(&w), vec![(1, "no_common_cipher_suite")]);
    assert_eq!(w.ue.binding().unwrap().pcscf, "pcscf.ims.test:5063");
}

fn listed(candidates: &[imstls::CandidateFailure]) -> Vec<(usize, &str, &'static str)> {
    candidates
        .iter()
        .map(|f| (f.candidate, f.target.as_str(), f.reason.code()))
        .collect()
}

#[test]
fn when_every_candidate_fails_for_its_tls_configuration_one_terminal_event_lists_each() {
    let mut w = World::new(failover_config().tls_versions(imstls::TlsVersions::Tls13Only));
    w.candidate_servers.insert(0, p384_only_server());
    w.candidate_servers.insert(1, client_cert_server());
    w.candidate_servers.insert(
        2,
        imstls_testkit::tls::server_config(&pki(), CertKind::Good, TlsVersions::Tls12Only, false)
            .unwrap(),
    );
    w.start_registration();
    assert_eq!(w.state(), UeState::Closed, "{:?}", w.codes());
    assert_eq!(w.count("registration_failed"), 1);
    assert_eq!(w.count("backoff"), 0);
    let Some((
        _,
        Event::RegistrationFailed {
            status,
            reason,
            retrying,
            candidates,
        },
    )) = w.last("registration_failed")
    else {
        unreachable!()
    };
    assert_eq!(
        (*status, reason, *retrying),
        (None, &FailureReason::Tls, false)
    );
    assert_eq!(
        listed(candidates),
        vec![
            (0, "pcscf.ims.test:5061", "no_common_cipher_suite"),
            (1, "pcscf.ims.test:5062", "client_certificate_requested"),
            (2, "pcscf.ims.test:5063", "protocol_version"),
        ]
    );
    // Each entry names the flow that tried it, as the Connecting events did.
    let flows: Vec<_> = w
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Connecting { flow, .. } => Some(*flow),
            _ => None,
        })
        .collect();
    assert_eq!(candidates.iter().map(|f| f.flow).collect::<Vec<_>>(), flows);
    // The text form names every candidate and reason, for a log.
    let text = w.last("registration_failed").unwrap().1.to_string();
    assert!(
        text.contains("candidate 2 (pcscf.ims.test:5063): peer speaks only obsolete TLS"),
        "{text}"
    );
    // Stopped: nothing scheduled until the app starts a new registration.
    assert_eq!(w.ue.next_timeout(), None);
}

#[test]
fn a_round_with_a_connect_failure_among_configuration_failures_backs_off_and_lists_each() {
    let mut w = World::new(failover_config());
    w.candidate_servers.insert(0, p384_only_server());
    w.connect[1] = ConnectMode::Refuse;
    w.candidate_servers.insert(2, client_cert_server());
    w.start_registration();
    // A refused connect may heal: RFC 5626 §4.5 back-off, not a stop.
    assert_eq!(w.state(), UeState::BackingOff, "{:?}", w.codes());
    assert_eq!(w.count("registration_failed"), 0);
    let Some((
        _,
        Event::BackingOff {
            candidates, delay, ..
        },
    )) = w.last("backoff")
    else {
        unreachable!()
    };
    assert!(in_window(*delay, 30, 60), "{delay:?}");
    assert_eq!(
        listed(candidates),
        vec![
            (0, "pcscf.ims.test:5061", "no_common_cipher_suite"),
            (1, "pcscf.ims.test:5062", "connect_refused"),
            (2, "pcscf.ims.test:5063", "client_certificate_requested"),
        ]
    );
    // The next round tries every candidate again; candidate 1 is back.
    w.connect[1] = ConnectMode::Accept;
    assert!(w.run_until(S(61), |w| w.state() == UeState::Registered));
    assert_eq!(w.ue.binding().unwrap().pcscf, "pcscf.ims.test:5062");
}

#[test]
fn a_certificate_failure_still_stops_without_trying_the_other_candidates() {
    let mut w = World::new(failover_config());
    w.candidate_servers.insert(
        0,
        imstls_testkit::tls::server_config(&pki(), CertKind::Expired, TlsVersions::Both, false)
            .unwrap(),
    );
    w.start_registration();
    assert_eq!(w.state(), UeState::Closed);
    assert_eq!(connecting_times(&w).len(), 1, "{:?}", w.codes());
    assert_eq!(w.ue.next_timeout(), None);
    let Some((
        _,
        Event::RegistrationFailed {
            reason, candidates, ..
        },
    )) = w.last("registration_failed")
    else {
        unreachable!()
    };
    assert_eq!(reason, &FailureReason::Certificate);
    assert_eq!(
        listed(candidates),
        vec![(0, "pcscf.ims.test:5061", "expired")]
    );
}

// ----- invariant 4: certificate failure -------------------------------------------------

#[test]
fn a_rejected_certificate_puts_the_alert_on_the_wire_then_closes_and_never_retries() {
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Expired,
        TlsVersions::Both,
        RegistrarConfig::default(),
    );
    w.start_registration();
    assert_eq!(w.state(), UeState::Closed);
    let flow = w.closed[0];
    let Some((_, Event::CertificateRejected { failure, .. })) = w.last("certificate_rejected")
    else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(failure.certificate().unwrap().code(), "expired");
    assert_eq!(
        failure.alert_sent,
        Some(AlertDescription::CertificateExpired)
    );
    let Some((
        _,
        Event::RegistrationFailed {
            reason, retrying, ..
        },
    )) = w.last("registration_failed")
    else {
        unreachable!()
    };
    assert_eq!(*reason, FailureReason::Certificate);
    assert!(!retrying);
    // The server received the alert before the connection closed.
    let (_, core) = w.finished.iter().find(|(f, _)| *f == flow).unwrap();
    assert!(core.observations().contains(&Observation::AlertReceived {
        description: AlertDescription::CertificateExpired
    }));
    // Nothing is scheduled: no automatic retry, ever.
    assert_eq!(w.ue.next_timeout(), None);
    w.advance(S(86_400));
    assert_eq!(connecting_times(&w).len(), 1);
    assert!(w.ue.profile().sessions().is_empty());
    assert!(w.ue.binding().is_none(), "identities were dropped");
    // Only an explicit new registration tries again.
    w.set_server(CertKind::Good, TlsVersions::Both, false);
    w.register();
}

#[test]
fn every_certificate_failure_kind_reaches_the_app_with_its_reason_and_alert() {
    for (kind, code, alert) in [
        (
            CertKind::NotYetValid,
            "not_yet_valid",
            AlertDescription::CertificateExpired,
        ),
        (
            CertKind::WrongName,
            "name_mismatch",
            AlertDescription::BadCertificate,
        ),
        (
            CertKind::UnknownCa,
            "unknown_issuer",
            AlertDescription::UnknownCA,
        ),
        (
            CertKind::ClientAuthEkuOnly,
            "wrong_usage",
            AlertDescription::UnsupportedCertificate,
        ),
    ] {
        let mut w = World::with(
            base_config(&pki()),
            kind,
            TlsVersions::Both,
            RegistrarConfig::default(),
        );
        w.start_registration();
        let Some((_, Event::CertificateRejected { failure, .. })) = w.last("certificate_rejected")
        else {
            panic!("{kind:?}: {:?}", w.codes())
        };
        assert_eq!(failure.certificate().unwrap().code(), code, "{kind:?}");
        assert_eq!(failure.alert_sent, Some(alert), "{kind:?}");
        let (_, core) = &w.finished[0];
        assert!(
            core.observations()
                .contains(&Observation::AlertReceived { description: alert }),
            "{kind:?}: {:?}",
            core.observations()
        );
        assert_eq!(w.state(), UeState::Closed);
    }
}

// ----- invariant 5: registration errors -------------------------------------------------

#[test]
fn a_403_closes_the_flow_deletes_the_session_and_stops() {
    let registrar = RegistrarConfig {
        reject_all_with: Some(403),
        ..RegistrarConfig::default()
    };
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Both,
        registrar,
    );
    w.start_registration();
    let Some((
        _,
        Event::RegistrationFailed {
            status,
            reason,
            retrying,
            ..
        },
    )) = w.last("registration_failed")
    else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(
        (*status, reason, *retrying),
        (Some(403), &FailureReason::Rejected, false)
    );
    assert_eq!(w.state(), UeState::Closed);
    assert_eq!(w.closed.len(), 1);
    assert!(
        w.ue.profile().sessions().is_empty(),
        "O.3.1.1: session deleted"
    );
    assert_eq!(w.ue.next_timeout(), None);
}

#[test]
fn a_stale_challenge_is_retried_on_the_same_flow() {
    let mut w = world();
    w.registrar.set_stale_next();
    w.register();
    let stale: Vec<bool> = w
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Challenged { stale, .. } => Some(*stale),
            _ => None,
        })
        .collect();
    assert_eq!(stale, vec![false, true]);
    assert_eq!(connecting_times(&w).len(), 1, "O.3.1.3: same flow");
    let Some((_, Event::RegisterNow { reason, .. })) = w
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::RegisterNow { .. }))
        .nth(2)
    else {
        unreachable!()
    };
    assert_eq!(*reason, RegisterReason::Challenge { stale: true });
}

#[test]
fn a_503_with_retry_after_backs_off_at_least_that_long_then_retries() {
    let registrar = RegistrarConfig {
        reject_all_with: Some(503),
        retry_after: Some(300),
        ..RegistrarConfig::default()
    };
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Both,
        registrar,
    );
    w.start_registration();
    let Some((
        _,
        Event::RegistrationFailed {
            status: Some(503),
            retrying: true,
            ..
        },
    )) = w.last("registration_failed")
    else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(w.state(), UeState::BackingOff);
    assert!(backoff_delays(&w)[0] >= S(300));
    assert!(w.ue.profile().sessions().is_empty());
    w.registrar.set_reject_all_with(None);
    assert!(w.run_until(S(400), |w| w.state() == UeState::Registered));
    assert!(w.elapsed() >= S(300));
}

#[test]
fn an_unanswered_register_fails_the_procedure_after_timer_f_and_a_new_one_follows() {
    let mut w = world();
    // The P-CSCF answers the first REGISTER (401) and then goes silent.
    w.peer_answer_limit = Some(1);
    w.start_registration();
    assert_eq!(w.state(), UeState::Registering);
    w.advance(S(31));
    assert_eq!(w.state(), UeState::Registering);
    w.advance(S(1));
    let Some((
        at,
        Event::RegistrationFailed {
            reason,
            retrying,
            status,
            ..
        },
    )) = w.last("registration_failed")
    else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(
        (*at, reason, *retrying, *status),
        (S(32), &FailureReason::Timeout, true, None)
    );
    assert_eq!(w.state(), UeState::BackingOff);
    w.peer_answer_limit = None;
    assert!(w.run_until(S(200), |w| w.state() == UeState::Registered));
    assert_eq!(connecting_times(&w).len(), 2);
}

#[test]
fn a_stack_that_never_sends_register_is_bounded_too() {
    let mut w = world();
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    w.advance(S(32));
    assert_eq!(w.state(), UeState::BackingOff);
    assert_eq!(w.count("registration_failed"), 1);
}

// ----- invariant 6: re-registration -----------------------------------------------------

fn refresh_times(w: &World) -> Vec<Duration> {
    w.events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::RegisterNow {
                reason: RegisterReason::Refresh,
                ..
            } => Some(*t),
            _ => None,
        })
        .collect()
}

#[test]
fn a_3600s_registration_is_refreshed_600s_before_expiry_on_the_same_flow() {
    let mut w = registered_world();
    let flow = w.ue.current_flow();
    w.advance(S(2999));
    assert!(refresh_times(&w).is_empty());
    w.advance(S(1));
    assert_eq!(refresh_times(&w), vec![S(3000)]);
    assert_eq!(w.state(), UeState::Registered);
    assert_eq!(w.ue.current_flow(), flow, "O.4.3: over the existing flow");
    assert_eq!(connecting_times(&w).len(), 1);
    let Some((at, Event::Registered { .. })) = w.last("registered") else {
        unreachable!()
    };
    assert_eq!(*at, S(3000));
    w.advance(S(3000));
    assert_eq!(refresh_times(&w), vec![S(3000), S(6000)]);
}

#[test]
fn a_1200s_registration_is_refreshed_at_half_time() {
    let mut w = world();
    w.ua = Ua::new(UaConfig {
        expires: 1200,
        ..UaConfig::default()
    });
    w.register();
    let Some((
        _,
        Event::Registered {
            expires,
            refresh_in,
            ..
        },
    )) = w.last("registered")
    else {
        unreachable!()
    };
    assert_eq!((*expires, *refresh_in), (S(1200), S(600)));
    w.advance(S(600));
    assert_eq!(refresh_times(&w), vec![S(600)]);
}

#[test]
fn an_unanswered_reregister_means_a_new_flow_and_a_fresh_registration() {
    let pki = pki();
    let mut w = World::new(base_config(&pki).keepalive(KeepAlive {
        enabled: false,
        ..KeepAlive::default()
    }));
    w.register();
    let old = w.ue.current_flow().unwrap();
    w.peer().set_answer_limit(Some(0));
    w.advance(S(3000));
    assert_eq!(refresh_times(&w), vec![S(3000)]);
    w.advance(S(32));
    let Some((at, Event::ConnectionLost { reason, .. })) = w.last("connection_lost") else {
        panic!("{:?}", w.codes())
    };
    assert_eq!((*at, reason), (S(3032), &LossReason::RefreshTimeout));
    assert_eq!(*connecting_times(&w).last().unwrap(), S(3032));
    assert_ne!(w.ue.current_flow(), Some(old));
    assert_eq!(w.state(), UeState::Registered);
}

// ----- invariant 7: keep-alive ----------------------------------------------------------

#[test]
fn keepalives_go_every_95_to_120_s_without_a_flow_timer() {
    let mut w = registered_world();
    w.advance(S(1000));
    let pings = w.times("keepalive_sent");
    assert_eq!(pings[0], S(0), "first ping right after registering");
    for pair in pings.windows(2) {
        assert!(in_window(pair[1] - pair[0], 95, 120), "{pings:?}");
    }
    assert_eq!(w.count("pong_received"), pings.len());
    assert_eq!(w.ue.consecutive_failures(), 0);
}

#[test]
fn keepalives_follow_80_to_100_percent_of_the_flow_timer() {
    let registrar = RegistrarConfig {
        flow_timer: Some(50),
        ..RegistrarConfig::default()
    };
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Both,
        registrar,
    );
    w.register();
    w.advance(S(500));
    let pings = w.times("keepalive_sent");
    assert!(pings.len() >= 6);
    for pair in pings.windows(2) {
        assert!(in_window(pair[1] - pair[0], 40, 50), "{pings:?}");
    }
}

#[test]
fn battery_saving_stretches_keepalives_to_672_840_s() {
    let pki = pki();
    let mut w = World::new(base_config(&pki).keepalive(KeepAlive {
        battery_saving: true,
        ..KeepAlive::default()
    }));
    w.register();
    w.advance(S(2000));
    let pings = w.times("keepalive_sent");
    for pair in pings.windows(2) {
        assert!(in_window(pair[1] - pair[0], 672, 840), "{pings:?}");
    }
}

#[test]
fn a_pong_missing_for_10_s_fails_the_flow() {
    let mut w = registered_world();
    w.silence_current();
    w.advance(S(200));
    let pings = w.times("keepalive_sent");
    let Some((lost_at, Event::ConnectionLost { reason, .. })) = w
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::ConnectionLost { .. }))
    else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(reason, &LossReason::PongTimeout);
    assert_eq!(*lost_at, pings[1] + S(10));
    assert_eq!(connecting_times(&w)[1], *lost_at, "new flow at once");
}

#[test]
fn pcscf_pings_are_answered_with_pongs() {
    let mut w = registered_world();
    w.peer().send_ping();
    w.pump();
    assert_eq!(w.count("ping_answered"), 1);
    assert!(w.peer().observations().contains(&Observation::PongReceived));
}

// ----- invariant 8: network change ------------------------------------------------------

impl NetworkChange for World {
    fn network_changed_now(&mut self) {
        self.ue.network_changed(self.now).unwrap();
        self.pump();
    }
}

trait NetworkChange {
    fn network_changed_now(&mut self);
}

#[test]
fn a_network_change_tears_the_flow_down_and_registers_again_at_once() {
    let mut w = registered_world();
    w.advance(S(10));
    let old = w.ue.current_flow().unwrap();
    w.network_changed_now();
    let Some((at, Event::ConnectionLost { reason, .. })) = w.last("connection_lost") else {
        panic!()
    };
    assert_eq!((*at, reason), (S(10), &LossReason::NetworkChanged));
    assert!(w.closed.contains(&old));
    assert_eq!(connecting_times(&w), vec![S(0), S(10)]);
    assert_eq!(w.state(), UeState::Registered);
}

#[test]
fn a_network_change_cuts_a_back_off_short() {
    let mut w = world();
    w.connect[0] = ConnectMode::Refuse;
    w.start_registration();
    assert_eq!(w.state(), UeState::BackingOff);
    w.connect[0] = ConnectMode::Accept;
    w.advance(S(5));
    w.network_changed_now();
    assert_eq!(w.state(), UeState::Registered);
    assert_eq!(w.elapsed(), S(5));
}

// ----- invariant 9: bounded waits -------------------------------------------------------

#[test]
fn connect_and_handshake_waits_are_bounded() {
    let pki = pki();
    let mut w = World::new(
        base_config(&pki)
            .connect_timeout(S(7))
            .handshake_timeout(S(9)),
    );
    w.connect[0] = ConnectMode::Blackhole;
    w.start_registration();
    w.advance(S(7));
    assert_eq!(w.times("connect_failed"), vec![S(7)]);
    assert_eq!(w.state(), UeState::BackingOff);

    let mut w = World::new(base_config(&pki).handshake_timeout(S(9)));
    w.connect[0] = ConnectMode::AcceptSilent;
    w.start_registration();
    w.advance(S(9));
    let Some((at, Event::TlsFailed { failure, .. })) = w.last("tls_failed") else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(*at, S(9));
    assert!(failure.to_string().contains("timed out"));
    assert_eq!(w.state(), UeState::BackingOff);
}

// ----- rekey, de-registration ----------------------------------------------------------

#[test]
fn rekey_on_tls13_uses_key_update_on_the_same_flow() {
    let mut w = registered_world();
    let flow = w.ue.current_flow();
    w.ue.rekey(w.now).unwrap();
    w.pump();
    let Some((_, Event::Rekeyed { method, .. })) = w.last("rekeyed") else {
        panic!()
    };
    assert_eq!(*method, RekeyMethod::KeyUpdate);
    assert_eq!(w.ue.current_flow(), flow);
    // The flow still works under the new keys.
    let message = w.ua.request("MESSAGE", "sip:bob@ims.test", b"after rekey");
    w.ue.send_sip(w.now, &message).unwrap();
    w.pump();
    assert!(w.peer().observations().contains(&Observation::RequestSeen {
        method: "MESSAGE".into()
    }));
    assert_eq!(w.state(), UeState::Registered);
}

#[test]
fn rekey_on_tls12_opens_a_new_flow_and_registers_again() {
    let mut w = World::with(
        base_config(&pki()),
        CertKind::Good,
        TlsVersions::Tls12Only,
        RegistrarConfig::default(),
    );
    w.register();
    let old = w.ue.current_flow();
    w.ue.rekey(w.now).unwrap();
    w.pump();
    let Some((_, Event::Rekeyed { method, .. })) = w.last("rekeyed") else {
        panic!()
    };
    assert_eq!(*method, RekeyMethod::NewFlow);
    assert_ne!(w.ue.current_flow(), old);
    assert_eq!(w.state(), UeState::Registered);
}

#[test]
fn rekey_before_registration_is_refused() {
    let mut w = world();
    assert!(matches!(w.ue.rekey(w.now), Err(UeError::WrongState { .. })));
}

#[test]
fn deregistration_sends_expires_0_and_closes_the_flow() {
    let mut w = registered_world();
    let flow = w.ue.current_flow().unwrap();
    w.ue.deregister(w.now).unwrap();
    w.pump();
    assert_eq!(w.state(), UeState::Idle);
    assert_eq!(w.count("deregistered"), 1);
    assert!(w.closed.contains(&flow));
    assert!(!w.registrar.is_registered(&UaConfig::default().impu));
    assert!(w.ue.binding().is_none());
    assert_eq!(w.ue.next_timeout(), None);
}

#[test]
fn deregistering_an_incomplete_procedure_just_tears_it_down() {
    let mut w = world();
    w.connect[0] = ConnectMode::Blackhole;
    w.start_registration();
    w.ue.deregister(w.now).unwrap();
    w.pump();
    assert_eq!(w.state(), UeState::Idle);
    assert_eq!(superseded(&w).state, UeState::Connecting);
}

#[test]
fn misuse_is_refused_without_changing_state() {
    let mut w = world();
    // No flow: any report answers a flow that is gone.
    let none = imstls::FlowId(1);
    assert!(matches!(
        w.ue.registration_succeeded(w.now, none, S(60), None),
        Err(UeError::StaleReport { current: None, .. })
    ));
    assert!(matches!(
        w.ue.registration_challenged(w.now, none, false),
        Err(UeError::StaleReport { current: None, .. })
    ));
    assert!(matches!(
        w.ue.registration_failed(w.now, none, 404, None),
        Err(UeError::StaleReport { current: None, .. })
    ));
    assert!(matches!(
        w.ue.deregister(w.now),
        Err(UeError::WrongState { .. })
    ));
    assert!(matches!(
        w.ue.receive(w.now, imstls::FlowId(99), b"x"),
        Err(UeError::UnknownFlow(_))
    ));
    assert_eq!(w.state(), UeState::Idle);
    w.register();
    let flow = w.ue.current_flow().unwrap();
    assert!(matches!(
        w.ue.registration_succeeded(w.now, flow, Duration::ZERO, None),
        Err(UeError::WrongState { .. })
    ));
    assert!(matches!(
        w.ue.registration_failed(w.now, flow, 200, None),
        Err(UeError::InvalidArgument(_))
    ));
}

#[test]
fn a_queued_register_now_for_a_superseded_flow_is_withdrawn() {
    // The harness records events without acting as the stack.
    let mut w2 = world();
    w2.auto_stack = false;
    w2.ue
        .start_registration(w2.now, support::identity())
        .unwrap();
    w2.pump(); // connect + TLS; RegisterNow(initial) recorded but not acted on
    let flow = w2.ue.current_flow().unwrap();
    assert!(w2
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::RegisterNow { flow: f, .. } if *f == flow)));
    // Queue a fresh RegisterNow by a challenge report, then supersede before polling.
    let register = {
        w2.ua.new_registration();
        w2.ua.next_register()
    };
    w2.ue.send_sip(w2.now, &register).unwrap();
    w2.ue.registration_challenged(w2.now, flow, false).unwrap();
    w2.ue
        .start_registration(w2.now, support::identity())
        .unwrap();
    loop {
        match w2.ue.poll_output() {
            imstls::Output::Event(Event::RegisterNow { flow: f, .. }) => {
                assert_ne!(f, flow, "an instruction for the closed flow leaked")
            }
            imstls::Output::Timeout(_) => break,
            _ => {}
        }
    }
}

#[test]
fn a_pcscf_demanding_a_client_certificate_fails_the_handshake_not_the_connection() {
    use std::sync::Arc;
    // TLS 1.3: the server's certificate_required alert arrives after the UE's Finished,
    // when the handshake already looks complete on the UE side.
    let pki = pki();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(pki.root_der()))
        .unwrap();
    let provider = imstls_testkit::tls::provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let leaf = pki.leaf(CertKind::Good);
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            leaf.chain_der
                .into_iter()
                .map(rustls::pki_types::CertificateDer::from)
                .collect(),
            rustls::pki_types::PrivateKeyDer::try_from(leaf.key_der).unwrap(),
        )
        .unwrap();
    let mut w = world();
    w.server = Arc::new(server);
    w.start_registration();
    let Some((_, Event::TlsFailed { failure, .. })) = w.last("tls_failed") else {
        panic!("{:?}", w.codes())
    };
    assert_eq!(
        failure.kind,
        imstls::TlsFailureKind::ClientCertificateRequested,
        "{failure}"
    );
    assert_eq!(
        failure.alert_received,
        Some(AlertDescription::CertificateRequired)
    );
    assert_eq!(w.count("connection_lost"), 0, "{:?}", w.codes());
    assert_eq!(
        w.state(),
        UeState::Closed,
        "no retry against a policy it cannot meet"
    );
    assert_eq!(w.count("registered"), 0);
}

#[test]
fn a_pcscf_that_closes_before_answering_anything_fails_the_attempt() {
    let mut w = world();
    w.peer_answer_limit = Some(0);
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    w.peer().close_notify();
    w.pump();
    assert_eq!(w.count("connection_lost"), 0, "{:?}", w.codes());
    assert_eq!(w.count("tls_failed"), 1, "{:?}", w.codes());
    assert_eq!(w.state(), UeState::BackingOff);
}

#[test]
fn a_late_answer_to_a_refresh_overtaken_by_deregistration_is_accepted() {
    let mut w = registered_world();
    w.advance(S(3000)); // refresh goes out and is answered at once; send one by hand instead
    let refresh = w.ua.next_register();
    w.auto_stack = false;
    w.ue.send_sip(w.now, &refresh).unwrap();
    w.ue.deregister(w.now).unwrap();
    let flow = w.ue.current_flow().unwrap();
    assert_eq!(
        w.ue.registration_succeeded(w.now, flow, S(3600), None),
        Ok(())
    );
    assert_eq!(w.ue.registration_challenged(w.now, flow, false), Ok(()));
    assert_eq!(w.state(), UeState::Deregistering);
}

/// A stack that reads the socket itself: the first REGISTER is sent by hand, nothing answered
/// yet; returns its flow.
fn first_register_sent_by_a_silent_stack(w: &mut World) -> imstls::FlowId {
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    let register = {
        w.ua.new_registration();
        w.ua.next_register()
    };
    w.ue.send_sip(w.now, &register).unwrap();
    w.ue.current_flow().unwrap()
}

/// What the simulated P-CSCF of a closed `flow` observed.
fn closed_peer_log(w: &World, flow: imstls::FlowId) -> &[Observation] {
    let (_, peer) = w
        .finished
        .iter()
        .find(|(f, _)| *f == flow)
        .expect("the flow was closed");
    peer.observations()
}

/// RFC 8446 §6.1: "Each party MUST send a "close_notify" alert before closing its write side
/// of the connection, unless it has already sent some error alert." (RFC 5246 §7.2.1 asks the
/// same of TLS 1.2.)
#[test]
fn a_close_notify_from_the_pcscf_is_answered_with_one() {
    let mut w = registered_world();
    let flow = w.ue.current_flow().unwrap();
    w.peer().close_notify();
    w.pump();
    assert_eq!(w.count("connection_lost"), 1, "{:?}", w.codes());
    let seen = closed_peer_log(&w, flow);
    assert!(seen.contains(&Observation::CloseNotifySent), "{seen:?}");
    assert!(seen.contains(&Observation::PeerClosed), "{seen:?}");
    assert!(
        !seen.iter().any(|o| matches!(o, Observation::TlsError(_))),
        "{seen:?}"
    );
}

/// The same rule when the UE ends a healthy flow itself after a final rejection (O.3.1.1).
#[test]
fn a_rejected_registration_closes_the_flow_with_close_notify() {
    let mut w = world();
    let flow = first_register_sent_by_a_silent_stack(&mut w);
    w.pump();
    w.ue.registration_failed(w.now, flow, 403, None).unwrap();
    w.pump();
    assert_eq!(w.state(), UeState::Closed);
    let seen = closed_peer_log(&w, flow);
    assert!(seen.contains(&Observation::PeerClosed), "{seen:?}");
    assert!(
        seen.contains(&Observation::TransportClosed { clean: true }),
        "{seen:?}"
    );
}

/// Drains the engine by hand (nothing reaches the peer) and returns the events.
fn drain_events(w: &mut World) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match w.ue.poll_output() {
            imstls::Output::Event(event) => events.push(event),
            imstls::Output::Timeout(_) => return events,
            _ => {}
        }
    }
}

fn asks_for_deregister(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::RegisterNow {
                reason: RegisterReason::Deregister,
                ..
            }
        )
    })
}

/// RFC 3261 §10.2: "A UA MUST NOT send a new registration (that is, containing new Contact
/// header field values, as opposed to a retransmission) until it has received a final response
/// from the registrar for the previous one or the previous REGISTER request has timed out."
#[test]
fn deregistering_while_a_refresh_is_unanswered_waits_for_its_final_answer() {
    let mut w = registered_world();
    w.advance(S(3000));
    let refresh = w.ua.next_register();
    w.auto_stack = false;
    w.ue.send_sip(w.now, &refresh).unwrap();
    let flow = w.ue.current_flow().unwrap();
    drain_events(&mut w);
    w.ue.deregister(w.now).unwrap();
    let events = drain_events(&mut w);
    assert!(
        !asks_for_deregister(&events),
        "de-REGISTER asked for while the refresh is unanswered: {events:?}"
    );
    let deregister = w.ua.next_register();
    assert_eq!(
        w.ue.send_sip(w.now, &deregister),
        Err(UeError::RegisterInFlight)
    );
    // The refresh's 200 arrives: now the de-REGISTER may go, and its own answer ends it.
    w.ue.registration_succeeded(w.now, flow, S(3600), None)
        .unwrap();
    assert!(asks_for_deregister(&drain_events(&mut w)));
    assert_eq!(w.state(), UeState::Deregistering);
    w.ue.send_sip(w.now, &deregister).unwrap();
    w.ue.registration_succeeded(w.now, flow, S(0), None)
        .unwrap();
    assert_eq!(w.state(), UeState::Idle);
}

#[test]
fn deregistering_while_a_refresh_is_unanswered_goes_ahead_when_the_refresh_times_out() {
    let mut w = registered_world();
    w.advance(S(3000));
    let refresh = w.ua.next_register();
    w.auto_stack = false;
    w.ue.send_sip(w.now, &refresh).unwrap();
    drain_events(&mut w);
    w.ue.deregister(w.now).unwrap();
    assert!(!asks_for_deregister(&drain_events(&mut w)));
    // No answer: once the refresh's own timeout has passed, the de-REGISTER is asked for.
    let deadline =
        w.ue.next_timeout()
            .expect("the refresh's timeout is scheduled");
    w.ue.handle_timeout(deadline);
    assert!(asks_for_deregister(&drain_events(&mut w)));
    assert_eq!(w.state(), UeState::Deregistering);
}

#[test]
fn a_registration_reported_before_any_pcscf_data_is_a_proven_flow() {
    // A stack that reads the socket itself may report the 200 OK before imstls saw a byte.
    let mut w = world();
    let flow = first_register_sent_by_a_silent_stack(&mut w);
    w.ue.registration_succeeded(w.now, flow, S(3600), None)
        .unwrap();
    // Then the flow breaks: a lost registration, not a failed handshake attempt.
    w.ue.receive(w.now, flow, b"\x17\x03\x03\x00\x05garbage")
        .unwrap();
    w.check_invariants = true;
    w.pump();
    assert_eq!(w.count("connection_lost"), 1, "{:?}", w.codes());
    assert!(w.ue.check_invariants().is_ok());
}

/// The REGISTER answer that arrived on `flow` (last one), as the stack's UA reads it.
fn held_answer(w: &mut World, flow: imstls::FlowId) -> imstls_testkit::ua::UaOutcome {
    let message = w
        .events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::SipReceived { flow: f, message } if *f == flow => Some(message.clone()),
            _ => None,
        })
        .expect("an answer on the old flow");
    let message = imstls_testkit::sip::SipMessage::parse(&message).expect("valid SIP");
    w.ua.handle_response(&message)
}

/// Starts a procedure by hand (no automatic stack) and sends its REGISTER; returns its flow.
fn procedure_with_register_out(w: &mut World) -> imstls::FlowId {
    w.ue.start_registration(w.now, support::identity()).unwrap();
    w.pump();
    let flow = w.ue.current_flow().unwrap();
    let register = {
        w.ua.new_registration();
        w.ua.next_register()
    };
    w.ue.send_sip(w.now, &register).unwrap();
    w.pump();
    flow
}

/// What the stack does with an answer that arrived on `flow`.
fn report_answer(
    w: &mut World,
    flow: imstls::FlowId,
    outcome: imstls_testkit::ua::UaOutcome,
) -> Result<(), UeError> {
    use imstls_testkit::ua::UaOutcome;
    match outcome {
        UaOutcome::Challenged { stale } => w.ue.registration_challenged(w.now, flow, stale),
        UaOutcome::Registered { expires, .. } => {
            w.ue.registration_succeeded(w.now, flow, S(expires.into()), None)
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn an_old_flows_answer_reported_after_a_new_procedure_started_is_refused() {
    use imstls_testkit::ua::UaOutcome;
    for want_200 in [false, true] {
        let mut w = world();
        w.auto_stack = false;
        let old = procedure_with_register_out(&mut w);
        let mut held = held_answer(&mut w, old);
        assert!(matches!(held, UaOutcome::Challenged { .. }), "{held:?}");
        if want_200 {
            report_answer(&mut w, old, held).unwrap();
            w.pump();
            let register = w.ua.next_register();
            w.ue.send_sip(w.now, &register).unwrap();
            w.pump();
            held = held_answer(&mut w, old);
            assert!(matches!(held, UaOutcome::Registered { .. }), "{held:?}");
        }
        // The stack had not handled that answer yet when a new procedure started.
        let new = procedure_with_register_out(&mut w);
        assert_ne!(old, new);
        assert_eq!(w.state(), UeState::Registering);
        let result = report_answer(&mut w, old, held);
        w.pump();
        assert_eq!(
            result,
            Err(UeError::StaleReport {
                flow: old,
                current: Some(new)
            }),
            "the stale answer (200: {want_200}) was applied: now {:?}, {:?}",
            w.state(),
            w.codes()
        );
        // A 3xx-6xx from the old flow is refused the same way and does not end the new one.
        assert!(matches!(
            w.ue.registration_failed(w.now, old, 403, None),
            Err(UeError::StaleReport { .. })
        ));
        w.pump();
        assert_eq!(w.state(), UeState::Registering, "{:?}", w.codes());
    }
}

// ----- bounded under a hostile peer (issue 12 §5) ----------------------------------------

#[test]
fn a_burst_of_pings_in_one_read_gets_one_pong() {
    let mut w = registered_world();
    let answered = w.count("ping_answered");
    let pongs = |w: &mut World| {
        w.peer()
            .observations()
            .iter()
            .filter(|o| **o == Observation::PongReceived)
            .count()
    };
    let pongs_before = pongs(&mut w);
    for _ in 0..6 {
        w.peer().send_ping();
    }
    w.deliver_tampered(|_| {}); // the six ping records arrive in one read
    assert_eq!(w.count("ping_answered") - answered, 1, "{:?}", w.codes());
    assert_eq!(pongs(&mut w) - pongs_before, 1);
    // The next read's ping is answered again: one pong per read, not one per flow.
    w.peer().send_ping();
    w.deliver_tampered(|_| {});
    assert_eq!(w.count("ping_answered") - answered, 2);
}

/// What the undrained engine output queue holds: payload bytes plus one `Output` each.
fn drain_footprint(ue: &mut imstls::Ue) -> (usize, Vec<imstls::Output>) {
    use imstls::Output;
    let mut bytes = 0;
    let mut outputs = Vec::new();
    loop {
        let output = ue.poll_output();
        bytes += std::mem::size_of::<Output>()
            + match &output {
                Output::Transmit { data, .. } => data.len(),
                Output::Event(Event::SipReceived { message, .. }) => message.len(),
                Output::Timeout(_) => return (bytes, outputs),
                _ => 0,
            };
        outputs.push(output);
    }
}

#[test]
fn an_undrained_engine_output_queue_is_capped_and_fails_the_flow() {
    const DEFAULT_CAP: usize = 1024 * 1024;
    let mut w = registered_world();
    let flow = w.ue.current_flow().unwrap();
    let message = format!(
        "MESSAGE sip:alice@ims.test SIP/2.0\r\nCSeq: 1 MESSAGE\r\nX-Fill: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(900)
    );
    // The peer sends 3 MiB of requests; the caller feeds them in but never drains.
    let mut refused = false;
    for _ in 0..3000 {
        let peer = &mut w.peers.get_mut(&flow).expect("the flooding peer").core;
        peer.send_request(message.as_bytes());
        let bytes = peer.take_output();
        if w.ue.receive(w.now, flow, &bytes).is_err() {
            refused = true; // the flow is gone: later bytes of it are not taken
            break;
        }
    }
    let (queued, outputs) = drain_footprint(&mut w.ue);
    assert!(
        queued <= DEFAULT_CAP + 64 * 1024,
        "the engine held {queued} bytes for a caller that did not drain"
    );
    assert!(refused, "the flooded flow is failed");
    use imstls::Output;
    let lost = outputs.iter().find_map(|o| match o {
        Output::Event(Event::ConnectionLost { reason, .. }) => Some(reason.code()),
        _ => None,
    });
    assert_eq!(lost, Some("queue_overflow"));
    // Recovery backs off (a flood never counts as a proven flow that is retried at once).
    assert!(outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::BackingOff { .. }))));
    assert_eq!(w.state(), UeState::BackingOff);
}

#[test]
fn an_overloaded_proven_flow_is_not_retried_at_once_but_backs_off() {
    let mut w = registered_world();
    w.advance(S(1)); // the first pong arrived: the flow is proven
    assert!(w.count("pong_received") >= 1);
    let flow = w.ue.current_flow().unwrap();
    // Only the overload reasons are taken.
    assert!(matches!(
        w.ue.queue_overflowed(w.now, flow, imstls::LossReason::Eof),
        Err(UeError::InvalidArgument(_))
    ));
    assert_eq!(w.state(), UeState::Registered);
    w.ue.queue_overflowed(
        w.now,
        flow,
        imstls::LossReason::PeerNotReading { queued: 2 << 20 },
    )
    .unwrap();
    w.pump();
    let Some((_, Event::ConnectionLost { reason, .. })) = w.last("connection_lost") else {
        panic!("no loss: {:?}", w.codes());
    };
    assert_eq!(reason.code(), "peer_not_reading");
    // A flooding P-CSCF must not get an immediate reconnect (and flood again) every time.
    assert_eq!(w.state(), UeState::BackingOff, "{:?}", w.codes());
    // The lost flow takes no more input.
    assert!(matches!(
        w.ue.queue_overflowed(
            w.now,
            flow,
            imstls::LossReason::PeerNotReading { queued: 1 }
        ),
        Err(UeError::UnknownFlow(_))
    ));
}
