//! zarr-python's chunk requests and stored chunks as the engine takes them, and byte sources
//! backed by a Python `fetch` callable.

use std::path::PathBuf;

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1};
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PySlice;
use zuring_array::grid::Grid;
use zuring_array::{
    ByteSource, ChunkRequest, FetchKind, Fetched, FetchedSource, Indices, StoredChunk,
};
use zuring_io::ByteRange;

use super::{out_slice, PyStoredChunk};
use crate::errors;

/// One dimension of a pipeline request: a slice `(start, stop, step)`, a Python `slice` (as
/// zarr-python gives it: resolved against the dimension's length here, any step), or an index
/// array.
#[derive(FromPyObject)]
pub enum PyDimSel<'py> {
    /// A Python slice over a dimension of the length the request's context gives (first: the
    /// common case, tried before the others).
    PySlice(Bound<'py, PySlice>),
    /// `(start, stop, step)`, step >= 1.
    Slice((u64, u64, u64)),
    /// Explicit indices.
    Array(PyReadonlyArray1<'py, u64>),
}

impl PyDimSel<'_> {
    /// The indices selected along a dimension of `len` (used by Python slices): a slice with
    /// step 1 as its bounds, others listed.
    fn to_indices(&self, len: u64) -> PyResult<Indices> {
        match self {
            Self::Slice((start, stop, step)) => match *step {
                0 => Err(pyo3::exceptions::PyValueError::new_err("slice step 0")),
                1 => Ok((*start..*stop).into()),
                step => Ok((*start..*stop)
                    .step_by(usize::try_from(step).unwrap_or(usize::MAX))
                    .collect()),
            },
            Self::PySlice(slice) => {
                let len = isize::try_from(len).map_err(|_| {
                    pyo3::exceptions::PyValueError::new_err("dimension too long for a slice")
                })?;
                let ind = slice.indices(len)?;
                // `indices` clamps start and stop to the dimension, so every index lies in it.
                let start = ind.start.cast_unsigned() as u64;
                if ind.step == 1 {
                    return Ok(Indices::Run {
                        start,
                        len: ind.slicelength as u64,
                    });
                }
                Ok((0..ind.slicelength)
                    .map(|k| (ind.start + k.cast_signed() * ind.step).cast_unsigned() as u64)
                    .collect())
            }
            Self::Array(a) => Ok(a.as_array().to_vec().into()),
        }
    }
}

/// One request of zarr-python's pipeline, as built by `zuring.pipeline`.
#[derive(FromPyObject)]
pub enum PyChunkRequest<'py> {
    /// ("o", output index, chunk coords, per-dim indices, per-dim positions or None)
    Orthogonal(
        String,
        usize,
        Vec<u64>,
        Vec<PyDimSel<'py>>,
        Vec<Option<PyDimSel<'py>>>,
    ),
    /// ("p", output index, chunk coords, (N, ndim) coords, N positions)
    Points(
        String,
        usize,
        Vec<u64>,
        PyReadonlyArray2<'py, u64>,
        PyReadonlyArray1<'py, u64>,
    ),
}

impl PyChunkRequest<'_> {
    /// The engine's request; Python slices are resolved against the shape of the stored chunk
    /// the request names in `grid` (indices) and the shape of the output it names (positions,
    /// output axes in order).
    fn to_request(&self, grid: &Grid, out_shapes: &[Vec<u64>]) -> PyResult<ChunkRequest> {
        match self {
            Self::Orthogonal(kind, target, chunk, indices, positions) if kind == "o" => {
                let out_shape = out_shapes.get(*target).map_or(&[][..], Vec::as_slice);
                let mut axis = 0usize;
                Ok(ChunkRequest::Orthogonal {
                    target: *target,
                    chunk: chunk.clone(),
                    indices: indices
                        .iter()
                        .enumerate()
                        .map(|(d, sel)| {
                            let size = grid.dims().get(d).zip(chunk.get(d));
                            sel.to_indices(size.map_or(0, |(g, &k)| g.size(k)))
                        })
                        .collect::<PyResult<_>>()?,
                    positions: positions
                        .iter()
                        .map(|p| {
                            p.as_ref()
                                .map(|sel| {
                                    let len = out_shape.get(axis).copied().unwrap_or(0);
                                    axis += 1;
                                    sel.to_indices(len)
                                })
                                .transpose()
                        })
                        .collect::<PyResult<_>>()?,
                })
            }
            Self::Points(kind, target, chunk, coords, positions) if kind == "p" => {
                Ok(ChunkRequest::Points {
                    target: *target,
                    chunk: chunk.clone(),
                    coords: coords
                        .as_array()
                        .rows()
                        .into_iter()
                        .map(|r| r.to_vec())
                        .collect(),
                    positions: positions.as_array().to_vec(),
                })
            }
            _ => Err(pyo3::exceptions::PyValueError::new_err(
                "chunk requests are (\"o\", ...) or (\"p\", ...) tuples",
            )),
        }
    }
}

