//! Lifecycle probes: `process_exit`, `thread_start`, `thread_exit` and
//! `module_load`, fed by DynamoRIO's module, thread and exit events.
//!
//! The exit code is not part of DynamoRIO's exit event, so we watch the
//! one system call that carries it (`exit_group`) and the signals that kill
//! the target; only that system call is intercepted.

use crate::banner::Banner;
use dr_sys::ffi;
use dr_sys::process::DrContext;
use once_cell::sync::OnceCell;
use ptap_runtime::context::{FieldValue, Fields, HitContext};
use ptap_runtime::dispatch::call_handlers;
use ptap_runtime::predicate::{EventFields, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::Runtime;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

struct Tracer {
    runtime: Runtime,
    banner: Banner,
    /// The thread that ran client start-up: the target's first thread,
    /// which `thread_start`/`thread_exit` do not report (it is the process).
    initial_tid: u32,
    /// Where the main executable starts (`"app+0x..."` addresses name it).
    main_start: Option<usize>,
}

static TRACER: OnceCell<Tracer> = OnceCell::new();
/// The status passed to `exit_group`, or -1 before the target calls it.
static EXIT_STATUS: AtomicI32 = AtomicI32::new(-1);
/// The last signal delivered to the target whose default action kills.
static FATAL_SIGNAL: AtomicU32 = AtomicU32::new(0);

// The system calls the client watches, numbered for the target's
// architecture by the libc crate.
const SYS_EXIT_GROUP: i32 = libc::SYS_exit_group as i32;
const SYS_CLONE: i32 = libc::SYS_clone as i32;
const SYS_FORK: i32 = libc::SYS_fork as i32;
const SYS_VFORK: i32 = libc::SYS_vfork as i32;
const SYS_CLONE3: i32 = libc::SYS_clone3 as i32;

/// Registers the events; the tracer lives until the process ends.
pub fn install(runtime: Runtime, banner: Banner) {
    let main_start = dr_sys::module::main_module().map(|m| m.start);
    let tracer = Tracer { runtime, banner, initial_tid: dr_sys::process::current_tid(), main_start };
    if TRACER.set(tracer).is_err() {
        return;
    }
    let tracer = TRACER.get().unwrap();
    crate::functions::install(&tracer.runtime.probes);
    // SAFETY: registering plain extern "C" callbacks with the signatures
    // drmgr and DR expect; drmgr_init is balanced by drmgr_exit at exit.
    unsafe {
        ffi::drmgr_init();
        ffi::drmgr_register_thread_init_event(Some(on_thread_init));
        ffi::drmgr_register_thread_exit_event(Some(on_thread_exit));
        ffi::drmgr_register_module_load_event(Some(on_module_load));
        ffi::drmgr_register_module_unload_event(Some(on_module_unload));
        ffi::drmgr_register_signal_event(Some(on_signal));
        ffi::drmgr_register_pre_syscall_event(Some(on_pre_syscall));
        ffi::dr_register_exit_event(Some(on_exit));
        ffi::dr_register_fork_init_event(Some(on_fork));
    }
    crate::syscalls::install(&tracer.runtime.probes);
    if let Err(message) = crate::instructions::install(&tracer.runtime.probes) {
        tracer.banner.message(&format!("[!] {message}: they are off"));
    }
}

/// Variables of lifecycle events, for predicates.
struct LifecycleFields<'a> {
    pid: u32,
    tid: u32,
    module_name: Option<&'a str>,
}

impl EventFields for LifecycleFields<'_> {
    fn value(&self, var: Variable) -> Option<Value> {
        match var {
            Variable::ProcessId => Some(Value::Int(self.pid as i128)),
            Variable::ThreadId => Some(Value::Int(self.tid as i128)),
            Variable::ModuleName => self.module_name.map(|m| Value::Str(m.to_string())),
            _ => None,
        }
    }
}

