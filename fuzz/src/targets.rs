//! Fuzz target bodies: every parser of untrusted bytes in imstls, each with the properties
//! that must hold for any input (beyond "no panic, no hang"). Shared by the libFuzzer binaries
//! in `fuzz/fuzz_targets/` and by the CI smoke run `tests/fuzz_smoke.rs`.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use imstls::_internal_test_exports::sip::{
    parse_one_message, parse_outgoing_message, Frame, SipFramer, StartLine,
};
use imstls::_internal_test_exports::tls::{TlsFlow, TlsProfile};
use imstls::{
    Candidate, FlowId, Identity, KxGroup, Output, TlsVersions, TransportClosure, TrustSource, Ue,
    UeConfig, UeError,
};
use imstls_testkit::pcscf::PcscfCore;
use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
use imstls_testkit::tls::server_config;
use imstls_testkit::{CertKind, TestPki};

const SERVER_NAME: &str = "pcscf.ims.test";
const MAX_HEADER_BLOCK: usize = 64 * 1024;

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| TestPki::generate(SERVER_NAME))
}

fn ue_config() -> UeConfig {
    UeConfig::builder()
        .pcscf(format!("{SERVER_NAME}:5061"))
        .trust_anchors_pem(pki().root_pem())
        .random_seed(1)
        .build()
        .expect("valid configuration")
}

/// SIP stream framing and `send_sip`'s one-message check: byte 0–1 the size limit, byte 2
/// the chunking and whether a pong is awaited, the rest the stream.
pub fn sip_framer(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let max = 1024 + usize::from(u16::from_le_bytes([data[0], data[1]]));
    let flags = data[2];
    let input = &data[3..];
    if let Ok(head) = parse_one_message(input, max) {
        assert_eq!(head.total_len(), input.len());
        assert!(head.total_len() <= max);
    }
    let step = 1 + usize::from(flags % 61);
    let mut framer = SipFramer::new(max);
    let mut taken = 0;
    for chunk in input.chunks(step) {
        framer.push(chunk);
        loop {
            match framer.next_frame(flags & 0x80 != 0) {
                Ok(None) => break,
                Ok(Some(Frame::Message(message))) => {
                    // A framed message is exactly one message, within the limit.
                    let head = parse_one_message(&message, max)
                        .expect("a framed message is one well-formed message");
                    assert_eq!(head.total_len(), message.len());
                    taken += message.len();
                }
                Ok(Some(Frame::Ping)) => taken += 4,
                Ok(Some(Frame::Pong)) => taken += 2,
                Err(_) => return, // the flow is closed: nothing more is read
            }
        }
        // The buffer is bounded: a header block, or a message under the limit, plus a chunk.
        assert!(framer.buffered() <= MAX_HEADER_BLOCK.max(max) + step);
    }
    assert_eq!(
        taken + framer.buffered(),
        input.len(),
        "no byte lost or invented"
    );
}

/// `Ue::send_sip` against a strict RFC 3261 grammar written here from the ABNF of §25.1
/// (module `rfc3261`, sharing no code with `src/sip/mod.rs`): whatever `send_sip` accepts, the
/// grammar reads as exactly one well-formed message, with the method and body length the
/// engine saw (so its REGISTER-first decision is about the message a receiver sees). The
/// engine is idle: the message check runs first and a message that passes is refused only
/// for the state, leaving the engine unchanged. The input is the message itself.
pub fn send_sip(data: &[u8]) {
    thread_local! {
        static IDLE: RefCell<Option<(Ue, Instant)>> = const { RefCell::new(None) };
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let (ue, now) = idle.get_or_insert_with(|| {
            let now = Instant::now();
            (Ue::new(ue_config(), now).expect("engine"), now)
        });
        let accepted = match ue.send_sip(*now, data) {
            Err(UeError::WrongState { .. }) => true,
            Err(UeError::BadMessage(_)) => false,
            other => panic!("an idle engine answered send_sip with {other:?}"),
        };
        if !accepted {
            return;
        }
        let seen = rfc3261::one_message(data).unwrap_or_else(|why| {
            panic!(
                "send_sip accepted what RFC 3261 refuses ({why}): {:?}",
                String::from_utf8_lossy(data)
            )
        });
        let max = ue.config().max_sip_message_size();
        let head = parse_outgoing_message(data, max).expect("what send_sip accepted");
        assert_eq!(head.body_len, seen.body_len, "body length");
        assert_eq!(head.header_len + seen.body_len, data.len());
        match (&head.start, &seen.method) {
            (StartLine::Request { method }, Some(m)) => assert_eq!(method.as_bytes(), &m[..]),
            (StartLine::Response { status }, None) => assert_eq!(Some(*status), seen.status),
            (engine, oracle) => panic!("engine saw {engine:?}, the grammar {oracle:?}"),
        }
    });
}

