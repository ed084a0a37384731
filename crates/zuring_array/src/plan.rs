//! Read planning: which chunks a selection touches and where each chunk's elements go.
//! Pure functions over shapes; no IO.

use std::collections::BTreeMap;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::error::{ArrayError, Result};
use crate::grid::Grid;

mod disjoint;
mod requests;

pub(crate) use requests::plan_chunk_requests;
pub use requests::{ChunkRequest, Indices};

/// One dimension of a basic selection: `start..stop` by `step` (`step >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimSlice {
    /// First index.
    pub start: u64,
    /// One past the last index (clamped to the dimension by the caller).
    pub stop: u64,
    /// Stride, at least 1.
    pub step: u64,
}

impl DimSlice {
    /// `start..stop` with step 1.
    #[must_use]
    pub const fn range(start: u64, stop: u64) -> Self {
        Self {
            start,
            stop,
            step: 1,
        }
    }

    /// Number of indices selected.
    #[must_use]
    pub fn len(&self) -> u64 {
        if self.stop <= self.start || self.step == 0 {
            0
        } else {
            (self.stop - self.start).div_ceil(self.step)
        }
    }

    /// Whether nothing is selected.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What part of an array to read; the output is C-contiguous in the selection's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Basic indexing: one slice per dimension. Output shape: each slice's length.
    Region(Vec<DimSlice>),
    /// Orthogonal indexing (numpy `oindex`): a list of indices per dimension, in any order,
    /// repeats allowed. Output shape: each list's length.
    Orthogonal(Vec<Vec<u64>>),
    /// Point indexing (numpy `vindex`): `points[i]` is the coordinate of output element `i`.
    Points(Vec<Vec<u64>>),
}

impl Selection {
    /// The region `ranges` (one per dimension, step 1).
    #[must_use]
    pub fn from_ranges(ranges: &[std::ops::Range<u64>]) -> Self {
        Self::Region(
            ranges
                .iter()
                .map(|r| DimSlice::range(r.start, r.end))
                .collect(),
        )
    }

    /// The whole of an array of `shape`.
    #[must_use]
    pub fn all(shape: &[u64]) -> Self {
        Self::Region(shape.iter().map(|&d| DimSlice::range(0, d)).collect())
    }

    /// The shape of the output.
    #[must_use]
    pub fn output_shape(&self) -> Vec<u64> {
        match self {
            Self::Region(s) => s.iter().map(DimSlice::len).collect(),
            Self::Orthogonal(lists) => lists.iter().map(|l| l.len() as u64).collect(),
            Self::Points(points) => vec![points.len() as u64],
        }
    }

