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
    let flags = ffi::drwrap_wrap_flags_t_DRWRAP_UNWIND_ON_EXCEPTION | ffi::drwrap_callconv_t_DRWRAP_CALLCONV_DEFAULT as ffi::drwrap_wrap_flags_t;
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