/// RFC 3261 §25.1 read literally, as a receiver that wants exactly one message would:
///
/// ```text
/// SIP-message    = Request / Response
/// Request-Line   = Method SP Request-URI SP SIP-Version CRLF
/// Status-Line    = SIP-Version SP Status-Code SP Reason-Phrase CRLF
/// message-header = header-name HCOLON header-value CRLF   (no LWS line folding)
/// HCOLON         = *( SP / HTAB ) ":" SWS
/// Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT, exactly once (§18.3)
/// message-body   = *OCTET, exactly Content-Length of them
/// ```
///
/// Header values are checked as `*(TEXT-UTF8char / UTF8-CONT / SP / HTAB)` only (each header's
/// own grammar is not the framing's business). UTF-8 follows RFC 3261's `UTF8-NONASCII`,
/// which is looser than RFC 3629: the engine may refuse more, never less.
pub mod rfc3261 {
    #[derive(Debug)]
    pub struct Seen {
        pub method: Option<Vec<u8>>,
        pub status: Option<u16>,
        pub body_len: usize,
    }

    struct Reader<'a> {
        text: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.get(self.at).copied()
        }

        fn literal(&mut self, expected: &[u8]) -> bool {
            let found = self.text[self.at..].starts_with(expected);
            if found {
                self.at += expected.len();
            }
            found
        }

        fn require(&mut self, expected: &[u8], what: &str) -> Result<(), String> {
            if self.literal(expected) {
                Ok(())
            } else {
                Err(format!("{what} expected at byte {}", self.at))
            }
        }

        /// `1*(...)` of single bytes matching `class`; returns what was read.
        fn many(&mut self, class: impl Fn(u8) -> bool) -> &'a [u8] {
            let from = self.at;
            while self.peek().is_some_and(&class) {
                self.at += 1;
            }
            &self.text[from..self.at]
        }

        /// `escaped = "%" HEXDIG HEXDIG`.
        fn escaped(&mut self) -> bool {
            let hex = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
            let ok = self.peek() == Some(b'%')
                && hex(self.text.get(self.at + 1))
                && hex(self.text.get(self.at + 2));
            if ok {
                self.at += 3;
            }
            ok
        }

        /// `UTF8-NONASCII`: a lead byte %xC0-FD and its 1 to 5 `UTF8-CONT` (%x80-BF).
        fn utf8_nonascii(&mut self) -> bool {
            let continuations = match self.peek() {
                Some(0xc0..=0xdf) => 1,
                Some(0xe0..=0xef) => 2,
                Some(0xf0..=0xf7) => 3,
                Some(0xf8..=0xfb) => 4,
                Some(0xfc..=0xfd) => 5,
                _ => return false,
            };
            let tail = self.text.get(self.at + 1..self.at + 1 + continuations);
            let ok = tail.is_some_and(|t| t.iter().all(|b| (0x80..=0xbf).contains(b)));
            if ok {
                self.at += 1 + continuations;
            }
            ok
        }
    }

    fn alphanum(b: u8) -> bool {
        b.is_ascii_alphanumeric()
    }

    /// `token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")`
    fn token_char(b: u8) -> bool {
        alphanum(b)
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
    }

    /// `reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","`
    fn reserved(b: u8) -> bool {
        matches!(
            b,
            b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
        )
    }

    /// `unreserved = alphanum / mark`, `mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"`
    fn unreserved(b: u8) -> bool {
        alphanum(b)
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
    }

    /// `Request-URI = SIP-URI / SIPS-URI / absoluteURI`, read as `scheme ":" 1*(uric /
    /// "[" / "]")` (every form is a scheme and URI characters; the brackets are an
    /// `IPv6reference`).
    fn request_uri(r: &mut Reader) -> Result<(), String> {
        let scheme = r.many(|b| alphanum(b) || matches!(b, b'+' | b'-' | b'.'));
        if !scheme.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err("Request-URI scheme".into());
        }
        r.require(b":", "':' after the scheme")?;
        let from = r.at;
        loop {
            if r.escaped() {
                continue;
            }
            match r.peek() {
                Some(b) if reserved(b) || unreserved(b) || b == b'[' || b == b']' => r.at += 1,
                _ => break,
            }
        }
        if r.at == from {
            return Err("empty Request-URI".into());
        }
        Ok(())
    }

    /// `Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)`
    fn reason_phrase(r: &mut Reader) {
        loop {
            if r.escaped() || r.utf8_nonascii() {
                continue;
            }
            match r.peek() {
                Some(b)
                    if reserved(b)
                        || unreserved(b)
                        || (0x80..=0xbf).contains(&b)
                        || b == b' '
                        || b == b'\t' =>
                {
                    r.at += 1
                }
                _ => break,
            }
        }
    }

    /// `header-value = *(TEXT-UTF8char / UTF8-CONT / LWS)` without folding;
    /// `TEXT-UTF8char = %x21-7E / UTF8-NONASCII`.
    fn header_value<'a>(r: &mut Reader<'a>) -> &'a [u8] {
        let from = r.at;
        loop {
            if r.utf8_nonascii() {
                continue;
            }
            match r.peek() {
                Some(0x21..=0x7e | 0x80..=0xbf | b' ' | b'\t') => r.at += 1,
                _ => break,
            }
        }
        &r.text[from..r.at]
    }

    pub fn one_message(text: &[u8]) -> Result<Seen, String> {
        let mut r = Reader { text, at: 0 };
        let mut seen = Seen {
            method: None,
            status: None,
            body_len: 0,
        };
        if r.literal(b"SIP/2.0 ") {
            let code = r.many(|b| b.is_ascii_digit());
            if code.len() != 3 {
                return Err("Status-Code is 3DIGIT".into());
            }
            seen.status = std::str::from_utf8(code).ok().and_then(|c| c.parse().ok());
            r.require(b" ", "SP after the Status-Code")?;
            reason_phrase(&mut r);
        } else {
            let method = r.many(token_char);
            if method.is_empty() {
                return Err("Method".into());
            }
            seen.method = Some(method.to_vec());
            r.require(b" ", "SP after the Method")?;
            request_uri(&mut r)?;
            r.require(b" SIP/2.0", "SP SIP-Version")?;
        }
        r.require(b"\r\n", "CRLF after the start line")?;
        let mut content_lengths = Vec::new();
        while !r.literal(b"\r\n") {
            let name = r.many(token_char);
            if name.is_empty() {
                return Err(format!("header-name expected at byte {}", r.at));
            }
            r.many(|b| b == b' ' || b == b'\t');
            r.require(b":", "HCOLON")?;
            r.many(|b| b == b' ' || b == b'\t');
            let value = header_value(&mut r);
            r.require(b"\r\n", "CRLF after a header")?;
            if name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l") {
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return Err("Content-Length is 1*DIGIT".into());
                }
                content_lengths.push(value.to_vec());
            }
        }
        let [length] = &content_lengths[..] else {
            return Err(format!("{} Content-Length headers", content_lengths.len()));
        };
        let length: usize = std::str::from_utf8(length)
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or("Content-Length out of range")?;
        let body = text.len() - r.at;
        if body != length {
            return Err(format!("Content-Length {length}, {body} body bytes"));
        }
        seen.body_len = length;
        Ok(seen)
    }
}

