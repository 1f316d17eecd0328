//! `_ptap`: the private native module scripts reach through the `ptap`
//! package. It is built into the interpreter before start-up.

use crate::context::HitContext;
use pyo3::prelude::*;

#[pymodule]
pub mod _ptap {
    #[pymodule_export]
    use super::HitContext;
    #[pymodule_export]
    use crate::context::Arguments;
    #[pymodule_export]
    use crate::memory::Memory;

    use pyo3::prelude::*;

    /// The target's process id.
    #[pyfunction]
    fn pid() -> u32 {
        dr_sys::process::pid()
    }

    /// The calling thread's id.
    #[pyfunction]
    fn tid() -> u32 {
        dr_sys::process::current_tid()
    }
}
