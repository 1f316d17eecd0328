//! A large stack for Python. DynamoRIO runs client code on a 24 KiB
//! per-thread stack, far too small for CPython's compiler, importer and
//! tracebacks. The dispatcher gives each thread a stack of its own from
//! DynamoRIO's memory ([`allocate`]) and runs Python on it ([`run_on`]).

use std::ffi::c_void;

/// Size of each thread's Python stack.
pub const STACK_SIZE: usize = 8 << 20;

/// Maps a fresh stack; returns its base (lowest address).
pub fn allocate() -> Option<usize> {
    dr_sys::memory::raw_alloc(STACK_SIZE).map(|p| p as usize)
}

/// Unmaps a stack from [`allocate`].
///
/// # Safety
/// Nothing may run on the stack any more.
pub unsafe fn free(base: usize) {
    dr_sys::memory::raw_free(base as *mut u8, STACK_SIZE);
}

/// Runs `f` with the stack pointer at the top of the stack at `base`.
///
/// # Safety
/// `base` must come from [`allocate`], and nothing else may be running on
/// that stack (the calling thread is not already on it).
pub unsafe fn run_on<R>(base: usize, f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut result = None;
    let mut body = || result = Some((f.take().unwrap())());
    let entry = trampoline_for(&body);
    call_on_stack(base + STACK_SIZE, entry, &mut body as *mut _ as *mut c_void);
    result.unwrap()
}

/// The C-ABI entry that calls a closure of `body`'s type.
fn trampoline_for<F: FnMut()>(_body: &F) -> extern "C" fn(*mut c_void) {
    trampoline::<F>
}

extern "C" fn trampoline<F: FnMut()>(data: *mut c_void) {
    // SAFETY: `data` is the `&mut F` passed to call_on_stack.
    let f = unsafe { &mut *(data as *mut F) };
    f();
}

/// Calls `f(data)` with the stack pointer at `top`, then switches back.
///
/// # Safety
/// `top` must be the 16-byte aligned end of a mapped stack nobody uses.
#[cfg(target_arch = "x86_64")]
unsafe fn call_on_stack(top: usize, f: extern "C" fn(*mut c_void), data: *mut c_void) {
    std::arch::asm!(
        "mov r12, rsp",
        "mov rsp, {top}",
        "call {f}",
        "mov rsp, r12",
        top = in(reg) top,
        f = in(reg) f,
        in("rdi") data,
        out("r12") _,
        clobber_abi("C"),
    );
}

#[cfg(target_arch = "x86")]
unsafe fn call_on_stack(top: usize, f: extern "C" fn(*mut c_void), data: *mut c_void) {
    std::arch::asm!(
        // edi, callee-saved, keeps the old stack pointer (LLVM reserves esi
        // and ebx on x86 and refuses them as operands).
        "mov edi, esp",
        "mov esp, {top}",
        "sub esp, 12",
        "push {data}",
        "call {f}",
        "mov esp, edi",
        top = in(reg) top,
        f = in(reg) f,
        data = in(reg) data,
        out("edi") _,
        clobber_abi("C"),
    );
}
