//! Shared by `tests/c_harness.rs` and `tests/c_example.rs`: finding the toolchain and the
//! libraries cargo just built, compiling C and C++ with strict warnings, starting loopback
//! simulators, and running a C program with a control channel and a hang guard.
#![allow(dead_code)] // each test uses part of it

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use imstls_testkit::{CertKind, SimConfig, Simulator, TestPki};

/// Strict warnings for every C and C++ file.
pub const WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// Libraries a Rust staticlib needs on Linux (`rustc --print native-static-libs`).
pub const NATIVE_LIBS: &[&str] = &["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"];

/// Writes to the test's stderr directly (libtest captures `eprintln!`, not this).
pub fn say(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The profile directory cargo built this test (and libimstls.a / libimstls.so) into.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The directory holding the `libimstls.a` and `libimstls.so` of this build.
///
/// `cargo test` leaves the non-Rust crate types in `target/<profile>/deps/`; only `cargo build`
/// also copies them up to `target/<profile>/`, where a copy may be stale. So `deps/` first.
/// `IMSTLS_C_LIBRARY_DIR` names another build's directory instead (CI runs the C harness
/// against `cargo build --release --lib --features capi`, the library C users link, without
/// building every test dependency in release too).
pub fn library_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IMSTLS_C_LIBRARY_DIR") {
        return PathBuf::from(dir);
    }
    let profile = profile_dir();
    let deps = profile.join("deps");
    if deps.join("libimstls.so").exists() {
        deps
    } else {
        profile
    }
}

fn built_library(file: &str) -> PathBuf {
    let lib = library_dir().join(file);
    assert!(
        lib.exists(),
        "{file} is missing from {} and its deps/: cargo builds it with the tests",
        profile_dir().display()
    );
    lib
}

pub fn staticlib() -> PathBuf {
    built_library("libimstls.a")
}

pub fn cdylib() -> PathBuf {
    built_library("libimstls.so")
}

/// Where compiled C programs go (a different directory per test and variant).
pub fn build_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ffi-tests")
        .join(name);
    std::fs::create_dir_all(&dir).expect("build dir");
    dir
}

/// Builds `examples/c/ue.c` (the C twin of the `ue` CLI) against the shared library, linked
/// through its soname `libimstls.so.0` as an installed application would be.
pub fn build_c_ue(variant: &str) -> PathBuf {
    let dir = build_dir(variant);
    // The loader looks for the soname: give it one next to the binary.
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).expect("lib dir");
    let link = libdir.join("libimstls.so.0");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(cdylib(), &link).expect("soname symlink");
    let repo = repo();
    let mut objects = Vec::new();
    for source in ["examples/c/ue.c", "examples/c/mini_ua.c"] {
        let path = repo.join(source);
        let object = dir
            .join(path.file_name().expect("name"))
            .with_extension("o");
        compile(&path, &object, &[]);
        objects.push(object);
    }
    let binary = dir.join("ue");
    run(Command::new(require("gcc", "gcc"))
        .args(&objects)
        .arg("-L")
        .arg(cdylib().parent().expect("profile dir"))
        .arg("-limstls")
        .arg("-lm")
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-o")
        .arg(&binary));
    binary
}

/// Builds `examples/osip/osip_ua.c` (a UA on GNU oSIP) against the libosip2 the system
/// package installed (pkg-config `libosip2`, else `-losip2 -losipparser2`) and the shared
/// imstls library, linked through its soname like `build_c_ue`. `flags` go to the compiler and
/// the linker (e.g. sanitizers).
pub fn build_osip_ua(variant: &str, flags: &[&str]) -> PathBuf {
    let dir = build_dir(variant);
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).expect("lib dir");
    let link = libdir.join("libimstls.so.0");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(cdylib(), &link).expect("soname symlink");
    let pkg_config = |what: &str| {
        Command::new("pkg-config")
            .args([what, "libosip2"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
    };
    let cflags = pkg_config("--cflags").unwrap_or_default();
    let libs = pkg_config("--libs")
        .unwrap_or_else(|| vec!["-losip2".to_owned(), "-losipparser2".to_owned()]);
    assert!(
        Path::new("/usr/include/osip2/osip.h").exists() || !cflags.is_empty(),
        "the oSIP example needs libosip2's headers: apt-get install libosip2-dev \
         (CI does this in .ci/run)"
    );
    let source = repo().join("examples/osip/osip_ua.c");
    let object = dir.join("osip_ua.o");
    let mut cflags: Vec<&str> = cflags.iter().map(String::as_str).collect();
    cflags.extend(flags);
    compile(&source, &object, &cflags);
    let binary = dir.join("osip_ua");
    run(Command::new(require("gcc", "gcc"))
        .args(flags)
        .arg(&object)
        .arg("-L")
        .arg(cdylib().parent().expect("profile dir"))
        .arg("-limstls")
        .args(&libs)
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-o")
        .arg(&binary));
    binary
}

/// A tool the C tests need, or a failure that says what to install — never a silent pass.
pub fn require(tool: &str, package: &str) -> PathBuf {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => PathBuf::from(tool),
        _ => panic!(
            "`{tool}` is required by the C API tests and was not found: \
             apt-get install {package} (CI does this in .ci/run)"
        ),
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    if !out.status.success() {
        say(&String::from_utf8_lossy(&out.stdout));
        say(&String::from_utf8_lossy(&out.stderr));
        panic!("{command:?} failed: {}", out.status);
    }
}

/// Compiles one C (`.c`, C99) or C++ (`.cpp`, C++11) file to an object with strict warnings.
pub fn compile(source: &Path, object: &Path, extra: &[&str]) {
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    compile_as(
        source,
        object,
        if cpp { "-std=c++11" } else { "-std=c99" },
        extra,
    );
}

/// Compiles one C or C++ file (by extension) in the language standard `std` (`-std=...`)
/// to an object with strict warnings.
pub fn compile_as(source: &Path, object: &Path, std: &str, extra: &[&str]) {
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    let tool = if cpp {
        require("g++", "g++")
    } else {
        require("gcc", "gcc")
    };
    run(Command::new(tool)
        .arg(std)
        .args(WARNINGS)
        .args(["-g", "-pthread", "-c"])
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("examples/c"))
        .args(extra)
        .arg(source)
        .arg("-o")
        .arg(object));
}

