//! Records, for the runtime, where the Python it links against lives.

use std::process::Command;

fn main() {
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "/usr/bin/python3.11".into());
    let out = Command::new(&python)
        .args(["-c", "import sys; print(sys.base_prefix)"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let home = String::from_utf8(out.stdout).unwrap();
    println!("cargo:rustc-env=PTAP_PYTHON_HOME={}", home.trim());
    compile_deferred_site(&python);
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Compiles src/deferred_site.py once, here, into the bytecode magic number
/// and the marshalled code object (OUT_DIR/deferred_site.marshal): the
/// first compile in a process costs ~2.5 ms inside the target (the
/// compiler's own start-up), which every traced process paid. The runtime
/// compiles the source instead if its Python's magic number is another.
fn compile_deferred_site(python: &str) {
    let source = "src/deferred_site.py";
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("deferred_site.marshal");
    let status = Command::new(python)
        .args([
            "-I",
            "-c",
            "import importlib.util, marshal, sys\n\
             code = compile(open(sys.argv[1], encoding='utf-8').read(), '<ptap deferred_site.py>', 'exec', dont_inherit=True)\n\
             open(sys.argv[2], 'wb').write(importlib.util.MAGIC_NUMBER + marshal.dumps(code))",
            source,
        ])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(status.success(), "{python} could not compile {source}");
    println!("cargo:rerun-if-changed={source}");
}
