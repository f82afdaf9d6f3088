//! Simulator logging: silent unless `IMSTLS_SIM_LOG=1`, then plain lines on stderr.

use std::sync::OnceLock;

/// True when `IMSTLS_SIM_LOG=1` was set when the first log line was attempted.
pub(crate) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("IMSTLS_SIM_LOG").is_ok_and(|v| v == "1"))
}

/// Logs one line to stderr when simulator logging is enabled.
macro_rules! sim_log {
    ($($arg:tt)*) => {
        if $crate::log::enabled() {
            eprintln!("[imstls-sim] {}", format_args!($($arg)*));
        }
    };
}
pub(crate) use sim_log;
