//! The examples the README promises, run as a user would run them.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/<name>, built by `cargo test` before any test runs.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

#[test]
fn quickstart_tells_the_whole_story() {
    let output = Command::new(example("quickstart")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "TLS up: TLSv1.3",
        "registered",
        "lost: the connection was reset",
        "session resumed",
        "superseded the registration in AwaitingRegister",
        "TLS session(s)/ticket(s) purged",
        "certificate expired",
        "the P-CSCF received our fatal alert: certificate_expired",
        "UE state Closed; next timer None",
        "Done.",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
