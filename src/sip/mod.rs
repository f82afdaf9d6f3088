//! SIP message framing on a stream (RFC 3261 §18.3) and RFC 5626 §3.5.1 CRLF keep-alives.
//!
//! imstls does not interpret SIP beyond what framing and the registration rules need: the
//! start line (request method or response status), Content-Length (or compact `l`), and
//! the CSeq method of a response. The input is untrusted: sizes are bounded and every
//! malformation is a [`FramingError`], never a panic. What the stack gives `send_sip` is held
//! to a strict subset of RFC 3261 ([`parse_outgoing_message`]) so that no receiver, however
//! lenient, reads it as anything but the one message imstls checked.
// Forbidden, not just denied: nothing inside this layer can lift the lint again (only
// src/os.rs and src/ffi may use unsafe_code).
#![forbid(unsafe_code)]

pub(crate) mod uri;

use std::borrow::Cow;
use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Longest header block accepted (start line + headers + blank line).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// One unit taken off the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete SIP message (zeroized when dropped: it may carry digest material).
    Message(Zeroizing<Vec<u8>>),
    /// A double-CRLF ping: answer with a single CRLF pong.
    Ping,
    /// A single-CRLF pong.
    Pong,
}

/// The stream cannot be framed; the flow must be closed (a stream cannot be resynchronised).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// The header block exceeds 64 KiB.
    HeaderTooLarge,
    /// The message exceeds the configured maximum.
    MessageTooLarge {
        /// Declared size of the whole message.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Content-Length is not a decimal number.
    BadContentLength,
    /// Two Content-Length headers disagree.
    ConflictingContentLength,
    /// The start line is neither a request line nor a status line.
    BadStartLine,
    /// Header bytes are not valid UTF-8 / contain NUL.
    BadHeaderBytes,
    /// More (or fewer) bytes than one complete message were given to `send_sip`.
    NotOneMessage,
    /// A CR not followed by LF in the head of an outgoing message.
    BareCarriageReturn {
        /// Where the CR is.
        offset: usize,
    },
    /// An LF not preceded by CR in the head of an outgoing message.
    BareLineFeed {
        /// Where the LF is.
        offset: usize,
    },
    /// A header line starting with whitespace (RFC 3261 §7.3.1 line folding).
    FoldedHeaderLine {
        /// The line number (the start line is line 1).
        line: usize,
    },
    /// A header line that is not `name: value`.
    BadHeaderLine {
        /// The line number (the start line is line 1).
        line: usize,
    },
    /// No Content-Length.
    MissingContentLength,
    /// More than one Content-Length.
    DuplicateContentLength,
    /// The body is not as long as Content-Length says.
    ContentLengthMismatch {
        /// What Content-Length says.
        declared: usize,
        /// The bytes after the head.
        actual: usize,
    },
    /// The head does not end with an empty line.
    UnterminatedHead,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTooLarge => write!(f, "SIP header block larger than 64 KiB"),
            Self::MessageTooLarge { size, max } => {
                write!(
                    f,
                    "SIP message of {size} bytes exceeds the {max}-byte limit"
                )
            }
            Self::BadContentLength => write!(f, "Content-Length is not a number"),
            Self::ConflictingContentLength => write!(f, "conflicting Content-Length headers"),
            Self::BadStartLine => write!(f, "not a SIP request or status line"),
            Self::BadHeaderBytes => write!(f, "SIP headers are not valid text"),
            Self::NotOneMessage => write!(f, "the buffer is not exactly one complete SIP message"),
            Self::BareCarriageReturn { offset } => write!(
                f,
                "bare CR at byte {offset}: SIP lines end with CRLF (RFC 3261 §7)"
            ),
            Self::BareLineFeed { offset } => write!(
                f,
                "bare LF at byte {offset}: SIP lines end with CRLF (RFC 3261 §7)"
            ),
            Self::FoldedHeaderLine { line } => write!(
                f,
                "line {line} starts with whitespace: folded header lines are not sent"
            ),
            Self::BadHeaderLine { line } => {
                write!(f, "line {line} is not a header line (token \":\" value)")
            }
            Self::MissingContentLength => write!(
                f,
                "no Content-Length: it is mandatory on a stream (RFC 3261 §18.3)"
            ),
            Self::DuplicateContentLength => write!(f, "more than one Content-Length header"),
            Self::ContentLengthMismatch { declared, actual } => write!(
                f,
                "Content-Length says {declared} but {actual} byte(s) follow the header block \
                 (one message per send_sip)"
            ),
            Self::UnterminatedHead => write!(f, "the header block does not end with an empty line"),
        }
    }
}

impl std::error::Error for FramingError {}

/// What the start line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request.
    Request {
        /// The method, e.g. `REGISTER`.
        method: Cow<'static, str>,
    },
    /// A response.
    Response {
        /// The status code.
        status: u16,
    },
}

/// The parts of a SIP message imstls looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHead {
    /// Request or response.
    pub start: StartLine,
    /// The method named in CSeq, when present.
    pub cseq_method: Option<Cow<'static, str>>,
    /// Length of the header block including the blank line.
    pub header_len: usize,
    /// Content-Length (0 when absent).
    pub body_len: usize,
}

impl MessageHead {
    /// Header block plus body.
    pub fn total_len(&self) -> usize {
        self.header_len + self.body_len
    }

    /// True for a request with this method (case-sensitive, as RFC 3261 §7.1 says).
    pub fn is_request(&self, method: &str) -> bool {
        matches!(&self.start, StartLine::Request { method: m } if m == method)
    }
}