/// The TLS input path during the handshake: whatever the "P-CSCF" answers to a real
/// ClientHello. Byte 0 sets the chunking. A failure is final and its alert is queued.
pub fn tls_handshake(data: &[u8]) {
    thread_local! {
        static PROFILE: TlsProfile = TlsProfile::new(&ue_config(), Instant::now()).expect("profile");
    }
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    PROFILE.with(|profile| {
        let candidate: Candidate = format!("{SERVER_NAME}:5061").parse().expect("candidate");
        let mut flow = TlsFlow::connect(profile, &candidate).expect("connect");
        assert!(flow.take_transmit().is_some(), "a ClientHello");
        let step = 1 + usize::from(first);
        for chunk in rest.chunks(step) {
            match flow.receive(chunk) {
                Ok(()) => {
                    let _ = flow.take_transmit();
                    let _ = flow.take_plaintext();
                }
                Err(failure) => {
                    assert!(flow.is_closed());
                    if failure.alert_sent.is_some() {
                        assert!(flow.take_transmit().is_some(), "the alert is queued");
                    }
                    let again = flow.receive(b"\x16\x03\x03\x00\x00").expect_err("final");
                    assert_eq!(again.kind, failure.kind);
                    return;
                }
            }
        }
        let _ = flow.receive_eof();
        let _ = flow.details();
    });
}

