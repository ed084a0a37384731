//! `zuring._native.Reader`: batched range reads for Python, in the style of an io_uring file
//! loader: `read_ranges` for a whole batch in order, or `submit` / `try_get` / `wait_get` to
//! overlap reads with other work.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};
use zuring_io::{BackendKind, ByteRange, ReadRequest, ReadStream, ReaderOptions, Ready};

use crate::buffer::Buffer;
use crate::errors;

/// A batched range reader (io_uring, or pread where io_uring is unavailable).
#[pyclass(module = "zuring._native", frozen)]
pub struct Reader {
    inner: Arc<zuring_io::Reader>,
    batches: Mutex<Batches>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Batches {
    next_id: u64,
    streams: HashMap<u64, ReadStream<usize>>,
}

/// One `(path, offset, length)` request from Python: the path a `str`, `bytes` (as `os.fsdecode`
/// takes them) or `os.PathLike`; the offset and length non-negative integers (length None: to
/// the end of the file). A bad one raises naming its index in the batch.
type RangeArg<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>);

fn requests(ranges: &[RangeArg<'_>]) -> PyResult<Vec<ReadRequest<usize>>> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, (path, offset, length))| {
            let path = request_path(i, path)?;
            let offset = request_number(i, "offset", offset)?;
            let range = if length.is_none() {
                ByteRange::From(offset)
            } else {
                ByteRange::new(offset, request_number(i, "length", length)?)
            };
            Ok(ReadRequest::new(Arc::<Path>::from(path), range, i))
        })
        .collect()
}

fn request_path(i: usize, path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(bytes) = path.cast::<PyBytes>() {
        return Ok(PathBuf::from(OsStr::from_bytes(bytes.as_bytes())));
    }
    path.extract::<PathBuf>().map_err(|_| {
        let kind = path
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "read {i}: the path must be str, bytes or os.PathLike, not {kind}"
        ))
    })
}

fn request_number(i: usize, what: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    match value.extract::<u64>() {
        Ok(n) => Ok(n),
        Err(err) => match value.extract::<i64>() {
            Ok(n) if n < 0 => Err(PyValueError::new_err(format!(
                "read {i}: the {what} must be >= 0, got {n}"
            ))),
            _ if value.cast::<PyInt>().is_ok() => Err(PyValueError::new_err(format!(
                "read {i}: the {what} {value} is past any file (at most 2**64 - 1)"
            ))),
            _ => Err(PyTypeError::new_err(format!(
                "read {i}: the {what} must be an integer ({err})"
            ))),
        },
    }
}

type Completed = (u64, usize, Result<Buffer, zuring_io::IoError>);

/// A read's result for Python: a failed read raises its error with the read's `batch` id (None
/// from `read_ranges`) and `index` in the batch as attributes, so that a caller with many reads
/// in flight knows which one failed.
fn deliver(
    py: Python<'_>,
    batch: Option<u64>,
    index: usize,
    result: Result<Buffer, zuring_io::IoError>,
) -> PyResult<Buffer> {
    result.map_err(|e| {
        let err = errors::io(e);
        let value = err.value(py);
        // Setting an attribute on a fresh exception instance cannot fail.
        let _ = value.setattr("batch", batch);
        let _ = value.setattr("index", index);
        err
    })
}

#[pymethods]
impl Reader {
    /// `backend`: "auto", "uring" or "pread"; `direct_io`: read with O_DIRECT.
    #[new]
    #[pyo3(signature = (backend = "auto", direct_io = false, queue_depth = None))]
    fn new(backend: &str, direct_io: bool, queue_depth: Option<u32>) -> PyResult<Self> {
        let mut options = ReaderOptions::from_env().map_err(errors::io)?;
        options.backend = BackendKind::parse("backend", backend).map_err(errors::io)?;
        options.direct_io = direct_io;
        if let Some(depth) = queue_depth {
            options.queue_depth = depth;
        }
        let inner = Arc::new(zuring_io::Reader::new(options).map_err(errors::io)?);
        Ok(Self {
            inner,
            batches: Mutex::new(Batches::default()),
        })
    }

