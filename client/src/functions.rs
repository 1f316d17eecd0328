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

use ptap_runtime::symbols::SymbolTable;
use dr_sys::module::ModuleInfo;
use dr_sys::wrap::WrapContext;
use parking_lot::Mutex;
use ptap_runtime::context::{CallState, FieldValue, HitContext, KEPT_ARGS};
use ptap_runtime::dispatch::call_handlers;
use ptap_runtime::predicate::{EventFields, Predicate, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;
use std::sync::Arc;

/// Variables known only when the event happens.
const RUN_TIME_VARIABLES: [Variable; 2] = [Variable::ThreadId, Variable::ProcessId];

/// The probes this module runs.
pub fn handles(kind: ProbeKind) -> bool {
    matches!(kind, ProbeKind::FunctionEntry | ProbeKind::FunctionExit)
}

/// A probe that may fire at a site, with the name under which it matched
/// and whether its predicate still needs deciding at run time.
struct SiteProbe {
    probe: usize,
    name: Option<String>,
    predicate: Option<Predicate>,
}

/// One wrapped function.
struct Site {
    address: usize,
    module: String,
    entry: Vec<SiteProbe>,
    exit: Vec<SiteProbe>,
}

/// What the exit callback needs of a call its entry callback saw.
struct CallRecord {
    site: Arc<Site>,
    /// Indices into `site.exit` of the probes whose predicates matched.
    exit: Vec<usize>,
    args: [usize; KEPT_ARGS],
    caller: usize,
    tid: u32,
}

/// The tracer's probes, set once at start-up.
static PROBES: once_cell::sync::OnceCell<&'static [Probe]> = once_cell::sync::OnceCell::new();
/// Wrapped sites by module start, for unwrapping at unload.
static SITES: Mutex<BTreeMap<usize, Vec<Arc<Site>>>> = Mutex::new(BTreeMap::new());

/// Remembers the probes; `probes` lives as long as the process.
pub fn install(probes: &'static [Probe]) -> bool {
    let any = probes.iter().any(|p| handles(p.kind));
    if any {
        let _ = PROBES.set(probes);
        dr_sys::wrap::init();
    }
    any
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

/// Fields of one call, for predicates left to run time.
struct CallFields<'a> {
    site: SiteFields<'a>,
    tid: u32,
    pid: u32,
}

impl EventFields for CallFields<'_> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::ThreadId => Some(Value::Int(self.tid as i128)),
            Variable::ProcessId => Some(Value::Int(self.pid as i128)),
            _ => self.site.value(var),
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
    let mut candidates: HashMap<usize, Vec<String>> = HashMap::new();
    for f in &symbols.functions {
        candidates.insert(module.start + f.offset, f.names.clone());
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
    for (address, names) in candidates {
        let mut site = Site { address, module: module.name.clone(), entry: Vec::new(), exit: Vec::new() };
        for (i, predicate) in &resolved {
            let Some(matched) = match_site(predicate, &names, address, &module.name) else { continue };
            let list = if probes[*i].kind == ProbeKind::FunctionEntry { &mut site.entry } else { &mut site.exit };
            list.push(SiteProbe { probe: *i, name: matched.0, predicate: matched.1.then(|| predicate.clone()) });
        }
        if site.entry.is_empty() && site.exit.is_empty() {
            continue;
        }
        let has_exit = !site.exit.is_empty();
        let site = Arc::new(site);
        let raw = Arc::into_raw(site.clone()) as *mut c_void;
        // SAFETY: the site stays alive (the raw Arc reference) until it is
        // unwrapped at module unload.
        let wrapped = unsafe { dr_sys::wrap::wrap(address, on_entry, has_exit.then_some(on_exit as _), raw) };
        if wrapped {
            sites.push(site);
        } else {
            // SAFETY: drwrap refused, so it holds no copy of the pointer.
            unsafe { drop(Arc::from_raw(raw as *const Site)) };
        }
    }
    SITES.lock().entry(module.start).or_default().extend(sites);
}

/// Whether a probe may fire at a function: `None` when its predicate
/// cannot match; else the name it matched under and whether the predicate
/// must still be tested at run time.
fn match_site(predicate: &Predicate, names: &[String], address: usize, module: &str) -> Option<(Option<String>, bool)> {
    let names: Vec<Option<&str>> = if names.is_empty() { vec![None] } else { names.iter().map(|n| Some(n.as_str())).collect() };
    let mut undecided = None;
    for name in names {
        let fields = SiteFields { name, address, module };
        match predicate.decide_static(&fields, &RUN_TIME_VARIABLES) {
            Some(true) => return Some((name.map(str::to_string), false)),
            Some(false) => {}
            None => {
                undecided.get_or_insert(name.map(str::to_string));
            }
        }
    }
    undecided.map(|name| (name, true))
}

/// Unwraps the functions of a module being unloaded.
pub fn on_module_unload(start: usize) {
    let Some(sites) = SITES.lock().remove(&start) else { return };
    for site in sites {
        let has_exit = !site.exit.is_empty();
        // SAFETY: the callbacks are those the site was wrapped with; after
        // unwrapping drwrap no longer holds the raw reference, so we drop
        // it (calls in flight hold their own).
        unsafe {
            if dr_sys::wrap::unwrap(site.address, on_entry, has_exit.then_some(on_exit as _)) {
                drop(Arc::from_raw(Arc::as_ptr(&site)));
            }
        }
    }
}

/// The probes of `list` whose predicates accept this call.
fn matching(list: &[SiteProbe], site: &Site, tid: u32, pid: u32) -> Vec<usize> {
    (0..list.len())
        .filter(|&i| {
            let sp = &list[i];
            sp.predicate.as_ref().is_none_or(|p| {
                let site_fields = SiteFields { name: sp.name.as_deref(), address: site.address, module: &site.module };
                p.matches(&CallFields { site: site_fields, tid, pid })
            })
        })
        .collect()
}

fn function_fields(site: &Site, name: &Option<String>, caller: usize) -> Vec<(&'static str, FieldValue)> {
    vec![
        ("function", FieldValue::Int(site.address as i64)),
        ("function_name", name.clone().map_or(FieldValue::None, FieldValue::Str)),
        ("caller", FieldValue::Int(caller as i64)),
        ("module", FieldValue::Str(site.module.clone())),
        ("pc", FieldValue::Int(site.address as i64)),
    ]
}

/// Calls the handlers of `chosen` probes (indices into `list`) for one event.
fn fire(kind: ProbeKind, list: &[SiteProbe], chosen: &[usize], site: &Site, call: &Arc<CallState>, caller: usize, tid: u32, extra: Option<(&'static str, FieldValue)>) {
    let probes = PROBES.get().unwrap();
    // Several probes at one site may have matched under different names;
    // ctx shows the first one's.
    let name = &list[chosen[0]].name;
    let handlers: Vec<&Probe> = chosen.iter().map(|&i| &probes[list[i].probe]).collect();
    let mut fields = function_fields(site, name, caller);
    fields.extend(extra);
    let ctx = HitContext { event: kind.name(), pid: dr_sys::process::pid(), tid, fields, call: Some(call.clone()) };
    call_handlers(&handlers, ctx);
    call.finish();
}

unsafe extern "C" fn on_entry(wc: WrapContext, user_data: *mut *mut c_void) {
    // SAFETY: drwrap passes the site pointer given at wrap time as the
    // initial user data; the site outlives the wrap.
    let site_ptr = *user_data as *const Site;
    *user_data = std::ptr::null_mut();
    let site = &*site_ptr;
    let tid = dr_sys::process::tid_of(dr_sys::wrap::drcontext(wc));
    let pid = dr_sys::process::pid();
    let entry = matching(&site.entry, site, tid, pid);
    let exit = matching(&site.exit, site, tid, pid);
    if entry.is_empty() && exit.is_empty() {
        return;
    }
    let mut args = [0usize; KEPT_ARGS];
    for (i, a) in args.iter_mut().enumerate() {
        *a = dr_sys::wrap::arg(wc, i);
    }
    let caller = dr_sys::wrap::return_address(wc);
    if !entry.is_empty() {
        let call = CallState::new(wc as usize, false, args);
        fire(ProbeKind::FunctionEntry, &site.entry, &entry, site, &call, caller, tid, None);
        args = call.args();
    }
    if !exit.is_empty() {
        Arc::increment_strong_count(site_ptr);
        let record = CallRecord { site: Arc::from_raw(site_ptr), exit, args, caller, tid };
        *user_data = Box::into_raw(Box::new(record)) as *mut c_void;
    }
}

unsafe extern "C" fn on_exit(wc: WrapContext, user_data: *mut c_void) {
    if user_data.is_null() {
        return;
    }
    // SAFETY: set by on_entry to a boxed CallRecord, handed to us once.
    let record = Box::from_raw(user_data as *mut CallRecord);
    let unwound = wc.is_null();
    let call = CallState::new(wc as usize, true, record.args);
    let site = &record.site;
    let unwound_field = ("unwound", FieldValue::Bool(unwound));
    fire(ProbeKind::FunctionExit, &site.exit, &record.exit, site, &call, record.caller, record.tid, Some(unwound_field));
}