    /// Check the selection against an array of `shape`, before any IO.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] naming the dimension and index out of bounds, or a wrong
    /// number of dimensions.
    pub fn validate(&self, shape: &[u64]) -> Result<()> {
        let ndim_err = |n: usize| {
            ArrayError::selection(format!(
                "selection has {n} dimensions, the array has {}",
                shape.len()
            ))
        };
        let oob = |dim: usize, index: u64| {
            ArrayError::selection(format!(
                "index {index} is out of bounds for dimension {dim} of size {}",
                shape[dim]
            ))
        };
        match self {
            Self::Region(slices) => {
                if slices.len() != shape.len() {
                    return Err(ndim_err(slices.len()));
                }
                for (dim, s) in slices.iter().enumerate() {
                    if s.step == 0 {
                        return Err(ArrayError::selection(format!("step 0 in dimension {dim}")));
                    }
                    if !s.is_empty() && (s.start >= shape[dim] || s.stop > shape[dim]) {
                        return Err(oob(dim, s.stop.max(s.start + 1) - 1));
                    }
                }
            }
            Self::Orthogonal(lists) => {
                if lists.len() != shape.len() {
                    return Err(ndim_err(lists.len()));
                }
                for (dim, list) in lists.iter().enumerate() {
                    if let Some(&bad) = list.iter().find(|&&i| i >= shape[dim]) {
                        return Err(oob(dim, bad));
                    }
                }
            }
            Self::Points(points) => {
                for p in points {
                    if p.len() != shape.len() {
                        return Err(ndim_err(p.len()));
                    }
                    for (dim, &i) in p.iter().enumerate() {
                        if i >= shape[dim] {
                            return Err(oob(dim, i));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// How a decoded chunk's elements go into the output (indices in elements, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOp {
    /// A box: `extent` elements per dimension from `src_start` in the chunk, to the output
    /// starting at `out_offset` with `out_strides`.
    Box {
        /// Output element index of the box's first element.
        out_offset: usize,
        /// Output strides, in elements.
        out_strides: Arc<[usize]>,
        /// First element within the chunk.
        src_start: Vec<u64>,
        /// Box extent.
        extent: Vec<u64>,
    },
    /// An orthogonal gather: per dimension, (index within chunk, output index along that
    /// dimension) pairs; the output element is `sum(out_index[d] * out_strides[d])`.
    Gather {
        /// Output strides, in elements.
        out_strides: Arc<[usize]>,
        /// Per dimension, the pairs.
        dims: Vec<Vec<(u64, u64)>>,
    },
    /// Scattered points: (element index within the chunk, output element index).
    Points(Vec<(u64, usize)>),
}

/// The elements that `ops` read from a chunk of C strides `strides` (in elements), as the run
/// `first..end` that holds them all, its first and last elements read; None when they read
/// none (or the run does not fit in `usize`).
pub(crate) fn element_span(ops: &[(usize, CopyOp)], strides: &[usize]) -> Option<(usize, usize)> {
    // The element at per-dimension positions `at`.
    let index = |at: &mut dyn Iterator<Item = u64>| -> Option<usize> {
        at.zip(strides).try_fold(0usize, |acc, (i, &stride)| {
            acc.checked_add(usize::try_from(i).ok()?.checked_mul(stride)?)
        })
    };
    let mut span: Option<(usize, usize)> = None;
    for (_, op) in ops {
        let (first, last) = match op {
            CopyOp::Box {
                src_start, extent, ..
            } => {
                if extent.contains(&0) {
                    continue;
                }
                let first = index(&mut src_start.iter().copied())?;
                let last = index(&mut src_start.iter().zip(extent).map(|(s, e)| s + e - 1))?;
                (first, last)
            }
            CopyOp::Gather { dims, .. } => {
                if dims.iter().any(Vec::is_empty) {
                    continue;
                }
                let ends = |pick: fn(u64, u64) -> u64| {
                    dims.iter().map(move |d| {
                        d.iter()
                            .map(|&(within, _)| within)
                            .reduce(pick)
                            .unwrap_or(0)
                    })
                };
                (index(&mut ends(u64::min))?, index(&mut ends(u64::max))?)
            }
            CopyOp::Points(pairs) => {
                let (Some(first), Some(last)) = (
                    pairs.iter().map(|&(within, _)| within).min(),
                    pairs.iter().map(|&(within, _)| within).max(),
                ) else {
                    continue;
                };
                (usize::try_from(first).ok()?, usize::try_from(last).ok()?)
            }
        };
        let end = last.checked_add(1)?;
        span = Some(span.map_or((first, end), |(a, b)| (a.min(first), b.max(end))));
    }
    span
}

/// The chunks a read touches (coordinates in the read-granularity chunk grid, C order) and
/// the copies each one serves, each with the index of the output it writes to (0 unless a
/// batch of requests fills several outputs).
pub type ChunkPlan = BTreeMap<Vec<u64>, Vec<(usize, CopyOp)>>;

/// C-order strides (in elements) of `shape`.
///
/// # Errors
/// [`ArrayError::TooLarge`] when the product overflows `usize`.
pub fn c_strides(shape: &[u64]) -> Result<Vec<usize>> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc: usize = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = acc;
        acc = usize::try_from(shape[d])
            .ok()
            .and_then(|n| acc.checked_mul(n))
            .ok_or(ArrayError::TooLarge {
                what: "selection",
                elements: u64::MAX,
                element_size: 1,
            })?;
    }
    Ok(strides)
}

/// Number of elements of `shape`, checked.
///
/// # Errors
/// [`ArrayError::TooLarge`] on overflow.
pub fn num_elements(shape: &[u64]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| acc.checked_mul(d))
            .ok_or(ArrayError::TooLarge {
                what: "selection",
                elements: u64::MAX,
                element_size: 1,
            })
    })
}

/// Visit every coordinate of the box `lo..hi` (C order).
pub(crate) fn for_each_coord(lo: &[u64], hi: &[u64], mut f: impl FnMut(&[u64])) {
    let visited: std::result::Result<(), std::convert::Infallible> =
        try_for_each_coord(lo, hi, |c| {
            f(c);
            Ok(())
        });
    let Ok(()) = visited;
}

/// Visit every coordinate of the box `lo..hi` (C order), stopping at the first error. An empty
/// box visits nothing; a 0-dimensional one visits `[]` once.
pub(crate) fn try_for_each_coord<E>(
    lo: &[u64],
    hi: &[u64],
    mut f: impl FnMut(&[u64]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    if lo.iter().zip(hi).any(|(l, h)| l >= h) {
        return Ok(());
    }
    let mut c: Coords = SmallVec::from_slice(lo);
    loop {
        f(&c)?;
        let mut d = c.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            c[d] += 1;
            if c[d] < hi[d] {
                break;
            }
            c[d] = lo[d];
        }
    }
}

/// Plan a box read: the region `start..start+shape` into the output at `out_offset` (elements)
/// with `out_strides`; adds to `plan`.
pub fn plan_box(
    plan: &mut ChunkPlan,
    grid: &Grid,
    start: &[u64],
    shape: &[u64],
    out_offset: usize,
    out_strides: &Arc<[usize]>,
) {
    plan_box_to(plan, 0, grid, start, shape, out_offset, out_strides);
}

/// [`plan_box`] into output `target` of a multi-output plan.
pub fn plan_box_to(
    plan: &mut ChunkPlan,
    target: usize,
    grid: &Grid,
    start: &[u64],
    shape: &[u64],
    out_offset: usize,
    out_strides: &Arc<[usize]>,
) {
    if let Some(read) = BoxRead::new(grid, start, shape, out_offset, out_strides) {
        read.to(target).plan_into(plan, grid);
    }
}

/// A box read into an output, planned by its bounds alone: the chunks it touches and each
/// one's copy are worked out when they are needed, not stored (a whole read of a shard of a
/// million small chunks would otherwise hold a million of each).
#[derive(Debug, Clone)]
pub(crate) struct BoxRead {
    /// The output it fills (of a multi-output read).
    pub target: usize,
    /// The box's first element.
    start: Vec<u64>,
    /// Its extent (no dimension empty).
    shape: Vec<u64>,
    /// Output element index of its first element.
    out_offset: usize,
    /// Output strides, in elements.
    out_strides: Arc<[usize]>,
    /// The chunks it touches: `first..last` in the grid (C order).
    pub first: Vec<u64>,
    /// See `first`.
    pub last: Vec<u64>,
}

impl BoxRead {
    /// The box `start..start+shape` of `grid`'s array into output 0 from `out_offset` with
    /// `out_strides`; None when it is empty.
    pub(crate) fn new(
        grid: &Grid,
        start: &[u64],
        shape: &[u64],
        out_offset: usize,
        out_strides: &Arc<[usize]>,
    ) -> Option<Self> {
        if shape.contains(&0) {
            return None;
        }
        let dims = grid.dims();
        let first = start
            .iter()
            .zip(dims)
            .map(|(&s, g)| g.locate(s).0)
            .collect();
        let last = start
            .iter()
            .zip(shape)
            .zip(dims)
            .map(|((s, n), g)| g.locate(s + n - 1).0 + 1)
            .collect();
        Some(Self {
            target: 0,
            start: start.to_vec(),
            shape: shape.to_vec(),
            out_offset,
            out_strides: Arc::clone(out_strides),
            first,
            last,
        })
    }

