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
        // Uncompressed inner chunks: a read of part of one fetches only that part.
        (
            "sharded uncompressed",
            meta(
                &shard(&format!("[{LE}]"), "end", &idx_crc),
                [4, 10, 14],
                "7",
            ),
            true,
        ),
        (
            "sharded uncompressed big-endian, index at the start",
            meta(
                &shard(&format!("[{BE}]"), "start", &idx_be),
                [2, 15, 7],
                "9",
            ),
            true,
        ),
        (
            "unsharded uncompressed big-endian",
            meta(&format!("[{BE}]"), [3, 8, 8], "7"),
            false,
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

/// Set the orthogonal selection `lists` of `expected` (of `SHAPE`) to `values`, C order (a
/// repeated index takes the later value).
fn set_orthogonal(expected: &mut [u32], lists: &[Vec<u64>], values: &[u32]) {
    let mut k = 0;
    for &i in &lists[0] {
        for &j in &lists[1] {
            for &l in &lists[2] {
                expected[((i * SHAPE[1] + j) * SHAPE[2] + l) as usize] = values[k];
                k += 1;
            }
        }
    }
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
    let start = bytes.len() - INDEX_LEN;
    let mut entries = index_entries(&bytes);
    f(&mut entries);
    let raw: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    bytes[start..start + raw.len()].copy_from_slice(&raw);
    let crc = crc32c(&raw);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// The encoded index size of `cases()[3]`: 2x2x2 inner chunks, 2 u64 each, + crc32c.
const INDEX_LEN: usize = 8 * 2 * 2 * 2 * 2 + 4;

/// The index entries of a `cases()[3]` shard (index at the end, little-endian + crc32c).
fn index_entries(shard: &[u8]) -> Vec<u64> {
    let start = shard.len() - INDEX_LEN;
    shard[start..shard.len() - 4]
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The stored bytes of inner chunk `i` of a `cases()[3]` shard (None: absent).
fn inner_bytes(shard: &[u8], i: usize) -> Option<Vec<u8>> {
    let e = index_entries(shard);
    (e[2 * i] != u64::MAX)
        .then(|| shard[e[2 * i] as usize..(e[2 * i] + e[2 * i + 1]) as usize].to_vec())
}

#[test]
fn partial_shard_writes_reencode_only_touched_inner_chunks() {
    // Written with zstd level 1, then the metadata says level 19: an inner chunk encoded again
    // by zuring gets other bytes, one left alone keeps its level-1 bytes.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, meta, _) = &cases()[3];
    let mut expected = write_with_zarrs(dir.path(), &meta.replace(r#""level":3"#, r#""level":1"#));
    std::fs::write(
        dir.path().join("zarr.json"),
        meta.replace(r#""level":3"#, r#""level":19"#),
    )
    .unwrap();
    let original = expected.clone();
    let shard = dir.path().join("c/0/0/0");
    let before = std::fs::read(&shard).unwrap();
    let array = ZarrArray::open(dir.path()).unwrap();
    // Part of inner chunk 0 (inner chunks 2x5x7; 2x2x2 of them per 4x10x14 shard).
    let patch: Vec<u32> = (0..12).map(|v| 500_000 + v).collect();
    let bytes: Vec<u8> = patch.iter().flat_map(|v| v.to_ne_bytes()).collect();
    array.write_region(&[0..1, 0..3, 0..4], &bytes).unwrap();
    for (k, v) in patch.iter().enumerate() {
        let (j, l) = (k as u64 / 4, k as u64 % 4);
        expected[(j * SHAPE[2] + l) as usize] = *v;
    }
    let after = std::fs::read(&shard).unwrap();
    assert_ne!(inner_bytes(&after, 0), inner_bytes(&before, 0));
    for i in 1..8 {
        assert_eq!(
            inner_bytes(&after, i),
            inner_bytes(&before, i),
            "inner chunk {i} kept as stored"
        );
    }
    let check = |want: &[u32]| {
        let ours = ZarrArray::open(dir.path())
            .unwrap()
            .read::<u32>(&Selection::all(&SHAPE))
            .unwrap();
        assert_eq!(ours.as_slice().unwrap(), want);
        let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
        let got: Vec<u32> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
        assert_eq!(got, want, "zarrs reads the rewritten shard");
    };
    check(&expected);

    // An untouched inner chunk is not even decoded: corrupt, it survives a write elsewhere.
    let mut bad = after.clone();
    let e = index_entries(&bad);
    bad[(e[14] + e[15] / 2) as usize] ^= 0x5a;
    std::fs::write(&shard, &bad).unwrap();
    let array = ZarrArray::open(dir.path()).unwrap();
    array
        .write_region(&[0..1, 0..1, 0..1], &42u32.to_ne_bytes())
        .unwrap();
    let now = std::fs::read(&shard).unwrap();
    assert_eq!(inner_bytes(&now, 7), inner_bytes(&bad, 7));
    // A touched one written in part is decoded: corrupt, the write fails naming the shard and
    // the inner chunk, and the file is left as it was.
    let mut bad = now.clone();
    let e = index_entries(&bad);
    bad[(e[0] + e[1] / 2) as usize] ^= 0x5a;
    std::fs::write(&shard, &bad).unwrap();
    let array = ZarrArray::open(dir.path()).unwrap();
    let err = array
        .write_region(&[0..1, 0..1, 0..1], &1u32.to_ne_bytes())
        .unwrap_err();
    assert!(
        matches!(&err, ArrayError::CorruptChunk { chunk, .. } if chunk == &[0, 0, 0]),
        "{err}"
    );
    assert!(err.to_string().contains("c/0/0/0"), "{err}");
    assert_eq!(std::fs::read(&shard).unwrap(), bad);
    // A write covering a whole inner chunk does not need its old bytes: a corrupt chunk is
    // replaced; written all fill value, it is dropped from the index.
    let mut bad = before.clone();
    let e = index_entries(&bad);
    bad[(e[0] + e[1] / 2) as usize] ^= 0x5a;
    std::fs::write(&shard, &bad).unwrap();
    let array = ZarrArray::open(dir.path()).unwrap();
    let fill: Vec<u8> = (0..2 * 5 * 7).flat_map(|_| 7u32.to_ne_bytes()).collect();
    array.write_region(&[0..2, 0..5, 0..7], &fill).unwrap();
    let last = std::fs::read(&shard).unwrap();
    assert_eq!(inner_bytes(&last, 0), None);
    for i in 1..8 {
        assert_eq!(inner_bytes(&last, i), inner_bytes(&before, i));
    }
    let mut want = original;
    for i in 0..2u64 {
        for j in 0..5u64 {
            for k in 0..7u64 {
                want[((i * SHAPE[1] + j) * SHAPE[2] + k) as usize] = 7;
            }
        }
    }
    check(&want);
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

#[test]
fn uncompressed_chunks_read_in_part_are_checked_like_whole_ones() {
    // Shards of 4x10x14 with inner 2x5x7 (70 elements, 280 bytes) stored uncompressed.
    let (name, meta, _) = cases()
        .into_iter()
        .find(|(name, ..)| *name == "sharded uncompressed")
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let expected = write_with_zarrs(dir.path(), &meta);
    let shard = dir.path().join("c/0/0/0");
    let original = std::fs::read(&shard).unwrap();
    let fresh = || {
        ZarrArray::open_with(dir.path(), Context::new(ArrayOptions::default()).unwrap()).unwrap()
    };
    // One element of inner chunk 0, and a part of it: reads of less than the chunk.
    let one = Selection::Points(vec![vec![1, 3, 4]]);
    let part = Selection::Region(vec![
        DimSlice::range(0, 1),
        DimSlice::range(1, 3),
        DimSlice::range(2, 6),
    ]);
    assert_eq!(
        fresh().read::<u32>(&one).unwrap().as_slice().unwrap(),
        &[at(&expected, &[1, 3, 4])],
        "{name}"
    );
    let mut want = Vec::new();
    for j in 1..3 {
        for k in 2..6 {
            want.push(at(&expected, &[0, j, k]));
        }
    }
    assert_eq!(
        fresh().read::<u32>(&part).unwrap().as_slice().unwrap(),
        &want[..]
    );

    // An entry of another size than the chunk's: read whole and named, never read in part.
    for nbytes in [276, 284] {
        std::fs::write(&shard, &original).unwrap();
        tamper_index(&shard, |e| e[1] = nbytes);
        for selection in [&one, &part] {
            let err = fresh().read::<u32>(selection).unwrap_err();
            assert!(matches!(&err, ArrayError::CorruptChunk { .. }), "{err}");
            let message = err.to_string();
            assert!(
                message.contains("c/0/0/0")
                    && message.contains(&format!("stored {nbytes} bytes, expected 280")),
                "{message}"
            );
        }
    }

    // The file cut short inside the chunk's part: the read of that part fails, naming the file.
    std::fs::write(&shard, &original).unwrap();
    let entries = index_entries(&original);
    let last = (0..entries.len() / 2)
        .max_by_key(|&i| entries[2 * i])
        .unwrap();
    // Keep the index (at the end) whole: cut the chunk's bytes out after its first 100.
    let offset = entries[2 * last] as usize;
    let mut cut = original[..offset + 100].to_vec();
    cut.extend_from_slice(&original[original.len() - INDEX_LEN..]);
    std::fs::write(&shard, &cut).unwrap();
    // Inner chunk `last` is at (i, j, k) in the shard's 2x2x2 inner grid.
    let (i, j, k) = (last as u64 / 4, last as u64 / 2 % 2, last as u64 % 2);
    let late = Selection::Points(vec![vec![2 * i + 1, 5 * j + 4, 7 * k + 6]]);
    let err = fresh().read::<u32>(&late).unwrap_err();
    assert!(
        err.to_string().contains("c/0/0/0") && err.to_string().contains("past the end"),
        "{err}"
    );

    // Unsharded: a chunk file (3x8x8, 768 bytes) of another size is read whole and named.
    let (_, meta, _) = cases()
        .into_iter()
        .find(|(name, ..)| *name == "unsharded uncompressed big-endian")
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let expected = write_with_zarrs(dir.path(), &meta);
    let chunk = dir.path().join("c/0/1/0");
    let original = std::fs::read(&chunk).unwrap();
    assert_eq!(original.len(), 768);
    let point = Selection::Points(vec![vec![1, 9, 2]]);
    let array = ZarrArray::open(dir.path()).unwrap();
    assert_eq!(
        array.read::<u32>(&point).unwrap().as_slice().unwrap(),
        &[at(&expected, &[1, 9, 2])]
    );
    for len in [764, 772] {
        let mut bytes = original.clone();
        bytes.resize(len, 0);
        std::fs::write(&chunk, &bytes).unwrap();
        let err = array.read::<u32>(&point).unwrap_err();
        assert!(matches!(&err, ArrayError::CorruptChunk { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("c/0/1/0")
                && message.contains(&format!("stored {len} bytes, expected 768")),
            "{message}"
        );
    }
}

/// Every file under `root`, by key relative to it.
fn files_by_key(root: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let mut out = std::collections::HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Serve `(key, range)` batches from `files` (keys under the prefix `pre/fix`), counting batches.
fn memory_fetch<'a>(
    files: &'a std::collections::HashMap<String, Vec<u8>>,
    batches: &'a std::sync::atomic::AtomicUsize,
) -> impl Fn(
    &[(std::path::PathBuf, zuring_io::ByteRange)],
    zuring_array::FetchKind,
) -> Vec<zuring_array::Fetched>
       + Sync
       + 'a {
    use zuring_array::{FetchKind, Fetched};
    use zuring_io::ByteRange;
    move |asks, kind| {
        batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if kind == FetchKind::Indexes {
            // One index per shard, at one end of it.
            let keys: std::collections::HashSet<_> = asks.iter().map(|(k, _)| k).collect();
            assert_eq!(keys.len(), asks.len());
            assert!(asks.iter().all(|(_, r)| matches!(
                r,
                ByteRange::Suffix(_) | ByteRange::Range { offset: 0, .. }
            )));
        }
        asks.iter()
            .map(|(key, range)| {
                let key = key.strip_prefix("pre/fix").unwrap().to_str().unwrap();
                let Some(data) = files.get(key) else {
                    return Fetched::Missing;
                };
                let n = data.len() as u64;
                // Like zarr-python's stores: a range past the end gives the bytes that exist.
                let (a, b) = match *range {
                    ByteRange::Range { offset, len } => (offset.min(n), (offset + len).min(n)),
                    ByteRange::From(o) => (o.min(n), n),
                    ByteRange::Suffix(len) => (n.saturating_sub(len), n),
                    ByteRange::Whole => (0, n),
                };
                Fetched::Bytes(data[a as usize..b as usize].to_vec().into())
            })
            .collect()
    }
}

/// An array of `meta` written by zarrs into a new directory: the directory, the values written
/// and the stored files by key.
fn written_by_zarrs(
    meta: &str,
) -> (
    tempfile::TempDir,
    Vec<u32>,
    std::collections::HashMap<String, Vec<u8>>,
) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let expected = write_with_zarrs(dir.path(), meta);
    let files = files_by_key(dir.path());
    (dir, expected, files)
}

/// Native-endian `u32`s of `bytes`.
fn native_u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

/// One request per stored chunk of the array's (regular) grid covering all of it, into an output
/// of the array's shape: what zarr-python's pipeline asks for a whole-array read.
fn whole_array_requests(array: &ZarrArray) -> Vec<zuring_array::ChunkRequest> {
    let file = array.shard_shape().unwrap_or(array.chunk_shape()).to_vec();
    let edges = std::array::from_fn(|d| vec![file[d]; SHAPE[d].div_ceil(file[d]) as usize]);
    whole_grid_requests(&edges)
}

#[test]
fn fetched_bytes_read_like_local_files() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    for (name, meta, sharded) in cases() {
        let (dir, expected, files) = written_by_zarrs(&meta);
        let batches = AtomicUsize::new(0);
        let source = zuring_array::FetchedSource::new(memory_fetch(&files, &batches));
        // Keys are the store's: the array lives at the prefix "pre/fix", not on disk.
        let array = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx)).unwrap();
        let requests = whole_array_requests(&array);
        let mut out = vec![0u8; expected.len() * 4];
        let mut outputs = vec![(SHAPE.to_vec(), out.as_mut_slice())];
        array
            .read_chunk_requests_from(&source, &requests, &mut outputs)
            .unwrap();
        assert_eq!(native_u32s(&out), expected, "{name}");
        // Shard indexes in one batch, chunk ranges in a second; unsharded: one batch.
        let want = if sharded && !name.contains("zarrs path") {
            2
        } else {
            1
        };
        assert_eq!(batches.load(Ordering::Relaxed), want, "{name}");

        // Points and strides through the same source equal the local read of the same requests.
        let local = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
        let file = array.shard_shape().unwrap_or(array.chunk_shape()).to_vec();
        let points = zuring_array::ChunkRequest::Points {
            target: 0,
            chunk: vec![0, 0, 0],
            coords: vec![
                vec![0, 0, 0],
                vec![file[0] - 1, file[1] - 1, 1],
                vec![1, 2, 3],
            ],
            positions: vec![2, 0, 1],
        };
        let mut a = vec![0u8; 12];
        let mut b = vec![0u8; 12];
        array
            .read_chunk_requests_from(
                &source,
                std::slice::from_ref(&points),
                &mut [(vec![3], a.as_mut_slice())],
            )
            .unwrap();
        local
            .read_chunk_requests(&[points], &mut [(vec![3], b.as_mut_slice())])
            .unwrap();
        assert_eq!(a, b, "{name}");
        assert_eq!(
            u32::from_ne_bytes(a[4..8].try_into().unwrap()),
            at(&expected, &[1, 2, 3]),
            "{name}"
        );
    }
}

#[test]
fn fetched_bytes_errors_name_the_key() {
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    let (_, meta, _) = &cases()[3]; // sharded, index at the end with crc32c
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let expected = write_with_zarrs(dir.path(), meta);
    let array = ZarrArray::from_metadata("pre/fix", meta, Arc::clone(&ctx)).unwrap();
    let requests = whole_array_requests(&array);
    let read = |files: &std::collections::HashMap<String, Vec<u8>>| {
        let batches = std::sync::atomic::AtomicUsize::new(0);
        let source = zuring_array::FetchedSource::new(memory_fetch(files, &batches));
        let mut out = vec![0u8; expected.len() * 4];
        array.read_chunk_requests_from(
            &source,
            &requests,
            &mut [(SHAPE.to_vec(), out.as_mut_slice())],
        )
    };

    // A shard cut short: its index no longer checks out.
    let mut files = files_by_key(dir.path());
    files.get_mut("c/0/0/0").unwrap().truncate(50);
    let err = read(&files).unwrap_err().to_string();
    assert!(err.contains("pre/fix/c/0/0/0"), "{err}");

    // An inner chunk's bytes damaged: its checksum fails, naming key and chunk.
    let mut files = files_by_key(dir.path());
    files.get_mut("c/0/0/0").unwrap()[3] ^= 0xff;
    let err = read(&files).unwrap_err();
    assert!(matches!(err, ArrayError::CorruptChunk { .. }), "{err}");
    assert!(err.to_string().contains("pre/fix/c/0/0/0"), "{err}");

    // A fetch that fails names the key and says why.
    let failing = zuring_array::FetchedSource::new(
        |asks: &[(std::path::PathBuf, zuring_io::ByteRange)], _| {
            asks.iter()
                .map(|_| zuring_array::Fetched::Failed("connection reset".into()))
                .collect()
        },
    );
    let mut out = vec![0u8; expected.len() * 4];
    let err = array
        .read_chunk_requests_from(
            &failing,
            &requests,
            &mut [(SHAPE.to_vec(), out.as_mut_slice())],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("connection reset") && err.contains("pre/fix/c/"),
        "{err}"
    );

    // Every key missing: all fill.
    let empty = std::collections::HashMap::new();
    let mut out = vec![0u8; expected.len() * 4];
    let batches = std::sync::atomic::AtomicUsize::new(0);
    let source = zuring_array::FetchedSource::new(memory_fetch(&empty, &batches));
    array
        .read_chunk_requests_from(
            &source,
            &requests,
            &mut [(SHAPE.to_vec(), out.as_mut_slice())],
        )
        .unwrap();
    assert!(out
        .chunks_exact(4)
        .all(|b| u32::from_ne_bytes(b.try_into().unwrap()) == 7));
}

/// Chunk requests for an orthogonal selection `lists` (global indices per dimension) against
/// stored chunks of `file`; positions index a value of shape `[lists[d].len()]`.
fn orthogonal_requests(lists: &[Vec<u64>], file: &[u64]) -> Vec<zuring_array::ChunkRequest> {
    type Dim = std::collections::BTreeMap<u64, (Vec<u64>, Vec<u64>)>;
    let per_dim: Vec<Dim> = lists
        .iter()
        .zip(file)
        .map(|(list, f)| {
            let mut m = Dim::new();
            for (k, &i) in list.iter().enumerate() {
                let e = m.entry(i / f).or_default();
                e.0.push(i % f);
                e.1.push(k as u64);
            }
            m
        })
        .collect();
    let mut out = Vec::new();
    for (c0, (i0, p0)) in &per_dim[0] {
        for (c1, (i1, p1)) in &per_dim[1] {
            for (c2, (i2, p2)) in &per_dim[2] {
                out.push(zuring_array::ChunkRequest::Orthogonal {
                    target: 0,
                    chunk: vec![*c0, *c1, *c2],
                    indices: vec![i0.clone().into(), i1.clone().into(), i2.clone().into()],
                    positions: [p0, p1, p2].map(|p| Some(p.clone().into())).to_vec(),
                });
            }
        }
    }
    out
}

#[test]
fn writes_of_any_selection() {
    use zuring_array::WriteValue;
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    for (name, meta, _) in cases() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut expected = write_with_zarrs(dir.path(), &meta);
        let local = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
        let foreign = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx)).unwrap();
        let file = local.shard_shape().unwrap_or(local.chunk_shape()).to_vec();
        let idx = |c: &[u64]| ((c[0] * SHAPE[1] + c[1]) * SHAPE[2] + c[2]) as usize;

        // Orthogonal with steps and an unsorted integer list; every stored chunk is partial.
        let lists = vec![
            vec![0, 2, 4, 6],
            vec![29, 3, 17],
            (0..21).step_by(5).collect(),
        ];
        let requests = orthogonal_requests(&lists, &file);
        let shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
        let n: u64 = shape.iter().product();
        let values: Vec<u32> = (0..n as u32).map(|i| 1_000_000 + i).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let value = WriteValue {
            bytes: &bytes,
            shape: &shape,
        };
        let partial: Vec<Vec<u64>> = requests
            .iter()
            .map(|r| match r {
                zuring_array::ChunkRequest::Orthogonal { chunk, .. } => chunk.clone(),
                zuring_array::ChunkRequest::Points { .. } => unreachable!(),
            })
            .collect();
        // What a foreign store gets (applied to a copy of the files here) must read back as
        // what zuring wrote locally (encoders may differ in bytes: zstd threads, gzip mtime).
        let before = files_by_key(dir.path());
        let existing = partial
            .iter()
            .map(|c| {
                let key = format!("c/{}/{}/{}", c[0], c[1], c[2]);
                (c.clone(), before.get(&key).cloned())
            })
            .collect();
        let encoded = foreign
            .encode_chunk_requests(&requests, value, existing, false)
            .unwrap();
        let copy = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for (key, bytes) in &before {
            let path = copy.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        for (c, bytes) in &encoded {
            let path = copy.path().join(format!("c/{}/{}/{}", c[0], c[1], c[2]));
            match bytes {
                Some(b) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, b).unwrap();
                }
                None => drop(std::fs::remove_file(path)),
            }
        }
        local
            .write_chunk_requests(&requests, value, &partial, false)
            .unwrap();
        let after = files_by_key(dir.path());
        let from_copy = ZarrArray::open_with(copy.path(), Arc::clone(&ctx))
            .unwrap()
            .read::<u32>(&Selection::all(&SHAPE))
            .unwrap();
        set_orthogonal(&mut expected, &lists, &values);
        let got = local.read::<u32>(&Selection::all(&SHAPE)).unwrap();
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), expected, "{name}");
        assert_eq!(from_copy, got, "{name}: encoded for a foreign store");
        assert_eq!(files_by_key(copy.path()).len(), after.len(), "{name}");
        let stored = after.len();

        // Points with a broadcast (0-d) value into the unwritten tail, then the fill value back:
        // the chunks they touch that hold nothing else are deleted again.
        let fill = u32::from_ne_bytes(local.fill_value_bytes().try_into().unwrap());
        let pts = [[6u64, 28, 20], [5, 0, 1], [6, 1, 2]]; // all fill before
        for v in [424_242u32, fill] {
            let scalar = v.to_ne_bytes();
            let mut by_chunk: std::collections::BTreeMap<Vec<u64>, Vec<Vec<u64>>> =
                std::collections::BTreeMap::new();
            for p in &pts {
                let chunk: Vec<u64> = p.iter().zip(&file).map(|(i, f)| i / f).collect();
                let within = p.iter().zip(&file).map(|(i, f)| i % f).collect();
                by_chunk.entry(chunk).or_default().push(within);
            }
            let requests: Vec<_> = by_chunk
                .iter()
                .map(|(chunk, coords)| zuring_array::ChunkRequest::Points {
                    target: 0,
                    chunk: chunk.clone(),
                    positions: vec![0; coords.len()],
                    coords: coords.clone(),
                })
                .collect();
            let partial: Vec<Vec<u64>> = by_chunk.keys().cloned().collect();
            local
                .write_chunk_requests(
                    &requests,
                    WriteValue {
                        bytes: &scalar,
                        shape: &[],
                    },
                    &partial,
                    false,
                )
                .unwrap();
            for p in &pts {
                expected[idx(p)] = v;
            }
            let got = local.read::<u32>(&Selection::all(&SHAPE)).unwrap();
            assert_eq!(got.iter().copied().collect::<Vec<_>>(), expected, "{name}");
        }
        assert_eq!(
            files_by_key(dir.path()).len(),
            stored,
            "{name}: new chunks dropped again"
        );
        let snapshot = files_by_key(dir.path());

        // A request outside its chunk fails before anything is written.
        let bad = [zuring_array::ChunkRequest::Points {
            target: 0,
            chunk: vec![0, 0, 0],
            coords: vec![vec![file[0], 0, 0]],
            positions: vec![0],
        }];
        let err = local
            .write_chunk_requests(
                &bad,
                WriteValue {
                    bytes: &[0; 4],
                    shape: &[],
                },
                &[],
                false,
            )
            .unwrap_err();
        assert!(matches!(err, ArrayError::Selection { .. }), "{err}");
        assert!(
            files_by_key(dir.path()) == snapshot,
            "{name}: nothing written"
        );
    }
}

