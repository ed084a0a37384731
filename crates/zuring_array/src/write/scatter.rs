//! Where a write request's values go: from the caller's value (numpy broadcasting of length-1
//! axes and 0-d values) into a stored chunk's decoded buffer, checked against both.

use std::borrow::Cow;

use crate::error::{ArrayError, Result};
use crate::grid::Grid;
use smallvec::SmallVec;

use crate::plan::{c_strides, num_elements, try_for_each_coord, ChunkRequest, Indices};

/// One dimension of an orthogonal write request: indices within the chunk, and their positions
/// along the value's axis (None: the dimension is not in the value).
pub(crate) type Dim<'a> = (&'a Indices, Option<&'a Indices>);

/// A write's values: C order, native endian, of `shape`. As in numpy, an axis of length 1 is
/// broadcast (its positions are ignored), and so is a 0-d value.
#[derive(Debug, Clone, Copy)]
pub struct WriteValue<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// The shape (empty: one element for every position).
    pub shape: &'a [u64],
}

/// A stored chunk's shape, C strides and number of elements.
#[derive(Clone)]
pub(crate) struct ChunkGeometry {
    pub shape: Vec<u64>,
    pub strides: Vec<usize>,
    pub elements: usize,
}

impl ChunkGeometry {
    /// The geometry of a chunk of `shape`.
    ///
    /// # Errors
    /// [`ArrayError::TooLarge`] when its size overflows.
    pub fn of(shape: Vec<u64>) -> Result<Self> {
        Ok(Self {
            strides: c_strides(&shape)?,
            elements: num_elements(&shape)?,
            shape,
        })
    }

    /// The geometry of stored chunk `coords` of `grid`: `regular` (the chunk shape) when the
    /// grid is regular, else the chunk's own.
    ///
    /// # Errors
    /// As [`ChunkGeometry::of`].
    pub fn in_grid<'a>(regular: &'a Self, grid: &Grid, coords: &[u64]) -> Result<Cow<'a, Self>> {
        if grid.is_regular() {
            Ok(Cow::Borrowed(regular))
        } else {
            Self::of(grid.chunk_shape(coords)).map(Cow::Owned)
        }
    }
}

/// Where each element of a request goes in its stored chunk and comes from in the value.
pub(crate) struct Scatter<'a> {
    pub chunk_strides: &'a [usize],
    pub file_shape: &'a [u64],
    pub value_strides: &'a [usize],
    pub value: WriteValue<'a>,
    pub esize: usize,
    pub chunk_bytes: usize,
}

