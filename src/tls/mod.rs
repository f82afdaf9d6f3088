//! A sans-IO TLS flow to the P-CSCF over rustls's buffered `ClientConnection`, fed from
//! slices (the adapter that keeps a rustls 0.24 API change local).
//!
//! Bytes from the socket go in with [`TlsFlow::receive`]; bytes for the socket come out of
//! [`TlsFlow::take_transmit`]; SIP plaintext goes in with [`TlsFlow::send`] and comes out of
//! [`TlsFlow::take_plaintext`]. On any TLS failure the fatal alert rustls queued is moved to
//! the transmit output **before** the failure is reported (TS 33.203 O.3.1.2): the caller
//! drains [`TlsFlow::take_transmit`] and only then closes the socket.
// Forbidden, not just denied: nothing inside this layer can lift the lint again (only
// src/os.rs and src/ffi may use unsafe_code).
#![forbid(unsafe_code)]

pub(crate) mod cert_identity;
mod failure;
pub(crate) mod profile;
pub(crate) mod session;
mod verify;
pub(crate) mod x509;

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{AlertDescription, ClientConnection, HandshakeKind, IoState, ProtocolVersion};
use zeroize::Zeroizing;

pub use failure::{alert_name, CertificateFailure, TlsFailure, TlsFailureKind, TlsPhase};

use crate::config::Candidate;
use profile::TlsProfile;
use session::{HandshakeId, SessionStore};
use verify::CertificateRequestLog;

/// The negotiated TLS parameters of an established flow (for the O.2.2 binding view).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsDetails {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: &'static str,
    /// IANA name of the key-exchange group, e.g. `X25519MLKEM768` (none on a TLS 1.2
    /// abbreviated handshake).
    pub key_exchange_group: Option<&'static str>,
    /// True when the handshake resumed a stored session.
    pub resumed: bool,
    /// The P-CSCF's end-entity certificate (DER), read into a [`PeerCertificate`] only when
    /// someone asks: every handshake carries these details, few readers look at the
    /// certificate, and reading it is nearly all of what building the details cost.
    peer_certificate_der: Option<Vec<u8>>,
}

impl TlsDetails {
    /// A summary of the P-CSCF certificate (absent on a resumed handshake, or when the
    /// reporting reader cannot read a certificate webpki accepted). Read from the DER on each
    /// call.
    pub fn peer_certificate(&self) -> Option<PeerCertificate> {
        let info = x509::parse_certificate(self.peer_certificate_der.as_deref()?).ok()?;
        Some(PeerCertificate {
            subject_common_name: info.subject_common_name,
            issuer_common_name: info.issuer_common_name,
            not_before: info.not_before,
            not_after: info.not_after,
            subject_alt_names: summarise_sans(&info.subject_alt_names),
        })
    }
}

impl fmt::Debug for TlsDetails {
    /// As the derived form would print it, with the certificate's summary, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsDetails")
            .field("version", &self.version)
            .field("cipher_suite", &self.cipher_suite)
            .field("key_exchange_group", &self.key_exchange_group)
            .field("resumed", &self.resumed)
            .field("peer_certificate", &self.peer_certificate())
            .finish()
    }
}

/// What the P-CSCF certificate said, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject commonName (diagnostics only; never used for matching).
    pub subject_common_name: Option<String>,
    /// Issuer commonName.
    pub issuer_common_name: Option<String>,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// subjectAltName entries (`sip:` URIs, DNS names, IP addresses).
    pub subject_alt_names: Vec<String>,
}

/// How the transport ended, as seen by TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closure {
    /// The peer sent close_notify first.
    Clean,
    /// The transport closed without close_notify.
    Failed(TlsFailure),
}

/// Misuse of a flow (not a TLS failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStateError {
    /// The handshake has not completed yet.
    NotEstablished,
    /// The flow already failed or was closed.
    Closed,
    /// TLS 1.2 has no KeyUpdate; a new flow is the only way to rekey.
    RekeyNeedsTls13,
}

