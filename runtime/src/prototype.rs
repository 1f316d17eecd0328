//! C prototypes as the native side holds them: the type of each argument
//! and of the return value, and where each argument is when the function
//! is entered, so that `ctx.args` and `ctx.retval` decode values without
//! asking Python.
//!
//! The prototypes come from the script's `include()` and `declare()` and
//! from the built-in system-call table (`ptap.prototypes` and
//! `ptap.syscalls`), as the plain tuples of their `to_data()`, read once
//! after the script's top level ran, and only if a probe of their kind
//! exists ([`load_functions`], [`load_syscalls`]).

use once_cell::sync::OnceCell;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::collections::HashMap;

/// How a value of one C type is decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum CType {
    /// A return type only.
    Void,
    /// An integer of `size` bytes (enums too).
    Int { size: u8, signed: bool },
    Bool,
    Float,
    Double,
    /// `long double`: x87's 80-bit format, decoded to the nearest double;
    /// a return value only (an argument is in memory, not read).
    LongDouble,
    /// Any pointer not decoded further: an int.
    Pointer,
    /// `char *`: the NUL-terminated string it points to.
    Str,
    /// A system call's buffer: `length` bytes at the pointer.
    Buffer { length: Length, direction: Direction },
    /// A NULL-terminated array of strings (`execve`'s argv).
    Strings,
    /// A type whose place or value we cannot know (a struct passed by
    /// value, `long double`): the reason why.
    Unsupported(String),
}

/// Where a buffer's length comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// The value of another argument (its index).
    Argument(usize),
    /// The call's return value (a `read` fills that many bytes).
    Retval,
}

/// Whether a buffer is read by the call or filled by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    /// Holds data at entry (`write`).
    In,
    /// Holds data only once the call returned (`read`).
    Out,
}

/// One function's or system call's prototype.
#[derive(Debug, Clone, PartialEq)]
pub struct Prototype {
    pub name: String,
    pub ret: CType,
    pub params: Vec<CType>,
    pub variadic: bool,
}

impl CType {
    /// Whether the SysV ABI passes it in a vector register.
    fn is_floating(&self) -> bool {
        matches!(self, CType::Float | CType::Double)
    }

    /// From `(kind, size, signed, detail)`, as `ptap.prototypes` makes it.
    fn from_data(data: &Bound<'_, PyAny>) -> PyResult<CType> {
        // The kind as a borrowed str: a String for each of the ~850 types
        // of the system-call table cost half a millisecond at each start.
        let (kind, size, signed, detail): (Bound<'_, PyString>, usize, bool, Bound<'_, PyAny>) = data.extract()?;
        Ok(match kind.to_str()? {
            "void" => CType::Void,
            "int" => CType::Int { size: size as u8, signed },
            "bool" => CType::Bool,
            "float" => CType::Float,
            "double" => CType::Double,
            "long double" => CType::LongDouble,
            "pointer" => CType::Pointer,
            "string" => CType::Str,
            "strings" => CType::Strings,
            "buffer" => {
                let (length, direction): (Bound<'_, PyAny>, String) = detail.extract()?;
                let length = match length.extract::<usize>() {
                    Ok(index) => Length::Argument(index),
                    Err(_) if length.extract::<String>().is_ok_and(|s| s == "retval") => Length::Retval,
                    Err(_) => return Err(PyValueError::new_err(format!("bad buffer length {length}"))),
                };
                let direction = if direction == "out" { Direction::Out } else { Direction::In };
                CType::Buffer { length, direction }
            }
            "unsupported" => CType::Unsupported(detail.extract().unwrap_or_else(|_| "cannot be decoded".into())),
            other => return Err(PyValueError::new_err(format!("unknown C type kind {other:?}"))),
        })
    }
}

impl Prototype {
    /// From `Prototype.to_data()`: `(name, restype, params, variadic)`.
    pub fn from_data(data: &Bound<'_, PyAny>) -> PyResult<Prototype> {
        let (name, ret, params, variadic): (String, Bound<'_, PyAny>, Vec<Bound<'_, PyAny>>, bool) = data.extract()?;
        Ok(Prototype {
            name,
            ret: CType::from_data(&ret)?,
            params: params.iter().map(CType::from_data).collect::<PyResult<_>>()?,
            variadic,
        })
    }
}

/// Where an argument is when the call starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// Integer argument word `n` of the calling convention, as drwrap
    /// counts them: the six argument registers, then the stack words
    /// above the return address (a system call's parameter `n`).
    Word(usize),
    /// Words `n` and `n + 1`, low first: an 8-byte argument on 32-bit
    /// x86's stack (`double`, `long long`).
    WordPair(usize),
    /// Vector register xmm`n`.
    Vector(usize),
    /// Not known: the reason.
    Unknown(String),
}

