//! `processtap`: the launcher. It turns its command line into options
//! (shared with the client), finds DynamoRIO and `libptap.so`, and starts
//! the command under DynamoRIO by early injection, as `drrun` does: a child
//! process execs `libdynamorio.so` with the command's own argv, and
//! DynamoRIO maps the real executable named by `DYNAMORIO_EXE_PATH`.
//! Before that it preprocesses the C headers the script includes
//! ([`headers`]), which cannot be done inside the target.
//! The launcher waits and exits with the target's status (128+N when it
//! died of signal N).

mod headers;
mod locate;
mod run;

use ptap_options::{parse_tracer_args, Request, USAGE, VERSION};
use std::process::exit;

/// Exit status for a command line we cannot use.
const EXIT_USAGE: i32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    exit(match launch(&args) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("processtap: {message}");
            EXIT_USAGE
        }
    })
}

/// The options with the paths they name made absolute, so that every process
/// of the trace (children that `chdir` first included) finds the same files,
/// and the output file emptied once, here: the client in each process only
/// appends to it.
fn anchor_paths(mut options: ptap_options::Options) -> Result<ptap_options::Options, String> {
    let absolute = |path: &str| std::path::absolute(path).map(|p| p.to_string_lossy().into_owned());
    options.script = absolute(&options.script).map_err(|e| format!("{}: {e}", options.script))?;
    for dir in &mut options.include_dirs {
        *dir = absolute(dir).map_err(|e| format!("{dir}: {e}"))?;
    }
    if let Some(output) = &mut options.output {
        *output = absolute(output).map_err(|e| format!("cannot open output {output}: {e}"))?;
        std::fs::File::create(&*output).map_err(|e| format!("cannot open output {output}: {e}"))?;
    }
    Ok(options)
}

/// Everything from the command line to the target's exit status; an `Err`
/// is a one-line message for the user.
fn launch(args: &[String]) -> Result<i32, String> {
    let (request, rest) = parse_tracer_args(args).map_err(|e| format!("{e} (see processtap --help)"))?;
    let options = match request {
        Request::Help => {
            println!("{USAGE}");
            return Ok(0);
        }
        Request::Version => {
            println!("processtap {VERSION} (DynamoRIO 11.90)");
            return Ok(0);
        }
        Request::Trace(options) => options,
    };
    let options = anchor_paths(options)?;
    let mut command = &args[rest..];
    if command.first().map(String::as_str) == Some("--") {
        command = &command[1..];
    }
    locate::check_script(&options.script)?;
    let Some(program) = command.first() else {
        return Err(format!("no command to trace after '{}'", options.script));
    };
    let (executable, argv) = locate::resolve_interpreters(locate::find_command(program)?, command)?;
    let dynamorio = locate::dynamorio_library()?;
    let client = locate::client_library()?;
    headers::prepare(&options, &client);
    run::run_under_dynamorio(&dynamorio, &client, &options, &executable, &argv)
}
