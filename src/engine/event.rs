//! What the engine tells the SIP stack: [`Output`]s to act on and [`Event`]s to know about.
//! Every event names the clause that caused it ([`Event::clause`]), which is what the
//! conformance log records.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zeroize::{Zeroize, Zeroizing};

use crate::config::Host;
use crate::sip::FramingError;
use crate::tls::{TlsDetails, TlsFailure};

/// What the engine is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UeState {
    /// No registration wanted: waiting for [`Ue::start_registration`](super::Ue::start_registration).
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
    /// waiting for a new [`Ue::start_registration`](super::Ue::start_registration).
    Closed,
}

/// Identifies one transport flow (one TCP connection + TLS). Inputs for a flow that is no
/// longer current are refused with [`crate::UeError::UnknownFlow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow#{}", self.0)
    }
}

/// One thing for the caller to do, from [`crate::Ue::poll_output`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Open a TCP connection to this candidate, then report
    /// [`connected`](crate::Ue::connected) or [`connect_failed`](crate::Ue::connect_failed).
    /// A host name is resolved by the caller.
    Connect {
        /// The new flow.
        flow: FlowId,
        /// Index into the configured candidates.
        candidate: usize,
        /// Host to connect to.
        host: Host,
        /// TCP port.
        port: u16,
    },
    /// Write these bytes to the flow's socket, in order.
    Transmit {
        /// The flow.
        flow: FlowId,
        /// TLS records.
        data: Vec<u8>,
    },
    /// Close the flow's socket (after writing every earlier `Transmit` for it).
    Close {
        /// The flow.
        flow: FlowId,
    },
    /// Something happened; see [`Event`].
    Event(Event),
    /// Nothing more to do now. Call [`handle_timeout`](crate::Ue::handle_timeout) at this
    /// instant, or earlier if an input arrives. `None`: wait for input.
    Timeout(Option<Instant>),
}

impl Output {
    /// What this output holds in memory, as the queue caps count it: the output itself plus
    /// its payload (TLS records, a received SIP message).
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Output>()
            + match self {
                Self::Transmit { data, .. } => data.len(),
                Self::Event(event) => event.payload_len(),
                _ => 0,
            }
    }
}

/// Why the stack should send a REGISTER now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterReason {
    /// A new registration was started by the stack.
    Initial,
    /// The P-CSCF challenged (401/407); `stale` means O.3.1.3 applies.
    Challenge {
        /// The challenge carried stale=true.
        stale: bool,
    },
    /// The re-registration timer fired (O.4.3, TS 24.229 §5.1.1.4.1).
    Refresh,
    /// The previous flow was lost (O.4.1 last sentence).
    Recovery,
    /// The network changed.
    NetworkChanged,
    /// A TLS 1.2 flow was replaced to get fresh keys.
    Rekey,
    /// The stack asked to de-register: send REGISTER with Expires: 0.
    Deregister,
}

impl RegisterReason {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Challenge { stale: false } => "challenge",
            Self::Challenge { stale: true } => "stale_challenge",
            Self::Refresh => "refresh",
            Self::Recovery => "recovery",
            Self::NetworkChanged => "network_changed",
            Self::Rekey => "rekey",
            Self::Deregister => "deregister",
        }
    }
}

/// How the caller's transport failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Connection refused.
    Refused,
    /// Host or network unreachable.
    Unreachable,
    /// The connect timed out (imstls also times it out itself).
    TimedOut,
    /// Reset by the peer.
    Reset,
    /// Any other error, described.
    Other(String),
    /// The P-CSCF's name did not resolve to any address.
    Unresolved,
}

impl TransportError {
    /// Stable code: `refused`, `unreachable`, `timed_out`, `reset`, `other`, `unresolved`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::TimedOut => "timed_out",
            Self::Reset => "reset",
            Self::Other(_) => "other",
            Self::Unresolved => "unresolved",
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::Unreachable => f.write_str("unreachable"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Reset => f.write_str("connection reset"),
            Self::Other(why) => f.write_str(why),
            Self::Unresolved => f.write_str("name not resolved"),
        }
    }
}

