//! Writing decoded chunks into the caller's output buffer from many threads at once.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::plan::{try_for_each_coord, CopyOp};
use crate::stream;

/// Outputs larger than the last-level cache are written with non-temporal (streaming) stores:
/// they cannot stay in the cache anyway, and an ordinary store first reads each line it writes
/// from memory, a third more memory traffic for a whole read (measured in `array_bench`: many
/// threads reading a large array are bound by memory bandwidth, not by decoding).
fn stream_min_bytes() -> usize {
    static MIN: OnceLock<usize> = OnceLock::new();
    *MIN.get_or_init(|| last_level_cache_bytes().unwrap_or(32 << 20))
}

/// The size of the largest cache the kernel lists for CPU 0.
fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    dir.filter_map(|entry| {
        let text = std::fs::read_to_string(entry.ok()?.path().join("size")).ok()?;
        parse_cache_size(text.trim())
    })
    .max()
}

/// A cache size as sysfs writes it: `512K`, `32M`, or bytes.
fn parse_cache_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let n: usize = digits.parse().ok()?;
    match unit {
        "" => Some(n),
        "K" => n.checked_mul(1 << 10),
        "M" => n.checked_mul(1 << 20),
        "G" => n.checked_mul(1 << 30),
        _ => None,
    }
}

/// A caller's output buffer, shared by decode tasks that each write disjoint elements.
///
/// Planning gives every output element to exactly one (chunk, op) pair, so no two tasks write the
/// same bytes (a caller's chunk requests, which planning does not make, are checked for it before
/// any is read: `plan::disjoint`); every write is bounds-checked against the buffer.
#[derive(Debug)]
pub(crate) struct OutView<'a> {
    ptr: *mut u8,
    len: usize,
    /// Whether rows are written with streaming stores (see [`stream_min_bytes`]); every task
    /// writing through the view then ends with [`OutView::fence`].
    stream: bool,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: the view only allows writes of disjoint ranges (see `write`), and the borrow of the
// underlying buffer lasts as long as the view.
unsafe impl Send for OutView<'_> {}
// SAFETY: as above: concurrent writers never touch the same bytes.
unsafe impl Sync for OutView<'_> {}

/// The plan asked for bytes outside the output (a planning bug, reported instead of writing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutOfOutput;

impl<'a> OutView<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            stream: buf.len() > stream_min_bytes(),
            _buf: PhantomData,
        }
    }

    /// `self`, written with streaming stores or not whatever its size (for tests).
    #[cfg(test)]
    pub fn streaming(self, stream: bool) -> Self {
        Self { stream, ..self }
    }

    /// Make the streaming stores of this thread's writes so far visible to other threads
    /// (nothing for a view written with ordinary stores): called after each copy operation,
    /// before whichever thread learns its chunk is done can read the output.
    pub fn fence(&self) {
        if self.stream {
            stream::fence();
        }
    }

    /// A view of the spare capacity of `vec` (its first `len` bytes, not yet initialised).
    ///
    /// # Panics
    /// When `len` exceeds the capacity.
    pub fn spare(vec: &'a mut Vec<u8>, len: usize) -> Self {
        let spare = vec.spare_capacity_mut();
        assert!(len <= spare.len(), "spare capacity too small");
        Self {
            ptr: spare.as_mut_ptr().cast::<u8>(),
            len,
            stream: len > stream_min_bytes(),
            _buf: PhantomData,
        }
    }

    /// The writable bytes at `offset..offset + len`.
    ///
    /// # Safety
    /// No other live slice from this view may overlap the range (the planner guarantees that
    /// distinct copy operations cover disjoint output elements).
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, offset: usize, len: usize) -> Result<&mut [u8], OutOfOutput> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
                Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) })
            }
            _ => Err(OutOfOutput),
        }
    }
}

