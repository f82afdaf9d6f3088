//! Builds the C harness (`ffi-tests/harness.c`, C99, plus one C++ translation unit, strict
//! warnings) against the staticlib cargo just built, and runs it against loopback simulators
//! (and the testkit's `Flooder`, a P-CSCF that floods pings and never reads) three times:
//! plain, under AddressSanitizer + UndefinedBehaviorSanitizer, and under Valgrind. Each run
//! must report `failed=0`; the sanitizer and Valgrind runs must also end
//! without a report (no errors, no definite leaks). Canaries (`ffi-tests/canary.c`) prove
//! that ASan, UBSan and Valgrind each report a deliberate bug in this build.
//!
//! gcc, g++ and valgrind are required: without them these tests fail and say what to
//! install.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imstls::AlertDescription;
use imstls_testkit::{Flooder, Observation};
use support::*;

/// Fewer passed checks than this means scenarios were skipped.
const MIN_CHECKS: u32 = 300;

fn build_harness(variant: &str, flags: &[&str]) -> PathBuf {
    let dir = build_dir(variant);
    let mut cflags: Vec<&str> = flags.to_vec();
    if cfg!(debug_assertions) && std::env::var_os("IMSTLS_C_LIBRARY_DIR").is_none() {
        // Debug builds of imstls export the panic test hooks (another build's library, such
        // as the release one CI also tests, has none).
        cflags.push("-DIMSTLS_TEST_HOOKS");
    }
    let repo = repo();
    let mut objects = Vec::new();
    for source in [
        "ffi-tests/harness.c",
        "ffi-tests/harness_cpp.cpp",
        "examples/c/mini_ua.c",
    ] {
        let path = repo.join(source);
        let object = dir
            .join(path.file_name().expect("file name"))
            .with_extension("o");
        compile(&path, &object, &cflags);
        objects.push(object);
    }
    let binary = dir.join("harness");
    run(Command::new(require("g++", "g++"))
        .args(flags)
        .arg("-pthread")
        .args(&objects)
        .arg(staticlib())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&binary));
    binary
}

fn run_harness(variant: &str, command: Command, limit: Duration) -> (u32, u32) {
    let dir = build_dir(variant);
    let sims = start_sims(&dir);
    // The same root as the simulators: a P-CSCF that floods pings and never reads (the
    // kernel's smallest receive buffer). Under Valgrind the UE would decrypt hundreds of pings
    // per read and answer a few pongs a second: one ping per millisecond there.
    let pause = if variant == "valgrind" {
        Duration::from_millis(1)
    } else {
        Duration::ZERO
    };
    let flooder = Flooder::start_paced(sims.pki.clone(), 1024, pause).expect("loopback flooder");
    let mut command = command;
    command
        .env("RUST_BACKTRACE", "0") // the deliberate panic prints one line, not a backtrace
        .args(sims.flags())
        .arg("--flood")
        .arg(flooder.addr().to_string());
    let log = dir.join("harness.log");
    let outcome = run_with_control(command, limit, &log, || sims.good.kill_connections());
    assert!(
        !outcome.timed_out,
        "the {variant} harness hung and was killed; log: {}",
        log.display()
    );
    let (passed, failed) = outcome
        .counts()
        .unwrap_or_else(|| panic!("no passed=/failed= line; log: {}", log.display()));
    say(&format!(
        "C harness ({variant}): passed={passed} failed={failed} (exit {})\n",
        outcome.status
    ));
    assert_eq!(failed, 0, "C harness failures; log: {}", log.display());
    assert!(
        outcome.status.success(),
        "the {variant} harness exited with {} (a sanitizer or Valgrind report?); log: {}",
        outcome.status,
        log.display()
    );
    assert!(passed >= MIN_CHECKS, "only {passed} checks ran");
    // The alerts the UE sent, as the P-CSCFs received them (not as imstls says it sent them).
    let alert = |sim: &imstls_testkit::Simulator, expected: AlertDescription| {
        sim.observations().iter().any(|(_, o)| {
            matches!(o, Observation::AlertReceived { description } if *description == expected)
        })
    };
    // The flood scenario's flows reached the flooder: the first, and one after each loss.
    say(&format!(
        "C harness ({variant}): the flooder accepted {} connections and sent {} ping records\n",
        flooder.connections(),
        flooder.pings()
    ));
    assert!(flooder.connections() >= 3, "{flooder:?}");
    assert!(alert(&sims.expired, AlertDescription::CertificateExpired));
    assert!(alert(&sims.wrong_name, AlertDescription::BadCertificate));
    (passed, failed)
}

