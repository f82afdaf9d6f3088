//! The driver's clock. A handset spends most of its life suspended: RFC 5626 keep-alives and
//! the TS 24.229 refresh must count that time, or a phone waking from Doze believes its
//! registration is younger than it is. `Instant` reads `CLOCK_MONOTONIC` on Linux, which
//! stops during suspend; this clock follows `CLOCK_BOOTTIME` instead, expressed as `Instant`s
//! so the engine needs no change. Elsewhere it is `Instant::now()`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::os::boottime_ns;

/// The current instant on a clock that keeps counting through suspend.
pub fn now() -> Instant {
    static ORIGIN: OnceLock<Option<(Instant, u64)>> = OnceLock::new();
    let origin = ORIGIN.get_or_init(|| boottime_ns().map(|boot| (Instant::now(), boot)));
    match (origin, boottime_ns()) {
        (Some((instant, boot_origin)), Some(boot)) => {
            *instant + Duration::from_nanos(boot.saturating_sub(*boot_origin))
        }
        _ => Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_is_monotonic_and_tracks_elapsed_time() {
        let a = now();
        std::thread::sleep(Duration::from_millis(20));
        let b = now();
        assert!(b >= a + Duration::from_millis(20), "{:?}", b - a);
        assert!(b - a < Duration::from_secs(5));
    }
}
