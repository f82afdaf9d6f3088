//! The `ue` CLI against a real SIP registrar, not only our simulator: Kamailio 5.x with its
//! TLS module, usrloc/registrar and Digest authentication (MD5 and SHA-256, qop=auth), on
//! 127.0.0.1. CI installs `kamailio kamailio-tls-modules` from Debian. Kamailio logs the
//! algorithm of the credentials it accepted (`$aa`), and the test checks it is the one the
//! registrar was configured to challenge with.

#[path = "../ffi-tests/support.rs"]
mod c_support;
mod support;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imstls_testkit::CertKind;
use support::openssl::tempdir::TempDir;

const MODULES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
];

struct Kamailio {
    child: Child,
    port: u16,
    /// Kamailio's stderr (`log_stderror=yes`).
    log: PathBuf,
    _dir: TempDir,
    root: PathBuf,
}

impl Drop for Kamailio {
    /// Kamailio forks workers: stop the whole process group, politely first.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the Kamailio under test behaves.
#[derive(Clone, Copy)]
struct Setup<'a> {
    algorithm: &'a str,
    /// Close the connection right after every 200 OK to a REGISTER (core `set_reply_close`).
    close_after_200: bool,
    /// Listen on this port (with `reuse_port`, so a second instance can take over).
    port: Option<u16>,
}

fn start_kamailio(algorithm: &str) -> Kamailio {
    start_kamailio_with(Setup {
        algorithm,
        close_after_200: false,
        port: None,
    })
}

fn start_kamailio_with(setup: Setup<'_>) -> Kamailio {
    let algorithm = setup.algorithm;
    let kamailio = ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs Kamailio: apt-get install kamailio kamailio-tls-modules");
    let modules = MODULES
        .iter()
        .find(|p| Path::new(p).join("tls.so").exists())
        .expect("Kamailio's TLS module is missing: apt-get install kamailio-tls-modules");
    let dir = TempDir::new();
    let d = dir.path();
    let (chain, key, root) = support::pki().write_pem_files(d, CertKind::Good).unwrap();
    let port = setup.port.unwrap_or_else(free_port);
    std::fs::write(
        d.join("tls.cfg"),
        format!(
            "[server:default]\nmethod = TLSv1.2+\ncertificate = {}\nprivate_key = {}\n\
             verify_certificate = no\nrequire_certificate = no\n",
            chain.display(),
            key.display()
        ),
    )
    .unwrap();
    let config = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=2
auto_aliases=no
enable_tls=yes
listen=tls:127.0.0.1:{port}
tcp_reuse_port=yes
alias="ims.test"
mpath="{modules}/"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("tls", "config", "{tls}")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("auth", "algorithm", "{algorithm}")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("REGISTER")) {{
        # IMS style: the Digest username is the IMPI, not the From user.
        if (!pv_auth_check("$fd", "alice-secret", "0", "0")) {{
            auth_challenge("$fd", "1");
            exit;
        }}
        # Kamailio's own record of the algorithm of the credentials it just verified.
        xlog("L_ERR", "imstls-test accepted-credentials algorithm=<$aa>\n");
        consume_credentials();
        {close}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    sl_send_reply("404", "Not Here");
}}
"#,
        tls = d.join("tls.cfg").display(),
        close = if setup.close_after_200 {
            "set_reply_close();"
        } else {
            ""
        }
    );
    std::fs::write(d.join("kamailio.cfg"), config).unwrap();
    std::fs::create_dir_all(d.join("run")).unwrap();
    let child = Command::new(kamailio)
        .process_group(0)
        .arg("-f")
        .arg(d.join("kamailio.cfg"))
        .args(["-DD", "-E", "-m", "64", "-Y"])
        .arg(d.join("run"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("kamailio.log")).expect("log file"))
        .spawn()
        .expect("kamailio starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Kamailio did not open its TLS port"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Kamailio {
        child,
        port,
        log: d.join("kamailio.log"),
        _dir: dir,
        root,
    }
}

/// `ue --json` registering alice to `k` with `password`.
fn ue_command(k: &Kamailio, password: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe.parent().unwrap().parent().unwrap().join("examples/ue"));
    command
        .args([
            "--pcscf",
            &format!("127.0.0.1:{}", k.port),
            "--server-name",
            "pcscf.ims.test",
        ])
        .arg("--ca")
        .arg(&k.root)
        .args([
            "--impi",
            "alice@ims.test",
            "--impu",
            "sip:alice@ims.test",
            "--password",
            password,
            "--json",
        ]);
    command
}

