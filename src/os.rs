//! The OS layer: the few operating-system calls std lacks, used by the managed driver
//! (`crate::driver`): a non-blocking TCP connect, `poll(2)` over several descriptors,
//! `send`/`recv` that never block whatever the descriptor's `O_NONBLOCK` flag, and taking in
//! a socket descriptor created by the application (for the C API), and a detached thread
//! without `std::thread`'s bookkeeping (the resolver's). Everything else the driver does with
//! std.
//!
//! With `crate::ffi`, the only module where `unsafe` is allowed; every function here is safe
//! to call except [`adopt_socket`], whose raw descriptor carries an ownership contract the
//! types cannot state. It imports nothing of the crate.
// The OS layer: one of the two places `unsafe` is allowed (the crate denies it in [lints]).
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Starts a non-blocking TCP connect to `addr`. The returned stream is non-blocking and
/// close-on-exec; the connect may still be in progress (wait for writability, then check
/// `take_error` / `peer_addr`).
pub(crate) fn connect_nonblocking(addr: &SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor socket(2) just returned to us; nothing else owns it, so
    // the OwnedFd closes it exactly once (also on the error paths below).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (storage, len) = socket_address(addr);
    // SAFETY: `storage` holds a valid sockaddr_in/sockaddr_in6 of `len` bytes for the
    // socket's family, alive for the call; `fd` is an open socket.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            std::ptr::from_ref(&storage).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(error);
        }
    }
    Ok(TcpStream::from(fd))
}

fn socket_address(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One descriptor to wait on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub fd: RawFd,
    pub readable: bool,
    pub writable: bool,
}

/// `poll(2)`: waits until one descriptor is ready (or has an error or hang-up) or `timeout`
/// passes (`None`: no timeout). Returns whether anything was ready; an interrupted wait
/// counts as "nothing ready".
pub(crate) fn poll(waits: &[Wait], timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds: Vec<libc::pollfd> = waits
        .iter()
        .map(|w| libc::pollfd {
            fd: w.fd,
            events: if w.readable { libc::POLLIN } else { 0 }
                | if w.writable { libc::POLLOUT } else { 0 },
            revents: 0,
        })
        .collect();
    let timeout_ms: c_int = match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
            c_int::try_from(ms).unwrap_or(c_int::MAX)
        }
    };
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures for the call; poll(2)
    // only writes their `revents`.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(error);
    }
    Ok(rc > 0)
}

/// `recv(2)` with `MSG_DONTWAIT`: never blocks, whether or not the descriptor is in
/// non-blocking mode. A duplicate of an application's descriptor shares its open file
/// description, so the driver leaves `O_NONBLOCK` alone and asks per call instead.
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable memory of `buf.len()` bytes for the duration of the call;
    // `fd` is open (borrowed).
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `send(2)` with `MSG_DONTWAIT | MSG_NOSIGNAL`: never blocks (see [`recv_nonblocking`]) and
/// never raises `SIGPIPE` in the host process; a closed peer is an `EPIPE` error.
pub(crate) fn send_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable memory of `buf.len()` bytes for the duration of the call;
    // `fd` is open (borrowed).
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast::<libc::c_void>(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Sets close-on-exec (`FD_CLOEXEC`), so that a program the application starts does not
/// inherit the connection.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(2) F_GETFD/F_SETFD on an open descriptor; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes in a connected (or connecting) TCP socket descriptor the application created, e.g.
/// one bound to an Android `Network` with `Network.bindSocket`. Its status flags
/// (`O_NONBLOCK`) are left as they are: the driver's I/O never blocks anyway
/// ([`recv_nonblocking`], [`send_nonblocking`]).
///
/// `transfer`: imstls becomes the owner, sets close-on-exec on `fd` and closes it when the
/// flow ends. Otherwise imstls works on its own duplicate (`F_DUPFD_CLOEXEC`) and never
/// closes `fd` or changes its flags; when the flow ends it shuts the connection down and
/// closes the duplicate, and `fd` stays the caller's to close. On error, `fd` stays the
/// caller's either way.
///
/// # Safety
///
/// `fd` must be an open descriptor the caller owns and (with `transfer`) gives up, not
/// closed or reused by anyone else afterwards (without `transfer`: until this returns).
#[cfg_attr(not(feature = "capi"), allow(dead_code))] // the C API's entry point only
pub(crate) unsafe fn adopt_socket(fd: c_int, transfer: bool) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the caller guarantees `fd` is open for the duration of this function.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if !is_stream_socket(borrowed)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the descriptor is not a stream socket",
        ));
    }
    if transfer {
        set_cloexec(borrowed)?;
        // SAFETY: the caller transfers ownership of the open descriptor `fd` to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        borrowed.try_clone_to_owned()
    }
}

