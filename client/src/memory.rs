//! Memory probes: `memory_read`, `memory_write` and `memory_execute`.
//!
//! Each memory operand of each instruction is decided when its block is
//! built, from what is known then: module, function, instruction address,
//! the access's size, and its address where the operand names it
//! (RIP-relative and absolute operands). What is left of a predicate is
//! tested per access, in two steps: inline in the code cache, the page of
//! the access's first byte in the page map of watched ranges
//! (`ptap_runtime::address_sets`), when every probe left there restricts
//! `memory_address`; then natively in the clean call, the whole predicate
//! (exact ranges, sets, size, value, thread). Python runs only for
//! accesses that match.
//!
//! A read's handlers run before the instruction. A write is seen twice:
//! before the instruction the clean call keeps its address and the bytes
//! there (`old_value`) and raises the thread's pending flag; after it
//! (before the next instruction of the block, or after the instruction
//! when it ends the block) an inline test of the flag calls the handlers.
//! A store that faults never reaches the second clean call, and the
//! signal clears what it left pending. A `call`, after which the callee
//! runs, is the exception: its push is made and reported before it.

use crate::instructions::{Instruction, KeptSites};
use crate::site_probes::SiteProbe;
use dr_sys::access::{CallPath, Filter, MemoryOperand, PageMap, Scratch};
use dr_sys::ffi;
use dr_sys::instrument::{Instr, InstrList, RawTlsWord, ThreadTest};
use dr_sys::process::DrContext;
use dr_sys::syscall::SyscallRegisters;
use once_cell::sync::OnceCell;
use ptap_runtime::address_sets;
use ptap_runtime::call::CallState;
use ptap_runtime::context::{Access, Fields, HitContext, MemoryFields, OldBytes};
use ptap_runtime::dispatch::call_handlers_with;
use ptap_runtime::predicate::{EventFields, Footprint, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn handles(kind: ProbeKind) -> bool {
    kind.is_memory()
}

/// Variables known only when the access happens.
const RUN_TIME_VARIABLES: [Variable; 4] = [Variable::ThreadId, Variable::ProcessId, Variable::MemoryAddress, Variable::MemoryValue];
/// The same once the address is known at translation.
const RUN_TIME_WITH_ADDRESS: [Variable; 3] = [Variable::ThreadId, Variable::ProcessId, Variable::MemoryValue];

struct Tracer {
    probes: &'static [Probe],
    any: [bool; 3],
    /// The running thread's access address, stored by the inline code.
    address: RawTlsWord,
    /// Non-zero while a write waits for its after-instruction clean call.
    pending: RawTlsWord,
    page_map: PageMap,
    instrumented: AtomicU64,
}

static SITES: KeptSites<usize, AccessSite> = KeptSites::new();

static TRACER: OnceCell<Tracer> = OnceCell::new();

/// The probes that may fire at one access of one instruction.
#[derive(PartialEq)]
struct AccessSite {
    access: Access,
    pc: usize,
    size: usize,
    /// The address, when the operand names it.
    known_address: Option<usize>,
    module: &'static str,
    function: Option<&'static str>,
    /// The address of the next instruction (what a call pushes).
    next_pc: usize,
    probes: Vec<SiteProbe>,
    /// The thread bits for which the site's clean call is worth making
    /// (see [`crate::instructions::thread_mask`]).
    thread_mask: Option<i32>,
}

const KINDS: [(ProbeKind, Access); 3] =
    [(ProbeKind::MemoryRead, Access::Read), (ProbeKind::MemoryWrite, Access::Write), (ProbeKind::MemoryExecute, Access::Execute)];

/// The probe kind that watches `access`.
fn kind_of(access: Access) -> ProbeKind {
    KINDS.iter().find(|(_, a)| *a == access).map(|(k, _)| *k).expect("every access has a probe kind")
}

/// Sets up memory probes, if the script has any; false when DynamoRIO
/// could not give what they need.
pub fn install(probes: &'static [Probe]) -> Result<(), String> {
    let any = KINDS.map(|(kind, _)| probes.iter().any(|p| p.kind == kind));
    if !any.iter().any(|&a| a) {
        return Ok(());
    }
    if !dr_sys::access::words_are_reachable() {
        return Err("memory probes need DynamoRIO's -reachable_client (its default), which this run turned off".into());
    }
    let (Some(address), Some(pending)) = (RawTlsWord::allocate(), RawTlsWord::allocate()) else {
        return Err("memory probes need two of DynamoRIO's thread-local slots, and none are left".into());
    };
    // Constant ranges in the predicates join the page map once.
    let constants: Vec<(usize, usize)> = probes
        .iter()
        .filter(|p| handles(p.kind))
        .filter_map(|p| p.predicate.address_footprint())
        .filter(|f| f.constant_bytes() <= MAX_MARKED_BYTES)
        .flat_map(|f| f.ranges)
        .collect();
    address_sets::watch_constant_ranges(&constants);
    let page_map = PageMap {
        hull: address_sets::hull_address(),
        table: address_sets::page_map_table(),
        chunks: address_sets::CHUNKS,
        chunk_shift: address_sets::CHUNK_SHIFT as u8,
        page_shift: address_sets::PAGE_SHIFT as u8,
    };
    let _ = TRACER.set(Tracer { probes, any, address, pending, page_map, instrumented: AtomicU64::new(0) });
    // SAFETY: a plain extern "C" callback with the signature drmgr expects.
    unsafe { ffi::drmgr_register_signal_event(Some(on_signal)) };
    Ok(())
}

/// Constant ranges wider than this are not marked in the page map (it
/// would take too long): accesses their probes may match always reach
/// the clean call.
const MAX_MARKED_BYTES: u128 = 1 << 32;

/// How many instructions carry memory-probe instrumentation so far.
pub fn instrumented_instructions() -> Option<u64> {
    TRACER.get().map(|t| t.instrumented.load(Ordering::Relaxed))
}

/// What a predicate can know of an access when its block is built, besides
/// its instruction's.
struct StaticFields {
    size: usize,
    known_address: Option<usize>,
}

impl EventFields for StaticFields {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::MemorySize => Some(Value::Int(self.size as i128)),
            Variable::MemoryAddress => self.known_address.map(|a| span(a, self.size)),
            _ => None,
        }
    }
}

