//! Secrets in memory: what the engine held of identities, Digest nonces and SIP plaintext is
//! wiped before its memory is given back.
//!
//! How: this test binary's global allocator wraps the system one and, while the test is
//! inside an engine call (a thread-local scope set around every `Ue` call, the drop of every
//! event the engine handed out, and the drop of the engine itself), scans every block being
//! freed — and the old block of every reallocation, which it always moves — for marker
//! secrets. A hit records a backtrace, classified afterwards by the innermost frame that
//! belongs to rustls, to imstls or to the testkit.
//!
//! What it proves: no block the engine (`imstls::`) frees or reallocates still holds the
//! IMPI/IMPU, the password or a Digest nonce, across a challenged registration, a large
//! terminating request arriving in many records, a supersede with half a message buffered,
//! a rejected registration and the engine's drop. The password never even reaches the engine
//! (the stack computes the Digest response).
//!
//! What it does not: rustls's own buffers (its received-plaintext chunks and its record
//! buffers) are freed without zeroizing; those hits are counted and printed, not failed on
//! (docs/ROBUSTNESS.md). Memory that was never freed is not scanned.
// The global allocator below (test code, not the library): `GlobalAlloc` is an unsafe trait
// whose methods forward the caller's contract to `System` as they stand.
#![allow(unsafe_code, unsafe_op_in_unsafe_fn)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imstls::{Event, FlowId, Output, Ue, UeConfig, UeState};
use imstls_testkit::pcscf::PcscfCore;
use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::tls::{server_config, TlsVersions};
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::{CertKind, DEFAULT_IMPI, DEFAULT_PASSWORD};
use rustls::ServerConfig;
use support::{base_config, identity, pki, stack};

// ----- the scanning allocator ------------------------------------------------------------

const MARKER_SLOTS: usize = 8;
const MARKER_MAX: usize = 96;

struct Markers {
    bytes: [[u8; MARKER_MAX]; MARKER_SLOTS],
    lens: [usize; MARKER_SLOTS],
}

static MARKERS: Mutex<Markers> = Mutex::new(Markers {
    bytes: [[0; MARKER_MAX]; MARKER_SLOTS],
    lens: [0; MARKER_SLOTS],
});

struct Hit {
    marker: usize,
    size: usize,
    backtrace: Backtrace,
}

static HITS: Mutex<Vec<Hit>> = Mutex::new(Vec::new());

