//! `ctx.args` and the decoding of C values: a word (or the bits of a
//! floating-point value) and its C type become the Python value a script
//! sees, and back.

use crate::call::{CallState, MAX_STRING};
use crate::context::HitContext;
use crate::prototype::{CType, Direction, Length};
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString};

/// Longest buffer decoded (`read` of a large file shows its first MiB;
/// `ctx.mem` reads the rest).
const MAX_BUFFER: usize = 1 << 20;
/// Most strings decoded from an array of strings (`execve`'s argv).
const MAX_STRINGS: usize = 4096;

static MISSING_PROTOTYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `ptap.MissingPrototype(message)`.
pub fn missing_prototype(py: Python<'_>, message: &str) -> PyErr {
    let class = MISSING_PROTOTYPE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ptap.errors")?.getattr("MissingPrototype")?.unbind())
    });
    match class.and_then(|c| c.call1(py, (message,))) {
        Ok(exc) => PyErr::from_value(exc.into_bound(py)),
        Err(e) => e,
    }
}

/// `ctx.args`: decoded by the prototype where one is known, else the raw
/// argument words of the calling convention.
#[pyclass(name = "Arguments", module = "_ptap", frozen)]
pub struct Arguments {
    ctx: Py<HitContext>,
}

impl Arguments {
    pub fn new(ctx: Py<HitContext>) -> Arguments {
        Arguments { ctx }
    }

    fn call(&self) -> &CallState {
        self.ctx.get().call.as_ref().expect("Arguments exist for calls only")
    }

    fn decode<'py>(&self, py: Python<'py>, index: usize, ty: &CType) -> PyResult<Bound<'py, PyAny>> {
        let call = self.call();
        if let CType::Unsupported(reason) = ty {
            return Err(PyTypeError::new_err(format!(
                "argument {index} cannot be decoded: it {reason} (ctx.args.raw({index}) is its raw word)"
            )));
        }
        let word = call.word(index)?;
        Ok(match ty {
            CType::Str => match call.entry_string(index) {
                Some(bytes) => text(py, bytes),
                None => string_at(py, word as usize),
            },
            CType::Buffer { length, direction } => {
                if *direction == Direction::Out && !call.is_exit {
                    // Not filled yet: the pointer.
                    return Ok(PyInt::new(py, word).into_any());
                }
                let length = match length {
                    Length::Argument(i) => Some(call.word(*i)? as usize),
                    Length::Retval => usize::try_from(call.retval_word()? as isize).ok(),
                };
                match length {
                    Some(n) => bytes_at(py, word as usize, n),
                    // A failed call filled nothing.
                    None => PyInt::new(py, word).into_any(),
                }
            }
            CType::Strings => strings_at(py, word as usize),
            other => scalar(py, other, word),
        })
    }
}

/// A word as the Python value of a type decoded without reading memory.
pub fn scalar<'py>(py: Python<'py>, ty: &CType, word: u64) -> Bound<'py, PyAny> {
    match ty {
        CType::Void => py.None().into_bound(py),
        CType::Int { size, signed } => {
            let bits = u32::from(*size).min(8) * 8;
            let shift = 64 - bits;
            if *signed {
                PyInt::new(py, ((word << shift) as i64) >> shift).into_any()
            } else {
                PyInt::new(py, (word << shift) >> shift).into_any()
            }
        }
        CType::Bool => PyBool::new(py, word & 0xff != 0).to_owned().into_any(),
        CType::Float => PyFloat::new(py, f32::from_bits(word as u32) as f64).into_any(),
        CType::Double | CType::LongDouble => PyFloat::new(py, f64::from_bits(word)).into_any(),
        CType::Str => string_at(py, word as usize),
        _ => PyInt::new(py, word).into_any(),
    }
}

/// The word a Python value stands for as an argument of type `ty`:
/// an int (two's complement if negative) for any type, a float for a
/// floating one.
pub fn encode(ty: Option<&CType>, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    match ty {
        Some(CType::Double | CType::LongDouble) if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>() => {
            Ok(value.extract::<f64>()?.to_bits())
        }
        Some(CType::Float) if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>() => {
            Ok(u64::from((value.extract::<f64>()? as f32).to_bits()))
        }
        _ if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() => Err(PyTypeError::new_err(
            "a string cannot be passed as is: write it into the target's memory (ctx.mem) and pass its address",
        )),
        // 8 bytes on 32-bit x86 too (two stack words).
        Some(CType::Int { size: 8, .. }) => to_u64(value),
        _ => Ok(to_word(value)? as u64),
    }
}

/// A Python int (negative ones as two's complement) as 64 bits.
fn to_u64(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(w) = value.extract::<u64>() {
        return Ok(w);
    }
    let signed: i64 = value.extract().map_err(|_| PyTypeError::new_err("a 64-bit integer must be an int that fits in 64 bits"))?;
    Ok(signed as u64)
}

/// `error`, raised while converting a value to set `field` (`ctx.retval`,
/// `ctx.args[2]`, ...), with the field named first: "ctx.retval: can't
/// convert negative int to unsigned". Same exception type.
pub fn naming_field(py: Python<'_>, field: &str, error: PyErr) -> PyErr {
    PyErr::from_type(error.get_type(py), format!("{field}: {}", error.value(py)))
}

