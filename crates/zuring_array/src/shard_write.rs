//! Writes covering an existing shard in part: only the inner chunks the write touches are
//! decoded (unless it covers them whole) and encoded again; every other inner chunk keeps its
//! stored bytes, as zarr-python's sharding codec does. Writing one time step into a shard of 16
//! thus costs one sixteenth of the shard's codec work, not all of it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use rayon::prelude::*;
use smallvec::SmallVec;
use zarrs::array::CodecOptions;

use crate::array::ZarrArray;
use crate::decode::{encode_chunk, with_decoded, with_scratch};
use crate::error::{ArrayError, Result};
use crate::layout::{IndexLayout, IndexLocation};
use crate::plan::{c_strides, try_for_each_coord, ChunkRequest, Indices};
use crate::shard_index::{ShardIndex, MISSING};
use crate::write::{ChunkSink, Dim, NewBytes, Scatter};
use zuring_io::Piece;

/// Whether an element (native-endian bytes) is the fill value.
pub(crate) type IsFill<'a> = dyn Fn(&[u8]) -> bool + Sync + 'a;

/// The inner chunks the requests (split along the inner chunk grid, see [`Split`]) write into
/// (C-order index within the shard, ascending, each once), each with whether one request writes
/// every element of it (then its old contents are not needed; points never claim that).
/// `inner` is the inner chunk shape, `grid_strides` the C-order strides of the shard's inner
/// chunk grid; the requests' indices must already be checked to lie inside the shard.
fn touched_inner_chunks(
    splits: &[Split],
    inner: &[u64],
    grid_strides: &[usize],
) -> Result<Vec<(usize, bool)>> {
    // Listed as met, then sorted (a region's are met in order) and merged: a shard of a million
    // small inner chunks is not a million map insertions.
    let mut touched: Vec<(usize, bool)> = Vec::new();
    let mut mark = |at: usize, full: bool| touched.push((at, full));
    for split in splits {
        match split {
            Split::Orthogonal { per_dim } => {
                // Per dimension: the inner chunk positions written, each with whether every
                // index of it is written.
                let dims: Vec<Vec<(u64, bool)>> = per_dim
                    .iter()
                    .zip(inner)
                    .map(|(parts, &n)| {
                        parts
                            .iter()
                            .map(|(&c, (indices, _))| {
                                let mut distinct = indices.as_list().into_owned();
                                distinct.sort_unstable();
                                distinct.dedup();
                                (c, distinct.len() as u64 == n)
                            })
                            .collect()
                    })
                    .collect();
                let lens: Vec<u64> = dims.iter().map(|d| d.len() as u64).collect();
                try_for_each_coord(&vec![0; dims.len()], &lens, |k| {
                    let (mut at, mut full) = (0usize, true);
                    for (d, &k) in k.iter().enumerate() {
                        let (c, whole) = dims[d][usize::try_from(k).unwrap_or(usize::MAX)];
                        at += usize::try_from(c).unwrap_or(usize::MAX) * grid_strides[d];
                        full &= whole;
                    }
                    mark(at, full);
                    Ok::<(), ArrayError>(())
                })?;
            }
            Split::Points { by_chunk, .. } => by_chunk.keys().for_each(|&at| mark(at, false)),
        }
    }
    if !touched.is_sorted_by_key(|&(at, _)| at) {
        touched.sort_by_key(|&(at, _)| at);
    }
    touched.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        kept.1 |= same && later.1;
        same
    });
    Ok(touched)
}

/// Indices within one inner chunk along one dimension, with their value positions (None: the
/// dimension is dropped from the value).
type Part = (Indices, Option<Indices>);

/// A write request split along the inner chunk grid of its shard, so that each inner chunk gets
/// the part of it that falls inside (indices relative to the inner chunk), applied straight to
/// that chunk's buffer: no whole-shard buffer, one copy of each value.
enum Split {
    /// Per dimension: inner chunk coordinate -> indices within it and their value positions.
    Orthogonal { per_dim: Vec<BTreeMap<u64, Part>> },
    /// Inner chunk (C-order index in the shard) -> its points (coordinates within it) and their
    /// value positions.
    Points {
        by_chunk: BTreeMap<usize, (Vec<Vec<u64>>, Vec<u64>)>,
    },
}

