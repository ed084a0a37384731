//! Writes of any selection zarr-python produces (regions with steps, integer arrays, points):
//! each stored chunk (shard, when sharded) the write touches is decoded when the write covers it
//! only in part, the new values are scattered into it, and it is encoded again, in parallel on
//! zuring's pool. Chunks left all fill value are deleted unless empty chunks are kept. An
//! existing shard written in part has only its touched inner chunks decoded and encoded
//! (`shard_write`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits};

use crate::array::{StoredChunk, ZarrArray};
use crate::error::{ArrayError, Result};
use crate::grid::Grid;
use crate::layout::{nonzero, ReadMode};
use crate::plan::{c_strides, num_elements, try_for_each_coord, ChunkRequest, Selection};
use crate::shard_write::Rewrite;

pub(crate) mod exclusive;
mod scatter;

pub use scatter::WriteValue;
pub(crate) use scatter::{ChunkGeometry, Dim, Scatter};

/// The stored chunks `encode` hands to its sink, sorted by coordinates.
pub(crate) fn collect_chunks(
    encode: impl FnOnce(&ChunkSink<'_>) -> Result<()>,
) -> Result<Vec<StoredChunk>> {
    let out = std::sync::Mutex::new(Vec::new());
    encode(&|coords, bytes| {
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((coords.to_vec(), bytes.map(NewBytes::into_vec)));
        Ok(())
    })?;
    let mut out = out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where each encoded stored chunk goes: its coordinates and bytes (None: all fill, delete it).
pub(crate) type ChunkSink<'a> = dyn Fn(&[u64], Option<NewBytes<'_>>) -> Result<()> + Sync + 'a;

/// A stored chunk's new bytes: one buffer, or (a shard assembled from its inner chunks and
/// index) parts in file order, which a local file gets with vectored writes instead of being
/// copied into one buffer first (a 32 MiB shard: one copy and 32 MiB of page faults saved).
pub(crate) enum NewBytes<'a> {
    Whole(Vec<u8>),
    Parts(&'a [&'a [u8]]),
}

impl NewBytes<'_> {
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            NewBytes::Whole(bytes) => bytes,
            NewBytes::Parts(parts) => parts.concat(),
        }
    }
}

/// One stored chunk to encode: its coordinates, the requests writing into it, its old bytes.
type ChunkTask<'a> = (Vec<u64>, Vec<&'a ChunkRequest>, Option<Bytes>);

/// The requests of a write by the stored chunk they address (of `ndim` dimensions).
pub(crate) fn group_by_chunk(
    requests: &[ChunkRequest],
    ndim: usize,
) -> Result<BTreeMap<Vec<u64>, Vec<&ChunkRequest>>> {
    let mut by_chunk: BTreeMap<Vec<u64>, Vec<&ChunkRequest>> = BTreeMap::new();
    for request in requests {
        let chunk = request.chunk();
        if chunk.len() != ndim {
            return Err(ArrayError::selection(format!(
                "stored chunk {chunk:?} does not have {ndim} dimensions"
            )));
        }
        crate::plan::push_one(&mut by_chunk, chunk.to_vec(), request);
    }
    Ok(by_chunk)
}

