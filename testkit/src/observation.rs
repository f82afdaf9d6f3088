//! What the simulated P-CSCF saw and did, in order (no timestamps: tests may run on a simulated
//! clock).
//!
//! Like OpenSSL's `-msg` trace, the log is written from the P-CSCF's own side: the alerts it
//! read and wrote (with their level wherever the record layer shows it), its close_notify,
//! and what happened to the TCP stream (FIN or RST, sent or received).

use std::net::SocketAddr;

use rustls::{AlertDescription, CipherSuite, NamedGroup, ProtocolVersion};

/// One notable event on a simulated P-CSCF connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observation {
    /// The simulator accepted a TCP connection (socket simulator only).
    Accepted {
        /// The UE's address.
        peer: SocketAddr,
    },
    /// The TLS handshake completed.
    HandshakeDone {
        /// Negotiated version.
        version: ProtocolVersion,
        /// Negotiated cipher suite.
        cipher_suite: CipherSuite,
        /// True for an abbreviated (resumed) handshake.
        resumed: bool,
        /// The SNI the UE sent, if any.
        sni: Option<String>,
    },
    /// The key exchange group of the completed handshake (right after `HandshakeDone`).
    KeyExchange {
        /// The group, if rustls reports one.
        group: Option<NamedGroup>,
    },
    /// After a handshake in which the server sent a CertificateRequest, or in which the UE sent
    /// a certificate anyway: whether the UE's Certificate message was empty.
    ClientCertificateSent {
        /// True when the UE sent no certificate (what O.2.1 expects).
        empty: bool,
    },
    /// The P-CSCF's rustls reported an alert from the UE (`Error::AlertReceived`): a fatal
    /// alert, or in TLS 1.3 any alert but close_notify/user_canceled. The level is in the
    /// matching [`Observation::AlertRecordReceived`] when the record was plaintext; an
    /// encrypted alert shows only here.
    AlertReceived {
        /// The alert the UE sent.
        description: AlertDescription,
    },
    /// A plaintext alert record the P-CSCF read, decoded from the record layer (alerts before
    /// the UE's ChangeCipherSpec or Finished are not encrypted).
    AlertRecordReceived {
        /// The level byte as sent.
        level: AlertLevel,
        /// The alert.
        description: AlertDescription,
    },
    /// A plaintext alert record the P-CSCF wrote, decoded from its own output.
    AlertRecordSent {
        /// The level byte as sent.
        level: AlertLevel,
        /// The alert.
        description: AlertDescription,
    },
    /// An encrypted TLS 1.2 alert record (content type 21, protected) the P-CSCF wrote: its
    /// level and description are not visible on the wire.
    EncryptedAlertRecordSent,
    /// Any other TLS failure (the fatal alert rustls queued is still flushed to the UE).
    TlsError(String),
    /// A REGISTER arrived (and was answered, see the following `ResponseSent`).
    RegisterSeen {
        /// It carried an `Authorization` header with a non-empty response.
        authorized: bool,
        /// The expiry it asked for, if any.
        expires: Option<u32>,
        /// `Supported: outbound` with a `reg-id` Contact.
        has_outbound: bool,
        /// It was the first SIP request on this connection (O.4.2).
        first_on_connection: bool,
    },
    /// A non-REGISTER request arrived.
    RequestSeen {
        /// Its method.
        method: String,
    },
    /// A request arrived while a Silent fault was active; nothing was answered.
    RequestIgnored {
        /// Its method.
        method: String,
    },
    /// The P-CSCF answered with this status.
    ResponseSent(u16),
    /// The UE answered a request the P-CSCF sent.
    ResponseReceived(u16),
    /// The P-CSCF sent a terminating request to the UE.
    RequestSent {
        /// Its method.
        method: String,
    },
    /// A SIP message that could not be parsed.
    MalformedSip(String),
    /// The byte stream could not be framed (oversized, bad Content-Length); the connection is
    /// closed.
    FramingError(String),
    /// A CRLFCRLF ping from the UE.
    PingReceived,
    /// The CRLF pong answering it.
    PongSent,
    /// A CRLFCRLF ping sent by the P-CSCF.
    PingSent,
    /// A CRLF pong from the UE.
    PongReceived,
    /// The P-CSCF sent a TLS 1.3 KeyUpdate.
    KeyUpdateSent,
    /// The P-CSCF sent close_notify.
    CloseNotifySent,
    /// The UE sent close_notify.
    PeerClosed,
    /// The TCP stream ended (EOF) or failed; `clean` when close_notify had been received first.
    TransportClosed {
        /// The UE's close_notify came before the EOF.
        clean: bool,
    },
    /// The P-CSCF reset the TCP connection (SO_LINGER 0).
    ResetSent,
    /// The P-CSCF ended its side of the TCP stream (FIN).
    FinSent,
    /// The UE reset the TCP connection (the P-CSCF's read failed with ECONNRESET).
    ResetReceived,
    /// At the end of the TCP stream: the TLS bytes the P-CSCF read and wrote on it.
    Traffic {
        /// Bytes received from the UE.
        received: usize,
        /// Bytes sent to the UE.
        sent: usize,
    },
    /// A socket error on the connection.
    TransportError(String),
}

