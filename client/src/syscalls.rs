//! System-call probes: `syscall_entry` and `syscall_exit`.
//!
//! At start-up each probe's predicate is decided for every system call of
//! the table from what is known then (number and name). The instrumentation
//! then goes where system calls are made: when DynamoRIO builds a block
//! ending in a `syscall` instruction, the number the block puts in RAX
//! (`mov $257, %eax`) decides whether any probe may fire there; blocks
//! that do not show the number are instrumented and RAX is tested when the
//! call is made. An instrumented system call gets a clean call just before
//! its `syscall` instruction, which runs the entry handlers (they may change
//! parameters, or skip the call), and, when exit probes may fire, one
//! before the instruction after it (the start of the next block), which
//! runs the exit handlers with the parameters kept per thread in between.
//! What depends on the running thread is tested natively per call.
//!
//! The thread stays in the code cache throughout. DynamoRIO's own
//! pre- and post-syscall events leave it for every call they intercept,
//! which alone cost ~470 ns per system call here, more than the handlers.

use crate::site_probes::{chosen, matching, matching_except, residual, ProbeSet, SiteProbe};
use dr_sys::ffi;
use dr_sys::instrument::{self, Arg, Instr, InstrList, RawTlsWord};
use dr_sys::process::DrContext;
use dr_sys::syscall::SyscallRegisters;
use once_cell::sync::{Lazy, OnceCell};
use ptap_runtime::call::{CallState, EntryValues};
use ptap_runtime::context::{Fields, HitContext, SyscallFields};
use ptap_runtime::dispatch::call_handlers_with;
use ptap_runtime::predicate::{EventFields, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::prototype::SyscallEntry;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// The probes this module runs.
pub fn handles(kind: ProbeKind) -> bool {
    matches!(kind, ProbeKind::SyscallEntry | ProbeKind::SyscallExit)
}

/// Parameters a system call may have.
const PARAMS: usize = 6;

/// The probes that may fire at one system call.
#[derive(Default)]
struct SyscallSite {
    /// Its entry in the system-call table; `None` for a number outside it.
    table: Option<&'static SyscallEntry>,
    entry: Vec<SiteProbe>,
    exit: Vec<SiteProbe>,
    /// Whether the call comes back to the instruction after its `syscall`
    /// when it is made (all but `rt_sigreturn`, `exit` and `exit_group`).
    returns: bool,
}

impl SyscallSite {
    /// The probes of one side.
    fn probes(&self, kind: ProbeKind) -> &[SiteProbe] {
        if kind == ProbeKind::SyscallEntry { &self.entry } else { &self.exit }
    }

    /// The system call's prototype, if the table has one.
    fn signature(&self) -> Option<&'static ptap_runtime::prototype::Signature> {
        self.table?.signature.as_ref()
    }

    /// Whether the instruction the call returns to needs the exit clean
    /// call: for the exit probes, and, after entry handlers ran, to see
    /// that the call was made (see [`run_entry`]).
    fn needs_return_point(&self) -> bool {
        !self.exit.is_empty() || (!self.entry.is_empty() && self.returns)
    }
}

/// The system calls that never come back to where they were made.
const NOT_RETURNING: [&str; 3] = ["rt_sigreturn", "exit", "exit_group"];

struct Tracer {
    probes: &'static [Probe],
    /// By system-call number, for the numbers of the table; empty sites
    /// are not instrumented.
    sites: Vec<SyscallSite>,
    /// Sites of numbers outside the table (a program may make any system
    /// call, strace shows them as `syscall_0x...`), decided when first
    /// made; leaked, as they live as long as the process.
    others: parking_lot::Mutex<HashMap<i32, &'static SyscallSite>>,
    /// The numbers tested inline where a block does not show its system
    /// call's number ([`inline_numbers`]); `None`: every such call makes
    /// the clean call.
    numbers: Option<Vec<i64>>,
}

