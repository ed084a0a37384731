//! Shard indexes: decoding, validation against the file, and a cache bounded in bytes.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use zarrs::array::FillValue;
use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits, CodecOptions};
use zuring_io::PerProcess;

use crate::error::{ArrayError, Result};
use crate::layout::IndexLayout;

/// The value marking a missing inner chunk (both offset and nbytes).
pub(crate) const MISSING: u64 = u64::MAX;

/// A decoded, validated shard index: `(offset, nbytes)` per inner chunk, C order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    entries: Vec<u64>,
}

impl ShardIndex {
    /// Decode `encoded` with the layout's index codecs and check every entry against a file of
    /// `file_size` bytes whose index occupies `data_range` (the bytes chunks may live in).
    ///
    /// # Errors
    /// [`ArrayError::UnreadableShardIndex`] when the index cannot be decoded (bad checksum, wrong
    /// size); [`ArrayError::CorruptShardIndex`] naming the first bad entry.
    pub fn decode(
        path: &Path,
        encoded: &[u8],
        layout: &IndexLayout,
        file_size: u64,
        options: &CodecOptions,
    ) -> Result<Self> {
        let shape = index_shape(layout);
        let unreadable = |message: String| ArrayError::UnreadableShardIndex {
            path: path.to_path_buf(),
            message,
        };
        let decoded = layout
            .codecs
            .decode(
                Cow::Borrowed(encoded),
                &shape,
                &zarrs::array::data_type::uint64(),
                &FillValue::from(MISSING),
                options,
            )
            .map_err(|e| unreadable(e.to_string()))?;
        let bytes = decoded
            .into_fixed()
            .map_err(|e| unreadable(e.to_string()))?;
        let entries: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0xff; 8])))
            .collect();
        let index = Self { entries };
        index.validate(path, file_size)?;
        Ok(index)
    }

    /// Encode `entries` (`(offset, nbytes)` per inner chunk, C order; `u64::MAX` twice for an
    /// absent one) with the layout's index codecs, checking the result has the index's size.
    ///
    /// # Errors
    /// [`ArrayError::UnreadableShardIndex`] naming `path` when encoding fails or gives another
    /// size.
    pub fn encode(
        path: &Path,
        entries: &[u64],
        layout: &IndexLayout,
        options: &CodecOptions,
    ) -> Result<Vec<u8>> {
        let failed = |message: String| ArrayError::UnreadableShardIndex {
            path: path.to_path_buf(),
            message,
        };
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_ne_bytes()).collect();
        let encoded = layout
            .codecs
            .encode(
                ArrayBytes::new_flen(Cow::Owned(bytes)),
                &index_shape(layout),
                &zarrs::array::data_type::uint64(),
                &FillValue::from(MISSING),
                options,
            )
            .map_err(|e| failed(e.to_string()))?;
        if encoded.len() as u64 != layout.encoded_size {
            return Err(failed(format!(
                "encoded index has {} bytes, expected {}",
                encoded.len(),
                layout.encoded_size
            )));
        }
        Ok(encoded.into_owned())
    }

    /// Build from raw entries (tests and writers), validated.
    ///
    /// # Errors
    /// As [`ShardIndex::decode`].
    pub fn from_entries(path: &Path, entries: Vec<u64>, file_size: u64) -> Result<Self> {
        let index = Self { entries };
        index.validate(path, file_size)?;
        Ok(index)
    }

    fn validate(&self, path: &Path, file_size: u64) -> Result<()> {
        for (entry, pair) in (0u64..).zip(self.entries.chunks_exact(2)) {
            let (offset, nbytes) = (pair[0], pair[1]);
            let corrupt = |reason| ArrayError::CorruptShardIndex {
                path: path.to_path_buf(),
                entry,
                offset,
                nbytes,
                file_size,
                reason,
            };
            match (offset == MISSING, nbytes == MISSING) {
                (true, true) => continue,
                (true, false) | (false, true) => {
                    return Err(corrupt(
                        "only one of offset and nbytes marks a missing chunk",
                    ))
                }
                (false, false) => {}
            }
            let end = offset
                .checked_add(nbytes)
                .ok_or_else(|| corrupt("offset + nbytes overflows"))?;
            if end > file_size {
                return Err(corrupt("chunk extends past the end of the file"));
            }
        }
        Ok(())
    }

    /// The byte range of inner chunk `i` (C order), or `None` when it is missing.
    #[must_use]
    pub fn chunk(&self, i: usize) -> Option<(u64, u64)> {
        let offset = *self.entries.get(2 * i)?;
        let nbytes = *self.entries.get(2 * i + 1)?;
        (offset != MISSING).then_some((offset, nbytes))
    }

    /// Number of inner chunks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len() / 2
    }

    /// Whether the index has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Memory held, in bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.entries.len() * 8 + std::mem::size_of::<Self>()
    }
}

