//! What the mends need to know of one privately loaded library: which
//! versioned symbols it exports and which GOT slots its imports fill.
//! Read with goblin from the file the library was loaded from.

use goblin::elf::{reloc, sym, Elf};
use std::collections::HashMap;

/// One definition of an exported symbol.
#[derive(Debug, Clone)]
pub struct Export {
    /// The version name (`GLIBC_2.3.2`), if the library versions its symbols.
    pub version: Option<String>,
    /// The absolute address in this process.
    pub address: usize,
    pub is_ifunc: bool,
    /// A non-default version (`name@VER` rather than `name@@VER`).
    pub is_hidden: bool,
}

/// One relocation that fills a pointer-sized slot with a symbol's address.
#[derive(Debug, Clone)]
pub struct Import {
    pub name: String,
    /// The version the importer asked for, and the library it asked it of.
    pub version: Option<(String, String)>,
    /// The absolute address of the slot.
    pub slot: usize,
    /// Added to the symbol's address (non-zero only for plain 64/32 relocs).
    pub addend: isize,
}

/// A loaded library as the mends see it.
#[derive(Debug, Default)]
pub struct LibraryImage {
    pub path: String,
    pub soname: String,
    /// Exported names with every version defined for them.
    pub exports: HashMap<String, Vec<Export>>,
    pub imports: Vec<Import>,
}

impl LibraryImage {
    /// Reads `path` loaded at `base`. `None` when it is not an ELF file we
    /// can read (the vdso, say).
    pub fn read(path: &str, base: usize) -> Option<LibraryImage> {
        let bytes = std::fs::read(path).ok()?;
        let elf = Elf::parse(&bytes).ok()?;
        let soname = elf
            .soname
            .map(str::to_string)
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path).to_string());
        let mut image = LibraryImage { path: path.to_string(), soname, ..Default::default() };

        let verdef_names = verdef_names(&elf);
        let verneed_names = verneed_names(&elf);
        let version_index = |i: usize| elf.versym.as_ref().and_then(|v| v.get_at(i)).map(|v| v.version());

        for (i, s) in elf.dynsyms.iter().enumerate() {
            if s.st_shndx == goblin::elf::section_header::SHN_UNDEF as usize || s.st_value == 0 {
                continue;
            }
            let Some(name) = elf.dynstrtab.get_at(s.st_name) else { continue };
            let versym = elf.versym.as_ref().and_then(|v| v.get_at(i));
            let version = versym.as_ref().and_then(|v| verdef_names.get(&v.version()).cloned());
            let is_hidden = versym.as_ref().is_some_and(|v| v.is_hidden());
            image.exports.entry(name.to_string()).or_default().push(Export {
                version,
                address: base + s.st_value as usize,
                is_ifunc: s.st_type() == sym::STT_GNU_IFUNC,
                is_hidden,
            });
        }

        let slot_relocs = elf.dynrelas.iter().chain(elf.pltrelocs.iter()).chain(elf.dynrels.iter());
        for r in slot_relocs {
            if !is_slot_reloc(elf.header.e_machine, r.r_type) || r.r_sym == 0 {
                continue;
            }
            let Some(s) = elf.dynsyms.get(r.r_sym) else { continue };
            if s.st_shndx != goblin::elf::section_header::SHN_UNDEF as usize {
                continue;
            }
            let Some(name) = elf.dynstrtab.get_at(s.st_name) else { continue };
            let version = version_index(r.r_sym).and_then(|v| verneed_names.get(&v).cloned());
            let addend = r.r_addend.unwrap_or(0) as isize;
            image.imports.push(Import { name: name.to_string(), version, slot: base + r.r_offset as usize, addend });
        }
        Some(image)
    }

    /// The default definition of `name` (what an unversioned lookup binds).
    pub fn default_export(&self, name: &str) -> Option<&Export> {
        self.exports.get(name)?.iter().find(|e| !e.is_hidden)
    }

    /// The definition of `name` at `version`, if this library has it.
    pub fn export(&self, name: &str, version: &str) -> Option<&Export> {
        self.exports.get(name)?.iter().find(|e| e.version.as_deref() == Some(version))
    }
}

/// Version index -> version name, for the versions a library defines.
fn verdef_names(elf: &Elf) -> HashMap<u16, String> {
    let mut names = HashMap::new();
    if let Some(verdef) = &elf.verdef {
        for def in verdef.iter() {
            if let Some(aux) = def.iter().next() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vda_name) {
                    names.insert(def.vd_ndx, name.to_string());
                }
            }
        }
    }
    names
}

/// Version index -> (version name, library file), for the versions a
/// library requires of others.
fn verneed_names(elf: &Elf) -> HashMap<u16, (String, String)> {
    let mut names = HashMap::new();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            let file = elf.dynstrtab.get_at(need.vn_file).unwrap_or("").to_string();
            for aux in need.iter() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vna_name) {
                    names.insert(aux.vna_other, (name.to_string(), file.clone()));
                }
            }
        }
    }
    names
}

/// Relocations that store a symbol's absolute address in a slot.
fn is_slot_reloc(machine: u16, r_type: u32) -> bool {
    use goblin::elf::header::{EM_386, EM_X86_64};
    match machine {
        EM_X86_64 => matches!(r_type, reloc::R_X86_64_GLOB_DAT | reloc::R_X86_64_JUMP_SLOT | reloc::R_X86_64_64),
        EM_386 => matches!(r_type, reloc::R_386_GLOB_DAT | reloc::R_386_JMP_SLOT | reloc::R_386_32),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libc_versions_and_imports() {
        let libc = LibraryImage::read("/lib/x86_64-linux-gnu/libc.so.6", 0x1000).unwrap();
        let python = LibraryImage::read("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", 0).unwrap();
        assert_eq!(libc.soname, "libc.so.6");
        // pthread_cond_init has a GLIBC_2.2.5 and a GLIBC_2.3.2 version.
        let cond = libc.export("pthread_cond_init", "GLIBC_2.3.2").unwrap();
        let old = libc.export("pthread_cond_init", "GLIBC_2.2.5").unwrap();
        assert_ne!(cond.address, old.address);
        assert!(cond.address > 0x1000);
        let import = python.imports.iter().find(|i| i.name == "pthread_cond_init").unwrap();
        assert_eq!(import.version.as_ref().unwrap(), &("GLIBC_2.3.2".to_string(), "libc.so.6".to_string()));
    }
}
