//! System calls: the parameters of one DynamoRIO stopped in its pre-syscall
//! event ([`param`], [`set_param`]), and the registers of a thread our
//! instrumentation stopped just before a `syscall` instruction or at the
//! instruction after it ([`SyscallRegisters`]).

use crate::ffi;
use crate::mcontext::{slot, Register};
use crate::process::DrContext;
use std::cell::Cell;

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

/// Sets the value the target sees returned by a system call its
/// pre-syscall event skips (returns false for).
///
/// # Safety
/// `dc` must be the context of a thread in a pre-syscall event.
pub unsafe fn set_result_of_skipped(dc: DrContext, value: isize) {
    ffi::dr_syscall_set_result(dc, value as ffi::reg_t);
}

/// Where the Linux x86-64 system-call convention passes parameter `i`.
#[cfg(target_arch = "x86_64")]
const PARAM_REGISTERS: [Register; 6] = [Register::Rdi, Register::Rsi, Register::Rdx, Register::R10, Register::R8, Register::R9];
/// Where the Linux i386 convention (int 0x80) passes parameter `i`: ebx,
/// ecx, edx, esi, edi, ebp. The vDSO's `__kernel_vsyscall` enters by
/// `sysenter` or (on AMD) `syscall` instead, which move some: see
/// [`Entry32`].
#[cfg(target_arch = "x86")]
const PARAM_REGISTERS: [Register; 6] = [Register::Rbx, Register::Rcx, Register::Rdx, Register::Rsi, Register::Rdi, Register::Rbp];

/// How a 32-bit x86 thread enters the kernel, which decides where the
/// parameters are (Linux's entry_64_compat.S and entry_32.S).
#[cfg(target_arch = "x86")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry32 {
    /// `int $0x80`: ebx, ecx, edx, esi, edi, ebp.
    Int80,
    /// `sysenter`: ebp holds the stack pointer; the sixth is at [ebp].
    Sysenter,
    /// `syscall` in 32-bit mode (it overwrites ecx): the second is in ebp,
    /// the sixth at [esp].
    Syscall,
}

#[cfg(target_arch = "x86")]
impl Entry32 {
    /// The entry the instruction at `pc` makes (`int $0x80` when it
    /// cannot be read).
    pub fn at(pc: usize) -> Entry32 {
        let mut bytes = [0u8; 2];
        crate::memory::safe_read(pc, &mut bytes);
        match bytes {
            [0x0f, 0x34] => Entry32::Sysenter,
            [0x0f, 0x05] => Entry32::Syscall,
            _ => Entry32::Int80,
        }
    }

    /// Where the kernel returns to after the instruction at `pc`, `len`
    /// bytes long: `sysenter` and `syscall` return past the `int $0x80`
    /// that follows them in the vDSO (its landing pad), not to it.
    pub fn return_pc(pc: usize, len: usize) -> usize {
        let mut bytes = [0u8; 2];
        let after = pc + len;
        let fast = Entry32::at(pc) != Entry32::Int80;
        match fast && crate::memory::safe_read(after, &mut bytes) == 2 && bytes == [0xcd, 0x80] {
            true => after + 2,
            false => after,
        }
    }
}

/// Where parameter `index` of a system call is: a register, or the 32-bit
/// stack word a register points at.
enum ParamPlace {
    Register(Register),
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    StackWordAt(Register),
}

thread_local! {
    /// The machine context the clean calls at system calls read and write:
    /// one per thread, made on first use, kept until the thread ends. With
    /// AVX-512 a `dr_mcontext_t` is ~2.5 KiB: zeroing and moving one per
    /// event cost more than the rest of the event's native work, and kept
    /// in thread-local storage it overflows the 8 KiB DynamoRIO gives all
    /// private libraries' thread-locals together.
    static MCONTEXT: Cell<*mut ffi::dr_mcontext_t> = const { Cell::new(std::ptr::null_mut()) };
}

/// The calling thread's machine context for [`SyscallRegisters`].
fn thread_mcontext() -> *mut ffi::dr_mcontext_t {
    MCONTEXT.with(|m| {
        if m.get().is_null() {
            // SAFETY: dr_mcontext_t is plain data; all zeroes is a valid value.
            m.set(Box::into_raw(unsafe { Box::<ffi::dr_mcontext_t>::new_zeroed().assume_init() }));
        }
        m.get()
    })
}

/// Frees the calling thread's machine context; call when the thread ends.
pub fn release_thread_registers() {
    let mc = MCONTEXT.with(|m| m.replace(std::ptr::null_mut()));
    if !mc.is_null() {
        // SAFETY: made by `thread_mcontext` with Box::into_raw, no longer
        // reachable from the thread-local.
        drop(unsafe { Box::from_raw(mc) });
    }
}

/// The integer registers of a thread in a clean call at a system call,
/// read from DynamoRIO on first use into the thread's machine context,
/// changed in place and written back by [`commit`](SyscallRegisters::commit)
/// only if something changed. The system-call number (before) and the
/// result (after) are RAX, which the clean call is given: an event whose
/// handlers only look at those never reads the rest.
pub struct SyscallRegisters {
    dc: DrContext,
    /// Where the thread stands (the `syscall` instruction, or the one after
    /// it), which a clean call's context does not hold.
    pc: usize,
    rax: usize,
    /// The thread's [`MCONTEXT`] once read, else null: one
    /// `SyscallRegisters` per thread at a time uses it (one clean call runs
    /// at a time), and it never leaves the thread (a raw pointer keeps the
    /// type `!Send`).
    mc: *mut ffi::dr_mcontext_t,
    changed: bool,
}

