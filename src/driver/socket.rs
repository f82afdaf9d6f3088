//! One flow's TCP socket: a non-blocking connect over the resolved addresses of a candidate,
//! raced as RFC 8305 (Happy Eyeballs v2) asks, then non-blocking reads and buffered writes.
//! Reads and writes ask for non-blocking I/O per call (`MSG_DONTWAIT`) instead of relying on
//! `O_NONBLOCK`, which a socket the application lends (a duplicate sharing its open file
//! description) must keep as the application set it.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use log::debug;

use crate::engine::{FlowId, TransportClosure, TransportError};
use crate::os;

/// RFC 8305 §5: "The Connection Attempt Delay MUST have a lower bound"; it sets that bound at
/// 10 ms.
pub const MIN_CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(10);

/// Reads per socket per `process` call, so one busy flow cannot starve the caller's loop.
const MAX_READS: usize = 64;
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Who closes the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The driver created the socket.
    Created,
    /// The application handed it in (ownership transferred, or a duplicate of its own).
    Adopted,
}

/// One connect attempt of a race.
#[derive(Debug)]
struct Attempt {
    /// `None` for a socket the application handed in.
    addr: Option<SocketAddr>,
    stream: TcpStream,
}

/// The connect attempts of one flow (RFC 8305 §5): one attempt is started, the next one a
/// Connection Attempt Delay later (sooner when an attempt fails), all run in parallel,
/// the first that connects wins and the others are closed.
#[derive(Debug)]
struct Race {
    /// In flight, oldest first.
    attempts: Vec<Attempt>,
    /// Not yet tried, in the order they will be.
    pending: VecDeque<SocketAddr>,
    /// When the next pending address is tried.
    next_attempt_at: Option<Instant>,
    /// When the newest attempt started.
    last_start: Option<Instant>,
    attempt_delay: Duration,
    /// The whole connect gives up here.
    deadline: Instant,
    last_error: Option<TransportError>,
}

#[derive(Debug)]
enum State {
    Connecting(Race),
    Connected(TcpStream),
}

/// What a socket step has for the engine.
#[derive(Debug)]
pub(crate) enum SocketInput {
    Connected {
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
    },
    ConnectFailed(TransportError),
    Received(Vec<u8>),
    Closed(TransportClosure),
}

#[derive(Debug)]
pub(crate) struct FlowSocket {
    pub(crate) flow: FlowId,
    state: State,
    outgoing: Vec<u8>,
    reads: usize,
    pub(crate) origin: Origin,
}

pub(crate) fn transport_error(error: &io::Error) -> TransportError {
    match error.kind() {
        ErrorKind::ConnectionRefused => TransportError::Refused,
        ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::AddrNotAvailable => TransportError::Unreachable,
        ErrorKind::TimedOut => TransportError::TimedOut,
        ErrorKind::ConnectionReset => TransportError::Reset,
        _ => TransportError::Other(error.to_string()),
    }
}

/// The system resolver (`getaddrinfo`, blocking: the driver calls it on a resolver thread).
/// A name without addresses, or a lookup error, is [`TransportError::Unresolved`].
pub(crate) fn resolve_with_system(name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((name, port).to_socket_addrs()?.collect())
}

/// The order of the attempts (RFC 8305 §4): the families interleaved, IPv6 first, each
/// family in the resolver's order.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut ordered = VecDeque::with_capacity(v6.len() + v4.len());
    for i in 0..v6.len().max(v4.len()) {
        ordered.extend(v6.get(i));
        ordered.extend(v4.get(i));
    }
    ordered
}

/// How a connect attempt stands.
enum Progress {
    Pending,
    Connected(SocketAddr),
    Failed(TransportError),
}

fn progress(stream: &TcpStream) -> Progress {
    match stream.take_error() {
        Ok(Some(error)) | Err(error) => Progress::Failed(transport_error(&error)),
        Ok(None) => match stream.peer_addr() {
            Ok(remote) => Progress::Connected(remote),
            Err(e) if e.kind() == ErrorKind::NotConnected => Progress::Pending,
            Err(e) => Progress::Failed(transport_error(&e)),
        },
    }
}

