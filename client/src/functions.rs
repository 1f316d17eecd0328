//! Function probes: `function_entry` and `function_exit`.
//!
//! At each module load the probes' predicates are decided for every
//! function of the module from what is known then (names, module,
//! address): a function no predicate can match carries no instrumentation.
//! The others are wrapped once with drwrap, with the probes that may fire
//! there; what depends on the running thread (thread and process ids) is
//! tested natively in the entry callback, so Python is entered only for
//! events that match. drwrap calls the exit callback at return, or with no
//! context when the call was unwound (longjmp, exception), which we report
//! as such (`ctx.unwound`).
//!
//! An IFUNC symbol (glibc's `strlen`, `memcpy`, ...) names a resolver that
//! the dynamic loader calls to choose the function's implementation for
//! this CPU. We wrap the resolver's return instead, and wrap each
//! implementation it returns with the symbol's probes, so that the calls
//! the program makes are seen, not the resolver's.

use crate::site_probes::{chosen, matching, residual, ProbeSet, SiteProbe};
use dr_sys::module::ModuleInfo;
use dr_sys::wrap::WrapContext;
use parking_lot::Mutex;
use ptap_runtime::call::{CallState, EntryValues};
use ptap_runtime::context::{Fields, FunctionFields, HitContext};
use ptap_runtime::dispatch::call_handlers_with;
use ptap_runtime::interned::intern;
use ptap_runtime::predicate::{EventFields, Predicate, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::prototype::Signature;
use ptap_runtime::symbols::SymbolTable;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;
use std::sync::Arc;

/// The probes this module runs.
pub fn handles(kind: ProbeKind) -> bool {
    matches!(kind, ProbeKind::FunctionEntry | ProbeKind::FunctionExit)
}

/// One wrapped function (or IFUNC resolver).
struct Site {
    address: usize,
    /// The address is an IFUNC resolver: its probes go to the functions
    /// it returns, listed in `implementations`.
    ifunc: bool,
    implementations: Mutex<Vec<Arc<Site>>>,
    module: &'static str,
    /// Its prototype, if `include()` or `declare()` gave one for a name.
    signature: Option<&'static Signature>,
    entry: Vec<SiteProbe>,
    exit: Vec<SiteProbe>,
}

/// What the exit callback needs of a call its entry callback saw.
struct CallRecord {
    site: Arc<Site>,
    /// The exit probes whose predicates matched.
    exit: ProbeSet,
    args: EntryValues,
    /// When the call was entered, its entry handlers done (see
    /// `ptap_runtime::clock`).
    entered: u64,
    caller: usize,
    tid: u32,
    /// The stack pointer at entry (pointing at the return address).
    sp: usize,
    /// Its exit was already reported as unwound; drwrap may still hand it
    /// to the exit callback later, which then only frees it.
    reported: Cell<bool>,
}

thread_local! {
    /// The calls of this thread with exit probes that have not returned,
    /// outermost first. drwrap notices a call left by longjmp or an
    /// exception only in some cases (and, at the same stack depth, pairs a
    /// stale entry with a later call's return), so we check the stack
    /// ourselves and report such calls as unwound, once.
    ///
    /// The Vec is leaked per thread on purpose: a thread-local with a
    /// destructor would register it with the private libc's
    /// `__cxa_thread_atexit_impl`, which crashes under DynamoRIO.
    static OPEN_CALLS_PTR: Cell<*mut Vec<*mut CallRecord>> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs `f` on the calling thread's open calls.
fn with_open_calls<R>(f: impl FnOnce(&mut Vec<*mut CallRecord>) -> R) -> R {
    OPEN_CALLS_PTR.with(|cell| {
        if cell.get().is_null() {
            cell.set(Box::into_raw(Box::default()));
        }
        // SAFETY: the Vec belongs to this thread alone, and `f` cannot
        // reach it again (it runs no handler).
        f(unsafe { &mut *cell.get() })
    })
}

/// The tracer's probes, set once at start-up.
static PROBES: once_cell::sync::OnceCell<&'static [Probe]> = once_cell::sync::OnceCell::new();
/// Wrapped sites by module start, for unwrapping at unload.
static SITES: Mutex<BTreeMap<usize, Vec<Arc<Site>>>> = Mutex::new(BTreeMap::new());

/// Remembers the probes and starts drwrap if any are function probes;
/// `probes` lives as long as the process.
pub fn install(probes: &'static [Probe]) {
    if probes.iter().any(|p| handles(p.kind)) {
        let _ = PROBES.set(probes);
        dr_sys::wrap::init();
    }
    // Before any module loads: drmgr's events are registered at start-up.
    if probes.iter().any(|p| p.kind == ProbeKind::FunctionEntry && p.count.is_some()) {
        crate::entry_counts::install();
    }
}

/// Whether function probes are in use (drwrap was initialized).
pub fn is_installed() -> bool {
    PROBES.get().is_some()
}

/// Static fields of one function, for deciding predicates at load time.
struct SiteFields<'a> {
    name: Option<&'a str>,
    address: usize,
    module: &'a str,
}

impl EventFields for SiteFields<'_> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::FunctionName => self.name.map(|n| Value::Str(n.to_string())),
            Variable::FunctionAddress | Variable::InstructionAddress => Some(Value::Int(self.address as i128)),
            Variable::ModuleName => Some(Value::Str(self.module.to_string())),
            _ => None,
        }
    }
}

