//! The `ctx` object a handler receives: one per event, holding what the
//! event knows. Fields common to all events are attributes; the rest depend
//! on the event's kind and are listed in an error when a handler asks for
//! one its event does not have.

use crate::memory::Memory;
use pyo3::exceptions::{PyAttributeError, PyIndexError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A value of one event-specific field.
#[derive(Debug, Clone)]
pub enum FieldValue {
    Int(i64),
    Str(String),
    None,
}

impl<'py> IntoPyObject<'py> for &FieldValue {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self {
            FieldValue::Int(i) => i.into_pyobject(py)?.into_any(),
            FieldValue::Str(s) => s.into_pyobject(py)?.into_any(),
            FieldValue::None => py.None().into_bound(py),
        })
    }
}

/// `ctx` in a handler.
#[pyclass(name = "Context", module = "_ptap", frozen)]
pub struct HitContext {
    /// The probe kind that fired: "process_exit", "module_load", ...
    #[pyo3(get)]
    pub event: &'static str,
    #[pyo3(get)]
    pub pid: u32,
    #[pyo3(get)]
    pub tid: u32,
    pub fields: Fields,
    /// The function call this event is part of (function probes only).
    pub call: Option<CallState>,
}

/// The event-specific fields of a `ctx`.
pub enum Fields {
    /// Rare events: a list of named values.
    Lifecycle(Vec<(&'static str, FieldValue)>),
    /// Function entry and exit: fixed fields, cheap to fill per call.
    Function(FunctionFields),
}

/// What a function event knows besides the call's registers and memory.
pub struct FunctionFields {
    pub function: usize,
    /// The symbol the probe matched, if the function has one.
    pub name: Option<Arc<str>>,
    pub module: Arc<str>,
    /// The return address.
    pub caller: usize,
    /// At exit: whether the call was unwound (longjmp, exception).
    pub unwound: Option<bool>,
}

impl FunctionFields {
    const NAMES: [&'static str; 5] = ["function", "function_name", "caller", "module", "pc"];

    fn get<'py>(&self, py: Python<'py>, name: &str) -> Option<PyResult<Bound<'py, PyAny>>> {
        use pyo3::types::{PyBool, PyInt, PyString};
        let int = |v: usize| PyInt::new(py, v).into_any();
        Some(Ok(match name {
            "function" | "pc" => int(self.function),
            "function_name" => match &self.name {
                Some(n) => PyString::new(py, n).into_any(),
                None => py.None().into_bound(py),
            },
            "caller" => int(self.caller),
            "module" => PyString::new(py, &self.module).into_any(),
            "unwound" => PyBool::new(py, self.unwound?).to_owned().into_any(),
            _ => return None,
        }))
    }
}

/// Number of integer argument registers whose entry values are kept for
/// the exit event (SysV x86-64: rdi, rsi, rdx, rcx, r8, r9).
pub const KEPT_ARGS: usize = 6;

/// One call of a probed function, as its `ctx` reaches it: the raw
/// argument words at entry and, while a handler runs, drwrap's context for
/// reading and changing arguments and the return value.
pub struct CallState {
    /// drwrap's per-call context; 0 once the handlers have returned.
    wrap_context: AtomicUsize,
    pub is_exit: bool,
    /// The argument words the function was entered with, if they were
    /// read at entry (they are for calls with exit probes; an entry handler
    /// alone reads them live, on demand, which is cheaper).
    args: [AtomicUsize; KEPT_ARGS],
    captured: bool,
    /// A handler wrote RIP: continue there when the handlers return.
    redirect: std::sync::atomic::AtomicBool,
}

impl CallState {
    /// A call whose argument words are `args` if they were read at entry
    /// (always for an exit event), or read live from the context.
    pub fn new(wrap_context: usize, is_exit: bool, args: Option<[usize; KEPT_ARGS]>) -> CallState {
        CallState {
            wrap_context: AtomicUsize::new(wrap_context),
            is_exit,
            args: args.unwrap_or_default().map(AtomicUsize::new),
            captured: args.is_some(),
            redirect: Default::default(),
        }
    }

    /// The entry argument words, after any change a handler made.
    pub fn args(&self) -> [usize; KEPT_ARGS] {
        std::array::from_fn(|i| self.args[i].load(Ordering::Relaxed))
    }