/// How the caller saw the transport end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportClosure {
    /// End of stream (FIN).
    Eof,
    /// Reset (RST).
    Reset,
    /// A socket error.
    Error(String),
}

/// Why a flow was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossReason {
    /// The P-CSCF closed the connection after a TLS close_notify.
    ClosedByPeer,
    /// The connection ended without close_notify (FIN only).
    Eof,
    /// The connection was reset.
    Reset,
    /// A socket error.
    IoError(String),
    /// A TLS failure on an established flow (e.g. bad_record_mac, a fatal alert received).
    Tls(TlsFailure),
    /// The SIP stream could not be framed.
    Framing(FramingError),
    /// No pong within the pong timeout (RFC 5626 §4.4.1).
    PongTimeout,
    /// No answer to a re-REGISTER (O.4.3: the flow seems dead).
    RefreshTimeout,
    /// The registration expired without a successful refresh.
    RegistrationExpired,
    /// The application reported a network change.
    NetworkChanged,
    /// A queue reached its cap ([`QueueLimits`](crate::QueueLimits)): the caller did not
    /// drain what the P-CSCF's input produced. The flow is failed and recovery backs off.
    QueueOverflow {
        /// Which queue.
        queue: Queue,
        /// The bytes it held.
        queued: usize,
    },
    /// The P-CSCF does not read: the TLS bytes waiting for its socket reached the cap
    /// ([`QueueLimits::driver_outgoing_bytes`](crate::QueueLimits)). The flow is failed and
    /// recovery backs off.
    PeerNotReading {
        /// The bytes waiting.
        queued: usize,
    },
}

/// A capped queue ([`LossReason::QueueOverflow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The engine's output queue ([`crate::Ue::poll_output`]).
    EngineOutput,
    /// The driver's event queue ([`crate::driver::Driver::poll_event`]).
    DriverEvents,
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EngineOutput => f.write_str("engine output queue"),
            Self::DriverEvents => f.write_str("driver event queue"),
        }
    }
}

impl LossReason {
    /// True for a loss that imstls declared because a queue reached its cap. Such a flow
    /// never counts as proven: recovery backs off instead of reconnecting at once, so a
    /// flooding P-CSCF cannot cause a reconnect storm.
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            Self::QueueOverflow { .. } | Self::PeerNotReading { .. }
        )
    }

    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ClosedByPeer => "closed_by_peer",
            Self::Eof => "eof",
            Self::Reset => "reset",
            Self::IoError(_) => "io_error",
            Self::Tls(_) => "tls",
            Self::Framing(_) => "framing",
            Self::PongTimeout => "pong_timeout",
            Self::RefreshTimeout => "refresh_timeout",
            Self::RegistrationExpired => "registration_expired",
            Self::NetworkChanged => "network_changed",
            Self::QueueOverflow { .. } => "queue_overflow",
            Self::PeerNotReading { .. } => "peer_not_reading",
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClosedByPeer => f.write_str("the P-CSCF closed the connection (close_notify)"),
            Self::Eof => f.write_str("the connection closed without close_notify"),
            Self::Reset => f.write_str("the connection was reset"),
            Self::IoError(e) => write!(f, "socket error: {e}"),
            Self::Tls(t) => write!(f, "{t}"),
            Self::Framing(e) => write!(f, "SIP framing error: {e}"),
            Self::PongTimeout => f.write_str("no keep-alive pong"),
            Self::RefreshTimeout => f.write_str("no answer to the re-REGISTER"),
            Self::RegistrationExpired => f.write_str("the registration expired"),
            Self::NetworkChanged => f.write_str("the network changed"),
            Self::QueueOverflow { queue, queued } => {
                write!(f, "the {queue} reached its cap ({queued} bytes held)")
            }
            Self::PeerNotReading { queued } => write!(
                f,
                "the P-CSCF does not read: {queued} bytes wait for its socket"
            ),
        }
    }
}

