//! `count=` probes on function entries that are decided when a module
//! loads (`function_entry(function_name == "malloc", count="function")`):
//! an inline increment of the probe's counter at the function's first
//! instruction, in the code cache, with no clean call and no drwrap.
//!
//! functions.rs hands over the (function, counter) pairs it finds at
//! module load, instead of wrapping the function; the insertion event
//! puts a `lock add` before each such function's first instruction
//! (drx_insert_counter_update, flags spilled by drreg only where live).
//! Probes that must look at the running thread or the caller, and IFUNC
//! symbols (whose implementation is known only when the resolver has run),
//! count through the wrapped path instead, natively still. x86-64 only:
//! drx cannot make a 64-bit locked add in a 32-bit process.

use dr_sys::ffi;
use dr_sys::instrument::{self, Instr, InstrList};
use dr_sys::process::DrContext;
use once_cell::sync::{Lazy, OnceCell};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

/// The counters to increment at each function address.
static COUNTERS: Lazy<RwLock<HashMap<usize, Vec<&'static AtomicU64>>>> = Lazy::new(|| RwLock::new(HashMap::new()));
/// The function addresses of each module, by its start, for its unload.
static BY_MODULE: Lazy<RwLock<HashMap<usize, Vec<usize>>>> = Lazy::new(|| RwLock::new(HashMap::new()));
static INSTALLED: OnceCell<bool> = OnceCell::new();

/// Whether inline counting works here: [`install`] ran and could start
/// drreg and drx, on x86-64.
pub fn available() -> bool {
    INSTALLED.get().copied().unwrap_or(false)
}

/// Registers the insertion event, at start-up (drmgr's events cannot be
/// registered from inside another of its events, such as a module load).
pub fn install() {
    INSTALLED.get_or_init(|| {
        cfg!(target_arch = "x86_64") && {
            if !dr_sys::access::init() {
                return false;
            }
            let mut priority = ffi::drmgr_priority_t {
                struct_size: std::mem::size_of::<ffi::drmgr_priority_t>(),
                name: c"ptap_entry_counts".as_ptr(),
                before: std::ptr::null(),
                after: std::ptr::null(),
                priority: dr_sys::instrument::AFTER_DRWRAP_PRIORITY,
            };
            // SAFETY: registering a plain extern "C" callback with the
            // signature drmgr expects (drmgr is started by the lifecycle
            // events, before any module loads).
            unsafe { ffi::drmgr_register_bb_instrumentation_event(None, Some(on_instruction), &mut priority) != 0 }
        }
    });
}

/// Counts each call of the function at `address`, in the module starting
/// at `module_start`, in `counter`. Its blocks are built after this (the
/// module has just loaded, and has not run).
pub fn add(module_start: usize, address: usize, counter: &'static AtomicU64) {
    COUNTERS.write().entry(address).or_default().push(counter);
    BY_MODULE.write().entry(module_start).or_default().push(address);
}

/// Forgets the functions of the module starting at `start`, unloaded.
pub fn on_module_unload(start: usize) {
    let Some(addresses) = BY_MODULE.write().remove(&start) else { return };
    let mut counters = COUNTERS.write();
    for address in addresses {
        counters.remove(&address);
    }
}

/// drmgr's insertion callback: the increments before a counted
/// function's first instruction.
unsafe extern "C" fn on_instruction(
    dc: *mut std::ffi::c_void,
    _tag: *mut std::ffi::c_void,
    bb: *mut ffi::instrlist_t,
    instr: *mut ffi::instr_t,
    _for_trace: ffi::bool_,
    _translating: ffi::bool_,
    _user_data: *mut std::ffi::c_void,
) -> ffi::dr_emit_flags_t {
    let (dc, bb, instr): (DrContext, InstrList, Instr) = (dc, bb, instr);
    if !instrument::is_app(instr) {
        return ffi::dr_emit_flags_t::DR_EMIT_DEFAULT;
    }
    let counters = COUNTERS.read();
    if let Some(list) = counters.get(&instrument::app_pc(instr)) {
        for counter in list {
            #[cfg(target_arch = "x86_64")]
            dr_sys::access::insert_counter_increment(dc, bb, instr, counter.as_ptr() as *const u64);
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (dc, bb, counter);
        }
    }
    ffi::dr_emit_flags_t::DR_EMIT_DEFAULT
}
