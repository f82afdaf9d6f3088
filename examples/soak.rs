//! The long soak run: loss → re-register cycles of the engine over loopback sockets against
//! the embedded P-CSCF simulator, sampling resident memory, open descriptors and live heap
//! bytes. After a warm-up of a tenth of the run (at least 300 cycles), the rest is split into four equal windows;
//! the run fails (exit 1) when a window's live heap grows by 8 bytes per cycle or more, when
//! descriptors do not come back, or when sessions do not resume. The last line of stdout is
//! the JSON summary that `scripts/soak_table.sh` turns into the docs/ROBUSTNESS.md table. The
//! short version runs in CI as `tests/soak.rs`.
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
    let warmup = (cycles / 10).max(300);
    let report = soak_run::soak(cycles, warmup, 4, 1000, |s| eprintln!("{s}"));
    eprintln!(
        "{} loss → re-register cycles in {:.1} s ({:.2} ms per cycle), {} resumed handshakes",
        report.cycles,
        report.elapsed.as_secs_f64(),
        report.elapsed.as_secs_f64() * 1000.0 / report.cycles as f64,
        report.resumed
    );
    for w in &report.windows {
        eprintln!(
            "  window cycles {}..={}: live heap floor {} -> {} bytes ({:.2} per cycle)",
            w.first_cycle,
            w.last_cycle,
            w.floor_before,
            w.floor_after,
            w.growth_per_cycle()
        );
    }
    let failures = report.failures();
    for failure in &failures {
        eprintln!("FAIL: {failure}");
    }
    println!("{}", report.json());
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
