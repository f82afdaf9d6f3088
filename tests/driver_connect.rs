//! How the managed driver connects (issue 16 §3): name resolution off the caller's thread with
//! its own failure reason, and RFC 8305 (Happy Eyeballs v2) racing of a candidate's addresses.
//! Every socket here is on loopback.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imstls::driver::Driver;
use imstls::{Event, Identity, UeConfig};
use socket2::{Domain, Socket, Type};

fn identity() -> Identity {
    Identity::new("alice@ims.test", &["sip:alice@ims.test"]).expect("valid identity")
}

/// Runs the driver until an event matches `wanted` or `limit` passes.
fn run_until(
    driver: &mut Driver,
    limit: Duration,
    mut wanted: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        driver.run(Duration::from_millis(20)).expect("run");
        while let Some(event) = driver.poll_event() {
            if wanted(&event) {
                return Some(event);
            }
        }
    }
    None
}

/// `.invalid` never resolves (RFC 6761 §6.4) and needs no network to find that out. The
/// failure is reported as a name that did not resolve, not as an unreachable host.
#[test]
fn a_name_that_does_not_resolve_fails_with_its_own_reason() {
    let config = UeConfig::builder()
        .pcscf("nonexistent.invalid:5061")
        .connect_timeout(Duration::from_secs(30))
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.start_registration(identity()).expect("start");
    let event = run_until(&mut driver, Duration::from_secs(25), |e| {
        matches!(e, Event::ConnectFailed { .. })
    })
    .expect("a connect failure");
    let Event::ConnectFailed { reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(reason.code(), "unresolved", "reason: {reason:?}");
}

/// A resolver of the application's that panics: its thread ends without an answer, and the
/// attempt fails with that (reason `other`) long before the connect timeout, instead of
/// waiting for an answer that never comes.
#[test]
fn a_resolver_that_panics_fails_the_attempt_at_once() {
    let config = UeConfig::builder()
        .pcscf("pcscf.ims.test:5061")
        .connect_timeout(Duration::from_secs(60))
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.set_resolver(Some(Arc::new(|_: &str, _: u16| {
        panic!("a resolver bug (this panic is the test's)")
    })));
    let started = Instant::now();
    driver.start_registration(identity()).expect("start");
    let event = run_until(&mut driver, Duration::from_secs(10), |e| {
        matches!(e, Event::ConnectFailed { .. })
    })
    .expect("a connect failure");
    let Event::ConnectFailed { reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(reason.code(), "other", "reason: {reason:?}");
    assert!(
        reason.to_string().contains("without an answer"),
        "reason: {reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A resolver of the application's that takes its time (a DNS server that does not answer,
/// say): the caller's loop never waits for it. `run(0)` returns at once while the lookup
/// runs, the descriptor to wait on is the driver's wake-up one, and it becomes readable when
/// the answer is in.
#[test]
fn a_slow_lookup_does_not_block_the_callers_loop() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let target = listener.local_addr().expect("addr");
    let lookup_time = Duration::from_millis(1500);
    let config = UeConfig::builder()
        .pcscf("pcscf.ims.test:5061")
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.set_resolver(Some(Arc::new(move |name: &str, port: u16| {
        assert_eq!((name, port), ("pcscf.ims.test", 5061));
        std::thread::sleep(lookup_time);
        Ok(vec![target])
    })));
    let started = Instant::now();
    driver.start_registration(identity()).expect("start");
    driver.run(Duration::ZERO).expect("run");
    let fd = driver
        .fd()
        .expect("a descriptor to wait on while resolving");
    let interest = driver.interest();
    assert!(interest.readable && !interest.writable, "{interest:?}");
    for _ in 0..10 {
        driver.run(Duration::ZERO).expect("run");
        while driver.poll_event().is_some() {}
    }
    let blocked = started.elapsed();
    assert!(
        blocked < lookup_time / 3,
        "start_registration and run(0) took {blocked:?} while the lookup takes {lookup_time:?}"
    );
    listener.set_nonblocking(true).expect("non-blocking");
    assert!(listener.accept().is_err(), "connected before the answer");

    // The wait of the driver's plan, on the wake-up descriptor only (there is no socket
    // yet), ends when the answer is in, not before and not at its timeout.
    assert_eq!(
        driver.fd(),
        Some(fd),
        "the same descriptor until the answer"
    );
    let ready = driver
        .prepare_wait(Duration::from_secs(10))
        .wait()
        .expect("poll");
    assert!(ready, "the wake-up descriptor never became readable");
    let woken = started.elapsed();
    assert!(
        woken >= lookup_time,
        "woken after {woken:?}, before the answer"
    );
    assert!(woken < lookup_time * 3, "woken only after {woken:?}");
    driver.run(Duration::ZERO).expect("run");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        driver.run(Duration::from_millis(20)).expect("run");
        if listener.accept().is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no connection after the answer");
    }
}

/// A loopback address that swallows SYNs: a listener that never accepts, with a backlog of 0,
/// whose accept queue is filled first; Linux then drops further SYNs to it, so a connect
/// hangs (retransmitting) until its timeout. The filling connections stay open with it.
/// Returns `None` if this system still answers (then the test cannot make its point).
struct BlackHole {
    addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<Socket>,
}

impl BlackHole {
    fn on(ip: IpAddr) -> Option<BlackHole> {
        let domain = if ip.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let listener = Socket::new(domain, Type::STREAM, None).expect("socket");
        listener
            .bind(&SocketAddr::new(ip, 0).into())
            .expect("bind loopback");
        listener.listen(0).expect("listen");
        let addr = listener
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("an IP address");
        let mut fillers = Vec::new();
        for _ in 0..16 {
            let filler = Socket::new(domain, Type::STREAM, None).expect("socket");
            match filler.connect_timeout(&addr.into(), Duration::from_millis(300)) {
                Ok(()) => fillers.push(filler),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Some(BlackHole {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    })
                }
                Err(e) => panic!("filling the accept queue: {e}"),
            }
        }
        None
    }
}

/// RFC 8305 with a black-holed first address. The candidate's addresses come from a
/// resolver of the test's ([`Driver::set_resolver`]), in the order [black hole on `::1`,
/// listener on `127.0.0.1`]: the system's hosts file is not the test's to change, and no
/// packet leaves loopback. The IPv6 attempt hangs; the IPv4 one starts one Connection
/// Attempt Delay (250 ms) later and connects. Connected must come near that delay, far
/// from the 10 s connect timeout (which a sequential connect would spend, in part or whole,
/// on the black hole first).
#[test]
fn a_black_holed_first_address_costs_the_attempt_delay_not_the_connect_timeout() {
    let Some(hole) = BlackHole::on(IpAddr::V6(Ipv6Addr::LOCALHOST)) else {
        panic!("this system answers SYNs to a full accept queue: no black hole to test with");
    };
    let good = TcpListener::bind("127.0.0.1:0").expect("listener");
    good.set_nonblocking(true).expect("non-blocking");
    let addrs = vec![hole.addr, good.local_addr().expect("addr")];
    let connect_timeout = Duration::from_secs(10);
    let config = UeConfig::builder()
        .pcscf("pcscf.ims.test:5061")
        .connect_timeout(connect_timeout)
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    assert_eq!(
        driver.connection_attempt_delay(),
        Duration::from_millis(250)
    );
    driver.set_resolver(Some(Arc::new(move |_: &str, _: u16| Ok(addrs.clone()))));

    let started = Instant::now();
    driver.start_registration(identity()).expect("start");
    let connected_after = loop {
        driver.run(Duration::from_millis(10)).expect("run");
        while let Some(event) = driver.poll_event() {
            assert!(
                !matches!(event, Event::ConnectFailed { .. }),
                "connect failed: {event:?}"
            );
        }
        if good.accept().is_ok() {
            break started.elapsed();
        }
        assert!(started.elapsed() < connect_timeout, "never connected");
    };
    eprintln!("connected after {connected_after:?}");
    assert!(
        connected_after >= Duration::from_millis(250),
        "the second attempt started before the delay: {connected_after:?}"
    );
    assert!(
        connected_after < Duration::from_millis(1500),
        "connected only after {connected_after:?} (connect timeout {connect_timeout:?})"
    );
}

/// A lookup that outlasts the connect timeout fails the attempt as a timeout (the engine's
/// connect deadline), and its late answer is dropped: no connection follows it.
#[test]
fn a_lookup_longer_than_the_connect_timeout_times_out_and_its_answer_is_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let target = listener.local_addr().expect("addr");
    let lookup_time = Duration::from_millis(1500);
    let config = UeConfig::builder()
        .pcscf("pcscf.ims.test:5061")
        .connect_timeout(Duration::from_millis(500))
        .backoff(imstls::Backoff {
            base_all_failed: Duration::from_secs(20),
            base_not_all_failed: Duration::from_secs(20),
            max: Duration::from_secs(60),
        })
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.set_resolver(Some(Arc::new(move |_: &str, _: u16| {
        std::thread::sleep(lookup_time);
        Ok(vec![target])
    })));
    let started = Instant::now();
    driver.start_registration(identity()).expect("start");
    let event = run_until(&mut driver, Duration::from_secs(5), |e| {
        matches!(e, Event::ConnectFailed { .. })
    })
    .expect("a connect failure");
    let failed_after = started.elapsed();
    let Event::ConnectFailed { reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(reason.code(), "timed_out", "reason: {reason:?}");
    assert!(
        failed_after < lookup_time,
        "failed only after {failed_after:?}"
    );
    // Past the answer (the back-off keeps the next attempt 10 s or more away).
    run_until(&mut driver, lookup_time, |_| false);
    assert!(
        listener.accept().is_err(),
        "the late answer was used to connect"
    );
}
