//! [`ZarrArray`]: open, read (regions, crops, orthogonal, points) and write Zarr arrays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use zarrs::array::{Array, ArrayMetadata, ArraySubset, CodecOptions};
use zuring_io::{Reader, ReaderOptions};
use zuring_zarrs::UringStore;

use crate::assemble::{as_bytes_mut, bytemuck_free::Plain, fill_new, OutView};
use crate::engine::ReadContext;
use crate::error::{ArrayError, Result};
use crate::layout::{ArrayLayout, ReadMode};
use crate::plan::{
    c_strides, num_elements, plan_box, plan_chunk_requests, plan_orthogonal, plan_points,
    slices_to_lists, ChunkPlan, ChunkRequest, Selection,
};
use crate::pool::DecodePool;
use crate::shard_index::ShardIndexCache;
use crate::source::{ByteSource, LocalSource};

/// A stored chunk (a shard, when sharded) by its coordinates: its bytes, or None when absent (or,
/// returned from a write, to be deleted).
pub type StoredChunk = (Vec<u64>, Option<Vec<u8>>);

/// Options shared by the arrays opened with one [`Context`]. `Default` gives the documented
/// defaults.
#[derive(Debug, Clone)]
pub struct ArrayOptions {
    /// Decode threads; 0 means one per core. Default: 0.
    pub threads: usize,
    /// Check crc32c (and other) checksums while decoding. Default: true.
    pub validate_checksums: bool,
    /// Bytes of decoded shard indexes kept (LRU). Default: 64 MiB.
    pub index_cache_bytes: usize,
    /// The IO reader's options. Default: [`ReaderOptions::default`].
    pub reader: ReaderOptions,
}

impl Default for ArrayOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            validate_checksums: true,
            index_cache_bytes: 64 << 20,
            reader: ReaderOptions::default(),
        }
    }
}

fn env_number(name: &'static str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            ArrayError::Io(zuring_io::IoError::InvalidConfig {
                name,
                value: v,
                expected: "a non-negative integer",
            })
        }),
        Err(_) => Ok(None),
    }
}

