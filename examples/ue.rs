//! `ue`: register to any P-CSCF over Annex O TLS, with a small SIP UA playing the stack
//! (REGISTER with RFC 7616 Digest MD5/SHA-256, qop=auth or none, stale=true; Contact with
//! `+sip.instance` and `reg-id`; `Supported: outbound, path`; Via `SIP/2.0/TLS`).
//!
//! ```text
//! cargo run --release --example ue -- --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN]
//!     [--ca FILE.pem ...] [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...]
//!     --password-file FILE|- [--expires SECS] [--tls13-only] [--hold SECS]
//!     [--json | --ladder] [--keylog FILE] [--backoff-base-ms MS] [--backoff-base-other-ms MS]
//! ```
//!
//! `ue --help` describes every flag, the JSON events and the exit codes. The password comes
//! from the first line of a file, or of standard input with `--password-file -`;
//! `--password SECRET` still works but warns: it shows in `ps` and in the shell history.
//! `--ladder` draws the session as a sequence diagram (examples/support/ladder.rs).
//! The I/O is the product's own: the managed driver (`imstls::driver::Driver`, what C and
//! Java users get as `imstls_driver`) owns socket and timers (examples/support/managed.rs).
//! `--keylog FILE` appends the TLS secrets to FILE for Wireshark (debugging only).
//!
//! `--hold N` stays registered N seconds (refreshing, recovering from loss), then
//! de-registers. `--backoff-base-ms` sets RFC 5626 §4.5's base-time for "all of the flows
//! ... have failed" (default 30000), `--backoff-base-other-ms` the one for "at least one of
//! the flows has not failed" (default 90000; imstls keeps one flow, so it is unused); lab
//! runs shorten them. `--json` prints one JSON object per line per event, each with `event` and
//! `t_ms`. Exit codes: 0 success, 1 registration rejected, 2 usage or configuration error,
//! 3 P-CSCF certificate rejected, 4 other TLS failure, 5 connect failure or timeout.
//! Identities and the password are never printed.

#[path = "support/ladder.rs"]
mod ladder;
#[path = "support/managed.rs"]
mod managed;

use std::fmt::Write as _;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use imstls::driver::Driver;
use imstls::{
    alert_name, Backoff, CandidateFailure, Event, FailureReason, Identity, TlsVersions,
    TrustSource, UeConfig, UeState,
};
use imstls_testkit::ua::{Ua, UaConfig};
use ladder::Ladder;
use managed::ManagedLink;
use zeroize::Zeroizing;

