//! The long soak run: loss → re-register cycles of the engine over loopback sockets against
//! the embedded P-CSCF simulator, printing resident memory, open descriptors and live heap
//! bytes as it goes (docs/ROBUSTNESS.md has the figures). The short version runs in CI as
//! `tests/soak.rs`.
//!
//! Run: `cargo run --release --example soak -- [CYCLES]` (default 10 000).

#[path = "../tests/support/soak_run.rs"]
mod soak_run;
#[path = "../tests/support/socket_link.rs"]
#[allow(dead_code)]
mod socket_link;
#[path = "support/stack.rs"]
mod stack;

fn main() {
    let cycles: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let warmup = (cycles / 10).max(1);
    let report = soak_run::soak(cycles, warmup, 1000, |s| println!("{s}"));
    let growth = report.end.live_bytes - report.warm.live_bytes;
    println!(
        "{} loss → re-register cycles in {:.1} s ({:.2} ms per cycle), {} resumed handshakes",
        report.cycles,
        report.elapsed.as_secs_f64(),
        report.elapsed.as_secs_f64() * 1000.0 / report.cycles as f64,
        report.resumed
    );
    println!("  before the simulator and engine: {}", report.before);
    println!("  after the first registration:    {}", report.start);
    println!("  after the warm-up:               {}", report.warm);
    println!("  after the last cycle:            {}", report.end);
    println!("  after dropping everything:       {}", report.after);
    println!(
        "  live heap growth after warm-up: {growth} bytes ({:.2} per cycle); fds {} → {}",
        growth as f64 / (cycles - warmup) as f64,
        report.start.fds,
        report.end.fds
    );
}