impl std::fmt::Display for FlowStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotEstablished => "the TLS handshake has not completed",
            Self::Closed => "the TLS flow is closed",
            Self::RekeyNeedsTls13 => {
                "KeyUpdate needs TLS 1.3; rekey a TLS 1.2 flow with a new flow"
            }
        })
    }
}

impl std::error::Error for FlowStateError {}

/// One TLS connection to one P-CSCF candidate.
pub struct TlsFlow {
    conn: ClientConnection,
    transmit: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
    failure: Option<TlsFailure>,
    closed: bool,
    /// Our close_notify is out (a peer's close_notify is answered with one: RFC 8446 §6.1).
    close_notify_sent: bool,
    received_data: bool,
    cert_requests: Arc<CertificateRequestLog>,
    sessions: Arc<SessionStore>,
    /// The store's attempt for this handshake; `None` once its kind has been reported.
    handshake: Option<HandshakeId>,
}

impl std::fmt::Debug for TlsFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFlow")
            .field("handshaking", &self.conn.is_handshaking())
            .field("failure", &self.failure)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl TlsFlow {
    /// Starts a handshake towards `candidate`; the ClientHello is ready in
    /// [`take_transmit`](Self::take_transmit).
    pub fn connect(profile: &TlsProfile, candidate: &Candidate) -> Result<Self, TlsFailure> {
        let server_name = profile.server_name_for(candidate);
        profile.cert_requests.reset();
        // Before rustls looks up a session to offer: the store dates what it hands out and
        // what this handshake stores (session.rs, "Dating sessions").
        let handshake = profile.sessions.begin_handshake(&server_name);
        let conn =
            ClientConnection::new(profile.client_config.clone(), server_name).map_err(|e| {
                TlsFailure::new(TlsFailureKind::Other(e.to_string()), TlsPhase::Handshake)
            })?;
        Ok(Self {
            conn,
            transmit: Vec::new(),
            plaintext: Zeroizing::new(Vec::new()),
            failure: None,
            closed: false,
            close_notify_sent: false,
            received_data: false,
            cert_requests: profile.cert_requests.clone(),
            sessions: profile.sessions.clone(),
            handshake: Some(handshake),
        })
    }

    /// True once the handshake has completed.
    pub fn is_established(&self) -> bool {
        !self.conn.is_handshaking() && self.failure.is_none()
    }

    /// True when the flow failed or was closed by either side.
    pub fn is_closed(&self) -> bool {
        self.closed || self.failure.is_some()
    }

    /// The failure that ended the flow, if any.
    #[cfg(feature = "_internal_test_exports")] // only tests and fuzz targets call it
    pub fn failure(&self) -> Option<&TlsFailure> {
        self.failure.as_ref()
    }

    /// True once application data arrived: only then has the flow proved itself. TLS 1.3 can
    /// still fail after the handshake looks complete (e.g. a P-CSCF that demands a client
    /// certificate sends certificate_required after our Finished).
    pub fn has_received_data(&self) -> bool {
        self.received_data
    }

    /// True when the P-CSCF sent a CertificateRequest on this flow (O.2.1 says it shall
    /// not); imstls answered with no certificate.
    pub fn certificate_requested(&self) -> bool {
        self.cert_requests.count() > 0
    }

    fn phase(&self) -> TlsPhase {
        if self.conn.is_handshaking() {
            TlsPhase::Handshake
        } else {
            TlsPhase::Established
        }
    }

    /// Feeds bytes received from the socket. On `Err`, the flow is dead and any fatal alert
    /// is already waiting in [`take_transmit`](Self::take_transmit).
    pub fn receive(&mut self, mut data: &[u8]) -> Result<(), TlsFailure> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        while !data.is_empty() {
            let phase = self.phase();
            match self.conn.read_tls(&mut data) {
                Ok(_) => {}
                Err(e) => {
                    // rustls refuses more input only when its buffers are full of data
                    // nobody reads, which the draining below prevents; treat it as fatal.
                    let failure =
                        TlsFailure::new(TlsFailureKind::Other(format!("read_tls: {e}")), phase);
                    return Err(self.fail(failure));
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(error) => {
                    let negotiated = self.conn.negotiated_cipher_suite().is_some();
                    let mut failure = TlsFailure::from_rustls(&error, phase, negotiated);
                    // A TLS 1.2 P-CSCF that demands the client certificate it asked for answers
                    // our empty Certificate with handshake_failure (TLS 1.3 says
                    // certificate_required): that is the O.2.1 case, not a passing failure.
                    if phase == TlsPhase::Handshake
                        && failure.alert_received == Some(AlertDescription::HandshakeFailure)
                        && self.certificate_requested()
                    {
                        failure.kind = TlsFailureKind::ClientCertificateRequested;
                    }
                    self.flush_transmit();
                    if !self.transmit.is_empty() {
                        failure.alert_sent = last_plaintext_alert(&self.transmit)
                            .or_else(|| failure::alert_for(&error));
                    }
                    return Err(self.fail(failure));
                }
            };
            self.drain_plaintext(state);
            self.report_handshake_kind();
        }
        self.flush_transmit();
        Ok(())
    }

    /// O.2.1 session lifetime: a completed full handshake authenticated the P-CSCF now, so
    /// the sessions it stores are dated from its start, not from the session it may have
    /// offered and the server declined.
    fn report_handshake_kind(&mut self) {
        if self.conn.is_handshaking() {
            return;
        }
        if let Some(id) = self.handshake.take() {
            if self.conn.handshake_kind() != Some(HandshakeKind::Resumed) {
                self.sessions.handshake_was_full(id);
            }
        }
    }

    fn fail(&mut self, failure: TlsFailure) -> TlsFailure {
        self.flush_transmit();
        self.failure = Some(failure.clone());
        failure
    }

    /// Moves what rustls decrypted into `self.plaintext`, reading straight into that
    /// zeroizing buffer: no 4 KiB stack chunk to fill and wipe on every call, no second copy.
    fn drain_plaintext(&mut self, state: IoState) {
        let pending = state.plaintext_bytes_to_read();
        if pending > 0 {
            let start = self.plaintext.len();
            if self.plaintext.capacity() - start < pending {
                // Grow as `crate::sip::extend_wiping` does: the old block wipes itself.
                let needed = (start + pending).max(2 * self.plaintext.capacity());
                let mut grown = Zeroizing::new(Vec::with_capacity(needed));
                grown.extend_from_slice(&self.plaintext);
                std::mem::swap(&mut self.plaintext, &mut grown);
            }
            self.plaintext.resize(start + pending, 0);
            match self.conn.reader().read_exact(&mut self.plaintext[start..]) {
                Ok(()) => self.received_data = true,
                // Cannot happen: rustls said how much it holds. Keep only real bytes.
                Err(_) => self.plaintext.truncate(start),
            }
        }
        if state.peer_has_closed() {
            self.closed = true; // close_notify received, and everything before it read
        }
    }

    fn flush_transmit(&mut self) {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.transmit) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Takes the TLS bytes to write to the socket, if any.
    pub fn take_transmit(&mut self) -> Option<Vec<u8>> {
        self.flush_transmit();
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// Takes the SIP plaintext received so far. The buffer zeroizes itself when dropped.
    pub fn take_plaintext(&mut self) -> Zeroizing<Vec<u8>> {
        std::mem::replace(&mut self.plaintext, Zeroizing::new(Vec::new()))
    }

    /// True when received plaintext is waiting.
    pub fn has_plaintext(&self) -> bool {
        !self.plaintext.is_empty()
    }

    /// Encrypts SIP plaintext for the P-CSCF; the records come out of
    /// [`take_transmit`](Self::take_transmit).
    pub fn send(&mut self, mut plaintext: &[u8]) -> Result<(), FlowStateError> {
        if self.is_closed() {
            return Err(FlowStateError::Closed);
        }
        if self.conn.is_handshaking() {
            return Err(FlowStateError::NotEstablished);
        }
        while !plaintext.is_empty() {
            let written = self
                .conn
                .writer()
                .write(plaintext)
                .map_err(|_| FlowStateError::Closed)?;
            plaintext = &plaintext[written..];
            self.flush_transmit();
            if written == 0 {
                return Err(FlowStateError::Closed);
            }
        }
        Ok(())
    }

    /// The socket reported end of stream. Returns how the flow ended.
    pub fn receive_eof(&mut self) -> Closure {
        if let Some(failure) = &self.failure {
            return Closure::Failed(failure.clone());
        }
        if self.closed {
            return Closure::Clean;
        }
        let phase = self.phase();
        let _ = self.conn.read_tls(&mut io::empty());
        match self.conn.process_new_packets() {
            Ok(state) => self.drain_plaintext(state),
            Err(error) => {
                let negotiated = self.conn.negotiated_cipher_suite().is_some();
                let failure = TlsFailure::from_rustls(&error, phase, negotiated);
                return Closure::Failed(self.fail(failure));
            }
        }
        if self.closed {
            return Closure::Clean;
        }
        let failure = TlsFailure::new(TlsFailureKind::UnexpectedEof, phase);
        Closure::Failed(self.fail(failure))
    }

    /// Queues close_notify; the flow accepts no more plaintext.
    pub fn close(&mut self) {
        if !self.close_notify_sent && self.failure.is_none() {
            self.conn.send_close_notify();
            self.flush_transmit();
            self.close_notify_sent = true;
        }
        self.closed = true;
    }

    /// TLS 1.3 KeyUpdate (RFC 8446 §4.6.3): fresh traffic keys on the same flow.
    pub fn rekey(&mut self) -> Result<(), FlowStateError> {
        if self.is_closed() {
            return Err(FlowStateError::Closed);
        }
        if self.conn.is_handshaking() {
            return Err(FlowStateError::NotEstablished);
        }
        if self.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
            return Err(FlowStateError::RekeyNeedsTls13);
        }
        self.conn
            .refresh_traffic_keys()
            .map_err(|_| FlowStateError::Closed)?;
        self.flush_transmit();
        Ok(())
    }

    /// The negotiated parameters, once established.
    pub fn details(&self) -> Option<TlsDetails> {
        if self.conn.is_handshaking() {
            return None;
        }
        let version = match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => "TLSv1.3",
            ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "unknown",
        };
        let suite = self.conn.negotiated_cipher_suite()?.suite();
        Some(TlsDetails {
            version,
            cipher_suite: suite.as_str().unwrap_or("unknown"),
            key_exchange_group: self
                .conn
                .negotiated_key_exchange_group()
                .map(|g| g.name().as_str().unwrap_or("unknown")),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
            peer_certificate_der: self
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.as_ref().to_vec()),
        })
    }
}

