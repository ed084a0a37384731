//! zarrs arrays written through UringStore read back identically through zarrs' FilesystemStore,
//! and the reverse, for sharded and unsharded arrays with zstd, blosc, gzip and crc32c.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use zarrs::array::{Array, ArraySubset};
use zarrs::storage::{
    ListableStorageTraits, ReadableStorageTraits, ReadableWritableListableStorage, StoreKey,
    StorePrefix, WritableStorageTraits,
};
use zarrs_filesystem::FilesystemStore;
use zuring_io::{BackendKind, ReaderOptions};
use zuring_zarrs::UringStore;

const SHAPE: [u64; 2] = [50, 37];

fn metadata(codecs: &str, chunk: [u64; 2]) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[50,37],"data_type":"uint16",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[{},{}]}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":7,"codecs":{codecs}}}"#,
        chunk[0], chunk[1]
    )
}

fn cases() -> Vec<(&'static str, String)> {
    let shard = |inner: &str| {
        format!(
            r#"[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[5,8],
            "codecs":{inner},"index_codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"crc32c"}}],
            "index_location":"end"}}}}]"#
        )
    };
    vec![
        (
            "zstd",
            metadata(
                r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":3,"checksum":false}}]"#,
                [16, 16],
            ),
        ),
        (
            "blosc",
            metadata(
                r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":2,"blocksize":0}}]"#,
                [16, 16],
            ),
        ),
        (
            "gzip_crc",
            metadata(
                r#"[{"name":"bytes","configuration":{"endian":"big"}},{"name":"gzip","configuration":{"level":5}},{"name":"crc32c"}]"#,
                [16, 16],
            ),
        ),
        (
            "sharded_zstd",
            metadata(
                &shard(
                    r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":true}}]"#,
                ),
                [20, 16],
            ),
        ),
        (
            "sharded_blosc_crc",
            metadata(
                &shard(
                    r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"blosc","configuration":{"cname":"zstd","clevel":3,"shuffle":"bitshuffle","typesize":2,"blocksize":0}},{"name":"crc32c"}]"#,
                ),
                [20, 16],
            ),
        ),
    ]
}

fn values() -> Vec<u16> {
    (0..SHAPE[0] * SHAPE[1])
        .map(|i| (i * 31 % 1000) as u16)
        .collect()
}

fn write(store: ReadableWritableListableStorage, meta: &str) {
    store
        .set(
            &StoreKey::new("zarr.json").unwrap(),
            meta.as_bytes().to_vec().into(),
        )
        .unwrap();
    let array = Array::open(store, "/").unwrap();
    // A region that leaves some chunks empty (fill) and cuts through chunks and shards.
    let subset = ArraySubset::new_with_ranges(&[3..45, 0..30]);
    let all = values();
    let region: Vec<u16> = (3..45u64)
        .flat_map(|i| (0..30u64).map(move |j| (i, j)))
        .map(|(i, j)| all[(i * SHAPE[1] + j) as usize])
        .collect();
    array.store_array_subset(&subset, region).unwrap();
}

fn read(store: ReadableWritableListableStorage) -> (Vec<u16>, Vec<u16>) {
    let array = Array::open(store, "/").unwrap();
    let whole: Vec<u16> = array.retrieve_array_subset(&array.subset_all()).unwrap();
    let part: Vec<u16> = array
        .retrieve_array_subset(&ArraySubset::new_with_ranges(&[17..33, 5..36]))
        .unwrap();
    (whole, part)
}

fn uring_store(dir: &std::path::Path, kind: BackendKind, direct: bool) -> Arc<UringStore> {
    Arc::new(
        UringStore::with_options(
            dir,
            ReaderOptions {
                backend: kind,
                direct_io: direct,
                ..ReaderOptions::default()
            },
        )
        .unwrap(),
    )
}

