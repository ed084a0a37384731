//! Where a read's bytes come from: zuring's reader over local files, or bytes the caller fetches
//! itself (a zarr-python store's async API, an object store), batch by batch.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zuring_io::{ByteRange, Completion, IoError, PinnedFile, ReadRequest, Reader};

use crate::error::Result;
use crate::shard_index::FileVersion;

/// What is known of a file before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// It does not exist.
    Missing,
    /// It exists with this version (device, inode, size, modification time): cached shard
    /// indexes keyed by it stay valid while it does not change.
    Version(FileVersion),
    /// Nothing is known until its bytes are asked for (nothing is cached).
    Unknown,
}

/// What a batch of reads fetches: a source that reads through another API may ask for each
/// kind its own way (zarr-python's stores read shard indexes with `get`, and the chunk ranges
/// of a shard with `get_ranges`, which coalesces them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// Shard indexes, one range per shard.
    Indexes,
    /// Stored chunks (whole files) or inner chunks (ranges of shards).
    Chunks,
}

/// A batch of byte-range reads, by key: the engine asks for every shard index of a read in one
/// batch and for every chunk range in a second one.
pub trait ByteSource: Sync {
    /// What is known of each of `paths` before reading them, in order.
    ///
    /// # Errors
    /// When looking failed for a reason other than a file being missing.
    fn probe(&self, paths: &[PathBuf]) -> Result<Vec<Presence>>;

    /// The most files one probe and its fetches should cover (the engine splits larger reads of
    /// sharded arrays into groups of this many shards). Default: no limit.
    fn max_files_per_batch(&self) -> usize {
        usize::MAX
    }

    /// Start a batch; completions may arrive in any order, each with its request's tag. A missing
    /// file is [`IoError::NotFound`]; a range past its end is [`IoError::OutOfBounds`].
    fn fetch(
        &self,
        requests: Vec<ReadRequest<usize>>,
        kind: FetchKind,
    ) -> Box<dyn Iterator<Item = Completion<usize>> + '_>;

    /// Whether [`ByteSource::read_now`] may give anything (else the engine does not ask).
    fn can_read_now(&self) -> bool {
        false
    }

    /// Whether small inner chunks lying close together in a shard may be asked for as one
    /// range (a run; see the engine): so for local files; a store read by key merges ranges
    /// as its owner configured it, and is asked for each chunk's own.
    fn joins_small_chunks(&self) -> bool {
        false
    }

    /// Read one request of a batch on this thread, now, if its bytes are at hand (local files
    /// open, or opened without waiting for the disk, and in the page cache): its completion, as
    /// [`ByteSource::fetch`] would give it; or the request back, to be fetched with the rest.
    /// Called on the decode threads, so that each reads what it decodes. Default: never (every
    /// request is fetched).
    ///
    /// # Errors
    /// The request itself, when it must be fetched.
    fn read_now(
        &self,
        request: ReadRequest<usize>,
    ) -> std::result::Result<Completion<usize>, ReadRequest<usize>> {
        Err(request)
    }
}

/// Local files through zuring's io_uring (or pread) reader. Files probed are opened (or their
/// cached descriptors checked) once, in parallel on a cold cache, and every later read of the
/// same path in this source is pinned to that open file: a shard index and the chunk ranges it
/// points to come from one version of the shard, even if a writer replaces it in between. Each
/// probe replaces the files pinned by the one before, and covers at most half as many files as
/// the reader's descriptor cache holds, so a read of many shards stays within the process's
/// descriptor limit.
pub(crate) struct LocalSource<'a> {
    reader: &'a Reader,
    pinned: Mutex<HashMap<Arc<Path>, PinnedFile>>,
    /// Read on the calling thread from the page cache only ([`Reader::fetch_cached`]).
    cached_only: bool,
}

impl<'a> LocalSource<'a> {
    pub(crate) fn new(reader: &'a Reader) -> Self {
        Self {
            reader,
            pinned: Mutex::new(HashMap::new()),
            cached_only: false,
        }
    }

    /// A source whose reads never wait for the disk: bytes not in the page cache fail as
    /// [`IoError::NotCached`].
    pub(crate) fn cached_only(reader: &'a Reader) -> Self {
        Self {
            cached_only: true,
            ..Self::new(reader)
        }
    }
}

