//! Variable-size elements (`string` / vlen-utf8, `bytes` / vlen-bytes) through the same chunk
//! requests as fixed-size ones. Each element is stood in for by a `u64` handle, so the planner,
//! the copy machinery and the write scatter are the ones fixed-size data uses (every selection
//! kind, checked the same way); the values are looked up by handle at the end.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;

use zarrs::array::{
    ArrayBytes, ArrayBytesOffsets, ArrayBytesVariableLength, ArrayToBytesCodecTraits,
};

use crate::array::{zarrs_error, StoredChunk, ZarrArray};
use crate::assemble::{as_bytes_mut, OutView, Source};
use crate::engine::{ChunkTask, FirstError, ReadContext, TaskRef};
use crate::error::{ArrayError, Result};
use crate::layout::nonzero;
use crate::plan::{
    c_strides, num_elements, plan_chunk_requests, ChunkPlan, ChunkRequest, Selection,
};
use crate::source::{ByteSource, LocalSource, NotingMissing};
use crate::write::{
    collect_chunks, group_by_chunk, ChunkGeometry, ChunkSink, NewBytes, Scatter, WriteValue,
};

/// A handle's bytes: handles are planned and copied as 8-byte elements.
pub(crate) const HANDLE: usize = std::mem::size_of::<u64>();
/// A handle no element has (set where nothing was written).
const NONE: u64 = u64::MAX;
/// Tags a write handle that points at the stored chunk's old element (else: a value's).
const OLD: u64 = 1 << 63;

/// What [`ZarrArray::read_variable_chunk_requests`] read: per output, its elements in C order.
#[derive(Debug)]
pub struct VariableRead {
    /// Per chunk read: its elements inside the array, C order.
    chunks: Vec<ArrayBytesVariableLength<'static>>,
    /// Per output: one handle per element, `chunk << 32 | element`.
    outputs: Vec<Vec<u64>>,
    /// The requested stored chunks that do not exist (chunk requests only).
    missing: Vec<Vec<u64>>,
}

impl VariableRead {
    /// The number of outputs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether there are no outputs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Of the stored chunks chunk requests asked for, those that do not exist (read as the fill
    /// value), as [`ZarrArray::read_chunk_requests`] reports them; empty for other reads.
    #[must_use]
    pub fn missing(&self) -> &[Vec<u64>] {
        &self.missing
    }

    /// The elements of output `i` (raw bytes: UTF-8 for strings), C order.
    pub fn output(&self, i: usize) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.outputs
            .get(i)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&h| element(&self.chunks[index(h >> 32)], index(h & 0xffff_ffff)))
    }
}

/// Element `i` of variable-length bytes (checked by the caller to exist).
fn element<'a>(elements: &'a ArrayBytesVariableLength<'_>, i: usize) -> &'a [u8] {
    let offsets = elements.offsets();
    &elements.bytes()[offsets[i]..offsets[i + 1]]
}

/// A handle's part as an index (handles index memory, so they fit).
fn index(h: u64) -> usize {
    usize::try_from(h).unwrap_or(usize::MAX)
}

/// View handles as the bytes the copy machinery moves.
fn handle_bytes(handles: &[u64]) -> &[u8] {
    #[allow(unsafe_code)]
    // SAFETY: u64 has no padding and the length covers exactly the slice.
    unsafe {
        std::slice::from_raw_parts(
            handles.as_ptr().cast::<u8>(),
            std::mem::size_of_val(handles),
        )
    }
}

/// The decoded chunks of a variable-size read, by the engine's task id (each filled once, in
/// parallel, as its bytes arrive).
pub(crate) struct VariableChunks {
    slots: Vec<Mutex<Option<ArrayBytesVariableLength<'static>>>>,
    /// The fill value's bytes.
    fill: Vec<u8>,
}

impl VariableChunks {
    fn put(&self, id: usize, elements: ArrayBytesVariableLength<'static>) {
        if let Some(Ok(mut slot)) = self.slots.get(id).map(Mutex::lock) {
            *slot = Some(elements);
        }
    }

    /// Chunk `id` is not stored: it becomes one fill element; returns the handle (as the bytes
    /// the copy machinery repeats) every element of it gets.
    pub(crate) fn fill(&self, id: usize) -> [u8; HANDLE] {
        if let Ok(fill) = ArrayBytesOffsets::new(vec![0, self.fill.len()])
            .map_err(|e| e.to_string())
            .and_then(|offsets| {
                ArrayBytes::new_vlen(self.fill.clone(), offsets).map_err(|e| e.to_string())
            })
            .and_then(|b| b.into_variable().map_err(|e| e.to_string()))
        {
            self.put(id, fill);
        }
        ((id as u64) << 32).to_ne_bytes()
    }

