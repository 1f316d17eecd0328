//! Running the target under DynamoRIO with the tracer's streams in place,
//! and reporting how it ended.

use crate::locate::Arch;
use crate::reports::ReportReader;
use ptap_options::inherited::InheritedFds;
use ptap_options::{client_lib_option, Options};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the tracer's two streams go: the launcher's own stdout (or the
/// `-o` file) and stderr.
pub struct Streams {
    pub out: OwnedFd,
    pub err: OwnedFd,
}

/// What the target inherits besides the report pipe.
pub struct Inherited {
    pub streams: Streams,
    /// The script image's memfd.
    pub script: OwnedFd,
}

/// The longest option string DynamoRIO reads, NUL included
/// (MAX_OPTIONS_STRING, core/lib/globals_shared.h).
const MAX_DYNAMORIO_OPTIONS: usize = 2048;

/// Forks; the child puts the tracer's streams, the script image and the
/// report pipe at the numbers every traced process looks for them
/// ([`InheritedFds`]) and execs
/// DynamoRIO on the command. The parent waits for the target, then warns
/// about probes that matched nothing, and returns the exit status.
pub fn run_under_dynamorio(
    dynamorio: &Path,
    client: &Path,
    arch: Arch,
    other_client: Option<(Arch, &Path)>,
    options: &Options,
    executable: &Path,
    command: &[String],
    inherited: &Inherited,
) -> Result<i32, String> {
    // The client for each architecture a process of the trace may exec
    // into: DynamoRIO keeps the other one's option for such an exec.
    let client_option = |arch: Arch, client: &Path| -> Result<String, String> {
        let name = match arch {
            Arch::X86_64 => "-client_lib64",
            Arch::I686 => "-client_lib32",
        };
        Ok(format!("{name} {}", client_lib_option(&client.to_string_lossy(), &options.to_client_args()).map_err(|e| e.0)?))
    };
    let mut dr_options = format!("-code_api {}", client_option(arch, client)?);
    if let Some((other, other_client)) = other_client {
        dr_options += &format!(" {}", client_option(other, other_client)?);
    }
    if dr_options.len() >= MAX_DYNAMORIO_OPTIONS {
        return Err(format!(
            "the script's path and options make DynamoRIO's options {} bytes long, and it takes fewer than {MAX_DYNAMORIO_OPTIONS}",
            dr_options.len()
        ));
    }
    let limit = nofile_limit();
    let fds = InheritedFds::for_hard_limit(limit.rlim_max as u64).ok_or_else(|| {
        format!("the hard limit on open files ({}) leaves DynamoRIO no fds of its own; raise it (ulimit -Hn)", limit.rlim_max)
    })?;
    let reports = ReportReader::start().map_err(|e| format!("cannot make the report pipe: {e}"))?;

    // Everything the child needs is built before fork: after it, the child
    // only calls async-signal-safe functions.
    let c_string = |s: &[u8]| CString::new(s).map_err(|_| "argument holds a NUL byte".to_string());
    let dr_path = c_string(dynamorio.as_os_str().as_bytes())?;
    let argv: Vec<CString> = command.iter().map(|a| c_string(a.as_bytes())).collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "DYNAMORIO_EXE_PATH" && k != "DYNAMORIO_OPTIONS")
        .map(|(k, v)| c_string(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    env.push(c_string(&[b"DYNAMORIO_EXE_PATH=".as_slice(), executable.as_os_str().as_bytes()].concat())?);
    env.push(c_string(format!("DYNAMORIO_OPTIONS={dr_options}").as_bytes())?);
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let placements = [
        (inherited.streams.out.as_raw_fd(), fds.out),
        (inherited.streams.err.as_raw_fd(), fds.err),
        (reports.write_end(), fds.reports),
        (inherited.script.as_raw_fd(), fds.script),
    ];
    let exec_failed = format!("processtap: cannot execute {}\n", dynamorio.display()).into_bytes();

    // SAFETY: fork in a single-threaded launcher (the report reader starts
    // after it); the child below only calls setrlimit, dup2, prctl,
    // execve, write and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: all pointers point into vectors alive until execve; the
        // fds placed are open (owned by the launcher). dup2 leaves the new
        // fds open across exec. A soft limit below the fds' numbers is
        // raised for the dup2s and put back: DynamoRIO raises it to the
        // hard limit at start-up anyway.
        unsafe {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
            for (from, to) in placements {
                if libc::dup2(from, to) < 0 {
                    libc::_exit(2);
                }
            }
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::execve(dr_path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            libc::write(2, exec_failed.as_ptr() as *const _, exec_failed.len());
            libc::_exit(2);
        }
    }
    let reports = reports.read_in_background();
    let status = wait_for(pid);
    for warning in reports.finish() {
        crate::write_line(inherited.streams.err.as_raw_fd(), &format!("[!] {warning}"));
    }
    Ok(status)
}

/// The launcher's limit on open files.
fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit
}

/// Waits for the target, passing on the signals a terminal or a supervisor
/// sends to us, and turns its end into an exit status.
fn wait_for(pid: libc::pid_t) -> i32 {
    forward_signals_to(pid);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 2;
        }
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        2
    }
}

static mut CHILD: libc::pid_t = 0;

extern "C" fn forward(sig: libc::c_int) {
    // SAFETY: CHILD is written once before the handler is installed.
    unsafe { libc::kill(CHILD, sig) };
}

/// SIGINT and SIGQUIT from a terminal reach the target too (same process
/// group), so we only ignore them; SIGTERM, SIGHUP and the user signals are
/// sent on. SIGPIPE is ignored: the launcher's stderr may be a pipe whose
/// reader left, and dying of it would kill the target (PR_SET_PDEATHSIG).
/// All of this happens after the fork: the target inherits the
/// dispositions the launcher was started with.
fn forward_signals_to(pid: libc::pid_t) {
    // SAFETY: installs plain handlers; `forward` only calls kill.
    unsafe {
        CHILD = pid;
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
            libc::signal(sig, forward as *const () as usize);
        }
    }
}
