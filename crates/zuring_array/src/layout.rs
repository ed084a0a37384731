//! How an array's elements map to files and byte ranges, derived from its zarrs metadata.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::{Array, ArrayMetadata, ArrayShardedExt, CodecChain, DataType, FillValue};
use zarrs::array::{ArrayToBytesCodecTraits, CodecMetadataOptions};
use zarrs::metadata::ConfigurationSerialize;
use zarrs::metadata_ext::codec::sharding::{ShardingCodecConfiguration, ShardingIndexLocation};

use crate::decode::ChunkDecoder;
use crate::error::{ArrayError, Result};
use crate::grid::{DimGrid, Grid};

/// The largest decoded chunk zuring accepts (16 GiB): larger ones are refused when the array
/// is opened, before anything is allocated.
pub const MAX_CHUNK_BYTES: u64 = 16 << 30;

/// Where a shard keeps its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLocation {
    /// At the start of the shard file.
    Start,
    /// At the end of the shard file.
    End,
}

/// The shard index of a sharded array: its codecs, size and place.
#[derive(Debug, Clone)]
pub struct IndexLayout {
    /// Decodes the index (`chunks_per_shard` x 2 uint64).
    pub codecs: Arc<CodecChain>,
    /// Start or end of the file.
    pub location: IndexLocation,
    /// Encoded index size in bytes.
    pub encoded_size: u64,
    /// Inner chunks per shard along each dimension (of the largest shard, when a rectilinear
    /// grid's shards differ: [`ArrayLayout::shard_index`] gives each shard's).
    pub chunks_per_shard: Vec<u64>,
}

impl IndexLayout {
    /// Number of entries in the index.
    #[must_use]
    pub fn entries(&self) -> u64 {
        self.chunks_per_shard.iter().product()
    }

    /// The index of a shard holding `chunks_per_shard` inner chunks, with these codecs and
    /// this location.
    ///
    /// # Errors
    /// The index codecs' error when they cannot say the encoded size; [`ArrayError::Unsupported`]
    /// when it varies.
    fn sized(&self, chunks_per_shard: Vec<u64>, root: &Path) -> Result<Self> {
        let mut index_shape = chunks_per_shard.clone();
        index_shape.push(2);
        let encoded = self
            .codecs
            .encoded_representation(
                &nonzero(&index_shape),
                &zarrs::array::data_type::uint64(),
                &FillValue::from(u64::MAX),
            )
            .map_err(|e| ArrayError::Metadata {
                path: root.to_path_buf(),
                message: format!("sharding_indexed.index_codecs: {e}"),
            })?;
        let encoded_size = encoded.size().ok_or_else(|| ArrayError::Unsupported {
            what: "a shard index codec with variable-size output".into(),
        })?;
        Ok(Self {
            codecs: Arc::clone(&self.codecs),
            location: self.location,
            encoded_size,
            chunks_per_shard,
        })
    }
}

/// How a read is carried out.
#[derive(Debug, Clone)]
pub enum ReadMode {
    /// One file per chunk; any codec chain.
    Unsharded,
    /// `sharding_indexed` alone: inner chunks are read by byte range through the shard index.
    Sharded(IndexLayout),
    /// Anything else (array-to-array codecs before sharding, bytes-to-bytes after it, variable-size
    /// data types): read through zarrs, chunk by chunk.
    Zarrs(String),
}

/// Shapes, element type, codecs and keys of an array.
#[derive(Debug, Clone)]
pub struct ArrayLayout {
    /// The array's directory.
    pub root: PathBuf,
    /// Array shape.
    pub shape: Vec<u64>,
    /// The read granularity: the inner chunk shape when sharded, the chunk shape otherwise (the
    /// largest chunk's, when the grid is rectilinear: see `read_grid`).
    pub chunk_shape: Vec<u64>,
    /// The shape of one file's worth of elements (the shard shape when sharded, else the chunk;
    /// the largest file's, when the grid is rectilinear: see `file_grid`).
    pub file_shape: Vec<u64>,
    /// The grid of stored chunks (shards, when sharded): the array's chunk grid.
    pub file_grid: Grid,
    /// The read-granularity grid: `file_grid` unless sharded, else the inner chunks' grid
    /// (regular: a shard's edges are multiples of the inner chunk shape).
    pub read_grid: Grid,
    /// Bytes per element; 0 for variable-size types (strings, bytes).
    pub element_size: usize,
    /// One element's fill value, native endian.
    pub fill: Vec<u8>,
    /// zarrs' data type.
    pub data_type: DataType,
    /// zarrs' fill value.
    pub fill_value: FillValue,
    /// Decodes one read-granularity chunk.
    pub chunk_codecs: Arc<CodecChain>,
    /// How reads are done.
    pub mode: ReadMode,
    /// How one read-granularity chunk is decoded.
    pub decoder: ChunkDecoder,
}

