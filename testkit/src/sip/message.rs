//! A parsed SIP message (RFC 3261 §7): start line, ordered header list, body; case-insensitive
//! header lookup with compact forms; serialisation with a correct Content-Length.

use std::fmt;

/// Why bytes are not a SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SipError {
    /// No blank line ends the header block.
    Incomplete,
    /// The header block is not UTF-8.
    NotUtf8,
    /// The start line is neither a request line nor a status line.
    BadStartLine(String),
    /// A header line has no colon or an empty name.
    BadHeader(String),
    /// Content-Length is not a number, or the body is shorter than it says.
    BadContentLength(String),
}

impl fmt::Display for SipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SipError::Incomplete => f.write_str("SIP header block is not terminated"),
            SipError::NotUtf8 => f.write_str("SIP header block is not UTF-8"),
            SipError::BadStartLine(l) => write!(f, "bad SIP start line {l:?}"),
            SipError::BadHeader(l) => write!(f, "bad SIP header line {l:?}"),
            SipError::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
        }
    }
}

impl std::error::Error for SipError {}

/// The first line of a SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method, e.g. `REGISTER` (case-sensitive per RFC 3261).
        method: String,
        /// The Request-URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// A SIP request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipMessage {
    /// The request or status line.
    pub start: StartLine,
    /// Headers in wire order, names as received (look them up with [`SipMessage::header`]).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// The full header name for a compact form (RFC 3261 §7.3.3 and later RFCs), else `name` itself.
pub fn canonical_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'l' => "Content-Length",
        b'k' => "Supported",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b's' => "Subject",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        _ => name,
    }
}

/// Whether two header names denote the same header (case-insensitive, compact forms expanded).
pub fn same_header(a: &str, b: &str) -> bool {
    canonical_name(a).eq_ignore_ascii_case(canonical_name(b))
}