/// Where a chunk's elements come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'s> {
    /// A decoded chunk, C order over the chunk shape, native endian.
    Chunk(&'s [u8]),
    /// The decoded bytes of a chunk from byte `first` on (a part read alone).
    Part {
        /// The bytes.
        bytes: &'s [u8],
        /// Where they start in the decoded chunk.
        first: usize,
    },
    /// Every element equals this one (missing chunk).
    Fill(&'s [u8]),
}

impl Source<'_> {
    /// Copy into `dst` the elements from `src_elem` on, with streaming stores when `stream`; a
    /// copy reaching outside the source is a planning error.
    fn copy(
        &self,
        dst: &mut [u8],
        src_elem: usize,
        esize: usize,
        stream: bool,
    ) -> Result<(), OutOfOutput> {
        let (bytes, start) = match *self {
            Self::Chunk(bytes) => (bytes, src_elem * esize),
            Self::Part { bytes, first } => (
                bytes,
                (src_elem * esize).checked_sub(first).ok_or(OutOfOutput)?,
            ),
            Self::Fill(element) => {
                fill(dst, element);
                return Ok(());
            }
        };
        let src = start
            .checked_add(dst.len())
            .and_then(|end| bytes.get(start..end))
            .ok_or(OutOfOutput)?;
        if stream {
            stream::copy(dst, src);
        } else {
            dst.copy_from_slice(src);
        }
        Ok(())
    }
}

/// Fill `dst` with repeats of `element`.
pub(crate) fn fill(dst: &mut [u8], element: &[u8]) {
    if element.is_empty() {
        return;
    }
    if element.iter().all(|&b| b == element[0]) {
        dst.fill(element[0]);
    } else {
        for chunk in dst.chunks_exact_mut(element.len()) {
            chunk.copy_from_slice(element);
        }
    }
}

