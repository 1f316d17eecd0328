//! `_ptap`: the private native module scripts reach through the `ptap`
//! package. It is built into the interpreter before start-up.

use crate::context::HitContext;
use pyo3::prelude::*;

#[pymodule]
pub mod _ptap {
    #[pymodule_export]
    use super::HitContext;
    #[pymodule_export]
    use crate::args::Arguments;
    #[pymodule_export]
    use crate::context::Registers;
    #[pymodule_export]
    use crate::memory::Memory;

    use pyo3::prelude::*;

    /// The counts of the `count=` probe `index` (its place in the script's
    /// list of probes): `[(key, events), ...]`, a key a str, an int or None.
    #[pyfunction]
    fn native_counts(py: Python<'_>, index: usize) -> PyResult<Vec<(Py<PyAny>, u64)>> {
        use crate::counts::KeyValue;
        crate::counts::of_probe(index)
            .into_iter()
            .map(|(key, n)| {
                let key = match key {
                    KeyValue::Name(name) => name.into_pyobject(py)?.into_any().unbind(),
                    KeyValue::Number(number) => number.into_pyobject(py)?.into_any().unbind(),
                    KeyValue::None => py.None(),
                };
                Ok((key, n))
            })
            .collect()
    }

    /// The target's process id.
    #[pyfunction]
    fn pid() -> u32 {
        dr_sys::process::pid()
    }

    /// Writes `data` to the tracer's stdout (`stream` 1) or stderr (2), in
    /// whole lines (see `output`).
    #[pyfunction]
    fn write_stream(stream: u8, data: &[u8]) -> PyResult<()> {
        crate::output::write(output_stream(stream)?, data);
        Ok(())
    }

    /// The fd of the tracer's stdout (`stream` 1) or stderr (2).
    #[pyfunction]
    fn stream_fileno(stream: u8) -> PyResult<i32> {
        let fds = crate::output::fds().ok_or_else(|| pyo3::exceptions::PyOSError::new_err("the tracer's streams are not open"))?;
        Ok(match output_stream(stream)? {
            crate::output::Stream::Stdout => fds.out,
            crate::output::Stream::Stderr => fds.err,
        })
    }

    fn output_stream(stream: u8) -> PyResult<crate::output::Stream> {
        match stream {
            1 => Ok(crate::output::Stream::Stdout),
            2 => Ok(crate::output::Stream::Stderr),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!("no tracer stream {stream}: 1 is stdout, 2 stderr"))),
        }
    }

    /// The calling thread's id.
    #[pyfunction]
    fn tid() -> u32 {
        dr_sys::process::current_tid()
    }

    /// Addresses where a function of this name starts, in every module.
    #[pyfunction]
    fn addresses_of(name: &str) -> Vec<usize> {
        crate::modules::addresses_of(name)
    }

    /// `(start, size)` of every data object or function of that name.
    #[pyfunction]
    fn ranges_of(name: &str) -> Vec<(usize, usize)> {
        crate::modules::ranges_of(name)
    }

    /// A new `AddressSet`'s id.
    #[pyfunction]
    fn address_set_new() -> u64 {
        crate::address_sets::new_set()
    }

    #[pyfunction]
    fn address_set_add(id: u64, start: usize, size: usize) {
        crate::address_sets::add(id, start, size)
    }

    #[pyfunction]
    fn address_set_discard(id: u64, start: usize) {
        crate::address_sets::discard(id, start)
    }

    #[pyfunction]
    fn address_set_clear(id: u64) {
        crate::address_sets::clear(id)
    }

    /// The ranges of set `id`, `(start, size)` in order of their starts.
    #[pyfunction]
    fn address_set_ranges(id: u64) -> Vec<(usize, usize)> {
        crate::address_sets::ranges(id)
    }

    /// Makes set `id` hold the definitions of `name` in the modules that
    /// load from now on: whole (`symbol_range`) or their first bytes (`symbol`).
    #[pyfunction]
    fn address_set_follow_symbol(id: u64, name: &str, whole: bool) {
        let extent = if whole { crate::symbol_sets::Extent::Whole } else { crate::symbol_sets::Extent::Start };
        crate::symbol_sets::follow(id, name, extent)
    }

    /// Names of the function starting at `address`.
    #[pyfunction]
    fn names_at(address: usize) -> Vec<String> {
        crate::modules::names_at(address)
    }

    /// Name of the module holding `address`, or None.
    #[pyfunction]
    fn module_of(address: usize) -> Option<String> {
        crate::modules::containing(address).map(|m| m.name)
    }

    /// `module!function+0xoff` for an address.
    #[pyfunction]
    fn symbolize(address: usize) -> String {
        crate::modules::symbolize(address)
    }
}
