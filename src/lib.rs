//! # imstls — UE-side IMS access security (3GPP TS 33.203 Annex O) over rustls
//!
//! imstls owns the TLS flow from a handset's SIP stack to the IMS P-CSCF and enforces the
//! Annex O rules around it: the modern TLS profile (TLS 1.3 and 1.2, AEAD only, P-CSCF
//! certificate and RFC 5922 name verification), one registration procedure at a time with
//! teardown of everything an incomplete one created, a new registration when the flow is
//! lost (RFC 5626 keep-alive and back-off), and a fatal TLS alert on the wire when the
//! P-CSCF certificate fails. The SIP stack keeps owning SIP.
//!
//! ## The driving contract (read this first)
//!
//! [`Ue`] is **sans-IO**: it has no socket, thread, clock or lock inside. You give it
//! inputs — each with your monotonic `now` — and after **every** input you drain
//! [`Ue::poll_output`] until it returns [`Output::Timeout`]:
//!
//! | output | what you do |
//! |---|---|
//! | [`Output::Connect`] | open TCP to the host/port, then call [`Ue::connected`] or [`Ue::connect_failed`] |
//! | [`Output::Transmit`] | write the bytes to that flow's socket, in order |
//! | [`Output::Close`] | close that flow's socket (after writing earlier `Transmit`s: a fatal alert is among them) |
//! | [`Output::Event`] | react: e.g. [`Event::RegisterNow`] → build a REGISTER and call [`Ue::send_sip`] |
//! | [`Output::Timeout`] | call [`Ue::handle_timeout`] at that instant (or earlier, on input) |
//!
//! Socket bytes go in with [`Ue::receive`], end of stream with [`Ue::transport_closed`];
//! the SIP stack reports REGISTER answers with [`Ue::registration_challenged`],
//! [`Ue::registration_succeeded`] and [`Ue::registration_failed`], each naming the flow the
//! answer arrived on (an older flow's answer is refused as stale). Inputs that do not fit
//! the state return a [`UeError`] and change nothing; network and peer failures are never
//! errors of an input, they arrive as events naming the clause that caused them.
//!
//! Prefer not to own the socket? [`driver::Driver`] (and the C API's `imstls_driver`) manage a
//! non-blocking socket for you and expose its fd and next timeout for your event loop.
//!
//! ```
//! use std::time::Instant;
//! use imstls::{Event, Identity, Output, Ue, UeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = UeConfig::builder()
//!     .pcscf("pcscf.ims.example.net") // port 5061 by default
//!     .build()?;                      // webpki-roots when no trust anchor is given
//! let mut ue = Ue::new(config, Instant::now())?;
//! ue.start_registration(
//!     Instant::now(),
//!     Identity::new("alice@ims.example.net", &["sip:alice@ims.example.net"])?,
//! )?;
//! loop {
//!     match ue.poll_output() {
//!         Output::Connect { flow, host, port, .. } => {
//!             // connect a socket to host:port, then: ue.connected(now, flow, local, remote)
//!             # let _ = (flow, host, port);
//!         }
//!         Output::Transmit { flow, data } => {
//!             // write data to flow's socket
//!             # let _ = (flow, data);
//!         }
//!         Output::Close { flow } => {
//!             // close flow's socket
//!             # let _ = flow;
//!         }
//!         Output::Event(event) => println!("[{}] {event}", event.clause()),
//!         Output::Timeout(_when) => break, // sleep until then, or until the socket is readable
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## Where things live
//!
//! One folder per layer under `src/`, lowest first. A module uses only its own layer and the
//! ones below it, and no two files use each other (`tests/layers.rs` checks both):
//!
//! | layer | folder | what it holds |
//! |---|---|---|
//! | 0 | `sip/` | SIP wire grammar: stream framing, CRLF keep-alives, the strict check of what [`Ue::send_sip`] accepts ([`FramingError`]); `uri.rs`, the strict RFC 3261 `sip:` URI parser |
//! | 1 | `config/` | [`UeConfig`] and [`UeConfigBuilder`] with their option types, candidates, trust anchors, the key log, and the crypto provider compiled in ([`crypto_provider_name`]: `provider.rs`) |
//! | 2 | `tls/` | the sans-IO TLS flow over rustls and its failure taxonomy ([`TlsFailure`], [`TlsDetails`]); `profile.rs` the rustls configuration, `verify.rs` the P-CSCF verifier, `cert_identity.rs` the RFC 5922 name rules, `session.rs` the session store, `x509.rs` a certificate summary for reports only |
//! | 3 | `engine/` | the registration state machine ([`Ue`]), its events and outputs |
//! | – | `os.rs` | the OS layer: the few libc calls std lacks (non-blocking connect, poll, socket checks), safe wrappers |
//! | 4 | [`driver`] | the managed-socket driver (uses `os`) |
//! | 5 | `ffi/` | the C API (`include/imstls.h`) over all of it: cargo feature `capi`, off by default |
//!
//! Only `os` and `ffi` may hold code the compiler cannot check; every core module forbids it
//! by an attribute of its own (docs/ARCHITECTURE.md, section "Who may use").
//!
//! The API is what this page lists: the engine, its configuration and reports at the crate
//! root, the driver in [`driver`]. Parsers and helpers stay private; the crate's own fuzz
//! targets, differential tests and benchmarks reach them through the `_internal_test_exports`
//! feature, which is not part of the API (no stability promise, not for applications).
//!
//! `docs/CONFORMANCE.md` maps every Annex O clause to the code and the test that proves it.
#![warn(missing_docs)]
// A type in a public signature that users cannot name is a curation mistake.
#![warn(unnameable_types)]

