//! A strict recognizer for `sip:` URIs (RFC 3261 §25.1 `SIP-URI`), used to find the SIP
//! domain identities of a P-CSCF certificate (RFC 5922 §7.1).
//!
//! ```text
//! SIP-URI   = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//! userinfo  = ( user / telephone-subscriber ) [ ":" password ] "@"
//! hostport  = host [ ":" port ]
//! host      = hostname / IPv4address / IPv6reference
//! ```
//!
//! Every byte must belong to the grammar; anything else is an error, never a guess. Beyond the
//! ABNF, values that name nothing are refused: a port above 65535, an IPv4 octet above 255,
//! an IPv6 reference that is not an address. `telephone-subscriber` userinfo is recognised only
//! where it is also a `user` (its quoted strings may hide an `@`); a URI with more than one `@`
//! is refused. Since `@` may appear nowhere else in a valid `SIP-URI`, a parsed URI has
//! userinfo exactly when its text contains `@`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The host of a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SipHost {
    /// A `hostname`, lower-case, without its trailing dot.
    Domain(String),
    /// An `IPv4address`.
    Ipv4(Ipv4Addr),
    /// An `IPv6reference` (the brackets removed).
    Ipv6(Ipv6Addr),
}

impl fmt::Display for SipHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(name) => f.write_str(name),
            Self::Ipv4(ip) => write!(f, "{ip}"),
            Self::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// A parsed `sip:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// The userinfo without its `@` (user, and `:password` if any); `None` when absent.
    pub userinfo: Option<&'a str>,
    /// The host.
    pub host: SipHost,
    /// The port, when present.
    pub port: Option<u16>,
    /// The `uri-parameters`, each with its leading `;` (possibly empty).
    pub parameters: &'a str,
    /// The `headers` without the leading `?`, when present.
    pub headers: Option<&'a str>,
}

impl SipUri<'_> {
    /// The SIP domain identity this URI names per RFC 5922 §7.1: its host when it has no
    /// userinfo ("a value with a userpart identifies an individual user, not a domain").
    pub fn domain_identity(&self) -> Option<&SipHost> {
        self.userinfo.is_none().then_some(&self.host)
    }
}

/// Why a URI is not a valid `sip:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipUriError {
    /// The scheme is not `sip` (e.g. `sips`, `tel`, `https`): not a SIP URI at all.
    NotSip,
    /// The scheme is `sip` but the rest does not follow the RFC 3261 grammar; names the part.
    Invalid(&'static str),
}

impl fmt::Display for SipUriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSip => f.write_str("not a sip: URI"),
            Self::Invalid(part) => write!(f, "malformed sip: URI ({part})"),
        }
    }
}

impl std::error::Error for SipUriError {}

