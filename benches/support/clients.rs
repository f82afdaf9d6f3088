//! Two clients that perform the same registration over std sockets:
//!
//! - [`ImstlsClient`]: the sans-IO `imstls::Ue` engine driven the way the crate docs say
//!   (after every input, drain `poll_output()`), with the testkit `Ua` as "the SIP stack";
//! - [`BareClient`]: a rustls `ClientConnection` with the same provider, cipher suites and
//!   key-exchange groups as the imstls profile, sending the same REGISTER bytes from a `Ua`.
//!
//! Both drivers are written the same way on purpose: blocking reads into a 16 KiB buffer, the
//! TLS bytes produced by one input written with one `write` (imstls: the `Transmit` outputs of
//! one drain are coalesced; rustls: one `write_tls` loop), TCP_NODELAY and a 10 s read timeout
//! set once per socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::_internal_test_exports::config::{crypto_provider, restrict_provider};
use imstls::{
    Event, FlowId, Host, Identity, KxGroup, Output, RegisterReason, TlsDetails, TlsVersions,
    TransportClosure, Ue, UeConfig,
};
use imstls_testkit::sip::{Frame, Framer, SipMessage};
use imstls_testkit::ua::{Ua, UaConfig, UaOutcome};
use imstls_testkit::{PcscfFactory, TestPki};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, RootCertStore};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A read that waits longer than this means the benchmark is broken, not slow.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 16 * 1024;

/// What a handshake negotiated, comparable between the two clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub version: &'static str,
    pub suite: &'static str,
    pub group: Option<&'static str>,
    pub resumed: bool,
}

impl Negotiated {
    fn from_imstls(details: &TlsDetails) -> Negotiated {
        Negotiated {
            version: details.version,
            suite: details.cipher_suite,
            group: details.key_exchange_group,
            resumed: details.resumed,
        }
    }

    fn from_rustls(conn: &ClientConnection) -> Negotiated {
        Negotiated {
            version: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            },
            suite: conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown"),
            group: conn
                .negotiated_key_exchange_group()
                .map(|g| g.name().as_str().unwrap_or("unknown")),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.version,
            self.suite,
            self.group.unwrap_or("(no group)"),
            if self.resumed { "resumed" } else { "full" }
        )
    }
}

fn prepare(stream: &TcpStream) -> Result<SocketAddr, Error> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream.local_addr()?)
}

/// A minimal loopback P-CSCF for one client at a time: one thread, blocking `accept` and
/// blocking reads (no poll interval in the timings), each connection served by a testkit
/// `PcscfCore` until the client closes it. Returns its address; the thread ends with the
/// process.
pub fn direct_pcscf(pki: Arc<TestPki>) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let mut factory = PcscfFactory::new(pki);
    std::thread::Builder::new()
        .name("direct-pcscf".into())
        .spawn(move || {
            let mut buf = vec![0u8; READ_BUFFER];
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let Ok(mut core) = factory.connection() else {
                    return;
                };
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    core.receive(&buf[..n]);
                    let out = core.take_output();
                    if !out.is_empty() && stream.write_all(&out).is_err() {
                        break;
                    }
                    core.take_observations();
                    if core.is_closed() {
                        break;
                    }
                }
            }
        })?;
    Ok(addr)
}

// ----- imstls --------------------------------------------------------------------------------

/// The imstls engine over one std socket at a time.
pub struct ImstlsClient {
    pub ue: Ue,
    ua: Ua,
    identity: Identity,
    socket: Option<(FlowId, TcpStream)>,
    /// TLS bytes of the current drain, written at once before the next blocking read.
    out: Vec<u8>,
    out_flow: Option<FlowId>,
    buf: Vec<u8>,
    started: bool,
    pub negotiated: Option<Negotiated>,
}

impl ImstlsClient {
    pub fn new(config: UeConfig, ua_config: UaConfig) -> Result<ImstlsClient, Error> {
        let identity = Identity::new(&ua_config.impi, &[&ua_config.impu])?;
        Ok(ImstlsClient {
            ue: Ue::new(config, Instant::now())?,
            ua: Ua::new(ua_config),
            identity,
            socket: None,
            out: Vec::new(),
            out_flow: None,
            buf: vec![0; READ_BUFFER],
            started: false,
            negotiated: None,
        })
    }

    /// One registration cycle: the first call starts the registration, later ones tell the
    /// engine the network changed (the old flow is dropped, a new flow and registration
    /// start at once). Returns when the engine reports `Registered`.
    pub fn register(&mut self) -> Result<(), Error> {
        let now = Instant::now();
        if self.started {
            self.ue.network_changed(now)?;
        } else {
            self.ue.start_registration(now, self.identity.clone())?;
            self.started = true;
        }
        self.drive(|e| matches!(e, Event::Registered { .. }))?;
        Ok(())
    }