impl ZarrArray {
    /// Encode a write of `value` given as chunk requests (as zarr-python's pipeline batches
    /// them; each request's `target` is ignored, its positions index `value`). `existing` holds
    /// the current bytes of the stored chunks the write covers only in part (None: absent);
    /// a stored chunk not in it starts from the fill value. Returns every touched stored chunk's
    /// coordinates and new bytes, or None when it is all fill value and `store_empty` is false.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] for a request outside its chunk or the value (checked before
    /// anything is encoded); a corrupt existing chunk names its key; encoding errors.
    pub fn encode_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        value: WriteValue<'_>,
        existing: Vec<StoredChunk>,
        store_empty: bool,
    ) -> Result<Vec<StoredChunk>> {
        let existing = existing
            .into_iter()
            .map(|(coords, bytes)| (coords, bytes.map(Bytes::from)))
            .collect();
        collect_chunks(|sink| self.encode_each(requests, value, existing, store_empty, None, sink))
    }

    /// Write `value` given as chunk requests into the array's directory: stored chunks in
    /// `partial` (those the write covers only in part) are read first; every touched stored
    /// chunk is replaced atomically as soon as it is encoded (encoding and writing overlap), or
    /// deleted when all fill and `store_empty` is false. Other writes into any of the same files,
    /// from this process or another on the machine, wait until this one is done, and this one
    /// for them: concurrent writes into different parts of one chunk or shard lose nothing.
    ///
    /// # Errors
    /// As [`ZarrArray::encode_chunk_requests`] (a bad request fails before any file changes);
    /// IO errors reading or writing (chunks already written stay written; none is ever torn).
    pub fn write_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        value: WriteValue<'_>,
        partial: &[Vec<u64>],
        store_empty: bool,
    ) -> Result<()> {
        let _taken = self.take_files(requests, partial);
        // Shards covered in part are rewritten in place of being read whole (see
        // `rewrite_local_shard`); other stored chunks covered in part are read first.
        let (existing, in_place) = if matches!(self.layout().mode, ReadMode::Sharded(_)) {
            let shards: HashSet<Vec<u64>> = partial.iter().cloned().collect();
            (Vec::new(), Some(shards))
        } else {
            (self.read_stored(partial)?, None)
        };
        let writers = self.writers_for(requests);
        if in_place.is_some() || writers == 0 {
            return self.encode_each(
                requests,
                value,
                existing,
                store_empty,
                in_place.as_ref(),
                &self.local_sink(),
            );
        }
        self.with_writers(writers, |sink| {
            self.encode_each(requests, value, existing, store_empty, None, sink)
        })
    }

    /// How many writer threads of their own a write of `requests` replaces its files with (see
    /// [`ZarrArray::with_writers`]); 0: the pool's threads write each file they encode. Writer
    /// threads pay off where files are replaced, not created: replacing one frees the old
    /// version's blocks, which can wait on the device (on a file system mounted with `discard`,
    /// as this machine's root is, for the device to discard them: about 0.3 ms a chunk here),
    /// while creating one is work for the CPU alone, where threads beyond the cores only take
    /// turns (a whole write of the `nwp` benchmark array into a fresh directory: 63 ms median
    /// without writers, 67 with 2, 74 with 8; rewritten in place: 165, 148 and 120 ms). So
    /// writers are used when the write's first file is stored already and the write touches
    /// enough files to keep them busy; at most 256 MiB of chunks wait for them or are written.
    fn writers_for(&self, requests: &[ChunkRequest]) -> usize {
        const IN_FLIGHT: usize = 256 << 20;
        let layout = self.layout();
        let chunk_bytes = num_elements(&layout.file_shape)
            .map_or(usize::MAX, |n| n.saturating_mul(layout.element_size))
            .max(1);
        let writers = (4 * self.context().pool.threads())
            .clamp(4, 16)
            .min(IN_FLIGHT / chunk_bytes / 2);
        // Cheapest first: a file per request at most, then one lookup, then the files counted.
        let enough = |n: usize| writers >= 2 && n >= 2 * writers;
        let replacing = requests
            .first()
            .is_some_and(|r| self.file_path(r.chunk()).exists());
        if !enough(requests.len())
            || !replacing
            || !enough(
                requests
                    .iter()
                    .map(ChunkRequest::chunk)
                    .collect::<HashSet<_>>()
                    .len(),
            )
        {
            return 0;
        }
        writers
    }

    /// Run `encode` with a sink that hands each whole encoded file to `writers` threads of
    /// their own, which replace the files in the array's directory ([`ZarrArray::local_sink`])
    /// while the pool's threads encode the next chunks: an encoding thread waiting on the
    /// device would leave its core idle (see [`ZarrArray::writers_for`]). Returns when every
    /// file is written: `encode`'s error first, else the first error writing.
    fn with_writers(
        &self,
        writers: usize,
        encode: impl FnOnce(&ChunkSink<'_>) -> Result<()>,
    ) -> Result<()> {
        let direct = self.local_sink();
        let failed: std::sync::Mutex<Option<ArrayError>> = std::sync::Mutex::new(None);
        let encoded = std::thread::scope(|scope| {
            // A few files ahead of the writers at most: memory stays bounded.
            let (tx, rx) = crossbeam_channel::bounded::<(Vec<u64>, Vec<u8>)>(writers);
            let mut spawned = 0;
            for i in 0..writers {
                let (rx, direct, failed) = (rx.clone(), &direct, &failed);
                let writer = std::thread::Builder::new()
                    .name(format!("zuring-write-{i}"))
                    .spawn_scoped(scope, move || {
                        for (coords, bytes) in rx {
                            if let Err(e) = direct(&coords, Some(NewBytes::Whole(bytes))) {
                                failed
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .get_or_insert(e);
                            }
                        }
                    });
                spawned += usize::from(writer.is_ok());
            }
            drop(rx);
            // No thread could be spawned: the pool's threads write what they encode.
            if spawned == 0 {
                drop(tx);
                return encode(&direct);
            }
            let sink = |coords: &[u64], bytes: Option<NewBytes<'_>>| match bytes {
                // The writers end only when `tx` is dropped, or by panicking (which the scope
                // passes on): a failed send names the chunk it could not hand over.
                Some(NewBytes::Whole(bytes)) => {
                    tx.send((coords.to_vec(), bytes))
                        .map_err(|_| ArrayError::Encode {
                            path: self.file_path(coords),
                            chunk: coords.to_vec(),
                            message: "no writer thread is left to write it".into(),
                        })
                }
                other => direct(coords, other),
            };
            encode(&sink)
            // `tx` is dropped here: the writers finish the files sent and end.
        });
        encoded?;
        match failed
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Take every stored file that `requests` and `partial` touch from other writes, in this
    /// process and the machine's others, waiting while any is held by one (see [`exclusive`]):
    /// held until the returned value is dropped, after the last file is replaced.
    pub(crate) fn take_files(
        &self,
        requests: &[ChunkRequest],
        partial: &[Vec<u64>],
    ) -> exclusive::Taken {
        let files = requests
            .iter()
            .map(ChunkRequest::chunk)
            .chain(partial.iter().map(Vec::as_slice));
        self.take_stored(files, false)
    }

    /// Take the stored files at `files` (grid coordinates, each once or more), and the
    /// metadata document too when `metadata` (see [`ZarrArray::take_files`]).
    pub(crate) fn take_stored<'c>(
        &self,
        files: impl Iterator<Item = &'c [u64]>,
        metadata: bool,
    ) -> exclusive::Taken {
        let root = exclusive::canonical_root(self.path());
        let files: HashSet<&[u64]> = files.collect();
        let keys = files
            .into_iter()
            .map(|c| exclusive::file_key(&root, c))
            .chain(metadata.then(|| exclusive::metadata_key(&root)))
            .collect();
        exclusive::take(keys)
    }

    /// The current bytes of the stored chunks `coords` (None: absent), read in one batch.
    pub(crate) fn read_stored(
        &self,
        coords: &[Vec<u64>],
    ) -> Result<Vec<(Vec<u64>, Option<Bytes>)>> {
        let reader = &self.context().reader;
        let completions = reader.read_ordered(coords.iter().enumerate().map(|(i, c)| {
            zuring_io::ReadRequest::new(self.file_path(c), zuring_io::ByteRange::Whole, i)
        }));
        let mut existing = Vec::with_capacity(coords.len());
        for c in completions {
            let bytes = match c.result {
                Ok(b) => Some(b),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            existing.push((coords[c.tag].clone(), bytes));
        }
        Ok(existing)
    }

    /// Where encoded stored chunks go in the array's directory: each file replaced atomically
    /// (or removed when None), the shard index cache told.
    pub(crate) fn local_sink(
        &self,
    ) -> impl Fn(&[u64], Option<NewBytes<'_>>) -> Result<()> + Sync + '_ {
        let sharded = matches!(self.layout().mode, ReadMode::Sharded(_));
        move |coords, bytes| {
            let reader = &self.context().reader;
            let path = self.file_path(coords);
            let result = match bytes {
                Some(NewBytes::Whole(b)) => reader.write_atomic(&path, &b, false),
                Some(NewBytes::Parts(parts)) => reader.write_atomic_parts(&path, parts, false),
                None => reader.remove(&path),
            };
            if sharded {
                self.context().indexes.invalidate(&path);
            }
            result.map_err(ArrayError::from)
        }
    }

    /// Decode, scatter into and encode every stored chunk the requests touch, in parallel on the
    /// decode pool, handing each result to `sink` as it is ready. Every request is checked
    /// before anything reaches `sink`; after that, a failing chunk does not stop the others
    /// (the first error is returned). Shards in `in_place` (local, covered in part) are
    /// rewritten in the array's directory without going through `existing` or `sink`.
    fn encode_each(
        &self,
        requests: &[ChunkRequest],
        value: WriteValue<'_>,
        existing: Vec<(Vec<u64>, Option<Bytes>)>,
        store_empty: bool,
        in_place: Option<&HashSet<Vec<u64>>>,
        sink: &ChunkSink<'_>,
    ) -> Result<()> {
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
        // Chunk coordinates are not checked against the array's shape: zarr-python may have
        // resized the array since this handle was made (see `plan_chunk_requests`).
        let by_chunk = group_by_chunk(requests, layout.ndim())?;
        let mut existing: HashMap<Vec<u64>, Option<Bytes>> = existing.into_iter().collect();
        // A regular grid's stored chunks all have its chunk shape; a rectilinear one's their own.
        let nominal = ChunkGeometry::of(layout.file_shape.clone())?;
        let geometry = |coords: &[u64]| ChunkGeometry::in_grid(&nominal, &layout.file_grid, coords);
        let value_strides = c_strides(value.shape)?;
        let scatter = Scatter {
            chunk_strides: &nominal.strides,
            file_shape: &nominal.shape,
            value_strides: &value_strides,
            value,
            esize,
            chunk_bytes: 0,
        };
        for request in requests {
            scatter
                .for_chunk(&*geometry(request.chunk())?)?
                .apply(None, request)?;
        }
        let codecs = self.zarrs_array().codecs();
        let options = self.context().codec_options();
        let nan_fill = is_nan_fill(&self.data_type_name(), &layout.fill);
        let tasks: Vec<ChunkTask<'_>> = by_chunk
            .into_iter()
            .map(|(coords, reqs)| {
                let old = existing.remove(&coords).flatten();
                (coords, reqs, old)
            })
            .collect();
        let is_fill = |e: &[u8]| e == layout.fill.as_slice() || nan_fill.is_some_and(|f| f(e));
        let rewrite = Rewrite {
            scatter: &scatter,
            is_fill: &is_fill,
            store_empty,
            options: &options,
        };
        let pool = self.context().pool.get()?;
        let encode_one = |(coords, reqs, old): &ChunkTask<'_>| -> Result<()> {
            let geometry = geometry(coords)?;
            let scatter = scatter.for_chunk(&geometry)?;
            let chunk_bytes = scatter.chunk_bytes;
            if let ReadMode::Sharded(index) = &layout.mode {
                let index = &*layout.shard_index(index, coords)?;
                // An existing shard the write covers in part: only its touched inner chunks
                // are decoded and encoded again.
                if in_place.is_some_and(|p| p.contains(coords))
                    && self.rewrite_local_shard(index, coords, reqs, &rewrite)?
                {
                    return Ok(());
                }
                // Otherwise the shard is assembled here from its touched inner chunks (the
                // rest stay as stored, or missing in a new shard).
                return self.rewrite_shard(index, coords, reqs, old.as_ref(), &rewrite, sink);
            }
            let key = || self.file_path(coords).display().to_string();
            let shape = nonzero(&geometry.shape);
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
                scatter.apply(Some(&mut buf), request)?;
            }
            let all_fill = buf.chunks_exact(esize).all(is_fill);
            if all_fill && !store_empty {
                return sink(coords, None);
            }
            let encoded = codecs
                .encode(
                    ArrayBytes::new_flen(Cow::Borrowed(&buf[..])),
                    &shape,
                    &layout.data_type,
                    &layout.fill_value,
                    &options,
                )
                .map_err(|e| ArrayError::Encode {
                    path: key().into(),
                    chunk: coords.clone(),
                    message: e.to_string(),
                })?;
            sink(coords, Some(NewBytes::Whole(encoded.into_owned())))
        };
        let results: Vec<Result<()>> = pool.install(|| {
            use rayon::prelude::*;
            tasks.par_iter().map(encode_one).collect()
        });
        results.into_iter().collect()
    }
}

