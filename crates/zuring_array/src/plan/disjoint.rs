//! A caller's chunk requests must write pairwise distinct output elements: the decode threads
//! copy chunks into the outputs in parallel, so two requests writing one element would race.
//! [`check_disjoint`] proves it before anything is read, or names the element written twice.
//!
//! Requests that split a selection by stored chunk (zarr-python's, and any orthogonal
//! selection's) have, along each output axis, one set of positions per chunk of that dimension,
//! and the sets of different chunks do not meet: grouped by those sets, two requests meet only if
//! they have the same set on every axis. That is checked in time proportional to the requests'
//! index lists; anything else (points, or sets that meet on some axis) is checked element by
//! element against a bitmap of the output.

use std::borrow::Cow;
use std::collections::HashMap;

use super::requests::{ChunkRequest, Indices};
use super::{c_strides, num_elements, try_for_each_coord};
use crate::error::{ArrayError, Result};

/// The positions one request writes along one output axis, sorted: a run `lo..lo + len`, or a
/// list of positions (distinct; checked when made).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AxisSet<'a> {
    Run { lo: u64, len: u64 },
    List(Cow<'a, [u64]>),
}

impl<'a> AxisSet<'a> {
    /// The set of `positions` (not empty); None when a position repeats (the request writes
    /// its elements along this axis twice).
    fn of(positions: &'a Indices) -> Option<Self> {
        let positions = match positions {
            Indices::Run { start, .. } => {
                let len = positions.len() as u64;
                return Some(Self::Run { lo: *start, len });
            }
            Indices::List(list) => list.as_slice(),
        };
        let increasing = positions.windows(2).all(|w| w[0] < w[1]);
        let list: Cow<'a, [u64]> = if increasing {
            Cow::Borrowed(positions)
        } else {
            let mut sorted = positions.to_vec();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return None;
            }
            Cow::Owned(sorted)
        };
        Some(match (list.first(), list.last()) {
            (Some(&lo), Some(&hi)) if hi - lo + 1 == list.len() as u64 => Self::Run {
                lo,
                len: list.len() as u64,
            },
            _ => Self::List(list),
        })
    }

    /// The set as half-open intervals.
    fn intervals(&self) -> Vec<(u64, u64)> {
        match self {
            Self::Run { lo, len } => vec![(*lo, lo + len)],
            Self::List(l) => l.iter().map(|&p| (p, p + 1)).collect(),
        }
    }
}

/// Check that `requests` (already checked to fit their outputs, of shapes `out_shapes`) write
/// pairwise distinct elements of each output.
///
/// # Errors
/// [`ArrayError::Selection`] naming an output element two requests (or one request twice) write.
pub(crate) fn check_disjoint(out_shapes: &[Vec<u64>], requests: &[ChunkRequest]) -> Result<()> {
    let mut by_target: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        by_target.entry(r.target()).or_default().push(i);
        // A dimension with no output axis writes every element once per index it lists.
        if let ChunkRequest::Orthogonal {
            indices, positions, ..
        } = r
        {
            let writes = indices.iter().all(|idx| !idx.is_empty());
            let dropped = positions
                .iter()
                .zip(indices)
                .position(|(p, idx)| p.is_none() && idx.len() > 1);
            if let (true, Some(d)) = (writes, dropped) {
                return Err(twice(
                    r.target(),
                    format!(
                        "every element request {i} writes ({} indices of dimension {d}, which has no output axis)",
                        indices[d].len()
                    ),
                ));
            }
        }
    }
    for (target, members) in by_target {
        let Some(shape) = out_shapes.get(target) else {
            continue; // planning refuses these
        };
        let points = members
            .iter()
            .any(|&i| matches!(requests[i], ChunkRequest::Points { .. }));
        if points || !by_sets(shape, target, requests, &members)? {
            by_elements(shape, target, requests, &members)?;
        }
    }
    Ok(())
}

/// The output positions of an orthogonal request along each axis of an output of `naxes` axes
/// (an axis its dimensions do not reach is written at 0).
fn axis_positions(positions: &[Option<Indices>], naxes: usize) -> Vec<&Indices> {
    static AT_ZERO: Indices = Indices::Run { start: 0, len: 1 };
    let mut axes: Vec<&Indices> = positions.iter().flatten().collect();
    while axes.len() < naxes {
        axes.push(&AT_ZERO);
    }
    axes
}

fn twice(target: usize, what: String) -> ArrayError {
    ArrayError::selection(format!(
        "chunk requests must write distinct output elements: {what} of output {target} is written twice"
    ))
}

