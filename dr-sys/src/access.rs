//! Instruction-level instrumentation: the memory operands of an
//! instruction, scratch registers from drreg, addresses computed by drutil,
//! string loops and gathers expanded into one access per element, and the
//! inline test of the watched-page map that decides, in the code cache,
//! whether an access goes to the client.

use crate::ffi;
use crate::instrument::{Instr, InstrList, RawTlsWord, ThreadTest, FLAGS_SLOT, OPSZ_PTR};
use crate::process::DrContext;
use std::ffi::c_void;

/// Starts drreg, drutil and drx, once, before blocks are built; later
/// calls return the first one's result.
pub fn init() -> bool {
    static STARTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STARTED.get_or_init(start_extensions)
}

fn start_extensions() -> bool {
    let mut options = ffi::drreg_options_t {
        struct_size: std::mem::size_of::<ffi::drreg_options_t>(),
        // Our own code spills to DynamoRIO's slots; drreg adds what drx
        // asks for to this.
        num_spill_slots: 1,
        conservative: 0,
        error_callback: None,
        do_not_sum_slots: 0,
    };
    extern "C" {
        // Exported by libdynamorio.so (dr_ir_utils.h); bindgen's filter
        // leaves it out.
        fn disassemble_set_syntax(flags: ffi::dr_disasm_flags_t);
    }
    // SAFETY: called once (init's cell), from dr_client_main's thread,
    // before any block.
    unsafe {
        // ctx.instruction reads as objdump's default (AT&T) syntax.
        disassemble_set_syntax(ffi::dr_disasm_flags_t_DR_DISASM_ATT);
        // drx's gather and scatter expansion reserves registers with drreg.
        ffi::drreg_init(&mut options) == ffi::drreg_status_t_DRREG_SUCCESS && ffi::drutil_init() != 0 && ffi::drx_init() != 0
    }
}

/// Inserts before `where_` an atomic increment of the 64-bit counter at
/// `counter` (drx: a `lock add`, the arithmetic flags spilled by drreg only
/// where the application needs them). x86-64 only: drx cannot make a
/// 64-bit locked add in a 32-bit process.
///
/// # Safety
/// In a drmgr insertion callback of thread `dc`, `where_` in `bb`, after
/// [`init`]; `counter` 8-byte aligned and alive as long as the code is.
#[cfg(target_arch = "x86_64")]
pub unsafe fn insert_counter_increment(dc: DrContext, bb: crate::instrument::InstrList, where_: crate::instrument::Instr, counter: *const u64) -> bool {
    extern "C" {
        // Declared again with the slot as a plain number: drx wants
        // SPILL_SLOT_MAX + 1 under drmgr, which bindgen's enum cannot hold.
        fn drx_insert_counter_update(dc: *mut c_void, bb: *mut ffi::instrlist_t, where_: *mut ffi::instr_t, slot: u32, addr: *mut c_void, value: i32, flags: u32) -> ffi::bool_;
    }
    let slot = ffi::dr_spill_slot_t::SPILL_SLOT_MAX as u32 + 1;
    let flags = (ffi::DRX_COUNTER_LOCK | ffi::DRX_COUNTER_64BIT) as u32;
    drx_insert_counter_update(dc, bb, where_, slot, counter as *mut c_void, 1, flags) != 0
}

/// Rewrites `bb` (in drmgr's app2app stage) so that each memory access is
/// one instruction's: `rep` string loops become loops of single string
/// instructions, gathers and scatters one load or store per element.
/// Returns whether a gather or scatter was expanded: drx's code for it
/// reserves registers from drreg, which restores them lazily, before
/// later instructions of the block.
///
/// # Safety
/// `bb` is the list drmgr hands to an app2app callback on thread `dc`.
pub unsafe fn expand_for_accesses(dc: DrContext, bb: InstrList) -> bool {
    let mut expanded: ffi::bool_ = 0;
    ffi::drutil_expand_rep_string(dc, bb);
    ffi::drx_expand_scatter_gather(dc, bb, &mut expanded);
    expanded != 0
}

