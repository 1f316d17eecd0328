//! The call an event belongs to (a function's or a system call's), as its
//! `ctx` reaches it: argument words, return value and registers, live
//! while the handlers run, and the argument values the call was entered
//! with, kept for its exit event.

use crate::prototype::{CType, Location, Signature};
use dr_sys::syscall::SyscallRegisters;
use dr_sys::wrap::{Register, WrapContext};
use smallvec::SmallVec;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Integer argument words kept for the exit of a function with no
/// prototype (SysV x86-64: rdi, rsi, rdx, rcx, r8, r9).
pub const KEPT_ARGS: usize = 6;
/// Longest `char *` argument decoded.
pub const MAX_STRING: usize = 4096;

/// What kind of call, with how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A function wrapped by drwrap: `live` is drwrap's context.
    Function,
    /// A system call: `live` points to the registers of the clean call at
    /// it.
    Syscall,
    /// One instruction (a memory access): `live` points to the registers
    /// of the clean call before or after it; there are no arguments.
    Instruction,
}

/// The arguments a call was entered with, after the entry handlers
/// changed them: one word per argument (the bits of a floating one), and
/// for `char *` arguments the string they pointed to at entry.
#[derive(Debug, Clone, Default)]
pub struct EntryValues {
    /// Kept inline for up to six arguments (a system call's, or a
    /// function's in registers): allocating under DynamoRIO takes a lock in
    /// its heap, ~40 ns per event. (Six, not eight, keeps `Finished` under
    /// 128 bytes, which the compiler moves inline rather than by memcpy.)
    pub words: SmallVec<[u64; 6]>,
    pub strings: Vec<Option<Vec<u8>>>,
}

impl EntryValues {
    /// Plain words (a system call's parameters, a function's registers).
    pub fn of_words(words: &[usize]) -> EntryValues {
        EntryValues { words: words.iter().map(|&w| w as u64).collect(), strings: Vec::new() }
    }

    /// Reads a function's arguments at its entry, for its exit event:
    /// every argument the prototype places, and the strings its `char *`
    /// arguments point to (the call may change them); without a prototype,
    /// the six integer argument registers.
    ///
    /// # Safety
    /// `wc` must be the live context of a drwrap entry callback.
    pub unsafe fn capture(wc: WrapContext, signature: Option<&Signature>) -> EntryValues {
        let Some(signature) = signature else {
            return EntryValues::of_words(&dr_sys::wrap::register_args(wc));
        };
        let mut values = EntryValues::default();
        for (i, location) in signature.locations.iter().enumerate() {
            let word = function_word(wc, location).unwrap_or(0);
            values.words.push(word);
            let string = (signature.prototype.params[i] == CType::Str && word != 0)
                .then(|| crate::memory::c_string(word as usize, MAX_STRING).ok())
                .flatten();
            values.strings.push(string);
        }
        values
    }
}

/// The word at `location` in a function's entry callback.
///
/// # Safety
/// `wc` must be the live context of a drwrap entry callback.
unsafe fn function_word(wc: WrapContext, location: &Location) -> Option<u64> {
    match location {
        Location::Word(n) => Some(dr_sys::wrap::arg(wc, *n) as u64),
        Location::WordPair(n) => Some((dr_sys::wrap::arg(wc, *n) as u32 as u64) | ((dr_sys::wrap::arg(wc, *n + 1) as u32 as u64) << 32)),
        Location::Vector(n) => dr_sys::wrap::xmm(wc, *n),
        Location::Unknown(_) => None,
    }
}

/// The registers a system call's live context points to.
///
/// # Safety
/// `live` must be the live context of a `CallKind::Syscall` state: the
/// registers of a clean call still running, which nothing else touches
/// while its handlers run (they run one at a time, holding the GIL).
/// (The same holds of a `CallKind::Instruction` state.)
unsafe fn syscall_registers<'a>(live: usize) -> &'a mut SyscallRegisters {
    &mut *(live as *mut SyscallRegisters)
}

/// What the handlers left when they returned.
pub struct Finished {
    /// The entry values after any change, when they were kept.
    pub entry: Option<EntryValues>,
    /// A system call's entry handler asked to skip it, returning this.
    pub skip: Option<usize>,
    /// The result of a skipped system call after its exit handlers.
    pub result: Option<usize>,
    /// At a branch: the way it goes, as the handlers left it.
    pub taken: Option<bool>,
}

/// One call, as the handlers of one of its events see it.
pub struct CallState {
    pub kind: CallKind,
    /// drwrap's per-call context or the system call's registers; 0 once
    /// the handlers have returned (both die with the callback).
    live: AtomicUsize,
    pub is_exit: bool,
    /// The prototype, if one is known.
    pub signature: Option<&'static Signature>,
    /// What the handlers may change.
    state: Changes,
    /// A handler wrote RIP: continue there when the handlers return.
    redirect: AtomicBool,
    /// When the call was entered (CLOCK_MONOTONIC, ns; 0 if not known):
    /// an exit event's `ctx.duration` counts from here.
    entered: u64,
}

