//! The RFC 5922 layer of the P-CSCF identity check (TS 33.203 O.2.1 / O.5.1), applied on top
//! of webpki's own name check, to the names webpki parsed.
//!
//! [`super::verify`] first lets webpki verify the chain, its name constraints and the expected
//! name itself (a DNS name against a `dNSName` SAN, an IP address against an `iPAddress` SAN).
//! For a DNS name this module then adds, on webpki's `valid_dns_names()` /
//! `valid_uri_names()`:
//! 1. the expected name must equal a `dNSName` SAN exactly (case-insensitive, one trailing dot
//!    ignored); a wildcard `dNSName` (`*.example.net`, one whole left-most label) counts only
//!    when the configuration opts in: RFC 5922 §7.2 forbids wildcards in SIP domain
//!    certificates;
//! 2. when `sip:` URI SANs without a user part exist (the SIP domain identities, RFC 5922 §7.1),
//!    one of them must name the expected host; a `sip:` URI that does not parse by the RFC 3261
//!    grammar ([`crate::sip::uri`]) is ambiguous and refuses the certificate.
//!
//! A `sip:` URI identity is therefore accepted only when its host is also a `dNSName` SAN
//! webpki validated: webpki does not apply a CA's DNS name constraints to URI names, so a URI
//! alone could name any domain. The subject commonName is never used.

use std::fmt;

use crate::sip::uri::{self as sip_uri, SipHost, SipUriError};

/// Why a certificate that webpki accepted for a DNS name does not carry it as a SIP domain
/// identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRefusal {
    /// No `dNSName` SAN equals the name: it matched only through a wildcard, which the
    /// configuration does not allow (RFC 5922 §7.2).
    WildcardOnly,
    /// No `dNSName` SAN names it at all.
    NoDnsName,
    /// The certificate has SIP domain identities (`sip:` URI SANs without a user part) and none
    /// of them is the name (RFC 5922 §7.1).
    SipUriMismatch,
    /// A `sip:` URI SAN is not a valid RFC 3261 SIP URI (printable-escaped).
    MalformedSipUri(String),
}

impl fmt::Display for IdentityRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WildcardOnly => f.write_str("named only by a wildcard dNSName (not allowed)"),
            Self::NoDnsName => f.write_str("no dNSName names the P-CSCF"),
            Self::SipUriMismatch => f.write_str("no sip: URI identity names the P-CSCF"),
            Self::MalformedSipUri(uri) => write!(f, "malformed sip: URI {uri}"),
        }
    }
}

impl std::error::Error for IdentityRefusal {}

/// Checks that `expected` (a DNS name) is a SIP domain identity of a certificate whose
/// `dNSName` and `uniformResourceIdentifier` SANs are `dns_names` and `uris`, as webpki
/// returned them. See the module documentation for the rules.
pub fn check_domain_identity(
    expected: &str,
    dns_names: &[&str],
    uris: &[&str],
    allow_wildcards: bool,
) -> Result<(), IdentityRefusal> {
    let expected = normalise(expected);
    let exact = dns_names.iter().any(|dns| normalise(dns) == expected);
    if !exact {
        let wildcard = dns_names
            .iter()
            .any(|dns| wildcard_matches(&expected, &normalise(dns)));
        if !wildcard {
            return Err(IdentityRefusal::NoDnsName);
        }
        if !allow_wildcards {
            return Err(IdentityRefusal::WildcardOnly);
        }
    }
    check_sip_identities(&expected, uris)
}

/// RFC 5922 §7.1: with SIP domain identities present, one must be `expected`.
fn check_sip_identities(expected: &str, uris: &[&str]) -> Result<(), IdentityRefusal> {
    let mut any_identity = false;
    let mut matched = false;
    for uri in uris {
        match sip_uri::parse(uri) {
            Ok(parsed) => {
                if let Some(host) = parsed.domain_identity() {
                    any_identity = true;
                    matched |= matches!(host, SipHost::Domain(d) if *d == expected);
                }
            }
            Err(SipUriError::NotSip) => {} // sips:, tel:, https: ... never SIP domain identities
            Err(SipUriError::Invalid(_)) => {
                return Err(IdentityRefusal::MalformedSipUri(
                    uri.escape_debug().to_string(),
                ))
            }
        }
    }
    if any_identity && !matched {
        return Err(IdentityRefusal::SipUriMismatch);
    }
    Ok(())
}

/// `*.base` covers exactly one whole left-most label of a name with at least two labels after
/// it (webpki's rule too).
fn wildcard_matches(expected: &str, presented: &str) -> bool {
    let Some(base) = presented.strip_prefix("*.") else {
        return false;
    };
    if base.contains('*') || !base.contains('.') {
        return false;
    }
    match expected.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == base,
        None => false,
    }
}

fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: &str, dns: &[&str], uris: &[&str]) -> Result<(), IdentityRefusal> {
        check_domain_identity(expected, dns, uris, false)
    }

    #[test]
    fn an_exact_dns_name_is_the_identity_when_no_sip_uri_exists() {
        assert_eq!(check("pcscf.ims.test", &["pcscf.ims.test"], &[]), Ok(()));
        assert_eq!(
            check("pcscf.ims.test", &["pcscf.ims.test"], &["https://x/"]),
            Ok(())
        );
    }

    #[test]
    fn a_sip_uri_alone_is_never_enough() {
        assert_eq!(
            check("pcscf.ims.test", &[], &["sip:pcscf.ims.test"]),
            Err(IdentityRefusal::NoDnsName)
        );
        assert_eq!(
            check(
                "pcscf.ims.test",
                &["x.corp.example"],
                &["sip:pcscf.ims.test"]
            ),
            Err(IdentityRefusal::NoDnsName)
        );
    }

    #[test]
    fn sip_uri_identities_take_precedence_over_dns_names() {
        assert_eq!(
            check(
                "pcscf.ims.test",
                &["pcscf.ims.test"],
                &["sip:other.ims.test"]
            ),
            Err(IdentityRefusal::SipUriMismatch)
        );
        assert_eq!(
            check(
                "pcscf.ims.test",
                &["pcscf.ims.test"],
                &[
                    "sip:other.ims.test",
                    "sip:pcscf.ims.test:5061;transport=tls"
                ]
            ),
            Ok(())
        );
    }

    #[test]
    fn sip_uris_with_a_user_part_are_not_identities() {
        for uri in [
            "sip:alice@pcscf.ims.test",
            "sip:pcscf.ims.test;x@attacker.example",
            "sip:pcscf.ims.test?x@attacker.example",
        ] {
            // Not an identity: the DNS name decides.
            assert_eq!(check("pcscf.ims.test", &["pcscf.ims.test"], &[uri]), Ok(()));
            assert_eq!(
                check("pcscf.ims.test", &["attacker.example"], &[uri]),
                Err(IdentityRefusal::NoDnsName)
            );
        }
    }

    #[test]
    fn a_malformed_sip_uri_refuses_the_certificate() {
        let err = check(
            "pcscf.ims.test",
            &["pcscf.ims.test"],
            &["sip:pcscf.ims.test:5x"],
        );
        assert!(matches!(err, Err(IdentityRefusal::MalformedSipUri(_))));
    }

    #[test]
    fn sips_and_other_schemes_are_ignored() {
        assert_eq!(
            check(
                "pcscf.ims.test",
                &["pcscf.ims.test"],
                &["sips:other.ims.test", "tel:+15551234"]
            ),
            Ok(())
        );
    }

    #[test]
    fn matching_is_case_insensitive_and_ignores_one_trailing_dot() {
        assert_eq!(
            check(
                "pcscf.ims.TEST.",
                &["PCSCF.ims.test"],
                &["SIP:PCSCF.IMS.Test."]
            ),
            Ok(())
        );
    }

    #[test]
    fn no_suffix_or_prefix_match() {
        let dns = ["ims.test", "evil-pcscf.ims.test", "pcscf.ims.test.evil"];
        assert!(check("pcscf.ims.test", &dns, &[]).is_err());
        assert!(check("a.pcscf.ims.test", &["pcscf.ims.test"], &[]).is_err());
    }

    #[test]
    fn wildcards_need_the_opt_in_and_cover_one_label() {
        assert_eq!(
            check("pcscf.ims.test", &["*.ims.test"], &[]),
            Err(IdentityRefusal::WildcardOnly)
        );
        let allowed = |name: &str, dns: &str| check_domain_identity(name, &[dns], &[], true);
        assert_eq!(allowed("pcscf.ims.test", "*.ims.test"), Ok(()));
        assert!(allowed("a.pcscf.ims.test", "*.ims.test").is_err());
        assert!(allowed("ims.test", "*.ims.test").is_err());
        for pattern in ["pc*.ims.test", "*", "*.test", "*.*.test"] {
            assert!(allowed("pcscf.ims.test", pattern).is_err(), "{pattern}");
        }
        // With the opt-in, SIP URI identities still take precedence.
        assert_eq!(
            check_domain_identity(
                "pcscf.ims.test",
                &["*.ims.test"],
                &["sip:other.ims.test"],
                true
            ),
            Err(IdentityRefusal::SipUriMismatch)
        );
    }
}
