//! The managed driver hands each SIP message to the stack before it reads the socket past it,
//! so the stack's answer (here: reporting a 2xx) is not made stale by a close that the same
//! `process` call would otherwise read. The P-CSCF is a real rustls server with the
//! registrar (`PcscfCore`) on a loopback socket, driven by this test between driver calls.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use imstls::driver::{Driver, DriverError};
use imstls::{Event, Identity, UeConfig, UeError};
use imstls_testkit::tls::{server_config, TlsVersions};
use imstls_testkit::{
    CertKind, PcscfCore, RegistrarConfig, SharedRegistrar, SipMessage, Ua, UaConfig, DEFAULT_IMPI,
    DEFAULT_IMPU,
};
use support::stack::{register_request, Report};
use support::{pki, SERVER_NAME};

/// The P-CSCF end of the flow: reads what the UE sent, answers, and after the REGISTER that
/// creates the binding writes the 200 OK and a FIN at once (no close_notify), as a registrar
/// closing after every 200 OK does.
struct ClosingPcscf {
    listener: TcpListener,
    stream: Option<TcpStream>,
    core: PcscfCore,
    registrar: SharedRegistrar,
    closed: bool,
}

impl ClosingPcscf {
    fn serve(&mut self) {
        if self.stream.is_none() {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true).unwrap();
                    self.stream = Some(stream);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("accept: {e}"),
            }
        }
        let Some(stream) = self.stream.as_mut().filter(|_| !self.closed) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.core.receive(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        let output = self.core.take_output();
        if !output.is_empty() {
            stream.write_all(&output).unwrap();
        }
        if !self.registrar.bindings().is_empty() {
            stream.shutdown(Shutdown::Write).unwrap();
            self.closed = true;
        }
    }
}

#[test]
fn a_2xx_followed_at_once_by_the_close_is_reported_before_the_loss() {
    let pki = pki();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let config = UeConfig::builder()
        .pcscf(listener.local_addr().unwrap().to_string())
        .server_name(SERVER_NAME)
        .trust_anchors_pem(pki.root_pem())
        .build()
        .unwrap();
    let registrar = SharedRegistrar::new(RegistrarConfig::default());
    let server = server_config(&pki, CertKind::Good, TlsVersions::Both, false).unwrap();
    let mut pcscf = ClosingPcscf {
        listener,
        stream: None,
        core: PcscfCore::new(server, registrar.clone(), 1).unwrap(),
        registrar,
        closed: false,
    };
    let mut ua = Ua::new(UaConfig::default());
    let mut driver = Driver::new(config).unwrap();
    driver
        .start_registration(Identity::new(DEFAULT_IMPI, &[DEFAULT_IMPU]).unwrap())
        .unwrap();

    let mut codes = Vec::new();
    let mut stale_reports = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !codes.contains(&"connection_lost") && Instant::now() < deadline {
        pcscf.serve();
        driver.run(Duration::from_millis(5)).unwrap();
        while let Some(event) = driver.poll_event() {
            codes.push(event.code());
            let result = match &event {
                Event::RegisterNow { reason, .. } => {
                    driver.send_sip(&register_request(&mut ua, *reason))
                }
                Event::SipReceived { flow, message } => {
                    let response = SipMessage::parse(message).unwrap();
                    match Report::of(ua.handle_response(&response)) {
                        Some(Report::Challenged { stale }) => {
                            driver.registration_challenged(*flow, stale)
                        }
                        Some(Report::Succeeded {
                            expires,
                            flow_timer,
                        }) => driver.registration_succeeded(*flow, expires, flow_timer),
                        _ => panic!("unexpected answer to the REGISTER"),
                    }
                }
                _ => Ok(()),
            };
            match result {
                Err(DriverError::Engine(UeError::StaleReport { .. })) => stale_reports += 1,
                other => other.unwrap(),
            }
        }
    }
    assert!(pcscf.closed, "the registrar never registered: {codes:?}");
    assert_eq!(stale_reports, 0, "the 2xx was reported too late: {codes:?}");
    let registered = codes.iter().position(|c| *c == "registered");
    let lost = codes.iter().position(|c| *c == "connection_lost");
    assert!(
        registered.is_some() && lost > registered,
        "registered, then the flow was lost: {codes:?}"
    );
}
