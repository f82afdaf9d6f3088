//! The Java API (`examples/jni`) on the host JVM: compiles the JNI glue (C over
//! `include/imstls.h`, `-Wall -Wextra -Wpedantic -Werror`) into `libimstls_jni.so` linked to
//! the `libimstls.so.0` cargo just built, compiles the Java sources with `javac --release 8`,
//! and runs them with `java -Xcheck:jni` against loopback P-CSCF simulators:
//!
//! - the JVM test runner (`org.imstls.test.JniTests`): both driving modes, loss and
//!   re-registration, certificate failures, misuse, close races; it must report `failed=0`
//!   and the JVM must print no JNI warning;
//! - a canary that makes one deliberate JNI mistake, which `-Xcheck:jni` must report (so the
//!   silence above means something);
//! - the Java twin of the `ue` CLI (`org.imstls.example.Ue`) and its exit-code contract.
//!
//! A JDK and gcc are required: without them these tests fail and say what to install.

#[path = "../ffi-tests/support.rs"]
mod support;
#[path = "support/ue_args.rs"]
mod ue_args;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use imstls::AlertDescription;
use imstls_testkit::{Observation, Simulator, DEFAULT_IMPI, DEFAULT_IMPU, DEFAULT_PASSWORD};
use support::{
    build_dir, cdylib, compile, counts, library_dir, repo, require, run, say, start_sims,
};
use ue_args::{
    assert_backoff_lists_refused, assert_expired_certificate_rejected,
    assert_registered_and_deregistered, register_args, strs, tls12_only, unreachable_pcscf,
    with_password_file,
};

/// Fewer passed checks than this means JVM cases were skipped.
const MIN_CHECKS: u32 = 150;

struct Jdk {
    javac: PathBuf,
    java: PathBuf,
    include: PathBuf,
}

const INSTALL_JDK: &str = "a JDK (javac, java, jni.h) is required by the JVM tests and was not \
                           found: apt-get install default-jdk-headless (CI does this in .ci/run)";

/// `$JAVA_HOME`, else the JDK that `javac` on the PATH belongs to.
fn jdk() -> &'static Jdk {
    static JDK: OnceLock<Jdk> = OnceLock::new();
    JDK.get_or_init(|| {
        let from_env = std::env::var_os("JAVA_HOME")
            .map(PathBuf::from)
            .filter(|home| home.join("bin/javac").is_file());
        let home = from_env.or_else(|| {
            let path = std::env::var_os("PATH")?;
            let javac = std::env::split_paths(&path)
                .map(|dir| dir.join("javac"))
                .find(|p| p.is_file())?;
            // /usr/bin/javac -> /usr/lib/jvm/<jdk>/bin/javac
            let real = std::fs::canonicalize(javac).ok()?;
            Some(real.parent()?.parent()?.to_path_buf())
        });
        let home = home.unwrap_or_else(|| panic!("{INSTALL_JDK}"));
        let jdk = Jdk {
            javac: home.join("bin/javac"),
            java: home.join("bin/java"),
            include: home.join("include"),
        };
        assert!(
            jdk.include.join("jni.h").is_file() && jdk.java.is_file(),
            "{} has no include/jni.h or bin/java: {INSTALL_JDK}",
            home.display()
        );
        jdk
    })
}

struct Built {
    classes: PathBuf,
    glue: PathBuf,
    desktop: PathBuf,
}

fn java_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            java_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
}

/// A shared library from one C file, with strict warnings, against jni.h.
fn shared_library(source: &Path, dir: &Path, name: &str, link: &[String]) -> PathBuf {
    shared_library_with(source, dir, name, &[], link)
}

/// The same with extra compiler and linker flags (`-fsanitize=...`).
fn shared_library_with(
    source: &Path,
    dir: &Path,
    name: &str,
    flags: &[&str],
    link: &[String],
) -> PathBuf {
    let jdk = jdk();
    let include = jdk.include.display().to_string();
    let include_linux = jdk.include.join("linux").display().to_string();
    let object = dir.join(name).with_extension("o");
    let mut cflags = vec!["-fPIC", "-I", &include, "-I", &include_linux];
    cflags.extend_from_slice(flags);
    compile(source, &object, &cflags);
    let library = dir.join(format!("lib{name}.so"));
    run(Command::new(require("gcc", "gcc"))
        .arg("-shared")
        .args(flags)
        .arg(&object)
        .args(link)
        .arg("-o")
        .arg(&library));
    library
}

