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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::{KeepAlive, UeConfig};
use imstls_testkit::tls::TlsVersions as SimVersions;
use imstls_testkit::ua::Ua;
use imstls_testkit::ua::UaConfig;
use imstls_testkit::{SimConfig, Simulator, TestPki};
use support::clients::{bare_config, direct_pcscf, BareClient, Error, ImstlsClient, Negotiated};
use support::{env_usize, measure, ratio, spread_verdict, thread_cpu, us, Sample, Summary, Table};

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

/// Where a client registers: a simulator or a direct P-CSCF, and the PKI behind it.
struct Pcscf {
    addr: SocketAddr,
    pki: Arc<TestPki>,
}

impl Pcscf {
    fn sim(sim: &Simulator) -> Pcscf {
        Pcscf {
            addr: sim.addr(),
            pki: sim.pki_arc(),
        }
    }

    fn direct(pki: &Arc<TestPki>) -> Result<Pcscf, Error> {
        Ok(Pcscf {
            addr: direct_pcscf(pki.clone())?,
            pki: pki.clone(),
        })
    }
}

struct Variant {
    name: &'static str,
    client: Client,
    expect_resumed: bool,
    samples: Vec<Sample>,
}

fn imstls_config(pcscf: &Pcscf, resumption: bool) -> Result<UeConfig, Error> {
    Ok(UeConfig::builder()
        .pcscf(pcscf.addr.to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pcscf.pki.root_pem())
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
    pcscf: &Pcscf,
    resumption: bool,
    expect_resumed: bool,
) -> Result<Variant, Error> {
    let client = ImstlsClient::new(imstls_config(pcscf, resumption)?, UaConfig::default())?;
    Ok(Variant {
        name,
        client: Client::Imstls(Box::new(client)),
        expect_resumed,
        samples: Vec::new(),
    })
}

fn bare(
    name: &'static str,
    pcscf: &Pcscf,
    resumption: bool,
    expect_resumed: bool,
) -> Result<Variant, Error> {
    // The same group list, in the same order, as the imstls profile.
    let groups = imstls_config(pcscf, false)?.kx_groups().to_vec();
    let config = bare_config(pcscf.pki.root_der(), &groups, resumption)?;
    let client = BareClient::new(config, SERVER_NAME, pcscf.addr, UaConfig::default())?;
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
        pki.clone(),
    )?;

    let (p13, p13r, p12) = (Pcscf::sim(&sim13), Pcscf::sim(&sim13r), Pcscf::sim(&sim12));
    let mut variants = vec![
        imstls("imstls TLS 1.3 full", &p13, false, false)?,
        bare("bare rustls TLS 1.3 full", &p13, false, false)?,
        imstls("imstls TLS 1.2 full", &p12, false, false)?,
        bare("bare rustls TLS 1.2 full", &p12, false, false)?,
        imstls("imstls TLS 1.3 resumed", &p13r, true, true)?,
        bare("bare rustls TLS 1.3 resumed", &p13r, true, true)?,
        // A second, identical bare client: the A/A ratio shows the noise floor of a ratio.
        bare("bare rustls TLS 1.3 full (A/A twin)", &p13, false, false)?,
        // The simulator accepts with a 2 ms poll, which dilutes wall-time ratios: the same
        // pair against a blocking P-CSCF each.
        imstls(
            "imstls TLS 1.3 full, direct P-CSCF",
            &Pcscf::direct(&pki)?,
            false,
            false,
        )?,
        bare(
            "bare rustls TLS 1.3 full, direct P-CSCF",
            &Pcscf::direct(&pki)?,
            false,
            false,
        )?,
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
    let parse = parse_cost()?;
    let memory = in_memory_ab(&pki, cycles, warmup)?;
    report(&variants, cycles, warmup);
    report_in_memory(&memory, cycles);
    let imstls_cpu = find(&variants, "imstls TLS 1.3 full")
        .map(|v| Summary::of_durations(v.samples.iter().map(|s| s.cpu)).median);
    println!(
        "Where imstls's extra time goes, in part: checking and framing the cycle's four SIP \
         messages (imstls's `sip::parse_outgoing_message` for the two REGISTERs, as \
         `Ue::send_sip` does, `sip::parse_head` for the 401 and the 200, as the \
         engine's framer does) takes {} µs per cycle \
         when timed alone{}; the bare client's framing of the two responses (testkit \
         `Framer`) takes {} µs.\n",
        us(parse.0),
        imstls_cpu.map_or(String::new(), |cpu| format!(
            " ({:.1} % of the imstls TLS 1.3 cycle's median CPU)",
            100.0 * parse.0 / cpu
        )),
        us(parse.1),
    );
    Ok(())
}

/// imstls and bare rustls each registering against a fresh `PcscfCore` in memory, taking
/// turns cycle by cycle: no socket, no other thread, so the difference between the two is
/// the clients' own work (the P-CSCF's share, also on this thread, is the same for both).
/// Per-cycle CPU samples of (imstls, bare).
fn in_memory_ab(
    pki: &Arc<TestPki>,
    cycles: usize,
    warmup: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), Error> {
    use imstls::{Event, Identity};
    use imstls_testkit::PcscfFactory;
    use support::inmem::{bare_in_memory, pump};

    let mut factory = PcscfFactory::new(pki.clone());
    let config = UeConfig::builder()
        .pcscf("192.0.2.1:5061") // never dialled
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pki.root_pem())
        .resumption(false)
        .keepalive(KeepAlive {
            enabled: false,
            ..KeepAlive::default()
        })
        .build()?;
    let shared = bare_config(pki.root_der(), config.kx_groups(), false)?;
    let mut ue = imstls::Ue::new(config, Instant::now())?;
    let mut ue_ua = Ua::new(UaConfig::default());
    let mut bare_ua = Ua::new(UaConfig::default());
    let (mut ue_core, mut bare_core) = (factory.connection()?, factory.connection()?);
    let identity = Identity::new(&ue_ua.config().impi, &[&ue_ua.config().impu])?;
    ue.start_registration(Instant::now(), identity)?;
    let registered = |e: &Event| matches!(e, Event::Registered { .. });
    pump(
        &mut ue,
        &mut ue_ua,
        &mut ue_core,
        Instant::now(),
        registered,
    )?;
    let mut bare = Some(bare_in_memory(
        shared.clone(),
        SERVER_NAME,
        &mut bare_ua,
        &mut bare_core,
    )?);
    let (mut imstls_cpu, mut bare_cpu) = (Vec::new(), Vec::new());
    for i in 0..warmup + cycles {
        ue_core = factory.connection()?;
        let start = thread_cpu();
        ue.network_changed(Instant::now())?;
        if !pump(
            &mut ue,
            &mut ue_ua,
            &mut ue_core,
            Instant::now(),
            registered,
        )? {
            return Err(format!("in-memory imstls stuck in {:?}", ue.state()).into());
        }
        let imstls = thread_cpu() - start;
        bare_core = factory.connection()?;
        let start = thread_cpu();
        drop(bare.take()); // the previous connection goes first, as on a socket
        bare = Some(bare_in_memory(
            shared.clone(),
            SERVER_NAME,
            &mut bare_ua,
            &mut bare_core,
        )?);
        let bare_time = thread_cpu() - start;
        if i >= warmup {
            imstls_cpu.push(imstls);
            bare_cpu.push(bare_time);
        }
    }
    drop((bare, ue_core, bare_core));
    Ok((imstls_cpu, bare_cpu))
}

