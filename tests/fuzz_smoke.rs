//! CI smoke run of the fuzz targets (`fuzz/`): every target body runs over its committed seed
//! corpus (`fuzz/corpus/<target>/`) and over a bounded number of deterministic mutations of
//! it (bit flips, byte changes, insertions, deletions, truncations, splices), with the
//! targets' own assertions. It is not coverage-guided: the libFuzzer run that is lives in
//! `fuzz/` and is documented in docs/ROBUSTNESS.md. Any crash input found there goes into
//! the corpus, so that this test replays it for ever after.
//!
//! `IMSTLS_FUZZ_SMOKE_FACTOR` scales the number of mutations (default 1).

#[path = "support/rng.rs"]
mod rng;
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rng::Rng;

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = [0, 0xff, b'\r', b'\n', b':', b'0', 0x16][rng.below(7)];
            }
            2 => out.insert(at, rng.next() as u8),
            3 if at < out.len() => {
                let n = rng.below(16).min(out.len() - at);
                out.drain(at..at + n);
            }
            4 => out.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = rng.below(64).min(other.len() - from);
                out.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {
                let n = rng.below(8);
                out.splice(at..at, std::iter::repeat_n(rng.next() as u8, n));
            }
        }
    }
    out
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn smoke(target: &str, body: fn(&[u8]), mutations: usize) {
    let factor: usize = std::env::var("IMSTLS_FUZZ_SMOKE_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has seeds");
    for seed in &seeds {
        body(seed);
    }
    let mut rng = Rng(fnv(target));
    let total = mutations * factor;
    for i in 0..total {
        let input = &seeds[i % seeds.len()];
        let other = &seeds[rng.below(seeds.len())];
        let mutated = mutate(&mut rng, input, other);
        let result = std::panic::catch_unwind(|| body(&mutated));
        if result.is_err() {
            let path = std::env::temp_dir().join(format!("imstls-fuzz-{target}-crash-{i}"));
            let _ = std::fs::write(&path, &mutated);
            panic!(
                "{target}: input {i} failed; saved to {} (replay with the fuzz binary)",
                path.display()
            );
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "fuzz smoke {target}: {} seeds + {total} mutations, no failure",
        seeds.len()
    );
}

fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn sip_framer() {
    smoke("sip_framer", targets::sip_framer, 20_000);
}

#[test]
fn send_sip() {
    smoke("send_sip", targets::send_sip, 20_000);
}

/// The `send_sip` target's grammar is not vacuous: it reads the valid seeds (which the engine
/// accepts too, so the comparison runs) and refuses the smuggling ones.
#[test]
fn the_send_sip_grammar_reads_the_valid_seeds_and_refuses_the_smuggles() {
    for name in ["register", "invite", "response"] {
        let seed = std::fs::read(corpus_dir("send_sip").join(name)).unwrap();
        let seen = targets::rfc3261::one_message(&seed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(seen.method.is_some(), name != "response", "{name}");
        assert!(
            imstls::_internal_test_exports::sip::parse_outgoing_message(&seed, 1 << 20).is_ok(),
            "{name}"
        );
    }
    for name in ["lf-smuggle", "folded"] {
        let seed = std::fs::read(corpus_dir("send_sip").join(name)).unwrap();
        assert!(targets::rfc3261::one_message(&seed).is_err(), "{name}");
    }
}

#[test]
fn tls_handshake() {
    smoke("tls_handshake", targets::tls_handshake, 2_000);
}

#[test]
fn engine() {
    smoke("engine", targets::engine, 300);
}

#[test]
fn config() {
    smoke("config", targets::config, 3_000);
}

#[test]
fn ffi() {
    smoke("ffi", targets::ffi, 2_000);
}

#[test]
fn driver_api() {
    smoke("driver_api", targets::driver_api, 300);
}

#[test]
fn x509() {
    smoke("x509", targets::x509, 20_000);
}

#[test]
fn sip_uri() {
    smoke("sip_uri", targets::sip_uri, 20_000);
}

#[test]
fn cert_identity() {
    smoke("cert_identity", targets::cert_identity, 1_500);
}

/// Writes the seed corpus (run once, by hand, when a target's input format changes):
/// `cargo test --test fuzz_smoke -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use imstls_testkit::pcscf::PcscfCore;
    use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
    use imstls_testkit::tls::{server_config, TlsVersions};
    use imstls_testkit::{CertKind, TestPki};

    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let register = b"REGISTER sip:ims.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK1\r\nCSeq: 1 REGISTER\r\nCall-ID: a\r\nContent-Length: 0\r\n\r\n".to_vec();
    let ok = b"SIP/2.0 200 OK\r\nCSeq: 2 REGISTER\r\nl: 5\r\n\r\nhello".to_vec();
    let challenge = b"SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"ims.test\", nonce=\"abc\"\r\nContent-Length: 0\r\n\r\n".to_vec();
    let mut stream = vec![0x00, 0x10, 7];
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&register);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(&ok);
    write("sip_framer", "stream", &stream);
    for (name, msg) in [
        ("register", &register),
        ("ok", &ok),
        ("challenge", &challenge),
    ] {
        let mut seed = vec![0x00, 0x04, 0x83];
        seed.extend_from_slice(msg);
        write("sip_framer", name, &seed);
    }
    // send_sip: what stacks send, and the smuggling shapes the strict check refuses.
    let invite = b"INVITE sip:bob@[2001:db8::1]:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS [2001:db8::2];branch=z9hG4bK2\r\nv: SIP/2.0/TLS 10.0.0.1;branch=z9hG4bK3\r\nf: \"Al\xc3\xafce\" <sip:alice@ims.test>;tag=1\r\nt: <sip:bob@ims.test>\r\ni: c1\r\nCSeq: 1 INVITE\r\nc: application/sdp\r\nl: 10\r\n\r\nv=0\r\ns=-\r\n".to_vec();
    let response = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/TLS pcscf.ims.test;branch=z9hG4bK9\r\nCSeq: 7 INVITE\r\nContent-Length : 0\r\n\r\n".to_vec();
    let lf_smuggle = [&register[..register.len() - 2], b"\n", &invite[..]].concat();
    let folded = [
        &b"MESSAGE sip:bob@ims.test SIP/2.0\r\nSubject: a\r\n b\r\n"[..],
        &register[31..],
    ]
    .concat();
    for (name, msg) in [
        ("register", &register),
        ("invite", &invite),
        ("response", &response),
        ("lf-smuggle", &lf_smuggle),
        ("folded", &folded),
    ] {
        write("send_sip", name, msg);
    }

    // Real server first flights answering a UE ClientHello, TLS 1.3 and TLS 1.2.
    let pki = TestPki::generate("pcscf.ims.test");
    let config = imstls::UeConfig::builder()
        .pcscf("pcscf.ims.test:5061")
        .trust_anchors_pem(pki.root_pem())
        .build()
        .unwrap();
    let profile =
        imstls::_internal_test_exports::tls::TlsProfile::new(&config, std::time::Instant::now())
            .unwrap();
    let candidate: imstls::Candidate = "pcscf.ims.test:5061".parse().unwrap();
    for (name, versions) in [
        ("tls13", TlsVersions::Tls13Only),
        ("tls12", TlsVersions::Tls12Only),
    ] {
        let mut flow =
            imstls::_internal_test_exports::tls::TlsFlow::connect(&profile, &candidate).unwrap();
        let server = server_config(&pki, CertKind::Good, versions, false).unwrap();
        let mut core =
            PcscfCore::new(server, SharedRegistrar::new(RegistrarConfig::default()), 1).unwrap();
        core.receive(&flow.take_transmit().unwrap());
        let mut seed = vec![0xff];
        seed.extend_from_slice(&core.take_output());
        write("tls_handshake", name, &seed);
        let _ = flow.receive(&seed[1..]);
    }
    write("tls_handshake", "alert", &[0x10, 21, 3, 3, 0, 2, 2, 40]);

    // Engine operation lists (see targets::engine).
    let mut ops = Vec::new();
    ops.extend_from_slice(&[2, 0]); // REGISTER
    ops.extend_from_slice(&[3, 1, 0]); // challenged
    ops.extend_from_slice(&[2, 0]);
    ops.extend_from_slice(&[4, 1, 60]); // registered
    ops.push(0);
    ops.push(ok.len() as u8);
    ops.extend_from_slice(&ok); // P-CSCF plaintext
    ops.extend_from_slice(&[8, 1, 0]); // ping
    ops.extend_from_slice(&[6, 2, 0x10, 0x0e]); // an hour passes
    ops.extend_from_slice(&[7, 1, 0]); // reset
    ops.extend_from_slice(&[6, 1, 5]);
    write("engine", "lifecycle", &ops);
    write("engine", "raw", &[1, 7, 23, 3, 3, 0, 2, 1, 2, 9, 0, 10, 0]);

    // Configuration fields.
    let pin = pki.good_spki_sha256_base64();
    for (name, mode, fields) in [
        (
            "pem",
            0u8,
            vec![
                pki.root_pem().into_bytes(),
                pki.crl_pem().into_bytes(),
                b"pcscf.ims.test:5061".to_vec(),
                b"pcscf.ims.test".to_vec(),
                b"1.3".to_vec(),
                b"x25519".to_vec(),
                pin.clone().into_bytes(),
            ],
        ),
        (
            "der",
            1u8,
            vec![
                pki.root_der(),
                pki.crl_der(),
                b"[::1]:5061".to_vec(),
                Vec::new(),
                b"TLSv1.2+1.3".to_vec(),
                b"P-256".to_vec(),
                Vec::new(),
            ],
        ),
        (
            "ip",
            0u8,
            vec![
                pki.root_pem().into_bytes(),
                Vec::new(),
                b"127.0.0.1".to_vec(),
                b"pcscf.ims.test".to_vec(),
                b"1.0".to_vec(),
                b"secp384r1".to_vec(),
                b"AAAA".to_vec(),
            ],
        ),
    ] {
        let mut seed = vec![mode];
        seed.extend_from_slice(&fields.join(&0xffu8));
        write("config", name, &seed);
    }

    for kind in [
        CertKind::Good,
        CertKind::IpSan,
        CertKind::Wildcard,
        CertKind::UriWithUserPart,
        CertKind::CnOnly,
    ] {
        write("x509", &kind.name(), &pki.leaf(kind).chain_der[0]);
    }
    write("x509", "root", &pki.root_der());

    // Certificate identity cases (see targets::cert_identity): flags, then kind+text entries.
    let entry = |kind: u8, text: &[u8]| [&[kind][..], text].concat();
    let seed = |flags: u8, entries: &[Vec<u8>]| {
        let mut out = vec![flags];
        out.extend_from_slice(&entries.join(&0xffu8));
        out
    };
    let permitted = |i: u8| entry(3, &[i]);
    for (name, bytes) in [
        // The issue 11 item 1 attack: .corp.example CA, URI outside it.
        (
            "uri-escapes-constraints",
            seed(
                0b0110,
                &[
                    permitted(0),
                    entry(0, b"x.corp.example"),
                    entry(1, b"sip:pcscf.ims.victim.net"),
                ],
            ),
        ),
        // Item 2: a user part behind ';' / '?'.
        (
            "user-part-semicolon",
            seed(
                0b0100,
                &[
                    entry(0, b"attacker.example"),
                    entry(1, b"sip:pcscf.ims.victim.net;x@attacker.example"),
                    entry(1, b"sip:pcscf.ims.victim.net?x@attacker.example"),
                ],
            ),
        ),
        (
            "constrained-good",
            seed(
                0b0010,
                &[
                    permitted(0),
                    entry(0, b"pcscf.corp.example"),
                    entry(1, b"sip:pcscf.corp.example:5061;transport=tls"),
                ],
            ),
        ),
        (
            "wildcard-opt-in",
            seed(0b10011, &[permitted(1), entry(0, b"*.corp.example")]),
        ),
        ("uri-only", seed(0, &[entry(1, b"sip:pcscf.corp.example")])),
        (
            "ip",
            seed(
                0b1000,
                &[entry(2, &[127, 0, 0, 1]), entry(1, b"sip:127.0.0.1")],
            ),
        ),
        (
            "excluded",
            seed(
                0b1110,
                &[
                    permitted(1),
                    entry(4, &[5]),
                    entry(0, b"a.b.corp.example"),
                    entry(1, b"sip:[::1]:5061;maddr=x?h=v"),
                ],
            ),
        ),
    ] {
        write("cert_identity", name, &bytes);
    }
    for (name, uri) in [
        (
            "domain",
            "sip:pcscf.ims.test:5061;transport=tls;lr?subject=x&h=",
        ),
        (
            "user-semicolon",
            "sip:pcscf.ims.victim.net;x@attacker.example",
        ),
        (
            "user-password",
            "SIP:alice:p%20w@[2001:db8::1]:5070;maddr=192.0.2.1",
        ),
        (
            "token-param",
            "sip:host.example.;transport=x`y;method=INVITE",
        ),
        ("no-scheme", "pcscf.ims.test"),
    ] {
        write("sip_uri", name, uri.as_bytes());
    }
    write_driver_api_seeds();
}