/// The loopback P-CSCFs the C programs talk to: one with a good certificate, one with an
/// expired one and one for another name, all under one test root.
pub struct Sims {
    pub pki: Arc<TestPki>,
    pub good: Simulator,
    pub expired: Simulator,
    pub wrong_name: Simulator,
    pub ca: PathBuf,
    pub server_name: String,
}

impl Sims {
    /// How the C harness, the C++ checks and the JVM tests are told about the simulators:
    /// `--pcscf`, `--expired`, `--wrong-name`, `--ca`, `--server-name`.
    pub fn flags(&self) -> Vec<OsString> {
        let mut flags = Vec::new();
        for (flag, sim) in [
            ("--pcscf", &self.good),
            ("--expired", &self.expired),
            ("--wrong-name", &self.wrong_name),
        ] {
            flags.push(flag.into());
            flags.push(sim.addr().to_string().into());
        }
        flags.push("--ca".into());
        flags.push(self.ca.clone().into());
        flags.push("--server-name".into());
        flags.push(self.server_name.clone().into());
        flags
    }
}

pub fn start_sims(dir: &Path) -> Sims {
    let pki = Arc::new(TestPki::generate("pcscf.ims.test"));
    let start = |cert| {
        Simulator::start_with_pki(
            SimConfig {
                cert,
                ..SimConfig::default()
            },
            pki.clone(),
        )
        .expect("loopback simulator")
    };
    let ca = dir.join("root-ca.pem");
    std::fs::write(&ca, pki.root_pem()).expect("write the root CA");
    Sims {
        pki: pki.clone(),
        good: start(CertKind::Good),
        expired: start(CertKind::Expired),
        wrong_name: start(CertKind::WrongName),
        ca,
        server_name: pki.server_name().to_owned(),
    }
}

/// `passed=N failed=M` from the last of `lines` that has it: a test program's verdict.
pub fn counts<'a>(lines: impl DoubleEndedIterator<Item = &'a str>) -> Option<(u32, u32)> {
    lines.rev().find_map(|line| {
        let rest = line.strip_prefix("passed=")?;
        let (passed, failed) = rest.split_once(" failed=")?;
        Some((passed.trim().parse().ok()?, failed.trim().parse().ok()?))
    })
}

/// What a C program printed and how it ended.
pub struct Outcome {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub timed_out: bool,
}

impl Outcome {
    /// `passed=N failed=M` from the last line that has it.
    pub fn counts(&self) -> Option<(u32, u32)> {
        counts(self.lines.iter().map(String::as_str))
    }
}

/// Runs `command` (stdout piped, stderr inherited so sanitizer and Valgrind reports reach
/// the terminal), answering `@ctl kill` lines with `kill()` then `ok`. Kills it after
/// `limit` (a hang guard, not a timing assertion). The full output goes to `log`.
pub fn run_with_control(
    mut command: Command,
    limit: Duration,
    log: &Path,
    kill: impl Fn(),
) -> Outcome {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
        if let Some(command) = line.strip_prefix("@ctl ") {
            match command {
                "kill" => kill(),
                other => panic!("unknown control request {other:?}"),
            }
            let _ = stdin.write_all(b"ok\n");
            let _ = stdin.flush();
        }
        if line.starts_with("FAIL") || line.starts_with("passed=") || line.starts_with("LEAK") {
            say(&format!("{line}\n"));
        }
        lines.push(line);
    }
    drop(stdin);
    let status = child.wait().expect("wait for the C program");
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    std::fs::write(log, lines.join("\n")).expect("write the log");
    Outcome {
        status,
        lines,
        timed_out,
    }
}
