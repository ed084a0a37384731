//! Zarr arrays read in batches: every shard index a read needs is fetched in one batch (and
//! cached), every chunk byte range in a second batch (coalesced), chunks decode on zuring's
//! thread pool as their bytes arrive, and each decoded chunk is written straight into the
//! caller's output. Chunks stored uncompressed (`[bytes]` alone) are used where their bytes lie,
//! and a read that needs part of one fetches only that part: the bytes from its first element
//! needed to its last.
//!
//! Metadata, data types and codecs come from [`zarrs`]; bytes come through [`zuring_io`].
//! Arrays whose layout the batched path does not cover (array-to-array codecs before sharding,
//! bytes-to-bytes codecs after it) are read a whole file at a time and decoded by zarrs' codec
//! chain; variable-size data types (strings, vlen bytes) take the same planned path, their chunks
//! decoded by zarrs' codec chain. Chunk grids are regular or rectilinear ([`grid`]: chunks of
//! listed lengths, zarr-python 3.4's experimental grid), read and written alike; grids of other
//! kinds are refused with [`ArrayError::Unsupported`].
//!
//! Groups ([`ZarrGroup`]) list and open their members.
//!
//! numcodecs codecs zarrs lacks, or knows only by other names (v2 `crc32c` and `bitround`,
//! `delta`), and the Zarr extensions `scale_offset` and `cast_value` are registered with zarrs
//! when the first array is opened; a program that opens arrays with zarrs itself can do the
//! same with [`register_codecs`].
//!
//! Bytes can also come from the caller ([`FetchedSource`]): a zarr-python store's async API, say.

mod array;
mod assemble;
pub mod cast_value;
mod context;
mod decode;
mod engine;
mod error;
pub mod grid;
mod group;
mod json_text;
mod layout;
mod metadata;
pub mod numcodecs;
mod plan;
mod pool;
pub mod scale_offset;
mod shard_index;
mod shard_write;
mod source;
mod stream;
mod variable;
mod write;

pub use array::{StoredChunk, ZarrArray};
pub use assemble::bytemuck_free::Plain;
pub use context::{ArrayOptions, Context};
pub use decode::{encode_chunk, with_decoded, with_decoded_part, ChunkDecoder};
pub use error::{ArrayError, Result};
pub use group::{NodeKind, ZarrGroup};
pub use layout::{ArrayLayout, IndexLayout, IndexLocation, ReadMode};
pub use plan::{ChunkRequest, DimSlice, Indices, Selection};
pub use shard_index::{FileVersion, ShardIndex, ShardIndexCache};
pub use shard_write::InnerChunkOrder;
pub use source::{ByteSource, FetchKind, Fetched, FetchedSource, Presence};
pub use variable::VariableRead;
pub use write::exclusive::{hold_metadata, MetadataHold};
pub use write::WriteValue;

/// Register with zarrs the codecs zuring adds ([`numcodecs::register`],
/// [`scale_offset::register`], [`cast_value::register`]); zuring does so before it opens an
/// array.
pub fn register_codecs() {
    numcodecs::register();
    scale_offset::register();
    cast_value::register();
}
