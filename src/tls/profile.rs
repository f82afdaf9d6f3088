//! The TLS profile of TS 33.203 O.2.1 as rustls configuration (docs/CONFORMANCE.md, "O.2.1
//! TLS profile"): TLS 1.3 and 1.2 only, AEAD suites with ECDHE only, the hybrid post-quantum
//! group first where the provider has it (the provider narrowed by `config/provider.rs`),
//! P-CSCF verification by [`PcscfVerifier`], no client certificate, and imstls's own
//! [`SessionStore`].
//!
//! One [`TlsProfile`] belongs to one UE engine and lives as long as it: rustls resumes a
//! session only when the new connection's config shares the same verifier and client-cert
//! resolver `Arc`s as the one that stored it.

use std::sync::Arc;
use std::time::Instant;

use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::session::SessionStore;
use super::verify::{CertificateRequestLog, PcscfVerifier};
use crate::config::{Candidate, ConfigError, Host, NssKeyLog, TlsVersions, UeConfig};

/// The per-UE rustls configuration: one verifier, one resolver, one session store.
#[derive(Debug, Clone)]
pub struct TlsProfile {
    /// Kept for the tests' and fuzz targets' [`config`](Self::config).
    #[cfg(feature = "_internal_test_exports")]
    config: UeConfig,
    pub(crate) client_config: Arc<ClientConfig>,
    pub(crate) sessions: Arc<SessionStore>,
    pub(crate) cert_requests: Arc<CertificateRequestLog>,
    /// The configured FQDN as rustls takes it, validated once rather than on every connect.
    configured_name: Option<ServerName<'static>>,
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
            client_config.key_log = Arc::new(NssKeyLog { sink: sink.clone() });
        }
        let configured_name = match &inner.server_name {
            Some(fqdn) => {
                Some(
                    ServerName::try_from(fqdn.clone()).map_err(|e| ConfigError::Tls {
                        reason: format!("server name {fqdn:?}: {e}"),
                    })?,
                )
            }
            None => None,
        };
        Ok(Self {
            #[cfg(feature = "_internal_test_exports")]
            config: config.clone(),
            client_config: Arc::new(client_config),
            sessions,
            cert_requests,
            configured_name,
        })
    }

    /// The UE configuration this profile was built from.
    #[cfg(feature = "_internal_test_exports")] // only tests and fuzz targets call it
    pub fn config(&self) -> &UeConfig {
        &self.config
    }

    /// The session store (resumption state, purge operations).
    #[cfg(feature = "_internal_test_exports")] // only tests and fuzz targets call it
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The name given to rustls for a candidate: the configured FQDN when there is one (sent
    /// as SNI, verified per RFC 5922), else the candidate's host name, else its IP address
    /// (no SNI; the certificate needs an IP SAN).
    pub fn server_name_for(&self, candidate: &Candidate) -> ServerName<'static> {
        match (&self.configured_name, &candidate.host) {
            (Some(fqdn), _) => fqdn.clone(),
            (None, Host::Name(host)) => ServerName::try_from(host.clone())
                .expect("names are validated when the configuration is built"),
            (None, Host::Ip(ip)) => ServerName::IpAddress((*ip).into()),
        }
    }
}
