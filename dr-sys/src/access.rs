//! Instruction-level instrumentation: the memory operands of an
//! instruction, scratch registers from drreg, addresses computed by drutil,
//! string loops and gathers expanded into one access per element, and the
//! inline test of the watched-page map that decides, in the code cache,
//! whether an access goes to the client.

use crate::ffi;
use crate::instrument::{Instr, InstrList, RawTlsWord, ThreadTest, FLAGS_SLOT};
use crate::process::DrContext;
use std::ffi::c_void;

/// Starts drreg, drutil and drx, once, before blocks are built.
pub fn init() -> bool {
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
    // SAFETY: called once from dr_client_main's thread, before any block.
    unsafe {
        // ctx.instruction reads as objdump's default (AT&T) syntax.
        disassemble_set_syntax(ffi::dr_disasm_flags_t_DR_DISASM_ATT);
        // drx's gather and scatter expansion reserves registers with drreg.
        ffi::drreg_init(&mut options) == ffi::drreg_status_t_DRREG_SUCCESS && ffi::drutil_init() != 0 && ffi::drx_init() != 0
    }
}

/// Rewrites `bb` (in drmgr's app2app stage) so that each memory access is
/// one instruction's: `rep` string loops become loops of single string
/// instructions, gathers and scatters one load or store per element.
///
/// # Safety
/// `bb` is the list drmgr hands to an app2app callback on thread `dc`.
pub unsafe fn expand_for_accesses(dc: DrContext, bb: InstrList) -> bool {
    let mut expanded: ffi::bool_ = 0;
    ffi::drutil_expand_rep_string(dc, bb) != 0 && ffi::drx_expand_scatter_gather(dc, bb, &mut expanded) != 0
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
    /// registers to leave three.
    ///
    /// # Safety
    /// `at` is an application instruction of a list being built.
    pub unsafe fn choose(uses: Instr, at: Instr) -> Option<Scratch> {
        let candidates = [
            ffi::DR_REG_RCX, ffi::DR_REG_RDX, ffi::DR_REG_RSI, ffi::DR_REG_RDI, ffi::DR_REG_R8, ffi::DR_REG_R9, ffi::DR_REG_R10,
            ffi::DR_REG_R11, ffi::DR_REG_R12, ffi::DR_REG_R13, ffi::DR_REG_R14, ffi::DR_REG_R15, ffi::DR_REG_RBX,
        ];
        let mut free = candidates.iter().map(|&r| r as ffi::reg_id_t).filter(|&r| ffi::instr_uses_reg(uses, r) == 0 && ffi::instr_uses_reg(at, r) == 0);
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

/// Inserts before `where_`: the address of `operand` into the thread's
/// `address` word, then (by `threads` and `filter`) tests that jump over
/// the clean call of `callee(site)` when the thread or the address is not
/// one it may be made for.
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
) -> bool {
    let [addr, r2, r3] = scratch.regs;
    // The address and drutil's scratch register; a range too long for a
    // 32-bit immediate needs a third. (The page map's third is saved only
    // where an access passes the hull: insert_page_map_test.)
    let used = match filter {
        Filter::Ranges { ranges, size } if ranges.iter().any(|&r| span_of(r, *size) > i32::MAX as usize) => 3,
        _ => 2,
    };
    scratch.save(dc, bb, where_, used);
    if ffi::drutil_insert_get_mem_addr(dc, bb, where_, operand, addr, r2) == 0 {
        scratch.restore(dc, bb, where_, used);
        return false;
    }
    let call_args = [crate::instrument::Arg::Word(site)];
    if let (Filter::None, None) = (filter, threads) {
        address.insert_write(dc, bb, where_, addr);
        scratch.restore(dc, bb, where_, used);
        crate::instrument::insert_clean_call(dc, bb, where_, callee, &call_args);
        return true;
    }
    let meta = |instr: Instr| ffi::instrlist_meta_preinsert(bb, where_, instr);
    let reg = |r: ffi::reg_id_t| ffi::opnd_create_reg(r);
    let imm = |v: i64, size: u32| ffi::opnd_create_immed_int(v as ffi::ptr_int_t, size as ffi::opnd_size_t);
    let label = || ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32);
    let (call, skip, done) = (label(), label(), label());
    let jump = |op: u32, to: Instr| ffi::instr_create_0dst_1src(dc, op as i32, ffi::opnd_create_instr(to));
    if scratch.flags_live {
        ffi::dr_save_arith_flags(dc, bb, where_, FLAGS_SLOT);
    }
    let restore_all = || {
        if scratch.flags_live {
            ffi::dr_restore_arith_flags(dc, bb, where_, FLAGS_SLOT);
        }
        scratch.restore(dc, bb, where_, used);
    };
    //     <the thread's test: jumps to skip>
    //     <the filter's test: jumps to call or to skip>
    // call: address word = addr; restore; <clean call>; jmp done
    // skip: restore
    // done:
    if let Some(test) = threads {
        test.insert_jump_unless_passed(dc, bb, where_, skip);
    }
    if let Filter::Ranges { ranges, size } = filter {
        // The access [addr, addr + size) meets [start, end) when
        // addr - (start - size + 1) < end - start + size - 1, unsigned:
        //     r2 = addr - low; if r2 < span: call   (per range)
        //     jmp skip
        // with `lea` for the subtraction where -low fits a displacement
        // (globals of an executable that is not position-independent),
        // and span an immediate where it fits one.
        for &(start, end) in ranges {
            let low = start.wrapping_sub((*size).max(1) - 1);
            let span = span_of((start, end), *size);
            match i32::try_from(low.wrapping_neg() as isize) {
                Ok(disp) => {
                    // OPSZ_0 is DynamoRIO's OPSZ_lea: an address computed, not read.
                    let lea = ffi::opnd_create_base_disp(addr, 0, 0, disp, ffi::OPSZ_0 as ffi::opnd_size_t);
                    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_lea as i32, reg(r2), lea));
                }
                Err(_) => {
                    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, reg(r2), imm(low.wrapping_neg() as i64, ffi::OPSZ_8)));
                    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_add as i32, reg(r2), reg(addr), reg(r2)));
                }
            }
            if span <= i32::MAX as usize {
                meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(r2), imm(span as i64, ffi::OPSZ_4)));
            } else {
                meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, reg(r3), imm(span as i64, ffi::OPSZ_8)));
                meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(r2), reg(r3)));
            }
            meta(jump(ffi::OP_jb, call));
        }
        meta(jump(ffi::OP_jmp, skip));
    } else if let Filter::PageMap(map) = filter {
        insert_page_map_test(dc, bb, where_, scratch, map, skip);
    }
    meta(call);
    address.insert_write(dc, bb, where_, addr);
    restore_all();
    crate::instrument::insert_clean_call(dc, bb, where_, callee, &call_args);
    meta(jump(ffi::OP_jmp, done));
    meta(skip);
    restore_all();
    meta(done);
    true
}

