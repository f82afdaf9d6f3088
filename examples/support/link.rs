//! The quickstart's runner: drives the sans-IO `imstls::Ue` over std sockets and plays "the
//! SIP stack" with the small UA from `imstls-testkit`. It shows the whole contract of the
//! engine: after every input, drain `poll_output()` until it returns a timeout. (The `ue` CLI
//! runs on the managed driver instead: `managed.rs`.)

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use imstls::{Event, FlowId, Output, RegisterReason, TransportClosure, TransportError, Ue};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::Ua;

#[path = "stack.rs"]
mod stack;

pub type Error = Box<dyn std::error::Error>;

/// The engine, one socket, and the SIP UA acting as the stack.
pub struct Link {
    pub ue: Ue,
    pub ua: Ua,
    socket: Option<(FlowId, TcpStream)>,
    /// When true the stack does not answer challenges (to leave a procedure incomplete).
    pub hold_after_challenge: bool,
    /// Per-address TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Link {
    pub fn new(ue: Ue, ua: Ua) -> Link {
        Link {
            ue,
            ua,
            socket: None,
            hold_after_challenge: false,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Runs until the next event (already acted upon as the stack would) or until `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, Error> {
        loop {
            if let Some(event) = self.drain()? {
                self.act_as_stack(&event)?;
                return Ok(Some(event));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.wait_for_input(deadline)?;
        }
    }

    /// Returns the first event `until` accepts; errors after `limit`.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut on_event: impl FnMut(&Event),
        until: impl Fn(&Event) -> bool,
    ) -> Result<Event, Error> {
        let deadline = Instant::now() + limit;
        while let Some(event) = self.next_event(deadline)? {
            on_event(&event);
            if until(&event) {
                return Ok(event);
            }
        }
        Err(format!("gave up waiting ({:?})", self.ue.state()).into())
    }

    /// Runs outputs until an event (returned) or nothing is left (None).
    fn drain(&mut self) -> Result<Option<Event>, Error> {
        loop {
            match self.ue.poll_output() {
                Output::Connect {
                    flow, host, port, ..
                } => self.connect(flow, &host.to_string(), port)?,
                Output::Transmit { flow, data } => {
                    if let Some((current, stream)) = &mut self.socket {
                        if *current == flow && stream.write_all(&data).is_err() {
                            // The read side reports the failure.
                        }
                    }
                }
                Output::Close { flow } => {
                    if self.socket.as_ref().is_some_and(|(f, _)| *f == flow) {
                        self.socket = None; // dropping the stream closes it
                    }
                }
                Output::Event(event) => return Ok(Some(event)),
                Output::Timeout(_) => return Ok(None),
                other => return Err(format!("unexpected output {other:?}").into()),
            }
        }
    }

    fn connect(&mut self, flow: FlowId, host: &str, port: u16) -> Result<(), Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<_> = match (host, port).to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(_) => Vec::new(),
        };
        // No address at all: the name did not resolve.
        let mut last = TransportError::Unresolved;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let local = stream.local_addr().ok();
                    if let Some(local) = local {
                        self.ua.set_local_addr(local);
                    }
                    self.socket = Some((flow, stream));
                    self.ue.connected(Instant::now(), flow, local, Some(addr))?;
                    return Ok(());
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ConnectionRefused => TransportError::Refused,
                        ErrorKind::TimedOut => TransportError::TimedOut,
                        _ => TransportError::Other(e.to_string()),
                    }
                }
            }
        }
        self.ue.connect_failed(Instant::now(), flow, last)?;
        Ok(())
    }

    /// Waits for socket bytes or the next engine timer, whichever comes first.
    fn wait_for_input(&mut self, deadline: Instant) -> Result<(), Error> {
        let until = self.ue.next_timeout().map_or(deadline, |t| t.min(deadline));
        let wait = until
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(200));
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
                if self.hold_after_challenge && matches!(reason, RegisterReason::Challenge { .. }) {
                    return Ok(());
                }
                let request = stack::register_request(&mut self.ua, *reason);
                self.ue.send_sip(now, &request)?;
            }
            Event::SipReceived { flow, message } => {
                let Ok(message) = SipMessage::parse(message) else {
                    return Ok(()); // not ours to judge: a real stack would log and drop it
                };
                if message.is_request() {
                    let answer = self.ua.answer(&message, 200);
                    return Ok(self.ue.send_sip(now, &answer)?);
                }
                let outcome = self.ua.handle_response(&message);
                stack::report(&mut self.ue, now, *flow, outcome)?;
            }
            _ => {}
        }
        Ok(())
    }
}
