//! B4: heap held by one registered, idle UE, with 1,000 UEs in one process, against bare
//! rustls `ClientConnection`s that went through the same exchange and sit established and
//! idle.
//!
//! Each client talks in memory to its own testkit `PcscfCore` (a rustls server and the
//! registrar; one subscriber per client): TLS 1.3 handshake, REGISTER → 401 → REGISTER → 200
//! (imstls then sends its first keep-alive ping and reads the pong, as it does on every new
//! registration). The global allocator is `stats_alloc`'s counting wrapper around the system
//! allocator. Heap per client = (live bytes before − live bytes after dropping the clients) /
//! their number: only what the clients own is counted, never the P-CSCF side, which stays
//! alive. Bytes are what was requested from the allocator (malloc's own per-block overhead is
//! not included); the `Vec` holding the clients counts, so each client's inline size is in.
//!
//! A second measurement ages 100 UEs by a simulated day on the engine's caller-supplied
//! clock (keep-alives every 95–120 s, refreshes, each answered by the P-CSCF) to show what an
//! idle UE holds after a while. Like for like: both sides' SIP framers give back a drained
//! receive buffer, and with resumption each side's session tickets are counted — the bare
//! client then has its own `ClientConfig` (a clone of the shared one) with a one-server
//! session cache, since a cache shared by every client is keyed by server name and would
//! hold one client's tickets for all of them.
//!
//! Knobs: `IMSTLS_BENCH_UES` (default 1000), `IMSTLS_BENCH_AGED_UES` (default 100).
//! Run: `cargo bench --bench memory`.

mod support;

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::{Event, Output, Ue, UeConfig};
use imstls_testkit::ua::{Ua, UaConfig};
use imstls_testkit::{PcscfCore, PcscfFactory, RegistrarConfig, TestPki, TlsVersions};
use rustls::ClientConnection;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use support::clients::{bare_config, Error};
use support::inmem::{bare_in_memory, pump};
use support::{env_usize, kib, ratio, verdict, Table};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SERVER_NAME: &str = "pcscf.ims.test";

/// (live bytes, live allocations) right now.
fn live() -> (i64, i64) {
    let s = GLOBAL.stats();
    (
        s.bytes_allocated as i64 - s.bytes_deallocated as i64,
        s.allocations as i64 - s.deallocations as i64,
    )
}

/// Heap per client: live bytes and allocations freed by dropping `clients`, divided by their
/// number.
fn freed_per_client<T>(clients: Vec<T>) -> (f64, f64) {
    let n = clients.len() as f64;
    let before = live();
    drop(clients);
    let after = live();
    (
        (before.0 - after.0) as f64 / n,
        (before.1 - after.1) as f64 / n,
    )
}

/// Registers `ue` with `core` in memory, until its first keep-alive pong.
fn register_in_memory(ue: &mut Ue, ua: &mut Ua, core: &mut PcscfCore) -> Result<(), Error> {
    let now = Instant::now();
    let identity = imstls::Identity::new(&ua.config().impi, &[&ua.config().impu])?;
    ue.start_registration(now, identity)?;
    if pump(ue, ua, core, now, |e| {
        matches!(e, Event::PongReceived { .. })
    })? {
        Ok(())
    } else {
        Err(format!(
            "stuck in {:?}; the P-CSCF saw {:?}",
            ue.state(),
            core.observations()
        )
        .into())
    }
}

/// Lets `ue` sit registered for `idle` on a simulated clock: every timer it asks for
/// (keep-alive pings, refreshes) fires and the P-CSCF answers.
fn age_in_memory(
    ue: &mut Ue,
    ua: &mut Ua,
    core: &mut PcscfCore,
    idle: Duration,
) -> Result<(), Error> {
    let end = Instant::now() + idle;
    while let Some(at) = ue.next_timeout() {
        if at > end {
            break;
        }
        ue.handle_timeout(at);
        pump(ue, ua, core, at, |_| false)?;
        core.take_observations();
    }
    if ue.state() != imstls::UeState::Registered {
        return Err(format!("aged UE ended in {:?}", ue.state()).into());
    }
    Ok(())
}

