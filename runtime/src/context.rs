//! The `ctx` object a handler receives: one per event, holding what the
//! event knows. Fields common to all events are attributes; the rest depend
//! on the event's kind and are listed in an error when a handler asks for
//! one its event does not have.

use crate::args::{encode, scalar, to_word, Arguments};
use crate::call::{CallKind, CallState, Finished};
use crate::memory::Memory;
use crate::prototype::CType;
use pyo3::exceptions::PyAttributeError;
use once_cell::sync::OnceCell;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// The call this event is part of (function and system-call probes).
    pub call: Option<CallState>,
    /// `ctx.timestamp`, read from the clock when a handler first asks.
    timestamp: OnceCell<u64>,
}

/// The event-specific fields of a `ctx`.
pub enum Fields {
    /// Rare events: a list of named values.
    Lifecycle(Vec<(&'static str, FieldValue)>),
    /// Function entry and exit: fixed fields, cheap to fill per call.
    Function(FunctionFields),
    /// System-call entry and exit.
    Syscall(SyscallFields),
    /// A memory read, write or execute.
    Memory(MemoryFields),
    /// A conditional branch.
    Branch(BranchFields),
}

/// How an instruction touched memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

/// What a memory event knows: the access and the instruction making it.
pub struct MemoryFields {
    pub access: Access,
    pub address: usize,
    pub size: usize,
    /// The instruction's address.
    pub pc: usize,
    pub function_name: Option<&'static str>,
    pub module: &'static str,
    /// At a write: the bytes before the instruction wrote them.
    pub old_value: Option<OldBytes>,
}

/// A write's bytes before it, kept inline: an allocation per event cost
/// as much as deciding the event's probes. Writes longer than
/// [`OldBytes::MAX`] keep none.
#[derive(Clone, Copy)]
pub struct OldBytes {
    bytes: [u8; OldBytes::MAX],
    len: u8,
}

impl OldBytes {
    pub const MAX: usize = crate::address_sets::MAX_FILTERED_ACCESS;

    /// `bytes`, if there are at most MAX of them.
    pub fn new(bytes: &[u8]) -> Option<OldBytes> {
        let mut kept = OldBytes { bytes: [0; OldBytes::MAX], len: bytes.len().try_into().ok()? };
        kept.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(kept)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl MemoryFields {
    const NAMES: [&'static str; 9] = ["address", "size", "access", "pc", "instruction", "function_name", "module", "value", "old_value"];

    fn get<'py>(&self, py: Python<'py>, name: &str) -> Option<PyResult<Bound<'py, PyAny>>> {
        use pyo3::types::{PyBytes, PyInt, PyString};
        Some(Ok(match name {
            "address" => PyInt::new(py, self.address).into_any(),
            "size" => PyInt::new(py, self.size).into_any(),
            "access" => PyString::new(py, self.access.name()).into_any(),
            "pc" => PyInt::new(py, self.pc).into_any(),
            "instruction" => PyString::new(py, &dr_sys::access::disassemble(self.pc)).into_any(),
            "function_name" => match self.function_name {
                Some(n) => PyString::new(py, n).into_any(),
                None => py.None().into_bound(py),
            },
            "module" => PyString::new(py, self.module).into_any(),
            // The bytes there now: what the instruction is about to read,
            // or wrote, as a handler may have changed them.
            "value" => return Some(crate::memory::read_exact(py, self.address, self.size).map(|b| PyBytes::new(py, &b).into_any())),
            "old_value" => PyBytes::new(py, self.old_value.as_ref()?.as_slice()).into_any(),
            _ => return None,
        }))
    }
}

/// What a branch event knows: the branch, its two destinations and the
/// way it goes.
pub struct BranchFields {
    pub pc: usize,
    /// Where it goes when taken.
    pub target: usize,
    /// The next instruction, where it goes when not taken.
    pub fallthrough: usize,
    /// `"jne"`, `"jrcxz"`, `"loop"`, ...
    pub mnemonic: &'static str,
    /// `"ne"`, `"rcxz"`, `"loop"`, ...
    pub condition: &'static str,
    pub function_name: Option<&'static str>,
    pub module: &'static str,
    /// The way it goes: as the condition decided, then as a handler set
    /// it (an atomic only because ctx is shared with Python, which holds
    /// the GIL while it reads or writes).
    pub taken: AtomicBool,
}

impl BranchFields {
    const NAMES: [&'static str; 8] = ["taken", "target", "fallthrough", "pc", "instruction", "condition", "function_name", "module"];

    fn taken(&self) -> bool {
        self.taken.load(Ordering::Relaxed)
    }

    fn get<'py>(&self, py: Python<'py>, name: &str) -> Option<PyResult<Bound<'py, PyAny>>> {
        use pyo3::types::{PyBool, PyInt, PyString};
        let int = |v: usize| PyInt::new(py, v).into_any();
        Some(Ok(match name {
            "taken" => PyBool::new(py, self.taken()).to_owned().into_any(),
            "target" => int(self.target),
            "fallthrough" => int(self.fallthrough),
            "pc" => int(self.pc),
            "instruction" => PyString::new(py, &format!("{} {:#x}", self.mnemonic, self.target)).into_any(),
            "condition" => PyString::new(py, self.condition).into_any(),
            "function_name" => match self.function_name {
                Some(n) => PyString::new(py, n).into_any(),
                None => py.None().into_bound(py),
            },
            "module" => PyString::new(py, self.module).into_any(),
            _ => return None,
        }))
    }
}

/// What a system-call event knows besides its parameters.
pub struct SyscallFields {
    pub number: usize,
    pub name: Option<&'static str>,
}

impl SyscallFields {
    const NAMES: [&'static str; 3] = ["syscall", "syscall_name", "prototype"];

    fn get<'py>(&self, py: Python<'py>, name: &str) -> Option<PyResult<Bound<'py, PyAny>>> {
        use pyo3::types::{PyInt, PyString};
        Some(Ok(match name {
            "syscall" => PyInt::new(py, self.number).into_any(),
            "syscall_name" => match &self.name {
                Some(n) => PyString::new(py, n).into_any(),
                None => PyString::new(py, &format!("syscall_{}", self.number)).into_any(),
            },
            // A number outside the table has no prototype (nor a name to
            // look one up by).
            "prototype" if self.name.is_none() => py.None().into_bound(py),
            "prototype" => return Some(python_prototype(py, "ptap.syscalls", "syscall_prototype", self.number.into_pyobject(py).ok()?.into_any())),
            _ => return None,
        }))
    }
}

/// The ptap-lib `Prototype` object of a call, or None.
fn python_prototype<'py>(py: Python<'py>, module: &str, function: &str, key: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let found = py.import(module)?.call_method1(function, (key,));
    match found {
        Ok(p) => Ok(p),
        Err(e) if e.is_instance(py, &py.import("ptap.errors")?.getattr("MissingPrototype")?) => Ok(py.None().into_bound(py)),
        Err(e) => Err(e),
    }
}