thread_local! {
    static SCOPE: Cell<u32> = const { Cell::new(0) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

struct Scanner;

#[global_allocator]
static ALLOCATOR: Scanner = Scanner;

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl Scanner {
    /// Scans a block about to be freed, when inside an engine scope.
    fn scan(&self, ptr: *const u8, size: usize) {
        let active = SCOPE.with(|s| s.get() > 0) && !BUSY.with(|b| b.get());
        if !active || size == 0 {
            return;
        }
        BUSY.with(|b| b.set(true));
        // SAFETY: the block is live (it is being freed by its owner) and `size` bytes long.
        let block = unsafe { std::slice::from_raw_parts(ptr, size) };
        let hit = {
            let markers = MARKERS.lock().unwrap_or_else(|e| e.into_inner());
            (0..MARKER_SLOTS).find(|&i| find(block, &markers.bytes[i][..markers.lens[i]]))
        };
        if let Some(marker) = hit {
            let backtrace = Backtrace::force_capture();
            HITS.lock().unwrap_or_else(|e| e.into_inner()).push(Hit {
                marker,
                size,
                backtrace,
            });
        }
        BUSY.with(|b| b.set(false));
    }
}

// SAFETY: every call is forwarded to `System` with the caller's layout; reallocation always
// moves (alloc, copy, free), which is a valid implementation of `realloc`.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.scan(ptr, layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = System.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

fn set_marker(slot: usize, text: &str) {
    let mut markers = MARKERS.lock().unwrap();
    let bytes = text.as_bytes();
    assert!(bytes.len() <= MARKER_MAX);
    markers.bytes[slot][..bytes.len()].copy_from_slice(bytes);
    markers.lens[slot] = bytes.len();
}

/// Runs `f` as "inside the engine": blocks freed meanwhile are scanned.
fn scoped<T>(f: impl FnOnce() -> T) -> T {
    SCOPE.with(|s| s.set(s.get() + 1));
    let result = f();
    SCOPE.with(|s| s.set(s.get() - 1));
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Engine,
    Rustls,
    Testkit,
    Test,
    /// No frame names rustls, imstls, the testkit or this test: the backtrace was not
    /// symbolized (a build without symbols), and nothing can be attributed. Always a failure.
    Unresolved,
}

/// The innermost frame that names rustls, imstls or the testkit decides who freed the block
/// (drop glue names the type being dropped, so a rustls buffer dropped by the engine's
/// `TlsFlow` counts as rustls's). A block is this test's own only when a frame names this
/// test crate; a backtrace naming none of them is `Unresolved`.
fn owner(backtrace: &Backtrace) -> (Owner, String) {
    if backtrace.status() != BacktraceStatus::Captured {
        return (Owner::Unresolved, format!("{:?}", backtrace.status()));
    }
    let text = backtrace.to_string();
    let mut test_frame = None;
    for line in text.lines() {
        let line = line.trim();
        let Some((_, symbol)) = line.split_once(": ") else {
            continue;
        };
        if !line.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        if symbol.contains("rustls::") {
            return (Owner::Rustls, symbol.to_owned());
        }
        if symbol.contains("imstls_testkit::") {
            return (Owner::Testkit, symbol.to_owned());
        }
        if symbol.contains("imstls::") {
            return (Owner::Engine, symbol.to_owned());
        }
        if test_frame.is_none() && symbol.contains("secrets_zeroize::") {
            test_frame = Some(symbol.to_owned());
        }
    }
    match test_frame {
        Some(frame) => (Owner::Test, frame),
        None => (Owner::Unresolved, text),
    }
}

/// The owners of the hits recorded so far, which are then forgotten.
fn take_owners() -> Vec<(Owner, String)> {
    let hits = std::mem::take(&mut *HITS.lock().unwrap());
    hits.iter().map(|hit| owner(&hit.backtrace)).collect()
}

// ----- a minimal driver with every engine call scoped ------------------------------------

struct Drive {
    ue: Ue,
    ua: Ua,
    server: Arc<ServerConfig>,
    registrar: SharedRegistrar,
    peer: Option<(FlowId, PcscfCore)>,
    now: Instant,
    codes: Vec<&'static str>,
    nonces: Vec<String>,
}

impl Drive {
    fn new() -> Drive {
        let pki = pki();
        let now = Instant::now();
        Drive {
            ue: Ue::new(base_config(&pki).build().unwrap(), now).unwrap(),
            ua: Ua::new(UaConfig::default()),
            server: server_config(&pki, CertKind::Good, TlsVersions::Both, false).unwrap(),
            registrar: SharedRegistrar::new(RegistrarConfig::default()),
            peer: None,
            now,
            codes: Vec::new(),
            nonces: Vec::new(),
        }
    }

    fn start(&mut self) {
        self.ua.new_registration();
        let identity = identity();
        let now = self.now;
        scoped(|| self.ue.start_registration(now, identity)).unwrap();
        self.pump();
    }

    fn pump(&mut self) {
        let now = self.now;
        for _ in 0..10_000 {
            let output = scoped(|| self.ue.poll_output());
            match output {
                Output::Connect { flow, .. } => {
                    let core = PcscfCore::new(self.server.clone(), self.registrar.clone(), flow.0)
                        .unwrap();
                    self.peer = Some((flow, core));
                    scoped(|| self.ue.connected(now, flow, None, None)).unwrap();
                }
                Output::Transmit { flow, data } => {
                    if let Some((f, core)) = self.peer.as_mut() {
                        if *f == flow {
                            core.receive(&data);
                        }
                    }
                }
                Output::Close { flow } => {
                    if self.peer.as_ref().is_some_and(|(f, _)| *f == flow) {
                        self.peer = None;
                    }
                }
                Output::Event(event) => {
                    self.codes.push(event.code());
                    self.act_as_stack(&event);
                    scoped(|| drop(event));
                }
                Output::Timeout(_) => {
                    let Some((flow, core)) = self.peer.as_mut() else {
                        return;
                    };
                    let bytes = core.take_output();
                    if bytes.is_empty() {
                        return;
                    }
                    let flow = *flow;
                    // Deliver in small pieces, so that the engine's buffers grow step by step.
                    for piece in bytes.chunks(700) {
                        let r = scoped(|| self.ue.receive(now, flow, piece));
                        if r.is_err() {
                            break;
                        }
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("the driver did not settle");
    }

    fn act_as_stack(&mut self, event: &Event) {
        let now = self.now;
        match event {
            Event::RegisterNow { reason, .. } => {
                let request = stack::register_request(&mut self.ua, *reason);
                scoped(|| self.ue.send_sip(now, &request)).unwrap();
            }
            Event::SipReceived { flow, message } => {
                let Ok(msg) = SipMessage::parse(message) else {
                    return;
                };
                if msg.is_request() {
                    let answer = self.ua.answer(&msg, 200);
                    scoped(|| self.ue.send_sip(now, &answer)).unwrap();
                    return;
                }
                let outcome = self.ua.handle_response(&msg);
                if let Some(challenge) = self.ua.last_challenge() {
                    if !self.nonces.contains(&challenge.nonce) {
                        self.nonces.push(challenge.nonce.clone());
                        let slot = 2 + (self.nonces.len() - 1) % (MARKER_SLOTS - 2);
                        set_marker(slot, &challenge.nonce);
                    }
                }
                scoped(|| stack::report(&mut self.ue, now, *flow, outcome)).unwrap();
            }
            _ => {}
        }
    }

    fn peer(&mut self) -> &mut PcscfCore {
        &mut self.peer.as_mut().expect("a peer").1
    }
}

/// A terminating request carrying personal data (the IMPU, twice) in a large body.
fn big_request() -> Vec<u8> {
    let body = format!(
        "to {DEFAULT_IMPI}: {}; again {DEFAULT_IMPI}\r\n",
        "x".repeat(12_000)
    );
    format!(
        "MESSAGE sip:{DEFAULT_IMPI} SIP/2.0\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bKbig\r\n\
         From: <sip:bob@ims.test>;tag=9\r\nTo: <sip:{DEFAULT_IMPI}>\r\nCall-ID: big\r\n\
         CSeq: 1 MESSAGE\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The control marker of the imstls attribution check: a server name, not a secret.
const CONTROL_NAME: &str = "control-marker.imstls.test";

#[test]
fn the_engine_wipes_what_it_held_of_identities_nonces_and_sip_plaintext() {
    set_marker(1, DEFAULT_PASSWORD);

    // The detector and the attribution can fail. A block imstls frees itself (the builder a
    // failed `UeConfig::build` drops, holding the server name) must be caught and attributed
    // to imstls; a plain Vec this test frees must be caught and attributed to the test.
    set_marker(0, CONTROL_NAME);
    let failed = scoped(|| UeConfig::builder().server_name(CONTROL_NAME).build());
    assert!(failed.is_err(), "a configuration without a P-CSCF fails");
    drop(failed);
    let imstls_control = take_owners();
    assert!(
        !imstls_control.is_empty() && imstls_control.iter().all(|(o, _)| *o == Owner::Engine),
        "a block freed inside imstls must be attributed to imstls: {imstls_control:#?}"
    );
    set_marker(0, DEFAULT_IMPI); // also inside every IMPU, From/To and Contact
    scoped(|| drop(format!("control {DEFAULT_IMPI}").into_bytes()));
    let test_control = take_owners();
    assert!(
        test_control.len() == 1 && test_control[0].0 == Owner::Test,
        "a block freed by this test must be attributed to the test: {test_control:#?}"
    );

    let mut d = Drive::new();
    // 1. A challenged registration: the nonce crosses the engine in the 401.
    d.start();
    assert_eq!(d.ue.state(), UeState::Registered, "{:?}", d.codes);
    assert!(!d.nonces.is_empty(), "a nonce was seen");
    // 2. A large terminating request in many records and pieces.
    let big = big_request();
    d.peer().send_request(&big);
    d.pump();
    assert!(d.codes.contains(&"sip_received"));
    // 3. Half a message buffered in the framer when a new registration supersedes the flow.
    d.peer().send_request(&big[..big.len() / 2]);
    d.pump();
    d.start();
    assert_eq!(d.ue.state(), UeState::Registered, "{:?}", d.codes);
    // 4. A rejected registration (O.3.1.1): identities dropped.
    d.registrar.set_reject_all_with(Some(403));
    d.start();
    assert_eq!(d.ue.state(), UeState::Closed, "{:?}", d.codes);
    // 5. The engine's own drop.
    d.registrar.set_reject_all_with(None);
    d.start();
    d.now += Duration::from_secs(1);
    let Drive { ue, .. } = d;
    scoped(|| drop(ue));

    let hits = std::mem::take(&mut *HITS.lock().unwrap());
    let mut engine = Vec::new();
    let mut unresolved = Vec::new();
    let mut by_owner = std::collections::BTreeMap::<Owner, usize>::new();
    for hit in &hits {
        let (who, frame) = owner(&hit.backtrace);
        *by_owner.entry(who).or_default() += 1;
        let line = format!(
            "marker {} in a {}-byte block freed by {frame}",
            hit.marker, hit.size
        );
        match who {
            Owner::Engine => engine.push(line),
            Owner::Unresolved => unresolved.push(line),
            _ => {}
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "secrets in freed blocks during engine calls, by owner: {by_owner:?}"
    );
    assert!(
        unresolved.is_empty(),
        "backtraces without symbols: these hits cannot be attributed (build with symbols):\n{}",
        unresolved.join("\n")
    );
    assert!(
        engine.is_empty(),
        "the engine freed secrets without wiping them:\n{}",
        engine.join("\n")
    );
}
