//! A registered P-CSCF that floods CRLFCRLF pings and never reads (issue 12 §5), on loopback
//! with real rustls on both ends (the testkit's `Flooder`): the driver
//! answers at most one pong per read, what it queues stays under its caps, and the flow is
//! failed with its reason, then recovery backs off.
//!
//! Socket buffers are made small on both sides (the UE's send buffer, the P-CSCF's receive
//! buffer) so that the kernel stops taking bytes after a few KiB and the driver's own queue is
//! what grows.

use std::alloc::System;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imstls::driver::{ConnectMode, Driver};
use imstls::{Event, Identity, RegisterReason, TrustSource, UeConfig};
use imstls_testkit::sip::SipMessage;
use imstls_testkit::ua::{Ua, UaConfig, UaOutcome};
use imstls_testkit::{TestPki, DEFAULT_IMPI, DEFAULT_IMPU};
use socket2::{Domain, Socket, Type};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The tests run one at a time so that the heap one of them measures is its own.
static SERIAL: Mutex<()> = Mutex::new(());

/// Live heap bytes of the whole process (both ends of the loopback) right now.
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// The cap under test (the smallest allowed is twice the largest SIP message, 2 × 4 KiB).
const CAP: usize = 16 * 1024;
const SMALL_SOCKET_BUFFER: usize = 4096;

/// The testkit's flooding P-CSCF with its own PKI, and the UE configuration that trusts it.
struct Flooder(imstls_testkit::Flooder);

impl Flooder {
    fn start() -> Flooder {
        let pki = Arc::new(TestPki::generate("pcscf.ims.test"));
        Flooder(imstls_testkit::Flooder::start(pki, SMALL_SOCKET_BUFFER).expect("loopback flooder"))
    }

    fn config(&self) -> imstls::UeConfigBuilder {
        UeConfig::builder()
            .pcscf(self.0.addr().to_string())
            .server_name(self.0.pki().server_name())
            .trust_anchors(TrustSource::Pem(self.0.pki().root_pem().into_bytes()))
            .max_sip_message_size(4096)
            .backoff(imstls::Backoff {
                base_all_failed: Duration::from_millis(200),
                base_not_all_failed: Duration::from_millis(200),
                max: Duration::from_secs(1),
            })
            .random_seed(5)
    }
}

