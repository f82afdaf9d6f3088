//! The soak: loss → re-register cycles of the real engine over loopback sockets against the
//! socket simulator, in one process, with the process's resident memory, open descriptors
//! and live heap bytes sampled along the way. Shared by `tests/soak.rs` (short, in CI) and
//! `examples/soak.rs` (the long documented run). Both binaries get this module's counting
//! global allocator.
// The global allocator below (test code, not the library): `GlobalAlloc` is an unsafe trait
// whose methods forward the caller's contract to `System` as they stand.
#![allow(unsafe_code, unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use imstls::{Event, Ue, UeConfig};
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::{SimConfig, Simulator};

use super::socket_link::SocketLink;

/// Counts live heap bytes (the whole process: engine, simulator threads, test).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// SAFETY: forwards to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// One measurement of the process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cycle: usize,
    pub rss_kib: u64,
    pub fds: usize,
    pub live_bytes: isize,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cycle {:>6}: RSS {:>6} KiB, open fds {:>3}, live heap {:>9} bytes",
            self.cycle, self.rss_kib, self.fds, self.live_bytes
        )
    }
}

pub fn sample(cycle: usize) -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    Sample {
        cycle,
        rss_kib,
        fds,
        live_bytes: LIVE.load(Ordering::Relaxed),
    }
}

/// A real leak this small must fail the verdict: 16 bytes per cycle is one small allocation.
/// The threshold is half of it.
pub const LEAK_THRESHOLD_BYTES_PER_CYCLE: f64 = 8.0;

/// How many cycles at the end of a window are taken to find its floor.
const FLOOR_SPAN: usize = 20;

/// The live heap over one window of cycles after the warm-up. Its level at each end is the
/// lowest live heap of the last cycles before that end (a floor ignores buffers that happen
/// to be alive at one sample but not at the next; a leak raises the floor).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub first_cycle: usize,
    pub last_cycle: usize,
    pub floor_before: isize,
    pub floor_after: isize,
}

impl Window {
    pub fn cycles(&self) -> usize {
        self.last_cycle + 1 - self.first_cycle
    }

    pub fn growth(&self) -> isize {
        self.floor_after - self.floor_before
    }

    pub fn growth_per_cycle(&self) -> f64 {
        self.growth() as f64 / self.cycles() as f64
    }
}

pub struct SoakReport {
    pub cycles: usize,
    pub warmup: usize,
    pub elapsed: Duration,
    pub resumed: usize,
    /// Before the engine and the simulator exist.
    pub before: Sample,
    /// After the first registration.
    pub start: Sample,
    /// After the warm-up cycles (caches full).
    pub warm: Sample,
    /// Every `every` cycles after the warm-up.
    pub along: Vec<Sample>,
    /// After the last cycle.
    pub end: Sample,
    /// After everything is dropped again.
    pub after: Sample,
    /// Equal windows after the warm-up, in order.
    pub windows: Vec<Window>,
    /// Bytes the test hook leaked per cycle (`IMSTLS_SOAK_LEAK_BYTES`; 0 in a real run).
    pub injected_leak: usize,
}

