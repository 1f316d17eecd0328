//! The instruction-level layer that memory and branch probes share:
//! drreg, drutil and drx set up once; blocks rewritten so that each
//! access is one instruction's (`rep` loops, gathers and scatters
//! expanded) when memory probes need it; for each application
//! instruction, what is known of it when its block is built (its address,
//! module and function), handed to the probe classes that instrument it;
//! and the thread word that lets their inline code skip threads no probe
//! there wants.

use crate::site_probes::{RunTimeFields, SiteProbe};
use dr_sys::ffi;
use dr_sys::instrument::{self, Instr, InstrList, RawTlsWord, ThreadTest};
use dr_sys::process::DrContext;
use once_cell::sync::OnceCell;
use ptap_runtime::interned::intern;
use ptap_runtime::predicate::{EventFields, Predicate, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::symbols::SymbolTable;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// Whether probes of `kind` instrument instructions.
pub fn handles(kind: ProbeKind) -> bool {
    crate::memory::handles(kind) || crate::branches::handles(kind)
}

struct Layer {
    probes: &'static [Probe],
    /// Whether the script has memory probes (which need accesses made
    /// one per instruction, and each instruction looked at).
    memory: bool,
    /// The probes that may fire in the running thread (see
    /// [`thread_bits`]); `None` when DynamoRIO had no slot left, and
    /// threads are then told apart in the clean calls only.
    threads: Option<RawTlsWord>,
}

static LAYER: OnceCell<Layer> = OnceCell::new();

/// What a block's builder knows of one application instruction.
#[derive(Clone)]
pub struct Instruction {
    pub pc: usize,
    /// The module holding it ("" outside every module: generated code).
    pub module: &'static str,
    /// The names of the function holding it (aliases: `calloc`,
    /// `__libc_calloc`): of the symbol whose bytes hold it, none past
    /// its end (`Symbols::function_at`).
    pub function_names: Vec<&'static str>,
}

/// The module last looked up: blocks come in runs from one module. (A
/// lock rather than a thread-local: a thread-local with a destructor
/// crashes under DynamoRIO's private libc.)
struct ModuleCache {
    start: usize,
    end: usize,
    name: &'static str,
    symbols: Arc<SymbolTable>,
}

static LAST_MODULE: Mutex<Option<ModuleCache>> = Mutex::new(None);

impl Instruction {
    fn at(pc: usize) -> Instruction {
        {
            let mut cache = LAST_MODULE.lock();
            if !cache.as_ref().is_some_and(|c| (c.start..c.end).contains(&pc)) {
                *cache = ptap_runtime::modules::containing(pc).map(|m| ModuleCache {
                    start: m.start,
                    end: m.end,
                    name: intern(&m.name),
                    symbols: m.symbols(),
                });
            }
            match &*cache {
                Some(m) => {
                    let function_names = m.symbols.function_at(pc - m.start).map(|f| f.names.iter().map(|n| intern(n)).collect());
                    Instruction { pc, module: m.name, function_names: function_names.unwrap_or_default() }
                }
                None => Instruction { pc, module: "", function_names: Vec::new() },
            }
        }
    }
}

/// Sets up the layer and the memory and branch probes of `probes`, if
/// there are any; an error says what DynamoRIO could not give them.
pub fn install(probes: &'static [Probe]) -> Result<(), String> {
    if !probes.iter().any(|p| handles(p.kind)) {
        return Ok(());
    }
    if !dr_sys::access::init() {
        return Err("memory and branch probes need DynamoRIO's drreg, drutil and drx, which could not start".into());
    }
    let memory = probes.iter().any(|p| crate::memory::handles(p.kind));
    let _ = LAYER.set(Layer { probes, memory, threads: RawTlsWord::allocate() });
    crate::memory::install(probes)?;
    crate::branches::install(probes);
    // SAFETY: registering plain extern "C" callbacks with the signatures
    // drmgr expects (drmgr is initialised by the lifecycle events).
    unsafe {
        ffi::drmgr_register_bb_app2app_event(Some(on_app2app), std::ptr::null_mut());
        // After drwrap's insertion (function probes), so that nothing
        // stands between an access's test and its instruction: the
        // instruction's copy on the way from a clean call runs alone.
        let mut priority = ffi::drmgr_priority_t {
            struct_size: std::mem::size_of::<ffi::drmgr_priority_t>(),
            name: c"ptap_instructions".as_ptr(),
            before: std::ptr::null(),
            after: std::ptr::null(),
            priority: dr_sys::instrument::AFTER_DRWRAP_PRIORITY,
        };
        ffi::drmgr_register_bb_instrumentation_event(None, Some(on_instruction), &mut priority);
        ffi::drmgr_register_thread_init_event(Some(on_thread_init));
        ffi::dr_register_fork_init_event(Some(on_fork));
    }
    Ok(())
}

/// The bit of the probe at `index` in a thread's word and in a site's
/// mask: its own for the first 31, then bits 31 to 63 for all the others
/// (so that a 32-bit immediate, sign-extended, tests them).
fn thread_bit(index: usize) -> u64 {
    if index < 31 { 1 << index } else { !0 << 31 }
}

/// The bits of the probes that may fire in thread `tid` of process `pid`:
/// those whose predicates are not false for it whatever the rest.
fn thread_bits(layer: &Layer, tid: u32, pid: u32) -> u64 {
    let fields = RunTimeFields { tid, pid };
    let later: Vec<Variable> = Variable::ALL.into_iter().filter(|v| !matches!(v, Variable::ThreadId | Variable::ProcessId)).collect();
    layer
        .probes
        .iter()
        .enumerate()
        .filter(|(_, p)| handles(p.kind) && p.predicate.residual(&fields, &later) != Predicate::Const(false))
        .fold(0, |bits, (i, _)| bits | thread_bit(i))
}

/// The mask of a site whose probes all depend on the thread: the clean
/// call is worth making only in threads with one of its bits.
pub fn thread_mask(probes: &[SiteProbe]) -> Option<i32> {
    let by_thread = |sp: &SiteProbe| sp.predicate.as_ref().is_some_and(|p| p.mentions(Variable::ThreadId) || p.mentions(Variable::ProcessId));
    probes.iter().all(by_thread).then(|| probes.iter().fold(0, |m, sp| m | thread_bit(sp.probe)) as i32)
}

/// The inline test of the thread for a site of `mask`, if it has one.
pub fn thread_test(mask: Option<i32>) -> Option<ThreadTest> {
    Some(ThreadTest { word: LAYER.get()?.threads?, mask: mask? })
}

/// Sets the running thread's word of [`thread_bits`].
///
/// # Safety
/// On thread `dc`, in one of its DynamoRIO events.
unsafe fn publish_thread_bits(dc: DrContext) {
    let Some(layer) = LAYER.get() else { return };
    if let Some(word) = layer.threads {
        word.set(thread_bits(layer, dr_sys::process::tid_of(dc), dr_sys::process::pid()) as usize);
    }
}

unsafe extern "C" fn on_thread_init(dc: *mut c_void) {
    publish_thread_bits(dc as DrContext);
}

unsafe extern "C" fn on_fork(dc: *mut c_void) {
    // A new process and thread: the pid and tid predicates see other ids.
    dr_sys::process::forget_pid();
    publish_thread_bits(dc as DrContext);
}

/// What a predicate knows of an instruction when its block is built: its
/// module, address and (one of) its function's names, and what the probe
/// class adds (`class`: a memory access's size, a branch's direction).
struct BuildFields<'a, C> {
    instruction: &'a Instruction,
    function: Option<&'static str>,
    class: &'a C,
}

