//! [`Flooder`]: a hostile loopback P-CSCF (issue 12 §5). It registers the UE (a 401, then a
//! 200, through the [`PcscfCore`] and a [`SharedRegistrar`]), then only writes CRLFCRLF
//! pings, one TLS record each, and never reads again. It serves one connection at a time,
//! as many as the UE opens, until dropped.
//!
//! Its listening socket has a small receive buffer (inherited by each accepted connection), so
//! the kernel soon stops taking what the UE writes and the UE's own queue is what grows.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::pcscf::PcscfCore;
use crate::registrar::{RegistrarConfig, SharedRegistrar};
use crate::tls::{server_config, TlsVersions};
use crate::{CertKind, TestPki};

/// A registered P-CSCF that floods pings and never reads; stops when dropped.
pub struct Flooder {
    addr: SocketAddr,
    pki: Arc<TestPki>,
    pings: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Flooder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flooder")
            .field("addr", &self.addr)
            .field("pings", &self.pings())
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl Flooder {
    /// Listens on 127.0.0.1 (an ephemeral port) with the good leaf of `pki` and a receive
    /// buffer of `receive_buffer` bytes per connection (the kernel rounds it up), and pings
    /// as fast as the UE's socket takes them.
    pub fn start(pki: Arc<TestPki>, receive_buffer: usize) -> io::Result<Flooder> {
        Flooder::start_paced(pki, receive_buffer, Duration::ZERO)
    }

    /// Like [`start`](Self::start), with `pause` between two ping records: a UE that runs
    /// slowly (under Valgrind) then reads a few pings at a time instead of decrypting
    /// hundreds per read, and reaches its outgoing cap in reasonable time.
    pub fn start_paced(
        pki: Arc<TestPki>,
        receive_buffer: usize,
        pause: Duration,
    ) -> io::Result<Flooder> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_recv_buffer_size(receive_buffer)?;
        let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&bind.into())?;
        socket.listen(4)?;
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let server = server_config(&pki, CertKind::Good, TlsVersions::Both, false)
            .map_err(io::Error::other)?;
        let registrar = SharedRegistrar::new(RegistrarConfig::default());
        let pings = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_pings, thread_connections, thread_stop) =
            (pings.clone(), connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let flow = thread_connections.fetch_add(1, Ordering::Relaxed) + 1;
                        let Ok(core) = PcscfCore::new(server.clone(), registrar.clone(), flow)
                        else {
                            return;
                        };
                        serve(stream, core, pause, &thread_pings, &thread_stop);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Flooder {
            addr,
            pki,
            pings,
            connections,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PKI whose root the UE must trust.
    pub fn pki(&self) -> &Arc<TestPki> {
        &self.pki
    }

    /// Ping records the kernel took so far (all connections).
    pub fn pings(&self) -> u64 {
        self.pings.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    mut core: PcscfCore,
    pause: Duration,
    pings: &AtomicU64,
    stop: &AtomicBool,
) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_millis(20))))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_millis(200))));
    if setup.is_err() {
        return;
    }
    // Register the UE: a 401, then a 200.
    let mut buf = vec![0u8; 16 * 1024];
    while core.answered() < 2 && !stop.load(Ordering::Acquire) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => core.receive(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        if !write_fully(&mut stream, &core.take_output(), stop) {
            return;
        }
    }
    // Then pings only, and never a read again.
    while !stop.load(Ordering::Acquire) {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        core.send_ping();
        // The core logs each ping it sends; this P-CSCF keeps no log (its heap would grow).
        drop(core.take_observations());
        if !write_fully(&mut stream, &core.take_output(), stop) {
            return; // the UE closed the flow
        }
        pings.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes all of `bytes`, waiting as long as the UE does not read (a record cut short would
/// corrupt the TLS stream); false when the connection failed or the flooder stops.
fn write_fully(stream: &mut TcpStream, mut bytes: &[u8], stop: &AtomicBool) -> bool {
    while !bytes.is_empty() {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}