/// The instruction whose operands an insertion callback should read: the
/// one being instrumented, or the string instruction inside an expanded
/// `rep` loop. Null when there is none.
///
/// # Safety
/// In a drmgr insertion callback of thread `dc`.
pub unsafe fn instruction_for_operands(dc: DrContext) -> Instr {
    ffi::drmgr_orig_app_instr_for_operands(dc)
}

/// The instruction whose address an insertion callback should report (an
/// expanded loop's original `rep` instruction once). Null when there is none.
///
/// # Safety
/// As for [`instruction_for_operands`].
pub unsafe fn instruction_for_fetch(dc: DrContext) -> Instr {
    ffi::drmgr_orig_app_instr_for_fetch(dc)
}

/// One memory operand of an instruction.
#[derive(Clone, Copy)]
pub struct MemoryOperand {
    pub operand: ffi::opnd_t,
    pub is_write: bool,
    /// Bytes accessed; 0 when DynamoRIO cannot tell.
    pub size: usize,
    /// The address, when the operand names it outright (RIP-relative or
    /// absolute).
    pub known_address: Option<usize>,
}

/// The memory accesses `instr` makes: sources it reads, destinations it
/// writes. `lea`, memory-form `nop`s and prefetches compute an address
/// and touch nothing.
///
/// # Safety
/// `instr` is an instruction of a list being built.
pub unsafe fn memory_operands(instr: Instr) -> Vec<MemoryOperand> {
    let mut out = Vec::new();
    let op = ffi::instr_get_opcode(instr) as u32;
    if op == ffi::OP_lea || op == ffi::OP_nop_modrm || ffi::instr_is_prefetch(instr) != 0 {
        return out;
    }
    let mut add = |operand: ffi::opnd_t, is_write: bool| {
        if ffi::opnd_is_memory_reference(operand) == 0 {
            return;
        }
        let size = ffi::drutil_opnd_mem_size_in_bytes(operand, instr) as usize;
        // RIP-relative operands exist only on x86-64 (and DynamoRIO's
        // opnd_is_rel_addr with them).
        #[cfg(target_arch = "x86_64")]
        let rel = ffi::opnd_is_rel_addr(operand) != 0;
        #[cfg(not(target_arch = "x86_64"))]
        let rel = false;
        let known = rel || ffi::opnd_is_near_abs_addr(operand) != 0;
        let known_address = known.then(|| ffi::opnd_get_addr(operand) as usize);
        out.push(MemoryOperand { operand, is_write, size, known_address });
    };
    if ffi::instr_reads_memory(instr) != 0 {
        for i in 0..ffi::instr_num_srcs(instr) {
            add(ffi::instr_get_src(instr, i as u32), false);
        }
    }
    if ffi::instr_writes_memory(instr) != 0 {
        for i in 0..ffi::instr_num_dsts(instr) {
            add(ffi::instr_get_dst(instr, i as u32), true);
        }
    }
    out
}

/// Three scratch registers for the code before one instruction: ones the
/// instruction does not use (so that every operand's address is computed
/// from the application's values), kept in DynamoRIO's spill slots and
/// restored on every path before the instruction and before any clean
/// call (whose saved context is then the application's own). RAX is never
/// one: it holds the flags while they are saved.
///
/// The spills are ours rather than drreg's: drreg cannot let a clean call
/// write the application's registers on a path that inline code may jump
/// over (DR_CLEANCALL_MULTIPATH with WRITES_APP_CONTEXT is refused), and
/// handlers write registers.
pub struct Scratch {
    pub regs: [ffi::reg_id_t; 3],
    /// The arithmetic flags are live at the instruction: tests save them.
    flags_live: bool,
}

const SCRATCH_SLOTS: [ffi::dr_spill_slot_t; 3] =
    [ffi::dr_spill_slot_t::SPILL_SLOT_2, ffi::dr_spill_slot_t::SPILL_SLOT_3, ffi::dr_spill_slot_t::SPILL_SLOT_4];

