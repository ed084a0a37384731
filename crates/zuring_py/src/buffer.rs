//! `zuring._native.Buffer`: bytes read by zuring, exposed through the buffer protocol without a
//! copy. The memory returns to zuring's pool when the buffer is released (explicitly, or when
//! the last Python reference and export go away).
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::Mutex;

use bytes::Bytes;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

struct State {
    bytes: Option<Bytes>,
    exports: usize,
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
                bytes: Some(bytes),
                exports: 0,
            }),
        }
    }
}

#[pymethods]
impl Buffer {
    fn __len__(&self) -> usize {
        self.state
            .lock()
            .map_or(0, |s| s.bytes.as_ref().map_or(0, Bytes::len))
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
        state.bytes = None;
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
            .map(|b| b.to_vec())
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
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("zuring buffers are read-only"));
        }
        let (ptr, len) = {
            let mut state = slf
                .state
                .lock()
                .map_err(|_| PyBufferError::new_err("buffer lock poisoned"))?;
            let Some(bytes) = state.bytes.as_ref() else {
                return Err(PyBufferError::new_err("buffer was released"));
            };
            let out = (bytes.as_ptr(), bytes.len());
            state.exports += 1;
            out
        };
        let py = slf.py();
        let owner: Py<PyAny> = slf.into_pyobject(py)?.into_any().unbind();
        // SAFETY: `view` is non-null and CPython hands us a struct to fill. The memory stays
        // alive while exported: `release` refuses while `exports > 0`, and `obj` keeps this
        // object (and its bytes) alive until `__releasebuffer__`.
        unsafe {
            (*view).obj = owner.into_ptr();
            (*view).buf = ptr.cast_mut().cast();
            (*view).len = isize::try_from(len).unwrap_or(isize::MAX);
            (*view).readonly = 1;
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