#[test]
fn selection_writes_equal_direct_indexing() {
    use zuring_array::WriteValue;
    for (name, meta, _) in cases() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut expected = write_with_zarrs(dir.path(), &meta);
        let array = ZarrArray::open(dir.path()).unwrap();
        let idx = |c: &[u64]| ((c[0] * SHAPE[1] + c[1]) * SHAPE[2] + c[2]) as usize;
        let mut next = 2_000_000u32;
        let mut fresh = |n: usize| -> Vec<u32> {
            next += n as u32;
            (next - n as u32..next).collect()
        };
        let bytes = |v: &[u32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_ne_bytes()).collect() };

        // Strided region, and orthogonal lists with repeats (the later value wins, as in numpy).
        let slices = vec![
            DimSlice {
                start: 1,
                stop: 7,
                step: 3,
            },
            DimSlice {
                start: 2,
                stop: 30,
                step: 4,
            },
            DimSlice {
                start: 0,
                stop: 21,
                step: 5,
            },
        ];
        let lists_of_region: Vec<Vec<u64>> = slices
            .iter()
            .map(|s| (s.start..s.stop).step_by(s.step as usize).collect())
            .collect();
        for (selection, lists) in [
            (Selection::Region(slices.clone()), lists_of_region),
            (
                Selection::Orthogonal(vec![vec![4, 1, 4], vec![0, 29], vec![20, 3, 3]]),
                vec![vec![4, 1, 4], vec![0, 29], vec![20, 3, 3]],
            ),
        ] {
            let shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
            let values = fresh(shape.iter().product::<u64>() as usize);
            let data = bytes(&values);
            array
                .write(
                    &selection,
                    WriteValue {
                        bytes: &data,
                        shape: &shape,
                    },
                )
                .unwrap();
            set_orthogonal(&mut expected, &lists, &values);
        }
        // Points with a repeat; then a value broadcast along axes of length 1.
        let points = vec![vec![0, 0, 0], vec![6, 29, 20], vec![0, 0, 0]];
        let values = fresh(3);
        let data = bytes(&values);
        array
            .write(
                &Selection::Points(points.clone()),
                WriteValue {
                    bytes: &data,
                    shape: &[3],
                },
            )
            .unwrap();
        for (p, v) in points.iter().zip(&values) {
            expected[idx(p)] = *v;
        }
        let column = fresh(30);
        let data = bytes(&column);
        array
            .write(
                &Selection::Region(vec![
                    DimSlice::range(0, 2),
                    DimSlice::range(0, 30),
                    DimSlice::range(5, 6),
                ]),
                WriteValue {
                    bytes: &data,
                    shape: &[1, 30, 1],
                },
            )
            .unwrap();
        for i in 0..2 {
            for (j, v) in column.iter().enumerate() {
                expected[idx(&[i, j as u64, 5])] = *v;
            }
        }
        let got = array.read::<u32>(&Selection::all(&SHAPE)).unwrap();
        assert_eq!(got.as_slice().unwrap(), &expected[..], "{name}");
        let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
        let read: Vec<u32> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
        assert_eq!(read, expected, "{name}: zarrs reads the writes");

        // A value that does not fit, or a point out of bounds: refused, nothing written.
        let snapshot = files_by_key(dir.path());
        let err = array
            .write(
                &Selection::Region(slices.clone()),
                WriteValue {
                    bytes: &[0; 8],
                    shape: &[2],
                },
            )
            .unwrap_err();
        assert!(matches!(err, ArrayError::Selection { .. }), "{err}");
        let err = array
            .write(
                &Selection::Points(vec![vec![7, 0, 0]]),
                WriteValue {
                    bytes: &[0; 4],
                    shape: &[1],
                },
            )
            .unwrap_err();
        assert!(matches!(err, ArrayError::Selection { .. }), "{err}");
        assert!(
            files_by_key(dir.path()) == snapshot,
            "{name}: nothing written"
        );
    }
}

