//! [`Context`]: what the arrays opened with it share (the IO reader, the decode pool, the shard
//! index cache), and its [`ArrayOptions`].

use std::sync::{Arc, OnceLock};

use zarrs::array::CodecOptions;
use zuring_io::{Reader, ReaderOptions};

use crate::error::{ArrayError, Result};
use crate::pool::DecodePool;
use crate::shard_index::ShardIndexCache;

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

/// Make zarrs' global configuration, which every array and codec reads, before anything else
/// does: made on first use, it asks rayon for its global thread pool, and rayon panics when
/// that pool's threads cannot start (a process at its limit of threads). Made here under
/// `catch_unwind`, that panic becomes an error. Neither rayon nor zarrs tries again in this
/// process once it failed, so every later call fails the same way.
///
/// # Errors
/// [`ArrayError::Threads`] with the panic's message.
fn zarrs_config_ready() -> Result<()> {
    std::panic::catch_unwind(|| drop(zarrs::config::global_config())).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("zarrs' configuration could not be made");
        ArrayError::Threads {
            what: "rayon's global thread pool, which zarrs' configuration asks for (a failure is \
                   final in this process)"
                .to_owned(),
            message: message.to_owned(),
        }
    })
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
        zarrs_config_ready()?;
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
        zarrs_config_ready()?;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ZarrArray;

    /// A child forked while a thread of its parent holds the process-wide context's shard
    /// index cache (an instant of a read of a sharded array, as when a DataLoader worker is
    /// forked while the parent reads) reads a sharded array all the same, with a cache of its
    /// own; before, it waited forever for that lock. (The IO engine's lock: zuring_io's
    /// `a_child_forked_while_the_engine_is_locked_reads`.)
    #[test]
    fn a_child_forked_while_the_shared_context_is_locked_reads() {
        let dir = tempfile::tempdir().unwrap();
        let meta = r#"{"zarr_format":3,"node_type":"array","shape":[8,8],"data_type":"uint16",
            "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4,8]}},
            "chunk_key_encoding":{"name":"default"},"fill_value":0,
            "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[2,2],
                "codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":false}}],
                "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}]}}]}"#;
        let array = ZarrArray::create(dir.path(), meta).unwrap();
        let values: Vec<u16> = (0..64).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        array.write_region(&[0..8, 0..8], &bytes).unwrap();
        // The parent reads: the shared context, its reader and its caches are in use.
        assert_eq!(
            array.read_crops::<u16>(&[1, 3], &[2, 2]).unwrap(),
            [11, 12, 19, 20]
        );
        let ctx = Context::shared().unwrap();
        assert!(
            ctx.indexes.bytes() > 0,
            "the parent cached the shard indexes"
        );
        let exited = zuring_io::testing::fork_while_held(
            move |held| {
                let _locked = ctx.indexes.state().lock();
                held();
            },
            || {
                ZarrArray::open(dir.path())
                    .and_then(|a| a.read_crops::<u16>(&[5, 6, 0, 0], &[2, 2]))
                    .is_ok_and(|v| v == [46, 47, 54, 55, 0, 1, 8, 9])
            },
            Duration::from_secs(20),
        );
        assert_eq!(
            exited,
            Some(0),
            "the child hung (None) or read wrong values"
        );
    }
}