/// The glue, the desktop test helper and the classes, built once per test process.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = build_dir("jni");
        // libimstls_jni.so records libimstls.so.0 (the soname): give the loader one.
        let libdir = dir.join("lib");
        std::fs::create_dir_all(&libdir).expect("lib dir");
        let soname = libdir.join("libimstls.so.0");
        let _ = std::fs::remove_file(&soname);
        std::os::unix::fs::symlink(cdylib(), &soname).expect("soname symlink");
        let examples = repo().join("examples/jni");
        let glue = shared_library(
            &examples.join("c/imstls_jni.c"),
            &dir,
            "imstls_jni",
            &[
                "-L".into(),
                library_dir().display().to_string(),
                "-limstls".into(),
                format!("-Wl,-rpath,{}", libdir.display()),
                "-Wl,--no-undefined".into(),
            ],
        );
        let desktop = shared_library(
            &examples.join("test/c/imstls_jni_desktop.c"),
            &dir,
            "imstls_jni_desktop",
            &[],
        );
        let classes = dir.join("classes");
        let _ = std::fs::remove_dir_all(&classes);
        let mut sources = Vec::new();
        for part in ["java", "example", "test/java"] {
            java_sources(&examples.join(part), &mut sources);
        }
        sources.sort();
        run(Command::new(&jdk().javac)
            .args([
                "--release",
                "8",
                "-Xlint:all",
                "-Werror",
                "-encoding",
                "UTF-8",
            ])
            .arg("-d")
            .arg(&classes)
            .args(&sources));
        Built {
            classes,
            glue,
            desktop,
        }
    })
}

/// `java -Xcheck:jni` with the classes and both libraries.
fn java(main: &str) -> Command {
    java_with_glue(main, &built().glue)
}

/// The same with another build of the glue.
fn java_with_glue(main: &str, glue: &Path) -> Command {
    let built = built();
    let mut command = Command::new(&jdk().java);
    command
        .arg("-Xcheck:jni")
        .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]) // small and quick on 2 cores
        .arg(format!("-Dimstls.jni.library={}", glue.display()))
        .arg(format!("-Dimstls.jni.desktop={}", built.desktop.display()))
        .arg("-cp")
        .arg(&built.classes)
        .arg(main);
    command
}

/// Lines in which the JVM's JNI checker (or the JVM itself) complains.
fn jni_complaints(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("WARNING")
                || l.contains("in native method")
                || l.contains("FATAL ERROR")
                || l.contains("JNI local refs")
        })
        .map(str::to_owned)
        .collect()
}

struct JvmRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    timed_out: bool,
}

/// Runs a JVM, answering `@ctl kill` lines on its stdout with `kill()` then `ok`, killing it
/// after `limit` (a hang guard, not a timing assertion). Both streams are kept.
fn run_jvm(mut command: Command, limit: Duration, log: &Path, kill: impl Fn()) -> JvmRun {
    let stderr_path = log.with_extension("stderr");
    let stderr_file = std::fs::File::create(&stderr_path).expect("stderr log");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr_file))
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            return true;
        }
        false
    });
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line == "@ctl kill" {
            kill();
            let _ = stdin.write_all(b"ok\n");
            let _ = stdin.flush();
        }
        if line.starts_with("FAIL") || line.starts_with("passed=") {
            say(&format!("{line}\n"));
        }
        lines.push(line);
    }
    drop(stdin);
    let status = child.wait().expect("wait for the JVM");
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let stdout = lines.join("\n");
    std::fs::write(log, &stdout).expect("write the log");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    JvmRun {
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Runs the JVM test runner (`org.imstls.test.JniTests`) against fresh simulators and checks
/// its verdict, the JNI checker's silence and the alerts the P-CSCFs received; returns the
/// JVM's stderr.
fn run_jvm_tests(variant: &str, mut command: Command, limit: Duration) -> String {
    let dir = build_dir(variant);
    let sims = start_sims(&dir);
    command
        .args(sims.flags())
        .args(["--impi", DEFAULT_IMPI, "--impu", DEFAULT_IMPU])
        .args(["--password", DEFAULT_PASSWORD])
        .args(["--version", env!("CARGO_PKG_VERSION")]);
    let log = dir.join("jvm.log");
    let kills = std::sync::atomic::AtomicUsize::new(0);
    let outcome = run_jvm(command, limit, &log, || {
        kills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        sims.good.kill_connections();
    });
    assert!(
        !outcome.timed_out,
        "the JVM tests hung; log: {}",
        log.display()
    );
    let (passed, failed) = counts(outcome.stdout.lines()).unwrap_or_else(|| {
        panic!(
            "no passed=/failed= line; log: {}\n{}",
            log.display(),
            outcome.stderr
        )
    });
    say(&format!(
        "JVM tests ({variant}, -Xcheck:jni): passed={passed} failed={failed} (exit {})\n",
        outcome.status
    ));
    assert_eq!(
        failed,
        0,
        "JVM test failures; log: {}\n{}",
        log.display(),
        outcome.stderr
    );
    assert!(outcome.status.success(), "{}", outcome.stderr);
    assert!(passed >= MIN_CHECKS, "only {passed} checks ran");
    let complaints = jni_complaints(&format!("{}\n{}", outcome.stdout, outcome.stderr));
    assert!(
        complaints.is_empty(),
        "-Xcheck:jni complained:\n{}",
        complaints.join("\n")
    );
    say("-Xcheck:jni: no warnings\n");
    assert!(
        kills.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the loss cases did not ask for kills"
    );
    // The alerts the UE sent, as the P-CSCFs received them.
    let alert = |sim: &Simulator, expected: AlertDescription| {
        sim.observations().iter().any(|(_, o)| {
            matches!(o, Observation::AlertReceived { description } if *description == expected)
        })
    };
    assert!(alert(&sims.expired, AlertDescription::CertificateExpired));
    assert!(alert(&sims.wrong_name, AlertDescription::BadCertificate));
    outcome.stderr
}

#[test]
fn jvm_tests_pass_under_xcheck_jni_in_both_driving_modes() {
    run_jvm_tests(
        "jni-tests",
        java("org.imstls.test.JniTests"),
        Duration::from_secs(120),
    );
}

/// ASan + UBSan flags for the glue; recovery off, so that any report ends the JVM.
const SANITIZE: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];

