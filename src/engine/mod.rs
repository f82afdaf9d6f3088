//! The sans-IO UE engine: the registration state machine of TS 33.203 Annex O.
//!
//! Inputs are method calls that take the caller's monotonic `now`; outputs are pulled with
//! [`Ue::poll_output`] until it returns [`Output::Timeout`]. No socket, thread, clock or
//! lock lives in here.
//!
//! States are named for what they wait for. Invariants (checked after every step by the
//! model test, see [`Ue::check_invariants`]):
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

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Connecting {
        deadline: Instant,
    },
    Handshaking {
        deadline: Instant,
    },
    AwaitingRegister {
        deadline: Instant,
    },
    Registering {
        deadline: Instant,
    },
    Registered,
    /// `after_refresh`: a refresh REGISTER was still unanswered when the app asked to
    /// de-register, so the de-REGISTER waits for its final answer or its timeout (RFC 3261
    /// §10.2); `sent`: the de-REGISTER is out.
    Deregistering {
        deadline: Instant,
        sent: bool,
        after_refresh: bool,
    },
    BackingOff {
        until: Instant,
    },
    Closed,
}

impl State {
    fn public(&self) -> UeState {
        match self {
            State::Idle => UeState::Idle,
            State::Connecting { .. } => UeState::Connecting,
            State::Handshaking { .. } => UeState::Handshaking,
            State::AwaitingRegister { .. } => UeState::AwaitingRegister,
            State::Registering { .. } => UeState::Registering,
            State::Registered => UeState::Registered,
            State::Deregistering { .. } => UeState::Deregistering,
            State::BackingOff { .. } => UeState::BackingOff,
            State::Closed => UeState::Closed,
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
    flow: Option<Flow>,
    identity: Option<Identity>,
    procedure: Option<Procedure>,
    registration: Option<Registration>,
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
            .field("flow", &self.flow.as_ref().map(|fl| fl.id))
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
            flow: None,
            identity: None,
            procedure: None,
            registration: None,
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
        self.flow.as_ref().map(|f| f.id)
    }

    /// The O.2.2 binding (addresses, identities, TLS parameters) once TLS is up.
    pub fn binding(&self) -> Option<Binding> {
        let flow = self.flow.as_ref()?;
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
            registered: matches!(self.state, State::Registered),
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
        self.procedure.is_some()
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

    // ----- stack inputs -----------------------------------------------------------------

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
        if let Some(abandoned) = self.abandon() {
            info!(
                "superseding the current registration ({:?})",
                abandoned.state
            );
            self.emit(Event::Superseded { abandoned });
        }
        if !same_identity {
            self.forget_sessions();
        }
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
        let flow_id = self.flow.as_ref().map(|f| f.id);
        match self.state {
            State::AwaitingRegister { .. } if is_register => {
                self.transmit_plaintext(message, "send_sip")?;
                self.state = State::Registering {
                    deadline: now + timeout,
                };
                self.emit_for_flow(|flow| Event::Registering {
                    flow,
                    kind: RegisterKind::Register,
                });
            }
            State::AwaitingRegister { .. } => return Err(UeError::RegisterFirst),
            State::Registering { .. } if is_register => return Err(UeError::RegisterInFlight),
            State::Registering { .. } => return Err(UeError::RegisterFirst),
            State::Registered if is_register => {
                let registration = self
                    .registration
                    .as_mut()
                    .expect("Registered has a registration");
                if matches!(registration.refresh, Refresh::InFlight(_)) {
                    return Err(UeError::RegisterInFlight);
                }
                self.transmit_plaintext(message, "send_sip")?;
                if let Some(registration) = self.registration.as_mut() {
                    registration.refresh = Refresh::InFlight(now + timeout);
                }
                if let Some(flow) = flow_id {
                    self.emit(Event::Registering {
                        flow,
                        kind: RegisterKind::Refresh,
                    });
                }
            }
            State::Registered => self.transmit_plaintext(message, "send_sip")?,
            // RFC 3261 §10.2: no new REGISTER before the previous one is answered.
            State::Deregistering {
                after_refresh: true,
                ..
            } if is_register => return Err(UeError::RegisterInFlight),
            State::Deregistering { sent: false, .. } if is_register => {
                self.transmit_plaintext(message, "send_sip")?;
                self.state = State::Deregistering {
                    deadline: now + timeout,
                    sent: true,
                    after_refresh: false,
                };
                self.emit_for_flow(|flow| Event::Registering {
                    flow,
                    kind: RegisterKind::Deregister,
                });
            }
            State::Deregistering { .. } if is_register => return Err(UeError::RegisterInFlight),
            State::Deregistering { .. } => self.transmit_plaintext(message, "send_sip")?,
            state => {
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
        match self.state {
            State::Registering { .. } => {
                let procedure = self
                    .procedure
                    .as_mut()
                    .expect("Registering has a procedure");
                procedure.challenges += 1;
                if procedure.challenges > max {
                    self.fail_permanently(FailureReason::TooManyChallenges, Some(401));
                    return Ok(());
                }
                let reason = RegisterReason::Challenge { stale };
                self.state = State::AwaitingRegister {
                    deadline: now + timeout,
                };
                self.emit_for_flow(|flow| Event::Challenged { flow, stale });
                self.emit_for_flow(|flow| Event::RegisterNow { flow, reason });
            }
            State::Registered
                if matches!(
                    self.registration.as_ref().map(|r| r.refresh),
                    Some(Refresh::InFlight(_))
                ) =>
            {
                let registration = self.registration.as_mut().expect("checked above");
                registration.challenges += 1;
                if registration.challenges > max {
                    self.fail_permanently(FailureReason::TooManyChallenges, Some(401));
                    return Ok(());
                }
                registration.refresh = Refresh::Due;
                let reason = RegisterReason::Challenge { stale };
                self.emit_for_flow(|flow| Event::Challenged { flow, stale });
                self.emit_for_flow(|flow| Event::RegisterNow { flow, reason });
            }
            // The refresh the de-registration waited for is answered: de-register now.
            State::Deregistering {
                after_refresh: true,
                ..
            } => self.deregister_now(),
            // A late challenge to a refresh that the de-registration overtook.
            State::Deregistering { sent: false, .. } => {}
            State::Deregistering { sent: true, .. } => {
                self.state = State::Deregistering {
                    deadline: now + timeout,
                    sent: false,
                    after_refresh: false,
                };
                let reason = RegisterReason::Challenge { stale };
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
                after_refresh: true,
                ..
            } => {
                self.deregister_now();
                return Ok(());
            }
            State::Deregistering { sent: true, .. } => {
                self.finish_deregistration();
                return Ok(());
            }
            // A late answer to a refresh that the de-registration overtook.
            State::Deregistering { sent: false, .. } => return Ok(()),
            State::Registering { .. } => {}
            State::Registered
                if matches!(
                    self.registration.as_ref().map(|r| r.refresh),
                    Some(Refresh::InFlight(_))
                ) => {}
            state => {
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
        // The procedure is complete: its sessions may now be resumed (O.4.1 only removes
        // the data of incomplete registrations).
        self.procedure = None;
        let refresh_in = refresh_delay(expires);
        self.registration = Some(Registration {
            expires_at: now + expires,
            refresh: Refresh::Scheduled(now + refresh_in),
            challenges: 0,
        });
        self.state = State::Registered;
        let keepalive = self.config.keepalive();
        let flow = self.flow.as_mut().expect("Registered has a flow");
        flow.flow_timer = flow_timer;
        let first_registration = flow.registered_at.is_none();
        if first_registration {
            flow.registered_at = Some(now);
        }
        let id = flow.id;
        self.emit(Event::Registered {
            flow: id,
            expires,
            refresh_in,
        });
        if keepalive.enabled && first_registration {
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
                after_refresh: true,
                ..
            } => {
                self.deregister_now();
                return Ok(());
            }
            State::Deregistering { .. } => {
                self.finish_deregistration();
                return Ok(());
            }
            State::Registering { .. } | State::AwaitingRegister { .. } | State::Registered => {}
            state => {
                return Err(UeError::WrongState {
                    operation: "registration_failed",
                    state: state.public(),
                })
            }
        }
        self.purge_flow_sessions();
        if matches!(status, 408 | 480 | 500 | 503 | 504) {
            let candidates = self.take_round_failures();
            self.emit(Event::RegistrationFailed {
                status: Some(status),
                reason: FailureReason::Rejected,
                retrying: true,
                candidates,
            });
            self.close_flow(true);
            self.registration = None;
            self.end_procedure_with_purge();
            self.recovery.consecutive_failures += 1;
            self.back_off(retry_after, Vec::new());
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
        match self.state {
            State::Registered => {
                let refresh_in_flight = match self.registration.as_ref().map(|r| r.refresh) {
                    Some(Refresh::InFlight(deadline)) => Some(deadline),
                    _ => None,
                };
                self.registration = None;
                if let Some(flow) = self.flow.as_mut() {
                    flow.next_ping = None;
                    flow.pong_deadline = None;
                }
                match refresh_in_flight {
                    // RFC 3261 §10.2: the de-REGISTER waits for the refresh's final answer
                    // or its Timer F.
                    Some(deadline) => {
                        self.state = State::Deregistering {
                            deadline,
                            sent: false,
                            after_refresh: true,
                        }
                    }
                    None => self.deregister_now(),
                }
            }
            State::Connecting { .. }
            | State::Handshaking { .. }
            | State::AwaitingRegister { .. }
            | State::Registering { .. }
            | State::BackingOff { .. } => {
                if let Some(abandoned) = self.abandon() {
                    self.emit(Event::Superseded { abandoned });
                }
                self.forget_sessions();
                self.emit(Event::Deregistered);
            }
            state => {
                return Err(UeError::WrongState {
                    operation: "deregister",
                    state: state.public(),
                })
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
            State::Deregistering { .. } => {
                self.lose_flow_event(LossReason::NetworkChanged);
                self.close_flow(false);
                self.finish_deregistration();
            }
            State::BackingOff { .. } => {
                self.end_procedure_with_purge();
                self.recovery.candidate = 0;
                self.begin_procedure(RegisterReason::NetworkChanged);
            }
            _ => {
                self.lose_flow_event(LossReason::NetworkChanged);
                self.close_flow(false);
                self.registration = None;
                self.end_procedure_with_purge();
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
        if !matches!(self.state, State::Registered) {
            return Err(UeError::WrongState {
                operation: "rekey",
                state: self.state(),
            });
        }
        let flow = self.flow.as_mut().expect("Registered has a flow");
        let id = flow.id;
        let tls = flow.tls.as_mut().expect("Registered has TLS");
        match tls.rekey() {
            Ok(()) => {
                self.flush_transmit();
                self.emit(Event::Rekeyed {
                    flow: id,
                    method: RekeyMethod::KeyUpdate,
                });
            }
            Err(crate::tls::FlowStateError::RekeyNeedsTls13) => {
                self.emit(Event::Rekeyed {
                    flow: id,
                    method: RekeyMethod::NewFlow,
                });
                // Resuming would reuse the master secret: the new flow must be a full
                // handshake to give fresh keys.
                self.purge_flow_sessions();
                self.close_flow(true);
                self.registration = None;
                self.begin_procedure(RegisterReason::Rekey);
            }
            Err(_) => {
                return Err(UeError::WrongState {
                    operation: "rekey",
                    state: self.state(),
                })
            }
        }
        Ok(())
    }

    // ----- transport inputs -------------------------------------------------------------

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
        if !matches!(self.state, State::Connecting { .. }) {
            return Err(UeError::WrongState {
                operation: "connected",
                state: self.state(),
            });
        }
        let current = self.flow.as_mut().expect("checked");
        current.local = local;
        current.remote = remote;
        let candidate = self.config.candidates()[current.candidate].clone();
        match TlsFlow::connect(&self.profile, &candidate) {
            Ok(tls) => {
                current.tls = Some(tls);
                self.state = State::Handshaking {
                    deadline: now + self.config.handshake_timeout(),
                };
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
        if !matches!(self.state, State::Connecting { .. }) {
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
        let current = self.flow.as_mut().expect("checked");
        let Some(tls) = current.tls.as_mut() else {
            return Err(UeError::WrongState {
                operation: "receive",
                state: self.state(),
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
                if matches!(self.state, State::Handshaking { .. })
                    && self.flow_tls().is_some_and(TlsFlow::is_established)
                {
                    self.on_established();
                }
                self.process_plaintext();
                if self.flow_tls().is_some_and(TlsFlow::is_closed) {
                    // close_notify from the P-CSCF; before any data it ends the attempt.
                    if matches!(self.state, State::Handshaking { .. }) || self.flow_unproven() {
                        let failure =
                            TlsFailure::new(TlsFailureKind::UnexpectedEof, TlsPhase::Handshake);
                        self.emit(Event::TlsFailed {
                            flow,
                            failure: failure.clone(),
                        });
                        self.attempt_failed(AttemptFailure::Tls(failure));
                    } else if self.flow.as_ref().is_some_and(|f| f.id == flow) {
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
        if self.flow.as_ref().is_none_or(|f| f.id != flow) {
            return;
        }
        let queued: usize = self.outputs.iter().map(Output::footprint).sum();
        if queued <= self.config.queue_limits().engine_output_bytes {
            return;
        }
        warn!("{flow}: the engine output queue holds {queued} bytes: failing the flow");
        self.drop_queued(flow);
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
        self.drop_queued(flow);
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
        if matches!(self.state, State::Connecting { .. }) {
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
        let handshaking = matches!(self.state, State::Handshaking { .. }) || self.flow_unproven();
        let tls_closure = self
            .flow
            .as_mut()
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

    // ----- invariants (model tests) -----------------------------------------------------

    /// Checks that the state and the data beside it agree; the model test calls this after
    /// every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = self.state();
        let flow_expected = matches!(
            state,
            UeState::Connecting
                | UeState::Handshaking
                | UeState::AwaitingRegister
                | UeState::Registering
                | UeState::Registered
                | UeState::Deregistering
        );
        if flow_expected != self.flow.is_some() {
            return Err(format!(
                "{state:?} with flow present = {}",
                self.flow.is_some()
            ));
        }
        let incomplete = matches!(
            state,
            UeState::Connecting
                | UeState::Handshaking
                | UeState::AwaitingRegister
                | UeState::Registering
                | UeState::BackingOff
        );
        if incomplete != self.procedure.is_some() {
            return Err(format!(
                "{state:?} with a procedure present = {}",
                self.procedure.is_some()
            ));
        }
        if (self.procedure.is_some() || self.registration.is_some()) && self.identity.is_none() {
            return Err("a registration without an identity".into());
        }
        if matches!(state, UeState::Idle | UeState::Closed) && self.identity.is_some() {
            return Err(format!("{state:?} still holds an identity"));
        }
        if self.identity.is_none() && !self.profile.sessions.is_empty() {
            return Err(format!("{state:?}: TLS sessions outlive the identity"));
        }
        if (state == UeState::Registered) != self.registration.is_some() {
            return Err(format!(
                "{state:?} with registration = {}",
                self.registration.is_some()
            ));
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

    // ----- internals --------------------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        self.profile.sessions.set_now(self.now);
    }

    fn flow_tls(&self) -> Option<&TlsFlow> {
        self.flow.as_ref().and_then(|f| f.tls.as_ref())
    }

    /// True while the flow has not proved itself: no data arrived yet and the stack has not
    /// reported a registration on it (a stack may do so before any byte of the 200 OK reached
    /// imstls, e.g. when it reads the socket itself). TLS 1.3 can fail after the handshake
    /// looks complete; until the flow is proven such a failure ends the attempt.
    fn flow_unproven(&self) -> bool {
        !matches!(self.state, State::Registered | State::Deregistering { .. })
            && !self.flow_tls().is_some_and(TlsFlow::has_received_data)
    }

    fn check_flow(&self, flow: FlowId) -> Result<(), UeError> {
        match &self.flow {
            Some(current) if current.id == flow => Ok(()),
            _ => Err(UeError::UnknownFlow(flow)),
        }
    }

    /// O.4.1: a REGISTER answer belongs to the flow it arrived on. Every procedure (and every
    /// retry within one) has its own flow, so an answer from another flow is stale.
    fn check_report(&self, flow: FlowId) -> Result<(), UeError> {
        match &self.flow {
            Some(current) if current.id == flow => Ok(()),
            current => Err(UeError::StaleReport {
                flow,
                current: current.as_ref().map(|f| f.id),
            }),
        }
    }

    fn emit(&mut self, event: Event) {
        debug!("[{}] {}", event.clause(), event);
        self.log.record(self.now, &event);
        self.outputs.push_back(Output::Event(event));
    }

    fn emit_for_flow(&mut self, make: impl FnOnce(FlowId) -> Event) {
        if let Some(id) = self.flow.as_ref().map(|f| f.id) {
            self.emit(make(id));
        }
    }

    fn flush_transmit(&mut self) {
        if let Some(flow) = self.flow.as_mut() {
            if let Some(data) = flow.tls.as_mut().and_then(TlsFlow::take_transmit) {
                self.outputs.push_back(Output::Transmit {
                    flow: flow.id,
                    data,
                });
            }
        }
    }

    fn transmit_plaintext(&mut self, bytes: &[u8], operation: &'static str) -> Result<(), UeError> {
        let state = self.state();
        let tls = self
            .flow
            .as_mut()
            .and_then(|f| f.tls.as_mut())
            .ok_or(UeError::WrongState { operation, state })?;
        tls.send(bytes)
            .map_err(|_| UeError::WrongState { operation, state })?;
        self.flush_transmit();
        Ok(())
    }

    /// Removes queued transmits of `flow`; returns the bytes dropped.
    fn drop_queued(&mut self, flow: FlowId) -> usize {
        let mut dropped = 0;
        self.outputs.retain(|o| match o {
            Output::Transmit { flow: f, data } if *f == flow => {
                dropped += data.len();
                false
            }
            _ => true,
        });
        dropped
    }

    /// Closes the current flow: close_notify when `graceful`, then a Close output after
    /// whatever is already queued for it (a fatal alert stays ahead of the Close).
    fn close_flow(&mut self, graceful: bool) -> Option<FlowId> {
        let mut flow = self.flow.take()?;
        // A queued "send REGISTER on this flow" can no longer be acted on.
        self.outputs.retain(
            |o| !matches!(o, Output::Event(Event::RegisterNow { flow: f, .. }) if *f == flow.id),
        );
        if let Some(tls) = flow.tls.as_mut() {
            if graceful {
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
        Some(flow.id)
    }

    /// O.4.1: removes everything the current activity created; returns what, if anything.
    fn abandon(&mut self) -> Option<Abandoned> {
        let state = self.state();
        if matches!(state, UeState::Idle | UeState::Closed) {
            return None;
        }
        let flow = self.flow.as_ref().map(|f| f.id);
        let mut dropped_records = 0;
        let mut dropped_bytes = 0;
        if let Some(id) = flow {
            dropped_records = self.drop_queued(id);
            dropped_bytes = dropped_records + self.flow.as_ref().map_or(0, |f| f.framer.buffered());
        }
        // RFC 8446 §5.3 / RFC 5246 §6.1: every record advances the sequence number, so after
        // dropping encrypted records a close_notify would not decrypt at the P-CSCF (a tamper
        // alarm there). Then the flow ends with a bare FIN; otherwise with close_notify.
        self.close_flow(dropped_records == 0);
        let purged_sessions = self
            .procedure
            .take()
            .map_or(0, |p| self.profile.sessions.purge_since(p.mark));
        self.registration = None;
        self.identity = None; // zeroized on drop
        self.state = State::Idle;
        Some(Abandoned {
            state,
            flow,
            purged_sessions,
            dropped_bytes,
        })
    }

    fn begin_procedure(&mut self, reason: RegisterReason) {
        self.procedure = Some(Procedure {
            mark: self.profile.sessions.mark(),
            challenges: 0,
            reason,
            attempts: 0,
        });
        self.recovery.tried_in_round = 0;
        self.recovery.round_failures.clear();
        self.open_flow();
    }

    /// Ends the incomplete procedure (if any) and purges its sessions (O.4.1).
    fn end_procedure_with_purge(&mut self) {
        if let Some(procedure) = self.procedure.take() {
            let purged = self.profile.sessions.purge_since(procedure.mark);
            if purged > 0 {
                debug!("purged {purged} session(s) of an incomplete registration");
            }
        }
    }

    /// Removes every stored TLS session: the identity they were made for is gone or
    /// replaced, and a P-CSCF must not link the next user to the last (O.2.2).
    fn forget_sessions(&mut self) {
        let purged = self.profile.sessions.purge_all();
        if purged > 0 {
            debug!("removed {purged} TLS session(s) of the previous identity");
        }
    }

    fn purge_flow_sessions(&mut self) {
        if let Some(flow) = &self.flow {
            let name = self
                .profile
                .server_name_for(&self.config.candidates()[flow.candidate]);
            self.profile.sessions.purge_server(&name);
        }
    }

    fn open_flow(&mut self) {
        let candidates = self.config.candidates();
        let index = self.recovery.candidate % candidates.len();
        let candidate = candidates[index].clone();
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        let attempt = {
            let procedure = self
                .procedure
                .as_mut()
                .expect("a flow belongs to a procedure");
            procedure.attempts += 1;
            procedure.attempts
        };
        self.flow = Some(Flow {
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
        });
        self.state = State::Connecting {
            deadline: self.now + self.config.connect_timeout(),
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
        if reason.is_permanent() {
            self.purge_flow_sessions();
        }
        self.record_attempt_failure(reason);
        self.close_flow(false);
        let count = self.config.candidates().len();
        self.recovery.tried_in_round += 1;
        self.recovery.candidate = (self.recovery.candidate + 1) % count;
        if self.recovery.tried_in_round < count {
            self.open_flow();
        } else if !self.recovery.round_failures.is_empty()
            && self
                .recovery
                .round_failures
                .iter()
                .all(|f| f.reason.is_permanent())
        {
            self.fail_permanently(FailureReason::Tls, None);
        } else {
            self.recovery.consecutive_failures += 1;
            let candidates = self.take_round_failures();
            self.back_off(None, candidates);
        }
    }

    /// Notes the current flow's candidate and `reason` for the event that ends the round.
    fn record_attempt_failure(&mut self, reason: AttemptFailure) {
        let Some(flow) = self.flow.as_ref() else {
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

    /// RFC 5626 §4.5 back-off. The base-time is 30 s "if all of the flows to every URI in the
    /// outbound proxy set have failed" and 90 s only while another flow is still up. imstls
    /// keeps one registration flow per UE and backs off only after closing it, so no flow is
    /// up here and the 30 s base applies (a P-CSCF that answered does not make it 90 s).
    fn back_off(&mut self, at_least: Option<Duration>, candidates: Vec<CandidateFailure>) {
        let all_flows_failed = self.flow.is_none();
        let (low, high) = backoff_window(
            &self.config.backoff(),
            self.recovery.consecutive_failures,
            all_flows_failed,
        );
        let delay = self
            .jitter
            .between(low, high)
            .max(at_least.unwrap_or_default());
        if self.procedure.is_none() {
            // The retry is a new registration procedure of the same identity.
            self.procedure = Some(Procedure {
                mark: self.profile.sessions.mark(),
                challenges: 0,
                reason: RegisterReason::Recovery,
                attempts: 0,
            });
        }
        self.state = State::BackingOff {
            until: self.now + delay,
        };
        self.emit(Event::BackingOff {
            attempt: self.recovery.consecutive_failures,
            delay,
            candidates,
        });
    }

    fn on_established(&mut self) {
        let flow = self.flow.as_ref().expect("established flow");
        let id = flow.id;
        let tls = flow.tls.as_ref().expect("established TLS");
        let details = tls.details().expect("handshake complete");
        let requested = tls.certificate_requested();
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
        let reason = self
            .procedure
            .as_ref()
            .map_or(RegisterReason::Initial, |p| p.reason);
        self.state = State::AwaitingRegister {
            deadline: self.now + self.config.registration_timeout(),
        };
        self.emit(Event::RegisterNow { flow: id, reason });
    }

    fn on_tls_failure(&mut self, failure: TlsFailure) {
        let Some(flow) = self.flow.as_ref().map(|f| f.id) else {
            return;
        };
        if let Some(reason) = failure.certificate() {
            warn!("{flow}: P-CSCF certificate rejected: {reason}");
            self.purge_flow_sessions();
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
        if matches!(self.state, State::Handshaking { .. }) || unproven {
            self.emit(Event::TlsFailed {
                flow,
                failure: failure.clone(),
            });
            self.attempt_failed(AttemptFailure::Tls(failure));
        } else {
            self.flow_lost(LossReason::Tls(failure));
        }
    }

    /// Stops without automatic retry: flow closed (after any queued alert), sessions of
    /// the procedure purged, identities zeroized. The event lists the round's failed
    /// candidates.
    fn fail_permanently(&mut self, reason: FailureReason, status: Option<u16>) {
        self.purge_flow_sessions();
        // A flow still healthy (a 4xx/6xx, too many challenges) ends with close_notify
        // (RFC 8446 §6.1); a failed TLS flow already sent its fatal alert and sends nothing more.
        self.close_flow(true);
        self.end_procedure_with_purge();
        self.registration = None;
        self.identity = None;
        self.forget_sessions();
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
        let registered = matches!(self.state, State::Registered);
        self.emit_for_flow(|flow| Event::ConnectionLost {
            flow,
            reason,
            registered,
        });
    }

    /// O.4.1 last sentence: an established flow is gone; register again on a new flow. The
    /// first retry after losing a proven flow is immediate; otherwise back off.
    fn flow_lost(&mut self, reason: LossReason) {
        let Some(flow) = self.flow.as_ref() else {
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
        // the write side closes; any other loss closes without one.
        let answer_close_notify = matches!(reason, LossReason::ClosedByPeer);
        warn!("{}: connection lost: {}", flow.id, reason.code());
        self.lose_flow_event(reason);
        self.close_flow(answer_close_notify);
        match self.state {
            State::Deregistering { .. } => self.finish_deregistration(),
            State::Registered if proven => {
                self.registration = None;
                self.recovery.consecutive_failures = 0;
                self.recovery.candidate = candidate;
                self.begin_procedure(RegisterReason::Recovery);
            }
            _ => {
                self.registration = None;
                self.end_procedure_with_purge();
                self.recovery.candidate = candidate;
                self.recovery.consecutive_failures += 1;
                self.back_off(None, Vec::new());
            }
        }
    }

    /// Asks the stack for the de-REGISTER (expires=0) on the current flow, bounded by the
    /// registration timeout (RFC 3261 §10.2.2).
    fn deregister_now(&mut self) {
        self.state = State::Deregistering {
            deadline: self.now + self.config.registration_timeout(),
            sent: false,
            after_refresh: false,
        };
        self.emit_for_flow(|flow| Event::RegisterNow {
            flow,
            reason: RegisterReason::Deregister,
        });
    }

    fn finish_deregistration(&mut self) {
        self.close_flow(true);
        self.registration = None;
        self.procedure = None;
        self.identity = None;
        self.forget_sessions();
        self.state = State::Idle;
        self.emit(Event::Deregistered);
    }

    fn process_plaintext(&mut self) {
        let mut pong_sent = false;
        loop {
            let Some(flow) = self.flow.as_mut() else {
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
                        if matches!(self.state, State::Registered) {
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

    fn send_ping(&mut self) {
        let pong_timeout = self.config.keepalive().pong_timeout;
        let now = self.now;
        let Some(flow) = self.flow.as_mut() else {
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

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let mut best: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, timer: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, timer));
                }
            }
        };
        let state_deadline = match self.state {
            State::Connecting { deadline }
            | State::Handshaking { deadline }
            | State::AwaitingRegister { deadline }
            | State::Registering { deadline }
            | State::Deregistering { deadline, .. } => Some(deadline),
            State::BackingOff { until } => Some(until),
            State::Idle | State::Registered | State::Closed => None,
        };
        consider(state_deadline, Timer::State);
        if let Some(registration) = &self.registration {
            match registration.refresh {
                Refresh::Scheduled(at) | Refresh::InFlight(at) => {
                    consider(Some(at), Timer::Refresh)
                }
                Refresh::Due => {}
            }
            consider(Some(registration.expires_at), Timer::Expiry);
        }
        if let Some(flow) = &self.flow {
            if matches!(self.state, State::Registered) {
                consider(flow.next_ping, Timer::Ping);
            }
            consider(flow.pong_deadline, Timer::Pong);
        }
        best
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::State => self.fire_state_deadline(),
            Timer::Refresh => match self.registration.as_ref().map(|r| r.refresh) {
                Some(Refresh::Scheduled(_)) => {
                    if let Some(registration) = self.registration.as_mut() {
                        registration.refresh = Refresh::Due;
                        registration.challenges = 0;
                    }
                    self.emit_for_flow(|flow| Event::RegisterNow {
                        flow,
                        reason: RegisterReason::Refresh,
                    });
                }
                // O.4.3: no answer to the re-REGISTER; the flow seems dead.
                Some(Refresh::InFlight(_)) => self.flow_lost(LossReason::RefreshTimeout),
                _ => {}
            },
            Timer::Expiry => self.flow_lost(LossReason::RegistrationExpired),
            Timer::Ping => self.send_ping(),
            Timer::Pong => self.flow_lost(LossReason::PongTimeout),
        }
    }

    fn fire_state_deadline(&mut self) {
        match self.state {
            State::Connecting { .. } => {
                self.emit_for_flow(|flow| Event::ConnectFailed {
                    flow,
                    reason: TransportError::TimedOut,
                });
                self.attempt_failed(AttemptFailure::Connect(TransportError::TimedOut));
            }
            State::Handshaking { .. } => {
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
            // O.3.1.4: no final answer (or no REGISTER from the stack) in time.
            State::AwaitingRegister { .. } | State::Registering { .. } => {
                let candidates = self.take_round_failures();
                self.emit(Event::RegistrationFailed {
                    status: None,
                    reason: FailureReason::Timeout,
                    retrying: true,
                    candidates,
                });
                self.close_flow(true);
                self.end_procedure_with_purge();
                self.recovery.consecutive_failures += 1;
                self.back_off(None, Vec::new());
            }
            // The refresh the de-registration waited for timed out (RFC 3261 §10.2 then
            // allows a new REGISTER).
            State::Deregistering {
                after_refresh: true,
                ..
            } => self.deregister_now(),
            State::Deregistering { .. } => self.finish_deregistration(),
            State::BackingOff { .. } => {
                self.end_procedure_with_purge();
                self.begin_procedure(RegisterReason::Recovery);
            }
            State::Idle | State::Registered | State::Closed => {}
        }
    }
}
