//! What the simulated P-CSCF saw and did, in order (no timestamps: tests may run on a simulated
//! clock).

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
    /// The UE sent a fatal alert (e.g. `BadCertificate`, `CertificateExpired`, `UnknownCA`).
    AlertReceived {
        /// The alert the UE sent.
        description: AlertDescription,
    },
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
    /// A socket error on the connection.
    TransportError(String),
}