    /// The backend in use: "uring" or "pread".
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        self.inner.backend_name().map_err(errors::io)
    }

    /// Read `(path, offset, length)` ranges (length None: to the end of the file) and return
    /// their buffers in order. The first failed range raises (its `index` attribute says which).
    fn read_ranges(&self, py: Python<'_>, ranges: Vec<RangeArg<'_>>) -> PyResult<Vec<Buffer>> {
        let reqs = requests(&ranges)?;
        let inner = Arc::clone(&self.inner);
        let done = py.detach(move || inner.read_ordered(reqs));
        done.into_iter()
            .enumerate()
            .map(|(i, c)| deliver(py, None, i, c.result.map(Buffer::new)))
            .collect()
    }

    /// Start reading a batch; returns its id. Results come from `try_get` / `wait_get`.
    fn submit(&self, py: Python<'_>, ranges: Vec<RangeArg<'_>>) -> PyResult<u64> {
        let reqs = requests(&ranges)?;
        let inner = Arc::clone(&self.inner);
        let stream = py.detach(move || inner.submit(reqs));
        let mut batches = self.batches()?;
        let id = batches.next_id;
        batches.next_id += 1;
        batches.streams.insert(id, stream);
        Ok(id)
    }

    /// A completed read, if any: `(batch id, index in batch, buffer)`; None when nothing is ready.
    /// A failed read raises (naming the file and range; the exception's `batch` and `index`
    /// say which read it was).
    fn try_get(&self, py: Python<'_>) -> PyResult<Option<(u64, usize, Buffer)>> {
        self.next()?
            .map(|(id, i, r)| deliver(py, Some(id), i, r).map(|b| (id, i, b)))
            .transpose()
    }

    /// Wait for a completed read (at most `timeout` seconds); None when no batch is pending or
    /// the wait timed out. The first read to complete, of any batch, comes back at once; other
    /// threads may submit, poll and wait meanwhile; Ctrl-C (a signal's Python handler raising)
    /// ends the wait. A failed read raises as in `try_get`.
    #[pyo3(signature = (timeout = None))]
    fn wait_get(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(u64, usize, Buffer)>> {
        /// How long a wait goes without looking at Python's signal handlers.
        const SIGNALS_EVERY: Duration = Duration::from_millis(50);
        let deadline =
            timeout.map(|t| std::time::Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        loop {
            if let Some((id, i, r)) = self.next()? {
                return deliver(py, Some(id), i, r).map(|b| Some((id, i, b)));
            }
            let pending: Vec<Ready> = self
                .batches()?
                .streams
                .values()
                .map(ReadStream::ready)
                .collect();
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if pending.is_empty() || left == Some(Duration::ZERO) {
                return Ok(None);
            }
            // Without the GIL nor the batches' lock: a result ready in any batch ends the wait
            // (another thread may take it first: then wait again).
            let wait = left.map_or(SIGNALS_EVERY, |l| l.min(SIGNALS_EVERY));
            py.detach(|| Ready::wait_any(&pending, wait));
            py.check_signals()?;
        }
    }

    /// Number of reads submitted and not yet returned.
    fn pending(&self) -> PyResult<usize> {
        let batches = self.batches()?;
        Ok(batches.streams.values().map(ReadStream::remaining).sum())
    }

    /// Drop a batch's undelivered results.
    fn cancel(&self, batch: u64) -> PyResult<()> {
        let mut batches = self.batches()?;
        batches
            .streams
            .remove(&batch)
            .map(|_| ())
            .ok_or_else(|| PyKeyError::new_err(batch))
    }
}

impl Reader {
    /// The pending batches, locked.
    fn batches(&self) -> PyResult<std::sync::MutexGuard<'_, Batches>> {
        self.batches
            .lock()
            .map_err(|_| PyValueError::new_err("reader lock poisoned"))
    }

    /// A completion from any batch, the oldest batch's first, if one is ready.
    fn next(&self) -> PyResult<Option<Completed>> {
        let mut batches = self.batches()?;
        let mut ids: Vec<u64> = batches.streams.keys().copied().collect();
        ids.sort_unstable();
        let found = ids.iter().find_map(|id| {
            let (index, completion) = batches.streams.get_mut(id)?.try_next()?;
            Some((*id, index, completion.result.map(Buffer::new)))
        });
        batches.streams.retain(|_, s| s.remaining() > 0);
        Ok(found)
    }
}