    /// The elements of chunk `k` of dimension `d` the box reads: `lo..hi` within the chunk, and
    /// how far `lo` lies from the box's start.
    fn dim_part(&self, grid: &Grid, d: usize, k: u64) -> (u64, u64, u64) {
        let g = &grid.dims()[d];
        let c0 = g.start(k);
        let lo = self.start[d].max(c0);
        let hi = (self.start[d] + self.shape[d]).min(c0 + g.size(k));
        (lo - c0, hi - c0, lo - self.start[d])
    }

    /// The copy that chunk `chunk` (one of `first..last`) serves.
    pub(crate) fn op(&self, grid: &Grid, chunk: &[u64]) -> CopyOp {
        let copy = self.copy_of(grid, chunk);
        CopyOp::Box {
            out_offset: copy.out_offset,
            out_strides: Arc::clone(&self.out_strides),
            src_start: copy.src_start.to_vec(),
            extent: copy.extent.to_vec(),
        }
    }

    /// The copy that chunk `chunk` serves, held on the stack (see [`BoxRead::op`]).
    pub(crate) fn copy_of(&self, grid: &Grid, chunk: &[u64]) -> BoxCopy {
        let mut copy = BoxCopy {
            out_offset: self.out_offset,
            src_start: SmallVec::with_capacity(chunk.len()),
            extent: SmallVec::with_capacity(chunk.len()),
        };
        for (d, &k) in chunk.iter().enumerate() {
            let (lo, hi, from_start) = self.dim_part(grid, d, k);
            copy.src_start.push(lo);
            copy.extent.push(hi - lo);
            copy.out_offset += usize::try_from(from_start).unwrap_or(0) * self.out_strides[d];
        }
        copy
    }

