//! The sans-IO UE engine: the registration state machine of TS 33.203 Annex O.
//!
//! Inputs are method calls that take the caller's monotonic `now`; outputs are pulled with
//! [`Ue::poll_output`] until it returns [`Output::Timeout`]. No socket, thread, clock or
//! lock lives in here.
//!
//! States are named for what they wait for and hold what they need (a procedure's steps
//! hold the procedure and its flow, `Registered` its flow and registration), so "a flow iff
//! a state that uses one" and "a registration iff registered" hold by construction; one
//! teardown function ends what a state held, in one order. Invariants (what the types cannot
//! say is checked after every step by the model test, see [`Ue::check_invariants`]):
//! 1. at most one registration procedure exists (O.4.1), and superseding one removes its
//!    flow, sessions, queued bytes and identities;
//! 2. a flow carries REGISTER first (O.4.2);
//! 3. a lost flow leads to a new flow and a new registration (O.4.1), with RFC 5626 §4.5
//!    back-off;
//! 4. a rejected P-CSCF certificate puts the fatal alert on the wire before the close
//!    (O.3.1.2) and is never retried automatically.

mod conformance;
mod error;
mod event;
mod identity;
mod timing;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

pub use error::UeError;
pub use event::{
    Abandoned, AttemptFailure, Binding, CandidateFailure, ConformanceEntry, Event, FailureReason,
    FlowId, LossReason, Output, Queue, RegisterKind, RegisterReason, RekeyMethod, TransportClosure,
    TransportError,
};
pub use identity::Identity;

use crate::config::{ConfigError, UeConfig};
use crate::profile::TlsProfile;
use crate::session::StoreMark;
use crate::sip::{parse_outgoing_message, Frame, SipFramer};
use crate::tls::{Closure, TlsFailure, TlsFailureKind, TlsFlow, TlsPhase};
use conformance::ConformanceLog;
use timing::{backoff_window, keepalive_window, refresh_delay, Jitter};

/// CRLF CRLF: an RFC 5626 §3.5.1 ping.
const PING: &[u8] = b"\r\n\r\n";
/// CRLF: an RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";

/// What the engine is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UeState {
    /// No registration wanted: waiting for [`Ue::start_registration`].
    Idle,
    /// Waiting for the caller's TCP connect result.
    Connecting,
    /// Waiting for the TLS handshake to complete.
    Handshaking,
    /// Flow up: waiting for the stack to send REGISTER.
    AwaitingRegister,
    /// REGISTER sent: waiting for the stack to report the answer.
    Registering,
    /// Registered: waiting for the refresh time (refreshes run in this state).
    Registered,
    /// De-REGISTER due or sent: waiting for its answer.
    Deregistering,
    /// Waiting out an RFC 5626 §4.5 back-off before the next attempt.
    BackingOff,
    /// Stopped after a failure that is not retried automatically (certificate, 4xx, ...):
    /// waiting for a new [`Ue::start_registration`].
    Closed,
}

/// The engine's state. Each variant holds exactly what it needs and nothing else, so the
/// types say what the old flat enum with `Option`s beside it needed runtime checks for: a
/// flow exists iff a procedure step, `Registered` or `Deregistering` holds it; a
/// registration exists iff `Registered`; an incomplete procedure exists iff a procedure step
/// or `BackingOff` holds it (O.4.1: at most one). Transitions move the data on with
/// `std::mem::replace`; a teardown takes the whole state ([`State::into_parts`]).
#[derive(Debug)]
enum State {
    Idle,
    /// An incomplete registration procedure on its flow (O.4.1), at `step`; `deadline`
    /// bounds the step.
    Procedure {
        step: Step,
        deadline: Instant,
        procedure: Procedure,
        flow: Flow,
    },
    /// Registered on `flow` (refreshes run in this state).
    Registered {
        flow: Flow,
        registration: Registration,
    },
    /// De-registration on the registered flow (RFC 3261 §10.2.2); `deadline` bounds `phase`.
    Deregistering {
        phase: Deregistration,
        deadline: Instant,
        flow: Flow,
    },
    /// An RFC 5626 §4.5 back-off; the next attempt belongs to `procedure`.
    BackingOff {
        until: Instant,
        procedure: Procedure,
    },
    Closed,
}

/// The steps of a registration procedure, each waiting for one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connecting,
    Handshaking,
    AwaitingRegister,
    Registering,
}

/// Where a de-registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deregistration {
    /// A refresh REGISTER was still unanswered when the app asked to de-register, so the
    /// de-REGISTER waits for its final answer or its timeout (RFC 3261 §10.2).
    AfterRefresh,
    /// The stack was asked for the de-REGISTER.
    Due,
    /// The de-REGISTER is out.
    Sent,
}

/// What a state held, taken out of it for a teardown.
struct Parts {
    state: UeState,
    flow: Option<Flow>,
    procedure: Option<Procedure>,
}

impl State {
    fn public(&self) -> UeState {
        match self {
            State::Idle => UeState::Idle,
            State::Procedure { step, .. } => match step {
                Step::Connecting => UeState::Connecting,
                Step::Handshaking => UeState::Handshaking,
                Step::AwaitingRegister => UeState::AwaitingRegister,
                Step::Registering => UeState::Registering,
            },
            State::Registered { .. } => UeState::Registered,
            State::Deregistering { .. } => UeState::Deregistering,
            State::BackingOff { .. } => UeState::BackingOff,
            State::Closed => UeState::Closed,
        }
    }

    fn is_step(&self, wanted: Step) -> bool {
        matches!(self, State::Procedure { step, .. } if *step == wanted)
    }

    fn flow(&self) -> Option<&Flow> {
        match self {
            State::Procedure { flow, .. }
            | State::Registered { flow, .. }
            | State::Deregistering { flow, .. } => Some(flow),
            State::Idle | State::BackingOff { .. } | State::Closed => None,
        }
    }

    fn flow_mut(&mut self) -> Option<&mut Flow> {
        match self {
            State::Procedure { flow, .. }
            | State::Registered { flow, .. }
            | State::Deregistering { flow, .. } => Some(flow),
            State::Idle | State::BackingOff { .. } | State::Closed => None,
        }
    }

    fn procedure(&self) -> Option<&Procedure> {
        match self {
            State::Procedure { procedure, .. } | State::BackingOff { procedure, .. } => {
                Some(procedure)
            }
            _ => None,
        }
    }

    fn registration(&self) -> Option<&Registration> {
        match self {
            State::Registered { registration, .. } => Some(registration),
            _ => None,
        }
    }

    /// The deadline of the state itself (not of its refresh or keep-alive timers).
    fn deadline(&self) -> Option<Instant> {
        match self {
            State::Procedure { deadline, .. } | State::Deregistering { deadline, .. } => {
                Some(*deadline)
            }
            State::BackingOff { until, .. } => Some(*until),
            State::Idle | State::Registered { .. } | State::Closed => None,
        }
    }

    /// Everything the state holds but its registration, which ends with it.
    fn into_parts(self) -> Parts {
        let state = self.public();
        let (flow, procedure) = match self {
            State::Procedure {
                procedure, flow, ..
            } => (Some(flow), Some(procedure)),
            State::Registered { flow, .. } | State::Deregistering { flow, .. } => {
                (Some(flow), None)
            }
            State::BackingOff { procedure, .. } => (None, Some(procedure)),
            State::Idle | State::Closed => (None, None),
        };
        Parts {
            state,
            flow,
            procedure,
        }
    }
}

/// A registration procedure that has not yet succeeded (O.4.1 "incomplete").
#[derive(Debug)]
struct Procedure {
    /// Sessions stored since this mark belong to the procedure.
    mark: StoreMark,
    challenges: u32,
    reason: RegisterReason,
    attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Scheduled(Instant),
    /// The stack was told to refresh; the registration expiry bounds the wait.
    Due,
    /// A refresh REGISTER is out; the deadline is its Timer F.
    InFlight(Instant),
}

#[derive(Debug)]
struct Registration {
    expires_at: Instant,
    refresh: Refresh,
    challenges: u32,
}

/// RFC 5626 §4.5 bookkeeping.
#[derive(Debug, Default)]
struct Recovery {
    consecutive_failures: u32,
    candidate: usize,
    tried_in_round: usize,
    /// Each failed attempt of this round, for the event that ends the round (failover).
    round_failures: Vec<CandidateFailure>,
}

