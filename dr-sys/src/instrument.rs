//! Instrumentation at basic-block building: looking at the application's
//! instructions and inserting clean calls before them.

use crate::ffi;
use crate::process::DrContext;
use std::ffi::c_void;

/// A basic block's instruction list, as drmgr hands it to an insertion
/// callback.
pub type InstrList = *mut ffi::instrlist_t;
/// One instruction of such a list.
pub type Instr = *mut ffi::instr_t;

/// Whether `instr` is the application's own (not instrumentation).
///
/// # Safety
/// `instr` must be an instruction of a list being built.
pub unsafe fn is_app(instr: Instr) -> bool {
    ffi::instr_is_app(instr) != 0
}

/// Whether `instr` enters the kernel (`syscall`, `sysenter`, `int 0x80`).
///
/// # Safety
/// As for [`is_app`].
pub unsafe fn is_syscall(instr: Instr) -> bool {
    ffi::instr_is_syscall(instr) != 0
}

/// Whether `instr` is the first application instruction of `bb`.
///
/// # Safety
/// `instr` must belong to `bb`, a list being built.
pub unsafe fn is_first_app(bb: InstrList, instr: Instr) -> bool {
    ffi::instrlist_first_app(bb) == instr
}

/// The application address of `instr`.
///
/// # Safety
/// As for [`is_app`].
pub unsafe fn app_pc(instr: Instr) -> usize {
    ffi::instr_get_app_pc(instr) as usize
}

/// The application address of the instruction after `instr`.
///
/// # Safety
/// As for [`is_app`]; `dc` is the building thread's context.
pub unsafe fn next_app_pc(dc: DrContext, instr: Instr) -> usize {
    app_pc(instr) + ffi::instr_length(dc, instr) as usize
}

/// The system-call number the block puts in RAX before the system call
/// `instr` (`mov $n, %eax`, or `xor %eax, %eax` for 0), if the block
/// shows it: the last application instruction before `instr` that writes
/// RAX must set a constant. The same search DynamoRIO makes to decide
/// which system calls it may run inside the code cache.
///
/// # Safety
/// `instr` must belong to a list being built.
pub unsafe fn syscall_number_set_before(instr: Instr) -> Option<i64> {
    let mut prev = ffi::instr_get_prev(instr);
    while !prev.is_null() {
        if is_app(prev) {
            if ffi::instr_writes_to_reg(prev, XAX, ffi::_dr_opnd_query_flags_t_DR_QUERY_INCLUDE_ALL as _) != 0 {
                break;
            }
            if ffi::instr_is_cti(prev) != 0 || is_syscall(prev) || ffi::instr_is_interrupt(prev) != 0 {
                return None;
            }
        }
        prev = ffi::instr_get_prev(prev);
    }
    if prev.is_null() {
        return None;
    }
    let mut value: ffi::ptr_int_t = 0;
    let sets_constant = ffi::instr_is_mov_constant(prev, &mut value) != 0;
    let dst = ffi::instr_get_dst(prev, 0);
    // All of RAX: a 32-bit write clears the upper half, a narrower one
    // keeps what was there.
    let whole = [ffi::DR_REG_RAX as ffi::reg_id_t, ffi::DR_REG_EAX as ffi::reg_id_t];
    let into_rax = ffi::opnd_is_reg(dst) != 0 && whole.contains(&ffi::opnd_get_reg(dst));
    (sets_constant && into_rax).then_some(value as i64)
}

