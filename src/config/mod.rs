//! The UE configuration: the Annex O TLS profile (TS 33.203 O.2.1 as it stands today, see
//! `docs/CONFORMANCE.md`) plus the registration-engine timers.
//!
//! Build one with [`UeConfig::builder`]; [`UeConfigBuilder::build`] checks everything and
//! returns a [`ConfigError`] naming the offending field. A built [`UeConfig`] is immutable,
//! cheap to clone and shareable between threads and UEs.
// Forbidden, not just denied: nothing inside this layer can lift the lint again (only
// src/os.rs and src/ffi may use unsafe_code).
#![forbid(unsafe_code)]

mod candidate;
mod error;
mod key_log;
pub(crate) mod provider;
mod trust;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::time_provider::TimeProvider;

pub use candidate::{Candidate, Host, DEFAULT_SIPS_PORT};
pub use error::ConfigError;
pub use key_log::KeyLogSink;
pub(crate) use key_log::NssKeyLog;
pub use provider::{crypto_provider_name, KxGroup, TlsVersions};
pub use trust::TrustSource;

/// Longest TLS session lifetime TLS allows (RFC 5246 §F.1.4 / RFC 8446 §4.6.1): 24 h.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(86_400);

/// Conformance-log entries kept per UE unless configured.
pub const DEFAULT_CONFORMANCE_LOG_ENTRIES: usize = 128;

/// Most conformance-log entries a UE may keep.
pub const MAX_CONFORMANCE_LOG_ENTRIES: usize = 4096;

/// What to do when the P-CSCF sends a CertificateRequest, which O.2.1 forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateRequestPolicy {
    /// Send no certificate and carry on; a warning event reports the request (default).
    #[default]
    ContinueWithWarning,
    /// Abort the handshake with a fatal handshake_failure alert.
    Abort,
}

/// Caps on what a peer that does not read, or a caller that does not drain, can make imstls
/// hold (issue 12 §5). Each is in bytes: payload (TLS records, SIP messages) plus a fixed
/// overhead per queued item. Reaching a cap fails the flow with
/// [`LossReason::QueueOverflow`](crate::LossReason::QueueOverflow) or
/// [`LossReason::PeerNotReading`](crate::LossReason::PeerNotReading), then the UE recovers
/// with an RFC 5626 §4.5 back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// The engine's output queue between two drains of `poll_output` (default 1 MiB).
    pub engine_output_bytes: usize,
    /// The driver's TLS bytes the socket has not taken yet: the P-CSCF does not read
    /// (default 1 MiB).
    pub driver_outgoing_bytes: usize,
    /// The driver's events the application has not polled yet (default 1 MiB).
    pub driver_event_bytes: usize,
}

/// The default of every [`QueueLimits`] cap: 1 MiB.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024 * 1024;
/// The largest [`QueueLimits`] cap: 1 GiB.
pub const MAX_QUEUE_LIMIT: usize = 1024 * 1024 * 1024;

/// RFC 5626 keep-alive settings (§4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Send CRLF pings once registered (default true).
    pub enabled: bool,
    /// Battery-saving interval (672–840 s) instead of 95–120 s when the P-CSCF gives no
    /// Flow-Timer.
    pub battery_saving: bool,
    /// How long to wait for the pong before declaring the flow failed (default 10 s).
    pub pong_timeout: Duration,
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self {
            enabled: true,
            battery_saving: false,
            pong_timeout: Duration::from_secs(10),
        }
    }
}

/// RFC 5626 §4.5 flow-recovery back-off constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// base-time "if all of the flows to every URI in the outbound proxy set have failed"
    /// (default 30 s). imstls keeps one registration flow per UE, so once it failed all have:
    /// this base is the one every back-off uses.
    pub base_all_failed: Duration,
    /// base-time "in the case where at least one of the flows has not failed" (default 90 s).
    /// It would apply while another registration flow is still up; imstls never has a second
    /// one, so it is validated and kept but not used.
    pub base_not_all_failed: Duration,
    /// max-time (default 1800 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_all_failed: Duration::from_secs(30),
            base_not_all_failed: Duration::from_secs(90),
            max: Duration::from_secs(1800),
        }
    }
}

