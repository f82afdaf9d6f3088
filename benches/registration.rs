//! B1 and B2: the full registration cycle over real loopback sockets against the testkit
//! simulator — TCP connect, TLS handshake, REGISTER → 401 → REGISTER → 200 — through imstls
//! and through bare rustls with the same provider, suites, groups and SIP bytes.
//!
//! The variants take turns cycle by cycle (round-robin, the order rotating every round), so
//! that the noise of this shared machine falls on all of them alike; ratios are taken over
//! all cycles and per block of 25 rounds (their spread), and an A/A pair of identical bare
//! clients shows the noise floor of a ratio. Figures only, no pass/fail.
//!
//! Knobs: `IMSTLS_BENCH_CYCLES` (measured cycles per variant, default 1000),
//! `IMSTLS_BENCH_WARMUP` (default 30 per variant), `IMSTLS_BENCH_ONLY` (comma-separated
//! variant names to keep), `IMSTLS_BENCH_DUMP` (CSV of every sample).
//!
//! Run: `cargo bench --bench registration` (markdown on stdout, progress on stderr).

mod support;

use std::sync::Arc;
use std::time::Duration;

use imstls::{KeepAlive, UeConfig};
use imstls_testkit::tls::TlsVersions as SimVersions;
use imstls_testkit::ua::UaConfig;
use imstls_testkit::{SimConfig, Simulator, TestPki};
use support::clients::{bare_config, BareClient, Error, ImstlsClient, Negotiated};
use support::{env_usize, measure, ratio, us, verdict, Sample, Summary, Table};

const SERVER_NAME: &str = "pcscf.ims.test";

enum Client {
    Imstls(Box<ImstlsClient>),
    Bare(Box<BareClient>),
}

impl Client {
    fn register(&mut self) -> Result<(), Error> {
        match self {
            Client::Imstls(c) => c.register(),
            Client::Bare(c) => c.register(),
        }
    }

    fn negotiated(&self) -> Option<&Negotiated> {
        match self {
            Client::Imstls(c) => c.negotiated.as_ref(),
            Client::Bare(c) => c.negotiated.as_ref(),
        }
    }
}

struct Variant {
    name: &'static str,
    client: Client,
    expect_resumed: bool,
    samples: Vec<Sample>,
}