/// The shape of the index array: inner chunks per shard, then 2.
fn index_shape(layout: &IndexLayout) -> Vec<NonZeroU64> {
    layout
        .chunks_per_shard
        .iter()
        .chain(&[2])
        .map(|&d| NonZeroU64::new(d).unwrap_or(NonZeroU64::MIN))
        .collect()
}

/// What identifies one version of a file (a rewritten shard gets a new index): zuring_io's,
/// whose reads can be pinned to that version.
pub use zuring_io::FileVersion;

/// Decoded shard indexes, shared across calls and threads, bounded in bytes (LRU). A forked
/// child starts with an empty cache of its own (its parent's lock may have been held by one of
/// the parent's threads at the fork).
#[derive(Debug)]
pub struct ShardIndexCache {
    inner: PerProcess<Mutex<CacheState>>,
    max_bytes: usize,
}

#[derive(Debug)]
pub(crate) struct CacheState {
    entries: LruCache<PathBuf, (FileVersion, Arc<ShardIndex>)>,
    bytes: usize,
}

impl ShardIndexCache {
    /// A cache holding at most `max_bytes` of indexes.
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: PerProcess::new(),
            max_bytes,
        }
    }

    /// This process's state.
    pub(crate) fn state(&self) -> &Mutex<CacheState> {
        self.inner.get_or_init(|| {
            Mutex::new(CacheState {
                entries: LruCache::unbounded(),
                bytes: 0,
            })
        })
    }

    /// The cached index of `path` if it is for `version`.
    #[must_use]
    pub fn get(&self, path: &Path, version: FileVersion) -> Option<Arc<ShardIndex>> {
        let mut state = self.state().lock().ok()?;
        match state.entries.get(path) {
            Some((v, index)) if *v == version => Some(Arc::clone(index)),
            _ => None,
        }
    }

    /// Remember `index` for `path` at `version`, evicting the least recently used beyond the bound.
    pub fn insert(&self, path: PathBuf, version: FileVersion, index: Arc<ShardIndex>) {
        let Ok(mut state) = self.state().lock() else {
            return;
        };
        let size = index.bytes();
        if size > self.max_bytes {
            return;
        }
        if let Some((_, old)) = state.entries.put(path, (version, index)) {
            state.bytes -= old.bytes();
        }
        state.bytes += size;
        while state.bytes > self.max_bytes {
            match state.entries.pop_lru() {
                Some((_, (_, old))) => state.bytes -= old.bytes(),
                None => break,
            }
        }
    }

    /// Forget the index of `path`.
    pub fn invalidate(&self, path: &Path) {
        if let Ok(mut state) = self.state().lock() {
            if let Some((_, old)) = state.entries.pop(path) {
                state.bytes -= old.bytes();
            }
        }
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.state().lock().map_or(0, |s| s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_entry() {
        let p = Path::new("shard");
        let ok = ShardIndex::from_entries(p, vec![0, 10, MISSING, MISSING, 10, 5], 15).unwrap();
        assert_eq!(ok.chunk(0), Some((0, 10)));
        assert_eq!(ok.chunk(1), None);
        assert_eq!(ok.chunk(2), Some((10, 5)));
        let past = ShardIndex::from_entries(p, vec![0, 10, 10, 6], 15).unwrap_err();
        assert!(matches!(
            past,
            ArrayError::CorruptShardIndex {
                entry: 1,
                offset: 10,
                nbytes: 6,
                file_size: 15,
                ..
            }
        ));
        assert!(past
            .to_string()
            .contains("shard: corrupt shard index: entry 1"));
        let half = ShardIndex::from_entries(p, vec![MISSING, 3], 15).unwrap_err();
        assert!(matches!(
            half,
            ArrayError::CorruptShardIndex { entry: 0, .. }
        ));
        let overflow = ShardIndex::from_entries(p, vec![u64::MAX - 1, 5], 15).unwrap_err();
        assert!(overflow.to_string().contains("overflows"));
    }

    #[test]
    fn cache_is_bounded_and_versioned() {
        let one = Arc::new(ShardIndex {
            entries: vec![0; 100],
        });
        let cache = ShardIndexCache::new(one.bytes() * 2);
        let v = |size| FileVersion {
            dev: 1,
            ino: 1,
            size,
            mtime_ns: 0,
        };
        cache.insert("a".into(), v(1), Arc::clone(&one));
        cache.insert("b".into(), v(1), Arc::clone(&one));
        assert!(cache.get(Path::new("a"), v(1)).is_some());
        assert!(
            cache.get(Path::new("a"), v(2)).is_none(),
            "another version of the file"
        );
        cache.insert("c".into(), v(1), Arc::clone(&one));
        assert!(
            cache.get(Path::new("b"), v(1)).is_none(),
            "least recently used evicted"
        );
        assert!(cache.bytes() <= one.bytes() * 2);
        cache.invalidate(Path::new("a"));
        assert!(cache.get(Path::new("a"), v(1)).is_none());
    }
}
