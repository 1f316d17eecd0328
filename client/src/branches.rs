//! Branch probes: `branch(pred)` at every conditional branch the
//! application executes, after its condition is known and before control
//! moves, with the direction a handler may force.
//!
//! Each branch ends its block. Its two directions are decided apart when
//! the block is built: module, function, instruction address and
//! `branch_taken` are known then, so a direction no probe can match gets
//! no code at all and runs at DynamoRIO's speed; each other one enters the
//! shared clean call from a place of its own
//! (`dr_sys::branch::direction_points`). What is left (thread and process
//! ids) is tested inline by the thread word where every probe depends on
//! it, then natively in the clean call.
//!
//! A handler that sets `ctx.taken` to the other direction sends the thread
//! there from the clean call (`dr_redirect_execution`). A `once=True`
//! probe's directions, once they had their events, are flushed in batches
//! (see [`FLUSH_AFTER`]) and built again without their callouts.

use crate::instructions::{Instruction, KeptSites};
use crate::site_probes::{chosen, matching, SiteProbe, RUN_TIME_VARIABLES};
use dr_sys::branch::ConditionalBranch;
use dr_sys::ffi;
use dr_sys::instrument::{self, Instr, InstrList, SharedCall};
use dr_sys::process::DrContext;
use dr_sys::syscall::SyscallRegisters;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use ptap_runtime::call::CallState;
use ptap_runtime::context::{BranchFields, Fields, HitContext};
use ptap_runtime::dispatch::call_handlers_with;
use ptap_runtime::predicate::{EventFields, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub fn handles(kind: ProbeKind) -> bool {
    kind == ProbeKind::Branch
}

struct Tracer {
    probes: &'static [Probe],
    /// Distinct directions given a callout (a site of its own), however
    /// often their blocks were built.
    instrumented: AtomicU64,
    /// Clean calls made (a `once` direction's last ones are those of
    /// threads that raced to its first event).
    callouts: AtomicU64,
    /// The one clean call every direction enters (`None` if DynamoRIO
    /// could not give its slots: each direction then has its own).
    call: Option<SharedCall>,
}

static TRACER: OnceCell<Tracer> = OnceCell::new();

static SITES: KeptSites<(usize, bool), DirectionSite> = KeptSites::new();

/// The (branch, direction, probe) of each `once` probe's event so far:
/// blocks built from now on leave them out.
static SEEN: Mutex<Option<HashSet<(usize, bool, usize)>>> = Mutex::new(None);

/// The probes that may fire at one direction of one branch.
#[derive(PartialEq)]
struct DirectionSite {
    pc: usize,
    branch: ConditionalBranch,
    /// The direction: taken (to `branch.target`) or not.
    taken: bool,
    module: &'static str,
    function: Option<&'static str>,
    probes: Vec<SiteProbe>,
    /// Some probe here is `once` (its events are recorded in [`SEEN`]).
    once: bool,
    thread_mask: Option<i32>,
}

impl DirectionSite {
    /// Where the branch goes in direction `taken`.
    fn destination(&self, taken: bool) -> usize {
        if taken { self.branch.target } else { self.branch.fallthrough }
    }
}

/// Sets up branch probes, if the script has any.
pub fn install(probes: &'static [Probe]) {
    if probes.iter().any(|p| handles(p.kind)) {
        // SAFETY: at the client's start; on_shared_direction takes no arguments.
        let call = unsafe { SharedCall::new(on_shared_direction as *mut c_void) };
        let _ = TRACER.set(Tracer { probes, instrumented: AtomicU64::new(0), callouts: AtomicU64::new(0), call });
    }
}

/// What `-v` says of branch probes at exit, if the script has any.
pub fn summary() -> Option<String> {
    let tracer = TRACER.get()?;
    Some(format!(
        "branch: {} directions instrumented, {} callouts",
        tracer.instrumented.load(Ordering::Relaxed),
        tracer.callouts.load(Ordering::Relaxed)
    ))
}

/// What a predicate can know of a direction when its block is built,
/// besides its instruction's: which way it goes.
struct DirectionFields {
    taken: bool,
}

impl EventFields for DirectionFields {
    fn value(&self, var: Variable) -> Option<Value> {
        (var == Variable::BranchTaken).then_some(Value::Bool(self.taken))
    }
}

/// The site of one direction, or `None` when no probe may fire there.
fn decide(tracer: &Tracer, instruction: &Instruction, branch: &ConditionalBranch, taken: bool) -> Option<&'static DirectionSite> {
    let seen = SEEN.lock();
    let already = |i: usize| seen.as_ref().is_some_and(|s| s.contains(&(instruction.pc, taken, i)));
    let wanted = |i: usize, p: &Probe| handles(p.kind) && !(p.once && already(i));
    let (probes, function) =
        crate::instructions::site_probes(tracer.probes, wanted, instruction, &RUN_TIME_VARIABLES, &DirectionFields { taken });
    drop(seen);
    if probes.is_empty() {
        return None;
    }
    let thread_mask = crate::instructions::thread_mask(&probes);
    let once = probes.iter().any(|sp| tracer.probes[sp.probe].once);
    let site = DirectionSite { pc: instruction.pc, branch: *branch, taken, module: instruction.module, function, probes, once, thread_mask };
    let (kept, first) = SITES.keep((site.pc, taken), site);
    if first {
        tracer.instrumented.fetch_add(1, Ordering::Relaxed);
    }
    Some(kept)
}

