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
    let mut writes = Vec::new();
    for &i in importers {
        let importer = &all[i];
        for import in &importer.imports {
            let name = importer.import_name(import);
            if let Some(o) = overrides.iter().find(|o| o.name.as_bytes() == name) {
                if importer.soname != o.provider {
                    if let Some(previous) = o.previous {
                        // SAFETY: the slot is a mapped, aligned word of the importer.
                        let old = unsafe { std::ptr::read_volatile(import.slot as *const usize) };
                        if old != o.address {
                            let _ = previous.compare_exchange(0, old, Ordering::Relaxed, Ordering::Relaxed);
                        }
                    }
                    writes.push((import.slot, o.address.wrapping_add_signed(import.addend)));
                    stats.overridden += 1;
                }
                continue;
            }
            if DR_REDIRECTED.iter().any(|r| r.as_bytes() == name) {
                continue;
            }
            if let Some(address) = versioned_target(all, importer, import) {
                writes.push((import.slot, address.wrapping_add_signed(import.addend)));
                stats.versioned += 1;
            }
        }
    }
    write_slots(&writes);
    stats
}

/// The address `import` should hold when its provider defines several
/// versions of the name; `None` when the private loader's choice is right.
fn versioned_target(all: &[LibraryImage], importer: &LibraryImage, import: &Import) -> Option<usize> {
    let (version, file) = importer.import_version(import)?;
    let name = importer.import_name(import);
    let provider = all.iter().find(|l| l.soname.as_bytes() == file)?;
    let mut definitions = provider.definitions(name);
    let first = definitions.next()?;
    let mut wanted = (first.version == Some(version)).then_some(first);
    let mut several_versions = false;
    for d in definitions {
        several_versions |= d.version != first.version;
        if wanted.is_none() && d.version == Some(version) {
            wanted = Some(d);
        }
    }
    let wanted = wanted.filter(|d| several_versions && !d.is_ifunc)?;
    Some(wanted.address)
}

/// Stores each (slot, value). A GOT slot is normally in a writable page
/// (DynamoRIO's private loader does not apply RELRO), and then it is one
/// fault-safe store (`dr_safe_write`, well under a microsecond); only a
/// slot whose page is not writable has its page made writable around the
/// store. Asking DynamoRIO for every slot's protection first
/// (`dr_query_memory` reads /proc/self/maps) and changing it twice cost
/// ~50 µs a slot, 4-6 ms per process for ~90 slots.
fn write_slots(writes: &[(usize, usize)]) {
    let word = std::mem::size_of::<usize>();
    for &(slot, value) in writes {
        if dr_sys::memory::safe_write(slot, &value.to_ne_bytes()) {
            continue;
        }
        // SAFETY: `slot` is a relocation target inside a mapped private
        // library (it came from that library's own relocation table and
        // load base), aligned; we make its page writable, store one word
        // and restore the page's protection.
        unsafe {
            if let Some((start, size, prot)) = dr_sys::memory::make_writable(slot, word) {
                std::ptr::write_volatile(slot as *mut usize, value);
                dr_sys::memory::restore_protection(start, size, prot);
            }
        }
    }
}
