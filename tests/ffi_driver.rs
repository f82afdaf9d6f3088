//! The managed-socket driver behind `imstls_driver`, from Rust: it connects (trying every
//! address of a name), owns the socket, recovers a killed connection, and can work on a
//! socket the application created without ever closing the application's descriptor.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use imstls::driver::{ConnectMode, Driver};
use imstls::{Event, Identity, RegisterReason, TrustSource, UeConfig, UeState};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::{Ua, UaConfig, UaOutcome};
use imstls_testkit::{SimConfig, Simulator, DEFAULT_IMPI, DEFAULT_IMPU};

fn config(sim: &Simulator, pcscf: &str) -> UeConfig {
    UeConfig::builder()
        .pcscf(pcscf)
        .server_name(sim.pki().server_name())
        .trust_anchors(TrustSource::Pem(sim.pki().root_pem().into_bytes()))
        .backoff(imstls::Backoff {
            base_all_failed: Duration::from_millis(200),
            base_not_all_failed: Duration::from_millis(200),
            max: Duration::from_secs(1),
        })
        .random_seed(3)
        .build()
        .expect("valid config")
}

fn identity() -> Identity {
    Identity::new(DEFAULT_IMPI, &[DEFAULT_IMPU]).expect("valid identity")
}

/// Plays the SIP stack for one event; returns the event for the caller's bookkeeping.
fn act(driver: &mut Driver, ua: &mut Ua, event: &Event) {
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
            driver.send_sip(&request).expect("REGISTER accepted");
        }
        Event::SipReceived { flow, message } => {
            let flow = *flow;
            let message = SipMessage::parse(message).expect("a SIP response");
            match ua.handle_response(&message) {
                UaOutcome::Challenged { stale } => driver.registration_challenged(flow, stale),
                UaOutcome::Registered { expires, .. } => {
                    driver.registration_succeeded(flow, Duration::from_secs(expires.into()), None)
                }
                UaOutcome::Deregistered => {
                    driver.registration_succeeded(flow, Duration::ZERO, None)
                }
                UaOutcome::Failed { status, .. } => driver.registration_failed(flow, status, None),
                _ => Ok(()),
            }
            .or_else(|e| match e {
                // The flow ended in the same read: the answer belongs to it and is dropped.
                imstls::driver::DriverError::Engine(imstls::UeError::StaleReport { .. }) => Ok(()),
                e => Err(e),
            })
            .expect("report accepted");
        }
        _ => {}
    }
}

/// Runs the driver until `until` accepts an event; panics after `limit`.
fn run_until(driver: &mut Driver, ua: &mut Ua, limit: Duration, until: impl Fn(&Event) -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        driver.run(Duration::from_millis(100)).expect("poll works");
        while let Some(event) = driver.poll_event() {
            act(driver, ua, &event);
            if until(&event) {
                return;
            }
        }
    }
    panic!("gave up in state {:?}", driver.state());
}

#[test]
fn the_driver_registers_recovers_a_killed_connection_and_deregisters() {
    let sim = Simulator::start(SimConfig::default()).expect("simulator");
    let mut driver = Driver::new(config(&sim, &sim.addr().to_string())).expect("driver");
    let mut ua = Ua::new(UaConfig::default());
    driver.start_registration(identity()).expect("start");
    assert!(driver.fd().is_some(), "the driver connects by itself");
    run_until(&mut driver, &mut ua, Duration::from_secs(20), |e| {
        matches!(e, Event::PongReceived { .. })
    });
    let first = driver.ue().current_flow().expect("a flow");
    assert!(driver.interest().readable);

    sim.kill_connections();
    run_until(&mut driver, &mut ua, Duration::from_secs(20), |e| {
        matches!(e, Event::PongReceived { .. })
    });
    assert_ne!(driver.ue().current_flow(), Some(first));
    assert_eq!(driver.state(), UeState::Registered);
    assert_eq!(sim.open_connections(), 1, "the killed socket is gone");

    driver.deregister().expect("deregister");
    run_until(&mut driver, &mut ua, Duration::from_secs(20), |e| {
        matches!(e, Event::Deregistered)
    });
    assert_eq!(driver.fd(), None);
}

#[test]
fn the_driver_speaks_ipv6_and_moves_on_to_the_next_candidate() {
    // The first candidate refuses (nobody listens there); the second is the simulator on
    // [::1]. (Several addresses of one name are covered by the unit tests of the socket.)
    let sim = Simulator::start(SimConfig {
        bind: "[::1]:0".parse().expect("address"),
        ..SimConfig::default()
    })
    .expect("an IPv6 loopback simulator");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let config = UeConfig::builder()
        .pcscf(closed.to_string())
        .pcscf(sim.addr().to_string())
        .server_name(sim.pki().server_name())
        .trust_anchors(TrustSource::Pem(sim.pki().root_pem().into_bytes()))
        .build()
        .expect("valid config");
    let mut driver = Driver::new(config).expect("driver");
    let mut ua = Ua::new(UaConfig::default());
    driver.start_registration(identity()).expect("start");
    run_until(&mut driver, &mut ua, Duration::from_secs(20), |e| {
        matches!(e, Event::Registered { .. })
    });
    let binding = driver.binding().expect("binding");
    assert_eq!(binding.remote_addr, Some(sim.addr()));
    assert!(binding.local_addr.is_some_and(|a| a.is_ipv6()));
}

#[test]
fn an_adopted_borrowed_socket_is_used_but_never_closed() {
    let sim = Simulator::start(SimConfig::default()).expect("simulator");
    let mut driver = Driver::new(config(&sim, &sim.addr().to_string())).expect("driver");
    driver.set_connect_mode(ConnectMode::External);
    let mut ua = Ua::new(UaConfig::default());
    driver.start_registration(identity()).expect("start");
    assert_eq!(
        driver.fd(),
        None,
        "external mode: the driver does not connect"
    );
    let request = driver
        .pending_connect()
        .expect("a flow waits for a socket")
        .clone();
    assert!(matches!(
        driver.poll_event(),
        Some(Event::Connecting { .. })
    ));

    // The application's socket (on Android: created and bound with Network.bindSocket).
    let target: SocketAddr = format!("{}:{}", request.host, request.port)
        .parse()
        .expect("ip");
    let mine = TcpStream::connect(target).expect("connect");
    driver
        .adopt_borrowed(request.flow, mine.as_fd())
        .expect("adopt");
    run_until(&mut driver, &mut ua, Duration::from_secs(20), |e| {
        matches!(e, Event::Registered { .. })
    });
    drop(driver); // closes the flow: its own duplicate, never the application's descriptor
    assert!(
        mine.local_addr().is_ok(),
        "the application's descriptor is still open"
    );
    assert!(mine.take_error().is_ok());
}
