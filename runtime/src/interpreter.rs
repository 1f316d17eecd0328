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
        let code = CString::new(DEFERRED_SITE).unwrap();
        PyModule::from_code(py, &code, c"<ptap deferred_site.py>", c"_ptap_deferred_site")
            .and_then(|m| m.call_method0("install").map(drop))
            .map_err(|e| format!("Python failed to start: site: {e}"))
    })
}

/// The module that does what `site` does (see [`initialize`]).
const DEFERRED_SITE: &str = include_str!("deferred_site.py");

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

/// Makes `ptap` importable, the tracer's fds Python's stdout/stderr, and
/// starting a thread an error (see `ptap/threads.py`).
pub fn prepare(py: Python<'_>, ptap_lib: &Path, out_fd: i32, err_fd: i32) -> PyResult<()> {
    let sys = py.import("sys")?;
    sys.getattr("path")?.call_method1("insert", (0, ptap_lib.to_string_lossy().as_ref()))?;
    py.import("ptap.output")?.call_method1("install_streams", (out_fd, err_fd))?;
    py.import("ptap.threads")?.call_method0("refuse_new_threads")?;
    Ok(())
}
