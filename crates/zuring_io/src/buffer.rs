//! Aligned, pooled buffers.
//!
//! Reads land in [`AlignedBuf`]s (aligned for `O_DIRECT`), which come from a [`BufferPool`] of
//! power-of-two size classes and go back to it when the last [`Bytes`] view of them is dropped.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// The alignment of every buffer: enough for `O_DIRECT` on every Linux block device in use.
pub const BUFFER_ALIGN: usize = 4096;

/// The smallest size class.
const MIN_CLASS_BYTES: usize = 4096;
/// Buffers above this size are never pooled.
const MAX_POOLED_BYTES: usize = 64 << 20;

/// A zero-initialised heap buffer aligned to [`BUFFER_ALIGN`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: `AlignedBuf` owns its allocation exclusively, like `Box<[u8]>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only give out `&[u8]`, like `Box<[u8]>`.
unsafe impl Sync for AlignedBuf {}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl AlignedBuf {
    /// A zeroed buffer of `capacity` bytes (at least one byte is allocated).
    ///
    /// # Panics
    /// When `capacity` rounded up to the alignment overflows `isize` (the allocator refuses it).
    #[must_use]
    pub fn zeroed(capacity: usize) -> Self {
        let layout = Self::layout(capacity);
        // SAFETY: the layout has a non-zero size (at least one byte) and a power-of-two alignment.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, capacity }
    }

    fn layout(capacity: usize) -> Layout {
        Layout::from_size_align(capacity.max(1), BUFFER_ALIGN).expect("buffer size overflows isize")
    }

    /// The buffer's size in bytes.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The whole buffer.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `capacity` initialised (zeroed at allocation) bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.capacity) }
    }

    /// The whole buffer, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }

    /// A raw pointer to the buffer, for handing to the kernel.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated by `alloc_zeroed` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

/// Size classes and the free buffers in each.
#[derive(Debug)]
struct PoolState {
    free: Vec<Vec<AlignedBuf>>,
    pooled_bytes: usize,
}

/// A pool of aligned buffers in power-of-two size classes, bounded in total bytes.
#[derive(Debug)]
pub struct BufferPool {
    state: Mutex<PoolState>,
    max_pooled_bytes: usize,
}

fn class_of(len: usize) -> Option<(usize, usize)> {
    if len > MAX_POOLED_BYTES {
        return None;
    }
    let size = len.max(MIN_CLASS_BYTES).next_power_of_two();
    let index = (size.trailing_zeros() - MIN_CLASS_BYTES.trailing_zeros()) as usize;
    Some((index, size))
}

impl BufferPool {
    /// A pool that keeps at most `max_pooled_bytes` of idle buffers.
    #[must_use]
    pub fn new(max_pooled_bytes: usize) -> Arc<Self> {
        let classes = class_of(MAX_POOLED_BYTES).map_or(1, |(i, _)| i + 1);
        Arc::new(Self {
            state: Mutex::new(PoolState {
                free: (0..classes).map(|_| Vec::new()).collect(),
                pooled_bytes: 0,
            }),
            max_pooled_bytes,
        })
    }

    /// A buffer of at least `len` bytes, reused from the pool when one is free.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let buf = match class_of(len) {
            Some((index, size)) => {
                let reused = self.state.lock().ok().and_then(|mut state| {
                    let buf = state.free[index].pop()?;
                    state.pooled_bytes -= buf.capacity();
                    Some(buf)
                });
                reused.unwrap_or_else(|| AlignedBuf::zeroed(size))
            }
            None => AlignedBuf::zeroed(len),
        };
        PooledBuf {
            buf: Some(buf),
            len: 0,
            pool: Arc::clone(self),
        }
    }

    /// Idle bytes held by the pool.
    #[must_use]
    pub fn pooled_bytes(&self) -> usize {
        self.state.lock().map_or(0, |s| s.pooled_bytes)
    }

    fn give_back(&self, buf: AlignedBuf) {
        let Some((index, size)) = class_of(buf.capacity()) else {
            return;
        };
        if size != buf.capacity() {
            return;
        }
        // `try_lock`: never block (or deadlock in a forked child) just to recycle a buffer.
        if let Ok(mut state) = self.state.try_lock() {
            if state.pooled_bytes + size <= self.max_pooled_bytes {
                state.pooled_bytes += size;
                state.free[index].push(buf);
            }
        }
    }
}

/// A buffer on loan from a [`BufferPool`]; `len` bytes of it hold data.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl PooledBuf {
    /// A placeholder owning no memory (used to move a buffer out of a job).
    pub(crate) fn detached() -> Self {
        Self {
            buf: None,
            len: 0,
            pool: BufferPool::new(0),
        }
    }

    /// The whole underlying buffer.
    pub fn buffer_mut(&mut self) -> &mut AlignedBuf {
        self.buf.as_mut().expect("buffer present until drop")
    }

    /// The buffer's capacity.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().map_or(0, AlignedBuf::capacity)
    }

    /// Mark the first `len` bytes as filled.
    ///
    /// # Panics
    /// When `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "length past capacity");
        self.len = len;
    }

    /// The filled bytes.
    #[must_use]
    pub fn filled(&self) -> &[u8] {
        &self
            .buf
            .as_ref()
            .expect("buffer present until drop")
            .as_slice()[..self.len]
    }

    /// Freeze into a [`Bytes`] that returns the buffer to its pool when the last view is dropped.
    #[must_use]
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.filled()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_recycled() {
        let pool = BufferPool::new(1 << 20);
        let mut b = pool.take(5000);
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.buffer_mut().as_mut_ptr() as usize % BUFFER_ALIGN, 0);
        b.buffer_mut().as_mut_slice()[..3].copy_from_slice(b"abc");
        b.set_len(3);
        let bytes = b.freeze();
        let view = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.pooled_bytes(), 0, "a live view keeps the buffer");
        assert_eq!(&view[..], b"bc");
        drop(view);
        assert_eq!(pool.pooled_bytes(), 8192);
        let again = pool.take(6000);
        assert_eq!(again.capacity(), 8192);
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn pool_is_bounded() {
        let pool = BufferPool::new(8192);
        let a = pool.take(8192);
        let b = pool.take(8192);
        drop(a);
        drop(b);
        assert_eq!(pool.pooled_bytes(), 8192);
        let huge = pool.take(MAX_POOLED_BYTES + 1);
        assert_eq!(huge.capacity(), MAX_POOLED_BYTES + 1);
        drop(huge);
        assert_eq!(pool.pooled_bytes(), 8192);
    }
}