fn ue(k: &Kamailio, password: &str) -> std::process::Output {
    ue_command(k, password)
        .args(["--hold", "1"])
        .output()
        .unwrap()
}

fn registers_and_deregisters(algorithm: &str) {
    let k = start_kamailio(algorithm);
    let out = ue(&k, "alice-secret");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"event\":\"challenged\""), "{stdout}");
    assert!(stdout.contains("\"event\":\"registered\""), "{stdout}");
    // Kamailio answers the RFC 5626 CRLF ping with a pong.
    assert!(stdout.contains("\"event\":\"pong_received\""), "{stdout}");
    assert!(stdout.contains("\"event\":\"deregistered\""), "{stdout}");
    // The peer's side: Kamailio logs the algorithm of every set of credentials it accepted
    // (the UE answers a challenge with its algorithm, RFC 7616 §3.4). The log line may be
    // written just after the reply: wait for it (bounded), never a fixed sleep.
    let expected = format!("accepted-credentials algorithm=<{algorithm}>");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&k.log).unwrap_or_default();
        if log.contains("accepted-credentials") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accepted-credentials"))
        .collect();
    assert!(
        !accepted.is_empty() && accepted.iter().all(|l| l.contains(&expected)),
        "Kamailio accepted credentials not made with {algorithm}: {accepted:?}"
    );

    let out = ue(&k, "wrong");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_cli_registers_to_kamailio_with_md5_digest() {
    registers_and_deregisters("MD5");
}

#[test]
fn the_cli_registers_to_kamailio_with_sha256_digest() {
    registers_and_deregisters("SHA-256");
}

