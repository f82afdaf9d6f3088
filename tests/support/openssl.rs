//! A real OpenSSL `s_server` as a legacy or hostile P-CSCF, on 127.0.0.1, with its `-msg`
//! trace captured so tests read the alerts from the peer's own log instead of assuming them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imstls::_internal_test_exports::tls::{Closure, TlsFlow, TlsProfile};
use imstls::{Candidate, TlsFailure};

/// A running `openssl s_server`. Killed on drop.
pub struct OpensslServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl OpensslServer {
    /// Starts `openssl s_server -accept 127.0.0.1:0 -cert .. -key .. -msg <extra args>` with
    /// the system OpenSSL configuration disabled (Debian's raises the minimum to TLS 1.2).
    pub fn start(cert: &Path, key: &Path, extra: &[&str]) -> OpensslServer {
        Self::start_with_config(cert, key, extra, Path::new("/dev/null"))
    }

    /// Like [`start`](Self::start) with `config` as the OpenSSL configuration file (for what
    /// only SSL_CONF can switch off, e.g. `Options = -ExtendedMasterSecret`).
    pub fn start_with_config(
        cert: &Path,
        key: &Path,
        extra: &[&str],
        config: &Path,
    ) -> OpensslServer {
        assert!(
            openssl_available(),
            "these tests need the openssl command line tool (apt-get install openssl)"
        );
        let mut child = Command::new("openssl")
            .arg("s_server")
            .args(["-accept", "127.0.0.1:0", "-msg", "-cert"])
            .arg(cert)
            .arg("-cert_chain")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(extra)
            .env("OPENSSL_CONF", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_server starts");
        let stdin = child.stdin.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            let port_tx = port_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("ACCEPT ") {
                        if let Some(port) = rest.rsplit(':').next().and_then(|p| p.parse().ok()) {
                            let _ = port_tx.send(port);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let port: u16 = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("s_server printed its ACCEPT line");
        OpensslServer {
            child,
            _stdin: stdin,
            port,
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the trace has a line containing every one of `parts`.
    pub fn wait_for_line(&self, parts: &[&str], timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return Some(line.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a line to s_server's stdin (its interactive commands: `R` renegotiate, ...).
    pub fn command(&mut self, line: &str) {
        let _ = self._stdin.write_all(line.as_bytes());
        let _ = self._stdin.flush();
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives a [`TlsFlow`] handshake over a real socket until it completes or fails. The
/// flow's output (including a fatal alert) is always written before returning.
pub fn handshake_over_socket(
    profile: &TlsProfile,
    port: u16,
) -> (TlsFlow, TcpStream, Result<(), TlsFailure>) {
    let candidate: Candidate = format!("pcscf.ims.test:{port}").parse().unwrap();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to s_server");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut flow = TlsFlow::connect(profile, &candidate).unwrap();
    let mut buf = vec![0u8; 32 * 1024];
    let result = loop {
        if let Some(out) = flow.take_transmit() {
            if socket.write_all(&out).is_err() {
                break Ok(());
            }
        }
        if flow.is_established() {
            break Ok(());
        }
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => match flow.receive_eof() {
                Closure::Failed(f) => break Err(f),
                Closure::Clean => break Ok(()),
            },
            Ok(n) => {
                if let Err(failure) = flow.receive(&buf[..n]) {
                    break Err(failure);
                }
            }
        }
    };
    if let Some(out) = flow.take_transmit() {
        let _ = socket.write_all(&out);
    }
    (flow, socket, result)
}

/// PEM files of the test PKI for `kind`, in a fresh temporary directory.
pub fn pem_files(kind: imstls_testkit::CertKind) -> (tempdir::TempDir, PathBuf, PathBuf) {
    let dir = tempdir::TempDir::new();
    let (cert, key, _root) = super::pki().write_pem_files(dir.path(), kind).unwrap();
    (dir, cert, key)
}

pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        #[allow(clippy::new_without_default)]
        pub fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "imstls-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