/// Parses the head of a message whose header block is complete in `bytes`. Returns `None`
/// when more bytes are needed.
///
/// One pass over the head, a word at a time: each line's end is found together with any NUL
/// or non-ASCII byte in it, and the line is read (start line, Content-Length / `l`, CSeq) as
/// soon as the next one ends. Errors rank as they always have: a head over 64 KiB, then bytes
/// that are not text, then the start line, then the first bad Content-Length, then the size.
pub fn parse_head(bytes: &[u8], max_message: usize) -> Result<Option<MessageHead>, FramingError> {
    let mut reader = HeadReader::default();
    // The last line seen, CR stripped, read once it is known whether the blank line follows
    // (the line before it loses one more CR, as the header block ends before `\r\n\r\n`).
    let mut previous: Option<&[u8]> = None;
    let mut line_start = 0;
    loop {
        let (found, unusual) = scan_line(&bytes[line_start..]);
        let Some(length) = found else {
            if bytes.len() > MAX_HEADER_BLOCK {
                return Err(FramingError::HeaderTooLarge);
            }
            return Ok(None);
        };
        let newline = line_start + length;
        if newline >= 3 && &bytes[newline - 3..=newline] == b"\r\n\r\n" {
            let last = previous.unwrap_or_default();
            reader.line(last.strip_suffix(b"\r").unwrap_or(last));
            return reader.finish(newline + 1, max_message);
        }
        if let Some(line) = previous.take() {
            reader.line(line);
        }
        let line = &bytes[line_start..newline];
        if unusual && (line.contains(&0) || std::str::from_utf8(line).is_err()) {
            // UTF-8 over the block is UTF-8 over each of its lines: LF is ASCII.
            reader.bad_bytes = true;
        }
        previous = Some(line.strip_suffix(b"\r").unwrap_or(line));
        line_start = newline + 1;
    }
}

/// What [`parse_head`] has read so far, line by line.
#[derive(Default)]
struct HeadReader {
    lines: usize,
    bad_bytes: bool,
    start: Option<Result<StartLine, FramingError>>,
    /// The first Content-Length error; later headers are not read.
    header_error: Option<FramingError>,
    body_len: Option<usize>,
    cseq_method: Option<Cow<'static, str>>,
}

impl HeadReader {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if self.bad_bytes || self.header_error.is_some() {
            return; // already refused; the verdict cannot change
        }
        if self.lines == 1 {
            self.start = Some(parse_start_line(
                std::str::from_utf8(line).unwrap_or_default(),
            ));
            return;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return;
        };
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return; // folded continuation of the previous header
        }
        let name = line[..colon].trim_ascii_end();
        let is = |wanted: &[u8]| name.len() == wanted.len() && name.eq_ignore_ascii_case(wanted);
        if is(b"content-length") || is(b"l") {
            let value = line[colon + 1..].trim_ascii();
            if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                self.header_error = Some(FramingError::BadContentLength);
                return;
            }
            let len = value
                .iter()
                .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
            if self.body_len.is_some_and(|previous| previous != len) {
                self.header_error = Some(FramingError::ConflictingContentLength);
                return;
            }
            self.body_len = Some(len);
        } else if is(b"cseq") {
            self.cseq_method = cseq_method_of(&line[colon + 1..]);
        }
    }

    fn finish(
        self,
        header_len: usize,
        max_message: usize,
    ) -> Result<Option<MessageHead>, FramingError> {
        if header_len > MAX_HEADER_BLOCK {
            return Err(FramingError::HeaderTooLarge);
        }
        if self.bad_bytes {
            return Err(FramingError::BadHeaderBytes);
        }
        let start = self.start.unwrap_or(Err(FramingError::BadStartLine))?;
        if let Some(error) = self.header_error {
            return Err(error);
        }
        let head = MessageHead {
            start,
            cseq_method: self.cseq_method,
            header_len,
            // RFC 3261 §18.3 requires Content-Length on streams; a missing one means no body.
            body_len: self.body_len.unwrap_or(0),
        };
        if head.total_len() > max_message {
            return Err(FramingError::MessageTooLarge {
                size: head.total_len(),
                max: max_message,
            });
        }
        Ok(Some(head))
    }
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each zero byte of `word` (and possibly of bytes above the lowest zero
/// byte): nonzero exactly when some byte is zero, its lowest set bit marking the first one.
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGH_BITS
}

/// The length of the line at the start of `rest` (up to its LF, `None` when there is none),
/// and whether the line holds a NUL or a non-ASCII byte. Eight bytes at a time.
fn scan_line(rest: &[u8]) -> (Option<usize>, bool) {
    let unusual_byte = |b: &u8| b.wrapping_sub(1) >= 0x7f; // NUL or ≥ 0x80
    let mut unusual = false;
    let mut chunks = rest.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let newlines = zero_bytes(word ^ (ONES * u64::from(b'\n')));
        let flags = zero_bytes(word) | (word & HIGH_BITS);
        if newlines != 0 {
            // The lowest newline flag is exact; so is any NUL or high-byte flag below it (a
            // false NUL flag only sits above a real NUL).
            let newline = newlines.trailing_zeros();
            unusual |= flags & ((1u64 << newline) - 1) != 0;
            return (Some(at + newline as usize / 8), unusual);
        }
        unusual |= flags != 0;
        at += 8;
    }
    let tail = chunks.remainder();
    match tail.iter().position(|b| *b == b'\n') {
        Some(length) => {
            unusual |= tail[..length].iter().any(unusual_byte);
            (Some(at + length), unusual)
        }
        None => (None, unusual || tail.iter().any(unusual_byte)),
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, FramingError> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let code = rest.split(' ').next().unwrap_or_default();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
            let status: u16 = code.parse().map_err(|_| FramingError::BadStartLine)?;
            if (100..=699).contains(&status) {
                return Ok(StartLine::Response { status });
            }
        }
        return Err(FramingError::BadStartLine);
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::BadStartLine);
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    };
    if !token(method) || uri.is_empty() || version != "SIP/2.0" {
        return Err(FramingError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: method_name(method.as_bytes()),
    })
}