struct Flow {
    id: FlowId,
    candidate: usize,
    /// None until the caller's TCP connect succeeded.
    tls: Option<TlsFlow>,
    framer: SipFramer,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    flow_timer: Option<Duration>,
    pong_seen: bool,
    registered_at: Option<Instant>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("id", &self.id)
            .field("candidate", &self.candidate)
            .finish_non_exhaustive()
    }
}

/// What a teardown ends, named by the clause that ends it. [`Ue::tear_down`] does the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// O.4.1: a new procedure or a de-registration supersedes the current activity; its
    /// queued bytes, flow, sessions and identity go.
    Superseded(Successor),
    /// RFC 5626 §4.5 failover: a connect or handshake attempt failed; the procedure goes on.
    /// `permanent`: the P-CSCF's TLS configuration failed, so its sessions go (O.3.1.2).
    AttemptFailed { permanent: bool },
    /// O.4.1: the flow is lost or the procedure restarts (network change, O.3.1.4 timeout,
    /// the end of a back-off); the identity stays for the next procedure.
    Restart(FlowEnd),
    /// O.3.1.1: the registrar rejected the REGISTER; flow closed, its TLS session deleted.
    Rejected,
    /// A TLS 1.2 rekey: a new flow with a full handshake, so the P-CSCF's sessions go.
    Rekey,
    /// No automatic retry (O.3.1.1 final error, O.3.1.2 certificate): everything goes.
    Stopped,
    /// RFC 3261 §10.2.2: de-registered (or the flow was lost while de-registering): the
    /// identity and every TLS session of it go (O.2.2).
    Deregistered(FlowEnd),
}

/// What replaces a superseded activity (O.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Successor {
    /// A new registration; sessions stay only for the same subscriber (O.2.2).
    Registration {
        same_identity: bool,
    },
    Deregistration,
}

/// How a flow's TLS ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowEnd {
    /// close_notify after whatever is queued (RFC 8446 §6.1, RFC 5246 §7.2.1).
    CloseNotify,
    /// No close_notify: the TLS flow failed (its alert is already queued) or the transport
    /// is gone.
    Silent,
    /// The unsent bytes are dropped first (the caller cannot take them), then no
    /// close_notify.
    DropQueued,
}

impl Teardown {
    fn drops_queued(self) -> bool {
        matches!(
            self,
            Teardown::Superseded(_)
                | Teardown::Restart(FlowEnd::DropQueued)
                | Teardown::Deregistered(FlowEnd::DropQueued)
        )
    }

    /// `dropped`: bytes removed from the output queue for the flow.
    fn sends_close_notify(self, dropped: usize) -> bool {
        match self {
            // RFC 8446 §5.3 / RFC 5246 §6.1: every record advances the sequence number, so
            // after dropping encrypted records a close_notify would not decrypt at the
            // P-CSCF (a tamper alarm there). Then the flow ends with a bare FIN.
            Teardown::Superseded(_) => dropped == 0,
            Teardown::AttemptFailed { .. } => false,
            Teardown::Restart(end) | Teardown::Deregistered(end) => end == FlowEnd::CloseNotify,
            // A flow still healthy ends with close_notify (RFC 8446 §6.1); a failed TLS flow
            // already sent its fatal alert and sends nothing more.
            Teardown::Rejected | Teardown::Rekey | Teardown::Stopped => true,
        }
    }

    fn purges_pcscf_sessions(self) -> bool {
        match self {
            Teardown::AttemptFailed { permanent } => permanent,
            Teardown::Rejected | Teardown::Rekey | Teardown::Stopped => true,
            Teardown::Superseded(_) | Teardown::Restart(_) | Teardown::Deregistered(_) => false,
        }
    }

    fn ends_identity(self) -> bool {
        matches!(
            self,
            Teardown::Superseded(_) | Teardown::Stopped | Teardown::Deregistered(_)
        )
    }

