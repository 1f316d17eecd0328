//! Whether each function, system-call, memory and branch probe matched
//! anything, so that a probe that matched nothing in the whole run (a
//! misspelt function name, a library never loaded) gets one warning at
//! the end: `[!] probe malloc_entry never matched: no function named 'mallo'`.
//!
//! A function or system-call probe matches when a function or system call
//! its predicate accepts is set up (called or not); a memory or branch
//! probe, when its handler is entered for an event. A memory probe whose
//! predicate follows a symbol no module defined when the script ran
//! (`memory_address >> symbol_range("tabel")`) matches also once a module
//! defining the symbol loads, and says so if none did.
//!
//! Each process tells the launcher, through the report pipe, which probes
//! could match only what some module or the system-call table holds, and
//! which of them did; the launcher warns once for the whole run. Under a
//! plain `drrun` there is no launcher: the first process warns at its exit
//! about what it saw itself.

use once_cell::sync::OnceCell;
use ptap_options::inherited::Report;
use ptap_runtime::output;
use ptap_runtime::predicate::{CompareOp, Predicate, Value, Variable};
use ptap_runtime::probe::{Probe, ProbeKind};
use ptap_runtime::symbol_sets;
use std::sync::atomic::{AtomicBool, Ordering};

struct Reports {
    /// Per probe: `None` when it needs no report (lifecycle probes), else
    /// whether it matched something in this process.
    matched: Vec<Option<AtomicBool>>,
    warnings: Vec<String>,
    /// The process that warns at its exit (no launcher to gather reports):
    /// the first of the trace, not its forks.
    warning_pid: Option<u32>,
}

static REPORTS: OnceCell<Reports> = OnceCell::new();

/// Call once the probes are known. `first_process` is true in the first
/// process of the trace (not a program a traced process executed, nor a
/// fork, which never runs this).
pub fn start(probes: &[Probe], first_process: bool) {
    let mut matched = Vec::with_capacity(probes.len());
    let mut warnings = Vec::with_capacity(probes.len());
    for (index, probe) in probes.iter().enumerate() {
        let reason = match matched_against(probe.kind) {
            Some(what @ ("function" | "system call")) => Some(reason(what, &probe.predicate, &probe.predicate_text)),
            Some(what) => followed_symbols(&probe.predicate).or_else(|| Some(reason(what, &probe.predicate, &probe.predicate_text))),
            None => None,
        };
        let Some(reason) = reason else {
            matched.push(None);
            warnings.push(String::new());
            continue;
        };
        let warning = format!("probe {} never matched: {reason}", probe.name);
        output::report(&Report::MayNeverMatch { index, warning: warning.clone() });
        matched.push(Some(AtomicBool::new(false)));
        warnings.push(warning);
    }
    let warning_pid = (first_process && !output::has_report_pipe()).then(dr_sys::process::pid);
    let _ = REPORTS.set(Reports { matched, warnings, warning_pid });
}

/// Probe `index` matched a function or system call, or had an event.
pub fn matched(index: usize) {
    let Some(flag) = REPORTS.get().and_then(|r| r.matched.get(index)?.as_ref()) else { return };
    // Per event for memory and branch probes: a load, no locked swap, once
    // matched.
    if !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed) {
        output::report(&Report::Matched { index });
    }
}

/// A module defining a followed symbol loaded: the probes whose
/// predicates test the set `set` that follows it have something to match.
pub fn symbol_loaded(probes: &[Probe], set: u64) {
    for (index, probe) in probes.iter().enumerate() {
        if probe.kind.is_memory() && probe.predicate.sets().contains(&set) {
            matched(index);
        }
    }
}

/// At process exit: the warnings, when this process is the one to give them.
pub fn warn_at_exit() {
    let Some(reports) = REPORTS.get().filter(|r| r.warning_pid == Some(dr_sys::process::pid())) else { return };
    for (flag, warning) in reports.matched.iter().zip(&reports.warnings) {
        if flag.as_ref().is_some_and(|f| !f.load(Ordering::Relaxed)) {
            output::message(&format!("[!] {warning}"));
        }
    }
}

/// What a probe kind's predicate is matched against: functions and
/// system calls when code is set up, the others' events as they happen.
fn matched_against(kind: ProbeKind) -> Option<&'static str> {
    match kind {
        ProbeKind::FunctionEntry | ProbeKind::FunctionExit => Some("function"),
        ProbeKind::SyscallEntry | ProbeKind::SyscallExit => Some("system call"),
        ProbeKind::MemoryRead => Some("memory read"),
        ProbeKind::MemoryWrite => Some("memory write"),
        ProbeKind::MemoryExecute => Some("instruction executed"),
        ProbeKind::Branch => Some("conditional branch"),
        _ => None,
    }
}

/// For a predicate that can match only addresses of symbols no module
/// defined yet, the reason it matches nothing if none of them ever loads.
/// (A predicate that also accepts other addresses may match without them.)
fn followed_symbols(predicate: &Predicate) -> Option<String> {
    let footprint = predicate.address_footprint().filter(|f| f.ranges.is_empty() && !f.sets.is_empty())?;
    let names: Option<Vec<String>> = footprint.sets.into_iter().map(|id| symbol_sets::followed_by(id).map(|n| format!("'{n}'"))).collect();
    Some(format!("no module that loaded defines {}", names?.join(" or ")))
}

/// Why nothing matched, in the predicate's own words: the name it asked
/// for when it is a condition on the name alone, else its text.
fn reason(what: &str, predicate: &Predicate, text: &str) -> String {
    // A function or system call is named itself; an instruction by the
    // function it is in.
    let (name_variable, named, name_matched) = match what {
        "function" => (Variable::FunctionName, format!("no {what} named"), format!("no {what} name matched")),
        "system call" => (Variable::SyscallName, format!("no {what} named"), format!("no {what} name matched")),
        _ => (Variable::FunctionName, format!("no {what} in a function named"), format!("no {what} in a function matching")),
    };
    let quoted = |values: &[Value]| {
        values.iter().filter_map(|v| if let Value::Str(s) = v { Some(format!("'{s}'")) } else { None }).collect::<Vec<_>>().join(", ")
    };
    match predicate {
        Predicate::Compare(v, CompareOp::Eq, value @ Value::Str(_)) if *v == name_variable => {
            format!("{named} {}", quoted(std::slice::from_ref(value)))
        }
        Predicate::OneOf(v, values) if *v == name_variable => format!("{named} {}", quoted(values)),
        Predicate::Like(v, glob) if *v == name_variable => format!("{name_matched} '{glob}'"),
        _ => format!("no {what} matched {text}"),
    }
}