fn imstls_config(sim: &Simulator, resumption: bool) -> Result<UeConfig, Error> {
    Ok(UeConfig::builder()
        .pcscf(sim.addr().to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(sim.pki().root_pem())
        .resumption(resumption)
        // Keep-alive would add a ping/pong after the 200 OK: not part of the cycle.
        .keepalive(KeepAlive {
            enabled: false,
            ..KeepAlive::default()
        })
        .build()?)
}

fn imstls(
    name: &'static str,
    sim: &Simulator,
    resumption: bool,
    expect_resumed: bool,
) -> Result<Variant, Error> {
    let client = ImstlsClient::new(imstls_config(sim, resumption)?, UaConfig::default())?;
    Ok(Variant {
        name,
        client: Client::Imstls(Box::new(client)),
        expect_resumed,
        samples: Vec::new(),
    })
}

fn bare(
    name: &'static str,
    sim: &Simulator,
    resumption: bool,
    expect_resumed: bool,
) -> Result<Variant, Error> {
    // The same group list, in the same order, as the imstls profile.
    let groups = imstls_config(sim, false)?.kx_groups().to_vec();
    let config = bare_config(sim.pki().root_der(), &groups, resumption)?;
    let client = BareClient::new(config, SERVER_NAME, sim.addr(), UaConfig::default())?;
    Ok(Variant {
        name,
        client: Client::Bare(Box::new(client)),
        expect_resumed,
        samples: Vec::new(),
    })
}

/// Rounds per block: the spread of a ratio is that of its per-block values.
const BLOCK: usize = 25;

#[inline(never)] // callgrind counts instructions inside it (`--toggle-collect`)
fn run_cycle(variant: &mut Variant, record: bool) -> Result<(), Error> {
    let (sample, result) = measure(|| variant.client.register());
    result.map_err(|e| format!("{}: {e}", variant.name))?;
    let negotiated = variant.client.negotiated().ok_or("nothing negotiated")?;
    if negotiated.resumed != variant.expect_resumed {
        return Err(format!(
            "{}: expected resumed={} but got {negotiated}",
            variant.name, variant.expect_resumed
        )
        .into());
    }
    if record {
        variant.samples.push(sample);
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let cycles = env_usize("IMSTLS_BENCH_CYCLES", 1000);
    let warmup = env_usize("IMSTLS_BENCH_WARMUP", 30);

    let pki = Arc::new(TestPki::generate(SERVER_NAME));
    let sim13 = Simulator::start_with_pki(SimConfig::default(), pki.clone())?;
    // The resuming clients get their own P-CSCF: its session cache (256 entries, oldest
    // evicted first) then holds only their tickets, not the ones every full handshake adds.
    let sim13r = Simulator::start_with_pki(SimConfig::default(), pki.clone())?;
    let sim12 = Simulator::start_with_pki(
        SimConfig {
            tls_versions: SimVersions::Tls12Only,
            ..SimConfig::default()
        },
        pki,
    )?;

    let mut variants = vec![
        imstls("imstls TLS 1.3 full", &sim13, false, false)?,
        bare("bare rustls TLS 1.3 full", &sim13, false, false)?,
        imstls("imstls TLS 1.2 full", &sim12, false, false)?,
        bare("bare rustls TLS 1.2 full", &sim12, false, false)?,
        imstls("imstls TLS 1.3 resumed", &sim13r, true, true)?,
        bare("bare rustls TLS 1.3 resumed", &sim13r, true, true)?,
        // A second, identical bare client: the A/A ratio shows the noise floor of a ratio.
        bare("bare rustls TLS 1.3 full (A/A twin)", &sim13, false, false)?,
    ];

    // `IMSTLS_BENCH_ONLY=imstls TLS 1.3 full` (comma-separated names) keeps only some
    // variants, e.g. to profile one of them; the ratio table then needs both sides.
    if let Ok(only) = std::env::var("IMSTLS_BENCH_ONLY") {
        variants.retain(|v| only.split(',').any(|o| v.name == o.trim()));
    }

    // Warm-up: also primes the session caches of the resuming variants (the very first
    // cycle of those is a full handshake, hence the unchecked first call).
    for v in &mut variants {
        v.client
            .register()
            .map_err(|e| format!("{}: {e}", v.name))?;
        for _ in 0..warmup {
            run_cycle(v, false)?;
        }
    }
    progress!("warm-up done; {cycles} cycles per variant, round-robin");

    let n = variants.len();
    for round in 0..cycles {
        for k in 0..n {
            // Rotate the order each round (and reverse it every other round).
            let i = if round % 2 == 0 {
                (round + k) % n
            } else {
                (round + n - 1 - k) % n
            };
            run_cycle(&mut variants[i], true)?;
        }
        if (round + 1) % 100 == 0 {
            for sim in [&sim13, &sim13r, &sim12] {
                sim.clear_observations();
            }
            progress!("round {}/{cycles}", round + 1);
        }
    }

    if let Ok(path) = std::env::var("IMSTLS_BENCH_DUMP") {
        // Every sample, for a closer look: variant,cpu_us,wall_us (in the order measured).
        let mut csv = String::from("variant,cpu_us,wall_us\n");
        for v in &variants {
            for s in &v.samples {
                csv.push_str(&format!(
                    "{},{:.1},{:.1}\n",
                    v.name,
                    s.cpu.as_secs_f64() * 1e6,
                    s.wall.as_secs_f64() * 1e6
                ));
            }
        }
        std::fs::write(path, csv)?;
    }
    report(&variants, cycles, warmup);
    Ok(())
}

fn find<'a>(variants: &'a [Variant], name: &str) -> Option<&'a Variant> {
    variants.iter().find(|v| v.name == name)
}

/// Ratio of the medians of `a` and `b` over all cycles, and p10/p90 of the per-block ratios.
fn ratios(a: &Variant, b: &Variant, pick: fn(&Sample) -> Duration) -> (f64, f64, f64) {
    let median = |samples: &[Sample]| Summary::of_durations(samples.iter().map(pick)).median;
    let overall = median(&a.samples) / median(&b.samples);
    let blocks: Vec<f64> = a
        .samples
        .chunks(BLOCK)
        .zip(b.samples.chunks(BLOCK))
        .map(|(x, y)| median(x) / median(y))
        .collect();
    let s = Summary::of(&blocks);
    (overall, s.p10, s.p90)
}