    fn forgets_all_sessions(self) -> bool {
        match self {
            Teardown::Superseded(Successor::Registration { same_identity }) => !same_identity,
            Teardown::Superseded(Successor::Deregistration)
            | Teardown::Stopped
            | Teardown::Deregistered(_) => true,
            Teardown::AttemptFailed { .. }
            | Teardown::Restart(_)
            | Teardown::Rejected
            | Teardown::Rekey => false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    State,
    Refresh,
    Expiry,
    Ping,
    Pong,
}

/// The UE engine. One per UE; drive it from one thread at a time (it is `Send`).
pub struct Ue {
    config: UeConfig,
    profile: TlsProfile,
    now: Instant,
    state: State,
    /// The subscriber of the current activity: present iff the state is neither `Idle` nor
    /// `Closed` (it outlives the state changes of one activity, so it sits beside them).
    identity: Option<Identity>,
    recovery: Recovery,
    outputs: VecDeque<Output>,
    jitter: Jitter,
    next_flow: u64,
    log: ConformanceLog,
}

impl std::fmt::Debug for Ue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ue")
            .field("state", &self.state)
            .field("flow", &self.current_flow())
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl Ue {
    /// A new engine in [`UeState::Idle`]. `now` is the caller's monotonic clock.
    pub fn new(config: UeConfig, now: Instant) -> Result<Self, ConfigError> {
        let profile = TlsProfile::new(&config, now)?;
        let seed = match config.inner.random_seed {
            Some(seed) => seed,
            None => {
                let mut bytes = [0u8; 8];
                config
                    .inner
                    .provider
                    .secure_random
                    .fill(&mut bytes)
                    .map_err(|_| ConfigError::Tls {
                        reason: "the crypto provider gave no random seed".into(),
                    })?;
                u64::from_le_bytes(bytes)
            }
        };
        let log = ConformanceLog::new(now, config.inner.conformance_log_entries);
        Ok(Self {
            config,
            profile,
            now,
            state: State::Idle,
            identity: None,
            recovery: Recovery::default(),
            outputs: VecDeque::new(),
            jitter: Jitter::new(seed),
            next_flow: 1,
            log,
        })
    }

    // ----- inspection -------------------------------------------------------------------

    /// What the engine is waiting for.
    pub fn state(&self) -> UeState {
        self.state.public()
    }

    /// The configuration.
    pub fn config(&self) -> &UeConfig {
        &self.config
    }

    /// The TLS profile (session store included).
    pub fn profile(&self) -> &TlsProfile {
        &self.profile
    }

    /// The current flow, if any.
    pub fn current_flow(&self) -> Option<FlowId> {
        self.state.flow().map(|f| f.id)
    }

    /// The O.2.2 binding (addresses, identities, TLS parameters) once TLS is up.
    pub fn binding(&self) -> Option<Binding> {
        let flow = self.state.flow()?;
        let identity = self.identity.as_ref()?;
        let tls = flow.tls.as_ref()?.details()?;
        Some(Binding {
            flow: flow.id,
            pcscf: self.config.candidates()[flow.candidate].to_string(),
            local_addr: flow.local,
            remote_addr: flow.remote,
            impi: identity.impi().to_owned(),
            impus: identity.impus().map(str::to_owned).collect(),
            tls,
            registered: matches!(self.state, State::Registered { .. }),
        })
    }

    /// The last events with their clauses (no personal data), oldest first; as many as
    /// [`UeConfigBuilder::conformance_log_entries`](crate::config::UeConfigBuilder::conformance_log_entries)
    /// allows.
    pub fn conformance_log(&self) -> impl Iterator<Item = ConformanceEntry> + '_ {
        self.log.entries()
    }

    /// Consecutive failures counted for RFC 5626 §4.5.
    pub fn consecutive_failures(&self) -> u32 {
        self.recovery.consecutive_failures
    }

    /// True while a registration procedure is incomplete.
    pub fn registration_in_progress(&self) -> bool {
        self.state.procedure().is_some()
    }

    /// When the engine next needs [`handle_timeout`](Self::handle_timeout).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    // ----- outputs ----------------------------------------------------------------------

    /// The next thing to do. Call after every input until it returns
    /// [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        match self.outputs.pop_front() {
            Some(output) => {
                if self.outputs.is_empty() {
                    // Drained: an idle UE keeps no queue (one allocation per burst costs
                    // less than 600 bytes held by every idle UE; BENCHMARKS.md B4).
                    self.outputs = VecDeque::new();
                }
                output
            }
            None => Output::Timeout(self.next_timeout()),
        }
    }

    // ----- invariants (model tests) -----------------------------------------------------

    /// Checks the DESIGN §4 invariants the types cannot state; the model test calls this
    /// after every step. (Flow, procedure and registration exist exactly in the states that
    /// hold them: [`State`] says so by construction.)
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = self.state();
        let active = !matches!(state, UeState::Idle | UeState::Closed);
        if active != self.identity.is_some() {
            return Err(format!(
                "{state:?} with an identity present = {}",
                self.identity.is_some()
            ));
        }
        if self.identity.is_none() && !self.profile.sessions.is_empty() {
            return Err(format!("{state:?}: TLS sessions outlive the identity"));
        }
        if matches!(
            state,
            UeState::AwaitingRegister | UeState::Registering | UeState::Registered
        ) && !self.flow_tls().is_some_and(TlsFlow::is_established)
        {
            return Err(format!("{state:?} without an established TLS flow"));
        }
        // Nothing may be queued for a flow after its Close.
        let mut closed = Vec::new();
        for output in &self.outputs {
            match output {
                Output::Close { flow } => closed.push(*flow),
                Output::Transmit { flow, .. } if closed.contains(flow) => {
                    return Err(format!("bytes queued for {flow} after its Close"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    // ----- shared internals -------------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        self.profile.sessions.set_now(self.now);
    }

    /// Takes the state out for a consuming transition; the caller puts the next one in.
    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Idle)
    }

    fn flow_tls(&self) -> Option<&TlsFlow> {
        self.state.flow().and_then(|f| f.tls.as_ref())
    }

    fn check_flow(&self, flow: FlowId) -> Result<(), UeError> {
        match self.current_flow() {
            Some(current) if current == flow => Ok(()),
            _ => Err(UeError::UnknownFlow(flow)),
        }
    }

    fn emit(&mut self, event: Event) {
        debug!("[{}] {}", event.clause(), event);
        self.log.record(self.now, &event);
        self.outputs.push_back(Output::Event(event));
    }

    fn emit_for_flow(&mut self, make: impl FnOnce(FlowId) -> Event) {
        if let Some(id) = self.current_flow() {
            self.emit(make(id));
        }
    }

    fn flush_transmit(&mut self) {
        if let Some(flow) = self.state.flow_mut() {
            if let Some(data) = flow.tls.as_mut().and_then(TlsFlow::take_transmit) {
                self.outputs.push_back(Output::Transmit {
                    flow: flow.id,
                    data,
                });
            }
        }
    }
}

impl Ue {
    /// Starts a registration procedure for `identity` (TS 33.203 O.4.1: one at a time). An
    /// incomplete procedure is torn down first, and [`Event::Superseded`] says what it lost;
    /// a registered flow is closed too. Unless `identity` is the one already registering or
    /// registered, every stored TLS session is removed first: sessions do not outlive the
    /// identity they were made for (O.2.2 binds the flow to it).
    pub fn start_registration(&mut self, now: Instant, identity: Identity) -> Result<(), UeError> {
        self.advance(now);
        let same_identity = self
            .identity
            .as_ref()
            .is_some_and(|current| current.same_subscriber(&identity));
        let parts = self.take_state().into_parts();
        self.tear_down(
            parts,
            Teardown::Superseded(Successor::Registration { same_identity }),
        );
        self.identity = Some(identity);
        self.recovery = Recovery::default();
        self.begin_procedure(RegisterReason::Initial);
        Ok(())
    }

    /// The stack sends a SIP message on the current flow. `message` must be exactly one
    /// complete SIP message in strict RFC 3261 form ([`parse_outgoing_message`]), so that no
    /// lenient P-CSCF parser can find a second request in it. O.4.2: until the registration
    /// succeeds, only REGISTER may go.
    pub fn send_sip(&mut self, now: Instant, message: &[u8]) -> Result<(), UeError> {
        self.advance(now);
        let max = self.config.max_sip_message_size();
        let head = parse_outgoing_message(message, max).map_err(UeError::BadMessage)?;
        let is_register = head.is_request("REGISTER");
        let timeout = self.config.registration_timeout();
        let refresh_in_flight = self.refresh_in_flight();
        match self.state {
            // AwaitingRegister → Registering: the REGISTER is out (O.4.2: REGISTER first).
            State::Procedure {
                step: Step::AwaitingRegister,
                ..
            } if is_register => {
                self.transmit_plaintext(message, "send_sip")?;
                if let State::Procedure { step, deadline, .. } = &mut self.state {
                    *step = Step::Registering;
                    *deadline = now + timeout;
                }
                self.emit_for_flow(|flow| Event::Registering {
                    flow,
                    kind: RegisterKind::Register,
                });
            }
            State::Procedure {
                step: Step::AwaitingRegister,
                ..
            } => return Err(UeError::RegisterFirst),
            State::Procedure {
                step: Step::Registering,
                ..
            } if is_register => return Err(UeError::RegisterInFlight),
            State::Procedure {
                step: Step::Registering,
                ..
            } => return Err(UeError::RegisterFirst),
            // RFC 3261 §10.2: no new REGISTER before the previous one is answered.
            State::Registered { .. } if is_register && refresh_in_flight => {
                return Err(UeError::RegisterInFlight)
            }
            // Registered, refresh in flight: its Timer F bounds the wait (TS 24.229 §5.1.1.4.1).
            State::Registered { .. } if is_register => {
                self.transmit_plaintext(message, "send_sip")?;
                if let State::Registered { registration, .. } = &mut self.state {
                    registration.refresh = Refresh::InFlight(now + timeout);
                }
                self.emit_for_flow(|flow| Event::Registering {
                    flow,
                    kind: RegisterKind::Refresh,
                });
            }
            State::Registered { .. } => self.transmit_plaintext(message, "send_sip")?,
            // RFC 3261 §10.2: no new REGISTER before the previous one is answered.
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            } if is_register => return Err(UeError::RegisterInFlight),
            // Deregistering, Due → Sent: the de-REGISTER is out (RFC 3261 §10.2.2).
            State::Deregistering {
                phase: Deregistration::Due,
                ..
            } if is_register => {
                self.transmit_plaintext(message, "send_sip")?;
                if let State::Deregistering {
                    phase, deadline, ..
                } = &mut self.state
                {
                    *phase = Deregistration::Sent;
                    *deadline = now + timeout;
                }
                self.emit_for_flow(|flow| Event::Registering {
                    flow,
                    kind: RegisterKind::Deregister,
                });
            }
            State::Deregistering { .. } if is_register => return Err(UeError::RegisterInFlight),
            State::Deregistering { .. } => self.transmit_plaintext(message, "send_sip")?,
            ref state => {
                return Err(UeError::WrongState {
                    operation: "send_sip",
                    state: state.public(),
                })
            }
        }
        Ok(())
    }

    /// The stack got a 401/407 to the REGISTER: the next REGISTER goes on the same flow
    /// (Annex N; with `stale` = true, O.3.1.3). `flow` is the flow of the
    /// [`Event::SipReceived`] that carried the answer; an answer from any other flow belongs
    /// to an earlier procedure and is refused with [`UeError::StaleReport`] (O.4.1: a new
    /// procedure keeps nothing of the one it replaced).
    pub fn registration_challenged(
        &mut self,
        now: Instant,
        flow: FlowId,
        stale: bool,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_report(flow)?;
        let max = self.config.inner.max_challenges;
        let timeout = self.config.registration_timeout();
        let refresh_in_flight = self.refresh_in_flight();
        let reason = RegisterReason::Challenge { stale };
        match &mut self.state {
            // Registering → AwaitingRegister on the same flow (Annex N, O.3.1.3).
            State::Procedure {
                step: step @ Step::Registering,
                deadline,
                procedure,
                ..
            } => {
                procedure.challenges += 1;
                if procedure.challenges > max {
                    self.fail_permanently(FailureReason::TooManyChallenges, Some(401));
                    return Ok(());
                }
                *step = Step::AwaitingRegister;
                *deadline = now + timeout;
                self.emit_for_flow(|flow| Event::Challenged { flow, stale });
                self.emit_for_flow(|flow| Event::RegisterNow { flow, reason });
            }
            // Registered, the refresh challenged: the stack refreshes again (Annex N).
            State::Registered { registration, .. } if refresh_in_flight => {
                registration.challenges += 1;
                if registration.challenges > max {
                    self.fail_permanently(FailureReason::TooManyChallenges, Some(401));
                    return Ok(());
                }
                registration.refresh = Refresh::Due;
                self.emit_for_flow(|flow| Event::Challenged { flow, stale });
                self.emit_for_flow(|flow| Event::RegisterNow { flow, reason });
            }
            // The refresh the de-registration waited for is answered: de-register now.
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            } => self.deregister_after_refresh(),
            // A late challenge to a refresh that the de-registration overtook.
            State::Deregistering {
                phase: Deregistration::Due,
                ..
            } => {}
            // Deregistering, Sent → Due: the de-REGISTER is challenged (Annex N).
            State::Deregistering {
                phase: phase @ Deregistration::Sent,
                deadline,
                ..
            } => {
                *phase = Deregistration::Due;
                *deadline = now + timeout;
                self.emit_for_flow(|flow| Event::Challenged { flow, stale });
                self.emit_for_flow(|flow| Event::RegisterNow { flow, reason });
            }
            state => {
                return Err(UeError::WrongState {
                    operation: "registration_challenged",
                    state: state.public(),
                })
            }
        }
        Ok(())
    }

    /// The stack got a 2xx to the REGISTER. `expires` is what the registrar granted;
    /// `flow_timer` is its RFC 5626 Flow-Timer, if any. Schedules the refresh
    /// (TS 24.229 §5.1.1.4.1) and keep-alives (RFC 5626 §4.4.1). `flow` is the flow of the
    /// [`Event::SipReceived`] that carried the answer; another flow's answer is refused with
    /// [`UeError::StaleReport`] (O.4.1).
    pub fn registration_succeeded(
        &mut self,
        now: Instant,
        flow: FlowId,
        expires: Duration,
        flow_timer: Option<Duration>,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_report(flow)?;
        match self.state {
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            } => {
                self.deregister_after_refresh();
                return Ok(());
            }
            State::Deregistering {
                phase: Deregistration::Sent,
                ..
            } => {
                self.finish_deregistration(FlowEnd::CloseNotify);
                return Ok(());
            }
            // A late answer to a refresh that the de-registration overtook.
            State::Deregistering {
                phase: Deregistration::Due,
                ..
            } => return Ok(()),
            State::Procedure {
                step: Step::Registering,
                ..
            } => {}
            State::Registered { .. } if self.refresh_in_flight() => {}
            ref state => {
                return Err(UeError::WrongState {
                    operation: "registration_succeeded",
                    state: state.public(),
                })
            }
        }
        if expires.is_zero() {
            return Err(UeError::InvalidArgument(
                "expires must be positive; de-register with deregister()",
            ));
        }
        // Registering/Registered → Registered. The procedure (if any) is complete and
        // dropped without a purge: its sessions may now be resumed (O.4.1 only removes the
        // data of incomplete registrations).
        let mut flow = match self.take_state() {
            State::Procedure { flow, .. } | State::Registered { flow, .. } => flow,
            other => {
                self.state = other;
                return Err(UeError::WrongState {
                    operation: "registration_succeeded",
                    state: self.state(),
                });
            }
        };
        let refresh_in = refresh_delay(expires);
        flow.flow_timer = flow_timer;
        let first_registration = flow.registered_at.is_none();
        if first_registration {
            flow.registered_at = Some(now);
        }
        let id = flow.id;
        self.state = State::Registered {
            flow,
            registration: Registration {
                expires_at: now + expires,
                refresh: Refresh::Scheduled(now + refresh_in),
                challenges: 0,
            },
        };
        self.emit(Event::Registered {
            flow: id,
            expires,
            refresh_in,
        });
        if self.config.keepalive().enabled && first_registration {
            // A first ping at once: its pong proves the flow (RFC 5626 §4.5).
            self.send_ping();
        }
        Ok(())
    }

    /// The stack got a final error (3xx–6xx) to the REGISTER. O.3.1.1: the flow is closed
    /// and its TLS session deleted. 408, 480, 500, 503 and 504 are retried after a back-off
    /// (at least `retry_after`); every other status stops the UE ([`UeState::Closed`]).
    /// `flow` is the flow of the [`Event::SipReceived`] that carried the answer; another
    /// flow's answer is refused with [`UeError::StaleReport`] (O.4.1).
    pub fn registration_failed(
        &mut self,
        now: Instant,
        flow: FlowId,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_report(flow)?;
        if !(300..=699).contains(&status) {
            return Err(UeError::InvalidArgument(
                "status must be a final error, 300..=699",
            ));
        }
        match self.state {
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            } => {
                self.deregister_after_refresh();
                return Ok(());
            }
            State::Deregistering { .. } => {
                self.finish_deregistration(FlowEnd::CloseNotify);
                return Ok(());
            }
            State::Procedure {
                step: Step::Registering | Step::AwaitingRegister,
                ..
            }
            | State::Registered { .. } => {}
            ref state => {
                return Err(UeError::WrongState {
                    operation: "registration_failed",
                    state: state.public(),
                })
            }
        }
        if matches!(status, 408 | 480 | 500 | 503 | 504) {
            // → BackingOff (O.3.1.1, RFC 5626 §4.5).
            let candidates = self.take_round_failures();
            self.emit(Event::RegistrationFailed {
                status: Some(status),
                reason: FailureReason::Rejected,
                retrying: true,
                candidates,
            });
            let parts = self.take_state().into_parts();
            self.tear_down(parts, Teardown::Rejected);
            self.recovery.consecutive_failures += 1;
            self.back_off(None, retry_after, Vec::new());
        } else {
            self.fail_permanently(FailureReason::Rejected, Some(status));
        }
        Ok(())
    }

    /// Starts de-registration: when registered, [`Event::RegisterNow`] with
    /// [`RegisterReason::Deregister`] asks the stack for a REGISTER with Expires: 0. While a
    /// refresh REGISTER is still unanswered that request waits for the refresh's final answer
    /// (any report on its flow) or its timeout, because RFC 3261 §10.2 allows no new
    /// REGISTER before then; a REGISTER sent meanwhile gets [`UeError::RegisterInFlight`]. An
    /// incomplete procedure is simply torn down. Either way, once de-registered no TLS
    /// session of the identity is kept.
    pub fn deregister(&mut self, now: Instant) -> Result<(), UeError> {
        self.advance(now);
        match self.take_state() {
            // Registered → Deregistering; the registration ends here.
            State::Registered {
                mut flow,
                registration,
            } => {
                flow.next_ping = None;
                flow.pong_deadline = None;
                match registration.refresh {
                    // RFC 3261 §10.2: the de-REGISTER waits for the refresh's final answer
                    // or its Timer F.
                    Refresh::InFlight(deadline) => {
                        self.state = State::Deregistering {
                            phase: Deregistration::AfterRefresh,
                            deadline,
                            flow,
                        }
                    }
                    _ => self.deregister_now(flow),
                }
            }
            // An incomplete procedure → Idle (O.4.1: superseded by the de-registration).
            state @ (State::Procedure { .. } | State::BackingOff { .. }) => {
                self.tear_down(
                    state.into_parts(),
                    Teardown::Superseded(Successor::Deregistration),
                );
                self.emit(Event::Deregistered);
            }
            state => {
                self.state = state;
                return Err(UeError::WrongState {
                    operation: "deregister",
                    state: self.state(),
                });
            }
        }
        Ok(())
    }

    /// The device changed network (Wi-Fi ↔ cellular, new address): the flow is torn down
    /// and a new flow and registration start at once (O.4.1).
    pub fn network_changed(&mut self, now: Instant) -> Result<(), UeError> {
        self.advance(now);
        match self.state {
            State::Idle | State::Closed => {}
            // Deregistering → Idle: nothing is left to de-register on a new network.
            State::Deregistering { .. } => {
                self.lose_flow_event(LossReason::NetworkChanged);
                self.finish_deregistration(FlowEnd::Silent);
            }
            // Any other → Connecting on a new flow, first candidate (O.4.1).
            State::Procedure { .. } | State::Registered { .. } | State::BackingOff { .. } => {
                self.lose_flow_event(LossReason::NetworkChanged);
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Restart(FlowEnd::Silent));
                self.recovery.candidate = 0;
                self.begin_procedure(RegisterReason::NetworkChanged);
            }
        }
        Ok(())
    }

    /// Fresh keys for the registered flow: TLS 1.3 KeyUpdate, or on TLS 1.2 a new flow with
    /// a full handshake (the P-CSCF's sessions are removed first, so nothing is resumed) and
    /// a new registration (rustls never renegotiates; O.4.1).
    pub fn rekey(&mut self, now: Instant) -> Result<(), UeError> {
        self.advance(now);
        let wrong_state = UeError::WrongState {
            operation: "rekey",
            state: self.state(),
        };
        let State::Registered { flow, .. } = &mut self.state else {
            return Err(wrong_state);
        };
        let id = flow.id;
        let Some(tls) = flow.tls.as_mut() else {
            return Err(wrong_state);
        };
        match tls.rekey() {
            Ok(()) => {
                self.flush_transmit();
                self.emit(Event::Rekeyed {
                    flow: id,
                    method: RekeyMethod::KeyUpdate,
                });
            }
            // Registered → Connecting on a new flow.
            Err(crate::tls::FlowStateError::RekeyNeedsTls13) => {
                self.emit(Event::Rekeyed {
                    flow: id,
                    method: RekeyMethod::NewFlow,
                });
                // Resuming would reuse the master secret: the new flow must be a full
                // handshake to give fresh keys.
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Rekey);
                self.begin_procedure(RegisterReason::Rekey);
            }
            Err(_) => return Err(wrong_state),
        }
        Ok(())
    }

    /// O.4.1: a REGISTER answer belongs to the flow it arrived on. Every procedure (and every
    /// retry within one) has its own flow, so an answer from another flow is stale.
    fn check_report(&self, flow: FlowId) -> Result<(), UeError> {
        match self.current_flow() {
            Some(current) if current == flow => Ok(()),
            current => Err(UeError::StaleReport { flow, current }),
        }
    }

    fn refresh_in_flight(&self) -> bool {
        self.state
            .registration()
            .is_some_and(|r| matches!(r.refresh, Refresh::InFlight(_)))
    }

    fn transmit_plaintext(&mut self, bytes: &[u8], operation: &'static str) -> Result<(), UeError> {
        let state = self.state();
        let tls = self
            .state
            .flow_mut()
            .and_then(|f| f.tls.as_mut())
            .ok_or(UeError::WrongState { operation, state })?;
        tls.send(bytes)
            .map_err(|_| UeError::WrongState { operation, state })?;
        self.flush_transmit();
        Ok(())
    }

    /// Registered/Deregistering → Deregistering (Due): asks the stack for the de-REGISTER
    /// (expires=0) on `flow`, bounded by the registration timeout (RFC 3261 §10.2.2).
    fn deregister_now(&mut self, flow: Flow) {
        let id = flow.id;
        self.state = State::Deregistering {
            phase: Deregistration::Due,
            deadline: self.now + self.config.registration_timeout(),
            flow,
        };
        self.emit(Event::RegisterNow {
            flow: id,
            reason: RegisterReason::Deregister,
        });
    }

    /// Deregistering (AfterRefresh) → Deregistering (Due): the refresh is answered or timed
    /// out, so RFC 3261 §10.2 allows the de-REGISTER now.
    fn deregister_after_refresh(&mut self) {
        match self.take_state() {
            State::Deregistering { flow, .. } => self.deregister_now(flow),
            other => self.state = other,
        }
    }

    /// Deregistering → Idle (RFC 3261 §10.2.2): the flow closes as `end` says; no identity
    /// or TLS session of it is kept (O.2.2).
    fn finish_deregistration(&mut self, end: FlowEnd) {
        let parts = self.take_state().into_parts();
        self.tear_down(parts, Teardown::Deregistered(end));
        self.emit(Event::Deregistered);
    }
}

