//! The negative matrix, C flavour: the C twin of the `ue` CLI (`examples/c/ue.c`, on the
//! managed driver through `libimstls.so.0`) runs **under Valgrind** against hostile peers —
//! every certificate failure the simulator can serve, OpenSSL speaking only obsolete TLS or
//! only CBC suites, a wrong password, a reset on accept, an unreachable P-CSCF — and must end
//! with the documented exit code, the documented reason, the expected wire as the **peer**
//! logged it (the simulator's own observation log or s_server's `-msg` trace, in the words of
//! the Rust matrix's "wire" column, `tests/support/wire.rs`), and a clean Valgrind report (no
//! error, no definite leak) on every failure path. A table is printed at the end.
//!
//! The simulator negotiates TLS 1.3 here, so the UE's certificate alerts are encrypted and
//! show as `encrypted X` (seen by the simulator's rustls); after a 403 the program closes
//! with close_notify, then FIN (RFC 8446 §6.1; see docs/NEGATIVE_MATRIX.md on close_notify).

#[path = "../ffi-tests/support.rs"]
mod ffi_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use ffi_support::{build_c_ue, build_dir, require, say};
use imstls_testkit::{
    CertKind, Fault, SimConfig, Simulator, TlsVersions, DEFAULT_IMPI, DEFAULT_IMPU,
    DEFAULT_PASSWORD,
};
use support::openssl::{pem_files, OpensslServer};
use support::wire;

/// One row: a peer, what the C program is asked to do, what must come out.
struct Case {
    name: &'static str,
    peer: Peer,
    extra: &'static [&'static str],
    password: &'static str,
    exit: i32,
    /// A fragment the JSON output must contain (reason or alert).
    expect: &'static str,
    /// The first connection's wire as the peer logged it (the simulator's observation log,
    /// s_server's `-msg` trace), in the words of the Rust matrix's "wire" column.
    peer_wire: &'static str,
}

enum Peer {
    Sim(CertKind),
    SimWith(TlsVersions, Fault),
    OpenSsl(&'static [&'static str]),
    Unreachable,
}

