//! Chunk grids: where each chunk starts along each dimension and how long it is. A regular grid
//! has one chunk length per dimension; a rectilinear one (the Zarr extension, zarr-python 3.4's
//! experimental `rectilinear` grid) may list each chunk's length.

use std::sync::Arc;

use zarrs::array::ArrayMetadata;
use zarrs::metadata::v3::MetadataV3;
use zarrs::metadata_ext::chunk_grid::rectilinear::{
    ChunkEdgeLengths, RectilinearChunkGridConfiguration, RunLengthElement,
};
use zarrs::metadata_ext::chunk_grid::regular::RegularChunkGridConfiguration;

/// The most chunk edges one dimension of a rectilinear grid may list (run-length counts
/// expanded): a grid listing more is refused when the array is opened, before the list is
/// expanded.
pub const MAX_EDGES: u64 = 1 << 22;

/// One dimension of a chunk grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimGrid {
    /// Chunks of one length (the last may reach past the array's end).
    Regular(u64),
    /// Chunk `k` spans `offsets[k]..offsets[k + 1]`; `offsets[0]` is 0 and they increase
    /// (a list that is not so gives wrong places, never a panic).
    Varying(Arc<[u64]>),
}

impl DimGrid {
    /// The chunk holding index `i`, and `i`'s place in it. An index past a varying grid's last
    /// edge is placed in chunk `n` (the number of chunks), which is never stored.
    #[must_use]
    pub fn locate(&self, i: u64) -> (u64, u64) {
        match self {
            Self::Regular(c) => (i / c, i % c),
            Self::Varying(offsets) => {
                let k = offsets.partition_point(|&o| o <= i).saturating_sub(1);
                (
                    k as u64,
                    i.saturating_sub(offsets.get(k).copied().unwrap_or(0)),
                )
            }
        }
    }

    /// The first index of chunk `k`.
    #[must_use]
    pub fn start(&self, k: u64) -> u64 {
        match self {
            Self::Regular(c) => k.saturating_mul(*c),
            Self::Varying(offsets) => {
                let last = offsets.len().saturating_sub(1);
                let k = usize::try_from(k).map_or(last, |k| k.min(last));
                offsets.get(k).copied().unwrap_or(0)
            }
        }
    }

    /// The length of chunk `k` (0 past a varying grid's last chunk).
    #[must_use]
    pub fn size(&self, k: u64) -> u64 {
        match self {
            Self::Regular(c) => *c,
            Self::Varying(_) => self
                .start(k.saturating_add(1))
                .saturating_sub(self.start(k)),
        }
    }

    /// The array index of element `within` of chunk `k`; None when chunk `k` does not have it
    /// (or the index overflows).
    #[must_use]
    pub fn global(&self, k: u64, within: u64) -> Option<u64> {
        let start = match self {
            Self::Regular(c) => k.checked_mul(*c)?,
            Self::Varying(offsets) => *offsets.get(usize::try_from(k).ok()?)?,
        };
        (within < self.size(k)).then(|| start.checked_add(within))?
    }

    /// The largest chunk length.
    #[must_use]
    pub fn max_size(&self) -> u64 {
        match self {
            Self::Regular(c) => *c,
            Self::Varying(offsets) => offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1),
        }
    }
}

/// A chunk grid: one [`DimGrid`] per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid(Vec<DimGrid>);

impl Grid {
    /// The regular grid of chunks of `shape`.
    #[must_use]
    pub fn regular(shape: &[u64]) -> Self {
        Self(shape.iter().map(|&c| DimGrid::Regular(c.max(1))).collect())
    }

    /// The grid of an array's metadata: `regular` (v3, and every v2 array) or `rectilinear`.
    ///
    /// # Errors
    /// The reason, naming the member, when the grid is another one or its configuration is
    /// malformed.
    pub fn of(metadata: &ArrayMetadata) -> std::result::Result<Self, String> {
        match metadata {
            ArrayMetadata::V2(m) => Ok(Self::regular(
                &m.chunks.iter().map(|d| d.get()).collect::<Vec<_>>(),
            )),
            ArrayMetadata::V3(m) => Self::of_v3(&m.chunk_grid),
        }
    }

