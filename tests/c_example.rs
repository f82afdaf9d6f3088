//! Builds `examples/c/ue.c` (the C twin of `examples/ue.rs`, on the managed driver) against
//! the shared library cargo just built — through its soname, `libimstls.so.0` — and checks
//! its exit-code contract against loopback simulators: 0 registered and de-registered,
//! 1 rejected, 2 usage/configuration, 3 certificate rejected, 4 other TLS failure,
//! 5 connect failure.

#[path = "../ffi-tests/support.rs"]
mod support;
#[path = "support/ue_args.rs"]
mod ue_args;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use imstls_testkit::{DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD};
use support::*;
use ue_args::{
    assert_backoff_lists_refused, assert_expired_certificate_rejected,
    assert_registered_and_deregistered, register_args, strs, tls12_only, unreachable_pcscf,
    with_password_file, HELP_FLAGS,
};

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

#[test]
fn registers_holds_and_deregisters_with_exit_0() {
    let dir = build_dir("example-ok");
    let sims = start_sims(&dir);
    let mut args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);
    args.extend(["--hold".into(), "1".into()]);
    let out = ue(&strs(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_registered_and_deregistered(&stdout);
    assert!(!stdout.contains(DEFAULT_PASSWORD) && !stdout.contains(DEFAULT_IMPI));
    assert!(sims.good.registrar().stats().successes >= 2); // REGISTER and de-REGISTER
}

#[test]
fn a_rejected_certificate_exits_3_with_reason_and_alert() {
    let dir = build_dir("example-cert");
    let sims = start_sims(&dir);
    let out = ue(&strs(&register_args(
        &sims.expired,
        &sims.ca,
        DEFAULT_PASSWORD,
    )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert_expired_certificate_rejected(&stdout);
}

#[test]
fn a_wrong_password_exits_1() {
    let dir = build_dir("example-rejected");
    let sims = start_sims(&dir);
    let out = ue(&strs(&register_args(
        &sims.good,
        &sims.ca,
        "not-the-password",
    )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("\"status\":403"), "{stdout}");
}

#[test]
fn a_tls_failure_other_than_the_certificate_exits_4() {
    let dir = build_dir("example-tls");
    let sims = start_sims(&dir);
    // A TLS 1.2-only P-CSCF and a UE restricted to TLS 1.3: no common version.
    let tls12 = tls12_only(&sims.good);
    let mut args = register_args(&tls12, &sims.ca, DEFAULT_PASSWORD);
    args.push("--tls13-only".into());
    let out = ue(&strs(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("\"event\":\"tls_failed\""), "{stdout}");
}

#[test]
fn an_unreachable_pcscf_exits_5() {
    let pcscf = unreachable_pcscf();
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
    assert_backoff_lists_refused(&stdout, &pcscf);
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

const PASSWORD_WARNING: &str = "ue: warning: --password puts the password in every `ps` listing";

#[test]
fn the_password_comes_from_a_file_or_standard_input_and_warns_on_the_command_line() {
    use std::io::Write;
    let dir = build_dir("example-password");
    let sims = start_sims(&dir);
    let args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);

    // --password: registers, but warns (without echoing the password).
    let out = ue(&strs(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(PASSWORD_WARNING), "{stderr}");
    assert!(!stderr.contains(DEFAULT_PASSWORD), "{stderr}");

    // From a file: no warning.
    let file = dir.join("password");
    std::fs::write(&file, format!("{DEFAULT_PASSWORD}\n")).unwrap();
    let out = ue(&strs(&with_password_file(
        args.clone(),
        file.to_str().unwrap(),
    )));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    // A wrong one in the file is the registrar's 403 (exit 1); an empty file a usage error.
    std::fs::write(&file, "not-the-password\r\n").unwrap();
    let wrong = ue(&strs(&with_password_file(
        args.clone(),
        file.to_str().unwrap(),
    )));
    assert_eq!(wrong.status.code(), Some(1));
    std::fs::write(&file, "").unwrap();
    let empty = ue(&strs(&with_password_file(
        args.clone(),
        file.to_str().unwrap(),
    )));
    assert_eq!(empty.status.code(), Some(2));
    // Too long for the example's buffer: refused, not truncated into a wrong password.
    std::fs::write(&file, format!("{}\n", "p".repeat(300))).unwrap();
    let long = ue(&strs(&with_password_file(
        args.clone(),
        file.to_str().unwrap(),
    )));
    assert_eq!(long.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&long.stderr).contains("longer than"));

    // From standard input.
    let mut child = Command::new(example())
        .args(with_password_file(args, "-"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{DEFAULT_PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("{\"event\":\"deregistered\""));
}

#[test]
fn help_lists_every_flag_the_json_events_and_the_exit_codes() {
    let out = ue(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in HELP_FLAGS {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for event in [
        "connecting",
        "key_log_enabled",
        "tls_established",
        "certificate_rejected",
        "tls_failed",
        "registering",
        "registered",
        "pong_received",
        "connection_lost",
        "backoff",
        "registration_failed",
        "deregistered",
    ] {
        assert!(help.contains(event), "event {event} missing from:\n{help}");
    }
    for code in 0..=5 {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code}  "))),
            "exit code {code} missing from:\n{help}"
        );
    }
}

#[test]
fn the_ladder_draws_the_flow_like_the_rust_cli() {
    let dir = build_dir("example-ladder");
    let sims = start_sims(&dir);
    let mut args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);
    let json = args.iter().position(|a| a == "--json").unwrap();
    args[json] = "--ladder".into();
    args.extend(["--hold".into(), "1".into()]);
    let out = ue(&strs(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines[0];
    assert!(header.trim_start().starts_with("time (s)  UE"), "{header}");
    let right = header.find("P-CSCF").unwrap();
    let mut at = 0;
    for needle in [
        "|-- TCP connect flow#1 -",
        "|<== TLS handshake TLSv1.3 =",
        "|-- REGISTER -",
        "|<-- 401 Unauthorized -",
        "|-- REGISTER -",
        "|<-- 200 OK -",
        "| * registered for 3600 s",
        "|-- REGISTER -",
        "| * de-registered",
    ] {
        let found = lines[at..]
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} after line {at}:\n{stdout}"));
        at += found + 1;
    }
    for line in &lines[1..] {
        if line.contains("|--") || line.contains("|<") {
            assert_eq!(line.as_bytes()[right], b'|', "off the lifeline: {line}");
        }
    }
    let connect = lines.iter().find(|l| l.contains("TCP connect")).unwrap();
    assert!(
        connect.ends_with(&format!("|  {} (attempt 1)", sims.good.addr())),
        "{connect}"
    );
    assert!(!stdout.contains(DEFAULT_IMPI) && !stdout.contains('\x1b'));
}

#[test]
fn the_key_log_callback_writes_nss_lines_only_when_asked_for() {
    let dir = build_dir("example-keylog");
    let sims = start_sims(&dir);
    let keys = dir.join("keys.log");
    let _ = std::fs::remove_file(&keys);
    let args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);

    // SSLKEYLOGFILE alone: nothing.
    let out = Command::new(example())
        .args(&args)
        .env("SSLKEYLOGFILE", &keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!keys.exists());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("key_log_enabled"));

    // --keylog: the event right after connecting, a warning, and the NSS lines.
    let mut with_keys = args.clone();
    with_keys.extend(["--keylog".into(), keys.to_string_lossy().into_owned()]);
    let out = ue(&strs(&with_keys));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: TLS secrets are appended to"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = stdout.lines().collect();
    assert!(
        events[0].starts_with("{\"event\":\"connecting\""),
        "{stdout}"
    );
    assert!(
        events[1].starts_with("{\"event\":\"key_log_enabled\""),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&keys).unwrap();
    let labels: Vec<&str> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let hex = |s: &str| s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            assert!(
                fields.len() == 3 && fields[1].len() == 64 && hex(fields[1]),
                "{line}"
            );
            assert!(
                [64, 96].contains(&fields[2].len()) && hex(fields[2]),
                "{line}"
            );
            fields[0]
        })
        .collect();
    assert_eq!(
        labels,
        [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
            "EXPORTER_SECRET",
        ],
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
