//! drwrap: function entry and exit. ProcessTap wraps each probed function
//! once, at module load, and unwraps it at unload.

use crate::ffi;
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
pub fn init() -> bool {
    // SAFETY: plain initialization call; balanced by [`exit`].
    unsafe { ffi::drwrap_init() != 0 }
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

/// The general-purpose registers, the flags and the program counter, as
/// scripts name them (`ctx.regs.RAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rbp, Rsp,
    R8, R9, R10, R11, R12, R13, R14, R15,
    Rflags, Rip,
}

impl Register {
    /// Every register with its script name; `STACKPTR` and `INSTPTR` are
    /// aliases of RSP and RIP.
    pub const NAMES: [(&'static str, Register); 20] = [
        ("RAX", Register::Rax), ("RBX", Register::Rbx), ("RCX", Register::Rcx), ("RDX", Register::Rdx),
        ("RSI", Register::Rsi), ("RDI", Register::Rdi), ("RBP", Register::Rbp), ("RSP", Register::Rsp),
        ("R8", Register::R8), ("R9", Register::R9), ("R10", Register::R10), ("R11", Register::R11),
        ("R12", Register::R12), ("R13", Register::R13), ("R14", Register::R14), ("R15", Register::R15),
        ("RFLAGS", Register::Rflags), ("RIP", Register::Rip), ("STACKPTR", Register::Rsp), ("INSTPTR", Register::Rip),
    ];

    pub fn from_name(name: &str) -> Option<Register> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }
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

/// Where `reg` lives in a machine context.
fn slot(mc: &mut ffi::dr_mcontext_t, reg: Register) -> &mut ffi::reg_t {
    // SAFETY: each union's members are the same register under two names
    // (rax/xax ...), all plain words.
    unsafe {
        match reg {
            Register::Rdi => &mut mc.__bindgen_anon_1.xdi,
            Register::Rsi => &mut mc.__bindgen_anon_2.xsi,
            Register::Rbp => &mut mc.__bindgen_anon_3.xbp,
            Register::Rsp => &mut mc.__bindgen_anon_4.xsp,
            Register::Rbx => &mut mc.__bindgen_anon_5.xbx,
            Register::Rdx => &mut mc.__bindgen_anon_6.xdx,
            Register::Rcx => &mut mc.__bindgen_anon_7.xcx,
            Register::Rax => &mut mc.__bindgen_anon_8.xax,
            Register::R8 => &mut mc.r8,
            Register::R9 => &mut mc.r9,
            Register::R10 => &mut mc.r10,
            Register::R11 => &mut mc.r11,
            Register::R12 => &mut mc.r12,
            Register::R13 => &mut mc.r13,
            Register::R14 => &mut mc.r14,
            Register::R15 => &mut mc.r15,
            Register::Rflags => &mut mc.__bindgen_anon_9.xflags,
            Register::Rip => &mut *(&mut mc.__bindgen_anon_10.xip as *mut *mut u8 as *mut ffi::reg_t),
        }
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
