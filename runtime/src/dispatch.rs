//! The single place that enters Python. It switches the thread to its
//! Python stack, takes the GIL with the thread's own Python thread state,
//! builds `ctx` and calls the handlers whose predicates matched, so that a
//! handler that raises never reaches the target.
//!
//! Everything per thread lives in one thread-local [`PerThread`], looked
//! up once per event: the stack, and a Python thread state made at the
//! thread's first event and kept until it exits, so `threading.local()`
//! data lasts between events and taking the GIL is one
//! `PyEval_RestoreThread` (pyo3's `Python::attach` would make and delete a
//! thread state each time).
//!
//! While the target has a single thread and Python no other thread state,
//! that thread keeps the GIL between events: nobody else can want it, and
//! taking and dropping it is four locked instructions per event. Before
//! the target makes a thread or shares its memory with a child
//! ([`before_clone`]), or once a handler starts a Python thread, the GIL
//! is dropped after every event as usual, for the rest of the process.

use crate::call::Finished;
use crate::context::HitContext;
use crate::probe::Probe;
use crate::stack;
use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the thread that runs Python may keep the GIL between events.
static MAY_KEEP_GIL: AtomicBool = AtomicBool::new(true);

/// What one thread needs to enter Python.
struct PerThread {
    /// Base of the thread's Python stack, or 0 before first use.
    stack_base: Cell<usize>,
    /// True while the thread runs Python (a nested entry runs directly).
    in_python: Cell<bool>,
    /// The thread's Python thread state, or null before first use.
    thread_state: Cell<*mut ffi::PyThreadState>,
    /// Whether we made the thread state (and must delete it at exit).
    made_state: Cell<bool>,
    /// The thread kept the GIL when its last event ended.
    keeps_gil: Cell<bool>,
}

thread_local! {
    static THREAD: PerThread = const {
        PerThread {
            stack_base: Cell::new(0),
            in_python: Cell::new(false),
            thread_state: Cell::new(std::ptr::null_mut()),
            made_state: Cell::new(false),
            keeps_gil: Cell::new(false),
        }
    };
}

/// Records the thread state of the thread that initialized Python, which
/// has just released the GIL with it.
pub(crate) fn adopt_thread_state(state: *mut ffi::PyThreadState) {
    THREAD.with(|t| t.thread_state.set(state));
}

/// Runs `f` with the GIL held, on the thread's Python stack.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    THREAD.with(|t| {
        if t.in_python.get() {
            // SAFETY: this thread already holds the GIL further up.
            return f(unsafe { Python::assume_attached() });
        }
        let base = match t.stack_base.get() {
            0 => match stack::allocate() {
                Some(b) => {
                    t.stack_base.set(b);
                    b
                }
                None => 0,
            },
            b => b,
        };
        t.in_python.set(true);
        // The application's floating-point flags, out of the handlers' reach.
        let _fpu = crate::fpu::Kept::new();
        let body = || {
            let state = thread_state(t);
            // SAFETY: `state` is this thread's own thread state, not
            // current; restoring it takes the GIL, saving it releases it.
            // In between the thread is attached, as assume_attached needs.
            // (pyo3's attach would add three thread-local lookups, each a
            // call into DynamoRIO for a client, and a GILState round trip;
            // without it, a `Py` dropped inside is queued by pyo3 until its
            // next attach, so the handlers' path holds `Bound`s instead.)
            unsafe {
                if !t.keeps_gil.get() {
                    ffi::PyEval_RestoreThread(state);
                }
                let result = f(Python::assume_attached());
                if MAY_KEEP_GIL.load(Ordering::Relaxed) && is_only_thread_state(state) {
                    t.keeps_gil.set(true);
                } else {
                    MAY_KEEP_GIL.store(false, Ordering::Relaxed);
                    t.keeps_gil.set(false);
                    ffi::PyEval_SaveThread();
                }
                result
            }
        };
        // SAFETY: the stack is this thread's and unused (in_python was false).
        let result = if base != 0 { unsafe { stack::run_on(base, body) } } else { body() };
        t.in_python.set(false);
        result
    })
}

/// Whether `state` is the only thread state of its interpreter (a thread
/// a handler starts gets its own before it runs).
///
/// # Safety
/// The GIL must be held with `state`.
unsafe fn is_only_thread_state(state: *mut ffi::PyThreadState) -> bool {
    let head = ffi::PyInterpreterState_ThreadHead(ffi::PyInterpreterState_Main());
    head == state && ffi::PyThreadState_Next(state).is_null()
}

/// Call in the thread about to make a `clone` system call (`fork`, `vfork`
/// and `clone3` included), before the kernel sees it. If the child will
/// share the target's memory (a thread, or a `vfork` child, which runs in
/// its parent's memory until it execs), the GIL is dropped after every
/// event from now on, and now if this thread kept it, so that the child
/// can take it. A child with its own copy of memory starts as its parent
/// was.
pub fn before_clone(shares_memory: bool) {
    if !shares_memory || !MAY_KEEP_GIL.swap(false, Ordering::Relaxed) {
        return;
    }
    THREAD.with(|t| {
        if t.keeps_gil.replace(false) && !t.in_python.get() {
            // SAFETY: this thread holds the GIL with its own thread state
            // (it kept it at the end of its last event); saving releases it.
            unsafe { ffi::PyEval_SaveThread() };
        }
    });
}

/// Whether the calling thread has its Python thread state already (the
/// thread that started Python does from the start).
pub fn thread_has_python_state() -> bool {
    THREAD.with(|t| !t.thread_state.get().is_null())
}