/// A prototype with the place of each argument.
#[derive(Debug)]
pub struct Signature {
    pub prototype: Prototype,
    pub locations: Vec<Location>,
    /// The next integer word after the fixed arguments, where the first
    /// argument of a variadic function's `...` is (if it is an integer).
    next_word: usize,
}

/// Integer argument registers of the SysV x86-64 ABI.
const INTEGER_REGISTERS: usize = 6;
/// Vector argument registers of the SysV x86-64 ABI.
const VECTOR_REGISTERS: usize = 8;

impl Signature {
    /// Places a function's arguments by the platform's C calling
    /// convention (SysV x86-64: integers in six registers, floating
    /// values in eight vector registers, the rest on the stack in order;
    /// 32-bit x86: everything on the stack).
    pub fn for_function(prototype: Prototype) -> Signature {
        let mut locations = Vec::with_capacity(prototype.params.len());
        let (mut integers, mut vectors, mut stack) = (0, 0, 0);
        let mut lost: Option<String> = None;
        for ty in &prototype.params {
            if let Some(reason) = &lost {
                locations.push(Location::Unknown(format!("it follows an argument that {reason}")));
                continue;
            }
            let unplaced = match ty {
                CType::Unsupported(reason) => Some(reason.clone()),
                CType::LongDouble => Some("is a long double (passed in memory, not read)".to_string()),
                _ => None,
            };
            let location = if let Some(reason) = unplaced {
                lost = Some(reason.clone());
                Location::Unknown(reason)
            } else if cfg!(target_arch = "x86") {
                // Every argument on the stack; 8-byte ones take two words.
                if matches!(ty, CType::Double | CType::Int { size: 8, .. }) {
                    stack += 2;
                    Location::WordPair(stack - 2)
                } else {
                    stack += 1;
                    Location::Word(stack - 1)
                }
            } else if ty.is_floating() && vectors < VECTOR_REGISTERS {
                vectors += 1;
                Location::Vector(vectors - 1)
            } else if !ty.is_floating() && integers < INTEGER_REGISTERS {
                integers += 1;
                Location::Word(integers - 1)
            } else {
                stack += 1;
                Location::Word(INTEGER_REGISTERS + stack - 1)
            };
            locations.push(location);
        }
        let next_word = if cfg!(target_arch = "x86") {
            stack
        } else if integers < INTEGER_REGISTERS {
            integers
        } else {
            INTEGER_REGISTERS + stack
        };
        Signature { prototype, locations, next_word }
    }

    /// A system call's parameters: parameter `i` is word `i`.
    pub fn for_syscall(prototype: Prototype) -> Signature {
        let locations = (0..prototype.params.len()).map(Location::Word).collect();
        let next_word = prototype.params.len();
        Signature { prototype, locations, next_word }
    }

    /// Where argument `index` is: a fixed argument, or for a variadic
    /// function one of its `...` taken as an integer word.
    pub fn location(&self, index: usize) -> Option<Location> {
        match self.locations.get(index) {
            Some(location) => Some(location.clone()),
            None if self.prototype.variadic => Some(Location::Word(self.next_word + index - self.locations.len())),
            None => None,
        }
    }

    /// The type of argument `index` (`...` arguments as raw words).
    pub fn param(&self, index: usize) -> Option<&CType> {
        const RAW_WORD: CType = CType::Pointer;
        match self.prototype.params.get(index) {
            Some(ty) => Some(ty),
            None if self.prototype.variadic => Some(&RAW_WORD),
            None => None,
        }
    }
}