#[test]
fn c_harness_passes_in_both_driving_modes() {
    let binary = build_harness("plain", &[]);
    run_harness("plain", Command::new(binary), Duration::from_secs(120));
}

fn symbols(binary: &Path) -> String {
    let out = Command::new(require("nm", "binutils"))
        .arg(binary)
        .output()
        .expect("nm runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn c_harness_is_clean_under_address_and_undefined_behavior_sanitizers() {
    let flags = [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ];
    let binary = build_harness("asan", &flags);

    // Proof that the sanitizers are linked in and active, not just asked for.
    let syms = symbols(&binary);
    assert!(syms.contains("__asan_init"), "ASan runtime not linked");
    assert!(syms.contains("__ubsan_handle"), "UBSan runtime not linked");
    let dir = build_dir("asan");
    let canary = dir.join("canary");
    compile(
        &repo().join("ffi-tests/canary.c"),
        &dir.join("canary.o"),
        &flags,
    );
    run(Command::new(require("gcc", "gcc"))
        .args(flags)
        .arg(dir.join("canary.o"))
        .arg("-o")
        .arg(&canary));
    let out = Command::new(&canary).output().expect("canary runs");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && report.contains("AddressSanitizer: heap-buffer-overflow"),
        "the deliberately buggy canary was not caught: {report}"
    );
    say("ASan canary: heap-buffer-overflow caught, as it must be\n");
    // UBSan is checked on its own: undefined behaviour that touches no memory wrongly, which
    // ASan cannot see. A build where UBSan is asked for but silently off exits 0 here.
    let out = Command::new(&canary)
        .arg("ubsan")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .expect("canary runs");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && report.contains("runtime error: signed integer overflow"),
        "UBSan missed the deliberate signed overflow (exit {}): {report}",
        out.status
    );
    say("UBSan canary: signed integer overflow caught, as it must be\n");

    let mut command = Command::new(&binary);
    command
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=97",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    run_harness("asan", command, Duration::from_secs(180));
}

#[test]
fn c_harness_is_clean_under_valgrind() {
    let valgrind = require("valgrind", "valgrind");
    const OPTIONS: [&str; 4] = [
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
    ];
    let binary = build_harness("valgrind", &[]);

    // Proof that these options make Valgrind fail a run: a bad read and a definite leak.
    let dir = build_dir("valgrind");
    let canary = dir.join("canary");
    compile(
        &repo().join("ffi-tests/canary.c"),
        &dir.join("canary.o"),
        &[],
    );
    run(Command::new(require("gcc", "gcc"))
        .arg(dir.join("canary.o"))
        .arg("-o")
        .arg(&canary));
    for mode in [None, Some("leak")] {
        let out = Command::new(&valgrind)
            .args(OPTIONS)
            .arg(&canary)
            .args(mode)
            .output()
            .expect("valgrind runs");
        assert_eq!(
            out.status.code(),
            Some(99),
            "Valgrind missed the canary ({mode:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    say("Valgrind canaries: invalid read and definite leak caught, as they must be\n");

    let mut command = Command::new(valgrind);
    command.args(OPTIONS).arg(&binary);
    run_harness("valgrind", command, Duration::from_secs(300));
}
