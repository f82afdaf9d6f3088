//! The C face costs a Rust user nothing: a crate that depends on imstls with default features
//! builds no cbindgen, and the `libimstls.so` cargo still builds for it (cargo builds every
//! crate type of a dependency: lib, staticlib, cdylib) exports no `imstls_*` symbol. The same
//! dependent with `features = ["capi"]` does get cbindgen, so the check can fail.
//!
//! Each case writes a scratch crate under `CARGO_TARGET_TMPDIR` (with this repository's
//! Cargo.lock, so that it resolves offline to the same versions) and runs cargo on it with a
//! target directory inside `target/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch binary crate depending on imstls by path with `dependency` as the rest of its
/// dependency line (e.g. `features = ["capi"]`).
fn dependent(name: &str, dependency: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("rust_dependent")
        .join(name);
    std::fs::create_dir_all(dir.join("src")).expect("scratch crate dir");
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nimstls = {{ path = {path:?}{dependency} }}\n\n\
         # Not part of the imstls workspace above it.\n[workspace]\n",
        path = repo().display().to_string(),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    println!(\"{}\", imstls::crypto_provider_name());\n}\n",
    )
    .expect("write main.rs");
    std::fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    dir
}

fn cargo(dir: &Path, args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let out = Command::new(cargo)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", repo().join("target/rust_dependent"))
        .env("CARGO_TERM_COLOR", "never")
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package names in `cargo tree -e build,normal` for the dependent: what it compiles and
/// links, build scripts' dependencies included (dev-dependencies of imstls are not).
fn build_and_normal_tree(dir: &Path) -> Vec<String> {
    let tree = cargo(
        dir,
        &[
            "tree",
            "--offline",
            "-e",
            "build,normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ],
    );
    tree.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_dependent_with_default_features_builds_no_cbindgen() {
    let packages = build_and_normal_tree(&dependent("plain", ""));
    assert!(
        packages.iter().any(|p| p == "imstls") && packages.iter().any(|p| p == "rustls"),
        "the tree lists the dependencies: {packages:?}"
    );
    assert!(
        !packages.iter().any(|p| p == "cbindgen"),
        "cbindgen is built for a Rust dependent: {packages:?}"
    );
}

#[test]
fn a_dependent_with_the_capi_feature_builds_cbindgen() {
    let packages = build_and_normal_tree(&dependent("capi", ", features = [\"capi\"]"));
    assert!(
        packages.iter().any(|p| p == "cbindgen"),
        "no cbindgen with the capi feature: {packages:?}"
    );
}

/// The `imstls_*` symbols the shared library at `path` exports (`nm -D --defined-only`).
fn exported_c_symbols(path: &Path) -> Vec<String> {
    assert!(path.exists(), "{} is missing", path.display());
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(path)
        .output()
        .expect("nm runs (apt-get install binutils)");
    assert!(nm.status.success(), "nm {}", path.display());
    String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| name.starts_with("imstls_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_dependents_libimstls_so_exports_no_c_symbol_without_capi() {
    // The same look at the library these tests link (built with capi through the
    // dev-dependency) finds the C API: the check sees symbols when there are some.
    let own = std::env::current_exe().expect("test executable");
    let own_deps = own.parent().expect("target/<profile>/deps");
    let with_capi = exported_c_symbols(&own_deps.join("libimstls.so"));
    assert!(
        with_capi.iter().any(|name| name == "imstls_version"),
        "the capi build exports the C API: {with_capi:?}"
    );

    // ring: the smaller provider builds faster than aws-lc-rs; the C face does not depend on it.
    let dir = dependent(
        "plain_ring",
        ", default-features = false, features = [\"ring\"]",
    );
    cargo(&dir, &["build", "--offline"]);
    let cdylib = repo().join("target/rust_dependent/debug/deps/libimstls.so");
    let exported = exported_c_symbols(&cdylib);
    assert!(
        exported.is_empty(),
        "a Rust dependent's libimstls.so exports C symbols: {exported:?}"
    );
}