/// Calls the handlers of `kind` whose predicates accept `fields`.
fn fire(tracer: &Tracer, kind: ProbeKind, fields: &LifecycleFields<'_>, extra: impl FnOnce() -> Vec<(&'static str, FieldValue)>) {
    let matching: Vec<&Probe> =
        tracer.runtime.probes.iter().filter(|p| p.kind == kind && p.predicate.matches(fields)).collect();
    if matching.is_empty() {
        return;
    }
    let ctx = HitContext::new(kind.name(), fields.pid, fields.tid, Fields::Lifecycle(extra()), None);
    call_handlers(matching.into_iter(), ctx);
}

unsafe extern "C" fn on_thread_init(dc: *mut std::ffi::c_void) {
    dr_sys::process::forget_pid();
    ptap_runtime::thread_started();
    let Some(tracer) = TRACER.get() else { return };
    let tid = dr_sys::process::tid_of(dc as DrContext);
    if tid == tracer.initial_tid {
        return;
    }
    let fields = LifecycleFields { pid: dr_sys::process::pid(), tid, module_name: None };
    fire(tracer, ProbeKind::ThreadStart, &fields, Vec::new);
}

unsafe extern "C" fn on_thread_exit(dc: *mut std::ffi::c_void) {
    crate::functions::report_open_calls_at_exit();
    if let Some(tracer) = TRACER.get() {
        let tid = dr_sys::process::tid_of(dc as DrContext);
        if tid != tracer.initial_tid {
            let fields = LifecycleFields { pid: dr_sys::process::pid(), tid, module_name: None };
            fire(tracer, ProbeKind::ThreadExit, &fields, Vec::new);
        }
    }
    ptap_runtime::thread_exiting();
}

unsafe extern "C" fn on_module_load(dc: *mut std::ffi::c_void, info: *const ffi::module_data_t, _loaded: ffi::bool_) {
    let Some(tracer) = TRACER.get() else { return };
    let module = dr_sys::module::ModuleInfo::from_raw(info);
    if dr_sys::module::belongs_to_tracer(module.start) {
        return;
    }
    tracer.banner.module(&module.path, module.start, module.end);
    let loaded = ptap_runtime::modules::add(&module.name, &module.path, module.start, module.end);
    // Before any of the module's code runs: its globals that scripts
    // followed by name join their sets.
    for set in ptap_runtime::symbol_sets::module_loaded(&loaded) {
        crate::match_reports::symbol_loaded(&tracer.runtime.probes, set);
    }
    let is_main = tracer.main_start == Some(module.start);
    crate::functions::on_module_load(&module, is_main);
    let fields =
        LifecycleFields { pid: dr_sys::process::pid(), tid: dr_sys::process::tid_of(dc as DrContext), module_name: Some(&module.name) };
    fire(tracer, ProbeKind::ModuleLoad, &fields, || {
        vec![
            ("module", FieldValue::Str(module.name.clone())),
            ("module_path", FieldValue::Str(module.path.clone())),
            ("module_base", FieldValue::Int(module.start as i64)),
            ("module_end", FieldValue::Int(module.end as i64)),
        ]
    });
}

unsafe extern "C" fn on_module_unload(_dc: *mut std::ffi::c_void, info: *const ffi::module_data_t) {
    let start = dr_sys::module::ModuleInfo::from_raw(info).start;
    crate::functions::on_module_unload(start);
    ptap_runtime::symbol_sets::module_unloaded(start);
    ptap_runtime::modules::remove(start);
}

unsafe extern "C" fn on_fork(_dc: *mut std::ffi::c_void) {
    dr_sys::process::forget_pid();
    ptap_runtime::output::forget_pending();
    ptap_runtime::run_fork_hooks();
}

unsafe extern "C" fn on_signal(_dc: *mut std::ffi::c_void, info: *mut ffi::dr_siginfo_t) -> ffi::dr_signal_action_t {
    let sig = (*info).sig;
    if kills_by_default(sig) {
        FATAL_SIGNAL.store(sig as u32, Ordering::Relaxed);
    }
    ffi::dr_signal_action_t_DR_SIGNAL_DELIVER
}

