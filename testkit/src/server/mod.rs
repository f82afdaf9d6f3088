//! [`Simulator`]: the loopback P-CSCF on real sockets, one thread per connection, each running a
//! [`PcscfCore`](crate::pcscf::PcscfCore), with fault knobs.
//!
//! Every thread stops when the simulator is shut down or dropped: the accept loop polls a
//! non-blocking listener, connection loops use short read timeouts. Logs go to stderr only when
//! `IMSTLS_SIM_LOG=1`.

mod connection;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::log::sim_log;
use crate::observation::Observation;
use crate::pki::{CertKind, TestPki};
use crate::registrar::{RegistrarConfig, SharedRegistrar};
use crate::tls::{server_config, TlsVersions};

/// How long `kill_connections`, `close_connections` and `send_to_all` wait for connection
/// threads to act before returning.
const COMMAND_WAIT: Duration = Duration::from_secs(2);

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The P-CSCF FQDN the test PKI is generated for (default `pcscf.ims.test`).
    pub server_name: String,
    /// Listening address (default `127.0.0.1:0`; `[::1]:0` works too).
    pub bind: SocketAddr,
    /// The certificate served (default [`CertKind::Good`]).
    pub cert: CertKind,
    /// TLS versions accepted (default both).
    pub tls_versions: TlsVersions,
    /// Send a CertificateRequest (accepting an empty answer), which a P-CSCF shall not do.
    pub request_client_cert: bool,
    /// The registrar behind the P-CSCF.
    pub registrar: RegistrarConfig,
    /// Initial fault.
    pub fault: Fault,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            server_name: "pcscf.ims.test".to_owned(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: CertKind::Good,
            tls_versions: TlsVersions::Both,
            request_client_cert: false,
            registrar: RegistrarConfig::default(),
            fault: Fault::None,
        }
    }
}

/// Misbehaviour to inject. Message counts start when the fault is applied to a connection (at
/// accept for new connections, at [`Simulator::set_fault`] for open ones) and count SIP requests
/// answered; they take effect only once the TLS handshake is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// After answering N SIP requests: close_notify, then FIN.
    CloseAfterMessages(usize),
    /// After answering N SIP requests: TCP RST (SO_LINGER 0).
    ResetAfterMessages(usize),
    /// After answering N SIP requests: answer nothing more, not even pings; keep the socket open.
    SilentAfterMessages(usize),
    /// Hold every post-handshake output (responses, pongs, requests) for this long.
    DelayResponses(Duration),
    /// Reset new connections right after accepting them (open connections are unaffected).
    ResetOnAccept,
    /// Accept TCP on new connections but never answer TLS (open connections are unaffected).
    SilentHandshake,
}

/// A command for one connection thread.
#[derive(Debug)]
enum Command {
    Kill,
    Close,
    Send(Vec<u8>),
    Ping,
}

/// The mailbox between the simulator handle and one connection thread.
#[derive(Debug, Default)]
struct Control {
    commands: Mutex<Vec<Command>>,
    finished: AtomicBool,
}

impl Control {
    fn post(&self, command: Command) {
        lock(&self.commands).push(command);
    }

    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *lock(&self.commands))
    }

    fn idle(&self) -> bool {
        self.finished.load(Ordering::Acquire) || lock(&self.commands).is_empty()
    }
}

struct Connection {
    control: Arc<Control>,
    thread: JoinHandle<()>,
}

/// State shared by the handle, the accept thread and the connection threads.
struct Shared {
    pki: Arc<TestPki>,
    tls_versions: TlsVersions,
    request_client_cert: bool,
    configs: Mutex<HashMap<CertKind, Arc<ServerConfig>>>,
    cert: Mutex<CertKind>,
    fault: Mutex<(u64, Fault)>,
    registrar: SharedRegistrar,
    log: Mutex<Vec<(usize, Observation)>>,
    log_changed: Condvar,
    connections: Mutex<Vec<Connection>>,
    shutdown: AtomicBool,
    accepted: AtomicUsize,
}

