//! Builds `examples/osip/osip_ua.c` — a UA on GNU oSIP, unmodified from the distribution's
//! `libosip2-dev`, whose transport is imstls's managed driver — and runs it against loopback
//! simulators: register through a 401, a connection killed by the P-CSCF and registered again
//! on a new flow, a rejected certificate with its reason, and the exit codes of the `ue` CLI.
//! The same UA against Kamailio is in `tests/real_registrar.rs`.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use imstls_testkit::{
    DigestAlgorithm, Fault, RegistrarConfig, SimConfig, Simulator, DEFAULT_IMPI, DEFAULT_IMPU,
    DEFAULT_PASSWORD,
};
use support::*;

/// Longer than any run here takes; a hang guard, not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(90);

fn osip_ua() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_osip_ua("osip-ua", &[]))
}

/// The UA built with AddressSanitizer and UndefinedBehaviorSanitizer (a report fails the run).
fn osip_ua_sanitized() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        build_osip_ua(
            "osip-ua-asan",
            &[
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
            ],
        )
    })
}

struct Run {
    code: Option<i32>,
    lines: Vec<String>,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> String {
        format!("{}\n{}", self.lines.join("\n"), self.stderr)
    }

    /// The index of the first line at or after `from` containing `text`.
    fn find(&self, from: usize, text: &str) -> Option<usize> {
        self.lines
            .iter()
            .skip(from)
            .position(|l| l.contains(text))
            .map(|i| i + from)
    }

    /// The lines contain each of `texts` in this order; panics with the transcript if not.
    fn assert_in_order(&self, texts: &[&str]) {
        let mut at = 0;
        for text in texts {
            at = self.find(at, text).unwrap_or_else(|| {
                panic!("no {text:?} after line {at} in:\n{}", self.transcript())
            }) + 1;
        }
    }
}

fn password_file(dir: &std::path::Path, password: &str) -> PathBuf {
    let path = dir.join("password");
    std::fs::write(&path, format!("{password}\n")).expect("write the password file");
    path
}

fn register_args(sim: &Simulator, sims: &Sims, password: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--pcscf",
        &sim.addr().to_string(),
        "--server-name",
        &sims.server_name,
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--ca".into());
    args.push(sims.ca.to_string_lossy().into_owned());
    args.push("--password-file".into());
    args.push(password.to_string_lossy().into_owned());
    args
}

/// Runs the UA, calling `on_line` with each stdout line as it is printed.
fn run_ua(args: &[String], on_line: impl FnMut(&str)) -> Run {
    run_binary(osip_ua(), args, on_line)
}

fn run_binary(binary: &PathBuf, args: &[String], mut on_line: impl FnMut(&str)) -> Run {
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the oSIP UA starts");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if done_rx.recv_timeout(HANG_GUARD).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        lines.push(line);
    }
    let out = child.wait_with_output().expect("wait for the UA");
    let _ = done_tx.send(());
    let _ = guard.join();
    let run = Run {
        code: out.status.code(),
        lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    say(&format!(
        "osip_ua: exit {:?}\n{}\n",
        run.code,
        run.transcript()
    ));
    run
}

#[test]
fn the_osip_ua_registers_through_a_401_and_survives_a_killed_connection() {
    killed_connection_scenario(osip_ua(), "osip-kill");
}

#[test]
fn the_killed_connection_scenario_is_clean_under_asan_and_ubsan() {
    let run = killed_connection_scenario(osip_ua_sanitized(), "osip-kill-asan");
    assert!(
        !run.stderr.contains("Sanitizer") && !run.stderr.contains("runtime error"),
        "{}",
        run.transcript()
    );
}

