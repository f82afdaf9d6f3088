//! Makes the C ABI rules impossible to forget one function at a time: every `extern "C"`
//! function in `src/ffi` must start its body with `guard(` (the panic boundary), every
//! export must be in `src/ffi`, `unsafe` appears only in `src/ffi` and `src/os.rs`, and every
//! `unsafe fn` there has a `# Safety` section. Each scanner is also run on a deliberately bad
//! snippet, so the test is seen to fail. (The `// SAFETY:` comment on every unsafe block is
//! `clippy::undocumented_unsafe_blocks`, denied in Cargo.toml's `[lints]`; the compiler refuses
//! `unsafe` in the core modules: each opens with `#![forbid(unsafe_code)]`.)

use std::path::Path;

#[path = "support/rust_source.rs"]
mod rust_source;
use rust_source::{blank, rust_files};

/// `extern "C" fn` definitions whose body does not start with `guard(`, as
/// `file:line: name`, and how many definitions were checked.
fn unguarded_exports(file: &str, source: &str) -> (Vec<String>, usize) {
    let code = blank(source);
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut search = 0;
    while let Some(found) = code[search..].find("extern \"C\" fn ") {
        let at = search + found;
        search = at + 1;
        let after = &code[at + "extern \"C\" fn ".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // a function pointer type, not a definition
        }
        let line = code[..at].lines().count();
        // Skip the parameter list (balanced parentheses), then find the body or a `;`.
        let Some(open) = after.find('(') else {
            continue;
        };
        let mut depth = 0;
        let mut end = open;
        for (k, c) in after[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let tail = &after[end..];
        let Some(brace) = tail.find(['{', ';']) else {
            continue;
        };
        if tail.as_bytes()[brace] == b';' {
            continue; // a declaration inside `extern "C" { ... }`
        }
        checked += 1;
        let body = tail[brace + 1..].trim_start();
        if !body.starts_with("guard(") {
            problems.push(format!("{file}:{line}: {name} does not start with guard("));
        }
        let attributes = &source[..at];
        let window: String = attributes
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        if !window.contains("#[no_mangle]") && !window.contains("#[unsafe(no_mangle)]") {
            problems.push(format!(
                "{file}:{line}: {name} is extern \"C\" but not #[no_mangle]"
            ));
        }
    }
    (problems, checked)
}

/// `unsafe fn`s without a `# Safety` doc section (clippy's `missing_safety_doc` sees only
/// public ones).
fn undocumented_unsafe_fns(file: &str, source: &str) -> Vec<String> {
    let code = blank(source);
    let source_lines: Vec<&str> = source.lines().collect();
    let mut problems = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let before = source_lines[index.saturating_sub(20)..index].join("\n");
        if line.contains("unsafe fn ")
            && !line.contains("extern \"C\" fn")
            && !before.contains("# Safety")
        {
            problems.push(format!(
                "{file}:{}: unsafe fn without a # Safety section",
                index + 1
            ));
        }
    }
    problems
}

#[test]
fn every_export_goes_through_the_panic_boundary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut problems = Vec::new();
    let (mut exports, mut checked) = (0, 0);
    for path in rust_files(&dir) {
        let source = std::fs::read_to_string(&path).expect("readable");
        exports += blank(&source).matches("no_mangle").count();
        let (found, count) = unguarded_exports(&path.display().to_string(), &source);
        problems.extend(found);
        checked += count;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        exports > 100,
        "only {exports} exports found: is the scanner still looking?"
    );
    assert_eq!(checked, exports, "every #[no_mangle] function was checked");
}

#[test]
fn exports_live_only_in_src_ffi_and_unsafe_only_there_and_in_src_os() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let ffi = src.join("ffi");
    let os = src.join("os.rs");
    let mut problems = Vec::new();
    for path in rust_files(&src) {
        let source = std::fs::read_to_string(&path).expect("readable");
        let code = blank(&source);
        let name = path.display().to_string();
        if path.starts_with(&ffi) || path == os {
            problems.extend(undocumented_unsafe_fns(&name, &source));
        }
        if path.starts_with(&ffi) {
            continue;
        }
        for (index, line) in code.lines().enumerate() {
            // src/os.rs may define a private `extern "C" fn` to hand to the OS (a thread's
            // start routine): without #[no_mangle] and `pub` it exports nothing.
            let os_callback = path == os && !line.contains("pub");
            if line.contains("no_mangle") || (line.contains("extern \"C\"") && !os_callback) {
                problems.push(format!("{name}:{}: C export outside src/ffi", index + 1));
            }
            if path != os
                && line
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == "unsafe")
            {
                problems.push(format!(
                    "{name}:{}: unsafe outside src/ffi and src/os.rs",
                    index + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every core layer (a folder under src/ other than ffi) opens with `#![forbid(unsafe_code)]`,
/// so the compiler, not this test, refuses `unsafe` inside it; this only keeps the attribute
/// from being dropped.
#[test]
fn every_core_layer_forbids_unsafe_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut layers = Vec::new();
    for entry in std::fs::read_dir(&src).expect("readable src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "ffi") {
            let source = std::fs::read_to_string(path.join("mod.rs")).expect("a mod.rs");
            let forbids = blank(&source)
                .lines()
                .any(|l| l.trim() == "#![forbid(unsafe_code)]");
            assert!(forbids, "{} lacks #![forbid(unsafe_code)]", path.display());
            layers.push(path);
        }
    }
    assert_eq!(
        layers.len(),
        5,
        "sip, config, tls, engine, driver: {layers:?}"
    );
}

#[test]
fn the_scanners_catch_a_forgotten_boundary_and_an_undocumented_unsafe_fn() {
    let bad = r#"
/// Docs.
#[no_mangle]
pub extern "C" fn imstls_forgot(ue: *const imstls_ue) -> imstls_result {
    let _ = ue; // guard( is only mentioned in a comment
    imstls_result::IMSTLS_OK
}

#[no_mangle]
pub extern "C" fn imstls_fine(x: u32) -> u32 {
    guard(|| x)
}

pub extern "C" fn imstls_hidden() {
    guard(|| ())
}

unsafe fn f(p: *const u8) -> u8 {
    // SAFETY: documented here, but the function has no section for its callers.
    unsafe { *p }
}

/// # Safety
///
/// `p` is valid for reads.
unsafe fn g(p: *const u8) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { *p }
}
"#;
    let (unguarded, checked) = unguarded_exports("bad.rs", bad);
    assert_eq!(checked, 3);
    assert_eq!(unguarded.len(), 2, "{unguarded:?}");
    assert!(unguarded[0].contains("imstls_forgot does not start with guard("));
    assert!(unguarded[1].contains("imstls_hidden is extern \"C\" but not #[no_mangle]"));
    let unsafe_problems = undocumented_unsafe_fns("bad.rs", bad);
    assert_eq!(unsafe_problems.len(), 1, "{unsafe_problems:?}");
    assert!(
        unsafe_problems[0].starts_with("bad.rs:18:"),
        "{unsafe_problems:?}"
    );
}
