//! Fuzz target bodies: every parser of untrusted bytes in imstls, each with the properties
//! that must hold for any input (beyond "no panic, no hang"). Shared by the libFuzzer binaries
//! in `fuzz/fuzz_targets/` and by the CI smoke run `tests/fuzz_smoke.rs`.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use imstls::sip::{parse_one_message, Frame, SipFramer};
use imstls::{
    Candidate, Identity, KxGroup, Output, TlsFlow, TlsProfile, TlsVersions, TransportClosure,
    TrustSource, Ue, UeConfig,
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
                self.ue.check_invariants().expect("DESIGN §4 invariants");
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
                let _ = s.ue.registration_challenged(s.now, arg.first() == Some(&1));
            }
            4 => {
                let secs = u64::from(arg.first().copied().unwrap_or(1)) * 60;
                let _ =
                    s.ue.registration_succeeded(s.now, Duration::from_secs(secs.max(1)), None);
            }
            5 => {
                let status = 300 + u16::from(arg.first().copied().unwrap_or(103)) % 400;
                let _ = s.ue.registration_failed(s.now, status, None);
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
    let Ok(info) = imstls::x509::parse_certificate(data) else {
        return;
    };
    assert!(info.spki.len() <= data.len());
    let _ = imstls::x509::format_utc(info.not_before);
    let _ = imstls::x509::format_utc(info.not_after);
}

/// The C ABI fed untrusted bytes as a C caller would pass them (body in `src/ffi/fuzz.rs`, so
/// that every pointer handed to an export is built inside the crate's FFI layer).
pub fn ffi(data: &[u8]) {
    imstls::__fuzz_ffi_bytes(data);
}
