//! The loop of one simulator connection: socket ⇄ [`PcscfCore`], commands from the
//! [`Simulator`](super::Simulator) handle, and fault injection.

use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{Command, Control, Fault, Shared};
use crate::observation::Observation;
use crate::pcscf::PcscfCore;
use crate::registrar::FlowId;

/// Read timeout: the granularity at which commands, faults and shutdown are noticed.
const TICK: Duration = Duration::from_millis(10);
/// How long a socket stays open after our FIN to read the UE's close_notify / FIN.
const LINGER_AFTER_FIN: Duration = Duration::from_secs(1);
/// A UE that does not read for this long makes writes fail.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one accepted connection to its end.
pub(super) fn run(shared: &Arc<Shared>, number: usize, stream: TcpStream, control: &Control) {
    let observe = |o: Observation| shared.observe(number, o);
    if let Err(e) = prepare(&stream) {
        observe(Observation::TransportError(e.to_string()));
        return;
    }
    let (generation, fault) = shared.fault();
    match fault {
        Fault::ResetOnAccept => {
            reset(stream);
            observe(Observation::ResetSent);
            return;
        }
        Fault::SilentHandshake => {
            silent(shared, number, stream, control);
            return;
        }
        _ => {}
    }
    let config = match shared.current_config() {
        Ok(c) => c,
        Err(e) => {
            observe(Observation::TlsError(e.to_string()));
            return;
        }
    };
    let core = match PcscfCore::new(config, shared.registrar.clone(), number as FlowId) {
        Ok(c) => c,
        Err(e) => {
            observe(Observation::TlsError(e.to_string()));
            return;
        }
    };
    let mut conn = Conn {
        shared,
        number,
        stream,
        core,
        fault,
        generation,
        baseline: 0,
        delayed: VecDeque::new(),
        closing_until: None,
    };
    conn.core
        .set_client_cert_requested(shared.request_client_cert);
    conn.apply_fault();
    conn.run(control);
}

fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))
}

/// Sends RST instead of FIN when the socket is closed.
fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Accepts TCP but never answers: reads and discards until EOF, a command or shutdown.
fn silent(shared: &Shared, number: usize, mut stream: TcpStream, control: &Control) {
    let mut buf = [0u8; 4096];
    loop {
        if shared.stopping() {
            return;
        }
        for command in control.take() {
            match command {
                Command::Kill => {
                    reset(stream);
                    shared.observe(number, Observation::ResetSent);
                    return;
                }
                Command::Close => {
                    if stream.shutdown(Shutdown::Both).is_ok() {
                        shared.observe(number, Observation::FinSent);
                    }
                    return;
                }
                Command::Send(_) | Command::Ping => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                shared.observe(number, Observation::TransportClosed { clean: false });
                return;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                shared.observe(number, Observation::ResetReceived);
                return;
            }
            Err(e) => {
                shared.observe(number, Observation::TransportError(e.to_string()));
                return;
            }
        }
    }
}

/// What happens after one step of the loop.
enum Next {
    Continue,
    Stop,
}

struct Conn<'a> {
    shared: &'a Shared,
    number: usize,
    stream: TcpStream,
    core: PcscfCore,
    fault: Fault,
    generation: u64,
    /// `core.answered()` when the current fault was applied.
    baseline: usize,
    /// Output held back by `Fault::DelayResponses`, with its release time.
    delayed: VecDeque<(Instant, Vec<u8>)>,
    /// Set once we sent FIN: the socket is dropped at this time at the latest.
    closing_until: Option<Instant>,
}