impl Scratch {
    /// Picks the registers for the code before `at` that computes the
    /// addresses of `uses`'s operands (the same instruction, or the string
    /// instruction of an expanded `rep` loop); `None` if it uses too many
    /// registers to leave three. Registers no instruction of the block
    /// uses come first: restoring one that the block goes on to use (or
    /// uses again in its next turn round a loop) would put the spill
    /// slot's store and load on that value's dependency chain.
    ///
    /// # Safety
    /// `at` is an application instruction of a list being built.
    pub unsafe fn choose(uses: Instr, at: Instr) -> Option<Scratch> {
        #[cfg(target_arch = "x86_64")]
        let candidates = [
            ffi::DR_REG_RCX, ffi::DR_REG_RDX, ffi::DR_REG_RSI, ffi::DR_REG_RDI, ffi::DR_REG_R8, ffi::DR_REG_R9, ffi::DR_REG_R10,
            ffi::DR_REG_R11, ffi::DR_REG_R12, ffi::DR_REG_R13, ffi::DR_REG_R14, ffi::DR_REG_R15, ffi::DR_REG_RBX,
        ];
        // Six on 32-bit x86: a string instruction uses three of them
        // (ESI, EDI, ECX), leaving three.
        #[cfg(target_arch = "x86")]
        let candidates = [ffi::DR_REG_ECX, ffi::DR_REG_EDX, ffi::DR_REG_ESI, ffi::DR_REG_EDI, ffi::DR_REG_EBX, ffi::DR_REG_EBP];
        let mut free: Vec<ffi::reg_id_t> =
            candidates.iter().map(|&r| r as ffi::reg_id_t).filter(|&r| ffi::instr_uses_reg(uses, r) == 0 && ffi::instr_uses_reg(at, r) == 0).collect();
        // A stable sort: otherwise in the order above.
        free.sort_by_key(|&r| block_uses(at, r));
        let mut free = free.into_iter();
        let regs = [free.next()?, free.next()?, free.next()?];
        Some(Scratch { regs, flags_live: crate::instrument::arith_flags_live_at(at) })
    }

    /// Saves the first `used` registers.
    unsafe fn save(&self, dc: DrContext, bb: InstrList, where_: Instr, used: usize) {
        for (r, slot) in self.regs.iter().zip(SCRATCH_SLOTS).take(used) {
            ffi::dr_save_reg(dc, bb, where_, *r, slot);
        }
    }

    /// Restores the first `used` registers.
    unsafe fn restore(&self, dc: DrContext, bb: InstrList, where_: Instr, used: usize) {
        for (r, slot) in self.regs.iter().zip(SCRATCH_SLOTS).take(used) {
            ffi::dr_restore_reg(dc, bb, where_, *r, slot);
        }
    }
}

/// Whether an application instruction of `at`'s block, before or after
/// it, uses `reg`.
///
/// # Safety
/// `at` is an instruction of a list being built.
unsafe fn block_uses(at: Instr, reg: ffi::reg_id_t) -> bool {
    let uses = |i: Instr| ffi::instr_is_app(i) != 0 && ffi::instr_uses_reg(i, reg) != 0;
    let mut i = ffi::instr_get_prev(at);
    while !i.is_null() {
        if uses(i) {
            return true;
        }
        i = ffi::instr_get_prev(i);
    }
    let mut i = ffi::instr_get_next(at);
    while !i.is_null() {
        if uses(i) {
            return true;
        }
        i = ffi::instr_get_next(i);
    }
    false
}

/// Where the page map lives, for [`insert_access_test`].
#[derive(Clone, Copy)]
pub struct PageMap {
    /// Two words, `[low, high)`: accesses starting outside skip the map.
    pub hull: usize,
    /// The table of chunk pointers, indexed by `address >> chunk_shift`.
    pub table: usize,
    pub chunks: usize,
    pub chunk_shift: u8,
    pub page_shift: u8,
}

/// What to do with an access.
pub enum Filter {
    /// Always call the client.
    None,
    /// Call the client only when the access of `size` bytes meets one of a
    /// few constant ranges `[start, end)`: a compare per range.
    Ranges { ranges: Vec<(usize, usize)>, size: usize },
    /// Call the client only when the page map marks the access's page.
    PageMap(PageMap),
}