/// A validated, immutable UE configuration. Clone freely: clones share one allocation.
#[derive(Clone)]
pub struct UeConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

pub(crate) struct ConfigInner {
    pub candidates: Vec<Candidate>,
    /// Each candidate as `host:port`, formatted once: every connect attempt reports it.
    pub candidate_labels: Vec<String>,
    pub server_name: Option<String>,
    pub uses_webpki_roots: bool,
    pub pins: Vec<[u8; 32]>,
    pub versions: TlsVersions,
    pub kx_groups: Vec<KxGroup>,
    pub allow_wildcards: bool,
    pub certificate_request_policy: CertificateRequestPolicy,
    pub session_lifetime: Duration,
    pub resumption: bool,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub registration_timeout: Duration,
    pub keepalive: KeepAlive,
    pub backoff: Backoff,
    pub max_sip_message_size: usize,
    pub max_challenges: u32,
    pub conformance_log_entries: usize,
    pub queue_limits: QueueLimits,
    pub random_seed: Option<u64>,
    pub provider: Arc<CryptoProvider>,
    pub chain_verifier: Arc<WebPkiServerVerifier>,
    pub time_provider: Arc<dyn TimeProvider>,
    pub key_log: Option<Arc<dyn KeyLogSink>>,
}

impl fmt::Debug for UeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner;
        f.debug_struct("UeConfig")
            .field("candidates", &c.candidates)
            .field("server_name", &c.server_name)
            .field("uses_webpki_roots", &c.uses_webpki_roots)
            .field("pins", &c.pins.len())
            .field("versions", &c.versions)
            .field("kx_groups", &c.kx_groups)
            .field("allow_wildcards", &c.allow_wildcards)
            .field("certificate_request_policy", &c.certificate_request_policy)
            .field("session_lifetime", &c.session_lifetime)
            .field("resumption", &c.resumption)
            .field("connect_timeout", &c.connect_timeout)
            .field("handshake_timeout", &c.handshake_timeout)
            .field("registration_timeout", &c.registration_timeout)
            .field("keepalive", &c.keepalive)
            .field("backoff", &c.backoff)
            .field("key_log", &c.key_log.is_some())
            .finish_non_exhaustive()
    }
}

impl UeConfig {
    /// Starts a configuration with the defaults of `docs/CONFORMANCE.md`.
    pub fn builder() -> UeConfigBuilder {
        UeConfigBuilder::default()
    }

    /// The P-CSCF candidates, in the order they are tried.
    pub fn candidates(&self) -> &[Candidate] {
        &self.inner.candidates
    }

    /// Candidate `index` as `host:port` (its `Display` form), formatted when the
    /// configuration was built.
    pub(crate) fn candidate_label(&self, index: usize) -> &str {
        &self.inner.candidate_labels[index]
    }