/// Checks that `bytes` is exactly one complete SIP message and returns its head.
#[cfg(feature = "_internal_test_exports")] // only tests and fuzz targets call it
pub fn parse_one_message(bytes: &[u8], max_message: usize) -> Result<MessageHead, FramingError> {
    match parse_head(bytes, max_message)? {
        Some(head) if head.total_len() == bytes.len() => Ok(head),
        _ => Err(FramingError::NotOneMessage),
    }
}

/// Checks that `bytes` is exactly one SIP message in the strict form imstls sends, and
/// returns its head. The rules (docs/CONFORMANCE.md, "Outgoing SIP"): every line of the head
/// ends with CRLF and holds no other CR or LF (RFC 3261 §7); the start line is a Request-Line
/// or Status-Line with single spaces (§7.1, §7.2); every header line is `token *WSP ":" value`
/// with no folding (§7.3.1 allows folding, a sender need not use it); the value holds no control
/// character but HTAB and is UTF-8; exactly one Content-Length (or `l`), 1 to 9 digits, equal
/// to the number of bytes after the empty line (§18.3, §20.14). A lenient receiver therefore
/// cannot read a second message out of what passed.
///
/// One pass over the head; the body is only counted.
pub fn parse_outgoing_message(
    bytes: &[u8],
    max_message: usize,
) -> Result<MessageHead, FramingError> {
    if bytes.len() > max_message {
        return Err(FramingError::MessageTooLarge {
            size: bytes.len(),
            max: max_message,
        });
    }
    let (start_line_end, _) = end_of_strict_line(bytes, 0)?;
    let start = parse_strict_start_line(&bytes[..start_line_end])?;
    let mut headers = StrictHeaders::default();
    let mut line_start = start_line_end + 2;
    loop {
        let (line_end, non_ascii) = end_of_strict_line(bytes, line_start)?;
        let header_len = line_end + 2;
        if header_len > MAX_HEADER_BLOCK {
            return Err(FramingError::HeaderTooLarge);
        }
        if line_end == line_start {
            let actual = bytes.len() - header_len;
            let declared = headers
                .content_length
                .ok_or(FramingError::MissingContentLength)?;
            if declared != actual {
                return Err(FramingError::ContentLengthMismatch { declared, actual });
            }
            return Ok(MessageHead {
                start,
                cseq_method: headers
                    .cseq_value
                    .and_then(|(from, to)| cseq_method_of(&bytes[from..to])),
                header_len,
                body_len: declared,
            });
        }
        headers.read(bytes, line_start, line_end, non_ascii)?;
        line_start = header_len;
    }
}

/// What [`parse_outgoing_message`] keeps of the header lines it has read.
#[derive(Default)]
struct StrictHeaders {
    /// Lines read so far, the start line included.
    lines: usize,
    content_length: Option<usize>,
    /// Where the last CSeq value is in the message.
    cseq_value: Option<(usize, usize)>,
}

impl StrictHeaders {
    /// Reads the header line `bytes[start..end]` (not empty). Out of line: the loop around it
    /// keeps its few positions in registers.
    #[inline(never)]
    fn read(
        &mut self,
        bytes: &[u8],
        start: usize,
        end: usize,
        non_ascii: bool,
    ) -> Result<(), FramingError> {
        self.lines += 1;
        let line = &bytes[start..end];
        let (name, value) = split_strict_header(line, self.lines + 1, non_ascii)?;
        let is = |wanted: &[u8]| name.eq_ignore_ascii_case(wanted);
        if is(b"content-length") || is(b"l") {
            if self.content_length.is_some() {
                return Err(FramingError::DuplicateContentLength);
            }
            if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                return Err(FramingError::BadContentLength);
            }
            self.content_length = Some(
                value
                    .iter()
                    .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0')),
            );
        } else if is(b"cseq") {
            let from = end - value.len();
            self.cseq_value = Some((from, end));
        }
        Ok(())
    }
}

/// The method of a CSeq value (`1*DIGIT LWS Method`): its second whitespace-separated word,
/// as `str::split_whitespace` finds it. For ASCII that is a split on the six ASCII bytes
/// `char::is_whitespace` accepts, without decoding characters.
fn cseq_method_of(value: &[u8]) -> Option<Cow<'static, str>> {
    if value.is_ascii() {
        let word = value
            .split(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
            .filter(|word| !word.is_empty())
            .nth(1)?;
        return Some(method_name(word));
    }
    let value = std::str::from_utf8(value).ok()?;
    let word = value.split_whitespace().nth(1)?;
    Some(method_name(word.as_bytes()))
}

/// A method name, without an allocation for the methods a UE's stack sends (RFC 3261 and
/// its extensions); any other is copied.
fn method_name(word: &[u8]) -> Cow<'static, str> {
    const KNOWN: [&str; 14] = [
        "REGISTER",
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "PRACK",
        "UPDATE",
        "INFO",
        "REFER",
        "PUBLISH",
    ];
    match KNOWN.iter().find(|known| known.as_bytes() == word) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(String::from_utf8_lossy(word).into_owned()),
    }
}