struct Row {
    name: &'static str,
    bytes: f64,
    allocations: f64,
}

/// Conformance-log entries per UE.
fn log_entries(ues: &[Ue]) -> f64 {
    let entries: usize = ues.iter().map(|ue| ue.conformance_log().count()).sum();
    entries as f64 / ues.len() as f64
}

/// Session tickets each UE keeps (they stay: the bare clients' are counted too).
fn tickets_per_ue(ues: &[Ue]) -> f64 {
    let kept: usize = ues.iter().map(|ue| ue.profile().sessions().len()).sum();
    kept as f64 / ues.len() as f64
}

/// A bare client's own configuration: the shared one (provider, verifier, roots shared
/// through its `Arc`s) with a session cache for its one P-CSCF, so that its tickets are its
/// own and counted with it.
fn own_cache_config(shared: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = (**shared).clone();
    config.resumption = rustls::client::Resumption::in_memory_sessions(1)
        .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOrTickets);
    Arc::new(config)
}

fn main() -> Result<(), Error> {
    let n = env_usize("IMSTLS_BENCH_UES", 1000);
    let aged = env_usize("IMSTLS_BENCH_AGED_UES", 100);
    let pki = Arc::new(TestPki::generate(SERVER_NAME));
    // One subscriber per client: a registrar answers a REGISTER with every binding of the
    // address-of-record, so clients sharing one AOR would make the 200 OK grow without end.
    let registrar = RegistrarConfig {
        users: (0..=n.max(aged))
            .map(|i| (format!("ue{i}@ims.test"), format!("secret-{i}")))
            .collect(),
        ..RegistrarConfig::default()
    };
    let subscriber = |i: usize| UaConfig {
        impi: format!("ue{i}@ims.test"),
        impu: format!("sip:ue{i}@ims.test"),
        password: format!("secret-{i}").into(),
        ..UaConfig::default()
    };
    let mut factory = PcscfFactory::with(pki.clone(), TlsVersions::Both, false, registrar);
    let builder = || {
        UeConfig::builder()
            .pcscf("192.0.2.1:5061") // never dialled: the flows are in memory
            .server_name(SERVER_NAME)
            .trust_anchors_pem(pki.root_pem())
    };
    let config = builder().build()?;
    let no_resumption = builder().resumption(false).build()?;
    let groups = config.kx_groups().to_vec();
    let mut rows = Vec::new();

    // Warm up lazily initialised statics (provider tables, ...) on both sides.
    {
        let mut core = factory.connection()?;
        let mut ua = Ua::new(subscriber(n));
        let mut ue = Ue::new(config.clone(), Instant::now())?;
        register_in_memory(&mut ue, &mut ua, &mut core)?;
        let mut core = factory.connection()?;
        bare_in_memory(
            bare_config(pki.root_der(), &groups, true)?,
            SERVER_NAME,
            &mut ua,
            &mut core,
        )?;
    }

    // 1. imstls: n registered, idle UEs sharing one UeConfig, without resumption and with
    //    it (the default: each UE's own session store keeps the tickets its P-CSCF sent,
    //    and they are counted).
    let mut tickets = 0.0;
    let mut young_log = 0.0;
    for (name, config, default) in [
        ("imstls `Ue`, resumption off", &no_resumption, false),
        (
            "imstls `Ue`, default config, with its session tickets",
            &config,
            true,
        ),
    ] {
        progress!("registering {n} imstls UEs in memory ({name})");
        let mut cores = Vec::with_capacity(n);
        let mut uas = Vec::with_capacity(n);
        let mut ues = Vec::with_capacity(n);
        for i in 0..n {
            let mut core = factory.connection()?;
            let mut ua = Ua::new(subscriber(i));
            let mut ue = Ue::new(config.clone(), Instant::now())?;
            register_in_memory(&mut ue, &mut ua, &mut core)?;
            ues.push(ue);
            cores.push(core);
            uas.push(ua);
        }
        if default {
            tickets = tickets_per_ue(&ues);
            young_log = log_entries(&ues);
        }
        let (bytes, allocations) = freed_per_client(ues);
        rows.push(Row {
            name,
            bytes,
            allocations,
        });
        drop(cores);
        drop(uas);
    }
    let fresh: Vec<Ue> = (0..n)
        .map(|_| Ue::new(config.clone(), Instant::now()))
        .collect::<Result<_, _>>()?;
    let (bytes, allocations) = freed_per_client(fresh);
    rows.push(Row {
        name: "imstls `Ue::new` only (never registered)",
        bytes,
        allocations,
    });

    // 2. bare rustls, one ClientConfig shared by every connection (as a bare integration
    //    would do), without and with its in-memory session cache (which lives in the shared
    //    config, keyed by server name: one client's tickets, not counted per connection: a
    //    reference only), and each with its own session cache (its tickets counted).
    for (name, resumption, own_cache) in [
        (
            "bare rustls `ClientConnection` + SIP framer, resumption off",
            false,
            false,
        ),
        (
            "bare rustls `ClientConnection` + SIP framer, session cache in the shared config (tickets not counted; reference)",
            true,
            false,
        ),
        (
            "bare rustls `ClientConnection` + SIP framer + own `ClientConfig` clone and session cache, with its tickets",
            true,
            true,
        ),
    ] {
        progress!("establishing {n} bare rustls connections in memory ({name})");
        let shared = bare_config(pki.root_der(), &groups, resumption)?;
        let mut cores = Vec::with_capacity(n);
        let mut uas = Vec::with_capacity(n);
        let mut flows = Vec::with_capacity(n);
        for i in 0..n {
            let mut core = factory.connection()?;
            let mut ua = Ua::new(subscriber(i));
            let config = if own_cache {
                own_cache_config(&shared)
            } else {
                shared.clone()
            };
            flows.push(bare_in_memory(
                config,
                SERVER_NAME,
                &mut ua,
                &mut core,
            )?);
            cores.push(core);
            uas.push(ua);
        }
        let (bytes, allocations) = freed_per_client(flows);
        rows.push(Row {
            name,
            bytes,
            allocations,
        });
        drop(cores);
        drop(uas);
    }

    // 3. UEs that sat registered for a simulated day: default config, then without the
    //    conformance log (what a handset that never reads it would choose).
    let no_log = builder().conformance_log_entries(0).build()?;
    let mut old_log = 0.0;
    let mut old_tickets = 0.0;
    for (config, name) in [
        (
            &config,
            "imstls `Ue`, default config, after 24 h registered (simulated clock), with its session tickets",
        ),
        (
            &no_log,
            "imstls `Ue`, conformance log off, after 24 h registered (simulated clock), with its session tickets",
        ),
    ] {
        progress!("ageing {aged} imstls UEs by 24 h of simulated time: {name}");
        let mut cores = Vec::with_capacity(aged);
        let mut uas = Vec::with_capacity(aged);
        let mut ues = Vec::with_capacity(aged);
        for i in 0..aged {
            let mut core = factory.connection()?;
            let mut ua = Ua::new(subscriber(i));
            let mut ue = Ue::new(config.clone(), Instant::now())?;
            register_in_memory(&mut ue, &mut ua, &mut core)?;
            age_in_memory(&mut ue, &mut ua, &mut core, Duration::from_secs(24 * 3600))?;
            ues.push(ue);
            cores.push(core);
            uas.push(ua);
        }
        if config.conformance_log_entries() > 0 {
            old_log = log_entries(&ues);
            old_tickets = tickets_per_ue(&ues);
        }
        let (bytes, allocations) = freed_per_client(ues);
        rows.push(Row {
            name,
            bytes,
            allocations,
        });
        drop(cores);
        drop(uas);
    }

    // The shared configuration itself, once per process.
    let before = live();
    let one = builder().build()?;
    let after = live();
    drop(one);

    report(&Report {
        n,
        aged,
        rows: &rows,
        tickets,
        young_log,
        old_log,
        old_tickets,
        config_bytes: (after.0 - before.0) as f64,
    });
    Ok(())
}

