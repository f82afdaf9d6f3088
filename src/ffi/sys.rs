//! The few operating-system calls std lacks, used by the managed driver (`crate::driver`):
//! a non-blocking TCP connect, `poll(2)` over several descriptors, and taking in a socket
//! descriptor created by the application. Everything else the driver does with std.

use std::ffi::c_int;
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

/// Takes in a connected (or connecting) TCP socket descriptor the application created, e.g.
/// one bound to an Android `Network` with `Network.bindSocket`.
///
/// `transfer`: imstls becomes the owner and closes it when the flow ends. Otherwise imstls
/// works on its own duplicate (`F_DUPFD_CLOEXEC`) and never closes `fd`; when the flow ends
/// it shuts the connection down and closes the duplicate, and `fd` stays the caller's to
/// close. On error, `fd` stays the caller's either way.
///
/// # Safety
///
/// `fd` must be an open descriptor the caller owns and (with `transfer`) gives up, not
/// closed or reused by anyone else afterwards (without `transfer`: until this returns).
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
        // SAFETY: the caller transfers ownership of the open descriptor `fd` to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        borrowed.try_clone_to_owned()
    }
}

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
