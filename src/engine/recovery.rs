//! New procedures and flows, failed attempts, lost flows and RFC 5626 §4.5 back-off.

use std::time::Duration;

use log::warn;

use super::state::{Flow, Parts, Procedure, State, Step};
use super::teardown::{FlowEnd, Teardown};
use super::timing::backoff_window;
use super::{
    AttemptFailure, CandidateFailure, Event, FailureReason, FlowId, LossReason, Output,
    RegisterReason, Ue,
};
use crate::sip::SipFramer;

impl Ue {
    pub(super) fn new_procedure(&self, reason: RegisterReason) -> Procedure {
        Procedure {
            mark: self.profile.sessions.mark(),
            challenges: 0,
            reason,
            attempts: 0,
        }
    }

    /// → Connecting: a new registration procedure (O.4.1: the only one) on a new flow,
    /// starting a new failover round at the current candidate.
    pub(super) fn begin_procedure(&mut self, reason: RegisterReason) {
        let procedure = self.new_procedure(reason);
        self.recovery.tried_in_round = 0;
        self.recovery.round_failures.clear();
        self.open_flow(procedure);
    }

    /// → Connecting: the next attempt of `procedure` on a new flow to the current candidate
    /// (O.2.1: a TLS connection to the P-CSCF; RFC 5626 §4.5 failover picks the candidate).
    pub(super) fn open_flow(&mut self, mut procedure: Procedure) {
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
    pub(super) fn attempt_failed(&mut self, reason: AttemptFailure) {
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
    pub(super) fn record_attempt_failure(&mut self, reason: AttemptFailure) {
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

    pub(super) fn take_round_failures(&mut self) -> Vec<CandidateFailure> {
        std::mem::take(&mut self.recovery.round_failures)
    }

    /// → BackingOff: RFC 5626 §4.5 back-off before the next attempt of `procedure` (a new
    /// procedure of the same identity when none goes on). The base-time is 30 s "if all of
    /// the flows to every URI in the outbound proxy set have failed" and 90 s only while
    /// another flow is still up. imstls keeps one registration flow per UE and backs off only
    /// after closing it, so no flow is up here and the 30 s base applies (a P-CSCF that
    /// answered does not make it 90 s).
    pub(super) fn back_off(
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
    pub(super) fn fail_permanently(&mut self, reason: FailureReason, status: Option<u16>) {
        let parts = self.take_state().into_parts();
        self.stop(parts, reason, status);
    }

    /// [`fail_permanently`](Self::fail_permanently) with what is left in `parts`.
    pub(super) fn stop(&mut self, parts: Parts, reason: FailureReason, status: Option<u16>) {
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

    pub(super) fn lose_flow_event(&mut self, reason: LossReason) {
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
    pub(super) fn flow_lost(&mut self, reason: LossReason) {
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
