//! Timers: which deadline comes next and what firing it does.

use std::time::Instant;

use log::warn;

use super::state::{Deregistration, Refresh, State, Step};
use super::teardown::{FlowEnd, Teardown};
use super::{AttemptFailure, Event, FailureReason, LossReason, RegisterReason, TransportError, Ue};
use crate::tls::{TlsFailure, TlsFailureKind, TlsPhase};

#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    State,
    Refresh,
    Expiry,
    Ping,
    Pong,
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

    pub(super) fn next_timer(&self) -> Option<(Instant, Timer)> {
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

    pub(super) fn fire(&mut self, timer: Timer) {
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
    pub(super) fn fire_state_deadline(&mut self) {
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