/// The chunk requests of a write of `selection` (already checked against `shape`) into an
/// array of `shape` with stored chunks of `file_shape`, whose positions index the value (of the
/// selection's shape; one position per point for points), and the stored chunks it covers only
/// in part (their in-bounds part, as zarr-python counts complete chunks). Indices listed more
/// than once are written in order: the last one wins, as in numpy.
pub(crate) fn selection_requests(
    shape: &[u64],
    grid: &Grid,
    selection: &Selection,
) -> (Vec<ChunkRequest>, Vec<Vec<u64>>) {
    let dims = grid.dims();
    // The in-bounds extent of chunk `c` along dimension `d`.
    let extent = |d: usize, c: u64| {
        let start = dims[d].start(c);
        shape[d].min(start + dims[d].size(c)).saturating_sub(start)
    };
    let mut requests = Vec::new();
    let mut partial = Vec::new();
    let lists: Vec<Cow<'_, [u64]>> = match selection {
        Selection::Points(points) => {
            // Per stored chunk: the points' coordinates within it and their positions.
            type Points = (Vec<Vec<u64>>, Vec<u64>);
            let mut by_chunk: BTreeMap<Vec<u64>, Points> = BTreeMap::new();
            for (p, point) in (0u64..).zip(points) {
                let (chunk, within) = point.iter().zip(dims).map(|(&i, g)| g.locate(i)).unzip();
                let entry = by_chunk.entry(chunk).or_default();
                entry.0.push(within);
                entry.1.push(p);
            }
            for (chunk, (coords, positions)) in by_chunk {
                let mut distinct = coords.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let in_bounds: u64 = (0..chunk.len()).map(|d| extent(d, chunk[d])).product();
                if (distinct.len() as u64) < in_bounds {
                    partial.push(chunk.clone());
                }
                requests.push(ChunkRequest::Points {
                    target: 0,
                    chunk,
                    coords,
                    positions,
                });
            }
            return (requests, partial);
        }
        Selection::Region(slices) => slices
            .iter()
            .map(|s| {
                Cow::Owned(
                    (s.start..s.stop.max(s.start))
                        .step_by(usize::try_from(s.step.max(1)).unwrap_or(usize::MAX))
                        .collect(),
                )
            })
            .collect(),
        Selection::Orthogonal(lists) => lists.iter().map(|l| Cow::Borrowed(&l[..])).collect(),
    };
    // Per dimension: (chunk index, indices within it, positions in the value, covers it all).
    type Piece = (u64, Vec<u64>, Vec<u64>, bool);
    let per_dim: Vec<Vec<Piece>> = lists
        .iter()
        .enumerate()
        .map(|(d, list)| {
            let mut by_chunk: BTreeMap<u64, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
            for (p, &i) in (0u64..).zip(list.iter()) {
                let (c, within) = dims[d].locate(i);
                let entry = by_chunk.entry(c).or_default();
                entry.0.push(within);
                entry.1.push(p);
            }
            by_chunk
                .into_iter()
                .map(|(c, (indices, positions))| {
                    let mut distinct = indices.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    let whole = distinct.len() as u64 == extent(d, c);
                    (c, indices, positions, whole)
                })
                .collect()
        })
        .collect();
    let lens: Vec<u64> = per_dim.iter().map(|d| d.len() as u64).collect();
    let visited: std::result::Result<(), std::convert::Infallible> =
        try_for_each_coord(&vec![0; lens.len()], &lens, |at| {
            let pieces: Vec<&Piece> = at
                .iter()
                .zip(&per_dim)
                .map(|(&k, d)| &d[usize::try_from(k).unwrap_or(usize::MAX)])
                .collect();
            let chunk: Vec<u64> = pieces.iter().map(|p| p.0).collect();
            if !pieces.iter().all(|p| p.3) {
                partial.push(chunk.clone());
            }
            requests.push(ChunkRequest::Orthogonal {
                target: 0,
                chunk,
                indices: pieces.iter().map(|p| p.1.clone().into()).collect(),
                positions: pieces.iter().map(|p| Some(p.2.clone().into())).collect(),
            });
            Ok(())
        });
    let Ok(()) = visited;
    (requests, partial)
}

