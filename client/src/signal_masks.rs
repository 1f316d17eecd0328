//! What the target reads of its signal mask, as the kernel would give it.
//!
//! DynamoRIO emulates the target's signal mask (`handle_sigprocmask`,
//! core/unix/signal.c) and keeps in it every signal the target asked to
//! block, SIGKILL and SIGSTOP included, which the kernel never blocks: a
//! program that blocked everything and reads its old mask back
//! (`rt_sigprocmask(SIG_SETMASK, &all, &old)`, as glibc's and Python's
//! signal code do) found those two in it, where untraced it does not
//! (`sigismember(&old, SIGKILL)` is 1). The post-syscall event takes them
//! out of the old mask the target receives.

use dr_sys::ffi;
use std::cell::Cell;

#[cfg(target_arch = "x86_64")]
const SYS_RT_SIGPROCMASK: i32 = libc::SYS_rt_sigprocmask as i32;
#[cfg(target_arch = "x86")]
const SYS_RT_SIGPROCMASK: i32 = 175;
/// i386's old sigprocmask, with a 4-byte mask.
#[cfg(target_arch = "x86")]
const SYS_SIGPROCMASK: i32 = 126;
#[cfg(target_arch = "x86_64")]
const SYS_SIGPROCMASK: i32 = -1;

/// The bits of SIGKILL and SIGSTOP in a mask (signal N is bit N-1).
const UNBLOCKABLE: u64 = 1 << (libc::SIGKILL - 1) | 1 << (libc::SIGSTOP - 1);

thread_local! {
    /// The old-mask pointer of the call the thread is making (0: none).
    static OLD_MASK: Cell<usize> = const { Cell::new(0) };
}

/// Registers the events.
pub fn install() {
    // SAFETY: plain extern "C" callbacks with the signatures DR and drmgr
    // expect; drmgr_init counts, and lifecycle's drmgr_exit balances it.
    unsafe {
        ffi::drmgr_init();
        ffi::drmgr_register_pre_syscall_event(Some(on_pre_syscall));
        ffi::drmgr_register_post_syscall_event(Some(on_post_syscall));
    }
}

/// The system calls whose pre- and post-syscall events this module needs.
pub fn wants_syscall(sysnum: i32) -> bool {
    sysnum == SYS_RT_SIGPROCMASK || sysnum == SYS_SIGPROCMASK
}

unsafe extern "C" fn on_pre_syscall(dc: *mut std::ffi::c_void, sysnum: i32) -> ffi::bool_ {
    if sysnum == SYS_RT_SIGPROCMASK || sysnum == SYS_SIGPROCMASK {
        // SAFETY: a pre-syscall event of a call with three parameters.
        OLD_MASK.set(dr_sys::syscall::param(dc as dr_sys::process::DrContext, 2));
    }
    1
}

unsafe extern "C" fn on_post_syscall(dc: *mut std::ffi::c_void, sysnum: i32) {
    if sysnum != SYS_RT_SIGPROCMASK && sysnum != SYS_SIGPROCMASK {
        return;
    }
    let old = OLD_MASK.replace(0);
    // SAFETY: a post-syscall event: the result is the call's.
    if old == 0 || ffi::dr_syscall_get_result(dc) != 0 {
        return;
    }
    // Both masks start with signals 1..32; the low word holds the two.
    let mut word = [0u8; 4];
    if dr_sys::memory::safe_read(old, &mut word) != word.len() {
        return;
    }
    let mask = u32::from_le_bytes(word);
    if mask as u64 & UNBLOCKABLE != 0 {
        dr_sys::memory::safe_write(old, &(mask & !(UNBLOCKABLE as u32)).to_le_bytes());
    }
}