impl Race {
    /// Starts pending attempts that are due: the first at once, the next when the Connection
    /// Attempt Delay has passed since the last one started or, sooner, when an attempt failed
    /// (at once if none is left in flight, else RFC 8305 §5's 10 ms after the last start).
    /// An address whose connect fails at once gives way to the next.
    fn start_due(&mut self, now: Instant, attempt_failed: bool) {
        if attempt_failed || self.attempts.is_empty() {
            let earliest = match self.last_start {
                Some(started) if !self.attempts.is_empty() => {
                    started + MIN_CONNECTION_ATTEMPT_DELAY
                }
                _ => now,
            };
            self.next_attempt_at =
                Some(self.next_attempt_at.map_or(earliest, |at| at.min(earliest)));
        }
        while self.next_attempt_at.is_some_and(|at| now >= at) {
            let Some(addr) = self.pending.pop_front() else {
                break;
            };
            match os::connect_nonblocking(&addr) {
                Ok(stream) => {
                    self.attempts.push(Attempt {
                        addr: Some(addr),
                        stream,
                    });
                    self.last_start = Some(now);
                    self.next_attempt_at = Some(now + self.attempt_delay);
                }
                Err(e) => self.last_error = Some(transport_error(&e)),
            }
        }
        if self.pending.is_empty() {
            self.next_attempt_at = None;
        }
    }
}

impl FlowSocket {
    /// Starts racing the addresses (in [`interleave`] order); `attempt_delay` is RFC 8305's
    /// Connection Attempt Delay, `timeout` bounds the whole connect.
    pub(crate) fn connect(
        flow: FlowId,
        addrs: Vec<SocketAddr>,
        now: Instant,
        timeout: Duration,
        attempt_delay: Duration,
    ) -> Result<Self, TransportError> {
        let mut race = Race {
            attempts: Vec::new(),
            pending: interleave(addrs),
            next_attempt_at: None,
            last_start: None,
            attempt_delay,
            deadline: now + timeout,
            last_error: None,
        };
        race.start_due(now, false);
        if race.attempts.is_empty() {
            return Err(race.last_error.unwrap_or(TransportError::Unreachable));
        }
        Ok(Self {
            flow,
            state: State::Connecting(race),
            outgoing: Vec::new(),
            reads: 0,
            origin: Origin::Created,
        })
    }

    /// Wraps a socket the application created (connected, or with a connect in progress).
    /// Its `O_NONBLOCK` flag is left alone (see the module docs).
    pub(crate) fn adopt(flow: FlowId, stream: TcpStream, now: Instant, timeout: Duration) -> Self {
        // A pending socket error shows up in the first step, as a connect failure.
        Self {
            flow,
            state: State::Connecting(Race {
                attempts: vec![Attempt { addr: None, stream }],
                pending: VecDeque::new(),
                next_attempt_at: None,
                last_start: Some(now),
                attempt_delay: timeout,
                deadline: now + timeout,
                last_error: None,
            }),
            outgoing: Vec::new(),
            reads: 0,
            origin: Origin::Adopted,
        }
    }

    /// Bytes queued that the socket has not taken yet.
    pub(crate) fn queued(&self) -> usize {
        self.outgoing.len()
    }

    /// The descriptor to wait on: the connected socket, or the newest connect attempt.
    pub(crate) fn fd(&self) -> RawFd {
        match &self.state {
            State::Connected(stream) => stream.as_raw_fd(),
            State::Connecting(race) => race
                .attempts
                .last()
                .map_or(-1, |attempt| attempt.stream.as_raw_fd()),
        }
    }

