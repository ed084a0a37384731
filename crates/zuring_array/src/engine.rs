//! Executing a [`ChunkPlan`]: shard indexes in one batch, chunk bytes in one batch, decode as
//! bytes arrive, write into the output.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zarrs::array::CodecOptions;
use zuring_io::{ByteRange, Completion, IoError, ReadRequest};

use crate::source::{ByteSource, FetchKind, Presence};

use crate::assemble::{apply_to, copy_box, OutOfOutput, OutView, Source};
use crate::context::Context;
use crate::decode::{with_decoded, with_decoded_part};
use crate::error::{ArrayError, Result};
use crate::layout::{ArrayLayout, IndexLayout, IndexLocation, ReadMode};
use crate::plan::{
    c_strides, element_span, for_each_coord, num_elements, BoxRead, ChunkPlan, CopyOp, ReadPlan,
};
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
#[derive(Clone)]
pub(crate) struct ChunkTask {
    /// Its place in the plan (C order of chunk coordinates).
    pub id: usize,
    pub coords: Vec<u64>,
    pub ops: Vec<(usize, CopyOp)>,
}

/// A chunk of a read: listed with its copies, or chunk `at` (C order) of a box read's chunks,
/// whose coordinates and copy are worked out when it is decoded (see [`BoxRead`]).
#[derive(Clone, Copy)]
pub(crate) enum TaskRef<'t> {
    Listed(&'t ChunkTask),
    Box(&'t BoxRead, usize),
}

/// The bytes of a stored chunk a read needs, when fewer than all (see `needed_part`).
#[derive(Debug, Clone, Copy)]
struct Part {
    /// The first, from the start of the chunk.
    first: u64,
    /// How many.
    len: u64,
    /// The chunk's stored size: a chunk stored at another size is read whole, and decoding it
    /// says what is wrong.
    chunk_len: u64,
}

/// A stored chunk to read: where, and for what.
#[derive(Clone, Copy)]
struct Target<'t> {
    path: &'t Path,
    task: TaskRef<'t>,
    /// Its bytes in the file (those of the part read, when `part` is given).
    range: ByteRange,
    /// The first byte of the part of the chunk read, when not all of it.
    part: Option<u64>,
}

impl<'t> Target<'t> {
    /// A chunk stored as a file of its own, read whole or in `part`.
    fn chunk_file(path: &'t Path, task: &'t ChunkTask, part: Option<Part>) -> Self {
        Self {
            path,
            task: TaskRef::Listed(task),
            range: part.map_or(ByteRange::Whole, |p| ByteRange::new(p.first, p.len)),
            part: part.map(|p| p.first),
        }
    }
}

/// A shard's coordinates and the chunks to read from it.
type ShardChunks<'p> = (Vec<u64>, ShardTasks<'p>);

/// The chunks to read from a shard.
enum ShardTasks<'p> {
    /// Each with its position in the shard.
    Listed(Vec<(usize, ChunkTask)>),
    /// Those of box read `read` in `lo..hi` (chunk coordinates).
    Box {
        read: &'p BoxRead,
        lo: Vec<u64>,
        hi: Vec<u64>,
    },
}

/// The error a parallel run reports: of the errors that name a file and chunk (a corrupt
/// chunk or shard index), the first in (file, chunk) order, whichever thread met it first, so
/// the same damage gives the same error from run to run and from one read path to another;
/// else the first met.
#[derive(Default)]
pub(crate) struct FirstError(Mutex<Option<ArrayError>>);

/// Where an error lies, for [`FirstError`]'s order: its file and chunk (a shard index: none).
fn place(err: &ArrayError) -> Option<(&std::path::Path, &[u64])> {
    match err {
        ArrayError::CorruptChunk { path, chunk, .. } | ArrayError::Encode { path, chunk, .. } => {
            Some((path.as_path(), chunk.as_slice()))
        }
        ArrayError::CorruptShardIndex { path, .. }
        | ArrayError::UnreadableShardIndex { path, .. } => Some((path.as_path(), &[])),
        _ => None,
    }
}

