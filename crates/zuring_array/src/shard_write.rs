//! Writes covering an existing shard in part: only the inner chunks the write touches are
//! decoded (unless it covers them whole) and encoded again; every other inner chunk keeps its
//! stored bytes, as zarr-python's sharding codec does. Writing one time step into a shard of 16
//! thus costs one sixteenth of the shard's codec work, not all of it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use rayon::prelude::*;
use zarrs::array::CodecOptions;

use crate::array::ZarrArray;
use crate::decode::{encode_chunk, with_decoded, with_scratch};
use crate::error::{ArrayError, Result};
use crate::layout::{IndexLayout, IndexLocation};
use crate::plan::{c_strides, try_for_each_coord, ChunkRequest};
use crate::shard_index::{ShardIndex, MISSING};
use crate::write::Scatter;
use zuring_io::Piece;

/// Whether an element (native-endian bytes) is the fill value.
pub(crate) type IsFill<'a> = dyn Fn(&[u8]) -> bool + Sync + 'a;

/// The inner chunks `requests` write into (C-order index within the shard), each with whether
/// one request writes every element of it (then its old contents are not needed).
/// `inner` is the inner chunk shape, `per_shard` the inner chunks per shard; the requests'
/// indices must already be checked to lie inside the shard.
pub(crate) fn touched_inner_chunks(
    requests: &[&ChunkRequest],
    inner: &[u64],
    per_shard: &[u64],
) -> Result<BTreeMap<usize, bool>> {
    let strides = c_strides(per_shard)?;
    let mut touched: BTreeMap<usize, bool> = BTreeMap::new();
    let mut mark = |at: usize, full: bool| {
        let entry = touched.entry(at).or_insert(false);
        *entry |= full;
    };
    for request in requests {
        match request {
            ChunkRequest::Orthogonal { indices, .. } => {
                // Per dimension: the inner chunk positions written, each with whether every
                // index of it is written.
                let mut dims: Vec<Vec<(u64, bool)>> = Vec::with_capacity(indices.len());
                for (d, list) in indices.iter().enumerate() {
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
                    for i in sorted {
                        *counts.entry(i / inner[d]).or_default() += 1;
                    }
                    dims.push(
                        counts
                            .into_iter()
                            .map(|(c, n)| (c, n == inner[d]))
                            .collect(),
                    );
                }
                let lens: Vec<u64> = dims.iter().map(|d| d.len() as u64).collect();
                try_for_each_coord(&vec![0; dims.len()], &lens, |k| {
                    let (mut at, mut full) = (0usize, true);
                    for (d, &k) in k.iter().enumerate() {
                        let (c, whole) = dims[d][usize::try_from(k).unwrap_or(usize::MAX)];
                        at += usize::try_from(c).unwrap_or(usize::MAX) * strides[d];
                        full &= whole;
                    }
                    mark(at, full);
                    Ok::<(), ArrayError>(())
                })?;
            }
            ChunkRequest::Points { coords, .. } => {
                for point in coords {
                    let at = point
                        .iter()
                        .zip(inner)
                        .zip(&strides)
                        .map(|((&i, &n), &s)| usize::try_from(i / n).unwrap_or(usize::MAX) * s)
                        .sum();
                    mark(at, false);
                }
            }
        }
    }
    Ok(touched)
}

/// Visit the rows (runs along the last dimension) of inner chunk `at` (C-order index in the
/// shard): for each, its byte range in a whole-shard buffer (C order) and in the contiguous
/// inner chunk.
fn for_each_row(
    at: usize,
    geometry: &Geometry<'_>,
    mut f: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>) -> Result<()>,
) -> Result<()> {
    let ndim = geometry.inner.len();
    let esize = geometry.esize;
    let Some(last) = ndim.checked_sub(1) else {
        return f(0..esize, 0..esize);
    };
    // The inner chunk's first element in the shard.
    let mut origin = 0usize;
    let mut rest = at;
    for d in 0..ndim {
        let k = rest / geometry.grid_strides[d];
        rest %= geometry.grid_strides[d];
        origin +=
            k * usize::try_from(geometry.inner[d]).unwrap_or(usize::MAX) * geometry.strides[d];
    }
    let row = usize::try_from(geometry.inner[last]).unwrap_or(usize::MAX) * esize;
    let mut next = 0usize;
    try_for_each_coord(&vec![0; last], &geometry.inner[..last], |c| {
        let mut start = origin;
        for (d, &i) in c.iter().enumerate() {
            start += usize::try_from(i).unwrap_or(usize::MAX) * geometry.strides[d];
        }
        f(start * esize..start * esize + row, next..next + row)?;
        next += row;
        Ok(())
    })
}

fn outside() -> ArrayError {
    ArrayError::selection("inner chunk outside the shard")
}

/// Shapes and strides of a shard and its inner chunks.
struct Geometry<'a> {
    inner: &'a [u64],
    /// Shard strides, in elements.
    strides: Vec<usize>,
    /// Strides of the inner chunk grid, in inner chunks.
    grid_strides: Vec<usize>,
    esize: usize,
}

/// What a shard rewrite needs besides the shard: the write's values, what counts as fill,
/// whether empty shards are kept, and the codec options.
pub(crate) struct Rewrite<'a> {
    pub scatter: &'a Scatter<'a>,
    pub is_fill: &'a IsFill<'a>,
    pub store_empty: bool,
    pub options: &'a CodecOptions,
}

/// The new bytes of the touched inner chunks of a shard (None: all fill, left out), by index.
type Touched = BTreeMap<usize, Option<Vec<u8>>>;

/// How a rewrite reads an old inner chunk: its index in the shard, offset and length.
type ReadOld<'a> = dyn Fn(usize, u64, u64) -> Result<Cow<'a, [u8]>> + Sync + 'a;

