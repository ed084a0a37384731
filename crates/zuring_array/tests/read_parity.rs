//! zuring's reads equal direct indexing of the values zarrs wrote, for every layout and selection
//! kind; corrupt files give errors naming the file and entry.
#![allow(clippy::cast_possible_truncation)]

use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use zarrs::array::{Array, ArraySubset};
use zarrs::storage::{StoreKey, WritableStorageTraits};
use zarrs_filesystem::FilesystemStore;
use zuring_array::{ArrayError, ArrayOptions, Context, DimSlice, ReadMode, Selection, ZarrArray};
use zuring_io::{BackendKind, ReaderOptions};

const SHAPE: [u64; 3] = [7, 30, 21];

fn value(i: u64) -> u32 {
    (i.wrapping_mul(2_654_435_761) >> 7) as u32 % 100_000
}

fn meta(codecs: &str, chunk: [u64; 3], fill: &str) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[7,30,21],"data_type":"uint32",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[{},{},{}]}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":{fill},"codecs":{codecs}}}"#,
        chunk[0], chunk[1], chunk[2]
    )
}

fn shard(inner: &str, location: &str, index: &str) -> String {
    shard_with(&[2, 5, 7], inner, location, index)
}

fn shard_with(chunk: &[u64; 3], inner: &str, location: &str, index: &str) -> String {
    format!(
        r#"[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[{},{},{}],"codecs":{inner},
        "index_codecs":{index},"index_location":"{location}"}}}}]"#,
        chunk[0], chunk[1], chunk[2]
    )
}

const LE: &str = r#"{"name":"bytes","configuration":{"endian":"little"}}"#;
const BE: &str = r#"{"name":"bytes","configuration":{"endian":"big"}}"#;