/// `examples/osip/osip_ua` (GNU oSIP's parser and NICT over imstls) against Kamailio: oSIP's
/// REGISTER, Kamailio's 401, oSIP's MD5 Digest answer (qop=auth), 200 OK, de-REGISTER; a wrong
/// password exits 1.
#[test]
fn the_osip_ua_registers_to_kamailio_with_md5_digest() {
    let k = start_kamailio("MD5");
    let ua = c_support::build_osip_ua("osip-ua-kamailio", &[]);
    let dir = TempDir::new();
    let run = |password: &str| {
        let file = dir.path().join("password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let out = Command::new(&ua)
            .args([
                "--pcscf",
                &format!("127.0.0.1:{}", k.port),
                "--server-name",
                "pcscf.ims.test",
                "--impi",
                "alice@ims.test",
                "--impu",
                "sip:alice@ims.test",
                "--hold",
                "1",
            ])
            .arg("--ca")
            .arg(&k.root)
            .arg("--password-file")
            .arg(&file)
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run("alice-secret");
    assert_eq!(code, Some(0), "{text}");
    let order = [
        " osip   send REGISTER cseq=1 flow=1: ok",
        " osip   NICT got 401 Unauthorized cseq=1 flow=1",
        " imstls challenged flow=1",
        " osip   send REGISTER cseq=2 flow=1: ok",
        " osip   NICT got 200 OK cseq=2 flow=1",
        " imstls registered flow=1",
        " osip   NICT got 200 OK cseq=3 flow=1",
        " imstls deregistered",
    ];
    let mut at = 0;
    for step in order {
        at += text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("no {step:?} in order in:\n{text}"))
            + step.len();
    }
    let (code, text) = run("wrong");
    assert_eq!(code, Some(1), "{text}");
    // Kamailio answers a wrong response with a new 401; imstls stops after its challenge cap.
    assert!(
        text.contains(" imstls registration_failed flow=0 reason=too_many_challenges"),
        "{text}"
    );
}

/// One `ue --json` line: the event name, its time and the raw line.
struct Line {
    event: String,
    t_ms: u64,
    text: String,
}

fn number(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn parse(line: &str) -> Line {
    let event = line
        .split("\"event\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    Line {
        event,
        t_ms: number(line, "t_ms").unwrap_or(0),
        text: line.to_owned(),
    }
}

/// `ue --json` against `k` with extra flags, its event lines sent as they are printed.
fn spawn_ue(k: &Kamailio, extra: &[&str]) -> (Child, std::sync::mpsc::Receiver<Line>) {
    use std::io::BufRead as _;
    let mut child = ue_command(k, "alice-secret")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(parse(&line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Collects lines until `done` holds for one of them or `limit` passes.
fn collect_until(
    rx: &std::sync::mpsc::Receiver<Line>,
    lines: &mut Vec<Line>,
    limit: Duration,
    done: impl Fn(&Line) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let stop = done(&line);
                lines.push(line);
                if stop {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn transcript(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_registrar_closing_after_every_200_ok_gets_the_all_flows_failed_back_off() {
    // RFC 5626 §4.5: base-time 30 s "if all of the flows to every URI in the outbound proxy
    // set have failed", 90 s only "in the case where at least one of the flows has not
    // failed". Scaled down for the test (1 s and 20 s) so that the two cannot be confused.
    let k = start_kamailio_with(Setup {
        algorithm: "MD5",
        close_after_200: true,
        port: None,
    });
    let (mut child, rx) = spawn_ue(
        &k,
        &[
            "--hold",
            "30",
            "--backoff-base-ms",
            "1000",
            "--backoff-base-other-ms",
            "20000",
        ],
    );
    let mut lines = Vec::new();
    let saw = collect_until(&rx, &mut lines, Duration::from_secs(20), |l| {
        l.event == "backoff"
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = transcript(&lines);
    assert!(saw, "no back-off:\n{log}");
    let registered = lines.iter().position(|l| l.event == "registered");
    let lost = lines.iter().position(|l| l.event == "connection_lost");
    let backoff = lines.last().unwrap();
    assert!(
        registered.is_some() && lost > registered,
        "registered, then Kamailio closed the flow:\n{log}"
    );
    // The flow never proved itself (Kamailio closed before the pong).
    assert!(!log.contains("pong_received"), "{log}");
    assert_eq!(number(&backoff.text, "attempt"), Some(1), "{log}");
    let delay = number(&backoff.text, "delay_ms").unwrap();
    // One failure, base 1 s: W = 2 s, wait uniform in [1 s, 2 s] (the 20 s base would give
    // [20 s, 40 s]).
    assert!(
        (1000..=2000).contains(&delay),
        "first wait {delay} ms, expected [1000, 2000]\n{log}"
    );
}

/// Sockets listening on 127.0.0.1:`port` (from /proc/net/tcp: local address, state 0A).
fn listeners(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            columns.get(1) == Some(&local.as_str()) && columns.get(3) == Some(&"0A")
        })
        .count()
}

#[test]
fn a_registrar_restarting_after_a_proven_flow_is_registered_with_again_at_once() {
    // RFC 5626 §4.5: after a flow that proved itself (registered, pong received) fails, the
    // first retry is immediate. The old Kamailio is killed while its replacement already
    // listens on the same port (tcp_reuse_port), as in a rolling restart.
    let old = start_kamailio("MD5");
    let port = old.port;
    let (mut child, rx) = spawn_ue(&old, &["--hold", "60"]);
    let mut lines = Vec::new();
    let proven = collect_until(&rx, &mut lines, Duration::from_secs(20), |l| {
        l.event == "pong_received"
    });
    assert!(proven, "no proven flow:\n{}", transcript(&lines));
    let new = start_kamailio_with(Setup {
        algorithm: "MD5",
        close_after_200: false,
        port: Some(port),
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while listeners(port) < 2 {
        assert!(
            Instant::now() < deadline,
            "the new Kamailio does not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = lines.len();
    drop(old);
    let again = collect_until(&rx, &mut lines, Duration::from_secs(10), |l| {
        l.event == "registered"
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(new);
    let log = transcript(&lines);
    assert!(again, "not registered again within 10 s:\n{log}");
    let after = &lines[before..];
    let lost = after
        .iter()
        .find(|l| l.event == "connection_lost")
        .unwrap_or_else(|| panic!("no connection_lost:\n{log}"));
    assert!(lost.text.contains("\"registered\":true"), "{log}");
    assert!(
        !after.iter().any(|l| l.event == "backoff"),
        "no back-off after a proven flow:\n{log}"
    );
    let reconnect = after
        .iter()
        .find(|l| l.event == "connecting")
        .unwrap_or_else(|| panic!("no new flow:\n{log}"));
    let registered = after.last().unwrap();
    assert!(
        reconnect.t_ms - lost.t_ms < 100,
        "the new flow starts at once:\n{log}"
    );
    assert!(
        registered.t_ms - lost.t_ms < 3000,
        "registered again within a few seconds:\n{log}"
    );
}