/// Wraps the functions of a newly loaded module that some probe may match.
pub fn on_module_load(module: &ModuleInfo, is_main: bool) {
    let Some(probes) = PROBES.get() else { return };
    let symbols = SymbolTable::of_file(&module.path);
    let file_name = module.path.rsplit('/').next().unwrap_or(&module.path).to_string();
    let resolve = |text: &str| -> Option<i128> {
        let (name, offset) = text.rsplit_once('+')?;
        let offset = i128::from_str_radix(offset.trim_start_matches("0x"), 16).ok()?;
        let ours = name == module.name || name == file_name || (is_main && matches!(name, "app" | "exe" | "main"));
        ours.then_some(module.start as i128 + offset)
    };

    // Every function start, with its names; named addresses too, for
    // stripped code.
    let mut candidates: HashMap<usize, (Vec<String>, bool)> = HashMap::new();
    for f in &symbols.functions {
        candidates.insert(module.start + f.offset, (f.names.clone(), f.ifunc));
    }
    let mut resolved: Vec<(usize, Predicate)> = Vec::new();
    for (i, p) in probes.iter().enumerate().filter(|(_, p)| handles(p.kind)) {
        let predicate = p.predicate.resolve_module_offsets(&resolve);
        for address in predicate.named_addresses() {
            if (module.start..module.end).contains(&address) {
                candidates.entry(address).or_default();
            }
        }
        resolved.push((i, predicate));
    }

    let mut sites = Vec::new();
    let module_name = intern(&module.name);
    for (address, (names, ifunc)) in candidates {
        let signature = names.iter().find_map(|n| ptap_runtime::prototype::function(n));
        let mut site = Site {
            address,
            ifunc,
            implementations: Mutex::new(Vec::new()),
            module: module_name,
            signature,
            entry: Vec::new(),
            exit: Vec::new(),
        };
        for (i, predicate) in &resolved {
            let Some(matched) = match_site(predicate, &names, address, &module.name) else { continue };
            let probe = &probes[*i];
            let name = matched.0.map(|n| intern(&n));
            crate::match_reports::matched(*i);
            if let Some(counter) = inline_counter(probe, *i, matched.1.is_none() && !ifunc, name, module_name, address) {
                crate::entry_counts::add(module.start, address, counter);
                continue;
            }
            let list = if probe.kind == ProbeKind::FunctionEntry { &mut site.entry } else { &mut site.exit };
            list.push(SiteProbe { probe: *i, name, predicate: matched.1 });
        }
        if site.entry.is_empty() && site.exit.is_empty() {
            continue;
        }
        sites.extend(wrap_site(site));
    }
    SITES.lock().entry(module.start).or_default().extend(sites);
}

/// The counter a `count=` entry probe increments inline at a function,
/// when it can (`decided`: its predicate needs nothing of the running
/// thread and the function is no IFUNC resolver): its key is the
/// function's name or module, known now.
fn inline_counter(probe: &Probe, index: usize, decided: bool, name: Option<&'static str>, module: &'static str, address: usize) -> Option<&'static std::sync::atomic::AtomicU64> {
    use ptap_runtime::counts::{counter_for, CountKey, KeyValue};
    let key = match probe.count? {
        CountKey::Function => name.map_or(KeyValue::Number(address as u64), KeyValue::Name),
        CountKey::Module => KeyValue::Name(module),
        _ => return None,
    };
    (probe.kind == ProbeKind::FunctionEntry && decided && crate::entry_counts::available()).then(|| counter_for(index, key))
}

/// The drwrap callbacks of a site: a function's entry and (if it has exit
/// probes) exit, or an IFUNC resolver's return.
fn callbacks(site: &Site) -> (dr_sys::wrap::PreCallback, Option<dr_sys::wrap::PostCallback>) {
    if site.ifunc {
        (on_resolver_entry, Some(on_resolved))
    } else {
        (on_entry, (!site.exit.is_empty()).then_some(on_exit as _))
    }
}

