//! What the mends need to know of one privately loaded library: which
//! versioned symbols it exports and which GOT slots its imports fill.
//!
//! Read from the library's own mapped image, through its dynamic section,
//! not from its file: every table the mends use (`.dynsym`, `.dynstr`,
//! `.gnu.version*`, the symbol hash table, the relocations) lies in a
//! loaded segment, so reading them costs no I/O. Reading and parsing the
//! files with goblin (7 MB of libpython, 12 MB of libptap.so with its
//! debug information) took ~25 ms per process, most of it copying the
//! files; this takes ~0.9 ms for the eight libraries (libpython ~0.3 ms;
//! outside DynamoRIO, 0.22 ms on a fresh mapping and 0.07 ms once its
//! pages were touched, so first page touches are most of it). Names are
//! looked up through the library's GNU (or SysV) hash table, as ld.so
//! does, so no table of every export is built.
//!
//! x86-64 only (ELF64, RELA), like the rest of the client.

use std::ops::Range;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PF_R: u32 = 4;

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_STRSZ: i64 = 10;
const DT_SONAME: i64 = 14;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;
const DT_VERDEF: i64 = 0x6fff_fffc;
const DT_VERDEFNUM: i64 = 0x6fff_fffd;
const DT_VERNEED: i64 = 0x6fff_fffe;
const DT_VERNEEDNUM: i64 = 0x6fff_ffff;

const SHN_UNDEF: u16 = 0;
const STT_GNU_IFUNC: u8 = 10;
// x86-64's R_X86_64_64, _GLOB_DAT and _JUMP_SLOT have the numbers of
// i386's R_386_32, _GLOB_DAT and _JMP_SLOT.
const R_X86_64_64: u32 = 1;
const R_X86_64_GLOB_DAT: u32 = 6;
const R_X86_64_JUMP_SLOT: u32 = 7;
/// The "hidden" bit of a `.gnu.version` entry: a non-default version.
const VERSYM_HIDDEN: u16 = 0x8000;

/// A dynamic entry, widened to 64 bits whatever the ELF class.
#[derive(Clone, Copy)]
struct Dyn {
    tag: i64,
    val: u64,
}

/// A relocation, widened to 64 bits: `sym` and `kind` decoded from r_info.
#[derive(Clone, Copy)]
struct Rela {
    offset: u64,
    sym: usize,
    kind: u32,
    addend: i64,
}