    /// The grid of a v3 array's `chunk_grid` member.
    ///
    /// # Errors
    /// As [`Grid::of`].
    pub fn of_v3(grid: &MetadataV3) -> std::result::Result<Self, String> {
        match grid.name() {
            "regular" => grid
                .to_configuration::<RegularChunkGridConfiguration>()
                .map(|c| Self::regular(&c.chunk_shape.iter().map(|d| d.get()).collect::<Vec<_>>()))
                .map_err(|e| format!("chunk_grid: {e}")),
            "rectilinear" => {
                let config = grid
                    .to_configuration::<RectilinearChunkGridConfiguration>()
                    .map_err(|e| format!("chunk_grid: {e}"))?;
                let RectilinearChunkGridConfiguration::Inline { chunk_shapes } = config;
                chunk_shapes
                    .iter()
                    .enumerate()
                    .map(|(d, edges)| dim_of(d, edges))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Self)
            }
            other => Err(format!(
                "chunk_grid: \"{other}\" is not a chunk grid zuring reads (regular, rectilinear)"
            )),
        }
    }

    /// The grid of these dimensions.
    #[must_use]
    pub fn from_dims(dims: Vec<DimGrid>) -> Self {
        Self(dims)
    }

    /// The per-dimension grids.
    #[must_use]
    pub fn dims(&self) -> &[DimGrid] {
        &self.0
    }

    /// Number of dimensions.
    #[must_use]
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Whether every dimension is regular.
    #[must_use]
    pub fn is_regular(&self) -> bool {
        self.0.iter().all(|d| matches!(d, DimGrid::Regular(_)))
    }

    /// Whether the grid has chunk `coords` (a regular dimension has every chunk; a varying one
    /// those its edges list).
    #[must_use]
    pub fn has_chunk(&self, coords: &[u64]) -> bool {
        coords.len() == self.0.len()
            && self.0.iter().zip(coords).all(|(d, &k)| match d {
                DimGrid::Regular(_) => true,
                DimGrid::Varying(offsets) => k < (offsets.len() as u64).saturating_sub(1),
            })
    }

    /// The shape of chunk `coords` (as stored: a chunk reaching past the array's end included).
    #[must_use]
    pub fn chunk_shape(&self, coords: &[u64]) -> Vec<u64> {
        self.0.iter().zip(coords).map(|(d, &k)| d.size(k)).collect()
    }

    /// The first element of chunk `coords`.
    #[must_use]
    pub fn chunk_start(&self, coords: &[u64]) -> Vec<u64> {
        self.0
            .iter()
            .zip(coords)
            .map(|(d, &k)| d.start(k))
            .collect()
    }

    /// Per dimension, the lengths of the chunks covering an array of `shape`, the last one cut
    /// at the array's end (dask's `chunks` convention; zarr-python's `read_chunk_sizes`); None
    /// when a dimension has more than [`MAX_EDGES`] chunks.
    #[must_use]
    pub fn clipped_sizes(&self, shape: &[u64]) -> Option<Vec<Vec<u64>>> {
        self.0
            .iter()
            .zip(shape)
            .map(|(g, &extent)| {
                let mut sizes = Vec::new();
                let mut k = 0;
                while g.start(k) < extent && g.size(k) > 0 {
                    if sizes.len() as u64 >= MAX_EDGES {
                        return None;
                    }
                    sizes.push(g.size(k).min(extent - g.start(k)));
                    k += 1;
                }
                Some(sizes)
            })
            .collect()
    }

    /// Per dimension, how many chunks an array of `shape` has: those starting before its end
    /// (a varying grid's listed chunks at most).
    #[must_use]
    pub fn counts(&self, shape: &[u64]) -> Vec<u64> {
        self.0
            .iter()
            .zip(shape)
            .map(|(g, &n)| match g {
                DimGrid::Regular(c) => n.div_ceil((*c).max(1)),
                DimGrid::Varying(offsets) => {
                    let starts = &offsets[..offsets.len().saturating_sub(1)];
                    starts.partition_point(|&o| o < n) as u64
                }
            })
            .collect()
    }

    /// The largest chunk's length along each dimension.
    #[must_use]
    pub fn max_shape(&self) -> Vec<u64> {
        self.0.iter().map(DimGrid::max_size).collect()
    }
}