/// The target's pointer-sized registers and operand size: DynamoRIO's
/// DR_REG_XAX, DR_REG_XCX, DR_REG_XSP and OPSZ_PTR, macros bindgen does not
/// carry. (RAX and OPSZ_8 do not encode in 32-bit code.)
#[cfg(target_arch = "x86_64")]
mod ptr_sized {
    use crate::ffi;
    pub const XAX: ffi::reg_id_t = ffi::DR_REG_RAX as ffi::reg_id_t;
    pub const XCX: ffi::reg_id_t = ffi::DR_REG_RCX as ffi::reg_id_t;
    pub const XSP: ffi::reg_id_t = ffi::DR_REG_RSP as ffi::reg_id_t;
    pub const OPSZ_PTR: ffi::opnd_size_t = ffi::OPSZ_8 as ffi::opnd_size_t;
}
#[cfg(target_arch = "x86")]
mod ptr_sized {
    use crate::ffi;
    pub const XAX: ffi::reg_id_t = ffi::DR_REG_EAX as ffi::reg_id_t;
    pub const XCX: ffi::reg_id_t = ffi::DR_REG_ECX as ffi::reg_id_t;
    pub const XSP: ffi::reg_id_t = ffi::DR_REG_ESP as ffi::reg_id_t;
    pub const OPSZ_PTR: ffi::opnd_size_t = ffi::OPSZ_4 as ffi::opnd_size_t;
}
pub(crate) use ptr_sized::{OPSZ_PTR, XAX, XCX, XSP};

/// An argument of a clean call.
#[derive(Clone, Copy)]
pub enum Arg {
    /// The application's RAX where the call is made.
    Rax,
    /// The application's stack pointer there.
    Rsp,
    /// A constant word.
    Word(usize),
}

impl Arg {
    unsafe fn operand(self) -> ffi::opnd_t {
        match self {
            Arg::Rax => ffi::opnd_create_reg(XAX),
            Arg::Rsp => ffi::opnd_create_reg(XSP),
            Arg::Word(w) => ffi::opnd_create_immed_int(w as ffi::ptr_int_t, OPSZ_PTR),
        }
    }
}

/// Inserts before `where_` a clean call of `callee` with `args` (one to
/// four): the application's registers saved (vector registers too, not the
/// x87 state), readable and writable from the callee through the thread's
/// machine context.
///
/// # Safety
/// `where_` must belong to `bb`, being built by the thread of `dc`;
/// `callee` must be an `extern "C"` function taking `args.len()` words.
pub unsafe fn insert_clean_call(dc: DrContext, bb: InstrList, where_: Instr, callee: *mut c_void, args: &[Arg]) {
    insert_clean_call_with(dc, bb, where_, callee, args, 0);
}

unsafe fn insert_clean_call_with(dc: DrContext, bb: InstrList, where_: Instr, callee: *mut c_void, args: &[Arg], extra: ffi::dr_cleancall_save_t) {
    let flags = ffi::dr_cleancall_save_t_DR_CLEANCALL_READS_APP_CONTEXT | ffi::dr_cleancall_save_t_DR_CLEANCALL_WRITES_APP_CONTEXT | extra;
    match *args {
        [] => ffi::dr_insert_clean_call_ex(dc, bb, where_, callee, flags, 0),
        [a] => ffi::dr_insert_clean_call_ex(dc, bb, where_, callee, flags, 1, a.operand()),
        [a, b] => ffi::dr_insert_clean_call_ex(dc, bb, where_, callee, flags, 2, a.operand(), b.operand()),
        [a, b, c] => ffi::dr_insert_clean_call_ex(dc, bb, where_, callee, flags, 3, a.operand(), b.operand(), c.operand()),
        [a, b, c, d] => {
            ffi::dr_insert_clean_call_ex(dc, bb, where_, callee, flags, 4, a.operand(), b.operand(), c.operand(), d.operand())
        }
        _ => panic!("insert_clean_call takes at most four arguments"),
    }
}

/// A clean call emitted once, outside the code cache, that inserted code
/// enters with a jump: what DynamoRIO's `memtrace_x86` sample calls a lean
/// procedure. A clean call inline is ~75 instructions for DynamoRIO to
/// encode at each place (the registers, the vector registers, the stack
/// switch); entering a shared one is seven (a word for the callee and the
/// address to come back to stored in thread-local slots through RCX, RCX
/// saved and restored around it, and the jump), and the registers are the
/// application's again when the clean call saves them, so the callee
/// sees the application's registers as an inline clean call's would, and
/// may redirect the thread as one may.
#[derive(Clone, Copy)]
pub struct SharedCall {
    entry: usize,
    arg: RawTlsWord,
    back: RawTlsWord,
}

