//! The C ABI (`include/imstls.h`), compiled with the cargo feature `capi`: with `crate::os`,
//! the only place in the crate where `unsafe` is allowed (`lib.rs` declares both modules).
//!
//! One file per C type family:
//!
//! | file | C types and functions |
//! |---|---|
//! | `result.rs` | `imstls_result`, `imstls_result_str()` |
//! | `boundary.rs` | the panic boundary every export goes through, and the pointer helpers |
//! | `handle.rs` | the lock, poison flag, last error and callbacks behind `imstls_ue` / `imstls_driver` |
//! | `error.rs` | `imstls_error`: a structured failure (code, alerts, certificate reason, names) |
//! | `config.rs` | `imstls_config_builder` → `imstls_config` (immutable, reference-counted) |
//! | `clock.rs` | caller milliseconds ↔ `Instant` |
//! | `ue.rs` | `imstls_ue`: the sans-IO engine (the caller owns socket and clock) |
//! | `output.rs` | `imstls_output`: one thing to do or know, with accessors |
//! | `binding.rs` | `imstls_binding`: the O.2.2 binding snapshot |
//! | `driver.rs` | `imstls_driver`: the managed-socket driver |
//! | `log.rs` | the `log` facade bridged to a per-handle C callback |
//! | `version.rs` | `imstls_version()`, `imstls_crypto_provider()` |
//! | `test_hooks.rs` | debug builds only: an export that panics, to prove the boundary |
//!
//! Rules every export follows (checked by `tests/ffi_boundary.rs`): its body starts with
//! [`boundary::guard`], so no panic unwinds into C; pointers are NULL-checked and strings
//! UTF-8-checked by the helpers in `boundary.rs`; out-parameters are written only on success;
//! incoming enum-like codes are plain integers, validated before use.
#![allow(non_camel_case_types)]

mod binding;
mod boundary;
mod clock;
mod config;
mod driver;
mod error;
#[doc(hidden)]
pub mod fuzz;
#[doc(hidden)]
pub mod fuzz_driver;
mod handle;
mod log;
mod output;
mod result;
#[cfg(debug_assertions)]
mod test_hooks;
mod ue;
mod version;
