//! `zuring._native.Array`: the engine's array, read and written with the GIL released.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::{PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use zuring_array::{
    Context, DimSlice, InnerChunkOrder, Selection, VariableRead, WriteValue, ZarrArray,
};

use crate::errors;

mod requests;

use requests::{
    contiguous, outputs, py_stored_chunks, stored_chunks, to_requests, with_fetched, PyChunkRequest,
};

/// A stored chunk's coordinates and bytes (None: delete it).
type PyStoredChunk<'py> = (Vec<u64>, Option<Bound<'py, pyo3::types::PyBytes>>);

/// An open Zarr array.
#[pyclass(module = "zuring._native", frozen)]
#[derive(Debug)]
pub struct Array {
    inner: Arc<ZarrArray>,
}

impl Array {
    /// Wrap an open array.
    pub(crate) fn new(inner: ZarrArray) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The open array, shared (a sampler reads through the handle Python opened).
    pub(crate) fn shared(&self) -> Arc<ZarrArray> {
        Arc::clone(&self.inner)
    }
}

#[pyfunction]
pub fn open_array(py: Python<'_>, path: PathBuf) -> PyResult<Array> {
    let inner = py
        .detach(|| ZarrArray::open(&path))
        .map_err(errors::array)?;
    Ok(Array::new(inner))
}

/// Open the array in directory `path` from metadata the caller already holds (no read of it).
/// `inner_chunk_order`: how shards it writes lay out their inner chunks, `"lexicographic"`
/// (default), `"colexicographic"` or `"morton"` (zarr-python's default).
#[pyfunction]
#[pyo3(signature = (path, metadata_json, inner_chunk_order = "lexicographic"))]
pub fn open_array_with_metadata(
    py: Python<'_>,
    path: PathBuf,
    metadata_json: &str,
    inner_chunk_order: &str,
) -> PyResult<Array> {
    let order = match inner_chunk_order {
        "lexicographic" => InnerChunkOrder::Lexicographic,
        "colexicographic" => InnerChunkOrder::Colexicographic,
        "morton" => InnerChunkOrder::Morton,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "inner_chunk_order {other:?}: expected \"lexicographic\", \"colexicographic\" or \"morton\""
            )))
        }
    };
    let mut inner = py
        .detach(|| ZarrArray::from_metadata(&path, metadata_json, Context::shared()?))
        .map_err(errors::array)?;
    inner.set_inner_chunk_order(order);
    Ok(Array::new(inner))
}

/// Create an array from `metadata_json`; with `stored_json`, opened as `metadata_json` but
/// stored as `stored_json` ([`ZarrArray::create_storing`]).
#[pyfunction]
#[pyo3(signature = (path, metadata_json, stored_json = None))]
pub fn create_array(
    py: Python<'_>,
    path: PathBuf,
    metadata_json: &str,
    stored_json: Option<&str>,
) -> PyResult<Array> {
    let inner = py
        .detach(|| {
            let stored = stored_json.unwrap_or(metadata_json);
            ZarrArray::create_storing(&path, metadata_json, stored, Context::shared()?)
        })
        .map_err(errors::array)?;
    Ok(Array::new(inner))
}

pub(super) fn out_slice<'a>(out: &'a mut PyReadwriteArray1<'_, u8>) -> PyResult<&'a mut [u8]> {
    out.as_slice_mut().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err("out must be a C-contiguous writable buffer")
    })
}

fn chunk_sizes(grid: &zuring_array::grid::Grid, shape: &[u64]) -> PyResult<Vec<Vec<u64>>> {
    grid.clipped_sizes(shape).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "more than {} chunks along a dimension: too many to list",
            zuring_array::grid::MAX_EDGES
        ))
    })
}

