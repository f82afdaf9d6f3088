//! Every parser of untrusted bytes fed with many deterministic mutations of valid inputs: errors
//! are fine, panics are not. (A cheap stand-in for the fuzz targets; no extra dependency.)

use crate::digest::{Authorization, Challenge};
use crate::registrar::{Registrar, RegistrarConfig, RequestContext};
use crate::sip::{split_list, Frame, Framer, NameAddr, SipMessage};
use crate::ua::{Ua, UaConfig};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPECIAL: &[u8] = b"\"\\<>,;=:\r\n \t0123456789%\xff\xc3";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
            1 => v.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
            2 => v.truncate(at),
            3 if at < v.len() => {
                let end = (at + rng.below(16)).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => {
                if at < v.len() {
                    v.remove(at);
                }
            }
        }
    }
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let mut ua = Ua::new(UaConfig::default());
    let challenge = Challenge::parse(
        r#"Digest realm="ims.test", nonce="abc", opaque="o", algorithm=SHA-256, qop="auth,auth-int", stale=false"#,
    )
    .expect("valid seed");
    let register = ua.register_request(Some(&challenge));
    let auth = SipMessage::parse(&register)
        .expect("valid seed")
        .header("Authorization")
        .expect("seed has credentials")
        .to_owned();
    vec![
        register,
        challenge.to_header_value().into_bytes(),
        auth.into_bytes(),
        b"SIP/2.0 200 OK\r\nv: SIP/2.0/TLS a;branch=z9hG4bK1\r\nCSeq: 1 REGISTER\r\nFlow-Timer: 120\r\nm: <sip:a@b>;expires=60\r\nl: 3\r\n\r\nabc".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
    ]
}

#[test]
fn mutated_inputs_never_panic_any_parser() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let seeds = seeds();
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let mut ua = Ua::new(UaConfig::default());
    let _ = ua.register_request(None);
    for round in 0..4000 {
        let seed = &seeds[round % seeds.len()];
        let input = mutate(&mut rng, seed);
        let text = String::from_utf8_lossy(&input);

        let _ = Challenge::parse(&text);
        if let Ok(auth) = Authorization::parse(&text) {
            let _ = auth.verify("REGISTER", "pw");
            let _ = Authorization::parse(&auth.to_header_value());
        }
        for element in split_list(&text) {
            if let Some(na) = NameAddr::parse(element) {
                let _ = NameAddr::parse(&na.to_string());
            }
        }

        let mut framer = Framer::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            framer.push(&rest[..n]);
            rest = &rest[n..];
            while let Ok(Some(frame)) = framer.next_frame() {
                if let Frame::Message(bytes) = frame {
                    if let Ok(msg) = SipMessage::parse(&bytes) {
                        let ctx = RequestContext {
                            flow: 1,
                            first_on_connection: round % 2 == 0,
                        };
                        let _ = registrar.handle_request(&msg, ctx);
                        let _ = ua.handle_response(&msg);
                        let _ = SipMessage::parse(&msg.to_bytes());
                    }
                }
            }
        }
        if let Ok(msg) = SipMessage::parse(&input) {
            let _ = registrar.handle_request(
                &msg,
                RequestContext {
                    flow: 2,
                    first_on_connection: true,
                },
            );
        }
    }
}

#[test]
fn random_tls_bytes_never_panic_the_pcscf_core() {
    use crate::pcscf::PcscfCore;
    use crate::pki::{CertKind, TestPki};
    use crate::registrar::SharedRegistrar;
    use crate::tls::{server_config, TlsVersions};

    let pki = TestPki::generate("pcscf.ims.test");
    let config = server_config(&pki, CertKind::Good, TlsVersions::Both, false).expect("config");
    let registrar = SharedRegistrar::new(RegistrarConfig::default());
    let mut rng = Rng(42);
    let hello_prefix = b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03".to_vec();
    for round in 0..300 {
        let mut core = PcscfCore::new(config.clone(), registrar.clone(), round).expect("core");
        let input = mutate(&mut rng, &hello_prefix);
        let mut noise = vec![0u8; rng.below(200)];
        noise.iter_mut().for_each(|b| *b = rng.next() as u8);
        core.receive(&input);
        core.receive(&noise);
        let _ = core.take_output();
        core.transport_eof();
    }
}
