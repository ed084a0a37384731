//! The error type of `zuring_io`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// An IO error with the path, byte range and OS error that caused it.
///
/// The OS error is behind an [`Arc`] so a single failed physical read can be reported to every
/// request that it served.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// Opening or inspecting a file failed for a reason other than it being missing.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// A read failed.
    #[error("{}: read of bytes {}..{} failed: {source}", path.display(), range.0, range.1)]
    Read {
        /// The file.
        path: PathBuf,
        /// The requested byte range, `start..end`.
        range: (u64, u64),
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// The requested range reaches past the end of the file.
    #[error("{}: byte range {}..{} is past the end of the file ({file_size} bytes)", path.display(), range.0, range.1)]
    OutOfBounds {
        /// The file.
        path: PathBuf,
        /// The requested byte range, `start..end`.
        range: (u64, u64),
        /// The file's size when it was read.
        file_size: u64,
    },
    /// A requested range is not representable (offset + length overflows).
    #[error("{}: invalid byte range: offset {offset} + length {len} overflows", path.display())]
    InvalidRange {
        /// The file.
        path: PathBuf,
        /// The requested offset.
        offset: u64,
        /// The requested length.
        len: u64,
    },
    /// A write, rename, sync or delete failed.
    /// A read that may not wait ([`crate::Reader::fetch_cached`]) found bytes that are not in
    /// the page cache (or a file read with `O_DIRECT`, or a filesystem that cannot tell).
    #[error("{}: bytes {}..{} are not in the page cache", path.display(), range.0, range.1)]
    NotCached {
        /// The file.
        path: PathBuf,
        /// The requested range.
        range: (u64, u64),
    },
    /// A read that may not wait could not open a file without the disk: looking its path up
    /// would have read a directory (the kernel's directory entry cache does not hold it).
    #[error("{}: the path is not in the directory entry cache", path.display())]
    PathNotCached {
        /// The file.
        path: PathBuf,
    },
    #[error("{}: write failed: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// The requested IO backend cannot be set up on this system.
    #[error("io backend {backend} is unavailable: {source}")]
    BackendUnavailable {
        /// The backend's name.
        backend: &'static str,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// The IO backend's worker threads are gone (they panicked or the process is shutting down).
    #[error("io backend {backend} stopped before the read completed")]
    BackendStopped {
        /// The backend's name.
        backend: &'static str,
    },
    /// An option or environment variable has a value zuring does not understand.
    #[error("invalid configuration {name}={value:?}: {expected}")]
    InvalidConfig {
        /// The option or variable.
        name: &'static str,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

impl IoError {
    /// Whether the error means the file does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether the error means a read that may not wait would have had to
    /// ([`IoError::NotCached`], [`IoError::PathNotCached`]).
    #[must_use]
    pub fn is_not_cached(&self) -> bool {
        matches!(self, Self::NotCached { .. } | Self::PathNotCached { .. })
    }

    /// The path the error is about, if any.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::NotFound { path }
            | Self::Open { path, .. }
            | Self::Read { path, .. }
            | Self::OutOfBounds { path, .. }
            | Self::NotCached { path, .. }
            | Self::PathNotCached { path }
            | Self::InvalidRange { path, .. }
            | Self::Write { path, .. } => Some(path),
            Self::BackendUnavailable { .. }
            | Self::BackendStopped { .. }
            | Self::InvalidConfig { .. } => None,
        }
    }

    pub(crate) fn open(path: &std::path::Path, err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound {
            Self::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            Self::Open {
                path: path.to_path_buf(),
                source: Arc::new(err),
            }
        }
    }

    pub(crate) fn write(path: &std::path::Path, err: io::Error) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            source: Arc::new(err),
        }
    }
}

/// A `Result` with [`IoError`].
pub type Result<T, E = IoError> = std::result::Result<T, E>;
