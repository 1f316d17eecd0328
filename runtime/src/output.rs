//! The tracer's own output streams. The target owns fds 1 and 2 and may
//! close them (`ls` and `echo` do at exit), so at start-up we duplicate
//! them (or open `-o FILE`) into DynamoRIO's reserved range of fds, above
//! the limit the target is shown, where the target does not close them.

use std::io;

/// DynamoRIO's default `-steal_fds`: the top fds it keeps for itself and
/// hides from the target's `getrlimit`.
const DR_STOLEN_FDS: u64 = 96;

/// The two fds the tracer writes to.
#[derive(Debug, Clone, Copy)]
pub struct TracerStreams {
    /// What handlers print: the target's stdout at start-up, or `-o FILE`.
    pub out_fd: i32,
    /// Banner, tracebacks and errors: the target's stderr at start-up.
    pub err_fd: i32,
}

impl TracerStreams {
    /// Opens the streams; `output` is the `-o` file, if any.
    pub fn open(output: Option<&str>) -> Result<TracerStreams, String> {
        let out = match output {
            None => dup_private(1),
            Some(path) => open_file(path).and_then(|fd| {
                let moved = dup_private(fd);
                // SAFETY: closes the fd we just opened, now duplicated.
                unsafe { libc::close(fd) };
                moved
            }),
        }
        .map_err(|e| format!("cannot open output {}: {e}", output.unwrap_or("stdout")))?;
        let err = dup_private(2).map_err(|e| format!("cannot duplicate stderr: {e}"))?;
        Ok(TracerStreams { out_fd: out, err_fd: err })
    }

    /// Writes a line to the error stream (the banner, the tracer's own
    /// messages). Errors are ignored: there is nowhere left to report them.
    pub fn err_line(&self, line: &str) {
        write_all(self.err_fd, format!("{line}\n").as_bytes());
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const _, bytes.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn open_file(path: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // openat, not open: DynamoRIO redirects a client's `open` to its own,
    // which takes DynamoRIO's flags, not O_*, and leaves errno alone.
    // SAFETY: `c` is NUL-terminated.
    // Appending: every process of the trace writes to the file (the
    // launcher empties it once, before the first starts).
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    let fd = unsafe { libc::openat(libc::AT_FDCWD, c.as_ptr(), flags, 0o644) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Duplicates `fd` (sharing its file offset) into DynamoRIO's reserved
/// range, close-on-exec.
fn dup_private(fd: i32) -> io::Result<i32> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out pointer. The client's libc is not
    // intercepted, so this is the real limit, not the target's view.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let low = limit.rlim_cur.saturating_sub(DR_STOLEN_FDS).max(3) as i32;
    // SAFETY: plain fcntl on an fd number.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, low) };
    if new >= 0 {
        return Ok(new);
    }
    // SAFETY: as above, without the range.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(new)
    }
}
