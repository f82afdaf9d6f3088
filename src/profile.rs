//! The TLS profile of TS 33.203 O.2.1 as rustls configuration (docs/CONFORMANCE.md, "O.2.1
//! TLS profile"): TLS 1.3 and 1.2 only, AEAD suites with ECDHE only, the hybrid post-quantum
//! group first where the provider has it, P-CSCF verification by [`PcscfVerifier`], no
//! client certificate, and imstls's own [`SessionStore`].
//!
//! One [`TlsProfile`] belongs to one UE engine and lives as long as it: rustls resumes a
//! session only when the new connection's config shares the same verifier and client-cert
//! resolver `Arc`s as the one that stored it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::{ResolvesClientCert, Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ClientConfig, NamedGroup, SignatureScheme};

use crate::config::{Candidate, ConfigError, Host, KxGroup, TlsVersions, UeConfig};
use crate::session::SessionStore;
use crate::verify::PcscfVerifier;

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("imstls needs a crypto provider: enable the `aws-lc-rs` or the `ring` feature");

/// The only suites imstls offers: AEAD, and for TLS 1.2 ECDHE key exchange. Anything a
/// provider adds beyond these (CBC, RSA key transport, NULL, anon) is filtered out.
const ALLOWED_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The name of the crypto provider compiled in.
pub fn crypto_provider_name() -> &'static str {
    if cfg!(feature = "aws-lc-rs") {
        "aws-lc-rs"
    } else {
        "ring"
    }
}

pub(crate) fn crypto_provider() -> CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        rustls::crypto::aws_lc_rs::default_provider()
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        rustls::crypto::ring::default_provider()
    }
}

fn named_group(group: KxGroup) -> NamedGroup {
    match group {
        KxGroup::X25519MlKem768 => NamedGroup::X25519MLKEM768,
        KxGroup::X25519 => NamedGroup::X25519,
        KxGroup::P256 => NamedGroup::secp256r1,
        KxGroup::P384 => NamedGroup::secp384r1,
    }
}

/// Checks a requested group list (or makes the default one) against the provider.
pub(crate) fn resolve_kx_groups(
    provider: &CryptoProvider,
    requested: Option<&[KxGroup]>,
) -> Result<Vec<KxGroup>, ConfigError> {
    let available = |g: KxGroup| {
        provider
            .kx_groups
            .iter()
            .any(|k| k.name() == named_group(g))
    };
    let groups = match requested {
        Some(groups) => {
            for (i, g) in groups.iter().enumerate() {
                if groups[..i].contains(g) {
                    return Err(ConfigError::DuplicateKxGroup { group: g.name() });
                }
                if !available(*g) {
                    return Err(ConfigError::KxGroupUnavailable { group: g.name() });
                }
            }
            groups.to_vec()
        }
        None => [
            KxGroup::X25519MlKem768,
            KxGroup::X25519,
            KxGroup::P256,
            KxGroup::P384,
        ]
        .into_iter()
        .filter(|g| available(*g))
        .collect(),
    };
    if !groups.contains(&KxGroup::P256) {
        return Err(ConfigError::P256Required);
    }
    Ok(groups)
}

/// The provider narrowed to the imstls suites (TLS 1.3 ones only for a 1.3-only profile, so
/// no TLS 1.2 suite is ever offered there) and the configured groups, in order.
pub(crate) fn restrict_provider(
    mut provider: CryptoProvider,
    groups: &[KxGroup],
    versions: TlsVersions,
) -> CryptoProvider {
    provider.cipher_suites.retain(|s| {
        ALLOWED_SUITES.contains(&s.suite())
            && (versions == TlsVersions::Tls13AndTls12 || s.tls13().is_some())
    });
    let all = std::mem::take(&mut provider.kx_groups);
    provider.kx_groups = groups
        .iter()
        .filter_map(|g| all.iter().find(|k| k.name() == named_group(*g)).copied())
        .collect();
    provider
}

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

/// The per-UE rustls configuration: one verifier, one resolver, one session store.
#[derive(Debug, Clone)]
pub struct TlsProfile {
    pub(crate) config: UeConfig,
    pub(crate) client_config: Arc<ClientConfig>,
    pub(crate) sessions: Arc<SessionStore>,
    pub(crate) cert_requests: Arc<CertificateRequestLog>,
}

impl TlsProfile {
    /// Builds the rustls configuration for one UE. `now` starts the session store's clock.
    pub fn new(config: &UeConfig, now: Instant) -> Result<Self, ConfigError> {
        let inner = &config.inner;
        let cert_requests = Arc::new(CertificateRequestLog::default());
        let verifier = Arc::new(PcscfVerifier::new(inner, cert_requests.clone()));
        let sessions = Arc::new(SessionStore::new(inner.session_lifetime, now));
        let versions: &[&'static rustls::SupportedProtocolVersion] = match inner.versions {
            TlsVersions::Tls13AndTls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersions::Tls13Only => &[&rustls::version::TLS13],
        };
        let mut client_config =
            ClientConfig::builder_with_details(inner.provider.clone(), inner.time_provider.clone())
                .with_protocol_versions(versions)
                .map_err(|e| ConfigError::Tls {
                    reason: e.to_string(),
                })?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(cert_requests.clone());
        client_config.resumption = if inner.resumption {
            Resumption::store(sessions.clone())
                .tls12_resumption(Tls12Resumption::SessionIdOrTickets)
        } else {
            Resumption::disabled()
        };
        client_config.enable_sni = true;
        // RFC 7627: without the extended master secret a TLS 1.2 master secret is not bound
        // to the handshake (triple handshake); a peer that does not negotiate it is refused.
        client_config.require_ems = true;
        if let Some(sink) = &inner.key_log {
            client_config.key_log = Arc::new(crate::config::NssKeyLog { sink: sink.clone() });
        }
        Ok(Self {
            config: config.clone(),
            client_config: Arc::new(client_config),
            sessions,
            cert_requests,
        })
    }

    /// The UE configuration this profile was built from.
    pub fn config(&self) -> &UeConfig {
        &self.config
    }

    /// The session store (resumption state, purge operations).
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The name given to rustls for a candidate: the configured FQDN when there is one (sent
    /// as SNI, verified per RFC 5922), else the candidate's host name, else its IP address
    /// (no SNI; the certificate needs an IP SAN).
    pub fn server_name_for(&self, candidate: &Candidate) -> ServerName<'static> {
        let name = match (&self.config.inner.server_name, &candidate.host) {
            (Some(fqdn), _) => fqdn.clone(),
            (None, Host::Name(host)) => host.clone(),
            (None, Host::Ip(ip)) => return ServerName::IpAddress((*ip).into()),
        };
        ServerName::try_from(name).expect("names are validated when the configuration is built")
    }
}