/// The parts of a call its handlers may change, guarded by the GIL: the
/// handlers, the `ctx` methods they call and the dispatcher's `finish` all
/// run attached to the interpreter, one at a time (a thread a handler
/// starts is refused), and the state is not shared before the event's
/// `ctx` exists. (A mutex here cost two locked instructions per event.)
struct Changes(UnsafeCell<CallChanges>);

// SAFETY: every access is made attached to the interpreter (see above),
// which serializes them.
unsafe impl Sync for Changes {}

impl Changes {
    /// Runs `f` on the changes; `f` must not call into Python.
    fn with<R>(&self, f: impl FnOnce(&mut CallChanges) -> R) -> R {
        // SAFETY: accesses are serialized (see the type), and `f` cannot
        // reach this state again while it runs.
        f(unsafe { &mut *self.0.get() })
    }
}

#[derive(Default)]
struct CallChanges {
    /// The entry values, if they were read at entry (always for an exit
    /// event); an entry handler alone reads them live, which is cheaper.
    entry: Option<EntryValues>,
    /// `ctx.skip(retval)` was called at a system call's entry.
    skip: Option<usize>,
    /// The result of a system call that was skipped, which its exit
    /// handlers see as its return value (the kernel gave none).
    result: Option<usize>,
}

impl CallState {
    /// A function call, at entry (`entry` read already if an exit probe
    /// will need it) or at exit.
    pub fn function(wc: WrapContext, is_exit: bool, signature: Option<&'static Signature>, entry: Option<EntryValues>) -> CallState {
        CallState::new(CallKind::Function, wc as usize, is_exit, signature, entry)
    }

    /// A system call, at entry (parameters read live) or at exit (with the
    /// parameters it was made with as `entry`). `regs` must outlive the
    /// handlers, which reach it through this state alone while they run.
    pub fn syscall(regs: &mut SyscallRegisters, is_exit: bool, signature: Option<&'static Signature>, entry: Option<EntryValues>) -> CallState {
        CallState::new(CallKind::Syscall, regs as *mut SyscallRegisters as usize, is_exit, signature, entry)
    }

    /// One instruction's event, with the registers of its clean call.
    pub fn instruction(regs: &mut SyscallRegisters) -> CallState {
        CallState::new(CallKind::Instruction, regs as *mut SyscallRegisters as usize, false, None, None)
    }

    /// The exit of a system call an entry handler skipped, returning
    /// `result`.
    pub fn skipped_syscall(regs: &mut SyscallRegisters, signature: Option<&'static Signature>, entry: EntryValues, result: usize) -> CallState {
        let call = CallState::syscall(regs, true, signature, Some(entry));
        call.state.with(|c| c.result = Some(result));
        call
    }

    fn new(kind: CallKind, live: usize, is_exit: bool, signature: Option<&'static Signature>, entry: Option<EntryValues>) -> CallState {
        CallState {
            kind,
            live: AtomicUsize::new(live),
            is_exit,
            signature,
            state: Changes(UnsafeCell::new(CallChanges { entry, ..Default::default() })),
            redirect: AtomicBool::new(false),
            entered: 0,
        }
    }

    /// The same call, entered at `entered` (see [`crate::clock`]).
    pub fn entered_at(self, entered: u64) -> CallState {
        CallState { entered, ..self }
    }

    /// When the call was entered, if that is known (at an exit).
    pub fn entered(&self) -> Option<u64> {
        (self.entered != 0).then_some(self.entered)
    }

    /// Ends the handlers' access to the call, redirecting the thread if a
    /// handler wrote RIP.
    pub fn finish(&self) -> Finished {
        // Handlers and this run with the GIL held, one at a time: a plain
        // load and store will do (a swap is a locked instruction).
        let live = self.live.load(Ordering::Acquire);
        self.live.store(0, Ordering::Release);
        if live != 0 && self.kind == CallKind::Function && self.redirect.load(Ordering::Relaxed) {
            // SAFETY: the callback that owns the context is still running.
            unsafe { dr_sys::wrap::redirect(live as WrapContext) };
        }
        let changes = self.state.with(std::mem::take);
        Finished { entry: changes.entry, skip: changes.skip, result: changes.result, taken: None }
    }

    /// The live context, or an error once the event is over.
    pub(crate) fn live(&self) -> PyResult<usize> {
        match self.live.load(Ordering::Acquire) {
            0 => Err(PyRuntimeError::new_err("this ctx belongs to an event that is over: keep values, not ctx")),
            live => Ok(live),
        }
    }

