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
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