/// Where RCX waits while a shared clean call's entry is set up.
const SHARED_CALL_SLOT: ffi::dr_spill_slot_t = ffi::dr_spill_slot_t::SPILL_SLOT_1;

/// Room for the shared clean call's code.
const SHARED_CALL_BYTES: usize = 4096;

impl SharedCall {
    /// Emits the clean call of `callee`, which reads its word with
    /// [`Self::arg`]; `None` when DynamoRIO has no thread-local slots or
    /// memory left.
    ///
    /// # Safety
    /// From the client's start (a DynamoRIO context is current);
    /// `callee` is an `extern "C"` function of no arguments.
    pub unsafe fn new(callee: *mut c_void) -> Option<SharedCall> {
        let (arg, back) = (RawTlsWord::allocate()?, RawTlsWord::allocate()?);
        let dc = ffi::dr_get_current_drcontext();
        let prot = ffi::DR_MEMPROT_READ | ffi::DR_MEMPROT_WRITE | ffi::DR_MEMPROT_EXEC;
        let code = ffi::dr_nonheap_alloc(SHARED_CALL_BYTES, prot) as *mut u8;
        if code.is_null() {
            return None;
        }
        let ilist = ffi::instrlist_create(dc);
        //     <clean call of callee>; jmp qword gs:[back]
        let go_back = ffi::instr_create_0dst_1src(dc, ffi::OP_jmp_ind as i32, back.operand());
        ffi::instrlist_meta_append(ilist, go_back);
        // No READS/WRITES_APP_CONTEXT: those are for drreg, which has no
        // block here to mend.
        ffi::dr_insert_clean_call_ex(dc, ilist, go_back, callee, 0, 0);
        let end = ffi::instrlist_encode(dc, ilist, code, 1);
        ffi::instrlist_clear_and_destroy(dc, ilist);
        if end.is_null() || end as usize - code as usize > SHARED_CALL_BYTES {
            return None;
        }
        ffi::dr_memory_protect(code as *mut c_void, SHARED_CALL_BYTES, ffi::DR_MEMPROT_READ | ffi::DR_MEMPROT_EXEC);
        Some(SharedCall { entry: code as usize, arg, back })
    }

    /// Inserts before `where_` an entry into the clean call with `arg` as
    /// its word.
    ///
    /// # Safety
    /// In an insertion callback of thread `dc`, `where_` in `bb`.
    pub unsafe fn insert(self, dc: DrContext, bb: InstrList, where_: Instr, arg: usize) {
        //     save rcx; rcx = arg; gs:[arg] = rcx; rcx = &back; gs:[back] = rcx
        //     restore rcx; jmp entry
        // back:
        // (A store of the label's address to memory outright, two 32-bit
        // halves, crashed DynamoRIO's encoder; through a register, as the
        // memtrace_x86 sample does, it encodes.)
        let back = ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
        let rcx = XCX;
        let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
        let load = |value: ffi::opnd_t| meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, ffi::opnd_create_reg(rcx), value));
        ffi::dr_save_reg(dc, bb, where_, rcx, SHARED_CALL_SLOT);
        load(ffi::opnd_create_immed_int(arg as ffi::ptr_int_t, OPSZ_PTR));
        self.arg.insert_write(dc, bb, where_, rcx);
        load(ffi::opnd_create_instr(back));
        self.back.insert_write(dc, bb, where_, rcx);
        ffi::dr_restore_reg(dc, bb, where_, rcx, SHARED_CALL_SLOT);
        meta(ffi::instr_create_0dst_1src(dc, ffi::OP_jmp as i32, ffi::opnd_create_pc(self.entry as *mut u8)));
        meta(back);
    }

    /// The word the running thread entered the clean call with.
    ///
    /// # Safety
    /// From the callee, in its clean call.
    pub unsafe fn arg(self) -> usize {
        self.arg.get()
    }
}