    /// Ends the handlers' access to the call (drwrap's context dies when
    /// the callback returns), redirecting the thread if a handler wrote RIP.
    fn finish(&self) {
        let wc = self.wrap_context.swap(0, Ordering::AcqRel);
        if wc != 0 && self.redirect.load(Ordering::Relaxed) {
            // SAFETY: the exit callback that owns `wc` is still running.
            unsafe { dr_sys::wrap::redirect(wc as dr_sys::wrap::WrapContext) };
        }
    }

    fn live_context(&self) -> PyResult<dr_sys::wrap::WrapContext> {
        match self.wrap_context.load(Ordering::Acquire) {
            0 => Err(PyRuntimeError::new_err("this ctx belongs to an event that is over: keep values, not ctx")),
            wc => Ok(wc as dr_sys::wrap::WrapContext),
        }
    }
}

static MISSING_PROTOTYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `ctx.args`: the function's arguments as raw words (SysV x86-64 ABI).
#[pyclass(name = "Arguments", module = "_ptap", frozen)]
pub struct Arguments {
    ctx: Py<HitContext>,
}

impl Arguments {
    fn call(&self) -> &CallState {
        self.ctx.get().call.as_ref().expect("Arguments exist for function events only")
    }
}

#[pymethods]
impl Arguments {
    fn __getitem__(&self, index: isize) -> PyResult<usize> {
        self.raw(index)
    }

    /// Argument `index` as the raw register or stack word.
    fn raw(&self, index: isize) -> PyResult<usize> {
        let i = usize::try_from(index).map_err(|_| PyIndexError::new_err("argument indices start at 0; without a prototype there is no end to count from"))?;
        let call = self.call();
        if i < KEPT_ARGS && call.captured {
            return Ok(call.args[i].load(Ordering::Relaxed));
        }
        if call.is_exit {
            return Err(PyIndexError::new_err(format!("only the first {KEPT_ARGS} arguments are kept for function_exit")));
        }
        let wc = call.live_context()?;
        // SAFETY: the context is live (the entry callback is running).
        Ok(unsafe { dr_sys::wrap::arg(wc, i) })
    }

    /// `ctx.args[i] = v` at entry: the function receives `v`.
    fn __setitem__(&self, index: usize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let call = self.call();
        if call.is_exit {
            return Err(PyTypeError::new_err("arguments can be changed at function_entry only"));
        }
        let word = to_word(value)?;
        let wc = call.live_context()?;
        // SAFETY: the context is live (the entry callback is running).
        if !unsafe { dr_sys::wrap::set_arg(wc, index, word) } {
            return Err(PyIndexError::new_err(format!("cannot set argument {index}")));
        }
        if index < KEPT_ARGS {
            call.args[index].store(word, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Without a prototype the number of arguments is unknown.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let class = MISSING_PROTOTYPE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("ptap.errors")?.getattr("MissingPrototype")?.unbind())
        })?;
        Err(PyErr::from_value(class.call1(py, ("no prototype is known for this function, so its number of arguments is not",))?.into_bound(py)))
    }

    fn __repr__(&self) -> String {
        let words: Vec<String> = (0..KEPT_ARGS as isize).map(|i| self.raw(i).map_or("?".into(), |w| format!("{w:#x}"))).collect();
        format!("<args (raw) {}, ...>", words.join(", "))
    }
}

/// `ctx.regs`: the thread's registers at the event. Writes take effect
/// when the handler returns; writing RIP at function_exit continues the
/// thread there.
#[pyclass(name = "Registers", module = "_ptap", frozen)]
pub struct Registers {
    ctx: Py<HitContext>,
}

impl Registers {
    fn call(&self) -> &CallState {
        self.ctx.get().call.as_ref().expect("Registers exist for function events only")
    }
}

fn register_named(name: &str) -> PyResult<dr_sys::wrap::Register> {
    dr_sys::wrap::Register::from_name(name)
        .ok_or_else(|| PyAttributeError::new_err(format!("no register {name} (x86-64: RAX..R15, RIP, RSP, RBP, RFLAGS, STACKPTR, INSTPTR)")))
}

#[pymethods]
impl Registers {
    fn __getattr__(&self, name: &str) -> PyResult<usize> {
        let reg = register_named(name)?;
        let wc = self.call().live_context()?;
        // SAFETY: the context is live (a callback is running).
        unsafe { dr_sys::wrap::register(wc, reg) }.ok_or_else(|| PyRuntimeError::new_err("registers are not available here"))
    }

