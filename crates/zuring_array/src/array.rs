//! [`ZarrArray`]: open, create and write Zarr arrays; reads are in `array/read.rs`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use zarrs::array::{Array, ArrayMetadata};
use zuring_zarrs::UringStore;

use crate::error::{ArrayError, Result};
use crate::layout::{ArrayLayout, IndexLayout, ReadMode};
use crate::plan::{num_elements, Selection};
use crate::shard_write::InnerChunkOrder;

use crate::context::Context;

mod read;
mod resize;

/// A stored chunk (a shard, when sharded) by its coordinates: its bytes, or None when absent (or,
/// returned from a write, to be deleted).
pub type StoredChunk = (Vec<u64>, Option<Vec<u8>>);

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
    /// The order shards written by this handle lay out their inner chunks in, and its C-order
    /// indexes for the nominal shard, worked out at the first write that needs them (a shard of
    /// a million inner chunks takes a while to sort, which a read-only handle never needs);
    /// None: C order.
    inner_order: Option<(InnerChunkOrder, Arc<OnceLock<Vec<usize>>>)>,
    /// The members zarrs was given in another form, as stored (`dtype` and `fill_value` of v2
    /// datetime64 / timedelta64 arrays, read as int64; `codecs` naming numcodecs' zstd, gzip or
    /// blosc: see [`crate::metadata::for_zarrs`]); [`ZarrArray::metadata_json`] reports these.
    stored_members: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether the metadata held lone UTF-16 surrogate escapes (in its attributes, as
    /// zarr-python writes a Python string holding one), read masked: see [`crate::json_text`].
    masked: bool,
}

