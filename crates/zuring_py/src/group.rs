//! Zarr groups: open, create, list members, open members.

use std::path::PathBuf;

use pyo3::prelude::*;
use zuring_array::{NodeKind, ZarrGroup};

use crate::array::Array;
use crate::errors;

/// An open Zarr group.
#[pyclass(module = "zuring._native", frozen)]
#[derive(Debug)]
pub struct Group {
    inner: ZarrGroup,
}

/// Open the group in directory `path`.
#[pyfunction]
pub fn open_group(py: Python<'_>, path: PathBuf) -> PyResult<Group> {
    let inner = py
        .detach(|| ZarrGroup::open(&path))
        .map_err(errors::array)?;
    Ok(Group { inner })
}

/// Create a Zarr v3 group in directory `path` with attributes given as JSON text.
#[pyfunction]
pub fn create_group(py: Python<'_>, path: PathBuf, attributes_json: &str) -> PyResult<Group> {
    let inner = py
        .detach(|| ZarrGroup::create_with_attributes_json(&path, attributes_json))
        .map_err(errors::array)?;
    Ok(Group { inner })
}

#[pymethods]
impl Group {
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    #[getter]
    fn zarr_format(&self) -> u8 {
        self.inner.zarr_format()
    }

    /// The attributes as JSON text.
    fn attributes_json(&self) -> String {
        self.inner.attributes_json()
    }

    /// The direct members, sorted: `(name, "array" | "group")`.
    fn members(&self, py: Python<'_>) -> PyResult<Vec<(String, &'static str)>> {
        let members = py.detach(|| self.inner.members()).map_err(errors::array)?;
        Ok(members
            .into_iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    NodeKind::Array => "array",
                    NodeKind::Group => "group",
                };
                (name, kind)
            })
            .collect())
    }

    /// Open the array `name` (nested: "a/b").
    fn open_array(&self, py: Python<'_>, name: &str) -> PyResult<Array> {
        py.detach(|| self.inner.open_array(name))
            .map(Array::new)
            .map_err(errors::array)
    }

    /// Open the group `name` (nested: "a/b").
    fn open_group(&self, py: Python<'_>, name: &str) -> PyResult<Group> {
        py.detach(|| self.inner.open_group(name))
            .map(|inner| Group { inner })
            .map_err(errors::array)
    }

    fn __repr__(&self) -> String {
        format!("<zuring._native.Group {}>", self.inner.path().display())
    }
}
