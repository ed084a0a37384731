//! Reads: regions, crops, orthogonal and point selections, zarr-python's chunk requests, and
//! variable-size data, planned into one [`ChunkPlan`] and carried out by the engine.

use std::path::PathBuf;
use std::sync::Arc;

use zarrs::array::ArraySubset;

use super::{zarrs_error, ZarrArray};
use crate::assemble::{as_bytes_mut, bytemuck_free::Plain, fill_new, OutView};
use crate::engine::ReadContext;
use crate::error::{ArrayError, Result};
use crate::plan::{
    c_strides, num_elements, plan_box, plan_chunk_requests, plan_orthogonal, plan_points,
    slices_to_lists, BoxRead, ChunkPlan, ChunkRequest, ReadPlan, Selection,
};
use crate::source::{ByteSource, LocalSource, NotingMissing};

impl ZarrArray {
    fn run(&self, plan: impl Into<ReadPlan>, out: &mut [u8]) -> Result<()> {
        // Outputs from callers (numpy's `empty`) are often untouched: ask for huge pages before
        // the decode threads fault them in.
        zuring_io::advise_huge_pages(out.as_mut_ptr(), out.len());
        self.run_view(plan, &[OutView::new(out)])
    }

    fn run_view(&self, plan: impl Into<ReadPlan>, view: &[OutView<'_>]) -> Result<()> {
        self.run_view_from(&LocalSource::new(&self.ctx.reader), plan, view)
    }

    fn run_view_from(
        &self,
        source: &dyn ByteSource,
        plan: impl Into<ReadPlan>,
        view: &[OutView<'_>],
    ) -> Result<()> {
        self.execute(source, plan.into(), view, None)
    }

    /// Carry out `plan` with bytes from `source` into `view` (for variable-size data, decoded
    /// chunks go to `variable` and the outputs get handles).
    pub(crate) fn execute(
        &self,
        source: &dyn ByteSource,
        plan: ReadPlan,
        view: &[OutView<'_>],
        variable: Option<&crate::variable::VariableChunks>,
    ) -> Result<()> {
        let file_path = |coords: &[u64]| self.layout.file_path(&self.array, coords);
        ReadContext {
            ctx: &self.ctx,
            layout: &self.layout,
            file_path: &file_path,
            source,
            variable,
        }
        .execute_view(plan, view)
    }

    pub(crate) fn check_out(&self, shape: &[u64], out: &[u8]) -> Result<()> {
        let expected = num_elements(shape)?
            .checked_mul(self.layout.element_size)
            .ok_or(ArrayError::TooLarge {
                what: "output",
                elements: shape.iter().product(),
                element_size: self.layout.element_size,
            })?;
        if out.len() == expected {
            Ok(())
        } else {
            Err(ArrayError::OutputSize {
                expected,
                got: out.len(),
            })
        }
    }

    /// Output bytes for `shape`, refusing sizes no allocation could satisfy.
    fn output_len(&self, shape: &[u64]) -> Result<usize> {
        num_elements(shape)?
            .checked_mul(self.layout.element_size)
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or(ArrayError::TooLarge {
                what: "output",
                elements: shape.iter().product(),
                element_size: self.layout.element_size,
            })
    }

    pub(crate) fn require_fixed_size(&self) -> Result<()> {
        if self.layout.element_size == 0 {
            Err(ArrayError::Unsupported {
                what: format!(
                    "{}: byte reads and writes of the variable-size data type {} (use read_variable / write_variable)",
                    self.path.display(),
                    self.data_type_name()
                ),
            })
        } else {
            Ok(())
        }
    }

    /// Plan `selection`, after checking it against the array.
    fn plan(&self, selection: &Selection) -> Result<ReadPlan> {
        self.require_fixed_size()?;
        self.plan_selection(selection)
    }

    /// Plan `selection` (any data type), after checking it against the array.
    pub(crate) fn plan_selection(&self, selection: &Selection) -> Result<ReadPlan> {
        selection.validate(&self.layout.shape)?;
        let out_shape = selection.output_shape();
        let mut plan = ChunkPlan::new();
        let chunk = &self.layout.read_grid;
        match selection {
            // A box is planned by its bounds, its chunks worked out as they are read.
            Selection::Region(slices) if slices.iter().all(|s| s.step == 1) => {
                let start: Vec<u64> = slices.iter().map(|s| s.start).collect();
                let strides = c_strides(&out_shape)?.into();
                if let Some(read) = BoxRead::new(chunk, &start, &out_shape, 0, &strides) {
                    return Ok(ReadPlan::Boxes(vec![read]));
                }
            }
            Selection::Region(slices) => {
                plan_orthogonal(&mut plan, chunk, &slices_to_lists(slices))?
            }
            Selection::Orthogonal(lists) => plan_orthogonal(&mut plan, chunk, lists)?,
            Selection::Points(points) => plan_points(&mut plan, chunk, points),
        }
        Ok(plan.into())
    }

    /// Read `selection` into `out` (C order of the selection's output shape, native endian).
    ///
    /// # Errors
    /// [`ArrayError::Selection`] before any IO when out of bounds; [`ArrayError::OutputSize`];
    /// corrupt data errors naming the file and chunk; IO errors.
    pub fn read_into(&self, selection: &Selection, out: &mut [u8]) -> Result<()> {
        let plan = self.plan(selection)?;
        self.check_out(&selection.output_shape(), out)?;
        self.run(plan, out)
    }

    /// Read what zarr-python's pipeline asks of a batch of stored chunks (shards, when sharded)
    /// into `outputs` (each: its shape and its bytes, C order, native endian; a request names its
    /// output by index), in one planned batch: every shard
    /// index and chunk range the batch needs is read together, and each inner chunk is decoded
    /// once even when several requests use it.
    ///
    /// Returns the requested stored chunks that do not exist (read as the fill value), by their
    /// coordinates in the chunk grid, each once, in request order: what zarr-python >= 3.2 asks
    /// a pipeline to report per chunk, known from the read itself.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when a request does not fit the array or the output (before any
    /// IO); corrupt data and IO errors as for other reads.
    pub fn read_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        outputs: &mut [(Vec<u64>, &mut [u8])],
    ) -> Result<Vec<Vec<u64>>> {
        self.read_chunk_requests_from(&LocalSource::new(&self.ctx.reader), requests, outputs)
    }

    /// As [`ZarrArray::read_chunk_requests`], on this thread and from the page cache only: for a
    /// caller that must not block (an event loop) to serve a small warm read itself. Returns
    /// `Ok(None)`, having waited for no disk read, when some bytes are not cached (the outputs
    /// may then hold part of the result: read again with [`ZarrArray::read_chunk_requests`]),
    /// else the missing stored chunks as [`ZarrArray::read_chunk_requests`] does.
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk_requests`].
    pub fn read_chunk_requests_cached(
        &self,
        requests: &[ChunkRequest],
        outputs: &mut [(Vec<u64>, &mut [u8])],
    ) -> Result<Option<Vec<Vec<u64>>>> {
        let source = LocalSource::cached_only(&self.ctx.reader);
        match self.read_chunk_requests_from(&source, requests, outputs) {
            Ok(missing) => Ok(Some(missing)),
            Err(e) if e.is_not_cached() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// As [`ZarrArray::read_chunk_requests`], with the bytes coming from `source` instead of the
    /// array's directory: keys are [`ZarrArray::file_path`]s, so an array made with
    /// [`ZarrArray::from_metadata`] at a store prefix asks for store keys. The same two batches
    /// (shard indexes, then chunk ranges) go to `source`; the missing stored chunks are those
    /// it has no bytes for.
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk_requests`]; a failed fetch is an IO error naming the key.
    pub fn read_chunk_requests_from(
        &self,
        source: &dyn ByteSource,
        requests: &[ChunkRequest],
        outputs: &mut [(Vec<u64>, &mut [u8])],
    ) -> Result<Vec<Vec<u64>>> {
        self.require_fixed_size()?;
        for (shape, out) in outputs.iter() {
            self.check_out(shape, out)?;
        }
        let shapes: Vec<Vec<u64>> = outputs.iter().map(|(s, _)| s.clone()).collect();
        let l = &self.layout;
        let plan = plan_chunk_requests(&l.shape, &l.file_grid, &l.read_grid, &shapes, requests)?;
        let views: Vec<OutView<'_>> = outputs
            .iter_mut()
            .map(|(_, out)| {
                zuring_io::advise_huge_pages(out.as_mut_ptr(), out.len());
                OutView::new(out)
            })
            .collect();
        let noting = NotingMissing::new(source);
        self.run_view_from(&noting, plan, &views)?;
        noting.missing(self.request_files(requests))
    }

    /// Each request's stored chunk: its coordinates and its file.
    pub(crate) fn request_files<'r>(
        &self,
        requests: &'r [ChunkRequest],
    ) -> Vec<(&'r [u64], PathBuf)> {
        requests
            .iter()
            .map(|r| (r.chunk(), self.layout.file_path(&self.array, r.chunk())))
            .collect()
    }

