//! `processtap`: the launcher. It turns its command line into options
//! (shared with the client), finds DynamoRIO and `libptap.so`, and starts
//! the command under DynamoRIO by early injection, as `drrun` does: a child
//! process execs `libdynamorio.so` with the command's own argv, and
//! DynamoRIO maps the real executable named by `DYNAMORIO_EXE_PATH`.
//! Before that it preprocesses the C headers the script includes
//! ([`headers`]), which cannot be done inside the target, and puts the
//! tracer's output streams where every traced process finds them ([`run`],
//! `ptap_options::streams`). It waits and exits with the target's status
//! (128+N when it died of signal N).
//!
//! The target inherits the launcher's fds 0–2 and signal dispositions as
//! they were when the launcher started ([`stdio`]), which is why `main` is
//! ours and not Rust's.

#![no_main]

mod headers;
mod listing;
mod locate;
mod reports;
mod run;
mod stdio;

use ptap_options::inherited::ScriptImage;
use ptap_options::{parse_launcher_args, Request, USAGE, VERSION};
use std::os::fd::{FromRawFd, OwnedFd};

/// Exit status for a command line we cannot use.
const EXIT_USAGE: i32 = 2;

/// The process's entry point, called by the C runtime: Rust's own would
/// put `/dev/null` on closed fds 0–2 and ignore SIGPIPE, and the target
/// would inherit both.
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    stdio::hold_closed_std_fds();
    // std reads argv from the C runtime on Linux, also without Rust's main.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match launch(&args) {
        Ok(status) => status,
        Err(message) => {
            write_line(2, &format!("processtap: {message}"));
            EXIT_USAGE
        }
    }
}

/// Writes one line to `fd`, whole, ignoring errors (a closed stderr).
pub(crate) fn write_line(fd: i32, text: &str) {
    let line = format!("{text}\n");
    let mut bytes = line.as_bytes();
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const _, bytes.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Where the tracer's streams go: copies of the launcher's stdout (or the
/// `-o` file, emptied here, once, and appended to by every process) and
/// stderr, close-on-exec in the launcher.
fn streams(options: &ptap_options::Options) -> Result<run::Streams, String> {
    let dup = |fd: i32| -> Result<OwnedFd, String> {
        // SAFETY: plain fcntl on an fd number; 0–2 are open (stdio::claim).
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(format!("cannot duplicate fd {fd}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `new` was just made and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    let out = match &options.output {
        None => dup(1)?,
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .custom_flags(libc::O_APPEND)
                .open(path)
                .map_err(|e| format!("cannot open output {path}: {}", locate::io_reason(&e)))?;
            // Emptied once, then appended to by every process (O_APPEND
            // as a custom flag: OpenOptions refuses append with truncate).
            OwnedFd::from(file)
        }
    };
    Ok(run::Streams { out, err: dup(2)? })
}

/// Everything from the command line to the target's exit status; an `Err`
/// is a one-line message for the user.
fn launch(args: &[String]) -> Result<i32, String> {
    let (request, command_start) = parse_launcher_args(args).map_err(|e| format!("{e} (see processtap --help)"))?;
    let options = match request {
        Request::Help => {
            write_line(1, USAGE);
            return Ok(0);
        }
        Request::Version => {
            write_line(1, &format!("processtap {VERSION} (DynamoRIO 11.90)"));
            return Ok(0);
        }
        Request::Trace(options) => options,
    };
    // Read once, with its path and the -I directories made absolute: every
    // process of the trace (children that `chdir` first included) runs the same.
    let image = ScriptImage::read(&options.script, &options.include_dirs, &options.programs)?;
    let command = &args[command_start..];
    if let Some(wanted) = &options.listing {
        return listing::run(wanted, &image, command);
    }
    let Some(program) = command.first() else {
        return Err(format!("no command to trace after '{}'", options.script));
    };
    // The command's ELF class (or its #! interpreter's) chooses the
    // DynamoRIO and the client, as drrun does.
    let (executable, argv, arch) = locate::resolve_interpreters(locate::find_command(program)?, command)?;
    let dynamorio = locate::dynamorio_library(arch)?;
    let client = locate::client_library(arch)?;
    // A process that execs a program of the other architecture goes on
    // under that architecture's client, where one is built beside.
    let other = locate::other_client(arch, &dynamorio);
    headers::prepare(&image, &client, arch);
    if let Some((other_arch, other_client)) = &other {
        headers::prepare(&image, other_client, *other_arch);
    }
    let inherited = run::Inherited { streams: streams(&options)?, script: image.to_memfd().map_err(|e| format!("cannot keep the script in memory: {e}"))? };
    let other = other.as_ref().map(|(a, c)| (*a, c.as_path()));
    run::run_under_dynamorio(&dynamorio, &client, arch, other, &options, &executable, &argv, &inherited)
}