/// Dimension `d` of a rectilinear grid, its run-length counts checked before they are expanded.
fn dim_of(d: usize, edges: &ChunkEdgeLengths) -> std::result::Result<DimGrid, String> {
    let elements = match edges {
        ChunkEdgeLengths::Scalar(c) => return Ok(DimGrid::Regular(c.get())),
        ChunkEdgeLengths::Varying(elements) => elements,
    };
    let member = format!("chunk_grid.configuration.chunk_shapes[{d}]");
    let count = elements.iter().try_fold(0u64, |n, e| match e {
        RunLengthElement::Single(_) => n.checked_add(1),
        RunLengthElement::Repeated([_, count]) => n.checked_add(count.get()),
    });
    match count {
        Some(0) => return Err(format!("{member}: no chunk edges")),
        Some(n) if n <= MAX_EDGES => {}
        _ => {
            return Err(format!(
                "{member}: more chunk edges than zuring accepts ({MAX_EDGES})"
            ))
        }
    }
    let mut offsets = vec![0u64];
    for element in elements {
        let (size, count) = match element {
            RunLengthElement::Single(size) => (size.get(), 1),
            RunLengthElement::Repeated([size, count]) => (size.get(), count.get()),
        };
        for _ in 0..count {
            let next = offsets
                .last()
                .and_then(|o| o.checked_add(size))
                .ok_or_else(|| format!("{member}: the chunk edges overflow 64 bits"))?;
            offsets.push(next);
        }
    }
    Ok(DimGrid::Varying(offsets.into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An array shape and a chunk grid for it: per dimension regular, or rectilinear with
    /// random chunk lengths whose sum reaches the dimension's end or past it.
    pub(crate) fn shape_and_grid() -> impl Strategy<Value = (Vec<u64>, Grid)> {
        let dim = (
            1u64..12,
            1u64..6,
            any::<bool>(),
            prop::collection::vec(1u64..6, 12),
            0u64..3,
        );
        prop::collection::vec(dim, 1..4).prop_map(|dims| {
            let mut shape = Vec::new();
            let mut grids = Vec::new();
            for (s, c, varying, sizes, extra) in dims {
                shape.push(s);
                if !varying {
                    grids.push(DimGrid::Regular(c));
                    continue;
                }
                let mut offsets = vec![0];
                for size in sizes {
                    if *offsets.last().unwrap() >= s && extra < offsets.len() as u64 {
                        break;
                    }
                    offsets.push(offsets.last().unwrap() + size);
                }
                grids.push(DimGrid::Varying(offsets.into()));
            }
            (shape, Grid::from_dims(grids))
        })
    }

    fn varying(sizes: &[u64]) -> DimGrid {
        let mut offsets = vec![0];
        for s in sizes {
            offsets.push(offsets.last().unwrap() + s);
        }
        DimGrid::Varying(offsets.into())
    }

    #[test]
    fn varying_dimensions_locate_every_index() {
        let d = varying(&[3, 1, 4]);
        let placed: Vec<(u64, u64)> = (0..9).map(|i| d.locate(i)).collect();
        assert_eq!(
            placed,
            [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (2, 0),
                (2, 1),
                (2, 2),
                (2, 3),
                (3, 0)
            ]
        );
        assert_eq!((d.start(1), d.size(1)), (3, 1));
        assert_eq!((d.start(2), d.size(2)), (4, 4));
        assert_eq!((d.start(3), d.size(3)), (8, 0));
        assert_eq!((d.start(u64::MAX), d.size(u64::MAX)), (8, 0));
        assert_eq!(d.max_size(), 4);
        assert_eq!(d.global(2, 3), Some(7));
        assert_eq!(d.global(2, 4), None);
        assert_eq!(d.global(3, 0), None);
        assert_eq!(DimGrid::Regular(5).global(u64::MAX, 0), None);
    }

    #[test]
    fn malformed_offsets_do_not_panic() {
        let d = DimGrid::Varying(Vec::new().into());
        assert_eq!(
            (d.locate(3), d.start(1), d.size(0), d.global(0, 0)),
            ((0, 3), 0, 0, None)
        );
        assert!(!Grid::from_dims(vec![d]).has_chunk(&[0]));
        let d = DimGrid::Varying(vec![5, 2].into());
        assert_eq!((d.locate(1), d.size(0)), ((0, 0), 0));
    }

    #[test]
    fn regular_dimensions() {
        let d = DimGrid::Regular(5);
        assert_eq!(d.locate(12), (2, 2));
        assert_eq!((d.start(2), d.size(2)), (10, 5));
    }

    fn grid(json: &str) -> std::result::Result<Grid, String> {
        let grid: MetadataV3 = serde_json::from_str(json).unwrap();
        Grid::of_v3(&grid)
    }

    #[test]
    fn rectilinear_metadata_with_run_lengths() {
        let g = grid(
            r#"{"name":"rectilinear","configuration":{"kind":"inline","chunk_shapes":[4,[[2,3],1]]}}"#,
        )
        .unwrap();
        assert!(!g.is_regular());
        assert_eq!(g.dims()[0], DimGrid::Regular(4));
        assert_eq!(g.dims()[1], varying(&[2, 2, 2, 1]));
        assert_eq!(g.chunk_shape(&[1, 3]), [4, 1]);
        assert_eq!(g.chunk_start(&[1, 3]), [4, 6]);
        assert!(g.has_chunk(&[100, 3]) && !g.has_chunk(&[0, 4]) && !g.has_chunk(&[0]));
        assert_eq!(g.max_shape(), [4, 2]);
        assert_eq!(
            g.clipped_sizes(&[9, 6]).unwrap(),
            [vec![4, 4, 1], vec![2, 2, 2]]
        );
        assert_eq!(
            g.clipped_sizes(&[0, 7]).unwrap(),
            [vec![], vec![2, 2, 2, 1]]
        );
        assert!(Grid::regular(&[1]).clipped_sizes(&[u64::MAX]).is_none());
    }

    #[test]
    fn absurd_run_lengths_are_refused_before_expanding() {
        let err = grid(
            r#"{"name":"rectilinear","configuration":{"kind":"inline","chunk_shapes":[[[1,1000000000000]]]}}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("chunk_shapes[0]") && err.contains("more chunk edges"),
            "{err}"
        );
        let err = grid(r#"{"name":"other","configuration":{}}"#).unwrap_err();
        assert!(err.contains("\"other\""), "{err}");
    }
}
