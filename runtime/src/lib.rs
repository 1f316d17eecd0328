//! `ptap-runtime`: the embedded interpreter, the bridge between the client's
//! native events and the script's Python handlers.
//!
//! Start-up ([`start`]), once the client has opened the tracer's streams
//! ([`output`]): mend the private libraries DynamoRIO loaded for us
//! ([`mends`]), start CPython with the `_ptap` module built in, run the
//! script's top level through
//! `ptap.script.run_script`, and turn the probes it registered into native
//! [`probe::Probe`]s whose [`predicate::Predicate`]s the client decides
//! without Python. Events then enter Python only through
//! [`dispatch::call_handlers`], on a stack large enough for Python
//! ([`stack`]), with a [`context::HitContext`] as `ctx`; the target's
//! modules and their symbols are in [`modules`].

pub mod address_sets;
pub mod args;
pub mod call;
pub mod clock;
pub mod context;
pub mod counts;
pub mod dispatch;
mod fpu;
pub mod interned;
mod interpreter;
pub mod memory;
pub mod modules;
pub mod mends;
mod native_module;
pub mod output;
pub mod predicate;
pub mod probe;
pub mod prototype;
pub mod stack;
pub mod symbol_sets;
pub mod symbols;

use probe::Probe;
use pyo3::prelude::*;

/// What the client knows at start-up that the runtime needs.
pub struct StartConfig<'a> {
    pub client_path: &'a str,
    pub script: &'a ptap_options::inherited::ScriptImage,
    /// The target's executable and argv, as the script's `exe` and `argv`.
    pub exe: &'a str,
    pub argv: &'a [String],
}

/// The running runtime.
pub struct Runtime {
    pub probes: Vec<Probe>,
    pub mends: mends::MendReport,
    /// `sys.version`'s first word, for the verbose banner.
    pub python_version: String,
    /// The headers the script included, with their number of functions.
    pub headers: Vec<(String, usize)>,
    /// The number of system calls in the table, if it could be read.
    pub syscall_count: Option<usize>,
    /// Where start-up time went, for the verbose banner.
    pub timings: StartupTimings,
}

/// What the script's top level left for the native side.
struct Loaded {
    probes: Vec<Probe>,
    python_version: String,
    headers: Vec<(String, usize)>,
    syscall_count: Option<usize>,
}

/// Milliseconds spent in each start-up stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct StartupTimings {
    pub mends: f64,
    pub python: f64,
    pub script: f64,
}

/// Why start-up failed.
#[derive(Debug)]
pub enum StartError {
    /// The script failed to compile or raised at top level; the traceback
    /// has been printed to the tracer's stderr.
    Script,
    /// The tracer itself could not start; the message says why.
    Tracer(String),
}

