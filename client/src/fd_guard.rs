//! Keeping the tracer's streams out of the target's reach.
//!
//! The streams sit in DynamoRIO's reserved fds (`ptap_options::inherited`),
//! where DynamoRIO already stops the target from opening, `dup2`ing onto
//! or `fcntl(F_DUPFD)`ing into them. It protects only fds it opened
//! itself from `close` and `close_range`, and ours are inherited, so this
//! module refuses a `close` of them (EBADF, as for DynamoRIO's own) and
//! keeps `close_range` below them, and before an `execve` makes sure they
//! are still inheritable (a target may have set close-on-exec on every fd
//! it found in /proc/self/fd). DynamoRIO intercepts all these calls for
//! itself anyway: filtering them costs an event callback, not a trip out
//! of the code cache.

use dr_sys::ffi;
use dr_sys::process::DrContext;
use ptap_options::inherited::InheritedFds;

const SYS_CLOSE: i32 = libc::SYS_close as i32;
const SYS_CLOSE_RANGE: i32 = libc::SYS_close_range as i32;
const SYS_EXECVE: i32 = libc::SYS_execve as i32;
const SYS_EXECVEAT: i32 = libc::SYS_execveat as i32;
/// A close_range DynamoRIO's one-fd-at-a-time walk ends quickly on.
const SHORT_FD_RANGE: u32 = 1 << 16;

/// Registers the events; call once, after the streams are open.
pub fn install() {
    // SAFETY: registering plain extern "C" callbacks with the signatures
    // drmgr and DR expect. drmgr_init may be called more than once (it
    // counts), and lifecycle's drmgr_exit at process exit balances ours.
    unsafe {
        ffi::drmgr_init();
        ffi::drmgr_register_pre_syscall_event(Some(on_pre_syscall));
    }
}

/// The system calls whose pre-syscall event this module needs.
pub fn wants_syscall(sysnum: i32) -> bool {
    matches!(sysnum, SYS_CLOSE | SYS_CLOSE_RANGE | SYS_EXECVE | SYS_EXECVEAT)
}

unsafe extern "C" fn on_pre_syscall(dc: *mut std::ffi::c_void, sysnum: i32) -> ffi::bool_ {
    let dc = dc as DrContext;
    let Some(fds) = ptap_runtime::output::fds() else { return 1 };
    match sysnum {
        SYS_CLOSE if fds.contains(dr_sys::syscall::param(dc, 0) as i32 as i64) => {
            dr_sys::syscall::set_result_of_skipped(dc, -(libc::EBADF as isize));
            return 0;
        }
        SYS_CLOSE_RANGE => return bound_close_range(dc, &fds) as ffi::bool_,
        SYS_EXECVE | SYS_EXECVEAT => keep_inheritable(&fds),
        _ => {}
    }
    1
}

/// Keeps a `close_range(first, last, flags)` about to be made below our
/// fds, and short: returns whether to make it.
///
/// DynamoRIO 11.90 does close_range itself, one fd at a time, skipping
/// its own: `close_range(3, ~0U, 0)`, which Python's subprocess and
/// glibc's closefrom make in every child they start, never ended. The
/// range is lowered to the highest fd open below ours, which closes the
/// same fds of the target's (the target cannot have fds up here).
///
/// # Safety
/// `dc` must be the context of the thread in its pre-syscall event.
unsafe fn bound_close_range(dc: DrContext, fds: &InheritedFds) -> bool {
    let first = dr_sys::syscall::param(dc, 0) as u32;
    let last = dr_sys::syscall::param(dc, 1) as u32;
    let ours = fds.lowest() as u32;
    if last < first || last < ours && last - first < SHORT_FD_RANGE {
        return true;
    }
    if first >= ours {
        // Only ours, and DynamoRIO's own (which it would skip), are there.
        dr_sys::syscall::set_result_of_skipped(dc, 0);
        return false;
    }
    let highest = highest_open_fd_below(ours).unwrap_or(ours - 1).max(first);
    dr_sys::syscall::set_param(dc, 1, highest.min(last) as usize);
    true
}

/// The highest fd open in this process below `limit` (DynamoRIO's own
/// included), from /proc/self/fd.
fn highest_open_fd_below(limit: u32) -> Option<u32> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter(|&fd| fd < limit).max()
}

/// Clears close-on-exec on our fds, should the target have set it.
fn keep_inheritable(fds: &InheritedFds) {
    for fd in [fds.out, fds.err, fds.reports] {
        // SAFETY: plain fcntl on fd numbers; a closed one fails harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags > 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
    }
}

/// Closes the fd DynamoRIO left open on the interpreter of a `#!` script
/// a traced process executed; call at start, in a process started by an
/// `execve` under DynamoRIO, before the target's first instruction.
///
/// DynamoRIO 11.90 runs a script's interpreter itself at an `execve`
/// (`handle_execve_script` in core/unix/os.c), and checks that the
/// interpreter is an ELF file with an `os_open` it never closes when the
/// check passes: the new program found the interpreter open on its lowest
/// free fd (3, say), and opened its own files one fd higher than it does
/// untraced. The fd is told apart by what DynamoRIO left: the executable
/// itself, opened read-only, not close-on-exec, read up to the end of its
/// ELF header and no further.
pub fn close_interpreter_left_open(exe: &str) {
    let Ok(exe) = std::fs::metadata(exe) else { return };
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    for fd in fds {
        // SAFETY: fstat and fcntl of an fd number into a local; a closed
        // one (read_dir's own) fails harmlessly.
        let (stat, fd_flags, status_flags) = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut stat) != 0 {
                continue;
            }
            (stat, libc::fcntl(fd, libc::F_GETFD), libc::fcntl(fd, libc::F_GETFL))
        };
        if stat.st_dev as u64 != exe.dev() || stat.st_ino as u64 != exe.ino() {
            continue;
        }
        // SAFETY: lseek of an fd that is open, asking only where it is.
        let offset = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        let read_only = status_flags >= 0 && status_flags & libc::O_ACCMODE == libc::O_RDONLY;
        let elf_header_read = (1..=64).contains(&offset);
        if fd_flags == 0 && read_only && elf_header_read {
            // SAFETY: closing the fd DynamoRIO opened and forgot; the
            // target has not run yet and cannot hold it.
            unsafe { libc::close(fd) };
        }
    }
}
