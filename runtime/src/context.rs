//! The `ctx` object a handler receives: one per event, holding what the
//! event knows. Fields common to all events are attributes; the rest depend
//! on the event's kind and are listed in an error when a handler asks for
//! one its event does not have.

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;

/// A value of one event-specific field.
#[derive(Debug, Clone)]
pub enum FieldValue {
    Int(i64),
    Str(String),
    None,
}

impl<'py> IntoPyObject<'py> for &FieldValue {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self {
            FieldValue::Int(i) => i.into_pyobject(py)?.into_any(),
            FieldValue::Str(s) => s.into_pyobject(py)?.into_any(),
            FieldValue::None => py.None().into_bound(py),
        })
    }
}

/// `ctx` in a handler.
#[pyclass(name = "Context", module = "_ptap", frozen)]
pub struct HitContext {
    /// The probe kind that fired: "process_exit", "module_load", ...
    #[pyo3(get)]
    pub event: &'static str,
    #[pyo3(get)]
    pub pid: u32,
    #[pyo3(get)]
    pub tid: u32,
    pub fields: Vec<(&'static str, FieldValue)>,
}

#[pymethods]
impl HitContext {
    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.fields.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.into_pyobject(py)?),
            None => {
                let mut known: Vec<&str> = vec!["event", "pid", "tid"];
                known.extend(self.fields.iter().map(|(n, _)| *n));
                Err(PyAttributeError::new_err(format!(
                    "{} events have no field '{name}' (they have: {})",
                    self.event,
                    known.join(", ")
                )))
            }
        }
    }

    fn __repr__(&self) -> String {
        let mut parts = vec![format!("pid={}", self.pid), format!("tid={}", self.tid)];
        for (n, v) in &self.fields {
            parts.push(match v {
                FieldValue::Int(i) => format!("{n}={i}"),
                FieldValue::Str(s) => format!("{n}={s:?}"),
                FieldValue::None => format!("{n}=None"),
            });
        }
        format!("<{} {}>", self.event, parts.join(" "))
    }

    fn __dir__(&self) -> Vec<&'static str> {
        let mut names = vec!["event", "pid", "tid"];
        names.extend(self.fields.iter().map(|(n, _)| *n));
        names
    }
}