/// The level byte of an alert record (RFC 5246 §7.2, RFC 8446 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertLevel {
    /// 1
    Warning,
    /// 2
    Fatal,
    /// Any other byte.
    Unknown(u8),
}

impl AlertLevel {
    /// The level of the byte `level`.
    pub fn from_byte(level: u8) -> AlertLevel {
        match level {
            1 => AlertLevel::Warning,
            2 => AlertLevel::Fatal,
            other => AlertLevel::Unknown(other),
        }
    }

    /// `warning`, `fatal` or `level N`.
    pub fn name(&self) -> String {
        match self {
            AlertLevel::Warning => "warning".into(),
            AlertLevel::Fatal => "fatal".into(),
            AlertLevel::Unknown(n) => format!("level {n}"),
        }
    }
}

/// What [`RecordScanner`] found in a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordSeen {
    /// A plaintext alert record (2-byte body).
    PlaintextAlert(AlertLevel, AlertDescription),
    /// An alert record whose body is protected (longer than 2 bytes).
    EncryptedAlert,
}

/// Follows the TLS record layer of one direction of a stream, across arbitrary chunking, and
/// reports the alert records in it. Stops at the first byte that cannot start a record
/// (content types 20–24), since the stream is then no longer TLS.
#[derive(Clone, Debug, Default)]
pub struct RecordScanner {
    header: Vec<u8>,
    remaining: usize,
    alert_body: Option<Vec<u8>>,
    lost: bool,
}

impl RecordScanner {
    /// Feeds the next bytes of the stream; returns the alert records completed in them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<RecordSeen> {
        let mut seen = Vec::new();
        while !bytes.is_empty() && !self.lost {
            if self.remaining == 0 {
                let take = (5 - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() < 5 {
                    continue;
                }
                if !(20..=24).contains(&self.header[0]) {
                    self.lost = true;
                    continue;
                }
                let len = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                let is_alert = self.header[0] == 21;
                self.header.clear();
                if is_alert && len > 2 {
                    seen.push(RecordSeen::EncryptedAlert);
                }
                self.alert_body = (is_alert && len == 2).then(Vec::new);
                self.remaining = len;
                continue;
            }
            let take = self.remaining.min(bytes.len());
            if let Some(body) = &mut self.alert_body {
                body.extend_from_slice(&bytes[..take]);
            }
            bytes = &bytes[take..];
            self.remaining -= take;
            if self.remaining == 0 {
                if let Some(body) = self.alert_body.take() {
                    seen.push(RecordSeen::PlaintextAlert(
                        AlertLevel::from_byte(body[0]),
                        AlertDescription::from(body[1]),
                    ));
                }
            }
        }
        seen
    }
}