/// The `driver_api` seeds alone (`cargo test --test fuzz_smoke -- --ignored
/// write_driver_api_seeds`). Each op: byte (driver << 4 | code), length, argument (see
/// `src/ffi/fuzz_driver.rs`).
#[test]
#[ignore]
fn write_driver_api_seeds() {
    let write = |name: &str, ops: &[&[u8]]| {
        let dir = corpus_dir("driver_api");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), ops.concat()).unwrap();
    };
    let register =
        b"REGISTER sip:ims.test SIP/2.0\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let mut send: Vec<u8> = vec![4, register.len() as u8];
    send.extend_from_slice(register);
    let alert: &[u8] = &[5, 8, 0, 0x15, 3, 3, 0, 2, 2, 40];
    write(
        "transfer-step-close",
        &[
            &[0, 0],       // drain: CONNECTING
            &[1, 1, 0x00], // adopt a TCP pair end, IMSTLS_FD_TRANSFER, the pending flow
            &[2, 0],       // run(0): ClientHello out
            &[0, 1, 64],   // drain through a 64-byte buffer
            &[6, 1, 0],    // the peer reads
            alert,         // the peer answers with a fatal alert
            &[2, 0],
            &[0, 1, 8],
            &send,      // send_sip in the wrong state
            &[8, 1, 0], // fd, interest, timeout, state, binding, last error
            &[6, 1, 2], // the peer closes
            &[2, 0],
            &[10, 1, 0], // network changed: a new flow
            &[0, 0],
            &[1, 1, 0x01], // adopt, IMSTLS_FD_BORROW
            &[3, 0],       // process
            &[13, 1, 1],   // stop, then run -> STOPPED
            &[14, 0],      // free mid-flow
        ],
    );
    write(
        "misuse",
        &[
            &[0, 0],
            &[1, 1, 0x30],                         // adopt -1
            &[1, 1, 0x20],                         // adopt a datagram socket: refused, stays ours
            &[1, 5, 0x02, 7, 0, 0, 0],             // ownership 7
            &[1, 1, 0x08],                         // the wrong flow
            &[7, 6, 99, 0, 0, 0, b'x', 0],         // connect_failed with reason 99
            &[11, 1, 7],                           // connect mode 7
            &[12, 1, 1],                           // a wake-up callback
            &[9, 8, 1, 0, 0, 0, 0, 0, 0, 0],       // registration_succeeded in the wrong state
            &[9, 8, 2, 0xff, 0xff, 0, 0, 1, 0, 0], // registration_failed, status out of range
            &[8, 1, 1],                            // queries with NULL out-parameters
            &[13, 1, 0],                           // wake, then run
            &[12, 1, 0],                           // the callback off
            &[1, 1, 0x00],                         // a proper adopt after all
            &[2, 0],
            &[0, 1, 0], // drain through a zero-byte buffer
        ],
    );
    write(
        "two-drivers",
        &[
            &[15, 2, 0, 1],   // a second driver, external, with a wake-up callback
            &[0x10, 0],       // drain driver 1
            &[0x11, 1, 0x01], // adopt on driver 1, lent
            &[0x12, 0],
            &[1, 1, 0x00], // adopt on driver 0, given
            &[2, 0],
            &[0x1e, 0],     // free driver 1 with its flow up
            &[15, 2, 1, 0], // a managed-mode driver: connects to 127.0.0.1:9, refused
            &[0x12, 0],
            &[0x10, 1, 32],
            &[0x1a, 1, 2], // deregister
            &[0x13, 0],
        ],
    );
}
