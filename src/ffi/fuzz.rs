//! The body of the FFI fuzz target (`fuzz/fuzz_targets/ffi.rs`, replayed in CI by
//! `tests/fuzz_smoke.rs`): untrusted bytes through the C ABI the way a C caller passes them —
//! configuration strings and PEM/DER that are not UTF-8 or not valid, SIP and TLS bytes of any
//! length, closure codes out of range, undersized output buffers. Every call must return a
//! defined result; none may return `IMSTLS_PANIC` (a panic caught at the boundary is still a
//! bug) or leave a handle unusable for the next call.

use std::ffi::{c_char, CString};
use std::ptr;

use super::codes::{imstls_output_type, imstls_result};
use super::config::*;
use super::error::{imstls_error, imstls_error_copy_message, imstls_error_free};
use super::output::*;
use super::ue::*;

/// A NUL-terminated C string from arbitrary bytes (cut at the first NUL, like C would).
pub(super) fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("cut before the first NUL")
}

pub(super) fn check(result: imstls_result, what: &str) -> imstls_result {
    assert!(
        !matches!(
            result,
            imstls_result::IMSTLS_PANIC | imstls_result::IMSTLS_POISONED
        ),
        "{what} returned {result:?}"
    );
    result
}

/// Splits `data` into (op, argument) pairs: one op byte, one length byte, that many bytes.
pub(super) fn ops(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&op, tail) = data.split_first()?;
        let len = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len().saturating_sub(1));
        let arg = tail.get(1..1 + len).unwrap_or_default();
        data = tail.get(1 + len..).unwrap_or_default();
        Some((op, arg))
    })
}

pub(super) fn number(arg: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    for (slot, byte) in raw.iter_mut().zip(arg) {
        *slot = *byte;
    }
    u32::from_le_bytes(raw)
}

/// The flow a REGISTER answer is reported for: usually the current one, sometimes an older
/// one (a stale report), as the last input byte decides.
fn report_flow(current: Option<u64>, arg: &[u8]) -> u64 {
    let current = current.unwrap_or(0);
    match arg.last() {
        Some(back) if back % 4 == 0 => current.saturating_sub(u64::from(back / 4)),
        _ => current,
    }
}

fn read_error(error: *mut imstls_error, scratch: &mut [u8]) {
    let mut needed = 0usize;
    check(
        imstls_error_copy_message(
            error,
            scratch.as_mut_ptr().cast::<c_char>(),
            scratch.len(),
            &mut needed,
        ),
        "imstls_error_copy_message",
    );
    imstls_error_free(error);
}

/// Drains the UE's outputs, answering CONNECT so that TLS starts, and reading every output
/// through the copying accessors with a buffer sized by the input.
fn drain(ue: *mut imstls_ue, now: u64, scratch: &mut [u8], connected: &mut Option<u64>) {
    for _ in 0..256 {
        let mut output = ptr::null_mut();
        if check(
            imstls_ue_poll_output(ue, &mut output),
            "imstls_ue_poll_output",
        ) != imstls_result::IMSTLS_OK
        {
            return;
        }
        let flow = imstls_output_flow(output);
        let mut needed = 0usize;
        check(
            imstls_output_copy_data(output, scratch.as_mut_ptr(), scratch.len(), &mut needed),
            "imstls_output_copy_data",
        );
        if imstls_output_kind(output) == imstls_output_type::IMSTLS_OUTPUT_CONNECT {
            let local = c"127.0.0.1:40000";
            let remote = c"127.0.0.1:5061";
            check(
                imstls_ue_connected(ue, now, flow, local.as_ptr(), remote.as_ptr()),
                "imstls_ue_connected",
            );
            *connected = Some(flow);
        }
        let _ = imstls_output_event(output);
        imstls_output_free(output);
    }
}