impl Ue {
    /// The caller's TCP connection for `flow` is up. Starts the TLS handshake.
    pub fn connected(
        &mut self,
        now: Instant,
        flow: FlowId,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_flow(flow)?;
        let handshake_timeout = self.config.handshake_timeout();
        // Connecting → Handshaking (O.2.1: the UE opens TLS to the P-CSCF).
        let State::Procedure {
            step: step @ Step::Connecting,
            deadline,
            flow: current,
            ..
        } = &mut self.state
        else {
            return Err(UeError::WrongState {
                operation: "connected",
                state: self.state(),
            });
        };
        current.local = local;
        current.remote = remote;
        let candidate = &self.config.candidates()[current.candidate];
        match TlsFlow::connect(&self.profile, candidate) {
            Ok(tls) => {
                current.tls = Some(tls);
                *step = Step::Handshaking;
                *deadline = now + handshake_timeout;
                self.flush_transmit();
            }
            Err(failure) => {
                self.emit(Event::TlsFailed {
                    flow,
                    failure: failure.clone(),
                });
                self.attempt_failed(AttemptFailure::Tls(failure));
            }
        }
        Ok(())
    }

    /// The caller's TCP connect for `flow` failed.
    pub fn connect_failed(
        &mut self,
        now: Instant,
        flow: FlowId,
        reason: TransportError,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_flow(flow)?;
        if !self.state.is_step(Step::Connecting) {
            return Err(UeError::WrongState {
                operation: "connect_failed",
                state: self.state(),
            });
        }
        self.emit(Event::ConnectFailed {
            flow,
            reason: reason.clone(),
        });
        self.attempt_failed(AttemptFailure::Connect(reason));
        Ok(())
    }

