//! The `ue` CLI against a real SIP registrar, not only our simulator: Kamailio 5.x with its
//! TLS module, usrloc/registrar and Digest authentication (MD5 and SHA-256, qop=auth), on
//! 127.0.0.1. CI installs `kamailio kamailio-tls-modules` from Debian. Kamailio logs the
//! algorithm of the credentials it accepted (`$aa`), and the test checks it is the one the
//! registrar was configured to challenge with.

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

fn start_kamailio(algorithm: &str) -> Kamailio {
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
    let port = free_port();
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
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    sl_send_reply("404", "Not Here");
}}
"#,
        tls = d.join("tls.cfg").display()
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

fn ue(k: &Kamailio, password: &str) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let ue = exe.parent().unwrap().parent().unwrap().join("examples/ue");
    Command::new(ue)
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
            "--hold",
            "1",
            "--json",
        ])
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
