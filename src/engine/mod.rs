//! The sans-IO UE engine: the registration state machine of TS 33.203 Annex O.
//!
//! Inputs are method calls that take the caller's monotonic `now`; outputs are pulled with
//! [`Ue::poll_output`] until it returns [`Output::Timeout`]. No socket, thread, clock or
//! lock lives in here.
//!
//! States are named for what they wait for and hold what they need (a procedure's steps
//! hold the procedure and its flow, `Registered` its flow and registration), so "a flow iff
//! a state that uses one" and "a registration iff registered" hold by construction; one
//! teardown function ends what a state held, in one order. Invariants (what the types cannot
//! say is checked after every step by the model test, see [`Ue::check_invariants`]):
//! 1. at most one registration procedure exists (O.4.1), and superseding one removes its
//!    flow, sessions, queued bytes and identities;
//! 2. a flow carries REGISTER first (O.4.2);
//! 3. a lost flow leads to a new flow and a new registration (O.4.1), with RFC 5626 §4.5
//!    back-off;
//! 4. a rejected P-CSCF certificate puts the fatal alert on the wire before the close
//!    (O.3.1.2) and is never retried automatically.
//!
//! Files: `state` (the states and their data), `stack` (calls from the SIP stack),
//! `transport` (calls from the transport and the plaintext they carry), `recovery` (new
//! procedures and flows, failed attempts, lost flows, back-off), `teardown` (the one
//! teardown), `timers` (deadlines); this file holds [`Ue`], its accessors and outputs.
// Forbidden, not just denied: nothing inside this layer can lift the lint again (only
// src/os.rs and src/ffi may use unsafe_code).
#![forbid(unsafe_code)]

mod conformance;
mod error;
mod event;
mod identity;
mod recovery;
mod stack;
mod state;
mod teardown;
mod timers;
mod timing;
mod transport;

use std::collections::VecDeque;
use std::time::Instant;

use log::debug;

pub use error::UeError;
pub use event::{
    Abandoned, AttemptFailure, Binding, CandidateFailure, ConformanceEntry, Event, FailureReason,
    FlowId, LossReason, Output, Queue, RegisterKind, RegisterReason, RekeyMethod, TransportClosure,
    TransportError, UeState,
};
pub use identity::Identity;

use crate::config::{ConfigError, UeConfig};
use crate::tls::profile::TlsProfile;
use crate::tls::TlsFlow;
use conformance::ConformanceLog;
use state::{Recovery, State};
use timing::Jitter;

/// CRLF CRLF: an RFC 5626 §3.5.1 ping.
const PING: &[u8] = b"\r\n\r\n";
/// CRLF: an RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";

/// The UE engine. One per UE; drive it from one thread at a time (it is `Send`).
pub struct Ue {
    config: UeConfig,
    profile: TlsProfile,
    now: Instant,
    state: State,
    /// The subscriber of the current activity: present iff the state is neither `Idle` nor
    /// `Closed` (it outlives the state changes of one activity, so it sits beside them).
    identity: Option<Identity>,
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
            .field("flow", &self.current_flow())
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
            identity: None,
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
    #[cfg(feature = "_internal_test_exports")]
    pub fn profile(&self) -> &TlsProfile {
        &self.profile
    }

    /// The current flow, if any.
    pub fn current_flow(&self) -> Option<FlowId> {
        self.state.flow().map(|f| f.id)
    }

    /// The O.2.2 binding (addresses, identities, TLS parameters) once TLS is up.
    pub fn binding(&self) -> Option<Binding> {
        let flow = self.state.flow()?;
        let identity = self.identity.as_ref()?;
        let tls = flow.tls.as_deref()?.details()?;
        Some(Binding {
            flow: flow.id,
            pcscf: self.config.candidates()[flow.candidate].to_string(),
            local_addr: flow.local,
            remote_addr: flow.remote,
            impi: identity.impi().to_owned(),
            impus: identity.impus().map(str::to_owned).collect(),
            tls,
            registered: matches!(self.state, State::Registered { .. }),
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
        self.state.procedure().is_some()
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
                if self.outputs.is_empty() && !matches!(self.state, State::Procedure { .. }) {
                    // Drained outside a registration procedure: an idle UE keeps no queue
                    // (one allocation per burst costs less than 600 bytes held by every idle
                    // UE; BENCHMARKS.md B4). A procedure's bursts follow each other closely,
                    // so the queue stays until it ends.
                    self.outputs = VecDeque::new();
                }
                output
            }
            None => Output::Timeout(self.next_timeout()),
        }
    }

    // ----- invariants (model tests) -----------------------------------------------------

    /// Checks what the types cannot state (the identity beside the state, an established TLS
    /// flow where one is needed, nothing queued after a flow's close); the model test calls
    /// this after every step. (Flow, procedure and registration exist exactly in the states that
    /// hold them: the private `State` says so by construction.)
    pub fn check_invariants(&self) -> Result<(), String> {
        let state = self.state();
        let active = !matches!(state, UeState::Idle | UeState::Closed);
        if active != self.identity.is_some() {
            return Err(format!(
                "{state:?} with an identity present = {}",
                self.identity.is_some()
            ));
        }
        if self.identity.is_none() && !self.profile.sessions.is_empty() {
            return Err(format!("{state:?}: TLS sessions outlive the identity"));
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

    // ----- shared internals -------------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        self.profile.sessions.set_now(self.now);
    }

    /// Takes the state out for a consuming transition; the caller puts the next one in.
    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Idle)
    }

    fn flow_tls(&self) -> Option<&TlsFlow> {
        self.state.flow().and_then(|f| f.tls.as_deref())
    }

    fn check_flow(&self, flow: FlowId) -> Result<(), UeError> {
        match self.current_flow() {
            Some(current) if current == flow => Ok(()),
            _ => Err(UeError::UnknownFlow(flow)),
        }
    }

    fn emit(&mut self, event: Event) {
        debug!("[{}] {}", event.clause(), event);
        self.log.record(self.now, &event);
        self.outputs.push_back(Output::Event(event));
    }

    fn emit_for_flow(&mut self, make: impl FnOnce(FlowId) -> Event) {
        if let Some(id) = self.current_flow() {
            self.emit(make(id));
        }
    }

    fn flush_transmit(&mut self) {
        if let Some(flow) = self.state.flow_mut() {
            if let Some(data) = flow.tls.as_deref_mut().and_then(TlsFlow::take_transmit) {
                self.outputs.push_back(Output::Transmit {
                    flow: flow.id,
                    data,
                });
            }
        }
    }
}