    /// Bytes read from `flow`'s socket.
    pub fn receive(&mut self, now: Instant, flow: FlowId, data: &[u8]) -> Result<(), UeError> {
        self.advance(now);
        self.check_flow(flow)?;
        let state = self.state();
        let Some(tls) = self.state.flow_mut().and_then(|f| f.tls.as_mut()) else {
            return Err(UeError::WrongState {
                operation: "receive",
                state,
            });
        };
        let result = tls.receive(data);
        self.flush_transmit();
        self.receive_tls_result(flow, result);
        self.enforce_output_cap(flow);
        Ok(())
    }

    /// What `receive` does with the TLS layer's verdict on the bytes.
    fn receive_tls_result(&mut self, flow: FlowId, result: Result<(), TlsFailure>) {
        match result {
            Err(failure) => self.on_tls_failure(failure),
            Ok(()) => {
                if self.state.is_step(Step::Handshaking)
                    && self.flow_tls().is_some_and(TlsFlow::is_established)
                {
                    self.on_established();
                }
                self.process_plaintext();
                if self.flow_tls().is_some_and(TlsFlow::is_closed) {
                    // close_notify from the P-CSCF; before any data it ends the attempt.
                    if self.state.is_step(Step::Handshaking) || self.flow_unproven() {
                        let failure =
                            TlsFailure::new(TlsFailureKind::UnexpectedEof, TlsPhase::Handshake);
                        self.emit(Event::TlsFailed {
                            flow,
                            failure: failure.clone(),
                        });
                        self.attempt_failed(AttemptFailure::Tls(failure));
                    } else if self.current_flow() == Some(flow) {
                        self.flow_lost(LossReason::ClosedByPeer);
                    }
                }
            }
        }
    }

    /// The caller did not drain what `flow`'s input produced and the engine output queue
    /// passed [`QueueLimits::engine_output_bytes`](crate::QueueLimits): the flow fails (its
    /// unsent bytes are dropped) and, as O.4.1 wants for a lost connection, a new registration
    /// follows, after an RFC 5626 §4.5 back-off, so a peer cannot grow the queue without
    /// bound.
    fn enforce_output_cap(&mut self, flow: FlowId) {
        if self.current_flow() != Some(flow) {
            return;
        }
        let queued: usize = self.outputs.iter().map(Output::footprint).sum();
        if queued <= self.config.queue_limits().engine_output_bytes {
            return;
        }
        warn!("{flow}: the engine output queue holds {queued} bytes: failing the flow");
        // An overload reason: the teardown drops the flow's unsent bytes.
        self.flow_lost(LossReason::QueueOverflow {
            queue: Queue::EngineOutput,
            queued,
        });
    }