    /// Every descriptor to wait on: all connect attempts in flight, or the connected socket.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        match &self.state {
            State::Connected(stream) => vec![stream.as_raw_fd()],
            State::Connecting(race) => race
                .attempts
                .iter()
                .map(|attempt| attempt.stream.as_raw_fd())
                .collect(),
        }
    }

    /// Connect attempts in flight (0 once connected).
    pub(crate) fn attempts_in_flight(&self) -> usize {
        match &self.state {
            State::Connecting(race) => race.attempts.len(),
            State::Connected(_) => 0,
        }
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting(_))
    }

    pub(crate) fn wants_write(&self) -> bool {
        self.is_connecting() || !self.outgoing.is_empty()
    }

    /// When the connect must be looked at again without socket activity: the next attempt's
    /// start or the connect's deadline (`None` once connected).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Connecting(race) => Some(
                race.next_attempt_at
                    .map_or(race.deadline, |at| at.min(race.deadline)),
            ),
            State::Connected(_) => None,
        }
    }

    /// Queues `data` and writes what the socket takes now; returns the bytes still waiting.
    /// A write error is left for the next [`step`](Self::step) to report.
    pub(crate) fn queue(&mut self, data: &[u8]) -> usize {
        self.outgoing.extend_from_slice(data);
        if !self.is_connecting() {
            let _ = self.flush();
        }
        self.outgoing.len()
    }

    /// Starts a new `process` round (resets the read budget).
    pub(crate) fn new_round(&mut self) {
        self.reads = 0;
    }

    /// One non-blocking step: finish the connect, write what is queued, read what arrived.
    /// `None`: nothing for the engine now.
    pub(crate) fn step(&mut self, now: Instant) -> Option<SocketInput> {
        if let State::Connecting(_) = self.state {
            return self.step_connect(now);
        }
        if let Err(e) = self.flush() {
            return Some(SocketInput::Closed(closure(&e)));
        }
        if self.reads >= MAX_READS {
            return None;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let State::Connected(stream) = &self.state else {
                return None;
            };
            return match os::recv_nonblocking(stream.as_fd(), &mut buf) {
                Ok(0) => Some(SocketInput::Closed(TransportClosure::Eof)),
                Ok(n) => {
                    self.reads += 1;
                    buf.truncate(n);
                    Some(SocketInput::Received(buf))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => Some(SocketInput::Closed(closure(&e))),
            };
        }
    }

    /// RFC 8305 §5: "Once one of the connection attempts succeeds (generally when the TCP
    /// handshake completes), all other connections attempts that have not yet succeeded
    /// SHOULD be canceled."
    fn step_connect(&mut self, now: Instant) -> Option<SocketInput> {
        let flow = self.flow;
        let State::Connecting(race) = &mut self.state else {
            return None;
        };
        let mut attempt_failed = false;
        let mut index = 0;
        while index < race.attempts.len() {
            match progress(&race.attempts[index].stream) {
                Progress::Pending => index += 1,
                Progress::Failed(error) => {
                    let attempt = race.attempts.remove(index);
                    if let Some(addr) = attempt.addr {
                        debug!("{flow}: connect attempt to {addr} failed: {error}");
                    }
                    let _ = attempt.stream.shutdown(Shutdown::Both);
                    race.last_error = Some(error);
                    attempt_failed = true;
                }
                Progress::Connected(remote) => {
                    let winner = race.attempts.remove(index);
                    if !race.attempts.is_empty() {
                        debug!(
                            "{flow}: {remote} connected first; closing {} other attempt(s)",
                            race.attempts.len()
                        );
                    }
                    for loser in race.attempts.drain(..) {
                        let _ = loser.stream.shutdown(Shutdown::Both);
                    }
                    let _ = winner.stream.set_nodelay(true);
                    let local = winner.stream.local_addr().ok();
                    self.state = State::Connected(winner.stream);
                    return Some(SocketInput::Connected {
                        local,
                        remote: Some(remote),
                    });
                }
            }
        }
        race.start_due(now, attempt_failed);
        if race.attempts.is_empty() {
            return Some(SocketInput::ConnectFailed(
                race.last_error
                    .take()
                    .unwrap_or(TransportError::Unreachable),
            ));
        }
        if now >= race.deadline {
            return Some(SocketInput::ConnectFailed(TransportError::TimedOut));
        }
        None
    }

    /// Writes what is queued until the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        let State::Connected(stream) = &self.state else {
            return Ok(());
        };
        while !self.outgoing.is_empty() {
            match os::send_nonblocking(stream.as_fd(), &self.outgoing) {
                Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => {
                    self.outgoing.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes the flow: what is queued (a fatal alert may be among it, TS 33.203 O.3.1.2) is
    /// written if the socket takes it now, unread input is drained so that the close does
    /// not turn into a reset that could destroy the alert in flight, then the connection is
    /// shut down and the descriptor closed (a duplicate, for a socket the application kept).
    pub(crate) fn close(mut self) {
        let _ = self.flush();
        match &self.state {
            State::Connected(stream) => {
                let mut buf = [0u8; 4096];
                for _ in 0..16 {
                    match os::recv_nonblocking(stream.as_fd(), &mut buf) {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    }
                }
                let _ = stream.shutdown(Shutdown::Both);
            }
            State::Connecting(race) => {
                for attempt in &race.attempts {
                    let _ = attempt.stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

fn closure(error: &io::Error) -> TransportClosure {
    match error.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            TransportClosure::Reset
        }
        _ => TransportClosure::Error(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const DELAY: Duration = Duration::from_millis(250);

    fn step_until_input(socket: &mut FlowSocket) -> SocketInput {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(input) = socket.step(Instant::now()) {
                return input;
            }
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn every_address_is_tried_until_one_connects() {
        let v6 = TcpListener::bind("[::1]:0").expect("IPv6 loopback");
        let refused = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let addrs = vec![refused, v6.local_addr().expect("addr")];
        let mut socket = FlowSocket::connect(
            FlowId(1),
            addrs,
            Instant::now(),
            Duration::from_secs(10),
            DELAY,
        )
        .expect("a connect attempt starts");
        match step_until_input(&mut socket) {
            SocketInput::Connected { remote, local } => {
                assert_eq!(remote, Some(v6.local_addr().expect("addr")));
                assert!(local.is_some_and(|a| a.is_ipv6()));
            }
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    #[test]
    fn when_every_address_refuses_the_last_error_is_reported() {
        let refused = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let result = FlowSocket::connect(
            FlowId(1),
            vec![refused, refused],
            Instant::now(),
            Duration::from_secs(10),
            DELAY,
        );
        let mut socket = match result {
            Ok(socket) => socket,
            Err(reason) => return assert_eq!(reason, TransportError::Refused),
        };
        match step_until_input(&mut socket) {
            SocketInput::ConnectFailed(reason) => assert_eq!(reason, TransportError::Refused),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn families_interleave_starting_with_ipv6() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("addr");
        let (a4, b4, c4) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1"));
        let (a6, b6) = (addr("[fd00::1]:1"), addr("[fd00::2]:1"));
        assert_eq!(
            interleave(vec![a4, b4, a6, c4, b6]),
            VecDeque::from(vec![a6, a4, b6, b4, c4])
        );
        assert_eq!(interleave(vec![a4, b4]), VecDeque::from(vec![a4, b4]));
        assert_eq!(interleave(Vec::new()), VecDeque::new());
    }

    #[test]
    fn the_system_resolver_knows_localhost() {
        assert!(!resolve_with_system("localhost", 5061)
            .expect("localhost")
            .is_empty());
    }

    #[test]
    fn a_failed_attempt_brings_the_next_one_forward() {
        let refused = TcpListener::bind("[::1]:0")
            .and_then(|l| l.local_addr())
            .expect("a free IPv6 port");
        let good = TcpListener::bind("127.0.0.1:0").expect("listener");
        let delay = Duration::from_secs(2);
        let started = Instant::now();
        let mut socket = FlowSocket::connect(
            FlowId(1),
            vec![refused, good.local_addr().expect("addr")],
            started,
            Duration::from_secs(10),
            delay,
        )
        .expect("a connect attempt starts");
        match step_until_input(&mut socket) {
            SocketInput::Connected { remote, .. } => {
                assert_eq!(remote, Some(good.local_addr().expect("addr")));
            }
            other => panic!("expected a connection, got {other:?}"),
        }
        assert!(started.elapsed() < delay / 2, "{:?}", started.elapsed());
    }

    #[test]
    fn a_winner_closes_the_other_attempts() {
        let good = TcpListener::bind("127.0.0.1:0").expect("listener");
        let silent = TcpListener::bind("[::1]:0").expect("IPv6 loopback");
        // Both accept at once; the IPv6 one goes first (interleave) and wins, the IPv4 one
        // starts after the delay only if the first has not connected by then.
        let addrs = vec![
            good.local_addr().expect("addr"),
            silent.local_addr().expect("addr"),
        ];
        let mut socket = FlowSocket::connect(
            FlowId(1),
            addrs,
            Instant::now(),
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .expect("a connect attempt starts");
        std::thread::sleep(Duration::from_millis(50));
        // Past the delay the second attempt starts too before the first is looked at.
        if let State::Connecting(race) = &mut socket.state {
            race.start_due(Instant::now(), false);
            assert_eq!(race.attempts.len(), 2, "both attempts in flight");
        }
        match step_until_input(&mut socket) {
            SocketInput::Connected { remote, .. } => assert!(remote.is_some()),
            other => panic!("expected a connection, got {other:?}"),
        }
        assert_eq!(socket.attempts_in_flight(), 0);
        assert_eq!(socket.fds().len(), 1, "the loser is closed");
    }
}
