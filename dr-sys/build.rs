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

    check_binding_sizes(&dr_build, &out_dir);

    publish_stable_link(&dr_build, &profile_dir.join("dynamorio"));
    println!("cargo:rustc-env=PTAP_DYNAMORIO_BUILD={}", dr_build.display());
    println!("cargo:rerun-if-changed=build.rs");
}

/// Types whose Rust binding must have C's size and alignment. dynamorio-sys's
/// bindgen run and DynamoRIO's headers must agree on the architecture (X86_32
/// or X86_64): if they do not, the client still links and loads, with every
/// field past the first register of `dr_mcontext_t` misplaced.
const SIZED_TYPES: &[&str] = &[
    "reg_t",
    "ptr_uint_t",
    "dr_mcontext_t",
    "opnd_t",
    "instr_t",
    "module_data_t",
    "dr_mem_info_t",
    "dr_siginfo_t",
    "drmgr_priority_t",
    "drreg_options_t",
    "drwrap_callconv_t",
];

/// Asks the target's C compiler (cc -m32 for i686) for `sizeof` and
/// `_Alignof` of [`SIZED_TYPES`], by compiling a table of them to assembly
/// (nothing is run, so this works for any target), and writes
/// `binding_sizes.rs`: compile-time asserts, included by lib.rs, that the
/// bindings agree.
fn check_binding_sizes(dr_build: &Path, out_dir: &Path) {
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").unwrap().as_str() {
        "x86" => "X86_32",
        "x86_64" => "X86_64",
        "arm" => "ARM_32",
        "aarch64" => "ARM_64",
        other => panic!("unsupported target architecture {other}"),
    };
    let mut c = String::from(
        "#include <dr_api.h>\n#include <drmgr.h>\n#include <drreg.h>\n#include <drwrap.h>\n\
         const unsigned int ptap_binding_sizes[] = {\n",
    );
    for ty in SIZED_TYPES {
        c.push_str(&format!("    sizeof({ty}), _Alignof({ty}),\n"));
    }
    c.push_str("};\n");
    let c_file = out_dir.join("binding_sizes.c");
    let s_file = out_dir.join("binding_sizes.s");
    fs::write(&c_file, c).unwrap();

    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .define("LINUX", None)
        .define(arch, None)
        .include(dr_build.join("include"))
        .include(dr_build.join("ext").join("include"))
        .get_compiler();
    let output = compiler
        .to_command()
        .arg("-S")
        .arg("-o")
        .arg(&s_file)
        .arg(&c_file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler: {e}"));
    if !output.status.success() {
        panic!(
            "the C compiler failed on {}:\n{}",
            c_file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The values follow the table's label as `.long N` (gcc) or `.4byte N`.
    let asm = fs::read_to_string(&s_file).unwrap();
    let mut values = Vec::new();
    let mut in_table = false;
    for line in asm.lines() {
        let line = line.trim();
        if line == "ptap_binding_sizes:" {
            in_table = true;
        } else if in_table {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(".long" | ".4byte" | ".int"), Some(n)) => values.push(n.parse::<usize>().unwrap()),
                _ => break,
            }
        }
    }
    assert_eq!(
        values.len(),
        2 * SIZED_TYPES.len(),
        "cannot read the size table from {}",
        s_file.display()
    );

    let mut rs = String::from("// Generated by dr-sys/build.rs from the target C compiler's sizeof/_Alignof.\n");
    for (ty, pair) in SIZED_TYPES.iter().zip(values.chunks(2)) {
        let (size, align) = (pair[0], pair[1]);
        rs.push_str(&format!(
            "const _: () = assert!(::core::mem::size_of::<crate::ffi::{ty}>() == {size}, \
             \"the Rust binding of {ty} is not C's size ({size} bytes for {arch})\");\n\
             const _: () = assert!(::core::mem::align_of::<crate::ffi::{ty}>() == {align}, \
             \"the Rust binding of {ty} is not C's alignment ({align} for {arch})\");\n"
        ));
    }
    fs::write(out_dir.join("binding_sizes.rs"), rs).unwrap();
}

/// Points `link` at `target`, replacing an older link.
fn publish_stable_link(target: &Path, link: &Path) {
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
}
