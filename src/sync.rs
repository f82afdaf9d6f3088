//! The crate's locks: `std::sync`'s, without lock poisoning. A panic while a lock is held
//! (caught at the C boundary) leaves the data as it was at the panic; imstls tracks that
//! itself where it matters (a C handle is poisoned by its own flag), so every lock here
//! simply continues. Used instead of the `parking_lot` crate, whose parking machinery took
//! 8 KB of the C library.
#![forbid(unsafe_code)]

use std::sync::{PoisonError, TryLockError};

pub(crate) use std::sync::MutexGuard;

/// A mutual-exclusion lock that ignores poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    /// Blocks until the lock is free.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock if it is free now; `None` if anyone (this thread included) holds it.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// A condition variable for [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(std::sync::Condvar);

impl Condvar {
    /// Releases `guard`, waits for a notification (or a spurious wake-up), locks again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_and_a_panic_inside_does_not_poison_it() {
        let lock = Mutex::new(1);
        let held = lock.lock();
        assert!(lock.try_lock().is_none(), "held by this thread");
        drop(held);
        let panicked = std::panic::catch_unwind(|| {
            let mut value = lock.lock();
            *value = 2;
            panic!("a panic of the test's, with the lock held");
        });
        assert!(panicked.is_err());
        assert_eq!(*lock.try_lock().expect("free again"), 2);
        assert_eq!(*lock.lock(), 2);
    }
}
