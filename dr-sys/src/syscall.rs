//! The system call a thread is stopped at, in DynamoRIO's pre- and
//! post-syscall events: its parameters, its result and the thread's
//! registers.

use crate::ffi;
use crate::mcontext::{slot, Register};
use crate::process::DrContext;

/// Parameter `index` of the system call.
///
/// # Safety
/// `dc` must be the context of a thread in a pre-syscall event.
pub unsafe fn param(dc: DrContext, index: usize) -> usize {
    ffi::dr_syscall_get_param(dc, index as i32) as usize
}

/// Changes parameter `index` before the kernel sees it.
///
/// # Safety
/// `dc` must be the context of a thread in a pre-syscall event, and the
/// system call must have parameter `index` (DynamoRIO does not check).
pub unsafe fn set_param(dc: DrContext, index: usize, value: usize) {
    ffi::dr_syscall_set_param(dc, index as i32, value as ffi::reg_t)
}

/// The value the kernel returned (a negative errno on failure).
///
/// # Safety
/// `dc` must be the context of a thread in a post-syscall event.
pub unsafe fn result(dc: DrContext) -> usize {
    ffi::dr_syscall_get_result(dc) as usize
}

/// Sets the value the application sees returned: in a post-syscall event,
/// instead of the kernel's; in a pre-syscall event that skips the call, as
/// its result.
///
/// # Safety
/// `dc` must be the context of a thread in a pre- or post-syscall event.
pub unsafe fn set_result(dc: DrContext, value: usize) {
    ffi::dr_syscall_set_result(dc, value as ffi::reg_t)
}

/// A machine context sized for DynamoRIO to fill with the integer and
/// control registers.
fn empty_mcontext() -> ffi::dr_mcontext_t {
    // SAFETY: dr_mcontext_t is plain data; all zeroes is a valid value.
    let mut mc: ffi::dr_mcontext_t = unsafe { std::mem::zeroed() };
    mc.size = std::mem::size_of::<ffi::dr_mcontext_t>();
    mc.flags = ffi::dr_mcontext_flags_t::DR_MC_INTEGER | ffi::dr_mcontext_flags_t::DR_MC_CONTROL;
    mc
}

/// Reads a register of the thread at the system call.
///
/// # Safety
/// `dc` must be the context of a thread in a pre- or post-syscall event.
pub unsafe fn register(dc: DrContext, reg: Register) -> Option<usize> {
    let mut mc = empty_mcontext();
    (ffi::dr_get_mcontext(dc, &mut mc) != 0).then(|| *slot(&mut mc, reg) as usize)
}

/// Writes a register of the thread; it holds when the thread goes on.
///
/// # Safety
/// `dc` must be the context of a thread in a pre- or post-syscall event.
pub unsafe fn set_register(dc: DrContext, reg: Register, value: usize) -> bool {
    let mut mc = empty_mcontext();
    if ffi::dr_get_mcontext(dc, &mut mc) == 0 {
        return false;
    }
    *slot(&mut mc, reg) = value as ffi::reg_t;
    ffi::dr_set_mcontext(dc, &mut mc) != 0
}
