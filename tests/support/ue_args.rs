#![allow(dead_code)] // each test uses part of it
//! The `ue` command line, the same for the Rust CLI and its C and Java twins (one contract,
//! `ue --help`): shared by `tests/cli_ue.rs`, `tests/c_example.rs` and `tests/jni.rs`.

use std::path::Path;

use imstls_testkit::{SimConfig, Simulator, TlsVersions, DEFAULT_IMPI, DEFAULT_IMPU};

/// The flags `ue --help` describes, in the Rust CLI and the C example (`--password ` with its
/// space, to tell it from `--password-file`).
pub const HELP_FLAGS: [&str; 15] = [
    "--pcscf",
    "--server-name",
    "--ca",
    "--pin",
    "--impi",
    "--impu",
    "--password-file",
    "--password ",
    "--expires",
    "--tls13-only",
    "--hold",
    "--json",
    "--ladder",
    "--keylog",
    "--help",
];

/// Registers the registrar's default user at `sim`, trusting the root in `ca`, with the
/// password on the command line, printing JSON.
pub fn register_args(sim: &Simulator, ca: &Path, password: &str) -> Vec<String> {
    [
        "--pcscf",
        &sim.addr().to_string(),
        "--server-name",
        sim.pki().server_name(),
        "--ca",
        &ca.display().to_string(),
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        password,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` with `--password-file FILE` in place of `--password`.
pub fn with_password_file(mut args: Vec<String>, file: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == "--password").unwrap();
    args[at] = "--password-file".into();
    args[at + 1] = file.into();
    args
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A registration held and de-registered: the events every twin prints, as JSON lines.
pub fn assert_registered_and_deregistered(stdout: &str) {
    for event in [
        "connecting",
        "tls_established",
        "challenged",
        "registered",
        "deregistered",
    ] {
        assert!(
            stdout.contains(&format!("{{\"event\":\"{event}\"")),
            "no {event} line in:\n{stdout}"
        );
    }
    assert!(stdout
        .lines()
        .all(|l| l.starts_with("{\"event\":") && l.contains("\"t_ms\":")));
}

/// The `certificate_rejected` line for an expired P-CSCF certificate: reason and alert.
pub fn assert_expired_certificate_rejected(stdout: &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"event\":\"certificate_rejected\""))
        .unwrap_or_else(|| panic!("no certificate_rejected line in:\n{stdout}"));
    assert!(line.contains("\"reason\":\"expired\""), "{line}");
    assert!(line.contains("\"alert\":\"certificate_expired\""), "{line}");
}

/// A P-CSCF that speaks TLS 1.2 only, with `sim`'s PKI (a TLS 1.3-only UE fails with it).
pub fn tls12_only(sim: &Simulator) -> Simulator {
    Simulator::start_with_pki(
        SimConfig {
            tls_versions: TlsVersions::Tls12Only,
            ..SimConfig::default()
        },
        sim.pki_arc(),
    )
    .expect("simulator")
}

/// `127.0.0.1:PORT` with nobody listening: a port bound, learnt and closed again.
pub fn unreachable_pcscf() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// The back-off lists the round's failed candidate `pcscf`, refused.
pub fn assert_backoff_lists_refused(stdout: &str, pcscf: &str) {
    let entry = format!(
        "\"candidates\":[{{\"candidate\":0,\"target\":\"{pcscf}\",\"reason\":\"connect_refused\""
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"event\":\"backoff\"") && l.contains(&entry)),
        "{stdout}"
    );
}
