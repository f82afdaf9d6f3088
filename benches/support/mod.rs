#![allow(dead_code)] // each bench uses part of it
//! Shared by the imstls benchmarks (`harness = false` binaries that print figures, never
//! pass/fail): clocks, statistics, markdown output, and two clients that run the same
//! registration over std sockets — the `imstls::Ue` engine and bare rustls — with the same SIP
//! bytes from the testkit's `Ua`.

pub mod clients;
pub mod inmem;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// CPU time consumed so far by the calling thread (user + system), from
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`. (`/proc/thread-self/schedstat` is only updated
/// at scheduler ticks, 4 ms here, so it cannot time a 1 ms registration.)
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// One measured cycle: client thread CPU time and wall time.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub cpu: Duration,
    pub wall: Duration,
}

/// Times `f` on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (Sample, T) {
    let wall0 = Instant::now();
    let cpu0 = thread_cpu();
    let out = f();
    let cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    (Sample { cpu, wall }, out)
}

/// Order statistics of a set of values (microseconds as f64).
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        assert!(!values.is_empty(), "no samples");
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            // nearest-rank percentile
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        };
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Summary {
            n: v.len(),
            min: v[0],
            p10: q(10.0),
            median,
            p90: q(90.0),
            p99: q(99.0),
            max: v[v.len() - 1],
        }
    }

    pub fn of_durations(values: impl IntoIterator<Item = Duration>) -> Summary {
        let v: Vec<f64> = values.into_iter().map(|d| d.as_secs_f64() * 1e6).collect();
        Summary::of(&v)
    }
}

/// Microseconds, printed with a sensible precision.
pub fn us(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

pub fn ratio(v: f64) -> String {
    format!("{v:.3}")
}

/// Bytes as KiB with one decimal.
pub fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// A markdown table builder.
pub struct Table {
    out: String,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(
            out,
            "|{}",
            headers.iter().map(|_| "---|").collect::<String>()
        );
        Table { out }
    }

    pub fn row(&mut self, cells: &[String]) {
        let _ = writeln!(self.out, "| {} |", cells.join(" | "));
    }

    pub fn render(self) -> String {
        self.out
    }
}

/// `met` / `missed` for a deterministic value (instruction counts, heap bytes) against a
/// target that it must not exceed.
pub fn verdict(value: f64, target: f64) -> &'static str {
    if value <= target {
        "met"
    } else {
        "**missed**"
    }
}

/// The verdict for a noisy figure measured in blocks (issue 13): `met` only when even the
/// block p90 is within the target, `missed` only when even the block p10 is above it, and
/// `inconclusive` when the target lies inside the block spread — one run's median cannot
/// tell which side it is on.
pub fn spread_verdict(block_p10: f64, block_p90: f64, target: f64) -> &'static str {
    if block_p90 <= target {
        "met"
    } else if block_p10 > target {
        "**missed**"
    } else {
        "inconclusive"
    }
}

/// p10 and p90 of the medians of consecutive blocks of `block` values (microseconds).
pub fn block_spread(values: &[f64], block: usize) -> (f64, f64) {
    let medians: Vec<f64> = values
        .chunks(block)
        .filter(|chunk| chunk.len() == block)
        .map(|chunk| Summary::of(chunk).median)
        .collect();
    if medians.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let s = Summary::of(&medians);
    (s.p10, s.p90)
}

/// Reads a positive integer from the environment (bench knobs), with a default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// Progress for a person watching; stdout carries only the markdown report.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bench] {}", format_args!($($arg)*)) };
}