const INTEGER_AND_CONTROL: ffi::dr_mcontext_flags_t =
    ffi::dr_mcontext_flags_t(ffi::dr_mcontext_flags_t::DR_MC_INTEGER.0 | ffi::dr_mcontext_flags_t::DR_MC_CONTROL.0);

impl SyscallRegisters {
    /// The registers of the thread whose clean call is running at `pc`,
    /// with the application's RAX there.
    ///
    /// # Safety
    /// `dc` must be the calling thread's context, in a clean call, and no
    /// other `SyscallRegisters` of this thread may be alive.
    pub unsafe fn new(dc: DrContext, pc: usize, rax: usize) -> SyscallRegisters {
        SyscallRegisters { dc, pc, rax, mc: std::ptr::null_mut(), changed: false }
    }

    fn mc(&mut self) -> &mut ffi::dr_mcontext_t {
        if self.mc.is_null() {
            let mc = thread_mcontext();
            // SAFETY: the thread's own context, used by this value alone
            // (see `new`); `dc` is the thread's, in its clean call, where
            // DynamoRIO always has the registers (were it to refuse, they
            // would read as zero, not as another event's).
            unsafe {
                (*mc).size = std::mem::size_of::<ffi::dr_mcontext_t>();
                (*mc).flags = INTEGER_AND_CONTROL;
                if ffi::dr_get_mcontext(self.dc, mc) == 0 {
                    Register::GENERAL.iter().for_each(|&reg| *slot(&mut *mc, reg) = 0);
                }
                *slot(&mut *mc, Register::Rip) = self.pc as ffi::reg_t;
            }
            self.mc = mc;
        }
        // SAFETY: as above.
        unsafe { &mut *self.mc }
    }

    pub fn register(&mut self, reg: Register) -> usize {
        *slot(self.mc(), reg) as usize
    }

    /// Sets a register; RIP cannot be set (a clean call returns where it
    /// was inserted).
    pub fn set_register(&mut self, reg: Register, value: usize) -> bool {
        if reg == Register::Rip {
            return false;
        }
        *slot(self.mc(), reg) = value as ffi::reg_t;
        self.changed = true;
        true
    }

    /// Where parameter `index` (0–5) of the system call at `self.pc` is.
    fn param_place(&self, index: usize) -> Option<ParamPlace> {
        let reg = *PARAM_REGISTERS.get(index)?;
        #[cfg(target_arch = "x86")]
        match (Entry32::at(self.pc), index) {
            (Entry32::Sysenter, 5) => return Some(ParamPlace::StackWordAt(Register::Rbp)),
            (Entry32::Syscall, 1) => return Some(ParamPlace::Register(Register::Rbp)),
            (Entry32::Syscall, 5) => return Some(ParamPlace::StackWordAt(Register::Rsp)),
            _ => {}
        }
        Some(ParamPlace::Register(reg))
    }

    /// Parameter `index` (0–5) of the system call about to be made.
    pub fn param(&mut self, index: usize) -> Option<usize> {
        match self.param_place(index)? {
            ParamPlace::Register(reg) => Some(self.register(reg)),
            ParamPlace::StackWordAt(reg) => {
                let mut word = [0u8; 4];
                crate::memory::safe_read(self.register(reg), &mut word);
                Some(u32::from_le_bytes(word) as usize)
            }
        }
    }

    /// Changes parameter `index` before the kernel reads it (a stack word
    /// is written in place).
    pub fn set_param(&mut self, index: usize, value: usize) -> bool {
        match self.param_place(index) {
            Some(ParamPlace::Register(reg)) => self.set_register(reg, value),
            Some(ParamPlace::StackWordAt(reg)) => {
                let at = self.register(reg);
                crate::memory::safe_write(at, &(value as u32).to_le_bytes())
            }
            None => false,
        }
    }

    /// The value the kernel returned (a negative errno on failure).
    pub fn result(&mut self) -> usize {
        match self.mc.is_null() {
            true => self.rax,
            false => self.register(Register::Rax),
        }
    }

    pub fn set_result(&mut self, value: usize) {
        self.set_register(Register::Rax, value);
    }

    /// Whether a register was set.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Writes the registers back to the thread if they changed.
    ///
    /// # Safety
    /// The clean call that captured them must still be running.
    pub unsafe fn commit(mut self) -> bool {
        !self.changed || ffi::dr_set_mcontext(self.dc, self.mc()) != 0
    }

    /// Goes on at `next_pc` (where the kernel would return) as if it had
    /// returned `result`, without making the system call: on x86-64, RCX
    /// and R11 hold what `syscall` leaves there (the return address and
    /// the flags). Returns only if DynamoRIO refused.
    ///
    /// # Safety
    /// The clean call that captured the registers must be running, and
    /// nothing on the Rust stack between here and it may need dropping:
    /// DynamoRIO resumes the application without returning.
    pub unsafe fn skip_to(mut self, next_pc: usize, result: usize) {
        self.set_result(result);
        // On 32-bit x86 `int $0x80` keeps every other register, and the
        // vDSO's landing pad after `sysenter` or `syscall` pops what they
        // overwrite.
        #[cfg(target_arch = "x86_64")]
        {
            let flags = self.register(Register::Rflags);
            self.set_register(Register::Rcx, next_pc);
            self.set_register(Register::R11, flags);
        }
        let dc = self.dc;
        if self.commit() {
            crate::instrument::resume_at(dc, next_pc);
        }
    }
}