/// Parses `uri` as an RFC 3261 `SIP-URI`; the scheme is matched case-insensitively.
pub fn parse(uri: &str) -> Result<SipUri<'_>, SipUriError> {
    use SipUriError::Invalid;
    let (scheme, rest) = uri.split_once(':').ok_or(SipUriError::NotSip)?;
    if !scheme.eq_ignore_ascii_case("sip") {
        return Err(SipUriError::NotSip);
    }
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, after)) => {
            if after.contains('@') {
                return Err(Invalid("more than one @"));
            }
            if !is_userinfo(userinfo) {
                return Err(Invalid("userinfo"));
            }
            (Some(userinfo), after)
        }
        None => (None, rest),
    };

    let host_end = if rest.starts_with('[') {
        rest.find(']').map(|i| i + 1).ok_or(Invalid("host"))?
    } else {
        rest.find([':', ';', '?']).unwrap_or(rest.len())
    };
    let (host_text, mut rest) = rest.split_at(host_end);
    let host = parse_host(host_text).ok_or(Invalid("host"))?;

    let mut port = None;
    if let Some(after_colon) = rest.strip_prefix(':') {
        let end = after_colon.find([';', '?']).unwrap_or(after_colon.len());
        let digits = &after_colon[..end];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid("port"));
        }
        // Leading zeros are digits like any other; the value must fit a port.
        let significant = digits.trim_start_matches('0');
        let value = if significant.is_empty() {
            0
        } else if significant.len() > 5 {
            return Err(Invalid("port"));
        } else {
            significant.parse::<u16>().map_err(|_| Invalid("port"))?
        };
        port = Some(value);
        rest = &after_colon[end..];
    }

    let params_end = rest.find('?').unwrap_or(rest.len());
    let (parameters, rest) = rest.split_at(params_end);
    if !parameters.is_empty() {
        let Some(list) = parameters.strip_prefix(';') else {
            return Err(Invalid("after host"));
        };
        if !list.split(';').all(is_uri_parameter) {
            return Err(Invalid("uri-parameter"));
        }
    }

    let headers = match rest.strip_prefix('?') {
        Some(list) => {
            if !list.split('&').all(is_header) {
                return Err(Invalid("header"));
            }
            Some(list)
        }
        None if rest.is_empty() => None,
        None => return Err(Invalid("after parameters")),
    };

    Ok(SipUri {
        userinfo,
        host,
        port,
        parameters,
        headers,
    })
}

/// `alphanum / mark` (RFC 3261 `unreserved`).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// True when every character is `extra`, `unreserved` or an `escaped` triplet.
fn all_chars(text: &str, extra: &[u8]) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(|c| c.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) || extra.contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `user [ ":" password ]`.
fn is_userinfo(text: &str) -> bool {
    let (user, password) = match text.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (text, None),
    };
    !user.is_empty()
        && all_chars(user, b"&=+$,;?/")
        && password.is_none_or(|p| all_chars(p, b"&=+$,"))
}

