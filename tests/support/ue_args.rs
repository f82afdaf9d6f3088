#![allow(dead_code)] // each test uses part of it
//! The `ue` command line, the same for the Rust CLI and its C and Java twins (one contract,
//! `ue --help`): shared by `tests/cli_ue.rs`, `tests/c_example.rs` and `tests/jni.rs`.

use std::path::Path;

use imstls_testkit::{Simulator, DEFAULT_IMPI, DEFAULT_IMPU};

/// The flags `ue --help` describes, in the Rust CLI and the C example (`--password ` with its
/// space, to tell it from `--password-file`).
pub const HELP_FLAGS: [&str; 15] = [
    "--pcscf",
    "--server-name",
    "--ca",
    "--pin",
    "--impi",
    "--impu",
    "--password-file",
    "--password ",
    "--expires",
    "--tls13-only",
    "--hold",
    "--json",
    "--ladder",
    "--keylog",
    "--help",
];

/// Registers the registrar's default user at `sim`, trusting the root in `ca`, with the
/// password on the command line, printing JSON.
pub fn register_args(sim: &Simulator, ca: &Path, password: &str) -> Vec<String> {
    [
        "--pcscf",
        &sim.addr().to_string(),
        "--server-name",
        sim.pki().server_name(),
        "--ca",
        &ca.display().to_string(),
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        password,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` with `--password-file FILE` in place of `--password`.
pub fn with_password_file(mut args: Vec<String>, file: &str) -> Vec<String> {
    let at = args.iter().position(|a| a == "--password").unwrap();
    args[at] = "--password-file".into();
    args[at + 1] = file.into();
    args
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