/// Arrays with rectilinear chunk grids (zarr-python 3.4's experimental grid): the metadata and
/// each dimension's stored chunk (shard) lengths.
fn rectilinear_cases() -> Vec<(&'static str, String, [Vec<u64>; 3])> {
    let zstd = format!(r#"[{LE},{{"name":"zstd","configuration":{{"level":3,"checksum":true}}}}]"#);
    let idx_crc = format!(r#"[{LE},{{"name":"crc32c"}}]"#);
    let grid = |shapes: &str| {
        format!(
            r#""chunk_grid":{{"name":"rectilinear","configuration":{{"kind":"inline","chunk_shapes":{shapes}}}}}"#
        )
    };
    let with_grid = |codecs: &str, shapes: &str| {
        meta(codecs, [1, 1, 1], "7").replace(
            r#""chunk_grid":{"name":"regular","configuration":{"chunk_shape":[1,1,1]}}"#,
            &grid(shapes),
        )
    };
    vec![
        (
            "rectilinear unsharded zstd",
            // Run-length edges, a regular dimension, and edges reaching past the end (8 > 7).
            with_grid(&zstd, "[[1,2,[2,2]],[[5,2],8,12],8]"),
            [vec![1, 2, 2, 2], vec![5, 5, 8, 12], vec![8, 8, 8]],
        ),
        (
            "rectilinear sharded, index at the end",
            with_grid(
                &shard_with(&[1, 5, 7], &zstd, "end", &idx_crc),
                "[[[2,2],3],[10,20],[14,14]]",
            ),
            [vec![2, 2, 3], vec![10, 20], vec![14, 14]],
        ),
        (
            "rectilinear sharded, index at the start",
            with_grid(
                &shard_with(&[1, 5, 7], &zstd, "start", &idx_crc),
                "[[4,3],[15,15],7]",
            ),
            [vec![4, 3], vec![15, 15], vec![7, 7, 7]],
        ),
        (
            "rectilinear transpose before sharding (zarrs path)",
            // The inner chunk shape is in transposed coordinates: [1, 5, 7] -> [7, 1, 5].
            with_grid(
                &format!(
                    r#"[{{"name":"transpose","configuration":{{"order":[2,0,1]}}}},{}]"#,
                    shard_with(&[7, 1, 5], &zstd, "end", &idx_crc)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                ),
                "[[4,3],[15,15],7]",
            ),
            [vec![4, 3], vec![15, 15], vec![7, 7, 7]],
        ),
        (
            "rectilinear sharded uncompressed",
            with_grid(
                &shard_with(&[1, 5, 7], &format!("[{LE}]"), "end", &idx_crc),
                "[[[2,2],3],[10,20],[14,14]]",
            ),
            [vec![2, 2, 3], vec![10, 20], vec![14, 14]],
        ),
    ]
}

/// One request per stored chunk of the grid `edges` covering all of it (what zarr-python's
/// pipeline asks for a whole-array read).
fn whole_grid_requests(edges: &[Vec<u64>; 3]) -> Vec<zuring_array::ChunkRequest> {
    let mut starts: Vec<Vec<u64>> = Vec::new();
    for e in edges {
        let mut s = vec![0];
        for len in e {
            s.push(s.last().unwrap() + len);
        }
        starts.push(s);
    }
    let mut requests = Vec::new();
    for i in 0..edges[0].len() as u64 {
        for j in 0..edges[1].len() as u64 {
            for k in 0..edges[2].len() as u64 {
                let chunk = vec![i, j, k];
                let (mut indices, mut positions) = (Vec::new(), Vec::new());
                for d in 0..3 {
                    let lo = starts[d][chunk[d] as usize];
                    let hi = starts[d][chunk[d] as usize + 1].min(SHAPE[d]);
                    indices.push((0..hi - lo).into());
                    positions.push(Some((lo..hi).into()));
                }
                requests.push(zuring_array::ChunkRequest::Orthogonal {
                    target: 0,
                    chunk,
                    indices,
                    positions,
                });
            }
        }
    }
    requests
}

#[test]
fn rectilinear_grids_read_like_zarrs_wrote_them() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for ctx in contexts() {
        for (name, meta, edges) in rectilinear_cases() {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let expected = write_with_zarrs(dir.path(), &meta);
            let array = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
            let sharded = name.contains(" sharded");
            let zarrs_path = name.contains("zarrs path");
            assert_eq!(
                array.shard_shape().is_some(),
                sharded || zarrs_path,
                "{name}"
            );
            assert_eq!(
                matches!(array.read_mode(), ReadMode::Sharded(_)),
                sharded,
                "{name}"
            );
            assert_eq!(
                matches!(array.read_mode(), ReadMode::Zarrs(_)),
                zarrs_path,
                "{name}"
            );
            check_all_selections(&array, &expected, &mut rng, name);

            // zarr-python's pipeline requests, one per stored chunk, bytes from a store.
            let files = files_by_key(dir.path());
            let batches = AtomicUsize::new(0);
            let source = zuring_array::FetchedSource::new(memory_fetch(&files, &batches));
            let keyed = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx)).unwrap();
            let mut out = vec![0u8; expected.len() * 4];
            keyed
                .read_chunk_requests_from(
                    &source,
                    &whole_grid_requests(&edges),
                    &mut [(SHAPE.to_vec(), out.as_mut_slice())],
                )
                .unwrap();
            let got: Vec<u32> = out
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(got, expected, "{name}: chunk requests");
            // Shards of different sizes, each index read with its own size, in one batch.
            assert_eq!(batches.load(Ordering::Relaxed), if sharded { 2 } else { 1 });
            // An index past a stored chunk's own length is refused, naming the chunk.
            let past = zuring_array::ChunkRequest::Points {
                target: 0,
                chunk: vec![0, 0, 0],
                coords: vec![vec![edges[0][0], 0, 0]],
                positions: vec![0],
            };
            let err = array
                .read_chunk_requests(&[past], &mut [(vec![1], vec![0u8; 4].as_mut_slice())])
                .unwrap_err();
            assert!(
                err.to_string().contains("leaves chunk [0, 0, 0]"),
                "{name}: {err}"
            );
        }
    }
}