fn cases() -> Vec<(&'static str, String, bool)> {
    let zstd = format!(r#"[{LE},{{"name":"zstd","configuration":{{"level":3,"checksum":true}}}}]"#);
    let blosc = format!(
        r#"[{LE},{{"name":"blosc","configuration":{{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4,"blocksize":0}}}}]"#
    );
    let gzip_crc =
        format!(r#"[{BE},{{"name":"gzip","configuration":{{"level":1}}}},{{"name":"crc32c"}}]"#);
    let idx_crc = format!(r#"[{LE},{{"name":"crc32c"}}]"#);
    let idx_be = format!(r#"[{BE}]"#);
    vec![
        ("unsharded zstd", meta(&zstd, [3, 8, 8], "7"), false),
        ("unsharded blosc", meta(&blosc, [2, 16, 5], "0"), false),
        (
            "unsharded gzip crc32c big-endian",
            meta(&gzip_crc, [4, 7, 21], "4294967295"),
            false,
        ),
        (
            "sharded end crc32c index",
            meta(&shard(&zstd, "end", &idx_crc), [4, 10, 14], "7"),
            true,
        ),
        (
            "sharded start big-endian index",
            meta(&shard(&blosc, "start", &idx_be), [2, 15, 7], "1"),
            true,
        ),
        (
            "sharded gzip inner crc32c",
            meta(&shard(&gzip_crc, "end", &idx_crc), [4, 10, 7], "0"),
            true,
        ),
        (
            "transpose before sharding (zarrs path)",
            meta(
                // The inner chunk shape is in transposed coordinates: shard [2,10,14] -> [14,2,10].
                &format!(
                    r#"[{{"name":"transpose","configuration":{{"order":[2,0,1]}}}},{}]"#,
                    shard_with(&[7, 2, 5], &zstd, "end", &idx_crc)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                ),
                [2, 10, 14],
                "3",
            ),
            true,
        ),
    ]
}

/// Write the array with zarrs, leaving one region unwritten (fill); returns the expected values.
fn write_with_zarrs(dir: &Path, meta: &str) -> Vec<u32> {
    let store = Arc::new(FilesystemStore::new(dir).unwrap());
    store
        .set(
            &StoreKey::new("zarr.json").unwrap(),
            meta.as_bytes().to_vec().into(),
        )
        .unwrap();
    let array = Array::open(store, "/").unwrap();
    let fill: u32 = u32::from_ne_bytes(array.fill_value().as_ne_bytes().try_into().unwrap());
    let n = SHAPE.iter().product::<u64>();
    let mut expected: Vec<u32> = (0..n).map(value).collect();
    // Written: time steps 0..5 only; 5..7 stay fill (missing chunks / shards / inner chunks).
    let written = 5 * SHAPE[1] * SHAPE[2];
    for v in &mut expected[written as usize..] {
        *v = fill;
    }
    array
        .store_array_subset(
            &ArraySubset::new_with_ranges(&[0..5, 0..30, 0..21]),
            expected[..written as usize].to_vec(),
        )
        .unwrap();
    expected
}

fn at(expected: &[u32], c: &[u64]) -> u32 {
    expected[((c[0] * SHAPE[1] + c[1]) * SHAPE[2] + c[2]) as usize]
}

fn contexts() -> Vec<Arc<Context>> {
    [BackendKind::Uring, BackendKind::Pread]
        .into_iter()
        .map(|backend| {
            Context::new(ArrayOptions {
                threads: 3,
                reader: ReaderOptions {
                    backend,
                    ..ReaderOptions::default()
                },
                ..ArrayOptions::default()
            })
            .unwrap()
        })
        .collect()
}

fn check_all_selections(array: &ZarrArray, expected: &[u32], rng: &mut impl Rng, name: &str) {
    // Whole array.
    let whole = array.read::<u32>(&Selection::all(&SHAPE)).unwrap();
    assert_eq!(whole.as_slice().unwrap(), expected, "{name}: whole");
    for _ in 0..6 {
        // Regions with and without steps.
        let slices: Vec<DimSlice> = SHAPE
            .iter()
            .map(|&n| {
                let a = rng.gen_range(0..n);
                let b = rng.gen_range(a + 1..=n);
                DimSlice {
                    start: a,
                    stop: b,
                    step: rng.gen_range(1..4),
                }
            })
            .collect();
        let got = array
            .read::<u32>(&Selection::Region(slices.clone()))
            .unwrap();
        let lists: Vec<Vec<u64>> = slices
            .iter()
            .map(|s| (s.start..s.stop).step_by(s.step as usize).collect())
            .collect();
        let mut want = Vec::new();
        for &i in &lists[0] {
            for &j in &lists[1] {
                for &k in &lists[2] {
                    want.push(at(expected, &[i, j, k]));
                }
            }
        }
        assert_eq!(
            got.as_slice().unwrap(),
            &want[..],
            "{name}: region {slices:?}"
        );
        // Orthogonal lists, unsorted with repeats.
        let lists: Vec<Vec<u64>> = SHAPE
            .iter()
            .map(|&n| {
                (0..rng.gen_range(1..5))
                    .map(|_| rng.gen_range(0..n))
                    .collect()
            })
            .collect();
        let got = array
            .read::<u32>(&Selection::Orthogonal(lists.clone()))
            .unwrap();
        let mut want = Vec::new();
        for &i in &lists[0] {
            for &j in &lists[1] {
                for &k in &lists[2] {
                    want.push(at(expected, &[i, j, k]));
                }
            }
        }
        assert_eq!(
            got.as_slice().unwrap(),
            &want[..],
            "{name}: oindex {lists:?}"
        );
        // Points.
        let points: Vec<Vec<u64>> = (0..20)
            .map(|_| SHAPE.iter().map(|&n| rng.gen_range(0..n)).collect())
            .collect();
        let got = array
            .read::<u32>(&Selection::Points(points.clone()))
            .unwrap();
        let want: Vec<u32> = points.iter().map(|p| at(expected, p)).collect();
        assert_eq!(got.as_slice().unwrap(), &want[..], "{name}: vindex");
        // A batch of crops, some overlapping and sharing chunks.
        let crop = [2u64, 9, 8];
        let starts: Vec<u64> = (0..8)
            .flat_map(|_| {
                SHAPE
                    .iter()
                    .zip(&crop)
                    .map(|(&n, &c)| rng.gen_range(0..=n - c))
                    .collect::<Vec<_>>()
            })
            .collect();
        let got: Vec<u32> = array.read_crops(&starts, &crop).unwrap();
        let mut want = Vec::new();
        for s in starts.chunks(3) {
            for i in s[0]..s[0] + crop[0] {
                for j in s[1]..s[1] + crop[1] {
                    for k in s[2]..s[2] + crop[2] {
                        want.push(at(expected, &[i, j, k]));
                    }
                }
            }
        }
        assert_eq!(got, want, "{name}: crops");
    }
}

#[test]
fn reads_match_what_zarrs_wrote() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for ctx in contexts() {
        for (name, meta, sharded) in cases() {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let expected = write_with_zarrs(dir.path(), &meta);
            let array = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
            assert_eq!(array.shape(), SHAPE);
            assert_eq!(array.shard_shape().is_some(), sharded, "{name}");
            if name.contains("zarrs path") {
                assert!(matches!(array.read_mode(), ReadMode::Zarrs(_)), "{name}");
            } else if sharded {
                assert!(matches!(array.read_mode(), ReadMode::Sharded(_)), "{name}");
            }
            check_all_selections(&array, &expected, &mut rng, name);
        }
    }
}

#[test]
fn writes_are_read_by_zarrs() {
    for (name, meta, _) in cases() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let array = ZarrArray::create(dir.path(), &meta).unwrap();
        let n = SHAPE.iter().product::<u64>();
        let values: Vec<u32> = (0..n).map(value).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        array.write_region(&[0..7, 0..30, 0..21], &bytes).unwrap();
        // Overwrite a region cutting through chunks and shards, then read back through both.
        let patch: Vec<u8> = (0..2 * 11 * 9u32)
            .flat_map(|v| (v + 1_000_000).to_ne_bytes())
            .collect();
        array.write_region(&[3..5, 4..15, 6..15], &patch).unwrap();
        let mut want = values.clone();
        let mut p = 1_000_000u32;
        for i in 3..5u64 {
            for j in 4..15u64 {
                for k in 6..15u64 {
                    want[((i * 30 + j) * 21 + k) as usize] = p;
                    p += 1;
                }
            }
        }
        let ours = array.read::<u32>(&Selection::all(&SHAPE)).unwrap();
        assert_eq!(
            ours.as_slice().unwrap(),
            &want[..],
            "{name}: zuring reads its write"
        );
        let reopened = ZarrArray::open(dir.path()).unwrap();
        assert_eq!(
            reopened
                .read::<u32>(&Selection::all(&SHAPE))
                .unwrap()
                .as_slice()
                .unwrap(),
            &want[..]
        );
        let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
        let got: Vec<u32> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
        assert_eq!(got, want, "{name}: zarrs reads zuring's write");
    }
}

#[test]
fn bad_selections_fail_before_io() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, meta, _) = &cases()[3];
    write_with_zarrs(dir.path(), meta);
    let array = ZarrArray::open(dir.path()).unwrap();
    let err = array
        .read_crops::<u32>(&[0, 0, 15], &[2, 2, 7])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("crop 0 spans 15..22 in dimension 2 of size 21"),
        "{err}"
    );
    assert!(matches!(
        array.read::<u32>(&Selection::Points(vec![vec![0, 30, 0]])),
        Err(ArrayError::Selection { .. })
    ));
    assert!(matches!(
        array.read::<u16>(&Selection::all(&SHAPE)),
        Err(ArrayError::Selection { .. })
    ));
    let mut small = vec![0u8; 3];
    assert!(matches!(
        array.read_into(&Selection::all(&SHAPE), &mut small),
        Err(ArrayError::OutputSize { .. })
    ));
    assert!(matches!(
        ZarrArray::open(dir.path().join("nope")),
        Err(ArrayError::NotFound { .. })
    ));
}