pub(crate) fn zarrs_error(path: &Path, err: impl std::fmt::Display) -> ArrayError {
    ArrayError::Zarrs {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

/// The array metadata document stored in directory `path` (`zarr.json`, else v2's `.zarray`):
/// its name and bytes.
fn read_stored_metadata(path: &Path) -> Result<(&'static str, Vec<u8>)> {
    let file = if path.join("zarr.json").is_file() {
        "zarr.json"
    } else if path.join(".zarray").is_file() {
        ".zarray"
    } else {
        return Err(ArrayError::NotFound {
            path: path.to_path_buf(),
        });
    };
    let text = std::fs::read(path.join(file)).map_err(|e| ArrayError::Metadata {
        path: path.to_path_buf(),
        message: format!("{file}: {e}"),
    })?;
    Ok((file, text))
}

/// `err` (from zarrs reading the metadata `metadata_json`) saying where the metadata is
/// malformed when zarrs' message does not: an untagged enum matching no variant, or serde's
/// reason (an unknown or missing field, a value of another type) without the member it is
/// in. See [`crate::metadata::diagnose`]. The kind of error is kept, but where the fault lies
/// in the chunk grid or the chunk key encoding (the core specification's, which every writer
/// writes alike): zarrs calls a grid it cannot read "unsupported", and a misspelled
/// `chunk_shape` is malformed metadata ([`ArrayError::Metadata`], Python's `ValueError`).
fn diagnosed(err: ArrayError, path: &Path, metadata_json: &str) -> ArrayError {
    let message = err.to_string();
    let unplaced = [
        "did not match any variant",
        "unknown field",
        "missing field",
        "invalid type",
        "unknown variant",
        "invalid value",
        "invalid length",
    ];
    if !unplaced.iter().any(|m| message.contains(m)) {
        return err;
    }
    let Some(place) = crate::metadata::diagnose(metadata_json) else {
        return err;
    };
    let core = place.starts_with("chunk_grid") || place.starts_with("chunk_key_encoding");
    match err {
        ArrayError::Metadata { path, .. } => ArrayError::Metadata {
            path,
            message: format!("zarr.json: {place}"),
        },
        ArrayError::Unsupported { .. } if core => ArrayError::Metadata {
            path: path.to_path_buf(),
            message: format!("zarr.json: {place}"),
        },
        ArrayError::Unsupported { .. } => ArrayError::Unsupported {
            what: format!("{}: zarr.json: {place}", path.display()),
        },
        other => other,
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
        crate::register_codecs();
        let path = path.as_ref().to_path_buf();
        let (file, text) = read_stored_metadata(&path)?;
        crate::metadata::check_array_metadata(&path, file, &text)?;
        let text = String::from_utf8_lossy(&text);
        if file == "zarr.json" {
            // Given to zarrs as the text read here (zarrs would read and parse the file again,
            // through the store's reader threads).
            return Self::from_metadata(&path, &text, ctx);
        }
        // v2: with the attributes zarrs would have read from `.zattrs` itself.
        let (mut value, mut masked) =
            crate::json_text::parse(text.as_bytes()).map_err(|message| ArrayError::Metadata {
                path: path.clone(),
                message: format!("{file}: {message}"),
            })?;
        if let Ok(attrs) = std::fs::read(path.join(".zattrs")) {
            let (attrs, attrs_masked) =
                crate::json_text::parse(&attrs).map_err(|message| ArrayError::Metadata {
                    path: path.clone(),
                    message: format!(".zattrs: {message}"),
                })?;
            value["attributes"] = attrs;
            masked |= attrs_masked;
        }
        let text = crate::json_text::write(&value, masked, false);
        Self::from_metadata(&path, &text, ctx)
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
        crate::register_codecs();
        let path = path.as_ref().to_path_buf();
        let given =
            crate::json_text::mask(metadata_json).map_err(|message| ArrayError::Metadata {
                path: path.clone(),
                message,
            })?;
        let masked = matches!(given, std::borrow::Cow::Owned(_));
        let metadata_json = given.as_ref();
        let rewritten = crate::metadata::for_zarrs(metadata_json);
        // The members given to zarrs in another form, as they were.
        let stored_members = rewritten.as_ref().and_then(|new| {
            let stored: serde_json::Value = serde_json::from_str(metadata_json).ok()?;
            let new: serde_json::Value = serde_json::from_str(new).ok()?;
            let members = stored
                .as_object()?
                .iter()
                .filter(|(k, v)| new.get(k.as_str()) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(members)
        });
        let metadata_json = rewritten.as_deref().unwrap_or(metadata_json);
        let metadata: ArrayMetadata = serde_json::from_str(metadata_json)
            .map_err(|e| ArrayError::Metadata {
                path: path.clone(),
                message: e.to_string(),
            })
            .map_err(|e| diagnosed(e, &path, metadata_json))?;
        if let ArrayMetadata::V3(m) = &metadata {
            // Members no implementation may ignore (`"must_understand": true`, the default),
            // refused as zarrs' `Array::open` refuses them (`new_with_metadata` does not).
            if let Some((name, field)) = m
                .additional_fields
                .iter()
                .find(|(_, field)| field.must_understand())
            {
                let err = zarrs::array::ArrayCreateError::AdditionalFieldUnsupportedError(
                    zarrs::array::AdditionalFieldUnsupportedError::new(
                        name.clone(),
                        field.as_value().clone(),
                    ),
                );
                return Err(open_error(&path, &err));
            }
            // A rectilinear grid's run-length counts are checked before zarrs expands them.
            if m.chunk_grid.name() == "rectilinear" {
                crate::grid::Grid::of_v3(&m.chunk_grid).map_err(|message| {
                    ArrayError::Metadata {
                        path: path.clone(),
                        message,
                    }
                })?;
            }
        }
        let store = Arc::new(
            UringStore::with_reader(&path, Arc::clone(&ctx.reader))
                .map_err(|e| zarrs_error(&path, e))?,
        );
        let array = Array::new_with_metadata(store, "/", metadata)
            .map_err(|e| diagnosed(open_error(&path, &e), &path, metadata_json))?;
        let layout = ArrayLayout::new(&array, &path)?;
        Ok(Self {
            path,
            array,
            layout,
            ctx,
            inner_order: None,
            stored_members,
            masked,
        })
    }

    /// Create an array from its `zarr.json` text (v3) and open it.
    ///
    /// # Errors
    /// [`ArrayError::NodeExists`] when an array or group is already stored in `path`;
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
        Self::create_storing(path, metadata_json, metadata_json, ctx)
    }

    /// Create an array opened as `metadata_json` (v3) whose stored `zarr.json` is
    /// `stored_json`: for element types zarrs has no type for, handled as raw bits of their size
    /// (the Python package's fixed-length bytes and records). Nothing is written unless both
    /// pass the checks and zarrs opens `metadata_json`.
    ///
    /// # Errors
    /// As [`ZarrArray::create`].
    pub fn create_storing(
        path: impl AsRef<Path>,
        metadata_json: &str,
        stored_json: &str,
        ctx: Arc<Context>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        crate::metadata::refuse_existing_node(&path)?;
        crate::metadata::check_array_metadata(&path, "zarr.json", metadata_json.as_bytes())?;
        crate::metadata::check_array_metadata(&path, "zarr.json", stored_json.as_bytes())?;
        let array = Self::from_metadata(&path, metadata_json, Arc::clone(&ctx))?;
        // Store the metadata as given (pretty-printed), not zarrs' re-serialisation: zarrs writes
        // Zarr 3.1 short-hand names (`"chunk_key_encoding": "default"`) that zarr-python 3.1
        // and other 3.0 readers reject. zuring writes the 3.0 object form it was given.
        let (value, masked) =
            crate::json_text::parse(stored_json.as_bytes()).map_err(|message| {
                ArrayError::Metadata {
                    path: path.clone(),
                    message,
                }
            })?;
        let text = crate::json_text::write(&value, masked, true);
        crate::metadata::store_new_node(&path, &text, |file, bytes| {
            ctx.reader.write_new_atomic(file, bytes, false)
        })?;
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
        let text = self.array.metadata().to_string_pretty();
        let Some(members) = &self.stored_members else {
            return self.unmasked(text);
        };
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(&text) else {
            return self.unmasked(text);
        };
        object.extend(members.clone());
        crate::json_text::write(&serde_json::Value::Object(object), self.masked, true)
    }

    /// Text made from the metadata, with its lone surrogate escapes back.
    fn unmasked(&self, text: String) -> String {
        if self.masked {
            crate::json_text::unmask(&text).into_owned()
        } else {
            text
        }
    }

    /// Shapes, codecs and keys (for tools and benchmarks).
    #[must_use]
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// Lay out the inner chunks of the shards this handle writes in `order` (default: C
    /// order, as zarrs writes them; zarr-python writes Morton order). No effect when unsharded.
    pub fn set_inner_chunk_order(&mut self, order: InnerChunkOrder) {
        self.inner_order = match (&self.layout.mode, order) {
            (ReadMode::Sharded(_), InnerChunkOrder::Colexicographic | InnerChunkOrder::Morton) => {
                Some((order, Arc::default()))
            }
            _ => None,
        };
    }

    /// The order of the inner chunks of a shard laid out as `index` (see
    /// [`ZarrArray::set_inner_chunk_order`]); None: C order. A rectilinear grid's shards of
    /// other sizes than the largest get their own.
    pub(crate) fn inner_order(&self, index: &IndexLayout) -> Option<Cow<'_, [usize]>> {
        let (order, largest) = self.inner_order.as_ref()?;
        let nominal = match &self.layout.mode {
            ReadMode::Sharded(nominal) => nominal.chunks_per_shard.as_slice(),
            _ => &[],
        };
        Some(if index.chunks_per_shard == nominal {
            Cow::Borrowed(largest.get_or_init(|| order.permutation(nominal)))
        } else {
            Cow::Owned(order.permutation(&index.chunks_per_shard))
        })
    }

    /// The file holding file-grid cell `coords` (a shard, or a chunk when unsharded).
    #[must_use]
    pub fn file_path(&self, coords: &[u64]) -> PathBuf {
        self.layout.file_path(&self.array, coords)
    }

    /// The grid coordinates of the files stored (chunks, or shards when sharded; zarr-python's
    /// "initialized" ones), in C order: the array's directory is listed once and each file of
    /// the grid looked up in the listing.
    ///
    /// # Errors
    /// IO errors listing the directory, naming it.
    pub fn stored_files(&self) -> Result<Vec<Vec<u64>>> {
        let mut listed = std::collections::HashSet::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| ArrayError::Metadata {
                path: dir.clone(),
                message: format!("listing the stored chunks: {e}"),
            })?;
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => dirs.push(entry.path()),
                    Ok(_) => {
                        listed.insert(entry.path());
                    }
                    Err(_) => {}
                }
            }
        }
        let counts = self.layout.file_grid.counts(self.shape());
        let mut stored = Vec::new();
        crate::plan::for_each_coord(&vec![0; counts.len()], &counts, |coords| {
            if listed.contains(&self.file_path(coords)) {
                stored.push(coords.to_vec());
            }
        });
        Ok(stored)
    }

    /// How many chunks are stored, as zarr-python counts them (its `nchunks_initialized`): the
    /// stored files, each shard counted with all the inner chunks of its shape, however few it
    /// holds.
    ///
    /// # Errors
    /// As [`ZarrArray::stored_files`].
    pub fn chunks_stored(&self) -> Result<u64> {
        let files = self.stored_files()?;
        if self.shard_shape().is_none() {
            return Ok(files.len() as u64);
        }
        let inner = self.chunk_shape();
        Ok(files
            .iter()
            .map(|coords| {
                let shard = self.layout.file_grid.chunk_shape(coords);
                shard
                    .iter()
                    .zip(inner)
                    .map(|(s, c)| s / c.max(&1))
                    .product::<u64>()
            })
            .sum())
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
}

impl ZarrArray {
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
    /// touched inner chunks are encoded again); chunks left all fill are deleted. Writes into
    /// the same files from other threads or processes of the machine take turns with it.
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
        let (requests, mut partial) =
            crate::write::selection_requests(&self.layout.shape, &self.layout.file_grid, selection);
        if matches!(self.layout.mode, ReadMode::Sharded(_)) {
            crate::write::add_edge_shards(
                &mut partial,
                &requests,
                &self.layout.shape,
                &self.layout.file_grid,
            );
        }
        Ok((requests, partial))
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

/// A new array at `path` with `metadata_json`, on a context of its own with `threads` decode
/// threads (returned too), for the crate's tests.
#[cfg(test)]
pub(crate) fn test_array(
    path: &Path,
    threads: usize,
    metadata_json: &str,
) -> (ZarrArray, Arc<Context>) {
    let ctx = Context::new(crate::ArrayOptions {
        threads,
        ..crate::ArrayOptions::default()
    })
    .expect("a context");
    let array = ZarrArray::create_with(path, metadata_json, Arc::clone(&ctx)).expect("an array");
    (array, ctx)
}
