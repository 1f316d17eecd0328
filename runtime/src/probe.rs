//! The probes a script registered, as the Rust side holds them: kind,
//! native predicate, the handler to call and its error count.

use crate::predicate::Predicate;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// The probe kinds of the contract (`docs/scripts.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    FunctionEntry,
    FunctionExit,
    SyscallEntry,
    SyscallExit,
    MemoryRead,
    MemoryWrite,
    MemoryExecute,
    Branch,
    ProcessExit,
    ThreadStart,
    ThreadExit,
    ModuleLoad,
}

impl ProbeKind {
    /// Every kind, in banner order.
    pub const ALL: [ProbeKind; 12] = [
        ProbeKind::FunctionEntry,
        ProbeKind::FunctionExit,
        ProbeKind::SyscallEntry,
        ProbeKind::SyscallExit,
        ProbeKind::MemoryRead,
        ProbeKind::MemoryWrite,
        ProbeKind::MemoryExecute,
        ProbeKind::Branch,
        ProbeKind::ModuleLoad,
        ProbeKind::ThreadStart,
        ProbeKind::ThreadExit,
        ProbeKind::ProcessExit,
    ];

    /// A memory read, write or execute probe.
    pub fn is_memory(self) -> bool {
        matches!(self, ProbeKind::MemoryRead | ProbeKind::MemoryWrite | ProbeKind::MemoryExecute)
    }

    /// The name in scripts and in `ctx.event`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::FunctionEntry => "function_entry",
            ProbeKind::FunctionExit => "function_exit",
            ProbeKind::SyscallEntry => "syscall_entry",
            ProbeKind::SyscallExit => "syscall_exit",
            ProbeKind::MemoryRead => "memory_read",
            ProbeKind::MemoryWrite => "memory_write",
            ProbeKind::MemoryExecute => "memory_execute",
            ProbeKind::Branch => "branch",
            ProbeKind::ProcessExit => "process_exit",
            ProbeKind::ThreadStart => "thread_start",
            ProbeKind::ThreadExit => "thread_exit",
            ProbeKind::ModuleLoad => "module_load",
        }
    }

    pub fn from_name(name: &str) -> Option<ProbeKind> {
        ProbeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The dotted form the banner prints: `function.entry`.
    pub fn banner_name(self) -> String {
        self.name().replacen('_', ".", 1)
    }
}

/// One registered probe.
pub struct Probe {
    pub kind: ProbeKind,
    pub predicate: Predicate,
    /// The predicate as the script's author reads it: `(module.name like "libc*")`.
    pub predicate_text: String,
    /// The handler's qualified name.
    pub name: String,
    pub handler: Py<PyAny>,
    /// Branch probes: one event per direction of each branch.
    pub once: bool,
    /// `count=`: the probe counts its events by this key, natively, and
    /// has no handler.
    pub count: Option<crate::counts::CountKey>,
    /// Its place in the script's list of probes (the key of its counts).
    pub index: usize,
    errors: AtomicU64,
}

impl Probe {
    /// Reads a `ptap.probes.Probe`, the script's `index`-th.
    pub fn from_python(probe: &Bound<'_, PyAny>, index: usize) -> PyResult<Probe> {
        let kind_name: String = probe.getattr("kind")?.extract()?;
        let kind = ProbeKind::from_name(&kind_name)
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown probe kind {kind_name}")))?;
        let predicate = probe.getattr("predicate")?;
        Ok(Probe {
            kind,
            predicate: Predicate::from_data(&predicate.call_method0("to_data")?)?,
            predicate_text: predicate.str()?.extract()?,
            name: probe.getattr("name")?.extract()?,
            handler: probe.getattr("handler")?.unbind(),
            once: probe.getattr("once")?.extract()?,
            count: match probe.getattr("count")?.extract::<Option<String>>()? {
                None => None,
                Some(key) => Some(crate::counts::CountKey::from_name(&key).ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown count key {key}")))?),
            },
            index,
            errors: AtomicU64::new(0),
        })
    }

    /// Counts one exception from the handler; true for the first.
    pub fn count_error(&self) -> bool {
        self.errors.fetch_add(1, Ordering::Relaxed) == 0
    }

    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