fn span(address: usize, size: usize) -> Value {
    Value::Span(address as i128, address as i128 + size.max(1) as i128 - 1)
}

/// The site of one access, or `None` when no probe can match it.
fn decide_site(tracer: &Tracer, access: Access, instruction: &Instruction, size: usize, known_address: Option<usize>, next_pc: usize) -> Option<&'static AccessSite> {
    let kind = kind_of(access);
    let runtime: &[Variable] = if known_address.is_some() { &RUN_TIME_WITH_ADDRESS } else { &RUN_TIME_VARIABLES };
    let fields = StaticFields { size, known_address };
    let (probes, function) = crate::instructions::site_probes(tracer.probes, |_, p| p.kind == kind, instruction, runtime, &fields);
    if probes.is_empty() {
        return None;
    }
    let thread_mask = crate::instructions::thread_mask(&probes);
    let site = AccessSite { access, pc: instruction.pc, size, known_address, module: instruction.module, function, next_pc, probes, thread_mask };
    Some(SITES.keep(site.pc, site).0)
}

/// Whether the inline page-map test may stand before the site's clean
/// call: every probe there restricts the address, and the access is short.
fn filter_for(tracer: &Tracer, site: &AccessSite) -> Filter {
    let footprints: Option<Vec<Footprint>> = site.probes.iter().map(|sp| sp.predicate.as_ref().and_then(|p| p.address_footprint())).collect();
    let Some(footprints) = footprints.filter(|f| f.iter().all(|f| f.constant_bytes() <= MAX_MARKED_BYTES)) else { return Filter::None };
    // A few constant ranges (globals): compared outright, with no table.
    let mut ranges: Vec<(usize, usize)> = footprints.iter().flat_map(|f| f.ranges.iter().copied()).collect();
    if footprints.iter().all(|f| f.sets.is_empty()) && ranges.len() <= MAX_COMPARED_RANGES {
        ranges.retain(|&(s, e)| s < e);
        return Filter::Ranges { ranges, size: site.size };
    }
    if (1..=address_sets::MAX_FILTERED_ACCESS).contains(&site.size) {
        Filter::PageMap(tracer.page_map)
    } else {
        Filter::None
    }
}

/// A new label.
///
/// # Safety
/// On thread `dc`.
unsafe fn label(dc: DrContext) -> Instr {
    ffi::instr_create_0dst_0src(dc, ffi::OP_LABEL as i32)
}

/// The inline test of the thread for the site, if it has one.
fn thread_test(site: &AccessSite) -> Option<ThreadTest> {
    crate::instructions::thread_test(site.thread_mask)
}

/// Most constant ranges compared inline before the page map is used instead.
const MAX_COMPARED_RANGES: usize = 4;

