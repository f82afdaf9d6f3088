//! Test and development tooling for imstls (never a dependency of the library itself):
//!
//! - [`pki`]: a test PKI generated at start-up (root → intermediate → leaf, a CRL, and every
//!   broken leaf variant a UE must reject), with SPKI pins and PEM files for OpenSSL.
//! - [`chains`]: validly signed chains with chosen SANs under a name-constrained CA.
//! - [`digest`]: RFC 7616 / RFC 2617 Digest, client and server side.
//! - [`sip`]: SIP stream framing with RFC 5626 keep-alives, a message type, response builders.
//! - [`registrar`]: a sans-IO SIP registrar with Digest, outbound and fault knobs.
//! - [`pcscf`]: [`PcscfCore`], a sans-IO simulated P-CSCF for one TLS connection, time-free, with
//!   an [`Observation`] log, for in-memory tests on a simulated clock.
//! - [`server`]: [`Simulator`], the same P-CSCF on loopback sockets with fault injection.
//! - [`flooder`]: [`Flooder`], a registered P-CSCF that floods pings and never reads.
//! - [`ua`]: a minimal SIP UA acting as "the SIP stack" (REGISTER, Digest, answers).
//!
//! ```no_run
//! use imstls_testkit::{SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig::default()).expect("loopback simulator");
//! let trust_anchor_pem = sim.pki().root_pem();
//! let addr = sim.addr(); // connect a UE here, SNI "pcscf.ims.test"
//! # let _ = (trust_anchor_pem, addr);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "imstls-testkit needs a crypto provider: the `aws-lc-rs` (default) or `ring` feature"
);
pub mod chains;
pub mod digest;
pub mod flooder;
mod log;
pub mod observation;
pub mod pcscf;
pub mod pki;
mod random;
pub mod registrar;
#[cfg(test)]
mod robustness_tests;
pub mod server;
pub mod sip;
pub mod tls;
pub mod ua;

pub use digest::{Algorithm as DigestAlgorithm, Authorization, Challenge, DigestError};
pub use flooder::Flooder;
pub use observation::Observation;
pub use pcscf::{PcscfCore, PcscfFactory};
pub use pki::{CertKind, LeafKeyType, ServedIdentity, TestPki};
pub use registrar::{
    Binding, FlowId, Registrar, RegistrarConfig, SharedRegistrar, DEFAULT_IMPI, DEFAULT_IMPU,
    DEFAULT_PASSWORD,
};
pub use server::{Fault, SimConfig, Simulator};
pub use sip::{Frame, Framer, SipMessage};
pub use tls::TlsVersions;
pub use ua::{Password, Ua, UaConfig, UaOutcome};