static TRACER: OnceCell<Tracer> = OnceCell::new();

/// The instructions after instrumented system calls: the blocks that start
/// there get the exit clean call.
static RETURN_POINTS: Lazy<parking_lot::Mutex<HashSet<usize>>> = Lazy::new(Default::default);
/// Return points whose block was in the code cache, uninstrumented, before
/// their system call was first seen (code that jumps there too): the next
/// entry clean call flushes them, before any such call can return there.
static STALE: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());
static ANY_STALE: AtomicBool = AtomicBool::new(false);
/// How many system calls the running thread has pending, where the code
/// at return points reads it: the exit clean call is made only when some
/// call waits (a run-time predicate may have matched none).
static PENDING_COUNT: OnceCell<RawTlsWord> = OnceCell::new();

/// A system call made and not yet returned: its exit probes wait for it,
/// and a second run of its entry clean call is told apart by it.
#[derive(Clone, Copy)]
struct Pending {
    number: i32,
    /// Where the call returns to.
    return_pc: usize,
    /// The stack pointer at the call.
    rsp: usize,
    exit: ProbeSet,
    params: [usize; PARAMS],
    /// When it was made (CLOCK_MONOTONIC, ns), for `ctx.duration`; 0
    /// when it has no exit probes.
    entered: u64,
}

const NO_PENDING: Pending = Pending { number: 0, return_pc: 0, rsp: 0, exit: ProbeSet::EMPTY, params: [0; PARAMS], entered: 0 };

/// How many system calls one thread may have waiting for their exit: more
/// than one while a signal handler makes system calls of its own.
const MAX_PENDING: usize = 8;

/// A thread's system calls between their entry and exit clean calls,
/// innermost last. (Plain data: no destructor, which would crash under
/// DynamoRIO's private libc.)
struct PendingCalls {
    calls: [Pending; MAX_PENDING],
    len: usize,
}

thread_local! {
    static PENDING: RefCell<PendingCalls> = const { RefCell::new(PendingCalls { calls: [NO_PENDING; MAX_PENDING], len: 0 }) };
}

/// Keeps `call` for its exit; the oldest goes when there are too many.
fn push_pending(call: Pending) {
    PENDING.with_borrow_mut(|p| {
        if p.len == MAX_PENDING {
            p.calls.copy_within(1.., 0);
            p.len -= 1;
        }
        p.calls[p.len] = call;
        p.len += 1;
        publish_pending_count(p.len);
    });
}

/// Tells the return points' inline test how many calls are pending.
fn publish_pending_count(len: usize) {
    if let Some(word) = PENDING_COUNT.get() {
        // SAFETY: called from the thread's own clean calls.
        unsafe { word.set(len) };
    }
}

/// Whether the innermost pending system call is system call `number` made
/// again from the same place with the same stack: it is the same call,
/// entered already. The kernel restarting it after a signal handler
/// (SA_RESTART) sends the thread back to its `syscall` instruction; and so
/// does DynamoRIO when a signal arrives while the entry handlers run (a
/// child they started exits): it delivers the signal when the block leaves
/// the code cache for the call, and then runs a block that starts at the
/// `syscall` instruction, entry clean call included.
fn is_restart(number: i32, return_pc: usize, rsp: usize) -> bool {
    PENDING.with_borrow(|p| {
        p.calls[..p.len].last().is_some_and(|c| c.number == number && c.return_pc == return_pc && c.rsp == rsp)
    })
}

/// The innermost pending system call that returns to `return_pc`, removed
/// with any kept after it: calls that never came back to where they were
/// made (`rt_sigreturn`; a call a signal handler left with `siglongjmp`).
fn take_pending(return_pc: usize) -> Option<Pending> {
    PENDING.with_borrow_mut(|p| {
        let i = p.calls[..p.len].iter().rposition(|c| c.return_pc == return_pc)?;
        p.len = i;
        publish_pending_count(p.len);
        Some(p.calls[i])
    })
}

