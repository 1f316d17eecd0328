//! DynamoRIO's private loader, which holds the client's own copies of libc,
//! libpython and everything they need, apart from the target's.

use crate::ffi;
use std::ffi::CString;

/// A library loaded by DynamoRIO's private loader as an extension of the
/// client (never visible to the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuxLibrary {
    pub handle: *mut std::ffi::c_void,
    pub start: usize,
    pub end: usize,
}

/// Loads `path` privately, with the libraries it needs.
pub fn load_aux_library(path: &str) -> Option<AuxLibrary> {
    let c = CString::new(path).ok()?;
    let mut start: *mut u8 = std::ptr::null_mut();
    let mut end: *mut u8 = std::ptr::null_mut();
    // SAFETY: `c` is NUL-terminated and outlives the call; DR writes the
    // bounds through the two pointers.
    let handle = unsafe { ffi::dr_load_aux_library(c.as_ptr(), &mut start, &mut end) };
    (!handle.is_null()).then_some(AuxLibrary { handle: handle as *mut _, start: start as usize, end: end as usize })
}

/// Unloads a library from [`load_aux_library`].
///
/// # Safety
/// Nothing may use the library's code or data afterwards.
pub unsafe fn unload_aux_library(handle: *mut std::ffi::c_void) -> bool {
    ffi::dr_unload_aux_library(handle as _) != 0
}

/// The address of an exported symbol of a library loaded privately.
pub fn aux_symbol(handle: *mut std::ffi::c_void, name: &str) -> Option<usize> {
    let c = CString::new(name).ok()?;
    // SAFETY: `handle` came from dr_load_aux_library; `c` is NUL-terminated.
    let f = unsafe { ffi::dr_lookup_aux_library_routine(handle as _, c.as_ptr()) };
    f.map(|f| f as usize)
}
