//! The batched range reader: plans, coalesces and dispatches reads to a backend.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::buffer::BufferPool;
use crate::coalesce::{coalesce, CoalesceOptions, Span};
use crate::error::{IoError, Result};
use crate::files::{
    default_cache_capacity, open_each, FileBudget, FileCache, FilePermit, OpenFile,
};
use crate::job::{Delivery, Job, Part};
use crate::per_process::PerProcess;
use crate::request::{ByteRange, Completion, PinnedFile, ReadRequest, ReadStream};
use crate::uring::RingConfig;
use crate::workers::Workers;
use crate::{pread, uring};

/// Which backend executes reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring when it can be set up, else pread; `ZURING_IO=uring|pread` overrides.
    #[default]
    Auto,
    /// io_uring, or an error when it is unavailable.
    Uring,
    /// A pread thread pool.
    Pread,
}

impl BackendKind {
    /// Parse `uring`, `io_uring`, `pread` or `auto`.
    ///
    /// # Errors
    /// [`IoError::InvalidConfig`] for anything else.
    pub fn parse(name: &'static str, value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "iouring" => Ok(Self::Uring),
            "pread" => Ok(Self::Pread),
            _ => Err(IoError::InvalidConfig {
                name,
                value: value.to_owned(),
                expected: "one of auto, uring, pread",
            }),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Options of a [`Reader`]. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Backend. Default: [`BackendKind::Auto`].
    pub backend: BackendKind,
    /// io_uring: number of rings, each driven by its own thread. Default: number of cores (reads
    /// that hit the page cache are copied on the submitting thread, so one ring per core keeps
    /// warm reads as parallel as a thread pool).
    pub rings: usize,
    /// io_uring: entries per ring, the most reads each ring keeps in flight. Default: 64.
    pub queue_depth: u32,
    /// io_uring: let a kernel thread poll the submission queue. Default: off.
    pub sqpoll: bool,
    /// pread: worker threads. Default: 4 per core, between 8 and 64 (blocking reads need
    /// threads to keep a disk's queue full).
    pub pread_threads: usize,
    /// Open files with `O_DIRECT` (bypassing the page cache), with aligned reads. Filesystems
    /// that refuse `O_DIRECT` are read through the cache. Default: off.
    pub direct_io: bool,
    /// How nearby reads are merged. Default: [`CoalesceOptions::default`].
    pub coalesce: CoalesceOptions,
    /// The most file descriptors the cache keeps open; reads queued or running hold at most as
    /// many more (a batch over more files opens later ones as earlier reads finish). Default: a
    /// quarter of `RLIMIT_NOFILE` at the reader's creation, at most 4096.
    pub fd_cache_capacity: usize,
    /// Check (one `stat`) that a cached descriptor still matches its path before reuse.
    /// Default: on. Turn off for data nobody rewrites.
    pub revalidate_fds: bool,
    /// The most idle buffer bytes kept for reuse, in the pool shared by all readers of the
    /// process (the first reader's value sets it). Default: 256 MiB.
    pub buffer_pool_bytes: usize,
    /// [`Reader::fetch`] and [`Reader::read_ordered`] read a batch of one request on the calling
    /// thread with `pread` instead of handing it to the backend's threads: one read has nothing
    /// to overlap, and the hand-off to a ring (or pool) thread and back costs two thread
    /// wake-ups, most of a small warm read's time. ([`Reader::submit`] never blocks on a read.)
    /// Default: on.
    pub inline_single_reads: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            backend: BackendKind::Auto,
            rings: cores(),
            queue_depth: 64,
            sqpoll: false,
            pread_threads: (cores() * 4).clamp(8, 64),
            direct_io: false,
            coalesce: CoalesceOptions::default(),
            fd_cache_capacity: default_cache_capacity(),
            revalidate_fds: true,
            buffer_pool_bytes: 256 << 20,
            inline_single_reads: true,
        }
    }
}

