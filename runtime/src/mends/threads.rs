//! Per-thread repairs of the private libc. DynamoRIO gives each thread a
//! private TLS copied from the target's thread control block, and two
//! things in it are wrong for threads after the first:
//! - the ctype tables are NULL (`isdigit` in CPython crashes): we call the
//!   private libc's `__ctype_init`;
//! - libc believes the process is single-threaded (`multiple_threads` in
//!   the TCB is 0, `__libc_single_threaded` is 1), so it takes and releases
//!   uncontended mutexes with plain stores and no futex wake, and the GIL
//!   loses wake-ups: we set both to "multi-threaded".
//!
//! And one thing is the target's: the thread-specific data of the TCB it
//! was copied from. A thread made without a TLS of its own (a vfork child)
//! starts with its parent's values, so when the target was itself Python,
//! our libpython found the *target's* thread state under its own key and
//! waited for the target's GIL for ever. [`forget_inherited_thread_data`]
//! clears them.

use super::image::LibraryImage;
use std::sync::atomic::{AtomicUsize, Ordering};

static CTYPE_INIT: AtomicUsize = AtomicUsize::new(0);
static SINGLE_THREADED_FLAG: AtomicUsize = AtomicUsize::new(0);

/// Finds the two libc symbols the repairs use.
pub fn locate(libc: &LibraryImage) {
    if let Some(e) = libc.export("__ctype_init", "GLIBC_PRIVATE") {
        CTYPE_INIT.store(e.address, Ordering::Relaxed);
    }
    if let Some(e) = libc.export("__libc_single_threaded", "GLIBC_2.32") {
        SINGLE_THREADED_FLAG.store(e.address, Ordering::Relaxed);
    }
}

/// Repairs the calling thread's private libc state. Call at client init
/// and first thing in every thread-init event.
pub fn repair_current_thread() {
    mark_tcb_multi_threaded();
    let ctype_init = CTYPE_INIT.load(Ordering::Relaxed);
    if ctype_init != 0 {
        // SAFETY: the address is the private libc's `void __ctype_init(void)`,
        // which only fills the calling thread's TLS pointers.
        unsafe { std::mem::transmute::<usize, extern "C" fn()>(ctype_init)() };
    }
    let flag = SINGLE_THREADED_FLAG.load(Ordering::Relaxed);
    if flag != 0 {
        // SAFETY: the address is the private libc's `char __libc_single_threaded`.
        unsafe { std::ptr::write_volatile(flag as *mut u8, 0) };
    }
}

/// glibc keeps the values of keys below this inside the TCB itself.
const KEYS_IN_TCB: u32 = 32;

/// Clears the thread-specific values a new thread's private TCB copied
/// from the target's. Call in a thread's init event, unless the thread
/// already keeps values of its own there (the one that started Python).
pub fn forget_inherited_thread_data() {
    for key in 0..KEYS_IN_TCB {
        // SAFETY: values of keys below 32 live in the calling thread's own
        // private TCB, so the store never reaches the target's memory; the
        // private libc refuses keys it never made (EINVAL) without storing.
        unsafe { libc::pthread_setspecific(key, std::ptr::null()) };
    }
}

/// Sets `tcbhead_t.multiple_threads` of the private TCB the thread pointer
/// segment points at while client code runs.
fn mark_tcb_multi_threaded() {
    // SAFETY: in client code the thread pointer is the private TCB DR set
    // up; the field is an int at a fixed offset of glibc's tcbhead_t.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        std::arch::asm!("mov dword ptr fs:[0x18], 1", options(nostack, preserves_flags));
        #[cfg(target_arch = "x86")]
        std::arch::asm!("mov dword ptr gs:[0xc], 1", options(nostack, preserves_flags));
    }
}