/// Why a registration procedure failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The registrar answered with a final error status (O.3.1.1).
    Rejected,
    /// No final answer in time (O.3.1.4).
    Timeout,
    /// More challenges than `max_challenges`.
    TooManyChallenges,
    /// The P-CSCF certificate was rejected (O.3.1.2).
    Certificate,
    /// Every candidate was tried and each failed for its TLS configuration (version,
    /// suites, groups, client-certificate policy): retrying cannot fix it.
    Tls,
}

impl FailureReason {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::TooManyChallenges => "too_many_challenges",
            Self::Certificate => "certificate",
            Self::Tls => "tls",
        }
    }
}

/// Why an attempt on one candidate failed before its flow proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// The TCP connection could not be made.
    Connect(TransportError),
    /// The TLS handshake failed, or the flow failed before any data arrived.
    Tls(TlsFailure),
}

impl AttemptFailure {
    /// Stable code: `connect_` + [`TransportError::code`], the certificate failure's code
    /// for a rejected certificate, else [`crate::TlsFailureKind::code`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect(TransportError::Refused) => "connect_refused",
            Self::Connect(TransportError::Unreachable) => "connect_unreachable",
            Self::Connect(TransportError::TimedOut) => "connect_timed_out",
            Self::Connect(TransportError::Reset) => "connect_reset",
            Self::Connect(TransportError::Other(_)) => "connect_other",
            Self::Connect(TransportError::Unresolved) => "connect_unresolved",
            Self::Tls(failure) => failure
                .certificate()
                .map_or(failure.kind.code(), |c| c.code()),
        }
    }

    /// True for a failure about the P-CSCF's TLS configuration (no common version, suite or
    /// group; a client certificate demanded under the abort policy) or its certificate:
    /// retrying the same candidate cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Tls(failure) if failure.is_permanent())
    }
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(reason) => write!(f, "connect failed: {reason}"),
            Self::Tls(failure) => write!(f, "{failure}"),
        }
    }
}

/// One candidate's failed attempt in a round over the candidates (failover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateFailure {
    /// Index into the configured candidates.
    pub candidate: usize,
    /// `host:port` of the candidate.
    pub target: String,
    /// The flow of the attempt.
    pub flow: FlowId,
    /// Why it failed.
    pub reason: AttemptFailure,
}

impl fmt::Display for CandidateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate {} ({}): {}",
            self.candidate, self.target, self.reason
        )
    }
}

/// What a superseded (or abandoned) registration procedure left behind, all of it removed
/// (O.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// The state the procedure was in.
    pub state: UeState,
    /// The flow that was closed, if any.
    pub flow: Option<FlowId>,
    /// TLS sessions and tickets created by the procedure and purged.
    pub purged_sessions: usize,
    /// Queued bytes (outgoing and partially received) dropped.
    pub dropped_bytes: usize,
}

/// What a REGISTER that went out does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterKind {
    /// Part of a registration procedure (initial, after a challenge, or after a loss).
    Register,
    /// Refreshes an existing registration on its flow (O.4.3).
    Refresh,
    /// Removes the registration (Expires: 0).
    Deregister,
}

impl RegisterKind {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Refresh => "refresh",
            Self::Deregister => "deregister",
        }
    }
}

/// How keys were refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyMethod {
    /// TLS 1.3 KeyUpdate on the same flow.
    KeyUpdate,
    /// TLS 1.2: a new flow and a new registration.
    NewFlow,
}

