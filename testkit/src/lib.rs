//! Test and development tooling for imstls: a loopback P-CSCF simulator with a test PKI generated
//! at start-up, a SIP registrar with RFC 7616 Digest, and a small SIP UA acting as "the SIP stack".
//!
//! Never a dependency of the `imstls` library itself.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
mod log;
pub mod observation;
pub mod pcscf;
pub mod pki;
mod random;
pub mod registrar;
pub mod sip;
pub mod tls;
pub mod ua;

pub use pki::{CertKind, LeafKeyType, ServedIdentity, TestPki};
pub use tls::TlsVersions;
