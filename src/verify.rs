//! Authentication of the P-CSCF by its certificate (TS 33.203 O.2.1, O.5.1, O.1.3 item 6).
//!
//! Three checks, in order, each with its own failure reason and TLS alert:
//! 1. chain to a trust anchor, validity period, serverAuth EKU, CRLs: webpki, through
//!    rustls's `WebPkiServerVerifier`;
//! 2. the P-CSCF identity per RFC 5922 ([`crate::name`]), not webpki's name rules (webpki
//!    ignores `sip:` URIs and accepts wildcards);
//! 3. optional SPKI SHA-256 pins.
//!
//! It also enforces the `Abort` policy for a CertificateRequest: rustls resolves the client
//! certificate before it verifies the server's, so refusing here puts a fatal
//! handshake_failure alert on the wire.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::hash::Hash;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, CipherSuite, DigitallySignedStruct, Error, OtherError};

use crate::config::{CertificateRequestPolicy, ConfigInner};
use crate::name::{check_identity, ExpectedIdentity};
use crate::profile::CertificateRequestLog;
use crate::x509::{self, SubjectAltNames};

/// The leaf key matched none of the configured SPKI pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the P-CSCF key matches no configured SPKI pin")
    }
}

impl std::error::Error for PinMismatch {}

/// The P-CSCF asked for a client certificate and the policy is to abort (O.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientCertificateRequested;

impl fmt::Display for ClientCertificateRequested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the P-CSCF requested a client certificate, which TS 33.203 O.2.1 forbids")
    }
}

impl std::error::Error for ClientCertificateRequested {}

pub(crate) struct PcscfVerifier {
    chain: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
    allow_wildcards: bool,
    sha256: &'static dyn Hash,
    policy: CertificateRequestPolicy,
    cert_requests: Arc<CertificateRequestLog>,
}

impl fmt::Debug for PcscfVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcscfVerifier")
            .field("pins", &self.pins.len())
            .field("allow_wildcards", &self.allow_wildcards)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl PcscfVerifier {
    pub(crate) fn new(config: &ConfigInner, cert_requests: Arc<CertificateRequestLog>) -> Self {
        let sha256 = config
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.suite() == CipherSuite::TLS13_AES_128_GCM_SHA256)
            .find_map(|s| s.tls13())
            .map(|s| s.common.hash_provider)
            .expect("TLS13_AES_128_GCM_SHA256 is in every imstls profile");
        Self {
            chain: config.chain_verifier.clone(),
            pins: config.pins.clone(),
            allow_wildcards: config.allow_wildcards,
            sha256,
            policy: config.certificate_request_policy,
            cert_requests,
        }
    }
}

impl ServerCertVerifier for PcscfVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.policy == CertificateRequestPolicy::Abort && self.cert_requests.count() > 0 {
            return Err(Error::Other(OtherError(Arc::new(
                ClientCertificateRequested,
            ))));
        }
        let info = x509::parse_certificate(end_entity.as_ref())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;

        // 1. Chain, validity, EKU, revocation. webpki also checks a name, last; give it one
        //    the certificate carries so that only the RFC 5922 rules below judge the name.
        let probe = probe_name(&info.subject_alt_names).unwrap_or_else(|| server_name.to_owned());
        match self
            .chain
            .verify_server_cert(end_entity, intermediates, &probe, ocsp_response, now)
        {
            Ok(_) => {}
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(other) => return Err(other),
        }

        // 2. RFC 5922 identity.
        let expected = match server_name {
            ServerName::IpAddress(ip) => ExpectedIdentity::Ip((*ip).into()),
            ServerName::DnsName(name) => ExpectedIdentity::domain(name.as_ref()),
            _ => return Err(Error::General("unsupported server name type".into())),
        };
        check_identity(&expected, &info.subject_alt_names, self.allow_wildcards).map_err(
            |mismatch| {
                Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: server_name.to_owned(),
                    presented: mismatch.presented,
                })
            },
        )?;

        // 3. SPKI pins.
        if !self.pins.is_empty() {
            let digest = self.sha256.hash(info.spki);
            if !self
                .pins
                .iter()
                .any(|pin| pin.as_slice() == digest.as_ref())
            {
                return Err(Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(PinMismatch)),
                )));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// A reference name webpki will find in the certificate, if there is one: an IP SAN, a DNS
/// SAN, or a one-label child of a wildcard DNS SAN.
fn probe_name(names: &SubjectAltNames) -> Option<ServerName<'static>> {
    if let Some(ip) = names.ip_addresses.first() {
        return Some(ServerName::IpAddress((*ip).into()));
    }
    names.dns_names.iter().find_map(|dns| {
        let candidate = match dns.strip_prefix("*.") {
            Some(base) => format!("wildcard-probe.{base}"),
            None => dns.clone(),
        };
        ServerName::try_from(candidate).ok()
    })
}
