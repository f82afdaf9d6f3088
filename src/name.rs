//! P-CSCF identity matching per RFC 5922 §7.1 (SIP domain certificates), as TS 33.203
//! O.2.1 / O.5.1 require for authenticating the P-CSCF.
//!
//! The rules, in order:
//! 1. `uniformResourceIdentifier` SAN entries with the `sip` scheme and no user part give
//!    the identities (their host part). A `sip:` URI with a user part is never an identity.
//! 2. Only when no such URI exists are `dNSName` SAN entries identities.
//! 3. The subject commonName is never used (O.5.1 puts the FQDN in the SAN; webpki agrees).
//! 4. Comparison is exact and case-insensitive, one trailing dot ignored; no suffix match.
//! 5. Wildcards (`*.example.net`, one whole left-most label only) match only when the
//!    configuration opts in: RFC 5922 §7.2 forbids them in SIP domain certificates.
//! 6. A P-CSCF expected by IP address (no FQDN configured) must present that address as an
//!    `iPAddress` SAN.

use std::fmt;
use std::net::IpAddr;

use crate::x509::SubjectAltNames;

/// The identity a P-CSCF certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExpectedIdentity {
    /// A SIP domain / FQDN, stored lower-case without a trailing dot.
    Domain(String),
    /// An IP address (used only when no FQDN is configured).
    Ip(IpAddr),
}

impl ExpectedIdentity {
    /// A domain identity, normalised (lower-case, trailing dot removed).
    pub fn domain(name: &str) -> Self {
        Self::Domain(normalise(name))
    }
}

impl fmt::Display for ExpectedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The certificate does not name the expected P-CSCF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMismatch {
    /// What imstls looked for.
    pub expected: String,
    /// Every SAN entry the certificate presented (`sip:` URIs, DNS names, IP addresses),
    /// printable-escaped because the certificate is untrusted input.
    pub presented: Vec<String>,
}

impl fmt::Display for NameMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate does not name {} (presented: {})",
            self.expected,
            if self.presented.is_empty() {
                "no subjectAltName".to_owned()
            } else {
                self.presented.join(", ")
            }
        )
    }
}

impl std::error::Error for NameMismatch {}

/// Checks the certificate's SAN entries against the expected identity (RFC 5922 §7.1).
pub fn check_identity(
    expected: &ExpectedIdentity,
    names: &SubjectAltNames,
    allow_wildcards: bool,
) -> Result<(), NameMismatch> {
    let matched = match expected {
        ExpectedIdentity::Ip(ip) => names.ip_addresses.contains(ip),
        ExpectedIdentity::Domain(domain) => {
            let sip_identities: Vec<String> = names
                .uris
                .iter()
                .filter_map(|uri| sip_uri_domain(uri))
                .collect();
            let identities: Vec<String> = if sip_identities.is_empty() {
                names.dns_names.iter().map(|n| normalise(n)).collect()
            } else {
                sip_identities
            };
            identities
                .iter()
                .any(|presented| domain_matches(domain, presented, allow_wildcards))
        }
    };
    if matched {
        Ok(())
    } else {
        Err(NameMismatch {
            expected: expected.to_string(),
            presented: presented_entries(names),
        })
    }
}

/// The domain of a `sip:` URI SAN that may serve as an identity, if it may.
fn sip_uri_domain(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") {
        return None; // sips:, tel:, http: ... are not SIP domain identities.
    }
    let hostport = rest.split([';', '?']).next().unwrap_or_default();
    if hostport.contains('@') {
        return None; // RFC 5922 §7.1: a user part means the URI names a user, not a domain.
    }
    let host = if let Some(bracketed) = hostport.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        hostport.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return None;
    }
    Some(normalise(host))
}

