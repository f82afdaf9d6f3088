//! The engine's timing rules as pure functions, so each is unit-tested on its own.

use std::time::Duration;

use crate::config::Backoff;

/// RFC 5626 §4.5: `W = min(max-time, base-time · 2^consecutive-failures)`; the wait is
/// uniform in `[W/2, W]`. Returns the window `(W/2, W)`. `all_flows_failed`: "all of the
/// flows to every URI in the outbound proxy set have failed" (base 30 s); false only while
/// another registration flow is still up (base 90 s).
pub(crate) fn backoff_window(
    policy: &Backoff,
    consecutive_failures: u32,
    all_flows_failed: bool,
) -> (Duration, Duration) {
    let base = if all_flows_failed {
        policy.base_all_failed
    } else {
        policy.base_not_all_failed
    };
    let factor = 1u32
        .checked_shl(consecutive_failures.min(31))
        .unwrap_or(u32::MAX);
    let upper = base
        .checked_mul(factor)
        .unwrap_or(policy.max)
        .min(policy.max);
    (upper / 2, upper)
}

/// TS 24.229 §5.1.1.4.1: re-register 600 s before expiry when the registration lasts more
/// than 1200 s, else when half of it has elapsed.
pub(crate) fn refresh_delay(expires: Duration) -> Duration {
    if expires > Duration::from_secs(1200) {
        expires - Duration::from_secs(600)
    } else {
        expires / 2
    }
}

/// RFC 5626 §4.4.1 keep-alive interval: 80–100 % of Flow-Timer when the registrar gave
/// one, else 95–120 s (672–840 s in battery-saving mode). Returns the window.
pub(crate) fn keepalive_window(
    flow_timer: Option<Duration>,
    battery_saving: bool,
) -> (Duration, Duration) {
    match flow_timer {
        Some(t) if !t.is_zero() => (t.mul_f64(0.8), t),
        _ if battery_saving => (Duration::from_secs(672), Duration::from_secs(840)),
        _ => (Duration::from_secs(95), Duration::from_secs(120)),
    }
}

/// A small deterministic generator (SplitMix64) for jitter. Not for secrets: jitter only
/// has to spread reconnects, and tests need to reproduce it from a seed.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high]` at millisecond resolution.
    pub(crate) fn between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let span = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.next_u64() % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_follows_rfc5626_section_4_5() {
        let policy = Backoff::default();
        assert_eq!(backoff_window(&policy, 1, true), (S(30), S(60)));
        assert_eq!(backoff_window(&policy, 2, true), (S(60), S(120)));
        assert_eq!(backoff_window(&policy, 3, true), (S(120), S(240)));
        assert_eq!(backoff_window(&policy, 1, false), (S(90), S(180)));
        assert_eq!(backoff_window(&policy, 6, true), (S(900), S(1800)));
        assert_eq!(backoff_window(&policy, 40, true), (S(900), S(1800)));
        assert_eq!(backoff_window(&policy, 0, true), (S(15), S(30)));
    }

    #[test]
    fn refresh_is_600s_early_for_long_registrations_else_halfway() {
        assert_eq!(refresh_delay(S(3600)), S(3000));
        assert_eq!(refresh_delay(S(1201)), S(601));
        assert_eq!(refresh_delay(S(1200)), S(600));
        assert_eq!(refresh_delay(S(600)), S(300));
        assert_eq!(refresh_delay(S(1)), Duration::from_millis(500));
    }

    #[test]
    fn keepalive_windows() {
        assert_eq!(keepalive_window(None, false), (S(95), S(120)));
        assert_eq!(keepalive_window(None, true), (S(672), S(840)));
        assert_eq!(keepalive_window(Some(S(100)), false), (S(80), S(100)));
        assert_eq!(keepalive_window(Some(S(100)), true), (S(80), S(100)));
        assert_eq!(keepalive_window(Some(S(0)), false), (S(95), S(120)));
    }

    #[test]
    fn jitter_is_reproducible_and_in_range() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        for _ in 0..1000 {
            let x = a.between(S(30), S(60));
            assert_eq!(x, b.between(S(30), S(60)));
            assert!(x >= S(30) && x <= S(60));
        }
        assert_eq!(a.between(S(5), S(5)), S(5));
        assert_eq!(a.between(S(6), S(5)), S(6));
    }
}
