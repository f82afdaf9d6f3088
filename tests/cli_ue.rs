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
    [
        "--pcscf",
        &s.sim.addr().to_string(),
        "--server-name",
        "pcscf.ims.test",
        "--ca",
        s.root.to_str().unwrap(),
        "--impi",
        "alice@ims.test",
        "--impu",
        "sip:alice@ims.test",
        "--password",
        password,
        "--json",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
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
    let mut child = Command::new(ue_binary())
        .args(&a)
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
    // Kill the connection once registered (and the first pong proved the flow).
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the CLI registers");
        if line.contains("\"event\":\"pong_received\"") {
            break;
        }
    }
    s.sim.kill_connections();
    let status = child.wait().unwrap();
    let all = reader.join().unwrap();
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
