//! The tracer's output in a traced process: what handlers print, and the
//! tracer's own lines (banner, tracebacks, warnings), written to the
//! streams every traced process inherits (`ptap_options::inherited`), never
//! to the target's fds 1 and 2.
//!
//! Writes are whole lines: what Python writes is kept per stream until its
//! newline and each run of whole lines goes out in one `write`, so lines
//! of several processes do not mix (on a pipe, for lines up to PIPE_BUF;
//! terminals and files take any length whole). A write to a pipe whose
//! reader left fails quietly: the SIGPIPE it raises is taken here, since
//! the target would die of it.

use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use ptap_options::inherited::{InheritedFds, Report};
use std::io;

/// The streams of this process, set up once by [`open`].
static STREAMS: OnceCell<Streams> = OnceCell::new();

struct Streams {
    fds: InheritedFds,
    /// Whether a write to the stdout or stderr fd can raise SIGPIPE (a
    /// pipe or a socket; a terminal or a file cannot).
    may_raise_sigpipe: [bool; 2],
    /// Text Python wrote to its stdout and stderr after their last newline.
    pending: [Mutex<Vec<u8>>; 2],
    /// Whether the report pipe to the launcher is there.
    reports: bool,
}

/// Where a write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Python's `sys.stdout`: the tracer's stdout.
    Stdout = 0,
    /// Python's `sys.stderr`: the tracer's stderr.
    Stderr = 1,
}

/// Finds the inherited streams, or makes them when there are none (the
/// first process under `drrun`): a copy of fd 1, or `output` (emptied,
/// then appended to by every process), and a copy of fd 2. A closed fd 1
/// or 2 becomes `/dev/null`, so that processes started from here still
/// find streams to inherit and never write to fds of their own.
pub fn open(output: Option<&str>) -> Result<InheritedFds, String> {
    let fds = InheritedFds::for_hard_limit(hard_fd_limit())
        .ok_or_else(|| "the hard limit on open files leaves DynamoRIO no fds of its own".to_string())?;
    if !(is_open(fds.out) && is_open(fds.err)) {
        let out = match output {
            Some(path) => open_output_file(path).map_err(|e| format!("cannot open output {path}: {e}"))?,
            None => dup_or_null(1)?,
        };
        place(out, fds.out)?;
        place(dup_or_null(2)?, fds.err)?;
    }
    let streams = Streams {
        fds,
        may_raise_sigpipe: [is_pipe_or_socket(fds.out), is_pipe_or_socket(fds.err)],
        pending: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
        reports: is_open(fds.reports),
    };
    let _ = STREAMS.set(streams);
    Ok(fds)
}

/// The fds of the tracer's stdout and stderr (for `fileno()`), once open.
pub fn fds() -> Option<InheritedFds> {
    STREAMS.get().map(|s| s.fds)
}

/// Writes what Python wrote to `stream`: the whole lines now, the rest
/// when its line ends (or at [`flush`]).
pub fn write(stream: Stream, bytes: &[u8]) {
    let Some(streams) = STREAMS.get() else { return };
    let mut pending = streams.pending[stream as usize].lock();
    let Some(last_newline) = bytes.iter().rposition(|&b| b == b'\n') else {
        pending.extend_from_slice(bytes);
        return;
    };
    let (lines, rest) = bytes.split_at(last_newline + 1);
    if pending.is_empty() {
        streams.write_all(stream, lines);
    } else {
        pending.extend_from_slice(lines);
        streams.write_all(stream, &pending);
        pending.clear();
    }
    pending.extend_from_slice(rest);
}

/// Writes a line of the tracer's own (the banner, a warning) to its stderr.
pub fn message(line: &str) {
    let Some(streams) = STREAMS.get() else { return };
    streams.write_all(Stream::Stderr, format!("{line}\n").as_bytes());
}

/// Writes out what is pending after the last newline of each stream (at
/// process exit).
pub fn flush() {
    let Some(streams) = STREAMS.get() else { return };
    for stream in [Stream::Stdout, Stream::Stderr] {
        let mut pending = streams.pending[stream as usize].lock();
        if !pending.is_empty() {
            streams.write_all(stream, &pending);
            pending.clear();
        }
    }
}

/// In a forked child: forgets the parent's pending text, which the parent
/// writes itself.
pub fn forget_pending() {
    if let Some(streams) = STREAMS.get() {
        for pending in &streams.pending {
            pending.lock().clear();
        }
    }
}

/// Whether the launcher's report pipe is there (not under a plain drrun).
pub fn has_report_pipe() -> bool {
    STREAMS.get().is_some_and(|s| s.reports)
}

