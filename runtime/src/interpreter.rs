//! Starting CPython inside the target and loading the script.

use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

/// The Python installation libpython belongs to (`sys.base_prefix` of the
/// interpreter pyo3 was built against): Debian's is `/usr`.
const PYTHON_HOME: &str = env!("PTAP_PYTHON_HOME");

/// Starts the interpreter with `_ptap` built in. Isolated: the target's
/// environment (PYTHONPATH, PYTHONHOME, ...) belongs to the target, and
/// Python installs no signal handlers behind DynamoRIO's back.
///
/// `site` is not run by CPython but by [`DEFERRED_SITE`], which sets the
/// same `sys.path` at once and holds back the costly part (the `.pth`
/// files' import lines and `sitecustomize`) until the script first
/// imports a module not imported yet: see `deferred_site.py` for why that
/// keeps what scripts import the same.
pub fn initialize() -> Result<(), String> {
    pyo3::append_to_inittab!(_ptap);
    let home = CString::new(PYTHON_HOME).unwrap();
    let program = CString::new("processtap").unwrap();
    // SAFETY: the PyConfig API used as CPython's "Python Initialization
    // Configuration" documents it: init, set, initialize, clear.
    unsafe {
        // UTF-8 mode: the private libc's locale is "C" (its setlocale never
        // sees the target's LANG), which made the tracer's Python read and
        // name files as ASCII; the tracer's own streams are UTF-8 already.
        let mut preconfig = MaybeUninit::<ffi::PyPreConfig>::uninit();
        ffi::PyPreConfig_InitIsolatedConfig(preconfig.as_mut_ptr());
        let mut preconfig = preconfig.assume_init();
        preconfig.utf8_mode = 1;
        check(ffi::Py_PreInitialize(&preconfig))?;
        let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.install_signal_handlers = 0;
        config.site_import = 0;
        let home_field = &mut config.home as *mut _;
        check(ffi::PyConfig_SetBytesString(&mut config, home_field, home.as_ptr()))?;
        let program_field = &mut config.program_name as *mut _;
        check(ffi::PyConfig_SetBytesString(&mut config, program_field, program.as_ptr()))?;
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        check(status)?;
        // Every entry into Python, start-up's included, goes through the
        // dispatcher, which takes the GIL with the thread's own state.
        crate::dispatch::adopt_thread_state(ffi::PyEval_SaveThread());
    }
    crate::dispatch::with_python(|py| {
        deferred_site(py)
            .and_then(|m| m.call_method0("install").map(drop))
            .map_err(|e| format!("Python failed to start: site: {e}"))
    })
}

/// The module that does what `site` does (see [`initialize`]), from the
/// bytecode build.rs compiled, or from its source when this Python's
/// bytecode is not the build's.
fn deferred_site(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    precompiled_module(py, "_ptap_deferred_site", DEFERRED_SITE_CODE, DEFERRED_SITE)
}

/// The module `name` from `compiled` (a bytecode magic number and a
/// marshalled code object), or from `source` when the magic number is not
/// this Python's.
fn precompiled_module<'py>(py: Python<'py>, name: &str, compiled: &[u8], source: &str) -> PyResult<Bound<'py, PyModule>> {
    let (magic, marshalled) = compiled.split_at(4.min(compiled.len()));
    let ours = py.import("_frozen_importlib_external")?.getattr("MAGIC_NUMBER")?;
    if ours.cast::<pyo3::types::PyBytes>()?.as_bytes() != magic {
        let source = CString::new(source).unwrap();
        return PyModule::from_code(py, &source, c"<ptap deferred_site.py>", &CString::new(name).unwrap());
    }
    let code = py.import("marshal")?.call_method1("loads", (pyo3::types::PyBytes::new(py, marshalled),))?;
    let module = PyModule::new(py, name)?;
    py.import("builtins")?.call_method1("exec", (code, module.dict()))?;
    Ok(module)
}

const DEFERRED_SITE: &str = include_str!("deferred_site.py");
/// Magic number and marshalled code of `deferred_site.py` (see build.rs).
const DEFERRED_SITE_CODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/deferred_site.marshal"));

use crate::native_module::_ptap;

fn check(status: ffi::PyStatus) -> Result<(), String> {
    // SAFETY: reads a status struct CPython returned.
    unsafe {
        if ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
        };
        Err(format!("Python failed to start: {msg}"))
    }
}

/// The directory holding the `ptap` package (see
/// [`ptap_options::layout::find_ptap_lib`]).
pub fn find_ptap_lib(client_path: &str) -> Option<PathBuf> {
    ptap_options::layout::find_ptap_lib(Path::new(client_path))
}

/// Makes `ptap` importable, the tracer's streams Python's stdout/stderr,
/// and starting a thread or forking an error (see `ptap/threads.py`,
/// `ptap/forks.py`).
pub fn prepare(py: Python<'_>, ptap_lib: &Path) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.getattr("path")?.call_method1("insert", (0, ptap_lib.to_string_lossy().as_ref()))?;
    py.import("ptap.output")?.call_method0("install_streams")?;
    py.import("ptap.threads")?.call_method0("refuse_new_threads")?;
    py.import("ptap.forks")?.call_method0("refuse_forks")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_site_loads_from_bytecode_or_from_source() {
        Python::initialize();
        Python::attach(|py| {
            // The bytecode build.rs made, as the tracer loads it; and the
            // source, as when the magic number is not this Python's.
            let mut other_magic = DEFERRED_SITE_CODE.to_vec();
            other_magic[0] ^= 0xff;
            for compiled in [DEFERRED_SITE_CODE, &other_magic[..]] {
                let module = precompiled_module(py, "_ptap_deferred_site", compiled, DEFERRED_SITE).unwrap();
                assert_eq!(module.name().unwrap().to_string(), "_ptap_deferred_site");
                assert!(module.getattr("install").unwrap().is_callable());
                assert!(module.getattr("_DeferredSite").unwrap().hasattr("find_spec").unwrap());
            }
        });
    }
}