/// A Python int (negative ones as two's complement) as a machine word.
pub fn to_word(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(w) = value.extract::<usize>() {
        return Ok(w);
    }
    let bits = usize::BITS;
    let signed: isize = value.extract().map_err(|_| PyTypeError::new_err(format!("a machine word must be an int that fits in {bits} bits")))?;
    Ok(signed as usize)
}

/// Bytes as str, or as bytes when they are not UTF-8.
fn text(py: Python<'_>, bytes: Vec<u8>) -> Bound<'_, PyAny> {
    match String::from_utf8(bytes) {
        Ok(s) => PyString::new(py, &s).into_any(),
        Err(e) => PyBytes::new(py, e.as_bytes()).into_any(),
    }
}

/// The string at `address`: None for NULL, the address itself when it
/// cannot be read (as strace shows a bad pointer).
fn string_at(py: Python<'_>, address: usize) -> Bound<'_, PyAny> {
    if address == 0 {
        return py.None().into_bound(py);
    }
    match crate::memory::c_string(address, MAX_STRING) {
        Ok(bytes) => text(py, bytes),
        Err(_) => PyInt::new(py, address).into_any(),
    }
}

/// `len` bytes at `address` (at most [`MAX_BUFFER`]); the address itself
/// when none can be read.
fn bytes_at(py: Python<'_>, address: usize, len: usize) -> Bound<'_, PyAny> {
    if address == 0 {
        return py.None().into_bound(py);
    }
    let mut buf = vec![0u8; len.min(MAX_BUFFER)];
    let got = dr_sys::memory::safe_read(address, &mut buf);
    if got == 0 && !buf.is_empty() {
        return PyInt::new(py, address).into_any();
    }
    PyBytes::new(py, &buf[..got]).into_any()
}

/// The NULL-terminated array of strings at `address`, as a list.
fn strings_at(py: Python<'_>, address: usize) -> Bound<'_, PyAny> {
    if address == 0 {
        return py.None().into_bound(py);
    }
    let word = std::mem::size_of::<usize>();
    let list = PyList::empty(py);
    for i in 0..MAX_STRINGS {
        let mut bytes = [0u8; 8];
        if dr_sys::memory::safe_read(address + i * word, &mut bytes[..word]) < word {
            return PyInt::new(py, address).into_any();
        }
        let pointer = u64::from_le_bytes(bytes) as usize;
        if pointer == 0 {
            break;
        }
        let _ = list.append(string_at(py, pointer));
    }
    list.into_any()
}

#[pymethods]
impl Arguments {
    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let call = self.call();
        let Some(signature) = &call.signature else {
            return Ok(PyInt::new(py, self.raw(index)?).into_any());
        };
        let count = signature.prototype.params.len();
        let i = if index < 0 { index + count as isize } else { index };
        let i = usize::try_from(i).map_err(|_| PyIndexError::new_err(format!("argument index {index} out of range")))?;
        let ty = signature.param(i).ok_or_else(|| {
            PyIndexError::new_err(format!("{} takes {count} argument(s); there is no argument {i}", signature.prototype.name))
        })?;
        self.decode(py, i, ty)
    }

    /// Argument `index` as the raw register or stack word (the bits of a
    /// floating-point argument).
    fn raw(&self, index: isize) -> PyResult<u64> {
        let i = usize::try_from(index).map_err(|_| PyIndexError::new_err("raw argument indices start at 0"))?;
        self.call().word(i)
    }

    /// `ctx.args[i] = v` at entry: the call receives `v`.
    fn __setitem__(&self, index: usize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let call = self.call();
        let ty = call.signature.as_ref().and_then(|s| s.param(index));
        let word = encode(ty, value).map_err(|e| naming_field(value.py(), &format!("ctx.args[{index}]"), e))?;
        call.set_word(index, word)
    }

    /// The prototype's number of arguments; without one, it is unknown.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        match &self.call().signature {
            Some(signature) => Ok(signature.prototype.params.len()),
            None => Err(missing_prototype(py, "no prototype is known for this call, so its number of arguments is not")),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let count = self.__len__(py)?;
        let values = (0..count).map(|i| self.__getitem__(py, i as isize)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)?.try_iter().map(|i| i.into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.__len__(py) {
            Ok(count) => {
                let shown: Vec<String> = (0..count)
                    .map(|i| self.__getitem__(py, i as isize).map_or("?".into(), |v| v.repr().map_or("?".into(), |r| r.to_string())))
                    .collect();
                format!("<args {}>", shown.join(", "))
            }
            Err(_) => {
                let words: Vec<String> = (0..6).map(|i| self.raw(i).map_or("?".into(), |w| format!("{w:#x}"))).collect();
                format!("<args (raw) {}, ...>", words.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_cut_to_their_width_and_sign_extended() {
        Python::initialize();
        Python::attach(|py| {
            let int = |size, signed, word: u64| scalar(py, &CType::Int { size, signed }, word).extract::<i128>().unwrap();
            assert_eq!(int(4, true, 0xffff_ffff), -1);
            assert_eq!(int(4, false, 0xdead_ffff_ffff), 0xffff_ffff);
            assert_eq!(int(1, true, 0x180), -128);
            assert_eq!(int(8, true, u64::MAX), -1);
            assert_eq!(int(8, false, u64::MAX), u64::MAX as i128);
            assert_eq!(scalar(py, &CType::Double, 2.5f64.to_bits()).extract::<f64>().unwrap(), 2.5);
            assert_eq!(scalar(py, &CType::Float, u64::from(1.5f32.to_bits())).extract::<f64>().unwrap(), 1.5);
        });
    }
}
