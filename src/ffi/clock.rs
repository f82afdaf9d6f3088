//! Caller time ↔ `Instant`. C passes `now_ms`: milliseconds of any monotonic clock with any
//! epoch (`CLOCK_MONOTONIC`, `CLOCK_BOOTTIME`, Android's `SystemClock.elapsedRealtime()`).
//!
//! The mapping: the handle remembers the first `now_ms` it saw together with an `Instant`;
//! `now_ms` maps to that `Instant` plus the difference. Time never goes backwards inside: a
//! smaller `now_ms` than the largest seen so far counts as the largest seen. Deadlines go
//! back out rounded *up* to the next millisecond, so calling `handle_timeout` at the returned
//! value always fires the timer.

use std::time::{Duration, Instant};

use super::failure::Failure;

/// About 35 years: further jumps are rejected rather than risk `Instant` overflow.
const MAX_SPAN_MS: u64 = 1 << 40;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    base_ms: u64,
    latest_ms: u64,
}

impl Clock {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            base: Instant::now(),
            base_ms: now_ms,
            latest_ms: now_ms,
        }
    }

    /// The engine instant for `now_ms` (clamped so time never goes backwards). Out of line:
    /// every input export calls it.
    #[inline(never)]
    pub(crate) fn instant(&mut self, now_ms: u64) -> Result<Instant, Failure> {
        let ms = now_ms.max(self.latest_ms);
        let span = ms - self.base_ms;
        if span > MAX_SPAN_MS {
            return Err(jumped(span));
        }
        self.latest_ms = ms;
        Ok(self.base + Duration::from_millis(span))
    }

    /// `at` in caller milliseconds, rounded up.
    pub(crate) fn millis(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base);
        let whole = since.as_millis();
        let ceil = if since.subsec_nanos() % 1_000_000 == 0 {
            whole
        } else {
            whole + 1
        };
        self.base_ms
            .saturating_add(u64::try_from(ceil).unwrap_or(u64::MAX))
    }
}

/// The failure of a `now_ms` too far ahead (out of line: `instant` is inlined into every
/// input export).
#[cold]
#[inline(never)]
fn jumped(span: u64) -> Failure {
    Failure::invalid(format!(
        "now_ms jumped {span} ms ahead of the first value this handle saw"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_maps_both_ways_and_never_goes_backwards() {
        let mut clock = Clock::new(5_000);
        let t0 = clock.instant(5_000).unwrap();
        let t1 = clock.instant(6_500).unwrap();
        assert_eq!(t1 - t0, Duration::from_millis(1_500));
        assert_eq!(clock.millis(t1), 6_500);
        // Backwards: clamped to the latest.
        assert_eq!(clock.instant(1_000).unwrap(), t1);
        // Sub-millisecond deadlines round up.
        assert_eq!(clock.millis(t1 + Duration::from_micros(1)), 6_501);
        // Before the base: clamped to the base.
        assert_eq!(clock.millis(t0 - Duration::from_millis(3)), 5_000);
        assert!(clock.instant(u64::MAX).is_err());
    }
}
