//! The process and thread the client runs in.

use crate::ffi;
use std::ffi::CStr;

/// An opaque DynamoRIO per-thread context, as handed to event callbacks.
pub type DrContext = *mut std::ffi::c_void;

/// The process id, asked of the kernel once and again after each fork
/// ([`forget_pid`]): events need it on every call, and asking costs a
/// system call.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The process id.
pub fn pid() -> u32 {
    use std::sync::atomic::Ordering;
    match PID.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: takes no arguments, valid at any time after client init.
            let pid = unsafe { ffi::dr_get_process_id() as u32 };
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Call in the child after a fork: the next [`pid`] asks again.
pub fn forget_pid() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
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
