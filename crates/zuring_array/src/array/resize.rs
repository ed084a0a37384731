//! Changing an array's shape, as zarr-python's `Array.resize` does.

use std::sync::Arc;

use super::ZarrArray;
use crate::error::{ArrayError, Result};
use crate::plan::for_each_coord;

impl ZarrArray {
    /// The array with its shape changed to `new_shape`, as zarr-python's `Array.resize`: the
    /// stored chunks (shards, when sharded) wholly outside the new shape are deleted, then the
    /// stored metadata document (`zarr.json`, or `.zarray` for v2) is replaced, atomically, with
    /// only its `shape` changed. Chunks the new edge cuts keep what they hold past it (as zarr
    /// keeps it), and growing writes no chunk: the new region reads as the fill value where no
    /// chunk is stored. This handle keeps the old shape; use the one returned.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when `new_shape` has another number of dimensions;
    /// [`ArrayError::Unsupported`] for a rectilinear chunk grid (growing it changes its listed
    /// edges, which zuring does not write); [`ArrayError::Metadata`] when the stored document is
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
        if !self.layout.file_grid.is_regular() {
            return Err(ArrayError::Unsupported {
                what: format!(
                    "{}: resizing an array with a rectilinear chunk grid (its listed chunk edges \
                     would change; zarr-python 3.4 resizes such arrays)",
                    self.path.display()
                ),
            });
        }
        // The handle of the new shape first: a shape zarrs refuses fails before anything changes.
        let (mut opened, masked) = crate::json_text::parse(self.metadata_json().as_bytes())
            .map_err(|e| self.metadata_error(e))?;
        opened["shape"] = serde_json::json!(new_shape);
        let opened = crate::json_text::write(&opened, masked, false);
        let mut resized = Self::from_metadata(&self.path, &opened, Arc::clone(&self.ctx))?;
        resized.inner_order.clone_from(&self.inner_order);

        let file_shape = &self.layout.file_shape;
        let counts = |shape: &[u64]| -> Vec<u64> {
            shape
                .iter()
                .zip(file_shape)
                .map(|(&n, &c)| n.div_ceil(c.max(1)))
                .collect()
        };
        // The document and the files deleted are held from other writers until replaced and
        // gone: an attribute change meanwhile would write the old shape back, a chunk write
        // would put a deleted chunk back.
        let doomed = outside(&counts(&old_shape), &counts(new_shape));
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
