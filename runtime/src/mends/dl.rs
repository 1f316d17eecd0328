//! `dlopen`, `dlerror` and `dlclose` for private libraries. The private
//! ld.so was never started, so its `dlopen` crashes; CPython dlopens
//! extension modules from `lib-dynload` (`_json`, `_decimal`, `_ctypes`).
//! Ours load through DynamoRIO's private loader, which resolves the
//! extension's imports against the private libpython. DynamoRIO's own
//! `dlsym` for private libraries only knows the names it redirects, so
//! `dlsym` is ours too: it looks names up in the libraries our `dlopen`
//! returned and hands every other call to DynamoRIO's.

use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The message `dlerror` returns next; cleared when read, as in libc.
static LAST_ERROR: Mutex<Option<CString>> = Mutex::new(None);
/// Keeps the string `dlerror` last returned alive until the next call.
static RETURNED_ERROR: Mutex<Option<CString>> = Mutex::new(None);

/// Handles our `dlopen` returned and not yet closed.
static OPEN_HANDLES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// DynamoRIO's `dlsym` redirection, as found in the first slot we replace.
pub(super) static DR_DLSYM: AtomicUsize = AtomicUsize::new(0);

/// What our `dlopen(NULL)` returns: not a valid pointer, only a token.
const GLOBAL_HANDLE: usize = 0x7074_6170; // "ptap"

/// Directories searched for a bare library name, as ld.so would by default.
const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/i386-linux-gnu",
    "/usr/lib/i386-linux-gnu",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

fn set_error(message: String) {
    *LAST_ERROR.lock() = CString::new(message).ok();
}

/// The file a `dlopen` argument names.
fn resolve(name: &str) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    LIBRARY_DIRS.iter().map(|d| format!("{d}/{name}")).find(|p| std::path::Path::new(p).is_file())
}

/// The `dlopen(3)` private libraries call instead of ld.so's.
pub extern "C" fn dlopen(file: *const c_char, _flags: c_int) -> *mut c_void {
    if file.is_null() {
        // The "main program" of the tracer's Python: lookups search every
        // private library (ctypes opens it for `ctypes.pythonapi`).
        return GLOBAL_HANDLE as *mut c_void;
    }
    // SAFETY: the caller passes a NUL-terminated path, as dlopen requires.
    let name = unsafe { CStr::from_ptr(file) }.to_string_lossy().into_owned();
    let Some(path) = resolve(&name) else {
        set_error(format!("{name}: cannot open shared object file: No such file or directory"));
        return std::ptr::null_mut();
    };
    match dr_sys::loader::load_aux_library(&path) {
        Some(lib) => {
            OPEN_HANDLES.lock().push(lib.handle as usize);
            super::mend_new_libraries();
            lib.handle
        }
        None => {
            set_error(format!("{path}: DynamoRIO's private loader could not load it"));
            std::ptr::null_mut()
        }
    }
}

/// The `dlerror(3)` to go with [`dlopen`].
pub extern "C" fn dlerror() -> *mut c_char {
    let message = LAST_ERROR.lock().take();
    let mut returned = RETURNED_ERROR.lock();
    *returned = message;
    returned.as_ref().map_or(std::ptr::null_mut(), |m| m.as_ptr() as *mut c_char)
}

/// The `dlclose(3)` to go with [`dlopen`].
pub extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    if handle as usize == GLOBAL_HANDLE {
        return 0;
    }
    // SAFETY: CPython closes only handles our dlopen returned, once it no
    // longer uses the module.
    OPEN_HANDLES.lock().retain(|&h| h != handle as usize);
    if unsafe { dr_sys::loader::unload_aux_library(handle) } {
        super::forget_unloaded_libraries();
        0
    } else {
        set_error("dlclose: not a library this loader opened".into());
        -1
    }
}

/// The `dlsym(3)` to go with [`dlopen`].
pub extern "C" fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void {
    if handle as usize == GLOBAL_HANDLE {
        // SAFETY: the caller passes a NUL-terminated name, as dlsym requires.
        let name = unsafe { CStr::from_ptr(symbol) }.to_string_lossy();
        return match super::lookup_in_private_libraries(&name) {
            Some(address) => address as *mut c_void,
            None => {
                set_error(format!("undefined symbol: {name}"));
                std::ptr::null_mut()
            }
        };
    }
    if OPEN_HANDLES.lock().contains(&(handle as usize)) {
        // SAFETY: the caller passes a NUL-terminated name, as dlsym requires.
        let name = unsafe { CStr::from_ptr(symbol) }.to_string_lossy();
        return match dr_sys::loader::aux_symbol(handle, &name) {
            Some(address) => super::resolve_ifunc(address) as *mut c_void,
            None => {
                set_error(format!("undefined symbol: {name}"));
                std::ptr::null_mut()
            }
        };
    }
    match DR_DLSYM.load(Ordering::Relaxed) {
        0 => std::ptr::null_mut(),
        // SAFETY: the address was DynamoRIO's dlsym redirection, which has
        // dlsym's signature.
        dr => unsafe {
            std::mem::transmute::<usize, extern "C" fn(*mut c_void, *const c_char) -> *mut c_void>(dr)(handle, symbol)
        },
    }
}
