//! Authentication of the P-CSCF by its certificate (TS 33.203 O.2.1, O.5.1, O.1.3 item 6).
//!
//! Three checks, in order, each with its own failure reason and TLS alert:
//! 1. chain to a trust anchor, validity period, serverAuth EKU, CRLs, name constraints and the
//!    expected name (DNS name → a `dNSName` SAN, IP address → an `iPAddress` SAN): webpki,
//!    through rustls's `WebPkiServerVerifier`;
//! 2. the stricter RFC 5922 layer ([`super::cert_identity`]) on the names webpki parsed (webpki accepts
//!    wildcards and ignores `sip:` URIs);
//! 3. optional SPKI SHA-256 pins, on webpki's SubjectPublicKeyInfo.
//!
//! Every accept/refuse decision reads the certificate through webpki only; [`super::x509`] is
//! used for reporting (the names listed in a name mismatch).
//!
//! It also enforces the `Abort` policy for a CertificateRequest: rustls resolves the client
//! certificate before it verifies the server's, so refusing here puts a fatal
//! handshake_failure alert on the wire.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::hash::Hash;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, Error, OtherError, SignatureScheme,
};

use super::cert_identity::check_domain_identity;
use super::x509;
use crate::config::{CertificateRequestPolicy, ConfigInner};

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

/// Records every CertificateRequest the P-CSCF sends (O.2.1: it shall not send one) and
/// never offers a certificate, so rustls answers with an empty Certificate message.
#[derive(Debug, Default)]
pub(crate) struct CertificateRequestLog {
    count: AtomicUsize,
}

impl CertificateRequestLog {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Starts counting afresh for a new flow (one flow at a time per profile).
    pub(crate) fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
    }
}

impl ResolvesClientCert for CertificateRequestLog {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.count.fetch_add(1, Ordering::SeqCst);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

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
        // The one parser of the leaf's names: webpki, the parser that validates the chain.
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;

        // 1. Chain, validity, EKU, revocation, name constraints, and the expected name itself
        //    (a DNS name against a dNSName SAN, an IP address against an iPAddress SAN).
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_) => {}
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => return Err(name_mismatch(server_name, end_entity, &leaf)),
            Err(other) => return Err(other),
        }

        // 2. RFC 5922 on webpki's names: no wildcard unless opted in, sip: URI precedence.
        match server_name {
            ServerName::DnsName(name) => {
                let dns_names: Vec<&str> = leaf.valid_dns_names().collect();
                let uris: Vec<&str> = leaf.valid_uri_names().collect();
                if let Err(refusal) =
                    check_domain_identity(name.as_ref(), &dns_names, &uris, self.allow_wildcards)
                {
                    log::debug!(
                        "P-CSCF certificate refused for {}: {refusal}",
                        name.as_ref()
                    );
                    return Err(name_mismatch(server_name, end_entity, &leaf));
                }
            }
            ServerName::IpAddress(_) => {} // webpki matched an iPAddress SAN
            _ => return Err(Error::General("unsupported server name type".into())),
        }

        // 3. SPKI pins.
        if !self.pins.is_empty() {
            let spki = leaf.subject_public_key_info();
            let digest = self.sha256.hash(spki.as_ref());
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

/// The structured name failure the app sees: the expected name and the SANs presented.
///
/// The presented list is only reported: it comes from the diagnostic reader ([`x509`], which
/// also shows IP SANs), or from webpki's names when that reader cannot read the certificate.
fn name_mismatch(
    server_name: &ServerName<'_>,
    end_entity: &CertificateDer<'_>,
    leaf: &webpki::EndEntityCert<'_>,
) -> Error {
    let printable = |s: &str| s.escape_debug().to_string();
    let presented = match x509::parse_certificate(end_entity.as_ref()) {
        Ok(info) => {
            let names = info.subject_alt_names;
            names
                .uris
                .iter()
                .map(|u| printable(u))
                .chain(names.dns_names.iter().map(|d| printable(d)))
                .chain(names.ip_addresses.iter().map(|ip| ip.to_string()))
                .collect()
        }
        Err(_) => leaf
            .valid_uri_names()
            .chain(leaf.valid_dns_names())
            .map(printable)
            .collect(),
    };
    Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: server_name.to_owned(),
        presented,
    })
}