    /// The output's strides, in elements.
    pub(crate) fn out_strides(&self) -> &[usize] {
        &self.out_strides
    }

    /// The same box into output `target`.
    #[must_use]
    pub(crate) fn to(self, target: usize) -> Self {
        Self { target, ..self }
    }

    /// Add its chunks and copies to `plan`.
    pub(crate) fn plan_into(&self, plan: &mut ChunkPlan, grid: &Grid) {
        for_each_coord(&self.first, &self.last, |chunk| {
            push_one(plan, chunk.to_vec(), (self.target, self.op(grid, chunk)));
        });
    }

    /// Chunk `at` (in C order) of `first..last`, as coordinates in the grid.
    pub(crate) fn coords_at(&self, mut at: usize) -> Coords {
        let mut coords: Coords = smallvec::smallvec![0; self.first.len()];
        for d in (0..self.first.len()).rev() {
            let n = usize::try_from(self.last[d] - self.first[d]).unwrap_or(usize::MAX);
            coords[d] = self.first[d] + (at % n) as u64;
            at /= n;
        }
        coords
    }

    /// The place (C order) of chunk `chunk` (one of `first..last`) among the box's chunks: the
    /// inverse of [`BoxRead::coords_at`].
    pub(crate) fn index_of(&self, chunk: &[u64]) -> usize {
        let at = chunk
            .iter()
            .zip(self.first.iter().zip(&self.last))
            .fold(0u64, |at, (c, (f, l))| at * (l - f) + (c - f));
        usize::try_from(at).unwrap_or(usize::MAX)
    }