thread_local! {
    /// While a block is built: the previous instruction left a write
    /// whose after-instruction test goes before this one.
    static AFTER_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Instruments one application instruction (`instr`, the insertion point)
/// whose memory operands are those of `operands` (the string instruction
/// inside an expanded `rep` loop) and whose execution is `fetched`'s.
/// `copy_allowed`: the instruction may be copied to run on the way from
/// its clean calls (nothing drreg restores lazily stands before it: no
/// gather or scatter was expanded in the block).
///
/// # Safety
/// From drmgr's insertion callback on thread `dc`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn instrument(
    dc: DrContext,
    bb: InstrList,
    instr: Instr,
    first: bool,
    operands: Instr,
    operands_at: Option<Instruction>,
    fetched: Instr,
    fetched_at: Option<Instruction>,
    copy_allowed: bool,
) {
    let Some(tracer) = TRACER.get() else { return };
    if first {
        AFTER_PENDING.set(false);
    }
    let after_previous = AFTER_PENDING.replace(false);
    // A call's push is reported from before the call (see on_call_write).
    let is_call = !operands.is_null() && ffi::instr_is_call(operands) != 0;
    let mut reads: Vec<(MemoryOperand, &'static AccessSite)> = Vec::new();
    let mut writes: Vec<(MemoryOperand, &'static AccessSite)> = Vec::new();
    if let Some(at) = operands_at.filter(|_| !operands.is_null() && (tracer.any[0] || tracer.any[1])) {
        for op in dr_sys::access::memory_operands(operands) {
            let access = if op.is_write { Access::Write } else { Access::Read };
            let wanted = if op.is_write { tracer.any[1] } else { tracer.any[0] };
            if !wanted {
                continue;
            }
            let next_pc = at.pc + ffi::instr_length(dc, operands) as usize;
            if let Some(site) = decide_site(tracer, access, &at, op.size, op.known_address, next_pc) {
                if op.is_write { writes.push((op, site)) } else { reads.push((op, site)) }
            }
        }
    }
    let execute = fetched_at.filter(|_| tracer.any[2]).and_then(|at| {
        let size = dr_sys::ffi::instr_length(dc, fetched) as usize;
        decide_site(tracer, Access::Execute, &at, size, Some(at.pc), at.pc + size)
    });
    if !after_previous && reads.is_empty() && writes.is_empty() && execute.is_none() {
        return;
    }
    if after_previous {
        dr_sys::instrument::insert_clean_call_if(dc, bb, instr, tracer.pending, after_write as *mut c_void, &[dr_sys::instrument::Arg::Word(0)]);
    }
    let Some(scratch) = Scratch::choose(if operands.is_null() { instr } else { operands }, instr) else { return };
    if let Some(site) = execute {
        let args = [dr_sys::instrument::Arg::Word(site as *const _ as usize)];
        match thread_test(site) {
            Some(test) => dr_sys::instrument::insert_clean_call_for_threads(dc, bb, instr, test, on_execute as *mut c_void, &args),
            None => dr_sys::instrument::insert_clean_call(dc, bb, instr, on_execute as *mut c_void, &args),
        }
    }
    for (op, site) in &reads {
        let filter = filter_for(tracer, site);
        dr_sys::access::insert_access_test(dc, bb, instr, &scratch, op.operand, tracer.address, thread_test(site), &filter, on_read as *mut c_void, *site as *const _ as usize, CallPath::Rejoin);
    }
    let before = if is_call { on_call_write as *mut c_void } else { before_write as *mut c_void };
    let last = ffi::drmgr_is_last_instr(dc, instr) != 0;
    let filters: Vec<Filter> = writes.iter().map(|(_, site)| filter_for(tracer, site)).collect();
    // An access that always reaches its clean call gains nothing from it.
    let tested = |site: &AccessSite, filter: &Filter| thread_test(site).is_some() || !matches!(filter, Filter::None);
    let copied = match (writes.as_slice(), filters.as_slice()) {
        ([(op, site)], [filter]) if copy_allowed && !is_call && !last && operands == instr && tested(site, filter) => Some((op, site, filter)),
        _ => None,
    };
    if let Some((op, site, filter)) = copied {
        // One write: the way to its clean call runs a copy of the
        // instruction and the after-write call, and goes on after the
        // instruction; an access that does not match runs the instruction
        // itself, with no test of the pending word after it.
        //     <test: jumps to call or to skip>
        // call: <before_write>; <copy of instr>; <after_write if pending>; jmp next
        // skip: <restore>; instr
        // next:
        let next = label(dc);
        ffi::instrlist_meta_postinsert(bb, instr, next);
        let then = |at: Instr| {
            dr_sys::access::insert_instruction_copy(dc, bb, at, instr);
            // It goes on after the instruction: the flags it leaves are
            // the ones to keep.
            dr_sys::instrument::insert_clean_call_if_before(dc, bb, at, next, tracer.pending, after_write as *mut c_void, &[dr_sys::instrument::Arg::Word(0)]);
        };
        let path = CallPath::Instead { then: &then, resume: next };
        dr_sys::access::insert_access_test(dc, bb, instr, &scratch, op.operand, tracer.address, thread_test(site), filter, before, *site as *const _ as usize, path);
    } else {
        for ((op, site), filter) in writes.iter().zip(&filters) {
            dr_sys::access::insert_access_test(dc, bb, instr, &scratch, op.operand, tracer.address, thread_test(site), filter, before, *site as *const _ as usize, CallPath::Rejoin);
        }
        if !writes.is_empty() && !is_call {
            if last {
                // Nothing follows in this block: the test goes after it here.
                let end = label(dc);
                ffi::instrlist_meta_postinsert(bb, instr, end);
                dr_sys::instrument::insert_clean_call_if(dc, bb, end, tracer.pending, after_write as *mut c_void, &[dr_sys::instrument::Arg::Word(0)]);
            } else {
                AFTER_PENDING.set(true);
            }
        }
    }
    if !reads.is_empty() || !writes.is_empty() || execute.is_some() {
        tracer.instrumented.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// At run time

/// The fields of one access, for what is left of its predicates.
struct AccessFields<'a> {
    site: &'a AccessSite,
    address: usize,
    tid: u32,
    pid: u32,
    /// The bytes there, read when a predicate first asks.
    value: RefCell<Option<Vec<u8>>>,
}

impl EventFields for AccessFields<'_> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::ThreadId => Some(Value::Int(self.tid as i128)),
            Variable::ProcessId => Some(Value::Int(self.pid as i128)),
            Variable::MemoryAddress => Some(span(self.address, self.site.size)),
            Variable::MemorySize => Some(Value::Int(self.site.size as i128)),
            Variable::MemoryValue => {
                let mut value = self.value.borrow_mut();
                let bytes = value.get_or_insert_with(|| {
                    let mut buf = vec![0u8; self.site.size];
                    let got = dr_sys::memory::safe_read(self.address, &mut buf);
                    buf.truncate(got);
                    buf
                });
                Some(Value::Bytes(bytes.clone()))
            }
            _ => None,
        }
    }
}