struct Session {
    ue: Ue,
    core: Option<PcscfCore>,
    server: Arc<rustls::ServerConfig>,
    registrar: SharedRegistrar,
    now: Instant,
}

impl Session {
    /// Runs every engine output (peer bytes both ways) until nothing moves.
    fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            loop {
                let output = self.ue.poll_output();
                self.ue.check_invariants().expect("the engine's invariants");
                match output {
                    Output::Timeout(_) => break,
                    Output::Connect { flow, .. } => {
                        moved = true;
                        self.core = Some(
                            PcscfCore::new(self.server.clone(), self.registrar.clone(), flow.0)
                                .expect("server"),
                        );
                        let _ = self.ue.connected(self.now, flow, None, None);
                    }
                    Output::Transmit { data, .. } => {
                        moved = true;
                        if let Some(core) = self.core.as_mut() {
                            core.receive(&data);
                        }
                    }
                    Output::Close { .. } => {
                        moved = true;
                        self.core = None;
                    }
                    Output::Event(_) => moved = true,
                    _ => moved = true,
                }
            }
            if let (Some(core), Some(flow)) = (self.core.as_mut(), self.ue.current_flow()) {
                let bytes = core.take_output();
                if !bytes.is_empty() {
                    moved = true;
                    let _ = self.ue.receive(self.now, flow, &bytes);
                }
            }
            if !moved {
                return;
            }
        }
    }
}

const REGISTER: &[u8] = b"REGISTER sip:ims.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKf\r\nFrom: <sip:alice@ims.test>;tag=1\r\nTo: <sip:alice@ims.test>\r\nCall-ID: fuzz\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1;transport=tls>\r\nContent-Length: 0\r\n\r\n";

/// The engine's TLS input path after a real handshake with the simulator's rustls server:
/// the input is a list of operations (P-CSCF plaintext encrypted for real, raw bytes into
/// `Ue::receive`, stack reports, time, transport ends). The invariants hold after every
/// output, nothing panics, nothing loops.
/// The flow a REGISTER answer is reported for: usually the current one, sometimes an older
/// one (a stale report), as the last input byte decides.
fn report_flow(current: Option<FlowId>, arg: &[u8]) -> FlowId {
    let current = current.map_or(0, |f| f.0);
    match arg.last() {
        Some(back) if back % 4 == 0 => FlowId(current.saturating_sub(u64::from(back / 4))),
        _ => FlowId(current),
    }
}