#[test]
fn rectilinear_grids_written_are_read_by_zarrs() {
    use zuring_array::WriteValue;
    let idx = |c: &[u64]| ((c[0] * SHAPE[1] + c[1]) * SHAPE[2] + c[2]) as usize;
    let as_bytes = |v: &[u32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_ne_bytes()).collect() };
    for (name, meta, edges) in rectilinear_cases() {
        // Into an array zarrs wrote (shards rewritten in part, each with its own index size),
        // and into a new one.
        for fresh in [false, true] {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let (array, mut want) = if fresh {
                let array = ZarrArray::create(dir.path(), &meta).unwrap();
                (array, vec![7u32; SHAPE.iter().product::<u64>() as usize])
            } else {
                let want = write_with_zarrs(dir.path(), &meta);
                (ZarrArray::open(dir.path()).unwrap(), want)
            };
            // A region across chunks of different sizes.
            let patch: Vec<u32> = (0..2 * 11 * 9u32).map(|v| v + 1_000_000).collect();
            array
                .write_region(&[3..5, 4..15, 6..15], &as_bytes(&patch))
                .unwrap();
            let mut p = patch.iter();
            for i in 3..5 {
                for j in 4..15 {
                    for k in 6..15 {
                        want[idx(&[i, j, k])] = *p.next().unwrap();
                    }
                }
            }
            // An orthogonal selection with repeats, and points.
            let lists = vec![
                vec![6, 0, 2],
                vec![29, 3, 17, 3],
                (0..21).step_by(4).collect(),
            ];
            let shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
            let values: Vec<u32> = (0..shape.iter().product::<u64>() as u32)
                .map(|v| 2_000_000 + v)
                .collect();
            let bytes = as_bytes(&values);
            array
                .write(
                    &Selection::Orthogonal(lists.clone()),
                    WriteValue {
                        bytes: &bytes,
                        shape: &shape,
                    },
                )
                .unwrap();
            set_orthogonal(&mut want, &lists, &values);
            let points = vec![vec![6, 29, 20], vec![0, 0, 0], vec![4, 10, 14]];
            let values = [3_000_000u32, 3_000_001, 3_000_002];
            let bytes = as_bytes(&values);
            array
                .write(
                    &Selection::Points(points.clone()),
                    WriteValue {
                        bytes: &bytes,
                        shape: &[3],
                    },
                )
                .unwrap();
            for (p, v) in points.iter().zip(values) {
                want[idx(p)] = v;
            }
            // A whole stored chunk (shard) back to the fill value: its file goes.
            let first: Vec<std::ops::Range<u64>> = edges.iter().map(|e| 0..e[0]).collect();
            let n = first.iter().map(|r| r.end).product::<u64>() as usize;
            array
                .write_region(&first, &as_bytes(&vec![7u32; n]))
                .unwrap();
            for i in first[0].clone() {
                for j in first[1].clone() {
                    for k in first[2].clone() {
                        want[idx(&[i, j, k])] = 7;
                    }
                }
            }
            assert!(
                !dir.path().join("c/0/0/0").exists(),
                "{name}: all-fill chunk removed"
            );

            // The first element that differs (the arrays are too long to print).
            let differs = |got: &[u32]| {
                (0..want.len()).find(|&i| got[i] != want[i]).map(|i| {
                    let c = [
                        i as u64 / (SHAPE[1] * SHAPE[2]),
                        i as u64 / SHAPE[2] % SHAPE[1],
                        i as u64 % SHAPE[2],
                    ];
                    (c, got[i], want[i])
                })
            };
            let ours = ZarrArray::open(dir.path()).unwrap();
            let got = ours.read::<u32>(&Selection::all(&SHAPE)).unwrap();
            assert_eq!(
                differs(got.as_slice().unwrap()),
                None,
                "{name} fresh={fresh}: zuring"
            );
            let theirs =
                Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
            let got: Vec<u32> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
            assert_eq!(
                differs(&got),
                None,
                "{name} fresh={fresh}: zarrs reads zuring's writes"
            );
        }
    }
}

