//! `zuring._native.Buffer`: bytes owned by zuring, exposed through the buffer protocol without a
//! copy: read-only bytes from the range reader, or a writable batch buffer of the sampler. The
//! memory returns to its pool when the buffer is released (explicitly, or when the last Python
//! reference and export go away).
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::Mutex;

use bytes::Bytes;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// Where the memory lives.
enum Storage {
    /// Read-only bytes (a view of a pooled read buffer).
    Bytes(Bytes),
    /// A writable vector, handed to `recycle` when released.
    Vec(Vec<u8>),
}

impl Storage {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            Self::Vec(v) => v,
        }
    }
}

type Recycle = Box<dyn FnOnce(Vec<u8>) + Send>;

struct State {
    bytes: Option<Storage>,
    exports: usize,
    recycle: Option<Recycle>,
}

impl State {
    fn release(&mut self) {
        if let Some(Storage::Vec(v)) = self.bytes.take() {
            if let Some(recycle) = self.recycle.take() {
                recycle(v);
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.release();
    }
}

/// A read-only view of bytes read by zuring (supports `memoryview`, `numpy.frombuffer`, ...).
#[pyclass(module = "zuring._native")]
pub struct Buffer {
    state: Mutex<State>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.__len__())
            .finish()
    }
}

impl Buffer {
    pub fn new(bytes: Bytes) -> Self {
        Self {
            state: Mutex::new(State {
                bytes: Some(Storage::Bytes(bytes)),
                exports: 0,
                recycle: None,
            }),
        }
    }

    /// A writable buffer over `vec`, given to `recycle` when released.
    pub fn from_vec(vec: Vec<u8>, recycle: impl FnOnce(Vec<u8>) + Send + 'static) -> Self {
        Self {
            state: Mutex::new(State {
                bytes: Some(Storage::Vec(vec)),
                exports: 0,
                recycle: Some(Box::new(recycle)),
            }),
        }
    }
}

#[pymethods]
impl Buffer {
    fn __len__(&self) -> usize {
        self.state
            .lock()
            .map_or(0, |s| s.bytes.as_ref().map_or(0, |b| b.as_slice().len()))
    }

    /// Return the memory to zuring's pool now. Fails while a memoryview or array still uses it.
    fn release(&self) -> PyResult<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| PyBufferError::new_err("buffer lock poisoned"))?;
        if state.exports > 0 {
            return Err(PyBufferError::new_err(format!(
                "cannot release: {} view(s) of this buffer are still alive",
                state.exports
            )));
        }
        state.release();
        Ok(())
    }

    /// Whether the memory was released.
    #[getter]
    fn released(&self) -> bool {
        self.state.lock().map_or(true, |s| s.bytes.is_none())
    }

    fn __bytes__(&self) -> PyResult<Vec<u8>> {
        let state = self
            .state
            .lock()
            .map_err(|_| PyBufferError::new_err("buffer lock poisoned"))?;
        state
            .bytes
            .as_ref()
            .map(|b| b.as_slice().to_vec())
            .ok_or_else(|| PyBufferError::new_err("buffer was released"))
    }

    /// # Safety
    /// Called by CPython with a valid `view` to fill; see the buffer protocol.
    unsafe fn __getbuffer__(
        slf: PyRefMut<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null view"));
        }
        let (ptr, len, writable) = {
            let mut state = slf
                .state
                .lock()
                .map_err(|_| PyBufferError::new_err("buffer lock poisoned"))?;
            let Some(storage) = state.bytes.as_ref() else {
                return Err(PyBufferError::new_err("buffer was released"));
            };
            let writable = matches!(storage, Storage::Vec(_));
            if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE && !writable {
                return Err(PyBufferError::new_err("this zuring buffer is read-only"));
            }
            let bytes = storage.as_slice();
            let out = (bytes.as_ptr(), bytes.len(), writable);
            state.exports += 1;
            out
        };
        let py = slf.py();
        let owner: Py<PyAny> = slf.into_pyobject(py)?.into_any().unbind();
        // The memory stays alive and unmoved while exported: `release` refuses while
        // `exports > 0`, the vector is never resized, and `obj` keeps this object alive until
        // `__releasebuffer__`. Writable exports are only of vectors this buffer owns alone.
        // SAFETY: `view` is non-null and CPython hands us a struct to fill (see above).
        unsafe {
            (*view).obj = owner.into_ptr();
            (*view).buf = ptr.cast_mut().cast();
            (*view).len = isize::try_from(len).unwrap_or(isize::MAX);
            (*view).readonly = c_int::from(!writable);
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                &raw mut (*view).len
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &raw mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    /// # Safety
    /// Called by CPython once per successful `__getbuffer__`.
    unsafe fn __releasebuffer__(slf: PyRefMut<'_, Self>, _view: *mut ffi::Py_buffer) {
        if let Ok(mut state) = slf.state.lock() {
            state.exports = state.exports.saturating_sub(1);
        }
    }
}
