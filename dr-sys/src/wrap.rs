//! drwrap: function entry and exit. ProcessTap wraps each probed function
//! once, at module load, and unwraps it at unload.

use crate::ffi;
use crate::mcontext::{set_xmm_low, slot, xmm_low};
pub use crate::mcontext::Register;
use std::ffi::c_void;

/// The per-call context drwrap hands to the callbacks; valid only inside
/// them.
pub type WrapContext = *mut c_void;

/// `pre(wrapcxt, &mut user_data)`: called at the function's first
/// instruction; what it stores in `user_data` reaches the post callback.
pub type PreCallback = unsafe extern "C" fn(WrapContext, *mut *mut c_void);
/// `post(wrapcxt, user_data)`: called at return, or with a null wrapcxt
/// when the call was unwound (longjmp, exception).
pub type PostCallback = unsafe extern "C" fn(WrapContext, *mut c_void);

/// Initializes drwrap (and drmgr under it). Call once at client start.
///
/// drwrap runs "no frills": one wrap per address (ours are: one site per
/// address) made at start-up or module load and removed at unload only,
/// which spares a lock, a hash lookup and three allocations per call.
pub fn init() -> bool {
    // SAFETY: plain initialization calls; balanced by [`exit`]. The flag is
    // set before any wrap exists, as drwrap requires.
    unsafe {
        ffi::drwrap_set_global_flags(ffi::drwrap_global_flags_t_DRWRAP_NO_FRILLS);
        ffi::drwrap_init() != 0
    }
}

/// Shuts drwrap down at process exit.
pub fn exit() {
    // SAFETY: balanced with [`init`].
    unsafe { ffi::drwrap_exit() }
}

/// Wraps the function at `address`; `site` is passed to `pre` as the
/// initial per-call user data. Returns false if drwrap refused.
///
/// # Safety
/// `site` must stay valid until the function is unwrapped.
pub unsafe fn wrap(address: usize, pre: PreCallback, post: Option<PostCallback>, site: *mut c_void) -> bool {
    // Not DRWRAP_UNWIND_ON_EXCEPTION: on Linux it only stops drwrap from
    // reporting the unwinds its heuristics find (it expects Windows'
    // exception event to have reported them).
    let flags = ffi::drwrap_callconv_t_DRWRAP_CALLCONV_DEFAULT as ffi::drwrap_wrap_flags_t;
    ffi::drwrap_wrap_ex(address as *mut u8, Some(pre), post, site, flags) != 0
}

/// Undoes [`wrap`].
///
/// # Safety
/// The callbacks must be those given to `wrap`.
pub unsafe fn unwrap(address: usize, pre: PreCallback, post: Option<PostCallback>) -> bool {
    ffi::drwrap_unwrap(address as *mut u8, Some(pre), post) != 0
}

/// Argument `index` by the platform's calling convention (raw word).
///
/// # Safety
/// `wc` must be the live context of a pre callback.
pub unsafe fn arg(wc: WrapContext, index: usize) -> usize {
    ffi::drwrap_get_arg(wc, index as i32) as usize
}

/// The six integer argument registers of the SysV x86-64 ABI (rdi, rsi,
/// rdx, rcx, r8, r9), read from one copy of the machine context (cheaper
/// than six [`arg`] calls).
///
/// # Safety
/// `wc` must be the live context of a pre callback.
#[cfg(target_arch = "x86_64")]
pub unsafe fn register_args(wc: WrapContext) -> [usize; 6] {
    match mcontext(wc) {
        Some(mc) => [Register::Rdi, Register::Rsi, Register::Rdx, Register::Rcx, Register::R8, Register::R9]
            .map(|r| *slot(mc, r) as usize),
        None => [0; 6],
    }
}

/// The first six integer arguments by the i386 cdecl convention (on the
/// stack), which a call without a prototype records.
///
/// # Safety
/// `wc` must be the live context of a pre callback.
#[cfg(target_arch = "x86")]
pub unsafe fn register_args(wc: WrapContext) -> [usize; 6] {
    std::array::from_fn(|i| arg(wc, i))
}