impl Conn<'_> {
    fn run(mut self, control: &Control) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if self.shared.stopping() {
                self.publish();
                return;
            }
            if let Next::Stop = self.step_commands(control) {
                return;
            }
            self.refresh_fault();
            if let Next::Stop = self.step_fault() {
                return;
            }
            if let Next::Stop = self.step_output() {
                return;
            }
            if self.core.is_closed() && self.closing_until.is_none() {
                self.begin_close();
            }
            self.publish();
            if self.closing_until.is_some_and(|t| Instant::now() >= t) {
                return;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.core.transport_eof();
                    let _ = self.step_output();
                    self.publish();
                    return;
                }
                Ok(n) => {
                    if self.closing_until.is_none() {
                        // A fault set before these bytes were sent applies to them.
                        self.refresh_fault();
                    }
                    // Read on while closing too, so that the UE's close_notify or alert in
                    // answer to ours is observed.
                    self.core.receive(&buf[..n]);
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    self.observe(if e.kind() == io::ErrorKind::ConnectionReset {
                        Observation::ResetReceived
                    } else {
                        Observation::TransportError(e.to_string())
                    });
                    self.core.transport_eof();
                    self.publish();
                    return;
                }
            }
        }
    }

    fn observe(&self, o: Observation) {
        self.shared.observe(self.number, o);
    }

    fn publish(&mut self) {
        for o in self.core.take_observations() {
            self.observe(o);
        }
    }

    fn step_commands(&mut self, control: &Control) -> Next {
        for command in control.take() {
            match command {
                Command::Kill => {
                    self.kill();
                    return Next::Stop;
                }
                Command::Close => {
                    if self.closing_until.is_none() {
                        self.flush_delayed();
                        self.begin_close();
                    }
                }
                Command::Send(sip) => self.core.send_request(&sip),
                Command::Ping => self.core.send_ping(),
            }
        }
        Next::Continue
    }

    fn refresh_fault(&mut self) {
        let (generation, fault) = self.shared.fault();
        if generation != self.generation {
            self.generation = generation;
            self.fault = fault;
            self.baseline = self.core.answered();
            self.apply_fault();
        }
    }

    fn apply_fault(&mut self) {
        let limit = match self.fault {
            Fault::CloseAfterMessages(n)
            | Fault::ResetAfterMessages(n)
            | Fault::SilentAfterMessages(n) => Some(self.baseline + n),
            _ => None,
        };
        self.core.set_answer_limit(limit);
    }

    fn step_fault(&mut self) -> Next {
        if self.core.is_handshaking() || self.closing_until.is_some() {
            return Next::Continue;
        }
        let answered = self.core.answered();
        match self.fault {
            Fault::CloseAfterMessages(n) if answered >= self.baseline + n => {
                let _ = self.step_output();
                self.flush_delayed();
                self.begin_close();
            }
            Fault::ResetAfterMessages(n) if answered >= self.baseline + n => {
                let _ = self.step_output();
                self.flush_delayed();
                self.kill();
                return Next::Stop;
            }
            _ => {}
        }
        Next::Continue
    }

    /// Moves the core's output to the socket, or into the delay queue.
    fn step_output(&mut self) -> Next {
        let out = self.core.take_output();
        if !out.is_empty() {
            let delay = match self.fault {
                Fault::DelayResponses(d) if !self.core.is_handshaking() => Some(d),
                _ => None,
            };
            match delay {
                Some(d) => self.delayed.push_back((Instant::now() + d, out)),
                None if !self.delayed.is_empty() => self.delayed.push_back((Instant::now(), out)),
                None => {
                    if self.write(&out).is_err() {
                        return Next::Stop;
                    }
                }
            }
        }
        let now = Instant::now();
        while self.delayed.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = self.delayed.pop_front() {
                if self.write(&bytes).is_err() {
                    return Next::Stop;
                }
            }
        }
        Next::Continue
    }

    fn flush_delayed(&mut self) {
        while let Some((_, bytes)) = self.delayed.pop_front() {
            if self.write(&bytes).is_err() {
                return;
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = self.stream.write_all(bytes);
        if let Err(e) = &result {
            self.observe(Observation::TransportError(e.to_string()));
        }
        result
    }

    /// close_notify (unless TLS already failed), flush, FIN; keep reading until EOF or linger.
    fn begin_close(&mut self) {
        self.core.close_notify();
        let out = self.core.take_output();
        if !out.is_empty() {
            let _ = self.write(&out);
        }
        if self.stream.shutdown(Shutdown::Write).is_ok() {
            self.core.note_fin_sent();
        }
        self.core.observe_only();
        self.closing_until = Some(Instant::now() + LINGER_AFTER_FIN);
        self.publish();
    }

    fn kill(&mut self) {
        self.publish();
        // Dropping the stream (when `run` returns) with linger 0 sends RST.
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        self.observe(Observation::ResetSent);
    }
}
