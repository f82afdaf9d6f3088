//! The key log for Wireshark (issue 16 §4), checked against what does not share imstls's
//! code: the P-CSCF's own rustls `KeyLog` records the same secrets for the same client random.
//! `tests/cli_ue.rs` has Wireshark decrypt a real capture with the CLI's key log.

mod support;

use std::sync::{Arc, Mutex};

use imstls::{Event, KeyLogSink};
use imstls_testkit::tls::TlsVersions;
use imstls_testkit::CertKind;
use support::{base_config, pki, World};

/// Collects the lines imstls writes.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl KeyLogSink for Lines {
    fn write_line(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

/// The P-CSCF side's rustls key log, formatted here (lowercase hex, NSS order).
#[derive(Debug, Default)]
struct ServerKeys(Mutex<Vec<String>>);

impl rustls::KeyLog for ServerKeys {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        self.0
            .lock()
            .unwrap()
            .push(format!("{label} {} {}", hex(client_random), hex(secret)));
    }
}

#[test]
fn the_key_log_holds_the_secrets_the_pcscf_derived_and_only_when_configured() {
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let lines = Arc::new(Lines::default());
        let mut w = World::new(base_config(&pki()).key_log_sink(lines.clone()));
        w.set_server(CertKind::Good, versions, false);
        let server_keys = Arc::new(ServerKeys::default());
        let mut server = (*w.server).clone();
        server.key_log = server_keys.clone();
        w.server = Arc::new(server);
        w.register();
        assert!(w.ue.config().key_log_enabled());

        let ours = lines.0.lock().unwrap().clone();
        let theirs = server_keys.0.lock().unwrap().clone();
        assert!(!ours.is_empty(), "{versions:?}");
        // The same lines, label by label, as the P-CSCF's rustls derived.
        let mut ours_sorted = ours.clone();
        ours_sorted.sort();
        let mut theirs_sorted = theirs.clone();
        theirs_sorted.sort();
        assert_eq!(ours_sorted, theirs_sorted, "{versions:?}");

        // The warning right after `connecting`, on that flow.
        let codes = w.codes();
        let at = codes.iter().position(|c| *c == "connecting").unwrap();
        assert_eq!(codes[at + 1], "key_log_enabled", "{codes:?}");
        let warning = w
            .events
            .iter()
            .find(|(_, e)| matches!(e, Event::KeyLogEnabled { .. }))
            .unwrap();
        assert_eq!(warning.1.flow(), w.ue.current_flow());
        assert!(w.ue.conformance_log().any(|e| e.event == "key_log_enabled"));
    }

    // Not configured: no key log, no warning, whatever the environment says.
    std::env::set_var("SSLKEYLOGFILE", "/dev/null");
    let mut w = World::new(base_config(&pki()));
    w.register();
    assert!(!w.ue.config().key_log_enabled());
    assert!(!w.codes().contains(&"key_log_enabled"));
}

#[test]
fn an_unwritable_key_log_file_is_a_configuration_error_naming_the_field() {
    let err = base_config(&pki())
        .key_log_file("/nonexistent-dir/keys.log")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "key_log");
    assert!(
        err.to_string()
            .starts_with("key_log: cannot open /nonexistent-dir/keys.log"),
        "{err}"
    );
    // And turning it off again builds.
    assert!(base_config(&pki())
        .key_log_file("/nonexistent-dir/keys.log")
        .key_log_off()
        .build()
        .is_ok());
}

/// Every log record of this test binary, at Trace (rustls's own logging included).
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.target(), record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn no_key_log_secret_reaches_a_log_line_or_the_conformance_log() {
    log::set_logger(&LOGGER).expect("the only logger in this binary");
    log::set_max_level(log::LevelFilter::Trace);
    let lines = Arc::new(Lines::default());
    let mut w = World::new(base_config(&pki()).key_log_sink(lines.clone()));
    w.register();
    let mut texts = LOGGER.0.lock().unwrap().clone();
    assert!(texts.len() > 10, "logging was captured");
    texts.extend(w.ue.conformance_log().map(|e| format!("{e:?}")));
    texts.extend(w.events.iter().map(|(_, e)| format!("{e} {e:?}")));
    texts.push(format!("{:?}", w.ue.config()));
    let secrets: Vec<String> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(secrets.len(), 5);
    for secret in &secrets {
        // Hex, and the raw bytes as Debug would print them.
        let bytes: Vec<u8> = (0..secret.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&secret[i..i + 2], 16).unwrap())
            .collect();
        let debug = format!("{bytes:?}");
        let debug = &debug[1..debug.len() - 1];
        for text in &texts {
            assert!(
                !text.contains(secret.as_str()) && !text.contains(debug),
                "a key-log secret in: {text}"
            );
        }
    }
}
