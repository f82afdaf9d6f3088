//! The body of the `driver_api` fuzz target (`fuzz/fuzz_targets/driver_api.rs`, replayed in CI
//! by `tests/fuzz_smoke.rs`): a program of calls on `imstls_driver` handles the way a C caller
//! makes them — sockets handed in with `imstls_driver_adopt_fd` (real loopback TCP pairs, a
//! socket that is not a stream, -1), stepping with `run(0)` and `process`, `send_sip`, bytes
//! and closes from the peer, event polling through undersized buffers, reports with
//! out-of-range codes, stop, wake, a free in the middle of a flow.
//!
//! Properties for any input: no call returns `IMSTLS_PANIC` or `IMSTLS_POISONED`; a stopped
//! driver's `run` returns `IMSTLS_STOPPED`; nothing blocks (every wait is `run(0)`; libFuzzer's
//! `-timeout` catches a hang); and when the program's handles are freed and its own sockets
//! closed, the process holds exactly the descriptors it held before (`/proc/self/fd`).

use std::ffi::{c_char, c_int, c_void};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::ptr;

use super::codes::{
    imstls_connect_mode, imstls_event_kind, imstls_fd_ownership, imstls_result, imstls_state,
};
use super::config::*;
use super::driver::*;
use super::error::{imstls_error_copy_message, imstls_error_free};
// The op-program reader and the checks are the `ffi` target's own.
use super::fuzz::{c_string, check, number, ops};
use super::output::*;

/// Drivers alive at once at most; more `new` ops are ignored.
const MAX_DRIVERS: usize = 2;
/// Sockets handed in per input at most (each is a loopback TCP connection).
const MAX_SOCKETS: usize = 8;

/// Open descriptors of this process.
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// The wake-up callback the program installs: the fuzz caller's (`fuzz/src/targets.rs`), as
/// callbacks are the C caller's code.
pub type WakeCallback = unsafe extern "C" fn(userdata: *mut c_void);

/// The loopback listener the "P-CSCF" ends of handed-in sockets come from (one per thread).
fn listener() -> Option<&'static TcpListener> {
    thread_local! {
        static LISTENER: Option<&'static TcpListener> =
            TcpListener::bind("127.0.0.1:0").ok().map(|l| &*Box::leak(Box::new(l)));
    }
    LISTENER.with(|l| *l)
}

/// A connected loopback pair: (the UE's end, the peer's end).
fn tcp_pair() -> Option<(TcpStream, TcpStream)> {
    let listener = listener()?;
    let client = TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let (server, _) = listener.accept().ok()?;
    server.set_nonblocking(true).ok()?;
    Some((client, server))
}

/// One driver of the program, with what the program knows about it.
struct Subject {
    driver: *mut imstls_driver,
    /// The flow of the last CONNECTING event.
    pending: Option<u64>,
    stopped: bool,
}

impl Subject {
    fn new(config: *const imstls_config, arg: &[u8], wake: WakeCallback) -> Option<Self> {
        let mut driver = ptr::null_mut();
        if check(imstls_driver_new(config, &mut driver), "new") != imstls_result::IMSTLS_OK {
            return None;
        }
        let external = arg.first().is_none_or(|b| b & 1 == 0);
        if external {
            let mode = imstls_connect_mode::IMSTLS_CONNECT_EXTERNAL as u32;
            check(imstls_driver_set_connect_mode(driver, mode), "mode");
        }
        if arg.get(1).is_some_and(|b| b & 1 == 1) {
            check(
                imstls_driver_set_wake_callback(driver, Some(wake), ptr::null_mut()),
                "set_wake_callback",
            );
        }
        let impu = c"sip:alice@ims.test";
        let impus = [impu.as_ptr()];
        check(
            imstls_driver_start_registration(
                driver,
                c"alice@ims.test".as_ptr(),
                impus.as_ptr(),
                impus.len(),
            ),
            "start_registration",
        );
        Some(Self {
            driver,
            pending: None,
            stopped: false,
        })
    }

    /// Drains events, reading each through a buffer of `scratch.len()` bytes.
    fn drain(&mut self, scratch: &mut [u8]) {
        for _ in 0..256 {
            let mut event = ptr::null_mut();
            if check(
                imstls_driver_poll_event(self.driver, &mut event),
                "poll_event",
            ) != imstls_result::IMSTLS_OK
            {
                return;
            }
            let mut needed = 0usize;
            check(
                imstls_output_copy_data(event, scratch.as_mut_ptr(), scratch.len(), &mut needed),
                "copy_data",
            );
            if imstls_output_event(event) == imstls_event_kind::IMSTLS_EVENT_CONNECTING {
                self.pending = Some(imstls_output_flow(event));
            }
            imstls_output_free(event);
        }
    }

    fn run(&mut self) {
        let result = check(imstls_driver_run(self.driver, 0), "run");
        if self.stopped {
            assert_eq!(result, imstls_result::IMSTLS_STOPPED, "run after stop");
        }
    }
}