/// What a predicate can know of a system call before it is made.
struct SyscallStaticFields<'a> {
    number: i128,
    /// None for a number outside the table.
    name: Option<&'a str>,
}

impl EventFields for SyscallStaticFields<'_> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::SyscallNum => Some(Value::Int(self.number)),
            Variable::SyscallName => self.name.map(|n| Value::Str(n.to_string())),
            _ => None,
        }
    }
}

/// The probes that may fire at system call `number` (`table`: its entry in
/// the table, if any), decided from its number and name.
fn decide_site(probes: &[Probe], number: i128, table: Option<&'static SyscallEntry>) -> SyscallSite {
    let fields = &SyscallStaticFields { number, name: table.map(|e| e.name.as_str()) };
    let returns = !table.is_some_and(|e| NOT_RETURNING.contains(&e.name.as_str()));
    let mut site = SyscallSite { table, returns, ..Default::default() };
    for (i, p) in probes.iter().enumerate().filter(|(_, p)| handles(p.kind)) {
        let Some(rest) = residual(&p.predicate, fields) else { continue };
        let list = if p.kind == ProbeKind::SyscallEntry { &mut site.entry } else { &mut site.exit };
        list.push(SiteProbe { probe: i, name: None, predicate: rest });
        crate::match_reports::matched(i);
    }
    site
}

/// The most system-call numbers tested inline before a clean call.
const MAX_INLINE_NUMBERS: usize = 8;

/// The numbers the probes may match, when they are few and all in the
/// table: a block that does not show its system call's number then tests
/// RAX against them inline, and makes the clean call only for them.
/// `None` when any number might do (a predicate such as `process_id > 0`,
/// or `syscall_num` beyond the table).
fn inline_numbers(probes: &[Probe], sites: &[SyscallSite]) -> Option<Vec<i64>> {
    /// A number no table has.
    const OUTSIDE_TABLE: i128 = 1 << 40;
    let fields = &SyscallStaticFields { number: OUTSIDE_TABLE, name: None };
    // A predicate on the number may name one outside the table (9999);
    // one that matches a call without a name matches those too.
    let open = |p: &Probe| p.predicate.mentions(Variable::SyscallNum) || residual(&p.predicate, fields).is_some();
    if probes.iter().filter(|p| handles(p.kind)).any(open) {
        return None;
    }
    let numbers: Vec<i64> = sites.iter().enumerate().filter(|(_, s)| !s.entry.is_empty() || !s.exit.is_empty()).map(|(n, _)| n as i64).collect();
    (numbers.len() <= MAX_INLINE_NUMBERS).then_some(numbers)
}

/// Decides which system calls the probes may match and registers the
/// instrumentation that intercepts them; `probes` lives as long as the
/// process.
pub fn install(probes: &'static [Probe]) {
    if !probes.iter().any(|p| handles(p.kind)) {
        return;
    }
    let mut sites: Vec<SyscallSite> = Vec::new();
    for (number, entry) in ptap_runtime::prototype::syscalls() {
        let site = decide_site(probes, number as i128, Some(entry));
        if sites.len() <= number {
            sites.resize_with(number + 1, SyscallSite::default);
        }
        sites[number] = site;
    }
    if let Some(word) = RawTlsWord::allocate() {
        let _ = PENDING_COUNT.set(word);
    }
    let numbers = inline_numbers(probes, &sites);
    let counts_syscalls = probes.iter().any(|p| p.kind == ProbeKind::SyscallEntry && p.count.is_some());
    let _ = INLINE_COUNTS.set(cfg!(target_arch = "x86_64") && counts_syscalls && dr_sys::access::init());
    if TRACER.set(Tracer { probes, sites, others: Default::default(), numbers }).is_err() {
        return;
    }
    // SAFETY: registering a plain extern "C" callback with the signature
    // drmgr expects (drmgr is initialised by the lifecycle events).
    unsafe {
        ffi::drmgr_register_bb_instrumentation_event(None, Some(on_instruction), std::ptr::null_mut());
    }
}

