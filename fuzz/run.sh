#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust: libFuzzer (from the libfuzzer-sys crate) linked with
# rustc's stable SanitizerCoverage flags, the same instrumentation cargo-fuzz asks for minus
# the nightly-only AddressSanitizer (Rust code needs no ASan to be memory safe; the C code
# underneath, aws-lc, is not instrumented).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, all ten targets
#
# New inputs go to fuzz/work-corpus/<target>/ (git-ignored), crashes to fuzz/artifacts/.
# The committed seeds in fuzz/corpus/<target>/ are read, never written.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(sip_framer send_sip tls_handshake engine config x509 cert_identity sip_uri ffi driver_api)
host="$(rustc -vV | sed -n 's/^host: //p')"
# An explicit --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
cargo build --release --target "$host" --bins
for t in "${targets[@]}"; do
    mkdir -p "work-corpus/$t" "artifacts/$t"
    echo "== $t (${seconds} s)"
    "./target/$host/release/$t" "work-corpus/$t" "corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 |
        grep -E "^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==|SUMMARY|Done)" || true
    if ls "artifacts/$t"/* >/dev/null 2>&1; then
        echo "!! $t: crash artifacts in fuzz/artifacts/$t" >&2
        exit 1
    fi
done