/// The ELF class of the process: ELFCLASS64 with RELA relocations on x86-64.
#[cfg(target_pointer_width = "64")]
pub(crate) mod elf {
    pub type Phdr = libc::Elf64_Phdr;
    pub type Sym = libc::Elf64_Sym;
    /// Where the linker puts the symbol-naming relocations (other than PLT).
    pub const DT_RELOCS: i64 = 7; // DT_RELA
    pub const DT_RELOCSZ: i64 = 8; // DT_RELASZ
    pub const DT_RELOCCOUNT: i64 = 0x6fff_fff9; // DT_RELACOUNT
    /// `DT_PLTREL`'s value for this class's relocations (DT_RELA).
    pub const PLTREL: u64 = 7;

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct RawDyn {
        pub tag: i64,
        pub val: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct RawReloc {
        offset: u64,
        info: u64,
        addend: i64,
    }

    impl RawReloc {
        pub(super) fn widen(self) -> super::Rela {
            super::Rela { offset: self.offset, sym: (self.info >> 32) as usize, kind: self.info as u32, addend: self.addend }
        }
    }
}

/// ELFCLASS32 with REL relocations on i386. A REL relocation's addend is in
/// the slot, overwritten once relocated: imports are taken with addend 0
/// (what GLOB_DAT and JMP_SLOT have; an R_386_32 with another is missed).
#[cfg(target_pointer_width = "32")]
pub(crate) mod elf {
    pub type Phdr = libc::Elf32_Phdr;
    pub type Sym = libc::Elf32_Sym;
    pub const DT_RELOCS: i64 = 17; // DT_REL
    pub const DT_RELOCSZ: i64 = 18; // DT_RELSZ
    pub const DT_RELOCCOUNT: i64 = 0x6fff_fffa; // DT_RELCOUNT
    /// `DT_PLTREL`'s value for this class's relocations (DT_REL).
    pub const PLTREL: u64 = 17;

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct RawDyn {
        pub tag: i32,
        pub val: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct RawReloc {
        offset: u32,
        info: u32,
    }

    impl RawReloc {
        pub(super) fn widen(self) -> super::Rela {
            super::Rela { offset: self.offset as u64, sym: (self.info >> 8) as usize, kind: self.info & 0xff, addend: 0 }
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Verdef {
    version: u16,
    flags: u16,
    ndx: u16,
    cnt: u16,
    hash: u32,
    aux: u32,
    next: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Verneed {
    version: u16,
    cnt: u16,
    file: u32,
    aux: u32,
    next: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Vernaux {
    hash: u32,
    flags: u16,
    other: u16,
    name: u32,
    next: u32,
}

/// One symbol of `.dynsym` (the fields the mends use).
#[derive(Debug, Clone, Copy)]
struct Symbol {
    name: u32,
    info: u8,
    shndx: u16,
    value: u64,
}

/// One definition of an exported symbol.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// The version name (`GLIBC_2.3.2`), if the library versions its symbols.
    pub version: Option<&'a [u8]>,
    /// The absolute address in this process.
    pub address: usize,
    pub is_ifunc: bool,
    /// A non-default version (`name@VER` rather than `name@@VER`).
    pub is_hidden: bool,
}

/// One relocation that fills a pointer-sized slot with an imported
/// symbol's address. Names are offsets into the importer's string table.
#[derive(Debug, Clone, Copy)]
pub struct Import {
    name: u32,
    /// The version the importer asked for, and the library it asked it of.
    version: Option<(u32, u32)>,
    /// The absolute address of the slot.
    pub slot: usize,
    /// Added to the symbol's address (non-zero only for plain 64 relocs).
    pub addend: isize,
}

/// How names are hashed to symbols.
#[derive(Debug)]
enum HashTable {
    /// `DT_GNU_HASH`: symbols from `first` on, sorted by bucket.
    Gnu { first: u32, buckets: Vec<u32>, chain: Vec<u32> },
    /// `DT_HASH`.
    SysV { buckets: Vec<u32>, chain: Vec<u32> },
}

/// A loaded library as the mends see it. It owns copies of the tables it
/// read (a few hundred KiB for libpython and libc together), so nothing
/// here points into a library that may be unloaded later.
#[derive(Debug)]
pub struct LibraryImage {
    pub path: String,
    pub soname: String,
    /// Load delta: what is added to the file's virtual addresses.
    pub base: usize,
    symbols: Vec<Symbol>,
    strings: Vec<u8>,
    /// `.gnu.version`, one entry per symbol, if the library has one.
    versions: Vec<u16>,
    /// Version index -> name (offset into `strings`), for versions it defines.
    defined_versions: Vec<(u16, u32)>,
    /// Version index -> (name, file), for versions it requires of others.
    needed_versions: Vec<(u16, (u32, u32))>,
    hash: Option<HashTable>,
    pub imports: Vec<Import>,
}

/// The readable loaded segments of one library, through which every table
/// is reached.
struct Mapped {
    base: usize,
    /// Absolute address ranges of the readable `PT_LOAD` segments.
    segments: Vec<Range<usize>>,
}

impl Mapped {
    /// `len` bytes at absolute address `at`, if they lie within one
    /// readable loaded segment.
    fn bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        self.segments.iter().find(|s| s.start <= at && end <= s.end)?;
        // SAFETY: the range lies inside a readable PT_LOAD segment of a
        // library the loader has mapped and keeps mapped while we read it
        // (the caller of `LibraryImage::from_memory` guarantees that); the
        // slice is only read, and only for as long as `self` is borrowed.
        Some(unsafe { std::slice::from_raw_parts(at as *const u8, len) })
    }

    /// The `count` values of `T` at `at`.
    fn array<T: Copy>(&self, at: usize, count: usize) -> Option<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let bytes = self.bytes(at, count.checked_mul(size)?)?;
        Some(
            bytes
                .chunks_exact(size)
                // SAFETY: each chunk holds exactly one T, a plain-data
                // repr(C) or integer type valid for any bit pattern.
                .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr() as *const T) })
                .collect(),
        )
    }

    fn one<T: Copy>(&self, at: usize) -> Option<T> {
        self.array::<T>(at, 1)?.pop()
    }