pub fn engine(data: &[u8]) {
    thread_local! {
        static SERVER: RefCell<Option<Arc<rustls::ServerConfig>>> = const { RefCell::new(None) };
    }
    let server = SERVER.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| {
                server_config(
                    pki(),
                    CertKind::Good,
                    imstls_testkit::TlsVersions::Both,
                    false,
                )
                .expect("server config")
            })
            .clone()
    });
    // A fresh session cache per input, so that no input depends on the ones before it and
    // every finding replays on its own.
    let mut fresh = (*server).clone();
    fresh.session_storage = rustls::server::ServerSessionMemoryCache::new(64);
    let server = Arc::new(fresh);
    let now = Instant::now();
    let mut s = Session {
        ue: Ue::new(ue_config(), now).expect("engine"),
        core: None,
        server,
        registrar: SharedRegistrar::new(RegistrarConfig::default()),
        now,
    };
    let identity = || Identity::new("alice@ims.test", &["sip:alice@ims.test"]).expect("id");
    s.ue.start_registration(now, identity()).expect("start");
    s.pump();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len().saturating_sub(1));
        let arg = tail.get(1..1 + len).unwrap_or_default();
        rest = tail.get(1 + len..).unwrap_or_default();
        let flow = s.ue.current_flow();
        match op % 12 {
            0 => {
                // The P-CSCF sends this plaintext, properly encrypted.
                if let Some(core) = s.core.as_mut() {
                    core.send_request(arg);
                }
            }
            1 => {
                if let Some(flow) = flow {
                    let _ = s.ue.receive(s.now, flow, arg);
                }
            }
            2 => {
                let _ = s.ue.send_sip(s.now, REGISTER);
            }
            3 => {
                let _ = s.ue.registration_challenged(
                    s.now,
                    report_flow(flow, arg),
                    arg.first() == Some(&1),
                );
            }
            4 => {
                let secs = u64::from(arg.first().copied().unwrap_or(1)) * 60;
                let _ = s.ue.registration_succeeded(
                    s.now,
                    report_flow(flow, arg),
                    Duration::from_secs(secs.max(1)),
                    None,
                );
            }
            5 => {
                let status = 300 + u16::from(arg.first().copied().unwrap_or(103)) % 400;
                let _ =
                    s.ue.registration_failed(s.now, report_flow(flow, arg), status, None);
            }
            6 => {
                let secs = u64::from(u16::from_le_bytes([
                    arg.first().copied().unwrap_or(0),
                    arg.get(1).copied().unwrap_or(0),
                ]));
                s.now += Duration::from_secs(secs);
                s.ue.handle_timeout(s.now);
            }
            7 => {
                if let Some(flow) = flow {
                    let closure = match arg.first() {
                        Some(0) => TransportClosure::Reset,
                        Some(1) => TransportClosure::Error("fuzz".into()),
                        _ => TransportClosure::Eof,
                    };
                    s.core = None;
                    let _ = s.ue.transport_closed(s.now, flow, closure);
                }
            }
            8 => {
                if let Some(core) = s.core.as_mut() {
                    match arg.first().copied().unwrap_or(0) % 3 {
                        0 => core.send_ping(),
                        1 => core.close_notify(),
                        _ => core.send_key_update(),
                    }
                }
            }
            9 => {
                let _ = s.ue.start_registration(s.now, identity());
            }
            10 => {
                let _ = s.ue.network_changed(s.now);
            }
            _ => {
                let _ = s.ue.rekey(s.now);
                let _ = s.ue.deregister(s.now);
            }
        }
        s.pump();
    }
}

/// Configuration parsing: the fields an integrator reads from provisioning (PEM trust
/// anchors and CRLs, candidates, the server name, TLS version and group strings, SPKI pins),
/// separated by 0xff bytes. Byte 0 picks PEM or DER.
pub fn config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fields: Vec<&[u8]> = rest.split(|b| *b == 0xff).collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let text = |i: usize| String::from_utf8_lossy(field(i)).into_owned();
    let _ = text(2).parse::<Candidate>();
    let _ = text(4).parse::<TlsVersions>();
    let _ = text(5).parse::<KxGroup>();
    let mut builder = UeConfig::builder().pcscf(text(2));
    if !field(3).is_empty() {
        builder = builder.server_name(text(3));
    }
    let source = |bytes: &[u8]| {
        if mode & 1 == 0 {
            TrustSource::Pem(bytes.to_vec())
        } else {
            TrustSource::Der(bytes.to_vec())
        }
    };
    if !field(0).is_empty() {
        builder = builder.trust_anchors(source(field(0)));
    }
    if !field(1).is_empty() {
        builder = builder.crls(source(field(1)));
    }
    if let Ok(versions) = text(4).parse::<TlsVersions>() {
        builder = builder.tls_versions(versions);
    }
    if let Ok(group) = text(5).parse::<KxGroup>() {
        builder = builder.kx_groups(&[group, KxGroup::P256]);
    }
    if !field(6).is_empty() {
        builder = builder.spki_pin(text(6));
    }
    if let Ok(config) = builder.build() {
        // A configuration that builds must make an engine.
        let _ = Ue::new(config, Instant::now()).expect("a built configuration works");
    }
}

