#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust: libFuzzer (from the libfuzzer-sys crate) linked with
# rustc's stable SanitizerCoverage flags, the same instrumentation cargo-fuzz asks for minus
# the nightly-only AddressSanitizer (Rust code needs no ASan to be memory safe; the C code
# underneath, aws-lc, is not instrumented).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target below
#   IMSTLS_BLESS=1 fuzz/run.sh ...      also rewrite the fuzz table in docs/ROBUSTNESS.md
#
# New inputs go to fuzz/work-corpus/<target>/ (git-ignored), crashes to fuzz/artifacts/.
# The committed seeds in fuzz/corpus/<target>/ are read, never written.
#
# Every target runs, then the script prints one line per target (executions, exec/s, edges
# covered, new crash artifacts, verdict) and the same as a Markdown table, which it keeps in
# fuzz/work-results.md (git-ignored). It exits 1 when any target crashed, left an artifact,
# exited non-zero, or did not run at all (no binary, no final stats, zero executions).
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
# The commit the fuzzers are built from (with a mark when the tree differs from it).
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- ../src . || echo '+local changes')"
cargo build --release --target "$host" --bins
mkdir -p work-logs
results=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "work-corpus/$t" "artifacts/$t"
    echo "== $t (${seconds} s)"
    log="work-logs/$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    status=0
    if [ -x "./target/$host/release/$t" ]; then
        "./target/$host/release/$t" "work-corpus/$t" "corpus/$t" \
            -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    else
        echo "no fuzzer binary target/$host/release/$t" >"$log"
        status=127
    fi
    grep -E "^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==|SUMMARY|Done)" "$log" || true
    crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    edges=$(sed -n -E 's/^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse).* cov: ([0-9]+).*/\2/p' \
        "$log" | tail -n 1)
    if [ -z "$execs" ] || [ "$execs" -eq 0 ]; then
        verdict="did not run (exit $status)"
    elif [ "$crashes" -gt 0 ] || [ "$status" -ne 0 ]; then
        verdict="CRASH (exit $status, $crashes new artifact(s) in fuzz/artifacts/$t)"
    else
        verdict="no crash"
    fi
    [ "$verdict" = "no crash" ] || failed=1
    echo "-- $t: executions=${execs:-0} exec/s=${rate:--} edges=${edges:--} crashes=$crashes verdict=$verdict"
    results+=("| \`$t\` | $seconds | ${execs:-0} | ${rate:--} | ${edges:--} | $crashes | $verdict |")
done

{
    echo "Run on $(date -u +%Y-%m-%d) at commit $commit (\`fuzz/run.sh $seconds${*:+ $*}\`, release, $(nproc) cores):"
    echo
    echo "| target | seconds | executions | exec/s | edges covered (end) | new crash artifacts | result |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${results[@]}"
} >work-results.md
echo
cat work-results.md
if [ "${IMSTLS_BLESS:-}" = 1 ]; then
    doc=../docs/ROBUSTNESS.md
    grep -q '<!-- fuzz-table:begin' "$doc" && grep -q '<!-- fuzz-table:end' "$doc" ||
        { echo "$doc has no fuzz-table markers" >&2; exit 1; }
    TABLE="$(cat work-results.md)" awk '
      /<!-- fuzz-table:begin/ { print; print ENVIRON["TABLE"]; skip = 1; next }
      /<!-- fuzz-table:end/   { skip = 0 }
      !skip { print }
    ' "$doc" >"$doc.new"
    mv "$doc.new" "$doc"
    echo "wrote the fuzz table of docs/ROBUSTNESS.md"
fi
if [ "$failed" -ne 0 ]; then
    echo "!! fuzz run failed: a target crashed or did not run (see above, logs in fuzz/work-logs/)" >&2
    exit 1
fi
