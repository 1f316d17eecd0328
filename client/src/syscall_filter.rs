//! The client's one filter of DynamoRIO's system-call events.
//!
//! Several modules need DynamoRIO's pre- or post-syscall event for a few
//! system calls (fd_guard: close, close_range, execve; signal_masks:
//! rt_sigprocmask; lifecycle: exit_group and the clone family). Where a
//! block does not show a call's number (32-bit x86's vDSO serves every
//! call from one block), DynamoRIO calls every registered filter at each
//! call; three filters cost ~30 ns each on every system call of an i686
//! process (bench/syscalls.py). One filter asks the modules instead.

use dr_sys::ffi;

/// Registers the filter; call once, at start-up.
pub fn install() {
    // SAFETY: registering a plain extern "C" callback with the signature
    // DynamoRIO expects.
    unsafe { ffi::dr_register_filter_syscall_event(Some(filter_syscall)) };
}

unsafe extern "C" fn filter_syscall(_dc: *mut std::ffi::c_void, sysnum: i32) -> ffi::bool_ {
    (crate::lifecycle::wants_syscall(sysnum) || crate::fd_guard::wants_syscall(sysnum) || crate::signal_masks::wants_syscall(sysnum)) as ffi::bool_
}
