//! One flow's TCP socket: a non-blocking connect over the resolved addresses of a candidate,
//! then non-blocking reads and buffered writes. Reads and writes ask for non-blocking I/O per
//! call (`MSG_DONTWAIT`) instead of relying on `O_NONBLOCK`, which a socket the application
//! lends (a duplicate sharing its open file description) must keep as the application set it.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::config::Host;
use crate::engine::{FlowId, TransportClosure, TransportError};
use crate::ffi::sys;

/// Reads per socket per `process` call, so one busy flow cannot starve the caller's loop.
const MAX_READS: usize = 64;
/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Each address of a multi-address name gets at least this long before the next is tried.
const MIN_ADDRESS_SHARE: Duration = Duration::from_secs(2);

/// Who closes the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The driver created the socket.
    Created,
    /// The application handed it in (ownership transferred, or a duplicate of its own).
    Adopted,
}

#[derive(Debug)]
enum State {
    /// A non-blocking connect to `current` is in progress; `rest` are the next addresses.
    Connecting {
        current: Option<SocketAddr>,
        rest: VecDeque<SocketAddr>,
        deadline: Instant,
        share: Duration,
        last_error: Option<TransportError>,
    },
    Connected,
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
    stream: TcpStream,
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

/// The addresses of a candidate, in resolver order (IPv6 and IPv4 as the system prefers).
/// Name resolution blocks the calling thread (`getaddrinfo`); IP literals do not.
pub(crate) fn resolve(host: &Host, port: u16) -> Result<Vec<SocketAddr>, TransportError> {
    match host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => match (name.as_str(), port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<_> = addrs.collect();
                if addrs.is_empty() {
                    Err(TransportError::Unreachable)
                } else {
                    Ok(addrs)
                }
            }
            Err(_) => Err(TransportError::Unreachable),
        },
    }
}

impl FlowSocket {
    /// Starts connecting to the first address that accepts a connect attempt.
    pub(crate) fn connect(
        flow: FlowId,
        addrs: Vec<SocketAddr>,
        now: Instant,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let share = (timeout / u32::try_from(addrs.len().max(1)).unwrap_or(u32::MAX))
            .max(MIN_ADDRESS_SHARE)
            .min(timeout);
        let mut rest: VecDeque<SocketAddr> = addrs.into();
        let mut last_error = TransportError::Unreachable;
        while let Some(addr) = rest.pop_front() {
            match sys::connect_nonblocking(&addr) {
                Ok(stream) => {
                    return Ok(Self {
                        flow,
                        stream,
                        state: State::Connecting {
                            current: Some(addr),
                            rest,
                            deadline: now + share,
                            share,
                            last_error: None,
                        },
                        outgoing: Vec::new(),
                        reads: 0,
                        origin: Origin::Created,
                    })
                }
                Err(e) => last_error = transport_error(&e),
            }
        }
        Err(last_error)
    }

    /// Wraps a socket the application created (connected, or with a connect in progress).
    /// Its `O_NONBLOCK` flag is left alone (see the module docs).
    pub(crate) fn adopt(flow: FlowId, stream: TcpStream, now: Instant, timeout: Duration) -> Self {
        // A pending socket error shows up in the first step, as a connect failure.
        Self {
            flow,
            stream,
            state: State::Connecting {
                current: None,
                rest: VecDeque::new(),
                deadline: now + timeout,
                share: timeout,
                last_error: None,
            },
            outgoing: Vec::new(),
            reads: 0,
            origin: Origin::Adopted,
        }
    }

    /// Bytes queued that the socket has not taken yet.
    pub(crate) fn queued(&self) -> usize {
        self.outgoing.len()
    }

    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream)
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    pub(crate) fn wants_write(&self) -> bool {
        self.is_connecting() || !self.outgoing.is_empty()
    }

    /// The deadline of the current connect attempt, if connecting.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Connecting { deadline, .. } => Some(*deadline),
            State::Connected => None,
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
        if let State::Connecting { .. } = self.state {
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
            return match sys::recv_nonblocking(self.stream.as_fd(), &mut buf) {
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

    fn step_connect(&mut self, now: Instant) -> Option<SocketInput> {
        let failed = match self.stream.take_error() {
            Ok(Some(error)) | Err(error) => Some(transport_error(&error)),
            Ok(None) => match self.stream.peer_addr() {
                Ok(remote) => {
                    self.state = State::Connected;
                    let _ = self.stream.set_nodelay(true);
                    return Some(SocketInput::Connected {
                        local: self.stream.local_addr().ok(),
                        remote: Some(remote),
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => {
                    let State::Connecting { deadline, .. } = &self.state else {
                        return None;
                    };
                    if now < *deadline {
                        return None;
                    }
                    Some(TransportError::TimedOut)
                }
                Err(e) => Some(transport_error(&e)),
            },
        };
        let error = failed?;
        self.next_address(now, error)
    }

    /// The current address failed: try the next one, or report the connect failure.
    fn next_address(&mut self, now: Instant, error: TransportError) -> Option<SocketInput> {
        let State::Connecting {
            current,
            rest,
            deadline,
            share,
            last_error,
        } = &mut self.state
        else {
            return None;
        };
        *last_error = Some(error);
        while let Some(addr) = rest.pop_front() {
            match sys::connect_nonblocking(&addr) {
                Ok(stream) => {
                    self.stream = stream;
                    *current = Some(addr);
                    *deadline = now + *share;
                    return None;
                }
                Err(e) => *last_error = Some(transport_error(&e)),
            }
        }
        Some(SocketInput::ConnectFailed(
            last_error.take().unwrap_or(TransportError::Unreachable),
        ))
    }

    /// Writes what is queued until the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        while !self.outgoing.is_empty() {
            match sys::send_nonblocking(self.stream.as_fd(), &self.outgoing) {
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
        if !self.is_connecting() {
            let _ = self.flush();
            let mut buf = [0u8; 4096];
            for _ in 0..16 {
                match sys::recv_nonblocking(self.stream.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
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
        let mut socket =
            FlowSocket::connect(FlowId(1), addrs, Instant::now(), Duration::from_secs(10))
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
    fn names_resolve_and_literals_do_not_need_to() {
        let ip = resolve(&Host::Ip("::1".parse().expect("ip")), 5061).expect("literal");
        assert_eq!(ip, vec!["[::1]:5061".parse::<SocketAddr>().expect("addr")]);
        assert!(!resolve(&Host::Name("localhost".into()), 5061)
            .expect("localhost")
            .is_empty());
        assert_eq!(
            resolve(&Host::Name("does-not-exist.invalid".into()), 5061),
            Err(TransportError::Unreachable)
        );
    }
}
