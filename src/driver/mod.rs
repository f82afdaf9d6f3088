//! The managed-socket driver: imstls owns the TCP socket, the SIP stack keeps owning SIP.
//!
//! A [`Driver`] wraps a [`Ue`] and performs its outputs itself: it resolves and connects
//! (non-blocking, every address of the candidate, IPv6 and IPv4), writes TLS records, reads
//! the socket, closes flows (writing a queued fatal alert first, TS 33.203 O.3.1.2) and runs
//! the timers. What is left for the caller are the [`Event`]s — above all
//! [`Event::RegisterNow`], answered with [`Driver::send_sip`] — and the stack's reports
//! (`registration_challenged`, `registration_succeeded`, ...).
//!
//! ## Driving it
//!
//! - From any event loop (poll, epoll, Android `Looper`): wait for [`Driver::fd`] with
//!   [`Driver::interest`], or until [`Driver::next_timeout`], then call
//!   [`Driver::process`] and drain [`Driver::poll_event`]. The descriptor changes when a new
//!   flow starts: read it again after every call.
//! - Or block: [`Driver::run`] waits (at most `max_wait`) and processes.
//! - From several threads: keep the driver in a mutex, call [`Driver::prepare_wait`] under
//!   it, release it, [`WaitPlan::wait`], lock again and `process`. Another thread's input
//!   (e.g. `send_sip`) is written at once by that thread; [`Driver::waker`] interrupts the
//!   waiting thread so it picks up the new socket or deadline.
//!
//! ## Resolving and connecting
//!
//! A candidate given by name is resolved on a thread of its own (one per lookup, the system's
//! `getaddrinfo` or the application's [`Resolver`]), never on the caller's: meanwhile
//! [`Driver::fd`] is the driver's wake-up descriptor, readable when the answer is in. A name
//! without addresses fails the attempt with [`TransportError::Unresolved`]. The addresses
//! are then raced as RFC 8305 (Happy Eyeballs v2) describes: the families interleaved, IPv6
//! first; the next attempt starts a Connection Attempt Delay after the previous one (default
//! 250 ms, [`Driver::set_connection_attempt_delay`]) or sooner when an attempt fails; the
//! first connection wins and the other attempts are closed. [`Driver::run`] and
//! [`Driver::prepare_wait`] wait on every attempt; [`Driver::fd`] is the newest one, so
//! [`Driver::next_timeout`] asks to be called back every [`RACE_RECHECK`] while older ones
//! are still in flight.
//!
//! ## Bounded queues
//!
//! The bytes waiting for the socket and the events waiting for [`Driver::poll_event`] are
//! capped ([`QueueLimits`](crate::QueueLimits), default 1 MiB each). A P-CSCF that does not
//! read fails the flow with [`LossReason::PeerNotReading`]; an application that does not poll
//! fails it with [`LossReason::QueueOverflow`] when more bytes arrive. Either way recovery
//! backs off before the next flow.
//!
//! ## The clock
//!
//! The driver reads the clock itself for inputs: [`now`], which on Linux and Android follows
//! `CLOCK_BOOTTIME` so that time spent suspended (Doze) counts towards keep-alive, refresh and
//! expiry deadlines. [`Driver::process`] takes `now` so that a loop can pass the instant it
//! woke at: take it from [`now`] too.
//!
//! ## Sockets the application creates (Android `Network.bindSocket`)
//!
//! With [`ConnectMode::External`] the driver does not connect: each new flow shows up as
//! [`Event::Connecting`] and [`Driver::pending_connect`] says where to; the application
//! creates and connects the socket (e.g. bound to a chosen network) and hands it in with
//! [`Driver::adopt`] (ownership moves to the driver, which closes it when the flow ends) or
//! [`Driver::adopt_borrowed`] (the driver works on a duplicate and never closes the
//! application's descriptor; when the flow ends it shuts the connection down and closes its
//! duplicate), or reports [`Driver::connect_failed`]. Sockets the driver created itself are
//! always closed by it.
//!
//! ```no_run
//! use std::time::Duration;
//! use imstls::driver::Driver;
//! use imstls::{Event, Identity, UeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = UeConfig::builder().pcscf("pcscf.ims.example.net:5061").build()?;
//! let mut driver = Driver::new(config)?;
//! driver.start_registration(Identity::new("alice@ims.example.net", &["sip:alice@ims.example.net"])?)?;
//! loop {
//!     driver.run(Duration::from_millis(500))?;
//!     while let Some(event) = driver.poll_event() {
//!         match event {
//!             Event::RegisterNow { .. } => { /* driver.send_sip(&register)? */ }
//!             Event::SipReceived { flow, .. } => { /* parse; driver.registration_succeeded(flow, ..)? */ }
//!             Event::Registered { .. } => return Ok(()),
//!             _ => {}
//!         }
//!     }
//! }
//! # }
//! ```
// Forbidden, not just denied: nothing inside this layer can lift the lint again (only
// src/os.rs and src/ffi may use unsafe_code).
#![forbid(unsafe_code)]

