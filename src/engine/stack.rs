//! Calls from the SIP stack: start, send, the REGISTER answers, de-registration, network
//! change and rekey.

use std::time::{Duration, Instant};

use super::state::{Deregistration, Flow, Recovery, Refresh, Registration, State, Step};
use super::teardown::{FlowEnd, Successor, Teardown};
use super::timing::refresh_delay;
use super::{
    Event, FailureReason, FlowId, Identity, LossReason, RegisterKind, RegisterReason, RekeyMethod,
    Ue, UeError,
};
use crate::sip::parse_outgoing_message;

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
    /// complete SIP message in strict RFC 3261 form (`sip::parse_outgoing_message`), so that no
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
        if self.answer_releases_deregistration() {
            return Ok(());
        }
        match self.state {
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
    /// (at least `retry_after`); every other status stops the UE
    /// ([`UeState::Closed`](super::UeState::Closed)).
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
        if self.answer_releases_deregistration() {
            return Ok(());
        }
        match self.state {
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
        let Some(tls) = flow.tls.as_deref_mut() else {
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
            // Registered → Connecting: a new flow and a new registration (O.4.1).
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
    pub(super) fn check_report(&self, flow: FlowId) -> Result<(), UeError> {
        match self.current_flow() {
            Some(current) if current == flow => Ok(()),
            current => Err(UeError::StaleReport { flow, current }),
        }
    }

    pub(super) fn refresh_in_flight(&self) -> bool {
        self.state
            .registration()
            .is_some_and(|r| matches!(r.refresh, Refresh::InFlight(_)))
    }

    pub(super) fn transmit_plaintext(
        &mut self,
        bytes: &[u8],
        operation: &'static str,
    ) -> Result<(), UeError> {
        let state = self.state();
        let tls = self
            .state
            .flow_mut()
            .and_then(|f| f.tls.as_deref_mut())
            .ok_or(UeError::WrongState { operation, state })?;
        tls.send(bytes)
            .map_err(|_| UeError::WrongState { operation, state })?;
        self.flush_transmit();
        Ok(())
    }

    /// Registered/Deregistering → Deregistering (Due): asks the stack for the de-REGISTER
    /// (expires=0) on `flow`, bounded by the registration timeout (RFC 3261 §10.2.2).
    pub(super) fn deregister_now(&mut self, flow: Flow) {
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

    /// A final answer while a de-registration waits for the refresh in flight (RFC 3261
    /// §10.2): it is that refresh's answer, so the de-REGISTER may go. Returns whether it was.
    fn answer_releases_deregistration(&mut self) -> bool {
        let waiting = matches!(
            self.state,
            State::Deregistering {
                phase: Deregistration::AfterRefresh,
                ..
            }
        );
        if waiting {
            self.deregister_after_refresh();
        }
        waiting
    }

    /// Deregistering (AfterRefresh) → Deregistering (Due): the refresh is answered or timed
    /// out, so RFC 3261 §10.2 allows the de-REGISTER now.
    pub(super) fn deregister_after_refresh(&mut self) {
        match self.take_state() {
            State::Deregistering { flow, .. } => self.deregister_now(flow),
            other => self.state = other,
        }
    }

    /// Deregistering → Idle (RFC 3261 §10.2.2): the flow closes as `end` says; no identity
    /// or TLS session of it is kept (O.2.2).
    pub(super) fn finish_deregistration(&mut self, end: FlowEnd) {
        let parts = self.take_state().into_parts();
        self.tear_down(parts, Teardown::Deregistered(end));
        self.emit(Event::Deregistered);
    }
}