/// The engine's form of a batch of pipeline requests (see [`PyChunkRequest::to_request`]).
pub(super) fn to_requests(
    requests: &[PyChunkRequest<'_>],
    grid: &Grid,
    out_shapes: &[Vec<u64>],
) -> PyResult<Vec<ChunkRequest>> {
    requests
        .iter()
        .map(|r| r.to_request(grid, out_shapes))
        .collect()
}

/// Each output's shape with its bytes (uint8 views of C-contiguous arrays).
pub(super) fn outputs<'a>(
    shapes: Vec<Vec<u64>>,
    outs: &'a mut [PyReadwriteArray1<'_, u8>],
) -> PyResult<Vec<(Vec<u64>, &'a mut [u8])>> {
    if shapes.len() != outs.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "one shape per output",
        ));
    }
    shapes
        .into_iter()
        .zip(outs.iter_mut())
        .map(|(shape, out)| Ok((shape, out_slice(out)?)))
        .collect()
}

/// The bytes of a contiguous uint8 array.
pub(super) fn contiguous<'a>(
    array: &'a PyReadonlyArray1<'_, u8>,
    what: &str,
) -> PyResult<&'a [u8]> {
    array
        .as_slice()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("{what} must be contiguous")))
}

/// Run `f` with a byte source whose batches `fetch` (a Python callable, see `call_fetch`)
/// answers; the first exception `fetch` raises is raised again as it was.
pub(super) fn with_fetched<R: Send>(
    py: Python<'_>,
    fetch: &Py<PyAny>,
    f: impl FnOnce(&dyn ByteSource) -> zuring_array::Result<R> + Send,
) -> PyResult<R> {
    let raised: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
    let source = FetchedSource::new(|asks: &[(PathBuf, ByteRange)], kind| {
        Python::attach(|py| match call_fetch(py, fetch, asks, kind) {
            Ok(fetched) => fetched,
            Err(err) => {
                let message = err.to_string();
                if let Ok(mut slot) = raised.lock() {
                    slot.get_or_insert(err);
                }
                vec![Fetched::Failed(message); asks.len()]
            }
        })
    });
    let result = py.detach(|| f(&source));
    if let Some(err) = raised.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(err);
    }
    result.map_err(errors::array)
}

/// Stored chunks given by Python: coordinates and bytes (any buffer) or None.
pub(super) fn stored_chunks(
    py: Python<'_>,
    chunks: Vec<(Vec<u64>, Option<Bound<'_, PyAny>>)>,
) -> PyResult<Vec<StoredChunk>> {
    chunks
        .into_iter()
        .map(|(coords, old)| {
            let old = old
                .map(|b| PyBuffer::<u8>::get(&b).and_then(|buf| buf.to_vec(py)))
                .transpose()?;
            Ok((coords, old))
        })
        .collect()
}

/// Encoded stored chunks for Python: coordinates and `bytes`, or None (delete).
pub(super) fn py_stored_chunks(py: Python<'_>, chunks: Vec<StoredChunk>) -> Vec<PyStoredChunk<'_>> {
    chunks
        .into_iter()
        .map(|(coords, b)| (coords, b.map(|b| pyo3::types::PyBytes::new(py, &b))))
        .collect()
}

/// Call a Python `fetch` with one batch of `(key, start, end, suffix)` and what it is for
/// (`"indexes"`: shard indexes, `"chunks"`: stored or inner chunks), and copy what it returns.
fn call_fetch(
    py: Python<'_>,
    fetch: &Py<PyAny>,
    asks: &[(PathBuf, ByteRange)],
    kind: FetchKind,
) -> PyResult<Vec<Fetched>> {
    let items = asks
        .iter()
        .map(|(key, range)| {
            let key = key.to_string_lossy().into_owned();
            let (start, end, suffix) = match *range {
                ByteRange::Range { offset, len } => {
                    (Some(offset), Some(offset.saturating_add(len)), None)
                }
                ByteRange::From(offset) => (Some(offset), None, None),
                ByteRange::Suffix(len) => (None, None, Some(len)),
                ByteRange::Whole => (None, None, None),
            };
            (key, start, end, suffix)
        })
        .collect::<Vec<_>>();
    let kind = match kind {
        FetchKind::Indexes => "indexes",
        FetchKind::Chunks => "chunks",
    };
    let answers = fetch.bind(py).call1((items, kind))?;
    let mut out = Vec::with_capacity(asks.len());
    for answer in answers.try_iter()? {
        let answer = answer?;
        if answer.is_none() {
            out.push(Fetched::Missing);
        } else {
            let buffer = PyBuffer::<u8>::get(&answer)?;
            out.push(Fetched::Bytes(buffer.to_vec(py)?.into()));
        }
    }
    if out.len() != asks.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "fetch returned {} results for {} requests",
            out.len(),
            asks.len()
        )));
    }
    Ok(out)
}
