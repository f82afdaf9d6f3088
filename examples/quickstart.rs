//! The whole Annex O story in a few seconds, against an embedded loopback P-CSCF simulator
//! with a freshly generated test PKI:
//!
//! 1. TLS up (version, suite, group) → 401 challenge → registered;
//! 2. the P-CSCF kills the connection → a new flow at once → registered again (resumed);
//! 3. a second registration supersedes an incomplete one (its TLS session purged);
//! 4. the P-CSCF presents an expired certificate → the fatal alert goes on the wire, no retry.
//!
//! This example drives the sans-IO engine itself over std sockets (`examples/support/link.rs`),
//! to show the contract of `imstls::Ue`: every input is followed by draining `poll_output()`.
//! The small SIP UA that plays "the SIP stack" comes from `imstls-testkit`.
//!
//! Run: `cargo run --example quickstart`

#[path = "support/link.rs"]
mod link;

use std::time::{Duration, Instant};

use imstls::{alert_name, Event, Identity, Ue, UeConfig, UeState};
use imstls_testkit::observation::Observation;
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::{CertKind, SimConfig, Simulator};
use link::{Error, Link};

fn narrate(event: &Event) {
    let detail = match event {
        Event::TlsEstablished { details, .. } => format!(
            "TLS up: {} {} key exchange {}{}",
            details.version,
            details.cipher_suite,
            details.key_exchange_group.unwrap_or("-"),
            if details.resumed {
                ", session resumed"
            } else {
                ", full handshake"
            }
        ),
        Event::CertificateRejected { failure, .. } => format!(
            "P-CSCF certificate rejected: {} (alert {} sent before closing)",
            failure
                .certificate()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            failure.alert_sent.map(alert_name).unwrap_or("none")
        ),
        Event::SipReceived { message, .. } => {
            let first_line = message.split(|b| *b == b'\r').next().unwrap_or_default();
            format!("SIP in: {}", String::from_utf8_lossy(first_line))
        }
        other => other.to_string(),
    };
    println!("    {:<22} {detail}   [{}]", event.code(), event.clause());
}

fn chapter(title: &str) {
    println!("\n== {title}");
}

fn main() -> Result<(), Error> {
    chapter("Starting a loopback P-CSCF simulator with a fresh test PKI");
    let sim = Simulator::start(SimConfig::default())?;
    println!("    listening on {} as pcscf.ims.test", sim.addr());

    let config = UeConfig::builder()
        .pcscf(sim.addr().to_string())
        .server_name("pcscf.ims.test") // reached by IP: verify the FQDN, send it as SNI
        .trust_anchors_pem(sim.pki().root_pem())
        .build()?;
    let ua_config = UaConfig::default();
    let identity = || Identity::new(&ua_config.impi, &[&ua_config.impu]);
    let mut link = Link::new(Ue::new(config, Instant::now())?, Ua::new(ua_config.clone()));

    chapter("1. Register: TLS (O.2.1), Digest challenge (Annex N), registered");
    link.ue.start_registration(Instant::now(), identity()?)?;
    link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::Registered { .. })
    })?;
    link.run_until(Duration::from_secs(5), narrate, |e| {
        matches!(e, Event::PongReceived { .. })
    })?;

    chapter("2. The P-CSCF kills the connection: new flow at once, registered again (O.4.1)");
    sim.kill_connections();
    link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::Registered { .. })
    })?;

    chapter("3. A second registration supersedes an incomplete one (O.4.1)");
    link.hold_after_challenge = true; // the stack stalls after the 401: procedure incomplete
    link.ue.network_changed(Instant::now())?;
    link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::Challenged { .. })
    })?;
    println!(
        "    ... registration left incomplete in state {:?}; starting another one",
        link.ue.state()
    );
    link.hold_after_challenge = false;
    link.ue.start_registration(Instant::now(), identity()?)?;
    let superseded = link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::Superseded { .. })
    })?;
    if let Event::Superseded { abandoned } = superseded {
        println!(
            "    removed: flow {:?}, {} TLS session(s)/ticket(s) purged, {} queued byte(s) dropped",
            abandoned.flow, abandoned.purged_sessions, abandoned.dropped_bytes
        );
    }
    link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::Registered { .. })
    })?;

    chapter("4. The P-CSCF presents an expired certificate (O.3.1.2)");
    sim.set_cert(CertKind::Expired);
    sim.clear_observations();
    link.ue.start_registration(Instant::now(), identity()?)?;
    link.run_until(Duration::from_secs(10), narrate, |e| {
        matches!(e, Event::RegistrationFailed { .. })
    })?;
    let seen = sim.wait_for(Duration::from_secs(5), |o| {
        matches!(o, Observation::AlertReceived { .. })
    });
    if let Some(Observation::AlertReceived { description }) = seen {
        println!(
            "    the P-CSCF received our fatal alert: {}",
            alert_name(description)
        );
    } else {
        return Err("the simulator saw no alert".into());
    }
    println!(
        "    UE state {:?}; next timer {:?} (no automatic retry)",
        link.ue.state(),
        link.ue.next_timeout()
    );
    assert_eq!(link.ue.state(), UeState::Closed);

    chapter("Conformance log (last entries, no personal data)");
    for entry in link
        .ue
        .conformance_log()
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(6)
        .rev()
    {
        println!("    {:<22} {}", entry.event, entry.clause);
    }
    sim.shutdown();
    println!("\nDone.");
    Ok(())
}