mod clock;
mod socket;
mod waker;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;
use parking_lot::Mutex;

use crate::config::{ConfigError, Host, UeConfig};
use crate::engine::{
    Binding, Event, FlowId, Identity, LossReason, Output, Queue, TransportError, Ue, UeError,
    UeState,
};
use crate::os;

pub use clock::now;
pub use socket::MIN_CONNECTION_ATTEMPT_DELAY;
use socket::{resolve_with_system, FlowSocket, Origin, SocketInput};
use waker::WakePipe;
pub use waker::Waker;

/// Engine inputs and socket steps fed per `process` call at most (each timer firing and each
/// socket read is one); the caller's loop comes back for the rest.
const MAX_STEPS: usize = 256;

/// RFC 8305 §5: "One recommended value for a default delay is 250 milliseconds."
pub const DEFAULT_CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// RFC 8305 §5's recommended upper bound for the delay.
pub const MAX_CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_secs(2);
/// While several connect attempts are in flight, how often a caller's own loop (which waits
/// on [`Driver::fd`], the newest attempt only) is asked to come back and look at the others.
pub const RACE_RECHECK: Duration = Duration::from_millis(25);

/// Resolves a P-CSCF name to addresses, for [`Driver::set_resolver`]: called on a resolver
/// thread (never the caller's), it may block. An error or an empty list fails the attempt
/// with [`TransportError::Unresolved`].
pub type Resolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// What a resolver thread found.
type Answer = Result<Vec<SocketAddr>, TransportError>;

/// A lookup running on a resolver thread for `flow`; the thread puts its answer into
/// `answer` once (see [`Teller`]).
struct Resolution {
    flow: FlowId,
    answer: Arc<Mutex<Option<Answer>>>,
}

/// The resolver thread's end of a [`Resolution`]. Dropping it hands the answer over and wakes
/// the driver; dropped without one (the resolver panicked), the answer is that the thread
/// ended without one. A one-slot handover instead of an `mpsc` channel, whose three flavours
/// took 10 KB of the C library.
struct Teller {
    slot: Arc<Mutex<Option<Answer>>>,
    answer: Option<Answer>,
    waker: Waker,
}

impl Drop for Teller {
    fn drop(&mut self) {
        let answer = self.answer.take().unwrap_or_else(|| {
            Err(TransportError::Other(
                "the resolver thread ended without an answer".into(),
            ))
        });
        *self.slot.lock() = Some(answer);
        // The driver may have moved on (new flow, dropped): then nobody listens.
        if Arc::strong_count(&self.slot) > 1 {
            self.waker.wake();
        }
    }
}

/// Who opens the TCP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectMode {
    /// The driver resolves, connects and owns the sockets (the default).
    #[default]
    Managed,
    /// The application connects each flow's socket and hands it in ([`Driver::adopt`]).
    External,
}

/// A flow waiting for the application's socket ([`ConnectMode::External`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The flow.
    pub flow: FlowId,
    /// Index of the P-CSCF candidate in the configuration.
    pub candidate: usize,
    /// Host to connect to (a name to resolve, or an IP literal).
    pub host: Host,
    /// TCP port.
    pub port: u16,
}

/// What to wait for on [`Driver::fd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// Wait for readability (`POLLIN`).
    pub readable: bool,
    /// Wait for writability (`POLLOUT`): a connect in progress or unsent bytes.
    pub writable: bool,
}

