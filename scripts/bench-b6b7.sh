#!/usr/bin/env bash
# B6 (library size against librustls) and B7 (cold start to registered against baresip), as
# functions sourced by scripts/bench.sh, or run alone:
#
#   scripts/bench-b6b7.sh b6   # libimstls (default, trimmed) and librustls per provider
#   scripts/bench-b6b7.sh b7   # installs baresip-core and kamailio from Debian, then measures
#
# Each writes a Markdown fragment into target/bench-report/ (b6-librustls.md, b7.md) that
# bench.sh puts into BENCHMARKS.md.
set -euo pipefail

B6B7_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUSTLS_FFI_VERSION=0.15.7

b6b7_log() { echo "[bench-b6b7] $*" >&2; }

# Stripped size of a release libimstls.so built with the given features into $1.
b6_imstls_size() { # target dir, output name, cargo feature arguments...
    local dir=$1 name=$2
    shift 2
    (cd "$B6B7_ROOT" && CARGO_TARGET_DIR="$dir" cargo build --release --lib -p imstls "$@") \
        2>"$OUT/build-$name.log" || { tail -n 20 "$OUT/build-$name.log" >&2; exit 1; }
    strip --strip-all -o "$OUT/$name.so" "$dir/release/libimstls.so"
    stat -c %s "$OUT/$name.so"
}

# librustls the way rustls-ffi's users get it: the crate from crates.io, same rustls, same
# release profile, as a cdylib, with the given rustls-ffi features; built in the same target
# directory (and with the same aws-lc build options) as libimstls.
b6_librustls_size() { # target dir, provider features (comma separated), extra cargo args...
    local dir=$1 features=$2 crate="$1/librustls-$RUSTLS_FFI_VERSION"
    shift 2
    mkdir -p "$crate"
    cat >"$crate/Cargo.toml" <<EOF
[package]
name = "librustls-bench"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
name = "rustls"
crate-type = ["cdylib"]
path = "lib.rs"

[dependencies]
rustls-ffi = { version = "=$RUSTLS_FFI_VERSION", default-features = false, features = [$features] }

[workspace]
EOF
    # The cdylib exports every #[no_mangle] function of rustls-ffi; this keeps it linked.
    printf 'pub use rustls_ffi::*;\n' >"$crate/lib.rs"
    cp "$B6B7_ROOT/Cargo.lock" "$crate/Cargo.lock"
    (cd "$crate" && CARGO_TARGET_DIR="$dir" cargo build --release --lib "$@") \
        2>"$OUT/build-librustls-${features//[^a-z]/}.log" || {
        tail -n 20 "$OUT/build-librustls-${features//[^a-z]/}.log" >&2
        exit 1
    }
    strip --strip-all -o "$crate/librustls.stripped.so" "$dir/release/librustls.so"
    local exports
    exports=$(nm -D --defined-only "$dir/release/librustls.so" | grep -c ' T rustls_' || true)
    [ "$exports" -gt 100 ] || { echo "librustls exports only $exports rustls_* functions" >&2; exit 1; }
    stat -c %s "$crate/librustls.stripped.so"
}

