//! Address sets that a symbol fills as modules load: what `symbol_range(name)`
//! and `symbol(name)` return at a script's top level when no module loaded
//! yet defines `name` (a global of a library the program loads later, or
//! opens with `dlopen`). The set starts empty; when a module that defines
//! `name` loads, its ranges join the set before any of the module's code
//! runs, and they leave it when the module unloads, so a predicate
//! `memory_address >> symbol_range("table")` watches the library's table
//! from its first access, and no stale range outlives a `dlclose`.

use crate::address_sets;
use crate::modules::LoadedModule;
use parking_lot::Mutex;

/// What a set holds of each definition of its symbol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Extent {
    /// `range(start, start + size)`, as `symbol_range()` gives.
    Whole,
    /// The first byte, as `symbol()` gives (the address where it starts).
    Start,
}

struct SymbolSet {
    id: u64,
    name: String,
    extent: Extent,
    /// The ranges each loaded module put in, by the module's start.
    added: Vec<(usize, Vec<usize>)>,
}

static SYMBOL_SETS: Mutex<Vec<SymbolSet>> = Mutex::new(Vec::new());

/// Makes set `id` hold the definitions of `name` in every module that loads from now on.
pub fn follow(id: u64, name: &str, extent: Extent) {
    SYMBOL_SETS.lock().push(SymbolSet { id, name: name.to_string(), extent, added: Vec::new() });
}

/// The symbol set `id` follows, if it follows one.
pub fn followed_by(id: u64) -> Option<String> {
    SYMBOL_SETS.lock().iter().find(|s| s.id == id).map(|s| s.name.clone())
}

/// A module loaded: puts its definitions of each followed symbol in that
/// symbol's set. Returns the ids of the sets that gained ranges.
pub fn module_loaded(module: &LoadedModule) -> Vec<u64> {
    let mut sets = SYMBOL_SETS.lock();
    if sets.is_empty() {
        return Vec::new();
    }
    let symbols = module.symbols();
    let mut filled = Vec::new();
    for set in sets.iter_mut() {
        let ranges = symbols.ranges_of(&set.name);
        if ranges.is_empty() {
            continue;
        }
        let mut starts = Vec::with_capacity(ranges.len());
        for (offset, size) in ranges {
            let start = module.start + offset;
            let size = match set.extent {
                Extent::Whole => size.max(1),
                Extent::Start => 1,
            };
            address_sets::add(set.id, start, size);
            starts.push(start);
        }
        set.added.retain(|(at, _)| *at != module.start);
        set.added.push((module.start, starts));
        filled.push(set.id);
    }
    filled
}

/// The module loaded at `start` unloaded: its ranges leave every set.
pub fn module_unloaded(start: usize) {
    for set in SYMBOL_SETS.lock().iter_mut() {
        let Some(i) = set.added.iter().position(|(at, _)| *at == start) else { continue };
        for range_start in set.added.swap_remove(i).1 {
            address_sets::discard(set.id, range_start);
        }
    }
}