    /// Whether the call's live context is gone (an unwound call's exit).
    pub fn is_over(&self) -> bool {
        self.live.load(Ordering::Acquire) == 0
    }

    /// Where argument `index` is: by the prototype, or else integer word
    /// `index` of the calling convention.
    pub fn location(&self, index: usize) -> PyResult<Location> {
        match &self.signature {
            Some(signature) => signature.location(index).ok_or_else(|| {
                let p = &signature.prototype;
                PyIndexError::new_err(format!("{} takes {} argument(s); there is no argument {index}", p.name, p.params.len()))
            }),
            None => Ok(Location::Word(index)),
        }
    }

    /// Argument `index` as the word (or floating-point bits) passed.
    pub fn word(&self, index: usize) -> PyResult<u64> {
        let kept = self.state.with(|c| c.entry.as_ref().map(|entry| (entry.words.get(index).copied(), entry.words.len())));
        match kept {
            Some((Some(word), _)) => return Ok(word),
            // At entry, what was not kept for the exit is read live.
            Some((None, kept)) if self.is_exit => {
                return Err(PyIndexError::new_err(format!("only the first {kept} argument(s) are kept for the exit event")))
            }
            _ => {}
        }
        let location = self.location(index)?;
        let live = self.live()?;
        // SAFETY: the context is live (an entry callback is running).
        let word = unsafe {
            match self.kind {
                CallKind::Function => function_word(live as WrapContext, &location),
                CallKind::Syscall => match location {
                    Location::Word(n) => syscall_registers(live).param(n).map(|w| w as u64),
                    _ => None,
                },
                CallKind::Instruction => None,
            }
        };
        word.ok_or_else(|| match location {
            Location::Unknown(reason) => PyTypeError::new_err(format!("argument {index} has no known place: {reason}")),
            _ => PyRuntimeError::new_err(format!("argument {index} cannot be read here")),
        })
    }

    /// The string a `char *` argument pointed to at entry, if it was kept.
    pub fn entry_string(&self, index: usize) -> Option<Vec<u8>> {
        self.state.with(|c| c.entry.as_ref()?.strings.get(index).cloned().flatten())
    }

    /// `ctx.args[index] = word` at entry.
    pub fn set_word(&self, index: usize, word: u64) -> PyResult<()> {
        if self.is_exit {
            return Err(PyTypeError::new_err("arguments can be changed at entry only"));
        }
        let location = self.location(index)?;
        let live = self.live()?;
        // SAFETY: the context is live (an entry callback is running).
        let done = unsafe {
            match (self.kind, &location) {
                (CallKind::Function, Location::Word(n)) => dr_sys::wrap::set_arg(live as WrapContext, *n, word as usize),
                (CallKind::Function, Location::WordPair(n)) => {
                    dr_sys::wrap::set_arg(live as WrapContext, *n, word as u32 as usize)
                        && dr_sys::wrap::set_arg(live as WrapContext, *n + 1, (word >> 32) as u32 as usize)
                }
                (CallKind::Function, Location::Vector(n)) => dr_sys::wrap::set_xmm(live as WrapContext, *n, word),
                (CallKind::Syscall, Location::Word(n)) => syscall_registers(live).set_param(*n, word as usize),
                _ => false,
            }
        };
        if !done {
            return Err(PyIndexError::new_err(format!("cannot set argument {index}")));
        }
        self.state.with(|c| {
            if let Some(entry) = c.entry.as_mut() {
                if let Some(w) = entry.words.get_mut(index) {
                    *w = word;
                }
                // The string a changed pointer points to is read anew.
                if let Some(s) = entry.strings.get_mut(index) {
                    *s = None;
                }
            }
        });
        Ok(())
    }

    /// The raw return value (a system call's is the kernel's, negative
    /// errno on failure).
    pub fn retval_word(&self) -> PyResult<usize> {
        let live = self.live()?;
        if let Some(result) = self.state.with(|c| c.result) {
            return Ok(result);
        }
        // SAFETY: the context is live (an exit callback is running).
        Ok(unsafe {
            match self.kind {
                CallKind::Function => dr_sys::wrap::retval(live as WrapContext),
                CallKind::Syscall | CallKind::Instruction => syscall_registers(live).result(),
            }
        })
    }

    /// Changes what the caller receives.
    pub fn set_retval_word(&self, word: usize) -> PyResult<()> {
        let live = self.live()?;
        if self.state.with(|c| c.result.as_mut().map(|result| *result = word).is_some()) {
            return Ok(());
        }
        // SAFETY: as for retval_word.
        unsafe {
            match self.kind {
                CallKind::Function => {
                    dr_sys::wrap::set_retval(live as WrapContext, word);
                }
                CallKind::Syscall | CallKind::Instruction => syscall_registers(live).set_result(word),
            }
        }
        Ok(())
    }

