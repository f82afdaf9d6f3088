//! B5: the cost of crossing the C ABI. Two no-op-ish queries on a UE handle —
//! `imstls_ue_state` and `imstls_ue_next_timeout` — called from C in a tight loop
//! (`benches/ffi_loop.c`, linked statically against `libimstls.a` and dynamically against
//! `libimstls.so`), against the same Rust calls (`Ue::state`, `Ue::next_timeout`) in the same
//! kind of loop. What the C path adds: the panic boundary (`catch_unwind`), NULL checks, the
//! handle's `try_lock` and poison flag, and the instant ↔ milliseconds conversion.
//!
//! The Rust loop and the two C programs take turns round by round (each C program is a fresh
//! process; only its loop is timed). `unsafe` is only allowed in `src/ffi/` and `src/os.rs`
//! (denied elsewhere, benches included, by Cargo.toml's `[lints]`), so the C calls are made
//! from C, not from Rust.
//!
//! Knobs: `IMSTLS_BENCH_FFI_CALLS` (per loop, default 2,000,000), `IMSTLS_BENCH_FFI_ROUNDS`
//! (default 15). Needs a C compiler (`cc`). Run: `cargo bench --bench ffi`.

mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imstls::{Identity, Ue, UeConfig};
use support::{env_usize, ratio, Summary, Table};

type Error = Box<dyn std::error::Error>;

/// ns per call of `Ue::state` and `Ue::next_timeout`.
fn rust_loop(ue: &Ue, calls: usize) -> (f64, f64) {
    let t0 = Instant::now();
    let mut sink = 0u64;
    for _ in 0..calls {
        sink += black_box(black_box(ue).state()) as u64;
    }
    let t1 = Instant::now();
    for _ in 0..calls {
        if black_box(black_box(ue).next_timeout()).is_some() {
            sink += 1;
        }
    }
    let t2 = Instant::now();
    black_box(sink);
    let per = |d: Duration| d.as_secs_f64() * 1e9 / calls as f64;
    (per(t1 - t0), per(t2 - t1))
}

/// Runs a C loop program; ns per call of the two functions.
fn c_loop(program: &Path, calls: usize) -> Result<(f64, f64), Error> {
    let output = Command::new(program).arg(calls.to_string()).output()?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8(output.stdout)?;
    let field = |name: &str| -> Result<f64, Error> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .ok_or_else(|| format!("no {name} in {text:?}"))?
            .parse::<f64>()
            .map_err(Into::into)
    };
    Ok((field("state_ns=")?, field("next_timeout_ns=")?))
}

/// The SONAME of a shared library, read with `readelf`.
fn soname(library: &Path) -> Option<String> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(library)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.lines().find(|l| l.contains("(SONAME)"))?;
    Some(line.split('[').nth(1)?.trim_end_matches(']').to_owned())
}

/// Compiles `benches/ffi_loop.c` against the library next to this bench binary.
fn build_c_programs() -> Result<(PathBuf, PathBuf), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/deps/ffi-<hash> → target/<profile>
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?
        .to_path_buf();
    // `cargo bench` leaves the C libraries in deps/ only; `cargo build` also copies them up.
    let deps = profile.join("deps");
    let dir = if deps.join("libimstls.so").exists() {
        deps
    } else {
        profile
    };
    let source = root.join("benches/ffi_loop.c");
    let include = root.join("include");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let common = |out: &Path| {
        let mut cmd = Command::new(&cc);
        cmd.args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(&include)
            .arg(&source)
            .arg("-o")
            .arg(out);
        cmd
    };
    let static_exe = dir.join("ffi_loop_static");
    let status = common(&static_exe)
        .arg(dir.join("libimstls.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-lc"])
        .status()?;
    if !status.success() {
        return Err("compiling ffi_loop.c against libimstls.a failed".into());
    }
    // The shared library's soname is versioned (libimstls.so.<major>): give the loader a
    // directory holding that name.
    let soname = soname(&dir.join("libimstls.so")).unwrap_or_else(|| "libimstls.so".into());
    let lib_dir = dir.join("ffi-bench-lib");
    std::fs::create_dir_all(&lib_dir)?;
    let link = lib_dir.join(&soname);
    let _ = std::fs::remove_file(&link);
    std::fs::copy(dir.join("libimstls.so"), &link)?;
    let dynamic_exe = dir.join("ffi_loop_dynamic");
    let status = common(&dynamic_exe)
        .arg(&link)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status()?;
    if !status.success() {
        return Err("compiling ffi_loop.c against libimstls.so failed".into());
    }
    Ok((static_exe, dynamic_exe))
}