    /// Drives the engine (acting as the SIP stack) until an event `until` accepts.
    pub fn drive(&mut self, until: impl Fn(&Event) -> bool) -> Result<Event, Error> {
        loop {
            match self.ue.poll_output() {
                Output::Connect {
                    flow, host, port, ..
                } => {
                    self.flush()?;
                    self.connect(flow, host, port)?;
                }
                Output::Transmit { flow, data } => {
                    if self.out_flow != Some(flow) {
                        self.flush()?;
                        self.out_flow = Some(flow);
                    }
                    if self.out.is_empty() {
                        self.out = data;
                    } else {
                        self.out.extend_from_slice(&data);
                    }
                }
                Output::Close { flow } => {
                    self.flush()?;
                    if self.socket.as_ref().is_some_and(|(f, _)| *f == flow) {
                        self.socket = None;
                    }
                }
                Output::Event(event) => {
                    self.act_as_stack(&event)?;
                    if until(&event) {
                        self.flush()?;
                        return Ok(event);
                    }
                }
                Output::Timeout(_) => {
                    self.flush()?;
                    self.read()?;
                }
                other => return Err(format!("unexpected output {other:?}").into()),
            }
        }
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        if let (Some((flow, stream)), Some(out_flow)) = (&mut self.socket, self.out_flow) {
            if *flow == out_flow {
                stream.write_all(&self.out)?;
            }
        }
        self.out.clear();
        Ok(())
    }

    fn connect(&mut self, flow: FlowId, host: Host, port: u16) -> Result<(), Error> {
        let Host::Ip(ip) = host else {
            return Err("benches connect to IP literals".into());
        };
        let addr = SocketAddr::new(ip, port);
        let stream = TcpStream::connect(addr)?;
        let local = prepare(&stream)?;
        self.ua.set_local_addr(local);
        self.socket = Some((flow, stream));
        self.ue
            .connected(Instant::now(), flow, Some(local), Some(addr))?;
        Ok(())
    }

    fn read(&mut self) -> Result<(), Error> {
        let Some((flow, stream)) = &mut self.socket else {
            return Err(format!("engine waits with no socket ({:?})", self.ue.state()).into());
        };
        let flow = *flow;
        let result = stream.read(&mut self.buf);
        let now = Instant::now();
        match result {
            Ok(0) => self.ue.transport_closed(now, flow, TransportClosure::Eof)?,
            Ok(n) => self.ue.receive(now, flow, &self.buf[..n])?,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.ue
                    .transport_closed(now, flow, TransportClosure::Reset)?
            }
            Err(e) => return Err(format!("read: {e} ({:?})", self.ue.state()).into()),
        }
        Ok(())
    }

    fn act_as_stack(&mut self, event: &Event) -> Result<(), Error> {
        if let Event::TlsEstablished { details, .. } = event {
            self.negotiated = Some(Negotiated::from_imstls(details));
        }
        act_as_stack(&mut self.ue, &mut self.ua, event, Instant::now())
    }
}

/// What the SIP stack does with an engine event (as `examples/support/stack.rs` does), at
/// `now`; any failure is an error, since the benches expect every registration to succeed.
pub fn act_as_stack(ue: &mut Ue, ua: &mut Ua, event: &Event, now: Instant) -> Result<(), Error> {
    match event {
        Event::RegisterNow { reason, .. } => {
            let request = match reason {
                RegisterReason::Challenge { .. } | RegisterReason::Refresh => ua.next_register(),
                RegisterReason::Deregister => ua.next_deregister(),
                _ => {
                    ua.new_registration();
                    ua.next_register()
                }
            };
            ue.send_sip(now, &request)?;
        }
        Event::SipReceived { flow, message } => {
            let message = SipMessage::parse(message)?;
            match ua.handle_response(&message) {
                UaOutcome::Challenged { stale } => ue.registration_challenged(now, *flow, stale)?,
                UaOutcome::Registered {
                    expires,
                    flow_timer,
                } => ue.registration_succeeded(
                    now,
                    *flow,
                    Duration::from_secs(expires.into()),
                    flow_timer.map(|t| Duration::from_secs(t.into())),
                )?,
                other => return Err(format!("unexpected SIP outcome {other:?}").into()),
            }
        }
        Event::RegistrationFailed { .. }
        | Event::CertificateRejected { .. }
        | Event::TlsFailed { .. }
        | Event::ConnectFailed { .. }
        | Event::BackingOff { .. } => {
            return Err(format!("registration failed: {event}").into());
        }
        _ => {}
    }
    Ok(())
}

