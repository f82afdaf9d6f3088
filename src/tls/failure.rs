//! Why a TLS flow failed, in terms a SIP stack and a test lab can act on.
//!
//! rustls errors are mapped to a [`TlsFailureKind`]; certificate errors to a
//! [`CertificateFailure`] with context (expected vs presented names, times). The alert imstls
//! put on the wire and the alert the peer sent are kept beside the kind.

use std::fmt;

use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible, PeerMisbehaved};

use super::verify::{ClientCertificateRequested, PinMismatch};

/// Why the P-CSCF certificate was rejected (TS 33.203 O.3.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateFailure {
    /// Past its notAfter. Times are seconds since the Unix epoch, when known.
    Expired {
        /// The certificate's notAfter.
        not_after: Option<u64>,
        /// The verification time.
        now: Option<u64>,
    },
    /// Before its notBefore.
    NotYetValid {
        /// The certificate's notBefore.
        not_before: Option<u64>,
        /// The verification time.
        now: Option<u64>,
    },
    /// Does not chain to a configured trust anchor (includes self-signed and a missing
    /// intermediate).
    UnknownIssuer,
    /// Does not name the expected P-CSCF (RFC 5922).
    NameMismatch {
        /// What was expected.
        expected: String,
        /// What the certificate presented.
        presented: Vec<String>,
    },
    /// A signature in the chain does not verify.
    BadSignature,
    /// A signature algorithm or key the profile does not accept (e.g. SHA-1, RSA-1024).
    UnsupportedAlgorithm,
    /// The extended key usage does not allow TLS server authentication.
    WrongUsage,
    /// A CA certificate (basicConstraints cA=TRUE) was presented as the P-CSCF's own.
    CaUsedAsEndEntity,
    /// The key matches no configured SPKI pin.
    PinMismatch,
    /// Listed on a configured CRL.
    Revoked,
    /// Revocation status could not be determined from the configured CRLs.
    RevocationStatusUnknown,
    /// The certificate could not be parsed.
    Malformed,
    /// Anything else webpki reported.
    Other(String),
}

impl CertificateFailure {
    /// A stable machine-readable code (used in JSON output and by the C API).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::NameMismatch { .. } => "name_mismatch",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::WrongUsage => "wrong_usage",
            Self::CaUsedAsEndEntity => "ca_used_as_end_entity",
            Self::PinMismatch => "pin_mismatch",
            Self::Revoked => "revoked",
            Self::RevocationStatusUnknown => "revocation_status_unknown",
            Self::Malformed => "malformed",
            Self::Other(_) => "other",
        }
    }

    fn from_rustls(error: &CertificateError) -> Self {
        use CertificateError as C;
        match error {
            C::Expired => Self::Expired {
                not_after: None,
                now: None,
            },
            C::ExpiredContext { time, not_after } => Self::Expired {
                not_after: Some(not_after.as_secs()),
                now: Some(time.as_secs()),
            },
            C::NotValidYet => Self::NotYetValid {
                not_before: None,
                now: None,
            },
            C::NotValidYetContext { time, not_before } => Self::NotYetValid {
                not_before: Some(not_before.as_secs()),
                now: Some(time.as_secs()),
            },
            C::UnknownIssuer => Self::UnknownIssuer,
            C::NotValidForName => Self::NameMismatch {
                expected: String::new(),
                presented: Vec::new(),
            },
            C::NotValidForNameContext {
                expected,
                presented,
            } => Self::NameMismatch {
                expected: server_name_text(expected),
                presented: presented.clone(),
            },
            #[allow(deprecated)]
            C::BadSignature => Self::BadSignature,
            #[allow(deprecated)]
            C::UnsupportedSignatureAlgorithm
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                Self::UnsupportedAlgorithm
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => Self::WrongUsage,
            C::Revoked => Self::Revoked,
            C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. } => Self::RevocationStatusUnknown,
            C::BadEncoding | C::UnhandledCriticalExtension => Self::Malformed,
            C::Other(other) => {
                if other.0.downcast_ref::<PinMismatch>().is_some() {
                    Self::PinMismatch
                } else {
                    let text = other.to_string();
                    if text.contains("CaUsedAsEndEntity") {
                        Self::CaUsedAsEndEntity
                    } else if text.contains("RequiredEkuNotFound") {
                        Self::WrongUsage
                    } else {
                        Self::Other(text)
                    }
                }
            }
            other => Self::Other(format!("{other:?}")),
        }
    }
}

