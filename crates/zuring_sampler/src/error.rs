//! The sampler's errors.

use zuring_array::ArrayError;

/// What can go wrong building or running a sampler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplerError {
    /// The arrays, crop or options do not fit together (names the array and dimension).
    #[error("{0}")]
    Config(String),
    /// Reading a batch failed (names the array; the engine's error names the file and chunk).
    #[error("array {array:?}: {source}")]
    Read {
        /// The array's name.
        array: String,
        /// The engine's error.
        source: ArrayError,
    },
    /// The prefetch thread is gone.
    #[error("the prefetch thread stopped")]
    Stopped,
    /// The prefetcher was started by another process, this one forked from it: its reader
    /// threads are that process's.
    #[error("the prefetcher was started in the process this one was forked from: start another")]
    Forked,
}

/// A `Result` with [`SamplerError`].
pub type Result<T, E = SamplerError> = std::result::Result<T, E>;

pub(crate) fn config(message: impl Into<String>) -> SamplerError {
    SamplerError::Config(message.into())
}