/// The index of the CRLF ending the line that starts at `from`, and whether the line holds a
/// byte above 0x7f; any other CR, LF or control byte on the way is an error.
#[inline]
fn end_of_strict_line(bytes: &[u8], from: usize) -> Result<(usize, bool), FramingError> {
    let rest = bytes.get(from..).unwrap_or_default();
    let (Some(offset), non_ascii) = first_control_byte(rest) else {
        return Err(FramingError::UnterminatedHead);
    };
    let at = from + offset;
    match (bytes[at], bytes.get(at + 1)) {
        (b'\r', Some(b'\n')) => Ok((at, non_ascii)),
        (b'\r', None) => Err(FramingError::UnterminatedHead),
        (b'\r', Some(_)) => Err(FramingError::BareCarriageReturn { offset: at }),
        (b'\n', _) => Err(FramingError::BareLineFeed { offset: at }),
        _ => Err(FramingError::BadHeaderBytes),
    }
}

/// Where the first control byte other than HTAB (a C0 byte or DEL) is in `rest`, and whether
/// a byte above 0x7f comes before it. Eight bytes at a time: a word with neither is passed over
/// whole, and the first flagged byte of a word is exact.
fn first_control_byte(rest: &[u8]) -> (Option<usize>, bool) {
    let mut non_ascii = false;
    let mut at = 0;
    while let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        // Flags every byte outside 0x20..=0x7e: below 0x20 (`word - 0x20` borrows into the
        // high bit of a byte whose own high bit is clear), 0x7f (`+ 1` carries into it), 0x80
        // and up (its own high bit). A borrow or carry only runs upward from a flagged byte,
        // so the lowest flag is exact, and only it is read.
        let flags =
            ((word.wrapping_sub(ONES * 0x20) & !word) | word.wrapping_add(ONES) | word) & HIGH_BITS;
        if flags == 0 {
            at += 8;
            continue;
        }
        let offset = flags.trailing_zeros() as usize / 8;
        match chunk[offset] {
            0x80.. => non_ascii = true,
            b'\t' => {}
            _ => return (Some(at + offset), non_ascii),
        }
        at += offset + 1;
    }
    let tail = &rest[at..];
    let found = tail
        .iter()
        .position(|b| b.is_ascii_control() && *b != b'\t');
    let before = &tail[..found.unwrap_or(tail.len())];
    non_ascii |= !before.is_ascii();
    (found.map(|offset| at + offset), non_ascii)
}

/// RFC 3261 §7.1 Request-Line `Method SP Request-URI SP SIP-Version` or §7.2 Status-Line
/// `SIP-Version SP Status-Code SP Reason-Phrase`, single spaces, version `SIP/2.0`.
fn parse_strict_start_line(line: &[u8]) -> Result<StartLine, FramingError> {
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let (code, reason) = rest.split_at_checked(3).ok_or(FramingError::BadStartLine)?;
        let Some(reason) = reason.strip_prefix(b" ") else {
            return Err(FramingError::BadStartLine);
        };
        if !code.iter().all(u8::is_ascii_digit) || !is_reason_phrase(reason) {
            return Err(FramingError::BadStartLine);
        }
        let status = code
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&status) {
            return Err(FramingError::BadStartLine);
        }
        return Ok(StartLine::Response { status });
    }
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(uri), Some(b"SIP/2.0"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::BadStartLine);
    };
    if !is_token(method) || !is_request_uri(uri) {
        return Err(FramingError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: method_name(method),
    })
}

/// RFC 3261 §25.1 `reserved` and `mark` characters, and the brackets of an `IPv6reference`:
/// what a Request-URI holds besides alphanumerics and `escaped`.
const REQUEST_URI_MARKS: &[u8] = b";/?:@&=+$,-_.!~*'()[]";

/// `reserved`, `mark`, SP and HTAB: what a Reason-Phrase holds besides alphanumerics,
/// `escaped` and UTF-8.
const REASON_PHRASE_MARKS: &[u8] = b";/?:@&=+$,-_.!~*'() \t";

/// A 256-entry membership table: alphanumerics and `marks`.
const fn byte_class(marks: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < marks.len() {
        table[marks[i] as usize] = true;
        i += 1;
    }
    table
}

static REQUEST_URI_BYTES: [bool; 256] = byte_class(REQUEST_URI_MARKS);
static REASON_PHRASE_BYTES: [bool; 256] = byte_class(REASON_PHRASE_MARKS);

/// Every byte is in `allowed` (alphanumerics and marks) or an `escaped` `%` HEXDIG HEXDIG;
/// bytes above 0x7f are let through when `utf8` (and the whole is then valid UTF-8).
fn is_uri_text(bytes: &[u8], allowed: &[bool; 256], utf8: bool) -> bool {
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b == b'%' {
            let hex = bytes.get(at + 1..at + 3).unwrap_or_default();
            if hex.len() != 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            at += 3;
            continue;
        }
        if !(allowed[usize::from(b)] || (utf8 && b >= 0x80)) {
            return false;
        }
        at += 1;
    }
    !utf8 || bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// RFC 3261 §25.1 `Request-URI` (SIP-URI / SIPS-URI / absoluteURI): a scheme, `:`, then URI
