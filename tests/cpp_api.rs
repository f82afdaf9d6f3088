//! Builds the C++17 API checks (`ffi-tests/cpp_api.cpp`) and the C++ example
//! (`examples/cpp/register.cpp`) over `include/imstls.hpp` with `-std=c++17 -Wall -Wextra
//! -Wpedantic -Werror`, against the staticlib cargo just built, and runs them under
//! AddressSanitizer + UndefinedBehaviorSanitizer against loopback simulators: the checks once
//! with exceptions and once with `-fno-exceptions`, the example registering with a 401
//! challenge and de-registering. Every run must end cleanly (no sanitizer report).
//!
//! g++ is required: without it these tests fail and say what to install.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use imstls_testkit::{DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD};
use support::*;

const SANITIZERS: [&str; 3] = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];

/// Fewer passed checks than this means parts of the checks were skipped.
const MIN_CHECKS: u32 = 400;

/// Compiles `main` (C++17) with examples/c/mini_ua.c and links them with the staticlib.
fn build(variant: &str, main: &str, extra: &[&str]) -> PathBuf {
    let dir = build_dir(variant);
    let mut flags: Vec<&str> = SANITIZERS.to_vec();
    flags.extend_from_slice(extra);
    let repo = repo();
    let main_object = dir.join("main.o");
    compile_as(&repo.join(main), &main_object, "-std=c++17", &flags);
    let ua_object = dir.join("mini_ua.o");
    compile(&repo.join("examples/c/mini_ua.c"), &ua_object, &SANITIZERS);
    let binary = dir.join("program");
    run(Command::new(require("g++", "g++"))
        .args(&flags)
        .arg("-pthread")
        .arg(&main_object)
        .arg(&ua_object)
        .arg(staticlib())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&binary));
    binary
}

fn sanitized(binary: &PathBuf) -> Command {
    let mut command = Command::new(binary);
    command
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=97",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .env("RUST_BACKTRACE", "0");
    command
}

fn run_checks(variant: &str, extra: &[&str], exceptions: &str) {
    let binary = build(variant, "ffi-tests/cpp_api.cpp", extra);
    let dir = build_dir(variant);
    let sims = start_sims(&dir);
    let mut command = sanitized(&binary);
    command.args(sims.flags());
    let log = dir.join("cpp_api.log");
    let outcome = run_with_control(command, Duration::from_secs(180), &log, || {});
    assert!(
        !outcome.timed_out,
        "the C++ checks hung; log: {}",
        log.display()
    );
    let (passed, failed) = outcome
        .counts()
        .unwrap_or_else(|| panic!("no passed=/failed= line; log: {}", log.display()));
    say(&format!(
        "C++ API checks ({variant}): passed={passed} failed={failed} (exit {})\n",
        outcome.status
    ));
    assert_eq!(failed, 0, "C++ API check failures; log: {}", log.display());
    assert!(
        outcome.status.success(),
        "the {variant} checks exited with {} (a sanitizer report?); log: {}",
        outcome.status,
        log.display()
    );
    assert!(passed >= MIN_CHECKS, "only {passed} checks ran");
    let mode = format!("exceptions: {exceptions}");
    assert!(
        outcome.lines.contains(&mode),
        "the {variant} build did not report `{mode}`"
    );
}

#[test]
fn cpp_api_checks_pass_under_address_and_undefined_behavior_sanitizers() {
    run_checks("cpp-asan", &[], "on");
}

#[test]
fn cpp_api_checks_pass_without_exceptions() {
    run_checks("cpp-asan-no-exceptions", &["-fno-exceptions"], "off");
}

#[test]
fn cpp_example_registers_through_a_401_challenge_and_deregisters() {
    let binary = build("cpp-example", "examples/cpp/register.cpp", &[]);
    let dir = build_dir("cpp-example");
    let sims = start_sims(&dir);
    let out = sanitized(&binary)
        .arg("--pcscf")
        .arg(sims.good.addr().to_string())
        .arg("--server-name")
        .arg(&sims.server_name)
        .arg("--ca")
        .arg(&sims.ca)
        .arg("--impi")
        .arg(DEFAULT_IMPI)
        .arg("--impu")
        .arg(DEFAULT_IMPU)
        .arg("--password")
        .arg(DEFAULT_PASSWORD)
        .output()
        .expect("the C++ example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    say(&format!(
        "examples/cpp/register: exit {:?}\n{stdout}{stderr}",
        out.status.code()
    ));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let events: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let position = |name: &str| {
        events
            .iter()
            .position(|event| *event == name)
            .unwrap_or_else(|| panic!("no {name} event in:\n{stdout}"))
    };
    assert!(position("tls_established") < position("challenged"));
    assert!(position("challenged") < position("registered"));
    assert!(position("registered") < position("deregistered"));
    assert!(!stdout.contains(DEFAULT_PASSWORD) && !stdout.contains(DEFAULT_IMPI));

    // A wrong password: the registrar rejects the registration and the example says so.
    let out = sanitized(&binary)
        .arg("--pcscf")
        .arg(sims.good.addr().to_string())
        .arg("--server-name")
        .arg(&sims.server_name)
        .arg("--ca")
        .arg(&sims.ca)
        .arg("--impi")
        .arg(DEFAULT_IMPI)
        .arg("--impu")
        .arg(DEFAULT_IMPU)
        .arg("--password")
        .arg("wrong-password")
        .output()
        .expect("the C++ example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    say(&format!(
        "examples/cpp/register (wrong password): exit {:?}\n{stdout}",
        out.status.code()
    ));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("registration_failed")));
}

/// The C functions declared in `include/imstls.h`.
fn c_functions() -> Vec<String> {
    let header = std::fs::read_to_string(repo().join("include/imstls.h")).expect("imstls.h");
    header
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|line| !line.starts_with("typedef") && !line.starts_with("enum"))
        .filter_map(|line| {
            let (before, _) = line.split_once('(')?;
            let name = before.rsplit([' ', '*']).next()?;
            name.starts_with("imstls_").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_c_function_is_wrapped_or_named_in_the_cpp_header() {
    let functions = c_functions();
    assert!(
        functions.len() > 100,
        "only {} functions found in imstls.h: the parser no longer fits the header",
        functions.len()
    );
    say(&format!(
        "imstls.h declares {} functions\n",
        functions.len()
    ));
    let cpp = std::fs::read_to_string(repo().join("include/imstls.hpp")).expect("imstls.hpp");
    let missing: Vec<&String> = functions
        .iter()
        .filter(|name| {
            !cpp.contains(&format!("{name}("))
                && !cpp.contains(&format!("{name},"))
                && !cpp.contains(&format!("{name} "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "include/imstls.hpp does not wrap (or name as not wrapped) these functions of \
         imstls.h: {missing:?}. Add a member to the handle they belong to (one line: \
         `result<void> f() {{ return check(imstls_f(get())); }}`)"
    );
}
