//! B3: recovery latency. A registered, proven flow (REGISTER → 200 and the first keep-alive
//! pong received) is closed by the P-CSCF; we time from the moment the P-CSCF starts closing
//! to the moment its listener reads the first byte of the UE's new ClientHello.
//!
//! The P-CSCF is a small std `TcpListener` (blocking accept, blocking first read, so the
//! timestamps are not quantised by a poll) serving each connection with the testkit's
//! sans-IO `PcscfCore` in its own thread; the UE is the imstls engine driven over std sockets
//! with its default configuration (keep-alive on, resumption on). Two ways of closing,
//! interleaved: close_notify + FIN, and a TCP RST.
//!
//! The anchor: bare rustls (resumption on) in the same kind of socket loop — block on the
//! read, and on close_notify, FIN or RST drop the connection and reconnect at once — against
//! its own P-CSCF of the same kind, its rounds interleaved with imstls's. The difference is
//! what imstls adds to a recovery.
//!
//! Knobs: `IMSTLS_BENCH_RECOVERY_ROUNDS` (per closing kind, default 500).
//! Run: `cargo bench --bench recovery`.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::{Event, UeConfig};
use imstls_testkit::ua::UaConfig;
use imstls_testkit::{PcscfFactory, TestPki};
use socket2::SockRef;
use support::clients::{bare_config, BareClient, Error, ImstlsClient};
use support::{block_spread, env_usize, spread_verdict, us, Summary, Table};

const SERVER_NAME: &str = "pcscf.ims.test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    CloseNotifyFin,
    Reset,
}

impl Closing {
    fn label(self) -> &'static str {
        match self {
            Closing::CloseNotifyFin => "close_notify + FIN",
            Closing::Reset => "TCP RST",
        }
    }
}

