//! The mends that let CPython run inside a DynamoRIO client on glibc 2.36
//! (see `docs/internals.md` for how each was found):
//! versioned-symbol rebinding, `getauxval`, `dlopen` through DynamoRIO's
//! private loader, file I/O that sets errno, and per-thread libc repairs.
//!
//! [`mend_private_libraries`] runs once before Python starts, and again on
//! the libraries each private `dlopen` brings in; [`repair_current_thread`]
//! runs at the start of every thread.

mod auxv;
mod dl;
mod fileio;
mod image;
mod rebind;
mod threads;
#[cfg(target_arch = "x86_64")]
mod tls;

pub use threads::{forget_inherited_thread_data, repair_current_thread};

use image::LibraryImage;
use parking_lot::Mutex;
use rebind::{rebind, Override, RebindStats};

/// Every private library seen so far, in load order.
static LIBRARIES: Mutex<Vec<LibraryImage>> = Mutex::new(Vec::new());

/// What the mends did, for the verbose banner.
#[derive(Debug, Default, Clone, Copy)]
pub struct MendReport {
    pub libraries: usize,
    pub stats: RebindStats,
}

/// Memory and string routines DynamoRIO's loader binds to its own plain C
/// versions in every private library (for clients without a libc). Ours
/// has one, so these go back to the private libc's, picked for this CPU:
/// DynamoRIO's `memcpy` (`rep movsq`) made every Rust move of an event's
/// `ctx` cost ~30 ns. They touch no state of DynamoRIO's; the vector
/// registers glibc's versions use are saved by DynamoRIO whenever client
/// code runs (clean calls, events).
const LIBC_STRING_ROUTINES: &[&str] = &[
    "memcpy", "memmove", "memset", "memcmp", "strlen", "strcmp", "strncmp", "strchr", "strrchr",
    "strstr", "wcslen", "__memcpy_chk", "__memmove_chk", "__memset_chk",
];

fn overrides(libraries: &[LibraryImage]) -> Vec<Override> {
    let ours = |name, f: *const ()| Override { name, provider: "libc.so.6", address: f as usize, previous: None };
    let mut list = vec![
        ours("getauxval", auxv::getauxval as *const ()),
        ours("dlopen", dl::dlopen as *const ()),
        ours("dlerror", dl::dlerror as *const ()),
        ours("dlclose", dl::dlclose as *const ()),
        Override { previous: Some(&dl::DR_DLSYM), ..ours("dlsym", dl::dlsym as *const ()) },
        ours("read", fileio::read as *const ()),
        ours("write", fileio::write as *const ()),
        ours("close", fileio::close as *const ()),
        ours("open", fileio::open as *const ()),
    ];
    #[cfg(target_arch = "x86_64")]
    list.push(Override {
        name: "__tls_get_addr",
        provider: "ld-linux-x86-64.so.2",
        address: tls::tls_get_addr as *const () as usize,
        previous: Some(&tls::DR_TLS_GET_ADDR),
    });
    if let Some(libc) = libraries.iter().find(|l| l.soname == "libc.so.6") {
        for &name in LIBC_STRING_ROUTINES {
            if let Some(export) = libc.default_export(name) {
                let address = if export.is_ifunc { call_resolver(export.address) } else { export.address };
                list.push(ours(name, address as *const ()));
            }
        }
    }
    list
}

/// Applies the mends to every private library loaded so far. Call once,
/// before Python starts.
pub fn mend_private_libraries() -> MendReport {
    auxv::load();
    let report = mend_new_libraries();
    if let Some(libc) = LIBRARIES.lock().iter().find(|l| l.soname == "libc.so.6") {
        threads::locate(libc);
    }
    repair_current_thread();
    report
}

/// Applies the mends to the private libraries not seen before.
pub(crate) fn mend_new_libraries() -> MendReport {
    let mut libraries = LIBRARIES.lock();
    let first_new = libraries.len();
    let new = read_new_libraries(&libraries);
    libraries.extend(new);
    let new: Vec<usize> = (first_new..libraries.len()).collect();
    let stats = rebind(&libraries, &new, &overrides(&libraries));
    MendReport { libraries: libraries.len(), stats }
}

/// Drops the libraries DynamoRIO's private loader no longer holds (after
/// a `dlclose`), so that lookups never answer with their addresses.
pub(crate) fn forget_unloaded_libraries() {
    let mut loaded: Vec<(String, usize)> = Vec::new();
    for_each_private_library(|path, base, _| loaded.push((path.to_string(), base)));
    LIBRARIES.lock().retain(|l| loaded.iter().any(|(path, base)| *path == l.path && *base == l.base));
}

/// The default definition of `name` in the private libraries, in load
/// order (libpython before libc), as `dlsym(dlopen(NULL), name)` finds it.
pub(crate) fn lookup_in_private_libraries(name: &str) -> Option<usize> {
    let address = LIBRARIES.lock().iter().find_map(|l| l.default_export(name)).map(|e| e.address)?;
    Some(resolve_ifunc(address))
}

/// The implementation an exported address stands for: an IFUNC symbol's
/// address is its resolver, which picks the implementation for this CPU
/// when called (as ld.so does at binding time).
pub(crate) fn resolve_ifunc(address: usize) -> usize {
    if !LIBRARIES.lock().iter().any(|l| l.has_ifunc_at(address)) {
        return address;
    }
    call_resolver(address)
}

/// Calls an IFUNC resolver at `address` for the implementation it picks.
fn call_resolver(address: usize) -> usize {
    // SAFETY: an STT_GNU_IFUNC symbol's value is a resolver taking no
    // arguments we must supply on x86 (glibc's read its CPU features) and
    // returning the implementation's address.
    unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(address)() }
}

/// Reads each library DynamoRIO's private loader holds that is not in
/// `known`, from its mapped image.
fn read_new_libraries(known: &[LibraryImage]) -> Vec<LibraryImage> {
    let mut new = Vec::new();
    for_each_private_library(|path, base, phdrs| {
        if known.iter().any(|l| l.path == path && l.base == base) {
            return;
        }
        // SAFETY: `phdrs` are the program headers of a library mapped at
        // `base`, and it stays mapped while we read it: we are inside
        // DynamoRIO's `dl_iterate_phdr`, which holds its loader's lock, so
        // no private library is unloaded meanwhile.
        if let Some(image) = unsafe { LibraryImage::from_memory(path, base, phdrs) } {
            new.push(image);
        }
    });
    new
}

/// Calls `f(path, load base, program headers)` for each library
/// DynamoRIO's private loader holds, except DynamoRIO itself. A client's
/// `dl_iterate_phdr` is redirected by DynamoRIO to list them; `f` runs
/// while DynamoRIO holds its loader's lock.
fn for_each_private_library(mut f: impl FnMut(&str, usize, &[image::elf::Phdr])) {
    type Visit<'a> = &'a mut dyn FnMut(&str, usize, &[image::elf::Phdr]);
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `data` is the `Visit` passed below; `info` and the name
        // and headers it points to are valid for the call.
        let f = &mut *(data as *mut Visit<'_>);
        let info = &*info;
        if info.dlpi_name.is_null() || info.dlpi_phdr.is_null() {
            return 0;
        }
        let name = std::ffi::CStr::from_ptr(info.dlpi_name).to_string_lossy();
        if name.starts_with('/') && !name.contains("libdynamorio") {
            let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            f(&name, info.dlpi_addr as usize, phdrs);
        }
        0
    }
    let mut f: Visit<'_> = &mut f;
    // SAFETY: the callback only calls `f`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut f as *mut Visit<'_> as *mut libc::c_void) };
}