#[test]
fn rectilinear_grids_bad_metadata_named() {
    let (_, meta, _) = &rectilinear_cases()[1];
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // An inner chunk length that does not divide a shard's (5 into 12).
    let bad = meta.replace("[10,20]", "[12,18]");
    let err = ZarrArray::create(dir.path(), &bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not divide the shard shape of every shard"),
        "{err}"
    );
    // A run-length count that would expand to a trillion edges: refused before zarrs expands it.
    let huge = meta.replace("[10,20]", "[[1,1000000000000]]");
    for err in [
        ZarrArray::create(dir.path(), &huge).unwrap_err(),
        ZarrArray::from_metadata(dir.path(), &huge, Context::shared().unwrap()).unwrap_err(),
    ] {
        assert!(
            err.to_string()
                .contains("chunk_shapes[1]: more chunk edges than zuring accepts"),
            "{err}"
        );
    }
    assert!(!dir.path().join("zarr.json").exists());
}

/// Drop every file under `dir` from the page cache (synced first, so its pages are clean).
#[allow(unsafe_code)]
fn evict_all(dir: &Path) {
    use std::os::fd::AsRawFd;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            evict_all(&path);
            continue;
        }
        let f = std::fs::File::open(&path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: posix_fadvise reads only its integer arguments; the descriptor is open.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "{}", path.display());
    }
}

#[test]
fn cached_reads_never_wait_for_the_disk() {
    // `read_chunk_requests_cached` (the zarr pipeline's read on its event loop): with the files
    // out of the page cache it declines (false) without failing; once they are cached it reads
    // what `read_chunk_requests` reads; errors in cached bytes are still errors.
    let ctx = Arc::clone(&contexts()[0]);
    for (name, meta, _) in cases() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let expected = write_with_zarrs(dir.path(), &meta);
        let array = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
        let chunk = array.shard_shape().unwrap_or(array.chunk_shape()).to_vec();
        let edges: [Vec<u64>; 3] = std::array::from_fn(|d| {
            vec![chunk[d]; usize::try_from(SHAPE[d].div_ceil(chunk[d])).unwrap()]
        });
        let requests = whole_grid_requests(&edges);
        let read = |cached: bool| {
            let mut out = vec![0u8; expected.len() * 4];
            let done = {
                let mut outputs = [(SHAPE.to_vec(), out.as_mut_slice())];
                if cached {
                    array
                        .read_chunk_requests_cached(&requests, &mut outputs)
                        .map(|missing| missing.is_some())
                } else {
                    array
                        .read_chunk_requests(&requests, &mut outputs)
                        .map(|_| true)
                }
            };
            let values: Vec<u32> = out
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            done.map(|done| (done, values))
        };
        evict_all(dir.path());
        let (done, _) = read(true).unwrap();
        assert!(!done, "{name}: nothing is cached, so the read declines");
        assert_eq!(read(false).unwrap(), (true, expected.clone()), "{name}");
        assert_eq!(
            read(true).unwrap(),
            (true, expected.clone()),
            "{name}: cached"
        );
    }
    // A corrupt chunk read from the cache fails as it would otherwise, naming the chunk.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (_, meta, _) = &cases()[0];
    write_with_zarrs(dir.path(), meta);
    let chunk = dir.path().join("c/0/0/0");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&chunk, &bytes).unwrap();
    let array = ZarrArray::open_with(dir.path(), ctx).unwrap();
    let requests = whole_grid_requests(&[vec![3, 3, 1], vec![8; 4], vec![8; 3]]);
    let mut out = vec![0u8; SHAPE.iter().product::<u64>() as usize * 4];
    // The read that may wait looks every path up (the unwritten chunks' too: a cached read
    // of a path never looked up declines, as the lookup could read the directory from disk).
    let waited = array
        .read_chunk_requests(&requests, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
        .unwrap_err();
    let err = array
        .read_chunk_requests_cached(&requests, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
        .unwrap_err();
    assert!(
        matches!(err, ArrayError::CorruptChunk { .. }) && err.to_string().contains("c/0/0/0"),
        "{err}"
    );
    assert_eq!(err.to_string(), waited.to_string());
}

#[test]
fn chunk_requests_report_the_stored_chunks_that_are_missing() {
    // What zarr-python >= 3.2 asks a pipeline for each stored chunk of a batch: whether it
    // exists. The read reports the chunks (shards) whose files it found missing, locally, from
    // the page cache only and through fetched bytes; the oracle is the directory itself.
    use zuring_array::ChunkRequest;
    let empty = |chunk: Vec<u64>| ChunkRequest::Orthogonal {
        target: 0,
        chunk,
        indices: vec![Vec::new().into(); 3],
        positions: vec![Some(Vec::new().into()); 3],
    };
    for ctx in contexts() {
        for (name, meta, _) in cases() {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let mut expected = write_with_zarrs(dir.path(), &meta);
            // The writer left the last time steps unwritten; a written file goes too.
            std::fs::remove_file(dir.path().join("c/0/0/0")).unwrap();
            let array = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
            let file = array.shard_shape().unwrap_or(array.chunk_shape()).to_vec();
            let fill = array.read_bytes(&Selection::all(&[1, 1, 1])).unwrap();
            let fill = u32::from_ne_bytes(fill.try_into().unwrap());
            for t in 0..file[0].min(SHAPE[0]) {
                for y in 0..file[1].min(SHAPE[1]) {
                    for x in 0..file[2].min(SHAPE[2]) {
                        expected[((t * SHAPE[1] + y) * SHAPE[2] + x) as usize] = fill;
                    }
                }
            }
            let requests = whole_array_requests(&array);
            let stored = |c: &[u64]| {
                dir.path()
                    .join(format!("c/{}/{}/{}", c[0], c[1], c[2]))
                    .exists()
            };
            let gone: Vec<Vec<u64>> = requests
                .iter()
                .map(|r| r.chunk().to_vec())
                .filter(|c| !stored(c))
                .collect();
            assert!(!gone.is_empty() && gone.len() < requests.len(), "{name}");
            let present = requests
                .iter()
                .map(|r| r.chunk().to_vec())
                .find(|c| stored(c))
                .unwrap();

            let mut out = vec![0u8; expected.len() * 4];
            let missing = array
                .read_chunk_requests(&requests, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
                .unwrap();
            assert_eq!(missing, gone, "{name}");
            let got: Vec<u32> = out
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(got, expected, "{name}");
            // Warm now: the read on the calling thread from the page cache says the same.
            let cached = array
                .read_chunk_requests_cached(&requests, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
                .unwrap();
            assert_eq!(cached, Some(gone.clone()), "{name}");
            // Bytes fetched by key: the keys the fetch had nothing for.
            let files = files_by_key(dir.path());
            let batches = std::sync::atomic::AtomicUsize::new(0);
            let source = zuring_array::FetchedSource::new(memory_fetch(&files, &batches));
            let keyed = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx)).unwrap();
            let fetched = keyed
                .read_chunk_requests_from(
                    &source,
                    &requests,
                    &mut [(SHAPE.to_vec(), out.as_mut_slice())],
                )
                .unwrap();
            assert_eq!(fetched, gone, "{name}");
            // Requests that read nothing of their chunk: its file is looked at all the same;
            // a chunk asked for twice is reported once.
            let nothing = [
                empty(gone[0].clone()),
                empty(present.clone()),
                empty(gone[0].clone()),
            ];
            let missing = array
                .read_chunk_requests(&nothing, &mut [(vec![0, 0, 0], &mut [][..])])
                .unwrap();
            assert_eq!(missing, vec![gone[0].clone()], "{name}");
        }
    }
}

#[test]
fn chunk_requests_writing_an_element_twice_are_refused_before_any_read() {
    // The decode threads copy chunks into the output in parallel: requests (a caller's, not
    // planned here) whose output elements meet would race. They are refused before anything is
    // read or written, naming what is written twice; requests into distinct places read.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use zuring_array::ChunkRequest;
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    for (name, meta, _) in cases() {
        let (dir, expected, files) = written_by_zarrs(&meta);
        let batches = AtomicUsize::new(0);
        let source = zuring_array::FetchedSource::new(memory_fetch(&files, &batches));
        let array = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx)).unwrap();
        let local = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
        let requests = whole_array_requests(&array);
        assert!(requests.len() >= 2, "{name}");
        // The second stored chunk's elements read into the first one's place (where they fit).
        let ChunkRequest::Orthogonal {
            positions: first, ..
        } = requests[0].clone()
        else {
            unreachable!()
        };
        let mut moved = requests.clone();
        if let ChunkRequest::Orthogonal {
            indices, positions, ..
        } = &mut moved[1]
        {
            for (d, (idx, pos)) in indices.iter_mut().zip(positions.iter_mut()).enumerate() {
                let want = first[d].as_ref().unwrap();
                let n = idx.len().min(want.len());
                *idx = idx.iter().take(n).collect();
                *pos = Some(want.iter().take(n).collect());
            }
        }
        let mut again = requests.clone();
        again.push(requests[requests.len() - 1].clone());
        for (what, bad) in [("moved", &moved), ("repeated", &again)] {
            let mut out = vec![7u8; expected.len() * 4];
            let err = array
                .read_chunk_requests_from(&source, bad, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
                .unwrap_err();
            assert!(
                matches!(err, ArrayError::Selection { .. }),
                "{name} {what}: {err}"
            );
            assert!(
                err.to_string().contains("written twice"),
                "{name} {what}: {err}"
            );
            assert_eq!(
                batches.load(Ordering::Relaxed),
                0,
                "{name} {what}: nothing fetched"
            );
            let err = local
                .read_chunk_requests(bad, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
                .unwrap_err();
            assert!(
                err.to_string().contains("written twice"),
                "{name} {what}: {err}"
            );
            assert!(
                out.iter().all(|&b| b == 7),
                "{name} {what}: the output untouched"
            );
        }
        // The same requests, each into its own place: read.
        let mut out = vec![0u8; expected.len() * 4];
        local
            .read_chunk_requests(&requests, &mut [(SHAPE.to_vec(), out.as_mut_slice())])
            .unwrap();
        assert_eq!(native_u32s(&out), expected, "{name}");
    }
}

/// Every file (chunk or shard) under `root` but the metadata, by relative path.
fn chunk_files(root: &Path) -> std::collections::BTreeSet<String> {
    files_by_key(root)
        .into_keys()
        .filter(|k| k != "zarr.json")
        .collect()
}

#[test]
fn resize_deletes_the_files_outside_and_zarrs_reads_the_new_shape() {
    for (name, meta, _) in cases() {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let expected = write_with_zarrs(dir.path(), &meta);
        let array = ZarrArray::open(dir.path()).unwrap();
        let before = chunk_files(dir.path());
        let small = [3u64, 17, 21];
        let resized = array.resize(&small).unwrap();
        assert_eq!(resized.shape(), small, "{name}");
        assert_eq!(
            array.shape(),
            SHAPE,
            "{name}: the old handle keeps its shape"
        );
        // The files left are those whose cell starts inside the new shape.
        let file = resized.layout().file_shape.clone();
        let kept: std::collections::BTreeSet<String> = before
            .iter()
            .filter(|key| {
                let cell: Vec<u64> = key
                    .trim_start_matches("c/")
                    .split(['/', '.'])
                    .map(|c| c.parse().unwrap())
                    .collect();
                cell.iter()
                    .zip(&file)
                    .zip(&small)
                    .all(|((c, f), n)| c * f < *n)
            })
            .cloned()
            .collect();
        assert!(kept.len() < before.len(), "{name}: some files are outside");
        assert_eq!(chunk_files(dir.path()), kept, "{name}");
        // zarrs opens the stored metadata with the new shape and reads the values kept.
        let store = Arc::new(FilesystemStore::new(dir.path()).unwrap());
        let theirs = Array::open(store, "/").unwrap();
        assert_eq!(theirs.shape(), small, "{name}");
        let got: Vec<u32> = theirs
            .retrieve_array_subset(&ArraySubset::new_with_shape(small.to_vec()))
            .unwrap();
        let mut want = Vec::new();
        for i in 0..small[0] {
            for j in 0..small[1] {
                for k in 0..small[2] {
                    want.push(at(&expected, &[i, j, k]));
                }
            }
        }
        assert_eq!(got, want, "{name}: zarrs");
        let ours = resized.read::<u32>(&Selection::all(&small)).unwrap();
        assert_eq!(ours.as_slice().unwrap(), want, "{name}: zuring");
        // Growing back: no file written; the region read again is what the cut files still
        // hold past the old edge, and fill elsewhere (zarrs agrees).
        let grown = resized.resize(&SHAPE).unwrap();
        assert_eq!(
            chunk_files(dir.path()),
            kept,
            "{name}: growing writes no file"
        );
        let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
        let all: Vec<u32> = theirs
            .retrieve_array_subset(&ArraySubset::new_with_shape(SHAPE.to_vec()))
            .unwrap();
        let ours = grown.read::<u32>(&Selection::all(&SHAPE)).unwrap();
        assert_eq!(ours.as_slice().unwrap(), all, "{name}: grown");
        // Another number of dimensions is refused, nothing changed.
        let err = grown.resize(&[3, 4]).unwrap_err();
        assert!(matches!(err, ArrayError::Selection { .. }), "{name}: {err}");
        assert_eq!(chunk_files(dir.path()), kept, "{name}");
    }
}

/// A rectilinear grid resized as zarr-python 3.4 resizes it: a dimension whose listed edges
/// end before the new extent gets one edge more reaching it; a smaller extent keeps its edges,
/// the files starting past it deleted; zarrs reads the document written and the same values.
#[test]
fn resize_of_a_rectilinear_grid_grows_its_edges_as_zarr_python() {
    let new_shape = [5u64, 35, 21];
    let grown = [
        "[[1,2,[2,2]],[[5,2],8,12,5],8]",
        "[[[2,2],3],[10,20,5],[14,14]]",
        "[[4,3],[15,15,5],7]",
        "[[4,3],[15,15,5],7]",
        "[[[2,2],3],[10,20,5],[14,14]]",
    ];
    for ((name, meta, edges), want_edges) in rectilinear_cases().into_iter().zip(grown) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let expected = write_with_zarrs(dir.path(), &meta);
        let before = chunk_files(dir.path());
        let resized = ZarrArray::open(dir.path())
            .unwrap()
            .resize(&new_shape)
            .unwrap();
        assert_eq!(resized.shape(), new_shape, "{name}");
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("zarr.json")).unwrap()).unwrap();
        assert_eq!(
            stored["chunk_grid"]["configuration"]["chunk_shapes"],
            serde_json::from_str::<serde_json::Value>(want_edges).unwrap(),
            "{name}"
        );
        assert_eq!(stored["shape"], serde_json::json!(new_shape), "{name}");
        // The files kept: those whose first time step is before 5 (dimension 0 shrank).
        let starts: Vec<u64> = edges[0]
            .iter()
            .scan(0, |at, len| {
                let start = *at;
                *at += len;
                Some(start)
            })
            .collect();
        let kept: std::collections::BTreeSet<String> = before
            .iter()
            .filter(|key| {
                let first: usize = key
                    .trim_start_matches("c/")
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                starts[first] < new_shape[0]
            })
            .cloned()
            .collect();
        assert_eq!(chunk_files(dir.path()), kept, "{name}");
        let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
        assert_eq!(theirs.shape(), new_shape, "{name}");
        let all: Vec<u32> = theirs
            .retrieve_array_subset(&ArraySubset::new_with_shape(new_shape.to_vec()))
            .unwrap();
        let ours = resized.read::<u32>(&Selection::all(&new_shape)).unwrap();
        assert_eq!(ours.as_slice().unwrap(), all, "{name}");
        // Within the old extent, the values written; past it, the fill value (7).
        for (n, &v) in all.iter().enumerate() {
            let n = n as u64;
            let c = [n / (35 * 21), n / 21 % 35, n % 21];
            let want = if c[1] < SHAPE[1] {
                at(&expected, &c)
            } else {
                7
            };
            assert_eq!(v, want, "{name} at {c:?}");
        }
    }
}

