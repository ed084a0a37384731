//! Merging nearby ranges of one file into fewer, larger reads.

/// When to merge two reads of the same file into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceOptions {
    /// Merge two ranges when at most this many unrequested bytes lie between them.
    /// Default: 16 KiB (a few pages: cheaper to read than a second request on local disks).
    pub max_gap_bytes: u64,
    /// Never grow a merged read beyond this size (a single range larger than this is read alone).
    /// Default: 16 MiB.
    pub max_merged_bytes: u64,
}

impl Default for CoalesceOptions {
    fn default() -> Self {
        Self {
            max_gap_bytes: 16 << 10,
            max_merged_bytes: 16 << 20,
        }
    }
}

impl CoalesceOptions {
    /// Never merge.
    #[must_use]
    pub const fn disabled() -> Self {
        Self {
            max_gap_bytes: 0,
            max_merged_bytes: 0,
        }
    }
}

/// A requested span of one file: `start..end`, and the index of its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the request in the caller's batch.
    pub index: usize,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// One physical read covering one or more spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoalescedRead {
    /// First byte read.
    pub start: u64,
    /// One past the last byte read.
    pub end: u64,
    /// The spans it serves, each inside `start..end`.
    pub spans: Vec<Span>,
}

impl CoalescedRead {
    /// Bytes read.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it reads nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Round `start..end` outwards to multiples of `align` (a power of two), not past `limit` unless
/// the end itself must round up past it (reads past EOF are short, which is fine).
#[must_use]
pub fn align_outwards(start: u64, end: u64, align: u64) -> (u64, u64) {
    debug_assert!(align.is_power_of_two());
    let mask = align - 1;
    let aligned_start = start & !mask;
    let aligned_end = end.checked_add(mask).map_or(end & !mask, |e| e & !mask);
    (aligned_start, aligned_end.max(aligned_start))
}

/// Group the spans of one file into physical reads.
///
/// Spans are sorted by start; a span joins the current read when the gap to it is at most
/// `max_gap_bytes` (overlaps count as no gap) and the merged read stays within
/// `max_merged_bytes`. With `align` > 1 every read's bounds are aligned outwards first (`O_DIRECT`).
/// Every span ends up in exactly one read that contains it.
#[must_use]
pub fn coalesce(mut spans: Vec<Span>, options: CoalesceOptions, align: u64) -> Vec<CoalescedRead> {
    spans.sort_unstable_by_key(|s| (s.start, s.end));
    let bounds = |s: &Span| {
        if align > 1 {
            align_outwards(s.start, s.end, align)
        } else {
            (s.start, s.end)
        }
    };
    let mut reads: Vec<CoalescedRead> = Vec::new();
    for span in spans {
        let (start, end) = bounds(&span);
        if let Some(current) = reads.last_mut() {
            let gap_ok = start <= current.end.saturating_add(options.max_gap_bytes);
            let merged_end = current.end.max(end);
            // A span inside the current read always joins it (it costs nothing); one that grows
            // the read must keep it within the size limit.
            let size_ok =
                merged_end == current.end || merged_end - current.start <= options.max_merged_bytes;
            if gap_ok && size_ok {
                current.end = merged_end;
                current.spans.push(span);
                continue;
            }
        }
        reads.push(CoalescedRead {
            start,
            end,
            spans: vec![span],
        });
    }
    reads
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn span(index: usize, start: u64, end: u64) -> Span {
        Span { index, start, end }
    }

    #[test]
    fn merges_within_gap_and_size() {
        let opts = CoalesceOptions {
            max_gap_bytes: 10,
            max_merged_bytes: 100,
        };
        let reads = coalesce(
            vec![
                span(0, 50, 60),
                span(1, 0, 10),
                span(2, 15, 20),
                span(3, 200, 210),
            ],
            opts,
            1,
        );
        let bounds: Vec<_> = reads.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(bounds, vec![(0, 20), (50, 60), (200, 210)]);
        assert_eq!(
            reads[0].spans.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn size_limit_splits() {
        let opts = CoalesceOptions {
            max_gap_bytes: 100,
            max_merged_bytes: 25,
        };
        let reads = coalesce(
            vec![span(0, 0, 10), span(1, 10, 20), span(2, 20, 30)],
            opts,
            1,
        );
        let bounds: Vec<_> = reads.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(bounds, vec![(0, 20), (20, 30)]);
    }

    #[test]
    fn alignment_rounds_outwards() {
        assert_eq!(align_outwards(5, 4097, 4096), (0, 8192));
        assert_eq!(align_outwards(4096, 8192, 4096), (4096, 8192));
        assert_eq!(align_outwards(0, 0, 4096), (0, 0));
        let reads = coalesce(
            vec![span(0, 100, 200), span(1, 300, 400)],
            CoalesceOptions::disabled(),
            512,
        );
        // Both spans round to 0..512: as an overlap they share one read even with merging off.
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].start, reads[0].end), (0, 512));
    }

    proptest! {
        #[test]
        fn every_span_served_once_within_limits(
            raw in prop::collection::vec((0u64..10_000, 0u64..2_000), 0..60),
            max_gap in 0u64..3_000,
            max_merged in 0u64..20_000,
            align_pow in 0u32..13,
        ) {
            let align = 1u64 << align_pow;
            let spans: Vec<Span> = raw.iter().enumerate()
                .map(|(i, &(s, l))| span(i, s, s + l)).collect();
            let opts = CoalesceOptions { max_gap_bytes: max_gap, max_merged_bytes: max_merged };
            let reads = coalesce(spans.clone(), opts, align);
            let mut seen = vec![0u32; spans.len()];
            for read in &reads {
                prop_assert!(!read.spans.is_empty());
                let (first_start, first_end) = if align > 1 {
                    align_outwards(read.spans[0].start, read.spans[0].end, align)
                } else {
                    (read.spans[0].start, read.spans[0].end)
                };
                // A merged read never exceeds the limit unless it is one span on its own.
                let alone = first_end - first_start;
                prop_assert!(read.len() <= max_merged.max(alone));
                if align > 1 {
                    prop_assert_eq!(read.start % align, 0);
                    prop_assert_eq!(read.end % align, 0);
                }
                for s in &read.spans {
                    prop_assert!(read.start <= s.start && s.end <= read.end);
                    prop_assert_eq!(spans[s.index], *s);
                    seen[s.index] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }
}