/// The thread's Python thread state, made on first use.
fn thread_state(t: &PerThread) -> *mut ffi::PyThreadState {
    let state = t.thread_state.get();
    if !state.is_null() {
        return state;
    }
    // SAFETY: Python is initialized and this thread has no thread state:
    // PyGILState_Ensure makes one and takes the GIL; PyEval_SaveThread
    // releases the GIL and returns the state, which stays this thread's.
    let state = unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread()
    };
    t.thread_state.set(state);
    t.made_state.set(true);
    state
}

/// Calls each probe's handler with one shared `ctx`, in order, and ends the
/// event: exceptions are printed the first time for each handler, then
/// counted. Returns what the handlers left of a call (see
/// [`HitContext::finish`]).
pub fn call_handlers<'a>(probes: impl Iterator<Item = &'a Probe> + Clone, ctx: HitContext) -> Option<Finished> {
    call_handlers_with(probes, || ctx)
}

/// [`call_handlers`] with the `ctx` made by `make_ctx` once Python is
/// ready for it: made in place, not moved through the closures on the way
/// to Python's stack and back (a HitContext is ~250 bytes; each move was a
/// memcpy call).
pub fn call_handlers_with<'a>(probes: impl Iterator<Item = &'a Probe> + Clone, make_ctx: impl FnOnce() -> HitContext) -> Option<Finished> {
    if probes.clone().any(|p| p.count.is_some()) {
        return count_then_call(probes, make_ctx());
    }
    call_handlers_with_plain(probes, make_ctx)
}

/// An event some `count=` probes matched: they count it natively; the
/// other probes' handlers run as usual, and Python is not entered when
/// there are none.
fn count_then_call<'a>(probes: impl Iterator<Item = &'a Probe> + Clone, ctx: HitContext) -> Option<Finished> {
    for probe in probes.clone() {
        if let Some(key) = probe.count {
            crate::counts::add(probe.index, crate::counts::key_of(key, &ctx));
        }
    }
    let mut handled = probes.filter(|p| p.count.is_none()).peekable();
    if handled.peek().is_none() {
        return ctx.finish();
    }
    let mut ctx = Some(ctx);
    call_handlers_with_plain(handled, move || ctx.take().expect("made once"))
}

/// [`call_handlers_with`] for probes with handlers only.
fn call_handlers_with_plain<'a>(probes: impl Iterator<Item = &'a Probe>, make_ctx: impl FnOnce() -> HitContext) -> Option<Finished> {
    let mut make_ctx = Some(make_ctx);
    let make_ctx = &mut make_ctx;
    with_python(move |py| {
        let ctx = match Bound::new(py, make_ctx.take()?()) {
            Ok(ctx) => ctx,
            Err(e) => {
                e.display(py);
                return None;
            }
        };
        let mut raised = false;
        for probe in probes {
            if let Err(e) = probe.handler.bind(py).call1((&ctx,)) {
                report_handler_error(py, probe, e);
                raised = true;
            }
        }
        if raised {
            free_dropped_objects();
        }
        ctx.get().finish()
    })
}

/// Frees the Python objects dropped since the last call while pyo3 did not
/// know the thread was attached. Handlers run under `assume_attached`,
/// where pyo3 queues a dropped `Py` (a `PyErr` holds three) for its next
/// `attach`, which the handlers' path never makes: every exception that
/// escaped a handler, with all its traceback's frames, stayed alive (2
/// million raises grew the target by 1.4 GB). `attach` on a thread that
/// holds the GIL is a nested `PyGILState_Ensure`, and empties the queue.
/// Called after an event in which a handler raised, which is rare.
fn free_dropped_objects() {
    Python::attach(|_| {});
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
    // Formatted by ptap, which shows the script's lines as compiled:
    // Python's own display reads them from the script's file again, which
    // may be a pipe or a terminal (a script given as /dev/stdin). Written
    // to the tracer's stderr directly: a handler may have closed or
    // replaced sys.stderr, and Python's fallback for a lost sys.stderr
    // writes to fd 2, which is the target's.
    flush_streams(py);
    let formatted = py
        .import("ptap.script")
        .and_then(|m| m.call_method1("format_handler_error", (error.value(py), error.traceback(py))))
        .and_then(|text| text.extract::<String>());
    let report = match formatted {
        Ok(text) => format!("{header}{text}"),
        Err(e) => format!("{header}{}: (its traceback could not be formatted: {e})\n", error.get_type(py).name().map(|n| n.to_string()).unwrap_or_default()),
    };
    crate::output::write(crate::output::Stream::Stderr, report.as_bytes());
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

/// Frees the calling thread's Python stack and deletes the thread state we
/// made for it; call from its thread-exit event.
pub fn release_thread() {
    THREAD.with(|t| {
        if t.in_python.get() {
            return;
        }
        let state = t.thread_state.replace(std::ptr::null_mut());
        let keeps_gil = t.keeps_gil.replace(false);
        if t.made_state.replace(false) && !state.is_null() {
            let release = || {
                // SAFETY: the state was made by PyGILState_Ensure in this
                // thread and is current only if the thread kept the GIL;
                // otherwise restoring it takes the GIL. The matching
                // PyGILState_Release deletes it and releases the GIL.
                unsafe {
                    if !keeps_gil {
                        ffi::PyEval_RestoreThread(state);
                    }
                    ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
                }
            };
            match t.stack_base.get() {
                0 => release(),
                // SAFETY: the thread's own stack, not in use.
                base => unsafe { stack::run_on(base, release) },
            }
        } else if keeps_gil {
            // SAFETY: the thread holds the GIL with its adopted state,
            // which stays (Python's own); saving releases the GIL.
            unsafe { ffi::PyEval_SaveThread() };
        }
        let base = t.stack_base.replace(0);
        if base != 0 {
            // SAFETY: allocated for this thread, no longer in use.
            unsafe { stack::free(base) };
        }
    })
}
