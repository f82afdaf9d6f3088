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
use support::clients::{Error, ImstlsClient};
use support::{env_usize, us, verdict, Summary, Table};

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

fn main() -> Result<(), Error> {
    let rounds = env_usize("IMSTLS_BENCH_RECOVERY_ROUNDS", 500);
    let warmup = 20;

    let pki = Arc::new(TestPki::generate(SERVER_NAME));
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

    let config = UeConfig::builder()
        .pcscf(addr.to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pki.root_pem())
        .build()?;
    let mut client = ImstlsClient::new(config, UaConfig::default())?;
    client.register()?;
    client.drive(|e| matches!(e, Event::PongReceived { .. }))?;

    let mut samples: Vec<(Closing, Duration)> = Vec::new();
    let total = warmup + 2 * rounds;
    for i in 0..total {
        let closing = if (i / 2) % 2 == i % 2 {
            Closing::CloseNotifyFin
        } else {
            Closing::Reset
        };
        command_tx.send(closing)?;
        // The engine sees the loss, opens a new flow at once (first retry after losing a
        // proven registration is immediate), registers, and proves the flow again.
        client.drive(|e| matches!(e, Event::ConnectionLost { .. }))?;
        client.drive(|e| matches!(e, Event::Registered { .. }))?;
        client.drive(|e| matches!(e, Event::PongReceived { .. }))?;
        let latency = result_rx.recv_timeout(Duration::from_secs(10))?;
        if i >= warmup {
            samples.push((closing, latency));
        }
        if (i + 1) % 200 == 0 {
            progress!("recovery round {}/{total}", i + 1);
        }
    }
    let resumed = client.negotiated.as_ref().is_some_and(|n| n.resumed);
    drop(command_tx);

    println!("## B3 — recovery latency (P-CSCF closes a registered flow → new ClientHello)\n");
    println!(
        "From the P-CSCF starting to close a registered flow (whose keep-alive pong has \
         proved it) to the P-CSCF reading the first byte of the UE's next ClientHello, on \
         127.0.0.1: the UE reads the close, the engine reports the loss, closes the socket, \
         asks for a new TCP connection at once, and the driver connects and writes the \
         ClientHello (which offers resumption: last handshake resumed = {resumed}). \
         {rounds} rounds per closing kind after {warmup} warm-up rounds, interleaved; µs.\n"
    );
    let mut table = Table::new(&[
        "P-CSCF closes with",
        "median",
        "p10",
        "p90",
        "p99",
        "max",
        "target (median)",
        "verdict",
    ]);
    let mut all = Vec::new();
    for closing in [Closing::CloseNotifyFin, Closing::Reset] {
        let values: Vec<Duration> = samples
            .iter()
            .filter(|(c, _)| *c == closing)
            .map(|(_, d)| *d)
            .collect();
        all.extend(values.iter().copied());
        let s = Summary::of_durations(values);
        table.row(&[
            closing.label().to_owned(),
            us(s.median),
            us(s.p10),
            us(s.p90),
            us(s.p99),
            us(s.max),
            "≤ 2000".to_owned(),
            verdict(s.median, 2000.0).to_owned(),
        ]);
        eprintln!(
            "[bench] RESULT B3|{}|median_us={:.1}|p99_us={:.1}",
            closing.label(),
            s.median,
            s.p99
        );
    }
    let s = Summary::of_durations(all);
    table.row(&[
        "both".to_owned(),
        us(s.median),
        us(s.p10),
        us(s.p90),
        us(s.p99),
        us(s.max),
        "≤ 2000".to_owned(),
        verdict(s.median, 2000.0).to_owned(),
    ]);
    println!("{}", table.render());
    // The P-CSCF thread ends with the process.
    drop(client);
    Ok(())
}
