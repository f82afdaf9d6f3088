//! The whole Annex O story in a few seconds, against an embedded loopback P-CSCF simulator
//! with a freshly generated test PKI:
//!
//! 1. TLS up (version, suite, group) → 401 challenge → registered;
//! 2. the P-CSCF kills the connection → a new flow at once → registered again (resumed);
//! 3. a second registration supersedes an incomplete one (its TLS session purged);
//! 4. the P-CSCF presents an expired certificate → the fatal alert goes on the wire, no retry.
//!
//! This example drives the sans-IO engine itself over std sockets, to show the contract of
//! `imstls::Ue`: every input is followed by draining `poll_output()`. The small SIP UA that
//! plays "the SIP stack" comes from `imstls-testkit`.
//!
//! Run: `cargo run --example quickstart`

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use imstls::{
    alert_name, Event, FlowId, Identity, Output, RegisterReason, TransportClosure, TransportError,
    Ue, UeConfig, UeState,
};
use imstls_testkit::observation::Observation;
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::{Ua, UaConfig, UaOutcome};
use imstls_testkit::{CertKind, SimConfig, Simulator};

type Error = Box<dyn std::error::Error>;

/// The engine, one socket, and a SIP UA acting as the stack.
struct Link {
    ue: Ue,
    ua: Ua,
    socket: Option<(FlowId, TcpStream)>,
    /// When true the "stack" does not answer challenges (to leave a procedure incomplete).
    hold_after_challenge: bool,
}