impl Split {
    fn new(request: &ChunkRequest, inner: &[u64], grid_strides: &[usize]) -> Self {
        match request {
            ChunkRequest::Orthogonal {
                indices, positions, ..
            } => {
                let per_dim = indices
                    .iter()
                    .zip(positions)
                    .zip(inner)
                    .map(|((list, pos), &n)| {
                        let mut parts: BTreeMap<u64, (Vec<u64>, Option<Vec<u64>>)> =
                            BTreeMap::new();
                        for (k, i) in list.iter().enumerate() {
                            let part = parts
                                .entry(i / n)
                                .or_insert_with(|| (Vec::new(), pos.as_ref().map(|_| Vec::new())));
                            part.0.push(i % n);
                            if let (Some(out), Some(pos)) = (part.1.as_mut(), pos) {
                                // Lengths were checked with the request (`Scatter::apply`).
                                out.push(pos.get(k).unwrap_or(u64::MAX));
                            }
                        }
                        parts
                            .into_iter()
                            .map(|(c, (i, p))| (c, (Indices::List(i), p.map(Indices::List))))
                            .collect()
                    })
                    .collect();
                Split::Orthogonal { per_dim }
            }
            ChunkRequest::Points {
                coords, positions, ..
            } => {
                let mut by_chunk: BTreeMap<usize, (Vec<Vec<u64>>, Vec<u64>)> = BTreeMap::new();
                for (point, &p) in coords.iter().zip(positions) {
                    let at = point
                        .iter()
                        .zip(inner)
                        .zip(grid_strides)
                        .map(|((&i, &n), &s)| usize::try_from(i / n).unwrap_or(usize::MAX) * s)
                        .sum();
                    let part = by_chunk.entry(at).or_default();
                    part.0
                        .push(point.iter().zip(inner).map(|(&i, &n)| i % n).collect());
                    part.1.push(p);
                }
                Split::Points { by_chunk }
            }
        }
    }

    /// Apply the part of the request inside inner chunk `at` (at grid coordinates `grid` in
    /// the shard) to that chunk's decoded `buf` through `scatter`; false when it writes nothing
    /// there.
    fn apply_part(
        &self,
        scatter: &Scatter<'_>,
        buf: &mut [u8],
        at: usize,
        grid: &[u64],
    ) -> Result<bool> {
        match self {
            Split::Orthogonal { per_dim } => {
                let mut dims: SmallVec<[Dim<'_>; 8]> = SmallVec::new();
                for (parts, c) in per_dim.iter().zip(grid) {
                    let Some((indices, positions)) = parts.get(c) else {
                        return Ok(false);
                    };
                    dims.push((indices, positions.as_ref()));
                }
                scatter.apply_orthogonal(Some(buf), &dims).map(|()| true)
            }
            Split::Points { by_chunk } => match by_chunk.get(&at) {
                Some((coords, positions)) => scatter
                    .apply_points(Some(buf), coords, positions)
                    .map(|()| true),
                None => Ok(false),
            },
        }
    }
}

/// What a shard rewrite needs besides the shard: the write's values, what counts as fill,
/// whether empty shards are kept, and the codec options.
pub(crate) struct Rewrite<'a> {
    pub scatter: &'a Scatter<'a>,
    pub is_fill: &'a IsFill<'a>,
    pub store_empty: bool,
    pub options: &'a CodecOptions,
}

/// The new bytes of the touched inner chunks of a shard (None: all fill, left out), by index
/// (ascending).
type Touched = Vec<(usize, Option<Vec<u8>>)>;

/// How a rewrite reads an old inner chunk: its index in the shard, offset and length.
type ReadOld<'a> = dyn Fn(usize, u64, u64) -> Result<Cow<'a, [u8]>> + Sync + 'a;