/// The probes at system call `number`, if any may fire there.
fn site(number: i32) -> Option<(&'static Tracer, &'static SyscallSite)> {
    let tracer = TRACER.get()?;
    let in_table = usize::try_from(number).ok().and_then(|n| tracer.sites.get(n)).filter(|s| s.table.is_some());
    let site = match in_table {
        Some(site) => site,
        None => *tracer.others.lock().entry(number).or_insert_with(|| Box::leak(Box::new(decide_site(tracer.probes, number as i128, None)))),
    };
    (!site.entry.is_empty() || !site.exit.is_empty()).then_some((tracer, site))
}

/// Whether the system call a block makes with `number` in RAX (`None`:
/// the block does not show it) needs instrumenting: `None` if not, else
/// whether the instruction it returns to does too.
fn instrumentation_for(number: Option<i64>) -> Option<bool> {
    match number {
        Some(n) => {
            let (_, site) = site(i32::try_from(n).ok()?)?;
            Some(site.needs_return_point())
        }
        None => TRACER.get().map(|_| true),
    }
}

/// drmgr's insertion callback, for each instruction of each new block.
unsafe extern "C" fn on_instruction(
    dc: *mut c_void,
    _tag: *mut c_void,
    bb: *mut ffi::instrlist_t,
    instr: *mut ffi::instr_t,
    _for_trace: ffi::bool_,
    translating: ffi::bool_,
    _user_data: *mut c_void,
) -> ffi::dr_emit_flags_t {
    let (dc, bb, instr): (DrContext, InstrList, Instr) = (dc, bb, instr);
    if !instrument::is_app(instr) {
        return ffi::dr_emit_flags_t::DR_EMIT_DEFAULT;
    }
    let mut instrumented = false;
    if instrument::is_first_app(bb, instr) {
        let pc = instrument::app_pc(instr);
        if RETURN_POINTS.lock().contains(&pc) {
            let (callee, args) = (on_return as *mut c_void, [Arg::Word(pc), Arg::Rax]);
            match PENDING_COUNT.get() {
                Some(&count) => instrument::insert_clean_call_if(dc, bb, instr, count, callee, &args),
                None => instrument::insert_clean_call(dc, bb, instr, callee, &args),
            }
            instrumented = true;
        }
    }
    if instrument::is_syscall(instr) {
        let number = instrument::syscall_number_set_before(instr);
        let shown = number.and_then(|n| i32::try_from(n).ok());
        // count= probes on this number, counted here; the clean call only
        // if other probes want the call.
        let needed = match shown {
            Some(n) if INLINE_COUNTS.get().copied().unwrap_or(false) => insert_inline_counts(dc, bb, instr, n),
            _ => true,
        };
        if let Some(needs_exit) = instrumentation_for(number).filter(|_| needed) {
            let syscall_pc = instrument::app_pc(instr);
            let return_pc = instrument::next_app_pc(dc, instr);
            // 32-bit x86: the vDSO's sysenter and syscall return past the
            // `int $0x80` after them.
            #[cfg(target_arch = "x86")]
            let return_pc = dr_sys::syscall::Entry32::return_pc(syscall_pc, return_pc - syscall_pc);
            if needs_exit && translating == 0 {
                remember_return_point(dc, return_pc);
            }
            let counted = shown.is_some() && INLINE_COUNTS.get().copied().unwrap_or(false);
            let callee = if counted { on_counted_syscall as *mut c_void } else { on_syscall as *mut c_void };
            let args = [Arg::Rax, Arg::Word(syscall_pc), Arg::Word(return_pc), Arg::Rsp];
            let unknown_number = shown.is_none();
            match TRACER.get().and_then(|t| t.numbers.as_deref()).filter(|_| unknown_number) {
                Some(numbers) => instrument::insert_clean_call_if_rax_in(dc, bb, instr, numbers, callee, &args),
                None => instrument::insert_clean_call(dc, bb, instr, callee, &args),
            }
            instrumented = true;
        }
    }
    // What we insert depends on what was seen before (the return points):
    // DynamoRIO keeps the translations rather than rebuild the block
    // later, when the answer may differ.
    match instrumented {
        true => ffi::dr_emit_flags_t::DR_EMIT_STORE_TRANSLATIONS,
        false => ffi::dr_emit_flags_t::DR_EMIT_DEFAULT,
    }
}