struct Report<'a> {
    n: usize,
    aged: usize,
    rows: &'a [Row],
    /// Session tickets per UE just after registering.
    tickets: f64,
    /// Conformance-log entries per UE just after registering, and after 24 h.
    young_log: f64,
    old_log: f64,
    /// Session tickets per UE after 24 h.
    old_tickets: f64,
    config_bytes: f64,
}

fn report(r: &Report<'_>) {
    let (n, rows) = (r.n, r.rows);
    println!("## B4 — heap per registered idle UE ({n} in one process)\n");
    println!(
        "Each client registered in memory against its own `PcscfCore` (TLS 1.3, REGISTER → \
         401 → REGISTER → 200; imstls also did its first keep-alive ping/pong, as it does on \
         every new registration) and then sits idle. Heap per client = bytes freed when the \
         clients are dropped / their number (`stats_alloc` counting allocator: requested \
         bytes, without malloc's block overhead; each client's inline size included). Both \
         sides' SIP framers give back a drained receive buffer. The bare clients share one \
         `ClientConfig`, except with their own session cache (a shallow clone of the shared \
         config each, as the tickets of a cache shared by all, keyed by server name, would \
         be one client's); the imstls UEs share one `UeConfig` but each owns its TLS \
         profile (rustls `ClientConfig`, verifier, session store), which resumption towards \
         its own P-CSCF needs. Tickets stay and are counted on both sides where resumption \
         is on. Inline sizes: `Ue` {} bytes, \
         `ClientConnection` {} bytes; an engine `Output` is {} bytes.\n",
        std::mem::size_of::<Ue>(),
        std::mem::size_of::<ClientConnection>(),
        std::mem::size_of::<Output>(),
    );
    let mut table = Table::new(&["client", "heap per client", "bytes", "live allocations"]);
    for row in rows {
        table.row(&[
            row.name.to_owned(),
            kib(row.bytes),
            format!("{:.0}", row.bytes),
            format!("{:.1}", row.allocations),
        ]);
    }
    println!("{}", table.render());
    let mut table = Table::new(&[
        "ratio (same resumption state on both sides)",
        "value",
        "target",
        "verdict",
    ]);
    for (label, a, b) in [
        ("imstls / bare, resumption off", &rows[0], &rows[3]),
        (
            "imstls / bare, resumption on, tickets counted on both sides",
            &rows[1],
            &rows[5],
        ),
        (
            "imstls after 24 h / bare, resumption on, tickets on both sides",
            &rows[6],
            &rows[5],
        ),
        (
            "imstls after 24 h, conformance log off / bare, resumption on, tickets on both sides",
            &rows[7],
            &rows[5],
        ),
    ] {
        let x = a.bytes / b.bytes;
        table.row(&[
            label.to_owned(),
            ratio(x),
            "≤ 1.2".to_owned(),
            verdict(x, 1.2).to_owned(),
        ]);
        eprintln!("[bench] RESULT B4|{label}|{x:.4}");
    }
    println!("{}", table.render());
    println!(
        "Where an imstls UE's bytes go: its own TLS profile ({} for a fresh `Ue`, inline \
         size included, before any flow); resumption (the difference between the resumption \
         rows and the resumption-off rows) costs imstls {} per UE with {:.1} live session \
         tickets just after registering ({:.1} still live after 24 h; expired tickets \
         stay stored, and counted, until the store drops them), and the bare \
         client {} with its own config clone and cache; the conformance log: {:.0} entries just after registering, \
         {:.0} after 24 h ({} UEs aged), where it costs {} per UE (the difference between the \
         two 24 h rows). One `UeConfig` (trust anchors, chain verifier, provider; shared by \
         every UE) adds {} once per process.\n",
        kib(rows[2].bytes),
        kib(rows[1].bytes - rows[0].bytes),
        r.tickets,
        r.old_tickets,
        kib(rows[5].bytes - rows[3].bytes),
        r.young_log,
        r.old_log,
        r.aged,
        kib(rows[6].bytes - rows[7].bytes),
        kib(r.config_bytes),
    );
}