/// Bytes from memory, where a read asks for them: every request whose tag (its place in the
/// batch) `hand_back` picks is handed back by `read_now`, to be fetched with the rest; the
/// others are read now, by the decode threads.
struct AtHand<F> {
    inner: zuring_array::FetchedSource<F>,
    hand_back: fn(usize) -> bool,
    now: std::sync::atomic::AtomicUsize,
    back: std::sync::atomic::AtomicUsize,
}

impl<F> zuring_array::ByteSource for AtHand<F>
where
    F: Fn(
            &[(std::path::PathBuf, zuring_io::ByteRange)],
            zuring_array::FetchKind,
        ) -> Vec<zuring_array::Fetched>
        + Sync,
{
    fn probe(
        &self,
        paths: &[std::path::PathBuf],
    ) -> zuring_array::Result<Vec<zuring_array::Presence>> {
        self.inner.probe(paths)
    }

    fn fetch(
        &self,
        requests: Vec<zuring_io::ReadRequest<usize>>,
        kind: zuring_array::FetchKind,
    ) -> Box<dyn Iterator<Item = zuring_io::Completion<usize>> + '_> {
        self.inner.fetch(requests, kind)
    }

    fn can_read_now(&self) -> bool {
        true
    }

    fn read_now(
        &self,
        request: zuring_io::ReadRequest<usize>,
    ) -> Result<zuring_io::Completion<usize>, zuring_io::ReadRequest<usize>> {
        use std::sync::atomic::Ordering;
        if (self.hand_back)(request.tag) {
            self.back.fetch_add(1, Ordering::Relaxed);
            return Err(request);
        }
        self.now.fetch_add(1, Ordering::Relaxed);
        let kind = zuring_array::FetchKind::Chunks;
        Ok(self.inner.fetch(vec![request], kind).next().unwrap())
    }
}

