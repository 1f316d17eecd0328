//! C headers a script includes are preprocessed before the target starts:
//! a C preprocessor is another process, which must never be started from
//! inside the target. `python3 -m ptap.prepare` finds the script's
//! `include("...")` calls, preprocesses and parses each header not yet in
//! the cache, and writes it there; `include()` in the target reads it.

use crate::locate::Arch;
use ptap_options::inherited::ScriptImage;
use ptap_options::layout::{find_ptap_lib, PYTHON};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Prepares the headers the script includes, if it includes any, for
/// `arch`'s data model (the target's, not this machine's Python's). A
/// failure is not fatal here: `include()` in the target then says what is
/// missing, with the script's line.
pub fn prepare(script: &ScriptImage, client: &Path, arch: Arch) {
    let mentions_include = |text: &[u8]| text.windows(b"include".len()).any(|w| w == b"include");
    if !mentions_include(&script.source) && !script.programs.iter().any(|p| mentions_include(p.as_bytes())) {
        return;
    }
    let Some(mut command) = ptap_python(client, "ptap.prepare") else { return };
    command.arg("--data-model").arg(data_model(arch));
    for dir in &script.include_dirs {
        command.arg("-I").arg(dir);
    }
    for program in &script.programs {
        command.arg("--program").arg(program);
    }
    // The source as read once (the script may have been a pipe).
    if !script.path.is_empty() {
        command.arg("/dev/stdin");
    }
    command.stdin(Stdio::piped());
    let run = command.spawn().and_then(|mut child| {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&script.source)?;
        }
        child.wait()
    });
    match run {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("processtap: preparing the included headers failed ({status})"),
        Err(e) => eprintln!("processtap: cannot run {PYTHON} to prepare the included headers: {e}"),
    }
}

/// `python3 -m MODULE` with the `ptap` package beside `client` first on
/// its path; None if the package is not there.
pub fn ptap_python(client: &Path, module: &str) -> Option<Command> {
    let ptap_lib = find_ptap_lib(client)?;
    let mut command = Command::new(PYTHON);
    command.args(["-m", module]);
    let python_path = match std::env::var_os("PYTHONPATH") {
        Some(old) if !old.is_empty() => {
            let mut joined = ptap_lib.into_os_string();
            joined.push(":");
            joined.push(old);
            joined
        }
        _ => ptap_lib.into_os_string(),
    };
    command.env("PYTHONPATH", python_path);
    Some(command)
}

/// How `ptap.cdecl` names `arch`'s data model.
pub fn data_model(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "LP64",
        Arch::I686 => "ILP32",
    }
}
