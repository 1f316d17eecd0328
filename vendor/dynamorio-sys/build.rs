use std::fs::File;
use std::io::prelude::*;
use std::path::{Path, PathBuf};

use ::regex::*;

pub const BUILD_DIR: &str = "DRIO_BUILD_DIR";

// ProcessTap: the platform, architecture and library folder are the TARGET's,
// read from the CARGO_CFG_TARGET_* variables cargo gives build scripts. The
// published crate used `#[cfg(target_os/target_arch)]` here, which in a build
// script is the HOST's: a `--target i686-unknown-linux-gnu` build on x86-64
// then generated bindings with -DX86_64 (dr_mcontext_t 2208 bytes instead of
// C's 648) and linked lib64.
fn target_os() -> String {
    std::env::var("CARGO_CFG_TARGET_OS").unwrap()
}

fn platform() -> &'static str {
    match target_os().as_str() {
        "windows" => "WINDOWS",
        "linux" => "LINUX",
        os => panic!("dynamorio-sys: unsupported target OS {}", os),
    }
}

fn build_target() -> &'static str {
    if target_os() == "windows" { "ALL_BUILD" } else { "all" }
}

fn architecture() -> &'static str {
    match std::env::var("CARGO_CFG_TARGET_ARCH").unwrap().as_str() {
        "x86" => "X86_32",
        "x86_64" => "X86_64",
        "arm" => "ARM_32",
        "aarch64" => "ARM_64",
        arch => panic!("dynamorio-sys: unsupported target architecture {}", arch),
    }
}

fn lib_path() -> &'static str {
    match architecture() {
        "X86_32" | "ARM_32" => "lib32",
        _ => "lib64",
    }
}

/// The DynamoRIO sources. This copy of the crate does not carry them (50 MB):
/// they are the ones the published crate of the same version vendors, taken
/// from cargo's registry: unpacked (registry/src), or unpacked here from the
/// downloaded .crate (registry/cache). `upstream/Cargo.toml` beside this file
/// names that crate, so `cargo fetch --manifest-path` on it downloads it.
/// A `dynamorio/` folder next to this file wins over both.
fn dynamorio_sources() -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let here = manifest_dir.join("dynamorio");
    if here.join("CMakeLists.txt").is_file() {
        return here;
    }
    let crate_name = format!("dynamorio-sys-{}", env!("CARGO_PKG_VERSION"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("dynamorio-sys: neither CARGO_HOME nor HOME is set");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    let registries = |kind: &str| -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry").join(kind))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs
    };
    for reg in registries("src") {
        let dir = reg.join(&crate_name).join("dynamorio");
        if dir.join("CMakeLists.txt").is_file() {
            return dir;
        }
    }
    for reg in registries("cache") {
        let archive = reg.join(format!("{crate_name}.crate"));
        if archive.is_file() {
            let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
            let dir = out_dir.join(&crate_name).join("dynamorio");
            if !dir.join("CMakeLists.txt").is_file() {
                let status = std::process::Command::new("tar")
                    .arg("-xzf")
                    .arg(&archive)
                    .arg("-C")
                    .arg(&out_dir)
                    .arg(format!("{crate_name}/dynamorio"))
                    .status()
                    .expect("dynamorio-sys: cannot run tar");
                assert!(status.success(), "dynamorio-sys: cannot unpack {}", archive.display());
            }
            return dir;
        }
    }
    panic!(
        "dynamorio-sys: the DynamoRIO sources of {crate_name} are not in {}/registry; \
         fetch them with `cargo fetch --manifest-path {}`",
        cargo_home.display(),
        manifest_dir.join("upstream").join("Cargo.toml").display()
    );
}

