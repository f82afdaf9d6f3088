//! Debug builds only (never in a release build, never in the header): exports that panic
//! inside the boundary, so that the C harness can prove a panic comes back as
//! `IMSTLS_PANIC`, poisons only its handle, and never unwinds into C.

use super::boundary::guard;
use super::codes::imstls_result;
use super::handle::with;
use super::ue::imstls_ue;

/// Panics while holding `ue`'s lock: returns `IMSTLS_PANIC`; later calls on `ue` return
/// `IMSTLS_POISONED`.
#[no_mangle]
pub extern "C" fn imstls_test_panic_in_ue(ue: *mut imstls_ue) -> imstls_result {
    guard(|| {
        with(ue.cast_const(), "ue", |_, _| -> Result<(), _> {
            panic!("imstls_test_panic_in_ue: a deliberate panic to test the boundary")
        })
    })
}

/// Panics outside any handle: returns `IMSTLS_PANIC`.
#[no_mangle]
pub extern "C" fn imstls_test_panic() -> imstls_result {
    guard(|| panic!("imstls_test_panic: a deliberate panic to test the boundary"))
}
