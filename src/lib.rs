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
//! - [`config`]: the validated TLS profile and engine timers ([`UeConfig`]).
//! - [`engine`]: the registration state machine ([`Ue`]), its events and outputs.
//! - [`tls`]: the sans-IO TLS flow over rustls ([`TlsFlow`]) and the failure taxonomy.
//! - [`session`]: the TLS session store (lifetime, per-P-CSCF keys, purge).
//! - [`name`]: RFC 5922 P-CSCF identity rules on webpki's names; [`sip_uri`]: the strict
//!   RFC 3261 `sip:` URI parser they use; [`x509`]: a certificate summary for reports only.
//! - [`sip`]: SIP stream framing and CRLF keep-alives.
//! - [`driver`]: the managed-socket driver; `include/imstls.h`: the C API over all of it
//!   (cargo feature `capi`, off by default).
//!
//! `docs/CONFORMANCE.md` maps every Annex O clause to the code and the test that proves it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

// The core: the compiler refuses `unsafe` in it, and nothing inside can allow it again.
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod driver;
#[forbid(unsafe_code)]
pub mod engine;
// The C ABI (cargo feature `capi`) and the OS layer (`os`): where C or the OS enters, the only
// modules allowed `unsafe` (each block explained: `[lints]` in Cargo.toml).
#[cfg(feature = "capi")]
#[allow(unsafe_code)]
mod ffi;
#[cfg(feature = "capi")]
#[doc(hidden)]
pub use ffi::fuzz::ffi_bytes as __fuzz_ffi_bytes;
#[cfg(feature = "capi")]
#[doc(hidden)]
pub use ffi::fuzz_driver::driver_api_bytes as __fuzz_driver_api_bytes;
#[forbid(unsafe_code)]
pub mod name;
#[allow(unsafe_code)]
mod os;
#[forbid(unsafe_code)]
mod profile;
#[forbid(unsafe_code)]
pub mod session;
#[forbid(unsafe_code)]
pub mod sip;
#[forbid(unsafe_code)]
pub mod sip_uri;
#[forbid(unsafe_code)]
pub mod tls;
#[forbid(unsafe_code)]
mod verify;
#[forbid(unsafe_code)]
pub mod x509;

pub use config::{
    Backoff, Candidate, CertificateRequestPolicy, ConfigError, Host, KeepAlive, KeyLogSink,
    KxGroup, QueueLimits, TlsVersions, TrustSource, UeConfig, UeConfigBuilder,
};
pub use engine::{
    Abandoned, AttemptFailure, Binding, CandidateFailure, ConformanceEntry, Event, FailureReason,
    FlowId, Identity, LossReason, Output, Queue, RegisterKind, RegisterReason, RekeyMethod,
    TransportClosure, TransportError, Ue, UeError, UeState,
};
pub use profile::{crypto_provider_name, TlsProfile};
pub use rustls::AlertDescription;
pub use tls::{
    alert_name, CertificateFailure, TlsDetails, TlsFailure, TlsFailureKind, TlsFlow, TlsPhase,
};

#[cfg(test)]
mod tests {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        assert_send::<crate::Ue>();
        assert_send_sync::<crate::UeConfig>();
        assert_send::<crate::TlsFlow>();
    }
}
