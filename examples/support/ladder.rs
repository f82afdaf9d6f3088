//! `ue --ladder`: the session as a sequence ("ladder") diagram in the terminal, one line per
//! event as it happens, UE on the left, P-CSCF on the right (the way sngrep draws flows).
//! Plain ASCII, never colour, one stable line format so tests and scripts can read it
//! (`examples/c/ue.c --ladder` prints the same lines):
//!
//! ```text
//!  time (s)  UE                                          P-CSCF
//!     0.000  |-- TCP connect flow#1 ---------------------->|  127.0.0.1:5061 (attempt 1)
//!     0.004  |<== TLS handshake TLSv1.3 ==================>|  TLS13_AES_256_GCM_SHA384 X25519MLKEM768
//!     0.005  |-- REGISTER -------------------------------->|  initial
//!     0.007  |<-- 401 Unauthorized ------------------------|
//!     0.009  | * registered for 3600 s
//! ```
//!
//! Arrows are messages on the wire (`-->` UE to P-CSCF, `<--` back, `<==>` the TLS
//! handshake); notes start with `| ` and a marker: `*` progress, `x` failure, `~` waiting,
//! `!` a warning. No identity, SIP header or secret is printed: only start lines.

use std::time::Instant;

use imstls::{alert_name, Event, RegisterReason};

/// Characters between the two lifelines.
const WIDTH: usize = 44;

pub struct Ladder {
    start: Instant,
    /// Why the next REGISTER goes out (from the last `register_now`).
    register_reason: &'static str,
}

impl Ladder {
    pub fn new(start: Instant) -> Ladder {
        println!("{:>9}  {:<w$}P-CSCF", "time (s)", "UE", w = WIDTH + 1);
        Ladder {
            start,
            register_reason: RegisterReason::Initial.code(),
        }
    }

    pub fn print(&mut self, event: &Event) {
        let ms = self.start.elapsed().as_millis();
        let time = format!("{}.{:03}", ms / 1000, ms % 1000);
        for body in self.lines(event) {
            println!("{time:>9}  {body}");
        }
    }

    fn lines(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::Connecting {
                flow,
                target,
                attempt,
                ..
            } => vec![to_pcscf(
                &format!("TCP connect {flow}"),
                &format!("{target} (attempt {attempt})"),
            )],
            Event::ConnectFailed { reason, .. } => {
                vec![note('x', &format!("connect failed: {reason}"))]
            }
            Event::KeyLogEnabled { flow } => vec![note(
                '!',
                &format!("key log on: {flow} can be decrypted by whoever holds it"),
            )],
            Event::TlsEstablished { details, .. } => vec![handshake(
                &format!(
                    "TLS handshake {}{}",
                    details.version,
                    if details.resumed { " resumed" } else { "" }
                ),
                &format!(
                    "{} {}",
                    details.cipher_suite,
                    details.key_exchange_group.unwrap_or("-")
                ),
            )],
            Event::ClientCertificateRequested { aborted, .. } => vec![to_ue(
                "CertificateRequest",
                if *aborted {
                    "aborted"
                } else {
                    "sent no certificate"
                },
            )],
            Event::CertificateRejected { failure, .. } | Event::TlsFailed { failure, .. } => {
                let reason = failure
                    .certificate()
                    .map_or(failure.kind.code(), |c| c.code());
                let mut lines = Vec::new();
                if let Some(alert) = failure.alert_sent {
                    lines.push(to_pcscf(&format!("alert {}", alert_name(alert)), reason));
                } else if let Some(alert) = failure.alert_received {
                    lines.push(to_ue(&format!("alert {}", alert_name(alert)), reason));
                }
                lines.push(note('x', &format!("{}: {event}", event.code())));
                lines
            }
            Event::RegisterNow { reason, .. } => {
                self.register_reason = reason.code();
                Vec::new()
            }
            Event::Registering { .. } => vec![to_pcscf("REGISTER", self.register_reason)],
            Event::SipReceived { message, .. } => vec![to_ue(&start_line(message), "")],
            Event::Challenged { .. } => Vec::new(),
            Event::Registered { expires, .. } => vec![note(
                '*',
                &format!("registered for {} s", expires.as_secs()),
            )],
            Event::KeepAliveSent { .. } => vec![to_pcscf("ping CRLFCRLF", "")],
            Event::PongReceived { .. } => vec![to_ue("pong CRLF", "")],
            Event::PingAnswered { .. } => {
                vec![to_ue("ping CRLFCRLF", ""), to_pcscf("pong CRLF", "")]
            }
            Event::ConnectionLost {
                flow,
                reason,
                registered,
            } => vec![note(
                'x',
                &format!(
                    "{flow} lost: {}{}",
                    reason.code(),
                    if *registered { " (was registered)" } else { "" }
                ),
            )],
            Event::BackingOff { attempt, delay, .. } => vec![note(
                '~',
                &format!("back-off {} ms (failure {attempt})", delay.as_millis()),
            )],
            Event::RegistrationFailed {
                status,
                reason,
                retrying,
                ..
            } => vec![note(
                'x',
                &format!(
                    "registration failed: {}{}{}",
                    reason.code(),
                    status.map(|s| format!(" {s}")).unwrap_or_default(),
                    if *retrying { ", will retry" } else { "" }
                ),
            )],
            Event::Deregistered => vec![note('*', "de-registered")],
            other => vec![note('*', &other.to_string())],
        }
    }
}

fn pad(mut inner: String, fill: char, end: &str) -> String {
    while inner.chars().count() + end.len() < WIDTH {
        inner.push(fill);
    }
    inner + end
}

fn after(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("  {text}")
    }
}

fn to_pcscf(label: &str, right: &str) -> String {
    format!(
        "|{}|{}",
        pad(format!("-- {label} "), '-', ">"),
        after(right)
    )
}

fn to_ue(label: &str, right: &str) -> String {
    format!(
        "|{}|{}",
        pad(format!("<-- {label} "), '-', ""),
        after(right)
    )
}

fn handshake(label: &str, right: &str) -> String {
    format!(
        "|{}|{}",
        pad(format!("<== {label} "), '=', ">"),
        after(right)
    )
}

fn note(marker: char, text: &str) -> String {
    format!("| {marker} {text}")
}

/// A SIP message's start line without the version: `401 Unauthorized`, or the method of a
/// request. Nothing else of the message (headers carry identities) is shown.
fn start_line(message: &[u8]) -> String {
    let line = message
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or(&[]);
    let line: String = String::from_utf8_lossy(line)
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(40)
        .collect();
    match line.strip_prefix("SIP/2.0 ") {
        Some(status) => status.to_owned(),
        None => line.split(' ').next().unwrap_or("?").to_owned(),
    }
}
