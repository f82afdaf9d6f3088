//! The engine's states and the data each one holds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CandidateFailure, FlowId, RegisterReason, UeState};
use crate::sip::SipFramer;
use crate::tls::session::StoreMark;
use crate::tls::TlsFlow;

/// The engine's state. Each variant holds exactly what it needs and nothing else, so the
/// types say what the old flat enum with `Option`s beside it needed runtime checks for: a
/// flow exists iff a procedure step, `Registered` or `Deregistering` holds it; a
/// registration exists iff `Registered`; an incomplete procedure exists iff a procedure step
/// or `BackingOff` holds it (O.4.1: at most one). Transitions move the data on with
/// `std::mem::replace`; a teardown takes the whole state ([`State::into_parts`]).
#[derive(Debug)]
pub(super) enum State {
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
pub(super) enum Step {
    Connecting,
    Handshaking,
    AwaitingRegister,
    Registering,
}

/// Where a de-registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deregistration {
    /// A refresh REGISTER was still unanswered when the app asked to de-register, so the
    /// de-REGISTER waits for its final answer or its timeout (RFC 3261 §10.2).
    AfterRefresh,
    /// The stack was asked for the de-REGISTER.
    Due,
    /// The de-REGISTER is out.
    Sent,
}

/// What a state held, taken out of it for a teardown.
pub(super) struct Parts {
    /// The state they were held in (what [`Event::Superseded`](super::Event::Superseded)
    /// reports).
    pub(super) state: UeState,
    pub(super) flow: Option<Flow>,
    pub(super) procedure: Option<Procedure>,
}

impl State {
    pub(super) fn public(&self) -> UeState {
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

    pub(super) fn is_step(&self, wanted: Step) -> bool {
        matches!(self, State::Procedure { step, .. } if *step == wanted)
    }

    pub(super) fn flow(&self) -> Option<&Flow> {
        match self {
            State::Procedure { flow, .. }
            | State::Registered { flow, .. }
            | State::Deregistering { flow, .. } => Some(flow),
            State::Idle | State::BackingOff { .. } | State::Closed => None,
        }
    }

    pub(super) fn flow_mut(&mut self) -> Option<&mut Flow> {
        match self {
            State::Procedure { flow, .. }
            | State::Registered { flow, .. }
            | State::Deregistering { flow, .. } => Some(flow),
            State::Idle | State::BackingOff { .. } | State::Closed => None,
        }
    }

    pub(super) fn procedure(&self) -> Option<&Procedure> {
        match self {
            State::Procedure { procedure, .. } | State::BackingOff { procedure, .. } => {
                Some(procedure)
            }
            _ => None,
        }
    }

    pub(super) fn registration(&self) -> Option<&Registration> {
        match self {
            State::Registered { registration, .. } => Some(registration),
            _ => None,
        }
    }

    /// The deadline of the state itself (not of its refresh or keep-alive timers).
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            State::Procedure { deadline, .. } | State::Deregistering { deadline, .. } => {
                Some(*deadline)
            }
            State::BackingOff { until, .. } => Some(*until),
            State::Idle | State::Registered { .. } | State::Closed => None,
        }
    }

    /// Everything the state holds but its registration, which ends with it.
    pub(super) fn into_parts(self) -> Parts {
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
pub(super) struct Procedure {
    /// Sessions stored since this mark belong to the procedure.
    pub(super) mark: StoreMark,
    pub(super) challenges: u32,
    pub(super) reason: RegisterReason,
    pub(super) attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    Scheduled(Instant),
    /// The stack was told to refresh; the registration expiry bounds the wait.
    Due,
    /// A refresh REGISTER is out; the deadline is its Timer F.
    InFlight(Instant),
}

#[derive(Debug)]
pub(super) struct Registration {
    pub(super) expires_at: Instant,
    pub(super) refresh: Refresh,
    pub(super) challenges: u32,
}

/// RFC 5626 §4.5 bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Recovery {
    pub(super) consecutive_failures: u32,
    pub(super) candidate: usize,
    pub(super) tried_in_round: usize,
    /// Each failed attempt of this round, for the event that ends the round (failover).
    pub(super) round_failures: Vec<CandidateFailure>,
}

pub(super) struct Flow {
    pub(super) id: FlowId,
    pub(super) candidate: usize,
    /// None until the caller's TCP connect succeeded. Boxed: the state moves on every
    /// transition, and rustls's connection is most of its size.
    pub(super) tls: Option<Box<TlsFlow>>,
    pub(super) framer: SipFramer,
    pub(super) local: Option<SocketAddr>,
    pub(super) remote: Option<SocketAddr>,
    pub(super) next_ping: Option<Instant>,
    pub(super) pong_deadline: Option<Instant>,
    pub(super) flow_timer: Option<Duration>,
    pub(super) pong_seen: bool,
    pub(super) registered_at: Option<Instant>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("id", &self.id)
            .field("candidate", &self.candidate)
            .finish_non_exhaustive()
    }
}
