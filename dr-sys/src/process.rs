//! The process and thread the client runs in.

use crate::ffi;
use std::cell::Cell;
use std::ffi::CStr;

/// An opaque DynamoRIO per-thread context, as handed to event callbacks.
pub type DrContext = *mut std::ffi::c_void;

thread_local! {
    /// The process id, asked of the kernel once per thread and again after
    /// each fork ([`forget_pid`]): events need it on every call, and asking
    /// costs a system call. Per thread, not per process: a `vfork` child
    /// (or a `clone` without CLONE_THREAD) is a thread of DynamoRIO's in
    /// its parent's memory with a pid of its own.
    static PID: Cell<u32> = const { Cell::new(0) };
}

/// The id of the process the calling thread belongs to.
pub fn pid() -> u32 {
    PID.with(|pid| match pid.get() {
        0 => {
            // SAFETY: getpid has no preconditions (glibc no longer caches it).
            let id = unsafe { libc_getpid() } as u32;
            pid.set(id);
            id
        }
        id => id,
    })
}

extern "C" {
    #[link_name = "getpid"]
    fn libc_getpid() -> i32;
}

/// Call in the child after a fork, and when a thread starts: the next
/// [`pid`] asks again.
pub fn forget_pid() {
    PID.with(|pid| pid.set(0));
}

/// The calling thread's id, or 0 when called outside a DynamoRIO thread.
pub fn current_tid() -> u32 {
    // SAFETY: dr_get_current_drcontext may return null, which we check.
    unsafe {
        let dc = ffi::dr_get_current_drcontext();
        if dc.is_null() {
            0
        } else {
            ffi::dr_get_thread_id(dc) as u32
        }
    }
}

/// The id of the thread whose DynamoRIO context is `dc`.
///
/// # Safety
/// `dc` must be a live context handed to us by DynamoRIO.
pub unsafe fn tid_of(dc: DrContext) -> u32 {
    ffi::dr_get_thread_id(dc) as u32
}

/// The full path of this client library, as DynamoRIO loaded it.
pub fn client_path(client_id: ffi::client_id_t) -> String {
    // SAFETY: DR returns a NUL-terminated string it owns for the whole run.
    unsafe {
        let p = ffi::dr_get_client_path(client_id);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Ends the whole process at once with `code`, running DynamoRIO's exit
/// events (ours included) first.
pub fn exit_process(code: i32) -> ! {
    // SAFETY: valid from client init onwards; it does not return.
    unsafe { ffi::dr_exit_process(code) };
    unreachable!("dr_exit_process returned")
}