    fn __setattr__(&self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let reg = register_named(name)?;
        let call = self.call();
        if reg == dr_sys::wrap::Register::Rip && !call.is_exit {
            return Err(PyTypeError::new_err("RIP can be written at function_exit only (drwrap cannot redirect at entry)"));
        }
        let word = to_word(value)?;
        let wc = call.live_context()?;
        // SAFETY: the context is live (a callback is running).
        if !unsafe { dr_sys::wrap::set_register(wc, reg, word) } {
            return Err(PyRuntimeError::new_err(format!("cannot set {name} here")));
        }
        if reg == dr_sys::wrap::Register::Rip {
            call.redirect.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn __dir__(&self) -> Vec<&'static str> {
        dr_sys::wrap::Register::NAMES.iter().map(|(n, _)| *n).collect()
    }
}

/// Most frames `backtrace()` returns.
const MAX_FRAMES: usize = 64;
/// How far up the stack `backtrace()` looks for return addresses.
const MAX_STACK_SCAN: usize = 64 * 1024;

/// Return addresses on the stack from `sp` up, innermost first: words that
/// point into a module just after a call instruction. Code built without
/// frame pointers or unwind tables can be walked this way too; a stale
/// return address left in a dead frame may show up, as in any scan.
fn scan_return_addresses(sp: usize, first: Option<usize>) -> Vec<usize> {
    let mut frames: Vec<usize> = first.into_iter().collect();
    let word = std::mem::size_of::<usize>();
    let mut chunk = vec![0u8; 4096];
    let mut at = sp & !(word - 1);
    let end = sp + MAX_STACK_SCAN;
    while at < end && frames.len() < MAX_FRAMES {
        let got = dr_sys::memory::safe_read(at, &mut chunk);
        if got < word {
            break;
        }
        for w in chunk[..got - got % word].chunks_exact(word) {
            let value = usize::from_ne_bytes(w.try_into().unwrap());
            if crate::modules::containing(value).is_some() && follows_call(value) {
                frames.push(value);
                if frames.len() == MAX_FRAMES {
                    break;
                }
            }
        }
        at += got - got % word;
    }
    frames
}

/// Whether the bytes before `address` end with a call instruction.
fn follows_call(address: usize) -> bool {
    let mut before = [0u8; 7];
    if dr_sys::memory::safe_read(address.wrapping_sub(7), &mut before) < 7 {
        return false;
    }
    // call rel32 (e8 xx xx xx xx), or call r/m (ff /2) of 2 to 7 bytes.
    before[2] == 0xe8 || (1..=6).any(|len| {
        let i = 7 - len - 1;
        before[i] == 0xff && (before[i + 1] >> 3) & 7 == 2
    })
}

/// A Python int (negative ones as two's complement) as a machine word.
fn to_word(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(w) = value.extract::<usize>() {
        return Ok(w);
    }
    let signed: isize = value.extract().map_err(|_| PyTypeError::new_err("a machine word must be an int that fits in 64 bits"))?;
    Ok(signed as usize)
}

#[pymethods]
impl HitContext {
    /// The target's memory.
    #[getter]
    fn mem(&self) -> Memory {
        Memory
    }

    /// The function's arguments (function probes).
    #[getter]
    fn args(slf: Py<Self>) -> PyResult<Arguments> {
        match &slf.get().call {
            Some(_) => Ok(Arguments { ctx: slf }),
            None => Err(slf.get().missing("args")),
        }
    }

    /// The registers (function probes).
    #[getter]
    fn regs(slf: Py<Self>) -> PyResult<Registers> {
        match &slf.get().call {
            Some(_) => Ok(Registers { ctx: slf }),
            None => Err(slf.get().missing("regs")),
        }
    }

    /// Return addresses on the stack, innermost first (the caller first).
    fn backtrace(&self) -> PyResult<Vec<usize>> {
        let call = self.call.as_ref().ok_or_else(|| self.missing("backtrace"))?;
        let wc = call.live_context()?;
        // SAFETY: the context is live (a callback is running).
        let sp = unsafe { dr_sys::wrap::register(wc, dr_sys::wrap::Register::Rsp) }.unwrap_or(0);
        let caller = match &self.fields {
            Fields::Function(f) => Some(f.caller),
            Fields::Lifecycle(_) => None,
        };
        // At entry the caller's return address is at [rsp]; skip it.
        let from = if call.is_exit { sp } else { sp + std::mem::size_of::<usize>() };
        Ok(scan_return_addresses(from, caller))
    }