/// What follows an access's clean call.
#[derive(Clone, Copy)]
pub enum CallPath<'a> {
    /// The instruction, after a jump over the code that skips the call.
    Rejoin,
    /// `then(at)`, which inserts before `at` the code that runs in the
    /// instruction's place (a copy of it, [`insert_instruction_copy`], and
    /// its after-write call), then a jump to `resume`, a label the caller
    /// puts after the instruction: an access the tests pass over runs the
    /// instruction itself, with no test after it.
    Instead { then: &'a dyn Fn(Instr), resume: Instr },
}

/// Inserts before `where_`: the address of `operand` into the thread's
/// `address` word, then (by `threads` and `filter`) tests that jump over
/// the clean call of `callee(site)` when the thread or the address is not
/// one it may be made for; the clean call goes where `path` says.
///
/// An access the tests pass over costs one spilled register: the address
/// is computed into it (biased by a range's start where a displacement
/// holds the bias, so one `lea` both computes and subtracts), and the
/// tests compare it with immediates and with words the code cache reaches
/// RIP-relative. More registers are spilled only where they are needed:
/// inside drutil's address computation, past the page map's hull, and on
/// the way to the clean call.
///
/// # Safety
/// In an insertion callback of thread `dc`, `scratch` chosen for the
/// application instruction `where_`; `callee` takes one word.
#[allow(clippy::too_many_arguments)]
pub unsafe fn insert_access_test(
    dc: DrContext,
    bb: InstrList,
    where_: Instr,
    scratch: &Scratch,
    operand: ffi::opnd_t,
    address: RawTlsWord,
    threads: Option<ThreadTest>,
    filter: &Filter,
    callee: *mut c_void,
    site: usize,
    path: CallPath,
) -> bool {
    let addr = scratch.regs[0];
    let call_args = [crate::instrument::Arg::Word(site)];
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    let jump = |op: u32, to: Instr| ffi::instr_create_0dst_1src(dc, op as i32, ffi::opnd_create_instr(to));
    let restore_flags = || {
        if scratch.flags_live {
            ffi::dr_restore_arith_flags(dc, bb, where_, FLAGS_SLOT);
        }
    };
    let ranges = match filter {
        Filter::Ranges { ranges, size } => Some(RangesTest::plan(operand, ranges, *size)),
        _ => None,
    };
    // The address first: saving the flags takes RAX, which the operand
    // may use.
    scratch.save(dc, bb, where_, 1);
    let Some(bias) = insert_address(dc, bb, where_, scratch, operand, ranges.as_ref().map_or(0, |r| r.bias)) else {
        // drutil cannot compute it (no operand of x86 Linux code is known
        // to make it): the access goes without its test and its call.
        scratch.restore(dc, bb, where_, 1);
        return false;
    };
    // The way to the clean call: the flags back, the address (unbiased:
    // the ranges' compares leave it less the low end of the one that
    // matched) into the address word, the register back, the call.
    let call_path = |flags_saved: bool| {
        if flags_saved {
            restore_flags();
        }
        if ranges.is_some() {
            insert_address(dc, bb, where_, scratch, operand, 0);
        }
        address.insert_write(dc, bb, where_, addr);
        scratch.restore(dc, bb, where_, 1);
        crate::instrument::insert_clean_call(dc, bb, where_, callee, &call_args);
    };
    if let (Filter::None, None, CallPath::Rejoin) = (filter, threads, path) {
        call_path(false);
        return true;
    }
    debug_assert!(ranges.is_some() || bias == 0);
    if scratch.flags_live {
        ffi::dr_save_arith_flags(dc, bb, where_, FLAGS_SLOT);
    }
    let (call, skip, done) = (label(), label(), label());
    //     <the thread's test: jumps to skip>
    //     <the filter's test: jumps to call or to skip>
    // call: <the way to the clean call>
    //       jmp done                        (Rejoin)
    //       <then>; jmp resume              (Instead)
    // skip: restore
    // done: where_
    if let Some(test) = threads {
        test.insert_jump_unless_passed(dc, bb, where_, skip);
    }
    match (filter, &ranges) {
        (_, Some(test)) => test.insert_compares(dc, bb, where_, addr, call, skip),
        (Filter::PageMap(map), _) => insert_page_map_test(dc, bb, where_, scratch, map, skip),
        _ => {}
    }
    meta(call);
    call_path(true);
    match path {
        CallPath::Rejoin => meta(jump(ffi::OP_jmp, done)),
        CallPath::Instead { then, resume } => {
            then(where_);
            meta(jump(ffi::OP_jmp, resume));
        }
    }
    meta(skip);
    restore_flags();
    scratch.restore(dc, bb, where_, 1);
    meta(done);
    true
}

