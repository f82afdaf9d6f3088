//! SIP message framing on a stream transport (RFC 3261 §18.3) with RFC 5626 §3.5.1 CRLF
//! keep-alives between messages.
//!
//! Feed received bytes with [`Framer::push`], then call [`Framer::next_frame`] until it returns
//! `Ok(None)`. Between messages, `CRLFCRLF` is a [`Frame::Ping`] and a lone `CRLF` a
//! [`Frame::Pong`]. A buffer holding exactly `CRLF` is taken as a pong at once (keep-alives are
//! written whole, in one TLS record, so a ping split after its first CRLF is not expected).
//! After an error the stream cannot be re-synchronised: close the connection.

use std::fmt;

use crate::sip::message::same_header;

/// Largest accepted header block (start line + headers + blank line).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One unit extracted from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete SIP message: header block and `Content-Length` bytes of body.
    Message(Vec<u8>),
    /// `CRLFCRLF`: a keep-alive ping; answer with a `CRLF` pong.
    Ping,
    /// A lone `CRLF`: a keep-alive pong.
    Pong,
}

/// Why the stream cannot be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// No end of header block within [`MAX_HEADER_BYTES`].
    HeaderTooLarge,
    /// Content-Length above [`MAX_BODY_BYTES`].
    BodyTooLarge(usize),
    /// Content-Length missing a number, or two different values.
    BadContentLength(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::HeaderTooLarge => {
                write!(f, "SIP header block over {MAX_HEADER_BYTES} bytes")
            }
            FrameError::BodyTooLarge(n) => {
                write!(f, "SIP body of {n} bytes over {MAX_BODY_BYTES}")
            }
            FrameError::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reassembles SIP messages and keep-alives from stream bytes.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    failed: Option<FrameError>,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. Once it has returned an
    /// error it returns the same error forever.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.extract() {
            Err(e) => {
                self.buf.clear();
                self.failed = Some(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn extract(&mut self) -> Result<Option<Frame>, FrameError> {
        let buf = &self.buf;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Ok(Some(Frame::Ping));
        }
        if buf.starts_with(b"\r\n") {
            if buf.len() == 3 && buf[2] == b'\r' {
                return Ok(None); // "\r\n\r": probably a ping cut short
            }
            self.buf.drain(..2);
            return Ok(Some(Frame::Pong));
        }
        if buf == b"\r" {
            return Ok(None);
        }
        let window = &buf[..buf.len().min(MAX_HEADER_BYTES)];
        let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if buf.len() >= MAX_HEADER_BYTES {
                Err(FrameError::HeaderTooLarge)
            } else {
                Ok(None)
            };
        };
        let head_len = end + 4;
        let body_len = content_length(&buf[..end])?;
        if body_len > MAX_BODY_BYTES {
            return Err(FrameError::BodyTooLarge(body_len));
        }
        let total = head_len + body_len;
        if buf.len() < total {
            return Ok(None);
        }
        let message: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(message)))
    }
}

/// Content-Length (or `l:`) from a header block; 0 when absent (RFC 3261 requires it on
/// streams, but a missing one is read as an empty body rather than an error).
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if !same_header(name.trim(), "Content-Length") {
            continue;
        }
        let raw = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_owned();
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 9 {
            return Err(FrameError::BadContentLength(raw));
        }
        let value: usize = raw
            .parse()
            .map_err(|_| FrameError::BadContentLength(raw.clone()))?;
        if found.is_some_and(|f| f != value) {
            return Err(FrameError::BadContentLength(format!(
                "conflicting values {} and {value}",
                found.unwrap_or_default()
            )));
        }
        found = Some(value);
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: 1\r\nl: 5\r\n\r\nhello";

    fn all(framer: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| framer.next_frame().unwrap()).collect()
    }

    #[test]
    fn byte_by_byte_delivery_yields_one_message() {
        let mut f = Framer::new();
        let mut frames = Vec::new();
        for b in MSG {
            f.push(&[*b]);
            frames.extend(all(&mut f));
        }
        assert_eq!(frames, [Frame::Message(MSG.to_vec())]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn coalesced_messages_and_keepalives_come_out_in_order() {
        let mut f = Framer::new();
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(MSG);
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(b"SIP/2.0 200 OK\r\nCONTENT-LENGTH:0\r\n\r\n\r\n\r\n");
        f.push(&input);
        let frames = all(&mut f);
        assert_eq!(frames.len(), 5, "{frames:?}");
        assert_eq!(frames[0], Frame::Ping);
        assert_eq!(frames[1], Frame::Message(MSG.to_vec()));
        assert_eq!(frames[2], Frame::Pong);
        assert!(matches!(&frames[3], Frame::Message(m) if m.starts_with(b"SIP/2.0 200")));
        assert_eq!(frames[4], Frame::Ping);
    }

    #[test]
    fn a_ping_cut_after_three_bytes_waits_for_the_fourth() {
        let mut f = Framer::new();
        f.push(b"\r\n\r");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Pong));
    }

    #[test]
    fn missing_content_length_means_empty_body() {
        let mut f = Framer::new();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\nOPTIONS");
        assert!(
            matches!(f.next_frame().unwrap(), Some(Frame::Message(m)) if m.ends_with(b"\r\n\r\n"))
        );
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn oversized_or_bad_lengths_are_errors_that_stick() {
        let mut f = Framer::new();
        f.push(&vec![b'a'; MAX_HEADER_BYTES + 1]);
        assert_eq!(f.next_frame(), Err(FrameError::HeaderTooLarge));
        assert_eq!(f.next_frame(), Err(FrameError::HeaderTooLarge));

        let mut f = Framer::new();
        f.push(b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 1048577\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FrameError::BodyTooLarge(1_048_577)));

        for bad in [
            &b"MESSAGE sip:a SIP/2.0\r\nl: x\r\n\r\n"[..],
            b"MESSAGE sip:a SIP/2.0\r\nl: 99999999999999999999\r\n\r\n",
            b"MESSAGE sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
            b"MESSAGE sip:a SIP/2.0\r\nl:\r\n\r\n",
        ] {
            let mut f = Framer::new();
            f.push(bad);
            assert!(matches!(
                f.next_frame(),
                Err(FrameError::BadContentLength(_))
            ));
        }
    }

    #[test]
    fn a_body_at_the_limit_is_accepted() {
        let mut f = Framer::new();
        f.push(format!("MESSAGE sip:a SIP/2.0\r\nl: {MAX_BODY_BYTES}\r\n\r\n").as_bytes());
        f.push(&vec![b'x'; MAX_BODY_BYTES]);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }
}