    /// A dynamic-section address as an absolute one. The private loader
    /// leaves the dynamic section as the file has it (addresses relative
    /// to the load base); ld.so rewrites some entries to absolute ones, as
    /// seen in this crate's tests, which read libraries ld.so loaded.
    fn address(&self, value: u64) -> usize {
        let relative = (value as usize).wrapping_add(self.base);
        if self.segments.iter().any(|s| s.contains(&relative)) {
            relative
        } else {
            value as usize
        }
    }
}

impl LibraryImage {
    /// Reads the library `path` mapped at load delta `base`, whose program
    /// headers are `phdrs`. `None` when it has no dynamic section or a
    /// table we need lies outside its loaded segments.
    ///
    /// # Safety
    /// `phdrs` must be the program headers of a library that is mapped at
    /// `base` (as `dl_iterate_phdr` reports them) and stays mapped for the
    /// duration of the call.
    pub unsafe fn from_memory(path: &str, base: usize, phdrs: &[elf::Phdr]) -> Option<LibraryImage> {
        let segments = phdrs
            .iter()
            .filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_R != 0)
            .map(|p| base + p.p_vaddr as usize..base + (p.p_vaddr + p.p_memsz) as usize)
            .collect();
        let mapped = Mapped { base, segments };
        let dynamic = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC)?;
        let dynamic_at = base + dynamic.p_vaddr as usize;
        let count = dynamic.p_memsz as usize / std::mem::size_of::<elf::RawDyn>();
        let entries: Vec<Dyn> = mapped
            .array::<elf::RawDyn>(dynamic_at, count)?
            .iter()
            .map(|d| Dyn { tag: d.tag as i64, val: d.val as u64 })
            .collect();
        let value = |tag: i64| entries.iter().take_while(|d| d.tag != DT_NULL).find(|d| d.tag == tag).map(|d| d.val);
        let address = |tag: i64| value(tag).map(|v| mapped.address(v));

        let strings = mapped.array::<u8>(address(DT_STRTAB)?, value(DT_STRSZ)? as usize)?;
        let symtab = address(DT_SYMTAB)?;
        let hash = match (address(DT_GNU_HASH), address(DT_HASH)) {
            (Some(at), _) => Some(read_gnu_hash(&mapped, at)?),
            (None, Some(at)) => Some(read_sysv_hash(&mapped, at)?),
            (None, None) => None,
        };
        let symbol_count = match &hash {
            Some(HashTable::Gnu { first, chain, .. }) => *first as usize + chain.len(),
            Some(HashTable::SysV { chain, .. }) => chain.len(),
            None => 0,
        };
        let symbols: Vec<Symbol> = mapped
            .array::<elf::Sym>(symtab, symbol_count)?
            .iter()
            .map(|s| Symbol { name: s.st_name, info: s.st_info, shndx: s.st_shndx, value: s.st_value as u64 })
            .collect();
        let versions = match address(DT_VERSYM) {
            Some(at) => mapped.array::<u16>(at, symbol_count)?,
            None => Vec::new(),
        };
        let defined_versions = match (address(DT_VERDEF), value(DT_VERDEFNUM)) {
            (Some(at), Some(n)) => read_verdef(&mapped, at, n as usize)?,
            _ => Vec::new(),
        };
        let needed_versions = match (address(DT_VERNEED), value(DT_VERNEEDNUM)) {
            (Some(at), Some(n)) => read_verneed(&mapped, at, n as usize)?,
            _ => Vec::new(),
        };

        let mut image = LibraryImage {
            path: path.to_string(),
            soname: String::new(),
            base,
            symbols,
            strings,
            versions,
            defined_versions,
            needed_versions,
            hash,
            imports: Vec::new(),
        };
        image.soname = match value(DT_SONAME) {
            Some(at) => String::from_utf8_lossy(image.string(at as u32)).into_owned(),
            None => path.rsplit('/').next().unwrap_or(path).to_string(),
        };

