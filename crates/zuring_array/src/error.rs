//! The error type of `zuring_array`.

use std::path::PathBuf;

use zuring_io::IoError;

/// Everything that can go wrong opening, reading or writing an array.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayError {
    /// No array at the path.
    #[error("{}: no Zarr array here (zarr.json or .zarray not found)", path.display())]
    NotFound {
        /// The array's directory.
        path: PathBuf,
    },
    /// No group at the path.
    #[error("{}: no Zarr group here (zarr.json or .zgroup not found)", path.display())]
    GroupNotFound {
        /// The group's directory.
        path: PathBuf,
    },
    /// A node (array or group) is already stored where one was to be created; nothing was
    /// written.
    #[error("{}: a Zarr {what} is already here ({file}); nothing was written (remove it first)", path.display())]
    NodeExists {
        /// The directory.
        path: PathBuf,
        /// "array" or "group" (or "node" when its document does not say).
        what: &'static str,
        /// The metadata document found.
        file: &'static str,
    },
    /// The metadata (of an array or a group) is malformed or names something invalid.
    #[error("{}: invalid metadata: {message}", path.display())]
    Metadata {
        /// The array's (or group's) directory.
        path: PathBuf,
        /// What is wrong (names the field where zarrs says which).
        message: String,
    },
    /// A feature zuring cannot read or write (the Python layer falls back on this).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is unsupported.
        what: String,
    },
    /// A shard index is inconsistent with its file.
    #[error("{}: corrupt shard index: entry {entry} (offset {offset}, nbytes {nbytes}): {reason} (file is {file_size} bytes)", path.display())]
    CorruptShardIndex {
        /// The shard file.
        path: PathBuf,
        /// The inner chunk's index in the shard (C order).
        entry: u64,
        /// The entry's offset.
        offset: u64,
        /// The entry's length.
        nbytes: u64,
        /// The shard file's size.
        file_size: u64,
        /// Why it is corrupt.
        reason: &'static str,
    },
    /// A shard index could not be read or decoded at all (short file, bad checksum).
    #[error("{}: corrupt shard index: {message}", path.display())]
    UnreadableShardIndex {
        /// The shard file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A chunk's bytes could not be decoded (truncated, bad checksum, codec failure).
    #[error("{}: corrupt chunk {chunk:?}: {message}", path.display())]
    CorruptChunk {
        /// The file holding the chunk (the shard for inner chunks).
        path: PathBuf,
        /// The chunk's coordinates in the array's chunk grid (inner chunk grid when sharded).
        chunk: Vec<u64>,
        /// What failed.
        message: String,
    },
    /// Values the array's codecs cannot store (out of a stored type's range, say): that chunk's
    /// file is left as it was.
    #[error("{}: cannot encode chunk {chunk:?}: {message}", path.display())]
    Encode {
        /// The file the chunk would be stored in (the shard for inner chunks).
        path: PathBuf,
        /// The chunk's coordinates in the array's chunk grid (inner chunk grid when sharded).
        chunk: Vec<u64>,
        /// What the codec said.
        message: String,
    },
    /// A selection outside the array or otherwise invalid.
    #[error("invalid selection: {message}")]
    Selection {
        /// What is wrong.
        message: String,
    },
    /// The caller's output buffer has the wrong size.
    #[error("output buffer is {got} bytes, the selection needs {expected}")]
    OutputSize {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A shape whose size does not fit in memory arithmetic.
    #[error("{what} of {elements} elements of {element_size} bytes is too large")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Number of elements (saturated).
        elements: u64,
        /// Bytes per element.
        element_size: usize,
    },
    /// Threads could not start (the process or the machine at its limit of threads or
    /// memory).
    #[error("cannot start {what}: {message}")]
    Threads {
        /// The threads: "4 decode threads".
        what: String,
        /// The system's reason.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// zarrs reported an error (fallback reads, writes).
    #[error("{}: {message}", path.display())]
    Zarrs {
        /// The array's directory.
        path: PathBuf,
        /// zarrs' message.
        message: String,
    },
}

/// A `Result` with [`ArrayError`].
pub type Result<T, E = ArrayError> = std::result::Result<T, E>;

impl ArrayError {
    /// Whether a read that may not wait stopped at bytes not in the page cache
    /// ([`crate::ZarrArray::read_chunk_requests_cached`]).
    #[must_use]
    pub fn is_not_cached(&self) -> bool {
        matches!(self, Self::Io(e) if e.is_not_cached())
    }

    pub(crate) fn selection(message: impl Into<String>) -> Self {
        Self::Selection {
            message: message.into(),
        }
    }
}
