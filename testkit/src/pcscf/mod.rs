//! [`PcscfCore`]: a sans-IO simulated P-CSCF for ONE TLS connection.
//!
//! Driving contract: hand every byte received from the UE to [`PcscfCore::receive`] (and the end
//! of the stream to [`PcscfCore::transport_eof`]), then send what [`PcscfCore::take_output`]
//! returns. No clock, no socket, no thread: tests can run it in memory on a simulated clock.
//! Everything notable is appended to an [`Observation`] log.
//!
//! The registrar is shared ([`SharedRegistrar`]) so registrations outlive connections; dropping
//! the core marks its flow closed in the registrar.

mod factory;

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use rustls::{Error, HandshakeKind, ServerConfig, ServerConnection};

use crate::observation::{Observation, RecordScanner, RecordSeen};
use crate::registrar::{FlowId, RequestContext, SharedRegistrar};
use crate::sip::{Frame, Framer, SipMessage};

pub use factory::PcscfFactory;

/// One simulated P-CSCF TLS connection.
pub struct PcscfCore {
    conn: ServerConnection,
    framer: Framer,
    registrar: SharedRegistrar,
    flow: FlowId,
    observations: Vec<Observation>,
    client_cert_requested: bool,
    handshake_reported: bool,
    tls_failed: bool,
    peer_closed: bool,
    close_sent: bool,
    transport_closed: bool,
    requests_seen: usize,
    answered: usize,
    answer_limit: Option<usize>,
    /// The record layer of what the UE sent and of what we sent, for the alert trace.
    scan_in: RecordScanner,
    scan_out: RecordScanner,
    bytes_received: usize,
    bytes_sent: usize,
    /// Set while the transport lingers after our close: bytes are still read (to observe the
    /// UE's close_notify or alert) but no request reaches the registrar.
    observe_only: bool,
}