/// The check by per-axis sets (see the module docs): whether it could decide (false: sets of
/// different requests meet on some axis, so only the elements can tell).
fn by_sets(
    shape: &[u64],
    target: usize,
    requests: &[ChunkRequest],
    members: &[usize],
) -> Result<bool> {
    let naxes = shape.len();
    let mut classes: Vec<HashMap<AxisSet<'_>, u32>> = vec![HashMap::new(); naxes];
    let mut tuples: Vec<(Vec<u32>, usize)> = Vec::with_capacity(members.len());
    for &i in members {
        let ChunkRequest::Orthogonal {
            positions, indices, ..
        } = &requests[i]
        else {
            return Ok(false);
        };
        if indices.iter().any(Indices::is_empty) {
            continue; // writes nothing
        }
        let axes = axis_positions(positions, naxes);
        if axes.len() != naxes {
            return Ok(false);
        }
        // (A positioned dimension lists as many positions as indices: none is empty here.)
        let mut tuple = Vec::with_capacity(naxes);
        for (a, &p) in axes.iter().enumerate() {
            let Some(set) = AxisSet::of(p) else {
                return Err(twice(
                    target,
                    format!("a position along axis {a} (request {i} lists it twice)"),
                ));
            };
            let next = u32::try_from(classes[a].len()).unwrap_or(u32::MAX);
            tuple.push(*classes[a].entry(set).or_insert(next));
        }
        tuples.push((tuple, i));
    }
    // Different sets along an axis must not meet, or equal class tuples no longer tell.
    for axis in &classes {
        let mut intervals: Vec<(u64, u64)> = axis.keys().flat_map(AxisSet::intervals).collect();
        intervals.sort_unstable();
        if intervals.windows(2).any(|w| w[1].0 < w[0].1) {
            return Ok(false);
        }
    }
    tuples.sort_unstable();
    if let Some(w) = tuples.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(twice(
            target,
            format!(
                "every element requests {} and {} write (they read into the same positions)",
                w[0].1, w[1].1
            ),
        ));
    }
    Ok(true)
}

