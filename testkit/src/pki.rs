//! A throw-away test PKI generated at start-up: root → intermediate → P-CSCF leaf, plus every
//! broken leaf variant the UE must reject (or accept) per TS 33.203 O.5.1 / RFC 5922.
//!
//! Everything is generated eagerly in [`TestPki::generate`]: two leaf key pairs (the one every
//! variant shares, and [`CertKind::OtherKey`]'s), three CA keys and about twenty signatures, which
//! takes a few milliseconds with ECDSA P-256.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

/// The leaf certificate variants the simulator can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// Chain leaf ← intermediate ← root; SAN DNS = server name and SAN URI `sip:<server name>`;
    /// EKU serverAuth. The certificate a UE must accept.
    Good,
    /// notAfter in the past (now − 1 day), otherwise like `Good`.
    Expired,
    /// notBefore in the future (now + 1 day), otherwise like `Good`.
    NotYetValid,
    /// SAN DNS `other.ims.test` and `sip:other.ims.test` (a name that is not the server's).
    WrongName,
    /// A self-signed leaf with the right name, not under the test root.
    SelfSigned,
    /// Right name, chained to a different root that nobody trusts.
    UnknownCa,
    /// The `Good` leaf, but the server sends only the leaf (no intermediate).
    MissingIntermediate,
    /// EKU clientAuth only.
    ClientAuthEkuOnly,
    /// A leaf with basicConstraints CA:TRUE.
    CaTrueLeaf,
    /// SAN DNS `*.<parent domain>` only (no URI SAN); the server name must be a one-label child of
    /// the parent domain, e.g. `pcscf.ims.test` under `*.ims.test`.
    Wildcard,
    /// A good-looking leaf whose serial number is on the intermediate's CRL ([`TestPki::crl_der`]).
    Revoked,
    /// SAN only URI `sip:<server name>` (no DNS SAN); must NOT be accepted: a `sip:` URI
    /// identity counts only when its host is also a DNS SAN (docs/CONFORMANCE.md).
    UriSanOnly,
    /// SAN only DNS `<server name>`.
    DnsSanOnly,
    /// SAN only URI `sip:user@<server name>`; must NOT be accepted (RFC 5922 §7.1).
    UriWithUserPart,
    /// SAN IP addresses 127.0.0.1 and ::1 only.
    IpSan,
    /// No SAN at all, subject CN = server name; must NOT be accepted (the CN is never used).
    CnOnly,
    /// Good in every way but with a different key pair (for SPKI pin mismatch tests).
    OtherKey,
}

impl CertKind {
    /// Every variant, in declaration order.
    pub const ALL: [CertKind; 17] = [
        CertKind::Good,
        CertKind::Expired,
        CertKind::NotYetValid,
        CertKind::WrongName,
        CertKind::SelfSigned,
        CertKind::UnknownCa,
        CertKind::MissingIntermediate,
        CertKind::ClientAuthEkuOnly,
        CertKind::CaTrueLeaf,
        CertKind::Wildcard,
        CertKind::Revoked,
        CertKind::UriSanOnly,
        CertKind::DnsSanOnly,
        CertKind::UriWithUserPart,
        CertKind::IpSan,
        CertKind::CnOnly,
        CertKind::OtherKey,
    ];
}

impl CertKind {
    /// The kebab-case name, e.g. `missing-intermediate`.
    pub fn name(self) -> String {
        let mut out = String::new();
        for (i, c) in format!("{self:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }
}

impl std::str::FromStr for CertKind {
    type Err = String;

    /// Accepts the kebab-case name or the variant name, case-insensitively
    /// (`missing-intermediate`, `MissingIntermediate`, `missing_intermediate`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        CertKind::ALL
            .into_iter()
            .find(|k| format!("{k:?}").to_ascii_lowercase() == wanted)
            .ok_or_else(|| format!("unknown certificate kind {s:?}"))
    }
}

/// The key algorithm of the leaf certificates (the CAs always use ECDSA P-256).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LeafKeyType {
    /// ECDSA P-256 with SHA-256 (fast; TLS 1.2 suites ECDHE-ECDSA-*).
    #[default]
    EcdsaP256,
    /// RSA 2048 with SHA-256 (TLS 1.2 suites ECDHE-RSA-*). Key generation takes some 100 ms;
    /// it needs the `aws-lc-rs` feature (ring cannot generate RSA keys).
    Rsa2048,
}