/// Inserts before `at` a copy of the application instruction `original`
/// that runs in its place on the way from a clean call: the same bytes at
/// the same application address, so that a fault in it is the original's.
///
/// # Safety
/// `original` is an application instruction of `bb`, not a control
/// transfer, in an insertion callback of thread `dc`.
pub unsafe fn insert_instruction_copy(dc: DrContext, bb: InstrList, at: Instr, original: Instr) {
    let copy = ffi::instr_clone(dc, original);
    ffi::instr_set_translation(copy, ffi::instr_get_app_pc(original));
    ffi::instrlist_preinsert(bb, at, copy);
}

/// Inserts before `where_` code that leaves `operand`'s address less
/// `bias` (or less 0) in `scratch.regs[0]`, and returns the bias it took
/// off; `None` if drutil cannot compute the address.
///
/// A plain base, index and displacement with pointer-sized registers is
/// one `lea` whose displacement takes the bias when it fits 32 bits (the
/// globals of an executable that is not position-independent). Anything
/// else (segments, `xlat`) is drutil's, with the second scratch register
/// saved around it only when drutil uses it.
///
/// # Safety
/// As for [`insert_access_test`], with `scratch.regs[0]` saved.
unsafe fn insert_address(dc: DrContext, bb: InstrList, where_: Instr, scratch: &Scratch, operand: ffi::opnd_t, bias: usize) -> Option<usize> {
    let [addr, r2, _] = scratch.regs;
    for bias in [bias, 0] {
        if let Some(lea) = plain_lea(operand, bias) {
            ffi::instrlist_meta_preinsert(bb, where_, ffi::instr_create_1dst_1src(dc, ffi::OP_lea as i32, ffi::opnd_create_reg(addr), lea));
            return Some(bias);
        }
    }
    // drutil's code goes to a list of its own first, to learn whether it
    // needs its scratch register saved.
    let own = ffi::instrlist_create(dc);
    let end = ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    ffi::instrlist_append(own, end);
    let mut used: ffi::bool_ = 0;
    if ffi::drutil_insert_get_mem_addr_ex(dc, own, end, operand, addr, r2, &mut used) == 0 {
        ffi::instrlist_clear_and_destroy(dc, own);
        return None;
    }
    if used != 0 {
        ffi::dr_save_reg(dc, bb, where_, r2, SCRATCH_SLOTS[1]);
    }
    loop {
        let first = ffi::instrlist_first(own);
        if first == end {
            break;
        }
        ffi::instrlist_remove(own, first);
        ffi::instrlist_meta_preinsert(bb, where_, first);
    }
    ffi::instrlist_clear_and_destroy(dc, own);
    if used != 0 {
        ffi::dr_restore_reg(dc, bb, where_, r2, SCRATCH_SLOTS[1]);
    }
    Some(0)
}