        let mut relocations = Vec::new();
        if let (Some(at), Some(size)) = (address(elf::DT_RELOCS), value(elf::DT_RELOCSZ)) {
            // The linker puts the RELATIVE relocations first and counts
            // them (`-z combreloc`): they name no symbol, so they are
            // skipped unread (26,000 of libpython's 39,000).
            let relative = value(elf::DT_RELOCCOUNT).unwrap_or(0) as usize * std::mem::size_of::<elf::RawReloc>();
            let skipped = relative.min(size as usize);
            relocations.push((at + skipped, size as usize - skipped));
        }
        if let (Some(at), Some(size)) = (address(DT_JMPREL), value(DT_PLTRELSZ)) {
            if value(DT_PLTREL).unwrap_or(elf::PLTREL) == elf::PLTREL {
                relocations.push((at, size as usize));
            }
        }
        for (at, size) in relocations {
            let relas = mapped.bytes(at, size)?;
            for chunk in relas.chunks_exact(std::mem::size_of::<elf::RawReloc>()) {
                // SAFETY: the chunk holds exactly one relocation (plain data).
                let r = unsafe { std::ptr::read_unaligned(chunk.as_ptr() as *const elf::RawReloc) };
                image.add_import(r.widen());
            }
        }
        Some(image)
    }

    /// Records `r` if it fills a slot with an imported symbol's address.
    fn add_import(&mut self, r: Rela) {
        let (sym, kind) = (r.sym, r.kind);
        if !matches!(kind, R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT | R_X86_64_64) || sym == 0 {
            return;
        }
        let Some(s) = self.symbols.get(sym) else { return };
        if s.shndx != SHN_UNDEF {
            return;
        }
        let version = self.versions.get(sym).and_then(|&v| {
            self.needed_versions.iter().find(|(index, _)| *index == v & !VERSYM_HIDDEN).map(|&(_, names)| names)
        });
        self.imports.push(Import {
            name: s.name,
            version,
            slot: self.base.wrapping_add(r.offset as usize),
            addend: r.addend as isize,
        });
    }

    /// The NUL-terminated string at `offset` of the string table.
    fn string(&self, offset: u32) -> &[u8] {
        let tail = self.strings.get(offset as usize..).unwrap_or_default();
        &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())]
    }

    /// The name `import` asks for.
    pub fn import_name(&self, import: &Import) -> &[u8] {
        self.string(import.name)
    }

    /// The version `import` asks for and the library it asks it of.
    pub fn import_version(&self, import: &Import) -> Option<(&[u8], &[u8])> {
        import.version.map(|(name, file)| (self.string(name), self.string(file)))
    }

    fn export_of(&self, index: usize) -> Option<Export<'_>> {
        let s = self.symbols.get(index)?;
        if s.shndx == SHN_UNDEF || s.value == 0 {
            return None;
        }
        let versym = self.versions.get(index).copied();
        let version = versym.and_then(|v| {
            let v = v & !VERSYM_HIDDEN;
            self.defined_versions.iter().find(|(i, _)| *i == v).map(|&(_, name)| self.string(name))
        });
        Some(Export {
            version,
            address: self.base.wrapping_add(s.value as usize),
            is_ifunc: s.info & 0xf == STT_GNU_IFUNC,
            is_hidden: versym.is_some_and(|v| v & VERSYM_HIDDEN != 0),
        })
    }

    /// Every definition of `name`, whatever its version.
    pub fn definitions<'a, 'n>(&'a self, name: &'n [u8]) -> impl Iterator<Item = Export<'a>> + 'n
    where
        'a: 'n,
    {
        self.candidates(name)
            .filter(move |&i| self.symbols.get(i).is_some_and(|s| self.string(s.name) == name))
            .filter_map(move |i| self.export_of(i))
    }

    /// Indices of the symbols whose name hashes like `name`.
    fn candidates(&self, name: &[u8]) -> Candidates<'_> {
        match &self.hash {
            Some(HashTable::Gnu { first, buckets, chain }) if !buckets.is_empty() => {
                let hash = gnu_hash(name);
                let next = buckets[hash as usize % buckets.len()] as usize;
                Candidates::Gnu { chain, first: *first as usize, next, hash, done: next < *first as usize }
            }
            Some(HashTable::SysV { buckets, chain }) if !buckets.is_empty() => {
                let next = buckets[sysv_hash(name) as usize % buckets.len()] as usize;
                Candidates::SysV { chain, next, steps: 0 }
            }
            _ => Candidates::Empty,
        }
    }

    /// The default definition of `name` (what an unversioned lookup binds).
    pub fn default_export(&self, name: &str) -> Option<Export<'_>> {
        self.definitions(name.as_bytes()).find(|e| !e.is_hidden)
    }

    /// The definition of `name` at `version`, if this library has it.
    pub fn export(&self, name: &str, version: &str) -> Option<Export<'_>> {
        self.definitions(name.as_bytes()).find(|e| e.version == Some(version.as_bytes()))
    }

    /// Whether an IFUNC symbol of this library is defined at `address`.
    pub fn has_ifunc_at(&self, address: usize) -> bool {
        self.symbols.iter().any(|s| {
            s.shndx != SHN_UNDEF && s.info & 0xf == STT_GNU_IFUNC && self.base.wrapping_add(s.value as usize) == address
        })
    }
}

