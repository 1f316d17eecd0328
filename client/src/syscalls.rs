//! System-call probes: `syscall_entry` and `syscall_exit`.
//!
//! At start-up each probe's predicate is decided for every system call of
//! the table from what is known then (number and name): DynamoRIO's
//! syscall filter then intercepts only the system calls some probe may
//! match, and the rest run with no overhead. What depends on the running
//! thread is tested natively per call. The pre-syscall event runs the
//! entry handlers, which may change parameters or skip the call; the
//! post-syscall event runs the exit handlers with the parameters the call
//! was made with, kept per thread in between.

use crate::site_probes::{chosen, matching, residual, ProbeSet, SiteProbe};
use dr_sys::ffi;
use dr_sys::process::DrContext;
use once_cell::sync::OnceCell;
use ptap_runtime::call::{CallState, EntryValues};
use ptap_runtime::context::{Fields, HitContext, SyscallFields};
use ptap_runtime::dispatch::call_handlers;
use ptap_runtime::predicate::{EventFields, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::prototype::SyscallEntry;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;

/// The probes this module runs.
pub fn handles(kind: ProbeKind) -> bool {
    matches!(kind, ProbeKind::SyscallEntry | ProbeKind::SyscallExit)
}

/// Parameters a system call may have.
const PARAMS: usize = 6;

/// The probes that may fire at one system call.
#[derive(Default)]
struct SyscallSite {
    entry: Vec<SiteProbe>,
    exit: Vec<SiteProbe>,
}

struct Tracer {
    probes: &'static [Probe],
    /// By system-call number, for the numbers of the table; empty sites
    /// are not intercepted.
    sites: Vec<SyscallSite>,
    /// Sites of numbers outside the table (a program may make any system
    /// call, strace shows them as `syscall_0x...`), decided when DynamoRIO
    /// first asks about them; leaked, as they live as long as the process.
    others: parking_lot::Mutex<HashMap<i32, &'static SyscallSite>>,
}

static TRACER: OnceCell<Tracer> = OnceCell::new();

/// A system call whose exit probes wait for it to return.
#[derive(Clone, Copy)]
struct Pending {
    /// -1 when there is none.
    number: i64,
    exit: ProbeSet,
    params: [usize; PARAMS],
}

const NO_PENDING: Pending = Pending { number: -1, exit: 0, params: [0; PARAMS] };

thread_local! {
    /// The calling thread's system call between its pre- and post-syscall
    /// events. (A plain Copy value: no destructor, which would crash under
    /// DynamoRIO's private libc.)
    static PENDING: Cell<Pending> = const { Cell::new(NO_PENDING) };
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

/// The probes that may fire at one system call, decided from its number
/// and name.
fn decide_site(probes: &[Probe], fields: &SyscallStaticFields<'_>) -> SyscallSite {
    let mut site = SyscallSite::default();
    for (i, p) in probes.iter().enumerate().filter(|(_, p)| handles(p.kind)) {
        let Some(rest) = residual(&p.predicate, fields) else { continue };
        let list = if p.kind == ProbeKind::SyscallEntry { &mut site.entry } else { &mut site.exit };
        list.push(SiteProbe { probe: i, name: None, predicate: rest });
    }
    site
}

/// Decides which system calls the probes may match and registers the
/// events that intercept them; `probes` lives as long as the process.
pub fn install(probes: &'static [Probe]) {
    if !probes.iter().any(|p| handles(p.kind)) {
        return;
    }
    let mut sites: Vec<SyscallSite> = Vec::new();
    for (number, entry) in ptap_runtime::prototype::syscalls() {
        let site = decide_site(probes, &SyscallStaticFields { number: number as i128, name: Some(&entry.name) });
        if sites.len() <= number {
            sites.resize_with(number + 1, SyscallSite::default);
        }
        sites[number] = site;
    }
    if TRACER.set(Tracer { probes, sites, others: Default::default() }).is_err() {
        return;
    }
    // SAFETY: registering plain extern "C" callbacks with the signatures DR
    // and drmgr expect (drmgr is initialised by the lifecycle events).
    unsafe {
        ffi::dr_register_filter_syscall_event(Some(filter));
        ffi::drmgr_register_pre_syscall_event(Some(on_pre_syscall));
        ffi::drmgr_register_post_syscall_event(Some(on_post_syscall));
    }
}

/// The probes at system call `number`, if any may fire there.
fn site(number: i32) -> Option<(&'static Tracer, &'static SyscallSite)> {
    let tracer = TRACER.get()?;
    let in_table = usize::try_from(number).ok().and_then(|n| tracer.sites.get(n)).filter(|_| ptap_runtime::prototype::syscall(number as usize).is_some());
    let site = match in_table {
        Some(site) => site,
        None => *tracer.others.lock().entry(number).or_insert_with(|| {
            Box::leak(Box::new(decide_site(tracer.probes, &SyscallStaticFields { number: number as i128, name: None })))
        }),
    };
    (!site.entry.is_empty() || !site.exit.is_empty()).then_some((tracer, site))
}

unsafe extern "C" fn filter(_dc: *mut c_void, number: i32) -> ffi::bool_ {
    site(number).is_some() as ffi::bool_
}

/// Runs the handlers of `set` for one event of system call `number`.
fn fire(tracer: &Tracer, kind: ProbeKind, list: &[SiteProbe], set: ProbeSet, number: usize, tid: u32, call: CallState) -> Option<ptap_runtime::call::Finished> {
    let entry: Option<&SyscallEntry> = ptap_runtime::prototype::syscall(number);
    let fields = SyscallFields { number, name: entry.map(|e| e.name.as_str()) };
    let ctx = HitContext { event: kind.name(), pid: dr_sys::process::pid(), tid, fields: Fields::Syscall(fields), call: Some(call) };
    call_handlers(chosen(list, set).map(|sp| &tracer.probes[sp.probe]), ctx)
}

/// The prototype of system call `number`, if the table has one.
fn signature(number: usize) -> Option<&'static ptap_runtime::prototype::Signature> {
    ptap_runtime::prototype::syscall(number)?.signature.as_ref()
}

unsafe extern "C" fn on_pre_syscall(dc: *mut c_void, number: i32) -> ffi::bool_ {
    // SAFETY: a DynamoRIO event: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    // DynamoRIO also calls this for system calls it intercepts itself, and
    // for those whose number it could not know when filtering.
    let Some((tracer, site)) = site(number) else { return 1 };
    let dc = dc as DrContext;
    let n = number as usize;
    let tid = dr_sys::process::tid_of(dc);
    let pid = dr_sys::process::pid();
    let entry = matching(&site.entry, tid, pid);
    let exit = matching(&site.exit, tid, pid);
    let mut skip = None;
    if entry != 0 {
        let call = CallState::syscall(dc, false, signature(n), None);
        skip = fire(tracer, ProbeKind::SyscallEntry, &site.entry, entry, n, tid, call).and_then(|f| f.skip);
    }
    if exit != 0 {
        // The parameters as the entry handlers left them.
        let params: [usize; PARAMS] = std::array::from_fn(|i| dr_sys::syscall::param(dc, i));
        match skip {
            // Not made: its exit is now, with the result asked for (which
            // the exit handlers may change in turn).
            Some(result) => {
                let call = CallState::skipped_syscall(dc, signature(n), EntryValues::of_words(&params), result);
                let finished = fire(tracer, ProbeKind::SyscallExit, &site.exit, exit, n, tid, call);
                skip = Some(finished.and_then(|f| f.result).unwrap_or(result));
            }
            None => PENDING.with(|p| p.set(Pending { number: number as i64, exit, params })),
        }
    }
    match skip {
        Some(result) => {
            dr_sys::syscall::set_result(dc, result);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn on_post_syscall(dc: *mut c_void, number: i32) {
    // SAFETY: a DynamoRIO event: the app's vector registers are saved.
    dr_sys::simd::clear_upper_halves();
    let pending = PENDING.with(|p| p.replace(NO_PENDING));
    if pending.number != number as i64 {
        return;
    }
    let Some((tracer, site)) = site(number) else { return };
    let dc = dc as DrContext;
    let n = number as usize;
    let tid = dr_sys::process::tid_of(dc);
    let call = CallState::syscall(dc, true, signature(n), Some(EntryValues::of_words(&pending.params)));
    fire(tracer, ProbeKind::SyscallExit, &site.exit, pending.exit, n, tid, call);
}