/// Rewrite `path`'s shard index (index at the end, bytes little-endian + crc32c) with `f` applied to
/// the entries, recomputing the crc so that only the entries are wrong.
fn tamper_index(path: &Path, f: impl Fn(&mut Vec<u64>)) {
    let mut bytes = std::fs::read(path).unwrap();
    let index_len = 8 * 2 * 2 * 2 * 2 + 4; // 2x2x2 inner chunks, 2 u64 each, + crc32c
    let start = bytes.len() - index_len;
    let mut entries: Vec<u64> = bytes[start..start + index_len - 4]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    f(&mut entries);
    let raw: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    bytes[start..start + raw.len()].copy_from_slice(&raw);
    let crc = crc32c(&raw);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Castagnoli CRC, bitwise (test helper).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn corrupt_shards_name_file_and_entry() {
    // Shards of 4x10x14 with inner 2x5x7: 2x2x2 inner chunks per shard, index at the end.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, meta, _) = &cases()[3];
    write_with_zarrs(dir.path(), meta);
    let shard = dir.path().join("c/0/0/0");
    let original = std::fs::read(&shard).unwrap();
    let fresh = || {
        ZarrArray::open_with(dir.path(), Context::new(ArrayOptions::default()).unwrap()).unwrap()
    };
    let read_shard = |a: &ZarrArray| {
        a.read::<u32>(&Selection::Region(vec![
            DimSlice::range(0, 4),
            DimSlice::range(0, 10),
            DimSlice::range(0, 14),
        ]))
    };

    // Entry 3 points past the end of the file.
    tamper_index(&shard, |e| e[3 * 2] = 1 << 40);
    let err = read_shard(&fresh()).unwrap_err();
    assert!(
        matches!(&err, ArrayError::CorruptShardIndex { entry: 3, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("c/0/0/0") && err.to_string().contains("past the end"),
        "{err}"
    );

    // offset + nbytes overflows.
    std::fs::write(&shard, &original).unwrap();
    tamper_index(&shard, |e| {
        e[2] = u64::MAX - 3;
        e[3] = 10;
    });
    assert!(read_shard(&fresh())
        .unwrap_err()
        .to_string()
        .contains("overflows"));

    // One field of a pair at 2^64-1.
    std::fs::write(&shard, &original).unwrap();
    tamper_index(&shard, |e| e[5 * 2 + 1] = u64::MAX);
    assert!(matches!(
        read_shard(&fresh()),
        Err(ArrayError::CorruptShardIndex { entry: 5, .. })
    ));

    // Bad index checksum.
    std::fs::write(&shard, &original).unwrap();
    let mut bytes = original.clone();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
    let err = read_shard(&fresh()).unwrap_err();
    assert!(
        matches!(&err, ArrayError::UnreadableShardIndex { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("c/0/0/0"), "{err}");

    // File shorter than its index.
    std::fs::write(&shard, &original[..20]).unwrap();
    let err = read_shard(&fresh()).unwrap_err();
    assert!(err.to_string().contains("shorter than its"), "{err}");

    // A corrupted chunk (zstd with checksum): names the file and chunk; the rest still reads.
    std::fs::write(&shard, &original).unwrap();
    let mut bytes = original.clone();
    bytes[12] ^= 0x55;
    std::fs::write(&shard, &bytes).unwrap();
    let array = fresh();
    let err = read_shard(&array).unwrap_err();
    assert!(matches!(&err, ArrayError::CorruptChunk { .. }), "{err}");
    assert!(err.to_string().contains("c/0/0/0"), "{err}");
    // The array stays usable: another shard reads fine.
    assert!(array
        .read::<u32>(&Selection::Region(vec![
            DimSlice::range(4, 7),
            DimSlice::range(10, 20),
            DimSlice::range(0, 21)
        ]))
        .is_ok());
    std::fs::write(&shard, &original).unwrap();
    assert!(
        read_shard(&array).is_ok(),
        "a rewritten shard is re-read (cache keyed by file version)"
    );
}