/// Apply one planned copy (output index, operation) to its output among `outs`.
///
/// # Safety
/// As [`apply`].
pub(crate) unsafe fn apply_to(
    (target, op): &(usize, CopyOp),
    source: Source<'_>,
    chunk_strides: &[usize],
    esize: usize,
    outs: &[OutView<'_>],
) -> Result<(), OutOfOutput> {
    let out = outs.get(*target).ok_or(OutOfOutput)?;
    // SAFETY: forwarded contract.
    let applied = unsafe { apply(op, source, chunk_strides, esize, out) };
    out.fence();
    applied
}

/// `v` as an index; past the address space, a copy outside the output.
fn to_usize(v: u64) -> Result<usize, OutOfOutput> {
    usize::try_from(v).map_err(|_| OutOfOutput)
}

/// Copy the box of `extent` elements from `src_start` in the chunk to `out` from element
/// `out_offset` on, with `out_strides` (a [`CopyOp::Box`]).
///
/// # Safety
/// As [`apply`].
pub(crate) unsafe fn copy_box(
    (out_offset, out_strides): (usize, &[usize]),
    (src_start, extent): (&[u64], &[u64]),
    source: Source<'_>,
    chunk_strides: &[usize],
    esize: usize,
    out: &OutView<'_>,
) -> Result<(), OutOfOutput> {
    let ndim = extent.len();
    let row = if ndim == 0 {
        1
    } else {
        to_usize(extent[ndim - 1])?
    };
    let outer = ndim.saturating_sub(1);
    let zeros: smallvec::SmallVec<[u64; 8]> = smallvec::smallvec![0; outer];
    // Row by row: every position of the outer dimensions.
    try_for_each_coord(&zeros, &extent[..outer], |idx| {
        let mut src = 0usize;
        let mut dst = out_offset;
        for d in 0..outer {
            src += to_usize(src_start[d] + idx[d])? * chunk_strides[d];
            dst += to_usize(idx[d])? * out_strides[d];
        }
        if ndim > 0 {
            src += to_usize(src_start[ndim - 1])?;
        }
        // SAFETY: disjoint by the planner's guarantee (this function's contract).
        let dst_bytes = unsafe { out.slice(dst * esize, row * esize)? };
        source.copy(dst_bytes, src, esize, out.stream)
    })
}

/// Apply one copy operation. The chunk source must hold `chunk_elements` elements.
///
/// # Safety
/// The operation's output elements must not be written concurrently by any other operation
/// (the planner's guarantee), and `chunk_strides` must be the C strides of the chunk.
pub(crate) unsafe fn apply(
    op: &CopyOp,
    source: Source<'_>,
    chunk_strides: &[usize],
    esize: usize,
    out: &OutView<'_>,
) -> Result<(), OutOfOutput> {
    match op {
        CopyOp::Box {
            out_offset,
            out_strides,
            src_start,
            extent,
        } => {
            // SAFETY: forwarded contract.
            unsafe {
                copy_box(
                    (*out_offset, out_strides),
                    (src_start, extent),
                    source,
                    chunk_strides,
                    esize,
                    out,
                )
            }
        }
        CopyOp::Gather { out_strides, dims } => {
            let ndim = dims.len();
            if dims.iter().any(Vec::is_empty) {
                return Ok(());
            }
            if ndim == 0 {
                // SAFETY: as above.
                let dst_bytes = unsafe { out.slice(0, esize)? };
                source.copy(dst_bytes, 0, esize, false)?;
                return Ok(());
            }
            // The last dimension as runs of consecutive source and output positions, copied
            // at once (a slice with step 1 is one run per row).
            let last = ndim - 1;
            let contiguous_out = out_strides[last] == 1;
            let mut runs: Vec<(u64, u64, usize)> = Vec::new();
            for &(within, pos) in &dims[last] {
                match runs.last_mut() {
                    Some((w, p, n))
                        if contiguous_out && *w + *n as u64 == within && *p + *n as u64 == pos =>
                    {
                        *n += 1
                    }
                    _ => runs.push((within, pos, 1)),
                }
            }
            let mut idx = vec![0usize; last];
            loop {
                let mut src_base = 0usize;
                let mut dst_base = 0usize;
                for d in 0..last {
                    let (within, pos) = dims[d][idx[d]];
                    src_base += to_usize(within)? * chunk_strides[d];
                    dst_base += to_usize(pos)? * out_strides[d];
                }
                for &(within, pos, n) in &runs {
                    let src = src_base + to_usize(within)? * chunk_strides[last];
                    let dst = dst_base + to_usize(pos)? * out_strides[last];
                    // SAFETY: as above.
                    let dst_bytes = unsafe { out.slice(dst * esize, n * esize)? };
                    source.copy(dst_bytes, src, esize, out.stream)?;
                }
                let mut d = last;
                loop {
                    if d == 0 {
                        return Ok(());
                    }
                    d -= 1;
                    idx[d] += 1;
                    if idx[d] < dims[d].len() {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        CopyOp::Points(pairs) => {
            for &(within, dst) in pairs {
                // SAFETY: as above.
                let dst_bytes = unsafe { out.slice(dst * esize, esize)? };
                source.copy(dst_bytes, to_usize(within)?, esize, false)?;
            }
            Ok(())
        }
    }
}

/// Fill a new vector of `len` bytes by `write`, which must write every byte when it succeeds
/// (the planner covers every output element exactly once). The bytes are never zeroed first.
///
/// # Errors
/// Whatever `write` returns; the vector is then discarded.
pub(crate) fn fill_new<E>(
    len: usize,
    write: impl FnOnce(&OutView<'_>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    zuring_io::advise_huge_pages(out.as_mut_ptr(), len);
    {
        let view = OutView::spare(&mut out, len);
        write(&view)?;
    }
    // A successful plan execution writes every one of the `len` bytes: each output element
    // belongs to exactly one copy operation (property-tested in `plan`).
    // SAFETY: `write` succeeded, so the first `len` bytes are initialised.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// View a slice of plain numeric elements as bytes, for filling typed outputs.
pub(crate) fn as_bytes_mut<T: bytemuck_free::Plain>(data: &mut [T]) -> &mut [u8] {
    let len = std::mem::size_of_val(data);
    // SAFETY: `T: Plain` has no padding and every bit pattern is valid, so its memory may be
    // written as bytes; the length covers exactly the slice.
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), len) }
}

/// Element types whose every bit pattern is a valid value.
pub mod bytemuck_free {
    /// # Safety
    /// Implement only for types without padding whose every bit pattern is valid.
    pub unsafe trait Plain: Copy + Default + Send + Sync + 'static {}
    macro_rules! plain {
        ($($t:ty),*) => { $(
            // SAFETY: primitive numeric types, and `half`'s 16-bit floats (transparent
            // wrappers of a u16): no padding, every bit pattern valid.
            unsafe impl Plain for $t {}
        )* };
    }
    plain!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
    plain!(half::f16, half::bf16);
}

#[cfg(test)]
mod tests {
    use super::{last_level_cache_bytes, parse_cache_size};

    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("4096"), Some(4096));
        for bad in ["", "K", "12Q", "1.5M", "-1K", "99999999999999999999G"] {
            assert_eq!(parse_cache_size(bad), None, "{bad:?}");
        }
        // This machine lists its caches (Linux on x86-64 or arm64 in CI): the largest is at
        // least a level-1 cache's size.
        assert!(last_level_cache_bytes().is_some_and(|b| b >= 16 << 10));
    }
}