fn utc(seconds: u64) -> String {
    super::x509::format_utc(i64::try_from(seconds).unwrap_or(i64::MAX))
}

fn server_name_text(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

impl fmt::Display for CertificateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired { not_after, .. } => match not_after {
                Some(t) => write!(f, "certificate expired (notAfter {})", utc(*t)),
                None => write!(f, "certificate expired"),
            },
            Self::NotYetValid { not_before, .. } => match not_before {
                Some(t) => write!(f, "certificate not yet valid (notBefore {})", utc(*t)),
                None => write!(f, "certificate not yet valid"),
            },
            Self::UnknownIssuer => write!(f, "certificate issuer is not trusted"),
            Self::NameMismatch {
                expected,
                presented,
            } => write!(
                f,
                "certificate does not name {expected} (presented: {})",
                if presented.is_empty() {
                    "none".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            Self::BadSignature => write!(f, "certificate signature does not verify"),
            Self::UnsupportedAlgorithm => {
                write!(
                    f,
                    "certificate uses a signature algorithm or key that is not accepted"
                )
            }
            Self::WrongUsage => write!(f, "certificate is not valid for TLS server authentication"),
            Self::CaUsedAsEndEntity => write!(f, "a CA certificate was presented as the P-CSCF's"),
            Self::PinMismatch => write!(f, "certificate key matches no configured pin"),
            Self::Revoked => write!(f, "certificate is revoked"),
            Self::RevocationStatusUnknown => write!(f, "certificate revocation status is unknown"),
            Self::Malformed => write!(f, "certificate is malformed"),
            Self::Other(text) => write!(f, "certificate rejected: {text}"),
        }
    }
}

/// What kind of TLS failure ended a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailureKind {
    /// The P-CSCF certificate was rejected (O.3.1.2).
    Certificate(CertificateFailure),
    /// The peer speaks only obsolete TLS (1.1 or older), or no common version exists.
    ProtocolVersion,
    /// The peer accepts none of the AEAD suites imstls offers (e.g. a CBC-only server).
    NoCommonCipherSuite,
    /// No common key-exchange group.
    NoCommonGroup,
    /// A TLS 1.2 peer did not negotiate the RFC 7627 extended master secret, which imstls
    /// requires.
    ExtendedMasterSecretRequired,
    /// The P-CSCF requested a client certificate and the policy is to abort (O.2.1).
    ClientCertificateRequested,
    /// The peer sent a fatal alert (see [`TlsFailure::alert_received`]).
    PeerAlert,
    /// A record failed authentication (bad_record_mac): tampering or corruption (O.1.3).
    IntegrityFailure,
    /// The peer sent a record larger than TLS allows.
    OversizedRecord,
    /// The peer sent bytes that are not valid TLS.
    MalformedRecord,
    /// The peer sent a message that is not allowed at this point.
    UnexpectedMessage,
    /// The peer broke the protocol in another way.
    PeerMisbehaved(String),
    /// The transport closed without a TLS close_notify.
    UnexpectedEof,
    /// Anything else.
    Other(String),
}

impl TlsFailureKind {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Certificate(_) => "certificate",
            Self::ProtocolVersion => "protocol_version",
            Self::NoCommonCipherSuite => "no_common_cipher_suite",
            Self::NoCommonGroup => "no_common_group",
            Self::ExtendedMasterSecretRequired => "extended_master_secret_required",
            Self::ClientCertificateRequested => "client_certificate_requested",
            Self::PeerAlert => "peer_alert",
            Self::IntegrityFailure => "integrity_failure",
            Self::OversizedRecord => "oversized_record",
            Self::MalformedRecord => "malformed_record",
            Self::UnexpectedMessage => "unexpected_message",
            Self::PeerMisbehaved(_) => "peer_misbehaved",
            Self::UnexpectedEof => "unexpected_eof",
            Self::Other(_) => "other",
        }
    }
}

