//! `read`, `write`, `close` and `open` with their C meaning.
//!
//! DynamoRIO's loader binds every private library's calls of these names
//! to its own (`os_read`, `os_write`, `os_close_protected`,
//! `os_open_protected`; `redirect_imports` in its `core/unix/loader.c`),
//! which return `-errno` and leave errno alone, and whose `open` takes
//! DynamoRIO's own flags, not `O_*`. CPython checks for -1 and reads
//! errno: a handler's `os.write` to a full non-blocking pipe raised
//! `OSError(0, 'Error')` instead of `BlockingIOError`, and to a closed fd
//! `OSError(0)` instead of EBADF. These make the system call and set errno,
//! as libc's do (without libc's cancellation points, which CPython does not
//! use; DynamoRIO bound them away because they can reach pthread code).

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `read(2)`.
///
/// # Safety
/// As libc's: `buf` must hold `count` writable bytes.
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize {
    libc::syscall(libc::SYS_read, fd, buf, count) as isize
}

/// `write(2)`.
///
/// # Safety
/// As libc's: `buf` must hold `count` readable bytes.
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: usize) -> isize {
    libc::syscall(libc::SYS_write, fd, buf, count) as isize
}

/// `close(2)`.
///
/// # Safety
/// As libc's.
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    libc::syscall(libc::SYS_close, fd) as c_int
}

/// `open(2)`, which C declares variadic: on x86 a variadic callee finds
/// its third argument where a fixed one is (a register on x86-64, the next
/// stack slot on i386), and `mode` is read only when `flags` ask for it, as
/// in libc.
///
/// # Safety
/// As libc's: `path` must be a NUL-terminated string.
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    let mode = if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE { mode } else { 0 };
    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags, mode) as c_int
}