    /// Decode stored chunk `task` (its file's `bytes`) with the array's codec chain and give
    /// its elements' handles to the outputs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decode_apply(
        &self,
        cx: &ReadContext<'_>,
        path: &Path,
        task: &ChunkTask,
        bytes: &[u8],
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        let l = cx.layout;
        let corrupt = |message: String| ArrayError::CorruptChunk {
            path: path.to_path_buf(),
            chunk: task.coords.clone(),
            message,
        };
        let shape = l.read_chunk_shape(&task.coords);
        let expected: usize = shape.iter().map(|&d| index(d)).product();
        let decoded = l
            .chunk_codecs
            .decode(
                Cow::Borrowed(bytes),
                &nonzero(&shape),
                &l.data_type,
                &l.fill_value,
                &cx.codec_options(),
            )
            .map_err(|e| e.to_string())
            .and_then(|b| b.into_owned().into_variable().map_err(|e| e.to_string()));
        match decoded {
            Ok(elements) if elements.offsets().len() == expected + 1 => {
                let id = (task.id as u64) << 32;
                let handles: Vec<u64> = (0..expected as u64).map(|i| id | i).collect();
                cx.apply_all(
                    TaskRef::Listed(task),
                    Source::Chunk(handle_bytes(&handles)),
                    strides,
                    view,
                    errors,
                );
                self.put(task.id, elements);
            }
            Ok(elements) => errors.set(corrupt(format!(
                "decoded {} elements, expected {expected}",
                elements.offsets().len().saturating_sub(1),
            ))),
            Err(message) => errors.set(corrupt(message)),
        }
    }
}