/// The check element by element: every element each request writes marked in a bitmap of the
/// output.
fn by_elements(
    shape: &[u64],
    target: usize,
    requests: &[ChunkRequest],
    members: &[usize],
) -> Result<()> {
    let mut seen = vec![0u64; num_elements(shape)?.div_ceil(64)];
    let mut mark = |flat: usize, i: usize| -> Result<()> {
        let word = seen
            .get_mut(flat / 64)
            .ok_or_else(|| ArrayError::selection(format!("request {i} writes past its output")))?;
        let bit = 1u64 << (flat % 64);
        if *word & bit != 0 {
            return Err(twice(target, format!("element {flat} (request {i})")));
        }
        *word |= bit;
        Ok(())
    };
    let strides = c_strides(shape)?;
    for &i in members {
        match &requests[i] {
            ChunkRequest::Points { positions, .. } => {
                for &flat in positions {
                    mark(usize::try_from(flat).unwrap_or(usize::MAX), i)?;
                }
            }
            ChunkRequest::Orthogonal {
                positions, indices, ..
            } => {
                if indices.iter().any(Indices::is_empty) {
                    continue; // writes nothing
                }
                let axes = axis_positions(positions, shape.len());
                // Every combination of the axes' positions, by their places in the lists.
                let counts: Vec<u64> = axes.iter().map(|p| p.len() as u64).collect();
                try_for_each_coord(&vec![0; axes.len()], &counts, |at| {
                    let flat = at
                        .iter()
                        .zip(&axes)
                        .zip(&strides)
                        .map(|((&k, p), &s)| {
                            let x = usize::try_from(k).ok().and_then(|k| p.get(k));
                            x.and_then(|x| usize::try_from(x).ok())
                                .map_or(usize::MAX, |x| x.saturating_mul(s))
                        })
                        .fold(0usize, usize::saturating_add);
                    mark(flat, i)
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn orthogonal(target: usize, positions: Vec<Option<Indices>>) -> ChunkRequest {
        let dropped = vec![1; positions.len()];
        orthogonal_dropping(target, positions, &dropped)
    }

    /// An orthogonal request listing `dropped[d]` indices of each dimension `d` with no output
    /// axis.
    fn orthogonal_dropping(
        target: usize,
        positions: Vec<Option<Indices>>,
        dropped: &[usize],
    ) -> ChunkRequest {
        let indices = positions
            .iter()
            .zip(dropped)
            .map(|(p, &n)| {
                p.as_ref()
                    .map_or_else(|| (0..n as u64).collect(), |p| (0..p.len() as u64).into())
            })
            .collect();
        ChunkRequest::Orthogonal {
            target,
            chunk: vec![0; positions.len()],
            indices,
            positions,
        }
    }

    /// Whether some output element is written twice, by listing every element written.
    fn written_twice(out_shapes: &[Vec<u64>], requests: &[ChunkRequest]) -> bool {
        let mut seen = std::collections::HashSet::new();
        for r in requests {
            let target = r.target();
            let shape = &out_shapes[target];
            let flats: Vec<u64> = match r {
                ChunkRequest::Points { positions, .. } => positions.clone(),
                ChunkRequest::Orthogonal {
                    positions, indices, ..
                } => {
                    let axes = axis_positions(positions, shape.len());
                    let mut flats = vec![0u64];
                    for (a, p) in axes.iter().enumerate() {
                        let stride: u64 = shape[a + 1..].iter().product();
                        flats = flats
                            .iter()
                            .flat_map(|f| p.iter().map(move |x| f + x * stride))
                            .collect();
                    }
                    // Each index of a dimension with no output axis writes them all again.
                    let again: usize = positions
                        .iter()
                        .zip(indices)
                        .filter(|(p, _)| p.is_none())
                        .map(|(_, idx)| idx.len())
                        .product();
                    if indices.iter().any(Indices::is_empty) {
                        Vec::new()
                    } else {
                        flats.repeat(again)
                    }
                }
            };
            for f in flats {
                if !seen.insert((target, f)) {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn a_grid_of_boxes_is_disjoint_and_a_repeated_box_is_named() {
        // A 4 x 6 output read from 2 x 3 chunks, as zarr-python splits it, one dimension dropped.
        let mut requests = Vec::new();
        for i in 0..2u64 {
            for j in 0..2u64 {
                requests.push(orthogonal(
                    0,
                    vec![
                        Some((2 * i..2 * i + 2).into()),
                        None,
                        Some((3 * j..3 * j + 3).collect()),
                    ],
                ));
            }
        }
        let shapes = vec![vec![4, 6]];
        check_disjoint(&shapes, &requests).unwrap();
        // The same box again, from another chunk.
        requests.push(orthogonal(
            0,
            vec![Some(vec![2, 3].into()), None, Some((0..3).into())],
        ));
        let err = check_disjoint(&shapes, &requests).unwrap_err().to_string();
        assert!(err.contains("requests 2 and 4"), "{err}");
        // Into another output, the same positions are another output's elements.
        let last = requests.len() - 1;
        if let ChunkRequest::Orthogonal { target, .. } = &mut requests[last] {
            *target = 1;
        }
        check_disjoint(&[vec![4, 6], vec![4, 6]], &requests).unwrap();
        // Overlapping in part (rows 1..3 meet rows 0..2 and 2..4): decided element by element.
        requests[last] = orthogonal(0, vec![Some((1..3).into()), None, Some(vec![5].into())]);
        let err = check_disjoint(&shapes, &requests).unwrap_err().to_string();
        assert!(err.contains("element 11 (request 4)"), "{err}");
        // Two indices of a dimension with no output axis, read into the same elements.
        let two = [orthogonal_dropping(
            0,
            vec![Some(vec![0].into()), None, Some((1..2).into())],
            &[1, 2, 1],
        )];
        let err = check_disjoint(&shapes, &two).unwrap_err().to_string();
        assert!(err.contains("2 indices of dimension 1"), "{err}");
        // A position listed twice by one request.
        let one = [orthogonal(
            0,
            vec![Some(vec![0, 3, 0].into()), None, Some(vec![1].into())],
        )];
        let err = check_disjoint(&shapes, &one).unwrap_err().to_string();
        assert!(err.contains("axis 0 (request 0"), "{err}");
    }

    /// Positions along one axis: none (a dropped dimension), a run (as its bounds, or listed)
    /// or any list.
    fn axis() -> impl Strategy<Value = Option<Indices>> {
        prop_oneof![
            1 => Just(None),
            1 => (0u64..5, 0u64..4).prop_map(|(lo, n)| Some((lo..(lo + n).min(5)).into())),
            1 => (0u64..5, 0u64..4).prop_map(|(lo, n)| Some((lo..(lo + n).min(5)).collect())),
            2 => prop::collection::vec(0u64..5, 0..4).prop_map(|l| Some(l.into())),
        ]
    }

    fn request() -> impl Strategy<Value = ChunkRequest> {
        prop_oneof![
            3 => (
                0usize..2,
                prop::collection::vec(axis(), 1..4),
                prop::collection::vec(prop_oneof![6 => Just(1usize), 1 => 0usize..3], 4),
            )
                .prop_map(|(t, mut p, dropped)| {
                // At most two output axes.
                let mut seen = 0;
                for d in &mut p {
                    if d.is_some() {
                        seen += 1;
                        if seen > 2 {
                            *d = None;
                        }
                    }
                }
                orthogonal_dropping(t, p, &dropped)
            }),
            1 => (0usize..2, prop::collection::vec(0u64..25, 0..4)).prop_map(|(t, positions)| {
                ChunkRequest::Points {
                    target: t,
                    chunk: vec![0, 0],
                    coords: positions.iter().map(|_| vec![0, 0]).collect(),
                    positions,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn requests_pass_exactly_when_no_element_is_written_twice(
            requests in prop::collection::vec(request(), 0..6)
        ) {
            let shapes = vec![vec![5, 5], vec![5, 5]];
            let twice = written_twice(&shapes, &requests);
            let checked = check_disjoint(&shapes, &requests);
            prop_assert_eq!(checked.is_err(), twice, "{:?}: {:?}", requests, checked);
        }
    }
}