#[pymethods]
impl Array {
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.inner.shape().to_vec()
    }

    /// Read granularity: inner chunk shape when sharded.
    #[getter]
    fn chunks(&self) -> Vec<u64> {
        self.inner.chunk_shape().to_vec()
    }

    #[getter]
    fn shards(&self) -> Option<Vec<u64>> {
        self.inner.shard_shape().map(<[u64]>::to_vec)
    }

    /// Whether the chunk grid is rectilinear (chunks of listed lengths; read and written as
    /// regular ones are).
    #[getter]
    fn rectilinear(&self) -> bool {
        !self.inner.layout().file_grid.is_regular()
    }

    /// Whether the array's chunk grid has stored chunk `coords` (a rectilinear grid lists its
    /// chunks; zarr-python appends to the list when it grows the array).
    fn has_chunk(&self, coords: Vec<u64>) -> bool {
        self.inner.layout().file_grid.has_chunk(&coords)
    }

    /// How many chunks are stored, as zarr-python's `nchunks_initialized` counts them.
    fn chunks_stored(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.inner.chunks_stored())
            .map_err(errors::array)
    }

    /// Per dimension, the lengths of the read-granularity chunks (inner chunks when sharded),
    /// the last cut at the array's end.
    #[getter]
    fn read_chunk_sizes(&self) -> PyResult<Vec<Vec<u64>>> {
        chunk_sizes(&self.inner.layout().read_grid, self.inner.shape())
    }

    /// Per dimension, the lengths of the stored chunks (shards when sharded), the last cut at
    /// the array's end.
    #[getter]
    fn write_chunk_sizes(&self) -> PyResult<Vec<Vec<u64>>> {
        chunk_sizes(&self.inner.layout().file_grid, self.inner.shape())
    }

    #[getter]
    fn data_type(&self) -> String {
        self.inner.data_type_name()
    }

    #[getter]
    fn element_size(&self) -> usize {
        self.inner.element_size()
    }

    #[getter]
    fn fill_value_bytes(&self) -> Vec<u8> {
        self.inner.fill_value_bytes().to_vec()
    }

    #[getter]
    fn metadata_json(&self) -> String {
        self.inner.metadata_json()
    }

    /// Fill `out` (uint8, C-contiguous) with the region `starts..stops` by `steps`.
    fn read_region_into(
        &self,
        py: Python<'_>,
        starts: Vec<u64>,
        stops: Vec<u64>,
        steps: Vec<u64>,
        mut out: PyReadwriteArray1<'_, u8>,
    ) -> PyResult<()> {
        if starts.len() != stops.len() || starts.len() != steps.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "starts, stops and steps differ in length",
            ));
        }
        let slices = starts
            .iter()
            .zip(&stops)
            .zip(&steps)
            .map(|((&start, &stop), &step)| DimSlice { start, stop, step })
            .collect();
        let out = out_slice(&mut out)?;
        py.detach(|| self.inner.read_into(&Selection::Region(slices), out))
            .map_err(errors::array)
    }

    /// Fill `out` with the orthogonal selection of `lists` (one index array per dimension).
    fn read_orthogonal_into(
        &self,
        py: Python<'_>,
        lists: Vec<PyReadonlyArray1<'_, u64>>,
        mut out: PyReadwriteArray1<'_, u8>,
    ) -> PyResult<()> {
        let lists: Vec<Vec<u64>> = lists.iter().map(|a| a.as_array().to_vec()).collect();
        let out = out_slice(&mut out)?;
        py.detach(|| self.inner.read_into(&Selection::Orthogonal(lists), out))
            .map_err(errors::array)
    }

    /// Fill `out` with the points whose coordinates are `coords` (flattened N x ndim).
    fn read_points_into(
        &self,
        py: Python<'_>,
        coords: PyReadonlyArray1<'_, u64>,
        mut out: PyReadwriteArray1<'_, u8>,
    ) -> PyResult<()> {
        let ndim = self.inner.shape().len().max(1);
        let coords = coords
            .as_slice()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("coords must be contiguous"))?;
        if coords.len() % ndim != 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "coords must hold ndim values per point",
            ));
        }
        let points: Vec<Vec<u64>> = coords.chunks(ndim).map(<[u64]>::to_vec).collect();
        let out = out_slice(&mut out)?;
        py.detach(|| self.inner.read_into(&Selection::Points(points), out))
            .map_err(errors::array)
    }

    /// Fill `out` with B crops of `crop_shape` starting at `starts` (flattened B x ndim).
    fn read_crops_into(
        &self,
        py: Python<'_>,
        starts: PyReadonlyArray1<'_, u64>,
        crop_shape: Vec<u64>,
        mut out: PyReadwriteArray1<'_, u8>,
    ) -> PyResult<()> {
        let starts = starts
            .as_slice()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("starts must be contiguous"))?;
        let out = out_slice(&mut out)?;
        py.detach(|| self.inner.read_crops_into(starts, &crop_shape, out))
            .map_err(errors::array)
    }

    /// Fill `outs` (uint8 views of C-contiguous arrays of `out_shapes`) with what a batch of
    /// zarr-python chunk requests asks for (each request names its output), in one call;
    /// returns the requested stored chunks that do not exist (their coordinates, each once, in
    /// request order). With `cached_only`, read on this thread from the page cache only (for an
    /// event loop serving a small warm read itself): None, having waited for no disk read,
    /// when some bytes are not cached (the outputs may then hold part of the result: read again
    /// without it).
    #[pyo3(signature = (requests, out_shapes, outs, cached_only = false))]
    fn read_chunk_requests(
        &self,
        py: Python<'_>,
        requests: Vec<PyChunkRequest<'_>>,
        out_shapes: Vec<Vec<u64>>,
        mut outs: Vec<PyReadwriteArray1<'_, u8>>,
        cached_only: bool,
    ) -> PyResult<Option<Vec<Vec<u64>>>> {
        let requests = to_requests(&requests, &self.inner.layout().file_grid, &out_shapes)?;
        let mut outputs = outputs(out_shapes, &mut outs)?;
        py.detach(|| {
            if cached_only {
                self.inner
                    .read_chunk_requests_cached(&requests, &mut outputs)
            } else {
                self.inner
                    .read_chunk_requests(&requests, &mut outputs)
                    .map(Some)
            }
        })
        .map_err(errors::array)
    }

    /// As `read_chunk_requests`, with the bytes fetched by `fetch` instead of read from disk:
    /// `fetch` gets a list of `(key, start, end, suffix)` (a range `start..end`, bytes from
    /// `start` when `end` is None, the last `suffix` bytes, or the whole object when all are
    /// None), and what the batch is for (`"indexes"` or `"chunks"`), and returns one buffer
    /// (or None: no such key) per item. It is called with the GIL held, from the calling
    /// thread, once per batch: shard indexes, then chunk ranges. Returns the requested stored
    /// chunks `fetch` had no bytes for.
    fn read_chunk_requests_fetched(
        &self,
        py: Python<'_>,
        requests: Vec<PyChunkRequest<'_>>,
        out_shapes: Vec<Vec<u64>>,
        mut outs: Vec<PyReadwriteArray1<'_, u8>>,
        fetch: Py<PyAny>,
    ) -> PyResult<Vec<Vec<u64>>> {
        let requests = to_requests(&requests, &self.inner.layout().file_grid, &out_shapes)?;
        let mut outputs = outputs(out_shapes, &mut outs)?;
        with_fetched(py, &fetch, |source| {
            self.inner
                .read_chunk_requests_from(source, &requests, &mut outputs)
        })
    }

    /// As `read_variable_chunk_requests`, with the bytes of whole stored chunks fetched by
    /// `fetch` (as in `read_chunk_requests_fetched`).
    fn read_variable_chunk_requests_fetched<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<PyChunkRequest<'_>>,
        out_shapes: Vec<Vec<u64>>,
        fetch: Py<PyAny>,
    ) -> PyResult<VariableLists<'py>> {
        let requests = to_requests(&requests, &self.inner.layout().file_grid, &out_shapes)?;
        let read = with_fetched(py, &fetch, |source| {
            self.inner
                .read_variable_chunk_requests_from(source, &requests, &out_shapes)
        })?;
        self.variable_lists(py, &read)
    }

    /// The array with its shape changed (chunks wholly outside deleted, the stored metadata
    /// replaced): `ZarrArray::resize`. This handle keeps the old shape.
    fn resize(&self, py: Python<'_>, new_shape: Vec<u64>) -> PyResult<Array> {
        let inner = py
            .detach(|| self.inner.resize(&new_shape))
            .map_err(errors::array)?;
        Ok(Array::new(inner))
    }

    /// Write `data` (uint8, C order, native endian) into the region `starts..stops`.
    fn write_region(
        &self,
        py: Python<'_>,
        starts: Vec<u64>,
        stops: Vec<u64>,
        data: PyReadonlyArray1<'_, u8>,
    ) -> PyResult<()> {
        let ranges: Vec<std::ops::Range<u64>> =
            starts.iter().zip(&stops).map(|(&a, &b)| a..b).collect();
        let data = contiguous(&data, "data")?;
        py.detach(|| self.inner.write_region(&ranges, data))
            .map_err(errors::array)
    }

    /// Write `value` (uint8 view of a C-contiguous array of `value_shape`; `[]`: one element for
    /// every position) as a batch of zarr-python chunk requests into the array's directory.
    /// `partial` lists the stored chunks the write covers only in part (read first).
    fn write_chunk_requests(
        &self,
        py: Python<'_>,
        requests: Vec<PyChunkRequest<'_>>,
        value: PyReadonlyArray1<'_, u8>,
        value_shape: Vec<u64>,
        partial: Vec<Vec<u64>>,
        store_empty: bool,
    ) -> PyResult<()> {
        let requests = to_requests(
            &requests,
            &self.inner.layout().file_grid,
            std::slice::from_ref(&value_shape),
        )?;
        let bytes = contiguous(&value, "value")?;
        let value = WriteValue {
            bytes,
            shape: &value_shape,
        };
        py.detach(|| {
            self.inner
                .write_chunk_requests(&requests, value, &partial, store_empty)
        })
        .map_err(errors::array)
    }

    /// As `write_chunk_requests` for a store zuring does not write itself: `existing` is a list
    /// of `(chunk coords, buffer or None)` for the stored chunks covered in part. Returns
    /// `(chunk coords, bytes or None)` for every touched stored chunk (None: delete it).
    fn encode_chunk_requests<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<PyChunkRequest<'_>>,
        value: PyReadonlyArray1<'_, u8>,
        value_shape: Vec<u64>,
        existing: Vec<(Vec<u64>, Option<Bound<'py, PyAny>>)>,
        store_empty: bool,
    ) -> PyResult<Vec<PyStoredChunk<'py>>> {
        let requests = to_requests(
            &requests,
            &self.inner.layout().file_grid,
            std::slice::from_ref(&value_shape),
        )?;
        let bytes = contiguous(&value, "value")?;
        let existing = stored_chunks(py, existing)?;
        let value = WriteValue {
            bytes,
            shape: &value_shape,
        };
        let encoded = py
            .detach(|| {
                self.inner
                    .encode_chunk_requests(&requests, value, existing, store_empty)
            })
            .map_err(errors::array)?;
        Ok(py_stored_chunks(py, encoded))
    }

    /// As `encode_chunk_requests` for a variable-size array, the values given as in
    /// `write_variable_chunk_requests`.
    fn encode_variable_chunk_requests<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<PyChunkRequest<'_>>,
        values: Vec<Bound<'py, PyAny>>,
        value_shape: Vec<u64>,
        existing: Vec<(Vec<u64>, Option<Bound<'py, PyAny>>)>,
        store_empty: bool,
    ) -> PyResult<Vec<PyStoredChunk<'py>>> {
        let requests = to_requests(
            &requests,
            &self.inner.layout().file_grid,
            std::slice::from_ref(&value_shape),
        )?;
        let elements = self.variable_elements(&values)?;
        let existing = stored_chunks(py, existing)?;
        let encoded = py
            .detach(|| {
                self.inner.encode_variable_chunk_requests(
                    &requests,
                    &elements,
                    &value_shape,
                    existing,
                    store_empty,
                )
            })
            .map_err(errors::array)?;
        Ok(py_stored_chunks(py, encoded))
    }

    /// Read a batch of zarr-python chunk requests of a variable-size array (as
    /// `read_chunk_requests`, outputs given by shape): one list per output of its elements in C
    /// order, `str` for strings, `bytes` for vlen bytes; and the requested stored chunks that
    /// do not exist.
    fn read_variable_chunk_requests<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<PyChunkRequest<'_>>,
        out_shapes: Vec<Vec<u64>>,
    ) -> PyResult<VariableLists<'py>> {
        let requests = to_requests(&requests, &self.inner.layout().file_grid, &out_shapes)?;
        let read = py
            .detach(|| {
                self.inner
                    .read_variable_chunk_requests(&requests, &out_shapes)
            })
            .map_err(errors::array)?;
        self.variable_lists(py, &read)
    }

    /// Read a selection of a variable-size array: orthogonal index lists (one per dimension)
    /// or, with `points`, the points whose coordinates are `lists` flattened (N x ndim). Returns
    /// the elements in C order (`str` for strings, `bytes` for vlen bytes).
    #[pyo3(signature = (lists, points = false))]
    fn read_variable<'py>(
        &self,
        py: Python<'py>,
        lists: Vec<PyReadonlyArray1<'_, u64>>,
        points: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let selection = self.selection_of(&lists, points)?;
        let read = py
            .detach(|| self.inner.read_variable(&selection))
            .map_err(errors::array)?;
        self.variable_list(py, &read, 0)
    }

    /// Write `values` (the elements of a value of `value_shape` in C order: `str` for strings,
    /// `bytes` for vlen bytes; `[]`: one value for every position) as a batch of zarr-python
    /// chunk requests into a variable-size array's directory (as `write_chunk_requests`).
    fn write_variable_chunk_requests(
        &self,
        py: Python<'_>,
        requests: Vec<PyChunkRequest<'_>>,
        values: Vec<Bound<'_, PyAny>>,
        value_shape: Vec<u64>,
        partial: Vec<Vec<u64>>,
        store_empty: bool,
    ) -> PyResult<()> {
        let requests = to_requests(
            &requests,
            &self.inner.layout().file_grid,
            std::slice::from_ref(&value_shape),
        )?;
        let elements = self.variable_elements(&values)?;
        py.detach(|| {
            self.inner.write_variable_chunk_requests(
                &requests,
                &elements,
                &value_shape,
                &partial,
                store_empty,
            )
        })
        .map_err(errors::array)
    }

    /// Write `data` (the raw elements of a value of `value_shape`, C order; axes of length 1
    /// and `[]` broadcast) into a selection given as by `read_variable`: orthogonal index lists
    /// or, with `points`, flattened point coordinates. A region with step 1 is faster through
    /// `write_region`.
    #[pyo3(signature = (lists, data, value_shape, points = false))]
    fn write_selection(
        &self,
        py: Python<'_>,
        lists: Vec<PyReadonlyArray1<'_, u64>>,
        data: PyReadonlyArray1<'_, u8>,
        value_shape: Vec<u64>,
        points: bool,
    ) -> PyResult<()> {
        let selection = self.selection_of(&lists, points)?;
        let data = contiguous(&data, "data")?;
        py.detach(|| {
            self.inner.write(
                &selection,
                WriteValue {
                    bytes: data,
                    shape: &value_shape,
                },
            )
        })
        .map_err(errors::array)
    }

    /// Write `values` (as in `write_variable_chunk_requests`) into a selection of a
    /// variable-size array given as by `read_variable`.
    #[pyo3(signature = (lists, values, value_shape, points = false))]
    fn write_variable(
        &self,
        py: Python<'_>,
        lists: Vec<PyReadonlyArray1<'_, u64>>,
        values: Vec<Bound<'_, PyAny>>,
        value_shape: Vec<u64>,
        points: bool,
    ) -> PyResult<()> {
        let selection = self.selection_of(&lists, points)?;
        let elements = self.variable_elements(&values)?;
        py.detach(|| {
            self.inner
                .write_variable(&selection, &elements, &value_shape)
        })
        .map_err(errors::array)
    }

    fn __repr__(&self) -> String {
        format!(
            "<zuring._native.Array {} shape={:?} {}>",
            self.inner.path().display(),
            self.inner.shape(),
            self.inner.data_type_name()
        )
    }

    fn __len__(&self) -> usize {
        self.inner
            .shape()
            .first()
            .map_or(0, |&n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl Array {
    /// Output `i` of a variable-size read as a Python list (`str` or `bytes`).
    /// Orthogonal index lists, or with `points` the points whose coordinates are `lists`
    /// flattened (N x ndim).
    fn selection_of(
        &self,
        lists: &[PyReadonlyArray1<'_, u64>],
        points: bool,
    ) -> PyResult<Selection> {
        let lists: Vec<Vec<u64>> = lists.iter().map(|a| a.as_array().to_vec()).collect();
        if !points {
            return Ok(Selection::Orthogonal(lists));
        }
        let ndim = self.inner.shape().len().max(1);
        let flat = lists.concat();
        if flat.len() % ndim != 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "coords must hold ndim values per point",
            ));
        }
        Ok(Selection::Points(
            flat.chunks(ndim).map(<[u64]>::to_vec).collect(),
        ))
    }

    /// The bytes of each element of a variable-size write: `str` (UTF-8) for a string array,
    /// `bytes` for a vlen-bytes array; anything else is a TypeError.
    fn variable_elements<'a>(&self, values: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<&'a [u8]>> {
        let strings = self.inner.data_type_name() == "string";
        values
            .iter()
            .map(|v| {
                if strings {
                    v.cast::<PyString>()
                        .map_err(|_| {
                            pyo3::exceptions::PyTypeError::new_err(format!(
                                "a string array takes str values, not {}",
                                v.get_type()
                                    .name()
                                    .map_or_else(|_| "?".into(), |n| n.to_string())
                            ))
                        })?
                        .to_str()
                        .map(str::as_bytes)
                } else {
                    v.cast::<PyBytes>().map(|b| b.as_bytes()).map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "a variable-length bytes array takes bytes values",
                        )
                    })
                }
            })
            .collect()
    }

    fn variable_list<'py>(
        &self,
        py: Python<'py>,
        read: &VariableRead,
        i: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let strings = self.inner.data_type_name() == "string";
        let items = read
            .output(i)
            .map(|e| {
                if !strings {
                    return Ok(PyBytes::new(py, e).into_any());
                }
                std::str::from_utf8(e)
                    .map(|s| PyString::new(py, s).into_any())
                    .map_err(|err| {
                        errors::corrupt_data(format!(
                            "{}: a stored string is not UTF-8: {err}",
                            self.inner.path().display()
                        ))
                    })
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A variable-size read of chunk requests for Python: one list per output, and the missing
    /// stored chunks.
    fn variable_lists<'py>(
        &self,
        py: Python<'py>,
        read: &VariableRead,
    ) -> PyResult<VariableLists<'py>> {
        let lists = (0..read.len())
            .map(|i| self.variable_list(py, read, i))
            .collect::<PyResult<_>>()?;
        Ok((lists, read.missing().to_vec()))
    }
}

/// Per output its elements, and the requested stored chunks that do not exist.
type VariableLists<'py> = (Vec<Bound<'py, PyList>>, Vec<Vec<u64>>);