/// Starts Python and runs the script's top level. On success the GIL is
/// released and events may call handlers from any thread.
pub fn start(config: &StartConfig<'_>) -> Result<Runtime, StartError> {
    let ms_since = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
    let t = std::time::Instant::now();
    let mends = mends::mend_private_libraries();
    let mends_ms = ms_since(t);
    let t = std::time::Instant::now();
    interpreter::initialize().map_err(StartError::Tracer)?;
    let python_ms = ms_since(t);
    let t = std::time::Instant::now();
    let ptap_lib = interpreter::find_ptap_lib(config.client_path)
        .ok_or_else(|| StartError::Tracer("cannot find the ptap Python package".into()))?;
    let loaded = dispatch::with_python(|py| -> Result<Loaded, StartError> {
        let internal = |e: PyErr| {
            e.display(py);
            StartError::Tracer("the ptap package failed to load".into())
        };
        interpreter::prepare(py, &ptap_lib).map_err(internal)?;
        let script = py.import("ptap.script").map_err(internal)?;
        let warn = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<()> {
            let message: String = args.get_item(0)?.extract()?;
            output::message(&format!("[!] {message}"));
            Ok(())
        })
        .map_err(internal)?;
        let kwargs = pyo3::types::PyDict::new(py);
        let set = |k: &str, v: Bound<'_, PyAny>| kwargs.set_item(k, v).map_err(internal);
        set("exe", config.exe.into_pyobject(py).unwrap().into_any())?;
        set("argv", config.argv.into_pyobject(py).map_err(internal)?.into_any())?;
        set("include_dirs", config.script.include_dirs.as_slice().into_pyobject(py).map_err(internal)?.into_any())?;
        set("name", config.script.name.as_str().into_pyobject(py).unwrap().into_any())?;
        set("source", pyo3::types::PyBytes::new(py, &config.script.source).into_any())?;
        set("programs", config.script.programs.as_slice().into_pyobject(py).map_err(internal)?.into_any())?;
        set("warn", warn.into_any())?;
        let result = script.call_method("run_script", (config.script.path.as_str(),), Some(&kwargs));
        let registered = match result {
            Ok(list) => list,
            Err(e) => {
                let script_error = py
                    .import("ptap.errors")
                    .and_then(|m| m.getattr("ScriptError"))
                    .map(|cls| e.is_instance(py, &cls))
                    .unwrap_or(false);
                if !script_error {
                    e.display(py);
                }
                dispatch::flush_streams(py);
                return Err(StartError::Script);
            }
        };
        let mut probes = Vec::new();
        for (index, p) in registered.try_iter().map_err(internal)?.enumerate() {
            probes.push(Probe::from_python(&p.map_err(internal)?, index).map_err(internal)?);
        }
        // Only probes of their kind read the tables: a script that
        // includes stdio.h without a function probe exports none of its
        // hundred prototypes.
        let any_of = |kinds: [probe::ProbeKind; 2]| probes.iter().any(|p| kinds.contains(&p.kind));
        if any_of([probe::ProbeKind::FunctionEntry, probe::ProbeKind::FunctionExit]) {
            prototype::load_functions(py).map_err(internal)?;
        }
        if any_of([probe::ProbeKind::SyscallEntry, probe::ProbeKind::SyscallExit]) {
            prototype::load_syscalls(py).map_err(internal)?;
        }
        let headers = py
            .import("ptap.prototypes")
            .and_then(|m| m.call_method0("parsed_headers"))
            .and_then(|h| h.extract())
            .map_err(internal)?;
        // No kernel headers: no table, and syscall_name means nothing.
        let syscall_count = py.import("ptap.syscalls").and_then(|m| m.call_method0("count")).and_then(|c| c.extract()).ok();
        dispatch::flush_streams(py);
        let python_version = py.version().split_whitespace().next().unwrap_or_default().to_string();
        Ok(Loaded { probes, python_version, headers, syscall_count })
    })?;
    let timings = StartupTimings { mends: mends_ms, python: python_ms, script: ms_since(t) };
    let Loaded { probes, python_version, headers, syscall_count } = loaded;
    Ok(Runtime { probes, mends, python_version, headers, syscall_count, timings })
}

/// Called at every thread's start, before anything else runs in it.
pub fn thread_started() {
    mends::repair_current_thread();
    if !dispatch::thread_has_python_state() {
        mends::forget_inherited_thread_data();
    }
}

/// Called at every thread's end.
pub fn thread_exiting() {
    dispatch::release_thread();
    dr_sys::syscall::release_thread_registers();
}

/// Flushes the tracer's Python streams and what they left after their last
/// newline (at process exit).
pub fn flush() {
    dispatch::with_python(dispatch::flush_streams);
    output::flush();
}

/// At the process's exit, after its `process_exit` handlers: what the
/// ptap package prints then (aggregations the script did not print, `-c`'s
/// table; ptap.hooks).
pub fn run_exit_hooks() {
    call_hooks("run_exit_hooks");
}

/// In a forked child, before its first event: its aggregations and `-c`
/// counts start empty (ptap.hooks).
pub fn run_fork_hooks() {
    counts::forget();
    call_hooks("run_fork_hooks");
}

fn call_hooks(function: &str) {
    dispatch::with_python(|py| {
        if let Err(e) = py.import("ptap.hooks").and_then(|m| m.call_method0(function)) {
            e.display(py);
        }
    });
}