    /// The driver (or a sans-IO caller capping its own write buffer) could not hand what
    /// `flow` produced on: `reason` is a [`LossReason::QueueOverflow`] or
    /// [`LossReason::PeerNotReading`]. The flow is lost (O.4.1: a new registration follows)
    /// and recovery backs off (RFC 5626 §4.5), never at once: an overloaded flow does not
    /// count as proven.
    pub fn queue_overflowed(
        &mut self,
        now: Instant,
        flow: FlowId,
        reason: LossReason,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_flow(flow)?;
        if !reason.is_overload() {
            return Err(UeError::InvalidArgument(
                "queue_overflowed takes QueueOverflow or PeerNotReading",
            ));
        }
        warn!("{flow}: {reason}: failing the flow");
        self.flow_lost(reason);
        Ok(())
    }

    /// The caller's socket for `flow` ended (EOF, reset or error).
    pub fn transport_closed(
        &mut self,
        now: Instant,
        flow: FlowId,
        closure: TransportClosure,
    ) -> Result<(), UeError> {
        self.advance(now);
        self.check_flow(flow)?;
        if self.state.is_step(Step::Connecting) {
            let reason = match closure {
                TransportClosure::Reset => TransportError::Reset,
                TransportClosure::Eof => TransportError::Other("closed while connecting".into()),
                TransportClosure::Error(e) => TransportError::Other(e),
            };
            self.emit(Event::ConnectFailed {
                flow,
                reason: reason.clone(),
            });
            self.attempt_failed(AttemptFailure::Connect(reason));
            return Ok(());
        }
        let handshaking = self.state.is_step(Step::Handshaking) || self.flow_unproven();
        let tls_closure = self
            .state
            .flow_mut()
            .and_then(|f| f.tls.as_mut())
            .map(TlsFlow::receive_eof);
        self.flush_transmit();
        if handshaking {
            let failure = match tls_closure {
                Some(Closure::Failed(failure)) => failure,
                _ => TlsFailure::new(TlsFailureKind::UnexpectedEof, TlsPhase::Handshake),
            };
            self.on_tls_failure(failure);
            return Ok(());
        }
        let reason = match (closure, tls_closure) {
            (TransportClosure::Reset, _) => LossReason::Reset,
            (TransportClosure::Error(e), _) => LossReason::IoError(e),
            (TransportClosure::Eof, Some(Closure::Clean)) => LossReason::ClosedByPeer,
            (TransportClosure::Eof, _) => LossReason::Eof,
        };
        self.flow_lost(reason);
        Ok(())
    }

    /// True while the flow has not proved itself: no data arrived yet and the stack has not
    /// reported a registration on it (a stack may do so before any byte of the 200 OK reached
    /// imstls, e.g. when it reads the socket itself). TLS 1.3 can fail after the handshake
    /// looks complete; until the flow is proven such a failure ends the attempt.
    fn flow_unproven(&self) -> bool {
        !matches!(
            self.state,
            State::Registered { .. } | State::Deregistering { .. }
        ) && !self.flow_tls().is_some_and(TlsFlow::has_received_data)
    }

    /// Handshaking → AwaitingRegister: TLS is up, the stack may send REGISTER (O.4.2).
    fn on_established(&mut self) {
        let registration_timeout = self.config.registration_timeout();
        let now = self.now;
        let State::Procedure {
            step,
            deadline,
            procedure,
            flow,
        } = &mut self.state
        else {
            return;
        };
        let Some(tls) = flow.tls.as_ref() else {
            return;
        };
        let Some(details) = tls.details() else {
            return;
        };
        let id = flow.id;
        let requested = tls.certificate_requested();
        let reason = procedure.reason;
        *step = Step::AwaitingRegister;
        *deadline = now + registration_timeout;
        info!(
            "{id}: TLS up: {} {} {} resumed={}",
            details.version,
            details.cipher_suite,
            details.key_exchange_group.unwrap_or("-"),
            details.resumed
        );
        self.emit(Event::TlsEstablished { flow: id, details });
        if requested {
            warn!("{id}: the P-CSCF requested a client certificate (O.2.1 says it shall not)");
            self.emit(Event::ClientCertificateRequested {
                flow: id,
                aborted: false,
            });
        }
        self.emit(Event::RegisterNow { flow: id, reason });
    }

    /// A TLS failure on the current flow: O.3.1.2 for a rejected certificate (no retry),
    /// an attempt failure before the flow is proven (RFC 5626 §4.5 failover), else a lost
    /// flow (O.4.1).
    fn on_tls_failure(&mut self, failure: TlsFailure) {
        let Some(flow) = self.current_flow() else {
            return;
        };
        if let Some(reason) = failure.certificate() {
            warn!("{flow}: P-CSCF certificate rejected: {reason}");
            self.record_attempt_failure(AttemptFailure::Tls(failure.clone()));
            self.emit(Event::CertificateRejected { flow, failure });
            self.fail_permanently(FailureReason::Certificate, None);
            return;
        }
        if failure.kind == TlsFailureKind::ClientCertificateRequested {
            self.emit(Event::ClientCertificateRequested {
                flow,
                aborted: true,
            });
        }
        // Before any data arrived the flow has not proved itself: a late TLS 1.3 failure is a
        // handshake failure, not a lost connection. A failure about the P-CSCF's TLS
        // configuration ends this attempt only: the other candidates are tried first.
        let unproven = self.flow_unproven();
        if self.state.is_step(Step::Handshaking) || unproven {
            self.emit(Event::TlsFailed {
                flow,
                failure: failure.clone(),
            });
            self.attempt_failed(AttemptFailure::Tls(failure));
        } else {
            self.flow_lost(LossReason::Tls(failure));
        }
    }

    /// SIP messages, pings and pongs out of the flow's plaintext (RFC 5626 §3.5.1, §5.4).
    fn process_plaintext(&mut self) {
        let mut pong_sent = false;
        let registered = matches!(self.state, State::Registered { .. });
        loop {
            let Some(flow) = self.state.flow_mut() else {
                return;
            };
            if let Some(tls) = flow.tls.as_mut() {
                if tls.has_plaintext() {
                    let plaintext = tls.take_plaintext();
                    flow.framer.push(&plaintext);
                }
            }
            let id = flow.id;
            let awaiting_pong = flow.pong_deadline.is_some();
            match flow.framer.next_frame(awaiting_pong) {
                Ok(None) => return,
                Ok(Some(Frame::Message(message))) => {
                    self.emit(Event::SipReceived { flow: id, message });
                }
                // RFC 5626 §5.4: a ping gets a pong. One pong answers every ping of the same
                // read: more would let the P-CSCF amplify its pings into our records and events.
                Ok(Some(Frame::Ping)) if pong_sent => {}
                Ok(Some(Frame::Ping)) => {
                    if let Some(tls) = flow.tls.as_mut() {
                        if tls.send(PONG).is_ok() {
                            pong_sent = true;
                            self.flush_transmit();
                            self.emit(Event::PingAnswered { flow: id });
                        }
                    }
                }
                Ok(Some(Frame::Pong)) => {
                    if flow.pong_deadline.take().is_some() {
                        flow.pong_seen = true;
                        let (low, high) = keepalive_window(
                            flow.flow_timer,
                            self.config.keepalive().battery_saving,
                        );
                        flow.next_ping = Some(self.now + self.jitter.between(low, high));
                        if registered {
                            // RFC 5626 §4.5: the flow has proved itself.
                            self.recovery.consecutive_failures = 0;
                        }
                        self.emit(Event::PongReceived { flow: id });
                    }
                }
                Err(error) => {
                    self.flow_lost(LossReason::Framing(error));
                    return;
                }
            }
        }
    }

    /// An RFC 5626 §4.4.1 keep-alive ping; its pong is due within the pong timeout.
    fn send_ping(&mut self) {
        let pong_timeout = self.config.keepalive().pong_timeout;
        let now = self.now;
        let Some(flow) = self.state.flow_mut() else {
            return;
        };
        let id = flow.id;
        if let Some(tls) = flow.tls.as_mut() {
            if tls.send(PING).is_ok() {
                flow.next_ping = None;
                flow.pong_deadline = Some(now + pong_timeout);
                self.flush_transmit();
                self.emit(Event::KeepAliveSent { flow: id });
            }
        }
    }
}

