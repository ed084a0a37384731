//! The one place where Rust errors become Python exceptions.

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyIndexError, PyMemoryError, PyOSError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use zuring_array::ArrayError;
use zuring_io::IoError;

pyo3::create_exception!(
    zuring._native,
    ZuringError,
    pyo3::exceptions::PyException,
    "Base class of zuring's errors."
);
pyo3::create_exception!(
    zuring._native,
    UnsupportedError,
    ZuringError,
    "A codec, data type or feature zuring cannot handle."
);

/// `CorruptDataError(ZuringError, ValueError)`: stored bytes are inconsistent (a corrupt shard
/// index or chunk). Made when the module is registered (a class with two bases).
static CORRUPT_DATA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
/// `EncodeError(ZuringError, ValueError)`: values the array's codecs cannot store.
static ENCODE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A `zuring._native` exception class deriving from both `ZuringError` and `ValueError`.
fn value_error_class(py: Python<'_>, name: &str, doc: &str) -> PyResult<Py<PyType>> {
    let bases = PyTuple::new(
        py,
        [py.get_type::<ZuringError>(), py.get_type::<PyValueError>()],
    )?;
    let namespace = PyDict::new(py);
    namespace.set_item("__module__", "zuring._native")?;
    namespace.set_item("__doc__", doc)?;
    let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ZuringError", py.get_type::<ZuringError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    let classes = [
        (
            &CORRUPT_DATA,
            "CorruptDataError",
            "Stored bytes are inconsistent: a corrupt shard index or chunk.",
        ),
        (
            &ENCODE,
            "EncodeError",
            "Values the array's codecs cannot store (out of a stored type's range, say).",
        ),
    ];
    for (lock, name, doc) in classes {
        let class = lock.get_or_try_init(py, || value_error_class(py, name, doc))?;
        m.add(name, class.bind(py))?;
    }
    Ok(())
}

/// An exception of one of the two-base classes (a plain `ZuringError` before registration).
fn raise(class: &PyOnceLock<Py<PyType>>, text: String) -> PyErr {
    Python::attach(|py| match class.get(py) {
        Some(class) => PyErr::from_type(class.bind(py).clone(), text),
        None => ZuringError::new_err(text),
    })
}

/// A `CorruptDataError` with `text`.
pub fn corrupt_data(text: String) -> PyErr {
    raise(&CORRUPT_DATA, text)
}

/// Map an IO error.
pub fn io(err: IoError) -> PyErr {
    let text = err.to_string();
    match err {
        IoError::NotFound { .. } => PyFileNotFoundError::new_err(text),
        IoError::OutOfBounds { .. } | IoError::InvalidRange { .. } => PyValueError::new_err(text),
        IoError::InvalidConfig { .. } => PyValueError::new_err(text),
        _ => PyOSError::new_err(text),
    }
}

/// Map an array error.
pub fn array(err: ArrayError) -> PyErr {
    let text = err.to_string();
    match err {
        ArrayError::NotFound { .. } | ArrayError::GroupNotFound { .. } => {
            PyFileNotFoundError::new_err(text)
        }
        ArrayError::NodeExists { .. } => PyFileExistsError::new_err(text),
        ArrayError::Selection { .. } => {
            if text.contains("out of bounds") || text.contains("spans") {
                PyIndexError::new_err(text)
            } else {
                PyValueError::new_err(text)
            }
        }
        ArrayError::OutputSize { .. } | ArrayError::Metadata { .. } => PyValueError::new_err(text),
        ArrayError::TooLarge { .. } => PyMemoryError::new_err(text),
        ArrayError::CorruptShardIndex { .. }
        | ArrayError::UnreadableShardIndex { .. }
        | ArrayError::CorruptChunk { .. } => corrupt_data(text),
        ArrayError::Encode { .. } => raise(&ENCODE, text),
        ArrayError::Unsupported { .. } => UnsupportedError::new_err(text),
        ArrayError::Io(e) => io(e),
        ArrayError::Threads { .. } => PyOSError::new_err(text),
        _ => ZuringError::new_err(text),
    }
}