#[test]
fn bytes_at_hand_are_read_by_the_decode_threads_like_fetched_ones() {
    use std::sync::atomic::AtomicUsize;
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    let cases = cases();
    for (name, meta, sharded) in &cases {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let expected = write_with_zarrs(dir.path(), meta);
        let array = ZarrArray::from_metadata("pre/fix", meta, Arc::clone(&ctx)).unwrap();
        let requests = whole_array_requests(&array);
        let batches = AtomicUsize::new(0);
        let intact = files_by_key(dir.path());
        let read = |files: &std::collections::HashMap<String, Vec<u8>>,
                    hand_back: fn(usize) -> bool| {
            let source = AtHand {
                inner: zuring_array::FetchedSource::new(memory_fetch(files, &batches)),
                hand_back,
                now: AtomicUsize::new(0),
                back: AtomicUsize::new(0),
            };
            let mut out = vec![0u8; expected.len() * 4];
            let result = array
                .read_chunk_requests_from(
                    &source,
                    &requests,
                    &mut [(SHAPE.to_vec(), out.as_mut_slice())],
                )
                .map(|_| out)
                .map_err(|e| e.to_string());
            (result, source.now.into_inner(), source.back.into_inner())
        };
        let zarrs_path = name.contains("zarrs path");
        // Two of three read now, the rest fetched: the same values.
        let (got, now, back) = read(&intact, |tag| tag % 3 == 1);
        let got: Vec<u32> = got
            .unwrap()
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, expected, "{name}");
        if !zarrs_path {
            assert!(
                now > 0 && back > 0,
                "{name}: {now} read now, {back} handed back"
            );
        }
        // The first handed back: the engine asks no more of them (a cold cache).
        let (got, now, back) = read(&intact, |tag| tag % 3 == 0);
        assert_eq!(got.unwrap().len(), expected.len() * 4, "{name}");
        if !zarrs_path {
            assert!(
                now == 0 && back > 0,
                "{name}: {now} read now, {back} handed back"
            );
        }
        // Damaged, cut short or missing files read now say what fetched ones say (or read the
        // same fill values). (A damaged shard may fail at its index, before any chunk read.)
        let key = intact
            .keys()
            .filter(|k| k.starts_with("c/"))
            .min()
            .unwrap()
            .clone();
        let damaged: [fn(&mut Vec<u8>) -> bool; 3] = [
            |bytes| {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x5a;
                true
            },
            |bytes| {
                bytes.truncate(bytes.len() / 3);
                true
            },
            |_| false,
        ];
        for damage in damaged {
            let mut files = intact.clone();
            let bytes = files.get_mut(&key).unwrap();
            if !damage(bytes) {
                files.remove(&key);
            }
            let (fetched, _, _) = read(&files, |_| true);
            let (now, read_now, _) = read(&files, |_| false);
            assert_eq!(now, fetched, "{name}, {key}");
            if !sharded {
                assert!(read_now > 0, "{name}");
            }
        }
    }
}

/// A 16 x 16 uint16 array in one shard of 2 x 2 inner chunks (64 chunks of 8 bytes, index at the
/// start without a checksum), laid out by hand as no writer here would: chunks in a scrambled
/// order, gaps of 0-400 bytes between them and one of 5,000, chunks 0-4 missing, chunk 11
/// sharing chunk 10's bytes. Small chunks close together in a file are read in runs (one range,
/// each chunk decoded from its part); returns the shard's bytes and the values a read must give.
fn hand_laid_shard() -> (Vec<u8>, Vec<u16>) {
    const N: u64 = 16;
    const FILL: u16 = 9;
    let chunk_bytes = |c: u64| -> Vec<u8> {
        let (cy, cx) = (c / 8, c % 8);
        let mut b = Vec::new();
        for y in 2 * cy..2 * cy + 2 {
            for x in 2 * cx..2 * cx + 2 {
                b.extend_from_slice(&((y * N + x) as u16 + 1).to_le_bytes());
            }
        }
        b
    };
    let mut index = vec![u64::MAX; 128];
    let mut body = Vec::new();
    let index_bytes = 128 * 8;
    for k in 0..64u64 {
        let c = (k * 37) % 64;
        if c < 5 || c == 11 {
            continue;
        }
        body.resize(
            body.len()
                + if k == 30 {
                    5000
                } else {
                    (k % 5) as usize * 100
                },
            0xee,
        );
        index[2 * c as usize] = (index_bytes + body.len()) as u64;
        index[2 * c as usize + 1] = 8;
        body.extend(chunk_bytes(c));
    }
    index[22] = index[20];
    index[23] = 8;
    let mut shard: Vec<u8> = index.iter().flat_map(|e| e.to_le_bytes()).collect();
    shard.extend(body);
    let expected = (0..N * N)
        .map(|i| {
            let (y, x) = (i / N, i % N);
            let c = (y / 2) * 8 + x / 2;
            match c {
                0..=4 => FILL,
                11 => ((y * N + x - 2) as u16) + 1,
                _ => (i as u16) + 1,
            }
        })
        .collect();
    (shard, expected)
}

const HAND_LAID_META: &str = r#"{"zarr_format":3,"node_type":"array","shape":[16,16],"data_type":"uint16",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[16,16]}},
    "chunk_key_encoding":{"name":"default"},"fill_value":9,
    "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[2,2],
      "codecs":[{"name":"bytes","configuration":{"endian":"little"}}],
      "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}}],"index_location":"start"}}]}"#;

#[test]
fn small_chunks_read_in_runs_land_where_their_index_says() {
    let (shard, expected) = hand_laid_shard();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("zarr.json"), HAND_LAID_META).unwrap();
    std::fs::create_dir_all(dir.path().join("c/0")).unwrap();
    std::fs::write(dir.path().join("c/0/0"), &shard).unwrap();
    let values = |bytes: &[u8]| -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for ctx in contexts() {
        let array = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
        // Twice: the second read finds the shard in the page cache and its index cached.
        for _ in 0..2 {
            let all = array.read_bytes(&Selection::all(&[16, 16])).unwrap();
            assert_eq!(values(&all), expected);
        }
        for _ in 0..20 {
            let (y, x) = (rng.gen_range(0..16u64), rng.gen_range(0..16u64));
            let (h, w) = (rng.gen_range(1..=16 - y), rng.gen_range(1..=16 - x));
            let got = values(
                &array
                    .read_bytes(&Selection::from_ranges(&[y..y + h, x..x + w]))
                    .unwrap(),
            );
            let want: Vec<u16> = (y..y + h)
                .flat_map(|r| (x..x + w).map(move |c| (r, c)))
                .map(|(r, c)| expected[(r * 16 + c) as usize])
                .collect();
            assert_eq!(got, want, "box at ({y}, {x}) of {h} x {w}");
        }
        let starts = [0, 0, 5, 3, 9, 9, 1, 14];
        let crops = values(&array.read_crops_bytes(&starts, &[7, 2]).unwrap());
        for (k, s) in starts.chunks(2).enumerate() {
            for r in 0..7 {
                for c in 0..2 {
                    let want = expected[((s[0] + r) * 16 + s[1] + c) as usize];
                    assert_eq!(crops[k * 14 + (r * 2 + c) as usize], want, "crop {k}");
                }
            }
        }
    }

    // Through a store's fetch: the same values; a shard cut short (its index, at the start,
    // cannot tell: the size of a fetched shard is not known) fails naming the first chunk whose
    // bytes are missing, not the first chunk of the run that held it.
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    let array = ZarrArray::from_metadata("pre/fix", HAND_LAID_META, ctx).unwrap();
    let request = zuring_array::ChunkRequest::Orthogonal {
        target: 0,
        chunk: vec![0, 0],
        indices: vec![(0..16).collect(), (0..16).collect()],
        positions: vec![Some((0..16).collect()), Some((0..16).collect())],
    };
    // The shard's values read through `source`.
    let read_from = |source: &dyn zuring_array::ByteSource| {
        let mut out = vec![0u8; 512];
        array
            .read_chunk_requests_from(
                source,
                std::slice::from_ref(&request),
                &mut [(vec![16, 16], out.as_mut_slice())],
            )
            .map(|_| values(&out))
    };
    let read = |shard: &[u8]| {
        let files = std::collections::HashMap::from([("c/0/0".to_owned(), shard.to_vec())]);
        let batches = std::sync::atomic::AtomicUsize::new(0);
        let source =
            zuring_array::FetchedSource::new(memory_fetch(&files, &batches)).joining_small_chunks();
        read_from(&source)
    };
    assert_eq!(read(&shard).unwrap(), expected);
    // In runs: the 59 stored chunks asked for as two ranges (split at the 5,000-byte gap);
    // without, each alone.
    let files = std::collections::HashMap::from([("c/0/0".to_owned(), shard.clone())]);
    let batches = std::sync::atomic::AtomicUsize::new(0);
    let inner = memory_fetch(&files, &batches);
    for (joining, ranges) in [(true, 2), (false, 59)] {
        let asked = std::sync::Mutex::new(Vec::new());
        let source = zuring_array::FetchedSource::new(
            |asks: &[(std::path::PathBuf, zuring_io::ByteRange)], kind| {
                if kind == zuring_array::FetchKind::Chunks {
                    asked.lock().unwrap().extend(asks.iter().map(|(_, r)| *r));
                }
                inner(asks, kind)
            },
        );
        let got = if joining {
            read_from(&source.joining_small_chunks())
        } else {
            read_from(&source)
        };
        assert_eq!(got.unwrap(), expected);
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked.len(), ranges, "{asked:?}");
    }
    // The last chunk laid out in the file.
    let last = (0..64u64)
        .map(|k| (k * 37) % 64)
        .rfind(|&c| c >= 5 && c != 11)
        .unwrap();
    let err = read(&shard[..shard.len() - 3]).unwrap_err();
    match &err {
        ArrayError::CorruptChunk { path, chunk, .. } => {
            assert!(path.ends_with("pre/fix/c/0/0"), "{err}");
            assert_eq!(chunk, &vec![last / 8, last % 8], "{err}");
        }
        other => panic!("expected a corrupt chunk, got {other}"),
    }
}