impl SipMessage {
    /// A request with no headers and no body.
    pub fn request(method: &str, uri: &str) -> SipMessage {
        SipMessage {
            start: StartLine::Request {
                method: method.to_owned(),
                uri: uri.to_owned(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with no headers and no body.
    pub fn response(code: u16, reason: &str) -> SipMessage {
        SipMessage {
            start: StartLine::Response {
                code,
                reason: reason.to_owned(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Parses one complete message. A body longer than Content-Length is cut to it; a missing
    /// Content-Length means the rest of `bytes` is the body.
    pub fn parse(bytes: &[u8]) -> Result<SipMessage, SipError> {
        let end = find_blank_line(bytes).ok_or(SipError::Incomplete)?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| SipError::NotUtf8)?;
        let rest = &bytes[end..];
        let rest = rest
            .strip_prefix(b"\r\n\r\n")
            .or_else(|| rest.strip_prefix(b"\n\n"))
            .unwrap_or(rest);

        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or_default();
        let start = parse_start_line(first)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                match headers.last_mut() {
                    Some((_, value)) => {
                        value.push(' ');
                        value.push_str(line.trim());
                        continue;
                    }
                    None => return Err(SipError::BadHeader(line.to_owned())),
                }
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| SipError::BadHeader(line.to_owned()))?;
            let name = name.trim();
            if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
                return Err(SipError::BadHeader(line.to_owned()));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut message = SipMessage {
            start,
            headers,
            body: Vec::new(),
        };
        let body_len = match message.header("Content-Length") {
            None => rest.len(),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| SipError::BadContentLength(v.to_owned()))?,
        };
        if body_len > rest.len() {
            return Err(SipError::BadContentLength(format!(
                "{body_len} but only {} bytes follow",
                rest.len()
            )));
        }
        message.body = rest[..body_len].to_vec();
        Ok(message)
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of header `name` (case-insensitive; compact forms match their long name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order (one per header line, lists not split).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| same_header(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// Every element of header `name`, comma lists split (outside quotes and `<...>`).
    pub fn header_list(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| same_header(n, name))
            .flat_map(|(_, v)| crate::sip::params::split_list(v))
            .collect()
    }

    /// Whether a list header (`Supported`, `Require`, ...) contains `option-tag`, case-insensitive.
    pub fn has_option(&self, name: &str, option_tag: &str) -> bool {
        self.header_list(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(option_tag))
    }

    /// Appends a header line.
    pub fn push_header(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Replaces every `name` header by one line with `value` (appended if there was none).
    pub fn set_header(&mut self, name: &str, value: &str) {
        match self.headers.iter().position(|(n, _)| same_header(n, name)) {
            Some(i) => {
                self.headers[i] = (canonical_name(name).to_owned(), value.to_owned());
                let mut idx = 0;
                self.headers.retain(|(n, _)| {
                    idx += 1;
                    idx - 1 == i || !same_header(n, name)
                });
            }
            None => self.push_header(name, value),
        }
    }

    /// Removes every `name` header.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !same_header(n, name));
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (num, method) = self.header("CSeq")?.split_once(char::is_whitespace)?;
        Some((num.trim().parse().ok()?, method.trim()))
    }

    /// Serialises the message; any Content-Length header is replaced by the body's real length
    /// (written last among the headers).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (name, value) in &self.headers {
            if !same_header(name, "Content-Length") {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// Offset of the CRLFCRLF (or LFLF) that ends the header block.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    let bad = || SipError::BadStartLine(line.chars().take(200).collect());
    let mut parts = line.splitn(3, ' ');
    let (a, b, c) = (
        parts.next().unwrap_or_default(),
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
    );
    if a == "SIP/2.0" {
        let code: u16 = b.parse().map_err(|_| bad())?;
        if !(100..=699).contains(&code) {
            return Err(bad());
        }
        Ok(StartLine::Response {
            code,
            reason: c.to_owned(),
        })
    } else if c == "SIP/2.0"
        && !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|x| x.is_ascii_graphic())
    {
        Ok(StartLine::Request {
            method: a.to_owned(),
            uri: b.to_owned(),
        })
    } else {
        Err(bad())
    }
}

/// Builds a response to `request` (RFC 3261 §8.2.6.2): Via (all, in order), From, To, Call-ID
/// and CSeq copied; for codes above 100 `;tag=<to_tag>` is added to To when it has no tag yet.
pub fn response_to(request: &SipMessage, code: u16, reason: &str, to_tag: &str) -> SipMessage {
    let mut response = SipMessage::response(code, reason);
    for (name, value) in &request.headers {
        let copied = ["Via", "From", "To", "Call-ID", "CSeq"]
            .into_iter()
            .find(|h| same_header(name, h));
        if let Some(canonical) = copied {
            let mut value = value.clone();
            if canonical == "To" && code > 100 {
                value = crate::sip::params::with_tag(&value, to_tag);
            }
            response.push_header(canonical, &value);
        }
    }
    response
}

/// The reason phrase RFC 3261 suggests for `code` (a generic one for unknown codes).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Provisional",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:ims.test SIP/2.0\r\n\
        v: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK1;rport\r\n\
        Via: SIP/2.0/TLS proxy;branch=z9hG4bK2\r\n\
        f: <sip:alice@ims.test>;tag=a1\r\n\
        t: <sip:alice@ims.test>\r\n\
        i: call-1\r\n\
        CSeq: 2 REGISTER\r\n\
        m: <sip:alice@10.0.0.1:5061;transport=tls>;expires=600\r\n\
        k: outbound,\r\n path\r\n\
        l: 4\r\n\
        \r\n\
        bodyEXTRA";

    #[test]
    fn compact_forms_and_folding_are_understood() {
        let m = SipMessage::parse(REGISTER.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("REGISTER"));
        assert_eq!(m.request_uri(), Some("sip:ims.test"));
        assert_eq!(m.header("call-id"), Some("call-1"));
        assert_eq!(m.header("CONTACT"), m.header("m"));
        assert_eq!(m.headers_named("Via").count(), 2);
        assert_eq!(m.header("Supported"), Some("outbound, path"));
        assert!(m.has_option("k", "PATH"));
        assert_eq!(m.cseq(), Some((2, "REGISTER")));
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_a_to_tag() {
        let req = SipMessage::parse(REGISTER.as_bytes()).unwrap();
        let resp = response_to(&req, 200, "OK", "srv");
        let parsed = SipMessage::parse(&resp.to_bytes()).unwrap();
        assert_eq!(parsed.status(), Some(200));
        assert_eq!(parsed.headers_named("via").count(), 2);
        assert_eq!(parsed.header("To"), Some("<sip:alice@ims.test>;tag=srv"));
        assert_eq!(parsed.header("From"), Some("<sip:alice@ims.test>;tag=a1"));
        assert_eq!(parsed.header("Content-Length"), Some("0"));
        let trying = response_to(&req, 100, "Trying", "srv");
        assert_eq!(trying.header("To"), Some("<sip:alice@ims.test>"));
    }

    #[test]
    fn set_header_replaces_every_occurrence() {
        let mut m = SipMessage::parse(REGISTER.as_bytes()).unwrap();
        m.set_header("Via", "one");
        assert_eq!(m.headers_named("v").collect::<Vec<_>>(), ["one"]);
        m.remove_header("Contact");
        assert_eq!(m.header("m"), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            &b"hello"[..],
            b"\r\n\r\n",
            b"SIP/2.0 abc OK\r\n\r\n",
            b"SIP/2.0 99 Low\r\n\r\n",
            b"REGISTER sip:x SIP/3.0\r\n\r\n",
            b"REGISTER sip:x SIP/2.0\r\nNoColon\r\n\r\n",
            b"REGISTER sip:x SIP/2.0\r\n folded-first\r\n\r\n",
            b"REGISTER sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"REGISTER sip:x SIP/2.0\r\nContent-Length: 9\r\n\r\nshort",
            b"REGISTER sip:x SIP/2.0\r\nX: \xff\r\n\r\n",
        ] {
            assert!(
                SipMessage::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
