//! Executing a [`ChunkPlan`]: shard indexes in one batch, chunk bytes in one batch, decode as
//! bytes arrive, write into the output.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zarrs::array::CodecOptions;
use zuring_io::{ByteRange, IoError, ReadRequest};

use crate::source::{ByteSource, FetchKind, Presence};

use crate::assemble::{apply_to, OutView, Source};
use crate::context::Context;
use crate::decode::with_decoded;
use crate::error::{ArrayError, Result};
use crate::layout::{ArrayLayout, IndexLayout, IndexLocation, ReadMode};
use crate::plan::{c_strides, ChunkPlan, CopyOp};
use crate::shard_index::ShardIndex;
use crate::variable::{VariableChunks, HANDLE};

/// Where a read's per-chunk work runs: on zuring's pool, or, for a read of one chunk, on the
/// calling thread, which would otherwise only wait for it (the hand-off to a pool thread and
/// back costs more than decoding a small chunk).
enum Runner<'a, 'scope> {
    Pool(&'a rayon::Scope<'scope>),
    Here,
}

impl<'scope> Runner<'_, 'scope> {
    fn run(&self, job: impl FnOnce() + Send + 'scope) {
        match self {
            Self::Pool(scope) => scope.spawn(move |_| job()),
            Self::Here => job(),
        }
    }
}

/// Run `op` with a [`Runner`] on `pool`, or on this thread when `here`; returns when every job
/// it started is done.
fn on_pool_or_here<'scope>(
    pool: &rayon::ThreadPool,
    here: bool,
    op: impl FnOnce(&Runner<'_, 'scope>),
) {
    if here {
        op(&Runner::Here);
    } else {
        pool.in_place_scope(|s| op(&Runner::Pool(s)));
    }
}

/// One chunk to fetch: where its bytes are and what to do with them.
pub(crate) struct ChunkTask {
    /// Its place in the plan (C order of chunk coordinates).
    pub id: usize,
    pub coords: Vec<u64>,
    pub ops: Vec<(usize, CopyOp)>,
}

/// A shard's coordinates and the chunks to read from it, each with its position in the shard.
type ShardChunks = (Vec<u64>, Vec<(usize, ChunkTask)>);

/// The first error of a parallel run.
#[derive(Default)]
pub(crate) struct FirstError(Mutex<Option<ArrayError>>);

impl FirstError {
    pub(crate) fn set(&self, err: ArrayError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(err);
        }
    }

    fn into_result(self) -> Result<()> {
        match self.0.into_inner() {
            Ok(Some(err)) => Err(err),
            _ => Ok(()),
        }
    }
}

/// Everything a read needs from its array.
pub(crate) struct ReadContext<'a> {
    pub ctx: &'a Context,
    pub layout: &'a ArrayLayout,
    pub file_path: &'a (dyn Fn(&[u64]) -> PathBuf + Sync),
    pub source: &'a dyn ByteSource,
    /// For variable-size data: where decoded chunks go (the outputs then hold handles).
    pub variable: Option<&'a VariableChunks>,
}

