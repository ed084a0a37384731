//! What a caller asks for and what comes back.

use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::error::{IoError, Result};
use crate::files::{FileVersion, OpenFile};
use crate::job::Delivery;

/// The part of a file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteRange {
    /// `offset..offset + len`.
    Range {
        /// First byte.
        offset: u64,
        /// Number of bytes.
        len: u64,
    },
    /// Everything from `offset` to the end of the file.
    From(u64),
    /// The last `len` bytes of the file (a shard index at the end of a shard, say).
    Suffix(u64),
    /// The whole file.
    Whole,
}

impl ByteRange {
    /// `offset..offset + len`.
    #[must_use]
    pub const fn new(offset: u64, len: u64) -> Self {
        Self::Range { offset, len }
    }

    /// Resolve to an absolute `start..end` against a file of `file_size` bytes.
    ///
    /// # Errors
    /// [`IoError::InvalidRange`] when `offset + len` overflows, [`IoError::OutOfBounds`] when the
    /// range reaches past the end of the file.
    pub fn resolve(self, path: &Path, file_size: u64) -> Result<(u64, u64)> {
        let (start, end) = match self {
            Self::Range { offset, len } => {
                let end = offset
                    .checked_add(len)
                    .ok_or_else(|| IoError::InvalidRange {
                        path: path.to_path_buf(),
                        offset,
                        len,
                    })?;
                (offset, end)
            }
            Self::From(offset) => (offset, file_size.max(offset)),
            Self::Suffix(len) => (file_size.saturating_sub(len), file_size),
            Self::Whole => (0, file_size),
        };
        let out_of_bounds = match self {
            Self::Suffix(len) => len > file_size,
            _ => end > file_size,
        };
        if out_of_bounds {
            let range = match self {
                Self::Suffix(len) => (start, start.saturating_add(len)),
                _ => (start, end),
            };
            return Err(IoError::OutOfBounds {
                path: path.to_path_buf(),
                range,
                file_size,
            });
        }
        Ok((start, end))
    }
}

/// A file opened by [`Reader::open_files`](crate::Reader::open_files): reads pinned to it
/// ([`ReadRequest::pinned`]) read this version of the file, whatever has happened at its path
/// since (a shard replaced after its index was read, say), and need no open or check of their
/// own.
#[derive(Debug, Clone)]
pub struct PinnedFile(pub(crate) Arc<OpenFile>);

impl PinnedFile {
    /// The path it was opened from.
    #[must_use]
    pub fn path(&self) -> &Arc<Path> {
        &self.0.path
    }

    /// Which version of the file this is (its size included).
    #[must_use]
    pub fn version(&self) -> FileVersion {
        self.0.version
    }
}

/// One read: a file, a range in it, and a tag the caller uses to recognise the result.
#[derive(Debug, Clone)]
pub struct ReadRequest<T> {
    /// The file.
    pub path: Arc<Path>,
    /// The range to read.
    pub range: ByteRange,
    /// Handed back with the result.
    pub tag: T,
    /// The open file to read from, when the request is pinned to one; else `path` is opened
    /// (or its cached descriptor checked).
    pub file: Option<PinnedFile>,
}

impl<T> ReadRequest<T> {
    /// A request for `range` of `path`, recognised by `tag`.
    pub fn new(path: impl Into<Arc<Path>>, range: ByteRange, tag: T) -> Self {
        Self {
            path: path.into(),
            range,
            tag,
            file: None,
        }
    }

    /// A request for `range` of the version of a file that `file` holds open.
    pub fn pinned(file: &PinnedFile, range: ByteRange, tag: T) -> Self {
        Self {
            path: Arc::clone(file.path()),
            range,
            tag,
            file: Some(file.clone()),
        }
    }
}

/// The result of one [`ReadRequest`].
#[derive(Debug)]
pub struct Completion<T> {
    /// The request's tag.
    pub tag: T,
    /// The bytes read: a zero-copy view of a pooled buffer, returned to the pool when the last
    /// view is dropped.
    pub result: Result<Bytes>,
}

/// The results of a batch, delivered as each read completes.
#[derive(Debug)]
pub struct ReadStream<T> {
    tags: Vec<Option<T>>,
    remaining: usize,
    rx: Receiver<Delivery>,
}

impl<T> ReadStream<T> {
    /// The stream of a batch of `tags.len()` requests whose results arrive on `rx`.
    pub(crate) fn new(tags: Vec<Option<T>>, rx: Receiver<Delivery>) -> Self {
        Self {
            remaining: tags.len(),
            tags,
            rx,
        }
    }

    /// Number of requests in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the batch was empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Results not yet handed out.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// A handle that tells when this batch has a result ready, to wait on apart from the
    /// stream (which may sit behind a lock other threads take meanwhile), and on many batches
    /// at once: [`Ready::wait_any`].
    #[must_use]
    pub fn ready(&self) -> Ready {
        Ready {
            rx: self.rx.clone(),
        }
    }

    fn deliver(&mut self, (index, result): Delivery) -> Option<(usize, Completion<T>)> {
        let tag = self.tags.get_mut(index)?.take()?;
        self.remaining -= 1;
        Some((index, Completion { tag, result }))
    }

    /// When the backend vanished, the requests still waiting fail.
    fn fail_next(&mut self) -> Option<(usize, Completion<T>)> {
        let index = self.tags.iter().position(Option::is_some)?;
        self.deliver((index, Err(IoError::BackendStopped { backend: "reader" })))
    }

