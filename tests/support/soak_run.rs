//! The soak: loss → re-register cycles of the real engine over loopback sockets against the
//! socket simulator, in one process, with the process's resident memory, open descriptors
//! and live heap bytes sampled along the way. Shared by `tests/soak.rs` (short, in CI) and
//! `examples/soak.rs` (the long documented run). Both binaries get this module's counting
//! global allocator.

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

pub struct SoakReport {
    pub cycles: usize,
    pub elapsed: Duration,
    pub resumed: usize,
    /// Before the engine and the simulator exist.
    pub before: Sample,
    /// After the first registration.
    pub start: Sample,
    /// After the warm-up cycles (caches full).
    pub warm: Sample,
    /// After the last cycle.
    pub end: Sample,
    /// After everything is dropped again.
    pub after: Sample,
}

/// Registers, then runs `cycles` times: the simulator resets the connection (RST), the
/// engine notices, opens a new flow at once, registers again and proves the flow with a
/// pong. Panics if a cycle does not complete within 10 s (a hang guard, not a timing
/// criterion).
pub fn soak(
    cycles: usize,
    warmup: usize,
    every: usize,
    mut progress: impl FnMut(&Sample),
) -> SoakReport {
    let before = sample(0);
    let started = Instant::now();
    let (report, resumed) = {
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
            if cycle == warmup {
                warm = sample(cycle);
                progress(&warm);
            } else if cycle % every == 0 {
                progress(&sample(cycle));
            }
        }
        let end = sample(cycles);
        progress(&end);
        ((start, warm, end), resumed)
    };
    let after = sample(cycles);
    SoakReport {
        cycles,
        elapsed: started.elapsed(),
        resumed,
        before,
        start: report.0,
        warm: report.1,
        end: report.2,
        after,
    }
}