# B6, continued: per provider, the stripped libimstls.so as shipped (default features and the
# C API, feature capi), without the optional webpki-roots and rustls logging, and librustls with
# the same provider.
b6_librustls() {
    local provider dir full trimmed librustls control features
    : >"$OUT/librustls.tsv"
    for provider in aws-lc-rs ring; do
        dir="$B6B7_ROOT/target/bench-size/$provider"
        # Trimmed first: the shipped build is left in the target directory, for the static-link
        # and composition tables that bench.sh reads from it afterwards.
        if [ "$provider" = ring ]; then
            b6b7_log "B6: libimstls and librustls with ring"
            trimmed=$(b6_imstls_size "$dir" imstls-ring-trimmed --no-default-features \
                --features ring,capi)
            full=$(b6_imstls_size "$dir" imstls-ring-full --no-default-features \
                --features ring,webpki-roots,logging,capi)
            features='"ring"'
        else
            b6b7_log "B6: libimstls and librustls with aws-lc-rs"
            trimmed=$(b6_imstls_size "$dir" imstls-aws-lc-rs-trimmed --no-default-features \
                --features aws-lc-rs,capi)
            full=$(b6_imstls_size "$dir" imstls-aws-lc-rs-full --features capi)
            features='"aws-lc-rs", "prefer-post-quantum"'
        fi
        # Control: rustls-ffi's own code in one codegen unit, as imstls's release profile
        # builds imstls's (Cargo.toml). Built first, so the published-profile build is the one
        # left in the target directory.
        control=$(b6_librustls_size "$dir" "$features" \
            --config 'profile.release.package.rustls-ffi.codegen-units=1')
        librustls=$(b6_librustls_size "$dir" "$features")
        printf '%s\t%s\t%s\t%s\t%s\n' "$provider" "$full" "$trimmed" "$librustls" "$control" \
            >>"$OUT/librustls.tsv"
    done
    python3 - "$OUT" "$RUSTLS_FFI_VERSION" <<'PY'
import os, sys
out, version = sys.argv[1:]
rows = [l.split("\t") for l in open(os.path.join(out, "librustls.tsv")).read().split("\n") if l]
w = []
w.append(f"Against librustls ({version}, crate `rustls-ffi` from crates.io, same rustls, the "
         "release profile its crate publishes, built as a cdylib by the bench script in the same "
         "target directory as libimstls, so with the same aws-lc build options), both stripped "
         "(`strip --strip-all`). libimstls is built with its own release profile, whose one "
         "difference from the default is imstls's code in one codegen unit "
         "(`[profile.release.package.imstls]`); *librustls, control* builds rustls-ffi's code "
         "the same way. *Shipped*: imstls's default features (`webpki-roots`, `logging`); "
         "*trimmed*: without them, which is librustls's scope (rustls-ffi bundles no root list "
         "and builds rustls without `logging`; imstls's own log lines remain). Sizes are "
         "deterministic for a given toolchain and lock file, so each verdict is met or missed.\n")
w.append("| provider | libimstls shipped | libimstls trimmed | librustls | librustls, control | "
         "shipped / librustls | trimmed / librustls | trimmed / control | "
         "shipped ≤ librustls | trimmed ≤ librustls | trimmed ≤ control |")
w.append("|---|---|---|---|---|---|---|---|---|---|---|")
verdict = lambda ok: "**met**" if ok else "**missed**"
for provider, full, trimmed, librustls, control in rows:
    full, trimmed, librustls, control = int(full), int(trimmed), int(librustls), int(control)
    w.append(f"| {provider} | {full:,} B | {trimmed:,} B | {librustls:,} B | {control:,} B | "
             f"{full / librustls:.3f} | {trimmed / librustls:.3f} | {trimmed / control:.3f} | "
             f"{verdict(full <= librustls)} | {verdict(trimmed <= librustls)} | "
             f"{verdict(trimmed <= control)} |")
open(os.path.join(out, "b6-librustls.md"), "w").write("\n".join(w) + "\n\n")
PY
}

# B7: installs the registrar and the reference client from Debian when missing, builds the
# `ue` CLI and the C example (release, default features and capi), and runs scripts/coldstart.py.
b7_coldstart() {
    local need=()
    command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
    ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need+=(kamailio-tls-modules)
    command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if [ "${#need[@]}" -gt 0 ]; then
        b6b7_log "B7: installing ${need[*]}"
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
    fi
    b6b7_log "B7: building the ue CLI and the C library (release)"
    (cd "$B6B7_ROOT" && cargo build --release --lib --features capi --example ue) 2>"$OUT/build-b7.log" ||
        { tail -n 20 "$OUT/build-b7.log" >&2; exit 1; }
    local release="$B6B7_ROOT/target/release" cdir="$OUT/b7-c"
    # The loader looks for the soname (libimstls.so.0): give it one next to the binary.
    mkdir -p "$cdir/lib"
    ln -sf "$release/libimstls.so" "$cdir/lib/libimstls.so.0"
    gcc -std=c99 -O2 -pthread -I "$B6B7_ROOT/include" -I "$B6B7_ROOT/examples/c" \
        "$B6B7_ROOT/examples/c/ue.c" "$B6B7_ROOT/examples/c/mini_ua.c" -L "$release" -limstls \
        -lm "-Wl,-rpath,$cdir/lib" -o "$cdir/ue"
    b6b7_log "B7: cold start against Kamailio (${B7_BLOCKS:-5} blocks of ${B7_RUNS:-3} runs)"
    python3 "$B6B7_ROOT/scripts/coldstart.py" "$OUT" "$release/examples/ue" "$cdir/ue" \
        "${B7_BLOCKS:-5}" "${B7_RUNS:-3}" >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    OUT="$B6B7_ROOT/target/bench-report"
    mkdir -p "$OUT"
    case "${1:-}" in
        b6) b6_librustls; cat "$OUT/b6-librustls.md" ;;
        b7) b7_coldstart; cat "$OUT/b7.md" ;;
        *) sed -n '2,9p' "$0"; exit 2 ;;
    esac
fi