impl ReaderOptions {
    /// The defaults, with `ZURING_IO` (backend), `ZURING_DIRECT_IO` (`1`/`0`) and
    /// `ZURING_BUFFER_POOL_BYTES` applied.
    ///
    /// # Errors
    /// [`IoError::InvalidConfig`] when a variable has an unknown value.
    pub fn from_env() -> Result<Self> {
        let mut options = Self::default();
        if let Ok(value) = std::env::var("ZURING_IO") {
            options.backend = BackendKind::parse("ZURING_IO", &value)?;
        }
        if let Ok(value) = std::env::var("ZURING_DIRECT_IO") {
            options.direct_io = match value.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => {
                    return Err(IoError::InvalidConfig {
                        name: "ZURING_DIRECT_IO",
                        value,
                        expected: "1 or 0",
                    })
                }
            };
        }
        if let Ok(value) = std::env::var("ZURING_BUFFER_POOL_BYTES") {
            options.buffer_pool_bytes =
                value.trim().parse().map_err(|_| IoError::InvalidConfig {
                    name: "ZURING_BUFFER_POOL_BYTES",
                    value,
                    expected: "a number of bytes",
                })?;
        }
        Ok(options)
    }
}

/// Everything that must be rebuilt in a forked child: threads, rings, locks.
#[derive(Debug)]
struct Engine {
    workers: Workers,
    files: FileCache,
    /// Descriptors held by queued and running reads (as many as the cache keeps).
    budget: Arc<FileBudget>,
    buffers: Arc<BufferPool>,
}

impl Engine {
    fn start(options: &ReaderOptions) -> Result<Self> {
        let backend = match options.backend {
            BackendKind::Auto => match std::env::var("ZURING_IO") {
                Ok(value) => BackendKind::parse("ZURING_IO", &value)?,
                Err(_) => BackendKind::Auto,
            },
            explicit => explicit,
        };
        let rings = RingConfig {
            rings: options.rings,
            queue_depth: options.queue_depth,
            sqpoll: options.sqpoll,
        };
        let workers = match backend {
            BackendKind::Uring => uring::spawn(rings).map_err(|e| IoError::BackendUnavailable {
                backend: "io_uring",
                source: Arc::new(e),
            })?,
            BackendKind::Pread => spawn_pread(options.pread_threads)?,
            BackendKind::Auto => match uring::spawn(rings) {
                Ok(workers) => workers,
                Err(_) => spawn_pread(options.pread_threads)?,
            },
        };
        Ok(Self {
            workers,
            files: FileCache::new(options.fd_cache_capacity, options.revalidate_fds),
            budget: FileBudget::new(options.fd_cache_capacity),
            buffers: BufferPool::shared(options.buffer_pool_bytes),
        })
    }
}

fn spawn_pread(threads: usize) -> Result<Workers> {
    pread::spawn(threads).map_err(|e| IoError::BackendUnavailable {
        backend: "pread",
        source: Arc::new(e),
    })
}

/// Who reads a batch's physical reads.
#[derive(Clone, Copy)]
enum ReadOn {
    /// The backend's threads.
    Backend,
    /// The submitting thread, with `pread` (a waited-for batch of one read).
    Caller,
    /// The submitting thread, from the page cache only ([`Reader::fetch_cached`]).
    CallerCachedOnly,
}

/// Where a batch's reads go: its engine, its results' channel, and who reads them.
#[derive(Clone, Copy)]
struct Submission<'a> {
    engine: &'a Engine,
    tx: &'a crossbeam_channel::Sender<Delivery>,
    read_on: ReadOn,
}

/// Reads batches of byte ranges from many files.
///
/// Each batch is planned at once: files are opened through a bounded descriptor cache, nearby
/// ranges of a file are merged, and the physical reads go to the backend together. Results
/// stream back as they complete (see [`ReadStream`]); [`Reader::read_ordered`] collects them in
/// request order.
///
/// A `Reader` is fork-safe: a child process that uses it starts fresh threads and rings.
#[derive(Debug)]
pub struct Reader {
    options: ReaderOptions,
    engine: PerProcess<Mutex<Option<Arc<Engine>>>>,
}

