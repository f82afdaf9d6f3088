//! The crypto provider compiled in and how imstls narrows it to the TS 33.203 O.2.1 profile:
//! which TLS versions and key-exchange groups may be configured ([`TlsVersions`],
//! [`KxGroup`]), which cipher suites are ever offered, and the checks the builder runs
//! against the provider. Configuration only: the rustls client configuration itself is
//! built in `tls/profile.rs`.

use std::str::FromStr;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup};

use super::error::ConfigError;

/// Which TLS versions the UE offers. TLS 1.0 and 1.1 are never offered (TS 33.210 §6.2,
/// RFC 8996); rustls cannot speak them anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.3 preferred, TLS 1.2 accepted (the default).
    #[default]
    Tls13AndTls12,
    /// TLS 1.3 only.
    Tls13Only,
}

impl FromStr for TlsVersions {
    type Err = ConfigError;

    /// Accepts `1.2+1.3` (or `1.3+1.2`, `default`) and `1.3` (with or without a `TLS`/`TLSv`
    /// prefix, any case).
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        let normalised: String = value
            .trim()
            .to_ascii_lowercase()
            .replace("tlsv", "")
            .replace("tls", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        match normalised.as_str() {
            "default" | "1.2+1.3" | "1.3+1.2" | "1.2,1.3" | "1.3,1.2" => Ok(Self::Tls13AndTls12),
            "1.3" => Ok(Self::Tls13Only),
            "1.0" | "1.1" | "ssl3" | "ssl3.0" | "1" => Err(ConfigError::ObsoleteTlsVersion {
                value: value.to_owned(),
            }),
            _ => Err(ConfigError::UnknownTlsVersion {
                value: value.to_owned(),
            }),
        }
    }
}

/// Key-exchange groups the UE may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KxGroup {
    /// Hybrid post-quantum X25519 + ML-KEM-768 (aws-lc-rs provider only).
    X25519MlKem768,
    /// X25519.
    X25519,
    /// NIST P-256 (secp256r1), mandatory for 3GPP (TS 33.210 §6.2).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl KxGroup {
    /// The IANA name, as TLS libraries print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::X25519MlKem768 => "X25519MLKEM768",
            Self::X25519 => "X25519",
            Self::P256 => "secp256r1",
            Self::P384 => "secp384r1",
        }
    }
}

impl FromStr for KxGroup {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "x25519mlkem768" | "x25519-mlkem768" => Ok(Self::X25519MlKem768),
            "x25519" => Ok(Self::X25519),
            "p-256" | "p256" | "secp256r1" | "prime256v1" => Ok(Self::P256),
            "p-384" | "p384" | "secp384r1" => Ok(Self::P384),
            _ => Err(ConfigError::UnknownKxGroup {
                value: value.to_owned(),
            }),
        }
    }
}

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

/// The rustls provider of the crypto backend compiled in, with its defaults.
pub fn crypto_provider() -> CryptoProvider {
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
pub fn restrict_provider(
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
