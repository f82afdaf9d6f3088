//! rustls configurations: the simulator's server side, and a client trusting the test root (for
//! tests of the testkit itself and quick experiments).
//!
//! The crypto provider is the one of the crate's feature (aws-lc-rs, else ring), selected
//! explicitly so that a process that also links rustls with the other one never hits the "no
//! unique default provider" panic.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::pki::{CertKind, ServedIdentity, TestPki};

/// Which TLS versions a peer offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TlsVersions {
    /// TLS 1.3 and TLS 1.2 (1.3 preferred).
    #[default]
    Both,
    /// TLS 1.2 only.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
}

impl TlsVersions {
    /// The rustls protocol versions this selects.
    pub fn protocol_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::Both => &BOTH,
            TlsVersions::Tls12Only => &TLS12,
            TlsVersions::Tls13Only => &TLS13,
        }
    }
}

/// The provider the testkit uses everywhere: aws-lc-rs when its feature is on, else ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_provider())
}

#[cfg(feature = "aws-lc-rs")]
pub(crate) fn default_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) fn default_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Builds the server configuration serving `kind` from `pki`.
///
/// Keep the returned `Arc` for the simulator's lifetime: its default in-memory session cache is
/// what makes TLS 1.3 (stateful tickets) and TLS 1.2 (session ID) resumption work across
/// connections. With `request_client_cert` the server sends a CertificateRequest but also accepts
/// an empty Certificate (the UE must never send one, O.2.1).
pub fn server_config(
    pki: &TestPki,
    kind: CertKind,
    versions: TlsVersions,
    request_client_cert: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let identity = pki.leaf(kind);
    let chain: Vec<CertificateDer<'static>> = identity
        .chain_der
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key =
        PrivateKeyDer::try_from(identity.key_der).map_err(|e| rustls::Error::General(e.into()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions.protocol_versions())?;
    let builder = if request_client_cert {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots(pki)?), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.session_storage = Arc::new(SimSessionStore::new(SIM_SESSIONS));
    Ok(Arc::new(config))
}

/// How many sessions the simulated P-CSCF keeps (rustls's own default cache size).
const SIM_SESSIONS: usize = 256;

/// The simulated P-CSCF's session cache: rustls's semantics (put, get, take, oldest evicted
/// when full) in a ring allocated once, so the peer's own memory cannot step up halfway
/// through a soak (rustls's hash-map cache regrows its table under insert/remove churn, a
/// one-off 25 KB step the soak's leak verdict cannot tell from the UE's).
#[derive(Debug)]
pub struct SimSessionStore {
    entries: std::sync::Mutex<std::collections::VecDeque<(Vec<u8>, Vec<u8>)>>,
    capacity: usize,
}

impl SimSessionStore {
    /// A cache of at most `capacity` sessions, its ring allocated now.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(
                capacity.max(1),
            )),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(Vec<u8>, Vec<u8>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl rustls::server::StoresServerSessions for SimSessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut entries = self.lock();
        if let Some(at) = entries.iter().position(|(k, _)| *k == key) {
            entries[at].1 = value;
            return true;
        }
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back((key, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let entries = self.lock();
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut entries = self.lock();
        let at = entries.iter().position(|(k, _)| k == key)?;
        entries.remove(at).map(|(_, v)| v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A server configuration (no client auth) presenting `identity`, e.g. a chain from
/// [`crate::chains::ChainFactory`].
pub fn server_config_for(
    identity: &ServedIdentity,
    versions: TlsVersions,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let chain: Vec<CertificateDer<'static>> = identity
        .chain_der
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::try_from(identity.key_der.clone())
        .map_err(|e| rustls::Error::General(e.into()))?;
    Ok(Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.protocol_versions())?
            .with_no_client_auth()
            .with_single_cert(chain, key)?,
    ))
}

/// A plain rustls client configuration trusting only `pki`'s root (no CRLs, no client cert).
pub fn client_config(
    pki: &TestPki,
    versions: TlsVersions,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions.protocol_versions())?
            .with_root_certificates(roots(pki)?)
            .with_no_client_auth(),
    ))
}

/// A client configuration trusting `pki`'s root and checking revocation against all its CRLs.
pub fn client_config_with_crls(pki: &TestPki) -> Result<Arc<ClientConfig>, rustls::Error> {
    let crls = pki
        .all_crls_der()
        .into_iter()
        .map(CertificateRevocationListDer::from)
        .collect::<Vec<_>>();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(pki)?),
        provider(),
    )
    .with_crls(crls)
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

fn roots(pki: &TestPki) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(pki.root_der()))?;
    Ok(roots)
}