impl Reader {
    /// A reader with `options`. Threads and rings start on first use.
    ///
    /// # Errors
    /// [`IoError::BackendUnavailable`] when the requested backend cannot start.
    pub fn new(options: ReaderOptions) -> Result<Self> {
        let reader = Self {
            options,
            engine: PerProcess::new(),
        };
        reader.engine()?;
        Ok(reader)
    }

    /// The process-wide reader, configured from the environment (see [`ReaderOptions::from_env`]).
    ///
    /// # Errors
    /// When the environment holds an invalid value or no backend can start.
    pub fn shared() -> Result<Arc<Self>> {
        static SHARED: OnceLock<Arc<Reader>> = OnceLock::new();
        if let Some(reader) = SHARED.get() {
            return Ok(Arc::clone(reader));
        }
        // Started outside the `OnceLock`, which only takes the finished reader: a process
        // forked while another thread starts it (rings, threads) does not inherit the lock's
        // initialisation in progress, which its child would wait for forever. (Threads racing
        // here may each start one; all but the first kept are dropped.)
        let reader = Arc::new(Self::new(ReaderOptions::from_env()?)?);
        Ok(Arc::clone(SHARED.get_or_init(|| reader)))
    }

    /// The options this reader was made with.
    #[must_use]
    pub fn options(&self) -> &ReaderOptions {
        &self.options
    }