/// What a TLS server presents: a certificate chain and its private key.
#[derive(Clone)]
pub struct ServedIdentity {
    /// DER certificates, leaf first, then the intermediates the server sends.
    pub chain_der: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// `chain_der` as concatenated PEM `CERTIFICATE` blocks.
    pub chain_pem: String,
    /// `key_der` as a PEM `PRIVATE KEY` block.
    pub key_pem: String,
}

impl ServedIdentity {
    /// A served identity from a DER chain (leaf first) and a PKCS#8 DER key; fills in the PEM.
    pub fn new(chain_der: Vec<Vec<u8>>, key_der: Vec<u8>) -> Self {
        let chain_pem = chain_der
            .iter()
            .map(|der| pem_block("CERTIFICATE", der))
            .collect::<String>();
        ServedIdentity {
            chain_pem,
            key_pem: pem_block("PRIVATE KEY", &key_der),
            key_der,
            chain_der,
        }
    }
}

impl fmt::Debug for ServedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedIdentity")
            .field("chain_len", &self.chain_der.len())
            .field("key_der", &"<redacted>")
            .finish()
    }
}

/// A complete test PKI for one P-CSCF server name.
pub struct TestPki {
    server_name: String,
    root_der: Vec<u8>,
    root_pem: String,
    intermediate_der: Vec<u8>,
    crl_der: Vec<u8>,
    crl_pem: String,
    root_crl_der: Vec<u8>,
    good_spki: Vec<u8>,
    identities: HashMap<CertKind, ServedIdentity>,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The CA half of the PKI while it is being built.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

/// Builds leaves that differ from the `Good` template in one respect each.
struct LeafFactory<'a> {
    now: OffsetDateTime,
    key: &'a KeyPair,
    key_der: Vec<u8>,
    intermediate: &'a Authority,
}

impl TestPki {
    /// Generates a fresh PKI for `server_name` with ECDSA P-256 keys (well under a second).
    ///
    /// # Panics
    /// If `server_name` is not an ASCII host name (test configuration error).
    pub fn generate(server_name: &str) -> TestPki {
        Self::generate_with(server_name, LeafKeyType::EcdsaP256)
    }

    /// Like [`TestPki::generate`] with a chosen leaf key type.
    ///
    /// # Panics
    /// If `server_name` is not an ASCII host name (test configuration error).
    pub fn generate_with(server_name: &str, leaf_key: LeafKeyType) -> TestPki {
        build(server_name, leaf_key).unwrap_or_else(|e| {
            panic!("cannot generate a test PKI for server name {server_name:?}: {e}")
        })
    }

