//! Writes of any selection zarr-python produces (regions with steps, integer arrays, points):
//! each stored chunk (shard, when sharded) the write touches is decoded when the write covers it
//! only in part, the new values are scattered into it, and it is encoded again, in parallel on
//! zuring's pool. Chunks left all fill value are deleted unless empty chunks are kept.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;

use bytes::Bytes;
use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits, CodecOptions};

use crate::array::{StoredChunk, ZarrArray};
use crate::error::{ArrayError, Result};
use crate::layout::ReadMode;
use crate::plan::{c_strides, num_elements, ChunkRequest};

/// A write's values: C order, native endian, of `shape`. As in numpy, an axis of length 1 is
/// broadcast (its positions are ignored), and so is a 0-d value.
#[derive(Debug, Clone, Copy)]
pub struct WriteValue<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// The shape (empty: one element for every position).
    pub shape: &'a [u64],
}

/// Where each element of a request goes in its stored chunk and comes from in the value.
struct Scatter<'a> {
    chunk_strides: &'a [usize],
    file_shape: &'a [u64],
    value_strides: &'a [usize],
    value: WriteValue<'a>,
    esize: usize,
}

impl Scatter<'_> {
    fn broadcast(&self) -> bool {
        self.value.shape.is_empty()
    }

    fn copy(&self, buf: &mut [u8], chunk_elem: usize, value_elem: usize) -> Result<()> {
        let e = self.esize;
        let src = self
            .value
            .bytes
            .get(value_elem * e..(value_elem + 1) * e)
            .ok_or_else(|| ArrayError::selection("value position outside the value"))?;
        buf.get_mut(chunk_elem * e..(chunk_elem + 1) * e)
            .ok_or_else(|| ArrayError::selection("index outside the stored chunk"))?
            .copy_from_slice(src);
        Ok(())
    }

    fn check_index(&self, d: usize, i: u64) -> Result<usize> {
        if i < self.file_shape[d] {
            usize::try_from(i).map_err(|_| ArrayError::selection("index too large"))
        } else {
            Err(ArrayError::selection(format!(
                "index {i} outside the stored chunk (dimension {d} has {})",
                self.file_shape[d]
            )))
        }
    }

    /// Apply one request to the decoded chunk `buf`.
    fn apply(&self, buf: &mut [u8], request: &ChunkRequest) -> Result<()> {
        match request {
            ChunkRequest::Orthogonal {
                indices, positions, ..
            } => {
                let ndim = self.file_shape.len();
                if indices.len() != ndim || positions.len() != ndim {
                    return Err(ArrayError::selection(format!(
                        "write request does not have {ndim} dimensions"
                    )));
                }
                // Per dimension: (offset in the chunk, offset in the value), in elements.
                let mut axis = 0usize;
                let mut offsets: Vec<Vec<(usize, usize)>> = Vec::with_capacity(ndim);
                for d in 0..ndim {
                    let stride = match &positions[d] {
                        Some(_) if !self.broadcast() => {
                            let s = *self.value_strides.get(axis).ok_or_else(|| {
                                ArrayError::selection("more value axes than the value has")
                            })?;
                            axis += 1;
                            Some((s, self.value.shape[axis - 1]))
                        }
                        _ => None,
                    };
                    let mut dim = Vec::with_capacity(indices[d].len());
                    for (k, &i) in indices[d].iter().enumerate() {
                        let c = self.check_index(d, i)? * self.chunk_strides[d];
                        let v = match (stride, &positions[d]) {
                            (Some((_, 1)), Some(_)) => 0,
                            (Some((s, n)), Some(p)) => {
                                let p = *p.get(k).ok_or_else(|| {
                                    ArrayError::selection("fewer value positions than indices")
                                })?;
                                if p >= n {
                                    return Err(ArrayError::selection(format!(
                                        "value position {p} outside the value axis of {n}"
                                    )));
                                }
                                usize::try_from(p).unwrap_or(usize::MAX) * s
                            }
                            _ => 0,
                        };
                        dim.push((c, v));
                    }
                    offsets.push(dim);
                }
                if offsets.iter().any(Vec::is_empty) {
                    return Ok(());
                }
                // Odometer over the cartesian product.
                let mut at = vec![0usize; ndim];
                loop {
                    let (mut c, mut v) = (0usize, 0usize);
                    for (d, &k) in at.iter().enumerate() {
                        c += offsets[d][k].0;
                        v += offsets[d][k].1;
                    }
                    self.copy(buf, c, v)?;
                    let mut d = ndim;
                    loop {
                        if d == 0 {
                            return Ok(());
                        }
                        d -= 1;
                        at[d] += 1;
                        if at[d] < offsets[d].len() {
                            break;
                        }
                        at[d] = 0;
                    }
                }
            }
            ChunkRequest::Points {
                coords, positions, ..
            } => {
                if coords.len() != positions.len() {
                    return Err(ArrayError::selection(
                        "points and value positions differ in number",
                    ));
                }
                for (point, &p) in coords.iter().zip(positions) {
                    if point.len() != self.file_shape.len() {
                        return Err(ArrayError::selection("point of the wrong dimension"));
                    }
                    let mut c = 0usize;
                    for (d, &i) in point.iter().enumerate() {
                        c += self.check_index(d, i)? * self.chunk_strides[d];
                    }
                    let v = if self.broadcast() || self.value.bytes.len() == self.esize {
                        0
                    } else {
                        usize::try_from(p).unwrap_or(usize::MAX)
                    };
                    self.copy(buf, c, v)?;
                }
                Ok(())
            }
        }
    }
}