/// The SIP stack: REGISTER when asked, answers reported with their flow. In external connect
/// mode it makes each flow's socket with a small send buffer.
fn act(driver: &mut Driver, ua: &mut Ua, addr: SocketAddr, event: &Event) {
    match event {
        Event::Connecting { flow, .. } => {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket
                .set_send_buffer_size(SMALL_SOCKET_BUFFER)
                .expect("SO_SNDBUF");
            socket.connect(&addr.into()).expect("connect");
            let stream: TcpStream = socket.into();
            driver.adopt(*flow, OwnedFd::from(stream)).expect("adopt");
        }
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
            let message = SipMessage::parse(message).expect("a SIP response");
            match ua.handle_response(&message) {
                UaOutcome::Challenged { stale } => driver.registration_challenged(*flow, stale),
                UaOutcome::Registered { expires, .. } => {
                    driver.registration_succeeded(*flow, Duration::from_secs(expires.into()), None)
                }
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

fn identity() -> Identity {
    Identity::new(DEFAULT_IMPI, &[DEFAULT_IMPU]).expect("valid identity")
}

/// Drives `driver` (acting as the stack on every event) until it is registered.
fn register(driver: &mut Driver, ua: &mut Ua, addr: SocketAddr) {
    driver.start_registration(identity()).expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        driver.run(Duration::from_millis(50)).expect("poll");
        while let Some(event) = driver.poll_event() {
            act(driver, ua, addr, &event);
            if matches!(event, Event::Registered { .. }) {
                return;
            }
        }
    }
    panic!("not registered: {:?}", driver.state());
}

#[test]
fn a_pcscf_flooding_pings_and_never_reading_is_failed_with_the_outgoing_queue_capped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let flooder = Flooder::start();
    let config = flooder
        .config()
        .max_driver_outgoing_bytes(CAP)
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.set_connect_mode(ConnectMode::External);
    let mut ua = Ua::new(UaConfig::default());
    register(&mut driver, &mut ua, flooder.0.addr());
    let flooded = driver.ue().current_flow().expect("a flow");
    let baseline = live_heap();

    // Three flooded flows in a row: each is failed, the UE backs off and registers again, and
    // the P-CSCF floods the new flow too.
    const FLOWS: usize = 3;
    let (mut max_queued, mut pongs, mut reads_with_pong) = (0, 0u64, 0u64);
    let mut losses = Vec::new();
    let mut backoffs = 0;
    let mut heap_peaks = vec![i64::MIN; FLOWS];
    let deadline = Instant::now() + Duration::from_secs(90);
    while backoffs < FLOWS && Instant::now() < deadline {
        driver.run(Duration::from_millis(50)).expect("poll");
        max_queued = max_queued.max(driver.queued_outgoing_bytes());
        heap_peaks[losses.len().min(FLOWS - 1)] =
            heap_peaks[losses.len().min(FLOWS - 1)].max(live_heap() - baseline);
        let mut pong_this_round = false;
        while let Some(event) = driver.poll_event() {
            match &event {
                Event::PingAnswered { .. } => {
                    pongs += 1;
                    pong_this_round = true;
                }
                Event::ConnectionLost { reason, .. } => losses.push(reason.clone()),
                Event::BackingOff { .. } if losses.len() > backoffs => backoffs += 1,
                _ => {}
            }
            act(&mut driver, &mut ua, flooder.0.addr(), &event);
        }
        reads_with_pong += u64::from(pong_this_round);
    }
    let pings = flooder.0.pings();
    println!(
        "flood: {pings} ping records sent, {pongs} pongs answered, outgoing queue peak \
         {max_queued} bytes (cap {CAP}), live heap peak above the registered baseline per \
         flow {heap_peaks:?} bytes, losses {losses:?}"
    );
    assert_eq!(
        losses.len(),
        FLOWS,
        "every flooded flow was failed: {losses:?}"
    );
    assert_eq!(backoffs, FLOWS, "recovery backs off after each overload");
    assert!(
        losses.iter().all(|l| l.code() == "peer_not_reading"),
        "{losses:?}"
    );
    // Memory does not grow with the flood: over the registered baseline each flow's peak
    // stays within a few caps (both TLS ends live in this process; without the caps one
    // flooded flow alone queued 850 KB before its pong timeout), and the last flow's peak is
    // no higher than the first flow's, give or take one TLS connection on each end.
    assert!(
        heap_peaks.iter().all(|peak| *peak <= 256 * 1024),
        "live heap peaks per flow {heap_peaks:?}"
    );
    assert!(
        heap_peaks[FLOWS - 1] <= heap_peaks[0] + 128 * 1024,
        "live heap peaks per flow {heap_peaks:?}"
    );
    assert!(driver.ue().current_flow() != Some(flooded));
    let lost = losses.swap_remove(0);
    // The queue never held more than the cap plus the one record that crossed it.
    assert!(max_queued <= CAP + 64, "outgoing queue peak {max_queued}");
    match lost {
        imstls::LossReason::PeerNotReading { queued } => assert!(queued <= CAP + 64),
        other => panic!("{other}"),
    }
    // At most one pong per read: the P-CSCF's pings outnumber the pongs by far.
    assert!(
        pongs > 0 && pings > 4 * pongs,
        "{pings} pings, {pongs} pongs"
    );
    assert!(reads_with_pong <= pongs);
}

#[test]
fn an_application_that_stops_polling_events_under_a_flood_has_the_event_queue_capped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let flooder = Flooder::start();
    let config = flooder
        .config()
        .max_driver_event_bytes(CAP)
        .build()
        .expect("config");
    let mut driver = Driver::new(config).expect("driver");
    driver.set_connect_mode(ConnectMode::External);
    let mut ua = Ua::new(UaConfig::default());
    register(&mut driver, &mut ua, flooder.0.addr());
    let flooded = driver.ue().current_flow().expect("a flow");

    // The application stops polling; the P-CSCF floods.
    let mut max_events = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        driver.run(Duration::from_millis(20)).expect("poll");
        max_events = max_events.max(driver.queued_event_bytes());
    }
    println!("event queue peak {max_events} bytes (cap {CAP})");
    // Over the cap by at most what one read and the loss itself add.
    assert!(
        max_events <= CAP + 32 * 1024,
        "event queue peak {max_events}"
    );
    let mut lost = None;
    while let Some(event) = driver.poll_event() {
        if let Event::ConnectionLost { flow, reason, .. } = &event {
            if *flow == flooded {
                lost = Some(reason.clone());
            }
        }
    }
    let lost = lost.expect("the flooded flow was failed");
    assert_eq!(lost.code(), "queue_overflow", "{lost}");
    assert_eq!(driver.queued_event_bytes(), 0);
}