fn report_in_memory((imstls, bare): &(Vec<Duration>, Vec<Duration>), cycles: usize) {
    let (a, b) = (
        Summary::of_durations(imstls.iter().copied()),
        Summary::of_durations(bare.iter().copied()),
    );
    let blocks: Vec<f64> = imstls
        .chunks(BLOCK)
        .zip(bare.chunks(BLOCK))
        .map(|(x, y)| {
            Summary::of_durations(x.iter().copied()).median
                - Summary::of_durations(y.iter().copied()).median
        })
        .collect();
    let spread = Summary::of(&blocks);
    println!(
        "### B1 in memory — the clients' own work, without sockets
"
    );
    println!(
        "The same TLS 1.3 full cycle with each client wired in memory to its own `PcscfCore`, \
         on one thread (client + P-CSCF CPU, no syscalls, no scheduling), the two taking \
         turns cycle by cycle, {cycles} cycles each. The P-CSCF's share is the same for both, \
         so the difference is what imstls adds.\n"
    );
    let mut table = Table::new(&[
        "client + P-CSCF",
        "CPU µs median (p10–p90)",
        "imstls − bare, µs [block p10–p90]",
    ]);
    table.row(&[
        "imstls".to_owned(),
        format!("{} ({}–{})", us(a.median), us(a.p10), us(a.p90)),
        format!(
            "{} [{}–{}]",
            us(a.median - b.median),
            us(spread.p10),
            us(spread.p90)
        ),
    ]);
    table.row(&[
        "bare rustls".to_owned(),
        format!("{} ({}–{})", us(b.median), us(b.p10), us(b.p90)),
        String::new(),
    ]);
    println!("{}", table.render());
    eprintln!(
        "[bench] RESULT B1 in memory|imstls-bare_us={:.1}",
        a.median - b.median
    );
}