impl Shared {
    /// The long-lived config for the current certificate kind (one per kind, so that sessions
    /// resume within a kind and never across a certificate change).
    fn current_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let kind = *lock(&self.cert);
        let mut configs = lock(&self.configs);
        if let Some(config) = configs.get(&kind) {
            return Ok(config.clone());
        }
        let config = server_config(&self.pki, kind, self.tls_versions, self.request_client_cert)?;
        configs.insert(kind, config.clone());
        Ok(config)
    }

    fn fault(&self) -> (u64, Fault) {
        lock(&self.fault).clone()
    }

    fn observe(&self, connection: usize, observation: Observation) {
        sim_log!("conn {connection}: {observation:?}");
        lock(&self.log).push((connection, observation));
        self.log_changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// The loopback P-CSCF.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("server_name", &self.shared.pki.server_name())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates a test PKI for `config.server_name`, binds, and starts accepting.
    pub fn start(config: SimConfig) -> io::Result<Simulator> {
        let pki = Arc::new(TestPki::generate(&config.server_name));
        Simulator::start_with_pki(config, pki)
    }

    /// Like [`Simulator::start`] with a given PKI (its server name wins over
    /// `config.server_name`), e.g. to share one trust anchor between several simulators.
    pub fn start_with_pki(config: SimConfig, pki: Arc<TestPki>) -> io::Result<Simulator> {
        let shared = Arc::new(Shared {
            pki,
            tls_versions: config.tls_versions,
            request_client_cert: config.request_client_cert,
            configs: Mutex::new(HashMap::new()),
            cert: Mutex::new(config.cert),
            fault: Mutex::new((0, config.fault)),
            registrar: SharedRegistrar::new(config.registrar),
            log: Mutex::new(Vec::new()),
            log_changed: Condvar::new(),
            connections: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
        });
        // Fail early (and not in a connection thread) if the configuration cannot be built.
        shared
            .current_config()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let listener = TcpListener::bind(config.bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        sim_log!("listening on {addr} as {}", shared.pki.server_name());
        let accept_shared = shared.clone();
        let accept_thread = std::thread::Builder::new()
            .name(format!("imstls-sim-accept-{}", addr.port()))
            .spawn(move || accept_loop(&accept_shared, &listener))?;
        Ok(Simulator {
            shared,
            addr,
            accept_thread: Some(accept_thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PKI: `root_pem()` for the UE's trust anchors, CRLs, pins.
    pub fn pki(&self) -> &TestPki {
        &self.shared.pki
    }

    /// A shared handle to the PKI.
    pub fn pki_arc(&self) -> Arc<TestPki> {
        self.shared.pki.clone()
    }

    /// Changes the fault for new connections and, where it makes sense, open ones.
    pub fn set_fault(&self, fault: Fault) {
        let mut slot = lock(&self.shared.fault);
        *slot = (slot.0 + 1, fault);
    }

    /// Changes the certificate served by new connections. Each kind has its own long-lived
    /// server config and session cache, so a UE never resumes into a different certificate;
    /// switching back to an earlier kind lets its sessions resume again.
    pub fn set_cert(&self, kind: CertKind) {
        *lock(&self.shared.cert) = kind;
    }

    /// Resets (RST) every open connection now.
    pub fn kill_connections(&self) {
        self.broadcast(|| Command::Kill, true);
    }

    /// Sends close_notify and FIN on every open connection now.
    pub fn close_connections(&self) {
        self.broadcast(|| Command::Close, false);
    }

    /// Pushes a terminating request (e.g. MESSAGE) on every open connection.
    pub fn send_to_all(&self, sip: &[u8]) {
        self.broadcast(|| Command::Send(sip.to_vec()), false);
    }

    /// Sends a CRLFCRLF ping on every open connection.
    pub fn ping_all(&self) {
        self.broadcast(|| Command::Ping, false);
    }

    /// Everything observed so far, tagged with the connection number (1 = first accepted).
    pub fn observations(&self) -> Vec<(usize, Observation)> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the observations so far.
    pub fn clear_observations(&self) {
        lock(&self.shared.log).clear();
    }

    /// The first observation (from the start of the log, so nothing is missed) matching `pred`,
    /// waiting up to `timeout` for it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Observation) -> bool,
    ) -> Option<Observation> {
        self.wait_for_entry(timeout, |_, o| pred(o)).map(|(_, o)| o)
    }

    /// Like [`Simulator::wait_for`], with the connection number given to the predicate and
    /// returned.
    pub fn wait_for_entry(
        &self,
        timeout: Duration,
        pred: impl Fn(usize, &Observation) -> bool,
    ) -> Option<(usize, Observation)> {
        self.wait_until(timeout, |log| {
            log.iter().find(|(c, o)| pred(*c, o)).cloned()
        })
    }

    /// Waits up to `timeout` until at least `count` observations match `pred`; returns all the
    /// matches then, or `None` on timeout.
    pub fn wait_for_count(
        &self,
        timeout: Duration,
        count: usize,
        pred: impl Fn(&Observation) -> bool,
    ) -> Option<Vec<(usize, Observation)>> {
        self.wait_until(timeout, |log| {
            let matches: Vec<_> = log.iter().filter(|(_, o)| pred(o)).cloned().collect();
            (matches.len() >= count).then_some(matches)
        })
    }

    fn wait_until<T>(
        &self,
        timeout: Duration,
        check: impl Fn(&[(usize, Observation)]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut log = lock(&self.shared.log);
        loop {
            if let Some(found) = check(&log) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            log = self
                .shared
                .log_changed
                .wait_timeout(log, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// TCP connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Connections whose thread is still running.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.connections)
            .iter()
            .filter(|c| !c.control.finished.load(Ordering::Acquire))
            .count()
    }

    /// The registrar: knobs (`set_stale_next`, `set_reject_all_with`, `set_flow_timer`) and
    /// bindings.
    pub fn registrar(&self) -> SharedRegistrar {
        self.shared.registrar.clone()
    }

    /// Stops every thread and closes every socket (also done on drop).
    pub fn shutdown(self) {
        drop(self);
    }

    /// Posts a command to every open connection and waits (bounded) until they took it, or
    /// until their threads have ended when `until_finished`.
    fn broadcast(&self, make: impl Fn() -> Command, until_finished: bool) {
        let controls: Vec<Arc<Control>> = lock(&self.shared.connections)
            .iter()
            .filter(|c| !c.control.finished.load(Ordering::Acquire))
            .map(|c| c.control.clone())
            .collect();
        for control in &controls {
            control.post(make());
        }
        let deadline = Instant::now() + COMMAND_WAIT;
        let done = |c: &Arc<Control>| {
            if until_finished {
                c.finished.load(Ordering::Acquire)
            } else {
                c.idle()
            }
        };
        while Instant::now() < deadline && !controls.iter().all(done) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in connections {
            let _ = connection.thread.join();
        }
        sim_log!("simulator on {} stopped", self.addr);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, peer)) => {
                let number = shared.accepted.fetch_add(1, Ordering::AcqRel) + 1;
                shared.observe(number, Observation::Accepted { peer });
                let control = Arc::new(Control::default());
                let thread_shared = shared.clone();
                let thread_control = control.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("imstls-sim-conn-{number}"))
                    .spawn(move || {
                        connection::run(&thread_shared, number, stream, &thread_control);
                        thread_control.finished.store(true, Ordering::Release);
                    });
                match spawned {
                    Ok(thread) => {
                        let mut connections = lock(&shared.connections);
                        reap_finished(&mut connections);
                        connections.push(Connection { control, thread });
                    }
                    Err(e) => shared.observe(number, Observation::TransportError(e.to_string())),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                sim_log!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Joins the threads of connections that have ended.
fn reap_finished(connections: &mut Vec<Connection>) {
    let (done, open): (Vec<_>, Vec<_>) = std::mem::take(connections)
        .into_iter()
        .partition(|c| c.thread.is_finished());
    *connections = open;
    for connection in done {
        let _ = connection.thread.join();
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not wedge the simulator).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