#[cfg_attr(not(feature = "capi"), allow(dead_code))]
fn is_stream_socket(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut kind: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `len` bytes into `kind`, which is a c_int with
    // `len` = its size; `fd` is open.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            std::ptr::from_mut(&mut kind).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ENOTSOCK) {
            return Ok(false);
        }
        return Err(error);
    }
    Ok(kind == libc::SOCK_STREAM)
}

/// Nanoseconds of `CLOCK_BOOTTIME`: monotonic, and unlike `CLOCK_MONOTONIC` (what `Instant`
/// reads on Linux) it keeps counting while the device is suspended. `None` where the clock
/// does not exist.
pub(crate) fn boottime_ns() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime(2) writes one timespec into `ts`, which is valid and
        // exclusively borrowed for the call; the return value is checked.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        if rc != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// Work for a thread of [`spawn_detached`].
pub(crate) type ThreadWork = Box<dyn FnOnce() + Send + 'static>;

/// The stack of a thread of [`spawn_detached`]: std's default for spawned threads (the C
/// library's own default varies, 128 KiB on musl).
const THREAD_STACK: usize = 2 << 20;

/// What a thread of [`spawn_detached`] starts with.
struct ThreadStart {
    name: &'static CStr,
    work: ThreadWork,
}

/// Runs `work` on a new detached POSIX thread named `name` (Linux keeps 15 bytes of it). A
/// panic in `work` ends the thread, not the process. `std::thread::spawn` would do the same
/// and link its bookkeeping (thread handles, the join packet, spawn hooks, the stack-overflow
/// handler: 30 KB of the C library) for the one resolver thread the driver starts.
pub(crate) fn spawn_detached(name: &'static CStr, work: ThreadWork) -> io::Result<()> {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Box<ThreadStart>` that `spawn_detached` leaked for this thread
        // alone, and only this call takes it back.
        let start = unsafe { Box::from_raw(arg.cast::<ThreadStart>()) };
        // SAFETY: names the calling thread, which is alive; the name is NUL-terminated.
        // Failure (a name too long) leaves the thread unnamed, which is harmless.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), start.name.as_ptr()) };
        // A panic may not unwind out of an `extern "C"` function; the panic hook has
        // reported it by now.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(start.work));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(ThreadStart { name, work }));
    // SAFETY: pthread_attr_t is plain data, initialised by pthread_attr_init below before
    // any other use.
    let mut attr: libc::pthread_attr_t = unsafe { zeroed() };
    // SAFETY: `attr` is valid and exclusively borrowed for these calls; it is destroyed once
    // pthread_create has read it. `start` has the signature pthread_create expects, and
    // `arg` stays valid until the new thread takes it. Return values are checked.
    let rc = unsafe {
        let mut rc = libc::pthread_attr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            if rc == 0 {
                rc = libc::pthread_attr_setstacksize(&mut attr, THREAD_STACK);
            }
            if rc == 0 {
                let mut thread: libc::pthread_t = zeroed();
                rc = libc::pthread_create(&mut thread, &attr, start, arg.cast());
            }
            libc::pthread_attr_destroy(&mut attr);
        }
        rc
    };
    if rc != 0 {
        // SAFETY: no thread was started, so `arg` (from Box::into_raw above) is ours alone.
        drop(unsafe { Box::from_raw(arg) });
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::{AsFd, IntoRawFd};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn a_detached_thread_runs_under_its_name_and_a_panic_ends_only_it() {
        let (tell, told) = std::sync::mpsc::channel();
        spawn_detached(
            c"imstls-test",
            Box::new(move || {
                let name = std::fs::read_to_string("/proc/thread-self/comm").expect("comm");
                tell.send((name, own_stack_size())).expect("send");
            }),
        )
        .expect("spawn");
        let (name, stack) = told
            .recv_timeout(Duration::from_secs(10))
            .expect("the work ran");
        assert_eq!(name.trim_end(), "imstls-test");
        assert_eq!(stack, THREAD_STACK);

        let (tell, told) = std::sync::mpsc::channel::<()>();
        spawn_detached(
            c"imstls-panic",
            Box::new(move || {
                let _tell = tell; // dropped while unwinding
                panic!("a panic of the test's, on a detached thread");
            }),
        )
        .expect("spawn");
        assert_eq!(
            told.recv_timeout(Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }

    /// The stack size of the calling thread, as its attributes report it.
    fn own_stack_size() -> usize {
        // SAFETY: pthread_getattr_np initialises `attr` for the calling (live) thread; it is
        // read with pthread_attr_getstacksize and destroyed once; return values are checked.
        unsafe {
            let mut attr: libc::pthread_attr_t = zeroed();
            assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
            let mut size = 0;
            assert_eq!(libc::pthread_attr_getstacksize(&attr, &mut size), 0);
            libc::pthread_attr_destroy(&mut attr);
            size
        }
    }

    fn fcntl(fd: RawFd, command: c_int) -> c_int {
        // SAFETY: F_GETFD/F_GETFL on a descriptor the test holds open; no memory is passed.
        let value = unsafe { libc::fcntl(fd, command) };
        assert!(value >= 0, "fcntl: {}", io::Error::last_os_error());
        value
    }

    /// A connected, blocking TCP pair on loopback (std sockets are close-on-exec: clear it
    /// on the client so that the transfer case has something to set).
    fn blocking_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let fd = client.as_raw_fd();
        // SAFETY: F_SETFD on the test's open descriptor.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        (client, server)
    }

    #[test]
    fn a_lent_descriptor_keeps_its_flags_and_io_on_it_never_blocks() {
        let (client, mut server) = blocking_pair();
        let status = fcntl(client.as_raw_fd(), libc::F_GETFL);
        assert_eq!(status & libc::O_NONBLOCK, 0);
        // SAFETY: `client` stays open for the call.
        let duplicate = unsafe { adopt_socket(client.as_raw_fd(), false) }.expect("adopt");
        assert_ne!(duplicate.as_raw_fd(), client.as_raw_fd());
        assert_ne!(
            fcntl(duplicate.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC,
            0
        );
        assert_eq!(
            fcntl(client.as_raw_fd(), libc::F_GETFL),
            status,
            "caller's flags"
        );
        assert_eq!(
            fcntl(client.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC,
            0
        );

        // Nothing to read on a blocking socket: WouldBlock at once, not a hang.
        let mut buf = [0u8; 16];
        let started = Instant::now();
        let error = recv_nonblocking(duplicate.as_fd(), &mut buf).expect_err("nothing to read");
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            send_nonblocking(duplicate.as_fd(), b"ping").expect("send"),
            4
        );
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut server, &mut got).expect("read");
        assert_eq!(&got, b"ping");
        std::io::Write::write_all(&mut server, b"pong").expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match recv_nonblocking(duplicate.as_fd(), &mut buf) {
                Ok(n) => break assert_eq!(&buf[..n], b"pong"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no data");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(
            fcntl(client.as_raw_fd(), libc::F_GETFL),
            status,
            "caller's flags"
        );
    }

    #[test]
    fn a_transferred_descriptor_becomes_close_on_exec() {
        let (client, _server) = blocking_pair();
        let raw = client.into_raw_fd();
        assert_eq!(fcntl(raw, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
        // SAFETY: `raw` is open and ours to give away.
        let owned = unsafe { adopt_socket(raw, true) }.expect("adopt");
        assert_eq!(owned.as_raw_fd(), raw);
        assert_ne!(fcntl(raw, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn sockets_imstls_creates_are_close_on_exec() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream = connect_nonblocking(&listener.local_addr().expect("addr")).expect("connect");
        assert_ne!(
            fcntl(stream.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC,
            0
        );
        // The driver's wake-up pipe is a std socket pair.
        let (a, b) = UnixStream::pair().expect("pair");
        for end in [&a, &b] {
            assert_ne!(fcntl(end.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC, 0);
        }
    }

    #[test]
    fn a_descriptor_that_is_not_a_stream_socket_stays_the_callers() {
        let datagram = std::os::unix::net::UnixDatagram::unbound().expect("datagram");
        // SAFETY: open for the call.
        let refused = unsafe { adopt_socket(datagram.as_raw_fd(), true) };
        assert!(refused.is_err());
        assert!(
            fcntl(datagram.as_raw_fd(), libc::F_GETFD) >= 0,
            "still open"
        );
        // SAFETY: open for the call.
        assert!(unsafe { adopt_socket(-1, false) }.is_err());
    }
}
