//! [`ConfigError`]: what the builder, the candidate parser, the trust-anchor loader and the
//! crypto-provider checks return. Its own file so that each of them can use it without
//! reaching back into `config/mod.rs`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration value that cannot be used. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No P-CSCF candidate was given.
    NoCandidates,
    /// A P-CSCF candidate could not be parsed.
    InvalidCandidate {
        /// The candidate as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The expected server name is not a DNS name.
    InvalidServerName {
        /// The name as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// PEM input could not be decoded.
    InvalidPem {
        /// Which field (`trust_anchors`, `crls`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// PEM input held no object of the expected kind.
    NoObjectInPem {
        /// Which field.
        field: &'static str,
    },
    /// A certificate or CRL could not be used.
    InvalidCertificate {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Trust anchors were given but none could be used.
    EmptyTrustStore,
    /// No trust anchors were given, and this build has no default roots (the `webpki-roots`
    /// feature is off).
    NoTrustAnchors,
    /// A file could not be read (or, for the key log, opened for appending).
    Io {
        /// Which field.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// An SPKI pin is malformed.
    InvalidPin {
        /// The pin as given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A TLS version string is not one imstls knows.
    UnknownTlsVersion {
        /// The string as given.
        value: String,
    },
    /// TLS 1.0, 1.1 or SSL 3.0 was asked for (forbidden by TS 33.210 §6.2 and RFC 8996).
    ObsoleteTlsVersion {
        /// The string as given.
        value: String,
    },
    /// A key-exchange group name is not one imstls knows.
    UnknownKxGroup {
        /// The string as given.
        value: String,
    },
    /// The crypto provider built in does not implement the group.
    KxGroupUnavailable {
        /// The group.
        group: &'static str,
    },
    /// The group list leaves out P-256, which 3GPP makes mandatory.
    P256Required,
    /// The same group appears twice.
    DuplicateKxGroup {
        /// The group.
        group: &'static str,
    },
    /// A duration that must be positive is zero.
    ZeroDuration {
        /// Which field.
        field: &'static str,
    },
    /// A duration exceeds its maximum.
    DurationTooLong {
        /// Which field.
        field: &'static str,
        /// The maximum allowed.
        max: Duration,
    },
    /// A size is out of its allowed range.
    SizeOutOfRange {
        /// Which field.
        field: &'static str,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A count is out of its allowed range.
    CountOutOfRange {
        /// Which field.
        field: &'static str,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// rustls refused the TLS configuration (should not happen with a valid profile).
    Tls {
        /// rustls's reason.
        reason: String,
    },
}

impl ConfigError {
    /// The configuration field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NoCandidates | Self::InvalidCandidate { .. } => "pcscf",
            Self::InvalidServerName { .. } => "server_name",
            Self::InvalidPem { field, .. }
            | Self::NoObjectInPem { field }
            | Self::InvalidCertificate { field, .. }
            | Self::Io { field, .. }
            | Self::ZeroDuration { field }
            | Self::DurationTooLong { field, .. }
            | Self::SizeOutOfRange { field, .. }
            | Self::CountOutOfRange { field, .. } => field,
            Self::EmptyTrustStore | Self::NoTrustAnchors => "trust_anchors",
            Self::InvalidPin { .. } => "pins",
            Self::UnknownTlsVersion { .. } | Self::ObsoleteTlsVersion { .. } => "tls_versions",
            Self::UnknownKxGroup { .. }
            | Self::KxGroupUnavailable { .. }
            | Self::P256Required
            | Self::DuplicateKxGroup { .. } => "kx_groups",
            Self::Tls { .. } => "tls",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field())?;
        match self {
            Self::NoCandidates => write!(f, "at least one P-CSCF address is required"),
            Self::InvalidCandidate { value, reason } => {
                write!(f, "invalid P-CSCF address {value:?}: {reason}")
            }
            Self::InvalidServerName { value, reason } => {
                write!(f, "invalid server name {value:?}: {reason}")
            }
            Self::InvalidPem { reason, .. } => write!(f, "malformed PEM: {reason}"),
            Self::NoObjectInPem { .. } => write!(f, "the PEM input holds no usable section"),
            Self::InvalidCertificate { reason, .. } => write!(f, "unusable object: {reason}"),
            Self::EmptyTrustStore => write!(f, "no usable trust anchor was given"),
            Self::NoTrustAnchors => write!(
                f,
                "no trust anchor was given, and this build has no default roots (the webpki-roots feature is off)"
            ),
            Self::Io { path, reason, .. } => write!(f, "cannot open {}: {reason}", path.display()),
            Self::InvalidPin { value, reason } => write!(f, "invalid pin {value:?}: {reason}"),
            Self::UnknownTlsVersion { value } => write!(
                f,
                "unknown TLS version selection {value:?} (use \"1.2+1.3\" or \"1.3\")"
            ),
            Self::ObsoleteTlsVersion { value } => write!(
                f,
                "{value:?} is obsolete: TS 33.210 §6.2 and RFC 8996 forbid SSL 3.0, TLS 1.0 and 1.1"
            ),
            Self::UnknownKxGroup { value } => write!(f, "unknown key-exchange group {value:?}"),
            Self::KxGroupUnavailable { group } => write!(
                f,
                "{group} is not available with the crypto provider built in"
            ),
            Self::P256Required => write!(f, "P-256 (secp256r1) must be offered (TS 33.210 §6.2)"),
            Self::DuplicateKxGroup { group } => write!(f, "{group} is listed twice"),
            Self::ZeroDuration { .. } => write!(f, "must be greater than zero"),
            Self::DurationTooLong { max, .. } => write!(f, "must not exceed {} s", max.as_secs()),
            Self::SizeOutOfRange { min, max, .. } => {
                write!(f, "must be between {min} and {max} bytes")
            }
            Self::CountOutOfRange { min, max, .. } => write!(f, "must be between {min} and {max}"),
            Self::Tls { reason } => write!(f, "rustls refused the profile: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}