/// What a function event knows besides the call's registers and memory.
pub struct FunctionFields {
    pub function: usize,
    /// The symbol the probe matched, if the function has one.
    pub name: Option<&'static str>,
    pub module: &'static str,
    /// The return address.
    pub caller: usize,
    /// At exit: whether the call was unwound (longjmp, exception).
    pub unwound: Option<bool>,
}

impl FunctionFields {
    const NAMES: [&'static str; 6] = ["function", "function_name", "caller", "module", "pc", "prototype"];

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
            "prototype" => match &self.name {
                Some(n) => return Some(python_prototype(py, "ptap.prototypes", "prototype", PyString::new(py, n).into_any())),
                None => py.None().into_bound(py),
            },
            _ => return None,
        }))
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
        self.ctx.get().call.as_ref().expect("Registers exist for calls only")
    }
}

fn register_named(name: &str) -> PyResult<dr_sys::wrap::Register> {
    dr_sys::wrap::Register::from_name(name)
        .ok_or_else(|| PyAttributeError::new_err(format!("no register {name} ({})", dr_sys::wrap::Register::SUMMARY)))
}

#[pymethods]
impl Registers {
    fn __getattr__(&self, name: &str) -> PyResult<usize> {
        self.call().register(register_named(name)?)
    }

    fn __setattr__(&self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let reg = register_named(name)?;
        let word = to_word(value).map_err(|e| crate::args::naming_field(value.py(), &format!("ctx.regs.{name}"), e))?;
        self.call().set_register(name, reg, word)
    }

    fn __dir__(&self) -> Vec<&'static str> {
        dr_sys::wrap::Register::NAMES.iter().map(|(n, _)| *n).collect()
    }
}