impl ByteSource for LocalSource<'_> {
    fn probe(&self, paths: &[PathBuf]) -> Result<Vec<Presence>> {
        let paths: Vec<Arc<Path>> = paths.iter().map(|p| Arc::from(p.as_path())).collect();
        let mut pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The earlier probe's files: their reads hold their own handles.
        pinned.clear();
        let opened = if self.cached_only {
            self.reader.open_files_cached(&paths)
        } else {
            self.reader.open_files(&paths)
        };
        opened
            .into_iter()
            .map(|file| match file {
                Ok(file) => {
                    let version = file.version();
                    pinned.insert(Arc::clone(file.path()), file);
                    Ok(Presence::Version(version))
                }
                Err(e) if e.is_not_found() => Ok(Presence::Missing),
                Err(e) => Err(e.into()),
            })
            .collect()
    }

    fn max_files_per_batch(&self) -> usize {
        (self.reader.options().fd_cache_capacity / 2).max(1)
    }

    fn fetch(
        &self,
        requests: Vec<ReadRequest<usize>>,
        _kind: FetchKind,
    ) -> Box<dyn Iterator<Item = Completion<usize>> + '_> {
        let pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let requests: Vec<ReadRequest<usize>> = requests
            .into_iter()
            .map(|r| match pinned.get(&r.path) {
                Some(file) if r.file.is_none() => ReadRequest::pinned(file, r.range, r.tag),
                _ => r,
            })
            .collect();
        drop(pinned);
        if self.cached_only {
            Box::new(self.reader.fetch_cached(requests))
        } else {
            Box::new(self.reader.fetch(requests))
        }
    }

    fn can_read_now(&self) -> bool {
        !self.reader.options().direct_io
    }

    fn joins_small_chunks(&self) -> bool {
        true
    }

    fn read_now(
        &self,
        request: ReadRequest<usize>,
    ) -> std::result::Result<Completion<usize>, ReadRequest<usize>> {
        let pinned = self
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&request.path)
            .cloned();
        match pinned {
            Some(file) if request.file.is_none() => self.reader.read_now(ReadRequest {
                file: Some(file),
                ..request
            }),
            _ => self.reader.read_now(request),
        }
    }
}

/// One fetched result.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The bytes of the range (for a range past the end of the object, the bytes that exist).
    Bytes(Bytes),
    /// No such key.
    Missing,
    /// The fetch failed; the message says why.
    Failed(String),
}

/// Bytes fetched by the caller: `fetch` gets a batch of `(key, range)` and returns one
/// [`Fetched`] per request, in order. The engine plans as for local files (index batch, chunk
/// batch, decode in parallel, write into the output), but keeps no index cache, since nothing
/// says when a foreign object changes.
pub struct FetchedSource<F> {
    fetch: F,
    joins_small_chunks: bool,
}

impl<F> std::fmt::Debug for FetchedSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedSource").finish_non_exhaustive()
    }
}

impl<F> FetchedSource<F>
where
    F: Fn(&[(PathBuf, ByteRange)], FetchKind) -> Vec<Fetched> + Sync,
{
    /// A source that calls `fetch` once per batch, with what the batch is for; each inner
    /// chunk is asked for as its own range.
    pub fn new(fetch: F) -> Self {
        Self {
            fetch,
            joins_small_chunks: false,
        }
    }

    /// This source, asked for small inner chunks lying close together in a shard as one range
    /// (as local files are read: chunks of at most 32 KiB decoded, at most 4 KiB apart, runs of
    /// at most 1 MiB), where asking for each costs more than the bytes between them.
    #[must_use]
    pub fn joining_small_chunks(self) -> Self {
        Self {
            joins_small_chunks: true,
            ..self
        }
    }
}

/// Check that `bytes` is what `range` asked for: a short answer means the object ends before
/// the range does.
fn checked(path: &Path, range: ByteRange, bytes: Bytes) -> zuring_io::Result<Bytes> {
    let got = bytes.len() as u64;
    match range {
        ByteRange::Range { offset, len } if got < len => Err(IoError::OutOfBounds {
            path: path.to_path_buf(),
            range: (offset, offset.saturating_add(len)),
            file_size: offset.saturating_add(got),
        }),
        ByteRange::Range { len, .. } if got > len => {
            Ok(bytes.slice(..usize::try_from(len).unwrap_or(usize::MAX)))
        }
        ByteRange::Suffix(len) if got < len => Err(IoError::OutOfBounds {
            path: path.to_path_buf(),
            range: (0, len),
            file_size: got,
        }),
        ByteRange::Suffix(len) if got > len => {
            Ok(bytes.slice(usize::try_from(got - len).unwrap_or(0)..))
        }
        _ => Ok(bytes),
    }
}

