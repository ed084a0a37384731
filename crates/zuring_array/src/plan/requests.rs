//! Requests from a caller that already split its selection by stored chunk (zarr-python's
//! pipeline): planned against the read grid (inner chunks when sharded).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    c_strides, num_elements, push_gathers, BoxRead, ChunkPlan, CopyOp, DimGather, ReadPlan,
};
use crate::error::{ArrayError, Result};
use crate::grid::Grid;

/// Indices along one dimension of a [`ChunkRequest`]: a run `start..start + len` (a slice with
/// step 1, kept as its bounds: planning and the request checks take it whole, in constant time,
/// where a list would be walked index by index) or a list, in the caller's order.
///
/// Equality is of the form: a run and the list of its indices are different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indices {
    /// `start..start + len` (a run reaching past `u64::MAX` ends there).
    Run {
        /// The first index.
        start: u64,
        /// How many.
        len: u64,
    },
    /// Each index, in order.
    List(Vec<u64>),
}

impl Indices {
    /// How many indices a run holds (it ends at `u64::MAX`).
    fn run_len(start: u64, len: u64) -> u64 {
        start.saturating_add(len) - start
    }

    /// How many indices.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Run { start, len } => {
                usize::try_from(Self::run_len(*start, *len)).unwrap_or(usize::MAX)
            }
            Self::List(list) => list.len(),
        }
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k`-th index.
    #[must_use]
    pub fn get(&self, k: usize) -> Option<u64> {
        match self {
            Self::Run { start, len } => {
                let k = u64::try_from(k).ok()?;
                (k < Self::run_len(*start, *len)).then(|| start + k)
            }
            Self::List(list) => list.get(k).copied(),
        }
    }

    /// The indices in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (run, list) = match self {
            Self::Run { start, len } => (*start..start + Self::run_len(*start, *len), &[][..]),
            Self::List(list) => (0..0, list.as_slice()),
        };
        run.chain(list.iter().copied())
    }

    /// The run the indices form, as `(first, len)`: at once for a run, by walking a list; None
    /// when there are none or they are not consecutive.
    #[must_use]
    pub fn as_run(&self) -> Option<(u64, u64)> {
        match self {
            Self::Run { start, len } => {
                let len = Self::run_len(*start, *len);
                (len > 0).then_some((*start, len))
            }
            Self::List(list) => {
                let &first = list.first()?;
                let run = list.windows(2).all(|w| w[0].checked_add(1) == Some(w[1]));
                run.then_some((first, list.len() as u64))
            }
        }
    }

    /// The indices as a list (a run's made).
    #[must_use]
    pub fn as_list(&self) -> Cow<'_, [u64]> {
        match self {
            Self::Run { .. } => Cow::Owned(self.iter().collect()),
            Self::List(list) => Cow::Borrowed(list),
        }
    }
}

impl From<Vec<u64>> for Indices {
    fn from(list: Vec<u64>) -> Self {
        Self::List(list)
    }
}

impl FromIterator<u64> for Indices {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        Self::List(iter.into_iter().collect())
    }
}

impl From<std::ops::Range<u64>> for Indices {
    fn from(range: std::ops::Range<u64>) -> Self {
        Self::Run {
            start: range.start,
            len: range.end.saturating_sub(range.start),
        }
    }
}

/// What a caller (zarr-python's pipeline) wants from one stored chunk (shard, when sharded):
/// indices within that chunk and where they go in the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRequest {
    /// Orthogonal: per array dimension, indices within the stored chunk, and their output
    /// positions along that dimension's output axis (`None`: the dimension is dropped).
    Orthogonal {
        /// Which output of the batch this request fills.
        target: usize,
        /// The stored chunk's coordinates in the array's chunk grid.
        chunk: Vec<u64>,
        /// Per dimension, indices within the chunk.
        indices: Vec<Indices>,
        /// Per dimension, output positions (as many as `indices[d]`), or `None` when the
        /// dimension does not appear in the output.
        positions: Vec<Option<Indices>>,
    },
    /// Points: coordinates within the stored chunk, and each point's flat output index.
    Points {
        /// Which output of the batch this request fills.
        target: usize,
        /// The stored chunk's coordinates.
        chunk: Vec<u64>,
        /// Per point, its coordinates within the chunk.
        coords: Vec<Vec<u64>>,
        /// Per point, its index in the (flat) output.
        positions: Vec<u64>,
    },
}

impl ChunkRequest {
    /// The stored chunk (shard, when sharded) the request reads from: its coordinates in the
    /// array's chunk grid.
    #[must_use]
    pub fn chunk(&self) -> &[u64] {
        match self {
            Self::Orthogonal { chunk, .. } | Self::Points { chunk, .. } => chunk,
        }
    }

    /// Which output of the batch the request fills.
    #[must_use]
    pub fn target(&self) -> usize {
        match self {
            Self::Orthogonal { target, .. } | Self::Points { target, .. } => *target,
        }
    }
}

/// Plan chunk requests against the read grid `read_grid` (inner chunks, when sharded) inside
/// stored chunks of `file_grid`, each into its target output, of shape `out_shapes[target]` (C
/// order). Requests that are all boxes (basic indexing with step 1), of distinct stored chunks,
/// are planned by their bounds ([`ReadPlan::Boxes`]); others chunk by chunk.
///
/// A request addresses a stored chunk, which always holds its grid cell's elements: indices are
/// checked against it, not against the array's `shape` (only its rank is used), so requests from
/// a caller that resized the array since this handle was made (zarr-python resizes in place)
/// still read what is stored.
///
/// # Errors
/// [`ArrayError::Selection`] when a request's lengths disagree, an index leaves its chunk or the
/// output, or two requests (or one twice) write the same output element; [`ArrayError::TooLarge`]
/// on overflow.
pub(crate) fn plan_chunk_requests(
    shape: &[u64],
    file_grid: &Grid,
    read_grid: &Grid,
    out_shapes: &[Vec<u64>],
    requests: &[ChunkRequest],
) -> Result<ReadPlan> {
    let mut plan = ChunkPlan::new();
    let mut boxes: Vec<BoxRead> = Vec::new();
    let ndim = shape.len();
    let bad = |m: String| ArrayError::selection(m);
    for request in requests {
        let target = &request.target();
        let out_shape = out_shapes.get(*target).ok_or_else(|| {
            bad(format!(
                "request for output {target}, but there are {}",
                out_shapes.len()
            ))
        })?;
        let out_strides = c_strides(out_shape)?;
        let out_len = num_elements(out_shape)? as u64;
        match request {
            ChunkRequest::Orthogonal {
                chunk,
                indices,
                positions,
                ..
            } => {
                if chunk.len() != ndim || indices.len() != ndim || positions.len() != ndim {
                    return Err(bad(format!(
                        "chunk request for {chunk:?} does not have {ndim} dimensions"
                    )));
                }
                if let Some(read) = contiguous(
                    shape,
                    (file_grid, read_grid),
                    out_shape,
                    &out_strides,
                    chunk,
                    indices,
                    positions,
                ) {
                    boxes.push(read.to(*target));
                    continue;
                }
                // Output axis of each array dimension.
                let mut axis = 0usize;
                let mut strides = vec![0usize; ndim];
                let mut per_dim: Vec<DimGather> = Vec::with_capacity(ndim);
                for d in 0..ndim {
                    let pos = positions[d].as_ref();
                    if let Some(p) = pos {
                        if p.len() != indices[d].len() {
                            return Err(bad(format!(
                                "dimension {d}: {} indices but {} output positions",
                                indices[d].len(),
                                p.len()
                            )));
                        }
                        let n = *out_shape
                            .get(axis)
                            .ok_or_else(|| bad("more output axes than the output has".into()))?;
                        if p.iter().any(|x| x >= n) {
                            return Err(bad(format!(
                                "output position out of range for output axis {axis} of size {n}"
                            )));
                        }
                        strides[d] = out_strides[axis];
                        axis += 1;
                    }
                    let mut m = DimGather::new();
                    let mut out_positions = pos.map(Indices::iter);
                    for within in indices[d].iter() {
                        let global =
                            file_grid.dims()[d]
                                .global(chunk[d], within)
                                .ok_or_else(|| {
                                    bad(format!(
                                        "index {within} leaves chunk {chunk:?} in dimension {d}"
                                    ))
                                })?;
                        let out_pos = out_positions.as_mut().and_then(Iterator::next);
                        let out_pos = out_pos.unwrap_or(0);
                        let (inner, at) = read_grid.dims()[d].locate(global);
                        m.entry(inner).or_default().push((at, out_pos));
                    }
                    per_dim.push(m);
                }
                push_gathers(&mut plan, *target, &per_dim, &strides.into());
            }
            ChunkRequest::Points {
                chunk,
                coords,
                positions,
                ..
            } => {
                if coords.len() != positions.len() {
                    return Err(bad(format!(
                        "{} points but {} output positions",
                        coords.len(),
                        positions.len()
                    )));
                }
                let mut by_chunk: BTreeMap<Vec<u64>, Vec<(u64, usize)>> = BTreeMap::new();
                for (c, &out) in coords.iter().zip(positions) {
                    if c.len() != ndim || out >= out_len {
                        return Err(bad(format!(
                            "point {c:?} -> {out} does not fit the array or output"
                        )));
                    }
                    let mut inner = Vec::with_capacity(ndim);
                    let mut within = 0u64;
                    for d in 0..ndim {
                        let global = file_grid.dims()[d]
                            .global(chunk[d], c[d])
                            .ok_or_else(|| bad(format!("point {c:?} leaves chunk {chunk:?}")))?;
                        let g = &read_grid.dims()[d];
                        let (k, at) = g.locate(global);
                        inner.push(k);
                        within = within * g.size(k) + at;
                    }
                    by_chunk
                        .entry(inner)
                        .or_default()
                        .push((within, usize::try_from(out).unwrap_or(usize::MAX)));
                }
                for (inner, pairs) in by_chunk {
                    plan.entry(inner)
                        .or_default()
                        .push((*target, CopyOp::Points(pairs)));
                }
            }
        }
    }
    // The decode threads copy into the outputs in parallel: no element may be written twice.
    super::disjoint::check_disjoint(out_shapes, requests)?;
    // Boxes each inside a stored chunk of their own touch distinct read chunks.
    let mut chunks: Vec<&[u64]> = requests.iter().map(ChunkRequest::chunk).collect();
    chunks.sort_unstable();
    if plan.is_empty() && chunks.windows(2).all(|w| w[0] != w[1]) {
        return Ok(ReadPlan::Boxes(boxes));
    }
    for read in &boxes {
        read.plan_into(&mut plan, read_grid);
    }
    Ok(plan.into())
}

/// A request whose indices and positions are runs in every dimension (basic indexing with
/// step 1) is a box (into output 0), copied row by row, not element by element; None when the
/// request is not of that form or does not fit.
fn contiguous(
    shape: &[u64],
    (file_grid, read_grid): (&Grid, &Grid),
    out_shape: &[u64],
    out_strides: &[usize],
    chunk: &[u64],
    indices: &[Indices],
    positions: &[Option<Indices>],
) -> Option<BoxRead> {
    let ndim = shape.len();
    let mut start = Vec::with_capacity(ndim);
    let mut extent = Vec::with_capacity(ndim);
    let mut strides = Vec::with_capacity(ndim);
    let mut offset = 0usize;
    let mut axis = 0usize;
    for d in 0..ndim {
        let (first, len) = indices[d].as_run()?;
        // The run's first and last indices inside the stored chunk.
        let g = &file_grid.dims()[d];
        let last = first.checked_add(len - 1);
        last.and_then(|l| g.global(chunk[d], l))?;
        let global = g.global(chunk[d], first)?;
        match &positions[d] {
            None => {
                if len != 1 {
                    return None;
                }
                strides.push(0);
            }
            Some(p) => {
                let (p0, p_len) = p.as_run().filter(|&(_, n)| n == len)?;
                let &n = out_shape.get(axis)?;
                if p0.checked_add(p_len)? > n {
                    return None;
                }
                let stride = out_strides[axis];
                offset += usize::try_from(p0).unwrap_or(usize::MAX / 2) * stride;
                strides.push(stride);
                axis += 1;
            }
        }
        start.push(global);
        extent.push(len);
    }
    let strides: Arc<[usize]> = strides.into();
    BoxRead::new(read_grid, &start, &extent, offset, &strides)
}

#[cfg(test)]
mod tests {
    use super::Indices;

    #[test]
    fn a_run_reads_as_the_list_of_its_indices() {
        let run = Indices::Run { start: 3, len: 4 };
        assert_eq!((run.len(), run.is_empty()), (4, false));
        assert_eq!(run.iter().collect::<Vec<_>>(), [3, 4, 5, 6]);
        assert_eq!(
            [run.get(0), run.get(3), run.get(4)],
            [Some(3), Some(6), None]
        );
        assert_eq!(run.as_run(), Some((3, 4)));
        assert_eq!(&*run.as_list(), &[3, 4, 5, 6]);
        assert_eq!(Indices::from(3..7), run);
        // A run reaching past the last index ends there; an empty one has no run.
        let edge = Indices::Run {
            start: u64::MAX - 1,
            len: 5,
        };
        assert_eq!(edge.len(), 1);
        assert_eq!(edge.iter().collect::<Vec<_>>(), [u64::MAX - 1]);
        assert_eq!((edge.get(0), edge.get(1)), (Some(u64::MAX - 1), None));
        assert_eq!(edge.as_run(), Some((u64::MAX - 1, 1)));
        #[allow(clippy::reversed_empty_ranges)] // a slice whose stop is before its start
        let backwards = Indices::from(5..3);
        assert!(backwards.is_empty());
        assert_eq!(backwards.as_run(), None);
        // Lists: a run only when consecutive and ascending.
        let list = |v: &[u64]| Indices::from(v.to_vec());
        assert_eq!(list(&[2, 3, 4]).as_run(), Some((2, 3)));
        assert_eq!(list(&[u64::MAX]).as_run(), Some((u64::MAX, 1)));
        for not_run in [&[][..], &[2, 4], &[4, 3], &[2, 3, 3]] {
            assert_eq!(list(not_run).as_run(), None, "{not_run:?}");
        }
        assert_eq!(list(&[9, 1]).get(1), Some(1));
        assert_eq!(list(&[9, 1]).iter().collect::<Vec<_>>(), [9, 1]);
    }
}