/// Runs the handlers of the site's probes that accept the access at
/// `address`; `old_value` is a write's bytes before it.
fn fire(site: &AccessSite, address: usize, old_value: Option<OldBytes>) {
    let Some(tracer) = TRACER.get() else { return };
    // SAFETY: in a clean call of a thread DynamoRIO runs.
    let dc = unsafe { ffi::dr_get_current_drcontext() };
    // SAFETY: dc is the running thread's, in its clean call.
    let tid = unsafe { dr_sys::process::tid_of(dc) };
    let pid = dr_sys::process::pid();
    let fields = AccessFields { site, address, tid, pid, value: RefCell::new(None) };
    // Decided for every probe before any handler runs (a handler may
    // change the value a later probe's predicate tests); as bits, not a
    // list, for the first 64: an allocation per event costs as much as
    // the predicates.
    let accepts = |sp: &SiteProbe| sp.predicate.as_ref().is_none_or(|p| p.matches(&fields));
    let bits = site.probes.iter().take(64).enumerate().fold(0u64, |bits, (i, sp)| bits | (accepts(sp) as u64) << i);
    let rest: Vec<&SiteProbe> = site.probes.iter().skip(64).filter(|sp| accepts(sp)).collect();
    if bits == 0 && rest.is_empty() {
        return;
    }
    let kind = kind_of(site.access);
    // SAFETY: in the thread's clean call; no other register view of it lives.
    let mut regs = unsafe { SyscallRegisters::new(dc, site.pc, 0) };
    let first = site.probes.iter().take(64).enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, sp)| sp);
    let probes = first.chain(rest).map(|sp| {
        crate::match_reports::matched(sp.probe);
        &tracer.probes[sp.probe]
    });
    call_handlers_with(probes, || {
        let fields = MemoryFields {
            access: site.access,
            address,
            size: site.size,
            pc: site.pc,
            function_name: site.function,
            module: site.module,
            old_value,
        };
        HitContext::new(kind.name(), pid, tid, Fields::Memory(fields), Some(CallState::instruction(&mut regs)))
    });
    // SAFETY: the clean call that captured them is running.
    unsafe { regs.commit() };
}