/// The program's own sockets: peer ends, and UE ends lent or refused (still ours).
#[derive(Default)]
struct Sockets {
    peers: Vec<TcpStream>,
    kept: Vec<OwnedFd>,
    made: usize,
}

fn adopt(subject: &Subject, sockets: &mut Sockets, arg: &[u8]) -> imstls_result {
    let choice = arg.first().copied().unwrap_or(0);
    let ownership = match choice % 4 {
        0 => imstls_fd_ownership::IMSTLS_FD_TRANSFER as u32,
        1 => imstls_fd_ownership::IMSTLS_FD_BORROW as u32,
        _ => number(arg.get(1..).unwrap_or_default()), // mostly out of range
    };
    let flow = match (choice >> 2) % 4 {
        0 | 1 => subject.pending.unwrap_or(1),
        2 => subject.pending.map_or(0, |f| f.wrapping_add(1)),
        _ => u64::from(number(arg.get(1..).unwrap_or_default())),
    };
    let fd: OwnedFd = match (choice >> 4) % 4 {
        // -1 is never a descriptor: no ownership to track.
        3 => {
            return check(
                imstls_driver_adopt_fd(subject.driver, flow, -1, ownership),
                "adopt_fd(-1)",
            )
        }
        // A socket, but not a stream: refused, stays ours.
        2 => match UdpSocket::bind("127.0.0.1:0") {
            Ok(socket) => OwnedFd::from(socket),
            Err(_) => return imstls_result::IMSTLS_OK,
        },
        _ => {
            if sockets.made >= MAX_SOCKETS {
                return imstls_result::IMSTLS_OK;
            }
            let Some((ue_end, peer_end)) = tcp_pair() else {
                return imstls_result::IMSTLS_OK;
            };
            sockets.made += 1;
            sockets.peers.push(peer_end);
            OwnedFd::from(ue_end)
        }
    };
    let transfer = ownership == imstls_fd_ownership::IMSTLS_FD_TRANSFER as u32;
    let (raw, lent) = if transfer {
        (fd.into_raw_fd(), None)
    } else {
        (fd.as_raw_fd(), Some(fd))
    };
    let result = check(
        imstls_driver_adopt_fd(subject.driver, flow, raw as c_int, ownership),
        "adopt_fd",
    );
    match lent {
        Some(fd) => sockets.kept.push(fd),
        // IMSTLS_IO_ERROR: taken, then closed by the driver.
        None if !matches!(
            result,
            imstls_result::IMSTLS_OK | imstls_result::IMSTLS_IO_ERROR
        ) =>
        {
            // SAFETY: the call failed before taking `raw` (its contract for every other
            // result), so it is still open and ours (given up with `into_raw_fd` above).
            sockets.kept.push(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        None => {}
    }
    result
}

fn peer_send(sockets: &mut Sockets, arg: &[u8]) {
    if let Some(peer) = sockets.peers.last_mut() {
        let _ = peer.write(arg.get(1..).unwrap_or_default());
    }
}

fn peer_read_and_close(sockets: &mut Sockets, arg: &[u8]) {
    let Some(peer) = sockets.peers.last_mut() else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        match peer.read(&mut buf) {
            Ok(n) if n > 0 => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
    match arg.first().copied().unwrap_or(0) % 3 {
        0 => {}
        1 => {
            let _ = peer.shutdown(Shutdown::Write);
        }
        _ => drop(sockets.peers.pop()),
    }
}

fn queries(subject: &Subject, arg: &[u8], scratch: &mut [u8]) {
    let d = subject.driver;
    let null = arg.first().is_some_and(|b| b & 1 == 1);
    let mut fd: c_int = -1;
    let mut interest = 0u32;
    let mut ms = 0u64;
    let mut state = imstls_state::IMSTLS_STATE_IDLE;
    if null {
        check(imstls_driver_fd(d, ptr::null_mut()), "fd");
        check(imstls_driver_interest(d, ptr::null_mut()), "interest");
        check(imstls_driver_timeout_ms(d, ptr::null_mut()), "timeout_ms");
        check(imstls_driver_state(d, ptr::null_mut()), "state");
        check(imstls_driver_poll_event(d, ptr::null_mut()), "poll_event");
    } else {
        check(imstls_driver_fd(d, &mut fd), "fd");
        check(imstls_driver_interest(d, &mut interest), "interest");
        check(imstls_driver_timeout_ms(d, &mut ms), "timeout_ms");
        check(imstls_driver_state(d, &mut state), "state");
    }
    let mut binding = ptr::null_mut();
    if check(imstls_driver_binding(d, &mut binding), "binding") == imstls_result::IMSTLS_OK {
        super::binding::imstls_binding_free(binding);
    }
    let mut error = ptr::null_mut();
    if check(imstls_driver_last_error(d, &mut error), "last_error") == imstls_result::IMSTLS_OK {
        let mut needed = 0usize;
        check(
            imstls_error_copy_message(
                error,
                scratch.as_mut_ptr().cast::<c_char>(),
                scratch.len(),
                &mut needed,
            ),
            "copy_message",
        );
        imstls_error_free(error);
    }
}

/// One fuzz input: a program of calls on up to two drivers; `wake` is installed as their
/// wake-up callback (with a NULL userdata) when the program says so.
pub fn driver_api_bytes(data: &[u8], wake: WakeCallback) {
    // Whatever a process opens once and keeps (the listener, anything the TLS stack opens
    // on first use) is opened before counting.
    thread_local! {
        static WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !WARM.replace(true) {
        run_program(&[1, 0, 2, 0, 0, 1, 0], wake);
    }
    let before = open_descriptors();
    run_program(data, wake);
    // Another thread of the process (a test harness) may hold a descriptor for a moment: a
    // leak is what stays.
    let mut after = open_descriptors();
    for _ in 0..50 {
        if after == before {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        after = open_descriptors();
    }
    assert_eq!(
        before, after,
        "descriptors leaked ({before} before, {after} after)"
    );
}

fn run_program(data: &[u8], wake: WakeCallback) {
    let mut builder = ptr::null_mut();
    check(imstls_config_builder_new(&mut builder), "builder");
    // Port 9 on loopback: a managed-mode connect is refused at once, never reaches a server.
    imstls_config_builder_add_pcscf(builder, c"127.0.0.1:9".as_ptr());
    imstls_config_builder_set_server_name(builder, c"pcscf.ims.test".as_ptr());
    let mut config = ptr::null_mut();
    check(imstls_config_builder_build(builder, &mut config), "build");
    imstls_config_builder_free(builder);
    if config.is_null() {
        return;
    }

    let mut subjects: Vec<Subject> = Vec::new();
    let mut sockets = Sockets::default();
    let mut scratch = vec![0u8; 16];
    if let Some(subject) = Subject::new(config, &[], wake) {
        subjects.push(subject);
    }
    for (op, arg) in ops(data) {
        scratch.resize(usize::from(arg.last().copied().unwrap_or(16)), 0);
        let which = usize::from(op >> 4) % MAX_DRIVERS;
        if op % 16 == 15 {
            // A new driver (or none, beyond the limit).
            if subjects.len() < MAX_DRIVERS {
                subjects.extend(Subject::new(config, arg, wake));
            }
            continue;
        }
        if subjects.is_empty() {
            continue;
        }
        let which = which % subjects.len();
        let subject = &mut subjects[which];
        let d = subject.driver;
        match op % 16 {
            0 => subject.drain(&mut scratch),
            1 => {
                adopt(subject, &mut sockets, arg);
            }
            2 => subject.run(),
            3 => {
                check(imstls_driver_process(d), "process");
            }
            4 => {
                check(
                    imstls_driver_send_sip(d, arg.as_ptr(), arg.len()),
                    "send_sip",
                );
            }
            5 => peer_send(&mut sockets, arg),
            6 => peer_read_and_close(&mut sockets, arg),
            7 => {
                let detail = c_string(arg.get(4..).unwrap_or_default());
                let flow = subject.pending.unwrap_or(u64::from(number(arg)));
                check(
                    imstls_driver_connect_failed(d, flow, number(arg), detail.as_ptr()),
                    "connect_failed",
                );
            }
            8 => queries(subject, arg, &mut scratch),
            9 => {
                let second = number(arg.get(4..).unwrap_or_default());
                let choice = arg.first().copied().unwrap_or(0);
                // Mostly the current flow; sometimes a stale or unknown one.
                let flow = match (choice >> 2) % 4 {
                    0 | 1 => subject.pending.unwrap_or(1),
                    2 => subject.pending.map_or(0, |f| f.wrapping_add(1)),
                    _ => u64::from(second),
                };
                let result = match choice % 3 {
                    0 => imstls_driver_registration_challenged(d, flow, second & 1 == 1),
                    1 => imstls_driver_registration_succeeded(d, flow, number(arg), second),
                    _ => imstls_driver_registration_failed(d, flow, number(arg), second),
                };
                check(result, "report");
            }
            10 => {
                let result = match arg.first().copied().unwrap_or(0) % 3 {
                    0 => imstls_driver_network_changed(d),
                    1 => imstls_driver_rekey(d),
                    _ => imstls_driver_deregister(d),
                };
                check(result, "input");
            }
            11 => {
                check(
                    imstls_driver_set_connect_mode(d, number(arg)),
                    "set_connect_mode",
                );
            }
            12 => {
                let callback = arg.first().is_some_and(|b| b & 1 == 1).then_some(wake);
                check(
                    imstls_driver_set_wake_callback(d, callback, ptr::null_mut()),
                    "set_wake_callback",
                );
            }
            13 => {
                if arg.first().is_some_and(|b| b & 1 == 1) {
                    check(imstls_driver_stop(d), "stop");
                    subject.stopped = true;
                } else {
                    check(imstls_driver_wake(d), "wake");
                }
                subject.run();
            }
            _ => {
                // Free in the middle of whatever the flow is doing.
                let subject = subjects.remove(which);
                imstls_driver_free(subject.driver);
            }
        }
    }
    for subject in subjects {
        imstls_driver_free(subject.driver);
    }
    imstls_config_free(config);
    drop(sockets);
}