    /// Read `selection` into a new byte vector.
    ///
    /// # Errors
    /// As [`ZarrArray::read_into`].
    pub fn read_bytes(&self, selection: &Selection) -> Result<Vec<u8>> {
        let plan = self.plan(selection)?;
        let len = self.output_len(&selection.output_shape())?;
        fill_new(len, |view| self.run_view(plan, std::slice::from_ref(view)))
    }

    /// Read `selection` as an `ndarray` of `T` (which must match the data type's size).
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when `T`'s size differs from the element size; as
    /// [`ZarrArray::read_into`].
    pub fn read<T: Plain>(&self, selection: &Selection) -> Result<ndarray::ArrayD<T>> {
        self.check_type::<T>()?;
        let shape = selection.output_shape();
        let n = num_elements(&shape)?;
        let mut data = vec![T::default(); n];
        self.read_into(selection, as_bytes_mut(&mut data))?;
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .collect();
        ndarray::ArrayD::from_shape_vec(dims, data)
            .map_err(|e| ArrayError::selection(e.to_string()))
    }

    fn check_type<T>(&self) -> Result<()> {
        if std::mem::size_of::<T>() == self.layout.element_size {
            Ok(())
        } else {
            Err(ArrayError::selection(format!(
                "element type of {} bytes requested for {} ({} bytes)",
                std::mem::size_of::<T>(),
                self.data_type_name(),
                self.layout.element_size
            )))
        }
    }