/// Signals whose default action ends the process.
fn kills_by_default(sig: i32) -> bool {
    !matches!(sig, 17 /*CHLD*/ | 18 /*CONT*/ | 19 /*STOP*/ | 20 /*TSTP*/ | 21 /*TTIN*/ | 22 /*TTOU*/ | 23 /*URG*/ | 28 /*WINCH*/)
        && sig < 32
}

/// The system calls whose pre-syscall event this module needs.
pub fn wants_syscall(sysnum: i32) -> bool {
    // DynamoRIO intercepts the clone family itself: asking costs nothing.
    matches!(sysnum, SYS_EXIT_GROUP | SYS_CLONE | SYS_FORK | SYS_VFORK | SYS_CLONE3)
}

unsafe extern "C" fn on_pre_syscall(dc: *mut std::ffi::c_void, sysnum: i32) -> ffi::bool_ {
    let dc = dc as DrContext;
    match sysnum {
        SYS_EXIT_GROUP => {
            let status = dr_sys::syscall::param(dc, 0) as i32 & 0xff;
            EXIT_STATUS.store(status, Ordering::Relaxed);
        }
        SYS_CLONE | SYS_FORK | SYS_VFORK | SYS_CLONE3 => {
            ptap_runtime::dispatch::before_clone(child_shares_memory(dc, sysnum));
        }
        _ => {}
    }
    1
}

/// Whether the child of a clone-family call about to be made shares the
/// caller's memory (a thread, or a vfork child).
///
/// # Safety
/// `dc` must be the context of the thread in its pre-syscall event.
unsafe fn child_shares_memory(dc: DrContext, sysnum: i32) -> bool {
    let flags = match sysnum {
        SYS_FORK => return false,
        SYS_VFORK => return true,
        SYS_CLONE => dr_sys::syscall::param(dc, 0) as u64,
        _ => {
            // clone3(struct clone_args *args, size): flags come first.
            let mut word = [0u8; 8];
            if dr_sys::memory::safe_read(dr_sys::syscall::param(dc, 0), &mut word) < word.len() {
                return true;
            }
            u64::from_le_bytes(word)
        }
    };
    flags & libc::CLONE_VM as u64 != 0
}

/// The target's exit code as the launcher reports it: the `exit_group`
/// status, or 128+N after a fatal signal N.
fn exit_code() -> (i64, Option<u32>) {
    let status = EXIT_STATUS.load(Ordering::Relaxed);
    let signal = FATAL_SIGNAL.load(Ordering::Relaxed);
    if status >= 0 {
        (status as i64, None)
    } else if signal != 0 {
        (128 + signal as i64, Some(signal))
    } else {
        (0, None)
    }
}

unsafe extern "C" fn on_exit() {
    crate::functions::report_open_calls_at_exit();
    if let Some(tracer) = TRACER.get() {
        let (code, signal) = exit_code();
        let fields = LifecycleFields { pid: dr_sys::process::pid(), tid: dr_sys::process::current_tid(), module_name: None };
        fire(tracer, ProbeKind::ProcessExit, &fields, || {
            vec![
                ("exit_code", FieldValue::Int(code)),
                ("signal", signal.map_or(FieldValue::None, |s| FieldValue::Int(s as i64))),
            ]
        });
        ptap_runtime::run_exit_hooks();
        ptap_runtime::flush();
        // Each process of the trace says its own: named, as forks print
        // no banner of their own.
        if let Some(n) = crate::memory::instrumented_instructions() {
            tracer.banner.verbose(&format!("memory: {n} instructions instrumented in pid {}", fields.pid));
        }
        if let Some(summary) = crate::branches::summary() {
            tracer.banner.verbose(&format!("{summary} in pid {}", fields.pid));
        }
        crate::match_reports::warn_at_exit();
        for p in tracer.runtime.probes.iter().filter(|p| p.error_count() > 0) {
            tracer.banner.message(&format!(
                "[!] handler {} ({}) raised {} exception(s); the first is shown above",
                p.name,
                p.kind.name(),
                p.error_count()
            ));
        }
    }
    if crate::functions::is_installed() {
        dr_sys::wrap::exit();
    }
    ffi::drmgr_exit();
}