impl Ue {
    /// The one teardown: ends what `parts` held as `what` says, always in this order:
    /// 1. the flow's queued bytes (dropped when the caller cannot take them);
    /// 2. its TLS: a pending "send REGISTER on this flow" is withdrawn, close_notify (or
    ///    nothing) goes after whatever is queued — a fatal alert stays ahead of it — and then
    ///    the Close output;
    /// 3. sessions: the P-CSCF's (O.3.1.1, O.3.1.2), then the incomplete procedure's (O.4.1);
    /// 4. credentials: the identity, zeroized on drop;
    /// 5. for a superseded activity, [`Event::Superseded`] saying what it lost;
    /// 6. every stored session when the identity ends or changes (O.2.2).
    ///
    /// Events a caller emits about the cause (ConnectionLost, RegistrationFailed, ...) go
    /// before or after this call as they always did; only Superseded is emitted in here,
    /// because it must follow steps 1–4 (it reports their counts) and precede step 6 (the
    /// debug line of step 6 has always come after it).
    ///
    /// Returns the procedure when `what` keeps it (a failed attempt: the procedure goes on
    /// with the next candidate). The state is left as it is (the caller took it out and
    /// puts the next one in).
    fn tear_down(&mut self, parts: Parts, what: Teardown) -> Option<Procedure> {
        let Parts {
            state,
            flow,
            procedure,
        } = parts;
        let flow_id = flow.as_ref().map(|f| f.id);
        let candidate = flow.as_ref().map(|f| f.candidate);
        // 1. Queued bytes.
        let mut dropped = 0;
        if let (Some(id), true) = (flow_id, what.drops_queued()) {
            self.outputs.retain(|o| match o {
                Output::Transmit { flow, data } if *flow == id => {
                    dropped += data.len();
                    false
                }
                _ => true,
            });
        }
        let buffered = flow.as_ref().map_or(0, |f| f.framer.buffered());
        // 2. TLS close and the Close output.
        if let Some(mut flow) = flow {
            // A queued "send REGISTER on this flow" can no longer be acted on.
            self.outputs.retain(
                |o| !matches!(o, Output::Event(Event::RegisterNow { flow: f, .. }) if *f == flow.id),
            );
            if let Some(tls) = flow.tls.as_mut() {
                if what.sends_close_notify(dropped) {
                    tls.close();
                }
                if let Some(data) = tls.take_transmit() {
                    self.outputs.push_back(Output::Transmit {
                        flow: flow.id,
                        data,
                    });
                }
            }
            self.outputs.push_back(Output::Close { flow: flow.id });
        }
        // 3. Sessions: the P-CSCF's, then the incomplete procedure's.
        if let (Some(candidate), true) = (candidate, what.purges_pcscf_sessions()) {
            let name = self
                .profile
                .server_name_for(&self.config.candidates()[candidate]);
            self.profile.sessions.purge_server(&name);
        }
        let mut purged_sessions = 0;
        let kept = match (procedure, what) {
            (procedure, Teardown::AttemptFailed { .. }) => procedure,
            (Some(procedure), _) => {
                purged_sessions = self.profile.sessions.purge_since(procedure.mark);
                // A superseded procedure's count goes into its event instead.
                if purged_sessions > 0 && !matches!(what, Teardown::Superseded(_)) {
                    debug!("purged {purged_sessions} session(s) of an incomplete registration");
                }
                None
            }
            (None, _) => None,
        };
        // 4. Credentials.
        if what.ends_identity() {
            self.identity = None; // zeroized on drop
        }
        // 5. What a superseded activity lost (nothing to say when there was none).
        if let Teardown::Superseded(successor) = what {
            if !matches!(state, UeState::Idle | UeState::Closed) {
                if let Successor::Registration { .. } = successor {
                    info!("superseding the current registration ({state:?})");
                }
                self.emit(Event::Superseded {
                    abandoned: Abandoned {
                        state,
                        flow: flow_id,
                        purged_sessions,
                        dropped_bytes: dropped + buffered,
                    },
                });
            }
        }
        // 6. Every session, when the identity ends or changes.
        if what.forgets_all_sessions() {
            let purged = self.profile.sessions.purge_all();
            if purged > 0 {
                debug!("removed {purged} TLS session(s) of the previous identity");
            }
        }
        kept
    }
}

impl Ue {
    fn new_procedure(&self, reason: RegisterReason) -> Procedure {
        Procedure {
            mark: self.profile.sessions.mark(),
            challenges: 0,
            reason,
            attempts: 0,
        }
    }

    /// → Connecting: a new registration procedure (O.4.1: the only one) on a new flow,
    /// starting a new failover round at the current candidate.
    fn begin_procedure(&mut self, reason: RegisterReason) {
        let procedure = self.new_procedure(reason);
        self.recovery.tried_in_round = 0;
        self.recovery.round_failures.clear();
        self.open_flow(procedure);
    }

    /// → Connecting: the next attempt of `procedure` on a new flow to the current candidate
    /// (O.2.1: a TLS connection to the P-CSCF; RFC 5626 §4.5 failover picks the candidate).
    fn open_flow(&mut self, mut procedure: Procedure) {
        let candidates = self.config.candidates();
        let index = self.recovery.candidate % candidates.len();
        let candidate = candidates[index].clone();
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        procedure.attempts += 1;
        let attempt = procedure.attempts;
        let flow = Flow {
            id,
            candidate: index,
            tls: None,
            framer: SipFramer::new(self.config.max_sip_message_size()),
            local: None,
            remote: None,
            next_ping: None,
            pong_deadline: None,
            flow_timer: None,
            pong_seen: false,
            registered_at: None,
        };
        self.state = State::Procedure {
            step: Step::Connecting,
            deadline: self.now + self.config.connect_timeout(),
            procedure,
            flow,
        };
        self.outputs.push_back(Output::Connect {
            flow: id,
            candidate: index,
            host: candidate.host.clone(),
            port: candidate.port,
        });
        self.emit(Event::Connecting {
            flow: id,
            candidate: index,
            target: self.config.candidate_label(index).to_owned(),
            attempt,
        });
        // Not an Annex O step: the application asked to export this flow's TLS secrets.
        if self.config.key_log_enabled() {
            self.emit(Event::KeyLogEnabled { flow: id });
        }
    }

    /// A connect or handshake attempt failed (the flow never proved itself). Failover: the
    /// next candidate at once, whatever the reason (a rejected certificate never gets here).
    /// When every candidate of the round failed: stop if each failed for its TLS
    /// configuration, which retrying cannot fix; else an RFC 5626 §4.5 back-off. Either
    /// event lists each candidate's failure.
    fn attempt_failed(&mut self, reason: AttemptFailure) {
        let permanent = reason.is_permanent();
        self.record_attempt_failure(reason);
        let parts = self.take_state().into_parts();
        let attempt_state = parts.state;
        let procedure = self
            .tear_down(parts, Teardown::AttemptFailed { permanent })
            .unwrap_or_else(|| self.new_procedure(RegisterReason::Recovery));
        let count = self.config.candidates().len();
        self.recovery.tried_in_round += 1;
        self.recovery.candidate = (self.recovery.candidate + 1) % count;
        if self.recovery.tried_in_round < count {
            self.open_flow(procedure);
        } else if !self.recovery.round_failures.is_empty()
            && self
                .recovery
                .round_failures
                .iter()
                .all(|f| f.reason.is_permanent())
        {
            let rest = Parts {
                state: attempt_state,
                flow: None,
                procedure: Some(procedure),
            };
            self.stop(rest, FailureReason::Tls, None);
        } else {
            self.recovery.consecutive_failures += 1;
            let candidates = self.take_round_failures();
            self.back_off(Some(procedure), None, candidates);
        }
    }

    /// Notes the current flow's candidate and `reason` for the event that ends the round.
    fn record_attempt_failure(&mut self, reason: AttemptFailure) {
        let Some(flow) = self.state.flow() else {
            return;
        };
        let failure = CandidateFailure {
            candidate: flow.candidate,
            target: self.config.candidates()[flow.candidate].to_string(),
            flow: flow.id,
            reason,
        };
        self.recovery.round_failures.push(failure);
    }

    fn take_round_failures(&mut self) -> Vec<CandidateFailure> {
        std::mem::take(&mut self.recovery.round_failures)
    }

