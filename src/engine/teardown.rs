//! The one teardown: what ends when a flow, procedure or identity ends, in one order.

use log::{debug, info};

use super::state::{Parts, Procedure};
use super::{Abandoned, Event, Output, Ue, UeState};

/// What a teardown ends, named by the clause that ends it. [`Ue::tear_down`] does the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Teardown {
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
pub(super) enum Successor {
    /// A new registration; sessions stay only for the same subscriber (O.2.2).
    Registration {
        same_identity: bool,
    },
    Deregistration,
}

/// How a flow's TLS ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlowEnd {
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
    pub(super) fn drops_queued(self) -> bool {
        matches!(
            self,
            Teardown::Superseded(_)
                | Teardown::Restart(FlowEnd::DropQueued)
                | Teardown::Deregistered(FlowEnd::DropQueued)
        )
    }

    /// `dropped`: bytes removed from the output queue for the flow.
    pub(super) fn sends_close_notify(self, dropped: usize) -> bool {
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

    pub(super) fn purges_pcscf_sessions(self) -> bool {
        match self {
            Teardown::AttemptFailed { permanent } => permanent,
            Teardown::Rejected | Teardown::Rekey | Teardown::Stopped => true,
            Teardown::Superseded(_) | Teardown::Restart(_) | Teardown::Deregistered(_) => false,
        }
    }

    pub(super) fn ends_identity(self) -> bool {
        matches!(
            self,
            Teardown::Superseded(_) | Teardown::Stopped | Teardown::Deregistered(_)
        )
    }

    pub(super) fn forgets_all_sessions(self) -> bool {
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
    /// debug line of step 6 has always come after it). Before this function some callers
    /// purged the P-CSCF's sessions ahead of the close or of their event; the order here
    /// changes no output, event or log line, because purging logs nothing and the store is
    /// only read between calls.
    ///
    /// Returns the procedure when `what` keeps it (a failed attempt: the procedure goes on
    /// with the next candidate). The state is left as it is (the caller took it out and
    /// puts the next one in).
    pub(super) fn tear_down(&mut self, parts: Parts, what: Teardown) -> Option<Procedure> {
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
            if let Some(tls) = flow.tls.as_deref_mut() {
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