/// Add to `partial` the shards `requests` write into that reach past the array's edge: as in
/// zarr-python, what a shard holds beyond the edge (the cells of an array since shrunk, which
/// come back if it grows again) is kept, so such a shard is rewritten in part even when the
/// write covers all of its in-bounds elements.
pub(crate) fn add_edge_shards(
    partial: &mut Vec<Vec<u64>>,
    requests: &[ChunkRequest],
    shape: &[u64],
    grid: &Grid,
) {
    let mut listed: HashSet<Vec<u64>> = partial.iter().cloned().collect();
    for request in requests {
        let chunk = request.chunk();
        let past_edge = chunk
            .iter()
            .zip(grid.dims())
            .zip(shape)
            .any(|((&c, g), &n)| g.start(c).saturating_add(g.size(c)) > n);
        if past_edge && listed.insert(chunk.to_vec()) {
            partial.push(chunk.to_vec());
        }
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

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::plan::DimSlice;

    /// Every (array coordinate, value position) pair a selection writes, in the order the
    /// requests write them, and the stored chunks each request addresses.
    fn writes(requests: &[ChunkRequest], file: &Grid, ndim: usize) -> Vec<(Vec<u64>, Vec<u64>)> {
        let g = file.dims();
        let mut out = Vec::new();
        for request in requests {
            match request {
                ChunkRequest::Orthogonal {
                    chunk,
                    indices,
                    positions,
                    ..
                } => {
                    let lens: Vec<u64> = indices.iter().map(|i| i.len() as u64).collect();
                    try_for_each_coord(&vec![0; ndim], &lens, |at| {
                        let coord = (0..ndim)
                            .map(|d| g[d].start(chunk[d]) + indices[d].get(at[d] as usize).unwrap())
                            .collect();
                        let pos = (0..ndim)
                            .map(|d| positions[d].as_ref().unwrap().get(at[d] as usize).unwrap())
                            .collect();
                        out.push((coord, pos));
                        Ok::<(), ArrayError>(())
                    })
                    .unwrap();
                }
                ChunkRequest::Points {
                    chunk,
                    coords,
                    positions,
                    ..
                } => {
                    for (c, &p) in coords.iter().zip(positions) {
                        let coord = (0..ndim).map(|d| g[d].start(chunk[d]) + c[d]).collect();
                        out.push((coord, vec![p]));
                    }
                }
            }
        }
        out
    }

    /// Whether every in-bounds element of stored chunk `chunk` is in `written`.
    fn covered(chunk: &[u64], shape: &[u64], file: &Grid, written: &[Vec<u64>]) -> bool {
        let lo = file.chunk_start(chunk);
        let hi: Vec<u64> = lo
            .iter()
            .zip(file.chunk_shape(chunk))
            .zip(shape)
            .map(|((l, f), s)| (l + f).min(*s))
            .collect();
        let mut all = true;
        try_for_each_coord(&lo, &hi, |c| {
            all &= written.iter().any(|w| w == c);
            Ok::<(), ArrayError>(())
        })
        .unwrap();
        all
    }

    proptest! {
        /// Orthogonal writes (any order, repeats) and strided regions: each selected element is
        /// written from its value position, in the selection's C order (so a repeated index
        /// keeps the later value), each request inside its stored chunk, and exactly the stored
        /// chunks not covered whole are reported as partial.
        #[test]
        fn selection_requests_write_every_element(
            (shape, file) in crate::grid::tests::shape_and_grid(),
            seeds in prop::collection::vec(any::<u64>(), 3),
            region in any::<bool>(),
        ) {
            let ndim = shape.len();
            let selection = if region {
                Selection::Region((0..ndim).map(|d| {
                    let start = (seeds[0] >> (d * 5)) % shape[d];
                    let stop = start + 1 + (seeds[1] >> (d * 5)) % (shape[d] - start);
                    DimSlice { start, stop, step: 1 + (seeds[2] >> (d * 5)) % 3 }
                }).collect())
            } else {
                Selection::Orthogonal((0..ndim).map(|d| {
                    let n = 1 + (seeds[0] >> (d * 7)) % 6;
                    (0..n).map(|k| (seeds[1].rotate_left((d * 11 + k as usize) as u32)) % shape[d]).collect()
                }).collect())
            };
            let lists: Vec<Vec<u64>> = match &selection {
                Selection::Region(s) => s.iter().map(|s| (s.start..s.stop).step_by(s.step as usize).collect()).collect(),
                Selection::Orthogonal(l) => l.clone(),
                Selection::Points(_) => unreachable!(),
            };
            let (requests, partial) = selection_requests(&shape, &file, &selection);
            // What numpy does: every combination of the lists, in C order of positions.
            let lens: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
            let mut expected: Vec<(Vec<u64>, Vec<u64>)> = Vec::new();
            try_for_each_coord(&vec![0; ndim], &lens, |at| {
                let coord = (0..ndim).map(|d| lists[d][at[d] as usize]).collect();
                expected.push((coord, at.to_vec()));
                Ok::<(), ArrayError>(())
            }).unwrap();
            let got = writes(&requests, &file, ndim);
            let mut sorted_got = got.clone();
            sorted_got.sort();
            let mut sorted_expected = expected.clone();
            sorted_expected.sort();
            prop_assert_eq!(sorted_got, sorted_expected);
            // The last write of each element comes from the last position numpy gives it.
            for (coord, _) in &expected {
                let last_expected = expected.iter().rev().find(|(c, _)| c == coord).map(|(_, p)| p);
                let last_got = got.iter().rev().find(|(c, _)| c == coord).map(|(_, p)| p);
                prop_assert_eq!(last_got, last_expected);
            }
            let written: Vec<Vec<u64>> = expected.iter().map(|(c, _)| c.clone()).collect();
            for request in &requests {
                let ChunkRequest::Orthogonal { chunk, indices, .. } = request else { unreachable!() };
                let sizes = file.chunk_shape(chunk);
                prop_assert!(indices.iter().zip(&sizes).all(|(i, f)| i.iter().all(|x| x < *f)));
                prop_assert_eq!(partial.contains(chunk), !covered(chunk, &shape, &file, &written));
            }
        }

        /// Points: each point written once per occurrence from its own position, inside its
        /// stored chunk; a chunk is partial unless the points cover it whole.
        #[test]
        fn point_requests_write_every_point(
            (shape, file) in crate::grid::tests::shape_and_grid(),
            seed in any::<u64>(),
            n in 1usize..20,
        ) {
            let ndim = shape.len();
            let points: Vec<Vec<u64>> = (0..n)
                .map(|k| (0..ndim).map(|d| seed.rotate_left((k * 7 + d * 3) as u32) % shape[d]).collect())
                .collect();
            let (requests, partial) = selection_requests(&shape, &file, &Selection::Points(points.clone()));
            let mut got = writes(&requests, &file, ndim);
            got.sort();
            let mut expected: Vec<(Vec<u64>, Vec<u64>)> =
                points.iter().enumerate().map(|(p, c)| (c.clone(), vec![p as u64])).collect();
            expected.sort();
            prop_assert_eq!(got, expected);
            for request in &requests {
                let ChunkRequest::Points { chunk, .. } = request else { unreachable!() };
                prop_assert_eq!(partial.contains(chunk), !covered(chunk, &shape, &file, &points));
            }
        }
    }

    /// A rewrite of stored files goes to writer threads (a write creating files does not), and
    /// loses nothing; a file that cannot be replaced fails the write, naming it, and the
    /// others are written all the same.
    #[test]
    fn rewrites_through_writer_threads_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let meta = r#"{"zarr_format":3,"node_type":"array","shape":[8,64,64],"data_type":"uint32",
            "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[1,16,16]}},
            "chunk_key_encoding":{"name":"default"},"fill_value":0,
            "codecs":[{"name":"bytes","configuration":{"endian":"little"}},
                {"name":"zstd","configuration":{"level":1,"checksum":false}}]}"#;
        let array = ZarrArray::create(dir.path(), meta).unwrap();
        let shape = [8u64, 64, 64];
        let all = Selection::all(&shape);
        let (requests, _) = selection_requests(&shape, &array.layout().file_grid, &all);
        let values = |k: u32| -> Vec<u8> {
            (0..8 * 64 * 64u32)
                .flat_map(|i| (i * 3 + k).to_le_bytes())
                .collect()
        };
        let read = |array: &ZarrArray| -> Vec<u8> {
            array
                .read::<u32>(&all)
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        };
        assert_eq!(array.writers_for(&requests), 0, "nothing stored yet");
        array
            .write_region(&[0..8, 0..64, 0..64], &values(1))
            .unwrap();
        assert!(
            array.writers_for(&requests) >= 2,
            "128 stored files replaced"
        );
        for k in 2..5 {
            array
                .write_region(&[0..8, 0..64, 0..64], &values(k))
                .unwrap();
            assert_eq!(read(&array), values(k), "rewrite {k}");
        }
        // A directory where one chunk file is: that file cannot be replaced.
        let blocked = dir.path().join("c/3/2/1");
        std::fs::remove_file(&blocked).unwrap();
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("keep"), b"x").unwrap();
        let err = array
            .write_region(&[0..8, 0..64, 0..64], &values(9))
            .unwrap_err();
        assert!(err.to_string().contains("c/3/2/1"), "{err}");
        std::fs::remove_dir_all(&blocked).unwrap();
        // Every other chunk holds the new values (the blocked one reads as fill).
        let got = read(&array);
        let want = values(9);
        for (i, (g, w)) in got.chunks(4).zip(want.chunks(4)).enumerate() {
            let (t, y, x) = (i / 4096, (i / 64) % 64, i % 64);
            if (t, y / 16, x / 16) == (3, 2, 1) {
                assert_eq!(g, [0; 4]);
            } else {
                assert_eq!(g, w, "element {i}");
            }
        }
    }
}
