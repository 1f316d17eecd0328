//! `libptap.so`, ProcessTap's DynamoRIO client.
//!
//! DynamoRIO calls [`dr_client_main`] before the target's first
//! instruction. We parse the client arguments (the same options the
//! `processtap` launcher takes), start the runtime, which runs the script's
//! top level in an embedded CPython, hide DynamoRIO's variables from the
//! target's environment ([`environment`]), print the banner, and register the
//! DynamoRIO events and instrumentation that feed the probes: [`lifecycle`]
//! for process exit, threads and module loads, [`functions`] for function
//! entry and exit (drwrap), [`syscalls`] for system-call entry and exit
//! (clean calls at `syscall` instructions), [`memory`] for memory reads,
//! writes and executes, on the instruction-level layer [`instructions`].

mod banner;
mod branches;
mod entry_counts;
mod environment;
mod fd_guard;
mod functions;
#[cfg(target_arch = "x86")]
mod heap32;
mod instructions;
mod lifecycle;
mod match_reports;
mod memory;
mod script_image;
mod signal_masks;
mod syscall_filter;
mod site_probes;
mod start;
mod syscalls;

use std::ffi::{c_char, c_int, CStr};

/// DynamoRIO refuses a client that does not say which API it was built for.
#[no_mangle]
pub static _USES_DR_VERSION_: c_int = dr_sys::DR_API_VERSION;

/// The client's entry point, called by DynamoRIO at start-up.
///
/// # Safety
/// DynamoRIO passes `argc` NUL-terminated strings in `argv`, the first of
/// which is the client's path.
#[no_mangle]
pub unsafe extern "C" fn dr_client_main(id: dr_sys::ffi::client_id_t, argc: c_int, argv: *const *const c_char) {
    let args: Vec<String> = (1..argc.max(1) as usize)
        .map(|i| CStr::from_ptr(*argv.add(i)).to_string_lossy().into_owned())
        .collect();
    start::start(id, &args);
}
