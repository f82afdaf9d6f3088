//! A fault-injecting TCP proxy on 127.0.0.1 between the UE and a real P-CSCF (the socket
//! simulator): it forwards both directions and, on command, corrupts what the P-CSCF sends
//! (a flipped bit, a replayed chunk, garbage, a truncated chunk then FIN) or half-closes the
//! connection towards the UE (FIN without close_notify while still reading).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One fault, applied once to the P-CSCF → UE direction of the live connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyFault {
    /// Flip one bit in the last byte of the next chunk.
    FlipBit,
    /// Deliver the next chunk twice.
    Replay,
    /// Deliver only the first half of the next chunk, then FIN (and stop forwarding).
    TruncateThenFin,
    /// Send these bytes to the UE now.
    Inject(Vec<u8>),
    /// FIN towards the UE now (no close_notify); keep reading what the UE sends.
    HalfClose,
}

pub struct FaultProxy {
    pub port: u16,
    fault: Arc<Mutex<Option<ProxyFault>>>,
    /// What the proxy did, in order.
    pub log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(None));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, l, s) = (fault.clone(), log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut pumps = Vec::new();
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((ue, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        pumps.extend(spawn_pumps(ue, server, &f, &l, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for pump in pumps {
                let _ = pump.join();
            }
        });
        FaultProxy {
            port,
            fault,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn inject(&self, fault: ProxyFault) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spawn_pumps(
    ue: TcpStream,
    server: TcpStream,
    fault: &Arc<Mutex<Option<ProxyFault>>>,
    log: &Arc<Mutex<Vec<String>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let _ = ue.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (ue_r, server_w) = (ue.try_clone().unwrap(), server.try_clone().unwrap());
    let stop_up = stop.clone();
    // UE -> P-CSCF: plain forwarding until either side ends.
    let up = std::thread::spawn(move || {
        let (mut from, mut to) = (ue_r, server_w);
        let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
        let mut buf = [0u8; 16 * 1024];
        while !stop_up.load(Ordering::Acquire) {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let (fault, log, stop) = (fault.clone(), log.clone(), stop.clone());
    // P-CSCF -> UE: forwarding with the fault applied.
    let down = std::thread::spawn(move || {
        let (mut from, mut to) = (server, ue);
        let _ = from.set_read_timeout(Some(Duration::from_millis(10)));
        let note = |line: &str| log.lock().unwrap().push(line.to_owned());
        let mut buf = [0u8; 16 * 1024];
        while !stop.load(Ordering::Acquire) {
            let pending = fault.lock().unwrap().clone();
            match pending {
                Some(ProxyFault::HalfClose) => {
                    *fault.lock().unwrap() = None;
                    let _ = to.shutdown(Shutdown::Write);
                    note("FIN to the UE (half-close)");
                    return;
                }
                Some(ProxyFault::Inject(bytes)) => {
                    *fault.lock().unwrap() = None;
                    let _ = to.write_all(&bytes);
                    note(&format!("injected {} bytes", bytes.len()));
                }
                _ => {}
            }
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => return,
            };
            let chunk = &mut buf[..n];
            let taken = {
                let mut slot = fault.lock().unwrap();
                match *slot {
                    Some(
                        ProxyFault::FlipBit | ProxyFault::Replay | ProxyFault::TruncateThenFin,
                    ) => slot.take(),
                    _ => None,
                }
            };
            match taken {
                Some(ProxyFault::FlipBit) => {
                    chunk[n - 1] ^= 0x01;
                    note("flipped a bit");
                    let _ = to.write_all(chunk);
                }
                Some(ProxyFault::Replay) => {
                    let _ = to.write_all(chunk);
                    let _ = to.write_all(chunk);
                    note("replayed a chunk");
                }
                Some(ProxyFault::TruncateThenFin) => {
                    let _ = to.write_all(&chunk[..n / 2]);
                    let _ = to.shutdown(Shutdown::Write);
                    note("truncated a chunk, then FIN");
                    return;
                }
                _ => {
                    if to.write_all(chunk).is_err() {
                        return;
                    }
                }
            }
        }
    });
    vec![up, down]
}
