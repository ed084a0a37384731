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

/// Buffers at least this large are mapped directly (lazily zeroed by the kernel, no memset) and
/// advised to use transparent huge pages: page faults on fresh buffers cost more than the copy.
const MAPPED_MIN_BYTES: usize = 64 << 10;

/// Ask for transparent huge pages on the page-aligned interior of `ptr..ptr + len` (advisory;
/// errors are ignored). Worth it for buffers of a few MiB and more.
pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) & !(PAGE - 1);
    if end > start + (2 << 20) {
        // SAFETY: madvise only changes paging advice for pages of a mapping the caller owns.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// A zero-initialised buffer aligned to [`BUFFER_ALIGN`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
    mapped: bool,
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
        if capacity >= MAPPED_MIN_BYTES {
            // SAFETY: an anonymous private mapping with no address hint; the result is checked.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    capacity,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if raw != libc::MAP_FAILED {
                if let Some(ptr) = NonNull::new(raw.cast::<u8>()) {
                    advise_huge_pages(ptr.as_ptr(), capacity);
                    return Self {
                        ptr,
                        capacity,
                        mapped: true,
                    };
                }
            }
        }
        let layout = Self::layout(capacity);
        // SAFETY: the layout has a non-zero size (at least one byte) and a power-of-two alignment.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self {
            ptr,
            capacity,
            mapped: false,
        }
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
        if self.mapped {
            // SAFETY: `ptr..ptr + capacity` is the mapping made in `zeroed`, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.capacity) };
        } else {
            // SAFETY: `ptr` was allocated by `alloc_zeroed` with exactly this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
        }
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

    /// The process-wide pool, shared by every reader (created with the first caller's bound),
    /// so that buffers outlive any one reader the way an allocator's free lists do. A forked
    /// child makes a pool of its own: its parent's may be locked forever there (held by one of
    /// the parent's threads at the fork), and would then never recycle a buffer again.
    #[must_use]
    pub fn shared(max_pooled_bytes: usize) -> Arc<Self> {
        static SHARED: crate::PerProcess<Arc<BufferPool>> = crate::PerProcess::new();
        Arc::clone(SHARED.get_or_init(|| Self::new(max_pooled_bytes)))
    }

    /// The lock, if it can be had without blocking for long: a forked child may inherit it
    /// locked by a thread that no longer exists, and must then allocate instead of hanging.
    fn try_state(&self) -> Option<std::sync::MutexGuard<'_, PoolState>> {
        for _ in 0..64 {
            if let Ok(guard) = self.state.try_lock() {
                return Some(guard);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// A buffer of at least `len` bytes, reused from the pool when one is free.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let buf = match class_of(len) {
            Some((index, size)) => {
                let reused = self.try_state().and_then(|mut state| {
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
        if size > self.max_pooled_bytes {
            return;
        }
        // Never block (or deadlock in a forked child) just to recycle a buffer.
        let mut evicted = Vec::new();
        if let Some(mut state) = self.try_state() {
            // Over the bound, idle buffers of other sizes make room, largest first: the sizes
            // in use now win over those of an earlier workload (sharded reads leave 16 MiB
            // buffers behind; a following run of 256 KiB chunks must not pay fresh mappings).
            let mut class = state.free.len();
            while state.pooled_bytes + size > self.max_pooled_bytes && class > 0 {
                class -= 1;
                if class == index {
                    continue;
                }
                while state.pooled_bytes + size > self.max_pooled_bytes {
                    let Some(old) = state.free[class].pop() else {
                        break;
                    };
                    state.pooled_bytes -= old.capacity();
                    evicted.push(old);
                }
            }
            if state.pooled_bytes + size <= self.max_pooled_bytes {
                state.pooled_bytes += size;
                state.free[index].push(buf);
            }
        }
        // Unmapped outside the lock.
        drop(evicted);
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
    /// An empty buffer owning no memory (used to move a buffer out of a job).
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
        let mut huge = pool.take(MAX_POOLED_BYTES + 1);
        assert_eq!(huge.capacity(), MAX_POOLED_BYTES + 1);
        assert_eq!(
            huge.buffer_mut().as_mut_ptr() as usize % BUFFER_ALIGN,
            0,
            "mapped buffers are page aligned"
        );
        assert!(
            huge.buffer_mut().as_slice()[MAX_POOLED_BYTES - 7..]
                .iter()
                .all(|&b| b == 0),
            "mapped buffers start zeroed"
        );
        huge.buffer_mut().as_mut_slice()[MAX_POOLED_BYTES] = 9;
        drop(huge);
        assert_eq!(pool.pooled_bytes(), 8192);
    }

    #[test]
    fn sizes_in_use_displace_idle_ones() {
        // A bound of 1 MiB: an earlier workload's 512 KiB buffers fill it; a later workload's
        // 64 KiB buffers then replace them instead of being unmapped on every return.
        let pool = BufferPool::new(1 << 20);
        let big: Vec<PooledBuf> = (0..2).map(|_| pool.take(512 << 10)).collect();
        drop(big);
        assert_eq!(pool.pooled_bytes(), 1 << 20);
        let small: Vec<PooledBuf> = (0..4).map(|_| pool.take(64 << 10)).collect();
        drop(small);
        // One 512 KiB buffer made room for the four 64 KiB ones.
        assert_eq!(pool.pooled_bytes(), (512 << 10) + 4 * (64 << 10));
        let again = pool.take(64 << 10);
        assert_eq!(pool.pooled_bytes(), (512 << 10) + 3 * (64 << 10), "reused");
        drop(again);
        // A buffer larger than the whole bound is never kept.
        let pool = BufferPool::new(64 << 10);
        drop(pool.take(128 << 10));
        assert_eq!(pool.pooled_bytes(), 0);
    }

    /// A child forked while a thread of its parent holds the shared pool's lock (an instant of
    /// any read) recycles buffers in a pool of its own; before, the parent's pool stayed locked
    /// in the child, which then mapped a fresh buffer for every read (and `pooled_bytes`
    /// waited forever).
    #[test]
    fn a_child_forked_while_the_shared_pool_is_locked_recycles() {
        let pool = BufferPool::shared(1 << 20);
        drop(pool.take(4096));
        let exited = crate::testing::fork_while_held(
            move |held| {
                let _locked = pool.state.lock();
                held();
            },
            || {
                let pool = BufferPool::shared(1 << 20);
                drop(pool.take(70_000));
                let kept = pool.pooled_bytes();
                let again = pool.take(70_000);
                kept == 128 << 10 && pool.pooled_bytes() == 0 && again.capacity() == kept
            },
            std::time::Duration::from_secs(10),
        );
        assert_eq!(exited, Some(0), "the child hung (None) or did not recycle");
    }
}
