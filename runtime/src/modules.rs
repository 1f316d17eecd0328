//! The target's loaded modules with their symbol tables: what
//! `ctx.symbolize`, `ctx.backtrace` and the script helpers `symbol()` and
//! `module()` look addresses and names up in. The client adds each module
//! at load and removes it at unload.

use crate::symbols::SymbolTable;
use parking_lot::RwLock;
use std::sync::Arc;

/// One loaded module.
#[derive(Clone)]
pub struct LoadedModule {
    pub name: String,
    pub path: String,
    pub start: usize,
    pub end: usize,
}

impl LoadedModule {
    /// Its function symbols, read on first use.
    pub fn symbols(&self) -> Arc<SymbolTable> {
        SymbolTable::of_file(&self.path)
    }
}

static MODULES: RwLock<Vec<LoadedModule>> = RwLock::new(Vec::new());

/// Records a module as it loads.
pub fn add(name: &str, path: &str, start: usize, end: usize) -> LoadedModule {
    let module = LoadedModule { name: name.to_string(), path: path.to_string(), start, end };
    let mut modules = MODULES.write();
    modules.retain(|m| m.start != start);
    modules.push(module.clone());
    module
}

/// Forgets the module loaded at `start`.
pub fn remove(start: usize) {
    MODULES.write().retain(|m| m.start != start);
}

/// The module whose mapped range holds `address`.
pub fn containing(address: usize) -> Option<LoadedModule> {
    MODULES.read().iter().find(|m| (m.start..m.end).contains(&address)).cloned()
}

/// `module!function+0xoff`, `module+0xoff` where no symbol precedes the
/// address, or plain hex outside every module.
pub fn symbolize(address: usize) -> String {
    let Some(m) = containing(address) else { return format!("{address:#x}") };
    match m.symbols().lookup(address - m.start) {
        Some((f, 0)) => format!("{}!{}", m.name, f.names[0]),
        Some((f, off)) => format!("{}!{}+{off:#x}", m.name, f.names[0]),
        None => format!("{}+{:#x}", m.name, address - m.start),
    }
}

/// Every address where a function or data object of that name starts, in any module.
pub fn addresses_of(name: &str) -> Vec<usize> {
    let mut out: Vec<usize> = ranges_of(name).into_iter().map(|(start, _)| start).collect();
    out.dedup();
    out
}

/// `(start, size)` of every data object or function of that name, in any module.
pub fn ranges_of(name: &str) -> Vec<(usize, usize)> {
    let modules = MODULES.read().clone();
    let mut out: Vec<(usize, usize)> =
        modules.iter().flat_map(|m| m.symbols().ranges_of(name).into_iter().map(|(offset, size)| (m.start + offset, size))).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The names of the function starting exactly at `address`.
pub fn names_at(address: usize) -> Vec<String> {
    let Some(m) = containing(address) else { return Vec::new() };
    match m.symbols().lookup(address - m.start) {
        Some((f, 0)) => f.names.clone(),
        _ => Vec::new(),
    }
}
