//! The panic boundary and the argument helpers. Every export's body is `guard(|| ...)`
//! (`tests/ffi_boundary.rs` fails otherwise), and every pointer, string or enum code from C
//! goes through one of the helpers below, so the checks cannot be forgotten one function at
//! a time.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use super::codes::{
    imstls_event_kind, imstls_output_type, imstls_register_reason, imstls_result, CEnum,
};
use super::failure::Failure;

/// The value an export returns when a panic was caught inside it.
pub(crate) trait OnPanic {
    /// The fallback value.
    fn on_panic() -> Self;
}

/// `OnPanic` for C enums: the value that says "nothing" (or, for results, `IMSTLS_PANIC`).
macro_rules! enum_on_panic {
    ($($t:ident => $value:ident),* $(,)?) => {$(
        impl OnPanic for $t {
            fn on_panic() -> Self {
                $t::$value
            }
        }
    )*};
}
enum_on_panic!(
    imstls_result => IMSTLS_PANIC,
    imstls_output_type => IMSTLS_OUTPUT_NONE,
    imstls_event_kind => IMSTLS_EVENT_NONE,
    imstls_register_reason => IMSTLS_REGISTER_REASON_NONE,
);

impl OnPanic for () {
    fn on_panic() -> Self {}
}

impl<T> OnPanic for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

macro_rules! zero_on_panic {
    ($($t:ty),*) => {$(
        impl OnPanic for $t {
            fn on_panic() -> Self {
                Default::default()
            }
        }
    )*};
}
zero_on_panic!(bool, u8, u16, u32, u64, i64, usize);

/// Runs an export's body; a panic inside becomes the type's [`OnPanic`] value instead of
/// unwinding into C (which would be undefined behaviour). A handle the panic happened in is
/// poisoned by its lock guard on the way out (see `handle.rs`).
pub(crate) fn guard<R: OnPanic>(body: impl FnOnce() -> R) -> R {
    // AssertUnwindSafe: after a panic nothing observes the half-updated state except through
    // a handle, and handles are poisoned by then.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            discard_panic(payload);
            R::on_panic()
        }
    }
}

/// Drops a caught panic's payload: one copy, not one per export.
#[cold]
#[inline(never)]
fn discard_panic(payload: Box<dyn Any + Send>) {
    drop(payload);
}

/// A borrowed object argument. NULL → `IMSTLS_NULL_ARGUMENT`.
pub(crate) fn arg<'a, T>(ptr: *const T, what: &'static str) -> Result<&'a T, Failure> {
    opt_arg(ptr).ok_or_else(|| Failure::null(what))
}

/// A borrowed object argument where NULL is answered with a default value (getters): `None`,
/// and no failure is built, so such a getter cannot unwind.
pub(crate) fn opt_arg<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: a non-NULL pointer passed to an export must point to a live object of this type
    // that imstls created and that has not been freed (each function's documented contract);
    // `as_ref` handles NULL.
    unsafe { ptr.as_ref() }
}

/// A NUL-terminated UTF-8 string argument. NULL → `IMSTLS_NULL_ARGUMENT`, bad UTF-8 →
/// `IMSTLS_INVALID_UTF8`.
pub(crate) fn str_arg<'a>(ptr: *const c_char, what: &'static str) -> Result<&'a str, Failure> {
    opt_str_arg(ptr, what)?.ok_or_else(|| Failure::null(what))
}

/// Like [`str_arg`], NULL allowed (→ `None`).
pub(crate) fn opt_str_arg<'a>(
    ptr: *const c_char,
    what: &'static str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; the contract of every string parameter is "a NUL-terminated string
    // that stays valid for the duration of the call".
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map(Some).map_err(|_| not_utf8(what))
}

#[cold]
#[inline(never)]
fn not_utf8(what: &str) -> Failure {
    Failure::new(
        imstls_result::IMSTLS_INVALID_UTF8,
        format!("{what} is not valid UTF-8"),
    )
}