/// Wraps a site; `None` if drwrap refused.
fn wrap_site(site: Site) -> Option<Arc<Site>> {
    let (pre, post) = callbacks(&site);
    let site = Arc::new(site);
    let raw = Arc::into_raw(site.clone()) as *mut c_void;
    // SAFETY: the site stays alive (the raw Arc reference) until it is
    // unwrapped at module unload.
    if unsafe { dr_sys::wrap::wrap(site.address, pre, post, raw) } {
        Some(site)
    } else {
        // SAFETY: drwrap refused, so it holds no copy of the pointer.
        unsafe { drop(Arc::from_raw(raw as *const Site)) };
        None
    }
}

unsafe extern "C" fn on_resolver_entry(_wc: WrapContext, _user_data: *mut *mut c_void) {
    // The site pointer stays in the user data for on_resolved.
}

/// An IFUNC resolver returned the implementation to use: wrap it with the
/// symbol's probes, once per implementation.
unsafe extern "C" fn on_resolved(wc: WrapContext, user_data: *mut c_void) {
    if wc.is_null() || user_data.is_null() {
        return;
    }
    // SAFETY: the resolver site given at wrap time, alive while wrapped.
    let resolver = &*(user_data as *const Site);
    let implementation = dr_sys::wrap::retval(wc);
    if implementation == 0 || resolver.implementations.lock().iter().any(|s| s.address == implementation) {
        return;
    }
    let site = Site {
        address: implementation,
        ifunc: false,
        implementations: Mutex::new(Vec::new()),
        module: resolver.module,
        signature: resolver.signature,
        entry: resolver.entry.clone(),
        exit: resolver.exit.clone(),
    };
    // Wrapped without holding the list's lock (drwrap may flush).
    if let Some(site) = wrap_site(site) {
        resolver.implementations.lock().push(site);
    }
}

/// Whether a probe may fire at a function: `None` when its predicate
/// cannot match; else the name it matched under and, if the predicate
/// still depends on the running thread, what is left of it to test then.
fn match_site(predicate: &Predicate, names: &[String], address: usize, module: &str) -> Option<(Option<String>, Option<Predicate>)> {
    let names: Vec<Option<&str>> = if names.is_empty() { vec![None] } else { names.iter().map(|n| Some(n.as_str())).collect() };
    let mut undecided = None;
    for name in names {
        match residual(predicate, &SiteFields { name, address, module }) {
            Some(None) => return Some((name.map(str::to_string), None)),
            None => {}
            Some(Some(rest)) => {
                undecided.get_or_insert((name.map(str::to_string), rest));
            }
        }
    }
    undecided.map(|(name, rest)| (name, Some(rest)))
}

/// Unwraps the functions of a module being unloaded.
pub fn on_module_unload(start: usize) {
    crate::entry_counts::on_module_unload(start);
    let Some(sites) = SITES.lock().remove(&start) else { return };
    for site in sites {
        let implementations = std::mem::take(&mut *site.implementations.lock());
        for s in implementations.iter().chain(std::iter::once(&site)) {
            let (pre, post) = callbacks(s);
            // SAFETY: the callbacks are those the site was wrapped with;
            // after unwrapping drwrap no longer holds the raw reference,
            // so we drop it (calls in flight hold their own).
            unsafe {
                if dr_sys::wrap::unwrap(s.address, pre, post) {
                    drop(Arc::from_raw(Arc::as_ptr(s)));
                }
            }
        }
    }
}

/// Calls the handlers of the probes in `set` for one event, with the
/// `ctx.call` that `make_call` makes; returns the entry values as the
/// handlers left them, if they were kept.
fn fire(kind: ProbeKind, list: &[SiteProbe], set: ProbeSet, site: &Site, make_call: impl FnOnce() -> CallState, caller: usize, tid: u32, unwound: Option<bool>) -> Option<EntryValues> {
    let probes = PROBES.get().unwrap();
    call_handlers_with(chosen(list, set).map(|sp| &probes[sp.probe]), || {
        // Several probes at one site may have matched under different
        // names; ctx shows the first one's.
        let name = chosen(list, set).next().and_then(|sp| sp.name);
        let fields = FunctionFields { function: site.address, name, module: site.module, caller, unwound };
        HitContext::new(kind.name(), dr_sys::process::pid(), tid, Fields::Function(fields), Some(make_call()))
    })?
    .entry
}