/// The JNI glue's C (`examples/jni/c/imstls_jni.c`) built with AddressSanitizer and
/// UndefinedBehaviorSanitizer and run once through the whole JVM test runner. The JVM is not
/// instrumented: the ASan runtime is preloaded, the JVM's own signal handling (SIGSEGV for
/// null checks) is left to the JVM, and leak checking is off (the JVM never frees its heap
/// at exit). The runtime's start-up line (`verbosity=1`) proves ASan ran in that process;
/// the C harness's canaries (`tests/c_harness.rs`) prove that this gcc's ASan and UBSan report
/// real bugs.
#[test]
fn jni_glue_is_clean_under_address_and_undefined_behavior_sanitizers() {
    let gcc = require("gcc", "gcc");
    let libasan = Command::new(&gcc)
        .arg("-print-file-name=libasan.so")
        .output()
        .expect("gcc runs");
    let libasan = PathBuf::from(String::from_utf8_lossy(&libasan.stdout).trim());
    assert!(
        libasan.is_absolute() && libasan.exists(),
        "gcc has no ASan runtime ({}): apt-get install gcc",
        libasan.display()
    );
    built(); // the classes, the desktop helper and the soname link
    let dir = build_dir("jni-asan");
    let libdir = build_dir("jni").join("lib");
    let glue = shared_library_with(
        &repo().join("examples/jni/c/imstls_jni.c"),
        &dir,
        "imstls_jni",
        SANITIZE,
        &[
            "-L".into(),
            library_dir().display().to_string(),
            "-limstls".into(),
            format!("-Wl,-rpath,{}", libdir.display()),
            "-Wl,--no-undefined".into(),
        ],
    );
    let mut command = java_with_glue("org.imstls.test.JniTests", &glue);
    command
        .env("LD_PRELOAD", &libasan)
        .env(
            "ASAN_OPTIONS",
            "verbosity=1:detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:\
             handle_sigill=0:allow_user_segv_handler=1:use_sigaltstack=0:exitcode=97",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    let stderr = run_jvm_tests("jni-asan-tests", command, Duration::from_secs(300));
    assert!(
        stderr.contains("AddressSanitizer Init done"),
        "no sign of the ASan runtime in the JVM's stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("ERROR: AddressSanitizer") && !stderr.contains("runtime error:"),
        "a sanitizer report from the JNI glue:\n{stderr}"
    );
    say("JNI glue under ASan+UBSan: no report\n");
}

#[test]
fn xcheck_jni_is_on_and_reports_a_deliberate_misuse() {
    let out = java("org.imstls.test.XcheckCanary")
        .output()
        .expect("the JVM runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("canary done"), "{text}");
    let complaints = jni_complaints(&text);
    assert!(
        complaints
            .iter()
            .any(|l| l.contains("without checking exceptions")),
        "-Xcheck:jni missed the canary's mistake:\n{text}"
    );
    say("-Xcheck:jni canary: the deliberate misuse was reported, as it must be\n");
}

// ---- the Java `ue` example ---------------------------------------------------------------

fn ue(args: &[&str]) -> (Option<i32>, String, String) {
    let out = java("org.imstls.example.Ue")
        .args(args)
        .output()
        .expect("the JVM runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    say(&format!(
        "examples/jni Ue {}: exit {:?}\n",
        args.join(" ").replace(DEFAULT_PASSWORD, "<password>"),
        out.status.code()
    ));
    let complaints = jni_complaints(&format!("{stdout}\n{stderr}"));
    assert!(
        complaints.is_empty(),
        "-Xcheck:jni complained:\n{}",
        complaints.join("\n")
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(DEFAULT_PASSWORD) && !text.contains(DEFAULT_IMPI),
            "a secret or identity was printed:\n{text}"
        );
    }
    (out.status.code(), stdout, stderr)
}