    /// The running backend's name: `"uring"` or `"pread"`.
    ///
    /// # Errors
    /// When the backend cannot start.
    pub fn backend_name(&self) -> Result<&'static str> {
        Ok(self.engine()?.workers.name())
    }

    fn engine(&self) -> Result<Arc<Engine>> {
        // This process's engine: a forked child starts one of its own, never touching (nor
        // dropping) its parent's, whose threads it does not have and whose lock a thread of the
        // parent may have held at the fork.
        let mut guard = self
            .engine
            .get_or_init(|| Mutex::new(None))
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(engine) = guard.as_ref() {
            if engine.workers.alive() {
                return Ok(Arc::clone(engine));
            }
        }
        let engine = Arc::new(Engine::start(&self.options)?);
        *guard = Some(Arc::clone(&engine));
        Ok(engine)
    }

    /// Start reading a batch; results stream back as they complete. Returns at once: every read
    /// is done by the backend's threads.
    pub fn submit<T>(&self, requests: impl IntoIterator<Item = ReadRequest<T>>) -> ReadStream<T> {
        self.start(requests, ReadOn::Backend)
    }

    /// Read a batch whose results the caller waits for right away: as [`Reader::submit`], except
    /// that a batch of one read is read on this thread before it returns
    /// ([`ReaderOptions::inline_single_reads`]).
    pub fn fetch<T>(&self, requests: impl IntoIterator<Item = ReadRequest<T>>) -> ReadStream<T> {
        let read_on = if self.options.inline_single_reads {
            ReadOn::Caller
        } else {
            ReadOn::Backend
        };
        self.start(requests, read_on)
    }

    /// Read a batch on this thread from the page cache only, never waiting for the disk: what
    /// is cached arrives as usual, a request whose bytes are not all cached fails with
    /// [`IoError::NotCached`] (so does every request when the reader uses `O_DIRECT`). For a
    /// caller that must not block, such as an event loop, to serve small warm reads itself and
    /// hand the rest to a thread. A file not yet in the descriptor cache is opened only when the
    /// kernel's directory entry cache resolves its path by itself (`openat2` with
    /// `RESOLVE_CACHED`, Linux >= 5.12; a plain open before): else its requests fail with
    /// [`IoError::PathNotCached`].
    pub fn fetch_cached<T>(
        &self,
        requests: impl IntoIterator<Item = ReadRequest<T>>,
    ) -> ReadStream<T> {
        self.start(requests, ReadOn::CallerCachedOnly)
    }

    /// Read one range on this thread, now, if that does not wait for the disk: the request is
    /// pinned to an open file ([`ReadRequest::pinned`]), or its path's descriptor is in the
    /// cache (and still valid), or the kernel opens the path from its directory entry cache
    /// alone (`openat2` with `RESOLVE_CACHED`, Linux >= 5.12; the descriptor is then cached),
    /// and every byte is in the page cache (`preadv2` with `RWF_NOWAIT`). A path the directory
    /// entry cache knows to name no file completes at once with [`IoError::NotFound`]. The
    /// completion, as a batch would deliver it (a range past the end is [`IoError::OutOfBounds`]);
    /// or the request back, untouched, when it cannot be read so (then read it the usual way).
    /// For workers that decode what they read: the bytes are copied on the core that uses them,
    /// and no thread hands them over. Never with `O_DIRECT`.
    ///
    /// # Errors
    /// The request itself, when it must be read another way.
    pub fn read_now<T>(
        &self,
        request: ReadRequest<T>,
    ) -> std::result::Result<Completion<T>, ReadRequest<T>> {
        if self.options.direct_io {
            return Err(request);
        }
        let Ok(engine) = self.engine() else {
            return Err(request);
        };
        let file = match &request.file {
            Some(pinned) => Arc::clone(&pinned.0),
            None => match engine.files.open_without_waiting(&request.path) {
                Ok(Some(file)) => file,
                Ok(None) => return Err(request),
                // A missing file, as a batch would report it.
                Err(err) => {
                    return Ok(Completion {
                        tag: request.tag,
                        result: Err(err),
                    })
                }
            },
        };
        let (start, end) = match request.range.resolve(&request.path, file.size) {
            Ok(span) => span,
            Err(err) => {
                return Ok(Completion {
                    tag: request.tag,
                    result: Err(err),
                })
            }
        };
        let len = usize::try_from(end - start).unwrap_or(usize::MAX);
        let (tx, rx) = crossbeam_channel::bounded::<Delivery>(1);
        // A file opened with O_DIRECT (pinned by a direct reader) fails as not cached there.
        crate::pread::run_cached(Job {
            file,
            offset: start,
            len,
            buf: engine.buffers.take(len),
            filled: 0,
            parts: vec![Part {
                index: 0,
                start,
                end,
            }],
            sink: tx,
            _permit: None,
        });
        match rx.try_recv() {
            Ok((_, Err(err))) if err.is_not_cached() => Err(request),
            Ok((_, result)) => Ok(Completion {
                tag: request.tag,
                result,
            }),
            Err(_) => Err(request),
        }
    }

    fn start<T>(
        &self,
        requests: impl IntoIterator<Item = ReadRequest<T>>,
        read_on: ReadOn,
    ) -> ReadStream<T> {
        let (tx, rx) = crossbeam_channel::unbounded::<Delivery>();
        let mut tags = Vec::new();
        // The batch's distinct files in first-seen order (a path, or a pinned open file), each
        // with its requests.
        let mut group_of: HashMap<(Arc<Path>, usize), usize> = HashMap::new();
        let mut groups: Vec<(Arc<Path>, Option<PinnedFile>, Vec<FileRequest>)> = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            tags.push(Some(request.tag));
            let pin = request
                .file
                .as_ref()
                .map_or(0, |f| Arc::as_ptr(&f.0) as usize);
            let group = *group_of
                .entry((Arc::clone(&request.path), pin))
                .or_insert_with(|| {
                    groups.push((request.path, request.file, Vec::new()));
                    groups.len() - 1
                });
            groups[group].2.push((index, request.range));
        }
        let read_on = match read_on {
            ReadOn::Caller if tags.len() != 1 => ReadOn::Backend,
            other => other,
        };
        match self.engine() {
            Err(err) => {
                for index in 0..tags.len() {
                    let _ = tx.send((index, Err(err.clone())));
                }
            }
            Ok(engine) => {
                let batch = Submission {
                    engine: &engine,
                    tx: &tx,
                    read_on,
                };
                // Pinned files need no open: their reads go first.
                let mut paths: Vec<Arc<Path>> = Vec::new();
                let mut unpinned: Vec<&[FileRequest]> = Vec::new();
                for (path, pinned, requests) in &groups {
                    match pinned {
                        Some(file) => {
                            // Its descriptor is the caller's: no permit.
                            let file = Ok(Arc::clone(&file.0));
                            self.dispatch(&batch, path, file, None, requests);
                        }
                        None => {
                            paths.push(Arc::clone(path));
                            unpinned.push(requests);
                        }
                    }
                }
                // Each file's reads go to the backend as soon as it is open (or its cached
                // descriptor checked): the backend reads the first files while later ones open.
                // Each file holds a permit of the descriptor budget until its reads are done.
                let direct = self.options.direct_io;
                let cached_lookup = matches!(read_on, ReadOn::CallerCachedOnly);
                open_each(
                    &engine.files,
                    &engine.budget,
                    &paths,
                    direct,
                    cached_lookup,
                    |k, file, permit| {
                        self.dispatch(&batch, &paths[k], file, Some(permit), unpinned[k]);
                    },
                );
            }
        }
        ReadStream::new(tags, rx)
    }

    /// Open `paths` (or check their cached descriptors), in parallel when the cache is cold, for
    /// reads pinned to these versions of the files ([`ReadRequest::pinned`]). One result per
    /// path, in order; a missing file is [`IoError::NotFound`].
    pub fn open_files(&self, paths: &[Arc<Path>]) -> Vec<Result<PinnedFile>> {
        self.open_files_as(paths, false)
    }

    /// As [`Reader::open_files`], on this thread and without waiting for the disk, for reads that
    /// may not ([`Reader::fetch_cached`]): a path the kernel's directory entry cache cannot
    /// resolve by itself is [`IoError::PathNotCached`] (as is every path of an `O_DIRECT`
    /// reader).
    pub fn open_files_cached(&self, paths: &[Arc<Path>]) -> Vec<Result<PinnedFile>> {
        self.open_files_as(paths, true)
    }

    fn open_files_as(&self, paths: &[Arc<Path>], cached_lookup: bool) -> Vec<Result<PinnedFile>> {
        let engine = match self.engine() {
            Ok(engine) => engine,
            Err(err) => return paths.iter().map(|_| Err(err.clone())).collect(),
        };
        let mut out = Vec::with_capacity(paths.len());
        // The handles are the caller's to bound: the permits only pace the opens.
        let direct = self.options.direct_io;
        open_each(
            &engine.files,
            &engine.budget,
            paths,
            direct,
            cached_lookup,
            |_, file, _| {
                out.push(file.map(PinnedFile));
            },
        );
        out
    }

    /// Resolve the requests of one file against its size, merge nearby ranges and hand the
    /// physical reads to the backend (or read them on this thread, as the batch says); requests
    /// that fail here (open errors, ranges past the end) or need no read are answered at once.
    fn dispatch(
        &self,
        batch: &Submission<'_>,
        path: &Arc<Path>,
        file: Result<Arc<OpenFile>>,
        permit: Option<FilePermit>,
        requests: &[FileRequest],
    ) {
        let Submission {
            engine,
            tx,
            read_on,
        } = *batch;
        // Shared by the file's reads: the permit goes back when the last one is done.
        let permit = permit.map(Arc::new);
        let file = match file {
            Ok(file) => file,
            Err(err) => {
                for &(index, _) in requests {
                    let _ = tx.send((index, Err(err.clone())));
                }
                return;
            }
        };
        let mut spans = Vec::with_capacity(requests.len());
        for &(index, range) in requests {
            match range.resolve(path, file.size) {
                Ok((start, end)) if start == end => {
                    let _ = tx.send((index, Ok(Bytes::new())));
                }
                Ok((start, end)) => spans.push(Span { index, start, end }),
                Err(err) => {
                    let _ = tx.send((index, Err(err)));
                }
            }
        }
        if spans.is_empty() {
            return;
        }
        for read in coalesce(spans, self.options.coalesce, file.direct_align) {
            let len = usize::try_from(read.len()).unwrap_or(usize::MAX);
            let job = Job {
                file: Arc::clone(&file),
                offset: read.start,
                len,
                buf: engine.buffers.take(len),
                filled: 0,
                parts: read
                    .spans
                    .iter()
                    .map(|s| Part {
                        index: s.index,
                        start: s.start,
                        end: s.end,
                    })
                    .collect(),
                sink: tx.clone(),
                _permit: permit.clone(),
            };
            match read_on {
                ReadOn::CallerCachedOnly if self.options.direct_io => job.not_cached(),
                ReadOn::CallerCachedOnly => crate::pread::run_cached(job),
                ReadOn::Caller => crate::pread::run(job),
                ReadOn::Backend => {
                    if let Err(job) = engine.workers.send(job) {
                        let backend = engine.workers.name();
                        for part in &job.parts {
                            let _ = tx.send((part.index, Err(IoError::BackendStopped { backend })));
                        }
                    }
                }
            }
        }
    }

    /// Read a batch and return the results in request order.
    pub fn read_ordered<T>(
        &self,
        requests: impl IntoIterator<Item = ReadRequest<T>>,
    ) -> Vec<Completion<T>> {
        let mut stream = self.fetch(requests);
        let mut slots: Vec<Option<Completion<T>>> = (0..stream.len()).map(|_| None).collect();
        while let Some((index, completion)) = stream.next_indexed() {
            slots[index] = Some(completion);
        }
        slots.into_iter().flatten().collect()
    }

    /// Read one range.
    ///
    /// # Errors
    /// As for a request in a batch.
    pub fn read(&self, path: impl Into<Arc<Path>>, range: crate::ByteRange) -> Result<Bytes> {
        self.read_ordered([ReadRequest::new(path, range, ())])
            .pop()
            .map_or(Err(IoError::BackendStopped { backend: "reader" }), |c| {
                c.result
            })
    }

    /// Forget cached descriptors for `path` (after it was written or deleted elsewhere).
    pub fn invalidate(&self, path: &Path) {
        if let Ok(engine) = self.engine() {
            engine.files.invalidate(path);
        }
    }

    /// Forget every cached descriptor.
    pub fn clear_cache(&self) {
        if let Ok(engine) = self.engine() {
            engine.files.clear();
        }
    }

    /// Write `data` to `path` atomically (see [`crate::write_atomic`]) and forget any cached
    /// descriptor for it.
    ///
    /// # Errors
    /// [`IoError::Write`] naming the path.
    pub fn write_atomic(&self, path: &Path, data: &[u8], fsync: bool) -> Result<()> {
        let result = crate::write::write_atomic(path, data, fsync);
        self.invalidate(path);
        result
    }

    /// Write `data` to `path`, which must not exist, atomically (see
    /// [`crate::write_new_atomic`]) and forget any cached descriptor for it.
    ///
    /// # Errors
    /// [`IoError::Write`] naming the path, of kind `AlreadyExists` when it exists.
    pub fn write_new_atomic(&self, path: &Path, data: &[u8], fsync: bool) -> Result<()> {
        let result = crate::write::write_new_atomic(path, data, fsync);
        self.invalidate(path);
        result
    }

    /// Replace `path` atomically with the concatenation of `parts` (see
    /// [`crate::write_atomic_parts`]) and forget any cached descriptor for it.
    ///
    /// # Errors
    /// [`IoError::Write`] naming the path.
    pub fn write_atomic_parts(&self, path: &Path, parts: &[&[u8]], fsync: bool) -> Result<()> {
        let result = crate::write::write_atomic_parts(path, parts, fsync);
        self.invalidate(path);
        result
    }

    /// Replace `path` atomically with `pieces` (see [`crate::write_atomic_pieces`]) and forget
    /// any cached descriptor for it.
    ///
    /// # Errors
    /// [`IoError::Write`] naming the path.
    pub fn write_atomic_pieces(
        &self,
        path: &Path,
        source: &std::fs::File,
        pieces: &[crate::write::Piece<'_>],
        fsync: bool,
    ) -> Result<()> {
        let result = crate::write::write_atomic_pieces(path, source, pieces, fsync);
        self.invalidate(path);
        result
    }

    /// Write many files atomically in parallel (see [`crate::write_many`]).
    pub fn write_many(
        &self,
        items: &[(std::path::PathBuf, Bytes)],
        fsync: bool,
    ) -> Vec<Result<()>> {
        let results = crate::write::write_many(items, fsync);
        for (path, _) in items {
            self.invalidate(path);
        }
        results
    }

    /// Delete `path`; a missing file is not an error.
    ///
    /// # Errors
    /// [`IoError::Write`] naming the path.
    pub fn remove(&self, path: &Path) -> Result<()> {
        let result = crate::write::remove(path);
        self.invalidate(path);
        result
    }
}