/// Sends `report` to the launcher, if there is one. Never blocks: a full
/// pipe drops it.
pub fn report(report: &Report) {
    if let Some(streams) = STREAMS.get().filter(|s| s.reports) {
        let line = report.to_line();
        // The pipe is non-blocking: a full one drops the report.
        without_sigpipe(|| drop(write_fd(streams.fds.reports, line.as_bytes())));
    }
}

impl Streams {
    fn fd(&self, stream: Stream) -> i32 {
        match stream {
            Stream::Stdout => self.fds.out,
            Stream::Stderr => self.fds.err,
        }
    }

    fn write_all(&self, stream: Stream, bytes: &[u8]) {
        let fd = self.fd(stream);
        if self.may_raise_sigpipe[stream as usize] {
            without_sigpipe(|| write_all(fd, bytes));
        } else {
            write_all(fd, bytes);
        }
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes. Errors are
/// ignored: there is nowhere left to report them.
///
/// The streams share their open file description with fds of the
/// target's (processtap's stdout is often the target's stdout too), so the
/// target may have made it non-blocking (node does, for its stdout): a
/// write that would block waits until the fd takes more.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match write_fd(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pollfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: polls one valid pollfd.
                unsafe { libc::poll(&mut pollfd, 1, -1) };
            }
            Err(_) => return,
        }
    }
}

/// `write(2)`, made as a system call: a client's `write` is DynamoRIO's
/// (`os_write`, which its loader binds every private library's `write`
/// to), and returns `-errno` without setting errno.
fn write_fd(fd: i32, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a live slice.
    let n = unsafe { libc::syscall(libc::SYS_write, fd, bytes.as_ptr(), bytes.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Runs `f` (which writes) with SIGPIPE blocked in this thread, and takes
/// the SIGPIPE a write to a broken pipe raised before it reaches the
/// target: the thread is in the tracer's code, so DynamoRIO would hand
/// the signal to the target as its own, and its default action kills.
fn without_sigpipe(f: impl FnOnce()) {
    // SAFETY: sigset operations on local sets; rt_sigprocmask and
    // sigtimedwait act on this thread only. A SIGPIPE already pending for
    // the thread before `f` is the target's (raised by its own write) and
    // is left alone: only one that `f` raised is taken, found by its
    // appearing in the pending set during `f`.
    unsafe {
        let mut pipe_only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut old);
        let was_pending = sigpipe_pending();
        let errno = errno_location();
        let saved_errno = *errno;
        f();
        if !was_pending && sigpipe_pending() {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero);
        }
        *errno = saved_errno;
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// Whether SIGPIPE is pending for this thread or the process.
fn sigpipe_pending() -> bool {
    // SAFETY: fills a local set.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        libc::sigismember(&pending, libc::SIGPIPE) == 1
    }
}

fn errno_location() -> *mut i32 {
    // SAFETY: the calling thread's errno, always valid.
    unsafe { libc::__errno_location() }
}

/// The hard limit on open files. The client's libc is not intercepted:
/// this is the real limit, not the target's view.
fn hard_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_max as u64
}

fn is_pipe_or_socket(fd: i32) -> bool {
    // SAFETY: fstat into a local struct.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
    }
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only asks about an fd number.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A new fd for what `fd` is, or for `/dev/null` when it is closed.
fn dup_or_null(fd: i32) -> Result<i32, String> {
    // SAFETY: plain fcntl and open on fd numbers and a constant path.
    let new = unsafe {
        match libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) {
            -1 => libc::openat(libc::AT_FDCWD, c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC),
            new => new,
        }
    };
    if new < 0 {
        return Err(format!("cannot duplicate fd {fd}: {}", io::Error::last_os_error()));
    }
    Ok(new)
}

/// Moves `fd` to `to`, inheritable (dup2 leaves the copy without
/// close-on-exec), and closes `fd`.
fn place(fd: i32, to: i32) -> Result<(), String> {
    // SAFETY: both are fd numbers; `fd` is ours to close.
    unsafe {
        let r = libc::dup2(fd, to);
        libc::close(fd);
        if r < 0 {
            return Err(format!("cannot keep the tracer's output at fd {to}: {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn open_output_file(path: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // openat, not open: DynamoRIO redirects a client's `open` to its own,
    // which takes DynamoRIO's flags, not O_*, and leaves errno alone.
    // Emptied once here (the first process), then appended to by every
    // process that inherits it.
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated.
    let fd = unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), flags, 0o644) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}
