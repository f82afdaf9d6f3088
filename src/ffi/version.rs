//! `imstls_version()` and `imstls_crypto_provider()`. The header's `IMSTLS_VERSION_*` macros
//! are generated from Cargo.toml by build.rs; `tests/header_drift.rs` checks that they and
//! this function agree with the package version.

use std::ffi::{c_char, CStr};

use super::boundary::guard;

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the package version has no NUL"),
    };

/// The library version, `"MAJOR.MINOR.PATCH"` (compare with `IMSTLS_VERSION_STRING` to
/// detect a header/library mismatch).
///
/// - Ownership: static; never free it.
/// - Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn imstls_version() -> *const c_char {
    guard(|| VERSION.as_ptr())
}

/// The crypto provider built in: `"aws-lc-rs"` (with the post-quantum hybrid group
/// X25519MLKEM768) or `"ring"`.
///
/// - Ownership: static; never free it.
/// - Thread safety: any thread, any time.
#[no_mangle]
pub extern "C" fn imstls_crypto_provider() -> *const c_char {
    guard(|| {
        if crate::crypto_provider_name() == "ring" {
            c"ring".as_ptr()
        } else {
            c"aws-lc-rs".as_ptr()
        }
    })
}