/// The segment of DynamoRIO's thread-local block on Linux: GS on x86-64,
/// FS on 32-bit x86 (the one glibc's TLS leaves free; core/unix/os_exports.h).
#[cfg(target_arch = "x86_64")]
const TLS_SEGMENT: ffi::reg_id_t = ffi::DR_SEG_GS as ffi::reg_id_t;
#[cfg(target_arch = "x86")]
const TLS_SEGMENT: ffi::reg_id_t = ffi::DR_SEG_FS as ffi::reg_id_t;

/// A word of per-thread storage that inserted code reads directly
/// (DynamoRIO's raw thread-local slots, zero in each new thread).
#[derive(Clone, Copy)]
pub struct RawTlsWord {
    segment: ffi::reg_id_t,
    offset: u32,
}

impl RawTlsWord {
    /// Takes a slot; `None` when DynamoRIO has none left, or keeps its
    /// thread-local block elsewhere than in [`TLS_SEGMENT`].
    pub fn allocate() -> Option<RawTlsWord> {
        let (mut segment, mut offset) = (0, 0);
        // SAFETY: plain out-parameters.
        let ok = unsafe { ffi::dr_raw_tls_calloc(&mut segment, &mut offset, 1, 0) != 0 };
        (ok && segment == TLS_SEGMENT).then_some(RawTlsWord { segment, offset })
    }

    /// Inserts before `where_` a store of `reg` into the running thread's word.
    ///
    /// # Safety
    /// In an insertion callback of thread `dc`, `where_` in `bb`.
    pub unsafe fn insert_write(self, dc: DrContext, bb: InstrList, where_: Instr, reg: ffi::reg_id_t) {
        ffi::dr_insert_write_raw_tls(dc, bb, where_, self.segment, self.offset, reg);
    }

    /// Inserts before `where_` a load of the running thread's word into `reg`.
    ///
    /// # Safety
    /// As for [`Self::insert_write`].
    pub unsafe fn insert_read(self, dc: DrContext, bb: InstrList, where_: Instr, reg: ffi::reg_id_t) {
        ffi::dr_insert_read_raw_tls(dc, bb, where_, self.segment, self.offset, reg);
    }

    /// The running thread's word as a memory operand of inserted code.
    pub fn operand(self) -> ffi::opnd_t {
        // SAFETY: builds an operand value; nothing is read or written.
        unsafe { ffi::opnd_create_far_base_disp(self.segment, 0, 0, 0, self.offset as i32, OPSZ_PTR) }
    }

    /// The calling thread's word.
    ///
    /// # Safety
    /// As for [`Self::set`].
    pub unsafe fn get(self) -> usize {
        let value: usize;
        #[cfg(target_arch = "x86_64")]
        std::arch::asm!("mov {value}, qword ptr gs:[{offset}]", offset = in(reg) self.offset as usize, value = out(reg) value,
            options(nostack, preserves_flags, readonly));
        #[cfg(target_arch = "x86")]
        std::arch::asm!("mov {value}, dword ptr fs:[{offset}]", offset = in(reg) self.offset as usize, value = out(reg) value,
            options(nostack, preserves_flags, readonly));
        value
    }

    /// Sets the calling thread's word.
    ///
    /// # Safety
    /// The calling thread must be one DynamoRIO runs, in a callback or a
    /// clean call ([`TLS_SEGMENT`] is DynamoRIO's thread-local block there).
    pub unsafe fn set(self, value: usize) {
        // A segment-relative store: asking DynamoRIO for the segment base
        // (dr_get_dr_segment_base) makes a system call.
        #[cfg(target_arch = "x86_64")]
        std::arch::asm!("mov qword ptr gs:[{offset}], {value}", offset = in(reg) self.offset as usize, value = in(reg) value,
            options(nostack, preserves_flags));
        #[cfg(target_arch = "x86")]
        std::arch::asm!("mov dword ptr fs:[{offset}], {value}", offset = in(reg) self.offset as usize, value = in(reg) value,
            options(nostack, preserves_flags));
    }
}