/// One stored chunk to encode: its coordinates, the requests writing into it, its old bytes.
type ChunkTask<'a> = (Vec<u64>, Vec<&'a ChunkRequest>, Option<Vec<u8>>);

fn chunk_of(request: &ChunkRequest) -> &[u64] {
    match request {
        ChunkRequest::Orthogonal { chunk, .. } | ChunkRequest::Points { chunk, .. } => chunk,
    }
}

impl ZarrArray {
    /// Encode a write of `value` given as chunk requests (as zarr-python's pipeline batches
    /// them; each request's `target` is ignored, its positions index `value`). `existing` holds
    /// the current bytes of the stored chunks the write covers only in part (None: absent);
    /// a stored chunk not in it starts from the fill value. Returns every touched stored chunk's
    /// coordinates and new bytes, or None when it is all fill value and `store_empty` is false.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] for a request outside its chunk or the value (nothing is
    /// encoded); a corrupt existing chunk names its key; encoding errors.
    pub fn encode_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        value: WriteValue<'_>,
        existing: Vec<StoredChunk>,
        store_empty: bool,
    ) -> Result<Vec<StoredChunk>> {
        self.require_fixed_size()?;
        let layout = self.layout();
        let esize = layout.element_size;
        let expected = num_elements(value.shape)?
            .checked_mul(esize)
            .ok_or_else(|| ArrayError::selection("value too large"))?;
        if value.bytes.len() != expected {
            return Err(ArrayError::OutputSize {
                expected,
                got: value.bytes.len(),
            });
        }
        let file_shape = &layout.file_shape;
        // Chunk coordinates are not checked against the array's shape: zarr-python may have
        // resized the array since this handle was made (see `plan_chunk_requests`).
        let mut by_chunk: BTreeMap<Vec<u64>, Vec<&ChunkRequest>> = BTreeMap::new();
        for request in requests {
            let chunk = chunk_of(request);
            if chunk.len() != file_shape.len() {
                return Err(ArrayError::selection(format!(
                    "stored chunk {chunk:?} does not have {} dimensions",
                    file_shape.len()
                )));
            }
            by_chunk.entry(chunk.to_vec()).or_default().push(request);
        }
        let mut existing: HashMap<Vec<u64>, Option<Vec<u8>>> = existing.into_iter().collect();
        let chunk_strides = c_strides(file_shape)?;
        let value_strides = c_strides(value.shape)?;
        let scatter = Scatter {
            chunk_strides: &chunk_strides,
            file_shape,
            value_strides: &value_strides,
            value,
            esize,
        };
        let shape: Vec<NonZeroU64> = file_shape
            .iter()
            .map(|&d| NonZeroU64::new(d).unwrap_or(NonZeroU64::MIN))
            .collect();
        let chunk_bytes = num_elements(file_shape)?
            .checked_mul(esize)
            .ok_or_else(|| ArrayError::selection("stored chunk too large"))?;
        let codecs = self.zarrs_array().codecs();
        let options = CodecOptions::default()
            .with_validate_checksums(self.context().options.validate_checksums);
        let nan_fill = is_nan_fill(&self.data_type_name(), &layout.fill);
        let tasks: Vec<ChunkTask<'_>> = by_chunk
            .into_iter()
            .map(|(coords, reqs)| {
                let old = existing.remove(&coords).flatten();
                (coords, reqs, old)
            })
            .collect();
        let pool = self.context().pool.get();
        let encode_one = |(coords, reqs, old): &ChunkTask<'_>| {
            let key = || self.file_path(coords).display().to_string();
            let mut buf: Vec<u8> = match old {
                Some(bytes) => codecs
                    .decode(
                        Cow::Borrowed(bytes),
                        &shape,
                        &layout.data_type,
                        &layout.fill_value,
                        &options,
                    )
                    .map_err(|e| e.to_string())
                    .and_then(|d| {
                        d.into_fixed()
                            .map(Cow::into_owned)
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|message| ArrayError::CorruptChunk {
                        path: key().into(),
                        chunk: coords.clone(),
                        message,
                    })?,
                None => layout.fill.repeat(chunk_bytes / esize.max(1)),
            };
            if buf.len() != chunk_bytes {
                return Err(ArrayError::CorruptChunk {
                    path: key().into(),
                    chunk: coords.clone(),
                    message: format!("decoded to {} bytes, expected {chunk_bytes}", buf.len()),
                });
            }
            for request in reqs {
                scatter.apply(&mut buf, request)?;
            }
            let all_fill = buf
                .chunks_exact(esize)
                .all(|e| e == layout.fill.as_slice() || nan_fill.is_some_and(|f| f(e)));
            if all_fill && !store_empty {
                return Ok((coords.clone(), None));
            }
            let encoded = codecs
                .encode(
                    ArrayBytes::new_flen(Cow::Borrowed(&buf[..])),
                    &shape,
                    &layout.data_type,
                    &layout.fill_value,
                    &options,
                )
                .map_err(|e| ArrayError::Zarrs {
                    path: key().into(),
                    message: e.to_string(),
                })?;
            Ok((coords.clone(), Some(encoded.into_owned())))
        };
        pool.install(|| {
            use rayon::prelude::*;
            tasks.par_iter().map(encode_one).collect()
        })
    }

    /// Write `value` given as chunk requests into the array's directory: stored chunks in
    /// `partial` (those the write covers only in part) are read first; every touched stored
    /// chunk is replaced atomically, or deleted when all fill and `store_empty` is false.
    ///
    /// # Errors
    /// As [`ZarrArray::encode_chunk_requests`]; IO errors reading or writing (files already
    /// written stay written; no file is ever torn).
    pub fn write_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        value: WriteValue<'_>,
        partial: &[Vec<u64>],
        store_empty: bool,
    ) -> Result<()> {
        let reader = &self.context().reader;
        let completions = reader.read_ordered(partial.iter().enumerate().map(|(i, coords)| {
            zuring_io::ReadRequest::new(self.file_path(coords), zuring_io::ByteRange::Whole, i)
        }));
        let mut existing = Vec::with_capacity(partial.len());
        for c in completions {
            let bytes = match c.result {
                Ok(b) => Some(b.to_vec()),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            existing.push((partial[c.tag].clone(), bytes));
        }
        let encoded = self.encode_chunk_requests(requests, value, existing, store_empty)?;
        let mut writes = Vec::new();
        let mut result = Ok(());
        for (coords, bytes) in encoded {
            let path = self.file_path(&coords);
            if matches!(self.layout().mode, ReadMode::Sharded(_)) {
                self.context().indexes.invalidate(&path);
            }
            match bytes {
                Some(b) => writes.push((path, Bytes::from(b))),
                None => {
                    if let Err(e) = reader.remove(&path) {
                        result = result.and(Err(e.into()));
                    }
                }
            }
        }
        for r in reader.write_many(&writes, false) {
            result = result.and(r.map_err(ArrayError::from));
        }
        if matches!(self.layout().mode, ReadMode::Sharded(_)) {
            for (path, _) in &writes {
                self.context().indexes.invalidate(path);
            }
        }
        result
    }
}

/// For float types with a NaN fill value: a test that an element is NaN (any payload), since
/// zarr-python counts a chunk of NaNs as all fill.
fn is_nan_fill(data_type: &str, fill: &[u8]) -> Option<fn(&[u8]) -> bool> {
    fn f32_nan(e: &[u8]) -> bool {
        e.try_into().is_ok_and(|b| f32::from_ne_bytes(b).is_nan())
    }
    fn f64_nan(e: &[u8]) -> bool {
        e.try_into().is_ok_and(|b| f64::from_ne_bytes(b).is_nan())
    }
    match data_type {
        "float32" if f32_nan(fill) => Some(f32_nan),
        "float64" if f64_nan(fill) => Some(f64_nan),
        _ => None,
    }
}