/// Something the SIP stack should know. Each names its clause ([`Event::clause`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A new flow is being opened.
    Connecting {
        /// The flow.
        flow: FlowId,
        /// Candidate index.
        candidate: usize,
        /// `host:port`.
        target: String,
        /// 1 for the first attempt of a procedure, then counting.
        attempt: u32,
    },
    /// The TCP connection could not be made.
    ConnectFailed {
        /// The flow.
        flow: FlowId,
        /// Why.
        reason: TransportError,
    },
    /// TLS is up.
    TlsEstablished {
        /// The flow.
        flow: FlowId,
        /// Version, suite, group, resumption, certificate.
        details: TlsDetails,
    },
    /// The P-CSCF sent a CertificateRequest (O.2.1 says it shall not). No certificate was
    /// sent; `aborted` tells whether the policy ended the handshake.
    ClientCertificateRequested {
        /// The flow.
        flow: FlowId,
        /// The handshake was aborted.
        aborted: bool,
    },
    /// The P-CSCF certificate was rejected; the alert in `failure.alert_sent` was written
    /// before the flow was closed (O.3.1.2).
    CertificateRejected {
        /// The flow.
        flow: FlowId,
        /// Reason and alert.
        failure: TlsFailure,
    },
    /// The TLS handshake failed for another reason.
    TlsFailed {
        /// The flow.
        flow: FlowId,
        /// Reason and alerts.
        failure: TlsFailure,
    },
    /// Send a REGISTER on this flow now (with [`crate::Ue::send_sip`]).
    RegisterNow {
        /// The flow.
        flow: FlowId,
        /// Why.
        reason: RegisterReason,
    },
    /// A REGISTER went out.
    Registering {
        /// The flow.
        flow: FlowId,
        /// Registration, refresh or de-registration.
        kind: RegisterKind,
    },
    /// The stack reported a 401/407; the next REGISTER goes on the same flow.
    Challenged {
        /// The flow.
        flow: FlowId,
        /// stale=true (O.3.1.3).
        stale: bool,
    },
    /// Registered.
    Registered {
        /// The flow.
        flow: FlowId,
        /// Granted expiry.
        expires: Duration,
        /// When the refresh will be due, from now.
        refresh_in: Duration,
    },
    /// The flow was lost.
    ConnectionLost {
        /// The flow.
        flow: FlowId,
        /// Why.
        reason: LossReason,
        /// The UE was registered on it.
        registered: bool,
    },
    /// Waiting before the next attempt (RFC 5626 §4.5).
    BackingOff {
        /// Consecutive failures so far.
        attempt: u32,
        /// The wait.
        delay: Duration,
        /// When every candidate failed in this round: each candidate's failure, in the order
        /// tried. Empty when the back-off follows a lost flow or a registration error.
        candidates: Vec<CandidateFailure>,
    },
    /// An incomplete registration procedure was torn down (O.4.1).
    Superseded {
        /// What was removed.
        abandoned: Abandoned,
    },
    /// The registration procedure failed.
    RegistrationFailed {
        /// The SIP status, when the registrar gave one.
        status: Option<u16>,
        /// Why.
        reason: FailureReason,
        /// imstls will retry by itself (after a back-off).
        retrying: bool,
        /// The attempts of this round over the candidates that failed, in the order tried,
        /// each with its reason. For [`FailureReason::Tls`] every candidate (each failed for
        /// its TLS configuration); for [`FailureReason::Certificate`] the earlier ones and the
        /// rejected one last; for other reasons the candidates that failed before the one
        /// that answered (usually none).
        candidates: Vec<CandidateFailure>,
    },
    /// De-registered; the flow is closed.
    Deregistered,
    /// A SIP message arrived (responses, and terminating requests on the registered flow).
    SipReceived {
        /// The flow.
        flow: FlowId,
        /// The whole message; zeroized when dropped.
        message: Zeroizing<Vec<u8>>,
    },
    /// A CRLF keep-alive ping was sent.
    KeepAliveSent {
        /// The flow.
        flow: FlowId,
    },
    /// The pong arrived.
    PongReceived {
        /// The flow.
        flow: FlowId,
    },
    /// The P-CSCF pinged and imstls answered with a pong: one per read, however many pings
    /// the read held (RFC 5626 §5.4; more would amplify a flood).
    PingAnswered {
        /// The flow.
        flow: FlowId,
    },
    /// Keys were refreshed.
    Rekeyed {
        /// The flow (the new one for [`RekeyMethod::NewFlow`]).
        flow: FlowId,
        /// How.
        method: RekeyMethod,
    },
    /// A warning: the TLS secrets of this flow go to the key log the application configured
    /// ([`UeConfigBuilder::key_log_file`](crate::UeConfigBuilder::key_log_file)), so anyone
    /// holding it can decrypt the flow. Emitted right after [`Event::Connecting`].
    KeyLogEnabled {
        /// The flow.
        flow: FlowId,
    },
}