impl<C: EventFields> EventFields for BuildFields<'_, C> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::ModuleName => Some(Value::Str(self.instruction.module.to_string())),
            Variable::FunctionName => self.function.map(|f| Value::Str(f.to_string())),
            Variable::InstructionAddress => Some(Value::Int(self.instruction.pc as i128)),
            other => self.class.value(other),
        }
    }
}

/// The probes of `probes` that `wanted` names (by index) and that may fire
/// at an event of `instruction`, each with what is left of its predicate
/// to test when the event happens (`runtime`'s variables), and the name of
/// the instruction's function to report. `class` gives what the probe
/// class knows at block building besides the instruction's module,
/// address and function; a function has aliases (`calloc`,
/// `__libc_calloc`), and a predicate on the name matches when one of them
/// does, reported as that one.
pub fn site_probes(
    probes: &[Probe],
    wanted: impl Fn(usize, &Probe) -> bool,
    instruction: &Instruction,
    runtime: &[Variable],
    class: &impl EventFields,
) -> (Vec<SiteProbe>, Option<&'static str>) {
    let names: Vec<Option<&'static str>> =
        if instruction.function_names.is_empty() { vec![None] } else { instruction.function_names.iter().map(|&n| Some(n)).collect() };
    let mut chosen = Vec::new();
    let mut matched_name = None;
    for (i, p) in probes.iter().enumerate().filter(|(i, p)| wanted(*i, p)) {
        let decided = names.iter().find_map(|&function| match p.predicate.residual(&BuildFields { instruction, function, class }, runtime) {
            Predicate::Const(false) => None,
            Predicate::Const(true) => Some((function, None)),
            rest => Some((function, Some(rest))),
        });
        let Some((name, rest)) = decided else { continue };
        matched_name = matched_name.or(name);
        chosen.push(SiteProbe { probe: i, name, predicate: rest });
    }
    (chosen, matched_name.or(instruction.function_names.first().copied()))
}

