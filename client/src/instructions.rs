//! The instruction-level layer that memory probes (and branch probes, when
//! they come) share: drreg, drutil and drx set up once; blocks rewritten
//! so that each access is one instruction's (`rep` loops, gathers and
//! scatters expanded); and, for each application instruction, what is
//! known of it when its block is built (its address, module and
//! function), handed to the probe classes that instrument it.

use dr_sys::ffi;
use dr_sys::instrument::{self, Instr, InstrList};
use dr_sys::process::DrContext;
use ptap_runtime::interned::intern;
use ptap_runtime::symbols::SymbolTable;
use parking_lot::Mutex;
use std::sync::Arc;

/// What a block's builder knows of one application instruction.
#[derive(Clone)]
pub struct Instruction {
    pub pc: usize,
    /// The module holding it ("" outside every module: generated code).
    pub module: &'static str,
    /// The names of the function holding it (aliases: `calloc`,
    /// `__libc_calloc`), by the nearest symbol at or below it.
    pub function_names: Vec<&'static str>,
}

/// The module last looked up: blocks come in runs from one module. (A
/// lock rather than a thread-local: a thread-local with a destructor
/// crashes under DynamoRIO's private libc.)
struct ModuleCache {
    start: usize,
    end: usize,
    name: &'static str,
    symbols: Arc<SymbolTable>,
}

static LAST_MODULE: Mutex<Option<ModuleCache>> = Mutex::new(None);

impl Instruction {
    fn at(pc: usize) -> Instruction {
        {
            let mut cache = LAST_MODULE.lock();
            if !cache.as_ref().is_some_and(|c| (c.start..c.end).contains(&pc)) {
                *cache = ptap_runtime::modules::containing(pc).map(|m| ModuleCache {
                    start: m.start,
                    end: m.end,
                    name: intern(&m.name),
                    symbols: m.symbols(),
                });
            }
            match &*cache {
                Some(m) => {
                    let function_names = m.symbols.lookup(pc - m.start).map(|(f, _)| f.names.iter().map(|n| intern(n)).collect());
                    Instruction { pc, module: m.name, function_names: function_names.unwrap_or_default() }
                }
                None => Instruction { pc, module: "", function_names: Vec::new() },
            }
        }
    }
}

/// Starts the layer when some probe class needs it; false if DynamoRIO's
/// extensions could not start.
pub fn install() -> bool {
    if !dr_sys::access::init() {
        return false;
    }
    // SAFETY: registering plain extern "C" callbacks with the signatures
    // drmgr expects (drmgr is initialised by the lifecycle events).
    unsafe {
        ffi::drmgr_register_bb_app2app_event(Some(on_app2app), std::ptr::null_mut());
        ffi::drmgr_register_bb_instrumentation_event(None, Some(on_instruction), std::ptr::null_mut());
    }
    true
}

unsafe extern "C" fn on_app2app(
    dc: *mut std::ffi::c_void,
    _tag: *mut std::ffi::c_void,
    bb: *mut ffi::instrlist_t,
    _for_trace: ffi::bool_,
    _translating: ffi::bool_,
) -> ffi::dr_emit_flags_t {
    dr_sys::access::expand_for_accesses(dc, bb);
    ffi::dr_emit_flags_t::DR_EMIT_DEFAULT
}

/// drmgr's insertion callback, for each instruction of each new block.
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
    let first = ffi::drmgr_is_first_instr(dc, instr) != 0;
    let operands = dr_sys::access::instruction_for_operands(dc);
    let fetched = dr_sys::access::instruction_for_fetch(dc);
    let at = |i: Instr| (!i.is_null()).then(|| Instruction::at(instrument::app_pc(i)));
    crate::memory::instrument(dc, bb, instr, first, operands, at(operands), fetched, at(fetched));
    ffi::dr_emit_flags_t::DR_EMIT_DEFAULT
}