impl Link {
    /// Drains outputs, feeds socket bytes and timers, and returns the first event `until`
    /// accepts (every event is printed). Gives up after `limit`.
    fn run_until(
        &mut self,
        limit: Duration,
        until: impl Fn(&Event) -> bool,
    ) -> Result<Event, Error> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(event) = self.drain()? {
                let done = until(&event);
                self.act_as_stack(&event)?;
                if done {
                    return Ok(event);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("gave up waiting ({:?})", self.ue.state()).into());
            }
            self.wait_for_input()?;
        }
    }

    /// Runs outputs until an event (returned) or nothing is left (None).
    fn drain(&mut self) -> Result<Option<Event>, Error> {
        loop {
            match self.ue.poll_output() {
                Output::Connect {
                    flow, host, port, ..
                } => {
                    let addr: SocketAddr = format!("{host}:{port}").parse()?;
                    let now = Instant::now();
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                        Ok(stream) => {
                            stream.set_nodelay(true)?;
                            let local = stream.local_addr().ok();
                            self.socket = Some((flow, stream));
                            self.ue.connected(now, flow, local, Some(addr))?;
                        }
                        Err(e) => self.ue.connect_failed(
                            now,
                            flow,
                            TransportError::Other(e.to_string()),
                        )?,
                    }
                }
                Output::Transmit { flow, data } => {
                    if let Some((current, stream)) = &mut self.socket {
                        if *current == flow {
                            stream.write_all(&data)?;
                        }
                    }
                }
                Output::Close { flow } => {
                    if self.socket.as_ref().is_some_and(|(f, _)| *f == flow) {
                        self.socket = None; // dropping the stream closes it
                    }
                }
                Output::Event(event) => {
                    narrate(&event);
                    return Ok(Some(event));
                }
                Output::Timeout(_) => return Ok(None),
                other => return Err(format!("unexpected output {other:?}").into()),
            }
        }
    }

    /// Waits for socket bytes or the next engine timer, whichever comes first.
    fn wait_for_input(&mut self) -> Result<(), Error> {
        let wait = self
            .ue
            .next_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let Some((flow, stream)) = &mut self.socket else {
            std::thread::sleep(wait);
            self.ue.handle_timeout(Instant::now());
            return Ok(());
        };
        let flow = *flow;
        stream.set_read_timeout(Some(wait))?;
        let mut buf = [0u8; 16 * 1024];
        let result = stream.read(&mut buf);
        let now = Instant::now();
        match result {
            Ok(0) => self.ue.transport_closed(now, flow, TransportClosure::Eof)?,
            Ok(n) => self.ue.receive(now, flow, &buf[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.ue.handle_timeout(now)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.ue
                    .transport_closed(now, flow, TransportClosure::Reset)?
            }
            Err(e) => {
                self.ue
                    .transport_closed(now, flow, TransportClosure::Error(e.to_string()))?
            }
        }
        Ok(())
    }

    /// What a SIP stack does with the engine's events.
    fn act_as_stack(&mut self, event: &Event) -> Result<(), Error> {
        let now = Instant::now();
        match event {
            Event::RegisterNow { reason, .. } => {
                let request = match reason {
                    RegisterReason::Challenge { .. } if self.hold_after_challenge => return Ok(()),
                    RegisterReason::Challenge { .. } | RegisterReason::Refresh => {
                        self.ua.next_register()
                    }
                    RegisterReason::Deregister => self.ua.next_deregister(),
                    _ => {
                        self.ua.new_registration();
                        self.ua.next_register()
                    }
                };
                self.ue.send_sip(now, &request)?;
            }
            Event::SipReceived { message, .. } => {
                let message = SipMessage::parse(message)?;
                if message.is_request() {
                    let answer = self.ua.answer(&message, 200);
                    return Ok(self.ue.send_sip(now, &answer)?);
                }
                match self.ua.handle_response(&message) {
                    UaOutcome::Challenged { stale } => {
                        self.ue.registration_challenged(now, stale)?
                    }
                    UaOutcome::Registered {
                        expires,
                        flow_timer,
                    } => self.ue.registration_succeeded(
                        now,
                        Duration::from_secs(expires.into()),
                        flow_timer.map(|t| Duration::from_secs(t.into())),
                    )?,
                    UaOutcome::Deregistered => {
                        self.ue.registration_succeeded(now, Duration::ZERO, None)?
                    }
                    UaOutcome::Failed {
                        status,
                        retry_after,
                    } => self.ue.registration_failed(
                        now,
                        status,
                        retry_after.map(|s| Duration::from_secs(s.into())),
                    )?,
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn narrate(event: &Event) {
    let detail = match event {
        Event::TlsEstablished { details, .. } => format!(
            "TLS up: {} {} key exchange {}{}",
            details.version,
            details.cipher_suite,
            details.key_exchange_group.unwrap_or("-"),
            if details.resumed {
                ", session resumed"
            } else {
                ", full handshake"
            }
        ),
        Event::CertificateRejected { failure, .. } => format!(
            "P-CSCF certificate rejected: {} (alert {} sent before closing)",
            failure
                .certificate()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            failure.alert_sent.map(alert_name).unwrap_or("none")
        ),
        Event::SipReceived { message, .. } => {
            let first_line = message.split(|b| *b == b'\r').next().unwrap_or_default();
            format!("SIP in: {}", String::from_utf8_lossy(first_line))
        }
        other => other.to_string(),
    };
    println!("    {:<22} {detail}   [{}]", event.code(), event.clause());
}

fn chapter(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), Error> {
    chapter("Starting a loopback P-CSCF simulator with a fresh test PKI");
    let sim = Simulator::start(SimConfig::default())?;
    println!("    listening on {} as pcscf.ims.test", sim.addr());

    let config = UeConfig::builder()
        .pcscf(sim.addr().to_string())
        .server_name("pcscf.ims.test") // reached by IP: verify the FQDN, send it as SNI
        .trust_anchors_pem(sim.pki().root_pem())
        .build()?;
    let ua_config = UaConfig::default();
    let identity = || Identity::new(&ua_config.impi, &[&ua_config.impu]);
    let mut link = Link {
        ue: Ue::new(config, Instant::now())?,
        ua: Ua::new(ua_config.clone()),
        socket: None,
        hold_after_challenge: false,
    };

    chapter("1. Register: TLS (O.2.1), Digest challenge (Annex N), registered");
    link.ue.start_registration(Instant::now(), identity()?)?;
    link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::Registered { .. })
    })?;
    link.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::PongReceived { .. })
    })?;

    chapter("2. The P-CSCF kills the connection: new flow at once, registered again (O.4.1)");
    sim.kill_connections();
    link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::Registered { .. })
    })?;

    chapter("3. A second registration supersedes an incomplete one (O.4.1)");
    link.hold_after_challenge = true; // the stack stalls after the 401: procedure incomplete
    link.ue.network_changed(Instant::now())?;
    link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::Challenged { .. })
    })?;
    println!(
        "    ... registration left incomplete in state {:?}; starting another one",
        link.ue.state()
    );
    link.hold_after_challenge = false;
    link.ue.start_registration(Instant::now(), identity()?)?;
    let superseded = link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::Superseded { .. })
    })?;
    if let Event::Superseded { abandoned } = superseded {
        println!(
            "    removed: flow {:?}, {} TLS session(s)/ticket(s) purged, {} queued byte(s) dropped",
            abandoned.flow, abandoned.purged_sessions, abandoned.dropped_bytes
        );
    }
    link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::Registered { .. })
    })?;

    chapter("4. The P-CSCF presents an expired certificate (O.3.1.2)");
    sim.set_cert(CertKind::Expired);
    sim.clear_observations();
    link.ue.start_registration(Instant::now(), identity()?)?;
    link.run_until(Duration::from_secs(10), |e| {
        matches!(e, Event::RegistrationFailed { .. })
    })?;
    let seen = sim.wait_for(Duration::from_secs(5), |o| {
        matches!(o, Observation::AlertReceived { .. })
    });
    if let Some(Observation::AlertReceived { description }) = seen {
        println!(
            "    the P-CSCF received our fatal alert: {}",
            alert_name(description)
        );
    } else {
        return Err("the simulator saw no alert".into());
    }
    println!(
        "    UE state {:?}; next timer {:?} (no automatic retry)",
        link.ue.state(),
        link.ue.next_timeout()
    );
    assert_eq!(link.ue.state(), UeState::Closed);

    chapter("Conformance log (last entries, no personal data)");
    for entry in link
        .ue
        .conformance_log()
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(6)
        .rev()
    {
        println!("    {:<22} {}", entry.event, entry.clause);
    }
    sim.shutdown();
    println!("\nDone.");
    Ok(())
}
