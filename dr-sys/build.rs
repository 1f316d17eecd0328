//! Finds the DynamoRIO that `dynamorio-sys` built, links the DynamoRIO
//! extensions statically, and publishes the build at a stable path.
//!
//! `dynamorio-sys` builds DynamoRIO 11.90 with cmake inside its own hashed
//! `OUT_DIR` (or uses the build `DRIO_BUILD_DIR` names), tells us which
//! (`DEP_DYNAMORIO_BUILD_DIR`), and asks for the extensions (drmgr, ...) by
//! plain name, which the linker would satisfy with their shared variants. ProcessTap's
//! `libptap.so` must need nothing at run time but `libdynamorio.so` and
//! libpython, so we copy each extension's `lib<ext>_static.a` into our own
//! `OUT_DIR` under the plain name `lib<ext>.a`; our search path comes first,
//! so `-l<ext>` resolves to the archive.
//!
//! The build directory is then linked as `target/<profile>/dynamorio`, next
//! to the `processtap` launcher, which looks for `libdynamorio.so` there.

use std::path::{Path, PathBuf};
use std::{env, fs};

/// Extensions `dr-sys` enables in `dynamorio-sys`; keep in step with Cargo.toml.
const STATIC_EXTENSIONS: &[&str] = &["drmgr", "drwrap", "drreg", "drutil", "drx"];

fn main() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // OUT_DIR is target/<profile>/build/dr-sys-<hash>/out.
    let profile_dir = out_dir.ancestors().nth(3).unwrap().to_path_buf();
    let dr_build = PathBuf::from(env::var("DEP_DYNAMORIO_BUILD_DIR").expect(
        "DEP_DYNAMORIO_BUILD_DIR is not set: dynamorio-sys must be ProcessTap's copy \
         (vendor/dynamorio-sys, [patch.crates-io] in Cargo.toml), which has links = \"dynamorio\"",
    ));

    let lib_arch = if env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap() == "64" {
        "lib64"
    } else {
        "lib32"
    };
    let ext_dir = dr_build.join("ext").join(lib_arch).join("release");
    let static_dir = out_dir.join("static-extensions");
    fs::create_dir_all(&static_dir).unwrap();
    for ext in STATIC_EXTENSIONS {
        let from = ext_dir.join(format!("lib{ext}_static.a"));
        let to = static_dir.join(format!("lib{ext}.a"));
        fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
    }
    println!("cargo:rustc-link-search=native={}", static_dir.display());
    // drmgr keeps its tables in drcontainers' hashtable, which only comes
    // as an archive.
    println!("cargo:rustc-link-search=native={}", ext_dir.display());
    println!("cargo:rustc-link-lib=static=drcontainers");

    publish_stable_link(&dr_build, &profile_dir.join("dynamorio"));
    println!("cargo:rustc-env=PTAP_DYNAMORIO_BUILD={}", dr_build.display());
    println!("cargo:rerun-if-changed=build.rs");
}

/// Points `link` at `target`, replacing an older link.
fn publish_stable_link(target: &Path, link: &Path) {
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
}
