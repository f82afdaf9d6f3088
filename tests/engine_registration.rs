//! Engine tests on a simulated clock against the in-memory simulated P-CSCF.

mod support;

use std::time::Duration;

use imstls::{Event, UeState};
use support::{base_config, pki, World};

#[test]
fn registers_with_digest_challenge_over_tls13() {
    let mut world = World::new(base_config(&pki()));
    world.register();
    let codes = world.codes();
    let expected = [
        "connecting",
        "tls_established",
        "register_now",
        "registering",
        "sip_received",
        "challenged",
        "register_now",
        "registering",
        "sip_received",
        "registered",
    ];
    assert_eq!(&codes[..expected.len()], &expected, "{codes:?}");
    assert!(world.input_errors.is_empty(), "{:?}", world.input_errors);
    let Some((_, Event::TlsEstablished { details, .. })) = world.last("tls_established") else {
        unreachable!()
    };
    assert_eq!(details.version, "TLSv1.3");
    let binding = world.ue.binding().unwrap();
    assert!(binding.registered);
    assert_eq!(world.state(), UeState::Registered);
    let _ = Duration::ZERO;
}