impl ReadContext<'_> {
    pub(crate) fn codec_options(&self) -> CodecOptions {
        self.ctx.codec_options().with_concurrent_target(1)
    }

    /// Carry out `plan`, writing through `view`; on success every byte of the selection was written.
    pub fn execute_view(&self, plan: ChunkPlan, view: &[OutView<'_>]) -> Result<()> {
        // A rectilinear grid's chunks each have their own shape, so their strides are worked
        // out chunk by chunk (`apply_all`); a regular grid's once.
        let chunk_strides = if self.layout.read_grid.is_regular() {
            c_strides(&self.layout.chunk_shape)?
        } else {
            Vec::new()
        };
        let errors = FirstError::default();
        let pool = self.ctx.pool.get();
        match &self.layout.mode {
            // Codecs around sharding: each file decodes whole through zarrs' codec chain.
            ReadMode::Unsharded | ReadMode::Zarrs(_) => {
                self.run_unsharded(plan, &chunk_strides, view, &errors, &pool);
            }
            ReadMode::Sharded(index) => {
                self.run_sharded(plan, index, &chunk_strides, view, &errors, &pool)?
            }
        }
        errors.into_result()
    }

    pub(crate) fn apply_all(
        &self,
        task: &ChunkTask,
        source: Source<'_>,
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        // A rectilinear grid's chunk: strides of its own shape (see `execute_view`).
        let own;
        let strides = if strides.len() == task.coords.len() {
            strides
        } else {
            match c_strides(&self.layout.read_grid.chunk_shape(&task.coords)) {
                Ok(s) => {
                    own = s;
                    &own
                }
                Err(e) => return errors.set(e),
            }
        };
        // Variable-size data moves 8-byte handles.
        let esize = match self.variable {
            Some(_) => HANDLE,
            None => self.layout.element_size,
        };
        for op in &task.ops {
            // SAFETY: the planner gives every output element to exactly one (chunk, op).
            if unsafe_apply(op, source, strides, esize, view).is_err() {
                errors.set(ArrayError::selection(
                    "internal planning error: write outside the output",
                ));
            }
        }
    }

    /// Decode `bytes` of chunk `task` and apply its copies.
    fn decode_apply(
        &self,
        path: &Path,
        task: &ChunkTask,
        bytes: &[u8],
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        if let Some(chunks) = self.variable {
            return chunks.decode_apply(self, path, task, bytes, strides, view, errors);
        }
        let l = self.layout;
        let shape = l.read_chunk_shape(&task.coords);
        let options = self.codec_options();
        let applied = with_decoded(l, l.decoder, &shape, bytes, &options, |decoded| {
            self.apply_all(task, Source::Chunk(decoded), strides, view, errors);
        });
        if let Err(message) = applied {
            errors.set(ArrayError::CorruptChunk {
                path: path.to_path_buf(),
                chunk: task.coords.clone(),
                message,
            });
        }
    }

    /// Apply the copies of a chunk that is not stored: the fill value everywhere.
    fn fill_apply(
        &self,
        task: &ChunkTask,
        fill: &[u8],
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        match self.variable {
            Some(chunks) => {
                let handle = chunks.fill(task.id);
                self.apply_all(task, Source::Fill(&handle), strides, view, errors);
            }
            None => self.apply_all(task, Source::Fill(fill), strides, view, errors),
        }
    }

    fn run_unsharded(
        &self,
        plan: ChunkPlan,
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
        pool: &rayon::ThreadPool,
    ) {
        let tasks: Vec<(PathBuf, ChunkTask)> = plan
            .into_iter()
            .enumerate()
            .map(|(id, (coords, ops))| {
                let path = (self.file_path)(&coords);
                (path, ChunkTask { id, coords, ops })
            })
            .collect();
        let requests = tasks
            .iter()
            .enumerate()
            .map(|(i, (path, _))| ReadRequest::new(path.as_path(), ByteRange::Whole, i));
        let stream = self.source.fetch(requests.collect(), FetchKind::Chunks);
        let fill = self.layout.fill.clone();
        on_pool_or_here(pool, tasks.len() == 1, |s| {
            for completion in stream {
                let (path, task) = &tasks[completion.tag];
                match completion.result {
                    Ok(bytes) => {
                        s.run(move || self.decode_apply(path, task, &bytes, strides, view, errors));
                    }
                    Err(e) if e.is_not_found() => {
                        let fill = &fill;
                        s.run(move || self.fill_apply(task, fill, strides, view, errors));
                    }
                    Err(e) => errors.set(e.into()),
                }
            }
        });
    }

    /// Read (or take from the cache) the indexes of `files` (each laid out as `layouts[i]`), in
    /// one batch.
    fn load_indexes(
        &self,
        files: &[(PathBuf, Presence)],
        layouts: &[Cow<'_, IndexLayout>],
    ) -> Result<Vec<Option<Arc<ShardIndex>>>> {
        let mut out: Vec<Option<Arc<ShardIndex>>> = vec![None; files.len()];
        let mut wanted = Vec::new();
        for (i, (path, presence)) in files.iter().enumerate() {
            match presence {
                Presence::Missing => {}
                Presence::Version(v) => match self.ctx.indexes.get(path, *v) {
                    Some(cached) => out[i] = Some(cached),
                    None => wanted.push(i),
                },
                Presence::Unknown => wanted.push(i),
            }
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let range = |index: &IndexLayout| match index.location {
            IndexLocation::Start => ByteRange::new(0, index.encoded_size),
            IndexLocation::End => ByteRange::Suffix(index.encoded_size),
        };
        let requests = wanted
            .iter()
            .map(|&i| ReadRequest::new(files[i].0.as_path(), range(&layouts[i]), i));
        let options = self.codec_options();
        let decoded: Vec<(usize, Result<Option<Arc<ShardIndex>>>)> = self
            .source
            .fetch(requests.collect(), FetchKind::Indexes)
            .map(|c| {
                let (path, presence) = &files[c.tag];
                let index = &*layouts[c.tag];
                let file_size = match presence {
                    Presence::Version(v) => v.size,
                    // Unknown size: entries past the end show up when their bytes come back short.
                    Presence::Unknown => u64::MAX,
                    Presence::Missing => 0,
                };
                let result = match c.result {
                    Ok(bytes) => ShardIndex::decode(path, &bytes, index, file_size, &options)
                        .map(|ix| Some(Arc::new(ix))),
                    // A shard that vanished, or was never there (unknown presence): all fill.
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(IoError::OutOfBounds { file_size, .. }) => {
                        Err(ArrayError::UnreadableShardIndex {
                            path: path.clone(),
                            message: format!(
                                "file is {file_size} bytes, shorter than its {}-byte index",
                                index.encoded_size
                            ),
                        })
                    }
                    Err(e) => Err(e.into()),
                };
                (c.tag, result)
            })
            .collect();
        for (i, result) in decoded {
            let Some(index) = result? else { continue };
            if let Presence::Version(v) = files[i].1 {
                self.ctx
                    .indexes
                    .insert(files[i].0.clone(), v, Arc::clone(&index));
            }
            out[i] = Some(index);
        }
        Ok(out)
    }

    fn run_sharded(
        &self,
        plan: ChunkPlan,
        index: &IndexLayout,
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        let cps = &index.chunks_per_shard;
        let l = self.layout;
        let regular = l.file_grid.is_regular();
        // Group chunks by shard file.
        let mut by_file: BTreeMap<Vec<u64>, Vec<(usize, ChunkTask)>> = BTreeMap::new();
        for (id, (coords, ops)) in plan.into_iter().enumerate() {
            let mut shard = Vec::with_capacity(coords.len());
            let mut inner = 0u64;
            for (d, (&c, &n)) in coords.iter().zip(cps).enumerate() {
                if regular {
                    shard.push(c / n);
                    inner = inner * n + c % n;
                } else {
                    // Shards of their own sizes, each a whole number of inner chunks.
                    let size = l.chunk_shape[d];
                    let g = &l.file_grid.dims()[d];
                    let (k, within) = g.locate(c.saturating_mul(size));
                    shard.push(k);
                    inner = inner * (g.size(k) / size) + within / size;
                }
            }
            let inner = usize::try_from(inner).unwrap_or(usize::MAX);
            by_file
                .entry(shard)
                .or_default()
                .push((inner, ChunkTask { id, coords, ops }));
        }
        // At most as many shards at a time as the source keeps open (a local read pins each
        // shard it reads to one open version of it): per group, the indexes in one batch, the
        // chunk ranges in a second one, each chunk decoded and written into `view` as its bytes
        // arrive.
        let shards: Vec<ShardChunks> = by_file.into_iter().collect();
        for group in shards.chunks(self.source.max_files_per_batch().max(1)) {
            self.run_shard_group(group, (index, strides, view), errors, pool)?;
        }
        Ok(())
    }

    fn run_shard_group(
        &self,
        shards: &[ShardChunks],
        (index, strides, view): (&IndexLayout, &[usize], &[OutView<'_>]),
        errors: &FirstError,
        pool: &rayon::ThreadPool,
    ) -> Result<()> {
        let paths: Vec<PathBuf> = shards
            .iter()
            .map(|(shard, _)| (self.file_path)(shard))
            .collect();
        let presence = self.source.probe(&paths)?;
        let files: Vec<(PathBuf, Presence)> = paths.into_iter().zip(presence).collect();
        let layouts = shards
            .iter()
            .map(|(shard, _)| self.layout.shard_index(index, shard))
            .collect::<Result<Vec<_>>>()?;
        let indexes = self.load_indexes(&files, &layouts)?;
        let fill = self.layout.fill.clone();
        let mut missing: Vec<&ChunkTask> = Vec::new();
        let mut requests = Vec::new();
        let mut targets: Vec<(&Path, &ChunkTask)> = Vec::new();
        for (((_, chunks), (path, _)), shard_index) in shards.iter().zip(&files).zip(&indexes) {
            for (inner, task) in chunks {
                match shard_index.as_ref().and_then(|ix| ix.chunk(*inner)) {
                    Some((offset, nbytes)) => {
                        requests.push(ReadRequest::new(
                            path.as_path(),
                            ByteRange::new(offset, nbytes),
                            targets.len(),
                        ));
                        targets.push((path.as_path(), task));
                    }
                    None => missing.push(task),
                }
            }
        }
        let stream = self.source.fetch(requests, FetchKind::Chunks);
        on_pool_or_here(pool, targets.len() + missing.len() == 1, |s| {
            let fill = &fill;
            for task in missing {
                s.run(move || self.fill_apply(task, fill, strides, view, errors));
            }
            for completion in stream {
                let (path, task) = targets[completion.tag];
                match completion.result {
                    Ok(bytes) => {
                        s.run(move || self.decode_apply(path, task, &bytes, strides, view, errors));
                    }
                    // The shard went away after its index was read (only a store read by key
                    // can say so: local files are pinned by the probe): it reads as missing,
                    // as it would have a moment later (zarr-python does the same).
                    Err(e) if e.is_not_found() => {
                        s.run(move || self.fill_apply(task, fill, strides, view, errors));
                    }
                    Err(IoError::OutOfBounds {
                        file_size, range, ..
                    }) => errors.set(ArrayError::CorruptChunk {
                        path: path.to_path_buf(),
                        chunk: task.coords.clone(),
                        message: format!(
                            "bytes {}..{} are past the end of the file ({file_size} bytes)",
                            range.0, range.1
                        ),
                    }),
                    Err(e) => errors.set(e.into()),
                }
            }
        });
        Ok(())
    }
}

pub(crate) fn unsafe_apply(
    op: &(usize, CopyOp),
    source: Source<'_>,
    strides: &[usize],
    esize: usize,
    view: &[OutView<'_>],
) -> std::result::Result<(), crate::assemble::OutOfOutput> {
    #[allow(unsafe_code)]
    // SAFETY: callers pass ops from one plan, whose output elements are pairwise disjoint.
    unsafe {
        apply_to(op, source, strides, esize, view)
    }
}