    /// The configured P-CSCF FQDN, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.inner.server_name.as_deref()
    }

    /// True when no trust anchor was configured and webpki-roots is used.
    pub fn uses_webpki_roots(&self) -> bool {
        self.inner.uses_webpki_roots
    }

    /// The TLS versions offered.
    pub fn tls_versions(&self) -> TlsVersions {
        self.inner.versions
    }

    /// The key-exchange groups offered, in preference order.
    pub fn kx_groups(&self) -> &[KxGroup] {
        &self.inner.kx_groups
    }

    /// How long a TLS session may be resumed.
    pub fn session_lifetime(&self) -> Duration {
        self.inner.session_lifetime
    }

    /// TCP connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.inner.handshake_timeout
    }

    /// How long a REGISTER may go unanswered (SIP Timer F, 64·T1 by default).
    pub fn registration_timeout(&self) -> Duration {
        self.inner.registration_timeout
    }

    /// Keep-alive settings.
    pub fn keepalive(&self) -> KeepAlive {
        self.inner.keepalive
    }

    /// Back-off constants.
    pub fn backoff(&self) -> Backoff {
        self.inner.backoff
    }

    /// Largest SIP message accepted or sent.
    pub fn max_sip_message_size(&self) -> usize {
        self.inner.max_sip_message_size
    }

    /// How many entries each UE's conformance log keeps (0: no log).
    pub fn conformance_log_entries(&self) -> usize {
        self.inner.conformance_log_entries
    }

    /// The queue caps.
    pub fn queue_limits(&self) -> QueueLimits {
        self.inner.queue_limits
    }

    /// Policy for a P-CSCF CertificateRequest.
    pub fn certificate_request_policy(&self) -> CertificateRequestPolicy {
        self.inner.certificate_request_policy
    }

    /// True when TLS secrets go to a key log ([`UeConfigBuilder::key_log_file`]).
    pub fn key_log_enabled(&self) -> bool {
        self.inner.key_log.is_some()
    }
}

/// Where the key log goes, as configured.
#[derive(Clone)]
enum KeyLogTarget {
    File(PathBuf),
    Sink(Arc<dyn KeyLogSink>),
}

/// Collects configuration values; [`build`](Self::build) validates them all.
#[derive(Clone, Default)]
pub struct UeConfigBuilder {
    candidates: Vec<String>,
    server_name: Option<String>,
    trust_anchors: Vec<TrustSource>,
    crls: Vec<TrustSource>,
    pins: Vec<String>,
    versions: TlsVersions,
    kx_groups: Option<Vec<KxGroup>>,
    allow_wildcards: bool,
    certificate_request_policy: CertificateRequestPolicy,
    session_lifetime: Option<Duration>,
    resumption: Option<bool>,
    connect_timeout: Option<Duration>,
    handshake_timeout: Option<Duration>,
    registration_timeout: Option<Duration>,
    keepalive: KeepAlive,
    backoff: Backoff,
    max_sip_message_size: Option<usize>,
    max_challenges: Option<u32>,
    conformance_log_entries: Option<usize>,
    max_engine_output_bytes: Option<usize>,
    max_driver_outgoing_bytes: Option<usize>,
    max_driver_event_bytes: Option<usize>,
    random_seed: Option<u64>,
    time_provider: Option<Arc<dyn TimeProvider>>,
    key_log: Option<KeyLogTarget>,
}

