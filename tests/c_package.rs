//! `scripts/install-c.sh` installs what a C project consumes — header, static and shared
//! library (soname `libimstls.so.MAJOR`), `imstls.pc` — and a C program builds and runs from
//! that installation with nothing but `pkg-config`.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let tool = require("pkg-config", "pkg-config");
    let out = Command::new(tool)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .args(args)
        .arg("imstls")
        .output()
        .expect("pkg-config runs");
    assert!(
        out.status.success(),
        "pkg-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn install_script_produces_a_pkg_config_installation_a_c_program_builds_against() {
    let dir = build_dir("package");
    let prefix = dir.join("usr");
    let _ = std::fs::remove_dir_all(&prefix);
    let profile = profile_dir();
    run(Command::new("sh")
        .arg(repo().join("scripts/install-c.sh"))
        .arg("--no-build")
        .args([
            "--profile",
            &profile.file_name().expect("profile").to_string_lossy(),
        ])
        .arg("--target-dir")
        .arg(profile.parent().expect("target dir"))
        .arg("--prefix")
        .arg(&prefix));

    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let lib = prefix.join("lib");
    assert!(prefix.join("include/imstls/imstls.h").is_file());
    assert!(prefix.join("include/imstls/imstls.hpp").is_file());
    assert!(lib.join("libimstls.a").is_file());
    assert!(lib.join(format!("libimstls.so.{version}")).is_file());
    assert_eq!(
        std::fs::read_link(lib.join(format!("libimstls.so.{major}"))).expect("soname link"),
        Path::new(&format!("libimstls.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libimstls.so")).expect("dev link"),
        Path::new(&format!("libimstls.so.{major}"))
    );
    assert_eq!(pkg_config(&prefix, &["--modversion"]), version);
    let cflags = pkg_config(&prefix, &["--cflags"]);
    let libs = pkg_config(&prefix, &["--libs"]);
    assert!(pkg_config(&prefix, &["--static", "--libs"]).contains("-lpthread"));

    // Build the C example from the installation only, dynamically and statically.
    let repo = repo();
    let sources = [
        repo.join("examples/c/ue.c"),
        repo.join("examples/c/mini_ua.c"),
    ];
    let split = |flags: &str| {
        flags
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let gcc = require("gcc", "gcc");
    let dynamic = dir.join("ue-dynamic");
    run(Command::new(&gcc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .args(split(&cflags))
        .arg("-I")
        .arg(repo.join("examples/c"))
        .args(&sources)
        .args(split(&libs))
        .arg("-lm")
        .arg("-o")
        .arg(&dynamic));
    let out = Command::new(&dynamic)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("the dynamically linked example runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage exit from the installed library"
    );

    let static_binary = dir.join("ue-static");
    run(Command::new(&gcc)
        .arg("-std=c99")
        .args(split(&cflags))
        .arg("-I")
        .arg(repo.join("examples/c"))
        .args(&sources)
        .arg(lib.join("libimstls.a"))
        .args(
            split(&pkg_config(&prefix, &["--static", "--libs-only-l"]))
                .into_iter()
                .filter(|f| f != "-limstls"),
        )
        .arg("-lm")
        .arg("-o")
        .arg(&static_binary));
    let out = Command::new(&static_binary)
        .output()
        .expect("the static example runs");
    assert_eq!(out.status.code(), Some(2));
    let dynamic_deps = Command::new(require("readelf", "binutils"))
        .arg("-d")
        .arg(&static_binary)
        .output()
        .expect("readelf runs");
    assert!(!String::from_utf8_lossy(&dynamic_deps.stdout).contains("libimstls"));

    // The C++ example compiles against the installed imstls.hpp alone.
    run(Command::new(require("g++", "g++"))
        .args(["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .args(split(&cflags))
        .arg("-I")
        .arg(repo.join("examples/c"))
        .arg("-fsyntax-only")
        .arg(repo.join("examples/cpp/register.cpp")));
}
