//! `processtap -l [PATTERN] [-- COMMAND]`: the probe points of a command,
//! listed without running it. `python3 -m ptap.listing` reads the
//! command's ELF files and those of the libraries it would load, and the
//! system-call table of its architecture (and, with a script, runs its
//! top level to list what each probe would match).

use crate::headers::{data_model, ptap_python};
use crate::locate::{self, Arch};
use ptap_options::inherited::ScriptImage;
use ptap_options::Listing;
use std::io::Write;
use std::process::Stdio;

/// Lists what `listing` asks for, of `command` (may be empty: the system
/// calls only); returns the exit status (0, or 1 when nothing matched).
pub fn run(listing: &Listing, image: &ScriptImage, command: &[String]) -> Result<i32, String> {
    let (executable, arch) = match command.first() {
        Some(program) => {
            let (executable, _argv, arch) = locate::resolve_interpreters(locate::find_command(program)?, command)?;
            (Some(executable), arch)
        }
        None => (None, Arch::X86_64),
    };
    let client = locate::client_library(arch)?;
    let mut python = ptap_python(&client, "ptap.listing").ok_or("cannot find the ptap Python package")?;
    python.arg("--data-model").arg(data_model(arch));
    if let Some(pattern) = &listing.pattern {
        python.arg("--pattern").arg(pattern);
    }
    for dir in &image.include_dirs {
        python.arg("-I").arg(dir);
    }
    for program in &image.programs {
        python.arg("--program").arg(program);
    }
    if !image.path.is_empty() {
        // The source as read once (the script may have been a pipe).
        python.args(["--script", "/dev/stdin", "--name", &image.name]);
    }
    if let Some(executable) = &executable {
        python.arg(executable);
    }
    let status = python
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&image.source)?;
            }
            child.wait()
        })
        .map_err(|e| format!("cannot run python3 -m ptap.listing: {e}"))?;
    Ok(status.code().unwrap_or(2))
}