/// Marks `pc`, where an instrumented system call returns, for the exit
/// clean call.
///
/// # Safety
/// `dc` must be the context of the thread building a block.
unsafe fn remember_return_point(dc: DrContext, pc: usize) {
    if !RETURN_POINTS.lock().insert(pc) {
        return;
    }
    if instrument::fragment_exists_at(dc, pc) {
        STALE.lock().push(pc);
        ANY_STALE.store(true, Ordering::Release);
    }
}

/// Flushes the blocks built at return points before they were known;
/// returns whether it did (the calling clean call must then leave through
/// [`instrument::resume_at`]).
///
/// # Safety
/// Only from a clean call, before taking any lock or the GIL.
unsafe fn flush_stale_return_points() -> bool {
    if !ANY_STALE.load(Ordering::Acquire) {
        return false;
    }
    ANY_STALE.store(false, Ordering::Release);
    let stale = std::mem::take(&mut *STALE.lock());
    for &pc in &stale {
        instrument::flush_region(pc, 1);
    }
    !stale.is_empty()
}

/// Runs the `kind` handlers of `set` for one event of system call
/// `number`, with the `ctx.call` that `make_call` makes.
fn fire(tracer: &Tracer, kind: ProbeKind, site: &SyscallSite, set: ProbeSet, number: i32, tid: u32, make_call: impl FnOnce() -> CallState) -> Option<ptap_runtime::call::Finished> {
    call_handlers_with(chosen(site.probes(kind), set).map(|sp| &tracer.probes[sp.probe]), || {
        let fields = SyscallFields { number: number as usize, name: site.table.map(|e| e.name.as_str()) };
        HitContext::new(kind.name(), dr_sys::process::pid(), tid, Fields::Syscall(fields), Some(make_call()))
    })
}

/// Where the thread comes back to the application's code after the system
/// call at `syscall_pc`, which returns to `return_pc`. On x86-64 that is
/// `return_pc`. On 32-bit x86 the vDSO's `__kernel_vsyscall` (three
/// pushes, then `sysenter` or `syscall`, `int $0x80`, the landing pad)
/// returns to DynamoRIO's displaced copy of its landing pad, where no
/// block of ours is built: the exit waits at the return address of the
/// call to `__kernel_vsyscall` instead, above the three words it pushed.
fn exit_point(syscall_pc: usize, return_pc: usize, rsp: usize) -> usize {
    #[cfg(target_arch = "x86")]
    // A two-byte `sysenter` or `syscall`, and the `int $0x80` skipped.
    if dr_sys::syscall::Entry32::at(syscall_pc) != dr_sys::syscall::Entry32::Int80 && return_pc == syscall_pc + 4 {
        let mut word = [0u8; 4];
        if dr_sys::memory::safe_read(rsp + 12, &mut word) == 4 {
            return u32::from_le_bytes(word) as usize;
        }
    }
    let _ = (syscall_pc, rsp);
    return_pc
}