/// The type a value assigned to a system call's `ctx.retval` is encoded
/// by: a word, negative ones as two's complement.
const SYSCALL_RESULT: CType = CType::Int { size: std::mem::size_of::<usize>() as u8, signed: true };

/// A system call's result as the kernel means it: a negative errno when
/// the word is one (-4095..-1), else the word, unsigned (an address from
/// `mmap2` above 2 GiB on 32-bit x86 is no failure).
fn syscall_result(py: Python<'_>, word: usize) -> Bound<'_, PyAny> {
    match word as isize {
        e @ -4095..=-1 => pyo3::types::PyInt::new(py, e as i64).into_any(),
        _ => pyo3::types::PyInt::new(py, word as u64).into_any(),
    }
}

/// Most frames `backtrace()` returns.
const MAX_FRAMES: usize = 64;
/// How far up the stack `backtrace()` looks for return addresses.
const MAX_STACK_SCAN: usize = 64 * 1024;
/// Most words the scan considers as return addresses.
const MAX_CANDIDATES: usize = 4 * MAX_FRAMES;

/// Return addresses on the stack from `sp` up, innermost first: words that
/// point into a module just after a call instruction. Code built without
/// frame pointers or unwind tables can be walked this way too. `first`, if
/// known, is the innermost frame's; else the scan starts in the function
/// holding `pc`.
///
/// A stale return address left in a dead frame (the slot of a call made
/// and returned from) passes those tests too. One is left out when it
/// cannot be a frame: its call went to a program-counter thunk (i386's
/// `__x86.get_pc_thunk.*`, `mov (%esp),%reg; ret`), which returns at
/// once; or it cannot be the next frame and a later word can: its `call
/// rel32` goes to a known function other than the one the scan is in,
/// while a later one calls exactly that function. A mismatch with no such
/// later call stays (a tail call, a call through the PLT or a register).
fn scan_return_addresses(sp: usize, first: Option<usize>, pc: usize) -> Vec<usize> {
    let candidates = return_address_candidates(sp);
    let mut frames: Vec<usize> = first.into_iter().collect();
    let mut inside = function_start(first.unwrap_or(pc));
    for (i, &value) in candidates.iter().enumerate() {
        if frames.len() == MAX_FRAMES {
            break;
        }
        if direct_call_target(value).is_some_and(is_pc_thunk) {
            continue;
        }
        if let Some(expected) = inside {
            let calls = |v: usize| direct_call_target(v).map(|t| t == expected || function_start(t) == Some(expected));
            // A direct call elsewhere, and not into a PLT stub (which may
            // go anywhere).
            let goes_elsewhere = calls(value) == Some(false) && !direct_call_target(value).is_some_and(is_plt_stub);
            if goes_elsewhere && candidates[i + 1..].iter().any(|&v| calls(v) == Some(true)) {
                continue;
            }
        }
        frames.push(value);
        inside = function_start(value);
    }
    frames
}

/// The words from `sp` up (at most [`MAX_STACK_SCAN`] bytes) that point
/// into a module just after a call instruction.
fn return_address_candidates(sp: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let word = std::mem::size_of::<usize>();
    let mut chunk = vec![0u8; 4096];
    let mut at = sp & !(word - 1);
    let end = sp + MAX_STACK_SCAN;
    while at < end && found.len() < MAX_CANDIDATES {
        let got = dr_sys::memory::safe_read(at, &mut chunk);
        if got < word {
            break;
        }
        for w in chunk[..got - got % word].chunks_exact(word) {
            let value = usize::from_ne_bytes(w.try_into().unwrap());
            if crate::modules::containing(value).is_some() && follows_call(value) {
                found.push(value);
            }
        }
        at += got - got % word;
    }
    found.truncate(MAX_CANDIDATES);
    found
}

/// Where the `call rel32` that returns to `address` goes, if that is the
/// call before it.
fn direct_call_target(address: usize) -> Option<usize> {
    let mut before = [0u8; 5];
    if dr_sys::memory::safe_read(address.wrapping_sub(5), &mut before) < 5 || before[0] != 0xe8 {
        return None;
    }
    let rel = i32::from_le_bytes(before[1..].try_into().unwrap());
    Some(address.wrapping_add(rel as isize as usize))
}

/// Whether the code at `address` is a PLT stub: a `jmp` through memory
/// (`ff /4`), after an `endbr64`/`endbr32` and a `bnd` prefix if any.
fn is_plt_stub(address: usize) -> bool {
    let mut code = [0u8; 8];
    if dr_sys::memory::safe_read(address, &mut code) < code.len() {
        return false;
    }
    let mut at = if code[..3] == [0xf3, 0x0f, 0x1e] && matches!(code[3], 0xfa | 0xfb) { 4 } else { 0 };
    if code[at] == 0xf2 {
        at += 1;
    }
    code[at] == 0xff && (code[at + 1] >> 3) & 7 == 4
}

/// Whether the code at `address` is `mov (%esp),%reg; ret` (after an
/// `endbr32` if any): gcc's i386 program-counter thunk.
fn is_pc_thunk(address: usize) -> bool {
    let mut code = [0u8; 8];
    if dr_sys::memory::safe_read(address, &mut code) < code.len() {
        return false;
    }
    let at = if code[..4] == [0xf3, 0x0f, 0x1e, 0xfb] { 4 } else { 0 };
    code[at] == 0x8b && code[at + 1] & 0xc7 == 0x04 && code[at + 2] == 0x24 && code[at + 3] == 0xc3
}

/// The start of the function whose bytes hold `address`, by its module's
/// symbols (`None` in a PLT, or where the symbols say nothing).
fn function_start(address: usize) -> Option<usize> {
    let module = crate::modules::containing(address)?;
    let function = module.symbols().function_at(address - module.start)?.offset;
    Some(module.start + function)
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

#[pymethods]
impl HitContext {
    /// The target's memory.
    #[getter]
    fn mem(&self) -> Memory {
        Memory
    }

    /// The call's arguments (function and system-call probes).
    #[getter]
    fn args(slf: Py<Self>) -> PyResult<Arguments> {
        match &slf.get().call {
            Some(call) if call.kind != CallKind::Instruction => Ok(Arguments::new(slf)),
            _ => Err(slf.get().missing("args")),
        }
    }

    /// When the event happened, in ns of CLOCK_MONOTONIC: read from the
    /// clock when a handler first asks, the same for every handler after.
    #[getter]
    fn timestamp(&self) -> u64 {
        self.now()
    }

    /// At a function's or system call's exit: ns since its entry (after
    /// its entry handlers) until this event.
    #[getter]
    fn duration(&self) -> PyResult<u64> {
        match self.call.as_ref().filter(|c| c.is_exit && c.kind != CallKind::Instruction).and_then(CallState::entered) {
            Some(entered) => Ok(self.now().saturating_sub(entered)),
            None => Err(self.missing("duration")),
        }
    }

    /// The registers (function and system-call probes).
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
        let sp = call.register(dr_sys::wrap::Register::Rsp)?;
        let caller = match &self.fields {
            Fields::Function(f) => Some(f.caller),
            _ => None,
        };
        // At a function's entry the caller's return address is at [rsp]; skip it.
        let from = if call.kind == CallKind::Function && !call.is_exit { sp + std::mem::size_of::<usize>() } else { sp };
        let pc = call.register(dr_sys::wrap::Register::Rip)?;
        Ok(scan_return_addresses(from, caller, pc))
    }

    /// `module!function+0xoff` for an address.
    #[staticmethod]
    fn symbolize(address: usize) -> String {
        crate::modules::symbolize(address)
    }

    /// The value the call returns (at exit), decoded by the prototype's
    /// return type; a system call's is the kernel's signed value (a
    /// negative errno on failure). Assign to change it.
    #[getter]
    fn retval<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let call = self.exit_call("retval")?;
        if call.kind == CallKind::Syscall {
            return Ok(syscall_result(py, call.retval_word()?));
        }
        let ty = self.return_type();
        let word = match ty {
            Some(ty @ (CType::Double | CType::Float | CType::LongDouble)) => call.retval_float(ty)?,
            Some(CType::Int { size: 8, .. }) => call.retval_wide()?,
            _ => call.retval_word()? as u64,
        };
        Ok(match ty {
            Some(ty) => scalar(py, ty, word),
            None => pyo3::types::PyInt::new(py, word).into_any(),
        })
    }

    fn set_retval(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let call = self.exit_call("retval")?;
        let ty = self.return_type();
        let word = encode(ty, value).map_err(|e| crate::args::naming_field(value.py(), "ctx.retval", e))?;
        match ty {
            Some(ty @ (CType::Double | CType::Float | CType::LongDouble)) => call.set_retval_float(ty, word),
            Some(CType::Int { size: 8, .. }) => call.set_retval_wide(word),
            _ => call.set_retval_word(word as usize),
        }
    }

    /// At a system call's exit: the error number if it failed, else 0.
    #[getter]
    fn errno(&self) -> PyResult<i64> {
        let call = self.exit_call("errno")?;
        if call.kind != CallKind::Syscall {
            return Err(self.missing("errno"));
        }
        let value = call.retval_word()? as isize;
        Ok(if (-4095..0).contains(&value) { -value as i64 } else { 0 })
    }

    /// At a memory read or write: the bytes of the access, changed
    /// (exactly `ctx.size` of them): what the instruction reads, or what
    /// stays in memory after it wrote.
    fn set_value(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let Fields::Memory(f) = &self.fields else { return Err(self.missing("value")) };
        self.during_event()?;
        if f.access == Access::Execute {
            return Err(PyAttributeError::new_err("ctx.value is read-only at memory_execute: an instruction's bytes are not changed there"));
        }
        let data: Vec<u8> = value
            .cast::<pyo3::types::PyBytes>()
            .map(|b| b.as_bytes().to_vec())
            .or_else(|_| value.cast::<pyo3::types::PyByteArray>().map(|b| b.to_vec()))
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("ctx.value: takes bytes, not {}", value.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
        if data.len() != f.size {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("ctx.value: the access is {} bytes, not {}", f.size, data.len())));
        }
        crate::memory::write_all(value.py(), f.address, &data)
    }

    /// At a branch: the way it goes when the handlers return (the flags
    /// stay as they are).
    fn set_taken(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let Fields::Branch(f) = &self.fields else { return Err(self.missing("taken")) };
        self.during_event()?;
        let taken = value.cast::<pyo3::types::PyBool>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!("ctx.taken: takes True or False, not {}", value.repr().map(|r| r.to_string()).unwrap_or_default()))
        })?;
        f.taken.store(taken.is_true(), Ordering::Relaxed);
        Ok(())
    }

    /// At a system call's entry: do not make it; it returns `retval`
    /// (a negative errno to fail: `ctx.skip(-errno.ENOENT)`).
    fn skip(&self, retval: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.call {
            Some(call) if call.kind == CallKind::Syscall && !call.is_exit => {
                call.skip(to_word(retval).map_err(|e| crate::args::naming_field(retval.py(), "ctx.skip()", e))?)
            }
            _ => Err(self.missing("skip")),
        }
    }

    /// Sets what an event lets its handlers change; every other field is
    /// read-only, and the error says which one is not.
    fn __setattr__(&self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match name {
            "retval" => self.set_retval(value),
            "value" => self.set_value(value),
            "taken" => self.set_taken(value),
            _ => Err(self.read_only(name)),
        }
    }

    fn __delattr__(&self, name: &str) -> PyResult<()> {
        Err(PyAttributeError::new_err(format!("ctx.{name} cannot be deleted")))
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let found = match &self.fields {
            Fields::Lifecycle(fields) => fields.iter().find(|(n, _)| *n == name).map(|(_, v)| Ok(v.into_pyobject(py)?)),
            Fields::Function(fields) => fields.get(py, name),
            Fields::Syscall(fields) => fields.get(py, name),
            Fields::Memory(fields) => fields.get(py, name),
            Fields::Branch(fields) => fields.get(py, name),
        };
        found.unwrap_or_else(|| Err(self.missing(name)))
    }

    fn __repr__(&self) -> String {
        let mut parts = vec![format!("pid={}", self.pid), format!("tid={}", self.tid)];
        match &self.fields {
            // Names as Python shows them: 'malloc', or None.
            Fields::Function(f) => parts.push(format!(
                "function={:#x} function_name={} module='{}' caller={:#x}",
                f.function,
                f.name.map_or("None".to_string(), |n| format!("'{n}'")),
                f.module,
                f.caller
            )),
            Fields::Syscall(f) => parts.push(format!(
                "syscall={} syscall_name='{}'",
                f.number,
                f.name.map_or(format!("syscall_{}", f.number), str::to_string)
            )),
            Fields::Memory(f) => parts.push(format!(
                "access='{}' address={:#x} size={} pc={:#x} function_name={} module='{}'",
                f.access.name(),
                f.address,
                f.size,
                f.pc,
                f.function_name.map_or("None".to_string(), |n| format!("'{n}'")),
                f.module
            )),
            Fields::Branch(f) => parts.push(format!(
                "pc={:#x} taken={} target={:#x} fallthrough={:#x} condition='{}' function_name={} module='{}'",
                f.pc,
                if f.taken() { "True" } else { "False" },
                f.target,
                f.fallthrough,
                f.condition,
                f.function_name.map_or("None".to_string(), |n| format!("'{n}'")),
                f.module
            )),
            Fields::Lifecycle(_) => {}
        }
        let lifecycle: &[(&str, FieldValue)] = match &self.fields {
            Fields::Lifecycle(fields) => fields,
            _ => &[],
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
    /// The `ctx` of an event of `event`'s kind in thread `tid` of process
    /// `pid`, with its fields and, for a call or an instruction, its state.
    pub fn new(event: &'static str, pid: u32, tid: u32, fields: Fields, call: Option<CallState>) -> HitContext {
        HitContext { event, pid, tid, fields, call, timestamp: OnceCell::new() }
    }

    /// The event's time (see `timestamp`).
    fn now(&self) -> u64 {
        *self.timestamp.get_or_init(crate::clock::monotonic_ns)
    }

    /// The names a handler can read on this event.
    fn field_names(&self) -> Vec<&'static str> {
        let mut names = vec!["event", "pid", "tid", "timestamp", "mem", "symbolize"];
        if let Some(call) = self.call.as_ref().filter(|c| c.kind == CallKind::Instruction) {
            let _ = call;
            names.extend(["regs", "backtrace"]);
        } else if let Some(call) = &self.call {
            names.extend(["args", "regs", "backtrace"]);
            if call.is_exit {
                names.extend(["retval", "duration"]);
            }
            if call.kind == CallKind::Syscall {
                names.push(if call.is_exit { "errno" } else { "skip" });
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
            Fields::Syscall(_) => names.extend(SyscallFields::NAMES),
            Fields::Branch(_) => names.extend(BranchFields::NAMES),
            Fields::Memory(f) => {
                names.extend(MemoryFields::NAMES);
                if f.old_value.is_none() {
                    names.retain(|n| *n != "old_value");
                }
            }
        }
        names
    }

    /// Ends the event for the handlers: afterwards `ctx` no longer reaches
    /// the call. Returns what the handlers left: the entry values as they
    /// changed them (if they were kept), a request to skip the call, the
    /// way a branch goes.
    pub fn finish(&self) -> Option<Finished> {
        let mut finished = self.call.as_ref().map(CallState::finish)?;
        if let Fields::Branch(f) = &self.fields {
            finished.taken = Some(f.taken());
        }
        Some(finished)
    }

    /// The prototype's return type, if one is known.
    fn return_type(&self) -> Option<&CType> {
        let call = self.call.as_ref()?;
        match call.kind {
            // A system call returns the kernel's signed word, whatever the
            // prototype says.
            CallKind::Syscall => Some(&SYSCALL_RESULT),
            CallKind::Function => call.signature.as_ref().map(|s| &s.prototype.ret),
            CallKind::Instruction => None,
        }
    }

    /// What this event's handlers may assign to.
    fn writable(&self) -> &'static [&'static str] {
        match (&self.fields, &self.call) {
            (Fields::Branch(_), _) => &["taken"],
            (Fields::Memory(f), _) if f.access != Access::Execute => &["value"],
            (Fields::Function(FunctionFields { unwound: Some(true), .. }), _) => &[],
            (_, Some(call)) if call.is_exit && call.kind != CallKind::Instruction => &["retval"],
            _ => &[],
        }
    }

    fn read_only(&self, name: &str) -> PyErr {
        if !self.field_names().contains(&name) {
            return self.missing(name);
        }
        let names = self.field_names();
        let mut can: Vec<String> = self.writable().iter().map(|n| format!("ctx.{n}")).collect();
        can.extend(names.contains(&"args").then(|| "ctx.args[i]".to_string()));
        can.extend(names.contains(&"regs").then(|| "ctx.regs.NAME".to_string()));
        let hint = match can.as_slice() {
            [] => String::new(),
            can => format!(" (a {} handler can set {})", self.event, can.join(", ")),
        };
        PyAttributeError::new_err(format!("ctx.{name} is read-only{hint}"))
    }

    /// An error once the event is over: a kept `ctx` changes nothing.
    fn during_event(&self) -> PyResult<()> {
        self.call.as_ref().map_or(Ok(()), |call| call.live().map(drop))
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
