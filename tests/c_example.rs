//! Builds `examples/c/ue.c` (the C twin of `examples/ue.rs`, on the managed driver) against
//! the shared library cargo just built — through its soname, `libimstls.so.0` — and checks
//! its exit-code contract against loopback simulators: 0 registered and de-registered,
//! 1 rejected, 2 usage/configuration, 3 certificate rejected, 4 other TLS failure,
//! 5 connect failure.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use imstls_testkit::{
    SimConfig, Simulator, TlsVersions, DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD,
};
use support::*;

/// The example binary, built once per test process.
fn example() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_c_ue("example"))
}

fn ue(args: &[&str]) -> Output {
    let out = Command::new(example())
        .args(args)
        .output()
        .expect("the example runs");
    say(&format!(
        "examples/c/ue {}: exit {:?}\n{}",
        args.join(" ").replace(DEFAULT_PASSWORD, "<password>"),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    ));
    out
}

fn register_args<'a>(sim: &Simulator, ca: &'a str, password: &'a str) -> Vec<String> {
    [
        "--pcscf",
        &sim.addr().to_string(),
        "--server-name",
        sim.pki().server_name(),
        "--ca",
        ca,
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

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn registers_holds_and_deregisters_with_exit_0() {
    let dir = build_dir("example-ok");
    let sims = start_sims(&dir);
    let ca = sims.ca.to_string_lossy().into_owned();
    let mut args = register_args(&sims.good, &ca, DEFAULT_PASSWORD);
    args.extend(["--hold".into(), "1".into()]);
    let out = ue(&strs(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
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
    assert!(!stdout.contains(DEFAULT_PASSWORD) && !stdout.contains(DEFAULT_IMPI));
    assert!(sims.good.registrar().stats().successes >= 2); // REGISTER and de-REGISTER
}

#[test]
fn a_rejected_certificate_exits_3_with_reason_and_alert() {
    let dir = build_dir("example-cert");
    let sims = start_sims(&dir);
    let ca = sims.ca.to_string_lossy().into_owned();
    let out = ue(&strs(&register_args(&sims.expired, &ca, DEFAULT_PASSWORD)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"event\":\"certificate_rejected\""))
        .unwrap_or_else(|| panic!("no certificate_rejected line in:\n{stdout}"));
    assert!(line.contains("\"reason\":\"expired\""), "{line}");
    assert!(line.contains("\"alert\":\"certificate_expired\""), "{line}");
}

#[test]
fn a_wrong_password_exits_1() {
    let dir = build_dir("example-rejected");
    let sims = start_sims(&dir);
    let ca = sims.ca.to_string_lossy().into_owned();
    let out = ue(&strs(&register_args(&sims.good, &ca, "not-the-password")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("\"status\":403"), "{stdout}");
}

#[test]
fn a_tls_failure_other_than_the_certificate_exits_4() {
    let dir = build_dir("example-tls");
    let sims = start_sims(&dir);
    // A TLS 1.2-only P-CSCF and a UE restricted to TLS 1.3: no common version.
    let tls12 = Simulator::start_with_pki(
        SimConfig {
            tls_versions: TlsVersions::Tls12Only,
            ..SimConfig::default()
        },
        sims.good.pki_arc(),
    )
    .expect("simulator");
    let ca = sims.ca.to_string_lossy().into_owned();
    let mut args = register_args(&tls12, &ca, DEFAULT_PASSWORD);
    args.push("--tls13-only".into());
    let out = ue(&strs(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("\"event\":\"tls_failed\""), "{stdout}");
}

#[test]
fn an_unreachable_pcscf_exits_5() {
    // A port nobody listens on: bind one, learn its number, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let pcscf = format!("127.0.0.1:{port}");
    let out = ue(&[
        "--pcscf",
        &pcscf,
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(5));
    // The back-off lists the round's failed candidate, as the Rust CLI does.
    let stdout = String::from_utf8_lossy(&out.stdout);
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

#[test]
fn usage_and_configuration_errors_exit_2() {
    assert_eq!(ue(&[]).status.code(), Some(2));
    assert_eq!(ue(&["--pcscf"]).status.code(), Some(2));
    let out = ue(&[
        "--pcscf",
        "bad host:0",
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pcscf"));
    let out = ue(&[
        "--pcscf",
        "127.0.0.1:9",
        "--ca",
        "/nonexistent.pem",
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_shared_library_carries_a_versioned_soname() {
    let out = Command::new(require("readelf", "binutils"))
        .arg("-d")
        .arg(cdylib())
        .output()
        .expect("readelf runs");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let soname = format!("[libimstls.so.{}]", env!("CARGO_PKG_VERSION_MAJOR"));
    assert!(
        dynamic.contains(&format!("Library soname: {soname}")),
        "{dynamic}"
    );
    let out = Command::new("readelf")
        .arg("-d")
        .arg(example())
        .output()
        .expect("readelf runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Shared library: {soname}")));
}
