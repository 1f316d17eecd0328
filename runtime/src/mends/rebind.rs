//! Rewriting GOT slots of private libraries: the versioned-symbol mend and
//! the import overrides (`getauxval`, `dlopen`, ...).
//!
//! DynamoRIO's private loader binds an import to the first symbol of that
//! name, whatever its version, so libpython gets e.g. the GLIBC_2.2.5
//! `pthread_cond_init`, whose struct layout is not the one it was built for.
//! For every import whose provider exports more than one version of the
//! name, we write the address of the version the importer asked for.

use super::image::{Import, LibraryImage};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Imports DynamoRIO itself redirects for private libraries (see
/// `redirect_imports` in DynamoRIO's `core/unix/loader.c`). Overwriting
/// them would take DynamoRIO's own heap and loader out from under it.
const DR_REDIRECTED: &[&str] = &[
    "calloc", "malloc", "free", "realloc", "strdup", "open", "close", "read", "write",
    "__tls_get_addr", "___tls_get_addr", "dl_iterate_phdr", "__gnu_Unwind_Find_exidx", "dlsym",
    "strlen", "wcslen", "strchr", "strrchr", "strncpy", "memcpy", "memset", "memmove", "strncat",
    "strcmp", "strncmp", "memcmp", "strstr", "strcasecmp", "__memcpy_chk", "__memset_chk",
    "__memmove_chk", "__strncpy_chk", "memcpy_chk", "memset_chk", "memmove_chk", "strncpy_chk",
];

/// An import to point at one of our own functions in every library but the
/// one named `provider` (which defines it for real).
pub struct Override {
    pub name: &'static str,
    pub provider: &'static str,
    pub address: usize,
    /// Where to keep the slot's former value, for an override that hands
    /// some calls on to it.
    pub previous: Option<&'static AtomicUsize>,
}

/// Counts of what one pass changed, for `-v`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RebindStats {
    pub versioned: usize,
    pub overridden: usize,
}

/// Rewrites the slots of `importers` (indices into `all`), resolving
/// versioned imports against `all`.
pub fn rebind(all: &[LibraryImage], importers: &[usize], overrides: &[Override]) -> RebindStats {
    let mut stats = RebindStats::default();
    for &i in importers {
        let importer = &all[i];
        for import in &importer.imports {
            if let Some(o) = overrides.iter().find(|o| o.name == import.name) {
                if importer.soname != o.provider {
                    if let Some(previous) = o.previous {
                        // SAFETY: the slot is a mapped, aligned word of the importer.
                        let old = unsafe { std::ptr::read_volatile(import.slot as *const usize) };
                        if old != o.address {
                            let _ = previous.compare_exchange(0, old, Ordering::Relaxed, Ordering::Relaxed);
                        }
                    }
                    write_slot(import, o.address);
                    stats.overridden += 1;
                }
                continue;
            }
            if DR_REDIRECTED.contains(&import.name.as_str()) {
                continue;
            }
            if let Some(address) = versioned_target(all, import) {
                write_slot(import, address);
                stats.versioned += 1;
            }
        }
    }
    stats
}

/// The address `import` should hold when its provider defines several
/// versions of the name; `None` when the private loader's choice is right.
fn versioned_target(all: &[LibraryImage], import: &Import) -> Option<usize> {
    let (version, file) = import.version.as_ref()?;
    let provider = all.iter().find(|l| &l.soname == file)?;
    let defs = provider.exports.get(&import.name)?;
    let first = defs.first()?;
    if defs.iter().all(|d| d.version == first.version) {
        return None;
    }
    let def = provider.export(&import.name, version)?;
    if def.is_ifunc {
        return None;
    }
    Some(def.address)
}

fn write_slot(import: &Import, address: usize) {
    let value = address.wrapping_add_signed(import.addend);
    let len = std::mem::size_of::<usize>();
    // SAFETY: `slot` is a relocation target inside a mapped private library
    // (it came from that library's own relocation table and load base);
    // we make its page writable, store one aligned word and restore it.
    unsafe {
        if let Some((start, size, prot)) = dr_sys::memory::make_writable(import.slot, len) {
            std::ptr::write_volatile(import.slot as *mut usize, value);
            dr_sys::memory::restore_protection(start, size, prot);
        }
    }
}
