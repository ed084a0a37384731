//! `zuring._native`: the Python face of zuring. Thin by design: arguments are converted, the GIL
//! is released around every call into the engine, and errors become Python exceptions
//! (`errors.rs`). Selection logic lives in `python/zuring` (descriptors) and in `zuring_array`
//! (everything else).

mod array;
mod buffer;
mod errors;
mod group;
mod hold;
mod reader;
mod sampler;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<array::Array>()?;
    m.add_class::<buffer::Buffer>()?;
    m.add_class::<group::Group>()?;
    m.add_class::<hold::MetadataHold>()?;
    m.add_class::<reader::Reader>()?;
    m.add_class::<sampler::Sampler>()?;
    m.add_function(wrap_pyfunction!(array::open_array, m)?)?;
    m.add_function(wrap_pyfunction!(array::create_array, m)?)?;
    m.add_function(wrap_pyfunction!(array::open_array_with_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(group::open_group, m)?)?;
    m.add_function(wrap_pyfunction!(group::create_group, m)?)?;
    m.add_function(wrap_pyfunction!(hold::hold_metadata, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