/// [`insert_clean_call`], made only when the running thread's `flag` is
/// not zero; otherwise the thread goes on after a compare of the word in
/// memory and a branch where the application does not read the flags the
/// compare sets, else after a load and a branch, with RCX kept in a spill
/// slot meanwhile (`jrcxz` tests it without touching the flags, so nothing
/// else needs saving).
///
/// # Safety
/// As for [`insert_clean_call`].
pub unsafe fn insert_clean_call_if(dc: DrContext, bb: InstrList, where_: Instr, flag: RawTlsWord, callee: *mut c_void, args: &[Arg]) {
    insert_clean_call_if_before(dc, bb, where_, where_, flag, callee, args)
}

/// [`insert_clean_call_if`] before `where_`, on a way that goes on at
/// `then` (the flags must be kept where they are live there).
///
/// # Safety
/// As for [`insert_clean_call`]; `then` is an instruction of `bb`.
pub unsafe fn insert_clean_call_if_before(dc: DrContext, bb: InstrList, where_: Instr, then: Instr, flag: RawTlsWord, callee: *mut c_void, args: &[Arg]) {
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    if !arith_flags_live_at(then) {
        //     cmp qword gs:[flag], 0; je done; <clean call>
        // done: where_
        let done = label();
        let word = flag.operand();
        let zero = ffi::opnd_create_immed_int(0, ffi::OPSZ_1 as ffi::opnd_size_t);
        meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, word, zero));
        meta(ffi::instr_create_0dst_1src(dc, ffi::OP_jz as i32, ffi::opnd_create_instr(done)));
        insert_clean_call(dc, bb, where_, callee, args);
        meta(done);
        return;
    }
    let rcx = XCX;
    let slot = ffi::dr_spill_slot_t::SPILL_SLOT_1;
    let (skip, call, done) = (label(), label(), label());
    let jump = |to: Instr| ffi::instr_create_0dst_1src(dc, ffi::OP_jmp as i32, ffi::opnd_create_instr(to));
    //     save rcx; rcx = flag; jrcxz skip; jmp call
    // skip: restore rcx; jmp done
    // call: restore rcx; <clean call>
    // done: where_
    // (jrcxz reaches only 127 bytes, less than a clean call's length.)
    ffi::dr_save_reg(dc, bb, where_, rcx, slot);
    ffi::dr_insert_read_raw_tls(dc, bb, where_, flag.segment, flag.offset, rcx);
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_jecxz as i32, ffi::opnd_create_instr(skip), ffi::opnd_create_reg(rcx)));
    meta(jump(call));
    meta(skip);
    ffi::dr_restore_reg(dc, bb, where_, rcx, slot);
    meta(jump(done));
    meta(call);
    ffi::dr_restore_reg(dc, bb, where_, rcx, slot);
    insert_clean_call(dc, bb, where_, callee, args);
    meta(done);
}