/// The symbols a hash table offers for one name's hash.
enum Candidates<'a> {
    /// A GNU bucket's symbols run from `next` up to the first chain word
    /// with its low bit set; those whose hash (low bit aside) is the
    /// name's are candidates.
    Gnu { chain: &'a [u32], first: usize, next: usize, hash: u32, done: bool },
    /// A SysV chain, followed until index 0; `steps` stops a corrupt chain
    /// that loops (it has at most one step per symbol).
    SysV { chain: &'a [u32], next: usize, steps: usize },
    Empty,
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::Gnu { chain, first, next, hash, done } => loop {
                if *done {
                    return None;
                }
                let i = *next;
                let Some(&word) = chain.get(i - *first) else {
                    *done = true;
                    return None;
                };
                *next += 1;
                *done = word & 1 != 0;
                if word | 1 == *hash | 1 {
                    return Some(i);
                }
            },
            Candidates::SysV { chain, next, steps } => {
                if *next == 0 || *steps > chain.len() {
                    return None;
                }
                *steps += 1;
                let i = *next;
                *next = chain.get(i).copied().unwrap_or(0) as usize;
                Some(i)
            }
            Candidates::Empty => None,
        }
    }
}

/// The GNU hash table at `at`: header, bloom filter (skipped), buckets,
/// and as many chain words as it takes to reach the last symbol (the
/// table does not say how many symbols there are; the chain of the
/// highest bucket ends at the last one).
fn read_gnu_hash(mapped: &Mapped, at: usize) -> Option<HashTable> {
    let header: [u32; 4] = mapped.one(at)?;
    let [bucket_count, first, bloom_words, _shift] = header;
    // The bloom filter has bloom_words ElfW(Addr) words.
    let buckets_at = at + 16 + bloom_words as usize * std::mem::size_of::<usize>();
    let buckets: Vec<u32> = mapped.array(buckets_at, bucket_count as usize)?;
    let chain_at = buckets_at + bucket_count as usize * 4;
    let last_start = buckets.iter().copied().max().unwrap_or(0);
    let mut chain = Vec::new();
    if last_start >= first {
        let mut i = (last_start - first) as usize;
        // Everything before the highest bucket's chain, then that chain.
        chain = mapped.array(chain_at, i)?;
        loop {
            let word: u32 = mapped.one(chain_at + i * 4)?;
            chain.push(word);
            i += 1;
            if word & 1 != 0 {
                break;
            }
        }
    }
    Some(HashTable::Gnu { first, buckets, chain })
}

/// The SysV hash table at `at`: its chain has one entry per symbol.
fn read_sysv_hash(mapped: &Mapped, at: usize) -> Option<HashTable> {
    let [bucket_count, chain_count]: [u32; 2] = mapped.one(at)?;
    let buckets = mapped.array(at + 8, bucket_count as usize)?;
    let chain = mapped.array(at + 8 + bucket_count as usize * 4, chain_count as usize)?;
    Some(HashTable::SysV { buckets, chain })
}

/// Version index -> name, for the `count` versions defined at `at`.
fn read_verdef(mapped: &Mapped, mut at: usize, count: usize) -> Option<Vec<(u16, u32)>> {
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let def: Verdef = mapped.one(at)?;
        if def.cnt > 0 {
            let [name, _next]: [u32; 2] = mapped.one(at + def.aux as usize)?;
            names.push((def.ndx, name));
        }
        if def.next == 0 {
            break;
        }
        at += def.next as usize;
    }
    Some(names)
}

/// Version index -> (name, file), for the `count` libraries at `at`
/// whose versions are required.
fn read_verneed(mapped: &Mapped, mut at: usize, count: usize) -> Option<Vec<(u16, (u32, u32))>> {
    let mut names = Vec::new();
    for _ in 0..count {
        let need: Verneed = mapped.one(at)?;
        let mut aux_at = at + need.aux as usize;
        for _ in 0..need.cnt {
            let aux: Vernaux = mapped.one(aux_at)?;
            names.push((aux.other, (aux.name, need.file)));
            if aux.next == 0 {
                break;
            }
            aux_at += aux.next as usize;
        }
        if need.next == 0 {
            break;
        }
        at += need.next as usize;
    }
    Some(names)
}

