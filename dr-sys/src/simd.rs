//! The CPU's vector-register state around client code.
//!
//! DynamoRIO saves and restores the application's full vector registers
//! (ymm, and zmm once the application uses AVX-512) with VEX/EVEX
//! instructions, which leaves their upper halves marked in use. Our Rust
//! code and the private libraries are compiled for SSE; on the Xeons these
//! machines run on, the first SSE instruction in that state stalled for
//! ~150 ns, once per event. Clearing the upper halves first avoids it.

/// Marks the upper halves of the vector registers clear (`vzeroupper`) on
/// CPUs with AVX; does nothing on others.
///
/// # Safety
/// Call only at the start of a callback DynamoRIO makes with the
/// application's state saved (a clean call such as drwrap's, or an event
/// such as a system call's): the application's upper halves are restored
/// from that copy when the callback returns. Rust code compiled without
/// AVX holds no values there.
#[inline(always)]
pub unsafe fn clear_upper_halves() {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    if std::arch::is_x86_feature_detected!("avx") {
        std::arch::asm!("vzeroupper", options(nomem, nostack, preserves_flags));
    }
}
