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

/// What a REGISTER response asks the stack to report, in the engine's terms (the same for
/// the sans-IO engine and the managed driver).
pub enum Report {
    /// `registration_challenged`.
    Challenged { stale: bool },
    /// `registration_succeeded` (a de-registration succeeds with a zero expiry).
    Succeeded {
        expires: Duration,
        flow_timer: Option<Duration>,
    },
    /// `registration_failed`.
    Failed {
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl Report {
    /// The report `outcome` calls for; None when it calls for none (a 1xx, another answer).
    pub fn of(outcome: UaOutcome) -> Option<Report> {
        let seconds = |s: u32| Duration::from_secs(s.into());
        match outcome {
            UaOutcome::Challenged { stale } => Some(Report::Challenged { stale }),
            UaOutcome::Registered {
                expires,
                flow_timer,
            } => Some(Report::Succeeded {
                expires: seconds(expires),
                flow_timer: flow_timer.map(seconds),
            }),
            UaOutcome::Deregistered => Some(Report::Succeeded {
                expires: Duration::ZERO,
                flow_timer: None,
            }),
            UaOutcome::Failed {
                status,
                retry_after,
            } => Some(Report::Failed {
                status,
                retry_after: retry_after.map(seconds),
            }),
            _ => None,
        }
    }
}

/// Reports what a REGISTER response meant to the engine; `flow` is the flow it arrived on
/// (that of its `SipReceived` event). An answer whose flow is gone by now (the same read
/// also ended the flow, or a new registration started) is refused as stale and dropped: it
/// belongs to an earlier procedure.
pub fn report(ue: &mut Ue, now: Instant, flow: FlowId, outcome: UaOutcome) -> Result<(), UeError> {
    let result = match Report::of(outcome) {
        Some(Report::Challenged { stale }) => ue.registration_challenged(now, flow, stale),
        Some(Report::Succeeded {
            expires,
            flow_timer,
        }) => ue.registration_succeeded(now, flow, expires, flow_timer),
        Some(Report::Failed {
            status,
            retry_after,
        }) => ue.registration_failed(now, flow, status, retry_after),
        None => Ok(()),
    };
    match result {
        Err(UeError::StaleReport { .. }) => Ok(()),
        other => other,
    }
}
