//! The single place that enters Python for an event: it switches to the
//! Python stack, takes the GIL, builds `ctx` and calls the handlers whose
//! predicates matched, so that a handler that raises never reaches the
//! target.

use crate::context::HitContext;
use crate::probe::Probe;
use crate::stack::on_python_stack;
use pyo3::prelude::*;

/// Calls each probe's handler with one shared `ctx`, in order. Exceptions
/// are printed the first time for each handler, then counted.
pub fn call_handlers(probes: &[&Probe], ctx: HitContext) {
    if probes.is_empty() {
        return;
    }
    on_python_stack(|| {
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
    on_python_stack(|| Python::attach(f))
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
