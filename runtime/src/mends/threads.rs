//! Per-thread repairs of the private libc. DynamoRIO gives each thread a
//! private TLS copied from the target's thread control block, and two
//! things in it are wrong for threads after the first:
//! - the ctype tables are NULL (`isdigit` in CPython crashes): we call the
//!   private libc's `__ctype_init`;
//! - libc believes the process is single-threaded (`multiple_threads` in
//!   the TCB is 0, `__libc_single_threaded` is 1), so it takes and releases
//!   uncontended mutexes with plain stores and no futex wake, and the GIL
//!   loses wake-ups: we set both to "multi-threaded".

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
