//! The C ABI (`include/imstls.h`), compiled with the cargo feature `capi`: with `crate::os`,
//! the only place in the crate where `unsafe` is allowed (both open with `#![allow(unsafe_code)]`).
//!
//! One file per C type family. The modules with exports are declared in the order an
//! integrator reads them; cbindgen (`sort_by = "None"`) emits the functions of
//! `include/imstls.h` in this order:
//!
//! | file | C types and functions |
//! |---|---|
//! | `config.rs` | `imstls_config_builder` → `imstls_config` (immutable, reference-counted) |
//! | `ue.rs` | `imstls_ue`: the sans-IO engine (the caller owns socket and clock) |
//! | `output.rs` | `imstls_output`: one thing to do or know, with accessors |
//! | `binding.rs` | `imstls_binding`: the O.2.2 binding snapshot |
//! | `driver.rs` | `imstls_driver`: the managed-socket driver |
//! | `error.rs` | `imstls_result_str()`; `imstls_error`: a structured failure (code, alerts, names) |
//! | `version.rs` | `imstls_version()`, `imstls_crypto_provider()` |
//!
//! and the internals they share, each imported one way only (lowest first):
//!
//! | file | what |
//! |---|---|
//! | `codes.rs` | every C enum (`imstls_result` included) and its integer conversions, from one macro |
//! | `failure.rs` | `Failure`: a failure as the C API records it (the Rust side of `imstls_error`) |
//! | `boundary.rs` | the panic boundary every export goes through, and the argument helpers |
//! | `log.rs` | the `log` facade bridged to a per-handle C callback |
//! | `handle.rs` | the lock, poison flag, last error and callbacks behind `imstls_ue` / `imstls_driver` |
//! | `clock.rs` | caller milliseconds ↔ `Instant` |
//! | `test_hooks.rs` | debug builds only: an export that panics, to prove the boundary |
//!
//! Rules every export follows (checked by `tests/ffi_boundary.rs`): its body starts with
//! [`boundary::guard`], so no panic unwinds into C; pointers are NULL-checked and strings
//! UTF-8-checked by the helpers in `boundary.rs`; out-parameters are written only on success;
//! incoming enum-like codes are plain integers, validated before use.
// The C ABI: one of the two places `unsafe` is allowed (the crate denies it in [lints]).
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

// The C face, one module per header section, in header order (rustfmt sorts `mod` lines
// only within a group, so each section is its own group).
mod config;

mod ue;

mod output;

mod binding;

mod driver;

mod error;

mod version;

// Shared internals.
mod boundary;
mod clock;
mod codes;
mod failure;
#[cfg(feature = "_internal_test_exports")]
pub mod fuzz;
#[cfg(feature = "_internal_test_exports")]
pub mod fuzz_driver;
mod handle;
mod log;
#[cfg(debug_assertions)]
mod test_hooks;

#[cfg(test)]
mod tests {
    /// The sections of `include/imstls.h`, in reading order, by function-name prefix.
    const SECTIONS: [&[&str]; 6] = [
        &["imstls_config_"],
        &["imstls_ue_"],
        &["imstls_output_", "imstls_binding_"],
        &["imstls_driver_"],
        &["imstls_result_str", "imstls_error_"],
        &["imstls_version", "imstls_crypto_provider"],
    ];

    fn section(function: &str) -> Option<usize> {
        SECTIONS
            .iter()
            .position(|prefixes| prefixes.iter().any(|p| function.starts_with(p)))
    }

    /// The names of the functions the header declares, in header order.
    fn functions(header: &str) -> Vec<&str> {
        header
            .lines()
            .filter(|line| !line.starts_with([' ', '/', '#']) && !line.starts_with("typedef"))
            .filter_map(|line| {
                let name = &line[..line.find('(')?];
                let name = name.rsplit([' ', '*']).next()?;
                name.starts_with("imstls_").then_some(name)
            })
            .collect()
    }

    #[test]
    fn the_header_reads_config_ue_output_driver_errors() {
        let header = include_str!("../../include/imstls.h");
        let body = &header[header.find("#ifndef IMSTLS_H").expect("include guard")..];
        let names = functions(body);
        assert!(names.len() > 100, "{} functions found", names.len());
        let mut current = 0;
        for name in names {
            let Some(found) = section(name) else {
                panic!("{name} belongs to no section of the reading order")
            };
            assert!(
                found >= current,
                "{name} (section {found}) comes after section {current}: the `mod` order in \
                 src/ffi/mod.rs changed"
            );
            current = found;
        }
        assert_eq!(current, SECTIONS.len() - 1, "every section is present");
    }
}