impl<F> ByteSource for FetchedSource<F>
where
    F: Fn(&[(PathBuf, ByteRange)], FetchKind) -> Vec<Fetched> + Sync,
{
    fn joins_small_chunks(&self) -> bool {
        self.joins_small_chunks
    }

    fn probe(&self, paths: &[PathBuf]) -> Result<Vec<Presence>> {
        Ok(vec![Presence::Unknown; paths.len()])
    }

    fn fetch(
        &self,
        requests: Vec<ReadRequest<usize>>,
        kind: FetchKind,
    ) -> Box<dyn Iterator<Item = Completion<usize>> + '_> {
        let asks: Vec<(PathBuf, ByteRange)> = requests
            .iter()
            .map(|r| (r.path.to_path_buf(), r.range))
            .collect();
        let mut answers = (self.fetch)(&asks, kind).into_iter();
        let completions: Vec<Completion<usize>> = requests
            .into_iter()
            .map(|request| {
                let path = request.path.to_path_buf();
                // The error names the range asked for (`0..0` when it was a suffix or all).
                let failed = |path, message: &str| IoError::Read {
                    path,
                    range: match request.range {
                        ByteRange::Range { offset, len } => (offset, offset.saturating_add(len)),
                        _ => (0, 0),
                    },
                    source: Arc::new(std::io::Error::other(message.to_owned())),
                };
                let result = match answers.next() {
                    Some(Fetched::Bytes(bytes)) => checked(&path, request.range, bytes),
                    Some(Fetched::Missing) => Err(IoError::NotFound { path }),
                    Some(Fetched::Failed(message)) => Err(failed(path, &message)),
                    None => Err(failed(
                        path,
                        "the fetch returned fewer results than requests",
                    )),
                };
                Completion {
                    tag: request.tag,
                    result,
                }
            })
            .collect();
        Box::new(completions.into_iter())
    }
}

/// A source that notes, for the files a read looked at, which turned out missing (a probe's
/// [`Presence::Missing`], a fetch's [`IoError::NotFound`]): what zarr-python (>= 3.2) asks of a
/// pipeline for each stored chunk of a batch, known without looking again.
pub(crate) struct NotingMissing<'a> {
    inner: &'a dyn ByteSource,
    /// Each file looked at, and whether it was missing.
    looked: Mutex<HashMap<Arc<Path>, bool>>,
}

impl<'a> NotingMissing<'a> {
    pub(crate) fn new(inner: &'a dyn ByteSource) -> Self {
        Self {
            inner,
            looked: Mutex::new(HashMap::new()),
        }
    }

    fn note(&self, path: &Arc<Path>, missing: bool) {
        let mut looked = self
            .looked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match looked.get_mut(path) {
            Some(was) => *was |= missing,
            None => {
                looked.insert(Arc::clone(path), missing);
            }
        }
    }

    /// Note the file of a completion that says it is missing (its error names it).
    fn note_missing(&self, completion: &Completion<usize>) {
        if let Err(IoError::NotFound { path }) = &completion.result {
            self.note(&Arc::from(path.as_path()), true);
        }
    }

    /// Of `files` (each a stored chunk's coordinates and path), the coordinates of those that do
    /// not exist, in order, each once. A file the read did not look at (nothing of it was
    /// asked for) is probed now; one the source cannot tell of without fetching it
    /// ([`Presence::Unknown`]: bytes the caller fetches) counts as present.
    pub(crate) fn missing(&self, files: Vec<(&[u64], PathBuf)>) -> Result<Vec<Vec<u64>>> {
        let looked = std::mem::take(
            &mut *self
                .looked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut status: Vec<Option<bool>> = files
            .iter()
            .map(|(_, path)| looked.get(path.as_path()).copied())
            .collect();
        let unseen: Vec<PathBuf> = files
            .iter()
            .zip(&status)
            .filter(|(_, s)| s.is_none())
            .map(|((_, path), _)| path.clone())
            .collect();
        if !unseen.is_empty() {
            let mut probed = self.inner.probe(&unseen)?.into_iter();
            for s in status.iter_mut().filter(|s| s.is_none()) {
                *s = Some(matches!(probed.next(), Some(Presence::Missing)));
            }
        }
        let mut listed: HashSet<&[u64]> = HashSet::new();
        Ok(files
            .iter()
            .zip(status)
            .filter(|((coords, _), missing)| *missing == Some(true) && listed.insert(coords))
            .map(|((coords, _), _)| coords.to_vec())
            .collect())
    }
}

impl ByteSource for NotingMissing<'_> {
    fn probe(&self, paths: &[PathBuf]) -> Result<Vec<Presence>> {
        let presence = self.inner.probe(paths)?;
        for (path, p) in paths.iter().zip(&presence) {
            if *p != Presence::Unknown {
                self.note(&Arc::from(path.as_path()), *p == Presence::Missing);
            }
        }
        Ok(presence)
    }