/// A driver call that could not be done.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverError {
    /// The engine refused the input (wrong state, bad message, ...).
    Engine(UeError),
    /// No flow is waiting for a socket with this id.
    NoPendingConnect(FlowId),
    /// The call needs the other [`ConnectMode`].
    WrongMode(ConnectMode),
    /// A system call failed, or a handed-in descriptor is unusable.
    Io(io::Error),
    /// The configuration cannot make an engine (e.g. no random seed from the provider).
    Config(ConfigError),
    /// A setting outside its allowed range.
    InvalidArgument(String),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine(e) => write!(f, "{e}"),
            Self::NoPendingConnect(flow) => write!(f, "{flow} is not waiting for a socket"),
            Self::WrongMode(mode) => write!(f, "not possible in connect mode {mode:?}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Config(e) => write!(f, "{e}"),
            Self::InvalidArgument(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<UeError> for DriverError {
    fn from(error: UeError) -> Self {
        Self::Engine(error)
    }
}

impl From<io::Error> for DriverError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// The descriptors and the timeout to wait for, prepared by [`Driver::prepare_wait`] and
/// usable without the driver (so that a multi-threaded caller can wait unlocked).
#[derive(Debug, Clone)]
pub struct WaitPlan {
    waits: Vec<os::Wait>,
    timeout: Option<Duration>,
}

impl WaitPlan {
    /// Blocks until a descriptor is ready, the driver's [`Waker`] is woken, or the timeout
    /// passes. Returns whether anything was ready (an interrupted wait counts as not).
    pub fn wait(&self) -> io::Result<bool> {
        os::poll(&self.waits, self.timeout)
    }

    /// How long the wait may last (`None`: until a descriptor is ready).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// The UE engine with a managed socket. See the [module docs](self).
pub struct Driver {
    ue: Ue,
    mode: ConnectMode,
    socket: Option<FlowSocket>,
    resolution: Option<Resolution>,
    resolver: Option<Resolver>,
    attempt_delay: Duration,
    pending_connect: Option<ConnectRequest>,
    events: VecDeque<Event>,
    /// What `events` holds, as [`Event::footprint`] counts it.
    event_bytes: usize,
    pipe: WakePipe,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("ue", &self.ue)
            .field("mode", &self.mode)
            .field("socket", &self.socket.as_ref().map(|s| s.flow))
            .field("resolving", &self.resolution.as_ref().map(|r| r.flow))
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver with a new engine in [`UeState::Idle`], connecting by itself.
    pub fn new(config: UeConfig) -> Result<Self, DriverError> {
        let ue = Ue::new(config, clock::now())
            .map_err(|e: ConfigError| DriverError::Io(io::Error::other(e.to_string())))?;
        Self::with_ue(ue)
    }

    /// A driver around an existing engine (its outputs not yet drained are performed by the
    /// next call).
    pub fn with_ue(ue: Ue) -> Result<Self, DriverError> {
        Ok(Self {
            ue,
            mode: ConnectMode::Managed,
            socket: None,
            resolution: None,
            resolver: None,
            attempt_delay: DEFAULT_CONNECTION_ATTEMPT_DELAY,
            pending_connect: None,
            events: VecDeque::new(),
            event_bytes: 0,
            pipe: WakePipe::new()?,
        })
    }

    /// Chooses who connects new flows (default [`ConnectMode::Managed`]). Takes effect for
    /// the next flow.
    pub fn set_connect_mode(&mut self, mode: ConnectMode) {
        self.mode = mode;
    }

    /// The connect mode.
    pub fn connect_mode(&self) -> ConnectMode {
        self.mode
    }

    /// RFC 8305's Connection Attempt Delay: how long an attempt runs alone before the next
    /// address is tried as well (default [`DEFAULT_CONNECTION_ATTEMPT_DELAY`], allowed
    /// [`MIN_CONNECTION_ATTEMPT_DELAY`] to [`MAX_CONNECTION_ATTEMPT_DELAY`]). Takes effect
    /// for the next flow.
    pub fn set_connection_attempt_delay(&mut self, delay: Duration) -> Result<(), DriverError> {
        if !(MIN_CONNECTION_ATTEMPT_DELAY..=MAX_CONNECTION_ATTEMPT_DELAY).contains(&delay) {
            return Err(DriverError::InvalidArgument(format!(
                "connection attempt delay {delay:?} is outside 10 ms ..= 2 s (RFC 8305 §5)"
            )));
        }
        self.attempt_delay = delay;
        Ok(())
    }

    /// The Connection Attempt Delay in use.
    pub fn connection_attempt_delay(&self) -> Duration {
        self.attempt_delay
    }

    /// Resolves P-CSCF names with `resolver` instead of the system's `getaddrinfo` (`None`:
    /// the system's again), e.g. a resolver bound to one network, or addresses the
    /// application already has. Takes effect for the next lookup.
    pub fn set_resolver(&mut self, resolver: Option<Resolver>) {
        self.resolver = resolver;
    }

    /// The engine, for inspection ([`Ue::state`], [`Ue::binding`], the conformance log).
    pub fn ue(&self) -> &Ue {
        &self.ue
    }

    /// What the engine waits for.
    pub fn state(&self) -> UeState {
        self.ue.state()
    }

    /// The O.2.2 binding once TLS is up (personal data: do not log it).
    pub fn binding(&self) -> Option<Binding> {
        self.ue.binding()
    }

    // ----- stack inputs (the same as the engine's, without `now`) -----------------------

    /// [`Ue::start_registration`], then connects.
    pub fn start_registration(&mut self, identity: Identity) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.start_registration(now, identity)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::send_sip`]; the TLS records are written at once when the socket takes them.
    pub fn send_sip(&mut self, message: &[u8]) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.send_sip(now, message)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::registration_challenged`]: `flow` is that of the [`Event::SipReceived`] that
    /// carried the 401/407.
    pub fn registration_challenged(
        &mut self,
        flow: FlowId,
        stale: bool,
    ) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.registration_challenged(now, flow, stale)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::registration_succeeded`]: `flow` is that of the [`Event::SipReceived`] that
    /// carried the 2xx.
    pub fn registration_succeeded(
        &mut self,
        flow: FlowId,
        expires: Duration,
        flow_timer: Option<Duration>,
    ) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue
            .registration_succeeded(now, flow, expires, flow_timer)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::registration_failed`]: `flow` is that of the [`Event::SipReceived`] that
    /// carried the final error.
    pub fn registration_failed(
        &mut self,
        flow: FlowId,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue
            .registration_failed(now, flow, status, retry_after)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::deregister`].
    pub fn deregister(&mut self) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.deregister(now)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::network_changed`]: the socket is closed and a new flow starts.
    pub fn network_changed(&mut self) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.network_changed(now)?;
        self.pump(now);
        Ok(())
    }

    /// [`Ue::rekey`].
    pub fn rekey(&mut self) -> Result<(), DriverError> {
        let now = clock::now();
        self.ue.rekey(now)?;
        self.pump(now);
        Ok(())
    }

    // ----- sockets from the application (ConnectMode::External) ------------------------

    /// The flow waiting for the application's socket, if any.
    pub fn pending_connect(&self) -> Option<&ConnectRequest> {
        self.pending_connect.as_ref()
    }

    /// Hands in the socket for `flow`, connected or with a non-blocking connect in progress.
    /// The driver owns it from now on and closes it when the flow ends. On error the
    /// descriptor is closed (it was moved in).
    /// Close-on-exec is set on it.
    pub fn adopt(&mut self, flow: FlowId, fd: OwnedFd) -> Result<(), DriverError> {
        os::set_cloexec(fd.as_fd())?;
        self.adopt_socket(flow, fd, clock::now())
    }

    /// Like [`adopt`](Self::adopt), but the application keeps its descriptor: the driver
    /// works on a duplicate (close-on-exec) and never closes `fd`; when the flow ends it shuts
    /// the connection down (so the peer sees the close) and closes only its duplicate. The
    /// duplicate shares `fd`'s open file description, so the driver never changes its status
    /// flags: `fd` stays blocking if it was (the driver asks for non-blocking I/O per call).
    /// What it does change is the connection's: `TCP_NODELAY` is set on it.
    pub fn adopt_borrowed(&mut self, flow: FlowId, fd: BorrowedFd<'_>) -> Result<(), DriverError> {
        let duplicate = fd.try_clone_to_owned()?;
        self.adopt_socket(flow, duplicate, clock::now())
    }

    fn adopt_socket(&mut self, flow: FlowId, fd: OwnedFd, now: Instant) -> Result<(), DriverError> {
        if self.mode != ConnectMode::External {
            return Err(DriverError::WrongMode(self.mode));
        }
        if self.pending_connect.as_ref().map(|r| r.flow) != Some(flow) {
            return Err(DriverError::NoPendingConnect(flow));
        }
        let stream = TcpStream::from(fd);
        let socket = FlowSocket::adopt(flow, stream, now, self.ue.config().connect_timeout());
        self.pending_connect = None;
        self.socket = Some(socket);
        self.pump(now);
        Ok(())
    }

    /// The application could not connect `flow` ([`ConnectMode::External`]).
    pub fn connect_failed(
        &mut self,
        flow: FlowId,
        reason: TransportError,
    ) -> Result<(), DriverError> {
        if self.pending_connect.as_ref().map(|r| r.flow) != Some(flow) {
            return Err(DriverError::NoPendingConnect(flow));
        }
        let now = clock::now();
        self.pending_connect = None;
        self.ue.connect_failed(now, flow, reason)?;
        self.pump(now);
        Ok(())
    }

    // ----- the event loop ---------------------------------------------------------------

    /// The descriptor to wait on: the flow's socket (the newest attempt while connecting),
    /// or while a name is being resolved the driver's wake-up descriptor, which becomes
    /// readable when the answer is in. It changes with every new flow and attempt.
    pub fn fd(&self) -> Option<RawFd> {
        match (&self.socket, &self.resolution) {
            (Some(socket), _) => Some(socket.fd()),
            (None, Some(_)) => Some(self.pipe.fd()),
            (None, None) => None,
        }
    }

    /// What to wait for on [`fd`](Self::fd).
    pub fn interest(&self) -> Interest {
        match (&self.socket, &self.resolution) {
            (Some(socket), _) => Interest {
                readable: !socket.is_connecting(),
                writable: socket.wants_write(),
            },
            (None, Some(_)) => Interest {
                readable: true,
                writable: false,
            },
            (None, None) => Interest::default(),
        }
    }

    /// When [`process`](Self::process) must run at the latest (`None`: only on socket
    /// activity or input).
    pub fn next_timeout(&self) -> Option<Instant> {
        let engine = self.ue.next_timeout();
        let connect = self.socket.as_ref().and_then(|socket| {
            let deadline = socket.deadline()?;
            if socket.attempts_in_flight() > 1 {
                // `fd` shows only the newest attempt: look at the others now and then.
                Some(deadline.min(clock::now() + RACE_RECHECK))
            } else {
                Some(deadline)
            }
        });
        match (engine, connect) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A handle that interrupts a [`WaitPlan::wait`] of this driver from another thread.
    pub fn waker(&self) -> Waker {
        self.pipe.waker()
    }

    /// The next event for the stack.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        self.event_bytes = self.event_bytes.saturating_sub(event.footprint());
        if self.events.is_empty() {
            // Drained: give the memory of a burst back.
            self.events = VecDeque::new();
            self.event_bytes = 0;
        }
        Some(event)
    }

    /// Bytes the events waiting in [`poll_event`](Self::poll_event) hold (capped by
    /// [`QueueLimits::driver_event_bytes`](crate::QueueLimits)).
    pub fn queued_event_bytes(&self) -> usize {
        self.event_bytes
    }

    /// TLS bytes the socket has not taken yet (capped by
    /// [`QueueLimits::driver_outgoing_bytes`](crate::QueueLimits)).
    pub fn queued_outgoing_bytes(&self) -> usize {
        self.socket.as_ref().map_or(0, FlowSocket::queued)
    }

    /// True when events wait in [`poll_event`](Self::poll_event).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Does everything that can be done without blocking at `now`: finishes a connect,
    /// writes, reads and feeds the engine, fires due timers, performs the engine's outputs.
    /// Call it when the socket is ready, at [`next_timeout`](Self::next_timeout), or any time.
    /// Reading stops after a read that brought an [`Event::SipReceived`], so that the stack
    /// answers it (e.g. reports a 2xx) before the next call reads on (e.g. the close).
    pub fn process(&mut self, now: Instant) {
        self.pipe.drain();
        if let Some(socket) = self.socket.as_mut() {
            socket.new_round();
        }
        self.pump(now);
        for _ in 0..MAX_STEPS {
            match self.ue.next_timeout() {
                Some(at) if at <= now => {
                    self.ue.handle_timeout(now);
                    self.pump(now);
                }
                _ => return,
            }
        }
    }

    /// The wait that fits now: the socket with its interest, the waker, and the time until
    /// the next timeout (at most `max_wait`; zero when events are waiting).
    pub fn prepare_wait(&self, max_wait: Duration) -> WaitPlan {
        let now = clock::now();
        let mut waits = vec![os::Wait {
            fd: self.pipe.fd(),
            readable: true,
            writable: false,
        }];
        if let Some(socket) = &self.socket {
            let interest = self.interest();
            waits.extend(socket.fds().into_iter().map(|fd| os::Wait {
                fd,
                readable: interest.readable,
                writable: interest.writable,
            }));
        }
        let ue_or_connect = match (
            self.ue.next_timeout(),
            self.socket.as_ref().and_then(FlowSocket::deadline),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let until_timer = ue_or_connect.map_or(max_wait, |at| at.saturating_duration_since(now));
        let timeout = if self.has_events() {
            Duration::ZERO
        } else {
            until_timer.min(max_wait)
        };
        WaitPlan {
            waits,
            timeout: Some(timeout),
        }
    }

    /// Blocks for at most `max_wait` until the socket is ready, a timer is due or the
    /// [`Waker`] is woken, then [`process`](Self::process)es. Returns at once when events
    /// are waiting. Drain [`poll_event`](Self::poll_event) afterwards.
    pub fn run(&mut self, max_wait: Duration) -> io::Result<()> {
        self.process(clock::now());
        if self.has_events() {
            return Ok(());
        }
        self.prepare_wait(max_wait).wait()?;
        self.process(clock::now());
        Ok(())
    }

    // ----- internals --------------------------------------------------------------------

    /// Performs the engine's outputs and feeds socket progress back, until neither has
    /// anything more now.
    fn pump(&mut self, now: Instant) {
        for _ in 0..MAX_STEPS {
            if self.perform_outputs(now) {
                // The stack answers a SIP message (reports a 2xx, ...) before the socket is
                // read past it: a close read next would make that answer stale.
                return;
            }
            if self.resolution.is_some() {
                if !self.take_resolution(now) {
                    return;
                }
                continue;
            }
            let Some(socket) = self.socket.as_mut() else {
                return;
            };
            let flow = socket.flow;
            let Some(input) = socket.step(now) else {
                return;
            };
            let result = match input {
                SocketInput::Connected { local, remote } => {
                    self.ue.connected(now, flow, local, remote)
                }
                SocketInput::ConnectFailed(reason) => {
                    self.drop_socket();
                    self.ue.connect_failed(now, flow, reason)
                }
                SocketInput::Received(data) => {
                    let limit = self.ue.config().queue_limits().driver_event_bytes;
                    if self.event_bytes > limit {
                        // The application does not poll: read no more of this flow.
                        self.ue.queue_overflowed(
                            now,
                            flow,
                            LossReason::QueueOverflow {
                                queue: Queue::DriverEvents,
                                queued: self.event_bytes,
                            },
                        )
                    } else {
                        self.ue.receive(now, flow, &data)
                    }
                }
                SocketInput::Closed(closure) => {
                    self.drop_socket();
                    self.ue.transport_closed(now, flow, closure)
                }
            };
            if let Err(error) = result {
                // Only a stale flow can be refused here; its socket is no longer wanted.
                debug!("{flow}: socket input refused: {error}");
                if self.socket.as_ref().is_some_and(|s| s.flow == flow) {
                    self.drop_socket();
                }
            }
        }
    }

    /// Returns whether a SIP message was queued for the stack.
    fn perform_outputs(&mut self, now: Instant) -> bool {
        let mut sip_queued = false;
        loop {
            match self.ue.poll_output() {
                Output::Connect {
                    flow,
                    candidate,
                    host,
                    port,
                } => match self.mode {
                    ConnectMode::Managed => self.connect(now, flow, &host, port),
                    ConnectMode::External => {
                        self.pending_connect = Some(ConnectRequest {
                            flow,
                            candidate,
                            host,
                            port,
                        });
                    }
                },
                Output::Transmit { flow, data } => {
                    if let Some(socket) = self.socket.as_mut().filter(|s| s.flow == flow) {
                        let queued = socket.queue(&data);
                        if queued > self.ue.config().queue_limits().driver_outgoing_bytes {
                            // The P-CSCF does not read what we write.
                            self.drop_socket();
                            let reason = LossReason::PeerNotReading { queued };
                            if let Err(error) = self.ue.queue_overflowed(now, flow, reason) {
                                debug!("{flow}: overflow refused: {error}");
                            }
                        }
                    }
                }
                Output::Close { flow } => {
                    if self
                        .pending_connect
                        .as_ref()
                        .is_some_and(|r| r.flow == flow)
                    {
                        self.pending_connect = None;
                    }
                    if self.socket.as_ref().is_some_and(|s| s.flow == flow) {
                        self.drop_socket();
                    }
                    if self.resolution.as_ref().is_some_and(|r| r.flow == flow) {
                        // The answer, when it comes, goes nowhere.
                        self.resolution = None;
                    }
                }
                Output::Event(event) => {
                    sip_queued |= matches!(event, Event::SipReceived { .. });
                    self.event_bytes += event.footprint();
                    self.events.push_back(event);
                }
                Output::Timeout(_) => return sip_queued,
                #[allow(unreachable_patterns)] // `Output` is non-exhaustive
                _ => {}
            }
        }
    }

    /// Starts the connect of `flow`: at once for an IP literal, after a lookup on a resolver
    /// thread for a name (its answer arrives through the wake-up pipe).
    fn connect(&mut self, now: Instant, flow: FlowId, host: &Host, port: u16) {
        self.drop_socket();
        self.resolution = None;
        match host {
            Host::Ip(ip) => self.start_race(now, flow, vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => {
                if let Err(error) = self.start_resolution(flow, name.clone(), port) {
                    self.report_connect_failure(now, flow, TransportError::Other(error));
                }
            }
        }
    }

    fn start_resolution(&mut self, flow: FlowId, name: String, port: u16) -> Result<(), String> {
        let answer = Arc::new(Mutex::new(None));
        let teller = Teller {
            slot: Arc::clone(&answer),
            answer: None,
            waker: self.pipe.waker(),
        };
        let resolver = self.resolver.clone();
        os::spawn_detached(
            c"imstls-resolve",
            Box::new(move || {
                let mut teller = teller; // the whole of it, so that it drops on this thread
                let addrs = match &resolver {
                    Some(resolve) => resolve(&name, port),
                    None => resolve_with_system(&name, port),
                };
                teller.answer = Some(match addrs {
                    Ok(addrs) if !addrs.is_empty() => Ok(addrs),
                    Ok(_) => Err(TransportError::Unresolved),
                    Err(error) => {
                        debug!("name resolution failed: {error}");
                        Err(TransportError::Unresolved)
                    }
                });
            }),
        )
        .map_err(|e| format!("no resolver thread: {e}"))?;
        self.resolution = Some(Resolution { flow, answer });
        Ok(())
    }

    /// Takes the resolver's answer if it is in and starts connecting (or fails the attempt).
    /// Returns whether it was in.
    fn take_resolution(&mut self, now: Instant) -> bool {
        let Some(resolution) = &self.resolution else {
            return false;
        };
        let flow = resolution.flow;
        let Some(answer) = resolution.answer.lock().take() else {
            return false;
        };
        self.resolution = None;
        match answer {
            Ok(addrs) => self.start_race(now, flow, addrs),
            Err(reason) => self.report_connect_failure(now, flow, reason),
        }
        true
    }

    fn start_race(&mut self, now: Instant, flow: FlowId, addrs: Vec<SocketAddr>) {
        let timeout = self.ue.config().connect_timeout();
        match FlowSocket::connect(flow, addrs, now, timeout, self.attempt_delay) {
            Ok(socket) => self.socket = Some(socket),
            Err(reason) => self.report_connect_failure(now, flow, reason),
        }
    }

    fn report_connect_failure(&mut self, now: Instant, flow: FlowId, reason: TransportError) {
        if let Err(error) = self.ue.connect_failed(now, flow, reason) {
            debug!("{flow}: connect failure refused: {error}");
        }
    }

    fn drop_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            if socket.origin == Origin::Adopted {
                debug!("{}: closing the adopted socket", socket.flow);
            }
            socket.close();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.drop_socket();
    }
}
