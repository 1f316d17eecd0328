//! Function symbols of the target's modules: every defined function in
//! `.dynsym` and `.symtab`, read once per file with goblin and cached, so a
//! library mapped by several processes or reloaded is parsed once.
//! PLT stubs have no symbols of their own, so they are never mistaken for
//! the functions they call. An IFUNC symbol (glibc's `strlen`, `memcpy`,
//! ...) names a resolver, which returns the function to call; it is marked.

use goblin::elf::{program_header::PT_LOAD, sym, Elf};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// One function: its names (aliases share an address) and where it starts,
/// relative to the module's lowest mapped address.
#[derive(Debug, Clone)]
pub struct FunctionSymbol {
    pub names: Vec<String>,
    pub offset: usize,
    /// The symbol is an IFUNC: `offset` is its resolver's.
    pub ifunc: bool,
    /// Its size in bytes, as the symbol table gives it (0 when unknown).
    pub size: usize,
}

/// A data object (`STT_OBJECT`): a global variable or array.
#[derive(Debug, Clone)]
pub struct DataSymbol {
    pub names: Vec<String>,
    pub offset: usize,
    pub size: usize,
}

/// The functions of one file, sorted by offset.
#[derive(Debug, Default)]
pub struct SymbolTable {
    pub functions: Vec<FunctionSymbol>,
    /// Data objects, sorted by offset.
    pub objects: Vec<DataSymbol>,
}

static CACHE: Lazy<Mutex<HashMap<String, Arc<SymbolTable>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

impl SymbolTable {
    /// The table of the file at `path` (empty when it cannot be read).
    pub fn of_file(path: &str) -> Arc<SymbolTable> {
        if let Some(t) = CACHE.lock().get(path) {
            return t.clone();
        }
        let table = Arc::new(Self::read(path).unwrap_or_default());
        CACHE.lock().insert(path.to_string(), table.clone());
        table
    }

    fn read(path: &str) -> Option<SymbolTable> {
        let bytes = std::fs::read(path).ok()?;
        let elf = Elf::parse(&bytes).ok()?;
        // Symbol values are link-time addresses; the module's start is
        // where its lowest PT_LOAD segment (page-aligned) was mapped.
        let link_base = elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_LOAD)
            .map(|p| p.p_vaddr as usize & !0xfff)
            .min()?;
        let mut by_offset: HashMap<usize, (Vec<String>, bool, usize)> = HashMap::new();
        let mut objects: HashMap<usize, DataSymbol> = HashMap::new();
        let tables = [(&elf.dynsyms, &elf.dynstrtab), (&elf.syms, &elf.strtab)];
        for (symbols, strings) in tables {
            for s in symbols.iter() {
                let is_function = matches!(s.st_type(), sym::STT_FUNC | sym::STT_GNU_IFUNC);
                let is_object = s.st_type() == sym::STT_OBJECT;
                if !(is_function || is_object) || s.st_shndx == goblin::elf::section_header::SHN_UNDEF as usize || s.st_value == 0 {
                    continue;
                }
                let Some(name) = strings.get_at(s.st_name).filter(|n| !n.is_empty()) else { continue };
                let Some(offset) = (s.st_value as usize).checked_sub(link_base) else { continue };
                if is_object {
                    let object = objects.entry(offset).or_insert_with(|| DataSymbol { names: Vec::new(), offset, size: 0 });
                    object.size = object.size.max(s.st_size as usize);
                    if !object.names.iter().any(|n| n == name) {
                        object.names.push(name.to_string());
                    }
                    continue;
                }
                let (names, ifunc, size) = by_offset.entry(offset).or_default();
                *ifunc |= s.st_type() == sym::STT_GNU_IFUNC;
                *size = (*size).max(s.st_size as usize);
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        let mut functions: Vec<FunctionSymbol> =
            by_offset.into_iter().map(|(offset, (names, ifunc, size))| FunctionSymbol { names, offset, ifunc, size }).collect();
        functions.sort_by_key(|f| f.offset);
        let mut objects: Vec<DataSymbol> = objects.into_values().collect();
        objects.sort_by_key(|o| o.offset);
        Some(SymbolTable { functions, objects })
    }

    /// `(offset, size)` of every data object and function named `name`.
    pub fn ranges_of(&self, name: &str) -> Vec<(usize, usize)> {
        let named = |names: &[String]| names.iter().any(|n| n == name);
        let objects = self.objects.iter().filter(|o| named(&o.names)).map(|o| (o.offset, o.size));
        objects.chain(self.functions.iter().filter(|f| named(&f.names)).map(|f| (f.offset, f.size))).collect()
    }

    /// The function containing `offset`, with the distance into it (the
    /// nearest symbol at or below; sizes are not trusted).
    pub fn lookup(&self, offset: usize) -> Option<(&FunctionSymbol, usize)> {
        let i = self.functions.partition_point(|f| f.offset <= offset);
        let f = self.functions.get(i.checked_sub(1)?)?;
        Some((f, offset - f.offset))
    }

    /// The function whose bytes hold `offset`: the nearest before it, if
    /// its size reaches it (or it has none). Code past a symbol's end is
    /// some function the table does not name (a static one in a stripped
    /// library, such as glibc's `__strcmp_avx2`), not the symbol before.
    pub fn function_at(&self, offset: usize) -> Option<&FunctionSymbol> {
        self.lookup(offset).filter(|(f, into)| f.size == 0 || *into < f.size).map(|(f, _)| f)
    }
}
