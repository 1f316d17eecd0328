//! A fast `__tls_get_addr` for the private libraries.
//!
//! Every Rust `thread_local!` of the client (and pyo3's attach count) is
//! reached through `__tls_get_addr`, which DynamoRIO's loader binds to its
//! own redirection: a lookup of the thread's DynamoRIO context and checks,
//! ~6 ns a call, several calls per event. Its answer is the thread
//! pointer (where the private libc's own TLS starts, as `%fs:0` reads it in
//! client code) minus the module's TLS offset, plus the variable's offset;
//! the module's offset is the same in every thread. We ask DynamoRIO once
//! per module for that difference and then compute the address directly.

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// DynamoRIO's `__tls_get_addr` redirection, as found in the first slot
/// we replace.
pub(super) static DR_TLS_GET_ADDR: AtomicUsize = AtomicUsize::new(0);

/// The `tls_index` argument of `__tls_get_addr` (x86-64 ELF TLS ABI).
#[repr(C)]
pub struct TlsIndex {
    module: usize,
    offset: usize,
}

/// Modules whose offset we keep; others always ask DynamoRIO.
const KEPT_MODULES: usize = 64;
/// Marks a module whose offset is not known yet.
const UNKNOWN: isize = isize::MIN;
/// Per module id: its TLS block's address minus the thread pointer.
static MODULE_OFFSETS: [AtomicIsize; KEPT_MODULES] = [const { AtomicIsize::new(UNKNOWN) }; KEPT_MODULES];

/// The thread pointer of the private libraries' TLS.
#[inline(always)]
fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: in client code %fs holds the private libraries' thread
    // control block, whose first word points to itself (the private
    // libc's own thread-local accesses rely on the same).
    unsafe { std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    tp
}

fn dynamorio_answer(index: &TlsIndex) -> usize {
    let dr = DR_TLS_GET_ADDR.load(Ordering::Relaxed);
    // SAFETY: the slot we replaced held DynamoRIO's redirection, which has
    // __tls_get_addr's signature; we only run once it was recorded.
    unsafe { std::mem::transmute::<usize, extern "C" fn(*const TlsIndex) -> usize>(dr)(index) }
}

/// `__tls_get_addr` for the private libraries.
pub unsafe extern "C" fn tls_get_addr(index: *const TlsIndex) -> usize {
    // SAFETY: callers pass their GOT's tls_index pair.
    let index = unsafe { &*index };
    let Some(kept) = MODULE_OFFSETS.get(index.module) else { return dynamorio_answer(index) };
    let mut offset = kept.load(Ordering::Relaxed);
    if offset == UNKNOWN {
        let start = dynamorio_answer(&TlsIndex { module: index.module, offset: 0 });
        offset = start.wrapping_sub(thread_pointer()) as isize;
        kept.store(offset, Ordering::Relaxed);
    }
    thread_pointer().wrapping_add_signed(offset).wrapping_add(index.offset)
}