/// The `lea` operand that computes `operand`'s address less `bias`, when
/// `operand` is a plain base, index and displacement with pointer-sized
/// registers (an address-size prefix would wrap the biased sum
/// differently) and the biased displacement fits 32 bits.
///
/// # Safety
/// `operand` is an operand of an instruction being instrumented.
unsafe fn plain_lea(operand: ffi::opnd_t, bias: usize) -> Option<ffi::opnd_t> {
    let pointer_register = |r: ffi::reg_id_t| {
        let r = r as u32;
        #[cfg(target_arch = "x86_64")]
        let gprs = ffi::DR_REG_RAX..=ffi::DR_REG_R15;
        #[cfg(not(target_arch = "x86_64"))]
        let gprs = ffi::DR_REG_EAX..=ffi::DR_REG_EDI;
        r == ffi::DR_REG_NULL || gprs.contains(&r)
    };
    let (base, index) = (ffi::opnd_get_base(operand), ffi::opnd_get_index(operand));
    let plain = ffi::opnd_is_base_disp(operand) != 0
        && ffi::opnd_get_segment(operand) as u32 == ffi::DR_REG_NULL
        && pointer_register(base)
        && pointer_register(index);
    let disp = i32::try_from((ffi::opnd_get_disp(operand) as isize).wrapping_sub(bias as isize)).ok()?;
    // OPSZ_0 is DynamoRIO's OPSZ_lea: an address computed, not read.
    plain.then(|| ffi::opnd_create_base_disp(base, index, ffi::opnd_get_scale(operand), disp, ffi::OPSZ_0 as ffi::opnd_size_t))
}

/// The inline test of a few constant ranges. The access
/// `[addr, addr + size)` meets `[start, end)` when
/// `addr - (start - size + 1) < end - start + size - 1`, unsigned: the
/// address is computed less the first range's low end (one `lea`, where
/// the displacement holds it), then per range the register moves from one
/// range's low end to the next (a `lea`, or a `sub` of a word where the
/// difference needs 64 bits), one `cmp` and a `jb`.
struct RangesTest {
    /// What the address is computed less.
    bias: usize,
    /// Per range: the step from the previous low end (a displacement, or
    /// a word), and the span (an immediate, or a word). `None` when the
    /// words ran out: every access then goes to the client, which tests
    /// it there.
    compares: Option<Vec<(Operand32, Operand32)>>,
}

/// A 32-bit displacement or immediate, or the operand of a word that holds
/// a value too wide for one.
type Operand32 = Result<i32, ffi::opnd_t>;

impl RangesTest {
    /// # Safety
    /// `operand` is an operand of an instruction being instrumented.
    unsafe fn plan(operand: ffi::opnd_t, ranges: &[(usize, usize)], size: usize) -> RangesTest {
        let low_of = |start: usize| start.wrapping_sub(size.max(1) - 1);
        let first = ranges.first().map_or(0, |&(start, _)| low_of(start));
        let bias = if plain_lea(operand, first).is_some() { first } else { 0 };
        let mut previous = bias;
        let compares = ranges
            .iter()
            .map(|&(start, end)| {
                let low = low_of(start);
                let step = low.wrapping_sub(previous);
                previous = low;
                let step = match i32::try_from(step.wrapping_neg() as isize) {
                    Ok(disp) => Ok(disp),
                    Err(_) => Err(constant_word(step).ok_or(())?),
                };
                let span = span_of((start, end), size);
                let span = match i32::try_from(span) {
                    Ok(span) => Ok(span),
                    Err(_) => Err(constant_word(span).ok_or(())?),
                };
                Ok((step, span))
            })
            .collect::<Result<Vec<_>, ()>>()
            .ok();
        RangesTest { bias: if compares.is_some() { bias } else { 0 }, compares }
    }

