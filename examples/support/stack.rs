//! What a SIP stack does with the engine's instructions, with the small UA from
//! `imstls-testkit`. Shared by the Rust examples and the test harness.

use std::time::{Duration, Instant};

use imstls::{FlowId, RegisterReason, Ue, UeError};
use imstls_testkit::ua::{Ua, UaOutcome};

/// The REGISTER the stack sends for `reason`.
pub fn register_request(ua: &mut Ua, reason: RegisterReason) -> Vec<u8> {
    match reason {
        RegisterReason::Challenge { .. } | RegisterReason::Refresh => ua.next_register(),
        RegisterReason::Deregister => ua.next_deregister(),
        // A new flow starts a new registration (new Call-ID, no stale credentials).
        _ => {
            ua.new_registration();
            ua.next_register()
        }
    }
}

/// Reports what a REGISTER response meant to the engine; `flow` is the flow it arrived on
/// (that of its `SipReceived` event). An answer whose flow is gone by now (the same read
/// also ended the flow, or a new registration started) is refused as stale and dropped: it
/// belongs to an earlier procedure.
pub fn report(ue: &mut Ue, now: Instant, flow: FlowId, outcome: UaOutcome) -> Result<(), UeError> {
    match apply(ue, now, flow, outcome) {
        Err(UeError::StaleReport { .. }) => Ok(()),
        other => other,
    }
}

fn apply(ue: &mut Ue, now: Instant, flow: FlowId, outcome: UaOutcome) -> Result<(), UeError> {
    match outcome {
        UaOutcome::Challenged { stale } => ue.registration_challenged(now, flow, stale),
        UaOutcome::Registered {
            expires,
            flow_timer,
        } => ue.registration_succeeded(
            now,
            flow,
            Duration::from_secs(expires.into()),
            flow_timer.map(|t| Duration::from_secs(t.into())),
        ),
        UaOutcome::Deregistered => ue.registration_succeeded(now, flow, Duration::ZERO, None),
        UaOutcome::Failed {
            status,
            retry_after,
        } => ue.registration_failed(
            now,
            flow,
            status,
            retry_after.map(|s| Duration::from_secs(s.into())),
        ),
        _ => Ok(()),
    }
}
