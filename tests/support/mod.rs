//! Test harness: an imstls [`Ue`] wired in memory to simulated P-CSCF connections
//! ([`PcscfCore`], a real rustls server + registrar), a small SIP UA acting as the SIP stack,
//! and a simulated clock that jumps from deadline to deadline (str0m style).
#![allow(dead_code)]

pub mod client_hello;
pub mod fault_proxy;
pub mod legacy_pki;
pub mod openssl;
pub mod raw_peer;
pub mod rng;
pub mod socket_link;
#[path = "../../examples/support/stack.rs"]
pub mod stack;
pub mod ue_args;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use imstls::_internal_test_exports::tls::session::StoreMark;
use imstls::{
    Event, FlowId, Identity, Output, RegisterReason, TransportClosure, TransportError, Ue,
    UeConfig, UeConfigBuilder, UeState,
};
use imstls_testkit::pcscf::PcscfCore;
use imstls_testkit::registrar::{RegistrarConfig, SharedRegistrar};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::tls::{server_config, TlsVersions};
use imstls_testkit::ua::{Ua, UaConfig, UaOutcome};
use imstls_testkit::{CertKind, TestPki};
use rustls::ServerConfig;

pub const SERVER_NAME: &str = "pcscf.ims.test";

/// One PKI for the whole test binary: generating keys is the slow part.
pub fn pki() -> Arc<TestPki> {
    static PKI: OnceLock<Arc<TestPki>> = OnceLock::new();
    PKI.get_or_init(|| Arc::new(TestPki::generate(SERVER_NAME)))
        .clone()
}

/// How a simulated candidate answers a TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    Accept,
    Refuse,
    /// Never answers: only imstls's connect timeout ends the attempt.
    Blackhole,
    /// TCP is accepted but the TLS peer never answers (a silent handshake).
    AcceptSilent,
}

/// How the harness plays the SIP stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackMode {
    /// Sends REGISTER when told, reports every answer.
    Auto,
    /// Ignores RegisterNow after a challenge (a stack stuck after the 401).
    HoldAfterChallenge,
    /// Ignores every RegisterNow.
    Silent,
}

pub struct Peer {
    pub core: PcscfCore,
    pub eof_sent: bool,
}

pub struct World {
    pub pki: Arc<TestPki>,
    pub server: Arc<ServerConfig>,
    pub registrar: SharedRegistrar,
    pub ue: Ue,
    pub ua: Ua,
    pub start: Instant,
    pub now: Instant,
    pub peers: BTreeMap<FlowId, Peer>,
    pub connect: Vec<ConnectMode>,
    /// Every event with the simulated time it was seen at.
    pub events: Vec<(Duration, Event)>,
    /// Everything the UE put on the wire, per flow, in order.
    pub wire: Vec<(FlowId, Vec<u8>)>,
    /// Every Close the UE asked for.
    pub closed: Vec<FlowId>,
    /// The harness plays the SIP stack: REGISTER on RegisterNow, answers reported back.
    pub auto_stack: bool,
    /// Input errors the harness got back from the engine (a correct stack gets none).
    pub input_errors: Vec<String>,
    /// Check the engine invariants after every step.
    pub check_invariants: bool,
    pub stack_mode: StackMode,
    /// Applied to every new simulated connection: answer at most this many SIP requests
    /// (pings are not answered past it either).
    pub peer_answer_limit: Option<usize>,
    /// Peers whose flow the UE closed, kept for inspection.
    pub finished: Vec<(FlowId, PcscfCore)>,
    /// A TLS server of its own for some candidates (index → config); others use `server`.
    pub candidate_servers: BTreeMap<usize, Arc<ServerConfig>>,
    /// The session store's mark when the current registration procedure began (its first
    /// `Connecting`), until it registers.
    pub procedure_mark: Option<StoreMark>,
    /// For each `Superseded` of an incomplete procedure: how many sessions stored since that
    /// procedure began were still in the store (O.4.1 wants none).
    pub survivors_after_supersede: Vec<usize>,
    /// The observation logs of simulated peers the harness dropped (reset, silenced, EOF).
    pub ended: Vec<(FlowId, Vec<imstls_testkit::Observation>)>,
}

