//! A large stack for Python. DynamoRIO runs client code on a 24 KiB
//! per-thread stack, far too small for CPython's compiler, importer and
//! tracebacks. Every entry into Python goes through [`on_python_stack`],
//! which switches the thread to a stack of its own (allocated on first use
//! from DynamoRIO's memory, freed at thread exit).

use std::cell::Cell;
use std::ffi::c_void;

/// Size of each thread's Python stack.
const STACK_SIZE: usize = 8 << 20;

thread_local! {
    /// Base of this thread's Python stack, or 0 before first use.
    static STACK_BASE: Cell<usize> = const { Cell::new(0) };
    /// True while this thread runs on its Python stack.
    static ON_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the calling thread's Python stack (directly, if it already
/// runs there).
pub fn on_python_stack<R>(f: impl FnOnce() -> R) -> R {
    if ON_STACK.get() {
        return f();
    }
    let base = match STACK_BASE.get() {
        0 => {
            let Some(p) = dr_sys::memory::raw_alloc(STACK_SIZE) else {
                // No memory for a stack: run where we are rather than fail.
                return f();
            };
            STACK_BASE.set(p as usize);
            p as usize
        }
        b => b,
    };
    let mut f = Some(f);
    let mut result = None;
    let mut body = || result = Some((f.take().unwrap())());
    ON_STACK.set(true);
    // SAFETY: the stack is ours, mapped and unused (ON_STACK was false);
    // its top is 16-byte aligned; `body` lives until the call returns.
    let entry = trampoline_for(&body);
    unsafe { call_on_stack(base + STACK_SIZE, entry, &mut body as *mut _ as *mut c_void) };
    ON_STACK.set(false);
    result.unwrap()
}

/// Frees the calling thread's Python stack; call from its thread-exit event.
pub fn release_thread_stack() {
    let base = STACK_BASE.replace(0);
    if base != 0 && !ON_STACK.get() {
        // SAFETY: allocated by raw_alloc with this size; not in use.
        unsafe { dr_sys::memory::raw_free(base as *mut u8, STACK_SIZE) };
    }
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
        "mov esi, esp",
        "mov esp, {top}",
        "sub esp, 12",
        "push {data}",
        "call {f}",
        "mov esp, esi",
        top = in(reg) top,
        f = in(reg) f,
        data = in(reg) data,
        out("esi") _,
        clobber_abi("C"),
    );
}
