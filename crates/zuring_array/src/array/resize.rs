//! Changing an array's shape, as zarr-python's `Array.resize` does.

use std::sync::Arc;

use super::ZarrArray;
use crate::error::{ArrayError, Result};
use crate::grid::{DimGrid, Grid};
use crate::plan::for_each_coord;

impl ZarrArray {
    /// The array with its shape changed to `new_shape`, as zarr-python's `Array.resize`: the
    /// stored chunks (shards, when sharded) wholly outside the new shape are deleted, then the
    /// stored metadata document (`zarr.json`, or `.zarray` for v2) is replaced, atomically, with
    /// only its `shape` changed (and, for a rectilinear chunk grid grown past its listed edges,
    /// one edge more where zarr-python 3.4 adds it). Chunks the new edge cuts keep what they hold past it (as zarr
    /// keeps it), and growing writes no chunk: the new region reads as the fill value where no
    /// chunk is stored. This handle keeps the old shape; use the one returned.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when `new_shape` has another number of dimensions;
    /// [`ArrayError::Metadata`] when the stored document is
    /// unreadable; IO errors deleting chunks or writing the document (chunks already deleted stay
    /// deleted, as in zarr-python).
    pub fn resize(&self, new_shape: &[u64]) -> Result<Self> {
        let old_shape = self.shape().to_vec();
        if new_shape.len() != old_shape.len() {
            return Err(ArrayError::selection(format!(
                "resize to {new_shape:?}: the array has {} dimensions, not {}",
                old_shape.len(),
                new_shape.len()
            )));
        }
        let grid = &self.layout.file_grid;
        // The handle of the new shape first: a shape zarrs refuses fails before anything changes.
        let (mut opened, masked) = crate::json_text::parse(self.metadata_json().as_bytes())
            .map_err(|e| self.metadata_error(e))?;
        opened["shape"] = serde_json::json!(new_shape);
        grow_edges(&mut opened, grid, new_shape);
        let opened = crate::json_text::write(&opened, masked, false);
        let mut resized = Self::from_metadata(&self.path, &opened, Arc::clone(&self.ctx))?;
        resized.inner_order.clone_from(&self.inner_order);

        // The document and the files deleted are held from other writers until replaced and
        // gone: an attribute change meanwhile would write the old shape back, a chunk write
        // would put a deleted chunk back.
        let doomed = outside(&grid.counts(&old_shape), &grid.counts(new_shape));
        let _held = self.take_stored(doomed.iter().map(Vec::as_slice), true);
        for coords in doomed {
            self.ctx
                .reader
                .remove(&self.file_path(&coords))
                .map_err(ArrayError::Io)?;
        }

        let (file, text) = super::read_stored_metadata(&self.path)?;
        let (mut stored, masked) = crate::json_text::parse(&text)
            .map_err(|e| self.metadata_error(format!("{file}: {e}")))?;
        if !stored.is_object() {
            return Err(ArrayError::Metadata {
                path: self.path.clone(),
                message: format!("{file}: not a JSON object"),
            });
        }
        stored["shape"] = serde_json::json!(new_shape);
        grow_edges(&mut stored, grid, new_shape);
        let text = crate::json_text::write(&stored, masked, true);
        self.ctx
            .reader
            .write_atomic(&self.path.join(file), text.as_bytes(), false)
            .map_err(ArrayError::Io)?;
        Ok(resized)
    }

    fn metadata_error(&self, message: String) -> ArrayError {
        ArrayError::Metadata {
            path: self.path.clone(),
            message,
        }
    }
}

/// In a v3 document whose chunk grid is `grid`, the edges of a rectilinear grid grown to cover
/// `new_shape`, as zarr-python 3.4 grows them: each dimension listing its edges whose edges
/// end before the new extent gets one more edge reaching it (merged into the last run-length
/// element when of the same length); edges past a smaller extent stay listed (the spec allows
/// it), as do a regular dimension's single length.
fn grow_edges(doc: &mut serde_json::Value, grid: &Grid, new_shape: &[u64]) {
    for (d, (g, &extent)) in grid.dims().iter().zip(new_shape).enumerate() {
        let DimGrid::Varying(offsets) = g else {
            continue;
        };
        let end = offsets.last().copied().unwrap_or(0);
        if extent <= end {
            continue;
        }
        let edge = extent - end;
        let Some(list) = doc
            .pointer_mut(&format!("/chunk_grid/configuration/chunk_shapes/{d}"))
            .and_then(serde_json::Value::as_array_mut)
        else {
            continue;
        };
        let run = match list.last() {
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(edge) => Some(2),
            Some(serde_json::Value::Array(pair))
                if pair.len() == 2 && pair[0].as_u64() == Some(edge) =>
            {
                pair[1].as_u64().map(|count| count + 1)
            }
            _ => None,
        };
        match run {
            Some(count) => {
                if let Some(last) = list.last_mut() {
                    *last = serde_json::json!([edge, count]);
                }
            }
            None => list.push(serde_json::json!(edge)),
        }
    }
}

/// The cells of a grid of `old` cells per dimension that a grid of `new` cells does not have:
/// per dimension `d`, the cells at `d` past `new[d]` whose earlier dimensions are within both
/// grids (disjoint slabs, so each cell comes once).
fn outside(old: &[u64], new: &[u64]) -> Vec<Vec<u64>> {
    let mut cells = Vec::new();
    for d in (0..old.len()).filter(|&d| new[d] < old[d]) {
        let (lo, hi): (Vec<u64>, Vec<u64>) = (0..old.len())
            .map(|e| match e.cmp(&d) {
                std::cmp::Ordering::Less => (0, old[e].min(new[e])),
                std::cmp::Ordering::Equal => (new[d], old[d]),
                std::cmp::Ordering::Greater => (0, old[e]),
            })
            .unzip();
        for_each_coord(&lo, &hi, |cell| cells.push(cell.to_vec()));
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::outside;
    use proptest::prelude::*;

    proptest! {
        /// Each cell of the old grid outside the new one comes exactly once, and no other.
        #[test]
        fn outside_lists_each_dropped_cell_once(
            dims in proptest::collection::vec((0u64..5, 0u64..5), 1..4),
        ) {
            let old: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let new: Vec<u64> = dims.iter().map(|d| d.1).collect();
            let mut got = outside(&old, &new);
            got.sort();
            let mut want = Vec::new();
            let total: u64 = old.iter().product();
            for flat in 0..total {
                let mut rest = flat;
                let mut cell = vec![0; old.len()];
                for e in (0..old.len()).rev() {
                    cell[e] = rest % old[e];
                    rest /= old[e];
                }
                if cell.iter().zip(&new).any(|(c, n)| c >= n) {
                    want.push(cell);
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
}
