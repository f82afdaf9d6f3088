//! The engine driven over real std sockets on the wall clock, for the negative matrix and
//! the soak: the same driving contract as `examples/support/link.rs` (drain `poll_output`
//! after every input), plus what tests need: every event recorded with its time, a stack that
//! can be silent or scripted, and hard wall-clock bounds so that nothing can hang a test.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use imstls::{Event, FlowId, Output, RegisterReason, TransportClosure, TransportError, Ue};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::Ua;

use super::stack;

/// Something the stack just put on the wire, for a scripted peer to react to.
#[derive(Debug)]
pub enum Sent<'a> {
    /// A SIP message (the REGISTER, or an answer).
    Sip(&'a [u8]),
    /// A CRLFCRLF keep-alive ping.
    Ping,
    /// An event, before the engine's next outputs are carried out (a fault can be lifted
    /// before the reconnect it causes).
    Event(&'a Event),
}

/// How the link plays the SIP stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackPolicy {
    /// REGISTER when told, every answer reported back (through the testkit UA).
    Auto,
    /// Never sends anything (a stack that ignores `RegisterNow`).
    Silent,
}

pub type Hook<'a> = Box<dyn FnMut(&Ua, Sent<'_>) + 'a>;

/// One engine, at most one socket, and the UA acting as the stack.
pub struct SocketLink<'a> {
    pub ue: Ue,
    pub ua: Ua,
    socket: Option<(FlowId, TcpStream)>,
    pub start: Instant,
    /// Every event with the wall time (since `start`) it was seen at.
    pub events: Vec<(Duration, Event)>,
    pub stack: StackPolicy,
    /// Called after the stack sent something; lets a scripted peer (OpenSSL) answer.
    pub hook: Option<Hook<'a>>,
    /// Errors the engine returned to the stack (a correct stack gets none).
    pub input_errors: Vec<String>,
    /// Per-address TCP connect timeout of the socket layer.
    pub connect_timeout: Duration,
}

