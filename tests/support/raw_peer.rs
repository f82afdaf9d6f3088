//! A small raw-socket fake P-CSCF on 127.0.0.1 for what no real TLS server will do: answer the
//! ClientHello with a crafted ServerHello (SSL 3.0 version, an unoffered suite, compression),
//! trickle bytes (slowloris), or reset at a chosen moment. It keeps its own log of what the UE
//! sent back, with plaintext alert records decoded, so tests read the UE's alert from the
//! peer's side of the wire.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the fake server does with each accepted connection.
#[derive(Clone, Debug)]
pub enum RawScript {
    /// Reset the connection as soon as it is accepted.
    ResetOnAccept,
    /// Read the ClientHello, then reset.
    ResetAfterHello,
    /// Read the ClientHello, then send `reply(client_hello)`, then log what comes back.
    Reply(fn(&[u8]) -> Vec<u8>),
    /// Read the ClientHello, then send `bytes` one at a time, `every` apart (slowloris).
    Trickle { bytes: Vec<u8>, every: Duration },
    /// Read the ClientHello, then say nothing (TCP open, TLS silent).
    Silent,
    /// Read the ClientHello, then send `bytes` and shut the write side (TCP half-close)
    /// while still reading.
    ReplyThenHalfClose(Vec<u8>),
}

/// A running fake server; stops accepting when dropped.
pub struct RawPeer {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawPeer {
    pub fn start(script: RawScript) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !thread_stop.load(std::sync::atomic::Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (log, script, stop) =
                            (thread_log.clone(), script.clone(), thread_stop.clone());
                        workers.push(std::thread::spawn(move || {
                            serve(stream, script, &log, &stop)
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        RawPeer {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn push(log: &Mutex<Vec<String>>, line: String) {
    log.lock().unwrap().push(line);
}

/// Closes with SO_LINGER 0: the kernel sends RST instead of FIN.
pub fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Reads one whole TLS record (the ClientHello), bounded in time.
fn read_record(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).ok()?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    let mut record = header.to_vec();
    record.extend_from_slice(&body);
    Some(record)
}

fn serve(
    mut stream: TcpStream,
    script: RawScript,
    log: &Mutex<Vec<String>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    push(log, "accepted".into());
    if let RawScript::ResetOnAccept = script {
        push(log, ">>> reset".into());
        return reset(stream);
    }
    let Some(hello) = read_record(&mut stream) else {
        push(log, "<<< no ClientHello".into());
        return;
    };
    push(
        log,
        format!("<<< ClientHello record of {} bytes", hello.len()),
    );
    match script {
        RawScript::ResetOnAccept => unreachable!(),
        RawScript::ResetAfterHello => {
            push(log, ">>> reset".into());
            return reset(stream);
        }
        RawScript::Reply(reply) => {
            let bytes = reply(&hello);
            push(log, format!(">>> {} crafted bytes", bytes.len()));
            let _ = stream.write_all(&bytes);
        }
        RawScript::Trickle { bytes, every } => {
            let _ = stream.set_nonblocking(true);
            for byte in bytes {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(every);
                // Stop as soon as the UE gave up.
                let mut probe = [0u8; 256];
                match stream.read(&mut probe) {
                    Ok(0) => {
                        push(log, "<<< eof while trickling".into());
                        return;
                    }
                    Ok(n) => log_records(log, &probe[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        push(log, format!("<<< error while trickling: {e}"));
                        return;
                    }
                }
            }
            let _ = stream.set_nonblocking(false);
        }
        RawScript::Silent => {}
        RawScript::ReplyThenHalfClose(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(Shutdown::Write);
            push(log, ">>> FIN (write side shut)".into());
        }
    }
    // Log whatever the UE sends until it closes (bounded).
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Acquire) {
        match stream.read(&mut buf) {
            Ok(0) => {
                push(log, "<<< eof".into());
                return;
            }
            Ok(n) => log_records(log, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                push(log, format!("<<< error: {e}"));
                return;
            }
        }
    }
}

/// Logs each record; plaintext alerts are decoded (`<<< alert fatal protocol_version`).
fn log_records(log: &Mutex<Vec<String>>, mut bytes: &[u8]) {
    while bytes.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        let Some(body) = bytes.get(5..5 + len) else {
            break;
        };
        if bytes[0] == 21 && len == 2 {
            let level = if body[0] == 2 { "fatal" } else { "warning" };
            let name = imstls::alert_name(imstls::AlertDescription::from(body[1]));
            push(log, format!("<<< alert {level} {name}"));
        } else {
            push(log, format!("<<< record type {} of {len} bytes", bytes[0]));
        }
        bytes = &bytes[5 + len..];
    }
}

/// The legacy session id a ClientHello record carries (for a TLS 1.3 ServerHello to echo).
pub fn client_session_id(hello: &[u8]) -> Vec<u8> {
    // record header 5, handshake header 4, version 2, random 32
    let at = 5 + 4 + 2 + 32;
    let len = usize::from(hello[at]);
    hello[at + 1..at + 1 + len].to_vec()
}

/// A ServerHello record: `version` in both the record and the message, `suite`,
/// `compression`, and raw `extensions` (empty: none).
pub fn server_hello(
    version: u16,
    session_id: &[u8],
    suite: u16,
    compression: u8,
    extensions: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    // A fixed random without a TLS 1.3 downgrade sentinel.
    body.extend((0u8..32).map(|i| i.wrapping_mul(7).wrapping_add(3)));
    body.push(session_id.len() as u8);
    body.extend_from_slice(session_id);
    body.extend_from_slice(&suite.to_be_bytes());
    body.push(compression);
    if !extensions.is_empty() {
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
    }
    let mut handshake = vec![2u8];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22u8];
    record.extend_from_slice(&version.to_be_bytes());
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// TLS 1.3 ServerHello extensions: supported_versions = TLS 1.3 and an X25519 key share.
pub fn tls13_extensions() -> Vec<u8> {
    let mut ext = vec![0x00, 0x2b, 0x00, 0x02, 0x03, 0x04];
    ext.extend_from_slice(&[0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    ext.extend(std::iter::repeat_n(0x42u8, 32));
    ext
}