    fn max_files_per_batch(&self) -> usize {
        self.inner.max_files_per_batch()
    }

    fn fetch(
        &self,
        requests: Vec<ReadRequest<usize>>,
        kind: FetchKind,
    ) -> Box<dyn Iterator<Item = Completion<usize>> + '_> {
        for r in &requests {
            self.note(&r.path, false);
        }
        // A missing file's error names it (the request's path).
        Box::new(
            self.inner
                .fetch(requests, kind)
                .inspect(|c| self.note_missing(c)),
        )
    }

    fn can_read_now(&self) -> bool {
        self.inner.can_read_now()
    }

    fn joins_small_chunks(&self) -> bool {
        self.inner.joins_small_chunks()
    }

    fn read_now(
        &self,
        request: ReadRequest<usize>,
    ) -> std::result::Result<Completion<usize>, ReadRequest<usize>> {
        let path = Arc::clone(&request.path);
        let completion = self.inner.read_now(request)?;
        self.note(&path, false);
        self.note_missing(&completion);
        Ok(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_reads_after_a_probe_come_from_the_probed_version() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("0");
        std::fs::write(&shard, b"old chunk|old index").unwrap();
        let reader = Reader::new(zuring_io::ReaderOptions::default()).unwrap();
        let source = LocalSource::new(&reader);
        let presence = source
            .probe(&[shard.clone(), dir.path().join("1")])
            .unwrap();
        let Presence::Version(version) = presence[0] else {
            panic!("{presence:?}")
        };
        assert_eq!(version.size, 19);
        assert_eq!(presence[1], Presence::Missing);
        // A writer replaces the shard between the index read and the chunk reads.
        zuring_io::write_atomic(&shard, b"NEW CHUNK, longer|NEW INDEX", false).unwrap();
        let got: Vec<Bytes> = source
            .fetch(
                vec![
                    ReadRequest::new(shard.as_path(), ByteRange::new(0, 9), 0),
                    ReadRequest::new(shard.as_path(), ByteRange::Suffix(9), 1),
                ],
                FetchKind::Chunks,
            )
            .map(|c| c.result.unwrap())
            .collect();
        let mut got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
        got.sort_unstable();
        assert_eq!(got, [&b"old chunk"[..], &b"old index"[..]]);
        // Read now (by a decode thread) from the probed version too, not the path's new file.
        assert!(source.can_read_now());
        let now = source
            .read_now(ReadRequest::new(shard.as_path(), ByteRange::Suffix(9), 2))
            .unwrap();
        assert_eq!((now.tag, &now.result.unwrap()[..]), (2, &b"old index"[..]));
        // A new source (a new read) sees the new version.
        let fresh = LocalSource::new(&reader);
        assert_ne!(
            fresh.probe(&[shard]).unwrap()[0],
            Presence::Version(version)
        );
    }

    #[test]
    fn short_and_long_answers() {
        let p = Path::new("k");
        let b = Bytes::from_static(b"0123456789");
        assert!(matches!(
            checked(p, ByteRange::new(4, 20), b.clone()),
            Err(IoError::OutOfBounds {
                range: (4, 24),
                file_size: 14,
                ..
            })
        ));
        assert_eq!(
            &checked(p, ByteRange::new(0, 4), b.clone()).unwrap()[..],
            b"0123"
        );
        assert_eq!(
            &checked(p, ByteRange::Suffix(3), b.clone()).unwrap()[..],
            b"789"
        );
        assert!(matches!(
            checked(p, ByteRange::Suffix(11), b.clone()),
            Err(IoError::OutOfBounds { file_size: 10, .. })
        ));
        assert_eq!(checked(p, ByteRange::Whole, b.clone()).unwrap(), b);
    }
}
