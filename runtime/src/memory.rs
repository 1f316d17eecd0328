//! `ctx.mem`: the target's memory, read and written without ever faulting
//! the target. An unmapped address raises `ptap.MemoryFault`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PySlice};

/// Longest read `ctx.mem` does in one call, so a wrong length cannot
/// exhaust the tracer's memory.
const MAX_READ: usize = 64 << 20;

static MEMORY_FAULT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `ptap.MemoryFault(message)` with `.address` set.
pub fn memory_fault(py: Python<'_>, address: usize, message: String) -> PyErr {
    let class = MEMORY_FAULT.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ptap.errors")?.getattr("MemoryFault")?.unbind())
    });
    match class.and_then(|c| c.call1(py, (message,))) {
        Ok(exc) => {
            let _ = exc.setattr(py, "address", address);
            PyErr::from_value(exc.into_bound(py))
        }
        Err(e) => e,
    }
}

/// Reads exactly `len` bytes at `address` or raises MemoryFault.
pub fn read_exact(py: Python<'_>, address: usize, len: usize) -> PyResult<Vec<u8>> {
    if len > MAX_READ {
        return Err(PyValueError::new_err(format!("refusing to read {len} bytes at once (at most {MAX_READ})")));
    }
    let mut buf = vec![0u8; len];
    let got = dr_sys::memory::safe_read(address, &mut buf);
    if got < len {
        return Err(memory_fault(py, address + got, format!("cannot read {len} bytes at {address:#x}: {:#x} is not readable", address + got)));
    }
    Ok(buf)
}

/// Writes `data` at `address` or raises MemoryFault.
pub fn write_all(py: Python<'_>, address: usize, data: &[u8]) -> PyResult<()> {
    if dr_sys::memory::safe_write(address, data) {
        Ok(())
    } else {
        Err(memory_fault(py, address, format!("cannot write {} bytes at {address:#x}", data.len())))
    }
}

/// `ctx.mem`.
#[pyclass(name = "Memory", module = "_ptap", frozen)]
pub struct Memory;

#[pymethods]
impl Memory {
    /// `mem[a]` is the byte at `a`; `mem[a:b]` the bytes from `a` to `b`.
    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let (start, stop) = slice_bounds(slice)?;
            let data = read_exact(py, start, stop.saturating_sub(start))?;
            return Ok(PyBytes::new(py, &data).into_any());
        }
        let address: usize = key.extract()?;
        Ok(read_exact(py, address, 1)?[0].into_pyobject(py)?.into_any())
    }

    /// `mem[a] = byte`, `mem[a:b] = data` (exactly b - a bytes).
    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let (start, stop) = slice_bounds(slice)?;
            let data: Vec<u8> = value.extract()?;
            if data.len() != stop.saturating_sub(start) {
                return Err(PyValueError::new_err(format!(
                    "mem[{start:#x}:{stop:#x}] takes {} bytes, not {}",
                    stop.saturating_sub(start),
                    data.len()
                )));
            }
            return self.write(py, start, data);
        }
        let address: usize = key.extract()?;
        let byte: u8 = value.extract()?;
        self.write(py, address, vec![byte])
    }

    /// `n` bytes at `address`.
    fn read<'py>(&self, py: Python<'py>, address: usize, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &read_exact(py, address, n)?))
    }

    /// Writes `data` at `address`.
    fn write(&self, py: Python<'_>, address: usize, data: Vec<u8>) -> PyResult<()> {
        write_all(py, address, &data)
    }

    /// The NUL-terminated string at `address` (at most `max` bytes): str,
    /// or bytes when it is not valid UTF-8.
    #[pyo3(signature = (address, max = 4096))]
    fn string<'py>(&self, py: Python<'py>, address: usize, max: usize) -> PyResult<Bound<'py, PyAny>> {
        let bytes = read_c_string(py, address, max)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s.into_pyobject(py)?.into_any(),
            Err(e) => PyBytes::new(py, e.as_bytes()).into_any(),
        })
    }

    fn u8(&self, py: Python<'_>, address: usize) -> PyResult<u8> {
        Ok(u8::from_le_bytes(fixed(py, address)?))
    }
    fn u16(&self, py: Python<'_>, address: usize) -> PyResult<u16> {
        Ok(u16::from_le_bytes(fixed(py, address)?))
    }
    fn u32(&self, py: Python<'_>, address: usize) -> PyResult<u32> {
        Ok(u32::from_le_bytes(fixed(py, address)?))
    }
    fn u64(&self, py: Python<'_>, address: usize) -> PyResult<u64> {
        Ok(u64::from_le_bytes(fixed(py, address)?))
    }
    fn i8(&self, py: Python<'_>, address: usize) -> PyResult<i8> {
        Ok(i8::from_le_bytes(fixed(py, address)?))
    }
    fn i16(&self, py: Python<'_>, address: usize) -> PyResult<i16> {
        Ok(i16::from_le_bytes(fixed(py, address)?))
    }
    fn i32(&self, py: Python<'_>, address: usize) -> PyResult<i32> {
        Ok(i32::from_le_bytes(fixed(py, address)?))
    }
    fn i64(&self, py: Python<'_>, address: usize) -> PyResult<i64> {
        Ok(i64::from_le_bytes(fixed(py, address)?))
    }
    /// A pointer-sized word.
    fn ptr(&self, py: Python<'_>, address: usize) -> PyResult<usize> {
        Ok(usize::from_le_bytes(fixed(py, address)?))
    }
}

fn fixed<const N: usize>(py: Python<'_>, address: usize) -> PyResult<[u8; N]> {
    Ok(read_exact(py, address, N)?.try_into().unwrap())
}

fn slice_bounds(slice: &Bound<'_, PySlice>) -> PyResult<(usize, usize)> {
    let start: Option<usize> = slice.getattr("start")?.extract()?;
    let stop: Option<usize> = slice.getattr("stop")?.extract()?;
    let step: Option<isize> = slice.getattr("step")?.extract()?;
    match (start, stop, step) {
        (Some(a), Some(b), None | Some(1)) if a <= b => Ok((a, b)),
        _ => Err(PyTypeError::new_err("ctx.mem slices are mem[start:stop] with start <= stop, both given")),
    }
}

/// Reads up to the first NUL (not included) or MemoryFault.
fn read_c_string(py: Python<'_>, address: usize, max: usize) -> PyResult<Vec<u8>> {
    c_string(address, max).map_err(|at| {
        memory_fault(py, at, format!("cannot read the string at {address:#x}: {at:#x} is not readable"))
    })
}

/// The bytes of the NUL-terminated string at `address` (NUL not included,
/// at most `max`), or the first address that could not be read. Reads a
/// page at a time, so that a string ending just before an unmapped page is
/// still read.
pub fn c_string(address: usize, max: usize) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    let mut at = address;
    while out.len() < max {
        let to_page_end = 4096 - (at & 4095);
        let mut chunk = vec![0u8; to_page_end.min(max - out.len())];
        let got = dr_sys::memory::safe_read(at, &mut chunk);
        if got == 0 {
            return Err(at);
        }
        if let Some(nul) = chunk[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..got]);
        at += got;
    }
    Ok(out)
}
