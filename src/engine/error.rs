//! Caller misuse of the engine. Network and peer failures are never errors of an input:
//! they arrive as events.

use std::fmt;

use super::{FlowId, UeState};
use crate::sip::FramingError;

/// An input the engine cannot accept in its current state, or bad input data. The engine is
/// unchanged when an input returns an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UeError {
    /// The IMPI or an IMPU is unusable.
    InvalidIdentity(&'static str),
    /// The operation does not fit the current state.
    WrongState {
        /// The operation.
        operation: &'static str,
        /// The state it was attempted in.
        state: UeState,
    },
    /// The flow is not the current one (late input from an old socket).
    UnknownFlow(FlowId),
    /// A REGISTER answer reported for a flow that is no longer the current one: it answers
    /// an earlier procedure (or an earlier attempt) and is not applied (O.4.1).
    StaleReport {
        /// The flow the report named (where the answer arrived).
        flow: FlowId,
        /// The current flow, if any.
        current: Option<FlowId>,
    },
    /// O.4.2 / invariant 2: a flow carries REGISTER first; only a REGISTER may be sent
    /// before the registration succeeds.
    RegisterFirst,
    /// A REGISTER is already waiting for its answer.
    RegisterInFlight,
    /// The buffer given to `send_sip` is not one well-formed SIP message in the strict form
    /// imstls sends (`sip::parse_outgoing_message`); the error names the rule.
    BadMessage(FramingError),
    /// An argument is out of range.
    InvalidArgument(&'static str),
}

impl fmt::Display for UeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIdentity(why) => write!(f, "invalid identity: {why}"),
            Self::WrongState { operation, state } => {
                write!(f, "{operation} is not possible in state {state:?}")
            }
            Self::UnknownFlow(flow) => write!(f, "{flow} is not the current flow"),
            Self::StaleReport { flow, current } => {
                write!(
                    f,
                    "the answer arrived on {flow}, which is no longer current ("
                )?;
                match current {
                    Some(current) => write!(f, "now {current}")?,
                    None => f.write_str("no flow now")?,
                }
                f.write_str("): it belongs to an earlier procedure and was not applied")
            }
            Self::RegisterFirst => write!(
                f,
                "only REGISTER may be sent on a flow that is not registered (TS 33.203 O.4.2)"
            ),
            Self::RegisterInFlight => write!(f, "a REGISTER is already waiting for its answer"),
            Self::BadMessage(e) => write!(f, "not a valid SIP message: {e}"),
            Self::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl std::error::Error for UeError {}
