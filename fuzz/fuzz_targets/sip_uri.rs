#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imstls_fuzz::targets::sip_uri(data));