#[test]
fn java_ue_registers_holds_and_deregisters_with_exit_0() {
    let sims = start_sims(&build_dir("jni-ue-ok"));
    let mut args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);
    args.extend(["--hold".into(), "1".into()]);
    let (code, stdout, stderr) = ue(&strs(&args));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_registered_and_deregistered(&stdout);
    assert!(sims.good.registrar().stats().successes >= 2); // REGISTER and de-REGISTER
}

#[test]
fn java_ue_exits_3_with_reason_and_alert_on_a_rejected_certificate() {
    let sims = start_sims(&build_dir("jni-ue-cert"));
    let (code, stdout, _) = ue(&strs(&register_args(
        &sims.expired,
        &sims.ca,
        DEFAULT_PASSWORD,
    )));
    assert_eq!(code, Some(3), "{stdout}");
    assert_expired_certificate_rejected(&stdout);
}

#[test]
fn java_ue_exits_1_on_a_wrong_password() {
    let sims = start_sims(&build_dir("jni-ue-rejected"));
    let (code, stdout, _) = ue(&strs(&register_args(
        &sims.good,
        &sims.ca,
        "not-the-password",
    )));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("\"status\":403"), "{stdout}");
}

#[test]
fn java_ue_exits_4_on_a_tls_failure_other_than_the_certificate() {
    let sims = start_sims(&build_dir("jni-ue-tls"));
    let tls12 = tls12_only(&sims.good);
    let mut args = register_args(&tls12, &sims.ca, DEFAULT_PASSWORD);
    args.push("--tls13-only".into());
    let (code, stdout, _) = ue(&strs(&args));
    assert_eq!(code, Some(4), "{stdout}");
    assert!(stdout.contains("\"event\":\"tls_failed\""), "{stdout}");
}

#[test]
fn java_ue_exits_5_when_the_pcscf_is_unreachable() {
    let pcscf = unreachable_pcscf();
    let (code, stdout, _) = ue(&[
        "--pcscf",
        &pcscf,
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
        "--json",
    ]);
    assert_eq!(code, Some(5), "{stdout}");
    // The back-off lists the round's failed candidate, as the Rust and C CLIs do.
    assert_backoff_lists_refused(&stdout, &pcscf);
}

#[test]
fn java_ue_exits_2_on_usage_and_configuration_errors() {
    assert_eq!(ue(&[]).0, Some(2));
    assert_eq!(ue(&["--pcscf"]).0, Some(2));
    let (code, _, stderr) = ue(&[
        "--pcscf",
        "bad host:0",
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("pcscf"), "{stderr}");
    let (code, _, _) = ue(&[
        "--pcscf",
        "127.0.0.1:9",
        "--ca",
        "/nonexistent.pem",
        "--impi",
        DEFAULT_IMPI,
        "--impu",
        DEFAULT_IMPU,
        "--password",
        "x",
    ]);
    assert_eq!(code, Some(2));
}

#[test]
fn java_ue_takes_the_password_from_a_file_warns_on_the_command_line_and_writes_a_key_log() {
    let dir = build_dir("jni-ue-password");
    let sims = start_sims(&dir);
    let args = register_args(&sims.good, &sims.ca, DEFAULT_PASSWORD);

    // --password: works, but warns.
    let (code, stdout, stderr) = ue(&strs(&args));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ue: warning: --password puts the password in every `ps` listing"),
        "{stderr}"
    );

    // --password-file and --keylog: no password warning; the key-log warning, the event
    // right after connecting, and NSS lines in the file.
    let file = dir.join("password");
    std::fs::write(&file, format!("{DEFAULT_PASSWORD}\n")).unwrap();
    let keys = dir.join("keys.log");
    let _ = std::fs::remove_file(&keys);
    let mut with_file = with_password_file(args.clone(), &file.display().to_string());
    with_file.extend(["--keylog".into(), keys.display().to_string()]);
    let (code, stdout, stderr) = ue(&strs(&with_file));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("--password puts"), "{stderr}");
    assert!(
        stderr.contains("warning: TLS secrets are appended to"),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("{\"event\":\"connecting\""),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("{\"event\":\"key_log_enabled\""),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")
                && l.split(' ').nth(1).is_some_and(|r| r.len() == 64)),
        "{text}"
    );

    // --help: every flag and the exit codes, exit 0.
    let (code, help, _) = ue(&["--help"]);
    assert_eq!(code, Some(0));
    for flag in [
        "--password-file",
        "--password ",
        "--keylog",
        "--json",
        "--hold",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(
        (0..=5).all(|c| help.contains(&format!("  {c}  "))),
        "{help}"
    );
}