fn version_ok(generated_rs: &Path) -> bool {
    let mut fin = match File::open(generated_rs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Failed to open generated bindings : {}", e);
            return false;
        }
    };

    let mut contents = String::new();

    if let Err(e) = fin.read_to_string(&mut contents) {
        eprintln!("Failed to read generated bindings : {}", e);
        return false;
    }

    let re = Regex::new(r"_USES_DR_VERSION_.+=\s*(\d+);").unwrap();

    for cap in re.captures_iter(&contents) {
        let version: usize = match cap[1].parse() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("Failed to parse version '{}' : {}", &cap[1], e);
                return false;
            }
        };

        let major = version / 100;
        let minor = version % 100;

        if major.to_string() != env!("CARGO_PKG_VERSION_MAJOR") {
            panic!("Major version ({}) of {} does not match the current dynamorio-sys crate version ({})...", major, BUILD_DIR, env!("CARGO_PKG_VERSION_MAJOR"));
        }

        if minor.to_string() != env!("CARGO_PKG_VERSION_MINOR") {
            panic!("Minor version ({}) of {} does not match the current dynamorio-sys crate version ({})...", minor, BUILD_DIR, env!("CARGO_PKG_VERSION_MINOR"));
        }
    }

    true
}

fn main() {
    let build_dir = match std::env::var(BUILD_DIR) {
        Ok(build_dir) => {
            println!("cargo:rerun-if-changed={}", build_dir);
            PathBuf::from(build_dir)
        }
        _ => {
            let sources = dynamorio_sources();
            println!("cargo:rerun-if-changed={}", sources.display());

            let mut config = cmake::Config::new(&sources);
            if target_os() == "windows" {
                config.define("BUILD_DRSTATS", "NO");
            } else {
                config
                    .define("CMAKE_ASM_COMPILER", "/usr/bin/as")
                    .define("CMAKE_ASM_FLAGS", "");
            }
            // ProcessTap: a 32-bit x86 build on an x86-64 Linux host is a
            // multilib build (cc -m32, which cmake-rs passes in the C flags),
            // not a cross build. Told the host is the target, cmake-rs does
            // not set CMAKE_SYSTEM_NAME/PROCESSOR, which made Debian 12's
            // cmake 3.25 crash configuring DynamoRIO.
            let host = std::env::var("HOST").unwrap();
            let target = std::env::var("TARGET").unwrap();
            if host.starts_with("x86_64-") && host.ends_with("-linux-gnu") && architecture() == "X86_32" && target_os() == "linux" {
                config.host(&target);
            }
            let mut path = config
                .define("BUILD_CLIENTS", "NO")
                .define("BUILD_DOCS", "NO")
                .define("BUILD_SAMPLES", "NO")
                .define("BUILD_TESTS", "NO")
                .define("BUILD_TOOLS", "NO")
                .build_target(build_target())
                .profile("RelWithDebInfo")
                .build();

            path.push("build");
            path
        }
    };

    let mut extra_args = vec![];
    let mut libs = vec!["dynamorio"];

    extra_args.push(format!("-D{}", platform()));
    extra_args.push(format!("-D{}", architecture()));

    #[cfg(windows)]
    {
        let kits = windows_kits::WindowsKits::new().unwrap();
        let include_path = kits
            .get_version_dir(windows_kits::DirectoryType::Headers)
            .unwrap();

        for name in &["shared", "ucrt", "um"] {
            extra_args.push(format!("-I{}", include_path.join(name).to_string_lossy()));
        }
    }

    extra_args.push(format!("-I{}", build_dir.join("include").to_string_lossy()));
    extra_args.push(format!(
        "-I{}",
        build_dir.join("ext/include").to_string_lossy()
    ));

    // Core DynamoRIO lib
    println!(
        "cargo:rustc-link-search={}",
        build_dir.join(lib_path()).join("release").to_string_lossy()
    );

    // Extensions
    println!(
        "cargo:rustc-link-search={}",
        build_dir
            .join("ext")
            .join(lib_path())
            .join("release")
            .to_string_lossy()
    );

    // Include selected extensions
    if cfg!(feature = "bbdup") {
        extra_args.push("-D __FEATURE_BBDUP".to_string());
        libs.push("drbbdup");
    }

    if cfg!(feature = "containers") {
        extra_args.push("-D __FEATURE_CONTAINERS".to_string());
        libs.push("drcontainers");
    }

    if cfg!(feature = "covlib") {
        extra_args.push("-D __FEATURE_COVLIB".to_string());
        libs.push("drcovlib");
    }

    if cfg!(feature = "mgr") {
        extra_args.push("-D __FEATURE_MGR".to_string());
        libs.push("drmgr");
    }

    if cfg!(feature = "option") {
        extra_args.push("-D __FEATURE_OPTION".to_string());
    }

    if cfg!(feature = "reg") {
        extra_args.push("-D __FEATURE_REG".to_string());
        libs.push("drreg");
    }

    if cfg!(feature = "syms") {
        extra_args.push("-D __FEATURE_SYMS".to_string());
        libs.push("drsyms");
    }

    if cfg!(feature = "util") {
        extra_args.push("-D __FEATURE_UTIL".to_string());
        libs.push("drutil");
    }

    if cfg!(feature = "wrap") {
        extra_args.push("-D __FEATURE_WRAP".to_string());
        libs.push("drwrap");
    }

    if cfg!(feature = "x") {
        extra_args.push("-D __FEATURE_X".to_string());
        libs.push("drx");
    }

    for lib in libs {
        println!("cargo:rustc-link-lib={}", lib);
    }

    // ProcessTap: `links = "dynamorio"` (Cargo.toml) hands this to the build
    // scripts of the crates that depend on this one, as
    // DEP_DYNAMORIO_BUILD_DIR, and runs them after this one.
    println!("cargo:build_dir={}", build_dir.display());

    // Tell cargo to invalidate the built crate whenever the wrapper changes
    println!("cargo:rerun-if-changed=src/wrapper.h");

    println!("{:?}", extra_args);

    // The bindgen::Builder is the main entry point
    // to bindgen, and lets you build up options for
    // the resulting bindings.
    let bindings = bindgen::Builder::default()
        // The input header we would like to generate
        // bindings for.
        .header("src/wrapper.h")
        //.header_contents("_extra.h", extra_defines)
        // Tell cargo to invalidate the built crate whenever any of the
        // included header files changed.
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .size_t_is_usize(true)
        .allowlist_function("__wrap_.*")
        .allowlist_function("_?[dD][rR].*")
        .allowlist_type("_?[dD][rR].*")
        .allowlist_var("_?[dD][rR].*")
        .allowlist_function("instr_.*")
        .allowlist_function("instrlist_.*")
        .allowlist_function("opnd_.*")
        .allowlist_var("INVALID_FILE")
        .allowlist_var("OP_.*")
        .allowlist_var("OPSZ_.*")
        .allowlist_var("SPILL_SLOT_.*")
        .allowlist_var("_USES_DR_VERSION_")
        .bitfield_enum("dr_emit_flags_t")
        .bitfield_enum("dr_exit_flags_t")
        .rustified_enum("dr_spill_slot_t")
        .bitfield_enum("dr_mcontext_flags_t")
        .rustified_enum("drsym_error_t")
        .bitfield_enum("drsym_flags_t")
        .clang_args(extra_args)
        // Finish the builder and generate the bindings.
        .generate()
        // Unwrap the Result and panic on failure.
        .expect("Unable to generate bindings");

    let out_path = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let out_file = out_path.join("bindings.rs");

    // Write the bindings to the $OUT_DIR/bindings.rs file.
    bindings
        .write_to_file(&out_file)
        .expect("Couldn't write bindings!");

    if !version_ok(&out_file) {
        std::fs::remove_file(&out_file).unwrap();
    }

    println!("cargo:rerun-if-changed=src/wrapper.c");

    cc::Build::new()
        .define(platform(), None)
        .define(architecture(), None)
        .include(build_dir.join("include"))
        .include(build_dir.join("ext/include"))
        .file("src/wrapper.c")
        .compile("wrapper");
}