const USAGE: &str =
    "usage: ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]
          [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password-file FILE|-
          [--expires SECS] [--tls13-only] [--hold SECS] [--json | --ladder] [--keylog FILE]
          [--backoff-base-ms MS] [--backoff-base-other-ms MS]
       ue --help";

const HELP: &str = "\
ue: register to a P-CSCF over TS 33.203 Annex O TLS, stay registered, de-register.

Flags:
  --pcscf HOST:PORT         P-CSCF candidate, tried in order (repeat for failover); required
  --server-name FQDN        name the P-CSCF certificate must carry (RFC 5922), sent as SNI
  --ca FILE.pem             trust anchors (repeatable); default: the Mozilla roots
  --pin SPKI_SHA256_BASE64  also require this SPKI pin (repeatable)
  --impi ID                 private identity; required
  --impu URI                public identity, sip:user@domain (repeatable); required
  --password-file FILE      read the Digest password from the first line of FILE;
                            `-` reads it from standard input
  --password SECRET         the password on the command line: visible in `ps` and the shell
                            history, so it warns; prefer --password-file
  --expires SECS            requested registration expiry (default 3600)
  --tls13-only              offer TLS 1.3 only (default: TLS 1.3 and 1.2)
  --hold SECS               stay registered SECS seconds (refreshing, recovering), then
                            de-register (default 0)
  --json                    one JSON object per event and line
  --ladder                  a sequence diagram: UE | P-CSCF, one line per event with its time
  --keylog FILE             DEBUGGING ONLY: append the TLS secrets (NSS key log) to FILE so
                            Wireshark can decrypt a capture; anyone with FILE can read the
                            flows. Never enabled by SSLKEYLOGFILE. Warns on stderr and with
                            a key_log_enabled event per flow
  --backoff-base-ms MS      RFC 5626 §4.5 base-time when all flows failed (default 30000)
  --backoff-base-other-ms MS  base-time when a flow has not failed (default 90000)
  -h, --help                this text

Output: one line per event, as text (default), JSON (--json) or a ladder (--ladder).
Identities and the password are never printed.

JSON events: every line has \"event\", \"t_ms\" (since start) and \"clause\"; besides:
  connecting               target, attempt
  key_log_enabled          (warning: this flow's secrets go to the key log)
  connect_failed           reason
  tls_established          version, cipher_suite, group, resumed
  client_certificate_requested
  certificate_rejected     alert, alert_sent, alert_received, reason, detail
  tls_failed               alert, alert_sent, alert_received, reason, detail
  register_now             reason (initial, challenge, stale_challenge, refresh, recovery,
                           network_changed, rekey, deregister)
  registering              kind (register, refresh, deregister)
  sip_received             bytes
  challenged               stale
  registered               expires
  keepalive_sent, pong_received, ping_answered, rekeyed
  connection_lost          reason, registered
  backoff                  attempt, delay_ms, candidates
  superseded               state, purged_sessions, dropped_bytes
  registration_failed      status, reason, retrying, candidates
  deregistered
  candidates: [{\"candidate\":N,\"target\":\"host:port\",\"reason\":\"...\",\"detail\":\"...\"}, ...]

Exit codes:
  0  registered, held and de-registered
  1  registration rejected
  2  usage or configuration error
  3  P-CSCF certificate rejected
  4  other TLS failure
  5  connect failure or timeout
";

const PASSWORD_WARNING: &str = "ue: warning: --password puts the password in every `ps` listing \
and in the shell history; use --password-file FILE, or --password-file - to read it from \
standard input";

/// How long the first registration may take before giving up (exit 5).
const REGISTER_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Args {
    pcscf: Vec<String>,
    server_name: Option<String>,
    ca: Vec<String>,
    pins: Vec<String>,
    impi: Option<String>,
    impus: Vec<String>,
    password: Option<Zeroizing<String>>,
    expires: u32,
    tls13_only: bool,
    hold: u64,
    json: bool,
    ladder: bool,
    keylog: Option<String>,
    backoff: Backoff,
}

/// What `parse_args` decided instead of a run.
enum Usage {
    Help,
    Error(String),
}

impl From<String> for Usage {
    fn from(why: String) -> Usage {
        Usage::Error(why)
    }
}

impl From<&str> for Usage {
    fn from(why: &str) -> Usage {
        Usage::Error(why.to_owned())
    }
}

/// The first line of `path` (`-`: standard input), without its line end.
fn read_password(path: &str) -> Result<Zeroizing<String>, String> {
    let mut line = Zeroizing::new(String::new());
    let read = if path == "-" {
        std::io::stdin().lock().read_line(&mut line)
    } else {
        std::fs::File::open(path)
            .and_then(|file| std::io::BufReader::new(file).read_line(&mut line))
    };
    read.map_err(|e| format!("--password-file {path}: {e}"))?;
    let end = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(end);
    if line.is_empty() {
        return Err(format!(
            "--password-file {path}: no password on the first line"
        ));
    }
    Ok(line)
}

fn parse_args() -> Result<Args, Usage> {
    let mut args = Args {
        expires: 3600,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--pcscf" => args.pcscf.push(value()?),
            "--server-name" => args.server_name = Some(value()?),
            "--ca" => args.ca.push(value()?),
            "--pin" => args.pins.push(value()?),
            "--impi" => args.impi = Some(value()?),
            "--impu" => args.impus.push(value()?),
            "--password" => {
                eprintln!("{PASSWORD_WARNING}");
                args.password = Some(Zeroizing::new(value()?));
            }
            "--password-file" => args.password = Some(read_password(&value()?)?),
            "--keylog" => args.keylog = Some(value()?),
            "--expires" => {
                args.expires = value()?
                    .parse()
                    .ok()
                    .filter(|e| *e > 0)
                    .ok_or("--expires takes a positive number of seconds")?
            }
            "--hold" => {
                args.hold = value()?
                    .parse()
                    .map_err(|_| "--hold takes a number of seconds")?
            }
            "--backoff-base-ms" => {
                args.backoff.base_all_failed = Duration::from_millis(
                    value()?
                        .parse()
                        .map_err(|_| "--backoff-base-ms takes milliseconds")?,
                )
            }
            "--backoff-base-other-ms" => {
                args.backoff.base_not_all_failed = Duration::from_millis(
                    value()?
                        .parse()
                        .map_err(|_| "--backoff-base-other-ms takes milliseconds")?,
                )
            }
            "--tls13-only" => args.tls13_only = true,
            "--json" => args.json = true,
            "--ladder" => args.ladder = true,
            "-h" | "--help" => return Err(Usage::Help),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.pcscf.is_empty() {
        return Err("--pcscf is required".into());
    }
    if args.impi.is_none() || args.impus.is_empty() || args.password.is_none() {
        return Err("--impi, --impu and --password-file are required".into());
    }
    if args.json && args.ladder {
        return Err("--json and --ladder exclude each other".into());
    }
    Ok(args)
}

/// Prints events as JSON lines, a ladder or text; never prints identities or secrets.
struct Printer {
    json: bool,
    ladder: Option<std::cell::RefCell<Ladder>>,
    start: Instant,
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Printer {
    fn print(&self, event: &Event) {
        let t_ms = self.start.elapsed().as_millis();
        if let Some(ladder) = &self.ladder {
            ladder.borrow_mut().print(event);
            return;
        }
        if !self.json {
            println!("{:>8} ms  {:<22} {event}", t_ms, event.code());
            return;
        }
        let mut fields: Vec<(&str, String)> = Vec::new();
        let s = |v: &str| json_string(v);
        match event {
            Event::Connecting {
                target, attempt, ..
            } => {
                fields.push(("target", s(target)));
                fields.push(("attempt", attempt.to_string()));
            }
            Event::ConnectFailed { reason, .. } => fields.push(("reason", s(&reason.to_string()))),
            Event::TlsEstablished { details, .. } => {
                fields.push(("version", s(details.version)));
                fields.push(("cipher_suite", s(details.cipher_suite)));
                fields.push(("group", details.key_exchange_group.map_or("null".into(), s)));
                fields.push(("resumed", details.resumed.to_string()));
            }
            Event::CertificateRejected { failure, .. } | Event::TlsFailed { failure, .. } => {
                let alert = failure.alert_sent.or(failure.alert_received);
                fields.push(("alert", alert.map_or("null".into(), |a| s(alert_name(a)))));
                fields.push((
                    "alert_sent",
                    failure
                        .alert_sent
                        .map_or("null".into(), |a| s(alert_name(a))),
                ));
                fields.push((
                    "alert_received",
                    failure
                        .alert_received
                        .map_or("null".into(), |a| s(alert_name(a))),
                ));
                let reason = failure
                    .certificate()
                    .map_or(failure.kind.code(), |c| c.code());
                fields.push(("reason", s(reason)));
                fields.push(("detail", s(&failure.to_string())));
            }
            Event::RegisterNow { reason, .. } => fields.push(("reason", s(reason.code()))),
            Event::Registering { kind, .. } => fields.push(("kind", s(kind.code()))),
            Event::Challenged { stale, .. } => fields.push(("stale", stale.to_string())),
            Event::Registered { expires, .. } => {
                fields.push(("expires", expires.as_secs().to_string()))
            }
            Event::ConnectionLost {
                reason, registered, ..
            } => {
                fields.push(("reason", s(reason.code())));
                fields.push(("registered", registered.to_string()));
            }
            Event::BackingOff {
                attempt,
                delay,
                candidates,
            } => {
                fields.push(("attempt", attempt.to_string()));
                fields.push(("delay_ms", delay.as_millis().to_string()));
                fields.push(("candidates", candidates_json(candidates)));
            }
            Event::Superseded { abandoned } => {
                fields.push(("state", s(&format!("{:?}", abandoned.state))));
                fields.push(("purged_sessions", abandoned.purged_sessions.to_string()));
                fields.push(("dropped_bytes", abandoned.dropped_bytes.to_string()));
            }
            Event::RegistrationFailed {
                status,
                reason,
                retrying,
                candidates,
            } => {
                fields.push(("status", status.map_or("null".into(), |v| v.to_string())));
                fields.push(("reason", s(reason.code())));
                fields.push(("retrying", retrying.to_string()));
                fields.push(("candidates", candidates_json(candidates)));
            }
            Event::SipReceived { message, .. } => fields.push(("bytes", message.len().to_string())),
            _ => {}
        }
        let mut line = format!("{{\"event\":{},\"t_ms\":{t_ms}", s(event.code()));
        for (key, value) in fields {
            let _ = write!(line, ",\"{key}\":{value}");
        }
        let _ = write!(line, ",\"clause\":{}}}", s(event.clause()));
        println!("{line}");
    }
}

/// `[{"candidate":0,"target":"host:port","reason":"connect_refused","detail":"..."}, ...]`
fn candidates_json(candidates: &[CandidateFailure]) -> String {
    let items: Vec<String> = candidates
        .iter()
        .map(|f| {
            format!(
                "{{\"candidate\":{},\"target\":{},\"reason\":{},\"detail\":{}}}",
                f.candidate,
                json_string(&f.target),
                json_string(f.reason.code()),
                json_string(&f.reason.to_string())
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Why the CLI stops with a non-zero code.
enum Stop {
    Rejected,
    Certificate,
    Tls,
    Connect,
}

impl Stop {
    fn code(&self) -> u8 {
        match self {
            Stop::Rejected => 1,
            Stop::Certificate => 3,
            Stop::Tls => 4,
            Stop::Connect => 5,
        }
    }
}

/// The outcome an event decides, if any, while trying to (stay) registered.
fn verdict(event: &Event, ever_registered: bool) -> Option<Stop> {
    match event {
        Event::RegistrationFailed {
            reason,
            retrying: false,
            ..
        } => Some(match reason {
            FailureReason::Certificate => Stop::Certificate,
            FailureReason::Tls => Stop::Tls,
            _ => Stop::Rejected,
        }),
        // Before the first registration a back-off means the P-CSCF is out of reach (or
        // refusing with a temporary error): report it instead of waiting minutes.
        Event::BackingOff { .. } if !ever_registered => Some(Stop::Connect),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(Usage::Help) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(Usage::Error(why)) => {
            eprintln!("ue: {why}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) => ExitCode::from(stop.code()),
    }
}

fn build(args: &Args) -> Result<(UeConfig, Identity, UaConfig), String> {
    let mut builder = UeConfig::builder();
    for pcscf in &args.pcscf {
        builder = builder.pcscf(pcscf.clone());
    }
    if let Some(name) = &args.server_name {
        builder = builder.server_name(name.clone());
    }
    for ca in &args.ca {
        builder = builder.trust_anchors(TrustSource::File(ca.into()));
    }
    for pin in &args.pins {
        builder = builder.spki_pin(pin.clone());
    }
    if args.tls13_only {
        builder = builder.tls_versions(TlsVersions::Tls13Only);
    }
    builder = builder.backoff(args.backoff);
    if let Some(path) = &args.keylog {
        eprintln!(
            "ue: warning: TLS secrets are appended to {path}: whoever holds it can decrypt \
             the captured flows"
        );
        builder = builder.key_log_file(path);
    }
    let config = builder.build().map_err(|e| e.to_string())?;
    let impi = args.impi.clone().unwrap_or_default();
    let impus: Vec<&str> = args.impus.iter().map(String::as_str).collect();
    let identity = Identity::new(&impi, &impus).map_err(|e| e.to_string())?;
    // The home domain for the Request-URI comes from the first IMPU (sip:user@domain).
    let domain = impus[0]
        .split_once('@')
        .map(|(_, d)| d.split([';', '>', ':']).next().unwrap_or(d))
        .or(args.server_name.as_deref())
        .ok_or("cannot tell the home domain from the first --impu (sip:user@domain)")?
        .to_owned();
    let ua = UaConfig {
        impi,
        impu: impus[0].to_owned(),
        password: args.password.as_deref().map_or("", String::as_str).into(),
        server_name: domain,
        expires: args.expires,
        ..UaConfig::default()
    };
    Ok((config, identity, ua))
}

fn run(args: Args) -> Result<(), Stop> {
    let start = Instant::now();
    let printer = Printer {
        json: args.json,
        ladder: args
            .ladder
            .then(|| std::cell::RefCell::new(Ladder::new(start))),
        start,
    };
    let (config, identity, ua) = match build(&args) {
        Ok(parts) => parts,
        Err(why) => {
            eprintln!("ue: {why}");
            std::process::exit(2);
        }
    };
    let driver = Driver::new(config).map_err(|e| {
        eprintln!("ue: {e}");
        Stop::Tls
    })?;
    let mut link = ManagedLink::new(driver, Ua::new(ua));
    let fail = |e: imstls::driver::DriverError| {
        eprintln!("ue: {e}");
        Stop::Connect
    };
    link.driver.start_registration(identity).map_err(fail)?;

    // Register (give up after REGISTER_DEADLINE), then hold.
    let mut ever_registered = false;
    let deadline = Instant::now() + REGISTER_DEADLINE;
    while !ever_registered {
        let Some(event) = link.next_event(deadline).map_err(fail)? else {
            eprintln!("ue: not registered after {} s", REGISTER_DEADLINE.as_secs());
            return Err(Stop::Connect);
        };
        printer.print(&event);
        if let Some(stop) = verdict(&event, false) {
            return Err(stop);
        }
        ever_registered = matches!(event, Event::Registered { .. });
    }
    let hold_until = Instant::now() + Duration::from_secs(args.hold);
    while let Some(event) = link.next_event(hold_until).map_err(fail)? {
        printer.print(&event);
        if let Some(stop) = verdict(&event, true) {
            return Err(stop);
        }
    }
    if link.driver.state() != UeState::Registered {
        eprintln!(
            "ue: not registered when the hold ended ({:?})",
            link.driver.state()
        );
        return Err(Stop::Connect);
    }
    link.driver.deregister().map_err(fail)?;
    let bye = Instant::now() + Duration::from_secs(35);
    while let Some(event) = link.next_event(bye).map_err(fail)? {
        printer.print(&event);
        if matches!(event, Event::Deregistered) {
            return Ok(());
        }
    }
    eprintln!("ue: de-registration did not complete");
    Err(Stop::Connect)
}