impl ZarrArray {
    /// Apply `requests` to the stored shard `old` (at `coords`, with index layout `index`; None:
    /// there is none, every inner chunk is missing) touching only the inner chunks they write;
    /// hands `sink` the new shard in parts (index, chunks and old runs in file order), or None
    /// when no inner chunk is left and empty shards are not kept.
    ///
    /// # Errors
    /// A shard index that cannot be decoded or points outside the shard names the file; a
    /// touched inner chunk that cannot be decoded names the file and chunk; encoding errors.
    /// Untouched inner chunks are copied as stored, without decoding.
    pub(crate) fn rewrite_shard(
        &self,
        index: &IndexLayout,
        coords: &[u64],
        requests: &[&ChunkRequest],
        old: Option<&Bytes>,
        how: &Rewrite<'_>,
        sink: &ChunkSink<'_>,
    ) -> Result<()> {
        let path = self.file_path(coords);
        let old_index = match old {
            Some(old) => read_index(&path, old, index, how.options)?,
            None => {
                let n = index
                    .chunks_per_shard
                    .iter()
                    .try_fold(2usize, |n, &c| n.checked_mul(usize::try_from(c).ok()?))
                    .ok_or_else(|| ArrayError::selection("too many inner chunks per shard"))?;
                ShardIndex::from_entries(&path, vec![MISSING; n], 0)?
            }
        };
        let stored = |offset: u64, nbytes: u64| -> &[u8] {
            // The index was validated against the shard's size.
            let at = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            old.and_then(|old| old.get(at(offset)..at(offset + nbytes)))
                .unwrap_or_default()
        };
        let read_old = |_, offset, nbytes| Ok(Cow::Borrowed(stored(offset, nbytes)));
        let new = self.reencode_touched(index, coords, requests, &old_index, &read_old, how)?;
        let order = self.inner_order(index);
        let (pieces, entries) = shard_pieces(&old_index, &new, index, order.as_deref());
        if pieces.is_empty() && !how.store_empty {
            return sink(coords, None);
        }
        let encoded = ShardIndex::encode(&path, &entries, index, how.options)?;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(pieces.len() + 1);
        if index.location == IndexLocation::Start {
            parts.push(&encoded);
        }
        parts.extend(pieces.iter().map(|piece| match *piece {
            Piece::Bytes(bytes) => bytes,
            Piece::Copy { offset, len } => stored(offset, len),
        }));
        if index.location == IndexLocation::End {
            parts.push(&encoded);
        }
        sink(coords, Some(NewBytes::Parts(&parts)))
    }