/// The diagnostic certificate reader (the `TlsEstablished` summary, the names listed in a name
/// mismatch); no accept/refuse decision reads it (the `cert_identity` target covers those).
pub fn x509(data: &[u8]) {
    let Ok(info) = imstls::_internal_test_exports::tls::x509::parse_certificate(data) else {
        return;
    };
    assert!(info.spki.len() <= data.len());
    let _ = imstls::_internal_test_exports::tls::x509::format_utc(info.not_before);
    let _ = imstls::_internal_test_exports::tls::x509::format_utc(info.not_after);
}

/// "Is this certificate accepted for this name", on validly signed chains: the input chooses
/// the leaf's SANs (DNS, URI, IP: any ASCII) and the intermediate's DNS name constraints; a
/// real rustls server presents the chain to a real imstls handshake. Accepted ⇒ an oracle that
/// shares no code with imstls agrees (see [`cert_identity_oracle`]). Every URI SAN also goes
/// through `imstls::_internal_test_exports::sip::uri::parse` with its own properties.
///
/// Input: byte 0 = flags (bit 0 wildcard opt-in, bit 1 constrained intermediate, bits 2–3 the
/// expected name, bit 4 TLS 1.2 instead of 1.3), then entries separated by 0xff, each a kind
/// byte and its text: 0 DNS SAN, 1 URI SAN, 2 IP SAN (4 or 16 bytes), 3 permitted DNS subtree,
/// 4 excluded DNS subtree (for 3 and 4 the first text byte picks from [`SUBTREES`]).
pub fn cert_identity(data: &[u8]) {
    use imstls_testkit::chains::{ChainFactory, DnsConstraints, LeafNames};
    use imstls_testkit::tls::{server_config_for, TlsVersions as ServerVersions};

    thread_local! {
        static FACTORY: ChainFactory = ChainFactory::new().expect("chain keys");
        static PROFILES: RefCell<Vec<Option<TlsProfile>>> = RefCell::new((0..8).map(|_| None).collect());
    }
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let allow_wildcards = flags & 1 != 0;
    let constrained = flags & 2 != 0;
    let expected = EXPECTED_NAMES[usize::from(flags >> 2) & 3];
    let server_versions = if flags & 0x10 != 0 {
        ServerVersions::Tls12Only
    } else {
        ServerVersions::Tls13Only
    };

    let mut names = LeafNames::default();
    let mut constraints = DnsConstraints::default();
    for entry in rest.split(|&b| b == 0xff).take(8) {
        let Some((&kind, text)) = entry.split_first() else {
            continue;
        };
        let text = &text[..text.len().min(80)];
        let ascii = || String::from_utf8_lossy(text).replace(|c: char| !c.is_ascii(), "?");
        match kind % 5 {
            0 => names.dns.push(ascii()),
            1 => names.uris.push(ascii()),
            2 => match text.len() {
                4 => names
                    .ips
                    .push(<[u8; 4]>::try_from(text).expect("4 bytes").into()),
                16 => names
                    .ips
                    .push(<[u8; 16]>::try_from(text).expect("16 bytes").into()),
                _ => {}
            },
            3 => constraints.permitted_dns.push(
                SUBTREES[usize::from(text.first().copied().unwrap_or(0)) % SUBTREES.len()].into(),
            ),
            _ => constraints.excluded_dns.push(
                SUBTREES[usize::from(text.first().copied().unwrap_or(0)) % SUBTREES.len()].into(),
            ),
        }
    }
    for uri in &names.uris {
        sip_uri_properties(uri);
    }
    let constraints = constrained.then_some(constraints);

    let Ok(identity) = FACTORY.with(|f| f.chain(constraints.as_ref(), &names)) else {
        return; // rcgen refuses to encode it: no chain to present
    };
    let Ok(server) = server_config_for(&identity, server_versions) else {
        return;
    };
    let slot = usize::from(flags & 1) * 4 + (usize::from(flags >> 2) & 3);
    let accepted = PROFILES.with(|profiles| {
        let mut profiles = profiles.borrow_mut();
        let profile = profiles[slot].get_or_insert_with(|| {
            let root = FACTORY.with(|f| f.root_der());
            let config = UeConfig::builder()
                .pcscf(format!("{expected}:5061"))
                .trust_anchors(TrustSource::Der(root))
                .allow_wildcard_certificates(allow_wildcards)
                .random_seed(1)
                .build()
                .expect("valid configuration");
            TlsProfile::new(&config, Instant::now()).expect("profile")
        });
        let candidate: Candidate = format!("{expected}:5061").parse().expect("candidate");
        let mut flow = TlsFlow::connect(profile, &candidate).expect("connect");
        let mut core = PcscfCore::new(server, SharedRegistrar::new(RegistrarConfig::default()), 1)
            .expect("server");
        core.receive(&flow.take_transmit().expect("a ClientHello"));
        for _ in 0..8 {
            let reply = core.take_output();
            if reply.is_empty() {
                break;
            }
            if flow.receive(&reply).is_err() {
                assert!(flow.is_closed(), "a refusal closes the flow");
                return false;
            }
            if let Some(out) = flow.take_transmit() {
                core.receive(&out);
            }
        }
        flow.is_established()
    });
    if accepted {
        if let Err(why) =
            cert_identity_oracle(expected, &names, constraints.as_ref(), allow_wildcards)
        {
            panic!("imstls accepted {names:?} under {constraints:?} for {expected}: {why}");
        }
    }
}