    /// A 64-bit integer return value: RAX, or EDX:EAX on 32-bit x86.
    pub fn retval_wide(&self) -> PyResult<u64> {
        let low = self.retval_word()? as u64;
        if cfg!(target_arch = "x86_64") || self.kind != CallKind::Function {
            return Ok(low);
        }
        Ok(low | (self.register(Register::Rdx)? as u64) << 32)
    }

    /// Changes a 64-bit integer return value.
    pub fn set_retval_wide(&self, value: u64) -> PyResult<()> {
        self.set_retval_word(value as usize)?;
        if cfg!(target_arch = "x86_64") || self.kind != CallKind::Function {
            return Ok(());
        }
        self.set_register("EDX", Register::Rdx, (value >> 32) as usize)
    }

    /// The bits of a `float`, `double` or `long double` return value
    /// (`ty`; a `long double` as the nearest double): in xmm0 on x86-64,
    /// but a `long double` in x87's st0, where 32-bit x86 returns all three.
    pub fn retval_float(&self, ty: &CType) -> PyResult<u64> {
        let live = self.live()?;
        if cfg!(target_arch = "x86_64") && *ty != CType::LongDouble {
            // SAFETY: the context is live (an exit callback is running).
            return unsafe { dr_sys::wrap::xmm(live as WrapContext, 0) }.ok_or_else(|| PyRuntimeError::new_err("xmm0 cannot be read here"));
        }
        let value = crate::fpu::st0()
            .map_err(PyRuntimeError::new_err)?
            .ok_or_else(|| PyRuntimeError::new_err("the x87 stack is empty: the function returned no floating-point value in st0"))?;
        Ok(match ty {
            CType::Float => u64::from((value as f32).to_bits()),
            _ => value.to_bits(),
        })
    }

    /// Changes a floating-point return value (`bits` as
    /// [`Self::retval_float`] gives them).
    pub fn set_retval_float(&self, ty: &CType, bits: u64) -> PyResult<()> {
        let live = self.live()?;
        if cfg!(target_arch = "x86_64") && *ty != CType::LongDouble {
            // SAFETY: as for retval_float.
            return match unsafe { dr_sys::wrap::set_xmm(live as WrapContext, 0, bits) } {
                true => Ok(()),
                false => Err(PyRuntimeError::new_err("xmm0 cannot be written here")),
            };
        }
        let value = match ty {
            CType::Float => f64::from(f32::from_bits(bits as u32)),
            _ => f64::from_bits(bits),
        };
        crate::fpu::set_st0(value).map_err(PyRuntimeError::new_err)
    }

    /// A register of the thread.
    pub fn register(&self, reg: Register) -> PyResult<usize> {
        let live = self.live()?;
        // SAFETY: the context is live (a callback is running).
        let value = unsafe {
            match self.kind {
                CallKind::Function => dr_sys::wrap::register(live as WrapContext, reg),
                CallKind::Syscall | CallKind::Instruction => Some(syscall_registers(live).register(reg)),
            }
        };
        value.ok_or_else(|| PyRuntimeError::new_err("registers are not available here"))
    }

    /// Writes a register; writing RIP at a function's exit redirects the
    /// thread when the handlers return.
    pub fn set_register(&self, name: &str, reg: Register, value: usize) -> PyResult<()> {
        if reg == Register::Rip {
            match self.kind {
                CallKind::Syscall => return Err(PyTypeError::new_err(format!("{name} cannot be written at a system call"))),
                CallKind::Instruction => {
                    return Err(PyTypeError::new_err(format!("{name} cannot be written at a memory or branch event (a branch goes where ctx.taken says)")))
                }
                CallKind::Function if !self.is_exit => {
                    return Err(PyTypeError::new_err(format!("{name} can be written at function_exit only (drwrap cannot redirect at entry)")))
                }
                CallKind::Function => {}
            }
        }
        let live = self.live()?;
        // SAFETY: the context is live (a callback is running).
        let done = unsafe {
            match self.kind {
                CallKind::Function => dr_sys::wrap::set_register(live as WrapContext, reg, value),
                CallKind::Syscall | CallKind::Instruction => syscall_registers(live).set_register(reg, value),
            }
        };
        if !done {
            return Err(PyRuntimeError::new_err(format!("cannot set {name} here")));
        }
        if reg == Register::Rip {
            self.redirect.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `ctx.skip(retval)` at a system call's entry.
    pub fn skip(&self, retval: usize) -> PyResult<()> {
        if self.kind != CallKind::Syscall || self.is_exit {
            return Err(PyTypeError::new_err("skip() is for syscall_entry only"));
        }
        self.live()?;
        self.state.with(|c| c.skip = Some(retval));
        Ok(())
    }
}