/// The clean call before an instrumented `syscall` instruction at
/// `syscall_pc`, with the application's RAX and stack pointer; the call
/// returns to `return_pc`.
/// Whether `sp` is a `syscall_entry(..., count="syscall")` probe that a
/// block showing its call's number counts inline, with no clean call: its
/// predicate is decided by the number alone (x86-64, drx started).
fn counted_inline(tracer: &Tracer, sp: &SiteProbe) -> bool {
    let probe = &tracer.probes[sp.probe];
    INLINE_COUNTS.get().copied().unwrap_or(false)
        && probe.kind == ProbeKind::SyscallEntry
        && probe.count == Some(ptap_runtime::counts::CountKey::Syscall)
        && sp.predicate.is_none()
}

/// Whether [`counted_inline`] can hold: set at install.
static INLINE_COUNTS: OnceCell<bool> = OnceCell::new();

/// Inserts before the `syscall` at `instr`, which makes system call
/// `number`, the increments of the probes there [`counted_inline`];
/// returns whether the clean call is still needed (for other probes).
///
/// # Safety
/// In drmgr's insertion callback of thread `dc`, `instr` in `bb`.
unsafe fn insert_inline_counts(dc: DrContext, bb: InstrList, instr: Instr, number: i32) -> bool {
    let Some((tracer, site)) = site(number) else { return false };
    let key = site.table.map_or(ptap_runtime::counts::KeyValue::Number(number as u64), |e| ptap_runtime::counts::KeyValue::Name(e.name.as_str()));
    let mut others = !site.exit.is_empty();
    for sp in &site.entry {
        if !counted_inline(tracer, sp) {
            others = true;
            continue;
        }
        let counter = ptap_runtime::counts::counter_for(sp.probe, key);
        #[cfg(target_arch = "x86_64")]
        dr_sys::access::insert_counter_increment(dc, bb, instr, counter.as_ptr() as *const u64);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (dc, bb, instr, counter);
    }
    others
}