    /// [`element_span`] of the copy chunk `chunk` serves, without making it.
    pub(crate) fn span(
        &self,
        grid: &Grid,
        chunk: &[u64],
        strides: &[usize],
    ) -> Option<(usize, usize)> {
        // As `element_span` of the copy, from each dimension's part alone: this runs for every
        // chunk of a read of uncompressed chunks, on the thread that lists them.
        let (mut first, mut last) = (0usize, 0usize);
        for (d, (&k, &stride)) in chunk.iter().zip(strides).enumerate() {
            let (lo, hi, _) = self.dim_part(grid, d, k);
            first = first.checked_add(usize::try_from(lo).ok()?.checked_mul(stride)?)?;
            last = last.checked_add(usize::try_from(hi - 1).ok()?.checked_mul(stride)?)?;
        }
        Some((first, last.checked_add(1)?))
    }
}

/// Per-dimension values of a chunk held on the stack (arrays of up to 8 dimensions).
pub(crate) type Coords = SmallVec<[u64; 8]>;

/// The copy a chunk of a [`BoxRead`] serves: a [`CopyOp::Box`] with the read's output strides.
#[derive(Debug)]
pub(crate) struct BoxCopy {
    /// Output element index of the box's first element.
    pub out_offset: usize,
    /// First element within the chunk.
    pub src_start: Coords,
    /// Box extent.
    pub extent: Coords,
}

/// A read's plan: its chunks and their copies listed, or a box read planned by its bounds.
pub(crate) enum ReadPlan {
    /// Every chunk with its copies.
    Listed(ChunkPlan),
    /// Box reads whose chunks are pairwise distinct (each chunk serves one copy).
    Boxes(Vec<BoxRead>),
}

impl From<ChunkPlan> for ReadPlan {
    fn from(plan: ChunkPlan) -> Self {
        Self::Listed(plan)
    }
}

impl ReadPlan {
    /// The plan with every chunk listed.
    pub(crate) fn into_listed(self, grid: &Grid) -> ChunkPlan {
        match self {
            Self::Listed(plan) => plan,
            Self::Boxes(reads) => {
                let mut plan = ChunkPlan::new();
                for read in &reads {
                    read.plan_into(&mut plan, grid);
                }
                plan
            }
        }
    }
}

/// Add `value` to the list of `key` in `map`. A key's first value gets a list of exactly one
/// (most chunks of a plan get one copy, most stored chunks of a write one request;
/// `or_default().push` would reserve room for four: 320 bytes a chunk of a plan, which a plan
/// of a million small chunks feels).
pub(crate) fn push_one<K: Ord, V>(map: &mut BTreeMap<K, Vec<V>>, key: K, value: V) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut list) => list.get_mut().push(value),
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(vec![value]);
        }
    }
}

/// Plan an orthogonal gather of `lists` (one index list per dimension) into a C-contiguous output.
///
/// # Errors
/// [`ArrayError::TooLarge`] when the output does not fit in memory arithmetic.
pub fn plan_orthogonal(plan: &mut ChunkPlan, grid: &Grid, lists: &[Vec<u64>]) -> Result<()> {
    let out_shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
    if out_shape.contains(&0) {
        return Ok(());
    }
    let strides: Arc<[usize]> = c_strides(&out_shape)?.into();
    // Per dimension: chunk index -> (index within chunk, output position).
    let per_dim: Vec<DimGather> = lists
        .iter()
        .zip(grid.dims())
        .map(|(list, g)| {
            let mut m = DimGather::new();
            for (pos, &i) in (0u64..).zip(list) {
                let (k, within) = g.locate(i);
                m.entry(k).or_default().push((within, pos));
            }
            m
        })
        .collect();
    push_gathers(plan, 0, &per_dim, &strides);
    Ok(())
}

/// Per dimension of a gather: chunk coordinate -> (index within that chunk, output position).
type DimGather = BTreeMap<u64, Vec<(u64, u64)>>;

