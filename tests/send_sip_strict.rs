//! Issue 11 item 5: what `send_sip` lets onto the wire is strict RFC 3261 (CRLF lines, a valid
//! start line, `name: value` header lines, one Content-Length matching the body, one message),
//! so that no P-CSCF, however lenient its parser, can read a second request in a REGISTER
//! (TS 33.203 O.4.2: REGISTER first on every flow).

mod support;

use imstls::FramingError;
use imstls::{UeError, UeState};
use imstls_testkit::observation::Observation;
use support::{base_config, pki, StackMode, World};

const INVITE: &[u8] = b"INVITE sip:bob@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bKsmuggled\r\nMax-Forwards: 70\r\nFrom: <sip:alice@ims.test>;tag=9\r\nTo: <sip:bob@ims.test>\r\nCall-ID: smuggled\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

/// A world whose flow is up and waits for the stack's first REGISTER.
fn awaiting_register() -> World {
    let mut w = World::new(base_config(&pki()));
    w.stack_mode = StackMode::Silent;
    w.start_registration();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    w
}

fn register(w: &mut World) -> Vec<u8> {
    w.ua.new_registration();
    w.ua.next_register()
}

/// `message` with its first `from` replaced by `to`.
fn replace(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = message
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} in {:?}", String::from_utf8_lossy(message)));
    [&message[..at], to.as_bytes(), &message[at + from.len()..]].concat()
}

/// The reviewer's reproduction: the REGISTER's head ends in a bare LF and an INVITE follows.
/// A P-CSCF that accepts LF line endings would read an INVITE on an unregistered flow.
#[test]
fn a_bare_lf_cannot_smuggle_an_invite_behind_a_register() {
    let mut w = awaiting_register();
    let valid = register(&mut w);
    let head = &valid[..valid.len() - 2]; // ends "Content-Length: 0\r\n"
    let smuggle = [head, b"\n", INVITE].concat();
    let result = w.ue.send_sip(w.now, &smuggle);
    assert!(
        matches!(result, Err(UeError::BadMessage(_))),
        "the smuggling REGISTER was accepted: {result:?}"
    );
    w.pump();
    assert_eq!(w.state(), UeState::AwaitingRegister);
    let seen = w.peer().observations().to_vec();
    assert!(
        !seen.iter().any(|o| matches!(
            o,
            Observation::RegisterSeen { .. } | Observation::RequestSeen { .. }
        )),
        "nothing reached the P-CSCF: {seen:?}"
    );
    // The same REGISTER, well formed, still goes.
    w.ue.send_sip(w.now, &valid).unwrap();
    assert_eq!(w.state(), UeState::Registering);
}