fn killed_connection_scenario(binary: &PathBuf, variant: &str) -> Run {
    let dir = build_dir(variant);
    let sims = start_sims(&dir);
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let mut args = register_args(&sims.good, &sims, &password);
    args.extend(["--hold".into(), "4".into()]);
    let mut killed = false;
    let run = run_binary(binary, &args, |line| {
        // Once the first flow proved itself (its pong came back), the P-CSCF kills it.
        if !killed && line.contains(" imstls pong_received ") {
            sims.good.kill_connections();
            killed = true;
        }
    });
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    assert!(
        killed,
        "the flow never proved itself:\n{}",
        run.transcript()
    );
    run.assert_in_order(&[
        // oSIP's NICT carries the REGISTER and matches the 401 and the 200 OK.
        " imstls register_now flow=1 reason=initial",
        " osip   send REGISTER cseq=1 flow=1: ok",
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " imstls challenged flow=1",
        " osip   send REGISTER cseq=2 flow=1: ok",
        " osip   NICT got 200 OK cseq=2 flow=1",
        " imstls registered flow=1",
        " imstls pong_received flow=1",
        // The P-CSCF killed the flow: imstls says register now on a new flow, oSIP sends.
        " imstls connection_lost flow=1",
        " imstls register_now flow=2 reason=recovery",
        " osip   send REGISTER cseq=1 flow=2: ok",
        " osip   NICT got 401 Unauthorized cseq=1 flow=2",
        " osip   NICT got 200 OK cseq=2 flow=2",
        " imstls registered flow=2",
        " imstls deregistered",
    ]);
    // TLS in the Via: oSIP runs the NICT for a reliable transport, so no Timer E resends.
    for flow in 1..=2 {
        for cseq in 1..=2 {
            let send = format!(" osip   send REGISTER cseq={cseq} flow={flow}: ok");
            let count = run.lines.iter().filter(|l| l.contains(&send)).count();
            assert_eq!(count, 1, "{send:?} {count} times:\n{}", run.transcript());
        }
    }
    let lost = &run.lines[run.find(0, " imstls connection_lost").unwrap()];
    assert!(lost.contains("was_registered=true"), "{lost}");
    // What the P-CSCF saw, not what the UA says: two registrations and the de-REGISTER.
    assert!(sims.good.registrar().stats().successes >= 3);
    assert!(sims.good.connection_count() >= 2);
    let all = run.transcript();
    assert!(
        !all.contains(DEFAULT_PASSWORD) && !all.contains(DEFAULT_IMPI),
        "{all}"
    );
    run
}

#[test]
fn the_osip_ua_refreshes_in_the_same_registration_when_imstls_asks() {
    let dir = build_dir("osip-refresh");
    let sims = start_sims(&dir);
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let mut args = register_args(&sims.good, &sims, &password);
    args.extend(["--expires".into(), "4".into(), "--hold".into(), "3".into()]);
    let run = run_ua(&args, |_| {});
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    // Same Call-ID, next CSeq, the stored challenge answered again (nc=2): no new 401.
    run.assert_in_order(&[
        " osip   NICT got 200 OK cseq=2 flow=1",
        " imstls registered flow=1 expires=4",
        " imstls register_now flow=1 reason=refresh",
        " osip   send REGISTER cseq=3 flow=1: ok",
        " osip   NICT got 200 OK cseq=3 flow=1",
        " imstls registered flow=1 expires=4",
        " imstls deregistered",
    ]);
    assert_eq!(
        run.lines.iter().filter(|l| l.contains(" 401 ")).count(),
        1,
        "{}",
        run.transcript()
    );
}

/// A simulator with the test PKI of `sims` and this registrar.
fn sim_with(sims: &Sims, registrar: RegistrarConfig) -> Simulator {
    Simulator::start_with_pki(
        SimConfig {
            registrar,
            ..SimConfig::default()
        },
        sims.good.pki_arc(),
    )
    .expect("simulator")
}

#[test]
fn the_osip_ua_answers_a_challenge_without_qop_in_the_rfc_2069_form() {
    let dir = build_dir("osip-no-qop");
    let sims = start_sims(&dir);
    let sim = sim_with(
        &sims,
        RegistrarConfig {
            qop_auth: false,
            ..RegistrarConfig::default()
        },
    );
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let run = run_ua(&register_args(&sim, &sims, &password), |_| {});
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    run.assert_in_order(&[
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " osip   NICT got 200 OK cseq=2 flow=1",
        " imstls registered flow=1",
    ]);
    assert!(sim.registrar().stats().successes >= 2);
}

#[test]
fn the_osip_ua_answers_a_stale_challenge_with_the_new_nonce() {
    // O.3.1.3 / RFC 7616: a 401 with stale=true to a correctly authenticated REGISTER; oSIP's
    // parsed WWW-Authenticate carries the flag, imstls asks for a stale-challenge REGISTER.
    let dir = build_dir("osip-stale");
    let sims = start_sims(&dir);
    let sim = sim_with(
        &sims,
        RegistrarConfig {
            stale_next: true,
            ..RegistrarConfig::default()
        },
    );
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let run = run_ua(&register_args(&sim, &sims, &password), |_| {});
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    run.assert_in_order(&[
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " imstls challenged flow=1",
        " osip   NICT got 401 Unauthorized cseq=2 flow=1",
        " imstls challenged flow=1",
        " imstls register_now flow=1 reason=stale_challenge",
        " osip   send REGISTER cseq=3 flow=1: ok",
        " osip   NICT got 200 OK cseq=3 flow=1",
        " imstls registered flow=1",
    ]);
}

