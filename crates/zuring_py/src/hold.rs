//! `zuring._native.hold_metadata`: a node's metadata document held while Python reads, changes
//! and replaces it (attribute changes), against zuring's other writers of it.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use zuring_array::MetadataHold as Held;

/// A node's metadata document, held until `release` (or the end of a `with` block).
#[pyclass(module = "zuring._native", frozen)]
#[derive(Debug)]
pub struct MetadataHold {
    held: Mutex<Option<Held>>,
}

#[pymethods]
impl MetadataHold {
    /// Give the document back (again: nothing).
    fn release(&self, py: Python<'_>) {
        let held = self.held.lock().ok().and_then(|mut h| h.take());
        py.detach(move || drop(held));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release(py);
        false
    }
}

/// Hold the metadata document of the node in directory `path` (waiting, without the GIL,
/// while another writer holds it): zuring's resizes and attribute changes of the node, in any
/// thread or process of the machine, wait until it is released.
#[pyfunction]
pub fn hold_metadata(py: Python<'_>, path: PathBuf) -> MetadataHold {
    let held = py.detach(|| zuring_array::hold_metadata(&path));
    MetadataHold {
        held: Mutex::new(Some(held)),
    }
}