/// Instruments `instr`, the last instruction of `bb`, if it is a
/// conditional branch a probe may match; true if it did (the block's
/// translations must then be stored).
///
/// # Safety
/// From drmgr's insertion callback on thread `dc`, `instr` the last
/// application instruction of `bb`.
pub unsafe fn instrument(dc: DrContext, bb: InstrList, instr: Instr, at: &Instruction) -> bool {
    let Some(tracer) = TRACER.get() else { return false };
    let Some(branch) = dr_sys::branch::conditional_branch(dc, instr) else { return false };
    let not_taken = decide(tracer, at, &branch, false);
    let taken = decide(tracer, at, &branch, true);
    if not_taken.is_none() && taken.is_none() {
        return false;
    }
    let directions = dr_sys::branch::direction_points(dc, bb, instr, &branch, not_taken.is_some(), taken.is_some());
    for (site, before) in [(not_taken, directions.not_taken), (taken, directions.taken)] {
        let (Some(site), Some(before)) = (site, before) else { continue };
        let word = site as *const DirectionSite as usize;
        let args = [instrument::Arg::Word(word)];
        match (crate::instructions::thread_test(site.thread_mask), tracer.call) {
            (Some(test), Some(call)) => instrument::insert_shared_call_for_threads(dc, bb, before, test, call, word),
            (None, Some(call)) => call.insert(dc, bb, before, word),
            (Some(test), None) => instrument::insert_clean_call_for_threads(dc, bb, before, test, on_direction as *mut c_void, &args),
            (None, None) => instrument::insert_clean_call(dc, bb, before, on_direction as *mut c_void, &args),
        }
    }
    true
}

// ---------------------------------------------------------------------------
// At run time

/// The branches whose `once` directions had their first events since the
/// last [`flush_seen`].
static UNFLUSHED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Callouts since the last flush that found only `once` probes done.
static IDLE_CALLOUTS: AtomicU64 = AtomicU64::new(0);

/// The idle callouts after which the seen branches are flushed: first
/// [`FIRST_FLUSH_AFTER`], twice as many after each flush, up to
/// [`LAST_FLUSH_AFTER`].
///
/// A flush costs a rebuild of every block and trace that holds the
/// branch: each event flushing its own branch (as DynamoRIO's `cbr`
/// sample does) made `once=True` over python3 run 40 times longer than
/// without, and a batch after every thousand idle callouts still 10 times
/// (90 batches, 6 times the blocks built). So the directions of a hot
/// loop are uninstrumented after a thousand runs, the batches grow as
/// the program runs on, and directions that never run again are never
/// flushed.
static FLUSH_AFTER: AtomicU64 = AtomicU64::new(FIRST_FLUSH_AFTER);
const FIRST_FLUSH_AFTER: u64 = 1000;
const LAST_FLUSH_AFTER: u64 = 1 << 16;

/// Records the first event of `once` probe `probe` at a direction; false
/// if it had one.
fn first_time(pc: usize, taken: bool, probe: usize) -> bool {
    SEEN.lock().get_or_insert_with(HashSet::new).insert((pc, taken, probe))
}

/// The shared clean call, entered with a direction's site.
unsafe extern "C" fn on_shared_direction() {
    if let Some(call) = TRACER.get().and_then(|t| t.call) {
        on_direction(call.arg());
    }
}