impl FirstError {
    pub(crate) fn set(&self, err: ArrayError) {
        if let Ok(mut slot) = self.0.lock() {
            let earlier = match (slot.as_ref().map(place), place(&err)) {
                (None, _) => true,
                (Some(Some(held)), Some(new)) => new < held,
                _ => false,
            };
            if earlier {
                *slot = Some(err);
            }
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
    pub fn execute_view(&self, plan: impl Into<ReadPlan>, view: &[OutView<'_>]) -> Result<()> {
        let plan = plan.into();
        // A rectilinear grid's chunks each have their own shape, so their strides are worked
        // out chunk by chunk (`apply_all`); a regular grid's once.
        let chunk_strides = if self.layout.read_grid.is_regular() {
            c_strides(&self.layout.chunk_shape)?
        } else {
            Vec::new()
        };
        let errors = FirstError::default();
        let pool = self.ctx.pool.get()?;
        match &self.layout.mode {
            // Codecs around sharding: each file decodes whole through zarrs' codec chain.
            ReadMode::Unsharded | ReadMode::Zarrs(_) => {
                let plan = plan.into_listed(&self.layout.read_grid);
                self.run_unsharded(plan, &chunk_strides, view, &errors, &pool);
            }
            ReadMode::Sharded(index) => {
                let l = self.layout;
                // A box read of regular grids is grouped by shard from its bounds; other plans
                // chunk by chunk.
                let boxed;
                let shards = match plan {
                    ReadPlan::Boxes(reads)
                        if self.variable.is_none()
                            && l.read_grid.is_regular()
                            && l.file_grid.is_regular() =>
                    {
                        boxed = reads;
                        box_shards(&boxed, &index.chunks_per_shard)
                    }
                    plan => self.shards_of(plan.into_listed(&l.read_grid), index),
                };
                // At most as many shards at a time as the source keeps open (a local read pins
                // each shard it reads to one open version of it): per group, the indexes in one
                // batch, the chunk ranges in a second one, each chunk decoded and written into
                // `view` as its bytes arrive.
                for group in shards.chunks(self.source.max_files_per_batch().max(1)) {
                    let chunks = (index, &chunk_strides[..], view);
                    self.run_shard_group(group, chunks, &errors, &pool)?;
                }
            }
        }
        errors.into_result()
    }

    /// The C strides of `task`'s chunk: `strides` when given (a regular grid's, the same for
    /// every chunk: see `execute_view`), else its own (a rectilinear grid's chunk).
    fn strides_of<'s>(&self, task: &ChunkTask, strides: &'s [usize]) -> Result<Cow<'s, [usize]>> {
        if strides.len() == task.coords.len() {
            Ok(Cow::Borrowed(strides))
        } else {
            c_strides(&self.layout.read_grid.chunk_shape(&task.coords)).map(Cow::Owned)
        }
    }

    /// Apply `task`'s copies from `source`.
    pub(crate) fn apply_all(
        &self,
        task: TaskRef<'_>,
        source: Source<'_>,
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        // Variable-size data moves 8-byte handles.
        let esize = match self.variable {
            Some(_) => HANDLE,
            None => self.layout.element_size,
        };
        let applied = match task {
            TaskRef::Listed(task) => {
                let strides = match self.strides_of(task, strides) {
                    Ok(s) => s,
                    Err(e) => return errors.set(e),
                };
                task.ops.iter().try_for_each(|op| {
                    // SAFETY: the planner gives every output element to exactly one (chunk, op).
                    unsafe_apply(op, source, &strides, esize, view)
                })
            }
            // A box read's chunk: its copy worked out on the stack (the grid is regular, so
            // `strides` are every chunk's).
            TaskRef::Box(read, at) => {
                let copy = read.copy_of(&self.layout.read_grid, &read.coords_at(at));
                let out = view.get(read.target).ok_or(OutOfOutput);
                out.and_then(|out| {
                    #[allow(unsafe_code)]
                    // SAFETY: a box read's chunks write pairwise disjoint elements of its output.
                    let copied = unsafe {
                        copy_box(
                            (copy.out_offset, read.out_strides()),
                            (&copy.src_start, &copy.extent),
                            source,
                            strides,
                            esize,
                            out,
                        )
                    };
                    out.fence();
                    copied
                })
            }
        };
        if applied.is_err() {
            errors.set(ArrayError::selection(
                "internal planning error: a copy outside its chunk or output",
            ));
        }
    }

    /// The chunk `task` of a read, its copies listed.
    fn task<'t>(&self, task: TaskRef<'t>) -> Cow<'t, ChunkTask> {
        match task {
            TaskRef::Listed(task) => Cow::Borrowed(task),
            TaskRef::Box(read, at) => {
                let coords = Self::coords(task);
                let ops = vec![(read.target, read.op(&self.layout.read_grid, &coords))];
                Cow::Owned(ChunkTask {
                    id: at,
                    coords,
                    ops,
                })
            }
        }
    }

    /// The coordinates of `task`'s chunk.
    fn coords(task: TaskRef<'_>) -> Vec<u64> {
        match task {
            TaskRef::Listed(task) => task.coords.clone(),
            TaskRef::Box(read, at) => read.coords_at(at).to_vec(),
        }
    }

    /// The part of its chunk (of coordinates `coords`) that `task` reads, when that is less
    /// than all of it and the chunk's decoder decodes parts alone (a chunk stored uncompressed).
    fn needed_part(&self, task: TaskRef<'_>, coords: &[u64], strides: &[usize]) -> Option<Part> {
        let l = self.layout;
        if self.variable.is_some() || !l.decoder.decodes_parts() {
            return None;
        }
        let elements = num_elements(&l.read_chunk_shape(coords)).ok()?;
        let (first, end) = match task {
            TaskRef::Listed(task) => {
                element_span(&task.ops, &self.strides_of(task, strides).ok()?)?
            }
            // Box reads are of regular grids: `strides` are every chunk's.
            TaskRef::Box(read, _) => read.span(&l.read_grid, coords, strides)?,
        };
        if end - first >= elements {
            return None;
        }
        let bytes = |n: usize| u64::try_from(n.checked_mul(l.element_size)?).ok();
        Some(Part {
            first: bytes(first)?,
            len: bytes(end - first)?,
            chunk_len: bytes(elements)?,
        })
    }

    /// Decode `bytes`, the part of chunk `task` from byte `first` on, and apply its copies.
    fn decode_apply_part(
        &self,
        path: &Path,
        task: TaskRef<'_>,
        (first, bytes): (u64, &[u8]),
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        let l = self.layout;
        let Ok(first) = usize::try_from(first) else {
            return errors.set(ArrayError::selection("chunk part past the address space"));
        };
        let applied = with_decoded_part(l.decoder, l.element_size, bytes, |part| {
            let source = Source::Part { bytes: part, first };
            self.apply_all(task, source, strides, view, errors);
        });
        if let Err(message) = applied {
            errors.set(ArrayError::CorruptChunk {
                path: path.to_path_buf(),
                chunk: Self::coords(task),
                message,
            });
        }
    }

    /// Decode `bytes` of chunk `task` and apply its copies.
    fn decode_apply(
        &self,
        path: &Path,
        task: TaskRef<'_>,
        bytes: &[u8],
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        if let Some(chunks) = self.variable {
            let task = self.task(task);
            return chunks.decode_apply(self, path, &task, bytes, strides, view, errors);
        }
        let l = self.layout;
        let shape = match task {
            TaskRef::Listed(task) => l.read_chunk_shape(&task.coords),
            TaskRef::Box(..) => Cow::Borrowed(&l.chunk_shape[..]),
        };
        let options = self.codec_options();
        let applied = with_decoded(l, l.decoder, &shape, bytes, &options, |decoded| {
            self.apply_all(task, Source::Chunk(decoded), strides, view, errors);
        });
        if let Err(message) = applied {
            errors.set(ArrayError::CorruptChunk {
                path: path.to_path_buf(),
                chunk: Self::coords(task),
                message,
            });
        }
    }

    /// Apply the copies of a chunk that is not stored: the fill value everywhere.
    fn fill_apply(
        &self,
        task: TaskRef<'_>,
        fill: &[u8],
        strides: &[usize],
        view: &[OutView<'_>],
        errors: &FirstError,
    ) {
        match self.variable {
            Some(chunks) => {
                let handle = chunks.fill(self.task(task).id);
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
        let parts: Vec<Option<Part>> = tasks
            .iter()
            .map(|(_, task)| self.needed_part(TaskRef::Listed(task), &task.coords, strides))
            .collect();
        if parts.iter().all(Option::is_none) {
            let targets: Vec<Target<'_>> = tasks
                .iter()
                .map(|(path, task)| Target::chunk_file(path, task, None))
                .collect();
            return self.read_targets(&targets, &[], (strides, view), errors, pool);
        }
        // Files read in part are probed for their sizes first, a group at a time as shards are;
        // a file the probe found missing reads as the fill value without being asked for again.
        let group = self.source.max_files_per_batch().max(1);
        for (tasks, parts) in tasks.chunks(group).zip(parts.chunks(group)) {
            let paths: Vec<PathBuf> = tasks.iter().map(|(path, _)| path.clone()).collect();
            let presence = match self.source.probe(&paths) {
                Ok(presence) => presence,
                Err(e) => return errors.set(e),
            };
            let mut targets = Vec::with_capacity(tasks.len());
            let mut missing = Vec::new();
            for (((path, task), part), presence) in tasks.iter().zip(parts).zip(presence) {
                match presence {
                    Presence::Missing => missing.push(TaskRef::Listed(task)),
                    Presence::Version(v) => {
                        let part = part.filter(|p| p.chunk_len == v.size);
                        targets.push(Target::chunk_file(path, task, part));
                    }
                    Presence::Unknown => targets.push(Target::chunk_file(path, task, None)),
                }
            }
            self.read_targets(&targets, &missing, (strides, view), errors, pool);
        }
    }

    /// Read `targets` and apply each as its bytes arrive, and fill `missing`. Targets whose
    /// bytes the source has at hand (files in the page cache, opened without waiting for the
    /// disk) are read by the decode threads themselves, each as it decodes it; the rest are
    /// fetched, in one batch when the first is not at hand, else a group at a time as they turn
    /// up.
    fn read_targets(
        &self,
        targets: &[Target<'_>],
        missing: &[TaskRef<'_>],
        (strides, view): (&[usize], &[OutView<'_>]),
        errors: &FirstError,
        pool: &rayon::ThreadPool,
    ) {
        // Read in runs (small chunks lying close together read as one range), requested (and
        // so, mostly, decoded) in an order that hands the pool's threads chunks from far-apart
        // parts of the plan: neighbouring chunks write into the same pages of the output, whose
        // first writes fault them in, and two threads faulting the same pages wait on each other.
        let small = self.small_chunk_bytes();
        let runs = Runs::of(targets, small);
        let targets = (targets, &runs);
        let mut requests: Vec<ReadRequest<usize>> = spread(runs.len(), pool.current_num_threads())
            .map(|r| ReadRequest::new(runs.path(targets.0, r), runs.range(r), r))
            .collect();
        let single = targets.0.len() + missing.len() == 1;
        // The first request tells whether the batch is at hand: when it is not (a cold page
        // cache), none is tried, since each try that finds no bytes may start the kernel's
        // read-ahead of its range, out of the batch's order, beside the batch's own reads.
        let mut first = None;
        if !single && !requests.is_empty() && self.source.can_read_now() {
            match self.source.read_now(requests.remove(0)) {
                Ok(done) => first = Some(done),
                Err(request) => requests.insert(0, request),
            }
        }
        let streams = match first {
            Some(first) => {
                self.read_now_each(first, requests, targets, (strides, view), errors, pool)
            }
            None if requests.is_empty() => Vec::new(),
            None => vec![self.source.fetch(requests, FetchKind::Chunks)],
        };
        if streams.is_empty() && missing.is_empty() {
            return;
        }
        on_pool_or_here(pool, single, |s| {
            let fill = &self.layout.fill;
            // Small chunks are filled a run's worth at a time, as they are read.
            let per_job = chunks_per_run(small);
            for tasks in missing.chunks(per_job) {
                s.run(move || {
                    for &task in tasks {
                        self.fill_apply(task, fill, strides, view, errors);
                    }
                });
            }
            for completion in streams.into_iter().flatten() {
                s.run(move || self.apply_completion(completion, targets, (strides, view), errors));
            }
        });
    }

    /// Apply `first`, and have the pool's threads read each of `requests` now and apply it
    /// (decode threads reading what they decode); return the fetches of those that are not at
    /// hand, started while the others are decoded (waiting to be applied).
    fn read_now_each<'s>(
        &'s self,
        first: Completion<usize>,
        requests: Vec<ReadRequest<usize>>,
        targets: (&[Target<'_>], &Runs),
        (strides, view): (&[usize], &[OutView<'_>]),
        errors: &FirstError,
        pool: &rayon::ThreadPool,
    ) -> Vec<Box<dyn Iterator<Item = Completion<usize>> + 's>> {
        let tried = requests.len();
        let (back_tx, back_rx) = crossbeam_channel::unbounded::<Option<ReadRequest<usize>>>();
        let mut streams = Vec::new();
        // A scope of its own, waited for before the fetched bytes are applied.
        pool.in_place_scope(|s| {
            s.spawn(move |_| self.apply_completion(first, targets, (strides, view), errors));
            for request in requests {
                let back_tx = back_tx.clone();
                s.spawn(move |_| {
                    let back = match self.source.read_now(request) {
                        Ok(done) => {
                            self.apply_completion(done, targets, (strides, view), errors);
                            None
                        }
                        Err(request) => Some(request),
                    };
                    let _ = back_tx.send(back);
                });
            }
            // Each job holds a sender until it is done: a job that panics ends the wait below.
            drop(back_tx);
            // One of the pool's threads must not wait here for jobs it may have to run: it
            // fetches the rest once they are done.
            if pool.current_thread_index().is_some() {
                return;
            }
            // Those not at hand are fetched as they turn up, a group at a time, while the
            // threads go on with the others.
            let mut reported = 0;
            while reported < tried {
                let Ok(one) = back_rx.recv() else { break };
                let mut group: Vec<ReadRequest<usize>> = one.into_iter().collect();
                reported += 1;
                for more in back_rx.try_iter() {
                    reported += 1;
                    group.extend(more);
                }
                if !group.is_empty() {
                    streams.push(self.source.fetch(group, FetchKind::Chunks));
                }
            }
        });
        let rest: Vec<ReadRequest<usize>> = back_rx.try_iter().flatten().collect();
        if !rest.is_empty() {
            streams.push(self.source.fetch(rest, FetchKind::Chunks));
        }
        streams
    }

    /// The decoded size (bytes) up to which stored chunks lying close together in a file are
    /// read together (see [`Runs`]); 0 when none are: chunks of their own shapes (a rectilinear
    /// grid's) or of variable-size elements, or from a source asked for each chunk alone.
    fn small_chunk_bytes(&self) -> usize {
        let l = self.layout;
        if self.variable.is_some()
            || !l.read_grid.is_regular()
            || !matches!(l.mode, ReadMode::Sharded(_))
            || !self.source.joins_small_chunks()
        {
            return 0;
        }
        num_elements(&l.chunk_shape)
            .ok()
            .and_then(|n| n.checked_mul(l.element_size))
            .filter(|&bytes| bytes <= RUN_CHUNK_BYTES)
            .unwrap_or(0)
    }

    /// Decode and apply a completion (tagged with its run's index in `runs`): each chunk of the
    /// run from its bytes, or filled, or its error noted. A run of several chunks whose read
    /// failed is read again a chunk at a time, so that each error names its own chunk.
    fn apply_completion(
        &self,
        completion: Completion<usize>,
        (targets, runs): (&[Target<'_>], &Runs),
        (strides, view): (&[usize], &[OutView<'_>]),
        errors: &FirstError,
    ) {
        let members = runs.members(completion.tag);
        if let [one] = members {
            return self.apply_result(&targets[*one], completion.result, (strides, view), errors);
        }
        // Members to read again, each alone: all of them when the run's read failed, else any
        // whose bytes the run did not bring (a source answering short).
        let mut alone = Vec::new();
        match completion.result {
            Ok(bytes) => {
                let start = runs.start(completion.tag);
                for &t in members {
                    let target = &targets[t];
                    let own = match target.range {
                        ByteRange::Range { offset, len } => offset
                            .checked_sub(start)
                            .and_then(|first| Some((usize::try_from(first).ok()?, len)))
                            .and_then(|(first, len)| {
                                let end = first.checked_add(usize::try_from(len).ok()?)?;
                                bytes.get(first..end)
                            }),
                        _ => None,
                    };
                    match own {
                        Some(own) => self.apply_bytes(target, own, (strides, view), errors),
                        None => alone.push(t),
                    }
                }
            }
            Err(e) if e.is_not_found() => {
                for &t in members {
                    let task = targets[t].task;
                    self.fill_apply(task, &self.layout.fill, strides, view, errors);
                }
            }
            Err(_) => alone.extend_from_slice(members),
        }
        if !alone.is_empty() {
            let requests = alone
                .iter()
                .map(|&t| ReadRequest::new(targets[t].path, targets[t].range, t))
                .collect();
            for c in self.source.fetch(requests, FetchKind::Chunks) {
                self.apply_result(&targets[c.tag], c.result, (strides, view), errors);
            }
        }
    }

    /// Decode and apply the bytes read for `target`, or fill its chunk, or note its error.
    fn apply_result(
        &self,
        target: &Target<'_>,
        result: zuring_io::Result<bytes::Bytes>,
        (strides, view): (&[usize], &[OutView<'_>]),
        errors: &FirstError,
    ) {
        let Target { path, task, .. } = *target;
        match result {
            Ok(bytes) => self.apply_bytes(target, &bytes, (strides, view), errors),
            // The file went away after it was probed (only a store read by key can say so:
            // local files are pinned by the probe), or an unsharded chunk was never written: it
            // reads as missing, as it would have a moment later (zarr-python does the same).
            Err(e) if e.is_not_found() => {
                self.fill_apply(task, &self.layout.fill, strides, view, errors);
            }
            Err(IoError::OutOfBounds {
                file_size, range, ..
            }) => errors.set(ArrayError::CorruptChunk {
                path: path.to_path_buf(),
                chunk: Self::coords(task),
                message: format!(
                    "bytes {}..{} are past the end of the file ({file_size} bytes)",
                    range.0, range.1
                ),
            }),
            Err(e) => errors.set(e.into()),
        }
    }

    /// Decode and apply `bytes`, those read for `target`.
    fn apply_bytes(
        &self,
        target: &Target<'_>,
        bytes: &[u8],
        (strides, view): (&[usize], &[OutView<'_>]),
        errors: &FirstError,
    ) {
        let Target {
            path, task, part, ..
        } = *target;
        match part {
            Some(first) => {
                self.decode_apply_part(path, task, (first, bytes), strides, view, errors);
            }
            None => self.decode_apply(path, task, bytes, strides, view, errors),
        }
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

    /// The chunks of `plan` grouped by shard, each with its position in its shard.
    fn shards_of(&self, plan: ChunkPlan, index: &IndexLayout) -> Vec<ShardChunks<'static>> {
        let cps = &index.chunks_per_shard;
        let l = self.layout;
        let regular = l.file_grid.is_regular();
        let mut by_file: BTreeMap<Vec<u64>, Vec<(usize, ChunkTask)>> = BTreeMap::new();
        // The shard of the chunk at hand (a key of its own is made only for a new shard).
        let mut shard = Vec::with_capacity(cps.len());
        for (id, (coords, ops)) in plan.into_iter().enumerate() {
            shard.clear();
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
            let task = (inner, ChunkTask { id, coords, ops });
            match by_file.get_mut(shard.as_slice()) {
                Some(tasks) => tasks.push(task),
                None => {
                    by_file.insert(shard.clone(), vec![task]);
                }
            }
        }
        by_file
            .into_iter()
            .map(|(shard, tasks)| (shard, ShardTasks::Listed(tasks)))
            .collect()
    }

    /// Read the chunks of `shards`.
    fn run_shard_group(
        &self,
        shards: &[ShardChunks<'_>],
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
        // The chunks are read a window at a time: a read of a million small chunks holds the
        // targets of a window's worth, not of all of them.
        let chunks: usize = shards
            .iter()
            .map(|(_, chunks)| match chunks {
                ShardTasks::Listed(tasks) => tasks.len(),
                ShardTasks::Box { lo, hi, .. } => lo
                    .iter()
                    .zip(hi)
                    .map(|(l, h)| usize::try_from(h - l).unwrap_or(usize::MAX))
                    .fold(1, usize::saturating_mul),
            })
            .fold(0, usize::saturating_add);
        let mut missing: Vec<TaskRef<'_>> = Vec::new();
        let mut targets: Vec<Target<'_>> = Vec::with_capacity(chunks.min(READ_WINDOW));
        let cps = &index.chunks_per_shard;
        for (((_, chunks), (path, _)), shard_index) in shards.iter().zip(&files).zip(&indexes) {
            let mut add = |inner: usize, task, coords: &[u64]| {
                match shard_index.as_ref().and_then(|ix| ix.chunk(inner)) {
                    Some((offset, nbytes)) => {
                        let part = self
                            .needed_part(task, coords, strides)
                            .filter(|p| p.chunk_len == nbytes);
                        targets.push(Target {
                            path,
                            task,
                            range: match part {
                                Some(p) => ByteRange::new(offset + p.first, p.len),
                                None => ByteRange::new(offset, nbytes),
                            },
                            part: part.map(|p| p.first),
                        });
                    }
                    None => missing.push(task),
                }
                if targets.len() + missing.len() == READ_WINDOW {
                    self.read_targets(&targets, &missing, (strides, view), errors, pool);
                    targets.clear();
                    missing.clear();
                }
            };
            match chunks {
                ShardTasks::Listed(tasks) => {
                    for (inner, task) in tasks {
                        add(*inner, TaskRef::Listed(task), &task.coords);
                    }
                }
                ShardTasks::Box { read, lo, hi } => {
                    // Chunk `c`'s place in its shard (C order), and among the box's chunks.
                    for_each_coord(lo, hi, |c| {
                        let inner = c.iter().zip(cps).fold(0u64, |i, (c, n)| i * n + c % n);
                        let inner = usize::try_from(inner).unwrap_or(usize::MAX);
                        add(inner, TaskRef::Box(read, read.index_of(c)), c);
                    });
                }
            }
        }
        self.read_targets(&targets, &missing, (strides, view), errors, pool);
        Ok(())
    }
}

/// The shards box reads of regular grids touch (`cps` chunks per shard), each with the chunks of
/// a box it holds, in C order, box after box (a shard that two boxes touch is listed twice).
fn box_shards<'p>(reads: &'p [BoxRead], cps: &[u64]) -> Vec<ShardChunks<'p>> {
    let mut shards = Vec::new();
    for read in reads {
        let lo: Vec<u64> = read.first.iter().zip(cps).map(|(f, n)| f / n).collect();
        let hi: Vec<u64> = read
            .last
            .iter()
            .zip(cps)
            .map(|(l, n)| (l - 1) / n + 1)
            .collect();
        for_each_coord(&lo, &hi, |shard| {
            let chunks = ShardTasks::Box {
                read,
                lo: (0..shard.len())
                    .map(|d| read.first[d].max(shard[d] * cps[d]))
                    .collect(),
                hi: (0..shard.len())
                    .map(|d| read.last[d].min((shard[d] + 1) * cps[d]))
                    .collect(),
            };
            shards.push((shard.to_vec(), chunks));
        });
    }
    shards
}

/// The chunks of a read whose targets are held at a time (see `run_shard_group`).
const READ_WINDOW: usize = 1 << 16;

/// The decoded size up to which a stored chunk counts as small: small chunks lying close
/// together in one file are read as one range and decoded one after another by one thread, where
/// the work per chunk (a read of its own, a hand-off to a thread) would cost more than decoding it.
const RUN_CHUNK_BYTES: usize = 32 << 10;
/// The decoded bytes of a run at most: a thread's share of work between two hand-offs.
const RUN_DECODED_BYTES: usize = 256 << 10;
/// The chunks of a run at most.
const RUN_CHUNKS: usize = 4096;
/// The bytes a run reads at most, gaps included.
const RUN_READ_BYTES: u64 = 1 << 20;
/// The widest gap between two chunks of a run (bytes read and dropped).
const RUN_GAP: u64 = 4 << 10;

/// The chunks of `small` decoded bytes in a full run (1 when chunks are not small: 0).
fn chunks_per_run(small: usize) -> usize {
    RUN_DECODED_BYTES
        .checked_div(small)
        .map_or(1, |n| n.clamp(1, RUN_CHUNKS))
}

/// The targets of a read in runs, a read request each: a run is one target, or several small
/// chunks lying close together in one shard (at most [`RUN_CHUNKS`] of them, of
/// [`RUN_DECODED_BYTES`] decoded and [`RUN_READ_BYTES`] read, at most [`RUN_GAP`] bytes apart),
/// read as one range and each decoded from its part of it.
struct Runs {
    /// The targets' indexes, run after run.
    order: Vec<usize>,
    /// Per run: the range it reads, and where its members end in `order`.
    bounds: Vec<(ByteRange, usize)>,
}

impl Runs {
    /// Runs of `targets`, joining chunks of `small` decoded bytes (none when 0).
    fn of(targets: &[Target<'_>], small: usize) -> Self {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if small == 0 || targets.len() < 2 {
            let bounds = order.iter().map(|&t| (targets[t].range, t + 1)).collect();
            return Self { order, bounds };
        }
        // By file, then by place in it; the targets of one shard share one path.
        let key = |t: usize| {
            let offset = match targets[t].range {
                ByteRange::Range { offset, .. } => offset,
                _ => 0,
            };
            (
                std::ptr::from_ref(targets[t].path).cast::<u8>().addr(),
                offset,
            )
        };
        if !order.is_sorted_by_key(|&t| key(t)) {
            order.sort_unstable_by_key(|&t| key(t));
        }
        let most = chunks_per_run(small);
        let mut bounds = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let first = &targets[order[i]];
            let mut j = i + 1;
            let mut range = first.range;
            if let ByteRange::Range { offset: start, len } = first.range {
                let mut end = start.saturating_add(len);
                while j < order.len() && j - i < most {
                    let next = &targets[order[j]];
                    let ByteRange::Range { offset, len } = next.range else {
                        break;
                    };
                    // Sorted by offset, so `offset >= start`; chunks sharing bytes (an index
                    // may point two entries at one stored chunk) join the run too.
                    let next_end = end.max(offset.saturating_add(len));
                    if !std::ptr::eq(next.path, first.path)
                        || offset.saturating_sub(end) > RUN_GAP
                        || next_end - start > RUN_READ_BYTES
                    {
                        break;
                    }
                    end = next_end;
                    j += 1;
                }
                if j - i > 1 {
                    range = ByteRange::new(start, end - start);
                }
            }
            bounds.push((range, j));
            i = j;
        }
        Self { order, bounds }
    }

    fn len(&self) -> usize {
        self.bounds.len()
    }

    /// The indexes of run `r`'s targets, in the order of their bytes.
    fn members(&self, r: usize) -> &[usize] {
        let begin = if r == 0 { 0 } else { self.bounds[r - 1].1 };
        &self.order[begin..self.bounds[r].1]
    }

    /// The range run `r` reads.
    fn range(&self, r: usize) -> ByteRange {
        self.bounds[r].0
    }

    /// The first byte run `r` reads (0 for a range not given by its offset).
    fn start(&self, r: usize) -> u64 {
        match self.bounds[r].0 {
            ByteRange::Range { offset, .. } => offset,
            _ => 0,
        }
    }

    /// The file run `r` reads.
    fn path<'t>(&self, targets: &[Target<'t>], r: usize) -> &'t Path {
        targets[self.members(r)[0]].path
    }
}

/// `0..n` reordered so that `threads` consecutive positions come from `threads` equal, far-apart
/// stretches of it: `0, s, 2s, .., 1, s + 1, ..` with `s = ceil(n / threads)`.
fn spread(n: usize, threads: usize) -> impl Iterator<Item = usize> {
    let threads = threads.clamp(1, n.max(1));
    let stride = n.div_ceil(threads);
    (0..stride).flat_map(move |j| {
        (0..threads)
            .map(move |k| k * stride + j)
            .filter(move |&i| i < n)
    })
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

#[cfg(test)]
mod tests {
    use super::spread;
    use crate::Selection;

    #[test]
    fn a_read_on_a_decode_thread_does_not_wait_for_itself() {
        // One decode thread, and a read run on it whose chunks are at hand (its files opened by
        // an earlier read): the reading thread must run the pool's jobs, not wait for them.
        let dir = tempfile::tempdir().unwrap();
        let meta = r#"{"zarr_format":3,"node_type":"array","shape":[6,8],"data_type":"uint16",
          "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,2]}},
          "chunk_key_encoding":{"name":"default"},"fill_value":0,
          "codecs":[{"name":"bytes","configuration":{"endian":"little"}},
                    {"name":"zstd","configuration":{"level":1,"checksum":false}}]}"#;
        let (array, ctx) = crate::array::test_array(dir.path(), 1, meta);
        let values: Vec<u16> = (1..=48).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        array.write_region(&[0..6, 0..8], &bytes).unwrap();
        let all = Selection::all(&[6, 8]);
        assert_eq!(array.read_bytes(&all).unwrap(), bytes);
        let pool = ctx.pool.get().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(pool.install(|| array.read_bytes(&all)));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the read on the decode thread finished");
        assert_eq!(got.unwrap(), bytes);
    }

    #[test]
    fn spread_is_a_permutation_interleaving_far_apart_stretches() {
        for n in 0..40 {
            for threads in 0..6 {
                let mut order: Vec<usize> = spread(n, threads).collect();
                order.sort_unstable();
                assert_eq!(
                    order,
                    (0..n).collect::<Vec<_>>(),
                    "n {n}, threads {threads}"
                );
            }
        }
        assert_eq!(spread(7, 2).collect::<Vec<_>>(), [0, 4, 1, 5, 2, 6, 3]);
        assert_eq!(spread(6, 3).collect::<Vec<_>>(), [0, 2, 4, 1, 3, 5]);
        assert_eq!(spread(3, 1).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
