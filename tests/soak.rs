//! The short soak run in CI: 600 loss → re-register cycles over loopback sockets against the
//! socket simulator (each: RST from the P-CSCF, a new flow at once, a resumed handshake, a
//! Digest-challenged registration, a pong), with resident memory, open descriptors and live
//! heap bytes sampled. After a warm-up of 300 cycles (the bounded caches fill: the
//! simulator's server session cache of 256 sessions gains one net ticket per cycle) the rest
//! is split into two equal windows, and each window's live heap must grow by less than
//! 8 bytes per cycle, so that a real leak of 16 bytes per cycle fails
//! (`IMSTLS_SOAK_LEAK_BYTES=16 cargo test --test soak` shows it). Open descriptors must be
//! back where they started. The summary is printed as one JSON line (`IMSTLS_SOAK_JSON ...`).
//! The long run (10 000 cycles) is `scripts/soak_table.sh` (docs/ROBUSTNESS.md).

#[path = "support/soak_run.rs"]
mod soak_run;
#[path = "support/socket_link.rs"]
#[allow(dead_code)]
mod socket_link;
#[path = "../examples/support/stack.rs"]
mod stack;

use std::io::Write as _;

#[test]
fn loss_and_reregistration_cycles_leave_memory_and_descriptors_flat() {
    let cycles: usize = std::env::var("IMSTLS_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let warmup = (cycles / 2).max(20);
    let report = soak_run::soak(cycles, warmup, 2, 100, |s| {
        let _ = writeln!(std::io::stderr(), "soak {s}");
    });
    let mut text = format!(
        "soak: {} cycles in {:.1} s, {} resumed handshakes\n  before {}\n  start  {}\n  warm   {}\n  end    {}\n  after  {}\n",
        report.cycles,
        report.elapsed.as_secs_f64(),
        report.resumed,
        report.before,
        report.start,
        report.warm,
        report.end,
        report.after
    );
    for w in &report.windows {
        text += &format!(
            "  window cycles {}..={}: live heap floor {} -> {} bytes ({:.2} per cycle)\n",
            w.first_cycle,
            w.last_cycle,
            w.floor_before,
            w.floor_after,
            w.growth_per_cycle()
        );
    }
    text += &format!("IMSTLS_SOAK_JSON {}\n", report.json());
    let _ = std::io::stderr().write_all(text.as_bytes());
    let failures = report.failures();
    assert!(failures.is_empty(), "soak failed: {failures:#?}");
}