impl Scatter<'_> {
    /// This scatter into a chunk of `geometry` (a rectilinear grid's chunks differ in shape).
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when the chunk's size in bytes overflows.
    pub fn for_chunk<'b>(&'b self, geometry: &'b ChunkGeometry) -> Result<Scatter<'b>> {
        Ok(Scatter {
            chunk_strides: &geometry.strides,
            file_shape: &geometry.shape,
            chunk_bytes: geometry
                .elements
                .checked_mul(self.esize)
                .ok_or_else(|| ArrayError::selection("stored chunk too large"))?,
            ..*self
        })
    }

    fn broadcast(&self) -> bool {
        self.value.shape.is_empty()
    }

    /// Copy `n` consecutive elements of the value into consecutive elements of the chunk (with
    /// no chunk buffer: only check that both ranges exist).
    fn copy(
        &self,
        buf: Option<&mut [u8]>,
        chunk_elem: usize,
        value_elem: usize,
        n: usize,
    ) -> Result<()> {
        let e = self.esize;
        let src = self
            .value
            .bytes
            .get(value_elem * e..(value_elem + n) * e)
            .ok_or_else(|| ArrayError::selection("value position outside the value"))?;
        let dst = chunk_elem * e..(chunk_elem + n) * e;
        if dst.end > self.chunk_bytes {
            return Err(ArrayError::selection("index outside the stored chunk"));
        }
        if let Some(buf) = buf {
            buf[dst].copy_from_slice(src);
        }
        Ok(())
    }

    fn check_index(&self, d: usize, i: u64) -> Result<usize> {
        if i < self.file_shape[d] {
            usize::try_from(i).map_err(|_| ArrayError::selection("index too large"))
        } else {
            Err(ArrayError::selection(format!(
                "index {i} outside the stored chunk (dimension {d} has {})",
                self.file_shape[d]
            )))
        }
    }

    /// The error of a request with another number of dimensions than the chunk.
    fn wrong_rank(&self) -> ArrayError {
        ArrayError::selection(format!(
            "write request does not have {} dimensions",
            self.file_shape.len()
        ))
    }

    /// Apply one request to the decoded chunk `buf` (None: only check the request).
    pub fn apply(&self, buf: Option<&mut [u8]>, request: &ChunkRequest) -> Result<()> {
        match request {
            ChunkRequest::Orthogonal {
                indices, positions, ..
            } => {
                if indices.len() != positions.len() {
                    return Err(self.wrong_rank());
                }
                let dims: SmallVec<[Dim<'_>; 8]> = indices
                    .iter()
                    .zip(positions)
                    .map(|(i, p)| (i, p.as_ref()))
                    .collect();
                self.apply_orthogonal(buf, &dims)
            }
            ChunkRequest::Points {
                coords, positions, ..
            } => self.apply_points(buf, coords, positions),
        }
    }

    /// Apply an orthogonal request, given per dimension as its indices within the chunk and
    /// their value positions (None: the dimension is not in the value), to the decoded chunk
    /// `buf` (None: only check it).
    pub fn apply_orthogonal(&self, mut buf: Option<&mut [u8]>, dims: &[Dim<'_>]) -> Result<()> {
        let ndim = self.file_shape.len();
        if dims.len() != ndim {
            return Err(self.wrong_rank());
        }
        // Per dimension: (offset in the chunk, offset in the value), in elements.
        let mut axis = 0usize;
        let mut offsets: SmallVec<[Vec<(usize, usize)>; 8]> = SmallVec::new();
        for (d, &(indices, positions)) in dims.iter().enumerate() {
            let stride = match positions {
                Some(_) if !self.broadcast() => {
                    let s = *self.value_strides.get(axis).ok_or_else(|| {
                        ArrayError::selection("more value axes than the value has")
                    })?;
                    axis += 1;
                    Some((s, self.value.shape[axis - 1]))
                }
                _ => None,
            };
            let mut dim = Vec::with_capacity(indices.len());
            for (k, i) in indices.iter().enumerate() {
                let c = self.check_index(d, i)? * self.chunk_strides[d];
                let v = match (stride, positions) {
                    (Some((_, 1)), Some(_)) => 0,
                    (Some((s, n)), Some(p)) => {
                        let p = p.get(k).ok_or_else(|| {
                            ArrayError::selection("fewer value positions than indices")
                        })?;
                        if p >= n {
                            return Err(ArrayError::selection(format!(
                                "value position {p} outside the value axis of {n}"
                            )));
                        }
                        usize::try_from(p).unwrap_or(usize::MAX) * s
                    }
                    _ => 0,
                };
                dim.push((c, v));
            }
            offsets.push(dim);
        }
        if offsets.iter().any(Vec::is_empty) {
            return Ok(());
        }
        // When the last dimension is a run in both the chunk and the value (a slice with
        // step 1: every region write), each run is one copy.
        let runs = ndim > 0 && {
            let last = &offsets[ndim - 1];
            last.iter()
                .enumerate()
                .all(|(k, &(c, v))| c == last[0].0 + k && v == last[0].1 + k)
        };
        let (dims, width, base) = if runs {
            (ndim - 1, offsets[ndim - 1].len(), offsets[ndim - 1][0])
        } else {
            (ndim, 1, (0, 0))
        };
        // Every combination of the other dimensions' entries.
        let lens: SmallVec<[u64; 8]> = offsets[..dims].iter().map(|o| o.len() as u64).collect();
        let zeros: SmallVec<[u64; 8]> = smallvec::smallvec![0; dims];
        try_for_each_coord(&zeros, &lens, |at| {
            let (mut c, mut v) = base;
            for (d, &k) in at.iter().enumerate() {
                let (dc, dv) = offsets[d][usize::try_from(k).unwrap_or(usize::MAX)];
                c += dc;
                v += dv;
            }
            self.copy(buf.as_deref_mut(), c, v, width)
        })
    }

    /// Apply a points request (coordinates within the chunk, and value positions) to the
    /// decoded chunk `buf` (None: only check it).
    pub fn apply_points(
        &self,
        mut buf: Option<&mut [u8]>,
        coords: &[Vec<u64>],
        positions: &[u64],
    ) -> Result<()> {
        if coords.len() != positions.len() {
            return Err(ArrayError::selection(
                "points and value positions differ in number",
            ));
        }
        for (point, &p) in coords.iter().zip(positions) {
            if point.len() != self.file_shape.len() {
                return Err(ArrayError::selection("point of the wrong dimension"));
            }
            let mut c = 0usize;
            for (d, &i) in point.iter().enumerate() {
                c += self.check_index(d, i)? * self.chunk_strides[d];
            }
            let v = if self.broadcast() || self.value.bytes.len() == self.esize {
                0
            } else {
                usize::try_from(p).unwrap_or(usize::MAX)
            };
            self.copy(buf.as_deref_mut(), c, v, 1)?;
        }
        Ok(())
    }
}