    /// Inserts the compares of the address in `addr` (computed less
    /// `self.bias`): jumps to `call` when the access meets a range, to
    /// `skip` when it meets none.
    ///
    /// # Safety
    /// In an insertion callback of thread `dc`, before `where_`.
    unsafe fn insert_compares(&self, dc: DrContext, bb: InstrList, where_: Instr, addr: ffi::reg_id_t, call: Instr, skip: Instr) {
        let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
        let reg = ffi::opnd_create_reg(addr);
        let imm = |v: i32| ffi::opnd_create_immed_int(v as ffi::ptr_int_t, ffi::OPSZ_4 as ffi::opnd_size_t);
        let jump = |op: u32, to: Instr| ffi::instr_create_0dst_1src(dc, op as i32, ffi::opnd_create_instr(to));
        let Some(compares) = &self.compares else {
            meta(jump(ffi::OP_jmp, call));
            return;
        };
        for &(step, span) in compares {
            match step {
                Ok(0) => {}
                Ok(disp) => {
                    let lea = ffi::opnd_create_base_disp(addr, ffi::DR_REG_NULL as ffi::reg_id_t, 0, disp, ffi::OPSZ_0 as ffi::opnd_size_t);
                    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_lea as i32, reg, lea));
                }
                Err(word) => meta(ffi::instr_create_1dst_2src(dc, ffi::OP_sub as i32, reg, word, reg)),
            }
            let span = match span {
                Ok(span) => imm(span),
                Err(word) => word,
            };
            meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg, span));
            meta(jump(ffi::OP_jb, call));
        }
        meta(jump(ffi::OP_jmp, skip));
    }
}

/// How many addresses an access of `size` bytes may start at to meet
/// `[start, end)`: from `start - size + 1` on.
fn span_of((start, end): (usize, usize), size: usize) -> usize {
    end.saturating_sub(start).saturating_add(size.max(1) - 1)
}

/// A memory operand of the word at `at` that code in the code cache reads
/// without a register: RIP-relative on x86-64 (DynamoRIO keeps client
/// libraries within a 32-bit displacement of the code cache; see
/// [`words_are_reachable`]), absolute on 32-bit x86.
fn word_operand(at: *const usize) -> ffi::opnd_t {
    // SAFETY: builds an operand value; nothing is read or written.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        return ffi::opnd_create_rel_addr(at as *mut c_void, ffi::OPSZ_8 as ffi::opnd_size_t);
        #[cfg(not(target_arch = "x86_64"))]
        return ffi::opnd_create_abs_addr(at as *mut c_void, ffi::OPSZ_4 as ffi::opnd_size_t);
    }
}

/// Whether [`word_operand`]s of this library's statics can be encoded:
/// DynamoRIO's `-reachable_client`, on by default, puts the client within
/// reach of the code cache.
pub fn words_are_reachable() -> bool {
    if cfg!(not(target_arch = "x86_64")) {
        return true;
    }
    let mut value: u64 = 0;
    // SAFETY: reads an option into a full u64, as the API asks.
    let known = unsafe { ffi::dr_get_integer_option(c"reachable_client".as_ptr(), &mut value) } != 0;
    known && value != 0
}

/// The constants the inline tests compare with where an immediate cannot
/// hold them (the bounds of globals in position-independent code): words
/// of this library that live as long as the code cache does, each value
/// kept once.
static CONSTANTS: [std::sync::atomic::AtomicUsize; 1024] = [const { std::sync::atomic::AtomicUsize::new(0) }; 1024];
static CONSTANTS_USED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// An operand of a word that holds `value`, or `None` when 1,024
/// different constants are already in use.
fn constant_word(value: usize) -> Option<ffi::opnd_t> {
    let mut used = CONSTANTS_USED.lock().unwrap_or_else(|e| e.into_inner());
    let slot = match used.iter().position(|&v| v == value) {
        Some(slot) => slot,
        None if used.len() < CONSTANTS.len() => {
            CONSTANTS[used.len()].store(value, std::sync::atomic::Ordering::Relaxed);
            used.push(value);
            used.len() - 1
        }
        None => return None,
    };
    Some(word_operand(CONSTANTS[slot].as_ptr()))
}