/// The running thread's access address, as the inline code stored it.
fn stored_address(site: &AccessSite) -> usize {
    match (site.known_address, TRACER.get()) {
        (Some(a), _) => a,
        // SAFETY: a clean call of a thread DynamoRIO runs.
        (None, Some(t)) => unsafe { t.address.get() },
        (None, None) => 0,
    }
}

unsafe extern "C" fn on_read(site: usize) {
    // SAFETY: a clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    // SAFETY: sites are leaked at translation and live for the process.
    let site = &*(site as *const AccessSite);
    fire(site, stored_address(site), None);
}

unsafe extern "C" fn on_execute(site: usize) {
    dr_sys::simd::clear_upper_halves();
    // SAFETY: as for on_read.
    let site = &*(site as *const AccessSite);
    fire(site, site.pc, None);
}

/// A write the thread is making, between its two clean calls. (Plain data:
/// no destructor, which would crash under DynamoRIO's private libc.)
#[derive(Clone, Copy)]
struct PendingWrite {
    site: usize,
    address: usize,
    old: [u8; address_sets::MAX_FILTERED_ACCESS],
    /// Bytes kept in `old`; an access longer than `old` keeps none.
    old_len: usize,
}

/// Writes one instruction makes at most (`movs`, `push [mem]`, ...).
const MAX_PENDING: usize = 4;

struct Pending {
    writes: [PendingWrite; MAX_PENDING],
    len: usize,
}

const NO_WRITE: PendingWrite = PendingWrite { site: 0, address: 0, old: [0; address_sets::MAX_FILTERED_ACCESS], old_len: 0 };

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { writes: [NO_WRITE; MAX_PENDING], len: 0 }) };
}

unsafe extern "C" fn before_write(site_word: usize) {
    let Some(tracer) = TRACER.get() else { return };
    // SAFETY: as for on_read.
    let site = &*(site_word as *const AccessSite);
    let address = stored_address(site);
    let mut write = PendingWrite { site: site_word, address, ..NO_WRITE };
    if site.size <= write.old.len() {
        write.old_len = dr_sys::memory::safe_read(address, &mut write.old[..site.size]);
    }
    PENDING.with_borrow_mut(|p| {
        if p.len == MAX_PENDING {
            p.len = 0;
        }
        p.writes[p.len] = write;
        p.len += 1;
    });
    tracer.pending.set(1);
}

unsafe extern "C" fn after_write(_: usize) {
    let Some(tracer) = TRACER.get() else { return };
    dr_sys::simd::clear_upper_halves();
    tracer.pending.set(0);
    let pending = PENDING.with_borrow_mut(|p| std::mem::replace(&mut p.len, 0).min(MAX_PENDING));
    for i in 0..pending {
        let write = PENDING.with_borrow(|p| p.writes[i]);
        // SAFETY: as for on_read.
        let site = &*(write.site as *const AccessSite);
        let old = (write.old_len == site.size).then(|| OldBytes::new(&write.old[..write.old_len])).flatten();
        fire(site, write.address, old);
    }
}

/// Before a `call`: its push of the return address, reported whole. The
/// clean call cannot run after a call (the next instruction is the
/// callee's), so it makes the write itself, with the value the call
/// writes, and reports it; the call then writes the same bytes again.
unsafe extern "C" fn on_call_write(site_word: usize) {
    dr_sys::simd::clear_upper_halves();
    // SAFETY: as for on_read.
    let site = &*(site_word as *const AccessSite);
    let address = stored_address(site);
    let value = site.next_pc.to_le_bytes();
    let mut old = [0u8; 8];
    if site.size > value.len() {
        return;
    }
    let got = dr_sys::memory::safe_read(address, &mut old[..site.size]);
    if got < site.size || !dr_sys::memory::safe_write(address, &value[..site.size]) {
        // The call itself faults: no write happens.
        return;
    }
    fire(site, address, OldBytes::new(&old[..site.size]));
}

/// A fault interrupts the thread: the store that faulted wrote nothing.
unsafe extern "C" fn on_signal(_dc: *mut c_void, info: *mut ffi::dr_siginfo_t) -> ffi::dr_signal_action_t {
    let fault = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP].contains(&(*info).sig);
    if let Some(tracer) = TRACER.get().filter(|_| fault) {
        if tracer.pending.get() != 0 {
            tracer.pending.set(0);
            PENDING.with_borrow_mut(|p| p.len = 0);
        }
    }
    ffi::dr_signal_action_t_DR_SIGNAL_DELIVER
}