/// Where in the flow's life the failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPhase {
    /// Before the handshake completed.
    Handshake,
    /// After the handshake completed.
    Established,
}

/// A TLS flow failure: what happened, and which alerts crossed the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// What happened.
    pub kind: TlsFailureKind,
    /// The fatal alert imstls sent (already in the transmit output when this is reported).
    pub alert_sent: Option<AlertDescription>,
    /// The fatal alert the peer sent.
    pub alert_received: Option<AlertDescription>,
    /// Handshake or established.
    pub phase: TlsPhase,
}

impl TlsFailure {
    /// The certificate failure, if this is one.
    pub fn certificate(&self) -> Option<&CertificateFailure> {
        match &self.kind {
            TlsFailureKind::Certificate(c) => Some(c),
            _ => None,
        }
    }

    /// True when retrying the same P-CSCF cannot help without a configuration change or an
    /// explicit new registration (certificate, version, suite, policy failures). The engine
    /// still tries the other candidates after any of these but a certificate failure.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.kind,
            TlsFailureKind::Certificate(_)
                | TlsFailureKind::ProtocolVersion
                | TlsFailureKind::NoCommonCipherSuite
                | TlsFailureKind::NoCommonGroup
                | TlsFailureKind::ExtendedMasterSecretRequired
                | TlsFailureKind::ClientCertificateRequested
        )
    }

    pub(crate) fn new(kind: TlsFailureKind, phase: TlsPhase) -> Self {
        Self {
            kind,
            alert_sent: None,
            alert_received: None,
            phase,
        }
    }

    /// Classifies a rustls error. `suite_negotiated` tells whether a ServerHello arrived.
    pub(crate) fn from_rustls(error: &Error, phase: TlsPhase, suite_negotiated: bool) -> Self {
        let mut failure = Self::new(classify(error, suite_negotiated), phase);
        if let Error::AlertReceived(alert) = error {
            failure.alert_received = Some(*alert);
        }
        failure
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TlsFailureKind::Certificate(c) => write!(f, "P-CSCF certificate rejected: {c}")?,
            TlsFailureKind::ProtocolVersion => write!(
                f,
                "peer speaks only obsolete TLS (no TLS 1.2 or 1.3 in common)"
            )?,
            TlsFailureKind::NoCommonCipherSuite => write!(
                f,
                "no common cipher suite (the peer accepts none of the AEAD suites offered)"
            )?,
            TlsFailureKind::NoCommonGroup => write!(f, "no common key-exchange group")?,
            TlsFailureKind::ExtendedMasterSecretRequired => write!(
                f,
                "TLS 1.2 peer without the extended master secret (RFC 7627), which imstls requires"
            )?,
            TlsFailureKind::ClientCertificateRequested => write!(
                f,
                "P-CSCF requested a client certificate (forbidden by O.2.1)"
            )?,
            TlsFailureKind::PeerAlert => write!(f, "peer sent a fatal alert")?,
            TlsFailureKind::IntegrityFailure => write!(f, "record integrity check failed")?,
            TlsFailureKind::OversizedRecord => write!(f, "peer sent an oversized record")?,
            TlsFailureKind::MalformedRecord => write!(f, "peer sent malformed TLS data")?,
            TlsFailureKind::UnexpectedMessage => write!(f, "peer sent an unexpected message")?,
            TlsFailureKind::PeerMisbehaved(why) => write!(f, "peer misbehaved: {why}")?,
            TlsFailureKind::UnexpectedEof => write!(f, "connection closed without close_notify")?,
            TlsFailureKind::Other(why) => write!(f, "TLS failure: {why}")?,
        }
        if let Some(alert) = self.alert_sent {
            write!(f, "; sent alert {}", alert_name(alert))?;
        }
        if let Some(alert) = self.alert_received {
            write!(f, "; received alert {}", alert_name(alert))?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsFailure {}

fn classify(error: &Error, suite_negotiated: bool) -> TlsFailureKind {
    use TlsFailureKind as K;
    match error {
        Error::InvalidCertificate(c) => K::Certificate(CertificateFailure::from_rustls(c)),
        Error::Other(other)
            if other
                .0
                .downcast_ref::<ClientCertificateRequested>()
                .is_some() =>
        {
            K::ClientCertificateRequested
        }
        Error::PeerIncompatible(p) => match p {
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled => K::ProtocolVersion,
            PeerIncompatible::NoCipherSuitesInCommon => K::NoCommonCipherSuite,
            PeerIncompatible::NoKxGroupsInCommon => K::NoCommonGroup,
            PeerIncompatible::ExtendedMasterSecretExtensionRequired => {
                K::ExtendedMasterSecretRequired
            }
            other => K::PeerMisbehaved(format!("{other:?}")),
        },
        Error::AlertReceived(alert) => match alert {
            AlertDescription::ProtocolVersion => K::ProtocolVersion,
            // The P-CSCF insists on a client certificate (TLS 1.3), which O.2.1 forbids.
            AlertDescription::CertificateRequired => K::ClientCertificateRequested,
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity
                if !suite_negotiated =>
            {
                K::NoCommonCipherSuite
            }
            _ => K::PeerAlert,
        },
        Error::DecryptError => K::IntegrityFailure,
        Error::PeerSentOversizedRecord
        | Error::InvalidMessage(rustls::InvalidMessage::MessageTooLarge) => K::OversizedRecord,
        Error::InvalidMessage(_) => K::MalformedRecord,
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            K::UnexpectedMessage
        }
        Error::PeerMisbehaved(PeerMisbehaved::SelectedUnofferedCipherSuite) => {
            K::PeerMisbehaved("server selected a cipher suite that was not offered".into())
        }
        Error::PeerMisbehaved(why) => K::PeerMisbehaved(format!("{why:?}")),
        other => K::Other(other.to_string()),
    }
}