/// Add to `plan` one gather into output `target` (of element strides `out_strides` per array
/// dimension) for every chunk that combines an entry of each dimension of `per_dim`.
fn push_gathers(
    plan: &mut ChunkPlan,
    target: usize,
    per_dim: &[DimGather],
    out_strides: &Arc<[usize]>,
) {
    let keys: Vec<Vec<u64>> = per_dim
        .iter()
        .map(|m| m.keys().copied().collect())
        .collect();
    let lo = vec![0u64; keys.len()];
    let hi: Vec<u64> = keys.iter().map(|k| k.len() as u64).collect();
    for_each_coord(&lo, &hi, |sel| {
        let chunk: Vec<u64> = sel
            .iter()
            .enumerate()
            .map(|(d, &k)| keys[d][usize::try_from(k).unwrap_or(0)])
            .collect();
        let dims = chunk
            .iter()
            .enumerate()
            .map(|(d, k)| per_dim[d][k].clone())
            .collect();
        let op = CopyOp::Gather {
            out_strides: Arc::clone(out_strides),
            dims,
        };
        push_one(plan, chunk, (target, op));
    });
}

/// Plan a point read: output element `i` is the element at `points[i]`.
pub fn plan_points(plan: &mut ChunkPlan, grid: &Grid, points: &[Vec<u64>]) {
    let mut by_chunk: BTreeMap<Vec<u64>, Vec<(u64, usize)>> = BTreeMap::new();
    for (out, p) in points.iter().enumerate() {
        let mut chunk = Vec::with_capacity(p.len());
        let mut within = 0u64;
        for (&i, g) in p.iter().zip(grid.dims()) {
            let (k, w) = g.locate(i);
            within = within * g.size(k) + w;
            chunk.push(k);
        }
        by_chunk.entry(chunk).or_default().push((within, out));
    }
    for (chunk, pairs) in by_chunk {
        push_one(plan, chunk, (0, CopyOp::Points(pairs)));
    }
}