fn parse_host(text: &str) -> Option<SipHost> {
    if let Some(inner) = text.strip_prefix('[') {
        let address = inner.strip_suffix(']')?;
        return is_ipv6_address(address)
            .then(|| address.parse().ok().map(SipHost::Ipv6))
            .flatten();
    }
    if is_ipv4_address(text) {
        return text.parse().ok().map(SipHost::Ipv4);
    }
    is_hostname(text).then(|| {
        let name = text.strip_suffix('.').unwrap_or(text);
        SipHost::Domain(name.to_ascii_lowercase())
    })
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`.
fn is_hostname(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    let labels: Vec<&str> = name.split('.').collect();
    let Some((top, domain)) = labels.split_last() else {
        return false;
    };
    let inner_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    domain
        .iter()
        .all(|l| inner_ok(l) && l.as_bytes()[0].is_ascii_alphanumeric())
        && inner_ok(top)
        && top.as_bytes()[0].is_ascii_alphabetic()
}

/// `1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`.
fn is_ipv4_address(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `IPv6address = hexpart [ ":" IPv4address ]`.
fn is_ipv6_address(text: &str) -> bool {
    if text.contains('.') {
        match text.rsplit_once(':') {
            Some((hex, v4)) => is_hexpart(hex) && is_ipv4_address(v4),
            None => false,
        }
    } else {
        is_hexpart(text)
    }
}

/// `hexpart = hexseq / hexseq "::" [ hexseq ] / "::" [ hexseq ]`.
fn is_hexpart(text: &str) -> bool {
    match text.split_once("::") {
        Some((before, after)) => {
            (before.is_empty() || is_hexseq(before)) && (after.is_empty() || is_hexseq(after))
        }
        None => is_hexseq(text),
    }
}

/// `hexseq = hex4 *( ":" hex4 )`, `hex4 = 1*4HEXDIG`.
fn is_hexseq(text: &str) -> bool {
    text.split(':')
        .all(|h| (1..=4).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `uri-parameter`: `other-param = pname [ "=" pvalue ]` (`paramchar` throughout), or one of
/// `transport=`, `user=`, `method=` followed by a `token` (their `other-*` alternatives).
fn is_uri_parameter(param: &str) -> bool {
    const PARAM_UNRESERVED: &[u8] = b"[]/:&+$";
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (param, None),
    };
    let paramchars = |s: &str| !s.is_empty() && all_chars(s, PARAM_UNRESERVED);
    if paramchars(name) && value.is_none_or(paramchars) {
        return true;
    }
    let token_valued = ["transport", "user", "method"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n));
    token_valued && value.is_some_and(is_token)
}

/// RFC 3261 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// `header = hname "=" hvalue`.
fn is_header(header: &str) -> bool {
    const HNV_UNRESERVED: &[u8] = b"[]/?:+$";
    match header.split_once('=') {
        Some((name, value)) => {
            !name.is_empty() && all_chars(name, HNV_UNRESERVED) && all_chars(value, HNV_UNRESERVED)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(uri: &str) -> Option<String> {
        match parse(uri).ok()?.domain_identity()? {
            SipHost::Domain(d) => Some(d.clone()),
            _ => None,
        }
    }

    #[test]
    fn domain_uris_parse_with_port_parameters_and_headers() {
        assert_eq!(
            domain("sip:pcscf.ims.test").as_deref(),
            Some("pcscf.ims.test")
        );
        assert_eq!(
            domain("SIP:PCSCF.Ims.Test.").as_deref(),
            Some("pcscf.ims.test")
        );
        let uri = parse("sip:pcscf.ims.test:5061;transport=tls;lr?subject=x&h=").unwrap();
        assert_eq!(uri.port, Some(5061));
        assert_eq!(uri.parameters, ";transport=tls;lr");
        assert_eq!(uri.headers, Some("subject=x&h="));
        assert_eq!(
            parse("sip:[2001:db8::1]:5061").unwrap().host,
            SipHost::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse("sip:192.0.2.1").unwrap().host,
            SipHost::Ipv4("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn a_user_part_hidden_behind_semicolon_or_question_mark_is_userinfo() {
        // RFC 3261 user-unreserved includes ";" and "?": the host is attacker.example.
        for uri in [
            "sip:pcscf.ims.victim.net;x@attacker.example",
            "sip:pcscf.ims.victim.net?x@attacker.example",
        ] {
            let parsed = parse(uri).unwrap();
            assert_eq!(parsed.host, SipHost::Domain("attacker.example".into()));
            assert!(parsed.userinfo.is_some());
            assert_eq!(parsed.domain_identity(), None, "{uri}");
        }
    }

    #[test]
    fn invalid_uris_are_errors_not_guesses() {
        for uri in [
            "sip:",
            "sip:@host",
            "sip:a@b@c",
            "sip:host:",
            "sip:host:50x61",
            "sip:host:65536",
            "sip:host/evil",
            "sip:host;",
            "sip:host;a=b@c=d",
            "sip:-host.example",
            "sip:host-.example",
            "sip:pcscf..ims.test",
            "sip:1host.2example",
            "sip:300.1.1.1",
            "sip:[1:2:3:4:5:6:7:8:9]",
            "sip:[::1",
            "sip:::1",
            "sip:host?novalue",
            "sip:host?a=b=c",
            "sip:ho%41st",
            "sip:user%4@host",
            "sip:host;p=a b",
        ] {
            assert!(
                matches!(parse(uri), Err(SipUriError::Invalid(_))),
                "{uri}: {:?}",
                parse(uri)
            );
        }
        for uri in ["sips:host", "tel:+15551234", "https://host/", "no-scheme"] {
            assert_eq!(parse(uri), Err(SipUriError::NotSip), "{uri}");
        }
    }

    #[test]
    fn token_valued_parameters_accept_token_only_characters() {
        assert!(parse("sip:host;transport=x`y").is_ok());
        assert!(parse("sip:host;other=x`y").is_err());
        assert!(parse("sip:host;maddr=[::1];ttl=15;user=phone;method=INVITE").is_ok());
    }
}