    /// → BackingOff: RFC 5626 §4.5 back-off before the next attempt of `procedure` (a new
    /// procedure of the same identity when none goes on). The base-time is 30 s "if all of
    /// the flows to every URI in the outbound proxy set have failed" and 90 s only while
    /// another flow is still up. imstls keeps one registration flow per UE and backs off only
    /// after closing it, so no flow is up here and the 30 s base applies (a P-CSCF that
    /// answered does not make it 90 s).
    fn back_off(
        &mut self,
        procedure: Option<Procedure>,
        at_least: Option<Duration>,
        candidates: Vec<CandidateFailure>,
    ) {
        let all_flows_failed = self.state.flow().is_none();
        let (low, high) = backoff_window(
            &self.config.backoff(),
            self.recovery.consecutive_failures,
            all_flows_failed,
        );
        let delay = self
            .jitter
            .between(low, high)
            .max(at_least.unwrap_or_default());
        // The retry is a new registration procedure of the same identity.
        let procedure = procedure.unwrap_or_else(|| self.new_procedure(RegisterReason::Recovery));
        self.state = State::BackingOff {
            until: self.now + delay,
            procedure,
        };
        self.emit(Event::BackingOff {
            attempt: self.recovery.consecutive_failures,
            delay,
            candidates,
        });
    }

    /// → Closed: no automatic retry (O.3.1.1 final error, O.3.1.2 certificate, too many
    /// challenges, every candidate's TLS configuration failed). The event lists the round's
    /// failed candidates.
    fn fail_permanently(&mut self, reason: FailureReason, status: Option<u16>) {
        let parts = self.take_state().into_parts();
        self.stop(parts, reason, status);
    }

    /// [`fail_permanently`](Self::fail_permanently) with what is left in `parts`.
    fn stop(&mut self, parts: Parts, reason: FailureReason, status: Option<u16>) {
        self.tear_down(parts, Teardown::Stopped);
        self.state = State::Closed;
        let candidates = self.take_round_failures();
        self.emit(Event::RegistrationFailed {
            status,
            reason,
            retrying: false,
            candidates,
        });
    }

    fn lose_flow_event(&mut self, reason: LossReason) {
        let registered = matches!(self.state, State::Registered { .. });
        self.emit_for_flow(|flow| Event::ConnectionLost {
            flow,
            reason,
            registered,
        });
    }

    /// O.4.1 last sentence: an established flow is gone; register again on a new flow. The
    /// first retry after losing a proven flow is immediate (→ Connecting); otherwise back off
    /// (→ BackingOff, RFC 5626 §4.5). A flow lost while de-registering ends it (→ Idle).
    fn flow_lost(&mut self, reason: LossReason) {
        let Some(flow) = self.state.flow() else {
            return;
        };
        let candidate = flow.candidate;
        let keepalive = self.config.keepalive();
        let proven = !reason.is_overload()
            && flow.registered_at.is_some()
            && (flow.pong_seen
                || (!keepalive.enabled
                    && flow.registered_at.is_some_and(|at| {
                        self.now.saturating_duration_since(at)
                            >= self.config.backoff().base_all_failed
                    })));
        // RFC 8446 §6.1 / RFC 5246 §7.2.1: a close_notify is answered with our own before
        // the write side closes; an overload drops the unsent bytes; any other loss closes
        // without one.
        let end = if matches!(reason, LossReason::ClosedByPeer) {
            FlowEnd::CloseNotify
        } else if reason.is_overload() {
            FlowEnd::DropQueued
        } else {
            FlowEnd::Silent
        };
        warn!("{}: connection lost: {}", flow.id, reason.code());
        self.lose_flow_event(reason);
        match self.state {
            State::Deregistering { .. } => self.finish_deregistration(end),
            State::Registered { .. } if proven => {
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Restart(end));
                self.recovery.consecutive_failures = 0;
                self.recovery.candidate = candidate;
                self.begin_procedure(RegisterReason::Recovery);
            }
            _ => {
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Restart(end));
                self.recovery.candidate = candidate;
                self.recovery.consecutive_failures += 1;
                self.back_off(None, None, Vec::new());
            }
        }
    }
}

impl Ue {
    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        // Each firing removes or moves its own deadline; the bound only guards against a bug.
        for _ in 0..64 {
            match self.next_timer() {
                Some((at, timer)) if at <= self.now => self.fire(timer),
                _ => return,
            }
        }
        warn!("timer loop did not settle");
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut best: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, timer: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        };
        consider(self.state.deadline(), Timer::State);
        if let Some(registration) = self.state.registration() {
            match registration.refresh {
                Refresh::Scheduled(at) | Refresh::InFlight(at) => {
                    consider(Some(at), Timer::Refresh)
                }
                Refresh::Due => {}
            }
            consider(Some(registration.expires_at), Timer::Expiry);
        }
        if let Some(flow) = self.state.flow() {
            if matches!(self.state, State::Registered { .. }) {
                consider(flow.next_ping, Timer::Ping);
            }
            consider(flow.pong_deadline, Timer::Pong);
        }
        best
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::State => self.fire_state_deadline(),
            Timer::Refresh => match &mut self.state {
                // TS 24.229 §5.1.1.4.1: time to refresh; the stack is asked for the REGISTER.
                State::Registered { registration, .. }
                    if matches!(registration.refresh, Refresh::Scheduled(_)) =>
                {
                    registration.refresh = Refresh::Due;
                    registration.challenges = 0;
                    self.emit_for_flow(|flow| Event::RegisterNow {
                        flow,
                        reason: RegisterReason::Refresh,
                    });
                }
                // O.4.3: no answer to the re-REGISTER; the flow seems dead.
                State::Registered { registration, .. }
                    if matches!(registration.refresh, Refresh::InFlight(_)) =>
                {
                    self.flow_lost(LossReason::RefreshTimeout)
                }
                _ => {}
            },
            Timer::Expiry => self.flow_lost(LossReason::RegistrationExpired),
            Timer::Ping => self.send_ping(),
            Timer::Pong => self.flow_lost(LossReason::PongTimeout),
        }
    }

    /// The state's own deadline passed.
    fn fire_state_deadline(&mut self) {
        match self.state {
            // Connecting: the connect timed out (RFC 5626 §4.5 failover).
            State::Procedure {
                step: Step::Connecting,
                ..
            } => {
                self.emit_for_flow(|flow| Event::ConnectFailed {
                    flow,
                    reason: TransportError::TimedOut,
                });
                self.attempt_failed(AttemptFailure::Connect(TransportError::TimedOut));
            }
            // Handshaking: the handshake timed out (RFC 5626 §4.5 failover).
            State::Procedure {
                step: Step::Handshaking,
                ..
            } => {
                let failure = TlsFailure::new(
                    TlsFailureKind::Other("handshake timed out".into()),
                    TlsPhase::Handshake,
                );
                self.emit_for_flow(|flow| Event::TlsFailed {
                    flow,
                    failure: failure.clone(),
                });
                self.attempt_failed(AttemptFailure::Tls(failure));
            }
            // O.3.1.4: no final answer (or no REGISTER from the stack) in time → BackingOff.
            State::Procedure {
                step: Step::AwaitingRegister | Step::Registering,
                ..
            } => {
                let candidates = self.take_round_failures();
                self.emit(Event::RegistrationFailed {
                    status: None,
                    reason: FailureReason::Timeout,
                    retrying: true,
                    candidates,
                });
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Restart(FlowEnd::CloseNotify));
                self.recovery.consecutive_failures += 1;
                self.back_off(None, None, Vec::new());
            }
            // The refresh the de-registration waited for timed out (RFC 3261 §10.2 then
            // allows a new REGISTER).
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            } => self.deregister_after_refresh(),
            // No answer to the de-REGISTER in time: de-registered anyway (RFC 3261 §10.2.2).
            State::Deregistering { .. } => self.finish_deregistration(FlowEnd::CloseNotify),
            // BackingOff → Connecting: the back-off is over (RFC 5626 §4.5); the retry is a
            // new procedure (O.4.1), so the old one's sessions go.
            State::BackingOff { .. } => {
                let parts = self.take_state().into_parts();
                self.tear_down(parts, Teardown::Restart(FlowEnd::Silent));
                self.begin_procedure(RegisterReason::Recovery);
            }
            State::Idle | State::Registered { .. } | State::Closed => {}
        }
    }
}