// The core (each module forbids unchecked code in its own first lines).
mod config;
pub mod driver;
mod engine;
mod sip;
mod tls;
// Where C or the OS enters: the C ABI (cargo feature `capi`) and the OS layer.
#[cfg(feature = "capi")]
mod ffi;
mod os;

pub use config::{
    crypto_provider_name, Backoff, Candidate, CertificateRequestPolicy, ConfigError, Host,
    KeepAlive, KeyLogSink, KxGroup, QueueLimits, TlsVersions, TrustSource, UeConfig,
    UeConfigBuilder, DEFAULT_CONFORMANCE_LOG_ENTRIES, DEFAULT_QUEUE_LIMIT, DEFAULT_SIPS_PORT,
    MAX_CONFORMANCE_LOG_ENTRIES, MAX_QUEUE_LIMIT, MAX_SESSION_LIFETIME,
};
pub use engine::{
    Abandoned, AttemptFailure, Binding, CandidateFailure, ConformanceEntry, Event, FailureReason,
    FlowId, Identity, LossReason, Output, Queue, RegisterKind, RegisterReason, RekeyMethod,
    TransportClosure, TransportError, Ue, UeError, UeState,
};
pub use rustls::AlertDescription;
pub use sip::FramingError;
pub use tls::{
    alert_name, CertificateFailure, PeerCertificate, TlsDetails, TlsFailure, TlsFailureKind,
    TlsPhase,
};

/// Internals for imstls's own fuzz targets, differential tests and benchmarks — **not part of
/// the API**: no stability promise, may change in any release, not for applications.
///
/// Compiled only with the `_internal_test_exports` feature, which the crate's tests and
/// benchmarks get through its self dev-dependency and `fuzz/` through its manifest. Paths
/// mirror the source tree.
#[cfg(feature = "_internal_test_exports")]
pub mod _internal_test_exports {
    /// The crypto provider compiled in, and its narrowing to the imstls profile
    /// (`src/config/provider.rs`): the benches' bare-rustls baseline uses the same.
    pub mod config {
        pub use crate::config::provider::{crypto_provider, restrict_provider};
    }

    /// SIP framing and the strict outgoing-message check (`src/sip/mod.rs`).
    pub mod sip {
        pub use crate::sip::{
            parse_head, parse_one_message, parse_outgoing_message, Frame, MessageHead, SipFramer,
            StartLine,
        };

        /// The strict RFC 3261 `sip:` URI parser (`src/sip/uri.rs`).
        pub mod uri {
            pub use crate::sip::uri::{parse, SipHost, SipUri, SipUriError};
        }
    }

    /// The TLS layer below the engine: a flow, its profile and their helpers (`src/tls/`).
    pub mod tls {
        pub use crate::tls::profile::TlsProfile;
        pub use crate::tls::{Closure, FlowStateError, TlsFlow};

        /// RFC 5922 certificate identity on webpki's names (`src/tls/cert_identity.rs`).
        pub mod cert_identity {
            pub use crate::tls::cert_identity::{check_domain_identity, IdentityRefusal};
        }

        /// The TLS session store (`src/tls/session.rs`).
        pub mod session {
            pub use crate::tls::session::{HandshakeId, SessionStore, StoreMark};
        }

        /// The certificate summary reader behind the reports (`src/tls/x509.rs`).
        pub mod x509 {
            pub use crate::tls::x509::{
                format_utc, parse_certificate, CertificateInfo, SubjectAltNames, X509Error,
            };
        }
    }

    /// The C API driven from fuzz bytes (`src/ffi/fuzz.rs`, `src/ffi/fuzz_driver.rs`); needs
    /// the `capi` feature too.
    #[cfg(feature = "capi")]
    pub mod ffi {
        pub use crate::ffi::fuzz::ffi_bytes;
        pub use crate::ffi::fuzz_driver::{driver_api_bytes, WakeCallback};
    }
}

#[cfg(test)]
mod tests {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        assert_send::<crate::Ue>();
        assert_send_sync::<crate::UeConfig>();
        assert_send::<crate::tls::TlsFlow>();
    }
}
