//! Validly signed chains with chosen subjectAltNames under an optionally name-constrained
//! intermediate: root → intermediate (RFC 5280 nameConstraints of your choice) → leaf.
//!
//! For identity tests and the `cert_identity` fuzz target: the three key pairs are generated
//! once in [`ChainFactory::new`]; [`ChainFactory::chain`] only signs two certificates, so a
//! fuzzer can build a fresh chain per input.

use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::pki::ServedIdentity;

/// The subjectAltName entries of a leaf, in this order: DNS names, URIs, IP addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeafNames {
    /// `dNSName` entries (any ASCII; not checked for DNS syntax).
    pub dns: Vec<String>,
    /// `uniformResourceIdentifier` entries (any ASCII).
    pub uris: Vec<String>,
    /// `iPAddress` entries.
    pub ips: Vec<IpAddr>,
}

/// The nameConstraints extension of the intermediate (RFC 5280 §4.2.1.10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConstraints {
    /// Permitted `dNSName` subtrees, e.g. `.corp.example` or `corp.example`.
    pub permitted_dns: Vec<String>,
    /// Excluded `dNSName` subtrees.
    pub excluded_dns: Vec<String>,
    /// Permitted `iPAddress` subtrees as (address, prefix length).
    pub permitted_ip: Vec<(IpAddr, u8)>,
}

/// Signs chains; see the module documentation.
pub struct ChainFactory {
    now: OffsetDateTime,
    root_der: Vec<u8>,
    root: Issuer<'static, KeyPair>,
    intermediate_key: KeyPair,
    leaf_key: KeyPair,
}

impl std::fmt::Debug for ChainFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainFactory").finish_non_exhaustive()
    }
}

impl ChainFactory {
    /// Generates the root (self-signed, unconstrained) and the intermediate and leaf key pairs.
    ///
    /// # Errors
    /// If rcgen cannot generate a key or sign.
    pub fn new() -> Result<Self, rcgen::Error> {
        Self::with_root_constraints(None)
    }

    /// Like [`ChainFactory::new`], with nameConstraints on the root itself (the trust anchor).
    ///
    /// # Errors
    /// If rcgen cannot generate a key or sign.
    pub fn with_root_constraints(
        constraints: Option<&DnsConstraints>,
    ) -> Result<Self, rcgen::Error> {
        let now = OffsetDateTime::now_utc();
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params("imstls chains root CA", now);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.name_constraints = constraints.map(name_constraints);
        let root_der = params.self_signed(&root_key)?.der().to_vec();
        Ok(Self {
            now,
            root_der,
            root: Issuer::new(params, root_key),
            intermediate_key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            leaf_key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// The trust anchor, DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    /// Signs an intermediate (with `constraints` when given) and a serverAuth leaf carrying
    /// `names`; returns leaf + intermediate and the leaf key.
    ///
    /// # Errors
    /// If a name is not ASCII (an IA5String) or rcgen refuses to sign.
    pub fn chain(
        &self,
        constraints: Option<&DnsConstraints>,
        names: &LeafNames,
    ) -> Result<ServedIdentity, rcgen::Error> {
        let mut ca = ca_params("imstls chains intermediate CA", self.now);
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.use_authority_key_identifier_extension = true;
        ca.name_constraints = constraints.map(name_constraints);
        let intermediate_der = ca
            .signed_by(&self.intermediate_key, &self.root)?
            .der()
            .to_vec();
        let intermediate = Issuer::from_params(&ca, &self.intermediate_key);

        let mut leaf = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "imstls chains leaf");
        leaf.distinguished_name = dn;
        let mut sans = Vec::new();
        for dns in &names.dns {
            sans.push(SanType::DnsName(Ia5String::try_from(dns.as_str())?));
        }
        for uri in &names.uris {
            sans.push(SanType::URI(Ia5String::try_from(uri.as_str())?));
        }
        sans.extend(names.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        leaf.subject_alt_names = sans;
        leaf.not_before = self.now - Duration::hours(1);
        leaf.not_after = self.now + Duration::days(30);
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_der = leaf
            .signed_by(&self.leaf_key, &intermediate)?
            .der()
            .to_vec();
        Ok(ServedIdentity::new(
            vec![leaf_der, intermediate_der],
            self.leaf_key.serialize_der(),
        ))
    }
}

fn ca_params(name: &str, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(3650);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn name_constraints(c: &DnsConstraints) -> NameConstraints {
    NameConstraints {
        permitted_subtrees: c
            .permitted_dns
            .iter()
            .map(|d| GeneralSubtree::DnsName(d.clone()))
            .chain(c.permitted_ip.iter().map(|(ip, prefix)| {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, *prefix))
            }))
            .collect(),
        excluded_subtrees: c
            .excluded_dns
            .iter()
            .map(|d| GeneralSubtree::DnsName(d.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::RootCertStore;

    use super::*;

    fn verify(factory: &ChainFactory, chain: &ServedIdentity, name: &str) -> Result<(), String> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(factory.root_der())).unwrap();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .unwrap();
        let der: Vec<CertificateDer<'static>> = chain
            .chain_der
            .iter()
            .cloned()
            .map(CertificateDer::from)
            .collect();
        verifier
            .verify_server_cert(
                &der[0],
                &der[1..],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn webpki_applies_the_intermediates_dns_constraints() {
        let factory = ChainFactory::new().unwrap();
        let corp = DnsConstraints {
            permitted_dns: vec![".corp.example".into()],
            ..DnsConstraints::default()
        };
        let names = |dns: &str| LeafNames {
            dns: vec![dns.into()],
            ..LeafNames::default()
        };
        let inside = factory
            .chain(Some(&corp), &names("x.corp.example"))
            .unwrap();
        verify(&factory, &inside, "x.corp.example").unwrap();
        let outside = factory
            .chain(Some(&corp), &names("pcscf.ims.victim.net"))
            .unwrap();
        let err = verify(&factory, &outside, "pcscf.ims.victim.net").unwrap_err();
        assert!(err.contains("NameConstraint"), "{err}");
        let unconstrained = factory.chain(None, &names("pcscf.ims.victim.net")).unwrap();
        verify(&factory, &unconstrained, "pcscf.ims.victim.net").unwrap();
    }
}
