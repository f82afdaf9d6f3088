//! Model-based test: random sequences of stack calls, network faults, P-CSCF misbehaviour and
//! time jumps (including Doze-length ones), with the engine's invariants (`Ue::check_invariants`) checked after every
//! engine output (by the harness) and these properties checked after every step:
//!
//! - a correct stack never gets an error back from a reported answer or a REGISTER it was
//!   asked for;
//! - a UE that wants to be registered always has either a flow or a timer (nothing waits
//!   forever);
//! - a certificate failure leaves the UE closed with nothing scheduled, and the P-CSCF read
//!   the UE's fatal alert before the stream ended (the alert is queued before the Close);
//! - after a procedure is superseded (O.4.1) no session it created is left in the store;
//! - once the network heals, a UE that still wants a registration gets registered;
//! - no resumption happens past the session lifetime: a handshake resumes only while the
//!   last full handshake towards the P-CSCF (both candidates share its name) is less than
//!   the lifetime ago, and no session is stored while the UE holds no identity.
//!
//! `IMSTLS_MODEL_SEQUENCES` sets how many sequences run (default 300; the documented long run
//! uses 100 000), `IMSTLS_MODEL_SEED` the first seed. A failure prints its seed.

mod support;

use std::time::Duration;

use imstls::{Event, UeError, UeState};
use imstls_testkit::observation::Observation;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::CertKind;
use support::rng::Rng;
use support::{base_config, pki, ConnectMode, StackMode, World};

const CONNECT_MODES: [ConnectMode; 4] = [
    ConnectMode::Accept,
    ConnectMode::Refuse,
    ConnectMode::Blackhole,
    ConnectMode::AcceptSilent,
];

fn step(w: &mut World, rng: &mut Rng, log: &mut Vec<String>) {
    let action = rng.below(22);
    log.push(format!(
        "t={:?} action {action} state {:?}",
        w.elapsed(),
        w.state()
    ));
    match action {
        0 | 1 => w.start_registration(),
        2 => {
            let _ = w.ue.deregister(w.now);
            w.pump();
        }
        3 => {
            w.ue.network_changed(w.now).unwrap();
            w.pump();
        }
        4 => {
            let _ = w.ue.rekey(w.now);
            w.pump();
        }
        5..=7 => w.advance(Duration::from_millis(rng.below(5_000) as u64)),
        8 => {
            // Jump to the next deadline, whatever it is.
            if let Some(at) = w.ue.next_timeout() {
                let by = at.saturating_duration_since(w.now);
                w.advance(by);
            }
        }
        9 => w.advance(Duration::from_secs(rng.below(4_000) as u64)), // Doze
        10 => w.reset_current(),
        11 => w.eof_current(),
        12 => {
            if let Some(flow) = w.ue.current_flow() {
                if let Some(peer) = w.peers.get_mut(&flow) {
                    peer.core.close_notify();
                }
                w.pump();
            }
        }
        13 => w.silence_current(),
        14 => {
            let candidate = rng.below(w.connect.len());
            w.connect[candidate] = rng.pick(&CONNECT_MODES);
        }
        15 => match rng.below(4) {
            0 => w.registrar.set_reject_all_with(Some(403)),
            1 => w.registrar.set_reject_all_with(Some(503)),
            2 => w.registrar.set_stale_next(),
            _ => w.registrar.set_reject_all_with(None),
        },
        16 => {
            let kind = rng.pick(&[
                CertKind::Good,
                CertKind::Good,
                CertKind::Expired,
                CertKind::WrongName,
            ]);
            w.set_server(kind, TlsVersions::Both, false);
        }
        17 => w.peer_answer_limit = rng.pick(&[None, None, Some(0), Some(1), Some(2)]),
        18 => {
            let message = w.ua.request("MESSAGE", "sip:bob@ims.test", b"model");
            let state = w.state();
            match w.ue.send_sip(w.now, &message) {
                Ok(()) => assert!(
                    matches!(state, UeState::Registered | UeState::Deregistering),
                    "a MESSAGE went out in {state:?}"
                ),
                Err(UeError::RegisterFirst | UeError::WrongState { .. }) => {
                    assert_ne!(state, UeState::Registered)
                }
                Err(e) => panic!("unexpected {e}"),
            }
            w.pump();
        }
        19 => {
            if let Some(flow) = w.ue.current_flow() {
                if let Some(peer) = w.peers.get_mut(&flow) {
                    peer.core.send_ping();
                }
                w.pump();
            }
        }
        20 => {
            if let Some(flow) = w.ue.current_flow() {
                if w.peers.contains_key(&flow) {
                    w.peers.get_mut(&flow).unwrap().core.send_ping();
                    w.deliver_tampered(|b| {
                        if let Some(last) = b.last_mut() {
                            *last ^= 0x40;
                        }
                    });
                }
            }
        }
        _ => {
            w.stack_mode = rng.pick(&[
                StackMode::Auto,
                StackMode::Auto,
                StackMode::HoldAfterChallenge,
            ]);
        }
    }
}