unsafe extern "C" fn on_entry(wc: WrapContext, user_data: *mut *mut c_void) {
    // SAFETY: a drwrap clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    // SAFETY: drwrap passes the site pointer given at wrap time as the
    // initial user data; the site outlives the wrap.
    let site_ptr = *user_data as *const Site;
    *user_data = std::ptr::null_mut();
    let site = &*site_ptr;
    let tid = dr_sys::process::tid_of(dr_sys::wrap::drcontext(wc));
    let pid = dr_sys::process::pid();
    let has_open_calls = with_open_calls(|open| !open.is_empty());
    let sp = if has_open_calls || !site.exit.is_empty() {
        dr_sys::wrap::stack_pointer(wc)
    } else {
        0
    };
    if has_open_calls {
        let caller = dr_sys::wrap::return_address(wc);
        report_abandoned_calls(|open| open.sp < sp || (open.sp == sp && is_direct_call_to(caller, site.address)));
    }
    let entry = matching(&site.entry, tid, pid);
    let exit = matching(&site.exit, tid, pid);
    if entry.is_empty() && exit.is_empty() {
        return;
    }
    // The exit event needs the entry values; an entry handler alone reads
    // arguments only if it asks.
    let mut args = (!exit.is_empty()).then(|| EntryValues::capture(wc, site.signature.as_deref()));
    let caller = dr_sys::wrap::return_address(wc);
    if !entry.is_empty() {
        let call = || CallState::function(wc, false, site.signature, args.take());
        args = fire(ProbeKind::FunctionEntry, &site.entry, entry, site, call, caller, tid, None);
    }
    if let Some(args) = args.filter(|_| !exit.is_empty()) {
        // The call starts when its entry handlers are done.
        let entered = ptap_runtime::clock::monotonic_ns();
        Arc::increment_strong_count(site_ptr);
        let record = CallRecord { site: Arc::from_raw(site_ptr), exit, args, entered, caller, tid, sp, reported: Cell::new(false) };
        let record = Box::into_raw(Box::new(record));
        with_open_calls(|open| open.push(record));
        *user_data = record as *mut c_void;
    }
}

/// Pops the innermost open calls for which `abandoned` holds and reports
/// each as unwound. The records stay allocated: drwrap still holds them.
fn report_abandoned_calls(abandoned: impl Fn(&CallRecord) -> bool) {
    let mut gone = Vec::new();
    with_open_calls(|open| {
        // SAFETY: open records are alive until on_exit frees them,
        // which first removes them from the open calls.
        while let Some(&top) = open.last() {
            if !abandoned(unsafe { &*top }) {
                break;
            }
            open.pop();
            gone.push(top);
        }
    });
    for record in gone {
        // SAFETY: as above; we are the thread that owns the record.
        report_unwound(unsafe { &*record });
    }
}

/// Fires a call's exit probes with `ctx.unwound` true, once.
fn report_unwound(record: &CallRecord) {
    if record.reported.replace(true) {
        return;
    }
    let site = &record.site;
    let call = || CallState::function(std::ptr::null_mut(), true, site.signature, Some(record.args.clone())).entered_at(record.entered);
    fire(ProbeKind::FunctionExit, &site.exit, record.exit, site, call, record.caller, record.tid, Some(true));
}

/// Whether the instruction before `return_address` is a direct call of
/// `function` (so a new call at the same stack depth as an open call of
/// it is a fresh call after that one was abandoned, not a tail call).
fn is_direct_call_to(return_address: usize, function: usize) -> bool {
    let mut call = [0u8; 5];
    if dr_sys::memory::safe_read(return_address.wrapping_sub(5), &mut call) < 5 || call[0] != 0xe8 {
        return false;
    }
    let displacement = i32::from_le_bytes(call[1..].try_into().unwrap()) as isize;
    return_address.wrapping_add_signed(displacement) == function
}

/// Reports every open call of the calling thread as unwound: the thread
/// (or the process) is ending and they will never return.
pub fn report_open_calls_at_exit() {
    if PROBES.get().is_some() {
        report_abandoned_calls(|_| true);
    }
}

unsafe extern "C" fn on_exit(wc: WrapContext, user_data: *mut c_void) {
    // SAFETY: a drwrap clean call: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    if user_data.is_null() {
        return;
    }
    let record_ptr = user_data as *mut CallRecord;
    // Calls opened after this one that have not returned were skipped by
    // an unwind that this return ends.
    let skipped: Vec<*mut CallRecord> = with_open_calls(|open| {
        match open.iter().position(|&r| r == record_ptr) {
            Some(i) => open.split_off(i).into_iter().skip(1).collect(),
            None => Vec::new(),
        }
    });
    for r in skipped.into_iter().rev() {
        // SAFETY: still held by drwrap, hence alive.
        report_unwound(&*r);
    }
    // SAFETY: set by on_entry to a boxed CallRecord, handed to us once.
    let record = Box::from_raw(record_ptr);
    if record.reported.get() {
        return;
    }
    let unwound = wc.is_null();
    let record = *record;
    let site = &record.site;
    let call = || CallState::function(wc, true, site.signature, Some(record.args)).entered_at(record.entered);
    fire(ProbeKind::FunctionExit, &site.exit, record.exit, site, call, record.caller, record.tid, Some(unwound));
}