impl ZarrArray {
    /// Read what a batch of zarr-python chunk requests asks of a variable-size array (strings,
    /// vlen bytes): the same requests and outputs (by shape) as
    /// [`ZarrArray::read_chunk_requests`], every selection kind. Each chunk is read and decoded
    /// once by zarrs (in parallel on zuring's pool) however many requests use it.
    ///
    /// # Errors
    /// [`ArrayError::Unsupported`] for a fixed-size array; [`ArrayError::Selection`] for a request
    /// that does not fit (before any IO); decoding errors naming the array.
    pub fn read_variable_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        out_shapes: &[Vec<u64>],
    ) -> Result<VariableRead> {
        let local = LocalSource::new(&self.context().reader);
        self.read_variable_chunk_requests_from(&local, requests, out_shapes)
    }

    /// As [`ZarrArray::read_variable_chunk_requests`], with the bytes coming from `source`
    /// (whole stored chunks, in one batch; see [`ZarrArray::read_chunk_requests_from`]).
    ///
    /// # Errors
    /// As [`ZarrArray::read_variable_chunk_requests`]; a failed fetch is an IO error naming the
    /// key.
    pub fn read_variable_chunk_requests_from(
        &self,
        source: &dyn ByteSource,
        requests: &[ChunkRequest],
        out_shapes: &[Vec<u64>],
    ) -> Result<VariableRead> {
        self.require_variable_size("read_variable_chunk_requests")?;
        let l = self.layout();
        let plan = plan_chunk_requests(&l.shape, &l.file_grid, &l.read_grid, out_shapes, requests)?
            .into_listed(&l.read_grid);
        let noting = NotingMissing::new(source);
        let mut read = self.run_variable(&noting, plan, out_shapes)?;
        read.missing = noting.missing(self.request_files(requests))?;
        Ok(read)
    }

    /// Read `selection` (a region with any steps, orthogonal index lists or points) of a
    /// variable-size array: one output, its elements in C order of the selection's shape.
    ///
    /// # Errors
    /// As [`ZarrArray::read_variable_chunk_requests`]; out-of-bounds selections before any IO.
    pub fn read_variable(&self, selection: &Selection) -> Result<VariableRead> {
        self.require_variable_size("read_variable")?;
        let plan = self.plan_selection(selection)?;
        let plan = plan.into_listed(&self.layout().read_grid);
        let local = LocalSource::new(&self.context().reader);
        self.run_variable(&local, plan, &[selection.output_shape()])
    }

    /// Carry out `plan` for a variable-size array through the engine (every stored chunk it
    /// needs fetched from `source` in one batch, decoded by zarrs' codec chain in parallel as its
    /// bytes arrive); the outputs hold handles to the decoded chunks' elements.
    fn run_variable(
        &self,
        source: &dyn ByteSource,
        plan: ChunkPlan,
        out_shapes: &[Vec<u64>],
    ) -> Result<VariableRead> {
        let l = self.layout();
        let chunk_elements = num_elements(&l.chunk_shape)?;
        if chunk_elements > u32::MAX as usize || plan.len() > u32::MAX as usize {
            return Err(ArrayError::TooLarge {
                what: "variable-size read (chunks or elements per chunk over 2^32)",
                elements: chunk_elements as u64,
                element_size: HANDLE,
            });
        }
        let mut outputs = out_shapes
            .iter()
            .map(|s| num_elements(s).map(|n| vec![NONE; n]))
            .collect::<Result<Vec<_>>>()?;
        let chunks = VariableChunks {
            slots: (0..plan.len()).map(|_| Mutex::new(None)).collect(),
            fill: l.fill.clone(),
        };
        {
            let views: Vec<OutView<'_>> = outputs
                .iter_mut()
                .map(|o| OutView::new(as_bytes_mut(o)))
                .collect();
            self.execute(source, plan.into(), &views, Some(&chunks))?;
        }
        let chunks = chunks
            .slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .ok()
                    .flatten()
                    .ok_or_else(|| ArrayError::selection("internal planning error: chunk not read"))
            })
            .collect::<Result<Vec<_>>>()?;
        if outputs.iter().flatten().any(|&h| h == NONE) {
            return Err(ArrayError::selection(
                "internal planning error: output element not covered",
            ));
        }
        Ok(VariableRead {
            chunks,
            outputs,
            missing: Vec::new(),
        })
    }

    /// Write `values` (the elements of a value of `shape`, C order; raw bytes, UTF-8 for
    /// strings; as in numpy, axes of length 1 and an empty shape broadcast) into a
    /// variable-size array as a batch of zarr-python chunk requests: the stored chunks in
    /// `partial` are read first, every touched stored chunk is encoded (in parallel) and
    /// replaced atomically, or deleted when all fill and `store_empty` is false.
    ///
    /// # Errors
    /// [`ArrayError::Unsupported`] for a fixed-size array; [`ArrayError::Selection`] for a request
    /// that does not fit or a value of the wrong size (before any file changes); decoding and
    /// encoding errors naming the chunk; IO errors (chunks already written stay written).
    pub fn write_variable_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        values: &[&[u8]],
        shape: &[u64],
        partial: &[Vec<u64>],
        store_empty: bool,
    ) -> Result<()> {
        let _taken = self.take_files(requests, partial);
        let existing = || -> Result<HashMap<Vec<u64>, Bytes>> {
            Ok(self
                .read_stored(partial)?
                .into_iter()
                .filter_map(|(c, b)| b.map(|b| (c, b)))
                .collect())
        };
        let sink = self.local_sink();
        self.encode_variable_each(requests, values, shape, existing, store_empty, &sink)
    }

    /// As [`ZarrArray::write_variable_chunk_requests`] for a store zuring does not write itself
    /// (see [`ZarrArray::encode_chunk_requests`]): `existing` holds the current bytes of the
    /// stored chunks the write covers in part; returns every touched stored chunk's coordinates
    /// and new bytes (None: all fill, delete it), sorted.
    ///
    /// # Errors
    /// As [`ZarrArray::write_variable_chunk_requests`], without IO.
    pub fn encode_variable_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        values: &[&[u8]],
        shape: &[u64],
        existing: Vec<StoredChunk>,
        store_empty: bool,
    ) -> Result<Vec<StoredChunk>> {
        let existing = move || -> Result<HashMap<Vec<u64>, Bytes>> {
            Ok(existing
                .into_iter()
                .filter_map(|(c, b)| b.map(|b| (c, Bytes::from(b))))
                .collect())
        };
        collect_chunks(|sink| {
            self.encode_variable_each(requests, values, shape, existing, store_empty, sink)
        })
    }

    /// Check the requests, then (after `existing` gives the old bytes of the partly covered
    /// stored chunks) decode, scatter into and encode every touched stored chunk in parallel,
    /// handing each to `sink`.
    fn encode_variable_each(
        &self,
        requests: &[ChunkRequest],
        values: &[&[u8]],
        shape: &[u64],
        existing: impl FnOnce() -> Result<HashMap<Vec<u64>, Bytes>>,
        store_empty: bool,
        sink: &ChunkSink<'_>,
    ) -> Result<()> {
        self.require_variable_size("write_variable_chunk_requests")?;
        let l = self.layout();
        if num_elements(shape)? != values.len() {
            return Err(ArrayError::selection(format!(
                "{} values for a value of shape {shape:?}",
                values.len()
            )));
        }
        let value_handles: Vec<u64> = (0..values.len() as u64).collect();
        let by_chunk = group_by_chunk(requests, l.ndim())?;
        // A regular grid's stored chunks all have its chunk shape; a rectilinear one's their own.
        let nominal = ChunkGeometry::of(l.file_shape.clone())?;
        let geometry = |coords: &[u64]| ChunkGeometry::in_grid(&nominal, &l.file_grid, coords);
        let value_strides = c_strides(shape)?;
        let scatter = Scatter {
            chunk_strides: &nominal.strides,
            file_shape: &nominal.shape,
            value_strides: &value_strides,
            value: WriteValue {
                bytes: handle_bytes(&value_handles),
                shape,
            },
            esize: HANDLE,
            chunk_bytes: 0,
        };
        for request in requests {
            scatter
                .for_chunk(&*geometry(request.chunk())?)?
                .apply(None, request)?;
        }
        // The stored chunks covered in part, read in one batch before anything is written.
        let existing = existing()?;
        let options = self.context().codec_options();
        let encode_one = |(coords, reqs): (&Vec<u64>, &Vec<&ChunkRequest>)| -> Result<()> {
            let geometry = geometry(coords)?;
            let scatter = scatter.for_chunk(&geometry)?;
            let file_shape = nonzero(&geometry.shape);
            let file_elements = geometry.elements;
            let old = match existing.get(coords.as_slice()) {
                Some(bytes) => Some(
                    self.zarrs_array()
                        .codecs()
                        .decode(
                            Cow::Borrowed(bytes),
                            &file_shape,
                            &l.data_type,
                            &l.fill_value,
                            &options,
                        )
                        .map_err(|e| e.to_string())
                        .and_then(|b| b.into_variable().map_err(|e| e.to_string()))
                        .map_err(|message| ArrayError::CorruptChunk {
                            path: self.file_path(coords),
                            chunk: coords.clone(),
                            message,
                        })?,
                ),
                None => None,
            };
            let mut handles: Vec<u64> = match &old {
                Some(old) if old.offsets().len() == file_elements + 1 => {
                    (0..file_elements as u64).map(|i| OLD | i).collect()
                }
                Some(old) => {
                    return Err(ArrayError::CorruptChunk {
                        path: self.file_path(coords),
                        chunk: coords.clone(),
                        message: format!(
                            "decoded {} elements, expected {file_elements}",
                            old.offsets().len().saturating_sub(1)
                        ),
                    })
                }
                None => vec![NONE; file_elements],
            };
            for request in reqs {
                scatter.apply(Some(as_bytes_mut(&mut handles)), request)?;
            }
            let mut bytes = Vec::new();
            let mut offsets = Vec::with_capacity(file_elements + 1);
            offsets.push(0);
            let mut all_fill = true;
            for &h in &handles {
                let e: &[u8] = match (h, &old) {
                    (NONE, _) => &l.fill,
                    (h, Some(old)) if h & OLD != 0 => element(old, index(h & !OLD)),
                    (h, _) => values[index(h)],
                };
                all_fill &= e == l.fill.as_slice();
                bytes.extend_from_slice(e);
                offsets.push(bytes.len());
            }
            if all_fill && !store_empty {
                return sink(coords, None);
            }
            let offsets =
                ArrayBytesOffsets::new(offsets).map_err(|e| zarrs_error(self.path(), e))?;
            let elements =
                ArrayBytes::new_vlen(bytes, offsets).map_err(|e| zarrs_error(self.path(), e))?;
            let encoded = self
                .zarrs_array()
                .codecs()
                .encode(elements, &file_shape, &l.data_type, &l.fill_value, &options)
                .map_err(|e| ArrayError::Encode {
                    path: self.file_path(coords),
                    chunk: coords.to_vec(),
                    message: e.to_string(),
                })?;
            sink(coords, Some(NewBytes::Whole(encoded.into_owned())))
        };
        let results: Vec<Result<()>> = self.context().pool.get()?.install(|| {
            use rayon::prelude::*;
            by_chunk.par_iter().map(encode_one).collect()
        });
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_view_as_native_bytes() {
        let handles = [1u64, 2 << 32 | 7];
        let bytes = handle_bytes(&handles);
        assert_eq!(bytes.len(), 16);
        assert_eq!(
            u64::from_ne_bytes(bytes[8..].try_into().unwrap()),
            2 << 32 | 7
        );
    }
}
