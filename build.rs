//! With the cargo feature `capi` (the C API): generates `include/imstls.h` from `src/ffi` with
//! cbindgen (into `OUT_DIR`; copied over the committed header only when
//! `IMSTLS_REGENERATE_HEADER=1`) and adds version macros from Cargo.toml. Always: gives the
//! shared library a versioned soname (`libimstls.so.<major>`, cargo-c's convention).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libimstls.so.{major}");
    }

    #[cfg(feature = "capi")]
    header::generate();
}

#[cfg(feature = "capi")]
mod header {
    use std::env;
    use std::path::PathBuf;

    pub fn generate() {
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-changed=src/ffi");
        println!("cargo:rerun-if-env-changed=IMSTLS_REGENERATE_HEADER");

        let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
        let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
        let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
            .expect("cbindgen.toml is readable and valid");
        config.after_includes = Some(version_macros());
        let bindings = cbindgen::Builder::new()
            .with_config(config)
            .with_src(crate_dir.join("src/ffi/mod.rs"))
            .generate()
            .expect("cbindgen can parse src/ffi");
        let generated = out_dir.join("imstls.h");
        bindings.write_to_file(&generated);

        if env::var("IMSTLS_REGENERATE_HEADER").as_deref() == Ok("1") {
            let committed = crate_dir.join("include/imstls.h");
            std::fs::create_dir_all(crate_dir.join("include")).expect("include/ can be created");
            std::fs::copy(&generated, &committed).expect("include/imstls.h can be written");
            println!("cargo:warning=regenerated {}", committed.display());
        }
    }

    fn version_macros() -> String {
        let var = |name: &str| env::var(name).expect("cargo sets the version");
        format!(
            "\n/* The version of the header, from Cargo.toml; compare with imstls_version() at run\n \
             * time to detect a header/library mismatch. */\n\
             #define IMSTLS_VERSION_MAJOR {}\n\
             #define IMSTLS_VERSION_MINOR {}\n\
             #define IMSTLS_VERSION_PATCH {}\n\
             #define IMSTLS_VERSION_STRING \"{}\"\n",
            var("CARGO_PKG_VERSION_MAJOR"),
            var("CARGO_PKG_VERSION_MINOR"),
            var("CARGO_PKG_VERSION_PATCH"),
            var("CARGO_PKG_VERSION"),
        )
    }
}