impl ArrayOptions {
    /// The defaults with the environment applied: `ZURING_THREADS` (decode threads),
    /// `ZURING_VALIDATE_CHECKSUMS` (`0` turns checksum validation off),
    /// `ZURING_INDEX_CACHE_BYTES`, and the reader's variables ([`ReaderOptions::from_env`]).
    ///
    /// # Errors
    /// [`ArrayError::Io`] with `InvalidConfig` naming a variable with a bad value.
    pub fn from_env() -> Result<Self> {
        let mut o = Self {
            reader: ReaderOptions::from_env()?,
            ..Self::default()
        };
        if let Some(n) = env_number("ZURING_THREADS")? {
            o.threads = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Ok(v) = std::env::var("ZURING_VALIDATE_CHECKSUMS") {
            o.validate_checksums = !matches!(v.trim(), "0" | "false" | "no" | "off");
        }
        if let Some(n) = env_number("ZURING_INDEX_CACHE_BYTES")? {
            o.index_cache_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(o)
    }
}

/// What arrays share: the IO reader, the decode pool, the shard-index cache.
#[derive(Debug)]
pub struct Context {
    pub(crate) options: ArrayOptions,
    pub(crate) reader: Arc<Reader>,
    pub(crate) pool: DecodePool,
    pub(crate) indexes: ShardIndexCache,
}

impl Context {
    /// Codec options for this context's arrays (checksums validated unless switched off).
    pub(crate) fn codec_options(&self) -> CodecOptions {
        CodecOptions::default().with_validate_checksums(self.options.validate_checksums)
    }

    /// A context with `options`.
    ///
    /// # Errors
    /// When the IO backend cannot start.
    pub fn new(options: ArrayOptions) -> Result<Arc<Self>> {
        let reader = Arc::new(Reader::new(options.reader.clone())?);
        Ok(Self::with_reader(options, reader))
    }

    fn with_reader(options: ArrayOptions, reader: Arc<Reader>) -> Arc<Self> {
        Arc::new(Self {
            pool: DecodePool::new(options.threads),
            indexes: ShardIndexCache::new(options.index_cache_bytes),
            reader,
            options,
        })
    }

    /// The process-wide context, configured from the environment
    /// ([`ArrayOptions::from_env`]).
    ///
    /// # Errors
    /// When a variable is invalid or the IO backend cannot start.
    pub fn shared() -> Result<Arc<Self>> {
        static SHARED: OnceLock<Arc<Context>> = OnceLock::new();
        if let Some(ctx) = SHARED.get() {
            return Ok(Arc::clone(ctx));
        }
        // The process-wide reader (also behind `UringStore::new`): one set of rings, one fd
        // cache, whichever API a program uses.
        let ctx = Self::with_reader(ArrayOptions::from_env()?, Reader::shared()?);
        Ok(Arc::clone(SHARED.get_or_init(|| ctx)))
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &ArrayOptions {
        &self.options
    }

    /// The IO reader.
    #[must_use]
    pub fn reader(&self) -> &Arc<Reader> {
        &self.reader
    }

    /// Decode threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

/// A Zarr array (v3, or v2) in a local directory.
///
/// ```
/// use zuring_array::{ZarrArray, DimSlice};
/// # let dir = tempfile::tempdir().unwrap();
/// let meta = r#"{"zarr_format":3,"node_type":"array","shape":[6,4],"data_type":"uint16",
///   "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4,4]}},
///   "chunk_key_encoding":{"name":"default"},"fill_value":0,
///   "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[2,2],
///     "codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":false}}],
///     "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}]}}]}"#;
/// let array = ZarrArray::create(dir.path(), meta)?;
/// let values: Vec<u16> = (0..24).collect();
/// let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
/// array.write_region(&[0..6, 0..4], &bytes)?;
/// // Two 2x2 crops in one call.
/// let crops: Vec<u16> = array.read_crops(&[0, 0, 3, 1], &[2, 2])?;
/// assert_eq!(crops, [0, 1, 4, 5, 13, 14, 17, 18]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ZarrArray {
    path: PathBuf,
    array: Array<UringStore>,
    layout: ArrayLayout,
    ctx: Arc<Context>,
}

pub(crate) fn zarrs_error(path: &Path, err: impl std::fmt::Display) -> ArrayError {
    ArrayError::Zarrs {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn open_error(path: &Path, err: &zarrs::array::ArrayCreateError) -> ArrayError {
    let message = err.to_string();
    let lower = message.to_ascii_lowercase();
    if lower.contains("unsupported") || lower.contains("not supported") {
        ArrayError::Unsupported {
            what: format!("{}: {message}", path.display()),
        }
    } else {
        ArrayError::Metadata {
            path: path.to_path_buf(),
            message,
        }
    }
}

impl ZarrArray {
    /// Open the array in directory `path` with the shared context.
    ///
    /// # Errors
    /// [`ArrayError::NotFound`] when there is no array metadata; [`ArrayError::Metadata`] naming
    /// what is invalid; [`ArrayError::Unsupported`] for codecs or data types zuring cannot read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Context::shared()?)
    }

    /// Open with an explicit context.
    ///
    /// # Errors
    /// As [`ZarrArray::open`].
    pub fn open_with(path: impl AsRef<Path>, ctx: Arc<Context>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = if path.join("zarr.json").is_file() {
            "zarr.json"
        } else if path.join(".zarray").is_file() {
            ".zarray"
        } else {
            return Err(ArrayError::NotFound { path });
        };
        let text = std::fs::read(path.join(file)).map_err(|e| ArrayError::Metadata {
            path: path.clone(),
            message: format!("{file}: {e}"),
        })?;
        crate::metadata::check_array_metadata(&path, file, &text)?;
        let store = Arc::new(
            UringStore::with_reader(&path, Arc::clone(&ctx.reader))
                .map_err(|e| zarrs_error(&path, e))?,
        );
        let array = Array::open(store, "/").map_err(|e| open_error(&path, &e))?;
        let layout = ArrayLayout::new(&array, &path)?;
        Ok(Self {
            path,
            array,
            layout,
            ctx,
        })
    }

    /// Open the array in directory `path` whose metadata is `metadata_json` (v3 `zarr.json` or v2
    /// `.zarray` text) without reading it from disk: for callers that already hold it.
    ///
    /// # Errors
    /// As [`ZarrArray::create`], without writing anything.
    pub fn from_metadata(
        path: impl AsRef<Path>,
        metadata_json: &str,
        ctx: Arc<Context>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let metadata: ArrayMetadata =
            serde_json::from_str(metadata_json).map_err(|e| ArrayError::Metadata {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let store = Arc::new(
            UringStore::with_reader(&path, Arc::clone(&ctx.reader))
                .map_err(|e| zarrs_error(&path, e))?,
        );
        let array =
            Array::new_with_metadata(store, "/", metadata).map_err(|e| open_error(&path, &e))?;
        let layout = ArrayLayout::new(&array, &path)?;
        Ok(Self {
            path,
            array,
            layout,
            ctx,
        })
    }

    /// Create an array from its `zarr.json` text (v3) and open it.
    ///
    /// # Errors
    /// [`ArrayError::Metadata`] when zarrs rejects the metadata; IO errors writing it.
    pub fn create(path: impl AsRef<Path>, metadata_json: &str) -> Result<Self> {
        Self::create_with(path, metadata_json, Context::shared()?)
    }

    /// Create with an explicit context.
    ///
    /// # Errors
    /// As [`ZarrArray::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        metadata_json: &str,
        ctx: Arc<Context>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        crate::metadata::check_array_metadata(&path, "zarr.json", metadata_json.as_bytes())?;
        let array = Self::from_metadata(&path, metadata_json, Arc::clone(&ctx))?;
        // Store the metadata as given (pretty-printed), not zarrs' re-serialisation: zarrs writes
        // Zarr 3.1 short-hand names (`"chunk_key_encoding": "default"`) that zarr-python 3.1
        // and other 3.0 readers reject. zuring writes the 3.0 object form it was given.
        let value: serde_json::Value =
            serde_json::from_str(metadata_json).map_err(|e| ArrayError::Metadata {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let text = serde_json::to_string_pretty(&value).map_err(|e| zarrs_error(&path, e))?;
        ctx.reader
            .write_atomic(&path.join("zarr.json"), text.as_bytes(), false)
            .map_err(ArrayError::Io)?;
        Ok(array)
    }

    /// The context (reader, decode pool, index cache) the array reads through.
    #[must_use]
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The array's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Shape.
    #[must_use]
    pub fn shape(&self) -> &[u64] {
        &self.layout.shape
    }

    /// The read granularity: inner chunk shape when sharded, else the chunk shape.
    #[must_use]
    pub fn chunk_shape(&self) -> &[u64] {
        &self.layout.chunk_shape
    }

    /// The shard shape, when sharded.
    #[must_use]
    pub fn shard_shape(&self) -> Option<&[u64]> {
        use zarrs::array::ArrayShardedExt;
        self.array
            .is_sharded()
            .then_some(self.layout.file_shape.as_slice())
    }

    /// Bytes per element.
    #[must_use]
    pub fn element_size(&self) -> usize {
        self.layout.element_size
    }

    /// The data type's Zarr v3 name (`uint16`, `float32`, ...).
    #[must_use]
    pub fn data_type_name(&self) -> String {
        self.layout
            .data_type
            .name_v3()
            .map(|n| n.to_string())
            .unwrap_or_default()
    }

    /// One element of fill value, native endian.
    #[must_use]
    pub fn fill_value_bytes(&self) -> &[u8] {
        &self.layout.fill
    }

    /// The metadata as JSON text.
    #[must_use]
    pub fn metadata_json(&self) -> String {
        self.array.metadata().to_string_pretty()
    }

    /// Shapes, codecs and keys (for tools and benchmarks).
    #[must_use]
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// The file holding file-grid cell `coords` (a shard, or a chunk when unsharded).
    #[must_use]
    pub fn file_path(&self, coords: &[u64]) -> PathBuf {
        self.layout.file_path(&self.array, coords)
    }

    /// How reads are carried out (for diagnostics).
    #[must_use]
    pub fn read_mode(&self) -> &ReadMode {
        &self.layout.mode
    }

    /// The zarrs array behind this one.
    #[must_use]
    pub fn zarrs_array(&self) -> &Array<UringStore> {
        &self.array
    }

    fn run(&self, plan: ChunkPlan, out: &mut [u8]) -> Result<()> {
        // Outputs from callers (numpy's `empty`) are often untouched: ask for huge pages before
        // the decode threads fault them in.
        zuring_io::advise_huge_pages(out.as_mut_ptr(), out.len());
        self.run_view(plan, &[OutView::new(out)])
    }

    fn run_view(&self, plan: ChunkPlan, view: &[OutView<'_>]) -> Result<()> {
        self.run_view_from(&LocalSource::new(&self.ctx.reader), plan, view)
    }

    fn run_view_from(
        &self,
        source: &dyn ByteSource,
        plan: ChunkPlan,
        view: &[OutView<'_>],
    ) -> Result<()> {
        self.execute(source, plan, view, None)
    }

    /// Carry out `plan` with bytes from `source` into `view` (for variable-size data, decoded
    /// chunks go to `variable` and the outputs get handles).
    pub(crate) fn execute(
        &self,
        source: &dyn ByteSource,
        plan: ChunkPlan,
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

    fn check_out(&self, shape: &[u64], out: &[u8]) -> Result<()> {
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
    fn plan(&self, selection: &Selection) -> Result<ChunkPlan> {
        self.require_fixed_size()?;
        self.plan_selection(selection)
    }

    /// Plan `selection` (any data type), after checking it against the array.
    pub(crate) fn plan_selection(&self, selection: &Selection) -> Result<ChunkPlan> {
        selection.validate(&self.layout.shape)?;
        let out_shape = selection.output_shape();
        let mut plan = ChunkPlan::new();
        let chunk = &self.layout.chunk_shape;
        match selection {
            Selection::Region(slices) if slices.iter().all(|s| s.step == 1) => {
                let start: Vec<u64> = slices.iter().map(|s| s.start).collect();
                let strides = c_strides(&out_shape)?.into();
                plan_box(&mut plan, chunk, &start, &out_shape, 0, &strides);
            }
            Selection::Region(slices) => {
                plan_orthogonal(&mut plan, chunk, &slices_to_lists(slices))?
            }
            Selection::Orthogonal(lists) => plan_orthogonal(&mut plan, chunk, lists)?,
            Selection::Points(points) => plan_points(&mut plan, chunk, points),
        }
        Ok(plan)
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
    /// # Errors
    /// [`ArrayError::Selection`] when a request does not fit the array or the output (before any
    /// IO); corrupt data and IO errors as for other reads.
    pub fn read_chunk_requests(
        &self,
        requests: &[ChunkRequest],
        outputs: &mut [(Vec<u64>, &mut [u8])],
    ) -> Result<()> {
        self.read_chunk_requests_from(&LocalSource::new(&self.ctx.reader), requests, outputs)
    }

    /// As [`ZarrArray::read_chunk_requests`], with the bytes coming from `source` instead of the
    /// array's directory: keys are [`ZarrArray::file_path`]s, so an array made with
    /// [`ZarrArray::from_metadata`] at a store prefix asks for store keys. The same two batches
    /// (shard indexes, then chunk ranges) go to `source`.
    ///
    /// # Errors
    /// As [`ZarrArray::read_chunk_requests`]; a failed fetch is an IO error naming the key.
    pub fn read_chunk_requests_from(
        &self,
        source: &dyn ByteSource,
        requests: &[ChunkRequest],
        outputs: &mut [(Vec<u64>, &mut [u8])],
    ) -> Result<()> {
        self.require_fixed_size()?;
        for (shape, out) in outputs.iter() {
            self.check_out(shape, out)?;
        }
        let shapes: Vec<Vec<u64>> = outputs.iter().map(|(s, _)| s.clone()).collect();
        let mut plan = ChunkPlan::new();
        let l = &self.layout;
        plan_chunk_requests(
            &mut plan,
            &l.shape,
            &l.file_shape,
            &l.chunk_shape,
            &shapes,
            requests,
        )?;
        let views: Vec<OutView<'_>> = outputs
            .iter_mut()
            .map(|(_, out)| {
                zuring_io::advise_huge_pages(out.as_mut_ptr(), out.len());
                OutView::new(out)
            })
            .collect();
        self.run_view_from(source, plan, &views)
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
                &self.layout.chunk_shape,
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

    /// Write strings (C order) into a region of a string array (see [`ZarrArray::write`]).
    ///
    /// # Errors
    /// As [`ZarrArray::read_strings`], and when the number of strings does not match the region.
    pub fn write_strings(&self, ranges: &[std::ops::Range<u64>], values: &[String]) -> Result<()> {
        let name = self.data_type_name();
        if name != "string" {
            return Err(ArrayError::Unsupported {
                what: format!("{}: write_strings on data type {name}", self.path.display()),
            });
        }
        let region = Selection::from_ranges(ranges);
        let shape = region.output_shape();
        if num_elements(&shape)? != values.len() {
            return Err(ArrayError::selection(format!(
                "{} strings for a region of shape {shape:?}",
                values.len()
            )));
        }
        let bytes: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
        self.write_variable(&region, &bytes, &shape)
    }

    /// Write `value` into `selection` (a region with any steps, orthogonal index lists, or
    /// points; the value has the selection's output shape, and as in numpy its axes of length
    /// 1 and a 0-d value broadcast; an index listed twice takes the later value). Stored chunks
    /// the write covers in part are read, modified and replaced atomically (of a shard, only the
    /// touched inner chunks are encoded again); chunks left all fill are deleted.
    ///
    /// # Errors
    /// [`ArrayError::Selection`] when out of bounds or the value does not fit the selection
    /// (before any file changes); decoding, encoding and IO errors naming the file.
    pub fn write(&self, selection: &Selection, value: crate::write::WriteValue<'_>) -> Result<()> {
        self.require_fixed_size()?;
        self.plan_write(selection, value.shape)
            .and_then(|(requests, partial)| {
                self.write_chunk_requests(&requests, value, &partial, false)
            })
    }

    /// Write `values` (raw bytes per element, UTF-8 for strings; shaped and broadcast as in
    /// [`ZarrArray::write`]) into `selection` of a variable-size (string, bytes) array.
    ///
    /// # Errors
    /// As [`ZarrArray::write`]; [`ArrayError::Unsupported`] for a fixed-size array.
    pub fn write_variable(
        &self,
        selection: &Selection,
        values: &[&[u8]],
        shape: &[u64],
    ) -> Result<()> {
        self.require_variable_size("write_variable")?;
        self.plan_write(selection, shape)
            .and_then(|(requests, partial)| {
                self.write_variable_chunk_requests(&requests, values, shape, &partial, false)
            })
    }

    /// The chunk requests and partly covered stored chunks of a write of a value of
    /// `value_shape` into `selection`, checked first.
    fn plan_write(
        &self,
        selection: &Selection,
        value_shape: &[u64],
    ) -> Result<(Vec<crate::plan::ChunkRequest>, Vec<Vec<u64>>)> {
        selection.validate(&self.layout.shape)?;
        let want = selection.output_shape();
        let fits = value_shape.is_empty()
            || (value_shape.len() == want.len()
                && value_shape
                    .iter()
                    .zip(&want)
                    .all(|(&v, &w)| v == w || v == 1));
        if !fits {
            return Err(ArrayError::selection(format!(
                "a value of shape {value_shape:?} does not fit a selection of shape {want:?}"
            )));
        }
        Ok(crate::write::selection_requests(
            &self.layout.shape,
            &self.layout.file_shape,
            selection,
        ))
    }

    /// Write `data` (C order, native endian) into the region `ranges` (see
    /// [`ZarrArray::write`]).
    ///
    /// # Errors
    /// As [`ZarrArray::write`], and [`ArrayError::OutputSize`] when `data` has the wrong size.
    pub fn write_region(&self, ranges: &[std::ops::Range<u64>], data: &[u8]) -> Result<()> {
        self.require_fixed_size()?;
        let region = Selection::from_ranges(ranges);
        let shape = region.output_shape();
        self.check_out(&shape, data)?;
        self.write(
            &region,
            crate::write::WriteValue {
                bytes: data,
                shape: &shape,
            },
        )
    }
}
