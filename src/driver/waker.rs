//! A self-pipe (a Unix socket pair) that interrupts a thread blocked in
//! [`WaitPlan::wait`](super::WaitPlan::wait).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Wakes a thread blocked in [`WaitPlan::wait`](super::WaitPlan::wait) for the driver it
/// came from. Cheap to clone, `Send + Sync`; waking with nobody waiting is harmless.
#[derive(Debug, Clone)]
pub struct Waker {
    tx: Arc<UnixStream>,
}

impl Waker {
    /// Makes the next (or current) wait return at once.
    #[inline(never)]
    pub fn wake(&self) {
        // A full pipe already means "wake up"; any other error leaves the waiter to its
        // timeout, which is always bounded.
        let _ = (&*self.tx).write(&[1]);
    }
}

#[derive(Debug)]
pub(crate) struct WakePipe {
    rx: UnixStream,
    waker: Waker,
}

impl WakePipe {
    pub(crate) fn new() -> std::io::Result<Self> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Self {
            rx,
            waker: Waker { tx: Arc::new(tx) },
        })
    }

    pub(crate) fn waker(&self) -> Waker {
        self.waker.clone()
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Empties the pipe (a wake-up has been seen).
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.rx).read(&mut buf) {
                Ok(n) if n == buf.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => return,
            }
        }
    }
}