fn main() -> Result<(), Error> {
    let calls = env_usize("IMSTLS_BENCH_FFI_CALLS", 2_000_000);
    let rounds = env_usize("IMSTLS_BENCH_FFI_ROUNDS", 15);
    let (static_exe, dynamic_exe) = build_c_programs()?;

    // The same UE as the C program's: one P-CSCF, registration started (Connecting).
    let config = UeConfig::builder().pcscf("192.0.2.1:5061").build()?;
    let mut ue = Ue::new(config, Instant::now())?;
    ue.start_registration(
        Instant::now(),
        Identity::new("alice@ims.test", &["sip:alice@ims.test"])?,
    )?;
    rust_loop(&ue, calls / 10); // warm-up

    // Per round: [rust, c static, c dynamic] × [state, next_timeout] in ns per call.
    let mut samples: Vec<[(f64, f64); 3]> = Vec::new();
    for round in 0..rounds {
        let (rust, c_static, c_dynamic) = if round % 2 == 0 {
            let r = rust_loop(&ue, calls);
            (r, c_loop(&static_exe, calls)?, c_loop(&dynamic_exe, calls)?)
        } else {
            let d = c_loop(&dynamic_exe, calls)?;
            let s = c_loop(&static_exe, calls)?;
            (rust_loop(&ue, calls), s, d)
        };
        samples.push([rust, c_static, c_dynamic]);
    }

    println!("## B5 — FFI overhead (C ABI vs the Rust call)\n");
    println!(
        "ns per call, {calls} calls per loop, {rounds} rounds with the Rust loop and the two \
         C programs taking turns; median (min–max) over rounds. The UE is in Connecting \
         (registration started), so `next_timeout` has a deadline to convert. C: `gcc -O2`, \
         static = `libimstls.a`, dynamic = `libimstls.so` (PLT call).\n"
    );
    let mut table = Table::new(&[
        "call",
        "Rust `Ue` method",
        "C ABI, static",
        "C ABI, dynamic",
        "C static − Rust",
        "C static / Rust",
    ]);
    for (call, pick) in [
        (
            "state (`imstls_ue_state` / `Ue::state`)",
            (|s: (f64, f64)| s.0) as fn((f64, f64)) -> f64,
        ),
        (
            "next timeout (`imstls_ue_next_timeout` / `Ue::next_timeout`)",
            |s: (f64, f64)| s.1,
        ),
    ] {
        let column =
            |i: usize| Summary::of(&samples.iter().map(|r| pick(r[i])).collect::<Vec<_>>());
        let (rust, c_static, c_dynamic) = (column(0), column(1), column(2));
        let cell = |s: Summary| format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max);
        table.row(&[
            call.to_owned(),
            cell(rust),
            cell(c_static),
            cell(c_dynamic),
            format!("{:.1} ns", c_static.median - rust.median),
            ratio(c_static.median / rust.median),
        ]);
        eprintln!(
            "[bench] RESULT B5|{call}|rust_ns={:.2}|c_static_ns={:.2}|c_dynamic_ns={:.2}",
            rust.median, c_static.median, c_dynamic.median
        );
    }
    println!("{}", table.render());
    Ok(())
}