/// characters (with `[` `]` for IPv6 references, RFC 3261 §25.1 `IPv6reference`).
fn is_request_uri(uri: &[u8]) -> bool {
    let Some(colon) = uri.iter().position(|b| *b == b':') else {
        return false;
    };
    let (scheme, rest) = (&uri[..colon], &uri[colon + 1..]);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
    scheme_ok && !rest.is_empty() && is_uri_text(rest, &REQUEST_URI_BYTES, false)
}

/// RFC 3261 §25.1 `Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII /
/// UTF8-CONT / SP / HTAB)` (and valid UTF-8).
fn is_reason_phrase(reason: &[u8]) -> bool {
    is_uri_text(reason, &REASON_PHRASE_BYTES, true)
}

/// RFC 3261 §7.3 / §25.1 `header-name HCOLON header-value` without folding: the name a
/// token, optional SP/HTAB before the colon, the value with its leading SP/HTAB removed.
/// `non_ascii`: whether the line holds a byte above 0x7f (only then is UTF-8 checked).
fn split_strict_header(
    line: &[u8],
    line_number: usize,
    non_ascii: bool,
) -> Result<(&[u8], &[u8]), FramingError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(FramingError::FoldedHeaderLine { line: line_number });
    }
    let bad_line = || FramingError::BadHeaderLine { line: line_number };
    let name_len = token_prefix_len(line);
    if name_len == line.len() {
        return Err(bad_line());
    }
    let after_name = &line[name_len..];
    let colon = after_name
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .filter(|at| after_name[*at] == b':')
        .ok_or_else(bad_line)?;
    if name_len == 0 {
        return Err(bad_line());
    }
    let value = &after_name[colon + 1..];
    let value_start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let value = &value[value_start..];
    if non_ascii && std::str::from_utf8(value).is_err() {
        return Err(FramingError::BadHeaderBytes);
    }
    Ok((&line[..name_len], value))
}

/// RFC 3261 §25.1 `token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")`,
/// as a table: header names are checked byte by byte on every `send_sip`.
static TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// How many bytes at the start of `bytes` are token characters. Out of line: inlined into
/// the header loop, the scan carried that loop's positions along and cost three times as
/// many instructions per byte.
#[inline(never)]
fn token_prefix_len(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| is_token_byte(**b)).count()
}

fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| is_token_byte(*b))
}

/// Appends to a zeroizing buffer without leaving a copy behind: a `Vec` that grows gives its
/// old block back to the allocator unwiped, so grow into a new buffer and let the old one
/// zeroize itself on drop.
pub(crate) fn extend_wiping(buffer: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    if buffer.capacity() - buffer.len() < bytes.len() {
        let needed = buffer.len() + bytes.len();
        let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(2 * buffer.capacity())));
        grown.extend_from_slice(buffer);
        std::mem::swap(buffer, &mut grown);
    }
    buffer.extend_from_slice(bytes);
}

/// Where the blank line ending a header block starts (the index of its `\r\n\r\n`),
/// searching from `from`.
fn find_header_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(offset) = bytes.get(at..)?.iter().position(|b| *b == b'\n') {
        let newline = at + offset;
        if newline >= 3 && &bytes[newline - 3..=newline] == b"\r\n\r\n" {
            return Some(newline - 3);
        }
        at = newline + 1;
    }
    None
}

/// Incremental framer for the bytes received on one flow.
pub struct SipFramer {
    buffer: Zeroizing<Vec<u8>>,
    max_message: usize,
    /// How far the search for the end of the header block has got (so a peer trickling
    /// bytes costs linear, not quadratic, time).
    scanned: usize,
    /// The total length of the message whose body is still arriving (its head is parsed).
    pending: Option<usize>,
}

