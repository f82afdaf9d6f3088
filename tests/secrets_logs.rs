//! No secret or personal identifier in any log line, at any level: a capturing `log` logger
//! at Trace (which also catches rustls's own logging) records every line while the engine
//! registers (with Digest challenges), fails a certificate, is rejected, is superseded, loses
//! and recovers its flow, and de-registers. Every line, every conformance-log entry and every
//! event's display text is then searched for the IMPI, the IMPU, the password and every Digest
//! nonce the registrar issued.

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use imstls::UeState;
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::{CertKind, DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD};
use log::{Level, LevelFilter, Log, Metadata, Record};
use support::{base_config, pki, World};

struct Capture;

static LINES: Mutex<Vec<(Level, String, String)>> = Mutex::new(Vec::new());

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        LINES.lock().unwrap().push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

fn note_nonce(w: &World, nonces: &mut BTreeSet<String>) {
    if let Some(challenge) = w.ua.last_challenge() {
        nonces.insert(challenge.nonce.clone());
    }
}

#[test]
fn no_identity_password_or_nonce_reaches_any_log_line() {
    log::set_logger(&LOGGER).expect("the only logger in this binary");
    log::set_max_level(LevelFilter::Trace);
    let mut nonces = BTreeSet::new();

    // Registrations with challenges, a stale nonce, refresh, keep-alives, terminating request.
    let mut w = World::new(base_config(&pki()));
    w.register();
    note_nonce(&w, &mut nonces);
    w.registrar.set_stale_next();
    w.advance(Duration::from_secs(3100)); // refresh, challenged stale
    note_nonce(&w, &mut nonces);
    let message = w.ua.request("MESSAGE", DEFAULT_IMPU, b"hello");
    w.ue.send_sip(w.now, &message).unwrap();
    w.pump();
    // Loss and recovery, a tampered record, a network change.
    w.reset_current();
    w.advance(Duration::from_secs(5));
    note_nonce(&w, &mut nonces);
    w.peer().send_ping();
    w.deliver_tampered(|b| {
        let n = b.len();
        b[n - 1] ^= 1;
    });
    w.advance(Duration::from_secs(5));
    w.ue.network_changed(w.now).unwrap();
    w.advance(Duration::from_secs(5));
    note_nonce(&w, &mut nonces);
    // A supersede of an incomplete (challenged) registration.
    w.stack_mode = support::StackMode::HoldAfterChallenge;
    w.start_registration();
    note_nonce(&w, &mut nonces);
    w.stack_mode = support::StackMode::Auto;
    w.start_registration();
    w.advance(Duration::from_secs(5));
    note_nonce(&w, &mut nonces);
    assert_eq!(w.state(), UeState::Registered);
    // De-registration.
    w.ue.deregister(w.now).unwrap();
    w.advance(Duration::from_secs(5));
    // A rejected registration (403) and a certificate failure.
    w.registrar.set_reject_all_with(Some(403));
    w.start_registration();
    w.advance(Duration::from_secs(5));
    note_nonce(&w, &mut nonces);
    w.registrar.set_reject_all_with(None);
    w.set_server(CertKind::Expired, TlsVersions::Both, false);
    w.start_registration();
    w.advance(Duration::from_secs(5));
    assert_eq!(w.state(), UeState::Closed);
    assert!(
        w.input_errors.is_empty(),
        "the harness's stack got errors: {:?}",
        w.input_errors
    );

    let mut texts: Vec<(String, String)> = LINES
        .lock()
        .unwrap()
        .iter()
        .map(|(level, target, line)| (format!("{level} {target}"), line.clone()))
        .collect();
    for entry in w.ue.conformance_log() {
        texts.push(("conformance log".into(), format!("{entry:?}")));
    }
    for (_, event) in &w.events {
        texts.push(("event display".into(), event.to_string()));
    }

    // The search must have something to search: every source logged, every level in use.
    let lines = LINES.lock().unwrap();
    let targets: BTreeSet<&str> = lines
        .iter()
        .map(|(_, t, _)| t.split("::").next().unwrap_or_default())
        .collect();
    let levels: BTreeSet<Level> = lines.iter().map(|(l, _, _)| *l).collect();
    let _ = writeln!(
        std::io::stderr(),
        "{} log lines from {targets:?} at {levels:?}; {} nonces searched",
        lines.len(),
        nonces.len()
    );
    assert!(targets.contains("imstls") && targets.contains("rustls"));
    assert!(levels.contains(&Level::Trace) && levels.contains(&Level::Debug));
    assert!(nonces.len() >= 3, "several challenges were issued");
    drop(lines);

    let user = DEFAULT_IMPI.split('@').next().unwrap();
    let mut secrets: Vec<(&str, String)> = vec![
        ("IMPI", DEFAULT_IMPI.to_owned()),
        ("IMPU", DEFAULT_IMPU.to_owned()),
        ("user part", format!("{user}@")),
        ("password", DEFAULT_PASSWORD.to_owned()),
    ];
    secrets.extend(nonces.iter().map(|n| ("nonce", n.clone())));
    // The search can fail: a line carrying a nonce is caught.
    let nonce = nonces.iter().next().unwrap();
    let control = [("control".to_owned(), format!("challenge nonce={nonce}"))];
    assert_eq!(leaks(&control, &secrets).len(), 1);
    let found = leaks(&texts, &secrets);
    assert!(found.is_empty(), "secrets in logs:\n{}", found.join("\n"));
}

fn leaks(texts: &[(String, String)], secrets: &[(&str, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (source, text) in texts {
        for (what, secret) in secrets {
            if text.contains(secret.as_str()) {
                found.push(format!("{what} in [{source}]: {text}"));
            }
        }
    }
    found
}