/// The page-map test: goes on (to the clean call) when the address in
/// `scratch.regs[0]` is inside the hull and its page is marked, or lies
/// past the map; jumps to `skip` when it is not.
///
/// # Safety
/// As for [`insert_access_test`].
unsafe fn insert_page_map_test(dc: DrContext, bb: InstrList, where_: Instr, scratch: &Scratch, map: &PageMap, skip: Instr) {
    let [addr, r2, r3] = scratch.regs;
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    let reg = |r: ffi::reg_id_t| ffi::opnd_create_reg(r);
    let imm = |v: i64, size: u32| ffi::opnd_create_immed_int(v as ffi::ptr_int_t, size as ffi::opnd_size_t);
    let jump = |op: u32, to: Instr| ffi::instr_create_0dst_1src(dc, op as i32, ffi::opnd_create_instr(to));
    let past_map = ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    //     if addr < hull[0] or addr >= hull[1]: skip      (RIP-relative words)
    //     save r2, r3
    //     r2 = addr >> chunk_shift; if r2 >= chunks: past_map
    //     r2 = table[r2]; r3 = (addr >> page_shift) & (pages per chunk - 1)
    //     byte [r2 + r3] == 0?; restore r3, r2 (movs: the flags stay)
    //     if the byte was 0: skip; jmp on
    // past_map: restore r3, r2
    // on:
    let hull = map.hull as *const usize;
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(addr), word_operand(hull)));
    meta(jump(ffi::OP_jb, skip));
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(addr), word_operand(hull.wrapping_add(1))));
    meta(jump(ffi::OP_jnb, skip));
    ffi::dr_save_reg(dc, bb, where_, r2, SCRATCH_SLOTS[1]);
    ffi::dr_save_reg(dc, bb, where_, r3, SCRATCH_SLOTS[2]);
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r2), reg(addr)));
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_shr as i32, reg(r2), imm(map.chunk_shift as i64, ffi::OPSZ_1), reg(r2)));
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(r2), imm(map.chunks as i64, ffi::OPSZ_4)));
    meta(jump(ffi::OP_jnb, past_map));
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, reg(r3), imm(map.table as i64, OPSZ_PTR as u32)));
    let slot = ffi::opnd_create_base_disp(r3, r2, std::mem::size_of::<usize>() as i32, 0, OPSZ_PTR);
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r2), slot));
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r3), reg(addr)));
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_shr as i32, reg(r3), imm(map.page_shift as i64, ffi::OPSZ_1), reg(r3)));
    let mask = (1i64 << (map.chunk_shift - map.page_shift)) - 1;
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_and as i32, reg(r3), imm(mask, ffi::OPSZ_4), reg(r3)));
    let byte = ffi::opnd_create_base_disp(r2, r3, 1, 0, ffi::OPSZ_1 as ffi::opnd_size_t);
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, byte, imm(0, ffi::OPSZ_1)));
    ffi::dr_restore_reg(dc, bb, where_, r3, SCRATCH_SLOTS[2]);
    ffi::dr_restore_reg(dc, bb, where_, r2, SCRATCH_SLOTS[1]);
    meta(jump(ffi::OP_jz, skip));
    let on = ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    meta(jump(ffi::OP_jmp, on));
    meta(past_map);
    ffi::dr_restore_reg(dc, bb, where_, r3, SCRATCH_SLOTS[2]);
    ffi::dr_restore_reg(dc, bb, where_, r2, SCRATCH_SLOTS[1]);
    meta(on);
}

/// The instruction at `pc` in DynamoRIO's AT&T-style disassembly, or
/// `"<undecodable>"`.
pub fn disassemble(pc: usize) -> String {
    extern "C" {
        // Exported by libdynamorio.so (dr_ir_utils.h); bindgen's filter
        // leaves it out.
        fn decode(drcontext: *mut c_void, pc: *mut u8, instr: *mut ffi::instr_t) -> *mut u8;
    }
    // SAFETY: an instruction of our own, decoded from a pc DynamoRIO
    // reads safely (decode fails on unreadable memory), destroyed here.
    unsafe {
        let dc = ffi::dr_get_current_drcontext();
        let instr = ffi::instr_create(dc);
        let mut text = String::from("<undecodable>");
        if !decode(dc, pc as *mut u8, instr).is_null() {
            let mut buf = [0u8; 160];
            let len = ffi::instr_disassemble_to_buffer(dc, instr, buf.as_mut_ptr() as *mut _, buf.len());
            text = String::from_utf8_lossy(&buf[..len.min(buf.len())]).trim().to_string();
        }
        ffi::instr_destroy(dc, instr);
        text
    }
}