/// Takes back the inline counts of system call `rax` made before a clean
/// call that restarts at the `syscall` in a block of its own, which counts
/// the call again (if `counted`: this block's code had counted it).
fn uncount_inline(rax: usize, counted: bool) {
    let Some((tracer, site)) = i32::try_from(rax as i64).ok().filter(|_| counted).and_then(site) else { return };
    let key = site.table.map_or(ptap_runtime::counts::KeyValue::Number(rax as u64), |e| ptap_runtime::counts::KeyValue::Name(e.name.as_str()));
    for sp in site.entry.iter().filter(|sp| counted_inline(tracer, sp)) {
        ptap_runtime::counts::counter_for(sp.probe, key).fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

unsafe extern "C" fn on_syscall(rax: usize, syscall_pc: usize, return_pc: usize, rsp: usize) {
    entered(rax, syscall_pc, return_pc, rsp, false)
}

/// [`on_syscall`] at a `syscall` whose block counted its count= probes
/// inline ([`insert_inline_counts`]). (A clean call takes four arguments.)
unsafe extern "C" fn on_counted_syscall(rax: usize, syscall_pc: usize, return_pc: usize, rsp: usize) {
    entered(rax, syscall_pc, return_pc, rsp, true)
}

/// The entry clean call's work; `counted`: this block's code counted the
/// count= probes already.
unsafe fn entered(rax: usize, syscall_pc: usize, return_pc: usize, rsp: usize, counted: bool) {
    // SAFETY: a clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    if flush_stale_return_points() {
        // Come back here in a block of its own: this clean call runs
        // anew, now that the blocks where system calls return are
        // instrumented (and counts the call there).
        uncount_inline(rax, counted);
        instrument::resume_at(ffi::dr_get_current_drcontext(), syscall_pc);
        return;
    }
    let Ok(number) = i32::try_from(rax as i64) else { return };
    let Some((tracer, site)) = site(number) else { return };
    // Where the exit clean call waits; `return_pc` is where the thread goes
    // on if the call is skipped.
    let exit_pc = exit_point(syscall_pc, return_pc, rsp);
    if exit_pc != return_pc && site.needs_return_point() {
        remember_return_point(ffi::dr_get_current_drcontext(), exit_pc);
        if flush_stale_return_points() {
            uncount_inline(rax, counted);
            instrument::resume_at(ffi::dr_get_current_drcontext(), syscall_pc);
            return;
        }
    }
    if is_restart(number, exit_pc, rsp) {
        return;
    }
    let dc = ffi::dr_get_current_drcontext();
    let tid = dr_sys::process::tid_of(dc);
    let pid = dr_sys::process::pid();
    let entry = matching_except(&site.entry, tid, pid, |sp| counted && counted_inline(tracer, sp));
    let exit = matching(&site.exit, tid, pid);
    if entry.is_empty() && exit.is_empty() {
        return;
    }
    let mut regs = SyscallRegisters::new(dc, syscall_pc, rax);
    match run_entry(tracer, site, number, tid, (entry, exit), &mut regs, (exit_pc, rsp)) {
        // Nothing on this frame needs dropping: DynamoRIO resumes the
        // thread at return_pc without returning here.
        Some(result) => regs.skip_to(return_pc, result),
        None => {
            regs.commit();
        }
    }
}

/// Runs the entry handlers of system call `number` and keeps what its
/// exit handlers will need; returns the result to give instead of making
/// the call, if it is skipped.
fn run_entry(tracer: &Tracer, site: &SyscallSite, number: i32, tid: u32, (entry, exit): (ProbeSet, ProbeSet), regs: &mut SyscallRegisters, (return_pc, rsp): (usize, usize)) -> Option<usize> {
    let mut skip = None;
    if !entry.is_empty() {
        let call = || CallState::syscall(regs, false, site.signature(), None);
        skip = fire(tracer, ProbeKind::SyscallEntry, site, entry, number, tid, call).and_then(|f| f.skip);
    }
    if exit.is_empty() {
        // Kept until the call returns even with no exit probes, for
        // is_restart: the entry clean call may run again before the call
        // is made (a signal arrived during the handlers).
        if skip.is_none() && site.returns {
            push_pending(Pending { number, return_pc, rsp, exit, params: [0; PARAMS], entered: 0 });
        }
        return skip;
    }
    // The parameters as the entry handlers left them.
    let params: [usize; PARAMS] = std::array::from_fn(|i| regs.param(i).unwrap_or(0));
    match skip {
        // Not made: its exit is now, with the result asked for (which the
        // exit handlers may change in turn).
        Some(result) => {
            let call = || CallState::skipped_syscall(regs, site.signature(), EntryValues::of_words(&params), result).entered_at(ptap_runtime::clock::monotonic_ns());
            let finished = fire(tracer, ProbeKind::SyscallExit, site, exit, number, tid, call);
            Some(finished.and_then(|f| f.result).unwrap_or(result))
        }
        None => {
            // Read last, as near the call as the handlers allow.
            let entered = ptap_runtime::clock::monotonic_ns();
            push_pending(Pending { number, return_pc, rsp, exit, params, entered });
            None
        }
    }
}

/// The clean call at `return_pc`, where an instrumented system call
/// returns (or where code jumps to it from elsewhere), with the
/// application's RAX.
unsafe extern "C" fn on_return(return_pc: usize, rax: usize) {
    // SAFETY: a clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    let Some(pending) = take_pending(return_pc) else { return };
    if pending.exit.is_empty() {
        return;
    }
    let Some((tracer, site)) = site(pending.number) else { return };
    let dc = ffi::dr_get_current_drcontext();
    let tid = dr_sys::process::tid_of(dc);
    let mut regs = SyscallRegisters::new(dc, return_pc, rax);
    let call = || CallState::syscall(&mut regs, true, site.signature(), Some(EntryValues::of_words(&pending.params))).entered_at(pending.entered);
    fire(tracer, ProbeKind::SyscallExit, site, pending.exit, pending.number, tid, call);
    regs.commit();
}