#[test]
fn the_osip_ua_reports_a_challenge_it_cannot_answer_as_a_failure_and_exits_1() {
    // The example speaks Digest MD5 only: a SHA-256 challenge is a final failure, not a loop.
    let dir = build_dir("osip-sha256");
    let sims = start_sims(&dir);
    let sim = sim_with(
        &sims,
        RegistrarConfig {
            algorithm: DigestAlgorithm::Sha256,
            ..RegistrarConfig::default()
        },
    );
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let run = run_ua(&register_args(&sim, &sims, &password), |_| {});
    assert_eq!(run.code, Some(1), "{}", run.transcript());
    run.assert_in_order(&[
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " imstls registration_failed ",
    ]);
    assert!(run.find(0, " osip   send REGISTER cseq=2").is_none());
}

#[test]
fn osips_timer_f_reports_an_unanswered_register_as_408_on_its_flow() {
    // The P-CSCF completes TLS, then answers nothing: oSIP's NICT gives up after Timer F
    // (64*T1 = 32 s) and the UA reports 408 on the REGISTER's flow; imstls backs off (408 is
    // retried), which before a first registration the UA takes as "out of reach": exit 5.
    let dir = build_dir("osip-timer-f");
    let sims = start_sims(&dir);
    let sim = Simulator::start_with_pki(
        SimConfig {
            fault: Fault::SilentAfterMessages(0),
            ..SimConfig::default()
        },
        sims.good.pki_arc(),
    )
    .expect("simulator");
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let run = run_ua(&register_args(&sim, &sims, &password), |_| {});
    assert_eq!(run.code, Some(5), "{}", run.transcript());
    run.assert_in_order(&[
        " osip   send REGISTER cseq=1 flow=1: ok",
        " osip   NICT timer F fired flow=1",
        " imstls registration_failed ",
        " imstls backoff ",
    ]);
    let failed = &run.lines[run.find(0, " imstls registration_failed ").unwrap()];
    assert!(failed.contains("status=408 retrying=true"), "{failed}");
    let fired = &run.lines[run.find(0, " osip   NICT timer F fired").unwrap()];
    let ms: u64 = fired.split_whitespace().next().unwrap().parse().unwrap();
    assert!((31_000..40_000).contains(&ms), "Timer F at {ms} ms");
}

#[test]
fn the_osip_ua_reports_a_rejected_certificate_with_its_reason_and_exits_3() {
    let dir = build_dir("osip-cert");
    let sims = start_sims(&dir);
    let password = password_file(&dir, DEFAULT_PASSWORD);
    let run = run_ua(&register_args(&sims.expired, &sims, &password), |_| {});
    assert_eq!(run.code, Some(3), "{}", run.transcript());
    let line = run
        .find(0, " imstls certificate_rejected ")
        .map(|i| run.lines[i].clone())
        .unwrap_or_else(|| panic!("no certificate_rejected line:\n{}", run.transcript()));
    assert!(line.contains("reason=expired"), "{line}");
    assert!(line.contains("alert=certificate_expired"), "{line}");
    assert!(
        run.find(0, " osip   send REGISTER").is_none(),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_osip_ua_exits_1_when_the_registrar_rejects_it() {
    let dir = build_dir("osip-rejected");
    let sims = start_sims(&dir);
    let password = password_file(&dir, "not-the-password");
    let run = run_ua(&register_args(&sims.good, &sims, &password), |_| {});
    assert_eq!(run.code, Some(1), "{}", run.transcript());
    run.assert_in_order(&[
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " osip   NICT got 403",
        " imstls registration_failed ",
    ]);
    let failed = &run.lines[run.find(0, " imstls registration_failed ").unwrap()];
    assert!(failed.contains("status=403 retrying=false"), "{failed}");
}

#[test]
fn the_osip_ua_exits_2_on_usage_errors_and_5_when_the_pcscf_is_out_of_reach() {
    let dir = build_dir("osip-usage");
    let out = Command::new(osip_ua()).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let password = password_file(&dir, "x");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let args: Vec<String> = [
        "--pcscf",
        &format!("127.0.0.1:{port}"),
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password-file",
        &password.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = run_ua(&args, |_| {});
    assert_eq!(run.code, Some(5), "{}", run.transcript());
    assert!(run.find(0, " imstls connect_failed ").is_some());
    let mut missing = args.clone();
    missing[7] = dir.join("no-such-file").to_string_lossy().into_owned();
    assert_eq!(run_ua(&missing, |_| {}).code, Some(2));
}