/// One fuzz input: a configuration built from untrusted strings, then a UE fed untrusted
/// inputs through the C ABI.
pub fn ffi_bytes(data: &[u8]) {
    let mut scratch = vec![0u8; 64];
    // 1. A builder fed whatever the input says; its build may fail, never panic.
    let mut builder = ptr::null_mut();
    check(
        imstls_config_builder_new(&mut builder),
        "imstls_config_builder_new",
    );
    let mut ue: *mut imstls_ue = ptr::null_mut();
    let mut now = 1_000u64;
    let mut flow = None;
    for (op, arg) in ops(data) {
        let text = c_string(arg);
        let result = match op % 16 {
            0 => imstls_config_builder_add_pcscf(builder, text.as_ptr()),
            1 => imstls_config_builder_set_server_name(builder, text.as_ptr()),
            2 => imstls_config_builder_add_trust_anchors_pem(builder, arg.as_ptr(), arg.len()),
            3 => imstls_config_builder_add_trust_anchors_der(builder, arg.as_ptr(), arg.len()),
            4 => imstls_config_builder_add_crls_pem(builder, arg.as_ptr(), arg.len()),
            5 => imstls_config_builder_add_spki_pin(builder, text.as_ptr()),
            6 => imstls_config_builder_set_tls_versions(builder, number(arg)),
            7 => {
                // Build a config; on failure read the error through a sized buffer.
                let mut config = ptr::null_mut();
                let built = check(imstls_config_builder_build(builder, &mut config), "build");
                if built == imstls_result::IMSTLS_OK {
                    imstls_config_free(config);
                } else {
                    let mut error = ptr::null_mut();
                    if imstls_config_builder_last_error(builder, &mut error)
                        == imstls_result::IMSTLS_OK
                    {
                        scratch.resize(usize::from(arg.first().copied().unwrap_or(0)), 0);
                        read_error(error, &mut scratch);
                    }
                }
                imstls_result::IMSTLS_OK
            }
            // 2. The UE: a known-good configuration, untrusted identities and bytes.
            8 => {
                if ue.is_null() {
                    let mut good = ptr::null_mut();
                    check(imstls_config_builder_new(&mut good), "new");
                    imstls_config_builder_add_pcscf(good, c"127.0.0.1:5061".as_ptr());
                    imstls_config_builder_set_server_name(good, c"pcscf.ims.test".as_ptr());
                    let mut config = ptr::null_mut();
                    check(imstls_config_builder_build(good, &mut config), "build good");
                    check(imstls_ue_new(config, now, &mut ue), "imstls_ue_new");
                    imstls_config_free(config);
                    imstls_config_builder_free(good);
                }
                let (impi, impu) = arg.split_at(arg.len() / 2);
                let impi = c_string(impi);
                let impu = c_string(impu);
                let impus = [impu.as_ptr()];
                imstls_ue_start_registration(ue, now, impi.as_ptr(), impus.as_ptr(), impus.len())
            }
            9 => imstls_ue_receive(
                ue,
                now,
                flow.unwrap_or(number(arg).into()),
                arg.as_ptr(),
                arg.len(),
            ),
            10 => imstls_ue_send_sip(ue, now, arg.as_ptr(), arg.len()),
            11 => {
                imstls_ue_transport_closed(ue, now, flow.unwrap_or(0), number(arg), text.as_ptr())
            }
            12 => {
                now = now.wrapping_add(u64::from(number(arg)));
                imstls_ue_handle_timeout(ue, now)
            }
            13 => imstls_ue_registration_challenged(
                ue,
                now,
                report_flow(flow, arg),
                arg.first() == Some(&1),
            ),
            14 => imstls_ue_registration_succeeded(
                ue,
                now,
                report_flow(flow, arg),
                number(arg),
                number(arg.get(4..).unwrap_or_default()),
            ),
            _ => imstls_ue_registration_failed(
                ue,
                now,
                report_flow(flow, arg),
                number(arg),
                number(arg.get(4..).unwrap_or_default()),
            ),
        };
        check(result, "input");
        if !ue.is_null() {
            scratch.resize(usize::from(arg.last().copied().unwrap_or(16)), 0);
            drain(ue, now, &mut scratch, &mut flow);
            let mut error = ptr::null_mut();
            if imstls_ue_last_error(ue, &mut error) == imstls_result::IMSTLS_OK {
                read_error(error, &mut scratch);
            }
        }
    }
    imstls_ue_free(ue);
    imstls_config_builder_free(builder);
}