    /// The server name the `Good` leaf is issued for.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The trust anchor the UE should be given, PEM.
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// The trust anchor the UE should be given, DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    /// The intermediate CA certificate, DER (sent by the server after every chained leaf).
    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate_der.clone()
    }

    /// The CRL issued by the intermediate, listing the [`CertKind::Revoked`] leaf; valid from one
    /// hour ago, next update in 7 days.
    ///
    /// A verifier that checks the whole chain (webpki's default) also needs a CRL for the
    /// intermediate itself: give it [`TestPki::all_crls_der`], or check only the end entity.
    pub fn crl_der(&self) -> Vec<u8> {
        self.crl_der.clone()
    }

    /// [`TestPki::crl_der`] as PEM `X509 CRL`.
    pub fn crl_pem(&self) -> String {
        self.crl_pem.clone()
    }

    /// The intermediate's CRL and an empty CRL issued by the root (covering the intermediate), so
    /// that a verifier checking revocation of the whole chain has a status for every certificate.
    pub fn all_crls_der(&self) -> Vec<Vec<u8>> {
        vec![self.crl_der.clone(), self.root_crl_der.clone()]
    }

    /// The certificate chain and key served for `kind`.
    pub fn leaf(&self, kind: CertKind) -> ServedIdentity {
        self.identities
            .get(&kind)
            .cloned()
            .expect("every CertKind is generated in TestPki::generate")
    }

    /// SHA-256 of the `Good` leaf's DER SubjectPublicKeyInfo (for pin tests). Every kind except
    /// [`CertKind::OtherKey`] uses the same key and therefore matches this pin.
    pub fn good_spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.good_spki).into()
    }

    /// [`TestPki::good_spki_sha256`] in standard base64 with padding.
    pub fn good_spki_sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.good_spki_sha256())
    }

    /// Writes `kind`'s chain, key and the root CA as PEM files into `dir` (for OpenSSL
    /// `s_server -cert .. -key .. -CAfile ..`). Returns (chain, key, root) paths.
    pub fn write_pem_files(
        &self,
        dir: &Path,
        kind: CertKind,
    ) -> io::Result<(PathBuf, PathBuf, PathBuf)> {
        let id = self.leaf(kind);
        let stem = kind.name();
        let chain = dir.join(format!("{stem}-chain.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        let root = dir.join("root-ca.pem");
        std::fs::write(&chain, id.chain_pem)?;
        std::fs::write(&key, id.key_pem)?;
        std::fs::write(&root, &self.root_pem)?;
        Ok((chain, key, root))
    }
}

fn build(server_name: &str, leaf_key: LeafKeyType) -> Result<TestPki, rcgen::Error> {
    let now = OffsetDateTime::now_utc();
    let root = authority("imstls test root CA", now, None)?;
    let intermediate = authority("imstls test intermediate CA", now, Some(&root))?;
    let untrusted_root = authority("imstls untrusted root CA", now, None)?;

    let key = leaf_key_pair(leaf_key)?;
    let other_key = leaf_key_pair(leaf_key)?;
    let factory = LeafFactory {
        now,
        key_der: key.serialize_der(),
        key: &key,
        intermediate: &intermediate,
    };

    let good = factory.good_params(server_name)?;
    let revoked_serial = random_serial();
    let mut identities = HashMap::new();
    for kind in CertKind::ALL {
        let identity = match kind {
            CertKind::Good => factory.chained(&good)?,
            CertKind::Expired => {
                let mut p = good.clone();
                p.not_before = now - Duration::days(30);
                p.not_after = now - Duration::days(1);
                factory.chained(&p)?
            }
            CertKind::NotYetValid => {
                let mut p = good.clone();
                p.not_before = now + Duration::days(1);
                p.not_after = now + Duration::days(30);
                factory.chained(&p)?
            }
            CertKind::WrongName => {
                let other = if server_name.eq_ignore_ascii_case("other.ims.test") {
                    "wrong.ims.test"
                } else {
                    "other.ims.test"
                };
                factory.chained(&factory.good_params(other)?)?
            }
            CertKind::SelfSigned => {
                let cert = with_fresh_serial(&good).self_signed(&key)?;
                factory.identity(vec![cert.der().to_vec()], &factory.key_der)
            }
            CertKind::UnknownCa => {
                let cert = with_fresh_serial(&good).signed_by(&key, &untrusted_root.issuer)?;
                factory.identity(vec![cert.der().to_vec()], &factory.key_der)
            }
            CertKind::MissingIntermediate => {
                let mut chain = identities
                    .get(&CertKind::Good)
                    .map(|id: &ServedIdentity| id.chain_der.clone())
                    .expect("Good is generated first");
                chain.truncate(1);
                factory.identity(chain, &factory.key_der)
            }
            CertKind::ClientAuthEkuOnly => {
                let mut p = good.clone();
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                factory.chained(&p)?
            }
            CertKind::CaTrueLeaf => {
                let mut p = good.clone();
                p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                p.key_usages.push(KeyUsagePurpose::KeyCertSign);
                factory.chained(&p)?
            }
            CertKind::Wildcard => {
                let parent = server_name.split_once('.').map_or(server_name, |(_, p)| p);
                let wildcard = format!("*.{parent}");
                let mut p = good.clone();
                p.subject_alt_names = vec![SanType::DnsName(ia5(&wildcard)?)];
                p.distinguished_name = common_name(&wildcard);
                factory.chained(&p)?
            }
            CertKind::Revoked => {
                let mut p = good.clone();
                p.serial_number = Some(revoked_serial.clone());
                factory.chained(&p)?
            }
            CertKind::UriSanOnly => {
                let mut p = good.clone();
                p.subject_alt_names = vec![SanType::URI(ia5(&format!("sip:{server_name}"))?)];
                factory.chained(&p)?
            }
            CertKind::DnsSanOnly => {
                let mut p = good.clone();
                p.subject_alt_names = vec![SanType::DnsName(ia5(server_name)?)];
                factory.chained(&p)?
            }
            CertKind::UriWithUserPart => {
                let mut p = good.clone();
                p.subject_alt_names = vec![SanType::URI(ia5(&format!("sip:user@{server_name}"))?)];
                factory.chained(&p)?
            }
            CertKind::IpSan => {
                let mut p = good.clone();
                p.subject_alt_names = vec![
                    SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                ];
                factory.chained(&p)?
            }
            CertKind::CnOnly => {
                let mut p = good.clone();
                p.subject_alt_names = Vec::new();
                factory.chained(&p)?
            }
            CertKind::OtherKey => {
                let cert = with_fresh_serial(&good).signed_by(&other_key, &intermediate.issuer)?;
                factory.identity(
                    vec![cert.der().to_vec(), intermediate.der.clone()],
                    &other_key.serialize_der(),
                )
            }
        };
        identities.insert(kind, identity);
    }

    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(7),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: revoked_serial,
            revocation_time: now - Duration::hours(1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&intermediate.issuer)?;
    let root_crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(7),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&root.issuer)?;

    Ok(TestPki {
        server_name: server_name.to_owned(),
        root_pem: pem_block("CERTIFICATE", &root.der),
        root_der: root.der,
        intermediate_der: intermediate.der,
        crl_pem: crl.pem()?,
        crl_der: crl.der().to_vec(),
        root_crl_der: root_crl.der().to_vec(),
        good_spki: key.subject_public_key_info(),
        identities,
    })
}