/// A request of a batch for one file: its position in the batch and its range.
type FileRequest = (usize, ByteRange);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_reads_keep_the_version_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = Arc::from(dir.path().join("shard").as_path());
        std::fs::write(&path, b"version one: index at the end").unwrap();
        let reader = Reader::new(ReaderOptions::default()).unwrap();
        let missing: Arc<Path> = Arc::from(dir.path().join("absent").as_path());
        let opened = reader.open_files(&[Arc::clone(&path), missing]);
        assert!(opened[1].as_ref().is_err_and(IoError::is_not_found));
        let pinned = opened[0].as_ref().unwrap().clone();
        assert_eq!(pinned.version().size, 29);
        // A writer replaces the file (a new inode at the same path).
        crate::write_atomic(&path, b"VERSION TWO, longer: index moved to the end", false).unwrap();
        let out = reader.read_ordered([
            ReadRequest::pinned(&pinned, ByteRange::new(0, 11), 0),
            ReadRequest::new(Arc::clone(&path), ByteRange::new(0, 11), 1),
            ReadRequest::pinned(&pinned, ByteRange::Suffix(3), 2),
            ReadRequest::pinned(&pinned, ByteRange::new(20, 20), 3),
        ]);
        assert_eq!(&out[0].result.as_ref().unwrap()[..], b"version one");
        assert_eq!(&out[1].result.as_ref().unwrap()[..], b"VERSION TWO");
        assert_eq!(&out[2].result.as_ref().unwrap()[..], b"end");
        // Ranges are checked against the pinned version's size, not the new file's.
        assert!(matches!(
            out[3].result,
            Err(IoError::OutOfBounds { file_size: 29, .. })
        ));
        let now = reader.open_files(&[Arc::clone(&path)]);
        assert_ne!(now[0].as_ref().unwrap().version(), pinned.version());
    }

    /// A child forked while a thread of its parent holds the reader's engine lock (an instant
    /// of any read: a DataLoader worker forked while the parent reads) reads all the same,
    /// with an engine of its own; before, it waited forever for that lock.
    #[test]
    fn a_child_forked_while_the_engine_is_locked_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, b"read in the parent and in the child").unwrap();
        let reader = Arc::new(Reader::new(ReaderOptions::default()).unwrap());
        assert_eq!(
            &reader.read(path.as_path(), ByteRange::new(0, 4)).unwrap()[..],
            b"read"
        );
        let holder = Arc::clone(&reader);
        let exited = crate::testing::fork_while_held(
            move |held| {
                let _locked = holder.engine.get_or_init(|| Mutex::new(None)).lock();
                held();
            },
            || {
                reader
                    .read(path.as_path(), ByteRange::Suffix(9))
                    .is_ok_and(|b| &b[..] == b"the child")
            },
            std::time::Duration::from_secs(10),
        );
        assert_eq!(exited, Some(0), "the child hung (None) or read wrong bytes");
        assert_eq!(
            &reader.read(path.as_path(), ByteRange::new(5, 2)).unwrap()[..],
            b"in"
        );
    }
}