/// The GNU hash of a symbol name (`dl_new_hash`).
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// The SysV ELF hash of a symbol name.
fn sysv_hash(name: &[u8]) -> u32 {
    name.iter().fold(0u32, |h, &c| {
        let h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        (h ^ (g >> 24)) & !g
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;
    use std::collections::BTreeSet;

    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
    const LIBPYTHON: &str = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";

    /// Maps the loadable segments of `path` read-only at a fresh address,
    /// with no relocation at all: the dynamic section stays as in the
    /// file, as DynamoRIO's private loader leaves it. Returns the load
    /// delta and program headers; the mapping is left for the test's life.
    fn map_unrelocated(path: &str) -> (usize, Vec<libc::Elf64_Phdr>) {
        let bytes = std::fs::read(path).unwrap();
        let elf = Elf::parse(&bytes).unwrap();
        let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD).collect();
        let page = 4096u64;
        let span = loads.iter().map(|p| p.p_vaddr + p.p_memsz).max().unwrap().next_multiple_of(page) as usize;
        let file = std::fs::File::open(path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh reservation, then file mappings inside it; the
        // test only reads them.
        let base = unsafe {
            let base = libc::mmap(std::ptr::null_mut(), span, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            assert_ne!(base, libc::MAP_FAILED);
            for p in &loads {
                let start = p.p_vaddr / page * page;
                let end = (p.p_vaddr + p.p_filesz).next_multiple_of(page);
                let at = (base as u64 + start) as *mut libc::c_void;
                let mapped = libc::mmap(at, (end - start) as usize, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_FIXED, file.as_raw_fd(), (p.p_offset / page * page) as i64);
                assert_eq!(mapped, at);
            }
            base as usize
        };
        let phdrs = elf
            .program_headers
            .iter()
            .map(|p| libc::Elf64_Phdr {
                p_type: p.p_type,
                p_flags: p.p_flags,
                p_offset: p.p_offset,
                p_vaddr: p.p_vaddr,
                p_paddr: p.p_paddr,
                p_filesz: p.p_filesz,
                p_memsz: p.p_memsz,
                p_align: p.p_align,
            })
            .collect();
        (base, phdrs)
    }

    fn unrelocated(path: &str) -> LibraryImage {
        let (base, phdrs) = map_unrelocated(path);
        // SAFETY: mapped above, never unmapped.
        unsafe { LibraryImage::from_memory(path, base, &phdrs) }.unwrap()
    }

    /// The test process's own copy of the library whose path ends with
    /// `suffix`, as ld.so loaded (and relocated) it.
    fn loaded_by_ld_so(suffix: &str) -> LibraryImage {
        unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _: usize, data: *mut libc::c_void) -> libc::c_int {
            let (suffix, found) = &mut *(data as *mut (&str, Option<LibraryImage>));
            let info = &*info;
            let name = std::ffi::CStr::from_ptr(info.dlpi_name).to_string_lossy();
            if name.ends_with(*suffix) {
                let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
                *found = LibraryImage::from_memory(&name, info.dlpi_addr as usize, phdrs);
            }
            0
        }
        let mut search: (&str, Option<LibraryImage>) = (suffix, None);
        // SAFETY: the callback only writes `search`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(visit), &mut search as *mut _ as *mut libc::c_void) };
        search.1.unwrap_or_else(|| panic!("{suffix} is not loaded in the test process"))
    }

    /// What goblin reads from the file, as (name, version, offset, ifunc,
    /// hidden) for exports and (name, version, file, slot offset, addend)
    /// for slot-filling imports: the reference the image must agree with.
    type Exports = BTreeSet<(String, Option<String>, u64, bool, bool)>;
    type Imports = BTreeSet<(String, Option<(String, String)>, u64, i64)>;

    fn reference(path: &str) -> (Exports, Imports) {
        let bytes = std::fs::read(path).unwrap();
        let elf = Elf::parse(&bytes).unwrap();
        let name_at = |i| elf.dynstrtab.get_at(i).unwrap().to_string();
        let mut defined = std::collections::HashMap::new();
        for def in elf.verdef.iter().flat_map(|v| v.iter()) {
            if let Some(aux) = def.iter().next() {
                defined.insert(def.vd_ndx, name_at(aux.vda_name));
            }
        }
        let mut needed = std::collections::HashMap::new();
        for need in elf.verneed.iter().flat_map(|v| v.iter()) {
            for aux in need.iter() {
                needed.insert(aux.vna_other, (name_at(aux.vna_name), name_at(need.vn_file)));
            }
        }
        let versym = |i| elf.versym.as_ref().and_then(|v| v.get_at(i));
        let mut exports = Exports::new();
        for (i, s) in elf.dynsyms.iter().enumerate() {
            if s.st_shndx == 0 || s.st_value == 0 {
                continue;
            }
            let v = versym(i);
            let version = v.as_ref().and_then(|v| defined.get(&v.version()).cloned());
            let hidden = v.is_some_and(|v| v.is_hidden());
            exports.insert((name_at(s.st_name), version, s.st_value, s.st_type() == STT_GNU_IFUNC, hidden));
        }
        let mut imports = Imports::new();
        for r in elf.dynrelas.iter().chain(elf.pltrelocs.iter()) {
            if !matches!(r.r_type, R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT | R_X86_64_64) || r.r_sym == 0 {
                continue;
            }
            let s = elf.dynsyms.get(r.r_sym).unwrap();
            if s.st_shndx != 0 {
                continue;
            }
            let version = versym(r.r_sym).and_then(|v| needed.get(&v.version()).cloned());
            imports.insert((name_at(s.st_name), version, r.r_offset, r.r_addend.unwrap_or(0)));
        }
        (exports, imports)
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Every export goblin finds in the file is found by name through the
    /// hash table, with the same version, address and kind, and every
    /// import is listed with the same version and slot.
    fn assert_agrees_with_file(image: &LibraryImage) {
        let (exports, imports) = reference(&image.path);
        assert!(!exports.is_empty() && !imports.is_empty());
        let mut found = Exports::new();
        for (name, ..) in &exports {
            for e in image.definitions(name.as_bytes()) {
                let version = e.version.map(text);
                found.insert((name.clone(), version, (e.address - image.base) as u64, e.is_ifunc, e.is_hidden));
            }
        }
        assert_eq!(found, exports, "{}", image.path);
        let listed: Imports = image
            .imports
            .iter()
            .map(|i| {
                let version = image.import_version(i).map(|(v, f)| (text(v), text(f)));
                (text(image.import_name(i)), version, (i.slot - image.base) as u64, i.addend as i64)
            })
            .collect();
        assert_eq!(listed, imports, "{}", image.path);
    }

    #[test]
    fn reads_unrelocated_images_as_the_private_loader_leaves_them() {
        for path in [LIBC, LIBPYTHON] {
            let image = unrelocated(path);
            assert_agrees_with_file(&image);
        }
    }

    #[test]
    fn reads_images_ld_so_relocated() {
        // ld.so rewrites some dynamic entries (DT_STRTAB, DT_SYMTAB, ...) to
        // absolute addresses and leaves others (DT_VERDEF, DT_VERNEED).
        let libc = loaded_by_ld_so("/libc.so.6");
        assert_agrees_with_file(&libc);
    }

    #[test]
    fn finds_the_version_an_import_asks_for() {
        let libc = unrelocated(LIBC);
        let python = unrelocated(LIBPYTHON);
        assert_eq!(libc.soname, "libc.so.6");
        assert_eq!(python.soname, "libpython3.11.so.1.0");
        // pthread_cond_init has a GLIBC_2.2.5 and a GLIBC_2.3.2 version.
        let cond = libc.export("pthread_cond_init", "GLIBC_2.3.2").unwrap();
        let old = libc.export("pthread_cond_init", "GLIBC_2.2.5").unwrap();
        assert_ne!(cond.address, old.address);
        assert!(!cond.is_hidden && old.is_hidden);
        assert_eq!(libc.default_export("pthread_cond_init").unwrap().address, cond.address);
        let import = python.imports.iter().find(|i| python.import_name(i) == b"pthread_cond_init").unwrap();
        assert_eq!(python.import_version(import), Some((&b"GLIBC_2.3.2"[..], &b"libc.so.6"[..])));
        assert!(libc.default_export("no_such_function_anywhere").is_none());
        let strlen = libc.default_export("strlen").unwrap();
        assert!(strlen.is_ifunc && libc.has_ifunc_at(strlen.address));
        assert!(!libc.has_ifunc_at(cond.address));
    }
}