/// What the model remembers of the handshakes seen so far.
#[derive(Default)]
struct Sessions {
    events_seen: usize,
    last_full: Option<Duration>,
    full: u64,
    resumed: u64,
}

/// The lifetime rule, checked on every handshake since the last step.
fn check_sessions(w: &World, sessions: &mut Sessions, log: &[String]) {
    let lifetime = w.ue.config().session_lifetime();
    for (at, event) in &w.events[sessions.events_seen..] {
        if let Event::TlsEstablished { details, .. } = event {
            if details.resumed {
                let since_full = sessions.last_full.map(|full| *at - full);
                assert!(
                    since_full.is_some_and(|d| d < lifetime),
                    "resumed at {at:?}, {since_full:?} after the last full handshake \
                     (lifetime {lifetime:?})\n{}",
                    log.iter()
                        .rev()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                sessions.resumed += 1;
            } else {
                sessions.last_full = Some(*at);
                sessions.full += 1;
            }
        }
    }
    sessions.events_seen = w.events.len();
}

fn check(w: &World, log: &[String]) {
    let ctx = || {
        log.iter()
            .rev()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        w.input_errors.is_empty(),
        "stack got errors {:?}\n{}",
        w.input_errors,
        ctx()
    );
    let state = w.state();
    let wants_registration = !matches!(state, UeState::Idle | UeState::Closed);
    if wants_registration {
        assert!(
            w.ue.current_flow().is_some() || w.ue.next_timeout().is_some(),
            "{state:?} with neither a flow nor a timer\n{}",
            ctx()
        );
        // Every waiting state is bounded by a timer (keep-alive or refresh when registered).
        assert!(
            w.ue.next_timeout().is_some(),
            "{state:?} waits forever\n{}",
            ctx()
        );
    }
    assert!(
        w.survivors_after_supersede.iter().all(|n| *n == 0),
        "sessions of a superseded procedure survived: {:?}\n{}",
        w.survivors_after_supersede,
        ctx()
    );
    for (flow, core) in &w.finished {
        let rejected = w
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::CertificateRejected { flow: f, .. } if f == flow));
        if !rejected {
            continue;
        }
        let seen = core.observations();
        let alert = seen
            .iter()
            .position(|o| matches!(o, Observation::AlertReceived { .. }));
        let end = seen
            .iter()
            .position(|o| matches!(o, Observation::TransportClosed { .. }));
        assert!(
            matches!((alert, end), (Some(a), Some(e)) if a < e),
            "{flow}: the P-CSCF did not read the alert before the close: {seen:?}\n{}",
            ctx()
        );
    }
    if state == UeState::Closed {
        assert_eq!(
            w.ue.next_timeout(),
            None,
            "closed but still scheduling\n{}",
            ctx()
        );
        assert!(w.ue.binding().is_none());
    }
}