impl<'a> SocketLink<'a> {
    pub fn new(ue: Ue, ua: Ua) -> SocketLink<'a> {
        SocketLink {
            ue,
            ua,
            socket: None,
            start: Instant::now(),
            events: Vec::new(),
            stack: StackPolicy::Auto,
            hook: None,
            input_errors: Vec::new(),
            connect_timeout: Duration::from_secs(2),
        }
    }

    pub fn codes(&self) -> Vec<&'static str> {
        self.events.iter().map(|(_, e)| e.code()).collect()
    }

    pub fn count(&self, code: &str) -> usize {
        self.events.iter().filter(|(_, e)| e.code() == code).count()
    }

    /// True while a socket is open.
    pub fn has_socket(&self) -> bool {
        self.socket.is_some()
    }

    /// Runs the engine until `done` holds or `limit` of wall time passed; returns whether
    /// `done` held. The limit is a hang guard, never a pass criterion of its own.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&SocketLink<'a>) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.drain();
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.wait_for_input(deadline);
        }
    }

    /// Runs for `span` of wall time, whatever happens.
    pub fn run_for(&mut self, span: Duration) {
        self.run_until(span, |_| false);
    }

    fn note<T>(&mut self, what: &str, result: Result<T, imstls::UeError>) {
        if let Err(e) = result {
            self.input_errors.push(format!("{what}: {e}"));
        }
    }

    /// Carries out every output until the engine has nothing more to do now.
    pub fn drain(&mut self) {
        loop {
            match self.ue.poll_output() {
                Output::Connect {
                    flow, host, port, ..
                } => self.connect(flow, &host.to_string(), port),
                Output::Transmit { flow, data } => {
                    let Some((current, stream)) = &mut self.socket else {
                        continue;
                    };
                    if *current != flow {
                        continue;
                    }
                    if let Err(e) = stream.write_all(&data) {
                        // The socket is gone: tell the engine (it may have taken the error
                        // the read side would otherwise have reported).
                        self.socket = None;
                        let closure = match e.kind() {
                            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                                TransportClosure::Reset
                            }
                            _ => TransportClosure::Error(e.to_string()),
                        };
                        let r = self.ue.transport_closed(Instant::now(), flow, closure);
                        self.note("transport_closed", r);
                    }
                }
                Output::Close { flow } => {
                    if self.socket.as_ref().is_some_and(|(f, _)| *f == flow) {
                        self.socket = None; // dropping the stream closes it
                    }
                }
                Output::Event(event) => {
                    if let Some(hook) = self.hook.as_mut() {
                        hook(&self.ua, Sent::Event(&event));
                    }
                    self.act_as_stack(&event);
                    self.events.push((self.start.elapsed(), event));
                }
                Output::Timeout(_) => return,
                other => panic!("unexpected output {other:?}"),
            }
        }
    }

    fn connect(&mut self, flow: FlowId, host: &str, port: u16) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        let mut last = TransportError::Unreachable;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok();
                    if let Some(local) = local {
                        self.ua.set_local_addr(local);
                    }
                    self.socket = Some((flow, stream));
                    let r = self.ue.connected(Instant::now(), flow, local, Some(addr));
                    self.note("connected", r);
                    return;
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ConnectionRefused => TransportError::Refused,
                        ErrorKind::TimedOut => TransportError::TimedOut,
                        ErrorKind::ConnectionReset => TransportError::Reset,
                        _ => TransportError::Other(e.to_string()),
                    }
                }
            }
        }
        let r = self.ue.connect_failed(Instant::now(), flow, last);
        self.note("connect_failed", r);
    }

    /// Waits for socket bytes or the next engine timer (at most 20 ms), then feeds the
    /// engine what happened.
    fn wait_for_input(&mut self, deadline: Instant) {
        let until = self.ue.next_timeout().map_or(deadline, |t| t.min(deadline));
        let wait = until
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        let Some((flow, stream)) = &mut self.socket else {
            std::thread::sleep(wait);
            self.ue.handle_timeout(Instant::now());
            return;
        };
        let flow = *flow;
        let _ = stream.set_read_timeout(Some(wait));
        let mut buf = [0u8; 16 * 1024];
        let result = stream.read(&mut buf);
        let now = Instant::now();
        let r = match result {
            Ok(0) => {
                self.socket = None;
                self.ue.transport_closed(now, flow, TransportClosure::Eof)
            }
            Ok(n) => self.ue.receive(now, flow, &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.ue.handle_timeout(now);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.socket = None;
                self.ue.transport_closed(now, flow, TransportClosure::Reset)
            }
            Err(e) => {
                self.socket = None;
                self.ue
                    .transport_closed(now, flow, TransportClosure::Error(e.to_string()))
            }
        };
        // A late input for a flow the engine already dropped is not the stack's mistake.
        if !matches!(r, Err(imstls::UeError::UnknownFlow(_))) {
            self.note("transport input", r);
        }
    }

    fn act_as_stack(&mut self, event: &Event) {
        let now = Instant::now();
        match event {
            Event::KeepAliveSent { .. } => {
                if let Some(hook) = self.hook.as_mut() {
                    hook(&self.ua, Sent::Ping);
                }
            }
            Event::RegisterNow { reason, .. } if self.stack == StackPolicy::Auto => {
                let request = stack::register_request(&mut self.ua, *reason);
                let r = self.ue.send_sip(now, &request);
                let sent = r.is_ok();
                self.note("send_sip REGISTER", r);
                if sent {
                    if let Some(hook) = self.hook.as_mut() {
                        hook(&self.ua, Sent::Sip(&request));
                    }
                }
            }
            Event::SipReceived { flow, message } if self.stack == StackPolicy::Auto => {
                let Ok(message) = SipMessage::parse(message) else {
                    return;
                };
                if message.is_request() {
                    let answer = self.ua.answer(&message, 200);
                    let r = self.ue.send_sip(now, &answer);
                    self.note("send_sip answer", r);
                    return;
                }
                let outcome = self.ua.handle_response(&message);
                let r = stack::report(&mut self.ue, now, *flow, outcome);
                self.note("report", r);
            }
            _ => {}
        }
    }

    /// The reason of the last `RegisterNow`, if any.
    pub fn last_register_reason(&self) -> Option<RegisterReason> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            Event::RegisterNow { reason, .. } => Some(*reason),
            _ => None,
        })
    }
}
