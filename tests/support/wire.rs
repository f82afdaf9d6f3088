//! The wire as a peer logged it, in the words of the negative matrix's "wire" column:
//! `ue→pcscf fatal X`, `pcscf→ue close_notify`, `ue→pcscf FIN`, ... Shared by the Rust and the
//! C flavour of the matrix so that both compare the same peer-side observations.

use std::time::Duration;

use imstls::alert_name;
use imstls_testkit::observation::Observation;
use imstls_testkit::Simulator;

/// The wire as a simulated P-CSCF logged it from its own side: alerts it read (with the
/// level when the record was plaintext, `encrypted` when only its rustls saw the alert) and
/// wrote, close_notify both ways, and how the TCP stream ended (FIN or RST, each way).
pub fn peer_wire(log: &[Observation]) -> String {
    let mut parts = Vec::new();
    let mut plaintext = Vec::new();
    for o in log {
        parts.push(match o {
            Observation::AlertRecordReceived { level, description } => {
                plaintext.push(*description);
                format!("ue→pcscf {} {}", level.name(), alert_name(*description))
            }
            Observation::AlertReceived { description } if !plaintext.contains(description) => {
                format!("ue→pcscf encrypted {}", alert_name(*description))
            }
            Observation::ClientCertificateSent { empty: true } => {
                "ue→pcscf empty Certificate".into()
            }
            Observation::PeerClosed => "ue→pcscf close_notify".into(),
            Observation::AlertRecordSent { level, description } => {
                format!("pcscf→ue {} {}", level.name(), alert_name(*description))
            }
            Observation::EncryptedAlertRecordSent => "pcscf→ue encrypted alert record".into(),
            Observation::CloseNotifySent => "pcscf→ue close_notify".into(),
            Observation::FinSent => "pcscf→ue FIN".into(),
            Observation::ResetSent => "pcscf→ue RST".into(),
            Observation::TransportClosed { .. } => "ue→pcscf FIN".into(),
            Observation::ResetReceived => "ue→pcscf RST".into(),
            _ => continue,
        });
    }
    join_or_none(parts)
}

pub fn join_or_none(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// Alerts in an OpenSSL `-msg` trace: `<<<` lines are the UE's, `>>>` the server's.
pub fn openssl_wire(trace: &str) -> String {
    let mut parts = Vec::new();
    for line in trace.lines().filter(|l| l.contains("Alert")) {
        let direction = if line.starts_with("<<<") {
            "ue→pcscf"
        } else if line.starts_with(">>>") {
            "pcscf→ue"
        } else {
            continue;
        };
        if let Some(what) = line.rsplit("], ").next() {
            parts.push(format!("{direction} {what}"));
        }
    }
    join_or_none(parts)
}

/// How a simulator connection's log ends: its TCP stream is over.
pub fn connection_over(o: &Observation) -> bool {
    matches!(
        o,
        Observation::TransportClosed { .. }
            | Observation::ResetReceived
            | Observation::ResetSent
            | Observation::TransportError(_)
    )
}

/// The wire of connection `first` (the one the case is about; a reconnection after it has its
/// own number), from the simulator's own log. Waits, bounded, until that connection's TCP
/// stream is over, so that nothing it logs later is missed.
pub fn sim_wire(sim: &Simulator, first: usize) -> String {
    let over = sim.wait_for_entry(Duration::from_secs(5), |c, o| {
        c == first && connection_over(o)
    });
    let log: Vec<Observation> = sim
        .observations()
        .into_iter()
        .filter(|(c, _)| *c == first)
        .map(|(_, o)| o)
        .collect();
    let wire = peer_wire(&log);
    if over.is_some() {
        wire
    } else {
        format!("{wire} (connection still open)")
    }
}