/// The fatal alert rustls sends for an error, following rustls 0.23's own choices.
pub(crate) fn alert_for(error: &Error) -> Option<AlertDescription> {
    Some(match error {
        Error::AlertReceived(_) => return None,
        Error::InvalidCertificate(c) => c.clone().into(),
        Error::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        ) => AlertDescription::ProtocolVersion,
        Error::PeerIncompatible(_) => AlertDescription::HandshakeFailure,
        Error::PeerMisbehaved(PeerMisbehaved::SelectedUnofferedCipherSuite) => {
            AlertDescription::HandshakeFailure
        }
        Error::PeerMisbehaved(_) => AlertDescription::IllegalParameter,
        Error::InvalidMessage(_) => AlertDescription::DecodeError,
        Error::DecryptError => AlertDescription::BadRecordMac,
        Error::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage
        }
        _ => AlertDescription::HandshakeFailure,
    })
}

/// The RFC 8446 §6 name of an alert (`bad_certificate`, `unknown_ca`, ...).
pub fn alert_name(alert: AlertDescription) -> &'static str {
    use AlertDescription as A;
    match alert {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::DecryptionFailed => "decryption_failed",
        A::RecordOverflow => "record_overflow",
        A::DecompressionFailure => "decompression_failure",
        A::HandshakeFailure => "handshake_failure",
        A::NoCertificate => "no_certificate",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ExportRestriction => "export_restriction",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::NoRenegotiation => "no_renegotiation",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::CertificateUnobtainable => "certificate_unobtainable",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::BadCertificateHashValue => "bad_certificate_hash_value",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        A::EncryptedClientHelloRequired => "ech_required",
        _ => "unknown_alert",
    }
}