impl ZarrArray {
    /// Apply `requests` to the stored shard `old` (at `coords`, with index layout `index`; None:
    /// there is none, every inner chunk is missing) touching only the inner chunks they write;
    /// returns the new shard, or None when no inner chunk is left and empty shards are not kept.
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
    ) -> Result<Option<Vec<u8>>> {
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
        let (pieces, entries) = shard_pieces(&old_index, &new, index);
        if pieces.is_empty() && !how.store_empty {
            return Ok(None);
        }
        let encoded = ShardIndex::encode(&path, &entries, index, how.options)?;
        let len = pieces.iter().fold(encoded.len(), |n, piece| match piece {
            Piece::Bytes(bytes) => n + bytes.len(),
            Piece::Copy { len, .. } => n + usize::try_from(*len).unwrap_or(0),
        });
        let mut out = Vec::with_capacity(len);
        if index.location == IndexLocation::Start {
            out.extend_from_slice(&encoded);
        }
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => out.extend_from_slice(bytes),
                Piece::Copy { offset, len } => out.extend_from_slice(stored(offset, len)),
            }
        }
        if index.location == IndexLocation::End {
            out.extend_from_slice(&encoded);
        }
        Ok(Some(out))
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
        let (mut pieces, entries) = shard_pieces(&old_index, &new, index);
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
        let touched = touched_inner_chunks(requests, inner, &index.chunks_per_shard)?;
        let esize = layout.element_size;
        let inner_bytes = usize::try_from(layout.chunk_elements())
            .ok()
            .and_then(|n| n.checked_mul(esize))
            .ok_or_else(|| ArrayError::selection("inner chunk too large"))?;
        let geometry = Geometry {
            inner,
            strides: c_strides(&layout.file_shape)?,
            grid_strides: c_strides(&index.chunks_per_shard)?,
            esize,
        };
        let inner_coords = |at: usize| -> Vec<u64> {
            let mut rest = at;
            (0..inner.len())
                .map(|d| {
                    let k = rest / geometry.grid_strides[d];
                    rest %= geometry.grid_strides[d];
                    coords[d] * index.chunks_per_shard[d] + k as u64
                })
                .collect()
        };
        // The old contents of the inner chunks the write covers only in part, decoded in
        // parallel (fill value where absent).
        let touched: Vec<(usize, bool)> = touched.into_iter().collect();
        let decoded: Vec<Option<Vec<u8>>> = touched
            .par_iter()
            .map(|&(at, full)| -> Result<Option<Vec<u8>>> {
                if full {
                    return Ok(None);
                }
                let Some((offset, nbytes)) = old_index.chunk(at) else {
                    return Ok(Some(layout.fill.repeat(inner_bytes / esize.max(1))));
                };
                let encoded = read_old(at, offset, nbytes)?;
                with_decoded(
                    layout,
                    layout.decoder,
                    &encoded,
                    how.options,
                    <[u8]>::to_vec,
                )
                .map(Some)
                .map_err(|message| ArrayError::CorruptChunk {
                    path: path.clone(),
                    chunk: inner_coords(at),
                    message,
                })
            })
            .collect::<Result<_>>()?;
        // Scatter the values into a whole-shard buffer: pages of inner chunks the write does not
        // touch are never written (so never backed by memory). A write to every inner chunk
        // backs it all anyway: then in huge pages (fewer page faults).
        let mut shard = vec![0u8; how.scatter.chunk_bytes];
        if touched.len() == old_index.len() {
            zuring_io::advise_huge_pages(shard.as_mut_ptr(), shard.len());
        }
        for (&(at, _), chunk) in touched.iter().zip(decoded) {
            if let Some(chunk) = chunk {
                for_each_row(at, &geometry, |s, c| {
                    let src = chunk.get(c).ok_or_else(outside)?;
                    shard.get_mut(s).ok_or_else(outside)?.copy_from_slice(src);
                    Ok(())
                })?;
            }
        }
        for request in requests {
            how.scatter.apply(Some(&mut shard), request)?;
        }
        // Encode the touched inner chunks in parallel; all-fill ones are left out.
        let encoded: Vec<Option<Vec<u8>>> = touched
            .par_iter()
            .map(|&(at, _)| -> Result<Option<Vec<u8>>> {
                with_scratch(|chunk| {
                    chunk.resize(inner_bytes, 0);
                    for_each_row(at, &geometry, |s, c| {
                        let src = shard.get(s).ok_or_else(outside)?;
                        chunk.get_mut(c).ok_or_else(outside)?.copy_from_slice(src);
                        Ok(())
                    })?;
                    if chunk.chunks_exact(esize.max(1)).all(how.is_fill) {
                        return Ok(None);
                    }
                    encode_chunk(layout, layout.decoder, chunk, how.options)
                        .map(Some)
                        .map_err(|message| ArrayError::Zarrs {
                            path: path.clone(),
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

/// The data of a rewritten shard, in inner-chunk order: the new bytes of touched inner chunks
/// (`new`), the stored ranges of untouched ones (merged where contiguous in the old shard), no
/// piece for absent ones; and the index entries for it (offsets past an index at the start).
fn shard_pieces<'a>(
    old_index: &ShardIndex,
    new: &'a Touched,
    index: &IndexLayout,
) -> (Vec<Piece<'a>>, Vec<u64>) {
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    let mut entries = vec![MISSING; 2 * old_index.len()];
    let mut at_byte = match index.location {
        IndexLocation::Start => index.encoded_size,
        IndexLocation::End => 0,
    };
    for at in 0..old_index.len() {
        let piece = match new.get(&at) {
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