/// [`insert_clean_call`], made only when the application's RAX (EAX) is
/// one of `numbers`: before a `syscall` whose block does not show its
/// number, the calls no probe wants go on after a `lea` and a `jrcxz` per
/// number, which leave the arithmetic flags alone, with RCX kept in a
/// spill slot meanwhile.
///
/// # Safety
/// As for [`insert_clean_call`].
pub unsafe fn insert_clean_call_if_rax_in(dc: DrContext, bb: InstrList, where_: Instr, numbers: &[i64], callee: *mut c_void, args: &[Arg]) {
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    let (rax, rcx) = (XAX, XCX);
    let slot = ffi::dr_spill_slot_t::SPILL_SLOT_1;
    let (hit, done) = (label(), label());
    //     save rcx
    //     lea rcx, [rax - n1]; jrcxz hit      (once per number)
    //     restore rcx; jmp done
    // hit: restore rcx; <clean call>
    // done: where_
    ffi::dr_save_reg(dc, bb, where_, rcx, slot);
    for &number in numbers {
        let address = ffi::opnd_create_base_disp(rax, ffi::DR_REG_NULL as ffi::reg_id_t, 0, -(number as i32), ffi::OPSZ_0 as ffi::opnd_size_t);
        meta(ffi::instr_create_1dst_1src(dc, ffi::OP_lea as i32, ffi::opnd_create_reg(rcx), address));
        meta(ffi::instr_create_0dst_2src(dc, ffi::OP_jecxz as i32, ffi::opnd_create_instr(hit), ffi::opnd_create_reg(rcx)));
    }
    ffi::dr_restore_reg(dc, bb, where_, rcx, slot);
    meta(ffi::instr_create_0dst_1src(dc, ffi::OP_jmp as i32, ffi::opnd_create_instr(done)));
    meta(hit);
    ffi::dr_restore_reg(dc, bb, where_, rcx, slot);
    insert_clean_call(dc, bb, where_, callee, args);
    meta(done);
}

/// A test of the running thread: the clean call is made only when the
/// thread's `word` has one of the bits of `mask` set (`mask` is
/// sign-extended to 64 bits).
#[derive(Clone, Copy)]
pub struct ThreadTest {
    pub word: RawTlsWord,
    pub mask: i32,
}

impl ThreadTest {
    /// Inserts before `where_`: `test gs:[word], mask; jz skip` (it sets
    /// the arithmetic flags: the caller saves them where they are live).
    ///
    /// # Safety
    /// In an insertion callback of thread `dc`; `skip` a label of `bb`.
    pub unsafe fn insert_jump_unless_passed(self, dc: DrContext, bb: InstrList, where_: Instr, skip: Instr) {
        let mask = ffi::opnd_create_immed_int(self.mask as ffi::ptr_int_t, ffi::OPSZ_4 as ffi::opnd_size_t);
        ffi::instrlist_meta_preinsert(bb, where_, ffi::instr_create_0dst_2src(dc, ffi::OP_test as i32, self.word.operand(), mask));
        ffi::instrlist_meta_preinsert(bb, where_, ffi::instr_create_0dst_1src(dc, ffi::OP_jz as i32, ffi::opnd_create_instr(skip)));
    }
}

/// A drmgr insertion priority after drwrap's (500) and before drreg's
/// lazy restores (7500).
pub const AFTER_DRWRAP_PRIORITY: i32 = ffi::DRMGR_PRIORITY_INSERT_DRWRAP + 100;

/// Where the arithmetic flags are kept while inline tests run.
pub(crate) const FLAGS_SLOT: ffi::dr_spill_slot_t = ffi::dr_spill_slot_t::SPILL_SLOT_5;

/// [`insert_clean_call`], made only when the running thread passes `test`:
/// one `test` of its word and a branch, with the arithmetic flags saved
/// around them only where the application reads them.
///
/// # Safety
/// As for [`insert_clean_call`].
pub unsafe fn insert_clean_call_for_threads(dc: DrContext, bb: InstrList, where_: Instr, test: ThreadTest, callee: *mut c_void, args: &[Arg]) {
    insert_for_threads(dc, bb, where_, test, || insert_clean_call(dc, bb, where_, callee, args));
}

/// [`SharedCall::insert`] of `call` with `arg`, made only when the running
/// thread passes `test` (as [`insert_clean_call_for_threads`]).
///
/// # Safety
/// As for [`SharedCall::insert`].
pub unsafe fn insert_shared_call_for_threads(dc: DrContext, bb: InstrList, where_: Instr, test: ThreadTest, call: SharedCall, arg: usize) {
    insert_for_threads(dc, bb, where_, test, || call.insert(dc, bb, where_, arg));
}