fn domain_matches(expected: &str, presented: &str, allow_wildcards: bool) -> bool {
    if expected == presented {
        return true;
    }
    let Some(base) = presented.strip_prefix("*.") else {
        return false;
    };
    // The wildcard covers exactly one whole left-most label of a name with at least two
    // labels after it, and no further wildcard characters.
    if !allow_wildcards || base.contains('*') || !base.contains('.') {
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

fn presented_entries(names: &SubjectAltNames) -> Vec<String> {
    let printable = |s: &str| s.escape_debug().to_string();
    names
        .uris
        .iter()
        .map(|u| printable(u))
        .chain(names.dns_names.iter().map(|d| printable(d)))
        .chain(names.ip_addresses.iter().map(|ip| ip.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(uris: &[&str], dns: &[&str], ips: &[&str]) -> SubjectAltNames {
        SubjectAltNames {
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            ip_addresses: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn domain(name: &str) -> ExpectedIdentity {
        ExpectedIdentity::domain(name)
    }

    #[test]
    fn sip_uri_san_host_is_the_identity() {
        let names = sans(&["sip:pcscf.ims.test"], &[], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_ok());
    }

    #[test]
    fn sip_uri_with_port_and_params_uses_its_host() {
        let names = sans(&["sip:pcscf.ims.test:5061;transport=tls"], &[], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_ok());
    }

    #[test]
    fn sip_uri_san_takes_precedence_over_dns_san() {
        // RFC 5922 §7.1: DNS names count only when no sip: URI identity exists.
        let names = sans(&["sip:other.ims.test"], &["pcscf.ims.test"], &[]);
        let err = check_identity(&domain("pcscf.ims.test"), &names, false).unwrap_err();
        assert_eq!(err.expected, "pcscf.ims.test");
        assert_eq!(err.presented, vec!["sip:other.ims.test", "pcscf.ims.test"]);
    }

    #[test]
    fn dns_san_is_used_when_no_sip_uri_exists() {
        let names = sans(&["https://pcscf.ims.test/"], &["pcscf.ims.test"], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_ok());
    }

    #[test]
    fn sip_uri_with_user_part_is_never_an_identity() {
        let names = sans(&["sip:alice@pcscf.ims.test"], &[], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_err());
    }

    #[test]
    fn sips_and_other_schemes_are_not_identities() {
        let names = sans(&["sips:pcscf.ims.test", "tel:+15551234"], &[], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_err());
    }

    #[test]
    fn subject_common_name_is_never_used() {
        // With no SAN at all there is nothing to match: the CN is not consulted.
        let err =
            check_identity(&domain("pcscf.ims.test"), &sans(&[], &[], &[]), false).unwrap_err();
        assert!(err.presented.is_empty());
        assert!(err.to_string().contains("no subjectAltName"));
    }

    #[test]
    fn matching_is_case_insensitive_and_ignores_one_trailing_dot() {
        let names = sans(&["SIP:PCSCF.IMS.Test."], &[], &[]);
        assert!(check_identity(&domain("pcscf.ims.TEST"), &names, false).is_ok());
        let names = sans(&[], &["PCSCF.ims.test"], &[]);
        assert!(check_identity(&domain("pcscf.ims.test."), &names, false).is_ok());
    }

    #[test]
    fn no_suffix_or_prefix_match() {
        let names = sans(
            &[],
            &["ims.test", "evil-pcscf.ims.test", "pcscf.ims.test.evil"],
            &[],
        );
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_err());
        let names = sans(&[], &["pcscf.ims.test"], &[]);
        assert!(check_identity(&domain("a.pcscf.ims.test"), &names, false).is_err());
    }

    #[test]
    fn wildcards_are_rejected_by_default() {
        let names = sans(&[], &["*.ims.test"], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_err());
    }

    #[test]
    fn wildcards_match_one_label_only_when_opted_in() {
        let names = sans(&[], &["*.ims.test"], &[]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, true).is_ok());
        assert!(check_identity(&domain("a.pcscf.ims.test"), &names, true).is_err());
        assert!(check_identity(&domain("ims.test"), &names, true).is_err());
    }

    #[test]
    fn partial_label_and_too_broad_wildcards_never_match() {
        for pattern in ["pc*.ims.test", "*", "*.test", "*.*.test"] {
            let names = sans(&[], &[pattern], &[]);
            assert!(
                check_identity(&domain("pcscf.ims.test"), &names, true).is_err(),
                "{pattern} must not match"
            );
        }
    }

    #[test]
    fn ip_expected_needs_an_equal_ip_san() {
        let expected = ExpectedIdentity::Ip("127.0.0.1".parse().unwrap());
        assert!(check_identity(&expected, &sans(&[], &[], &["127.0.0.1"]), false).is_ok());
        assert!(check_identity(&expected, &sans(&[], &[], &["127.0.0.2"]), false).is_err());
        // A DNS SAN spelling the address is not an IP SAN.
        assert!(check_identity(&expected, &sans(&[], &["127.0.0.1"], &[]), false).is_err());
        let v6 = ExpectedIdentity::Ip("::1".parse().unwrap());
        assert!(check_identity(&v6, &sans(&[], &[], &["::1"]), false).is_ok());
    }

    #[test]
    fn ip_san_does_not_satisfy_a_domain_expectation() {
        let names = sans(&[], &[], &["127.0.0.1"]);
        assert!(check_identity(&domain("pcscf.ims.test"), &names, false).is_err());
    }

    #[test]
    fn presented_names_are_escaped_for_display() {
        let names = sans(&[], &["bad\nname"], &[]);
        let err = check_identity(&domain("pcscf.ims.test"), &names, false).unwrap_err();
        assert_eq!(err.presented, vec!["bad\\nname"]);
    }
}