/// The expected names `cert_identity` checks: in and out of the `SUBTREES`, and an IP.
pub const EXPECTED_NAMES: [&str; 4] = [
    "pcscf.corp.example",
    "pcscf.ims.victim.net",
    "127.0.0.1",
    "a.b.corp.example",
];

/// The DNS subtrees a fuzzed name constraint may use.
pub const SUBTREES: [&str; 6] = [
    ".corp.example",
    "corp.example",
    ".example",
    "ims.victim.net",
    ".victim.net",
    "b.corp.example",
];

fn lower_no_dot(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// RFC 5280 §4.2.1.10 for DNS names as a plain reading: `.x` covers proper subdomains of x;
/// `x` covers x and its subdomains.
fn within_subtree(name: &str, subtree: &str) -> bool {
    let name = lower_no_dot(name);
    let subtree = subtree.to_ascii_lowercase();
    match subtree.strip_prefix('.') {
        Some(base) => name.ends_with(&format!(".{base}")),
        None => name == subtree || name.ends_with(&format!(".{subtree}")),
    }
}

/// What must hold when imstls accepted a certificate naming `names` for `expected`; written
/// from the rule in docs/CONFORMANCE.md, sharing no code with imstls.
pub fn cert_identity_oracle(
    expected: &str,
    names: &imstls_testkit::chains::LeafNames,
    constraints: Option<&imstls_testkit::chains::DnsConstraints>,
    allow_wildcards: bool,
) -> Result<(), String> {
    if let Ok(ip) = expected.parse::<std::net::IpAddr>() {
        return if names.ips.contains(&ip) {
            Ok(())
        } else {
            Err("no equal iPAddress SAN".into())
        };
    }
    let want = lower_no_dot(expected);
    let exact = names.dns.iter().any(|d| lower_no_dot(d) == want);
    let by_wildcard = names.dns.iter().any(|d| {
        let d = lower_no_dot(d);
        match (d.strip_prefix("*."), want.split_once('.')) {
            (Some(base), Some((_, parent))) => base == parent && base.contains('.'),
            _ => false,
        }
    });
    if !(exact || (allow_wildcards && by_wildcard)) {
        return Err("no exact dNSName (nor an allowed wildcard) names it".into());
    }
    if let Some(c) = constraints {
        if !c.permitted_dns.is_empty() && !c.permitted_dns.iter().any(|s| within_subtree(&want, s))
        {
            return Err("outside every permitted subtree".into());
        }
        if c.excluded_dns.iter().any(|s| within_subtree(&want, s)) {
            return Err("inside an excluded subtree".into());
        }
    }
    // Domain sip: URIs: scheme sip, no '@' anywhere (RFC 5922 §7.1 "there is no '@'").
    let domain_hosts: Vec<String> = names
        .uris
        .iter()
        .filter_map(|u| {
            let (scheme, rest) = u.split_once(':')?;
            (scheme.eq_ignore_ascii_case("sip") && !u.contains('@')).then(|| {
                let end = rest.find([':', ';', '?']).unwrap_or(rest.len());
                lower_no_dot(&rest[..end])
            })
        })
        .collect();
    if !domain_hosts.is_empty() && !domain_hosts.contains(&want) {
        return Err(format!(
            "sip: URI identities {domain_hosts:?} do not include it"
        ));
    }
    Ok(())
}

/// The strict `sip:` URI parser on its own, at full speed (`cert_identity` reaches it only
/// through a handshake): any UTF-8 text, with `sip:` put in front half of the time.
pub fn sip_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    sip_uri_properties(text);
    sip_uri_properties(&format!("sip:{text}"));
}

