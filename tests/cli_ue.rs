//! The `ue` CLI (examples/ue.rs) against the loopback simulator over real sockets: it
//! registers, holds, survives a killed connection, de-registers, and exits with the
//! documented codes. Run through `cargo test --workspace`, which builds the example first.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use imstls_testkit::{CertKind, SimConfig, Simulator, TlsVersions};
use support::openssl::{pem_files, tempdir::TempDir, OpensslServer};
use support::ue_args::{register_args, with_password_file, HELP_FLAGS};

fn ue_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples/ue");
    assert!(
        path.exists(),
        "{} is not built (run cargo test --workspace)",
        path.display()
    );
    path
}

struct Setup {
    sim: Simulator,
    _dir: TempDir,
    root: PathBuf,
}

fn setup(config: SimConfig) -> Setup {
    let sim = Simulator::start_with_pki(config, support::pki()).unwrap();
    let dir = TempDir::new();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, sim.pki().root_pem()).unwrap();
    Setup {
        sim,
        _dir: dir,
        root,
    }
}

fn args(s: &Setup, password: &str) -> Vec<String> {
    register_args(&s.sim, &s.root, password)
}

fn run(args: &[String]) -> Output {
    Command::new(ue_binary()).args(args).output().unwrap()
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn events(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            assert!(
                l.starts_with("{\"event\":\"") && l.contains(",\"t_ms\":"),
                "not a JSON event line: {l}"
            );
            l["{\"event\":\"".len()..]
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn registers_holds_survives_a_killed_connection_and_deregisters() {
    let s = setup(SimConfig::default());
    let mut a = args(&s, "alice-secret");
    a.extend(["--hold".into(), "3".into()]);
    let (status, all) = run_killing_the_connection(&s, &a, "\"event\":\"pong_received\"");
    let codes = events(&all);
    assert!(status.success(), "exit {status:?}\n{}", all.join("\n"));
    assert_eq!(
        codes.iter().filter(|c| *c == "registered").count(),
        2,
        "{codes:?}"
    );
    let lost = codes
        .iter()
        .position(|c| c == "connection_lost")
        .expect("connection_lost");
    let reconnect = codes[lost..]
        .iter()
        .position(|c| c == "connecting")
        .expect("reconnect");
    assert!(reconnect <= 2, "a new flow right after the loss: {codes:?}");
    assert_eq!(codes.last().map(String::as_str), Some("deregistered"));
    let tls = all.iter().find(|l| l.contains("tls_established")).unwrap();
    for field in [
        "\"version\":\"TLSv1.3\"",
        "\"cipher_suite\":",
        "\"group\":\"X25519MLKEM768\"",
        "\"resumed\":false",
    ] {
        assert!(tls.contains(field), "{tls}");
    }
    assert!(all
        .iter()
        .any(|l| l.contains("tls_established") && l.contains("\"resumed\":true")));
    assert!(all
        .iter()
        .any(|l| l.contains("\"event\":\"registered\"") && l.contains("\"expires\":3600")));
    // No identity or secret on stdout.
    let text = all.join("\n");
    assert!(!text.contains("alice"), "{text}");
    assert_eq!(
        s.sim.registrar().bindings().len(),
        0,
        "de-registered at the end"
    );
}

#[test]
fn a_bad_certificate_exits_3_with_the_alert_and_reason() {
    let s = setup(SimConfig {
        cert: CertKind::Expired,
        ..SimConfig::default()
    });
    let out = run(&args(&s, "alice-secret"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let all = lines(&out);
    let rejected = all
        .iter()
        .find(|l| l.contains("\"event\":\"certificate_rejected\""))
        .unwrap();
    assert!(
        rejected.contains("\"alert\":\"certificate_expired\""),
        "{rejected}"
    );
    assert!(rejected.contains("\"reason\":\"expired\""), "{rejected}");
}

#[test]
fn a_rejected_password_exits_1() {
    let s = setup(SimConfig::default());
    let out = run(&args(&s, "not-the-password"));
    assert_eq!(out.status.code(), Some(1));
    let all = lines(&out);
    let failed = all
        .iter()
        .find(|l| l.contains("\"event\":\"registration_failed\""))
        .unwrap();
    assert!(failed.contains("\"status\":403"), "{failed}");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["--bogus".into()]).status.code(), Some(2));
    let s = setup(SimConfig::default());
    let mut a = args(&s, "x");
    a[5] = "/nonexistent/root.pem".into();
    let out = run(&a);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("trust_anchors"));
}

#[test]
fn an_unreachable_pcscf_exits_5() {
    let s = setup(SimConfig::default());
    let mut a = args(&s, "x");
    a[1] = "127.0.0.1:1".into();
    let out = run(&a);
    assert_eq!(out.status.code(), Some(5));
    assert!(lines(&out)
        .iter()
        .any(|l| l.contains("\"event\":\"backoff\"") && l.contains("\"delay_ms\":")));
}

#[test]
fn other_tls_failures_exit_4() {
    // A TLS 1.3-only UE against a TLS 1.2-only P-CSCF.
    let s = setup(SimConfig {
        tls_versions: TlsVersions::Tls12Only,
        ..SimConfig::default()
    });
    let mut a = args(&s, "alice-secret");
    a.push("--tls13-only".into());
    let out = run(&a);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(lines(&out)
        .iter()
        .any(|l| l.contains("\"event\":\"tls_failed\"")
            && l.contains("\"reason\":\"protocol_version\"")));

    // A TLS 1.0-only OpenSSL P-CSCF.
    let (_dir, cert, key) = pem_files(CertKind::Good);
    let server = OpensslServer::start(&cert, &key, &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    let mut a = args(&s, "alice-secret");
    a[1] = format!("127.0.0.1:{}", server.port);
    let out = run(&a);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_tls_configuration_failure_fails_over_and_exit_4_lists_every_candidate() {
    // A TLS 1.3-only UE: a TLS 1.2-only P-CSCF fails for its configuration.
    let old = setup(SimConfig {
        tls_versions: TlsVersions::Tls12Only,
        ..SimConfig::default()
    });
    let good = setup(SimConfig::default());
    let mut a = args(&old, "alice-secret");
    a.push("--tls13-only".into());
    // The good one is second: fail over, register, de-register, exit 0.
    let mut both = a.clone();
    both.extend(["--pcscf".into(), good.sim.addr().to_string()]);
    // Both P-CSCFs are reached with the one root of the shared test PKI.
    let out = run(&both);
    let all = lines(&out);
    assert_eq!(out.status.code(), Some(0), "{all:#?}");
    assert_eq!(
        &events(&all)[..4],
        &["connecting", "tls_failed", "connecting", "tls_established"],
        "{all:#?}"
    );

    // Two P-CSCFs that both fail for their configuration: one terminal event lists each.
    let mut twice = a.clone();
    twice.extend(["--pcscf".into(), old.sim.addr().to_string()]);
    let out = run(&twice);
    let all = lines(&out);
    assert_eq!(out.status.code(), Some(4), "{all:#?}");
    let failed = all
        .iter()
        .find(|l| l.contains("\"event\":\"registration_failed\""))
        .unwrap();
    let target = old.sim.addr().to_string();
    for index in 0..2 {
        let entry = format!(
            "{{\"candidate\":{index},\"target\":\"{target}\",\"reason\":\"protocol_version\""
        );
        assert!(failed.contains(&entry), "{failed}");
    }
    assert!(failed.contains("\"retrying\":false"), "{failed}");
}

/// `args` with the password taken from `--password-file FILE` instead of `--password`.
fn args_with_password_file(s: &Setup, file: &str) -> Vec<String> {
    with_password_file(args(s, "unused"), file)
}

const PASSWORD_WARNING: &str = "ue: warning: --password puts the password in every `ps` listing";

#[test]
fn the_password_comes_from_a_file_without_a_warning() {
    let s = setup(SimConfig::default());
    let file = s._dir.path().join("password");
    std::fs::write(&file, "alice-secret\n").unwrap();
    let out = run(&args_with_password_file(&s, file.to_str().unwrap()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(events(&lines(&out)).contains(&"registered".to_owned()));
    assert!(!stderr.contains("warning"), "{stderr}");

    // A wrong password in the file is the registrar's 403, not a usage error.
    std::fs::write(&file, "not-the-password\r\n").unwrap();
    assert_eq!(
        run(&args_with_password_file(&s, file.to_str().unwrap()))
            .status
            .code(),
        Some(1)
    );
    // An empty or missing file is a usage error.
    std::fs::write(&file, "\n").unwrap();
    assert_eq!(
        run(&args_with_password_file(&s, file.to_str().unwrap()))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&args_with_password_file(&s, "/nonexistent/password"))
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn the_password_comes_from_standard_input() {
    use std::io::Write;
    let s = setup(SimConfig::default());
    let mut child = Command::new(ue_binary())
        .args(args_with_password_file(&s, "-"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"alice-secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(events(&lines(&out)).contains(&"deregistered".to_owned()));
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_password_on_the_command_line_warns() {
    let s = setup(SimConfig::default());
    let out = run(&args(&s, "alice-secret"));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(PASSWORD_WARNING), "{stderr}");
    assert!(stderr.contains("--password-file"), "{stderr}");
    assert!(!stderr.contains("alice-secret"), "{stderr}");
}

#[test]
fn help_lists_every_flag_the_json_events_and_the_exit_codes() {
    let out = run(&["--help".into()]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    let backoff = ["--backoff-base-ms", "--backoff-base-other-ms"];
    for flag in HELP_FLAGS.iter().chain(&backoff) {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for event in [
        "connecting",
        "connect_failed",
        "key_log_enabled",
        "tls_established",
        "client_certificate_requested",
        "certificate_rejected",
        "tls_failed",
        "register_now",
        "registering",
        "sip_received",
        "challenged",
        "registered",
        "keepalive_sent",
        "pong_received",
        "ping_answered",
        "rekeyed",
        "connection_lost",
        "backoff",
        "superseded",
        "registration_failed",
        "deregistered",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(event) || l.contains(&format!(", {event}"))),
            "event {event} missing from:\n{help}"
        );
    }
    for (code, meaning) in [
        (0, "de-registered"),
        (1, "rejected"),
        (2, "usage"),
        (3, "certificate"),
        (4, "TLS"),
        (5, "connect"),
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{code}  ")) && l.contains(meaning)),
            "exit code {code} missing from:\n{help}"
        );
    }
    // A usage error still prints the short usage, to stderr, with exit 2.
    let out = run(&["--bogus".into()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: ue"));
}

/// `args` printing the ladder instead of JSON.
fn ladder_args(s: &Setup) -> Vec<String> {
    let mut a = args(s, "alice-secret");
    let json = a.iter().position(|x| x == "--json").unwrap();
    a[json] = "--ladder".into();
    a
}

/// The ladder's line for `label`: `<time>  |<arrow with label>|...`, time as seconds.millis.
fn ladder_line<'a>(all: &'a [String], needle: &str) -> &'a str {
    all.iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the ladder:\n{}", all.join("\n")))
}

#[test]
fn the_ladder_draws_handshake_register_challenge_pings_loss_and_reconnect() {
    let s = setup(SimConfig::default());
    let mut a = ladder_args(&s);
    a.extend(["--hold".into(), "3".into()]);
    let (status, all) = run_killing_the_connection(&s, &a, "<-- pong CRLF");
    assert!(status.success(), "exit {status:?}\n{}", all.join("\n"));

    // Header: the two lifelines' names above the bars.
    let header = &all[0];
    assert!(header.trim_start().starts_with("time (s)  UE"), "{header}");
    let bar = header.find("UE").unwrap();
    let right = header.find("P-CSCF").unwrap();
    // Every other line: time with milliseconds, then a row that starts on the UE lifeline;
    // arrows end on the P-CSCF lifeline.
    for line in &all[1..] {
        let (time, row) = line.split_at(bar);
        let time = time.trim();
        let (secs, millis) = time.split_once('.').unwrap_or_else(|| panic!("{line}"));
        assert!(
            secs.chars().all(|c| c.is_ascii_digit())
                && millis.len() == 3
                && millis.chars().all(|c| c.is_ascii_digit()),
            "{line}"
        );
        assert!(row.starts_with('|'), "{line}");
        if row.starts_with("|--") || row.starts_with("|<") {
            assert_eq!(
                line.as_bytes()[right],
                b'|',
                "arrow off the lifeline: {line}"
            );
        }
    }
    let order: Vec<&str> = [
        "|-- TCP connect flow#1 -",
        "|<== TLS handshake TLSv1.3 =",
        "|-- REGISTER -",
        "|<-- 401 Unauthorized -",
        "|<-- 200 OK -",
        "| * registered for 3600 s",
        "|-- ping CRLFCRLF -",
        "|<-- pong CRLF -",
        "| x flow#1 lost: ",
        "|-- TCP connect flow#2 -",
        "|<== TLS handshake TLSv1.3 resumed =",
        "| * de-registered",
    ]
    .into_iter()
    .collect();
    let mut at = 0;
    for needle in order {
        let found = all[at..]
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} after line {at}:\n{}", all.join("\n")));
        at += found + 1;
    }
    let tls = ladder_line(&all, "TLS handshake TLSv1.3 =");
    assert!(tls.ends_with("X25519MLKEM768"), "{tls}");
    assert!(ladder_line(&all, "|-- TCP connect flow#1")
        .contains(&format!("|  {} (attempt 1)", s.sim.addr())));
    assert!(ladder_line(&all, "flow#1 lost").contains("(was registered)"));
    // Nothing personal.
    assert!(!all.join("\n").contains("alice"));
    // ASCII only, no colour escapes.
    assert!(all.iter().all(|l| l.is_ascii() && !l.contains('\x1b')));
}

#[test]
fn the_ladder_shows_the_alert_of_a_rejected_certificate() {
    let s = setup(SimConfig {
        cert: CertKind::Expired,
        ..SimConfig::default()
    });
    let out = run(&ladder_args(&s));
    assert_eq!(out.status.code(), Some(3));
    let all = lines(&out);
    let alert = ladder_line(&all, "|-- alert certificate_expired -");
    assert!(alert.ends_with("|  expired"), "{alert}");
    ladder_line(&all, "| x certificate_rejected: ");
    ladder_line(&all, "| x registration failed: certificate");
}

/// Checks one NSS key-log line (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/):
/// `<label> <64 hex: the 32-byte client random> <hex secret>`; returns the label.
fn nss_label(line: &str) -> &str {
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 3, "{line}");
    let hex = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    assert!(fields[1].len() == 64 && hex(fields[1]), "{line}");
    let secret_len = match fields[0] {
        "CLIENT_RANDOM" => 96, // the TLS 1.2 master secret, 48 bytes
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
        | "SERVER_HANDSHAKE_TRAFFIC_SECRET"
        | "CLIENT_TRAFFIC_SECRET_0"
        | "SERVER_TRAFFIC_SECRET_0"
        | "EXPORTER_SECRET" => fields[2].len(), // 32 or 48 bytes with the suite's hash
        other => panic!("not an NSS key-log label: {other}"),
    };
    assert!(
        fields[2].len() == secret_len && [64, 96].contains(&secret_len) && hex(fields[2]),
        "{line}"
    );
    fields[0]
}

#[test]
fn the_key_log_holds_nss_lines_only_when_asked_for() {
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let s = setup(SimConfig {
            tls_versions: versions,
            ..SimConfig::default()
        });
        let keys = s._dir.path().join("keys.log");

        // Not asked for: SSLKEYLOGFILE alone writes nothing and warns of nothing.
        let out = Command::new(ue_binary())
            .args(args(&s, "alice-secret"))
            .env("SSLKEYLOGFILE", &keys)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            !keys.exists(),
            "SSLKEYLOGFILE alone wrote {}",
            keys.display()
        );
        let codes = events(&lines(&out));
        assert!(!codes.contains(&"key_log_enabled".to_owned()), "{codes:?}");

        // Asked for: a warning on stderr, one key_log_enabled event per flow right after
        // its connecting, and the NSS lines in the file (mode 0600).
        let mut a = args(&s, "alice-secret");
        a.extend(["--keylog".into(), keys.to_str().unwrap().into()]);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("warning: TLS secrets are appended to"),
            "{stderr}"
        );
        let codes = events(&lines(&out));
        assert_eq!(&codes[..2], ["connecting", "key_log_enabled"], "{codes:?}");
        assert_eq!(
            codes.iter().filter(|c| *c == "key_log_enabled").count(),
            codes.iter().filter(|c| *c == "connecting").count()
        );
        let text = std::fs::read_to_string(&keys).unwrap();
        let labels: Vec<&str> = text.lines().map(nss_label).collect();
        let expected: &[&str] = match versions {
            TlsVersions::Tls12Only => &["CLIENT_RANDOM"],
            _ => &[
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0",
                "SERVER_TRAFFIC_SECRET_0",
                "EXPORTER_SECRET",
            ],
        };
        assert_eq!(labels, expected, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never on the CLI's own output.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let random = text.lines().next().unwrap().split(' ').nth(1).unwrap();
        assert!(!stdout.contains(random) && !stderr.contains(random));
    }
}

/// A capture process, killed if the test fails before stopping it.
struct Capture(std::process::Child);

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Captures the CLI's flow on the loopback interface with `dumpcap`, then asks Wireshark's
/// `tshark` for the SIP start lines in it: none without the key log, REGISTER / 401 / 200
/// with it. Needs root (or capture rights) and the Debian `tshark` package (.ci/run).
#[test]
fn wireshark_decrypts_a_captured_flow_with_the_key_log() {
    for tool in ["dumpcap", "tshark"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` is required: apt-get install tshark (CI does this in .ci/run)"
        );
    }
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let s = setup(SimConfig {
            tls_versions: versions,
            ..SimConfig::default()
        });
        let port = s.sim.addr().port();
        let capture = s._dir.path().join("flow.pcapng");
        let keys = s._dir.path().join("keys.log");
        let mut dumpcap = Capture(
            Command::new("dumpcap")
                .args(["-q", "-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
                .arg(&capture)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // dumpcap names the file once it captures.
        let mut progress = BufReader::new(dumpcap.0.stderr.take().unwrap());
        let mut said = String::new();
        let mut line = String::new();
        while !line.starts_with("File:") {
            line.clear();
            assert!(
                progress.read_line(&mut line).unwrap() > 0,
                "dumpcap could not capture on lo (needs root or capture rights):\n{said}"
            );
            said.push_str(&line);
        }
        let mut a = args(&s, "alice-secret");
        a.extend(["--keylog".into(), keys.to_str().unwrap().into()]);
        let out = run(&a);
        std::thread::sleep(Duration::from_millis(300));
        // dumpcap completes the file on SIGTERM.
        Command::new("kill")
            .arg(dumpcap.0.id().to_string())
            .status()
            .unwrap();
        dumpcap.0.wait().unwrap();
        assert_eq!(out.status.code(), Some(0));

        let sip_lines = |with_keys: bool| {
            let mut tshark = Command::new("tshark");
            tshark.arg("-r").arg(&capture);
            if with_keys {
                tshark
                    .arg("-o")
                    .arg(format!("tls.keylog_file:{}", keys.display()));
            }
            let out = tshark
                .args(["-d", &format!("tcp.port=={port},tls")])
                .args(["-d", &format!("tls.port=={port},sip")])
                .args(["-Y", "sip", "-T", "fields"])
                .args(["-e", "sip.Request-Line", "-e", "sip.Status-Line"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(sip_lines(false), Vec::<String>::new(), "{versions:?}");
        let decrypted = sip_lines(true);
        assert_eq!(
            &decrypted[..4],
            [
                "REGISTER sip:ims.test SIP/2.0",
                "SIP/2.0 401 Unauthorized",
                "REGISTER sip:ims.test SIP/2.0",
                "SIP/2.0 200 OK",
            ],
            "{versions:?}: {decrypted:#?}"
        );
    }
}

/// Runs the CLI with `args`, kills the simulator's connections once a stdout line contains
/// `proven` (the flow answered its first ping), and returns the exit status and every line.
fn run_killing_the_connection(
    s: &Setup,
    args: &[String],
    proven: &str,
) -> (std::process::ExitStatus, Vec<String>) {
    let mut child = Command::new(ue_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the CLI registers");
        if line.contains(proven) {
            break;
        }
    }
    s.sim.kill_connections();
    let status = child.wait().unwrap();
    (status, reader.join().unwrap())
}