    /// As [`ZarrArray::rewrite_shard`] for a shard file in the array's directory, read and
    /// written in place of holding it in memory: its index and the touched inner chunks written
    /// in part are read (from one open descriptor, so all of one version), and the new shard is
    /// the old file's untouched runs copied by the kernel plus the new inner chunks and index,
    /// replacing the file atomically (or removing it when nothing is left). Returns false,
    /// doing nothing, when there is no shard file.
    ///
    /// # Errors
    /// As [`ZarrArray::rewrite_shard`]; IO errors naming the file.
    pub(crate) fn rewrite_local_shard(
        &self,
        index: &IndexLayout,
        coords: &[u64],
        requests: &[&ChunkRequest],
        how: &Rewrite<'_>,
    ) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        let path = self.file_path(coords);
        let io = |range: (u64, u64), e: std::io::Error| {
            ArrayError::Io(zuring_io::IoError::Read {
                path: path.clone(),
                range,
                source: std::sync::Arc::new(e),
            })
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io((0, 0), e)),
        };
        let size = file.metadata().map_err(|e| io((0, 0), e))?.len();
        let isz = index.encoded_size;
        let start = index_start(&path, size, index)?;
        let mut encoded = vec![0u8; usize::try_from(isz).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut encoded, start)
            .map_err(|e| io((start, start + isz), e))?;
        let old_index = ShardIndex::decode(&path, &encoded, index, size, how.options)?;
        let read_old = |_, offset: u64, nbytes: u64| -> Result<Cow<'_, [u8]>> {
            let mut buf = vec![0u8; usize::try_from(nbytes).unwrap_or(usize::MAX)];
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| io((offset, offset + nbytes), e))?;
            Ok(Cow::Owned(buf))
        };
        let new = self.reencode_touched(index, coords, requests, &old_index, &read_old, how)?;
        // The new file: untouched runs of the old one (merged where contiguous), new chunks.
        let order = self.inner_order(index);
        let (mut pieces, entries) = shard_pieces(&old_index, &new, index, order.as_deref());
        let reader = &self.context().reader;
        let result = if pieces.is_empty() && !how.store_empty {
            reader.remove(&path)
        } else {
            let encoded = ShardIndex::encode(&path, &entries, index, how.options)?;
            match index.location {
                IndexLocation::Start => pieces.insert(0, Piece::Bytes(&encoded)),
                IndexLocation::End => pieces.push(Piece::Bytes(&encoded)),
            }
            reader.write_atomic_pieces(&path, &file, &pieces, false)
        };
        self.context().indexes.invalidate(&path);
        // The old file, now unlinked, is freed when its last descriptor closes: off this path.
        zuring_io::close_in_background(file);
        result.map(|()| true).map_err(ArrayError::from)
    }

    /// Decode (when written in part), scatter into and encode the inner chunks of a shard that
    /// `requests` touch, in parallel; `read_old` gives a stored inner chunk's bytes.
    fn reencode_touched(
        &self,
        index: &IndexLayout,
        coords: &[u64],
        requests: &[&ChunkRequest],
        old_index: &ShardIndex,
        read_old: &ReadOld<'_>,
        how: &Rewrite<'_>,
    ) -> Result<Touched> {
        let layout = self.layout();
        let path = self.file_path(coords);
        let inner = &layout.chunk_shape;
        let esize = layout.element_size;
        let inner_bytes = usize::try_from(layout.chunk_elements())
            .ok()
            .and_then(|n| n.checked_mul(esize))
            .ok_or_else(|| ArrayError::selection("inner chunk too large"))?;
        let grid_strides = c_strides(&index.chunks_per_shard)?;
        let inner_strides = c_strides(inner)?;
        // The write's values go straight into each inner chunk's buffer: the requests (checked
        // against the shard by the caller) split along the inner chunk grid.
        let splits: Vec<Split> = requests
            .iter()
            .map(|r| Split::new(r, inner, &grid_strides))
            .collect();
        let touched = touched_inner_chunks(&splits, inner, &grid_strides)?;
        let scatter = Scatter {
            chunk_strides: &inner_strides,
            file_shape: inner,
            chunk_bytes: inner_bytes,
            ..*how.scatter
        };
        // Each touched inner chunk in parallel: its old contents when the write covers it in
        // part (fill value where absent), the write's values, then encoded (all-fill ones are
        // left out).
        let encoded: Vec<Option<Vec<u8>>> = touched
            .par_iter()
            .map(|&(at, full)| -> Result<Option<Vec<u8>>> {
                let grid: SmallVec<[u64; 8]> = grid_strides
                    .iter()
                    .zip(&index.chunks_per_shard)
                    .map(|(&s, &n)| (at / s) as u64 % n)
                    .collect();
                // The inner chunk's coordinates in the array's inner chunk grid (the shard's
                // first inner chunk's plus its place in the shard).
                let chunk_coords = || -> Vec<u64> {
                    grid.iter()
                        .zip(layout.file_grid.chunk_start(coords))
                        .zip(inner)
                        .map(|((&k, start), &n)| start / n + k)
                        .collect()
                };
                with_scratch(|chunk| {
                    match old_index.chunk(at) {
                        _ if full => chunk.resize(inner_bytes, 0),
                        None if layout.fill.iter().all(|&b| b == 0) => {
                            chunk.resize(inner_bytes, 0);
                        }
                        None => {
                            for _ in 0..inner_bytes / esize.max(1) {
                                chunk.extend_from_slice(&layout.fill);
                            }
                        }
                        Some((offset, nbytes)) => {
                            let encoded = read_old(at, offset, nbytes)?;
                            with_decoded(
                                layout,
                                layout.decoder,
                                inner,
                                &encoded,
                                how.options,
                                |d| {
                                    chunk.extend_from_slice(d);
                                },
                            )
                            .map_err(|message| {
                                ArrayError::CorruptChunk {
                                    path: path.clone(),
                                    chunk: chunk_coords(),
                                    message,
                                }
                            })?;
                        }
                    }
                    if chunk.len() != inner_bytes {
                        return Err(ArrayError::selection("inner chunk of an unexpected size"));
                    }
                    for split in &splits {
                        split.apply_part(&scatter, chunk, at, &grid)?;
                    }
                    if chunk.chunks_exact(esize.max(1)).all(how.is_fill) {
                        return Ok(None);
                    }
                    encode_chunk(layout, layout.decoder, chunk, how.options)
                        .map(Some)
                        .map_err(|message| ArrayError::Encode {
                            path: path.clone(),
                            chunk: chunk_coords(),
                            message,
                        })
                })
            })
            .collect::<Result<_>>()?;
        Ok(touched.iter().map(|&(at, _)| at).zip(encoded).collect())
    }
}