fn report(variants: &[Variant], cycles: usize, warmup: usize) {
    println!("## B1/B2 — registration cycle over loopback sockets\n");
    println!(
        "One cycle = TCP connect + TLS handshake + REGISTER → 401 → REGISTER (Digest MD5, \
         qop=auth) → 200 OK, against the testkit `Simulator` (P-CSCF threads in the same \
         process, on the other core). **CPU** is the client thread's CPU time \
         (`CLOCK_THREAD_CPUTIME_ID`: user + kernel, so socket syscalls count); **wall** is \
         the client's elapsed time and includes the simulator's work and its 2 ms accept \
         poll, identical for both clients. {cycles} cycles per variant after {warmup} warm-up \
         cycles, the variants taking turns cycle by cycle in a rotating order; µs, median \
         (p10–p90) over all cycles.\n"
    );
    let mut table = Table::new(&[
        "variant",
        "negotiated",
        "CPU µs median (p10–p90)",
        "wall µs median (p10–p90)",
    ]);
    for v in variants {
        let cpu = Summary::of_durations(v.samples.iter().map(|s| s.cpu));
        let wall = Summary::of_durations(v.samples.iter().map(|s| s.wall));
        table.row(&[
            v.name.to_owned(),
            v.client
                .negotiated()
                .map(ToString::to_string)
                .unwrap_or_default(),
            format!("{} ({}–{})", us(cpu.median), us(cpu.p10), us(cpu.p90)),
            format!("{} ({}–{})", us(wall.median), us(wall.p10), us(wall.p90)),
        ]);
    }
    println!("{}", table.render());

    println!(
        "Ratios: median A / median B over all cycles, and [p10–p90] of the ratios of the \
         {} blocks of {BLOCK} rounds (each block's medians, taken side by side).\n",
        cycles / BLOCK
    );
    let mut table = Table::new(&[
        "bench",
        "A / B",
        "CPU ratio [block p10–p90]",
        "wall ratio [block p10–p90]",
        "target (CPU)",
        "verdict",
    ]);
    let pairs: [(&str, &str, &str, f64); 5] = [
        (
            "B1",
            "imstls TLS 1.3 full",
            "bare rustls TLS 1.3 full",
            1.03,
        ),
        (
            "B2",
            "imstls TLS 1.2 full",
            "bare rustls TLS 1.2 full",
            1.03,
        ),
        ("B2", "imstls TLS 1.3 resumed", "imstls TLS 1.3 full", 0.5),
        (
            "B2 (reference)",
            "bare rustls TLS 1.3 resumed",
            "bare rustls TLS 1.3 full",
            f64::NAN,
        ),
        (
            "A/A (noise floor)",
            "bare rustls TLS 1.3 full (A/A twin)",
            "bare rustls TLS 1.3 full",
            f64::NAN,
        ),
    ];
    let mut machine = Vec::new();
    for (bench, a, b, target) in pairs {
        let (Some(va), Some(vb)) = (find(variants, a), find(variants, b)) else {
            continue;
        };
        let (c, cmin, cmax) = ratios(va, vb, |s| s.cpu);
        let (w, wmin, wmax) = ratios(va, vb, |s| s.wall);
        let (target_text, verdict_text) = if target.is_nan() {
            ("—".to_owned(), "—".to_owned())
        } else {
            (format!("≤ {target}"), verdict(c, target).to_owned())
        };
        table.row(&[
            bench.to_owned(),
            format!("{a} / {b}"),
            format!("{} [{}–{}]", ratio(c), ratio(cmin), ratio(cmax)),
            format!("{} [{}–{}]", ratio(w), ratio(wmin), ratio(wmax)),
            target_text,
            verdict_text,
        ]);
        machine.push(format!("{bench}|{a}|{b}|cpu={c:.4}|wall={w:.4}"));
    }
    println!("{}", table.render());
    for line in machine {
        eprintln!("[bench] RESULT {line}");
    }
}
