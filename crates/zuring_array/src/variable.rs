//! Variable-size elements (`string` / vlen-utf8, `bytes` / vlen-bytes) through the same chunk
//! requests as fixed-size ones. Each element is stood in for by a `u64` handle, so the planner,
//! the copy machinery and the write scatter are the ones fixed-size data uses (every selection
//! kind, checked the same way); the values are looked up by handle at the end.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use std::num::NonZeroU64;

use zarrs::array::{
    ArrayBytes, ArrayBytesOffsets, ArrayBytesVariableLength, ArraySubset, ArrayToBytesCodecTraits,
    CodecOptions,
};

use crate::array::{zarrs_error, ZarrArray};
use crate::assemble::{as_bytes_mut, OutView, Source};
use crate::engine::unsafe_apply;
use crate::error::{ArrayError, Result};
use crate::plan::{
    c_strides, num_elements, plan_chunk_requests, try_for_each_coord, ChunkPlan, ChunkRequest,
    Selection,
};
use crate::write::{group_by_chunk, Scatter, WriteValue};

/// A handle's bytes: handles are planned and copied as 8-byte elements.
const HANDLE: usize = std::mem::size_of::<u64>();
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
    // SAFETY: u64 has no padding and the length covers exactly the slice.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts(
            handles.as_ptr().cast::<u8>(),
            std::mem::size_of_val(handles),
        )
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
        self.require_variable_size("read_variable_chunk_requests")?;
        let l = self.layout();
        let mut plan = ChunkPlan::new();
        plan_chunk_requests(
            &mut plan,
            &l.shape,
            &l.file_shape,
            &l.chunk_shape,
            out_shapes,
            requests,
        )?;
        self.run_variable(plan, out_shapes)
    }

    /// Read `selection` (a region with any steps, orthogonal index lists or points) of a
    /// variable-size array: one output, its elements in C order of the selection's shape.
    ///
    /// # Errors
    /// As [`ZarrArray::read_variable_chunk_requests`]; out-of-bounds selections before any IO.
    pub fn read_variable(&self, selection: &Selection) -> Result<VariableRead> {
        self.require_variable_size("read_variable")?;
        let plan = self.plan_selection(selection)?;
        self.run_variable(plan, &[selection.output_shape()])
    }

    /// Carry out `plan` for a variable-size array: every planned chunk read and decoded by zarrs
    /// (in parallel), its elements' handles copied into the outputs.
    fn run_variable(&self, plan: ChunkPlan, out_shapes: &[Vec<u64>]) -> Result<VariableRead> {
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
        let chunk_strides = c_strides(&l.chunk_shape)?;
        let tasks: Vec<_> = plan.into_iter().collect();
        let chunks: Vec<Result<ArrayBytesVariableLength<'static>>> = {
            let views: Vec<OutView<'_>> = outputs
                .iter_mut()
                .map(|o| OutView::new(as_bytes_mut(o)))
                .collect();
            let read_one = |k: usize, coords: &[u64], ops| -> Result<_> {
                // The chunk's part inside the array, and its elements' handles placed in the
                // whole chunk (elements past the array's edge are never selected).
                let start: Vec<u64> = coords
                    .iter()
                    .zip(&l.chunk_shape)
                    .map(|(c, n)| c * n)
                    .collect();
                let extent: Vec<u64> = start
                    .iter()
                    .zip(&l.chunk_shape)
                    .zip(&l.shape)
                    .map(|((&s, &n), &len)| len.saturating_sub(s).min(n))
                    .collect();
                // Errors name the chunk's file (the shard, when sharded) and its coordinates.
                let stored: Vec<u64> = coords
                    .iter()
                    .zip(&l.chunk_shape)
                    .zip(&l.file_shape)
                    .map(|((&c, &n), &f)| c * n / f.max(1))
                    .collect();
                let subset = ArraySubset::new_with_start_shape(start, extent.clone())
                    .map_err(|e| zarrs_error(self.path(), e))?;
                let elements = self
                    .zarrs_array()
                    .retrieve_array_subset::<ArrayBytes<'static>>(&subset)
                    .map_err(|e| self.chunk_error(&stored, coords, e))?
                    .into_variable()
                    .map_err(|e| zarrs_error(self.path(), e))?;
                let mut handles = vec![NONE; chunk_elements];
                let mut n = 0u64;
                try_for_each_coord(&vec![0; extent.len()], &extent, |at| {
                    let pos: usize = at
                        .iter()
                        .zip(&chunk_strides)
                        .map(|(&i, &s)| index(i) * s)
                        .sum();
                    handles[pos] = (k as u64) << 32 | n;
                    n += 1;
                    Ok::<(), ArrayError>(())
                })?;
                if elements.offsets().len() != index(n) + 1 {
                    return Err(ArrayError::CorruptChunk {
                        path: self.file_path(&stored),
                        chunk: coords.to_vec(),
                        message: format!(
                            "decoded {} elements, expected {n}",
                            elements.offsets().len().saturating_sub(1)
                        ),
                    });
                }
                for op in ops {
                    if unsafe_apply(
                        op,
                        Source::Chunk(handle_bytes(&handles)),
                        &chunk_strides,
                        HANDLE,
                        &views,
                    )
                    .is_err()
                    {
                        return Err(ArrayError::selection(
                            "internal planning error: write outside the output",
                        ));
                    }
                }
                Ok(elements)
            };
            self.context().pool.get().install(|| {
                use rayon::prelude::*;
                tasks
                    .par_iter()
                    .enumerate()
                    .map(|(k, (coords, ops))| read_one(k, coords, ops))
                    .collect()
            })
        };
        let chunks = chunks.into_iter().collect::<Result<Vec<_>>>()?;
        if outputs.iter().flatten().any(|&h| h == NONE) {
            return Err(ArrayError::selection(
                "internal planning error: output element not covered",
            ));
        }
        Ok(VariableRead { chunks, outputs })
    }

    /// A zarrs error reading chunk `coords` (inside stored chunk `stored`): storage failures
    /// stay zarrs errors, anything else is corrupt data in that chunk's file.
    fn chunk_error(
        &self,
        stored: &[u64],
        coords: &[u64],
        err: zarrs::array::ArrayError,
    ) -> ArrayError {
        let path = self.file_path(stored);
        match err {
            zarrs::array::ArrayError::StorageError(e) => ArrayError::Zarrs {
                path,
                message: e.to_string(),
            },
            other => ArrayError::CorruptChunk {
                path,
                chunk: coords.to_vec(),
                message: other.to_string(),
            },
        }
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
        self.require_variable_size("write_variable_chunk_requests")?;
        let l = self.layout();
        if num_elements(shape)? != values.len() {
            return Err(ArrayError::selection(format!(
                "{} values for a value of shape {shape:?}",
                values.len()
            )));
        }
        let value_handles: Vec<u64> = (0..values.len() as u64).collect();
        let by_chunk = group_by_chunk(requests, l.file_shape.len())?;
        let file_elements = num_elements(&l.file_shape)?;
        let chunk_strides = c_strides(&l.file_shape)?;
        let value_strides = c_strides(shape)?;
        let scatter = Scatter {
            chunk_strides: &chunk_strides,
            file_shape: &l.file_shape,
            value_strides: &value_strides,
            value: WriteValue {
                bytes: handle_bytes(&value_handles),
                shape,
            },
            esize: HANDLE,
            chunk_bytes: file_elements * HANDLE,
        };
        for request in requests {
            scatter.apply(None, request)?;
        }
        // The stored chunks covered in part, read in one batch before anything is written.
        let existing: HashMap<Vec<u64>, Bytes> = self
            .read_stored(partial)?
            .into_iter()
            .filter_map(|(c, b)| b.map(|b| (c, b)))
            .collect();
        let file_shape: Vec<NonZeroU64> = l
            .file_shape
            .iter()
            .map(|&d| NonZeroU64::new(d).unwrap_or(NonZeroU64::MIN))
            .collect();
        let options = CodecOptions::default()
            .with_validate_checksums(self.context().options.validate_checksums);
        let sink = self.local_sink();
        let encode_one = |(coords, reqs): (&Vec<u64>, &Vec<&ChunkRequest>)| -> Result<()> {
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
                .map_err(|e| ArrayError::Zarrs {
                    path: self.file_path(coords),
                    message: e.to_string(),
                })?;
            sink(coords, Some(encoded.into_owned()))
        };
        let results: Vec<Result<()>> = self.context().pool.get().install(|| {
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
