//! Batched byte-range reads over many local files, through io_uring (or a pread thread pool),
//! atomic file writes, and record locks that keep writers of the same files in different
//! processes apart ([`lock_across_processes`]).
//!
//! A batch of [`ReadRequest`]s (path, [`ByteRange`], caller tag) is planned at once: files open
//! through a bounded descriptor cache, nearby ranges of one file merge into one read
//! ([`CoalesceOptions`]), and each file's reads go to the backend as soon as it is open. Results
//! stream back as they complete, each a zero-copy [`bytes::Bytes`] view of a pooled, aligned
//! buffer that returns to the pool when dropped. Reads in progress hold a bounded number of
//! descriptors, so a batch may span more files than the process may open at once. Reads can be
//! pinned to a version of a file opened earlier ([`Reader::open_files`], [`ReadRequest::pinned`]):
//! a file's index and the ranges it points to then come from the same version.
//!
//! ```
//! use zuring_io::{ByteRange, ReadRequest, Reader, ReaderOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("data.bin");
//! std::fs::write(&path, b"hello, zarr shards")?;
//! let reader = Reader::new(ReaderOptions::default())?;
//! let results = reader.read_ordered([
//!     ReadRequest::new(path.as_path(), ByteRange::new(0, 5), "head"),
//!     ReadRequest::new(path.as_path(), ByteRange::Suffix(6), "tail"),
//! ]);
//! assert_eq!(&results[0].result.as_ref().unwrap()[..], b"hello");
//! assert_eq!(results[1].tag, "tail");
//! assert_eq!(&results[1].result.as_ref().unwrap()[..], b"shards");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Backends: io_uring rings, each owned by a thread that keeps its queue full, or a pread thread
//! pool chosen when io_uring is unavailable or `ZURING_IO=pread`. Both honour the same contract:
//! short reads continue, reads over 2 GiB are split, EINTR/EAGAIN retry, a range past EOF fails
//! that request alone.

mod buffer;
mod coalesce;
mod error;
mod files;
mod job;
mod locks;
mod per_process;
mod pread;
mod reader;
mod request;
#[cfg(any(test, feature = "test-helpers"))]
#[doc(hidden)]
pub mod testing;
mod uring;
mod workers;
mod write;

pub use buffer::{advise_huge_pages, AlignedBuf, BufferPool, PooledBuf, BUFFER_ALIGN};
pub use coalesce::{align_outwards, coalesce, CoalesceOptions, CoalescedRead, Span};
pub use error::{IoError, Result};
pub use files::FileVersion;
pub use job::MAX_READ_BYTES;
pub use locks::{lock_across_processes, lock_file_path, ProcessLocks, KEY_LIMIT};
pub use per_process::PerProcess;
pub use reader::{BackendKind, Reader, ReaderOptions};
pub use request::{ByteRange, Completion, PinnedFile, ReadRequest, ReadStream, Ready};
pub use write::{
    close_in_background, remove, write_atomic, write_atomic_parts, write_atomic_pieces, write_many,
    write_new_atomic, Piece, CLOSE_QUEUE,
};