pub fn identity() -> Identity {
    let ua = UaConfig::default();
    Identity::new(&ua.impi, &[&ua.impu]).unwrap()
}

/// The UE configuration every test starts from: one candidate, the test root, a fixed seed.
pub fn base_config(pki: &TestPki) -> UeConfigBuilder {
    UeConfig::builder()
        .pcscf(format!("{SERVER_NAME}:5061"))
        .trust_anchors_pem(pki.root_pem())
        .random_seed(42)
}

impl World {
    pub fn new(config: UeConfigBuilder) -> World {
        Self::with(
            config,
            CertKind::Good,
            TlsVersions::Both,
            RegistrarConfig::default(),
        )
    }

    pub fn with(
        config: UeConfigBuilder,
        cert: CertKind,
        versions: TlsVersions,
        registrar: RegistrarConfig,
    ) -> World {
        let pki = pki();
        let start = Instant::now();
        let config = config.build().expect("test configuration is valid");
        let candidates = config.candidates().len();
        World {
            server: server_config(&pki, cert, versions, false).unwrap(),
            pki,
            registrar: SharedRegistrar::new(registrar),
            ue: Ue::new(config, start).unwrap(),
            ua: Ua::new(UaConfig::default()),
            start,
            now: start,
            peers: BTreeMap::new(),
            connect: vec![ConnectMode::Accept; candidates],
            events: Vec::new(),
            wire: Vec::new(),
            closed: Vec::new(),
            auto_stack: true,
            input_errors: Vec::new(),
            check_invariants: true,
            stack_mode: StackMode::Auto,
            peer_answer_limit: None,
            finished: Vec::new(),
            candidate_servers: BTreeMap::new(),
            procedure_mark: None,
            survivors_after_supersede: Vec::new(),
            ended: Vec::new(),
        }
    }

