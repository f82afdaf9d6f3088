//! The short soak run in CI: 600 loss → re-register cycles over loopback sockets against the
//! socket simulator (each: RST from the P-CSCF, a new flow at once, a resumed handshake, a
//! Digest-challenged registration, a pong), with resident memory, open descriptors and live
//! heap bytes printed at the start and the end. Open descriptors must be back where they
//! started; the live heap must not grow by more than 200 bytes per cycle after the warm-up
//! (a leak of one SIP message per cycle is over 500 bytes). The warm-up (half the run) lets
//! the bounded caches fill: the simulator's server session cache (256 sessions) fills at one
//! net ticket per cycle. The long run (10 000 cycles) is
//! `cargo run --release --example soak` (docs/ROBUSTNESS.md).

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
    let warmup = (cycles / 2).max(1);
    let report = soak_run::soak(cycles, warmup, 100, |s| {
        let _ = writeln!(std::io::stderr(), "soak {s}");
    });
    let growth = report.end.live_bytes - report.warm.live_bytes;
    let per_cycle = growth as f64 / (cycles - warmup) as f64;
    let _ = writeln!(
        std::io::stderr(),
        "soak: {} cycles in {:.1} s, {} resumed handshakes\n  before {}\n  start  {}\n  warm   {}\n  end    {}\n  after  {}\n  live heap growth after warm-up: {growth} bytes ({per_cycle:.1} per cycle)",
        report.cycles,
        report.elapsed.as_secs_f64(),
        report.resumed,
        report.before,
        report.start,
        report.warm,
        report.end,
        report.after
    );
    assert_eq!(
        report.end.fds, report.start.fds,
        "open descriptors grew over the soak"
    );
    assert_eq!(
        report.after.fds, report.before.fds,
        "descriptors left open after the soak"
    );
    assert!(
        per_cycle < 200.0,
        "live heap grows {per_cycle:.1} bytes per cycle"
    );
    assert!(
        report.resumed >= cycles / 2,
        "sessions resume across cycles"
    );
}
