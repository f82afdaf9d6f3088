//! `imstls-sim`: the loopback P-CSCF simulator as a standalone process, for test harnesses that
//! cannot link the Rust testkit (C, JVM) and for trying a SIP stack by hand.
//!
//! Prints `listening <addr>` first (and `root-ca <path>` with `--write-pem`), then one line per
//! observation: `conn <n>: <observation>`. Runs until killed, until `--seconds` elapse, or until
//! standard input closes with `--until-stdin-eof`.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls_testkit::{CertKind, DigestAlgorithm, Fault, SimConfig, Simulator, TlsVersions};

const USAGE: &str = "usage: imstls-sim [--bind ADDR] [--server-name FQDN] [--cert KIND]
    [--tls12-only | --tls13-only] [--request-client-cert] [--realm REALM]
    [--user IMPI:PASSWORD ...] [--algorithm MD5|SHA-256] [--no-qop] [--flow-timer SECS]
    [--fault none|close-after:N|reset-after:N|silent-after:N|delay-ms:N|reset-on-accept|silent-handshake]
    [--write-pem DIR] [--seconds N] [--until-stdin-eof]
KIND: good, expired, not-yet-valid, wrong-name, self-signed, unknown-ca, missing-intermediate,
    client-auth-eku-only, ca-true-leaf, wildcard, revoked, uri-san-only, dns-san-only,
    uri-with-user-part, ip-san, cn-only, other-key";

struct Options {
    config: SimConfig,
    write_pem: Option<PathBuf>,
    seconds: Option<u64>,
    until_stdin_eof: bool,
}

fn main() {
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("imstls-sim: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let cert = options.config.cert;
    let sim = match Simulator::start(options.config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("imstls-sim: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening {}", sim.addr());
    if let Some(dir) = &options.write_pem {
        match sim.pki().write_pem_files(dir, cert) {
            Ok((chain, key, root)) => {
                let _ = writeln!(out, "root-ca {}", root.display());
                let _ = writeln!(out, "chain {}", chain.display());
                let _ = writeln!(out, "key {}", key.display());
            }
            Err(e) => {
                eprintln!(
                    "imstls-sim: cannot write PEM files to {}: {e}",
                    dir.display()
                );
                std::process::exit(1);
            }
        }
    }
    let _ = writeln!(out, "spki-sha256 {}", sim.pki().good_spki_sha256_base64());
    let _ = out.flush();

    let stdin_closed = Arc::new(AtomicBool::new(false));
    if options.until_stdin_eof {
        let flag = stdin_closed.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            flag.store(true, Ordering::Release);
        });
    }
    let deadline = options
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut printed = 0;
    loop {
        let log = sim.observations();
        for (conn, observation) in log.iter().skip(printed) {
            let _ = writeln!(out, "conn {conn}: {observation:?}");
        }
        printed = log.len();
        let _ = out.flush();
        if stdin_closed.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.shutdown();
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        config: SimConfig::default(),
        write_pem: None,
        seconds: None,
        until_stdin_eof: false,
    };
    let mut users = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let c = &mut options.config;
        match arg.as_str() {
            "--bind" => {
                c.bind = value("--bind")?
                    .parse()
                    .map_err(|e| format!("--bind: {e}"))?;
            }
            "--server-name" => c.server_name = value("--server-name")?,
            "--cert" => c.cert = value("--cert")?.parse::<CertKind>()?,
            "--tls12-only" => c.tls_versions = TlsVersions::Tls12Only,
            "--tls13-only" => c.tls_versions = TlsVersions::Tls13Only,
            "--request-client-cert" => c.request_client_cert = true,
            "--realm" => c.registrar.realm = value("--realm")?,
            "--user" => {
                let v = value("--user")?;
                let (impi, password) = v.split_once(':').ok_or("--user takes IMPI:PASSWORD")?;
                users.push((impi.to_owned(), password.to_owned()));
            }
            "--algorithm" => {
                let v = value("--algorithm")?;
                c.registrar.algorithm = DigestAlgorithm::from_name(&v)
                    .ok_or_else(|| format!("unknown algorithm {v}"))?;
            }
            "--no-qop" => c.registrar.qop_auth = false,
            "--flow-timer" => {
                c.registrar.flow_timer = Some(number(&value("--flow-timer")?)?);
            }
            "--fault" => c.fault = fault(&value("--fault")?)?,
            "--write-pem" => options.write_pem = Some(PathBuf::from(value("--write-pem")?)),
            "--seconds" => options.seconds = Some(number(&value("--seconds")?)?),
            "--until-stdin-eof" => options.until_stdin_eof = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !users.is_empty() {
        options.config.registrar.users = users;
    }
    Ok(options)
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{v:?} is not a number"))
}

fn fault(v: &str) -> Result<Fault, String> {
    let (name, arg) = v.split_once(':').unwrap_or((v, ""));
    Ok(match name {
        "none" => Fault::None,
        "close-after" => Fault::CloseAfterMessages(number(arg)?),
        "reset-after" => Fault::ResetAfterMessages(number(arg)?),
        "silent-after" => Fault::SilentAfterMessages(number(arg)?),
        "delay-ms" => Fault::DelayResponses(Duration::from_millis(number(arg)?)),
        "reset-on-accept" => Fault::ResetOnAccept,
        "silent-handshake" => Fault::SilentHandshake,
        _ => return Err(format!("unknown fault {v}")),
    })
}
