#!/usr/bin/env bash
# The long soak run and its table in docs/ROBUSTNESS.md, generated from the run's JSON summary
# (never typed by hand).
#
#   scripts/soak_table.sh [CYCLES]          run `examples/soak.rs` (release), then write the table
#   SOAK_PROFILE=debug scripts/soak_table.sh [CYCLES]     the same with the debug build
#   scripts/soak_table.sh --from FILE       write the table from a saved JSON summary
#
# The summary is kept in target/soak/summary.json. The table goes between the
# `soak-table:begin` and `soak-table:end` markers of docs/ROBUSTNESS.md. A run whose verdict
# is "fail" still writes its table (so that it can be read) and the script exits 1.
# Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "jq is required (apt-get install jq)" >&2; exit 2; }
mkdir -p target/soak
summary=target/soak/summary.json
if [ "${1:-}" = "--from" ]; then
    summary="${2:?a JSON summary file}"
    run_status=0
else
    cycles="${1:-10000}"
    profile="${SOAK_PROFILE:-release}"
    case "$profile" in
        release) cargo build --release --example soak ;;
        debug) cargo build --example soak ;;
        *) echo "SOAK_PROFILE is release or debug" >&2; exit 2 ;;
    esac
    set +e
    "./target/$profile/examples/soak" "$cycles" >target/soak/stdout.txt
    run_status=$?
    set -e
    tail -n 1 target/soak/stdout.txt >"$summary"
    jq -e .soak "$summary" >/dev/null || { echo "no JSON summary from the soak" >&2; exit 1; }
fi
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests examples || echo '+local changes')"
table="$(jq -r --arg commit "$commit" --arg date "$(date -u +%Y-%m-%d)" '
  .soak as $s
  | def groups: if length > 3 then (.[:length - 3] | groups) + " " + .[length - 3:] else . end;
    def num: if . < 0 then "-" + (-. | tostring | groups) else tostring | groups end;
    def row(name): "| \(name) | \(.rss_kib | num) KiB | \(.fds) | \(.live_bytes | num) B |";
  "Run on \($date) at commit \($commit) (\($s.profile) build, `\(if $s.profile == "debug" then "SOAK_PROFILE=debug " else "" end)scripts/soak_table.sh \($s.cycles)`): "
  + "**\($s.cycles | num) loss → re-register cycles in \($s.elapsed_s) s, \($s.resumed | num) resumed "
  + "handshakes; verdict: \($s.verdict)**"
  + (if $s.injected_leak_bytes_per_cycle > 0 then " (with a deliberate leak of \($s.injected_leak_bytes_per_cycle) B per cycle)" else "" end)
  + ".\n\n| when | RSS | open fds | live heap |\n|---|---|---|---|\n"
  + ([$s.samples[]
      | if .when == "before" then row("before simulator and engine")
        elif .when == "start" then row("after the first registration")
        elif .when == "warm" then row("cycle \(.cycle | num) (end of the warm-up)")
        elif .when == "cycle" then row("cycle \(.cycle | num)")
        elif .when == "end" then row("after the last cycle (\(.cycle | num))")
        else row("everything dropped") end] | join("\n"))
  + "\n\n| window (cycles) | live heap floor before | after | growth per cycle (fails at \($s.threshold_bytes_per_cycle) B) |\n|---|---|---|---|\n"
  + ([$s.windows[]
      | "| \(.first_cycle | num)–\(.last_cycle | num) | \(.floor_before | num) B | \(.floor_after | num) B | \(.bytes_per_cycle * 100 | round / 100) B |"]
     | join("\n"))
  + (if ($s.failures | length) > 0 then "\n\nFailures: " + ($s.failures | join("; ")) else "" end)
' "$summary")"
doc=docs/ROBUSTNESS.md
grep -q '<!-- soak-table:begin' "$doc" && grep -q '<!-- soak-table:end' "$doc" ||
    { echo "$doc has no soak-table markers" >&2; exit 1; }
TABLE="$table" awk '
  /<!-- soak-table:begin/ { print; print ENVIRON["TABLE"]; skip = 1; next }
  /<!-- soak-table:end/   { skip = 0 }
  !skip { print }
' "$doc" >"$doc.new"
mv "$doc.new" "$doc"
echo "wrote the soak table of $doc from $summary (verdict $(jq -r .soak.verdict "$summary"))"
[ "$run_status" -eq 0 ] && [ "$(jq -r .soak.verdict "$summary")" = pass ]