/// Every way out of the strict grammar, each with its specific error.
#[test]
fn send_sip_refuses_every_message_outside_the_strict_grammar() {
    let mut w = awaiting_register();
    let valid = register(&mut w);
    let with_body = replace(&valid, "Content-Length: 0\r\n", "Content-Length: 5\r\n");
    let with_body = [&with_body[..], b"hello"].concat();
    let head_len = valid.len();
    let cases: Vec<(&str, Vec<u8>, FramingError)> = vec![
        (
            "bare LF ending the head, INVITE appended",
            [&valid[..head_len - 2], b"\n", INVITE].concat(),
            FramingError::BareLineFeed {
                offset: head_len - 2,
            },
        ),
        (
            "bare LF inside the head",
            replace(&valid, "Max-Forwards: 70\r\n", "Max-Forwards: 70\n"),
            FramingError::BareLineFeed {
                offset: find(&valid, "Max-Forwards: 70\r\n") + 16,
            },
        ),
        (
            "bare CR inside a header value",
            replace(&valid, "Max-Forwards: 70\r\n", "Max-Forwards: 70\rX: 1\r\n"),
            FramingError::BareCarriageReturn {
                offset: find(&valid, "Max-Forwards: 70\r\n") + 16,
            },
        ),
        (
            "LF-only message",
            valid
                .iter()
                .copied()
                .filter(|b| *b != b'\r')
                .collect::<Vec<u8>>(),
            FramingError::BareLineFeed {
                offset: find(&valid, "\r\n"),
            },
        ),
        (
            "a second message after the body",
            [&valid[..], INVITE].concat(),
            FramingError::ContentLengthMismatch {
                declared: 0,
                actual: INVITE.len(),
            },
        ),
        (
            "a colon-less line (a request line among the headers)",
            replace(
                &valid,
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nINVITE sip:bob@ims.test SIP/2.0\r\n",
            ),
            FramingError::BadHeaderLine { line: 4 },
        ),
        (
            "an empty header name",
            replace(
                &valid,
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\n: x\r\n",
            ),
            FramingError::BadHeaderLine { line: 4 },
        ),
        (
            "a header name with a space in it",
            replace(&valid, "Max-Forwards: 70\r\n", "Max Forwards: 70\r\n"),
            FramingError::BadHeaderLine { line: 3 },
        ),
        (
            "a whitespace-only header line",
            replace(&valid, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n \r\n"),
            FramingError::FoldedHeaderLine { line: 4 },
        ),
        (
            "an obsolete folded header line",
            replace(&valid, "Max-Forwards: 70\r\n", "Max-Forwards:\r\n 70\r\n"),
            FramingError::FoldedHeaderLine { line: 4 },
        ),
        (
            "Content-Length smaller than the body",
            [&valid[..], b"abc"].concat(),
            FramingError::ContentLengthMismatch {
                declared: 0,
                actual: 3,
            },
        ),
        (
            "Content-Length larger than the body",
            with_body[..with_body.len() - 1].to_vec(),
            FramingError::ContentLengthMismatch {
                declared: 5,
                actual: 4,
            },
        ),
        (
            "two equal Content-Length headers",
            replace(
                &valid,
                "Content-Length: 0\r\n",
                "Content-Length: 0\r\nl: 0\r\n",
            ),
            FramingError::DuplicateContentLength,
        ),
        (
            "two different Content-Length headers",
            replace(
                &valid,
                "Content-Length: 0\r\n",
                "l: 3\r\nContent-Length: 0\r\n",
            ),
            FramingError::DuplicateContentLength,
        ),
        (
            "no Content-Length",
            replace(&valid, "Content-Length: 0\r\n", ""),
            FramingError::MissingContentLength,
        ),
        (
            "Content-Length with trailing text",
            replace(&valid, "Content-Length: 0\r\n", "Content-Length: 0 x\r\n"),
            FramingError::BadContentLength,
        ),
        (
            "a control character in a header",
            replace(&valid, "Max-Forwards: 70\r\n", "Max-Forwards: 7\x010\r\n"),
            FramingError::BadHeaderBytes,
        ),
        (
            "a lower-case SIP version",
            replace(&valid, " SIP/2.0\r\n", " sip/2.0\r\n"),
            FramingError::BadStartLine,
        ),
        (
            "two spaces in the request line",
            replace(&valid, "REGISTER ", "REGISTER  "),
            FramingError::BadStartLine,
        ),
        (
            "a Request-URI without a scheme",
            replace(&valid, "REGISTER sip:", "REGISTER "),
            FramingError::BadStartLine,
        ),
        (
            "a Request-URI with a quote in it",
            replace(&valid, "REGISTER sip:", "REGISTER sip:\""),
            FramingError::BadStartLine,
        ),
        (
            "a status line with no reason-phrase separator",
            b"SIP/2.0 200\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n".to_vec(),
            FramingError::BadStartLine,
        ),
        (
            "a reason phrase with a bad escape",
            b"SIP/2.0 200 O%K\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n".to_vec(),
            FramingError::BadStartLine,
        ),
        (
            "an empty line before the request line",
            [b"\r\n", &valid[..]].concat(),
            FramingError::BadStartLine,
        ),
        (
            "no empty line ending the head",
            valid[..head_len - 2].to_vec(),
            FramingError::UnterminatedHead,
        ),
        (
            "a head cut inside its CRLF",
            valid[..head_len - 1].to_vec(),
            FramingError::UnterminatedHead,
        ),
    ];
    let mut accepted = Vec::new();
    for (name, bytes, expected) in &cases {
        match w.ue.send_sip(w.now, bytes) {
            Err(UeError::BadMessage(got)) if got == *expected => {}
            other => accepted.push(format!("{name}: {other:?} (expected {expected:?})")),
        }
        if w.state() != UeState::AwaitingRegister {
            w = awaiting_register(); // it went out: start again for the next case
        }
    }
    assert!(
        accepted.is_empty(),
        "{} of {} not refused as expected:\n{}",
        accepted.len(),
        cases.len(),
        accepted.join("\n")
    );
}

fn find(message: &[u8], what: &str) -> usize {
    message
        .windows(what.len())
        .position(|w| w == what.as_bytes())
        .unwrap()
}

/// What SIP stacks really send stays accepted: compact forms, bodies (with any bytes in
/// them), IPv6 references, several Via rows, UTF-8 display names, whitespace around the
/// colon, empty values, responses.
#[test]
fn messages_real_stacks_send_are_accepted() {
    let mut w = World::new(base_config(&pki()));
    w.register();
    let ua_message =
        w.ua.request("MESSAGE", "sip:bob@ims.test", b"hi\r\nthere\n");
    let ua_options = w.ua.request("OPTIONS", "sip:bob@ims.test", b"");
    let mut sdp_invite = b"INVITE sip:bob@[2001:db8::1]:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS [2001:db8::2]:40000;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/TLS 10.0.0.1;branch=z9hG4bK2\r\nv: SIP/2.0/TLS 10.0.0.2;branch=z9hG4bK3\r\nMax-Forwards: 70\r\nf: \"Al\xc3\xafce\" <sip:alice@ims.test>;tag=1\r\nt: <sip:bob@ims.test>\r\ni: c1@[2001:db8::2]\r\nCSeq: 1 INVITE\r\nm: <sip:alice@[2001:db8::2]:40000;transport=tls>\r\nSubject:\r\nX-Tabs\t:\tyes\r\nc: application/sdp\r\nl: ".to_vec();
    let sdp = b"v=0\r\no=- 1 1 IN IP6 2001:db8::2\r\ns=-\r\nc=IN IP6 2001:db8::2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    sdp_invite.extend_from_slice(format!("{}\r\n\r\n", sdp.len()).as_bytes());
    sdp_invite.extend_from_slice(sdp);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("testkit UA MESSAGE with a body", ua_message),
        ("testkit UA OPTIONS", ua_options),
        ("INVITE with IPv6, compact headers and SDP", sdp_invite),
        (
            "lower-case content-length, no space after the colon",
            b"MESSAGE sip:bob@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK4\r\nCSeq: 2 MESSAGE\r\ncontent-length:3\r\n\r\nabc".to_vec(),
        ),
        (
            "a response with a multi-word reason phrase",
            b"SIP/2.0 480 Temporarily Unavailable\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bK5\r\nCSeq: 3 MESSAGE\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "a response with an empty reason phrase",
            b"SIP/2.0 200 \r\nCSeq: 4 MESSAGE\r\nContent-Length:  0\r\n\r\n".to_vec(),
        ),
        (
            "a tel: Request-URI and an escaped user part in To",
            b"MESSAGE tel:+1-555-0100;phone-context=ims.test SIP/2.0\r\nTo: <sip:a%20b@ims.test>\r\nCSeq: 6 MESSAGE\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "reason phrases with a slash, an escape and UTF-8",
            b"SIP/2.0 481 Call/Transaction Does Not Exist%21 \xc3\xa9t\xc3\xa9\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "a body holding bare CR, LF and NUL bytes",
            b"MESSAGE sip:bob@ims.test SIP/2.0\r\nCSeq: 5 MESSAGE\r\nContent-Type: application/octet-stream\r\nContent-Length: 6\r\n\r\n\r\n\n\0\r\x01".to_vec(),
        ),
    ];
    let mut refused = Vec::new();
    for (name, bytes) in &cases {
        if let Err(e) = w.ue.send_sip(w.now, bytes) {
            refused.push(format!("{name}: {e}"));
        }
    }
    assert!(refused.is_empty(), "refused: {refused:#?}");
    w.pump();
    assert_eq!(w.state(), UeState::Registered);
}