#[test]
fn a_shard_of_more_chunks_than_a_read_window_reads_each_where_it_belongs() {
    // 320 x 320 uint16 in one shard of 1 x 1 inner chunks: 102,400 chunks, more than a read
    // holds at a time (65,536), so a whole read goes in two windows. Every 7th element is the
    // fill value, its chunk not stored (filled, not read); each chunk has a checksum.
    const N: u64 = 320;
    let meta = format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[{N},{N}],"data_type":"uint16",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[{N},{N}]}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
        "codecs":[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[1,1],
          "codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"crc32c"}}],
          "index_codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}}],
          "index_location":"start"}}}}]}}"#
    );
    let expected: Vec<u16> = (0..N * N)
        .map(|i| {
            if i % 7 == 0 {
                0
            } else {
                (i % 65_521) as u16 + 1
            }
        })
        .collect();
    let bytes = |v: &[u16]| -> Vec<u8> { v.iter().flat_map(|x| x.to_ne_bytes()).collect() };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ctx = Context::new(ArrayOptions::default()).unwrap();
    let array = ZarrArray::create_with(dir.path(), &meta, ctx).unwrap();
    array
        .write_region(&[0..N, 0..N], &bytes(&expected))
        .unwrap();
    let shard = std::fs::read(dir.path().join("c/0/0")).unwrap();
    let entries = index_entries_at_start(&shard, (N * N) as usize);
    let stored = entries.iter().filter(|e| e.0 != u64::MAX).count();
    assert_eq!(
        stored as u64,
        N * N - (N * N).div_ceil(7),
        "fill chunks are not stored"
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for ctx in contexts() {
        let array = ZarrArray::open_with(dir.path(), ctx).unwrap();
        let all = array.read_bytes(&Selection::all(&[N, N])).unwrap();
        assert!(all == bytes(&expected), "whole read");
        // Boxes about the windows' seam (chunk 65,536: row 204, column 256) and anywhere.
        for k in 0..12 {
            let (y, x) = if k < 6 {
                (rng.gen_range(150..205), rng.gen_range(0..N))
            } else {
                (rng.gen_range(0..N), rng.gen_range(0..N))
            };
            let (h, w) = (rng.gen_range(1..=N - y), rng.gen_range(1..=N - x));
            let got = array
                .read_bytes(&Selection::from_ranges(&[y..y + h, x..x + w]))
                .unwrap();
            let want: Vec<u16> = (y..y + h)
                .flat_map(|r| (x..x + w).map(move |c| r * N + c))
                .map(|i| expected[i as usize])
                .collect();
            assert!(got == bytes(&want), "box at ({y}, {x}) of {h} x {w}");
        }
    }

    // As zarr-python's pipeline asks, by stored chunk: a box into the second of two outputs
    // alone (read by its bounds), then with a second box of the same shard into the first
    // (read chunk by chunk).
    let array =
        ZarrArray::open_with(dir.path(), Context::new(ArrayOptions::default()).unwrap()).unwrap();
    let request = |target: usize, rows: std::ops::Range<u64>, cols: std::ops::Range<u64>| {
        zuring_array::ChunkRequest::Orthogonal {
            target,
            chunk: vec![0, 0],
            positions: vec![
                Some((0..rows.end - rows.start).collect()),
                Some((0..cols.end - cols.start).collect()),
            ],
            indices: vec![rows.collect(), cols.collect()],
        }
    };
    let region = |rows: std::ops::Range<u64>, cols: std::ops::Range<u64>| -> Vec<u8> {
        let want: Vec<u16> = rows
            .flat_map(|r| cols.clone().map(move |c| r * N + c))
            .map(|i| expected[i as usize])
            .collect();
        bytes(&want)
    };
    for both in [false, true] {
        let mut first = vec![0xabu8; (N * N * 2) as usize];
        let mut second = vec![0xabu8; 290 * 195 * 2];
        let mut requests = vec![request(1, 10..300, 5..200)];
        if both {
            requests.push(request(0, 0..N, 0..N));
        }
        let missing = array
            .read_chunk_requests(
                &requests,
                &mut [
                    (vec![N, N], first.as_mut_slice()),
                    (vec![290, 195], second.as_mut_slice()),
                ],
            )
            .unwrap();
        assert!(missing.is_empty());
        assert!(second == region(10..300, 5..200), "the box, both: {both}");
        if both {
            assert!(first == bytes(&expected), "the whole shard");
        } else {
            assert!(
                first.iter().all(|&b| b == 0xab),
                "an output no request asks for"
            );
        }
    }

    // A byte of the chunk laid out last changed: the error names it (the second window reads it).
    let (last, &(offset, _)) = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.0 != u64::MAX)
        .max_by_key(|(_, e)| e.0)
        .unwrap();
    assert!(
        last >= 1 << 16,
        "the last chunk in the file is in the second window"
    );
    let mut damaged = shard.clone();
    damaged[offset as usize] ^= 0x5a;
    std::fs::write(dir.path().join("c/0/0"), &damaged).unwrap();
    for ctx in contexts() {
        let array = ZarrArray::open_with(dir.path(), ctx).unwrap();
        let err = array.read_bytes(&Selection::all(&[N, N])).unwrap_err();
        match &err {
            ArrayError::CorruptChunk { path, chunk, .. } => {
                assert!(path.ends_with("c/0/0"), "{err}");
                assert_eq!(chunk, &vec![last as u64 / N, last as u64 % N], "{err}");
            }
            other => panic!("expected a corrupt chunk, got {other}"),
        }
    }
}

/// The (offset, size) entries of a shard index of `n` entries at the start of `shard`.
fn index_entries_at_start(shard: &[u8], n: usize) -> Vec<(u64, u64)> {
    shard[..16 * n]
        .chunks_exact(16)
        .map(|e| {
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
            (word(&e[..8]), word(&e[8..]))
        })
        .collect()
}

/// `requests` with every index and position list that is a run given as its bounds instead
/// (`listed`: false), or with every run listed (`listed`: true).
fn in_form(
    requests: &[zuring_array::ChunkRequest],
    listed: bool,
) -> Vec<zuring_array::ChunkRequest> {
    use zuring_array::{ChunkRequest, Indices};
    let form = |i: &Indices| match (listed, i.as_run()) {
        (true, _) | (false, None) => Indices::List(i.as_list().into_owned()),
        (false, Some((start, len))) => Indices::Run { start, len },
    };
    requests
        .iter()
        .map(|r| match r {
            ChunkRequest::Orthogonal {
                target,
                chunk,
                indices,
                positions,
            } => ChunkRequest::Orthogonal {
                target: *target,
                chunk: chunk.clone(),
                indices: indices.iter().map(form).collect(),
                positions: positions.iter().map(|p| p.as_ref().map(form)).collect(),
            },
            points => points.clone(),
        })
        .collect()
}

#[test]
fn runs_and_lists_read_alike() {
    // zarr-python's slices reach the engine as runs (their bounds); integer arrays as lists.
    // The same requests in either form read the same elements, through local files and
    // through fetched bytes: a whole-array read (every request a box), and an orthogonal
    // selection mixing runs with an unsorted list (boxes in part, gathered elsewhere).
    use std::sync::atomic::AtomicUsize;
    for ctx in contexts() {
        for (name, meta, _) in cases() {
            let (dir, expected, files) = written_by_zarrs(&meta);
            let local = ZarrArray::open_with(dir.path(), Arc::clone(&ctx)).unwrap();
            let batches = AtomicUsize::new(0);
            let source = zuring_array::FetchedSource::new(memory_fetch(&files, &batches));
            let file = local.shard_shape().unwrap_or(local.chunk_shape()).to_vec();
            let lists = vec![
                (1..6).collect::<Vec<u64>>(),
                (3..29).collect(),
                vec![20, 2, 7, 8, 9, 0],
            ];
            let shape: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
            let mut want = Vec::new();
            for &i in &lists[0] {
                for &j in &lists[1] {
                    for &k in &lists[2] {
                        want.push(expected[((i * SHAPE[1] + j) * SHAPE[2] + k) as usize]);
                    }
                }
            }
            let selections = [
                (whole_array_requests(&local), SHAPE.to_vec(), &expected),
                (orthogonal_requests(&lists, &file), shape, &want),
            ];
            for (requests, shape, want) in selections {
                for listed in [false, true] {
                    let requests = in_form(&requests, listed);
                    let runs = requests.iter().any(|r| {
                        matches!(r, zuring_array::ChunkRequest::Orthogonal { indices, .. }
                            if indices.iter().any(|i| matches!(i, zuring_array::Indices::Run { .. })))
                    });
                    assert_eq!(runs, !listed, "{name}: the form asked for");
                    let mut out = vec![0u8; want.len() * 4];
                    local
                        .read_chunk_requests(&requests, &mut [(shape.clone(), out.as_mut_slice())])
                        .unwrap();
                    assert_eq!(&native_u32s(&out), want, "{name}, listed {listed}: local");
                    let mut out = vec![0u8; want.len() * 4];
                    let foreign = ZarrArray::from_metadata("pre/fix", &meta, Arc::clone(&ctx));
                    foreign
                        .unwrap()
                        .read_chunk_requests_from(
                            &source,
                            &requests,
                            &mut [(shape.clone(), out.as_mut_slice())],
                        )
                        .unwrap();
                    assert_eq!(&native_u32s(&out), want, "{name}, listed {listed}: fetched");
                }
            }
        }
    }
}