impl fmt::Debug for UeConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UeConfigBuilder")
            .field("candidates", &self.candidates)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UeConfigBuilder {
    /// Adds a P-CSCF candidate: `host`, `host:port`, `ip`, `ip:port`, `[ipv6]:port`.
    pub fn pcscf(mut self, candidate: impl Into<String>) -> Self {
        self.candidates.push(candidate.into());
        self
    }

    /// The P-CSCF FQDN the certificate must name (RFC 5922). Needed when a candidate is an
    /// IP address and the certificate names the FQDN; sent as SNI.
    pub fn server_name(mut self, fqdn: impl Into<String>) -> Self {
        self.server_name = Some(fqdn.into());
        self
    }

    /// Adds operator trust anchors (PEM, DER or a file). Without any, webpki-roots is used.
    pub fn trust_anchors(mut self, source: TrustSource) -> Self {
        self.trust_anchors.push(source);
        self
    }

    /// Adds PEM trust anchors from memory.
    pub fn trust_anchors_pem(self, pem: impl Into<Vec<u8>>) -> Self {
        self.trust_anchors(TrustSource::Pem(pem.into()))
    }

    /// Adds certificate revocation lists (PEM, DER or a file). They are not fetched.
    pub fn crls(mut self, source: TrustSource) -> Self {
        self.crls.push(source);
        self
    }

    /// Adds an SPKI SHA-256 pin (base64). With pins, the leaf key must match one of them.
    pub fn spki_pin(mut self, base64: impl Into<String>) -> Self {
        self.pins.push(base64.into());
        self
    }

    /// Which TLS versions to offer.
    pub fn tls_versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// Key-exchange groups in preference order (default: X25519MLKEM768 where the provider
    /// has it, X25519, P-256, P-384).
    pub fn kx_groups(mut self, groups: &[KxGroup]) -> Self {
        self.kx_groups = Some(groups.to_vec());
        self
    }

    /// Accept wildcard certificates (`*.example.net`); RFC 5922 forbids them (default off).
    pub fn allow_wildcard_certificates(mut self, allow: bool) -> Self {
        self.allow_wildcards = allow;
        self
    }

    /// What to do on a P-CSCF CertificateRequest (default: continue with a warning).
    pub fn certificate_request_policy(mut self, policy: CertificateRequestPolicy) -> Self {
        self.certificate_request_policy = policy;
        self
    }

    /// TLS session lifetime for resumption (default 3600 s, at most 86 400 s).
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = Some(lifetime);
        self
    }

    /// Enables or disables TLS session resumption (default enabled).
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.resumption = Some(enabled);
        self
    }

    /// TCP connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// TLS handshake timeout (default 15 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// How long a REGISTER may stay unanswered before the procedure fails (default 32 s,
    /// SIP Timer F = 64·T1; TS 33.203 O.3.1.4).
    pub fn registration_timeout(mut self, timeout: Duration) -> Self {
        self.registration_timeout = Some(timeout);
        self
    }

    /// RFC 5626 keep-alive settings.
    pub fn keepalive(mut self, keepalive: KeepAlive) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// RFC 5626 §4.5 back-off constants.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Largest SIP message accepted or sent (default 128 KiB, 1 KiB ..= 16 MiB).
    pub fn max_sip_message_size(mut self, bytes: usize) -> Self {
        self.max_sip_message_size = Some(bytes);
        self
    }

    /// How many 401/407 challenges one registration procedure may receive (default 3).
    pub fn max_challenges(mut self, count: u32) -> Self {
        self.max_challenges = Some(count);
        self
    }

    /// How many of its latest events each UE keeps in its conformance log, with the clause
    /// behind each (default 128, at most 4096; 0 turns the log off). Each entry is a small
    /// 24-byte record (no text), so the default costs 3 KiB per long-running UE; a
    /// handset that never reads the log can save that memory.
    pub fn conformance_log_entries(mut self, entries: usize) -> Self {
        self.conformance_log_entries = Some(entries);
        self
    }

    /// Cap on the engine's output queue between two drains of `poll_output` (default 1 MiB;
    /// at least twice `max_sip_message_size`, at most 1 GiB). Reached while bytes of a flow
    /// are fed in, the flow fails with `LossReason::QueueOverflow` (engine output).
    pub fn max_engine_output_bytes(mut self, bytes: usize) -> Self {
        self.max_engine_output_bytes = Some(bytes);
        self
    }

    /// Driver only: cap on TLS bytes the socket has not taken (default 1 MiB; same range).
    /// Reached, the P-CSCF is not reading: the flow fails with `LossReason::PeerNotReading`.
    pub fn max_driver_outgoing_bytes(mut self, bytes: usize) -> Self {
        self.max_driver_outgoing_bytes = Some(bytes);
        self
    }

    /// Driver only: cap on events the application has not polled (default 1 MiB; same
    /// range). Reached when bytes arrive, the flow fails with `LossReason::QueueOverflow`
    /// (driver events) and nothing more is read from it.
    pub fn max_driver_event_bytes(mut self, bytes: usize) -> Self {
        self.max_driver_event_bytes = Some(bytes);
        self
    }

    /// Seeds the engine's jitter generator, for reproducible tests. Without it the seed
    /// comes from the crypto provider's secure random source.
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.random_seed = Some(seed);
        self
    }

    /// The wall clock used for certificate validity (default: the system clock). Tests use
    /// this to validate certificates at a chosen time.
    pub fn wall_clock(mut self, clock: Arc<dyn TimeProvider>) -> Self {
        self.time_provider = Some(clock);
        self
    }

    /// **Debugging only.** Appends the TLS secrets of every flow to `path` as NSS key-log
    /// lines (`CLIENT_RANDOM ...`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...`), which Wireshark
    /// uses to decrypt a capture: whoever holds the file can read the flows, digest
    /// responses included. Off by default; no environment variable (`SSLKEYLOGFILE` included)
    /// turns it on. Each flow then starts with [`Event::KeyLogEnabled`](crate::Event::KeyLogEnabled).
    /// The file is created (mode 0600 on Unix) or appended to when the configuration is built.
    pub fn key_log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_log = Some(KeyLogTarget::File(path.into()));
        self
    }

    /// **Debugging only.** As [`key_log_file`](Self::key_log_file), to an application sink.
    pub fn key_log_sink(mut self, sink: Arc<dyn KeyLogSink>) -> Self {
        self.key_log = Some(KeyLogTarget::Sink(sink));
        self
    }

    /// Turns the key log off again (the default).
    pub fn key_log_off(mut self) -> Self {
        self.key_log = None;
        self
    }

    /// Validates everything and builds the configuration.
    pub fn build(self) -> Result<UeConfig, ConfigError> {
        if self.candidates.is_empty() {
            return Err(ConfigError::NoCandidates);
        }
        let mut candidates = Vec::with_capacity(self.candidates.len());
        for candidate in &self.candidates {
            candidates.push(candidate.parse::<Candidate>()?);
        }
        let server_name = match &self.server_name {
            None => None,
            Some(name) => {
                if name.parse::<std::net::IpAddr>().is_ok() {
                    return Err(ConfigError::InvalidServerName {
                        value: name.clone(),
                        reason: "an IP address is not a server name; leave it unset to \
                                 require an IP SAN",
                    });
                }
                Some(candidate::validate_dns_name(name).map_err(|reason| {
                    ConfigError::InvalidServerName {
                        value: name.clone(),
                        reason,
                    }
                })?)
            }
        };
        let (roots, uses_webpki_roots) = trust::load_roots(&self.trust_anchors)?;
        let crls = trust::load_crls(&self.crls)?;
        let pins = trust::parse_pins(&self.pins)?;

        let session_lifetime = positive(
            "session_lifetime",
            self.session_lifetime,
            Duration::from_secs(3600),
            Some(MAX_SESSION_LIFETIME),
        )?;
        let connect_timeout = positive(
            "connect_timeout",
            self.connect_timeout,
            Duration::from_secs(10),
            Some(Duration::from_secs(600)),
        )?;
        let handshake_timeout = positive(
            "handshake_timeout",
            self.handshake_timeout,
            Duration::from_secs(15),
            Some(Duration::from_secs(600)),
        )?;
        let registration_timeout = positive(
            "registration_timeout",
            self.registration_timeout,
            Duration::from_secs(32),
            Some(Duration::from_secs(600)),
        )?;
        positive(
            "keepalive.pong_timeout",
            Some(self.keepalive.pong_timeout),
            Duration::ZERO,
            Some(Duration::from_secs(300)),
        )?;
        positive(
            "backoff.base_all_failed",
            Some(self.backoff.base_all_failed),
            Duration::ZERO,
            Some(self.backoff.max.max(Duration::from_secs(1))),
        )?;
        positive(
            "backoff.base_not_all_failed",
            Some(self.backoff.base_not_all_failed),
            Duration::ZERO,
            Some(self.backoff.max.max(Duration::from_secs(1))),
        )?;
        positive(
            "backoff.max",
            Some(self.backoff.max),
            Duration::ZERO,
            Some(Duration::from_secs(86_400)),
        )?;
        let conformance_log_entries = self
            .conformance_log_entries
            .unwrap_or(DEFAULT_CONFORMANCE_LOG_ENTRIES);
        if conformance_log_entries > MAX_CONFORMANCE_LOG_ENTRIES {
            return Err(ConfigError::CountOutOfRange {
                field: "conformance_log_entries",
                min: 0,
                max: MAX_CONFORMANCE_LOG_ENTRIES,
            });
        }
        let max_sip_message_size = self.max_sip_message_size.unwrap_or(128 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_sip_message_size) {
            return Err(ConfigError::SizeOutOfRange {
                field: "max_sip_message_size",
                min: 1024,
                max: 16 * 1024 * 1024,
            });
        }
        let queue_limit = |field: &'static str, value: Option<usize>| {
            let min = 2 * max_sip_message_size;
            let value = value.unwrap_or(DEFAULT_QUEUE_LIMIT.max(min));
            if (min..=MAX_QUEUE_LIMIT).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::SizeOutOfRange {
                    field,
                    min,
                    max: MAX_QUEUE_LIMIT,
                })
            }
        };
        let queue_limits = QueueLimits {
            engine_output_bytes: queue_limit(
                "max_engine_output_bytes",
                self.max_engine_output_bytes,
            )?,
            driver_outgoing_bytes: queue_limit(
                "max_driver_outgoing_bytes",
                self.max_driver_outgoing_bytes,
            )?,
            driver_event_bytes: queue_limit("max_driver_event_bytes", self.max_driver_event_bytes)?,
        };

        let provider = provider::crypto_provider();
        let kx_groups = provider::resolve_kx_groups(&provider, self.kx_groups.as_deref())?;
        let provider = Arc::new(provider::restrict_provider(
            provider,
            &kx_groups,
            self.versions,
        ));
        let chain_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls)
                // CRLs are supplied, not fetched: a certificate whose issuer has no configured
                // CRL is not failed for that; one listed on a configured CRL is.
                .allow_unknown_revocation_status()
                .build()
                .map_err(|e| ConfigError::InvalidCertificate {
                    field: "crls",
                    reason: e.to_string(),
                })?;

        let key_log = match &self.key_log {
            None => None,
            Some(KeyLogTarget::File(path)) => {
                Some(Arc::new(key_log::KeyLogFile::open(path)?) as Arc<dyn KeyLogSink>)
            }
            Some(KeyLogTarget::Sink(sink)) => Some(sink.clone()),
        };

        Ok(UeConfig {
            inner: Arc::new(ConfigInner {
                candidate_labels: candidates.iter().map(ToString::to_string).collect(),
                candidates,
                server_name,
                uses_webpki_roots,
                pins,
                versions: self.versions,
                kx_groups,
                allow_wildcards: self.allow_wildcards,
                certificate_request_policy: self.certificate_request_policy,
                session_lifetime,
                resumption: self.resumption.unwrap_or(true),
                connect_timeout,
                handshake_timeout,
                registration_timeout,
                keepalive: self.keepalive,
                backoff: self.backoff,
                max_sip_message_size,
                max_challenges: self.max_challenges.unwrap_or(3),
                conformance_log_entries,
                queue_limits,
                random_seed: self.random_seed,
                provider,
                chain_verifier,
                time_provider: self
                    .time_provider
                    .unwrap_or_else(|| Arc::new(rustls::time_provider::DefaultTimeProvider)),
                key_log,
            }),
        })
    }
}

