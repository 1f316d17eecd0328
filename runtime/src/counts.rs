//! `count=` probes: events counted by key in native code, with no handler
//! and no Python per event (`function_entry(pred, count="function")`).
//!
//! The dispatcher ([`crate::dispatch::call_handlers_with`]) adds one to a
//! probe's counter for the key its event has, before (and without, when
//! only such probes matched) entering Python. `ptap.aggregations`'s
//! `NativeCount` reads the counters through `_ptap.native_counts`, and
//! prints them at exit as `count()` prints. A forked child's start empty.

use crate::context::{Fields, HitContext};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a `count=` probe counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountKey {
    /// The function's name (its address without one); at memory and
    /// branch events, the function holding the instruction.
    Function,
    /// The return address of a function call.
    Caller,
    /// The thread's id.
    Thread,
    /// The system call's name (`syscall_N` outside the table).
    Syscall,
    /// The module of the function or instruction.
    Module,
}

impl CountKey {
    pub fn from_name(name: &str) -> Option<CountKey> {
        Some(match name {
            "function" => CountKey::Function,
            "caller" => CountKey::Caller,
            "thread" => CountKey::Thread,
            "syscall" => CountKey::Syscall,
            "module" => CountKey::Module,
            _ => return None,
        })
    }
}

/// One key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyValue {
    Name(&'static str),
    Number(u64),
    /// The event has no such key (an instruction outside any function).
    None,
}

/// Every counter: (probe index, key) → its events. Counters are leaked,
/// never freed, so that the threads' caches ([`RECENT`]) never point at
/// a freed one; a fork zeroes them.
static COUNTERS: Lazy<Mutex<HashMap<(usize, KeyValue), &'static AtomicU64>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// How many (probe, key) pairs each thread remembers the counter of.
const RECENT_SLOTS: usize = 4;

type Recent = [Option<(usize, KeyValue, &'static AtomicU64)>; RECENT_SLOTS];

thread_local! {
    /// The counters this thread counted into last: the usual event finds
    /// its counter here, with no lock and no hashing. (Plain data: no
    /// destructor, which would crash under DynamoRIO's private libc.)
    static RECENT: Cell<Recent> = const { Cell::new([None; RECENT_SLOTS]) };
}

/// The key `key` of the event `ctx`.
pub fn key_of(key: CountKey, ctx: &HitContext) -> KeyValue {
    let name_or = |name: Option<&'static str>, number: usize| name.map_or(KeyValue::Number(number as u64), KeyValue::Name);
    match (key, &ctx.fields) {
        (CountKey::Thread, _) => KeyValue::Number(ctx.tid as u64),
        (CountKey::Function, Fields::Function(f)) => name_or(f.name, f.function),
        (CountKey::Function, Fields::Memory(f)) => f.function_name.map_or(KeyValue::None, KeyValue::Name),
        (CountKey::Function, Fields::Branch(f)) => f.function_name.map_or(KeyValue::None, KeyValue::Name),
        (CountKey::Caller, Fields::Function(f)) => KeyValue::Number(f.caller as u64),
        (CountKey::Syscall, Fields::Syscall(f)) => name_or(f.name, f.number),
        (CountKey::Module, Fields::Function(f)) => KeyValue::Name(f.module),
        (CountKey::Module, Fields::Memory(f)) => KeyValue::Name(f.module),
        (CountKey::Module, Fields::Branch(f)) => KeyValue::Name(f.module),
        _ => KeyValue::None,
    }
}

/// Counts one event of probe `probe` under `key`.
pub fn add(probe: usize, key: KeyValue) {
    counter(probe, key).fetch_add(1, Ordering::Relaxed);
}

/// The counter of (`probe`, `key`): from the thread's cache, else from
/// the table (made there the first time), then cached.
fn counter(probe: usize, key: KeyValue) -> &'static AtomicU64 {
    let mut recent = RECENT.get();
    if let Some(found) = recent.iter().flatten().find(|(p, k, _)| *p == probe && *k == key) {
        return found.2;
    }
    let found = counter_for(probe, key);
    recent.rotate_right(1);
    recent[0] = Some((probe, key, found));
    RECENT.set(recent);
    found
}

/// The counter of (`probe`, `key`), made the first time: for the client's
/// inline increments, which the code cache makes with no call at all.
pub fn counter_for(probe: usize, key: KeyValue) -> &'static AtomicU64 {
    COUNTERS.lock().entry((probe, key)).or_insert_with(|| Box::leak(Box::new(AtomicU64::new(0))))
}

/// The counts of probe `probe`, by key (keys never counted left out).
pub fn of_probe(probe: usize) -> Vec<(KeyValue, u64)> {
    let counters = COUNTERS.lock();
    counters
        .iter()
        .filter(|((p, _), _)| *p == probe)
        .map(|((_, k), n)| (*k, n.load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// In a forked child: every count starts at zero.
pub fn forget() {
    for counter in COUNTERS.lock().values() {
        counter.store(0, Ordering::Relaxed);
    }
}