/// Where the index of a shard of `size` bytes starts.
///
/// # Errors
/// [`ArrayError::UnreadableShardIndex`] naming `path` when the shard is shorter than its index.
fn index_start(path: &Path, size: u64, index: &IndexLayout) -> Result<u64> {
    let isz = index.encoded_size;
    if size < isz {
        return Err(ArrayError::UnreadableShardIndex {
            path: path.to_path_buf(),
            message: format!("the shard has {size} bytes, fewer than its index ({isz} bytes)"),
        });
    }
    Ok(match index.location {
        IndexLocation::Start => 0,
        IndexLocation::End => size - isz,
    })
}

/// Decode and validate the index of the stored shard `shard`.
fn read_index(
    path: &Path,
    shard: &[u8],
    index: &IndexLayout,
    options: &CodecOptions,
) -> Result<ShardIndex> {
    let size = shard.len() as u64;
    let start = index_start(path, size, index)?;
    let at = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let encoded = &shard[at(start)..at(start + index.encoded_size)];
    ShardIndex::decode(path, encoded, index, size, options)
}

/// The order in which zuring lays out a shard's inner chunks when it writes one (reads take
/// any order: each inner chunk is found through the index).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InnerChunkOrder {
    /// C order: the last dimension varies fastest (zarrs and tensorstore write this).
    #[default]
    Lexicographic,
    /// Fortran order: the first dimension varies fastest.
    Colexicographic,
    /// Z order (compressed Morton code, as zarr-python writes by default): chunks near each
    /// other in every dimension are near each other in the file.
    Morton,
}

impl InnerChunkOrder {
    /// The C-order indexes of the cells of a grid of `shape`, in this order.
    #[must_use]
    pub fn permutation(self, shape: &[u64]) -> Vec<usize> {
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .unwrap_or(0);
        let mut cells: Vec<usize> = (0..n).collect();
        let coords = |mut i: usize| -> Vec<u64> {
            let mut c = vec![0u64; shape.len()];
            for d in (0..shape.len()).rev() {
                let len = usize::try_from(shape[d]).unwrap_or(usize::MAX);
                c[d] = (i % len) as u64;
                i /= len;
            }
            c
        };
        match self {
            Self::Lexicographic => {}
            Self::Colexicographic => cells.sort_by_cached_key(|&i| {
                let mut c = coords(i);
                c.reverse();
                c
            }),
            Self::Morton => {
                // Bits per dimension to index its cells; level by level, each dimension that
                // still has bits gives the next bit of the code (zarr-python's definition).
                let bits: Vec<u32> = shape
                    .iter()
                    .map(|&d| u64::BITS - d.saturating_sub(1).leading_zeros())
                    .collect();
                let levels = bits.iter().copied().max().unwrap_or(0);
                cells.sort_by_cached_key(|&i| {
                    let c = coords(i);
                    let (mut code, mut out) = (0u128, 0u32);
                    for level in 0..levels {
                        for (d, &b) in bits.iter().enumerate() {
                            if level < b {
                                code |= u128::from((c[d] >> level) & 1) << out.min(127);
                                out += 1;
                            }
                        }
                    }
                    code
                });
            }
        }
        cells
    }
}