impl Event {
    /// The flow the event is about, if any.
    pub fn flow(&self) -> Option<FlowId> {
        match self {
            Self::Connecting { flow, .. }
            | Self::ConnectFailed { flow, .. }
            | Self::TlsEstablished { flow, .. }
            | Self::ClientCertificateRequested { flow, .. }
            | Self::CertificateRejected { flow, .. }
            | Self::TlsFailed { flow, .. }
            | Self::RegisterNow { flow, .. }
            | Self::Registering { flow, .. }
            | Self::Challenged { flow, .. }
            | Self::Registered { flow, .. }
            | Self::ConnectionLost { flow, .. }
            | Self::SipReceived { flow, .. }
            | Self::KeepAliveSent { flow }
            | Self::PongReceived { flow }
            | Self::PingAnswered { flow }
            | Self::Rekeyed { flow, .. }
            | Self::KeyLogEnabled { flow } => Some(*flow),
            Self::Superseded { abandoned } => abandoned.flow,
            Self::BackingOff { .. } | Self::RegistrationFailed { .. } | Self::Deregistered => None,
        }
    }

    /// Stable snake_case name (the `event` field of the CLI's JSON lines).
    pub fn code(&self) -> &'static str {
        self.kind().code
    }

    /// The clause of TS 33.203 Annex O (or the RFC / TS) that this event carries out.
    pub fn clause(&self) -> &'static str {
        self.kind().clause
    }

    /// Code and clause as one `'static` pair, so the conformance log keeps one pointer per
    /// entry.
    pub(crate) fn kind(&self) -> &'static EventKind {
        const fn k(code: &'static str, clause: &'static str) -> EventKind {
            EventKind { code, clause }
        }
        match self {
            Self::Connecting { .. } => {
                &const { k("connecting", "TS 33.203 O.2.1 (Ports); RFC 5626 §4.2") }
            }
            Self::ConnectFailed { .. } => &const { k("connect_failed", "RFC 5626 §4.5") },
            Self::TlsEstablished { .. } => &const { k("tls_established", "TS 33.203 O.2.1") },
            Self::ClientCertificateRequested { .. } => {
                &const {
                    k(
                        "client_certificate_requested",
                        "TS 33.203 O.2.1 (Authentication of the UE)",
                    )
                }
            }
            Self::CertificateRejected { .. } => {
                &const { k("certificate_rejected", "TS 33.203 O.3.1.2") }
            }
            Self::TlsFailed { .. } => &const { k("tls_failed", "TS 33.203 O.2.1; RFC 8996") },
            Self::RegisterNow { reason, .. } => match reason {
                RegisterReason::Initial => &const { k("register_now", "TS 33.203 O.4.2") },
                RegisterReason::Challenge { stale: true } => {
                    &const { k("register_now", "TS 33.203 O.3.1.3") }
                }
                RegisterReason::Challenge { stale: false } => {
                    &const { k("register_now", "TS 33.203 Annex N") }
                }
                RegisterReason::Refresh => {
                    &const { k("register_now", "TS 33.203 O.4.3; TS 24.229 §5.1.1.4.1") }
                }
                RegisterReason::Recovery
                | RegisterReason::NetworkChanged
                | RegisterReason::Rekey => &const { k("register_now", "TS 33.203 O.4.1") },
                RegisterReason::Deregister => &const { k("register_now", "TS 24.229 §5.1.1.6") },
            },
            Self::Registering { .. } => &const { k("registering", "TS 33.203 O.4.2") },
            Self::Challenged { stale: true, .. } => &const { k("challenged", "TS 33.203 O.3.1.3") },
            Self::Challenged { stale: false, .. } => {
                &const { k("challenged", "TS 33.203 Annex N") }
            }
            Self::Registered { .. } => &const { k("registered", "TS 24.229 §5.1.1.4.1") },
            Self::ConnectionLost { .. } => &const { k("connection_lost", "TS 33.203 O.4.1") },
            Self::BackingOff { .. } => &const { k("backoff", "RFC 5626 §4.5") },
            Self::Superseded { .. } => &const { k("superseded", "TS 33.203 O.4.1") },
            Self::RegistrationFailed { reason, .. } => match reason {
                FailureReason::Rejected | FailureReason::TooManyChallenges => {
                    &const { k("registration_failed", "TS 33.203 O.3.1.1") }
                }
                FailureReason::Timeout => &const { k("registration_failed", "TS 33.203 O.3.1.4") },
                FailureReason::Certificate => {
                    &const { k("registration_failed", "TS 33.203 O.3.1.2") }
                }
                FailureReason::Tls => &const { k("registration_failed", "TS 33.203 O.2.1") },
            },
            Self::Deregistered => &const { k("deregistered", "TS 24.229 §5.1.1.6") },
            Self::SipReceived { .. } => {
                &const {
                    k(
                        "sip_received",
                        "TS 33.203 O.2.1 (Forwarding requests); RFC 5626 §5",
                    )
                }
            }
            Self::KeepAliveSent { .. } => &const { k("keepalive_sent", "RFC 5626 §4.4.1") },
            Self::PongReceived { .. } => &const { k("pong_received", "RFC 5626 §4.4.1") },
            Self::PingAnswered { .. } => &const { k("ping_answered", "RFC 5626 §4.4.1") },
            Self::Rekeyed {
                method: RekeyMethod::KeyUpdate,
                ..
            } => &const { k("rekeyed", "TS 33.203 O.4.1; RFC 8446 §4.6.3") },
            Self::Rekeyed {
                method: RekeyMethod::NewFlow,
                ..
            } => &const { k("rekeyed", "TS 33.203 O.4.1") },
            Self::KeyLogEnabled { .. } => {
                &const {
                    k(
                        "key_log_enabled",
                        "NSS key log: debugging, outside TS 33.203",
                    )
                }
            }
        }
    }
}