impl LeafFactory<'_> {
    /// The `Good` template for `name`: SAN DNS + SAN URI, EKU serverAuth, valid now.
    fn good_params(&self, name: &str) -> Result<CertificateParams, rcgen::Error> {
        let mut p = CertificateParams::default();
        p.distinguished_name = common_name(name);
        p.subject_alt_names = vec![
            SanType::DnsName(ia5(name)?),
            SanType::URI(ia5(&format!("sip:{name}"))?),
        ];
        p.not_before = self.now - Duration::hours(1);
        p.not_after = self.now + Duration::days(30);
        p.serial_number = None; // each signed leaf gets a fresh one, see `chained`
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if *self.key.algorithm() == rcgen::PKCS_RSA_SHA256 {
            p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }

    /// Signs `params` (with a fresh serial unless one is set) under the intermediate and returns
    /// leaf + intermediate.
    fn chained(&self, params: &CertificateParams) -> Result<ServedIdentity, rcgen::Error> {
        let mut p = params.clone();
        if p.serial_number.is_none() {
            p.serial_number = Some(random_serial());
        }
        let cert = p.signed_by(self.key, &self.intermediate.issuer)?;
        Ok(self.identity(
            vec![cert.der().to_vec(), self.intermediate.der.clone()],
            &self.key_der,
        ))
    }

    fn identity(&self, chain_der: Vec<Vec<u8>>, key_der: &[u8]) -> ServedIdentity {
        let chain_pem = chain_der
            .iter()
            .map(|der| pem_block("CERTIFICATE", der))
            .collect::<String>();
        ServedIdentity {
            chain_pem,
            key_pem: pem_block("PRIVATE KEY", key_der),
            key_der: key_der.to_vec(),
            chain_der,
        }
    }
}

/// A CA certificate: self-signed when `parent` is `None`, else issued by `parent` with pathlen 0.
fn authority(
    name: &str,
    now: OffsetDateTime,
    parent: Option<&Authority>,
) -> Result<Authority, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = common_name(name);
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p.serial_number = Some(random_serial());
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = match parent {
        None => {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.self_signed(&key)?
        }
        Some(parent) => {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.use_authority_key_identifier_extension = true;
            p.signed_by(&key, &parent.issuer)?
        }
    };
    Ok(Authority {
        der: cert.der().to_vec(),
        issuer: Issuer::new(p, key),
    })
}

fn leaf_key_pair(kind: LeafKeyType) -> Result<KeyPair, rcgen::Error> {
    match kind {
        LeafKeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        #[cfg(feature = "aws-lc-rs")]
        LeafKeyType::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        // ring signs with RSA keys but cannot generate them.
        #[cfg(not(feature = "aws-lc-rs"))]
        LeafKeyType::Rsa2048 => Err(rcgen::Error::KeyGenerationUnavailable),
    }
}