    /// `module!function+0xoff` for an address.
    #[staticmethod]
    fn symbolize(address: usize) -> String {
        crate::modules::symbolize(address)
    }

    /// The value the function returns (function_exit); assign to change it.
    #[getter]
    fn retval(&self) -> PyResult<usize> {
        let call = self.exit_call("retval")?;
        // SAFETY: the context is live (the exit callback is running).
        Ok(unsafe { dr_sys::wrap::retval(call.live_context()?) })
    }

    #[setter]
    fn set_retval(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let call = self.exit_call("retval")?;
        let word = to_word(value)?;
        // SAFETY: the context is live (the exit callback is running).
        unsafe { dr_sys::wrap::set_retval(call.live_context()?, word) };
        Ok(())
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let found = match &self.fields {
            Fields::Lifecycle(fields) => fields.iter().find(|(n, _)| *n == name).map(|(_, v)| Ok(v.into_pyobject(py)?)),
            Fields::Function(fields) => fields.get(py, name),
        };
        found.unwrap_or_else(|| Err(self.missing(name)))
    }

    fn __repr__(&self) -> String {
        let mut parts = vec![format!("pid={}", self.pid), format!("tid={}", self.tid)];
        if let Fields::Function(f) = &self.fields {
            parts.push(format!("function={:#x} function_name={:?} module={:?} caller={:#x}", f.function, f.name, f.module, f.caller));
        }
        let lifecycle: &[(&str, FieldValue)] = match &self.fields {
            Fields::Lifecycle(fields) => fields,
            Fields::Function(_) => &[],
        };
        for (n, v) in lifecycle {
            parts.push(match v {
                FieldValue::Int(i) => format!("{n}={i}"),
                FieldValue::Str(s) => format!("{n}={s:?}"),
                FieldValue::None => format!("{n}=None"),
            });
        }
        format!("<{} {}>", self.event, parts.join(" "))
    }

    fn __dir__(&self) -> Vec<&'static str> {
        self.field_names()
    }
}

impl HitContext {
    /// The names a handler can read on this event.
    fn field_names(&self) -> Vec<&'static str> {
        let mut names = vec!["event", "pid", "tid", "mem", "symbolize"];
        if let Some(call) = &self.call {
            names.extend(["args", "regs", "backtrace"]);
            if call.is_exit {
                names.push("retval");
            }
        }
        match &self.fields {
            Fields::Lifecycle(fields) => names.extend(fields.iter().map(|(n, _)| *n)),
            Fields::Function(f) => {
                names.extend(FunctionFields::NAMES);
                if f.unwound.is_some() {
                    names.push("unwound");
                }
            }
        }
        names
    }

    /// Ends the event for the handlers: afterwards `ctx` no longer reaches
    /// the call. Returns the call's argument words as the handlers left
    /// them, if they were read at entry.
    pub fn finish(&self) -> Option<[usize; KEPT_ARGS]> {
        let call = self.call.as_ref()?;
        call.finish();
        call.captured.then(|| call.args())
    }

    fn missing(&self, name: &str) -> PyErr {
        if let (Fields::Function(FunctionFields { unwound: Some(true), .. }), "retval") = (&self.fields, name) {
            // A getter's AttributeError sends Python to __getattr__, which
            // ends here: say why there is no return value.
            return PyAttributeError::new_err("no retval: the call was unwound (longjmp or exception) and returned nothing");
        }
        PyAttributeError::new_err(format!(
            "{} events have no field '{name}' (they have: {})",
            self.event,
            self.field_names().join(", ")
        ))
    }

    fn exit_call(&self, name: &str) -> PyResult<&CallState> {
        if let Fields::Function(FunctionFields { unwound: Some(true), .. }) = &self.fields {
            return Err(PyAttributeError::new_err(format!(
                "no {name}: the call was unwound (longjmp or exception) and returned nothing"
            )));
        }
        match &self.call {
            Some(call) if call.is_exit => Ok(call),
            _ => Err(self.missing(name)),
        }
    }
}