/// An event's stable code and clause (see [`Event::code`], [`Event::clause`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EventKind {
    pub(crate) code: &'static str,
    pub(crate) clause: &'static str,
}

impl Event {
    /// What this event holds in memory, as the queue caps count it.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Event>() + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::SipReceived { message, .. } => message.len(),
            _ => 0,
        }
    }
}

impl fmt::Display for Event {
    /// One line without personal data (no IMPI/IMPU, no SIP content).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting {
                flow,
                target,
                attempt,
                ..
            } => write!(f, "{flow}: connecting to {target} (attempt {attempt})"),
            Self::ConnectFailed { flow, reason } => write!(f, "{flow}: connect failed: {reason}"),
            Self::TlsEstablished { flow, details } => write!(
                f,
                "{flow}: {} {} {}{}",
                details.version,
                details.cipher_suite,
                details.key_exchange_group.unwrap_or("-"),
                if details.resumed { " (resumed)" } else { "" }
            ),
            Self::ClientCertificateRequested { flow, aborted } => write!(
                f,
                "{flow}: P-CSCF requested a client certificate; {}",
                if *aborted { "aborted" } else { "sent none" }
            ),
            Self::CertificateRejected { flow, failure } | Self::TlsFailed { flow, failure } => {
                write!(f, "{flow}: {failure}")
            }
            Self::RegisterNow { flow, reason } => {
                write!(f, "{flow}: send REGISTER ({})", reason.code())
            }
            Self::Registering { flow, kind } => {
                write!(f, "{flow}: REGISTER sent ({})", kind.code())
            }
            Self::Challenged { flow, stale } => write!(
                f,
                "{flow}: challenged{}",
                if *stale { " (stale nonce)" } else { "" }
            ),
            Self::Registered {
                flow,
                expires,
                refresh_in,
            } => write!(
                f,
                "{flow}: registered for {} s, refresh in {} s",
                expires.as_secs(),
                refresh_in.as_secs()
            ),
            Self::ConnectionLost { flow, reason, .. } => write!(f, "{flow}: lost: {reason}"),
            Self::BackingOff {
                attempt,
                delay,
                candidates,
            } => {
                write!(
                    f,
                    "backing off {} ms after {attempt} consecutive failure(s)",
                    delay.as_millis()
                )?;
                write_candidates(f, candidates)
            }
            Self::Superseded { abandoned } => write!(
                f,
                "superseded the registration in {:?}: {} session(s) purged, {} byte(s) dropped",
                abandoned.state, abandoned.purged_sessions, abandoned.dropped_bytes
            ),
            Self::RegistrationFailed {
                status,
                reason,
                retrying,
                candidates,
            } => {
                write!(
                    f,
                    "registration failed ({}{}){}",
                    reason.code(),
                    status.map(|s| format!(", status {s}")).unwrap_or_default(),
                    if *retrying { ", will retry" } else { "" }
                )?;
                write_candidates(f, candidates)
            }
            Self::Deregistered => f.write_str("de-registered"),
            Self::SipReceived { flow, message } => {
                write!(f, "{flow}: SIP message of {} bytes", message.len())
            }
            Self::KeepAliveSent { flow } => write!(f, "{flow}: ping"),
            Self::PongReceived { flow } => write!(f, "{flow}: pong"),
            Self::PingAnswered { flow } => write!(f, "{flow}: answered a ping"),
            Self::Rekeyed { flow, method } => write!(f, "{flow}: rekeyed ({method:?})"),
            Self::KeyLogEnabled { flow } => write!(
                f,
                "{flow}: WARNING: TLS secrets are written to the key log; the flow can be decrypted"
            ),
        }
    }
}

