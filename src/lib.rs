//! imstls: UE-side IMS access security (3GPP TS 33.203 Annex O) over rustls.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod name;
mod profile;
pub mod session;
pub mod sip;
pub mod tls;
mod verify;
pub mod x509;

pub use config::{
    Backoff, Candidate, CertificateRequestPolicy, ConfigError, Host, KeepAlive, KxGroup,
    TlsVersions, TrustSource, UeConfig, UeConfigBuilder,
};
pub use engine::{
    Abandoned, Binding, ConformanceEntry, Event, FailureReason, FlowId, Identity, LossReason,
    Output, RegisterReason, RekeyMethod, TransportClosure, TransportError, Ue, UeError, UeState,
};
pub use profile::{crypto_provider_name, TlsProfile};
pub use rustls::AlertDescription;
pub use tls::{alert_name, CertificateFailure, TlsDetails, TlsFailure, TlsFailureKind, TlsFlow};