    /// Read a batch of equal-shape crops in one call: `starts` holds B start coordinates
    /// (flattened, B x ndim); `out` receives B C-contiguous crops of `crop_shape`.
    /// Chunks shared by several crops are read and decoded once.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] (before any IO) when a crop leaves the array; as
    /// [`ZarrArray::read_into`].
    pub fn read_crops_into(
        &self,
        starts: &[u64],
        crop_shape: &[u64],
        out: &mut [u8],
    ) -> Result<()> {
        let (plan, out_shape) = self.plan_crops(starts, crop_shape)?;
        self.check_out(&out_shape, out)?;
        self.run(plan, out)
    }

    /// [`ZarrArray::read_crops_into`] into a new byte vector that is never zero-filled first
    /// (the read writes every byte).
    ///
    /// # Errors
    /// As [`ZarrArray::read_crops_into`].
    pub fn read_crops_bytes(&self, starts: &[u64], crop_shape: &[u64]) -> Result<Vec<u8>> {
        let (plan, out_shape) = self.plan_crops(starts, crop_shape)?;
        let len = self.output_len(&out_shape)?;
        fill_new(len, |view| self.run_view(plan, std::slice::from_ref(view)))
    }

    /// Check a batch of crops (before any IO) and plan it; returns the plan and output shape.
    fn plan_crops(&self, starts: &[u64], crop_shape: &[u64]) -> Result<(ChunkPlan, Vec<u64>)> {
        self.require_fixed_size()?;
        let ndim = self.layout.ndim();
        if crop_shape.len() != ndim || (ndim > 0 && !starts.len().is_multiple_of(ndim)) {
            return Err(ArrayError::selection(format!(
                "crops need {ndim} start coordinates each and a {ndim}-d crop shape, got {} coordinates and shape {crop_shape:?}",
                starts.len()
            )));
        }
        let batch = starts.len().checked_div(ndim).unwrap_or(1);
        for (b, start) in starts.chunks(ndim.max(1)).enumerate().take(batch) {
            for d in 0..ndim {
                let end = start[d].checked_add(crop_shape[d]);
                if end.is_none_or(|e| e > self.layout.shape[d]) {
                    return Err(ArrayError::selection(format!(
                        "crop {b} spans {}..{} in dimension {d} of size {}",
                        start[d],
                        start[d].saturating_add(crop_shape[d]),
                        self.layout.shape[d]
                    )));
                }
            }
        }
        let mut out_shape = vec![batch as u64];
        out_shape.extend_from_slice(crop_shape);
        let crop_len = num_elements(crop_shape)?;
        let strides: Arc<[usize]> = c_strides(crop_shape)?.into();
        let mut plan = ChunkPlan::new();
        for (b, start) in starts.chunks(ndim.max(1)).enumerate().take(batch) {
            let start = if ndim == 0 { &[][..] } else { start };
            plan_box(
                &mut plan,
                &self.layout.read_grid,
                start,
                crop_shape,
                b * crop_len,
                &strides,
            );
        }
        Ok((plan, out_shape))
    }

    /// [`ZarrArray::read_crops_into`] into a new vector of `T`.
    ///
    /// # Errors
    /// As [`ZarrArray::read_crops_into`].
    pub fn read_crops<T: Plain>(&self, starts: &[u64], crop_shape: &[u64]) -> Result<Vec<T>> {
        self.check_type::<T>()?;
        let ndim = self.layout.ndim().max(1);
        let n = num_elements(crop_shape)?.saturating_mul(starts.len() / ndim);
        let mut data = vec![T::default(); n];
        self.read_crops_into(starts, crop_shape, as_bytes_mut(&mut data))?;
        Ok(data)
    }

