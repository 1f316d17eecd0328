//! The single place that enters Python for an event: it switches to the
//! Python stack, takes the GIL, builds `ctx` and calls the handlers whose
//! predicates matched, so that a handler that raises never reaches the
//! target.

use crate::context::HitContext;
use crate::probe::Probe;
use crate::stack::on_python_stack;
use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Whether this thread's Python thread state was made here (and must be
    /// deleted at thread exit) or already existed (the start-up thread).
    static THREAD_STATE: Cell<ThreadState> = const { Cell::new(ThreadState::Unknown) };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    Unknown,
    Made,
    Existing,
}

/// Gives the calling thread a Python thread state that lasts until the
/// thread ends, so `threading.local()` data and the thread's identity in
/// Python survive from one event to the next (pyo3 alone would make and
/// drop one per entry).
fn keep_thread_state() {
    if THREAD_STATE.get() != ThreadState::Unknown {
        return;
    }
    // SAFETY: Python is initialized; PyGILState_Ensure makes a thread state
    // for a thread without one and takes the GIL, which PyEval_SaveThread
    // gives back while keeping the state.
    unsafe {
        if ffi::PyGILState_GetThisThreadState().is_null() {
            ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
            THREAD_STATE.set(ThreadState::Made);
        } else {
            THREAD_STATE.set(ThreadState::Existing);
        }
    }
}

/// Deletes the thread state [`keep_thread_state`] made for this thread.
pub fn drop_thread_state() {
    if THREAD_STATE.replace(ThreadState::Unknown) != ThreadState::Made {
        return;
    }
    on_python_stack(|| {
        // SAFETY: the state was made by PyGILState_Ensure in this thread and
        // is not current; restoring it takes the GIL, and the matching
        // PyGILState_Release deletes it and releases the GIL.
        unsafe {
            let state = ffi::PyGILState_GetThisThreadState();
            if !state.is_null() {
                ffi::PyEval_RestoreThread(state);
                ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
            }
        }
    });
}

/// Calls each probe's handler with one shared `ctx`, in order. Exceptions
/// are printed the first time for each handler, then counted.
pub fn call_handlers(probes: &[&Probe], ctx: HitContext) {
    if probes.is_empty() {
        return;
    }
    on_python_stack(|| {
        keep_thread_state();
        Python::attach(|py| {
            let ctx = match Py::new(py, ctx) {
                Ok(ctx) => ctx,
                Err(e) => return e.display(py),
            };
            for probe in probes {
                if let Err(e) = probe.handler.call1(py, (ctx.clone_ref(py),)) {
                    report_handler_error(py, probe, e);
                }
            }
        })
    })
}

fn report_handler_error(py: Python<'_>, probe: &Probe, error: PyErr) {
    if !probe.count_error() {
        return;
    }
    let header = format!(
        "[!] handler {} ({}) raised an exception; later ones are counted and reported at exit:\n",
        probe.name,
        probe.kind.name()
    );
    if let Ok(stderr) = py.import("sys").and_then(|s| s.getattr("stderr")) {
        let _ = stderr.call_method1("write", (header,));
    }
    error.display(py);
    flush_streams(py);
}

/// Runs Python code that is not a handler (start-up, exit) on the Python
/// stack with the GIL held.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    on_python_stack(|| {
        keep_thread_state();
        Python::attach(f)
    })
}

/// Flushes Python's stdout and stderr (the tracer's streams).
pub fn flush_streams(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            if let Ok(stream) = sys.getattr(name) {
                let _ = stream.call_method0("flush");
            }
        }
    }
}