/// The four messages of a cycle (REGISTER, 401, REGISTER with credentials, 200), made by the
/// testkit `Ua` and registrar; µs per cycle to check the two REGISTERs as `Ue::send_sip`
/// does and parse the heads of the two responses as the engine's framer does,
/// and to frame the two responses with the testkit `Framer` (what the bare client does).
fn parse_cost() -> Result<(f64, f64), Error> {
    use imstls::_internal_test_exports::sip::{parse_head, parse_outgoing_message};
    use imstls_testkit::registrar::{Registrar, RegistrarConfig, RequestContext};
    use imstls_testkit::sip::{Framer, SipMessage};

    let mut ua = Ua::new(UaConfig::default());
    let mut registrar = Registrar::new(RegistrarConfig::default());
    let mut exchange = |ua: &mut Ua, request: Vec<u8>, first: bool| -> Result<_, Error> {
        let parsed = SipMessage::parse(&request)?;
        let ctx = RequestContext {
            flow: 1,
            first_on_connection: first,
        };
        let response = registrar
            .handle_request(&parsed, ctx)
            .response
            .ok_or("no response")?;
        ua.handle_response(&response);
        Ok((request, response.to_bytes()))
    };
    let first = ua.register_request(None);
    let (register, challenge) = exchange(&mut ua, first, true)?;
    let second = ua.next_register();
    let (authorized, ok) = exchange(&mut ua, second, false)?;
    let messages = [register, challenge, authorized, ok];

    let rounds = 20_000;
    let start = Instant::now();
    for _ in 0..rounds {
        for m in [&messages[0], &messages[2]] {
            let m = std::hint::black_box(m);
            std::hint::black_box(parse_outgoing_message(m, 1 << 20)?);
        }
        for m in [&messages[1], &messages[3]] {
            std::hint::black_box(parse_head(std::hint::black_box(m), 1 << 20)?);
        }
    }
    let imstls = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut framer = Framer::new();
        for m in [&messages[1], &messages[3]] {
            framer.push(std::hint::black_box(m));
            std::hint::black_box(framer.next_frame()?);
        }
    }
    let bare = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    Ok((imstls, bare))
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
         process) or, for the *direct P-CSCF* rows, a one-thread blocking P-CSCF running the \
         same `PcscfCore`. **CPU** is the client thread's CPU time \
         (`CLOCK_THREAD_CPUTIME_ID`: user + kernel, so socket syscalls count); **wall** is \
         the client's elapsed time and includes the P-CSCF's work (and, with the simulator, \
         its 2 ms accept poll), the same for both clients. Each variant resumes or not as \
         listed (imstls: `resumption(false)` in its config for the full ones), is checked on \
         every cycle, and negotiates exactly what its counterpart does. {cycles} cycles per \
         variant after {warmup} warm-up cycles, the variants taking turns cycle by cycle in a \
         rotating order; µs, median (p10–p90) over all cycles.\n"
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
         {} blocks of {BLOCK} rounds (each block's medians, taken side by side). Verdict \
         (issue 13): *met* only when the block p90 is within the target, *missed* only when \
         the block p10 is above it, otherwise *inconclusive* — the A/A row shows how far \
         one run's ratio moves on this machine. The instruction counts (callgrind) settle \
         the ≤ 3 % claims.\n",
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
    let pairs: [(&str, &str, &str, f64); 6] = [
        (
            "B1",
            "imstls TLS 1.3 full",
            "bare rustls TLS 1.3 full",
            1.03,
        ),
        (
            "B1, direct P-CSCF",
            "imstls TLS 1.3 full, direct P-CSCF",
            "bare rustls TLS 1.3 full, direct P-CSCF",
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
            (
                format!("≤ {target}"),
                spread_verdict(cmin, cmax, target).to_owned(),
            )
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