    /// The subset for `ranges` of a variable-size array, checked before any IO.
    fn variable_region(&self, ranges: &[std::ops::Range<u64>], what: &str) -> Result<ArraySubset> {
        Selection::from_ranges(ranges).validate(&self.layout.shape)?;
        self.require_variable_size(what)?;
        Ok(ArraySubset::new_with_ranges(ranges))
    }

    /// [`ArrayError::Unsupported`] naming `what` unless the data type is variable-size.
    pub(crate) fn require_variable_size(&self, what: &str) -> Result<()> {
        if self.layout.element_size == 0 {
            return Ok(());
        }
        Err(ArrayError::Unsupported {
            what: format!(
                "{}: {what} on data type {}",
                self.path.display(),
                self.data_type_name()
            ),
        })
    }

    /// Read a region of a string array (`string` / vlen-utf8), C order.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when out of bounds; [`ArrayError::Unsupported`] for other data
    /// types; decoding errors from zarrs naming the array.
    pub fn read_strings(&self, ranges: &[std::ops::Range<u64>]) -> Result<Vec<String>> {
        let subset = self.variable_region(ranges, "read_strings")?;
        self.array
            .retrieve_array_subset::<Vec<String>>(&subset)
            .map_err(|e| zarrs_error(&self.path, e))
    }

    /// Read a region of a variable-length bytes array (`bytes` / vlen-bytes), C order.
    ///
    /// # Errors
    /// As [`ZarrArray::read_strings`].
    pub fn read_var_bytes(&self, ranges: &[std::ops::Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let subset = self.variable_region(ranges, "read_var_bytes")?;
        self.array
            .retrieve_array_subset::<Vec<Vec<u8>>>(&subset)
            .map_err(|e| zarrs_error(&self.path, e))
    }
}

#[cfg(test)]
impl ZarrArray {
    /// [`ZarrArray::read_into`], its output written with streaming stores or not (see
    /// `assemble::OutView`), whatever its size.
    fn read_into_streaming(
        &self,
        selection: &Selection,
        out: &mut [u8],
        stream: bool,
    ) -> Result<()> {
        let plan = self.plan(selection)?;
        self.check_out(&selection.output_shape(), out)?;
        self.run_view(plan, &[OutView::new(out).streaming(stream)])
    }
}

#[cfg(test)]
mod tests {
    use crate::Selection;

    #[test]
    fn reads_written_with_streaming_stores_equal_ordinary_ones() {
        // Rows of 100 float32 elements (400 bytes: long enough to stream, each chunk column's
        // at another alignment), chunks read on 3 threads, selections of several kinds: whole,
        // offset and strided regions, and a missing chunk.
        let dir = tempfile::tempdir().unwrap();
        let meta = r#"{"zarr_format":3,"node_type":"array","shape":[40,300],"data_type":"float32",
          "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[8,100]}},
          "chunk_key_encoding":{"name":"default"},"fill_value":-1.5,
          "codecs":[{"name":"bytes","configuration":{"endian":"little"}},
                    {"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4,"blocksize":0}}]}"#;
        let (array, _) = crate::array::test_array(dir.path(), 3, meta);
        let values: Vec<f32> = (0..32 * 300).map(|i| i as f32 * 0.5).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        // Rows 32..40 are never written: their chunks are missing.
        array.write_region(&[0..32, 0..300], &bytes).unwrap();
        let selections = [
            Selection::all(&[40, 300]),
            Selection::from_ranges(&[3..37, 7..293]),
            Selection::Region(vec![
                crate::plan::DimSlice {
                    start: 1,
                    stop: 39,
                    step: 3,
                },
                crate::plan::DimSlice {
                    start: 0,
                    stop: 300,
                    step: 1,
                },
            ]),
        ];
        for selection in &selections {
            let len =
                usize::try_from(selection.output_shape().iter().product::<u64>()).unwrap() * 4;
            let mut streamed = vec![0xAB; len];
            let mut plain = vec![0xCD; len];
            array
                .read_into_streaming(selection, &mut streamed, true)
                .unwrap();
            array
                .read_into_streaming(selection, &mut plain, false)
                .unwrap();
            assert!(streamed == plain, "{selection:?}");
            assert_eq!(plain, array.read_bytes(selection).unwrap());
        }
        let whole = array.read_bytes(&selections[0]).unwrap();
        assert_eq!(&whole[..bytes.len()], &bytes[..]);
        assert_eq!(
            &whole[bytes.len()..bytes.len() + 4],
            &(-1.5f32).to_ne_bytes()
        );
    }
}