/// The clean call of one direction of a branch: the application's
/// registers are as the branch left them.
unsafe extern "C" fn on_direction(site_word: usize) {
    // SAFETY: a clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    let Some(tracer) = TRACER.get() else { return };
    tracer.callouts.fetch_add(1, Ordering::Relaxed);
    // SAFETY: sites are kept for the process (KeptSites).
    let site = &*(site_word as *const DirectionSite);
    let dc = ffi::dr_get_current_drcontext();
    let (tid, pid) = (dr_sys::process::tid_of(dc), dr_sys::process::pid());
    let set = matching(&site.probes, tid, pid);
    if set.is_empty() {
        return;
    }
    if !site.once {
        fire(dc, site, chosen(&site.probes, set).map(|sp| entered(tracer, sp.probe)), tid, pid);
        return;
    }
    let mut seen_before = false;
    let mut fired: Vec<&Probe> = Vec::with_capacity(site.probes.len());
    for sp in chosen(&site.probes, set) {
        let probe = &tracer.probes[sp.probe];
        if probe.once {
            if !first_time(site.pc, site.taken, sp.probe) {
                seen_before = true;
                continue;
            }
            UNFLUSHED.lock().push(site.pc);
        }
        fired.push(entered(tracer, sp.probe));
    }
    if !fired.is_empty() {
        fire(dc, site, fired.into_iter(), tid, pid);
    } else if seen_before && IDLE_CALLOUTS.fetch_add(1, Ordering::Relaxed) + 1 >= FLUSH_AFTER.load(Ordering::Relaxed) && flush_seen() {
        // Our block may be gone: go on where the branch goes.
        instrument::resume_at(dc, site.destination(site.taken));
    }
}

/// Probe `index`, whose handler an event enters.
fn entered(tracer: &Tracer, index: usize) -> &Probe {
    crate::match_reports::matched(index);
    &tracer.probes[index]
}

/// Runs the handlers of `probes` for one event at `site`, and sends the
/// thread the way they left `ctx.taken`.
///
/// # Safety
/// In the clean call of thread `dc` at `site`.
unsafe fn fire<'a>(dc: DrContext, site: &DirectionSite, probes: impl Iterator<Item = &'a Probe> + Clone, tid: u32, pid: u32) {
    // SAFETY: in the thread's clean call; no other register view of it lives.
    let mut regs = SyscallRegisters::new(dc, site.pc, 0);
    let finished = call_handlers_with(probes, || {
        let fields = BranchFields {
            pc: site.pc,
            target: site.branch.target,
            fallthrough: site.branch.fallthrough,
            mnemonic: site.branch.mnemonic,
            condition: site.branch.condition,
            function_name: site.function,
            module: site.module,
            taken: AtomicBool::new(site.taken),
        };
        HitContext::new(ProbeKind::Branch.name(), pid, tid, Fields::Branch(fields), Some(CallState::instruction(&mut regs)))
    });
    // A handler that wrote RFLAGS (or RCX) would change what the branch
    // decides when it runs: ctx.taken says where it goes, so the thread is
    // sent there.
    let wrote_registers = regs.changed();
    // SAFETY: the clean call that captured them is running.
    regs.commit();
    let taken = finished.and_then(|f| f.taken).unwrap_or(site.taken);
    if taken != site.taken || wrote_registers {
        instrument::resume_at(dc, site.destination(taken));
    }
}

/// Flushes the blocks of the branches whose `once` directions had their
/// events since the last flush: they are built again without those
/// directions' callouts. Returns false if there were none (another thread
/// flushed them); else the calling clean call must leave through
/// [`instrument::resume_at`].
///
/// # Safety
/// From a clean call, holding no lock and not the GIL.
unsafe fn flush_seen() -> bool {
    IDLE_CALLOUTS.store(0, Ordering::Relaxed);
    let mut branches = std::mem::take(&mut *UNFLUSHED.lock());
    if branches.is_empty() {
        return false;
    }
    let after = FLUSH_AFTER.load(Ordering::Relaxed);
    FLUSH_AFTER.store((after * 2).min(LAST_FLUSH_AFTER), Ordering::Relaxed);
    branches.sort_unstable();
    branches.dedup();
    for pc in branches {
        instrument::flush_region(pc, 1);
    }
    true
}