/// `; candidate 0 (host:port): reason; candidate 1 ...` (no personal data).
fn write_candidates(f: &mut fmt::Formatter<'_>, candidates: &[CandidateFailure]) -> fmt::Result {
    for failure in candidates {
        write!(f, "; {failure}")?;
    }
    Ok(())
}

/// A conformance-log entry: what happened, when, on which flow and under which clause. Kept
/// compact (no formatted text) so that a long-lived UE's log costs little; the full event went
/// to the caller through [`crate::Ue::poll_output`]. No personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConformanceEntry {
    /// When.
    pub at: Instant,
    /// [`Event::code`].
    pub event: &'static str,
    /// [`Event::clause`].
    pub clause: &'static str,
    /// [`Event::flow`].
    pub flow: Option<FlowId>,
}

/// The binding the P-CSCF keeps for this UE (O.2.2), for diagnostics. Contains personal
/// data (IMPI, IMPUs): do not log it. Its `Debug` output leaves them out, and they are
/// zeroized when the binding is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    /// The flow.
    pub flow: FlowId,
    /// `host:port` of the candidate.
    pub pcscf: String,
    /// Local address as reported by the caller.
    pub local_addr: Option<SocketAddr>,
    /// Remote address as reported by the caller.
    pub remote_addr: Option<SocketAddr>,
    /// The private identity.
    pub impi: String,
    /// The public identities.
    pub impus: Vec<String>,
    /// TLS parameters.
    pub tls: TlsDetails,
    /// Registered on this flow.
    pub registered: bool,
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data stays out of debug output, as for `Identity`.
        f.debug_struct("Binding")
            .field("flow", &self.flow)
            .field("pcscf", &self.pcscf)
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("impi", &"<redacted>")
            .field("impus", &self.impus.len())
            .field("tls", &self.tls)
            .field("registered", &self.registered)
            .finish()
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        self.impi.zeroize();
        for impu in &mut self.impus {
            impu.zeroize();
        }
    }
}