/// The P-CSCF side: accepts, serves with `PcscfCore`, closes on command, and reports
/// close → first ClientHello byte.
fn serve(
    listener: TcpListener,
    mut factory: PcscfFactory,
    commands: Receiver<Closing>,
    results: Sender<Duration>,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut closed_at: Option<Instant> = None;
    loop {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let n = stream.read(&mut buf)?;
        let first_byte = Instant::now();
        if let Some(t0) = closed_at.take() {
            if results.send(first_byte - t0).is_err() {
                return Ok(());
            }
        }
        if n == 0 {
            continue;
        }
        let mut core = factory.connection()?;
        core.receive(&buf[..n]);
        stream.write_all(&core.take_output())?;
        // Short reads so that commands are seen; the close timestamp is taken at the close
        // itself, so this poll does not enter the measurement.
        stream.set_read_timeout(Some(Duration::from_millis(1)))?;
        loop {
            match commands.try_recv() {
                Ok(Closing::CloseNotifyFin) => {
                    closed_at = Some(Instant::now());
                    core.close_notify();
                    stream.write_all(&core.take_output())?;
                    drop(stream); // FIN
                    break;
                }
                Ok(Closing::Reset) => {
                    SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                    closed_at = Some(Instant::now());
                    drop(stream); // RST
                    break;
                }
                Err(TryRecvError::Disconnected) => return Ok(()),
                Err(TryRecvError::Empty) => {}
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    core.receive(&buf[..n]);
                    let out = core.take_output();
                    if !out.is_empty() {
                        stream.write_all(&out)?;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }
}

/// A P-CSCF of the kind above on its own loopback listener: (address, commands, results).
fn start_pcscf(
    pki: &Arc<TestPki>,
) -> Result<(SocketAddr, Sender<Closing>, Receiver<Duration>), Error> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let factory = PcscfFactory::new(pki.clone());
    let (command_tx, command_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("pcscf".into())
        .spawn(move || {
            if let Err(e) = serve(listener, factory, command_rx, result_tx) {
                eprintln!("[bench] P-CSCF thread: {e}");
            }
        })?;
    Ok((addr, command_tx, result_rx))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Imstls,
    Bare,
}

/// Rounds per block: the verdict reads the spread of the block medians.
const BLOCK: usize = 25;

fn main() -> Result<(), Error> {
    let rounds = env_usize("IMSTLS_BENCH_RECOVERY_ROUNDS", 500);
    let warmup = 20;

    let pki = Arc::new(TestPki::generate(SERVER_NAME));
    let (addr, command_tx, result_rx) = start_pcscf(&pki)?;
    let (bare_addr, bare_command_tx, bare_result_rx) = start_pcscf(&pki)?;

    let config = UeConfig::builder()
        .pcscf(addr.to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pki.root_pem())
        .build()?;
    let mut client = ImstlsClient::new(config, UaConfig::default())?;
    client.register()?;
    client.drive(|e| matches!(e, Event::PongReceived { .. }))?;
    // The same group list, in the same order, as the imstls profile; resumption on.
    let groups = client_groups(&pki, addr)?;
    let mut bare = BareClient::new(
        bare_config(pki.root_der(), &groups, true)?,
        SERVER_NAME,
        bare_addr,
        UaConfig::default(),
    )?;
    bare.register()?;

    let mut samples: Vec<(Kind, Closing, Duration)> = Vec::new();
    let total = warmup + 2 * rounds;
    for i in 0..total {
        let closing = if (i / 2) % 2 == i % 2 {
            Closing::CloseNotifyFin
        } else {
            Closing::Reset
        };
        // Alternate which client goes first.
        let order = if i % 2 == 0 {
            [Kind::Imstls, Kind::Bare]
        } else {
            [Kind::Bare, Kind::Imstls]
        };
        for kind in order {
            let latency = match kind {
                Kind::Imstls => {
                    command_tx.send(closing)?;
                    // The engine sees the loss, opens a new flow at once (first retry after
                    // losing a proven registration is immediate), registers, and proves the
                    // flow again.
                    client.drive(|e| matches!(e, Event::ConnectionLost { .. }))?;
                    client.drive(|e| matches!(e, Event::Registered { .. }))?;
                    client.drive(|e| matches!(e, Event::PongReceived { .. }))?;
                    result_rx.recv_timeout(Duration::from_secs(10))?
                }
                Kind::Bare => {
                    bare_command_tx.send(closing)?;
                    bare.wait_for_loss()?;
                    bare.register()?;
                    bare_result_rx.recv_timeout(Duration::from_secs(10))?
                }
            };
            if i >= warmup {
                samples.push((kind, closing, latency));
            }
        }
        if (i + 1) % 200 == 0 {
            progress!("recovery round {}/{total}", i + 1);
        }
    }
    let resumed = client.negotiated.as_ref().is_some_and(|n| n.resumed);
    let bare_resumed = bare.negotiated.as_ref().is_some_and(|n| n.resumed);
    drop((command_tx, bare_command_tx));

    println!("## B3 — recovery latency (P-CSCF closes a registered flow → new ClientHello)\n");
    println!(
        "From the P-CSCF starting to close a registered flow (whose keep-alive pong has \
         proved it) to the P-CSCF reading the first byte of the UE's next ClientHello, on \
         127.0.0.1: the UE reads the close, the engine reports the loss, closes the socket, \
         asks for a new TCP connection at once, and the driver connects and writes the \
         ClientHello (which offers resumption: last handshake resumed = {resumed}). \
         Anchor: bare rustls with resumption (last handshake resumed = {bare_resumed}) in \
         the same kind of socket loop (a blocking read; on close_notify, FIN or RST it drops \
         the connection and reconnects at once) against its own P-CSCF of the same kind, \
         the two clients taking turns round by round. {rounds} rounds per closing kind and \
         client after {warmup} warm-up rounds, interleaved; µs. Verdict on the median \
         against the target by the spread of the medians of blocks of {BLOCK} rounds \
         (*met* when the block p90 is within it).\n"
    );
    let mut table = Table::new(&[
        "client",
        "P-CSCF closes with",
        "median",
        "p10",
        "p90",
        "p99",
        "max",
        "block median p10–p90",
        "target (median)",
        "verdict",
    ]);
    let mut medians = Vec::new();
    for kind in [Kind::Imstls, Kind::Bare] {
        for closing in [Some(Closing::CloseNotifyFin), Some(Closing::Reset), None] {
            let values: Vec<f64> = samples
                .iter()
                .filter(|(k, c, _)| *k == kind && closing.is_none_or(|want| *c == want))
                .map(|(_, _, d)| d.as_secs_f64() * 1e6)
                .collect();
            let s = Summary::of(&values);
            let (p10, p90) = block_spread(&values, BLOCK);
            let (target, verdict) = match kind {
                Kind::Imstls => (
                    "≤ 2000".to_owned(),
                    spread_verdict(p10, p90, 2000.0).to_owned(),
                ),
                Kind::Bare => ("— (anchor)".to_owned(), "—".to_owned()),
            };
            let client_label = match kind {
                Kind::Imstls => "imstls (engine + driver loop)",
                Kind::Bare => "bare rustls, same socket loop",
            };
            let closing_label = closing.map_or("both", Closing::label);
            table.row(&[
                client_label.to_owned(),
                closing_label.to_owned(),
                us(s.median),
                us(s.p10),
                us(s.p90),
                us(s.p99),
                us(s.max),
                format!("{}–{}", us(p10), us(p90)),
                target,
                verdict,
            ]);
            medians.push((kind, closing, s.median));
            eprintln!(
                "[bench] RESULT B3|{client_label}|{closing_label}|median_us={:.1}|p99_us={:.1}",
                s.median, s.p99
            );
        }
    }
    println!("{}", table.render());
    let both = |kind| {
        medians
            .iter()
            .find(|(k, c, _)| *k == kind && c.is_none())
            .map_or(f64::NAN, |m| m.2)
    };
    let (a, b) = (both(Kind::Imstls), both(Kind::Bare));
    println!(
        "What imstls adds to a recovery (median, both closing kinds): {} µs ({:.2}× the bare \
         rustls loop).\n",
        us(a - b),
        a / b
    );
    // The P-CSCF threads end with the process.
    drop((client, bare));
    Ok(())
}

/// The key-exchange groups of the imstls profile, in its order.
fn client_groups(pki: &Arc<TestPki>, addr: SocketAddr) -> Result<Vec<imstls::KxGroup>, Error> {
    Ok(UeConfig::builder()
        .pcscf(addr.to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pki.root_pem())
        .build()?
        .kx_groups()
        .to_vec())
}