/// How many addresses an access of `size` bytes may start at to meet
/// `[start, end)`: from `start - size + 1` on.
fn span_of((start, end): (usize, usize), size: usize) -> usize {
    end.saturating_sub(start).saturating_add(size.max(1) - 1)
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
    //     r2 = &hull; if addr < [r2] or addr >= [r2 + 8]: skip
    //     r2 = addr >> chunk_shift; if r2 >= chunks: past_map
    //     save r3
    //     r2 = table[r2]; r3 = (addr >> page_shift) & (pages per chunk - 1)
    //     byte [r2 + r3] == 0?; restore r3 (a mov: the flags stay); if so: skip
    // past_map:
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, reg(r2), imm(map.hull as i64, ffi::OPSZ_8)));
    let word = |offset: i32| ffi::opnd_create_base_disp(r2, 0, 0, offset, ffi::OPSZ_8 as ffi::opnd_size_t);
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(addr), word(0)));
    meta(jump(ffi::OP_jb, skip));
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(addr), word(8)));
    meta(jump(ffi::OP_jnb, skip));
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r2), reg(addr)));
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_shr as i32, reg(r2), imm(map.chunk_shift as i64, ffi::OPSZ_1), reg(r2)));
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, reg(r2), imm(map.chunks as i64, ffi::OPSZ_4)));
    meta(jump(ffi::OP_jnb, past_map));
    ffi::dr_save_reg(dc, bb, where_, r3, SCRATCH_SLOTS[2]);
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_imm as i32, reg(r3), imm(map.table as i64, ffi::OPSZ_8)));
    let slot = ffi::opnd_create_base_disp(r3, r2, 8, 0, ffi::OPSZ_8 as ffi::opnd_size_t);
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r2), slot));
    meta(ffi::instr_create_1dst_1src(dc, ffi::OP_mov_ld as i32, reg(r3), reg(addr)));
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_shr as i32, reg(r3), imm(map.page_shift as i64, ffi::OPSZ_1), reg(r3)));
    let mask = (1i64 << (map.chunk_shift - map.page_shift)) - 1;
    meta(ffi::instr_create_1dst_2src(dc, ffi::OP_and as i32, reg(r3), imm(mask, ffi::OPSZ_4), reg(r3)));
    let byte = ffi::opnd_create_base_disp(r2, r3, 1, 0, ffi::OPSZ_1 as ffi::opnd_size_t);
    meta(ffi::instr_create_0dst_2src(dc, ffi::OP_cmp as i32, byte, imm(0, ffi::OPSZ_1)));
    ffi::dr_restore_reg(dc, bb, where_, r3, SCRATCH_SLOTS[2]);
    meta(jump(ffi::OP_jz, skip));
    meta(past_map);
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