fn positive(
    field: &'static str,
    value: Option<Duration>,
    default: Duration,
    max: Option<Duration>,
) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if value.is_zero() {
        return Err(ConfigError::ZeroDuration { field });
    }
    if let Some(max) = max {
        if value > max {
            return Err(ConfigError::DurationTooLong { field, max });
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "webpki-roots")]
    fn base() -> UeConfigBuilder {
        UeConfig::builder().pcscf("pcscf.ims.test")
    }

    /// Without default roots a configuration needs anchors: a test PKI's root.
    #[cfg(not(feature = "webpki-roots"))]
    fn base() -> UeConfigBuilder {
        let root = imstls_testkit::TestPki::generate("pcscf.ims.test").root_pem();
        UeConfig::builder()
            .pcscf("pcscf.ims.test")
            .trust_anchors(TrustSource::Pem(root.into_bytes()))
    }

    #[test]
    fn defaults_follow_the_profile() {
        let config = base().build().unwrap();
        assert_eq!(config.candidates()[0].port, 5061);
        assert_eq!(config.tls_versions(), TlsVersions::Tls13AndTls12);
        assert_eq!(config.session_lifetime(), Duration::from_secs(3600));
        assert_eq!(config.uses_webpki_roots(), cfg!(feature = "webpki-roots"));
        // By provider: aws-lc-rs leads with the hybrid post-quantum group, ring has none.
        let expected: &[KxGroup] = if cfg!(feature = "aws-lc-rs") {
            &[
                KxGroup::X25519MlKem768,
                KxGroup::X25519,
                KxGroup::P256,
                KxGroup::P384,
            ]
        } else {
            &[KxGroup::X25519, KxGroup::P256, KxGroup::P384]
        };
        assert_eq!(config.kx_groups(), expected);
    }

    #[test]
    fn no_candidates_is_an_error() {
        let err = UeConfig::builder().build().unwrap_err();
        assert_eq!(err, ConfigError::NoCandidates);
        assert_eq!(err.field(), "pcscf");
    }

    #[test]
    fn zero_timeouts_are_errors_naming_the_field() {
        for (builder, field) in [
            (base().connect_timeout(Duration::ZERO), "connect_timeout"),
            (
                base().handshake_timeout(Duration::ZERO),
                "handshake_timeout",
            ),
            (
                base().registration_timeout(Duration::ZERO),
                "registration_timeout",
            ),
            (base().session_lifetime(Duration::ZERO), "session_lifetime"),
            (
                base().keepalive(KeepAlive {
                    pong_timeout: Duration::ZERO,
                    ..KeepAlive::default()
                }),
                "keepalive.pong_timeout",
            ),
        ] {
            let err = builder.build().unwrap_err();
            assert_eq!(err, ConfigError::ZeroDuration { field }, "{field}");
            assert!(err.to_string().starts_with(field));
        }
    }

    #[test]
    fn session_lifetime_is_capped_at_24_hours() {
        assert!(base()
            .session_lifetime(MAX_SESSION_LIFETIME)
            .build()
            .is_ok());
        let err = base()
            .session_lifetime(MAX_SESSION_LIFETIME + Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "session_lifetime");
    }

    #[test]
    fn version_strings_parse_or_fail_clearly() {
        assert_eq!(
            "1.3".parse::<TlsVersions>().unwrap(),
            TlsVersions::Tls13Only
        );
        assert_eq!(
            "TLSv1.3".parse::<TlsVersions>().unwrap(),
            TlsVersions::Tls13Only
        );
        assert_eq!(
            "1.2+1.3".parse::<TlsVersions>().unwrap(),
            TlsVersions::Tls13AndTls12
        );
        assert!(matches!(
            "1.1".parse::<TlsVersions>(),
            Err(ConfigError::ObsoleteTlsVersion { .. })
        ));
        assert!(matches!(
            "TLSv1.0".parse::<TlsVersions>(),
            Err(ConfigError::ObsoleteTlsVersion { .. })
        ));
        let err = "1.4".parse::<TlsVersions>().unwrap_err();
        assert_eq!(err.field(), "tls_versions");
        assert!(err.to_string().contains("\"1.4\""));
    }

    #[test]
    fn kx_groups_are_checked() {
        assert!(matches!(
            "ffdhe2048".parse::<KxGroup>(),
            Err(ConfigError::UnknownKxGroup { .. })
        ));
        assert_eq!(
            base().kx_groups(&[KxGroup::X25519]).build().unwrap_err(),
            ConfigError::P256Required
        );
        assert_eq!(
            base()
                .kx_groups(&[KxGroup::P256, KxGroup::P256])
                .build()
                .unwrap_err(),
            ConfigError::DuplicateKxGroup { group: "secp256r1" }
        );
        let config = base()
            .kx_groups(&[KxGroup::P384, KxGroup::P256])
            .build()
            .unwrap();
        assert_eq!(config.kx_groups(), &[KxGroup::P384, KxGroup::P256]);
    }

    #[test]
    fn server_name_must_be_a_dns_name() {
        let err = base().server_name("10.0.0.1").build().unwrap_err();
        assert_eq!(err.field(), "server_name");
        let err = base().server_name("bad name").build().unwrap_err();
        assert!(matches!(err, ConfigError::InvalidServerName { .. }));
        let ok = base().server_name("PCSCF.IMS.test.").build().unwrap();
        assert_eq!(ok.server_name(), Some("pcscf.ims.test"));
    }

    #[test]
    fn message_size_is_bounded() {
        let err = base().max_sip_message_size(10).build().unwrap_err();
        assert_eq!(err.field(), "max_sip_message_size");
    }

    #[test]
    fn queue_caps_default_to_1_mib_and_hold_two_sip_messages_at_least() {
        let limits = base().build().unwrap().queue_limits();
        assert_eq!(limits.engine_output_bytes, DEFAULT_QUEUE_LIMIT);
        assert_eq!(limits.driver_outgoing_bytes, DEFAULT_QUEUE_LIMIT);
        assert_eq!(limits.driver_event_bytes, DEFAULT_QUEUE_LIMIT);
        // The default grows with the largest SIP message.
        let big = base().max_sip_message_size(1024 * 1024).build().unwrap();
        assert_eq!(big.queue_limits().engine_output_bytes, 2 * 1024 * 1024);
        let small = base().max_sip_message_size(4096);
        assert_eq!(
            small
                .clone()
                .max_driver_outgoing_bytes(8192)
                .build()
                .unwrap()
                .queue_limits()
                .driver_outgoing_bytes,
            8192
        );
        for (builder, field) in [
            (
                small.clone().max_engine_output_bytes(8191),
                "max_engine_output_bytes",
            ),
            (
                small.clone().max_driver_outgoing_bytes(100),
                "max_driver_outgoing_bytes",
            ),
            (
                small.max_driver_event_bytes(MAX_QUEUE_LIMIT + 1),
                "max_driver_event_bytes",
            ),
        ] {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }

    #[test]
    fn conformance_log_bound_is_checked_and_zero_turns_it_off() {
        let err = base().conformance_log_entries(5000).build().unwrap_err();
        assert_eq!(err.field(), "conformance_log_entries");
        assert!(err.to_string().contains("between 0 and 4096"), "{err}");
        assert_eq!(
            base()
                .conformance_log_entries(0)
                .build()
                .unwrap()
                .conformance_log_entries(),
            0
        );
        assert_eq!(
            base().build().unwrap().conformance_log_entries(),
            DEFAULT_CONFORMANCE_LOG_ENTRIES
        );
    }

    #[test]
    fn empty_pem_trust_store_is_an_error() {
        let err = base().trust_anchors_pem(Vec::new()).build().unwrap_err();
        assert_eq!(
            err,
            ConfigError::NoObjectInPem {
                field: "trust_anchors"
            }
        );
    }

    #[test]
    fn bad_crl_is_an_error() {
        let err = base()
            .crls(TrustSource::Der(vec![0x30, 0x00]))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "crls");
    }
}
