//! One physical read and how its result is split among the requests it serves.

use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::Sender;

use crate::buffer::PooledBuf;
use crate::error::IoError;
use crate::files::{FilePermit, OpenFile};

/// The most bytes Linux transfers in one `read`/`pread` (`MAX_RW_COUNT`); larger reads are split.
pub const MAX_READ_BYTES: usize = 0x7fff_f000;

/// A result for request `index` of a batch.
pub(crate) type Delivery = (usize, Result<Bytes, IoError>);

/// A request's share of a physical read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    /// Index of the request in its batch.
    pub index: usize,
    /// Absolute file offsets requested, `start..end`.
    pub start: u64,
    pub end: u64,
}

/// One physical read: `len` bytes of `file` from `offset` into `buf`, serving `parts`.
#[derive(Debug)]
pub(crate) struct Job {
    pub file: Arc<OpenFile>,
    pub offset: u64,
    pub len: usize,
    pub buf: PooledBuf,
    /// Bytes read so far; reads continue from here after a short read.
    pub filled: usize,
    pub parts: Vec<Part>,
    pub sink: Sender<Delivery>,
    /// The file's share of the reader's descriptor budget, given back with its last read.
    pub _permit: Option<Arc<FilePermit>>,
}

impl Job {
    /// Where the next read goes: file offset, and the length to ask for (capped at
    /// [`MAX_READ_BYTES`]).
    pub fn next_read(&self) -> (u64, usize) {
        let remaining = self.len - self.filled;
        let len = remaining.min(MAX_READ_BYTES);
        (self.offset + self.filled as u64, len)
    }

    /// Record `n` more bytes read. Returns whether the job is done (all bytes read, or EOF when
    /// `n == 0`).
    pub fn advance(&mut self, n: usize) -> bool {
        self.filled = (self.filled + n).min(self.len);
        n == 0 || self.filled == self.len
    }

    /// Hand every part its bytes (a zero-copy slice), or an error when the file ended early.
    pub fn finish(mut self) {
        self.buf.set_len(self.filled);
        let filled_end = self.offset + self.filled as u64;
        let file = Arc::clone(&self.file);
        let bytes = self.buf.freeze();
        for part in &self.parts {
            let result = if part.end <= filled_end {
                let lo = usize::try_from(part.start - self.offset).expect("part inside job");
                let hi = usize::try_from(part.end - self.offset).expect("part inside job");
                Ok(bytes.slice(lo..hi))
            } else {
                // The file shrank after it was opened.
                Err(IoError::OutOfBounds {
                    path: file.path.to_path_buf(),
                    range: (part.start, part.end),
                    file_size: filled_end,
                })
            };
            // A dropped receiver means the caller lost interest; nothing to do.
            let _ = self.sink.send((part.index, result));
        }
    }

    /// Fail every part with the OS error, and leak the buffer: for a ring that broke while the
    /// kernel may still hold a pointer into it.
    pub fn fail_leaking_buffer(mut self, err: std::io::Error) {
        let buf = std::mem::replace(&mut self.buf, PooledBuf::detached());
        std::mem::forget(buf);
        self.fail(err);
    }

    /// Fail every part as not in the page cache (a read that may not wait).
    pub fn not_cached(self) {
        self.fail_each(|range| IoError::NotCached {
            path: self.file.path.to_path_buf(),
            range,
        });
    }

    /// Fail every part with the OS error.
    pub fn fail(self, err: std::io::Error) {
        let source = Arc::new(err);
        self.fail_each(|range| IoError::Read {
            path: self.file.path.to_path_buf(),
            range,
            source: Arc::clone(&source),
        });
    }

    /// Fail every part with the error `error` makes of its byte range.
    fn fail_each(&self, error: impl Fn((u64, u64)) -> IoError) {
        for part in &self.parts {
            let _ = self
                .sink
                .send((part.index, Err(error((part.start, part.end)))));
        }
    }
}