impl fmt::Debug for SipFramer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipFramer")
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl SipFramer {
    /// A framer accepting messages up to `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            buffer: Zeroizing::new(Vec::new()),
            max_message,
            scanned: 0,
            pending: None,
        }
    }

    /// Bytes waiting for the rest of their message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Appends received plaintext (the engine hands over its reads with
    /// [`push_owned`](Self::push_owned); tests, benches and fuzz targets push slices).
    #[cfg(any(test, feature = "_internal_test_exports"))]
    pub fn push(&mut self, bytes: &[u8]) {
        extend_wiping(&mut self.buffer, bytes);
    }

    /// Appends received plaintext the caller owns. An empty framer keeps the block itself, so
    /// a read holding whole messages is not copied (nor wiped) once more on the way in.
    pub fn push_owned(&mut self, bytes: Zeroizing<Vec<u8>>) {
        if self.buffer.is_empty() {
            self.buffer = bytes;
        } else {
            extend_wiping(&mut self.buffer, &bytes);
        }
    }

    /// Takes the next complete unit. `awaiting_pong` resolves a lone CRLF at the end of the
    /// buffer: a pong when a ping is outstanding, otherwise wait for the rest of a ping.
    pub fn next_frame(&mut self, awaiting_pong: bool) -> Result<Option<Frame>, FramingError> {
        let buf = &self.buffer[..];
        if buf.starts_with(b"\r\n\r\n") {
            self.consume(4);
            return Ok(Some(Frame::Ping));
        }
        if buf.starts_with(b"\r\n") {
            let lone = buf.len() == 2 || (buf.len() == 3 && buf[2] == b'\r');
            if lone && !awaiting_pong {
                return Ok(None);
            }
            self.consume(2);
            return Ok(Some(Frame::Pong));
        }
        if buf == b"\r" {
            return Ok(None);
        }
        let total = match self.pending {
            Some(total) => total,
            // A head that may be complete already: one pass finds its end and reads it.
            None if self.scanned == 0 => match parse_head(buf, self.max_message)? {
                Some(head) => {
                    self.pending = Some(head.total_len());
                    head.total_len()
                }
                None => {
                    self.scanned = buf.len().saturating_sub(3);
                    return Ok(None);
                }
            },
            // Bytes trickling in: search on from where the last search stopped, and read the
            // head once its end is there (linear, not quadratic, in the bytes received).
            None => {
                if find_header_end(buf, self.scanned).is_none() {
                    if buf.len() > MAX_HEADER_BLOCK {
                        return Err(FramingError::HeaderTooLarge);
                    }
                    self.scanned = buf.len().saturating_sub(3);
                    return Ok(None);
                }
                let head =
                    parse_head(buf, self.max_message)?.expect("the header block is complete");
                let total = head.total_len();
                self.pending = Some(total);
                total
            }
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        // A buffer that is exactly this message becomes the message: no copy, and nothing
        // left behind to wipe. Only an exact fit, so the message holds no spare capacity
        // beyond what the output queue's accounting (its length) sees.
        if self.buffer.capacity() == total {
            let message = std::mem::replace(&mut self.buffer, Zeroizing::new(Vec::new()));
            self.scanned = 0;
            self.pending = None;
            return Ok(Some(Frame::Message(message)));
        }
        let message = Zeroizing::new(self.buffer[..total].to_vec());
        self.consume(total);
        Ok(Some(Frame::Message(message)))
    }

    /// Drops the first `n` bytes. Received plaintext (nonces, the stack's messages) must not
    /// linger in spare capacity: an emptied buffer is released (zeroized on drop, and an
    /// idle flow holds no receive buffer), a partly consumed one has its vacated tail wiped.
    fn consume(&mut self, n: usize) {
        if n >= self.buffer.len() {
            self.buffer = Zeroizing::new(Vec::new());
        } else {
            let remaining = self.buffer.len() - n;
            self.buffer.copy_within(n.., 0);
            self.buffer[remaining..].zeroize();
            self.buffer.truncate(remaining);
        }
        self.scanned = 0;
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next value of a xorshift64 sequence (fixed seeds keep these tests reproducible).
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    const REGISTER: &[u8] =
        b"REGISTER sip:ims.test SIP/2.0\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

    fn frames(framer: &mut SipFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = framer.next_frame(false).unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn a_message_split_anywhere_is_reassembled() {
        let msg = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 5\r\n\r\nhello";
        for split in 0..msg.len() {
            let mut framer = SipFramer::new(4096);
            framer.push(&msg[..split]);
            let first = frames(&mut framer);
            framer.push(&msg[split..]);
            let mut all = first;
            all.extend(frames(&mut framer));
            assert_eq!(
                all,
                vec![Frame::Message(Zeroizing::new(msg.to_vec()))],
                "{split}"
            );
            assert_eq!(framer.buffered(), 0);
        }
    }

    #[test]
    fn the_cseq_method_is_the_second_word_split_whitespace_finds() {
        let alphabet = b" \t\n\x0b\x0c\r\x1fA1\xc2\xa0\xe3\x80\x80";
        let mut state = 0x51_7cc1_b727_220a_u64;
        for length in 0..16 {
            for _ in 0..400 {
                let value: Vec<u8> = (0..length)
                    .map(|_| alphabet[(xorshift(&mut state) >> 8) as usize % alphabet.len()])
                    .collect();
                let expected = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned));
                assert_eq!(
                    cseq_method_of(&value).map(Cow::into_owned),
                    expected,
                    "{value:?}"
                );
            }
        }
        assert!(matches!(
            cseq_method_of(b"7 REGISTER"),
            Some(Cow::Borrowed("REGISTER"))
        ));
    }

    #[test]
    fn an_owned_read_holding_one_message_becomes_that_message() {
        let msg = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 5\r\n\r\nhello";
        let mut framer = SipFramer::new(4096);
        let read = Zeroizing::new(msg.to_vec());
        let block = read.as_ptr();
        framer.push_owned(read);
        let Some(Frame::Message(message)) = framer.next_frame(false).unwrap() else {
            panic!("no message");
        };
        assert_eq!(&message[..], &msg[..]);
        assert_eq!(message.as_ptr(), block, "the read's block was copied");
        assert_eq!(framer.buffered(), 0);
        assert_eq!(framer.next_frame(false).unwrap(), None);
    }

    #[test]
    fn a_message_never_carries_spare_capacity_the_queue_would_not_count() {
        let msg = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let mut read = Zeroizing::new(Vec::with_capacity(4 * msg.len()));
        read.extend_from_slice(msg);
        let mut framer = SipFramer::new(4096);
        framer.push_owned(read);
        let Some(Frame::Message(message)) = framer.next_frame(false).unwrap() else {
            panic!("no message");
        };
        assert_eq!(&message[..], &msg[..]);
        assert_eq!(message.capacity(), msg.len());
    }

    #[test]
    fn owned_reads_split_anywhere_are_reassembled() {
        let first = b"SIP/2.0 401 Unauthorized\r\nContent-Length: 2\r\n\r\nhi";
        let second = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let stream = [&first[..], &b"\r\n\r\n"[..], &second[..]].concat();
        for split in 0..=stream.len() {
            let mut framer = SipFramer::new(4096);
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                framer.push_owned(Zeroizing::new(part.to_vec()));
                got.extend(frames(&mut framer));
            }
            let want = vec![
                Frame::Message(Zeroizing::new(first.to_vec())),
                Frame::Ping,
                Frame::Message(Zeroizing::new(second.to_vec())),
            ];
            assert_eq!(got, want, "split at {split}");
            assert_eq!(framer.buffered(), 0);
        }
    }

    #[test]
    fn a_framer_that_has_delivered_everything_holds_no_buffer() {
        let mut framer = SipFramer::new(4096);
        let mut stream = REGISTER.to_vec();
        stream.extend_from_slice(&REGISTER[..10]);
        framer.push(&stream);
        assert_eq!(frames(&mut framer).len(), 1);
        // The partial second message moved to the front, intact.
        assert_eq!(&framer.buffer[..], &REGISTER[..10]);
        framer.push(&REGISTER[10..]);
        assert_eq!(frames(&mut framer).len(), 1);
        assert_eq!(framer.buffered(), 0);
        assert_eq!(framer.buffer.capacity(), 0);
    }

    #[test]
    fn coalesced_messages_and_keepalives_come_apart() {
        let mut framer = SipFramer::new(4096);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(REGISTER);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(REGISTER);
        framer.push(&stream);
        let got = frames(&mut framer);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Frame::Ping);
        assert!(matches!(got[1], Frame::Message(_)));
        assert_eq!(got[2], Frame::Pong);
        assert!(matches!(got[3], Frame::Message(_)));
    }

    #[test]
    fn a_lone_crlf_is_a_pong_only_when_one_is_awaited() {
        let mut framer = SipFramer::new(4096);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(false).unwrap(), None);
        assert_eq!(framer.next_frame(true).unwrap(), Some(Frame::Pong));
        let mut framer = SipFramer::new(4096);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(false).unwrap(), None);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(false).unwrap(), Some(Frame::Ping));
    }

    #[test]
    fn compact_content_length_is_understood() {
        let msg = b"MESSAGE sip:u@ims.test SIP/2.0\r\nl: 3\r\ni: x\r\n\r\nabc";
        let head = parse_one_message(msg, 4096).unwrap();
        assert!(head.is_request("MESSAGE"));
        assert_eq!(head.body_len, 3);
    }

    #[test]
    fn response_cseq_method_is_read() {
        let msg = b"SIP/2.0 401 Unauthorized\r\nCSeq: 7 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let head = parse_one_message(msg, 4096).unwrap();
        assert_eq!(head.start, StartLine::Response { status: 401 });
        assert_eq!(head.cseq_method.as_deref(), Some("REGISTER"));
    }

    #[test]
    fn bad_framing_is_an_error() {
        let cases: &[(&[u8], FramingError)] = &[
            (
                b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",
                FramingError::BadContentLength,
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n",
                FramingError::BadContentLength,
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
                FramingError::ConflictingContentLength,
            ),
            (b"HELLO\r\n\r\n", FramingError::BadStartLine),
            (b"SIP/2.0 99 Low\r\n\r\n", FramingError::BadStartLine),
            (b"GET / HTTP/1.1\r\n\r\n", FramingError::BadStartLine),
            (
                b"SIP/2.0 200 OK\r\nX: \0\r\n\r\n",
                FramingError::BadHeaderBytes,
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 999999\r\n\r\n",
                FramingError::MessageTooLarge {
                    size: 1_000_041,
                    max: 4096,
                },
            ),
        ];
        for (bytes, expected) in cases {
            let mut framer = SipFramer::new(4096);
            framer.push(bytes);
            assert_eq!(
                &framer.next_frame(false).unwrap_err(),
                expected,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn an_endless_header_block_is_refused() {
        let mut framer = SipFramer::new(1 << 20);
        framer.push(b"SIP/2.0 200 OK\r\n");
        let filler = vec![b'a'; 70 * 1024];
        framer.push(&filler);
        assert_eq!(
            framer.next_frame(false).unwrap_err(),
            FramingError::HeaderTooLarge
        );
    }

    #[test]
    fn the_strict_outgoing_head_reports_what_the_engine_needs() {
        let msg = b"MESSAGE sip:u@[2001:db8::1] SIP/2.0\r\nCSeq : 4 MESSAGE\r\nl:\t3\r\n\r\na\nb";
        let head = parse_outgoing_message(msg, 4096).unwrap();
        assert!(head.is_request("MESSAGE"));
        assert_eq!(head.cseq_method.as_deref(), Some("MESSAGE"));
        assert_eq!((head.header_len, head.body_len), (msg.len() - 3, 3));
        assert_eq!(
            parse_outgoing_message(msg, msg.len() - 1),
            Err(FramingError::MessageTooLarge {
                size: msg.len(),
                max: msg.len() - 1
            })
        );
        let mut endless = b"MESSAGE sip:u SIP/2.0\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b"X: y\r\n", 20_000).flatten());
        assert_eq!(
            parse_outgoing_message(&endless, 1 << 20),
            Err(FramingError::HeaderTooLarge)
        );
    }

    #[test]
    fn send_sip_needs_exactly_one_message() {
        assert!(parse_one_message(REGISTER, 4096)
            .unwrap()
            .is_request("REGISTER"));
        let mut two = REGISTER.to_vec();
        two.extend_from_slice(REGISTER);
        assert_eq!(
            parse_one_message(&two, 4096),
            Err(FramingError::NotOneMessage)
        );
        assert_eq!(
            parse_one_message(&REGISTER[..10], 4096),
            Err(FramingError::NotOneMessage)
        );
    }

    /// The three-pass reading `parse_head` replaced, kept as the reference its one pass must
    /// agree with.
    fn reference_parse_head(
        bytes: &[u8],
        max_message: usize,
    ) -> Result<Option<MessageHead>, FramingError> {
        let Some(end) = find_header_end(bytes, 0) else {
            if bytes.len() > MAX_HEADER_BLOCK {
                return Err(FramingError::HeaderTooLarge);
            }
            return Ok(None);
        };
        let header_len = end + 4;
        if header_len > MAX_HEADER_BLOCK {
            return Err(FramingError::HeaderTooLarge);
        }
        let block = &bytes[..end];
        if std::str::from_utf8(block).is_err() || block.contains(&0) {
            return Err(FramingError::BadHeaderBytes);
        }
        // Byte-level line walk: only the start line, Content-Length / l and CSeq matter here.
        let mut lines = block
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let start_line = lines.next().unwrap_or_default();
        let start = parse_start_line(std::str::from_utf8(start_line).unwrap_or_default())?;
        let mut body_len: Option<usize> = None;
        let mut cseq_method = None;
        for line in lines {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let name = line[..colon].trim_ascii_end();
            let is =
                |wanted: &[u8]| name.len() == wanted.len() && name.eq_ignore_ascii_case(wanted);
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                continue; // folded continuation of the previous header
            }
            if is(b"content-length") || is(b"l") {
                let value = line[colon + 1..].trim_ascii();
                if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                    return Err(FramingError::BadContentLength);
                }
                let len = value
                    .iter()
                    .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
                if body_len.is_some_and(|previous| previous != len) {
                    return Err(FramingError::ConflictingContentLength);
                }
                body_len = Some(len);
            } else if is(b"cseq") {
                let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or_default();
                cseq_method = value
                    .split_whitespace()
                    .nth(1)
                    .map(|method| Cow::Owned(method.to_owned()));
            }
        }
        let head = MessageHead {
            start,
            cseq_method,
            header_len,
            // RFC 3261 §18.3 requires Content-Length on streams; a missing one means no body.
            body_len: body_len.unwrap_or(0),
        };
        if head.total_len() > max_message {
            return Err(FramingError::MessageTooLarge {
                size: head.total_len(),
                max: max_message,
            });
        }
        Ok(Some(head))
    }

    #[test]
    fn the_one_pass_head_reader_agrees_with_the_three_pass_one() {
        let seeds: &[&[u8]] = &[
            REGISTER,
            b"SIP/2.0 401 Unauthorized\r\nCSeq: 7 REGISTER\r\nl: 3\r\n i: x\r\n\r\nabc",
            b"MESSAGE sip:u@ims.test SIP/2.0\r\nContent-Length : 2\r\nX: \xc3\xa9t\xc3\xa9\r\n\r\nhi",
            b"SIP/2.0 200 OK\r\nContent-Length: 1\r\ncontent-length: 1\r\nCSeq:9 REGISTER\r\n\r\n.",
            b"INVITE sip:x SIP/2.0\r\r\n\r\n",
        ];
        // Mutations with the bytes that matter to the reading, from a fixed xorshift seed.
        let alphabet = b"\r\n\0: \t0l9\x80\xc3\xa9\xffS";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| (xorshift(&mut state) % bound as u64) as usize;
        let mut cases = 0;
        for seed in seeds {
            for _ in 0..4000 {
                let mut message = seed.to_vec();
                for _ in 0..1 + next(4) {
                    let at = next(message.len() + 1);
                    let byte = alphabet[next(alphabet.len())];
                    match next(3) {
                        0 => message.insert(at, byte),
                        1 if at < message.len() => message[at] = byte,
                        _ if at < message.len() => {
                            message.remove(at);
                        }
                        _ => message.push(byte),
                    }
                }
                for cut in [message.len(), message.len() / 2] {
                    let bytes = &message[..cut];
                    for max in [4096, 40] {
                        assert_eq!(
                            parse_head(bytes, max),
                            reference_parse_head(bytes, max),
                            "{bytes:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        // Long lines cross the eight-byte words at every offset.
        for pad in 0..24 {
            let mut message = b"SIP/2.0 200 OK\r\nX: ".to_vec();
            message.extend(std::iter::repeat_n(b'a', pad));
            message.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            for cut in 0..=message.len() {
                assert_eq!(
                    parse_head(&message[..cut], 4096),
                    reference_parse_head(&message[..cut], 4096)
                );
            }
        }
        assert!(cases >= 80_000);
    }

    #[test]
    fn the_word_at_a_time_control_scan_agrees_with_the_byte_scan() {
        let alphabet = b"aZ :\t\r\n\0\x01\x1f~\x7f\x80\xff ";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for length in 0..40 {
            for _ in 0..300 {
                let bytes: Vec<u8> = (0..length)
                    .map(|_| {
                        let state = xorshift(&mut state);
                        // Mostly printable, so that the first control byte lands anywhere.
                        if state % 5 == 0 {
                            alphabet[(state >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (state >> 8) as u8 % 26
                        }
                    })
                    .collect();
                let expected = bytes
                    .iter()
                    .position(|b| b.is_ascii_control() && *b != b'\t');
                let non_ascii = bytes[..expected.unwrap_or(bytes.len())]
                    .iter()
                    .any(|b| *b >= 0x80);
                assert_eq!(
                    first_control_byte(&bytes),
                    (expected, non_ascii),
                    "{bytes:?}"
                );
                let expected_line = bytes.iter().position(|b| *b == b'\n');
                let line_end = expected_line.unwrap_or(bytes.len());
                let unusual = bytes[..line_end].iter().any(|b| *b == 0 || *b >= 0x80);
                assert_eq!(scan_line(&bytes), (expected_line, unusual), "{bytes:?}");
            }
        }
    }
}