fn with_fresh_serial(params: &CertificateParams) -> CertificateParams {
    let mut p = params.clone();
    p.serial_number = Some(random_serial());
    p
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn ia5(s: &str) -> Result<Ia5String, rcgen::Error> {
    Ia5String::try_from(s)
}

/// A random positive 16-byte serial number.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    crate::random::fill(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, Error, RootCertStore};

    use super::*;

    fn verify(pki: &TestPki, kind: CertKind, name: &str, crls: bool) -> Result<(), Error> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(pki.root_der())).unwrap();
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider());
        if crls {
            builder = builder.with_crls(
                pki.all_crls_der()
                    .into_iter()
                    .map(rustls::pki_types::CertificateRevocationListDer::from),
            );
        }
        let verifier = builder.build().unwrap();
        let chain: Vec<CertificateDer<'static>> = pki
            .leaf(kind)
            .chain_der
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn generation_is_fast_and_the_good_leaf_verifies_with_and_without_crls() {
        let started = Instant::now();
        let pki = TestPki::generate("pcscf.ims.test");
        assert!(
            started.elapsed().as_millis() < 1000,
            "{:?}",
            started.elapsed()
        );
        verify(&pki, CertKind::Good, "pcscf.ims.test", false).unwrap();
        verify(&pki, CertKind::Good, "pcscf.ims.test", true).unwrap();
        verify(&pki, CertKind::Wildcard, "pcscf.ims.test", false).unwrap();
        verify(&pki, CertKind::DnsSanOnly, "pcscf.ims.test", false).unwrap();
        verify(&pki, CertKind::OtherKey, "pcscf.ims.test", false).unwrap();
        verify(&pki, CertKind::IpSan, "127.0.0.1", false).unwrap();
        verify(&pki, CertKind::IpSan, "::1", false).unwrap();
    }

    #[test]
    fn each_broken_kind_fails_webpki_for_its_own_reason() {
        let pki = TestPki::generate("pcscf.ims.test");
        let name = "pcscf.ims.test";
        let cert_err = |kind, crls| match verify(&pki, kind, name, crls) {
            Err(Error::InvalidCertificate(e)) => e,
            other => panic!("{kind:?}: {other:?}"),
        };
        assert!(matches!(
            cert_err(CertKind::Expired, false),
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ));
        assert!(matches!(
            cert_err(CertKind::NotYetValid, false),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
        ));
        for kind in [
            CertKind::WrongName,
            CertKind::UriSanOnly,
            CertKind::UriWithUserPart,
            CertKind::CnOnly,
            CertKind::IpSan,
        ] {
            assert!(
                matches!(
                    cert_err(kind, false),
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ),
                "{kind:?}"
            );
        }
        for kind in [
            CertKind::SelfSigned,
            CertKind::UnknownCa,
            CertKind::MissingIntermediate,
        ] {
            assert_eq!(
                cert_err(kind, false),
                CertificateError::UnknownIssuer,
                "{kind:?}"
            );
        }
        assert!(matches!(
            cert_err(CertKind::ClientAuthEkuOnly, false),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        ));
        assert!(verify(&pki, CertKind::CaTrueLeaf, name, false).is_err());
        verify(&pki, CertKind::Revoked, name, false).unwrap();
        assert_eq!(cert_err(CertKind::Revoked, true), CertificateError::Revoked);
    }

    #[test]
    fn spki_pin_matches_every_kind_but_other_key() {
        let pki = TestPki::generate("pcscf.ims.test");
        assert_eq!(pki.good_spki_sha256_base64().len(), 44);
        let leaf = pki.leaf(CertKind::Good).chain_der[0].clone();
        let other = pki.leaf(CertKind::OtherKey).chain_der[0].clone();
        // The SPKI DER appears verbatim inside the certificate DER.
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&leaf, &pki.good_spki));
        assert!(!contains(&other, &pki.good_spki));
        assert_eq!(pki.leaf(CertKind::MissingIntermediate).chain_der.len(), 1);
        assert_eq!(pki.leaf(CertKind::Good).chain_der.len(), 2);
        assert!(
            pki.leaf(CertKind::Good)
                .chain_pem
                .matches("BEGIN CERTIFICATE")
                .count()
                == 2
        );
        assert!(pki.crl_pem().starts_with("-----BEGIN X509 CRL-----"));
    }

    #[test]
    fn pem_files_are_written_for_openssl() {
        let pki = TestPki::generate("pcscf.ims.test");
        let dir = std::env::temp_dir().join(format!("imstls-testkit-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (chain, key, root) = pki.write_pem_files(&dir, CertKind::Good).unwrap();
        assert!(std::fs::read_to_string(chain)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        assert!(std::fs::read_to_string(key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY"));
        assert_eq!(std::fs::read_to_string(root).unwrap(), pki.root_pem());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn kinds_have_round_tripping_names() {
        for kind in CertKind::ALL {
            assert_eq!(kind.name().parse::<CertKind>(), Ok(kind));
        }
        assert_eq!(CertKind::MissingIntermediate.name(), "missing-intermediate");
        assert_eq!("ca_true_leaf".parse::<CertKind>(), Ok(CertKind::CaTrueLeaf));
        assert!("bogus".parse::<CertKind>().is_err());
    }

    #[cfg(feature = "aws-lc-rs")]
    #[test]
    fn rsa_leaves_verify() {
        let pki = TestPki::generate_with("pcscf.ims.test", LeafKeyType::Rsa2048);
        verify(&pki, CertKind::Good, "pcscf.ims.test", false).unwrap();
    }
}