const CASES: &[Case] = &[
    Case {
        name: "good certificate (control)",
        peer: Peer::Sim(CertKind::Good),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 0,
        expect: "\"event\":\"deregistered\"",
        peer_wire: "ue→pcscf close_notify; pcscf→ue close_notify; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "expired",
        peer: Peer::Sim(CertKind::Expired),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"expired\"",
        peer_wire: "ue→pcscf encrypted certificate_expired; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "not yet valid",
        peer: Peer::Sim(CertKind::NotYetValid),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"not_yet_valid\"",
        peer_wire: "ue→pcscf encrypted certificate_expired; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "wrong name",
        peer: Peer::Sim(CertKind::WrongName),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"name_mismatch\"",
        peer_wire: "ue→pcscf encrypted bad_certificate; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "self-signed",
        peer: Peer::Sim(CertKind::SelfSigned),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"alert\":\"unknown_ca\"",
        peer_wire: "ue→pcscf encrypted unknown_ca; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "unknown CA",
        peer: Peer::Sim(CertKind::UnknownCa),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"unknown_issuer\"",
        peer_wire: "ue→pcscf encrypted unknown_ca; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "missing intermediate",
        peer: Peer::Sim(CertKind::MissingIntermediate),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"unknown_issuer\"",
        peer_wire: "ue→pcscf encrypted unknown_ca; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "client-auth EKU only",
        peer: Peer::Sim(CertKind::ClientAuthEkuOnly),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"wrong_usage\"",
        peer_wire: "ue→pcscf encrypted unsupported_certificate; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "CA:TRUE leaf",
        peer: Peer::Sim(CertKind::CaTrueLeaf),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"ca_used_as_end_entity\"",
        peer_wire: "ue→pcscf encrypted certificate_unknown; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "wildcard not allowed",
        peer: Peer::Sim(CertKind::Wildcard),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"name_mismatch\"",
        peer_wire: "ue→pcscf encrypted bad_certificate; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "sip: URI with user part",
        peer: Peer::Sim(CertKind::UriWithUserPart),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"name_mismatch\"",
        peer_wire: "ue→pcscf encrypted bad_certificate; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "CN only, no SAN",
        peer: Peer::Sim(CertKind::CnOnly),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"name_mismatch\"",
        peer_wire: "ue→pcscf encrypted bad_certificate; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "pin mismatch",
        peer: Peer::Sim(CertKind::OtherKey),
        extra: &["--pin", "GOOD_PIN"],
        password: DEFAULT_PASSWORD,
        exit: 3,
        expect: "\"reason\":\"pin_mismatch\"",
        peer_wire: "ue→pcscf encrypted certificate_unknown; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "wrong password (403)",
        peer: Peer::Sim(CertKind::Good),
        extra: &[],
        password: "not-the-password",
        exit: 1,
        expect: "\"status\":403",
        peer_wire: "ue→pcscf close_notify; pcscf→ue close_notify; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "TLS 1.3-only UE, TLS 1.2-only P-CSCF",
        peer: Peer::SimWith(TlsVersions::Tls12Only, Fault::None),
        extra: &["--tls13-only"],
        password: DEFAULT_PASSWORD,
        exit: 4,
        expect: "protocol_version",
        peer_wire: "pcscf→ue fatal protocol_version; pcscf→ue FIN; ue→pcscf FIN",
    },
    Case {
        name: "reset on accept",
        peer: Peer::SimWith(TlsVersions::Both, Fault::ResetOnAccept),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 5,
        expect: "\"event\":\"backoff\"",
        peer_wire: "pcscf→ue RST",
    },
    Case {
        name: "OpenSSL TLS 1.0 only",
        peer: Peer::OpenSsl(&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 4,
        expect: "protocol_version",
        peer_wire: "pcscf→ue fatal protocol_version",
    },
    Case {
        name: "OpenSSL TLS 1.1 only",
        peer: Peer::OpenSsl(&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 4,
        expect: "protocol_version",
        peer_wire: "pcscf→ue fatal protocol_version",
    },
    Case {
        name: "OpenSSL TLS 1.2 CBC only",
        peer: Peer::OpenSsl(&[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0",
        ]),
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 4,
        expect: "handshake_failure",
        peer_wire: "pcscf→ue fatal handshake_failure",
    },
    Case {
        name: "unreachable",
        peer: Peer::Unreachable,
        extra: &[],
        password: DEFAULT_PASSWORD,
        exit: 5,
        expect: "\"event\":\"connect_failed\"",
        peer_wire: "no connection",
    },
];

struct Observed {
    name: &'static str,
    expected: String,
    observed: String,
    ok: bool,
}

fn run_case(case: &Case, binary: &Path, ca: &Path, dir: &Path, index: usize) -> Observed {
    let pki = support::pki();
    // Keep the peer alive for the whole run.
    let mut _sim = None;
    let mut _openssl = None;
    let mut _pems = None;
    let mut _closed = None;
    let pcscf = match &case.peer {
        Peer::Sim(cert) => {
            let sim = Simulator::start_with_pki(
                SimConfig {
                    cert: *cert,
                    ..SimConfig::default()
                },
                pki.clone(),
            )
            .unwrap();
            let addr = sim.addr().to_string();
            _sim = Some(sim);
            addr
        }
        Peer::SimWith(tls_versions, fault) => {
            let sim = Simulator::start_with_pki(
                SimConfig {
                    tls_versions: *tls_versions,
                    fault: fault.clone(),
                    ..SimConfig::default()
                },
                pki.clone(),
            )
            .unwrap();
            let addr = sim.addr().to_string();
            _sim = Some(sim);
            addr
        }
        Peer::OpenSsl(args) => {
            let (pem_dir, cert, key) = pem_files(CertKind::Good);
            let server = OpensslServer::start(&cert, &key, args);
            let addr = format!("127.0.0.1:{}", server.port);
            _openssl = Some(server);
            _pems = Some(pem_dir);
            addr
        }
        Peer::Unreachable => {
            // A port bound but never listened on, held for the run: the SYN gets RST.
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("a socket");
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            socket.bind(&any.into()).expect("bind loopback");
            let port = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port())
                .expect("a bound port");
            _closed = Some(socket);
            format!("127.0.0.1:{port}")
        }
    };
    let pin = pki.good_spki_sha256_base64();
    let log = dir.join(format!("valgrind-{index}.log"));
    let mut command = Command::new(require("valgrind", "valgrind"));
    command
        .args(["--quiet", "--error-exitcode=99", "--leak-check=full"])
        .args([
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ])
        .arg(format!("--log-file={}", log.display()))
        .arg(binary)
        .args(["--pcscf", &pcscf, "--server-name", pki.server_name()])
        .arg("--ca")
        .arg(ca)
        .args([
            "--impi",
            DEFAULT_IMPI,
            "--impu",
            DEFAULT_IMPU,
            "--password",
            case.password,
            "--json",
        ])
        .args(
            case.extra
                .iter()
                .map(|a| if *a == "GOOD_PIN" { pin.as_str() } else { a }),
        );
    let out = command.output().expect("valgrind runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let code = out.status.code().unwrap_or(-1);
    let clean = code != 99 && !report.contains("definitely lost") && !report.contains("Invalid ");
    let found = stdout.contains(case.expect);
    let peer_wire = match (&_sim, &_openssl) {
        (Some(sim), _) => match sim.observations().first() {
            Some((first, _)) => wire::sim_wire(sim, *first),
            None => "no connection".to_owned(),
        },
        (_, Some(server)) => wire::openssl_wire(&openssl_first_connection(server)),
        _ => "no connection".to_owned(),
    };
    let peer_ok = peer_wire == case.peer_wire;
    Observed {
        name: case.name,
        expected: format!(
            "exit {}, {}, peer: {}",
            case.exit, case.expect, case.peer_wire
        ),
        observed: format!(
            "exit {code}, {}, valgrind {}, peer: {peer_wire}",
            if found {
                "as documented"
            } else {
                "output differs"
            },
            if clean { "clean" } else { "REPORTED" }
        ),
        ok: code == case.exit && found && clean && peer_ok,
    }
}

/// s_server's trace, once s_server logged its end (`ERROR` after a
/// failed handshake, `CONNECTION CLOSED` after a shutdown); bounded, since the program has
/// exited by now and only the pipe may lag.
fn openssl_first_connection(server: &OpensslServer) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = server.log();
        let ended = log
            .lines()
            .any(|l| l == "ERROR" || l.contains("CONNECTION CLOSED"));
        if ended || std::time::Instant::now() >= deadline {
            return log; // the program makes one connection to s_server
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn the_c_program_meets_every_hostile_peer_cleanly_under_valgrind() {
    let binary = build_c_ue("matrix-c");
    let dir = build_dir("matrix-c");
    let ca: PathBuf = dir.join("root-ca.pem");
    std::fs::write(&ca, support::pki().root_pem()).unwrap();
    // Two workers: the machine has two cores and Valgrind is slow.
    let results: Arc<Mutex<Vec<(usize, Observed)>>> = Arc::default();
    let next = Arc::new(Mutex::new(0usize));
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (results, next, binary, ca, dir) =
                (results.clone(), next.clone(), &binary, &ca, &dir);
            scope.spawn(move || loop {
                let index = {
                    let mut n = next.lock().unwrap();
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(case) = CASES.get(index) else { break };
                let observed = run_case(case, binary, ca, dir, index);
                results.lock().unwrap().push((index, observed));
            });
        }
    });
    let mut results = Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut table = String::from("\nnegative matrix, C flavour under Valgrind (examples/c/ue.c)\n");
    table.push_str(&format!(
        "{:<40} {:<48} {}\n",
        "case", "expected", "observed"
    ));
    for (_, r) in &results {
        table.push_str(&format!(
            "{:<40} {:<48} {}{}\n",
            r.name,
            r.expected,
            r.observed,
            if r.ok { "" } else { "   <-- NOT AS EXPECTED" }
        ));
    }
    let bad = results.iter().filter(|(_, r)| !r.ok).count();
    table.push_str(&format!(
        "{} cases, {} as expected\n",
        results.len(),
        results.len() - bad
    ));
    say(&table);
    assert_eq!(bad, 0, "{table}\nValgrind logs are in {}", dir.display());
}
