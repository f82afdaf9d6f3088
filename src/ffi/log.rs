//! The `log` facade bridged to a C callback, **per handle**: there is no process-wide
//! callback. One small bridge is registered with `log` the first time a handle asks for a
//! callback; while a call on a handle runs, the handle's callback is the current thread's
//! sink, so records the engine emits during that call reach that handle's callback and no
//! other. Records emitted outside any imstls call are dropped.
//!
//! imstls never logs secrets: no password, no IMPI/IMPU, no SIP content (the engine's
//! events and logs carry codes, flows and sizes).

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::boundary::{c_string, enum_arg};
use super::codes::{imstls_log_level, imstls_result};
use super::failure::Failure;

/// A log callback: `level`, the Rust module that logged (`target`, e.g. `"imstls::engine"`)
/// and the `message`. Both strings are NUL-terminated UTF-8, valid only during the callback.
///
/// It runs synchronously on the calling thread **while the handle is locked**: any call back
/// into the same handle from it returns `IMSTLS_BUSY` (calls on other handles work). Keep it
/// short; it must not unwind or `longjmp`.
pub type imstls_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: imstls_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// A handle's log destination.
#[derive(Clone, Copy)]
pub(crate) struct LogSink {
    callback: unsafe extern "C" fn(*mut c_void, imstls_log_level, *const c_char, *const c_char),
    /// The C pointer, kept as an integer: imstls never dereferences it.
    userdata: usize,
    max: LevelFilter,
}

thread_local! {
    static SINK: Cell<Option<LogSink>> = const { Cell::new(None) };
}

/// Makes `sink` the current thread's destination until the guard drops.
pub(crate) fn enter(sink: Option<LogSink>) -> Entered {
    Entered(SINK.try_with(|s| s.replace(sink)).ok().flatten())
}

/// Restores the previous destination (a call on one handle from inside another's callback
/// nests correctly).
pub(crate) struct Entered(Option<LogSink>);

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = SINK.try_with(|s| s.set(previous));
    }
}

/// Validates a callback registration; `None` turns logging off.
pub(crate) fn sink(
    callback: imstls_log_callback,
    userdata: *mut c_void,
    level: u32,
) -> Result<Option<LogSink>, Failure> {
    use imstls_log_level as L;
    let max = match enum_arg(level)? {
        L::IMSTLS_LOG_OFF => LevelFilter::Off,
        L::IMSTLS_LOG_ERROR => LevelFilter::Error,
        L::IMSTLS_LOG_WARN => LevelFilter::Warn,
        L::IMSTLS_LOG_INFO => LevelFilter::Info,
        L::IMSTLS_LOG_DEBUG => LevelFilter::Debug,
        L::IMSTLS_LOG_TRACE => LevelFilter::Trace,
    };
    let Some(callback) = callback else {
        return Ok(None);
    };
    if max == LevelFilter::Off {
        return Ok(None);
    }
    if !bridge_installed() {
        return Err(Failure::new(
            imstls_result::IMSTLS_LOGGER_UNAVAILABLE,
            "another logger is registered with the log facade in this process",
        ));
    }
    if max > log::max_level() {
        log::set_max_level(max);
    }
    Ok(Some(LogSink {
        callback,
        userdata: userdata as usize,
        max,
    }))
}

fn bridge_installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| log::set_logger(&BRIDGE).is_ok())
}

static BRIDGE: Bridge = Bridge;

struct Bridge;

impl Bridge {
    fn current(level: Level) -> Option<LogSink> {
        SINK.try_with(Cell::get)
            .ok()
            .flatten()
            .filter(|s| level <= s.max)
    }
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        Self::current(metadata.level()).is_some()
    }

    fn log(&self, record: &Record<'_>) {
        let Some(sink) = Self::current(record.level()) else {
            return;
        };
        let level = match record.level() {
            Level::Error => imstls_log_level::IMSTLS_LOG_ERROR,
            Level::Warn => imstls_log_level::IMSTLS_LOG_WARN,
            Level::Info => imstls_log_level::IMSTLS_LOG_INFO,
            Level::Debug => imstls_log_level::IMSTLS_LOG_DEBUG,
            Level::Trace => imstls_log_level::IMSTLS_LOG_TRACE,
        };
        let target = c_string(record.target());
        let message = c_string(&record.args().to_string());
        // SAFETY: the application registered this callback with this userdata for this
        // handle and keeps it callable until it is replaced or the handle is freed; the
        // strings live until the call returns.
        unsafe {
            (sink.callback)(
                sink.userdata as *mut c_void,
                level,
                target.as_ptr(),
                message.as_ptr(),
            )
        }
    }

    fn flush(&self) {}
}