/// An enum-like code (C passes a `uint32_t`), matched against the enum's values. Any other
/// integer → `IMSTLS_INVALID_ARGUMENT`.
pub(crate) fn enum_arg<E: CEnum>(value: u32) -> Result<E, Failure> {
    E::from_u32(value).ok_or_else(|| not_a(value, E::C_NAME))
}

/// [`enum_arg`]'s failure, one copy for every enum.
#[cold]
#[inline(never)]
fn not_a(value: u32, c_name: &str) -> Failure {
    Failure::invalid(format!("{value} is not an {c_name} value"))
}

/// A byte buffer argument `(ptr, len)`; NULL is allowed when `len` is 0.
pub(crate) fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: non-NULL, len ≤ isize::MAX; the contract is "`len` readable bytes that stay
    // valid and unmodified for the duration of the call".
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An array of `count` strings; the array may be NULL only when `count` is 0.
pub(crate) fn str_array_arg<'a>(
    ptr: *const *const c_char,
    count: usize,
    what: &'static str,
) -> Result<Vec<&'a str>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    if count > 4096 {
        return Err(Failure::invalid(format!(
            "{what}: {count} entries is too many"
        )));
    }
    // SAFETY: non-NULL, count is small; the contract is "`count` string pointers that stay
    // valid for the duration of the call".
    let pointers = unsafe { std::slice::from_raw_parts(ptr, count) };
    let mut strings = Vec::with_capacity(count);
    for pointer in pointers {
        strings.push(str_arg(*pointer, what)?);
    }
    Ok(strings)
}

/// An out-parameter, checked for NULL before any work and written only on success.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Writes the value (the last step of a successful call).
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL (checked in `out`); the contract of every out-parameter is "points
        // to writable memory for one value of this type". `write` does not read or drop the
        // old (possibly uninitialised) value.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Checks an out-parameter. NULL → `IMSTLS_NULL_ARGUMENT`.
pub(crate) fn out<T>(ptr: *mut T, what: &'static str) -> Result<Out<T>, Failure> {
    NonNull::new(ptr)
        .map(Out)
        .ok_or_else(|| Failure::null(what))
}

/// Copies `bytes` (and a NUL when `nul`) into the caller's `(buf, capacity)`. `*needed`
/// receives the size the copy needs (NUL included) on success **and** on
/// `IMSTLS_BUFFER_TOO_SMALL` — the one out-parameter written on an error, so that the caller
/// can retry with a buffer that size. `buf` may be NULL when `capacity` is 0 (a size query).
pub(crate) fn copy_out(
    bytes: &[u8],
    nul: bool,
    buf: *mut u8,
    capacity: usize,
    needed: *mut usize,
) -> Result<(), Failure> {
    let needed = out(needed, "needed")?;
    let size = bytes.len() + usize::from(nul);
    if capacity < size {
        needed.write(size);
        return Err(Failure::new(
            imstls_result::IMSTLS_BUFFER_TOO_SMALL,
            format!("the buffer holds {capacity} bytes; {size} are needed"),
        ));
    }
    if buf.is_null() {
        return Err(Failure::null("buf"));
    }
    // SAFETY: `buf` is non-NULL and, by contract, points to `capacity` writable bytes;
    // `size ≤ capacity`; the source is a Rust slice that cannot overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        if nul {
            buf.add(bytes.len()).write(0);
        }
    }
    needed.write(size);
    Ok(())
}

/// A string for C: interior NULs (which C cannot represent) become `?`.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "?")).expect("NULs were replaced")
}

/// Moves a value to the heap for C; freed by [`free_boxed`].
pub(crate) fn boxed<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees what [`boxed`] returned; NULL is a no-op.
pub(crate) fn free_boxed<T>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: non-NULL pointers given to a `_free` function were returned by `boxed` for
    // this type and are freed once (the documented contract of every `_free`).
    drop(unsafe { Box::from_raw(ptr) });
}