/// The data of a rewritten shard: the new bytes of touched inner chunks (`new`), the stored
/// ranges of untouched ones (merged where contiguous in the old shard), no piece for absent
/// ones; and the index entries for it (offsets past an index at the start). Inner chunks the old
/// shard holds keep its order (whatever wrote it), so untouched runs stay whole copies; the
/// others follow in `order` (C-order indexes; None: C order).
fn shard_pieces<'a>(
    old_index: &ShardIndex,
    new: &'a Touched,
    index: &IndexLayout,
    order: Option<&[usize]>,
) -> (Vec<Piece<'a>>, Vec<u64>) {
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    let mut entries = vec![MISSING; 2 * old_index.len()];
    let mut at_byte = match index.location {
        IndexLocation::Start => index.encoded_size,
        IndexLocation::End => 0,
    };
    let mut cells: Vec<usize> = match order {
        Some(order) if order.len() == old_index.len() => order.to_vec(),
        _ => (0..old_index.len()).collect(),
    };
    cells.sort_by_key(|&at| old_index.chunk(at).map_or(u64::MAX, |(offset, _)| offset));
    // Each cell's new bytes, if touched.
    let mut touched: Vec<Option<&Option<Vec<u8>>>> = vec![None; old_index.len()];
    for (at, bytes) in new {
        if let Some(slot) = touched.get_mut(*at) {
            *slot = Some(bytes);
        }
    }
    for at in cells {
        let piece = match touched[at] {
            Some(Some(bytes)) => Piece::Bytes(bytes),
            Some(None) => continue,
            None => match old_index.chunk(at) {
                Some((offset, len)) => Piece::Copy { offset, len },
                None => continue,
            },
        };
        let len = match piece {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Copy { len, .. } => len,
        };
        entries[2 * at] = at_byte;
        entries[2 * at + 1] = len;
        at_byte += len;
        match (pieces.last_mut(), piece) {
            (Some(Piece::Copy { offset: o, len: l }), Piece::Copy { offset, len })
                if *o + *l == offset =>
            {
                *l += len;
            }
            _ => pieces.push(piece),
        }
    }
    (pieces, entries)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::write::WriteValue;

    #[test]
    fn inner_chunk_orders_are_zarr_pythons() {
        // Expected: zarr-python 3.4's morton_order_coords / colexicographic_order_coords, as
        // C-order indexes.
        let cases: [(&[u64], &[usize], &[usize]); 3] = [
            (&[3, 2], &[0, 2, 1, 3, 4, 5], &[0, 2, 4, 1, 3, 5]),
            (
                &[2, 3, 2],
                &[0, 6, 2, 8, 1, 7, 3, 9, 4, 10, 5, 11],
                &[0, 6, 2, 8, 4, 10, 1, 7, 3, 9, 5, 11],
            ),
            (&[5], &[0, 1, 2, 3, 4], &[0, 1, 2, 3, 4]),
        ];
        for (shape, morton, colex) in cases {
            assert_eq!(
                InnerChunkOrder::Morton.permutation(shape),
                morton,
                "{shape:?}"
            );
            assert_eq!(InnerChunkOrder::Colexicographic.permutation(shape), colex);
            let lex: Vec<usize> = (0..morton.len()).collect();
            assert_eq!(InnerChunkOrder::Lexicographic.permutation(shape), lex);
        }
        // Square power-of-two grids: the classic Z curve.
        assert_eq!(
            InnerChunkOrder::Morton.permutation(&[4, 4]),
            [0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15]
        );
    }

    #[test]
    fn inner_chunks_touched_by_several_requests_are_listed_once() {
        // A 4 x 4 shard of 2 x 2 inner chunks: a request writing inner chunks 2 and 3 in part
        // (rows 3 and 2 of columns 3 and 1), one writing inner chunk 3 whole, and points in
        // chunks 3 and 0: each chunk once, in order, whole when one request writes all of it.
        let (inner, strides) = ([2, 2], [2, 1]);
        let orthogonal = |rows: Vec<u64>, cols: Vec<u64>| ChunkRequest::Orthogonal {
            target: 0,
            chunk: vec![0, 0],
            positions: vec![None, None],
            indices: vec![rows.into(), cols.into()],
        };
        let points = ChunkRequest::Points {
            target: 0,
            chunk: vec![0, 0],
            coords: vec![vec![3, 3], vec![0, 1]],
            positions: vec![0, 0],
        };
        let requests = [
            orthogonal(vec![3, 2], vec![3, 1]),
            orthogonal(vec![2, 3], vec![2, 3]),
            points,
        ];
        let splits: Vec<Split> = requests
            .iter()
            .map(|r| Split::new(r, &inner, &strides))
            .collect();
        let touched = touched_inner_chunks(&splits, &inner, &strides).unwrap();
        assert_eq!(touched, [(0, false), (2, false), (3, true)]);
    }

    /// A random request inside a shard of `shard` elements: orthogonal (per dimension 1-5
    /// indices, unsorted, repeats allowed, or a run given by its bounds) or points (1-12); the
    /// value's shape with it.
    fn request(shard: &[u64], seed: u64, points: bool) -> (ChunkRequest, Vec<u64>) {
        let mut rng = seed;
        let mut next = |n: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        if points {
            let n = 1 + next(12);
            let coords = (0..n)
                .map(|_| shard.iter().map(|&s| next(s)).collect())
                .collect();
            let request = ChunkRequest::Points {
                target: 0,
                chunk: vec![0; shard.len()],
                coords,
                positions: (0..n).collect(),
            };
            return (request, vec![n]);
        }
        let indices: Vec<Indices> = shard
            .iter()
            .map(|&s| {
                if next(3) == 0 {
                    let start = next(s);
                    (start..start + 1 + next((s - start).min(5))).into()
                } else {
                    (0..1 + next(5)).map(|_| next(s)).collect()
                }
            })
            .collect();
        let shape: Vec<u64> = indices.iter().map(|i| i.len() as u64).collect();
        let request = ChunkRequest::Orthogonal {
            target: 0,
            chunk: vec![0; shard.len()],
            positions: indices
                .iter()
                .map(|i| Some((0..i.len() as u64).into()))
                .collect(),
            indices,
        };
        (request, shape)
    }

    proptest! {
        /// Writing a request's parts into each inner chunk's own buffer gives every inner chunk
        /// what writing the whole request into a whole-shard buffer gives it (repeated indices
        /// keep the later value in both), and an orthogonal request reports an inner chunk as
        /// written whole exactly when no element of it is left unwritten.
        #[test]
        fn split_requests_write_what_the_whole_request_writes(
            dims in prop::collection::vec((1u64..4, 1u64..4), 1..4),
            seed in any::<u64>(),
            points in any::<bool>(),
        ) {
            let inner: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let per_shard: Vec<u64> = dims.iter().map(|d| d.1).collect();
            let shard: Vec<u64> = inner.iter().zip(&per_shard).map(|(i, n)| i * n).collect();
            let (request, value_shape) = request(&shard, seed, points);
            let count: u64 = value_shape.iter().product();
            // Distinct values, none equal to the 0xffff the buffers start with.
            let bytes: Vec<u8> = (1..=count as u16).flat_map(u16::to_ne_bytes).collect();
            let value = WriteValue { bytes: &bytes, shape: &value_shape };
            let value_strides = c_strides(&value_shape).unwrap();
            let elements = |s: &[u64]| s.iter().product::<u64>() as usize;
            let shard_strides = c_strides(&shard).unwrap();
            let whole_scatter = Scatter {
                chunk_strides: &shard_strides,
                file_shape: &shard,
                value_strides: &value_strides,
                value,
                esize: 2,
                chunk_bytes: 2 * elements(&shard),
            };
            let mut whole = vec![0xffu8; 2 * elements(&shard)];
            whole_scatter.apply(Some(&mut whole), &request).unwrap();

            let inner_strides = c_strides(&inner).unwrap();
            let grid_strides = c_strides(&per_shard).unwrap();
            let scatter = Scatter {
                chunk_strides: &inner_strides,
                file_shape: &inner,
                chunk_bytes: 2 * elements(&inner),
                ..whole_scatter
            };
            let split = Split::new(&request, &inner, &grid_strides);
            let touched = touched_inner_chunks(std::slice::from_ref(&split), &inner, &grid_strides).unwrap();
            prop_assert!(touched.windows(2).all(|w| w[0].0 < w[1].0), "ascending, each once");
            for at in 0..elements(&per_shard) {
                let grid: Vec<u64> =
                    grid_strides.iter().zip(&per_shard).map(|(&s, &n)| (at / s) as u64 % n).collect();
                let mut buf = vec![0xffu8; 2 * elements(&inner)];
                let wrote = split.apply_part(&scatter, &mut buf, at, &grid).unwrap();
                // The same inner chunk cut out of the whole-shard buffer.
                let lo: Vec<u64> = grid.iter().zip(&inner).map(|(g, i)| g * i).collect();
                let hi: Vec<u64> = lo.iter().zip(&inner).map(|(l, i)| l + i).collect();
                let mut expected = Vec::new();
                try_for_each_coord(&lo, &hi, |c| {
                    let e: usize = c.iter().zip(&shard_strides).map(|(&c, &s)| c as usize * s).sum();
                    expected.extend_from_slice(&whole[2 * e..2 * e + 2]);
                    Ok::<(), ArrayError>(())
                })
                .unwrap();
                prop_assert_eq!(&buf, &expected, "inner chunk {}", at);
                let found = touched.binary_search_by_key(&at, |t| t.0);
                prop_assert_eq!(wrote, found.is_ok());
                // Points never claim a whole inner chunk (its old contents are read).
                let unwritten = buf.chunks_exact(2).any(|e| e == [0xff, 0xff]);
                let full = found.is_ok_and(|i| touched[i].1);
                let agrees = if points { !full || !unwritten } else { full != unwritten };
                prop_assert!(agrees, "inner chunk {} full {} unwritten {}", at, full, unwritten);
            }
        }
    }
}