#[test]
fn written_by_zarrs_read_by_zuring_and_back() {
    for (name, meta) in cases() {
        for (kind, direct) in [
            (BackendKind::Uring, false),
            (BackendKind::Uring, true),
            (BackendKind::Pread, false),
        ] {
            // zarrs' FilesystemStore writes, both read.
            let a = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            write(Arc::new(FilesystemStore::new(a.path()).unwrap()), &meta);
            let reference = read(Arc::new(FilesystemStore::new(a.path()).unwrap()));
            let ours = read(uring_store(a.path(), kind, direct));
            assert_eq!(
                ours, reference,
                "{name}: zuring reading zarrs' files ({kind:?}, direct={direct})"
            );
            // Fill where nothing was written, data where it was.
            assert_eq!(reference.0[0], 7, "{name}");
            assert_eq!(
                reference.0[(3 * SHAPE[1]) as usize],
                values()[(3 * SHAPE[1]) as usize]
            );

            // UringStore writes, both read.
            let b = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            write(uring_store(b.path(), kind, direct), &meta);
            let theirs = read(Arc::new(FilesystemStore::new(b.path()).unwrap()));
            assert_eq!(theirs, reference, "{name}: zarrs reading zuring's files");
            let store_a = FilesystemStore::new(a.path()).unwrap();
            let store_b = uring_store(b.path(), kind, direct);
            assert_eq!(
                store_a.list().unwrap(),
                store_b.list().unwrap(),
                "{name}: same keys"
            );
        }
    }
}

#[test]
fn missing_keys_listing_and_escapes() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = uring_store(dir.path(), BackendKind::Auto, false);
    let key = |k: &str| StoreKey::new(k).unwrap();
    assert_eq!(store.get(&key("a/b")).unwrap(), None);
    assert_eq!(store.size_key(&key("a/b")).unwrap(), None);
    store
        .set(&key("a/b"), vec![1u8, 2, 3, 4, 5].into())
        .unwrap();
    store.set(&key("a/c/d"), vec![9u8].into()).unwrap();
    store.set(&key("z"), vec![].into()).unwrap();
    assert_eq!(
        store.get(&key("a/b")).unwrap().unwrap().as_ref(),
        &[1, 2, 3, 4, 5]
    );
    assert_eq!(
        store
            .get_partial(
                &key("a/b"),
                zarrs::storage::byte_range::ByteRange::Suffix(2)
            )
            .unwrap()
            .unwrap()
            .as_ref(),
        &[4, 5]
    );
    assert!(store
        .get_partial(
            &key("a/b"),
            zarrs::storage::byte_range::ByteRange::FromStart(3, Some(9))
        )
        .is_err());
    store
        .set_partial(&key("a/b"), 3, vec![8u8, 8, 8].into())
        .unwrap();
    assert_eq!(
        store.get(&key("a/b")).unwrap().unwrap().as_ref(),
        &[1, 2, 3, 8, 8, 8]
    );
    let keys: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(keys, ["a/b", "a/c/d", "z"]);
    let in_a: Vec<String> = store
        .list_prefix(&StorePrefix::new("a/").unwrap())
        .unwrap()
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(in_a, ["a/b", "a/c/d"]);
    let dir_a = store.list_dir(&StorePrefix::new("a/").unwrap()).unwrap();
    assert_eq!(dir_a.keys().len(), 1);
    assert_eq!(dir_a.prefixes()[0].as_str(), "a/c/");
    assert_eq!(store.size_prefix(&StorePrefix::root()).unwrap(), 7);
    store.erase(&key("a/b")).unwrap();
    store.erase(&key("a/b")).unwrap();
    assert_eq!(store.get(&key("a/b")).unwrap(), None);
    store
        .erase_prefix(&StorePrefix::new("a/").unwrap())
        .unwrap();
    assert_eq!(store.get(&key("a/c/d")).unwrap(), None);
    for bad in ["../outside", "a/../../x", "./a"] {
        let err = store.get(&key(bad)).unwrap_err();
        assert!(
            err.to_string().contains("would leave the store root"),
            "{bad}: {err}"
        );
        assert!(store.set(&key(bad), vec![1u8].into()).is_err());
    }
    assert!(!dir.path().parent().unwrap().join("outside").exists());
}
