//! The application's machine context: registers by the names scripts use,
//! shared by function wrapping ([`crate::wrap`]) and system calls
//! ([`crate::syscall`]).

use crate::ffi;

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
    /// aliases of the stack pointer and the program counter on both
    /// architectures. On 32-bit x86 the names are i386's (EAX for the
    /// register the enum calls Rax), and R8–R15 do not exist.
    #[cfg(target_arch = "x86_64")]
    pub const NAMES: &'static [(&'static str, Register)] = &[
        ("RAX", Register::Rax), ("RBX", Register::Rbx), ("RCX", Register::Rcx), ("RDX", Register::Rdx),
        ("RSI", Register::Rsi), ("RDI", Register::Rdi), ("RBP", Register::Rbp), ("RSP", Register::Rsp),
        ("R8", Register::R8), ("R9", Register::R9), ("R10", Register::R10), ("R11", Register::R11),
        ("R12", Register::R12), ("R13", Register::R13), ("R14", Register::R14), ("R15", Register::R15),
        ("RFLAGS", Register::Rflags), ("RIP", Register::Rip), ("STACKPTR", Register::Rsp), ("INSTPTR", Register::Rip),
    ];
    #[cfg(target_arch = "x86")]
    pub const NAMES: &'static [(&'static str, Register)] = &[
        ("EAX", Register::Rax), ("EBX", Register::Rbx), ("ECX", Register::Rcx), ("EDX", Register::Rdx),
        ("ESI", Register::Rsi), ("EDI", Register::Rdi), ("EBP", Register::Rbp), ("ESP", Register::Rsp),
        ("EFLAGS", Register::Rflags), ("EIP", Register::Rip), ("STACKPTR", Register::Rsp), ("INSTPTR", Register::Rip),
    ];

    /// The names, for a message: "RAX..R15, RIP, RSP, ...".
    #[cfg(target_arch = "x86_64")]
    pub const SUMMARY: &'static str = "x86-64: RAX..R15, RIP, RSP, RBP, RFLAGS, STACKPTR, INSTPTR";
    #[cfg(target_arch = "x86")]
    pub const SUMMARY: &'static str = "32-bit x86: EAX, EBX, ECX, EDX, ESI, EDI, EBP, ESP, EIP, EFLAGS, STACKPTR, INSTPTR";

    /// The general-purpose registers and the flags: all but RIP.
    #[cfg(target_arch = "x86_64")]
    pub const GENERAL: &'static [Register] = &[
        Register::Rax, Register::Rbx, Register::Rcx, Register::Rdx, Register::Rsi, Register::Rdi,
        Register::Rbp, Register::Rsp, Register::R8, Register::R9, Register::R10, Register::R11,
        Register::R12, Register::R13, Register::R14, Register::R15, Register::Rflags,
    ];
    #[cfg(target_arch = "x86")]
    pub const GENERAL: &'static [Register] = &[
        Register::Rax, Register::Rbx, Register::Rcx, Register::Rdx, Register::Rsi, Register::Rdi,
        Register::Rbp, Register::Rsp, Register::Rflags,
    ];

    pub fn from_name(name: &str) -> Option<Register> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }
}

/// Where `reg` lives in a machine context.
pub fn slot(mc: &mut ffi::dr_mcontext_t, reg: Register) -> &mut ffi::reg_t {
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
            #[cfg(target_arch = "x86_64")]
            Register::R8 => &mut mc.r8,
            #[cfg(target_arch = "x86_64")]
            Register::R9 => &mut mc.r9,
            #[cfg(target_arch = "x86_64")]
            Register::R10 => &mut mc.r10,
            #[cfg(target_arch = "x86_64")]
            Register::R11 => &mut mc.r11,
            #[cfg(target_arch = "x86_64")]
            Register::R12 => &mut mc.r12,
            #[cfg(target_arch = "x86_64")]
            Register::R13 => &mut mc.r13,
            #[cfg(target_arch = "x86_64")]
            Register::R14 => &mut mc.r14,
            #[cfg(target_arch = "x86_64")]
            Register::R15 => &mut mc.r15,
            // Not in NAMES or GENERAL there, so no script names them, and
            // nothing in ProcessTap asks for them on 32-bit x86.
            #[cfg(target_arch = "x86")]
            Register::R8 | Register::R9 | Register::R10 | Register::R11
            | Register::R12 | Register::R13 | Register::R14 | Register::R15 => {
                unreachable!("32-bit x86 has no {reg:?}")
            }
            Register::Rflags => &mut mc.__bindgen_anon_9.xflags,
            Register::Rip => &mut *(&mut mc.__bindgen_anon_10.xip as *mut *mut u8 as *mut ffi::reg_t),
        }
    }
}

/// The low 64 bits of vector register `n` (xmm`n`): where the SysV ABI
/// passes a `double` or `float` argument and returns a floating result.
pub fn xmm_low(mc: &ffi::dr_mcontext_t, n: usize) -> u64 {
    // SAFETY: every member of the union is plain bits.
    #[cfg(target_arch = "x86_64")]
    unsafe { mc.__bindgen_anon_11.simd[n].u64_[0] }
    // 32-bit DynamoRIO has no u64 view of a vector register. (The i386 SysV
    // ABI passes floating arguments on the stack and returns them in st0,
    // not in xmm registers: callers relying on that are x86-64 only.)
    #[cfg(target_arch = "x86")]
    unsafe {
        let words = &mc.__bindgen_anon_11.simd[n].u32_;
        words[0] as u64 | (words[1] as u64) << 32
    }
}

/// Sets the low 64 bits of xmm`n`, leaving the rest of the register.
pub fn set_xmm_low(mc: &mut ffi::dr_mcontext_t, n: usize, bits: u64) {
    // SAFETY: as for [`xmm_low`].
    #[cfg(target_arch = "x86_64")]
    unsafe { mc.__bindgen_anon_11.simd[n].u64_[0] = bits }
    #[cfg(target_arch = "x86")]
    unsafe {
        let words = &mut mc.__bindgen_anon_11.simd[n].u32_;
        words[0] = bits as u32;
        words[1] = (bits >> 32) as u32;
    }
}