    /// The next completion and its request's index, blocking until one arrives.
    pub fn next_indexed(&mut self) -> Option<(usize, Completion<T>)> {
        self.next_with(|rx| rx.recv().map_err(|_| Wait::Closed))
    }

    /// The next completion if one is ready, without blocking.
    pub fn try_next(&mut self) -> Option<(usize, Completion<T>)> {
        self.next_with(|rx| {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => Wait::Nothing,
                TryRecvError::Disconnected => Wait::Closed,
            })
        })
    }

    /// The next completion, waiting at most `timeout`.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<(usize, Completion<T>)> {
        self.next_with(|rx| {
            rx.recv_timeout(timeout).map_err(|e| match e {
                RecvTimeoutError::Timeout => Wait::Nothing,
                RecvTimeoutError::Disconnected => Wait::Closed,
            })
        })
    }

    /// The next completion as `receive` waits for deliveries: none when it gives up, the
    /// requests still waiting failed one by one when the backend is gone.
    fn next_with(
        &mut self,
        mut receive: impl FnMut(&Receiver<Delivery>) -> std::result::Result<Delivery, Wait>,
    ) -> Option<(usize, Completion<T>)> {
        while self.remaining > 0 {
            match receive(&self.rx) {
                Ok(delivery) => {
                    if let Some(out) = self.deliver(delivery) {
                        return Some(out);
                    }
                }
                Err(Wait::Nothing) => return None,
                Err(Wait::Closed) => return self.fail_next(),
            }
        }
        None
    }
}

/// Tells when a [`ReadStream`] has a result ready ([`ReadStream::ready`]).
#[derive(Debug, Clone)]
pub struct Ready {
    rx: Receiver<Delivery>,
}

impl Ready {
    /// Wait at most `timeout` until one of `batches` has a result ready (or its backend has
    /// gone, which its stream then reports); that one's index in `batches`, or None when the
    /// timeout passed first. Nothing is taken: the result is the stream's to hand out (and
    /// another thread may take it first).
    #[must_use]
    pub fn wait_any(batches: &[Ready], timeout: Duration) -> Option<usize> {
        let mut select = crossbeam_channel::Select::new();
        for batch in batches {
            select.recv(&batch.rx);
        }
        select.ready_timeout(timeout).ok()
    }
}

/// Why no delivery came.
enum Wait {
    /// None yet (nothing ready, or the timeout passed).
    Nothing,
    /// The backend is gone.
    Closed,
}

impl<T> Iterator for ReadStream<T> {
    type Item = Completion<T>;

    fn next(&mut self) -> Option<Completion<T>> {
        self.next_indexed().map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_says_which_batch_has_a_result() {
        let (tx_a, rx_a) = crossbeam_channel::unbounded();
        let (tx_b, rx_b) = crossbeam_channel::unbounded();
        let mut a = ReadStream::new(vec![Some('a')], rx_a);
        let mut b = ReadStream::new(vec![Some('b'), Some('c')], rx_b);
        let watch = [a.ready(), b.ready()];
        let short = Duration::from_millis(20);
        assert_eq!(Ready::wait_any(&watch, short), None);
        // The newer batch's result ends the wait at once, and is still the stream's to give.
        tx_b.send((1, Ok(Bytes::from_static(b"c")))).unwrap();
        assert_eq!(Ready::wait_any(&watch, Duration::from_secs(60)), Some(1));
        assert_eq!(Ready::wait_any(&watch, Duration::from_secs(60)), Some(1));
        let (index, done) = b.try_next().unwrap();
        assert_eq!(
            (index, done.tag, &done.result.unwrap()[..]),
            (1, 'c', &b"c"[..])
        );
        assert_eq!(Ready::wait_any(&watch, short), None);
        // A batch whose backend is gone is ready: its stream fails the reads still waiting.
        drop(tx_a);
        assert_eq!(Ready::wait_any(&watch, Duration::from_secs(60)), Some(0));
        assert!(matches!(
            a.try_next(),
            Some((
                0,
                Completion {
                    tag: 'a',
                    result: Err(IoError::BackendStopped { .. })
                }
            ))
        ));
        drop(tx_b);
    }

    #[test]
    fn resolve_ranges() {
        let p = Path::new("f");
        assert_eq!(ByteRange::new(2, 3).resolve(p, 10).unwrap(), (2, 5));
        assert_eq!(ByteRange::new(10, 0).resolve(p, 10).unwrap(), (10, 10));
        assert_eq!(ByteRange::Suffix(4).resolve(p, 10).unwrap(), (6, 10));
        assert_eq!(ByteRange::Whole.resolve(p, 10).unwrap(), (0, 10));
        assert_eq!(ByteRange::From(7).resolve(p, 10).unwrap(), (7, 10));
        assert!(matches!(
            ByteRange::new(8, 3).resolve(p, 10),
            Err(IoError::OutOfBounds {
                range: (8, 11),
                file_size: 10,
                ..
            })
        ));
        assert!(matches!(
            ByteRange::Suffix(11).resolve(p, 10),
            Err(IoError::OutOfBounds { range: (0, 11), .. })
        ));
        assert!(matches!(
            ByteRange::From(11).resolve(p, 10),
            Err(IoError::OutOfBounds { .. })
        ));
        assert!(matches!(
            ByteRange::new(u64::MAX, 2).resolve(p, 10),
            Err(IoError::InvalidRange { .. })
        ));
    }
}
