//! `Failure`: a failure as the C API records it — the result code, a message and what the
//! code alone cannot say (the configuration field, the SIP status, the TLS details). Every
//! fallible helper returns it; a handle keeps the last one, and C reads it as an
//! `imstls_error` (`error.rs`).

use crate::config::ConfigError;
use crate::engine::{Event, FailureReason, LossReason, UeError};
use crate::tls::TlsFailure;

use super::codes::imstls_result;

/// A failure as the C API records it (the Rust side of `imstls_error`). Boxed: every
/// fallible helper of the C API returns `Result<_, Failure>`, and a pointer-sized error keeps
/// those results small to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(Box<FailureDetail>);

/// What a [`Failure`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureDetail {
    pub result: imstls_result,
    pub message: String,
    pub config_field: &'static str,
    pub sip_status: u16,
    pub tls: Option<Box<TlsDetail>>,
}

impl std::ops::Deref for Failure {
    type Target = FailureDetail;
    fn deref(&self) -> &FailureDetail {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut FailureDetail {
        &mut self.0
    }
}

/// What a TLS failure adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsDetail {
    pub kind: &'static str,
    pub certificate: &'static str,
    pub alert_sent: Option<u8>,
    pub alert_received: Option<u8>,
    pub expected_name: String,
    pub presented_names: Vec<String>,
}

impl Failure {
    #[inline(never)]
    pub(crate) fn new(result: imstls_result, message: impl Into<String>) -> Self {
        Self(Box::new(FailureDetail {
            result,
            message: message.into(),
            config_field: "",
            sip_status: 0,
            tls: None,
        }))
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn null(what: &str) -> Self {
        Self::new(
            imstls_result::IMSTLS_NULL_ARGUMENT,
            format!("{what} is NULL"),
        )
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(imstls_result::IMSTLS_INVALID_ARGUMENT, message)
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn io(what: &str, error: &std::io::Error) -> Self {
        Self::new(imstls_result::IMSTLS_IO_ERROR, format!("{what}: {error}"))
    }

    /// A TLS failure, with everything it knows.
    pub(crate) fn tls(result: imstls_result, failure: &TlsFailure) -> Self {
        let mut detail = TlsDetail {
            kind: failure.kind.code(),
            alert_sent: failure.alert_sent.map(u8::from),
            alert_received: failure.alert_received.map(u8::from),
            ..TlsDetail::default()
        };
        if let Some(certificate) = failure.certificate() {
            detail.certificate = certificate.code();
            if let crate::tls::CertificateFailure::NameMismatch {
                expected,
                presented,
            } = certificate
            {
                detail.expected_name = expected.clone();
                detail.presented_names = presented.clone();
            }
        }
        let mut this = Self::new(result, failure.to_string());
        this.tls = Some(Box::new(detail));
        this
    }

    /// The failure an event reports, if it reports one. `RegistrationFailed` after a
    /// certificate or TLS failure adds nothing to the `CertificateRejected`/`TlsFailed` event
    /// before it, so it is not one (the detailed failure stays the last error).
    pub(crate) fn from_event(event: &Event) -> Option<Self> {
        use imstls_result as R;
        Some(match event {
            Event::CertificateRejected { failure, .. } => {
                Self::tls(R::IMSTLS_CERTIFICATE_REJECTED, failure)
            }
            Event::TlsFailed { failure, .. } => Self::tls(R::IMSTLS_TLS_FAILED, failure),
            Event::ConnectFailed { reason, .. } => Self::new(
                R::IMSTLS_CONNECT_FAILED,
                format!("TCP connect failed: {reason}"),
            ),
            Event::ConnectionLost { reason, .. } => match reason {
                LossReason::Tls(failure) => {
                    let mut this = Self::tls(R::IMSTLS_CONNECTION_LOST, failure);
                    this.message = format!("connection lost: {failure}");
                    this
                }
                other => Self::new(
                    R::IMSTLS_CONNECTION_LOST,
                    format!("connection lost: {other}"),
                ),
            },
            Event::RegistrationFailed {
                reason: FailureReason::Certificate | FailureReason::Tls,
                ..
            } => return None,
            Event::RegistrationFailed {
                status,
                reason,
                retrying,
                ..
            } => {
                let mut this = Self::new(
                    R::IMSTLS_REGISTRATION_FAILED,
                    format!(
                        "registration failed ({}{}){}",
                        reason.code(),
                        status.map(|s| format!(", status {s}")).unwrap_or_default(),
                        if *retrying { ", will retry" } else { "" }
                    ),
                );
                this.sip_status = status.unwrap_or(0);
                this
            }
            _ => return None,
        })
    }
}

impl From<UeError> for Failure {
    fn from(error: UeError) -> Self {
        use imstls_result as R;
        let result = match &error {
            UeError::InvalidIdentity(_) => R::IMSTLS_INVALID_IDENTITY,
            UeError::WrongState { .. } => R::IMSTLS_WRONG_STATE,
            UeError::UnknownFlow(_) => R::IMSTLS_UNKNOWN_FLOW,
            UeError::StaleReport { .. } => R::IMSTLS_STALE_REPORT,
            UeError::RegisterFirst => R::IMSTLS_REGISTER_FIRST,
            UeError::RegisterInFlight => R::IMSTLS_REGISTER_IN_FLIGHT,
            UeError::BadMessage(_) => R::IMSTLS_BAD_SIP_MESSAGE,
            UeError::InvalidArgument(_) => R::IMSTLS_INVALID_ARGUMENT,
            #[allow(unreachable_patterns)] // `UeError` is non-exhaustive
            _ => R::IMSTLS_REFUSED,
        };
        Self::new(result, error.to_string())
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        let result = match error {
            ConfigError::Io { .. } => imstls_result::IMSTLS_CONFIG_FILE,
            _ => imstls_result::IMSTLS_INVALID_CONFIG,
        };
        let mut this = Self::new(result, error.to_string());
        this.config_field = error.field();
        this
    }
}