/// The lasting copies of a probe class's sites, which the code cache
/// points to. DynamoRIO builds the same instruction again and again (into
/// a trace once it is hot, after a flush, each time a library loads again
/// at the same address); an equal site built before is reused, so memory
/// grows with the distinct sites, not with the builds.
pub struct KeptSites<K, T: 'static> {
    by_place: Mutex<Option<HashMap<K, Vec<&'static T>>>>,
}

impl<K: Eq + std::hash::Hash, T: PartialEq> KeptSites<K, T> {
    pub const fn new() -> Self {
        KeptSites { by_place: Mutex::new(None) }
    }

    /// The lasting copy of `site`, the one at `place` (an instruction's
    /// address, or one direction of a branch), and whether it is the first
    /// site kept there: a place rebuilt with other probes (after a `once`
    /// probe is done with it) gets another site, but is the same place.
    pub fn keep(&self, place: K, site: T) -> (&'static T, bool) {
        let mut sites = self.by_place.lock();
        let built = sites.get_or_insert_with(HashMap::new).entry(place).or_default();
        if let Some(&kept) = built.iter().find(|&&kept| *kept == site) {
            return (kept, false);
        }
        let first = built.is_empty();
        let kept: &'static T = Box::leak(Box::new(site));
        built.push(kept);
        (kept, first)
    }
}

thread_local! {
    /// While a block is built: its app2app stage expanded a gather or a
    /// scatter (see memory::instrument's `copy_allowed`).
    static GATHERS_EXPANDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe extern "C" fn on_app2app(
    dc: *mut std::ffi::c_void,
    _tag: *mut std::ffi::c_void,
    bb: *mut ffi::instrlist_t,
    _for_trace: ffi::bool_,
    _translating: ffi::bool_,
) -> ffi::dr_emit_flags_t {
    let gathers = LAYER.get().is_some_and(|l| l.memory) && dr_sys::access::expand_for_accesses(dc, bb);
    GATHERS_EXPANDED.set(gathers);
    ffi::dr_emit_flags_t::DR_EMIT_DEFAULT
}

/// drmgr's insertion callback, for each instruction of each new block.
unsafe extern "C" fn on_instruction(
    dc: *mut std::ffi::c_void,
    _tag: *mut std::ffi::c_void,
    bb: *mut ffi::instrlist_t,
    instr: *mut ffi::instr_t,
    _for_trace: ffi::bool_,
    _translating: ffi::bool_,
    _user_data: *mut std::ffi::c_void,
) -> ffi::dr_emit_flags_t {
    let (dc, bb, instr): (DrContext, InstrList, Instr) = (dc, bb, instr);
    let first = ffi::drmgr_is_first_instr(dc, instr) != 0;
    let operands = dr_sys::access::instruction_for_operands(dc);
    let fetched = dr_sys::access::instruction_for_fetch(dc);
    let at = |i: Instr| (!i.is_null()).then(|| Instruction::at(instrument::app_pc(i)));
    // A block ends at a conditional branch; the one ending an expanded
    // `rep` loop is DynamoRIO's, not the application's (its fetch is
    // the `rep` instruction's).
    let branch = fetched == instr && ffi::drmgr_is_last_instr(dc, instr) != 0 && ffi::instr_is_cbr(instr) != 0;
    let memory = LAYER.get().is_some_and(|l| l.memory);
    // Looking an instruction up (a symbol search, its names interned) only
    // for the instructions a probe class looks at.
    let fetched_at = if memory || branch { at(fetched) } else { None };
    if memory {
        crate::memory::instrument(dc, bb, instr, first, operands, at(operands), fetched, fetched_at.clone(), !GATHERS_EXPANDED.get());
    }
    match fetched_at.filter(|_| branch) {
        Some(at) if crate::branches::instrument(dc, bb, instr, &at) => ffi::dr_emit_flags_t::DR_EMIT_STORE_TRANSLATIONS,
        _ => ffi::dr_emit_flags_t::DR_EMIT_DEFAULT,
    }
}