fn heal_and_check_liveness(w: &mut World, log: &[String]) {
    for mode in w.connect.iter_mut() {
        *mode = ConnectMode::Accept;
    }
    w.registrar.set_reject_all_with(None);
    w.peer_answer_limit = None;
    w.stack_mode = StackMode::Auto;
    w.set_server(CertKind::Good, TlsVersions::Both, false);
    // A stuck stack (held after a challenge) ends its procedure by Timer F, then the new one
    // registers; the worst back-off is 1800 s.
    if w.state() == UeState::Deregistering {
        assert!(
            w.run_until(Duration::from_secs(100), |w| w.state() == UeState::Idle),
            "de-registration never ended"
        );
    }
    let wanted = !matches!(w.state(), UeState::Idle | UeState::Closed);
    if wanted {
        let ok = w.run_until(Duration::from_secs(4_000), |w| {
            w.state() == UeState::Registered
        });
        assert!(
            ok,
            "healed world never registered: {:?}; last events {:?}\n{}",
            w.state(),
            w.codes().iter().rev().take(12).collect::<Vec<_>>(),
            log.iter()
                .rev()
                .take(12)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    let sequences: u64 = std::env::var("IMSTLS_MODEL_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let first_seed: u64 = std::env::var("IMSTLS_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let pki = pki();
    let mut steps = 0u64;
    // (full, resumed) handshakes over all sequences.
    let mut handshakes = (0u64, 0u64);
    let mut supersede_checks = 0usize;
    let mut alert_checks = 0usize;
    let mut coverage: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for seed in first_seed..first_seed + sequences {
        let mut rng = Rng(seed);
        let builder = if rng.below(2) == 0 {
            base_config(&pki)
        } else {
            base_config(&pki).pcscf("pcscf.ims.test:5062")
        };
        let mut w = World::new(builder.random_seed(seed));
        let mut log = Vec::new();
        let mut sessions = Sessions::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let length = 10 + rng.below(40);
            for _ in 0..length {
                step(&mut w, &mut rng, &mut log);
                check(&w, &log);
                check_sessions(&w, &mut sessions, &log);
            }
            heal_and_check_liveness(&mut w, &log);
            check_sessions(&w, &mut sessions, &log);
            length
        }));
        handshakes.0 += sessions.full;
        handshakes.1 += sessions.resumed;
        for code in w.codes() {
            *coverage.entry(code).or_default() += 1;
        }
        supersede_checks += w.survivors_after_supersede.len();
        alert_checks += w.count("certificate_rejected");
        match result {
            Ok(length) => steps += length as u64,
            Err(panic) => {
                eprintln!(
                    "model test failed with IMSTLS_MODEL_SEED={seed} IMSTLS_MODEL_SEQUENCES=1"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "model test: {sequences} sequences, {steps} steps, invariants held; \
         {supersede_checks} supersedes of an incomplete procedure left no session, \
         {alert_checks} certificate rejections had the alert read before the close; \
         handshakes: {} full, {} resumed; events seen: {coverage:?}",
        handshakes.0,
        handshakes.1
    );
    if sequences >= 100 {
        assert!(
            supersede_checks > 0,
            "the model never superseded a procedure"
        );
        assert!(alert_checks > 0, "the model never rejected a certificate");
    }
    // The random walk must reach the interesting paths, or it proves little.
    if sequences >= 100 {
        for code in [
            "registered",
            "superseded",
            "connection_lost",
            "backoff",
            "certificate_rejected",
            "registration_failed",
            "deregistered",
            "challenged",
            "rekeyed",
            "connect_failed",
            "tls_failed",
        ] {
            assert!(
                coverage.get(code).copied().unwrap_or(0) > 0,
                "the model never produced {code}"
            );
        }
        assert!(handshakes.1 > 0, "the model never resumed a session");
    }
}