// ----- bare rustls ---------------------------------------------------------------------------

/// A plain rustls client configuration with imstls's provider, suites and groups (in the
/// order `groups` gives, e.g. `UeConfig::kx_groups()`), TLS 1.3 and 1.2, trusting `root_der`
/// through rustls's own WebPKI verifier, no client certificate.
pub fn bare_config(
    root_der: Vec<u8>,
    groups: &[KxGroup],
    resumption: bool,
) -> Result<Arc<ClientConfig>, Error> {
    // The provider narrowed exactly as imstls narrows it (suites and groups).
    let provider = restrict_provider(crypto_provider(), groups, TlsVersions::Tls13AndTls12);
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(root_der))?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = if resumption {
        Resumption::in_memory_sessions(256).tls12_resumption(Tls12Resumption::SessionIdOrTickets)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// Bare rustls over one std socket at a time, sending the `Ua`'s REGISTERs.
pub struct BareClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    addr: SocketAddr,
    ua: Ua,
    current: Option<(ClientConnection, TcpStream)>,
    framer: Framer,
    buf: Vec<u8>,
    plaintext: Vec<u8>,
    pub negotiated: Option<Negotiated>,
}

impl BareClient {
    pub fn new(
        config: Arc<ClientConfig>,
        server_name: &str,
        addr: SocketAddr,
        ua_config: UaConfig,
    ) -> Result<BareClient, Error> {
        Ok(BareClient {
            config,
            server_name: ServerName::try_from(server_name.to_owned())?,
            addr,
            ua: Ua::new(ua_config),
            current: None,
            framer: Framer::new(),
            buf: vec![0; READ_BUFFER],
            plaintext: vec![0; 4096],
            negotiated: None,
        })
    }

    /// One registration cycle on a new connection (the previous one is dropped first):
    /// TCP connect, handshake, REGISTER, 401, REGISTER with credentials, 200.
    pub fn register(&mut self) -> Result<(), Error> {
        self.current = None;
        let mut stream = TcpStream::connect(self.addr)?;
        let local = prepare(&stream)?;
        self.ua.set_local_addr(local);
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())?;
        self.framer = Framer::new();
        let mut sent_first = false;
        let mut registered = false;
        loop {
            while conn.wants_write() {
                conn.write_tls(&mut stream)?;
            }
            if registered {
                break;
            }
            let n = stream.read(&mut self.buf)?;
            if n == 0 {
                return Err("the P-CSCF closed the connection".into());
            }
            let mut input = &self.buf[..n];
            while !input.is_empty() {
                conn.read_tls(&mut input)?;
                conn.process_new_packets()?;
            }
            if !sent_first && !conn.is_handshaking() {
                self.negotiated = Some(Negotiated::from_rustls(&conn));
                self.ua.new_registration();
                let request = self.ua.next_register();
                conn.writer().write_all(&request)?;
                sent_first = true;
            }
            loop {
                match conn.reader().read(&mut self.plaintext) {
                    Ok(0) => return Err("close_notify from the P-CSCF".into()),
                    Ok(n) => self.framer.push(&self.plaintext[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            while let Some(frame) = self.framer.next_frame()? {
                match frame {
                    Frame::Message(bytes) => {
                        let message = SipMessage::parse(&bytes)?;
                        match self.ua.handle_response(&message) {
                            UaOutcome::Challenged { .. } => {
                                let request = self.ua.next_register();
                                conn.writer().write_all(&request)?;
                            }
                            UaOutcome::Registered { .. } => registered = true,
                            other => return Err(format!("unexpected SIP outcome {other:?}").into()),
                        }
                    }
                    Frame::Ping => conn.writer().write_all(b"\r\n")?,
                    Frame::Pong => {}
                }
            }
        }
        self.current = Some((conn, stream));
        Ok(())
    }

    /// Blocks until the P-CSCF ends the current connection: close_notify, a fatal alert,
    /// FIN or RST (what a bare integration's read loop sees before it reconnects).
    pub fn wait_for_loss(&mut self) -> Result<(), Error> {
        let Some((conn, stream)) = self.current.as_mut() else {
            return Ok(());
        };
        loop {
            let n = match stream.read(&mut self.buf) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            let mut input = &self.buf[..n];
            while !input.is_empty() {
                conn.read_tls(&mut input)?;
                if conn.process_new_packets().is_err() {
                    return Ok(());
                }
            }
            loop {
                match conn.reader().read(&mut self.plaintext) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {} // nothing arrives on an idle flow; ignored
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return Ok(()),
                }
            }
        }
    }
}