/// One system call of the table.
pub struct SyscallEntry {
    pub name: String,
    pub signature: Option<Signature>,
}

/// The prototypes the script made known, by function name. Like the
/// system-call table, it lives as long as the process, so events refer to
/// its entries without counting references.
static FUNCTIONS: OnceCell<HashMap<String, Signature>> = OnceCell::new();
/// The system calls by number.
static SYSCALLS: OnceCell<Vec<Option<SyscallEntry>>> = OnceCell::new();

/// Reads the prototypes of `include()`/`declare()` from the ptap package
/// (after the script's top level ran, if it has function probes: nothing
/// else asks [`function`]).
pub fn load_functions(py: Python<'_>) -> PyResult<()> {
    let exported = py.import("ptap.prototypes")?.call_method0("exported")?;
    let mut functions = HashMap::new();
    for item in exported.call_method0("items")?.try_iter()? {
        let (name, data): (String, Bound<'_, PyAny>) = item?.extract()?;
        functions.insert(name, Signature::for_function(Prototype::from_data(&data)?));
    }
    let _ = FUNCTIONS.set(functions);
    Ok(())
}

/// Reads the system-call table, with its prototypes, from the ptap package.
pub fn load_syscalls(py: Python<'_>) -> PyResult<()> {
    let mut syscalls: Vec<Option<SyscallEntry>> = Vec::new();
    for item in py.import("ptap.syscalls")?.call_method0("table_data")?.try_iter()? {
        let (number, name, data): (usize, String, Option<Bound<'_, PyAny>>) = item?.extract()?;
        let signature = data.map(|d| Prototype::from_data(&d)).transpose()?.map(Signature::for_syscall);
        if syscalls.len() <= number {
            syscalls.resize_with(number + 1, || None);
        }
        syscalls[number] = Some(SyscallEntry { name, signature });
    }
    let _ = SYSCALLS.set(syscalls);
    Ok(())
}

/// The prototype of a function, placed by the calling convention.
pub fn function(name: &str) -> Option<&'static Signature> {
    FUNCTIONS.get()?.get(name)
}

/// A system call by number.
pub fn syscall(number: usize) -> Option<&'static SyscallEntry> {
    SYSCALLS.get()?.get(number)?.as_ref()
}

/// Every system call of the table, by number.
pub fn syscalls() -> impl Iterator<Item = (usize, &'static SyscallEntry)> {
    SYSCALLS.get().into_iter().flatten().enumerate().filter_map(|(n, e)| Some((n, e.as_ref()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int() -> CType {
        CType::Int { size: 4, signed: true }
    }

    fn prototype(params: Vec<CType>, variadic: bool) -> Prototype {
        Prototype { name: "f".into(), ret: int(), params, variadic }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn sysv_places_doubles_in_vector_registers_and_the_seventh_integer_on_the_stack() {
        let mut params = vec![CType::Double];
        params.extend(std::iter::repeat_n(int(), 7));
        let s = Signature::for_function(prototype(params, false));
        assert_eq!(s.locations[0], Location::Vector(0));
        assert_eq!(s.locations[1..7], (0..6).map(Location::Word).collect::<Vec<_>>()[..]);
        assert_eq!(s.locations[7], Location::Word(6));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn variadic_arguments_follow_the_fixed_integers() {
        let s = Signature::for_function(prototype(vec![CType::Str], true));
        assert_eq!(s.location(1), Some(Location::Word(1)));
        assert_eq!(s.location(3), Some(Location::Word(3)));
        assert_eq!(Signature::for_function(prototype(vec![CType::Str], false)).location(1), None);
    }

    #[test]
    fn arguments_after_a_struct_by_value_have_no_known_place() {
        let s = Signature::for_function(prototype(vec![CType::Unsupported("is a struct passed by value".into()), int()], false));
        assert!(matches!(s.locations[0], Location::Unknown(_)));
        assert!(matches!(&s.locations[1], Location::Unknown(r) if r.contains("struct")));
    }
}