impl SoakReport {
    /// Why the run fails, if it does: descriptors not back where they were, a window whose
    /// live heap grows by the threshold or more per cycle, or fewer resumed handshakes than
    /// half the cycles.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.end.fds != self.start.fds {
            failures.push(format!(
                "open descriptors grew over the soak: {} -> {}",
                self.start.fds, self.end.fds
            ));
        }
        if self.after.fds != self.before.fds {
            failures.push(format!(
                "descriptors left open after the soak: {} -> {}",
                self.before.fds, self.after.fds
            ));
        }
        if self.windows.len() < 2 {
            failures.push(format!(
                "too few cycles after the warm-up for two windows of {FLOOR_SPAN}+ cycles"
            ));
        }
        for w in &self.windows {
            if w.growth_per_cycle() >= LEAK_THRESHOLD_BYTES_PER_CYCLE {
                failures.push(format!(
                    "live heap grows {:.2} bytes per cycle over cycles {}..={} (threshold {LEAK_THRESHOLD_BYTES_PER_CYCLE})",
                    w.growth_per_cycle(),
                    w.first_cycle,
                    w.last_cycle
                ));
            }
        }
        if self.resumed < self.cycles / 2 {
            failures.push(format!(
                "only {} of {} cycles resumed the TLS session",
                self.resumed, self.cycles
            ));
        }
        failures
    }

    /// One JSON line with everything the verdict and the ROBUSTNESS soak table use
    /// (`scripts/soak_table.sh` turns it into the table).
    pub fn json(&self) -> String {
        let sample = |label: &str, s: &Sample| {
            format!(
                "{{\"when\":\"{label}\",\"cycle\":{},\"rss_kib\":{},\"fds\":{},\"live_bytes\":{}}}",
                s.cycle, s.rss_kib, s.fds, s.live_bytes
            )
        };
        let mut samples = vec![
            sample("before", &self.before),
            sample("start", &self.start),
            sample("warm", &self.warm),
        ];
        samples.extend(self.along.iter().map(|s| sample("cycle", s)));
        samples.push(sample("end", &self.end));
        samples.push(sample("after", &self.after));
        let windows: Vec<String> = self
            .windows
            .iter()
            .map(|w| {
                format!(
                    "{{\"first_cycle\":{},\"last_cycle\":{},\"floor_before\":{},\"floor_after\":{},\"growth_bytes\":{},\"bytes_per_cycle\":{:.3}}}",
                    w.first_cycle,
                    w.last_cycle,
                    w.floor_before,
                    w.floor_after,
                    w.growth(),
                    w.growth_per_cycle()
                )
            })
            .collect();
        let failures: Vec<String> = self
            .failures()
            .iter()
            .map(|f| format!("\"{}\"", f.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!(
            "{{\"soak\":{{\"profile\":\"{}\",\"cycles\":{},\"warmup\":{},\"elapsed_s\":{:.1},\"resumed\":{},\"injected_leak_bytes_per_cycle\":{},\"threshold_bytes_per_cycle\":{LEAK_THRESHOLD_BYTES_PER_CYCLE},\"samples\":[{}],\"windows\":[{}],\"verdict\":\"{}\",\"failures\":[{}]}}}}",
            if cfg!(debug_assertions) { "debug" } else { "release" },
            self.cycles,
            self.warmup,
            self.elapsed.as_secs_f64(),
            self.resumed,
            self.injected_leak,
            samples.join(","),
            windows.join(","),
            if failures.is_empty() { "pass" } else { "fail" },
            failures.join(",")
        )
    }
}

/// Bytes to leak per cycle on purpose, to show that the verdict catches a leak this small:
/// `IMSTLS_SOAK_LEAK_BYTES=16`. Unset (0) in every real run; the JSON summary says which.
fn injected_leak() -> usize {
    std::env::var("IMSTLS_SOAK_LEAK_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Splits the cycles after the warm-up into `windows` equal windows (the first cycles of the
/// remainder, if any, join the warm-up) and finds each window's floors in `live` (the live
/// heap after each cycle, index 0 = cycle 1).
fn windows_of(live: &[isize], warmup: usize, windows: usize) -> Vec<Window> {
    let cycles = live.len();
    if windows == 0 || cycles <= warmup {
        return Vec::new();
    }
    let length = (cycles - warmup) / windows;
    if length < FLOOR_SPAN {
        return Vec::new();
    }
    let first = cycles - length * windows + 1;
    // The floor up to and including `cycle`.
    let floor = |cycle: usize| {
        live[cycle - FLOOR_SPAN..cycle]
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    };
    (0..windows)
        .map(|i| {
            let first_cycle = first + i * length;
            let last_cycle = first_cycle + length - 1;
            Window {
                first_cycle,
                last_cycle,
                floor_before: floor(first_cycle - 1),
                floor_after: floor(last_cycle),
            }
        })
        .collect()
}

/// Registers, then runs `cycles` times: the simulator resets the connection (RST), the
/// engine notices, opens a new flow at once, registers again and proves the flow with a
/// pong. After `warmup` cycles the rest is split into `windows` equal windows whose live
/// heap growth the verdict compares with the threshold. Panics if a cycle does not complete
/// within 10 s (a hang guard, not a timing criterion).
pub fn soak(
    cycles: usize,
    warmup: usize,
    windows: usize,
    every: usize,
    mut progress: impl FnMut(&Sample),
) -> SoakReport {
    assert!(
        warmup >= FLOOR_SPAN,
        "a warm-up of at least {FLOOR_SPAN} cycles"
    );
    let leak_per_cycle = injected_leak();
    let before = sample(0);
    let started = Instant::now();
    let (report, resumed, along, windows) = {
        let sim = Simulator::start(SimConfig::default()).expect("loopback simulator");
        let config = UeConfig::builder()
            .pcscf(sim.addr().to_string())
            .server_name("pcscf.ims.test")
            .trust_anchors_pem(sim.pki().root_pem())
            .random_seed(5)
            .build()
            .expect("config");
        let ue = Ue::new(config, Instant::now()).expect("engine");
        let mut link = SocketLink::new(ue, Ua::new(UaConfig::default()));
        let identity = imstls::Identity::new(
            &UaConfig::default().impi,
            &[UaConfig::default().impu.as_str()],
        )
        .expect("identity");
        link.ue
            .start_registration(Instant::now(), identity)
            .expect("start");
        assert!(
            link.run_until(Duration::from_secs(10), |l| l.count("pong_received") > 0),
            "first registration: {:?}",
            link.codes()
        );
        let start = sample(0);
        progress(&start);
        let mut warm = start;
        let mut resumed = 0;
        let mut along = Vec::new();
        let mut live = Vec::with_capacity(cycles);
        for cycle in 1..=cycles {
            // The test side forgets what it would otherwise pile up: events, the simulator's
            // observation log, the registrar's issued nonces.
            link.events.clear();
            sim.clear_observations();
            sim.registrar().lock().forget_nonces();
            sim.kill_connections();
            let done = link.run_until(Duration::from_secs(10), |l| {
                l.count("connection_lost") > 0
                    && l.count("registered") > 0
                    && l.count("pong_received") > 0
            });
            assert!(done, "cycle {cycle} did not complete: {:?}", link.codes());
            assert!(
                link.input_errors.is_empty(),
                "cycle {cycle}: {:?}",
                link.input_errors
            );
            resumed += link
                .events
                .iter()
                .filter(
                    |(_, e)| matches!(e, Event::TlsEstablished { details, .. } if details.resumed),
                )
                .count();
            if leak_per_cycle > 0 {
                Box::leak(vec![0xa5_u8; leak_per_cycle].into_boxed_slice());
            }
            link.events.clear();
            sim.clear_observations();
            live.push(LIVE.load(Ordering::Relaxed));
            if cycle == warmup {
                warm = sample(cycle);
                progress(&warm);
            } else if cycle > warmup && cycle % every == 0 {
                let s = sample(cycle);
                progress(&s);
                along.push(s);
            }
        }
        let end = sample(cycles);
        progress(&end);
        // The per-cycle record is freed before the last sample, which must not count it.
        let windows = windows_of(&live, warmup, windows);
        drop(live);
        ((start, warm, end), resumed, along, windows)
    };
    let after = sample(cycles);
    SoakReport {
        cycles,
        warmup,
        elapsed: started.elapsed(),
        resumed,
        before,
        start: report.0,
        warm: report.1,
        along,
        end: report.2,
        after,
        windows,
        injected_leak: leak_per_cycle,
    }
}
