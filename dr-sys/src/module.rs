//! The target's modules (executable and shared libraries) as DynamoRIO
//! reports them.

use crate::ffi;
use std::ffi::CStr;

/// What ProcessTap needs to know of one loaded module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The name users match against: the soname, or the file name.
    pub name: String,
    /// The full path it was loaded from.
    pub path: String,
    /// Lowest and one past the highest address of its mapped segments.
    pub start: usize,
    pub end: usize,
}

impl ModuleInfo {
    /// Copies what we need out of DynamoRIO's module record.
    ///
    /// # Safety
    /// `data` must point to a live `module_data_t` from DynamoRIO.
    pub unsafe fn from_raw(data: *const ffi::module_data_t) -> ModuleInfo {
        let d = &*data;
        let cstr = |p: *const std::ffi::c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let name = cstr(ffi::dr_module_preferred_name(data));
        let path = cstr(d.full_path);
        ModuleInfo { name, path, start: d.__bindgen_anon_1.start as usize, end: d.end as usize }
    }
}

/// The path of the target's main executable.
pub fn main_module() -> Option<ModuleInfo> {
    // SAFETY: DR returns a copy we must free, or null.
    unsafe {
        let m = ffi::dr_get_main_module();
        if m.is_null() {
            return None;
        }
        let info = ModuleInfo::from_raw(m);
        ffi::dr_free_module_data(m);
        Some(info)
    }
}

/// True for memory of DynamoRIO or of the client (libdynamorio.so and
/// libptap.so show up as modules too, but are not the target's).
pub fn belongs_to_tracer(addr: usize) -> bool {
    // SAFETY: both only look the address up in DR's tables.
    unsafe { ffi::dr_memory_is_dr_internal(addr as *const u8) != 0 || ffi::dr_memory_is_in_client(addr as *const u8) != 0 }
}
