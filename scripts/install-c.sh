#!/bin/sh
# Installs imstls for C and C++ users: the header, the static library, the shared library
# with a versioned soname, and a pkg-config file. The layout follows cargo-c's conventions:
#
#   $includedir/imstls/imstls.h
#   $includedir/imstls/imstls.hpp             (the header-only C++17 layer)
#   $libdir/libimstls.a
#   $libdir/libimstls.so.MAJOR.MINOR.PATCH   (soname libimstls.so.MAJOR, set by build.rs)
#   $libdir/libimstls.so.MAJOR -> libimstls.so.MAJOR.MINOR.PATCH
#   $libdir/libimstls.so       -> libimstls.so.MAJOR
#   $libdir/pkgconfig/imstls.pc
#
# usage: scripts/install-c.sh [--prefix /usr/local] [--libdir DIR] [--includedir DIR]
#            [--destdir STAGING] [--profile release|debug] [--target-dir DIR] [--no-build]
set -eu

prefix=/usr/local
libdir=
includedir=
destdir=
profile=release
target_dir=
build=1

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --includedir) includedir=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --target-dir) target_dir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-c.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\([^"]*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
major=${version%%.*}
libdir=${libdir:-$prefix/lib}
includedir=${includedir:-$prefix/include}
target_dir=${target_dir:-${CARGO_TARGET_DIR:-$root/target}}

case "$profile" in
    release) cargo_flags=--release ;;
    debug) cargo_flags= ;;
    *) echo "install-c.sh: --profile is release or debug" >&2; exit 2 ;;
esac
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --lib --features capi $cargo_flags --target-dir "$target_dir")
fi
built=$target_dir/$profile
# `cargo test` leaves the C libraries in deps/ only; `cargo build` copies them up as well.
[ -f "$built/deps/libimstls.so" ] && built=$built/deps
for f in libimstls.a libimstls.so; do
    [ -f "$built/$f" ] || { echo "install-c.sh: $built/$f is missing (build first)" >&2; exit 1; }
done
# A build without the cargo feature capi (a Rust dependent's) exports no C function.
if command -v nm >/dev/null 2>&1 &&
    ! nm -D --defined-only "$built/libimstls.so" | grep -q ' imstls_version$'; then
    echo "install-c.sh: $built/libimstls.so has no C API (build with --features capi)" >&2
    exit 1
fi

install -d "$destdir$includedir/imstls" "$destdir$libdir/pkgconfig"
install -m 644 "$root/include/imstls.h" "$destdir$includedir/imstls/imstls.h"
install -m 644 "$root/include/imstls.hpp" "$destdir$includedir/imstls/imstls.hpp"
install -m 644 "$built/libimstls.a" "$destdir$libdir/libimstls.a"
install -m 755 "$built/libimstls.so" "$destdir$libdir/libimstls.so.$version"
ln -sf "libimstls.so.$version" "$destdir$libdir/libimstls.so.$major"
ln -sf "libimstls.so.$major" "$destdir$libdir/libimstls.so"

# Libs.private: what a static link of the Rust staticlib needs (rustc --print native-static-libs).
cat > "$destdir$libdir/pkgconfig/imstls.pc" <<PC
prefix=$prefix
libdir=$libdir
includedir=$includedir

Name: imstls
Description: UE-side IMS access security (3GPP TS 33.203 Annex O) over rustls
Version: $version
Libs: -L\${libdir} -limstls
Libs.private: -lpthread -ldl -lm -lrt -lutil -lgcc_s
Cflags: -I\${includedir}/imstls
PC

echo "installed imstls $version into $destdir$prefix"