impl std::fmt::Debug for PcscfCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscfCore")
            .field("flow", &self.flow)
            .field("handshaking", &self.conn.is_handshaking())
            .field("answered", &self.answered)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl PcscfCore {
    /// A new connection using `config` (keep one `Arc` per simulator so that sessions resume),
    /// answering SIP through `registrar`; `flow` names the connection to the registrar.
    pub fn new(
        config: Arc<ServerConfig>,
        registrar: SharedRegistrar,
        flow: FlowId,
    ) -> Result<PcscfCore, Error> {
        Ok(PcscfCore {
            conn: ServerConnection::new(config)?,
            framer: Framer::new(),
            registrar,
            flow,
            observations: Vec::new(),
            client_cert_requested: false,
            handshake_reported: false,
            tls_failed: false,
            peer_closed: false,
            close_sent: false,
            transport_closed: false,
            requests_seen: 0,
            answered: 0,
            answer_limit: None,
            scan_in: RecordScanner::default(),
            scan_out: RecordScanner::default(),
            bytes_received: 0,
            bytes_sent: 0,
            observe_only: false,
        })
    }

    /// Tells the core that its config sends a CertificateRequest, so that an empty client
    /// Certificate is reported as `ClientCertificateSent { empty: true }`. (A non-empty one is
    /// always reported.)
    pub fn set_client_cert_requested(&mut self, requested: bool) {
        self.client_cert_requested = requested;
    }

    /// Stops answering once `limit` requests have been answered in total (`None`: no limit).
    /// Requests beyond it are logged as `RequestIgnored`, pings get no pong. Used for the
    /// Silent/Close/Reset-after-N faults.
    pub fn set_answer_limit(&mut self, limit: Option<usize>) {
        self.answer_limit = limit;
    }

    /// The registrar flow id of this connection.
    pub fn flow(&self) -> FlowId {
        self.flow
    }

    /// Feeds TLS bytes received from the UE.
    pub fn receive(&mut self, tls_bytes: &[u8]) {
        self.bytes_received += tls_bytes.len();
        for seen in self.scan_in.feed(tls_bytes) {
            if let RecordSeen::PlaintextAlert(level, description) = seen {
                self.observations
                    .push(Observation::AlertRecordReceived { level, description });
            }
        }
        let mut rest = tls_bytes;
        while !rest.is_empty() && !self.tls_failed {
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => self.process(),
                Err(e) => {
                    self.tls_failed = true;
                    self.observations
                        .push(Observation::TlsError(format!("read_tls: {e}")));
                }
            }
        }
    }

    /// Tells the core that the TCP stream ended (EOF) or failed.
    pub fn transport_eof(&mut self) {
        if !self.transport_closed {
            self.transport_closed = true;
            self.observations.push(Observation::TransportClosed {
                clean: self.peer_closed,
            });
            self.observations.push(Observation::Traffic {
                received: self.bytes_received,
                sent: self.bytes_sent,
            });
        }
    }

    /// TLS bytes to send to the UE (including a fatal alert after a TLS failure).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.bytes_sent += out.len();
        for seen in self.scan_out.feed(&out) {
            self.observations.push(match seen {
                RecordSeen::PlaintextAlert(level, description) => {
                    Observation::AlertRecordSent { level, description }
                }
                RecordSeen::EncryptedAlert => Observation::EncryptedAlertRecordSent,
            });
        }
        out
    }

    /// Records that the transport carrying this connection sent FIN to the UE (the socket
    /// simulator, or an in-memory harness delivering EOF for this core).
    pub fn note_fin_sent(&mut self) {
        self.observations.push(Observation::FinSent);
    }

    /// Records that the transport reset the connection towards the UE.
    pub fn note_reset_sent(&mut self) {
        self.observations.push(Observation::ResetSent);
    }

    /// From now on, requests are logged as `RequestIgnored` and never reach the registrar;
    /// TLS records are still read and observed (used while a closed connection lingers).
    pub fn observe_only(&mut self) {
        self.observe_only = true;
    }

    /// Bytes handed to [`PcscfCore::receive`] so far.
    pub fn bytes_received(&self) -> usize {
        self.bytes_received
    }

    /// Bytes returned by [`PcscfCore::take_output`] so far.
    pub fn bytes_sent(&self) -> usize {
        self.bytes_sent
    }

    /// Sends a terminating request (e.g. MESSAGE) to the UE.
    pub fn send_request(&mut self, sip: &[u8]) {
        let method = SipMessage::parse(sip)
            .ok()
            .and_then(|m| m.method().map(str::to_owned))
            .unwrap_or_else(|| "?".to_owned());
        if self.write_plaintext(sip) {
            self.observations.push(Observation::RequestSent { method });
        }
    }

    /// Sends a CRLFCRLF keep-alive ping (RFC 5626 §3.5.1).
    pub fn send_ping(&mut self) {
        if self.write_plaintext(b"\r\n\r\n") {
            self.observations.push(Observation::PingSent);
        }
    }

    /// Sends a TLS 1.3 KeyUpdate (an error is logged on TLS 1.2).
    pub fn send_key_update(&mut self) {
        match self.conn.refresh_traffic_keys() {
            Ok(()) => self.observations.push(Observation::KeyUpdateSent),
            Err(e) => self.observations.push(Observation::TlsError(e.to_string())),
        }
    }

    /// Sends close_notify (once).
    pub fn close_notify(&mut self) {
        if !self.close_sent && !self.tls_failed {
            self.close_sent = true;
            self.conn.send_close_notify();
            self.observations.push(Observation::CloseNotifySent);
        }
    }

    /// True once no more SIP can flow: TLS failed, either side sent close_notify, or the
    /// transport ended.
    pub fn is_closed(&self) -> bool {
        self.tls_failed || self.close_sent || self.peer_closed || self.transport_closed
    }

    /// True while the TLS handshake is in progress.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Full or resumed, once the handshake is done.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.conn.handshake_kind()
    }

    /// The SNI the UE sent.
    pub fn sni(&self) -> Option<&str> {
        self.conn.server_name()
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// The observation log so far.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Removes and returns the observation log so far.
    pub fn take_observations(&mut self) -> Vec<Observation> {
        std::mem::take(&mut self.observations)
    }

    fn process(&mut self) {
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                self.tls_failed = true;
                self.observations.push(match e {
                    Error::AlertReceived(description) => Observation::AlertReceived { description },
                    other => Observation::TlsError(other.to_string()),
                });
                return;
            }
        };
        self.report_handshake();
        let pending = state.plaintext_bytes_to_read();
        if pending > 0 {
            let mut buf = vec![0u8; pending];
            match self.conn.reader().read_exact(&mut buf) {
                Ok(()) => self.framer.push(&buf),
                Err(e) => self
                    .observations
                    .push(Observation::TlsError(format!("reading plaintext: {e}"))),
            }
        }
        self.drain_frames();
        if state.peer_has_closed() && !self.peer_closed {
            self.peer_closed = true;
            self.observations.push(Observation::PeerClosed);
        }
    }

    fn report_handshake(&mut self) {
        if self.handshake_reported || self.conn.is_handshaking() {
            return;
        }
        self.handshake_reported = true;
        let (Some(version), Some(suite)) = (
            self.conn.protocol_version(),
            self.conn.negotiated_cipher_suite(),
        ) else {
            return;
        };
        self.observations.push(Observation::HandshakeDone {
            version,
            cipher_suite: suite.suite(),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
            sni: self.conn.server_name().map(str::to_owned),
        });
        self.observations.push(Observation::KeyExchange {
            group: self.conn.negotiated_key_exchange_group().map(|g| g.name()),
        });
        let sent_cert = self.conn.peer_certificates().is_some_and(|c| !c.is_empty());
        if sent_cert || self.client_cert_requested {
            self.observations
                .push(Observation::ClientCertificateSent { empty: !sent_cert });
        }
    }

    fn answering(&self) -> bool {
        self.answer_limit.is_none_or(|limit| self.answered < limit)
    }

    fn drain_frames(&mut self) {
        loop {
            match self.framer.next_frame() {
                Ok(None) => return,
                Ok(Some(Frame::Ping)) => {
                    self.observations.push(Observation::PingReceived);
                    if self.answering() && self.write_plaintext(b"\r\n") {
                        self.observations.push(Observation::PongSent);
                    }
                }
                Ok(Some(Frame::Pong)) => self.observations.push(Observation::PongReceived),
                Ok(Some(Frame::Message(bytes))) => self.handle_message(&bytes),
                Err(e) => {
                    self.observations
                        .push(Observation::FramingError(e.to_string()));
                    self.close_notify();
                    return;
                }
            }
        }
    }

    fn handle_message(&mut self, bytes: &[u8]) {
        let msg = match SipMessage::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.observations
                    .push(Observation::MalformedSip(e.to_string()));
                return;
            }
        };
        let Some(method) = msg.method().map(str::to_owned) else {
            let status = msg.status().unwrap_or_default();
            self.observations
                .push(Observation::ResponseReceived(status));
            return;
        };
        self.requests_seen += 1;
        if !self.answering() || self.observe_only {
            self.observations
                .push(Observation::RequestIgnored { method });
            return;
        }
        let ctx = RequestContext {
            flow: self.flow,
            first_on_connection: self.requests_seen == 1,
        };
        let handled = self.registrar.lock().handle_request(&msg, ctx);
        match handled.register {
            Some(info) => self.observations.push(Observation::RegisterSeen {
                authorized: info.authorized,
                expires: info.expires,
                has_outbound: info.has_outbound,
                first_on_connection: info.first_on_connection,
            }),
            None => self.observations.push(Observation::RequestSeen { method }),
        }
        if let Some(response) = handled.response {
            let status = response.status().unwrap_or_default();
            if self.write_plaintext(&response.to_bytes()) {
                self.answered += 1;
                self.observations.push(Observation::ResponseSent(status));
            }
        }
    }

    fn write_plaintext(&mut self, bytes: &[u8]) -> bool {
        if self.tls_failed || self.close_sent {
            return false;
        }
        match self.conn.writer().write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.observations
                    .push(Observation::TlsError(format!("writing plaintext: {e}")));
                false
            }
        }
    }
}

impl Drop for PcscfCore {
    fn drop(&mut self) {
        self.registrar.lock().flow_closed(self.flow);
    }
}

#[cfg(test)]
mod tests;
