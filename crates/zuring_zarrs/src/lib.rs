//! A [`zarrs`](https://docs.rs/zarrs) store that reads and writes a directory through
//! [`zuring_io`]: every `get_partial_many` call is one batch of io_uring reads (coalesced, in
//! flight together), writes replace files atomically.
//!
//! ```
//! use std::sync::Arc;
//! use zarrs::array::{Array, ArraySubset};
//! use zarrs::storage::WritableStorageTraits;
//! use zuring_zarrs::UringStore;
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(UringStore::new(dir.path())?);
//! store.set(
//!     &"zarr.json".try_into()?,
//!     r#"{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8",
//!         "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}},
//!         "chunk_key_encoding":{"name":"default"},"fill_value":0,
//!         "codecs":[{"name":"bytes"}]}"#.into(),
//! )?;
//! let array = Array::open(store, "/")?;
//! array.store_array_subset(&ArraySubset::new_with_ranges(&[0..4]), vec![1u8, 2, 3, 4])?;
//! let back: Vec<u8> = array.retrieve_array_subset(&array.subset_all())?;
//! assert_eq!(back, [1, 2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod store;

pub use store::{UringStore, UringStoreCreateError};