/// Changes argument `index` before the function body runs.
///
/// # Safety
/// `wc` must be the live context of a pre callback.
pub unsafe fn set_arg(wc: WrapContext, index: usize, value: usize) -> bool {
    ffi::drwrap_set_arg(wc, index as i32, value as *mut c_void) != 0
}

/// The value being returned.
///
/// # Safety
/// `wc` must be the live context of a post callback.
pub unsafe fn retval(wc: WrapContext) -> usize {
    ffi::drwrap_get_retval(wc) as usize
}

/// Changes the value the caller receives.
///
/// # Safety
/// `wc` must be the live context of a post callback.
pub unsafe fn set_retval(wc: WrapContext, value: usize) -> bool {
    ffi::drwrap_set_retval(wc, value as *mut c_void) != 0
}

/// The return address of the call (the caller's next instruction).
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn return_address(wc: WrapContext) -> usize {
    ffi::drwrap_get_retaddr(wc) as usize
}

/// The thread's DynamoRIO context.
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn drcontext(wc: WrapContext) -> *mut c_void {
    ffi::drwrap_get_drcontext(wc) as *mut c_void
}

/// The machine context drwrap holds for the call (integer and control
/// registers), which writes go to.
///
/// # Safety
/// `wc` must be a live context.
unsafe fn mcontext<'a>(wc: WrapContext) -> Option<&'a mut ffi::dr_mcontext_t> {
    let flags = ffi::dr_mcontext_flags_t::DR_MC_INTEGER | ffi::dr_mcontext_flags_t::DR_MC_CONTROL;
    ffi::drwrap_get_mcontext_ex(wc, flags).as_mut()
}

/// The same with the vector registers too (dearer: only for floating
/// arguments and return values).
///
/// # Safety
/// `wc` must be a live context.
unsafe fn full_mcontext<'a>(wc: WrapContext) -> Option<&'a mut ffi::dr_mcontext_t> {
    ffi::drwrap_get_mcontext_ex(wc, ffi::dr_mcontext_flags_t::DR_MC_ALL).as_mut()
}

/// The low 64 bits of xmm`n` (a `double` argument or return value).
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn xmm(wc: WrapContext, n: usize) -> Option<u64> {
    full_mcontext(wc).map(|mc| xmm_low(mc, n))
}

/// Sets the low 64 bits of xmm`n`; it takes effect when the callback returns.
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn set_xmm(wc: WrapContext, n: usize, bits: u64) -> bool {
    match full_mcontext(wc) {
        Some(mc) => {
            set_xmm_low(mc, n, bits);
            ffi::drwrap_set_mcontext(wc) != 0
        }
        None => false,
    }
}

/// The stack pointer at the callback, which drwrap always has (no machine
/// context copy needed).
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn stack_pointer(wc: WrapContext) -> usize {
    match ffi::drwrap_get_mcontext_ex(wc, ffi::dr_mcontext_flags_t(0)).as_ref() {
        Some(mc) => mc.__bindgen_anon_4.xsp as usize,
        None => 0,
    }
}

/// Reads a register of the wrapped call's thread.
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn register(wc: WrapContext, reg: Register) -> Option<usize> {
    mcontext(wc).map(|mc| *slot(mc, reg) as usize)
}

/// Writes a register; it takes effect when the callback returns. Writing
/// RIP needs [`redirect`] after the handlers, which this does not do.
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn set_register(wc: WrapContext, reg: Register, value: usize) -> bool {
    match mcontext(wc) {
        Some(mc) => {
            *slot(mc, reg) = value as ffi::reg_t;
            ffi::drwrap_set_mcontext(wc) != 0
        }
        None => false,
    }
}

/// Continues the thread at the (changed) RIP of the machine context instead
/// of where it was going. Call last in a callback.
///
/// # Safety
/// `wc` must be a live context.
pub unsafe fn redirect(wc: WrapContext) -> bool {
    ffi::drwrap_redirect_execution(wc) == ffi::_drext_status_t_DREXT_SUCCESS
}