/// Expand a basic selection with steps into per-dimension index lists.
#[must_use]
pub fn slices_to_lists(slices: &[DimSlice]) -> Vec<Vec<u64>> {
    slices
        .iter()
        .map(|s| (0..s.len()).map(|k| s.start + k * s.step).collect())
        .collect()
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Apply a plan on an array whose element at coordinate c is its C-order index, and return
    /// the output as those indices.
    fn execute(plan: &ChunkPlan, shape: &[u64], grid: &Grid, out_len: usize) -> Vec<Option<u64>> {
        let mut out = vec![None; out_len];
        let array_strides = c_strides(shape).unwrap();
        let value = |k: &[u64], within: &[u64]| -> u64 {
            let start = grid.chunk_start(k);
            (0..k.len())
                .map(|d| (start[d] + within[d]) * array_strides[d] as u64)
                .sum()
        };
        for (k, ops) in plan {
            let chunk = grid.chunk_shape(k);
            let chunk_strides = c_strides(&chunk).unwrap();
            // The chunk's elements the ops read, to check `element_span` against.
            let mut touched: Vec<usize> = Vec::new();
            let mut touch = |w: &[u64]| {
                touched.push(
                    w.iter()
                        .zip(&chunk_strides)
                        .map(|(&i, &s)| i as usize * s)
                        .sum(),
                );
            };
            for (_, op) in ops {
                match op {
                    CopyOp::Box {
                        out_offset,
                        out_strides,
                        src_start,
                        extent,
                    } => {
                        let hi: Vec<u64> =
                            src_start.iter().zip(extent).map(|(s, e)| s + e).collect();
                        assert!(
                            hi.iter().zip(&chunk).all(|(h, c)| h <= c),
                            "box outside its chunk"
                        );
                        for_each_coord(src_start, &hi, |w| {
                            let o: usize = out_offset
                                + (0..w.len())
                                    .map(|d| (w[d] - src_start[d]) as usize * out_strides[d])
                                    .sum::<usize>();
                            assert!(out[o].is_none(), "output element written twice");
                            out[o] = Some(value(k, w));
                            touch(w);
                        });
                    }
                    CopyOp::Gather { out_strides, dims } => {
                        let lo = vec![0; dims.len()];
                        let hi: Vec<u64> = dims.iter().map(|d| d.len() as u64).collect();
                        for_each_coord(&lo, &hi, |sel| {
                            let w: Vec<u64> = sel
                                .iter()
                                .enumerate()
                                .map(|(d, &j)| dims[d][j as usize].0)
                                .collect();
                            let o: usize = sel
                                .iter()
                                .enumerate()
                                .map(|(d, &j)| dims[d][j as usize].1 as usize * out_strides[d])
                                .sum();
                            assert!(out[o].is_none());
                            out[o] = Some(value(k, &w));
                            touch(&w);
                        });
                    }
                    CopyOp::Points(pairs) => {
                        for &(within, o) in pairs {
                            let mut w = vec![0; chunk.len()];
                            let mut rest = within;
                            for d in 0..chunk.len() {
                                w[d] = rest / chunk_strides[d] as u64;
                                rest %= chunk_strides[d] as u64;
                            }
                            out[o] = Some(value(k, &w));
                            touch(&w);
                        }
                    }
                }
            }
            let read = touched.iter().min().zip(touched.iter().max());
            assert_eq!(
                element_span(ops, &chunk_strides),
                read.map(|(&first, &last)| (first, last + 1)),
                "the span of chunk {k:?}'s reads"
            );
        }
        out
    }

    proptest! {
        #[test]
        fn crops_cover_every_element_once((shape, grid) in crate::grid::tests::shape_and_grid(), seeds in prop::collection::vec(any::<u64>(), 1..5)) {
            let crop: Vec<u64> = shape.iter().zip(&seeds).map(|(s, r)| 1 + r % s).chain(std::iter::repeat(1)).take(shape.len()).collect();
            let crop: Vec<u64> = crop.iter().zip(&shape).map(|(c, s)| (*c).min(*s)).collect();
            let crop_len = num_elements(&crop).unwrap();
            let strides: Arc<[usize]> = c_strides(&crop).unwrap().into();
            let mut plan = ChunkPlan::new();
            let starts: Vec<Vec<u64>> = seeds.iter().map(|r| shape.iter().zip(&crop).enumerate().map(|(d, (s, c))| (r >> (d * 7)) % (s - c + 1)).collect()).collect();
            for (b, start) in starts.iter().enumerate() {
                plan_box(&mut plan, &grid, start, &crop, b * crop_len, &strides);
            }
            let out = execute(&plan, &shape, &grid, crop_len * starts.len());
            let array_strides = c_strides(&shape).unwrap();
            for (b, start) in starts.iter().enumerate() {
                let hi: Vec<u64> = start.iter().zip(&crop).map(|(s, c)| s + c).collect();
                let mut i = 0;
                for_each_coord(start, &hi, |c| {
                    let want: u64 = c.iter().zip(&array_strides).map(|(x, s)| x * *s as u64).sum();
                    assert_eq!(out[b * crop_len + i], Some(want));
                    i += 1;
                });
            }
        }

        #[test]
        fn a_box_read_works_out_each_chunk_as_its_listed_plan_holds_it((shape, grid) in crate::grid::tests::shape_and_grid(), seeds in prop::collection::vec(any::<u64>(), 2)) {
            // A box from seeds[0] of extent from seeds[1], within the array.
            let start: Vec<u64> = shape.iter().enumerate().map(|(d, s)| (seeds[0] >> (d * 5)) % s).collect();
            let extent: Vec<u64> = shape.iter().zip(&start).enumerate().map(|(d, (s, a))| 1 + (seeds[1] >> (d * 5)) % (s - a)).collect();
            let strides: Arc<[usize]> = c_strides(&extent).unwrap().into();
            let read = BoxRead::new(&grid, &start, &extent, 0, &strides).unwrap();
            let listed = ReadPlan::Boxes(vec![read.clone()]).into_listed(&grid);
            let mut at = 0;
            for (chunk, ops) in &listed {
                // The listed plan is in C order of chunks: chunk `at` is the box's `at`-th.
                prop_assert_eq!(&read.coords_at(at)[..], &chunk[..]);
                prop_assert_eq!(read.index_of(chunk), at);
                prop_assert_eq!(ops.len(), 1);
                prop_assert_eq!(&ops[0].1, &read.op(&grid, chunk));
                let chunk_strides = c_strides(&grid.chunk_shape(chunk)).unwrap();
                prop_assert_eq!(read.span(&grid, chunk, &chunk_strides), element_span(ops, &chunk_strides));
                at += 1;
            }
            let chunks: u64 = read.first.iter().zip(&read.last).map(|(f, l)| l - f).product();
            prop_assert_eq!(at as u64, chunks);
            // And every element of the box lands once where it belongs.
            let n = num_elements(&extent).unwrap();
            let out = execute(&listed, &shape, &grid, n);
            let array_strides = c_strides(&shape).unwrap();
            let hi: Vec<u64> = start.iter().zip(&extent).map(|(s, e)| s + e).collect();
            let mut i = 0;
            for_each_coord(&start, &hi, |c| {
                let want: u64 = c.iter().zip(&array_strides).map(|(x, s)| x * *s as u64).sum();
                assert_eq!(out[i], Some(want));
                i += 1;
            });
        }

        #[test]
        fn orthogonal_and_points_match_direct_indexing((shape, grid) in crate::grid::tests::shape_and_grid(), picks in prop::collection::vec(any::<u64>(), 1..8)) {
            let lists: Vec<Vec<u64>> = shape.iter().enumerate().map(|(d, &s)| picks.iter().map(|p| (p >> d) % s).collect()).collect();
            let mut plan = ChunkPlan::new();
            plan_orthogonal(&mut plan, &grid, &lists).unwrap();
            let out_shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
            let n = num_elements(&out_shape).unwrap();
            let out = execute(&plan, &shape, &grid, n);
            let array_strides = c_strides(&shape).unwrap();
            let lo = vec![0; shape.len()];
            let mut i = 0;
            for_each_coord(&lo, &out_shape, |sel| {
                let want: u64 = sel.iter().enumerate().map(|(d, &j)| lists[d][j as usize] * array_strides[d] as u64).sum();
                assert_eq!(out[i], Some(want));
                i += 1;
            });
            let points: Vec<Vec<u64>> = (0..picks.len()).map(|k| lists.iter().map(|l| l[k]).collect()).collect();
            let mut plan = ChunkPlan::new();
            plan_points(&mut plan, &grid, &points);
            let out = execute(&plan, &shape, &grid, points.len());
            for (k, p) in points.iter().enumerate() {
                let want: u64 = p.iter().zip(&array_strides).map(|(x, s)| x * *s as u64).sum();
                assert_eq!(out[k], Some(want));
            }
        }
    }

    #[test]
    fn validation() {
        let shape = [10, 5];
        assert!(Selection::all(&shape).validate(&shape).is_ok());
        let err = Selection::Region(vec![DimSlice::range(0, 11), DimSlice::range(0, 5)])
            .validate(&shape)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("index 10 is out of bounds for dimension 0 of size 10"),
            "{err}"
        );
        assert!(Selection::Orthogonal(vec![vec![1], vec![5]])
            .validate(&shape)
            .is_err());
        assert!(Selection::Points(vec![vec![1]]).validate(&shape).is_err());
        assert_eq!(
            DimSlice {
                start: 1,
                stop: 10,
                step: 3
            }
            .len(),
            3
        );
        assert_eq!(
            slices_to_lists(&[DimSlice {
                start: 1,
                stop: 10,
                step: 3
            }]),
            vec![vec![1, 4, 7]]
        );
    }
}
