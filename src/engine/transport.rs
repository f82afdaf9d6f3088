//! Transport input: connect results, received bytes, closures and overloads; the plaintext
//! they carry (SIP, RFC 5626 pings and pongs).

use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};

use super::state::{State, Step};
use super::timing::keepalive_window;
use super::{
    AttemptFailure, Event, FailureReason, FlowId, LossReason, Output, Queue, TransportClosure,
    TransportError, Ue, UeError, PING, PONG,
};
use crate::sip::Frame;
use crate::tls::{Closure, TlsFailure, TlsFailureKind, TlsFlow, TlsPhase};

impl Ue {
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
        let handshake_timeout = self.config.handshake_timeout();
        // Connecting → Handshaking (O.2.1: the UE opens TLS to the P-CSCF).
        let State::Procedure {
            step: step @ Step::Connecting,
            deadline,
            flow: current,
            ..
        } = &mut self.state
        else {
            return Err(UeError::WrongState {
                operation: "connected",
                state: self.state(),
            });
        };
        current.local = local;
        current.remote = remote;
        let candidate = &self.config.candidates()[current.candidate];
        match TlsFlow::connect(&self.profile, candidate) {
            Ok(tls) => {
                current.tls = Some(Box::new(tls));
                *step = Step::Handshaking;
                *deadline = now + handshake_timeout;
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
        if !self.state.is_step(Step::Connecting) {
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
        let state = self.state();
        let Some(tls) = self.state.flow_mut().and_then(|f| f.tls.as_deref_mut()) else {
            return Err(UeError::WrongState {
                operation: "receive",
                state,
            });
        };
        let result = tls.receive(data);
        self.flush_transmit();
        self.receive_tls_result(flow, result);
        self.enforce_output_cap(flow);
        Ok(())
    }

    /// What `receive` does with the TLS layer's verdict on the bytes.
    pub(super) fn receive_tls_result(&mut self, flow: FlowId, result: Result<(), TlsFailure>) {
        match result {
            Err(failure) => self.on_tls_failure(failure),
            Ok(()) => {
                if self.state.is_step(Step::Handshaking)
                    && self.flow_tls().is_some_and(TlsFlow::is_established)
                {
                    self.on_established();
                }
                self.process_plaintext();
                if self.flow_tls().is_some_and(TlsFlow::is_closed) {
                    // close_notify from the P-CSCF; before any data it ends the attempt.
                    if self.state.is_step(Step::Handshaking) || self.flow_unproven() {
                        let failure =
                            TlsFailure::new(TlsFailureKind::UnexpectedEof, TlsPhase::Handshake);
                        self.emit(Event::TlsFailed {
                            flow,
                            failure: failure.clone(),
                        });
                        self.attempt_failed(AttemptFailure::Tls(failure));
                    } else if self.current_flow() == Some(flow) {
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
    pub(super) fn enforce_output_cap(&mut self, flow: FlowId) {
        if self.current_flow() != Some(flow) {
            return;
        }
        let queued: usize = self.outputs.iter().map(Output::footprint).sum();
        if queued <= self.config.queue_limits().engine_output_bytes {
            return;
        }
        warn!("{flow}: the engine output queue holds {queued} bytes: failing the flow");
        // An overload reason: the teardown drops the flow's unsent bytes.
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
        if self.state.is_step(Step::Connecting) {
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
        let handshaking = self.state.is_step(Step::Handshaking) || self.flow_unproven();
        let tls_closure = self
            .state
            .flow_mut()
            .and_then(|f| f.tls.as_deref_mut())
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

    /// True while the flow has not proved itself: no data arrived yet and the stack has not
    /// reported a registration on it (a stack may do so before any byte of the 200 OK reached
    /// imstls, e.g. when it reads the socket itself). TLS 1.3 can fail after the handshake
    /// looks complete; until the flow is proven such a failure ends the attempt.
    pub(super) fn flow_unproven(&self) -> bool {
        !matches!(
            self.state,
            State::Registered { .. } | State::Deregistering { .. }
        ) && !self.flow_tls().is_some_and(TlsFlow::has_received_data)
    }

    /// Handshaking → AwaitingRegister: TLS is up, the stack may send REGISTER (O.4.2).
    pub(super) fn on_established(&mut self) {
        let registration_timeout = self.config.registration_timeout();
        let now = self.now;
        let State::Procedure {
            step,
            deadline,
            procedure,
            flow,
        } = &mut self.state
        else {
            return;
        };
        let Some(tls) = flow.tls.as_deref() else {
            return;
        };
        let Some(details) = tls.details() else {
            return;
        };
        let id = flow.id;
        let requested = tls.certificate_requested();
        let reason = procedure.reason;
        *step = Step::AwaitingRegister;
        *deadline = now + registration_timeout;
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
        self.emit(Event::RegisterNow { flow: id, reason });
    }

    /// A TLS failure on the current flow: O.3.1.2 for a rejected certificate (no retry),
    /// an attempt failure before the flow is proven (RFC 5626 §4.5 failover), else a lost
    /// flow (O.4.1).
    pub(super) fn on_tls_failure(&mut self, failure: TlsFailure) {
        let Some(flow) = self.current_flow() else {
            return;
        };
        if let Some(reason) = failure.certificate() {
            warn!("{flow}: P-CSCF certificate rejected: {reason}");
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
        if self.state.is_step(Step::Handshaking) || unproven {
            self.emit(Event::TlsFailed {
                flow,
                failure: failure.clone(),
            });
            self.attempt_failed(AttemptFailure::Tls(failure));
        } else {
            self.flow_lost(LossReason::Tls(failure));
        }
    }

    /// SIP messages, pings and pongs out of the flow's plaintext (RFC 5626 §3.5.1, §5.4).
    pub(super) fn process_plaintext(&mut self) {
        let mut pong_sent = false;
        let registered = matches!(self.state, State::Registered { .. });
        loop {
            let Some(flow) = self.state.flow_mut() else {
                return;
            };
            if let Some(tls) = flow.tls.as_deref_mut() {
                if tls.has_plaintext() {
                    flow.framer.push_owned(tls.take_plaintext());
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
                    if let Some(tls) = flow.tls.as_deref_mut() {
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
                        if registered {
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

    /// An RFC 5626 §4.4.1 keep-alive ping; its pong is due within the pong timeout.
    pub(super) fn send_ping(&mut self) {
        let pong_timeout = self.config.keepalive().pong_timeout;
        let now = self.now;
        let Some(flow) = self.state.flow_mut() else {
            return;
        };
        let id = flow.id;
        if let Some(tls) = flow.tls.as_deref_mut() {
            if tls.send(PING).is_ok() {
                flow.next_ping = None;
                flow.pong_deadline = Some(now + pong_timeout);
                self.flush_transmit();
                self.emit(Event::KeepAliveSent { flow: id });
            }
        }
    }
}
