//! Header value helpers: comma lists and `name-addr;param=value` values (Contact, From, To).

use std::fmt;

/// Splits a header value at commas that are outside quotes and `<...>`; elements are trimmed and
/// empty ones dropped.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// A `name-addr` or `addr-spec` with header parameters, e.g.
/// `"Alice" <sip:alice@h;transport=tls>;+sip.instance="<urn:uuid:1>";reg-id=1;expires=600`.
/// `*` (the Contact wildcard) parses as a bare URI `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept), if any.
    pub display: Option<String>,
    /// The URI (without angle brackets).
    pub uri: String,
    /// Whether the URI was written in angle brackets.
    pub angle: bool,
    /// Header parameters after the URI: name (as written) and optional value (quotes kept).
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses one element of a list (split it first with [`split_list`]). Returns `None` for an
    /// empty value, an unterminated `<` or quote.
    pub fn parse(value: &str) -> Option<NameAddr> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let (display, uri, angle, rest) = match find_unquoted(value, '<') {
            Some(lt) => {
                let close = value[lt..].find('>')? + lt;
                let display = value[..lt].trim();
                (
                    (!display.is_empty()).then(|| display.to_owned()),
                    value[lt + 1..close].trim().to_owned(),
                    true,
                    &value[close + 1..],
                )
            }
            None => {
                if value.matches('"').count() % 2 == 1 {
                    return None;
                }
                let end = value.find(';').unwrap_or(value.len());
                (None, value[..end].trim().to_owned(), false, &value[end..])
            }
        };
        Some(NameAddr {
            display,
            uri,
            angle,
            params: parse_params(rest)?,
        })
    }

    /// A bare `<uri>` without parameters.
    pub fn from_uri(uri: &str) -> NameAddr {
        NameAddr {
            display: None,
            uri: uri.to_owned(),
            angle: true,
            params: Vec::new(),
        }
    }

    /// The value of parameter `name` (case-insensitive): `Some(None)` for a flag parameter,
    /// `None` when absent. Quotes are kept.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Sets (or replaces) parameter `name`.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }

    /// Removes parameter `name`.
    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(display) = &self.display {
            write!(f, "{display} ")?;
        }
        if self.angle || self.display.is_some() {
            write!(f, "<{}>", self.uri)?;
        } else {
            f.write_str(&self.uri)?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// Strips the surrounding double quotes of a parameter value, if present.
pub fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// `value` (a From/To header) with `;tag=<tag>` appended unless it already has a tag.
pub fn with_tag(value: &str, tag: &str) -> String {
    match NameAddr::parse(value) {
        Some(na) if na.param("tag").is_some() => value.to_owned(),
        Some(mut na) => {
            na.set_param("tag", Some(tag));
            na.to_string()
        }
        None => format!("{value};tag={tag}"),
    }
}

fn find_unquoted(value: &str, needle: char) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && in_quotes {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == needle && !in_quotes {
            return Some(i);
        }
    }
    None
}

/// Parses `;a=b;c;d="x;y"` into pairs; `None` on an unterminated quote.
fn parse_params(rest: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut params = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut pieces = Vec::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            '\\' if in_quotes => {
                current.push(c);
                if let Some((_, n)) = chars.next() {
                    current.push(n);
                }
            }
            ';' if !in_quotes => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if in_quotes {
        return None;
    }
    pieces.push(current);
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match piece.split_once('=') {
            Some((n, v)) => params.push((n.trim().to_owned(), Some(v.trim().to_owned()))),
            None => params.push((piece.to_owned(), None)),
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_with_instance_and_reg_id() {
        let v = r#"<sip:alice@[::1]:5061;transport=tls>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1;expires=600"#;
        let na = NameAddr::parse(v).unwrap();
        assert_eq!(na.uri, "sip:alice@[::1]:5061;transport=tls");
        assert_eq!(
            na.param("+SIP.INSTANCE"),
            Some(Some("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""))
        );
        assert_eq!(na.param("reg-id"), Some(Some("1")));
        assert_eq!(na.to_string(), v);
    }

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_list(r#""A, B" <sip:a@b;x=1,2>;q=1, <sip:c@d>, , outbound"#),
            [r#""A, B" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>", "outbound"]
        );
    }

    #[test]
    fn bare_uri_params_belong_to_the_header() {
        let na = NameAddr::parse("sip:bob@h;expires=0").unwrap();
        assert_eq!(na.uri, "sip:bob@h");
        assert_eq!(na.param("expires"), Some(Some("0")));
        assert_eq!(NameAddr::parse("*").unwrap().uri, "*");
    }

    #[test]
    fn tags_are_added_once() {
        assert_eq!(with_tag("<sip:a@b>", "x"), "<sip:a@b>;tag=x");
        assert_eq!(with_tag("<sip:a@b>;tag=y", "x"), "<sip:a@b>;tag=y");
        assert_eq!(with_tag("\"A\" <sip:a@b>", "x"), "\"A\" <sip:a@b>;tag=x");
    }

    #[test]
    fn malformed_values_do_not_panic() {
        for v in [
            "",
            "<sip:a",
            "\"unterminated <sip:a@b>",
            "<sip:a>;p=\"x",
            "é<>;;=;",
        ] {
            let _ = NameAddr::parse(v);
            let _ = split_list(v);
            let _ = with_tag(v, "t");
        }
        assert!(NameAddr::parse("<sip:a").is_none());
    }
}