fn summarise_sans(names: &x509::SubjectAltNames) -> Vec<String> {
    names
        .uris
        .iter()
        .map(|u| format!("URI:{}", u.escape_debug()))
        .chain(
            names
                .dns_names
                .iter()
                .map(|d| format!("DNS:{}", d.escape_debug())),
        )
        .chain(names.ip_addresses.iter().map(|ip| format!("IP:{ip}")))
        .collect()
}

/// The description of the last record in `bytes` if it is an unencrypted alert record.
fn last_plaintext_alert(bytes: &[u8]) -> Option<AlertDescription> {
    let mut rest = bytes;
    let mut last = None;
    while rest.len() >= 5 {
        let content_type = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let record = rest.get(5..5 + len)?;
        last = (content_type == 21 && len == 2).then(|| AlertDescription::from(record[1]));
        rest = &rest[5 + len..];
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_alert_records_are_recognised() {
        let alert = [21, 3, 3, 0, 2, 2, 42];
        assert_eq!(
            last_plaintext_alert(&alert),
            Some(AlertDescription::BadCertificate)
        );
        let handshake_then_alert = [22, 3, 3, 0, 1, 0, 21, 3, 3, 0, 2, 2, 48];
        assert_eq!(
            last_plaintext_alert(&handshake_then_alert),
            Some(AlertDescription::UnknownCA)
        );
        // An encrypted (application_data) record hides its alert.
        assert_eq!(last_plaintext_alert(&[23, 3, 3, 0, 2, 1, 2]), None);
        assert_eq!(last_plaintext_alert(&[21, 3, 3, 0, 9, 2]), None);
    }
}
