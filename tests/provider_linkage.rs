//! Shipped binaries link only the crypto provider they were built for (issue 15): the `ue` CLI
//! and the C library (which the C example and the JNI glue load) built with this test's
//! features hold the symbols of their own provider's C code and none of the other one's.
//! `cargo test` builds the examples with the same features (`cargo test --test provider_linkage`
//! alone does not: build `--example ue` with the same features first); a `ue` older than the
//! library is reported as stale rather than checked.

#[path = "../ffi-tests/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// A symbol name part every unstripped build of each provider carries: aws-lc's prefixed C
/// symbols, ring's Rust symbols (legacy mangling of the crate root `ring`).
const AWS_LC: &str = "aws_lc_0_";
const RING: &str = "_ZN4ring";

fn own_and_other() -> (&'static str, &'static str) {
    if cfg!(feature = "aws-lc-rs") {
        (AWS_LC, RING)
    } else {
        (RING, AWS_LC)
    }
}

fn symbols(binary: &Path) -> String {
    assert!(binary.exists(), "{} was not built", binary.display());
    let nm = require("nm", "binutils");
    let out = Command::new(nm).arg(binary).output().expect("nm runs");
    assert!(out.status.success(), "nm {} failed", binary.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_links_only_its_provider(binary: &Path) {
    let (own, other) = own_and_other();
    let symbols = symbols(binary);
    assert!(
        symbols.lines().any(|l| l.contains(own)),
        "{} holds no `{own}` symbol: is it stripped, or built with another provider?",
        binary.display()
    );
    let foreign: Vec<&str> = symbols
        .lines()
        .filter(|l| l.contains(other))
        .take(5)
        .collect();
    assert!(
        foreign.is_empty(),
        "{} also links the other provider: {foreign:?}",
        binary.display()
    );
}

#[test]
fn the_ue_cli_links_only_its_provider() {
    let ue = profile_dir().join("examples/ue");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    assert!(
        modified(&ue) >= modified(&cdylib()),
        "{} is older than the library of this build: build it with this test's features \
         (`cargo build --example ue`, or run the whole `cargo test`)",
        ue.display()
    );
    assert_links_only_its_provider(&ue);
}

#[test]
fn the_c_library_links_only_its_provider() {
    assert_links_only_its_provider(&cdylib());
}
