//! P-CSCF candidates: `host`, `host:port`, `v4`, `v4:port`, `[v6]`, `[v6]:port` or a bare
//! IPv6 literal. Port 5061 unless given (TS 33.203 O.2.1 "Ports").

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::error::ConfigError;

/// The default SIP-over-TLS port (RFC 3261 §26.2, TS 33.203 O.2.1).
pub const DEFAULT_SIPS_PORT: u16 = 5061;

/// Where a P-CSCF candidate lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lower-case, without a trailing dot. The caller resolves it.
    Name(String),
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
        }
    }
}

/// One P-CSCF address to try, in configuration order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Host name or IP literal.
    pub host: Host,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for Candidate {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &'static str| ConfigError::InvalidCandidate {
            value: value.to_owned(),
            reason,
        };
        let text = value.trim();
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Candidate {
                host: Host::Ip(ip),
                port: DEFAULT_SIPS_PORT,
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or(invalid("unclosed '['"))?;
            let ip: IpAddr = inside
                .parse()
                .map_err(|_| invalid("not an IPv6 literal inside []"))?;
            if !ip.is_ipv6() {
                return Err(invalid("only IPv6 literals go inside []"));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(invalid("junk after ']'"))?),
            };
            (Host::Ip(ip), port)
        } else {
            let (host, port) = match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            let host = match host.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(validate_dns_name(host).map_err(invalid)?),
            };
            (host, port)
        };
        let port = match port {
            None => DEFAULT_SIPS_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return Err(invalid("port 0")),
                Ok(port) => port,
                Err(_) => return Err(invalid("port is not a number in 1..=65535")),
            },
        };
        Ok(Candidate { host, port })
    }
}

/// Checks DNS name syntax (RFC 1035 / RFC 1123 labels) and returns it normalised.
pub(crate) fn validate_dns_name(name: &str) -> Result<String, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty host name");
    }
    if name.len() > 253 {
        return Err("host name longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label in host name");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host name has characters other than letters, digits, '-', '_' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with '-'");
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("looks like a malformed IP address");
    }
    let name = name.to_ascii_lowercase();
    // rustls must accept it too, so that building a ServerName later cannot fail.
    rustls::pki_types::DnsName::try_from(name.as_str())
        .map_err(|_| "not a valid DNS name for TLS")?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Candidate {
        s.parse().unwrap()
    }

    #[test]
    fn host_without_port_gets_5061() {
        let c = parse("PCSCF.ims.test.");
        assert_eq!(c.host, Host::Name("pcscf.ims.test".into()));
        assert_eq!(c.port, 5061);
    }

    #[test]
    fn ports_and_literals_parse() {
        assert_eq!(parse("pcscf.ims.test:443").port, 443);
        assert_eq!(
            parse("192.0.2.7:5062").host,
            Host::Ip("192.0.2.7".parse().unwrap())
        );
        assert_eq!(parse("[2001:db8::1]:5063").port, 5063);
        assert_eq!(parse("[2001:db8::1]").port, 5061);
        assert_eq!(
            parse("2001:db8::1").host,
            Host::Ip("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse("[::1]:5061").to_string(), "[::1]:5061");
    }

    #[test]
    fn bad_candidates_name_the_problem() {
        for (value, reason) in [
            ("", "empty"),
            ("pcscf.ims.test:0", "port 0"),
            ("pcscf.ims.test:70000", "port is not a number in 1..=65535"),
            ("pcscf.ims.test:", "port is not a number in 1..=65535"),
            ("[2001:db8::1", "unclosed '['"),
            ("[192.0.2.1]:5061", "only IPv6 literals go inside []"),
            ("pcscf..ims.test", "empty label in host name"),
            (
                "pcscf ims.test",
                "host name has characters other than letters, digits, '-', '_' and '.'",
            ),
            ("-pcscf.ims.test", "label starts or ends with '-'"),
            ("999.1.1.1", "looks like a malformed IP address"),
        ] {
            match value.parse::<Candidate>() {
                Err(ConfigError::InvalidCandidate { reason: r, .. }) => {
                    assert_eq!(r, reason, "for {value:?}")
                }
                other => panic!("{value:?} gave {other:?}"),
            }
        }
    }
}
