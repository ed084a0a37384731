//! The one place where Rust errors become Python exceptions.

use pyo3::exceptions::{PyFileNotFoundError, PyIndexError, PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
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
    CorruptDataError,
    ZuringError,
    "Stored bytes are inconsistent: a corrupt shard index or chunk."
);
pyo3::create_exception!(
    zuring._native,
    UnsupportedError,
    ZuringError,
    "A codec, data type or feature zuring cannot handle."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ZuringError", py.get_type::<ZuringError>())?;
    m.add("CorruptDataError", py.get_type::<CorruptDataError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    Ok(())
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
        | ArrayError::CorruptChunk { .. } => CorruptDataError::new_err(text),
        ArrayError::Unsupported { .. } => UnsupportedError::new_err(text),
        ArrayError::Io(e) => io(e),
        _ => ZuringError::new_err(text),
    }
}