    pub fn set_server(&mut self, cert: CertKind, versions: TlsVersions, request_client_cert: bool) {
        self.server = server_config(&self.pki, cert, versions, request_client_cert).unwrap();
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn start_registration(&mut self) {
        self.ua.new_registration();
        self.ue.start_registration(self.now, identity()).unwrap();
        self.pump();
    }

    fn invariants(&self) {
        if self.check_invariants {
            if let Err(e) = self.ue.check_invariants() {
                panic!("invariant broken at {:?}: {e}", self.elapsed());
            }
        }
    }

    fn note<T>(&mut self, what: &str, result: Result<T, imstls::UeError>) {
        if let Err(e) = result {
            self.input_errors.push(format!("{what}: {e}"));
        }
    }

    /// Runs every output and every peer reply until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            loop {
                let output = self.ue.poll_output();
                self.invariants();
                match output {
                    Output::Timeout(_) => break,
                    Output::Connect {
                        flow, candidate, ..
                    } => {
                        moved = true;
                        self.on_connect(flow, candidate);
                    }
                    Output::Transmit { flow, data } => {
                        moved = true;
                        if let Some(peer) = self.peers.get_mut(&flow) {
                            peer.core.receive(&data);
                        }
                        self.wire.push((flow, data));
                    }
                    Output::Close { flow } => {
                        moved = true;
                        self.closed.push(flow);
                        if let Some(mut peer) = self.peers.remove(&flow) {
                            peer.core.transport_eof();
                            self.finished.push((flow, peer.core));
                        }
                    }
                    Output::Event(event) => {
                        moved = true;
                        self.on_event(event);
                    }
                    other => panic!("unknown output {other:?}"),
                }
            }
            let flows: Vec<FlowId> = self.peers.keys().copied().collect();
            for flow in flows {
                let peer = self.peers.get_mut(&flow).unwrap();
                let reply = peer.core.take_output();
                let closed = peer.core.is_closed() && !peer.eof_sent;
                if closed {
                    peer.eof_sent = true;
                    peer.core.note_fin_sent();
                }
                if !reply.is_empty() {
                    moved = true;
                    let r = self.ue.receive(self.now, flow, &reply);
                    if !matches!(r, Err(imstls::UeError::UnknownFlow(_))) {
                        self.note("receive", r);
                    }
                }
                if closed && self.ue.current_flow() == Some(flow) {
                    moved = true;
                    let r = self
                        .ue
                        .transport_closed(self.now, flow, TransportClosure::Eof);
                    self.note("transport_closed", r);
                }
                self.invariants();
            }
            if !moved {
                return;
            }
        }
        panic!("the harness did not settle");
    }

    fn on_connect(&mut self, flow: FlowId, candidate: usize) {
        match self.connect[candidate] {
            ConnectMode::Accept | ConnectMode::AcceptSilent => {
                let server = self
                    .candidate_servers
                    .get(&candidate)
                    .unwrap_or(&self.server)
                    .clone();
                let mut core = PcscfCore::new(server, self.registrar.clone(), flow.0).unwrap();
                core.set_answer_limit(self.peer_answer_limit);
                if self.connect[candidate] == ConnectMode::Accept {
                    self.peers.insert(
                        flow,
                        Peer {
                            core,
                            eof_sent: false,
                        },
                    );
                }
                let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
                let remote: SocketAddr = "127.0.0.1:5061".parse().unwrap();
                let r = self.ue.connected(self.now, flow, Some(local), Some(remote));
                self.note("connected", r);
            }
            ConnectMode::Refuse => {
                let r = self
                    .ue
                    .connect_failed(self.now, flow, TransportError::Refused);
                self.note("connect_failed", r);
            }
            ConnectMode::Blackhole => {}
        }
    }

    fn on_event(&mut self, event: Event) {
        let sessions = self.ue.profile().sessions();
        match &event {
            // Nothing is stored between the engine taking its mark and this event.
            Event::Connecting { attempt: 1, .. } => self.procedure_mark = Some(sessions.mark()),
            Event::Registered { .. } => self.procedure_mark = None,
            Event::Superseded { .. } => {
                if let Some(mark) = self.procedure_mark.take() {
                    // Removes nothing when the engine purged as it should.
                    let survivors = sessions.purge_since(mark);
                    self.survivors_after_supersede.push(survivors);
                }
            }
            _ => {}
        }
        if self.auto_stack {
            match &event {
                Event::RegisterNow { reason, .. } => {
                    let hold = match self.stack_mode {
                        StackMode::Auto => false,
                        StackMode::Silent => true,
                        StackMode::HoldAfterChallenge => {
                            matches!(reason, RegisterReason::Challenge { .. })
                        }
                    };
                    if hold {
                        self.events.push((self.elapsed(), event));
                        return;
                    }
                    let request = stack::register_request(&mut self.ua, *reason);
                    let r = self.ue.send_sip(self.now, &request);
                    self.note("send_sip REGISTER", r);
                }
                Event::SipReceived { flow, message } => {
                    let msg = SipMessage::parse(message).expect("the simulator sends valid SIP");
                    if msg.is_request() {
                        let answer = self.ua.answer(&msg, 200);
                        let r = self.ue.send_sip(self.now, &answer);
                        self.note("send_sip answer", r);
                    } else {
                        let outcome = self.ua.handle_response(&msg);
                        self.report(*flow, outcome);
                    }
                }
                _ => {}
            }
        }
        self.events.push((self.elapsed(), event));
    }

    fn report(&mut self, flow: FlowId, outcome: UaOutcome) {
        let r = stack::report(&mut self.ue, self.now, flow, outcome);
        self.note("report", r);
    }

    /// Moves the clock forward by `by`, firing each deadline at its own instant.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        self.pump();
        while let Some(at) = self.ue.next_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.ue.handle_timeout(self.now);
            self.pump();
        }
        self.now = target;
        self.ue.handle_timeout(self.now);
        self.pump();
    }

    /// Advances until `done` holds, at most `limit` of simulated time. Returns whether it held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let deadline = self.now + limit;
        self.pump();
        loop {
            if done(self) {
                return true;
            }
            match self.ue.next_timeout() {
                Some(at) if at <= deadline => {
                    self.now = self.now.max(at);
                    self.ue.handle_timeout(self.now);
                    self.pump();
                }
                _ => {
                    self.now = deadline;
                    return done(self);
                }
            }
        }
    }

    pub fn state(&self) -> UeState {
        self.ue.state()
    }

    /// The P-CSCF resets the current connection.
    pub fn reset_current(&mut self) {
        if let Some(flow) = self.ue.current_flow() {
            if let Some(mut peer) = self.peers.remove(&flow) {
                peer.core.note_reset_sent();
                self.ended.push((flow, peer.core.take_observations()));
            }
            let r = self
                .ue
                .transport_closed(self.now, flow, TransportClosure::Reset);
            self.note("transport_closed", r);
            self.pump();
        }
    }

    /// The connection ends without close_notify (FIN only).
    pub fn eof_current(&mut self) {
        if let Some(flow) = self.ue.current_flow() {
            if let Some(mut peer) = self.peers.remove(&flow) {
                peer.core.note_fin_sent();
                self.ended.push((flow, peer.core.take_observations()));
            }
            let r = self
                .ue
                .transport_closed(self.now, flow, TransportClosure::Eof);
            self.note("transport_closed", r);
            self.pump();
        }
    }

    /// The current simulated P-CSCF connection.
    pub fn peer(&mut self) -> &mut PcscfCore {
        let flow = self.ue.current_flow().expect("a current flow");
        &mut self.peers.get_mut(&flow).expect("a live peer").core
    }

    /// Delivers what the current peer has queued after `tamper` changed it.
    pub fn deliver_tampered(&mut self, tamper: impl FnOnce(&mut Vec<u8>)) {
        let flow = self.ue.current_flow().expect("a current flow");
        let mut bytes = self.peers.get_mut(&flow).unwrap().core.take_output();
        tamper(&mut bytes);
        let r = self.ue.receive(self.now, flow, &bytes);
        self.note("receive", r);
        self.pump();
    }

    /// Times (since start) of every event with this code.
    pub fn times(&self, code: &str) -> Vec<Duration> {
        self.events
            .iter()
            .filter(|(_, e)| e.code() == code)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Events from index `from` on.
    pub fn codes_from(&self, from: usize) -> Vec<&'static str> {
        self.events[from..].iter().map(|(_, e)| e.code()).collect()
    }

    /// The P-CSCF stops answering on the current connection (keeps the socket open).
    pub fn silence_current(&mut self) {
        if let Some(flow) = self.ue.current_flow() {
            if let Some(peer) = self.peers.get_mut(&flow) {
                peer.core.set_answer_limit(Some(0));
            }
            // Drop it entirely so that no ping is answered either.
            if let Some(mut peer) = self.peers.remove(&flow) {
                self.ended.push((flow, peer.core.take_observations()));
            }
        }
    }

    pub fn codes(&self) -> Vec<&'static str> {
        self.events.iter().map(|(_, e)| e.code()).collect()
    }

    pub fn count(&self, code: &str) -> usize {
        self.events.iter().filter(|(_, e)| e.code() == code).count()
    }

    pub fn position(&self, code: &str) -> Option<usize> {
        self.events.iter().position(|(_, e)| e.code() == code)
    }

    pub fn last(&self, code: &str) -> Option<&(Duration, Event)> {
        self.events.iter().rev().find(|(_, e)| e.code() == code)
    }

    /// Bytes the UE sent on a flow.
    /// Everything the simulated peer of `flow` observed, wherever its core is now (live,
    /// finished, or dropped by the harness), or `None` when no simulated peer served it.
    pub fn peer_log(&self, flow: FlowId) -> Option<Vec<imstls_testkit::Observation>> {
        let mut log = Vec::new();
        let mut found = false;
        for (f, observations) in &self.ended {
            if *f == flow {
                found = true;
                log.extend(observations.iter().cloned());
            }
        }
        let core = self
            .finished
            .iter()
            .find(|(f, _)| *f == flow)
            .map(|(_, c)| c)
            .or_else(|| self.peers.get(&flow).map(|p| &p.core));
        if let Some(core) = core {
            found = true;
            log.extend(core.observations().iter().cloned());
        }
        found.then_some(log)
    }

    pub fn wire_of(&self, flow: FlowId) -> Vec<u8> {
        self.wire
            .iter()
            .filter(|(f, _)| *f == flow)
            .flat_map(|(_, d)| d.clone())
            .collect()
    }

    /// Registers from scratch and asserts it worked.
    pub fn register(&mut self) {
        self.start_registration();
        assert!(
            self.run_until(Duration::from_secs(5), |w| w.state() == UeState::Registered),
            "not registered; events: {:?}",
            self.codes()
        );
    }
}
