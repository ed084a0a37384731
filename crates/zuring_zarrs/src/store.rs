//! [`UringStore`]: zarrs_storage's readable, writable and listable traits over a [`Reader`].

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use zarrs_storage::byte_range::{
    ByteRange as ZarrsRange, ByteRangeIterator, InvalidByteRangeError,
};
use zarrs_storage::{
    store_set_partial_many, Bytes, ListableStorageTraits, MaybeBytes, MaybeBytesIterator,
    OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey, StoreKeys,
    StoreKeysPrefixes, StorePrefix, StorePrefixes, WritableStorageTraits,
};
use zuring_io::{ByteRange, IoError, ReadRequest, Reader, ReaderOptions};

/// Why a [`UringStore`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UringStoreCreateError {
    /// The root exists but is not a directory.
    #[error("store root {} is not a directory", path.display())]
    NotADirectory {
        /// The root.
        path: PathBuf,
    },
    /// The reader could not start.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// A directory of Zarr keys, read through io_uring.
#[derive(Debug, Clone)]
pub struct UringStore {
    root: PathBuf,
    reader: Arc<Reader>,
}

/// Temp files of in-progress atomic writes are not keys.
fn is_temp_file(name: &str) -> bool {
    name.starts_with('.') && name.contains(".zuring-tmp.")
}

fn storage_error(err: IoError) -> StorageError {
    let kind = match &err {
        IoError::NotFound { .. } => io::ErrorKind::NotFound,
        IoError::OutOfBounds { .. } | IoError::InvalidRange { .. } => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    StorageError::from(io::Error::new(kind, err))
}

fn to_io_range(range: ZarrsRange) -> ByteRange {
    match range {
        ZarrsRange::FromStart(offset, Some(len)) => ByteRange::new(offset, len),
        ZarrsRange::FromStart(offset, None) => ByteRange::From(offset),
        ZarrsRange::Suffix(len) => ByteRange::Suffix(len),
    }
}

impl UringStore {
    /// A store rooted at `root` (created if missing), reading through the process-wide reader
    /// (configured by `ZURING_IO` / `ZURING_DIRECT_IO`).
    ///
    /// # Errors
    /// When the root is not a directory or no IO backend can start.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, UringStoreCreateError> {
        Self::with_reader(root, Reader::shared()?)
    }

    /// A store rooted at `root` reading through `reader` (for explicit options: direct IO,
    /// backend, queue depth).
    ///
    /// # Errors
    /// When the root exists and is not a directory, or cannot be created.
    pub fn with_reader(
        root: impl AsRef<Path>,
        reader: Arc<Reader>,
    ) -> Result<Self, UringStoreCreateError> {
        let root = root.as_ref().to_path_buf();
        if root.exists() && !root.is_dir() {
            return Err(UringStoreCreateError::NotADirectory { path: root });
        }
        Ok(Self { root, reader })
    }

    /// A store with its own reader made from `options`.
    ///
    /// # Errors
    /// When the reader cannot start or the root is not a directory.
    pub fn with_options(
        root: impl AsRef<Path>,
        options: ReaderOptions,
    ) -> Result<Self, UringStoreCreateError> {
        Self::with_reader(root, Arc::new(Reader::new(options)?))
    }

    /// The store's root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The reader behind the store.
    #[must_use]
    pub fn reader(&self) -> &Arc<Reader> {
        &self.reader
    }

    /// The file holding `key`; keys that would leave the root (`..`, absolute) are refused.
    ///
    /// # Errors
    /// A [`StorageError`] naming the key when it would leave the root.
    pub fn key_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let relative = Path::new(key);
        let escapes = relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)));
        if escapes {
            return Err(StorageError::Other(format!(
                "store key {key:?} would leave the store root {}",
                self.root.display()
            )));
        }
        Ok(self.root.join(relative))
    }

    fn prefix_path(&self, prefix: &StorePrefix) -> Result<PathBuf, StorageError> {
        let trimmed = prefix.as_str().trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(self.root.clone())
        } else {
            self.key_path(trimmed)
        }
    }

    fn walk(&self, dir: &Path, prefix: &str, keys: &mut StoreKeys) -> Result<(), StorageError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temp_file(&name) {
                continue;
            }
            let key = format!("{prefix}{name}");
            if entry.file_type()?.is_dir() {
                self.walk(&entry.path(), &format!("{key}/"), keys)?;
            } else {
                keys.push(StoreKey::new(key)?);
            }
        }
        Ok(())
    }
}

impl ReadableStorageTraits for UringStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let path: Arc<Path> = self.key_path(key.as_str())?.into();
        let ranges: Vec<ZarrsRange> = byte_ranges.collect();
        let requests = ranges
            .iter()
            .map(|&r| ReadRequest::new(Arc::clone(&path), to_io_range(r), r));
        let mut out = Vec::with_capacity(ranges.len());
        for completion in self.reader.read_ordered(requests) {
            match completion.result {
                Ok(bytes) => out.push(Ok(bytes)),
                Err(err) if err.is_not_found() => return Ok(None),
                Err(IoError::OutOfBounds { file_size, .. }) => {
                    out.push(Err(
                        InvalidByteRangeError::new(completion.tag, file_size).into()
                    ));
                }
                Err(err) => out.push(Err(storage_error(err))),
            }
        }
        Ok(Some(Box::new(out.into_iter())))
    }

    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        let path = self.key_path(key.as_str())?;
        match self.reader.read(path.as_path(), ByteRange::Whole) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(storage_error(err)),
        }
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        match std::fs::metadata(self.key_path(key.as_str())?) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for UringStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        let path = self.key_path(key.as_str())?;
        self.reader
            .write_atomic(&path, &value, false)
            .map_err(storage_error)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        // Read-modify-write of the whole file, replaced atomically.
        store_set_partial_many(self, key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        let path = self.key_path(key.as_str())?;
        self.reader.remove(&path).map_err(storage_error)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        let path = self.prefix_path(prefix)?;
        let result = std::fs::remove_dir_all(&path);
        self.reader.clear_cache();
        match result {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for UringStore {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.list_prefix(&StorePrefix::root())
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        let mut keys = StoreKeys::new();
        // A prefix need not end at a directory boundary: walk the deepest whole directory, then
        // filter.
        let (dir_part, _) = prefix.as_str().rsplit_once('/').unwrap_or(("", ""));
        let dir_prefix = if dir_part.is_empty() {
            String::new()
        } else {
            format!("{dir_part}/")
        };
        let dir = self.prefix_path(&StorePrefix::new(dir_prefix.clone())?)?;
        self.walk(&dir, &dir_prefix, &mut keys)?;
        keys.retain(|k| k.as_str().starts_with(prefix.as_str()));
        keys.sort();
        Ok(keys)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        let dir = self.prefix_path(prefix)?;
        let mut keys = StoreKeys::new();
        let mut prefixes = StorePrefixes::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if is_temp_file(&name) {
                        continue;
                    }
                    if entry.file_type()?.is_dir() {
                        prefixes.push(StorePrefix::new(format!("{}{name}/", prefix.as_str()))?);
                    } else {
                        keys.push(StoreKey::new(format!("{}{name}", prefix.as_str()))?);
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
        keys.sort();
        prefixes.sort();
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let mut total = 0;
        for key in self.list_prefix(prefix)? {
            total += self.size_key(&key)?.unwrap_or(0);
        }
        Ok(total)
    }
}
