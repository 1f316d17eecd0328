//! The launcher's fds 0, 1 and 2, which the target inherits as they are.
//!
//! Rust's usual entry point opens `/dev/null` on any of them that is
//! closed (and sets SIGPIPE to be ignored), and a target started from
//! there would find `/dev/null` where its parent left nothing. `main` is
//! ours instead ([`crate`]), and here, before anything else opens a file,
//! a closed one gets a close-on-exec placeholder: the launcher's own pipes
//! and files never land on 0, 1 or 2, and the target, after `exec`, finds
//! them closed again.

/// Puts a close-on-exec placeholder on each of fds 0–2 that is closed;
/// call first thing.
pub fn hold_closed_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks about an fd number.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        // The lowest free fd is `fd`: the ones below are open (or
        // placeholders) by now. Writing to it discards, as writing to the
        // closed fd would have failed.
        // SAFETY: opens a constant, NUL-terminated path.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    }
}
