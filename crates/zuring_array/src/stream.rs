//! Copies with non-temporal (streaming) stores, for outputs too large to stay in the cache
//! (see `assemble::OutView`): the written lines go to memory without being read first. Stores of
//! this kind are weakly ordered: a thread that wrote with [`copy`] calls [`fence`] before another
//! thread may read what it wrote.
#![allow(unsafe_code)]

/// Runs shorter than this are copied with ordinary stores (the aligned body would be short).
const MIN_RUN_BYTES: usize = 256;

/// Copy `src` into `dst` (of equal lengths), with streaming stores where the run is long enough
/// and the target has them (x86-64); ordinary stores elsewhere.
///
/// # Panics
/// When the lengths differ.
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy between slices of other lengths");
    #[cfg(target_arch = "x86_64")]
    if dst.len() >= MIN_RUN_BYTES {
        x86::copy(dst, src);
        return;
    }
    dst.copy_from_slice(src);
}

/// Order this thread's streaming stores before its later stores (and so before whatever tells
/// another thread the copy is done).
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` only orders stores; SSE2 (and so SSE) is part of every x86-64 target.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};

    /// Whole cache lines: streaming stores that fill a line leave it in one write.
    const LINE: usize = 64;

    /// `dst.len() == src.len()`: the caller's check.
    pub(super) fn copy(dst: &mut [u8], src: &[u8]) {
        let head = dst.as_ptr().align_offset(LINE).min(dst.len());
        let body = (dst.len() - head) / LINE * LINE;
        let (dst_head, rest) = dst.split_at_mut(head);
        let (dst_body, dst_tail) = rest.split_at_mut(body);
        let (src_head, rest) = src.split_at(head);
        let (src_body, src_tail) = rest.split_at(body);
        dst_head.copy_from_slice(src_head);
        for (d, s) in dst_body
            .chunks_exact_mut(LINE)
            .zip(src_body.chunks_exact(LINE))
        {
            let d = d.as_mut_ptr().cast::<__m128i>();
            let s = s.as_ptr().cast::<__m128i>();
            for i in 0..LINE / 16 {
                // SAFETY: `s` and `d` point to 64 bytes of their slices (whole chunks), so each
                // 16-byte load and store at `i < 4` is in bounds; the load is unaligned, the
                // store aligned to 16 (`d` starts a 64-byte line); SSE2 is part of x86-64.
                unsafe { _mm_stream_si128(d.add(i), _mm_loadu_si128(s.add(i))) };
            }
        }
        dst_tail.copy_from_slice(src_tail);
    }
}

#[cfg(test)]
mod tests {
    use super::{copy, fence};

    #[test]
    fn streamed_copies_equal_ordinary_ones_at_every_alignment_and_length() {
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
        for dst_at in 0..70 {
            for src_at in [0, 1, 5, 16, 63] {
                for len in [0, 1, 63, 255, 256, 257, 300, 1024, 1031, 2048 + 17] {
                    let mut streamed = vec![0xAAu8; dst_at + len + 70];
                    let mut plain = streamed.clone();
                    let from = &src[src_at..src_at + len];
                    copy(&mut streamed[dst_at..dst_at + len], from);
                    fence();
                    plain[dst_at..dst_at + len].copy_from_slice(from);
                    assert_eq!(
                        streamed, plain,
                        "dst at {dst_at}, src at {src_at}, {len} bytes"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "other lengths")]
    fn slices_of_other_lengths_are_refused() {
        copy(&mut [0u8; 300], &[0u8; 299]);
    }
}