pub(crate) fn nonzero(shape: &[u64]) -> Vec<NonZeroU64> {
    shape
        .iter()
        .map(|&d| NonZeroU64::new(d).unwrap_or(NonZeroU64::MIN))
        .collect()
}

impl ArrayLayout {
    /// Derive the layout of `array`, opened at `root`.
    ///
    /// # Errors
    /// [`ArrayError::Metadata`] when the sharding configuration is inconsistent.
    pub fn new<S: ?Sized>(array: &Array<S>, root: &Path) -> Result<Self> {
        let shape = array.shape().to_vec();
        let data_type = array.data_type().clone();
        // Variable-size types (strings, bytes) have no element size: they are read through zarrs.
        let element_size = data_type.fixed_size().unwrap_or(0);
        let fill_value = array.fill_value().clone();
        let fill = fill_value.as_ne_bytes().to_vec();
        let grid_name = match array.metadata() {
            ArrayMetadata::V3(m) => m.chunk_grid.name(),
            ArrayMetadata::V2(_) => "regular",
        };
        if grid_name != "regular" && grid_name != "rectilinear" {
            // The planner works on regular and rectilinear grids.
            return Err(ArrayError::Unsupported {
                what: format!(
                    "{}: chunk grid \"{grid_name}\" (zuring reads regular and rectilinear grids)",
                    root.display()
                ),
            });
        }
        if let Some((codec, why)) = crate::numcodecs::refused(array.metadata()) {
            return Err(ArrayError::Unsupported {
                what: format!("{}: codec {codec}: {why}", root.display()),
            });
        }
        // The grid, read from the metadata (zarrs' per-chunk answer needs a chunk inside the
        // array, which an array with a zero-length dimension does not have; requests from a
        // caller that has since grown it still address chunks of this grid).
        let file_grid = Grid::of(array.metadata()).map_err(|message| ArrayError::Metadata {
            path: root.to_path_buf(),
            message,
        })?;
        let file_shape = file_grid.max_shape();
        if file_shape.len() != shape.len() {
            return Err(ArrayError::Metadata {
                path: root.to_path_buf(),
                message: format!(
                    "chunk_grid: chunk shape {file_shape:?} does not have the array's {} dimensions",
                    shape.len()
                ),
            });
        }
        let codecs = array.codecs();
        let mut chunk_shape = file_shape.clone();
        let mut chunk_codecs = Arc::clone(&codecs);
        let mut decoder = match array.metadata() {
            ArrayMetadata::V3(m) => ChunkDecoder::for_codecs(&m.codecs, &data_type, &fill_value),
            // Version 2's dtype, order, filters and compressor, as the codecs zarrs reads them
            // with (`[bytes]` for an uncompressed C-order array).
            ArrayMetadata::V2(_) => ChunkDecoder::for_codecs(
                &codecs.create_metadatas(&CodecMetadataOptions::default()),
                &data_type,
                &fill_value,
            ),
        };
        let mode = if element_size == 0 {
            ReadMode::Zarrs("variable-size data type".into())
        } else if array.is_sharded() {
            if array.is_exclusively_sharded() {
                let configuration = codecs
                    .array_to_bytes_codec()
                    .configuration_v3(&CodecMetadataOptions::default())
                    .ok_or_else(|| ArrayError::Unsupported {
                        what: "sharding codec without metadata".into(),
                    })?;
                let ShardingCodecConfiguration::V1(config) =
                    ShardingCodecConfiguration::try_from_configuration(configuration).map_err(
                        |e| ArrayError::Metadata {
                            path: root.to_path_buf(),
                            message: format!("sharding_indexed configuration: {e}"),
                        },
                    )?
                else {
                    return Err(ArrayError::Unsupported {
                        what: "unknown sharding_indexed configuration version".into(),
                    });
                };
                chunk_shape = config.chunk_shape.iter().map(|d| d.get()).collect();
                // Every shard edge a multiple of the inner chunk's (zarr-python's rule for
                // rectilinear grids too), so the inner chunks tile the array regularly.
                let divides = |(d, c): (&DimGrid, &u64)| match d {
                    DimGrid::Regular(s) => s % c == 0,
                    DimGrid::Varying(offsets) => offsets.iter().all(|o| o % c == 0),
                };
                if chunk_shape.len() != shape.len()
                    || !file_grid.dims().iter().zip(&chunk_shape).all(divides)
                {
                    return Err(ArrayError::Metadata {
                        path: root.to_path_buf(),
                        message: format!(
                            "codecs.sharding_indexed.chunk_shape {chunk_shape:?} does not divide the shard shape {}",
                            if file_grid.is_regular() { format!("{file_shape:?}") } else { "of every shard".into() }
                        ),
                    });
                }
                decoder = ChunkDecoder::for_codecs(&config.codecs, &data_type, &fill_value);
                chunk_codecs =
                    Arc::new(CodecChain::from_metadata(&config.codecs).map_err(|e| {
                        ArrayError::Metadata {
                            path: root.to_path_buf(),
                            message: format!("sharding_indexed.codecs: {e}"),
                        }
                    })?);
                let index_codecs = Arc::new(
                    CodecChain::from_metadata(&config.index_codecs).map_err(|e| {
                        ArrayError::Metadata {
                            path: root.to_path_buf(),
                            message: format!("sharding_indexed.index_codecs: {e}"),
                        }
                    })?,
                );
                let chunks_per_shard: Vec<u64> = file_shape
                    .iter()
                    .zip(&chunk_shape)
                    .map(|(s, c)| s / c)
                    .collect();
                let unsized_index = IndexLayout {
                    codecs: index_codecs,
                    location: match config.index_location {
                        ShardingIndexLocation::Start => IndexLocation::Start,
                        _ => IndexLocation::End,
                    },
                    encoded_size: 0,
                    chunks_per_shard: Vec::new(),
                };
                ReadMode::Sharded(unsized_index.sized(chunks_per_shard, root)?)
            } else {
                ReadMode::Zarrs(
                    "array-to-array or bytes-to-bytes codecs around sharding_indexed".into(),
                )
            }
        } else {
            ReadMode::Unsharded
        };
        let read_grid = match mode {
            ReadMode::Sharded(_) => Grid::regular(&chunk_shape),
            _ => file_grid.clone(),
        };
        let chunk_bytes = chunk_shape
            .iter()
            .try_fold(element_size.max(1) as u64, |acc, &d| acc.checked_mul(d))
            .filter(|&b| b <= MAX_CHUNK_BYTES);
        if chunk_bytes.is_none() {
            return Err(ArrayError::TooLarge {
                what: "a chunk",
                elements: chunk_shape.iter().fold(1u64, |a, &d| a.saturating_mul(d)),
                element_size,
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            shape,
            chunk_shape,
            file_shape,
            file_grid,
            read_grid,
            element_size,
            fill,
            data_type,
            fill_value,
            chunk_codecs,
            mode,
            decoder,
        })
    }

    /// Number of dimensions.
    #[must_use]
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The read-granularity chunk shape as zarrs wants it.
    #[must_use]
    pub fn chunk_shape_nonzero(&self) -> Vec<NonZeroU64> {
        nonzero(&self.chunk_shape)
    }

    /// The stored chunk (shard, when sharded) shape as zarrs wants it.
    #[must_use]
    pub fn file_shape_nonzero(&self) -> Vec<NonZeroU64> {
        nonzero(&self.file_shape)
    }

    /// Elements in one read-granularity chunk.
    #[must_use]
    pub fn chunk_elements(&self) -> u64 {
        self.chunk_shape.iter().product()
    }

    /// The shape of read-granularity chunk `coords` (its own, when the grid is rectilinear).
    #[must_use]
    pub fn read_chunk_shape(&self, coords: &[u64]) -> Cow<'_, [u64]> {
        if self.read_grid.is_regular() {
            Cow::Borrowed(&self.chunk_shape)
        } else {
            Cow::Owned(self.read_grid.chunk_shape(coords))
        }
    }

    /// The index of shard `shard` (its own size, when the grid is rectilinear).
    ///
    /// # Errors
    /// As when the array was opened, for a shard size the index codecs cannot encode.
    pub fn shard_index<'a>(
        &self,
        index: &'a IndexLayout,
        shard: &[u64],
    ) -> Result<Cow<'a, IndexLayout>> {
        if self.file_grid.is_regular() {
            return Ok(Cow::Borrowed(index));
        }
        let chunks_per_shard = self
            .file_grid
            .chunk_shape(shard)
            .iter()
            .zip(&self.chunk_shape)
            .map(|(s, c)| s / c)
            .collect();
        index.sized(chunks_per_shard, &self.root).map(Cow::Owned)
    }

    /// The file holding file-grid cell `file_coords`.
    #[must_use]
    pub fn file_path<S: ?Sized>(&self, array: &Array<S>, file_coords: &[u64]) -> PathBuf {
        self.root.join(array.chunk_key(file_coords).as_str())
    }
}