/// Properties of `imstls::_internal_test_exports::sip::uri::parse` on any text.
fn sip_uri_properties(uri: &str) {
    use imstls::_internal_test_exports::sip::uri::{SipHost, SipUriError};
    match imstls::_internal_test_exports::sip::uri::parse(uri) {
        Ok(parsed) => {
            let rest = &uri[4..];
            assert!(uri[..4].eq_ignore_ascii_case("sip:"), "{uri:?}");
            // '@' occurs nowhere in a valid SIP-URI but after the userinfo.
            assert_eq!(parsed.userinfo.is_some(), uri.contains('@'), "{uri:?}");
            assert_eq!(
                uri.matches('@').count(),
                usize::from(parsed.userinfo.is_some())
            );
            let after_userinfo = match parsed.userinfo {
                Some(u) => &rest[u.len() + 1..],
                None => rest,
            };
            if let SipHost::Domain(d) = &parsed.host {
                assert!(!d.is_empty() && !d.ends_with('.'), "{uri:?}");
                assert!(
                    d.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'-'),
                    "{uri:?}"
                );
                assert!(
                    after_userinfo.to_ascii_lowercase().starts_with(d.as_str()),
                    "{uri:?}"
                );
            }
            assert!(uri.ends_with(parsed.headers.unwrap_or("")));
        }
        Err(SipUriError::NotSip) => {
            assert!(!uri
                .split_once(':')
                .is_some_and(|(s, _)| s.eq_ignore_ascii_case("sip")));
        }
        Err(SipUriError::Invalid(_)) => {}
    }
}

/// The C ABI fed untrusted bytes as a C caller would pass them (body in `src/ffi/fuzz.rs`, so
/// that every pointer handed to an export is built inside the crate's FFI layer).
pub fn ffi(data: &[u8]) {
    imstls::_internal_test_exports::ffi::ffi_bytes(data);
}

/// The managed driver's C API as a program of calls: sockets handed in with `adopt_fd`
/// (loopback TCP pairs, a datagram socket, -1, out-of-range ownership codes), stepping with
/// `run(0)` and `process`, `send_sip`, peer bytes and closes, events read through undersized
/// buffers, stop, wake and free mid-flow. No `IMSTLS_PANIC`/`IMSTLS_POISONED`, no descriptor
/// leaked (`/proc/self/fd` before and after), nothing blocks (body in
/// `src/ffi/fuzz_driver.rs`).
pub fn driver_api(data: &[u8]) {
    imstls::_internal_test_exports::ffi::driver_api_bytes(data, count_wake);
}

static WAKES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The programs' wake-up callback: counts, touches nothing else.
extern "C" fn count_wake(_userdata: *mut std::ffi::c_void) {
    WAKES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