/// What `insert_call` inserts before `where_`, made only when the running
/// thread passes `test`.
unsafe fn insert_for_threads(dc: DrContext, bb: InstrList, where_: Instr, test: ThreadTest, insert_call: impl FnOnce()) {
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    let flags_live = arith_flags_live_at(where_);
    let restore_flags = || {
        if flags_live {
            ffi::dr_restore_arith_flags(dc, bb, where_, FLAGS_SLOT);
        }
    };
    //     [save flags]; test gs:[word], mask; jz skip; [restore flags]
    //     <clean call>; jmp done
    // skip: [restore flags]
    // done: where_
    let (skip, done) = (label(), label());
    if flags_live {
        ffi::dr_save_arith_flags(dc, bb, where_, FLAGS_SLOT);
    }
    test.insert_jump_unless_passed(dc, bb, where_, skip);
    restore_flags();
    insert_call();
    meta(ffi::instr_create_0dst_1src(dc, ffi::OP_jmp as i32, ffi::opnd_create_instr(done)));
    meta(skip);
    restore_flags();
    meta(done);
}

/// Whether the code cache holds a fragment starting at `pc`.
///
/// # Safety
/// `dc` must be the calling thread's context.
pub unsafe fn fragment_exists_at(dc: DrContext, pc: usize) -> bool {
    ffi::dr_fragment_exists_at(dc, pc as *mut c_void) != 0
}

/// Removes from the code cache every fragment built from the `size` bytes
/// at `pc`: they are built again, with the instrumentation asked for now,
/// when next executed. The clean call calling this cannot return to the
/// code cache (its own fragment may be gone): it must go on with
/// [`resume_at`].
///
/// # Safety
/// Only from a clean call, holding no lock another thread's event could
/// wait for (DynamoRIO suspends all threads).
pub unsafe fn flush_region(pc: usize, size: usize) -> bool {
    ffi::dr_flush_region(pc as *mut u8, size) != 0
}

/// Resumes the application at `pc` with its registers as they are,
/// leaving the running clean call for good. Returns only if DynamoRIO
/// refused.
///
/// # Safety
/// `dc` must be the calling thread's context, in a clean call; nothing on
/// the Rust stack between here and the clean call may need dropping.
pub unsafe fn resume_at(dc: DrContext, pc: usize) {
    // SAFETY: dr_mcontext_t is plain data; all zeroes is a valid value.
    let mut mc: ffi::dr_mcontext_t = std::mem::zeroed();
    mc.size = std::mem::size_of::<ffi::dr_mcontext_t>();
    mc.flags = ffi::dr_mcontext_flags_t::DR_MC_ALL;
    if ffi::dr_get_mcontext(dc, &mut mc) == 0 {
        return;
    }
    *crate::mcontext::slot(&mut mc, crate::mcontext::Register::Rip) = pc as ffi::reg_t;
    ffi::dr_redirect_execution(&mut mc);
}

// x86 (dr_ir_instr.h): the six arithmetic flags read and written.
const EFLAGS_READ_6: u32 = 0x0000_011f;
const EFLAGS_WRITE_6: u32 = 0x0008_f800;

/// Whether the application may read the arithmetic flags as they are
/// before `instr`: some application instruction from it on reads one
/// before all six are written (to the block's end, where they count as
/// live). Code inserted there may change them only if not.
///
/// # Safety
/// `instr` is an instruction of a list being built.
pub unsafe fn arith_flags_live_at(instr: Instr) -> bool {
    let mut i = instr;
    while !i.is_null() {
        if ffi::instr_is_app(i) != 0 {
            let flags = ffi::instr_get_arith_flags(i, ffi::_dr_opnd_query_flags_t_DR_QUERY_DEFAULT as _);
            if flags & EFLAGS_READ_6 != 0 {
                return true;
            }
            if flags & EFLAGS_WRITE_6 == EFLAGS_WRITE_6 {
                return false;
            }
        }
        i = ffi::instr_get_next(i);
    }
    true
}
