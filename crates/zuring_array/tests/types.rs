//! Data types, fill values, strings and Zarr v2 arrays, written by zarrs and read by zuring.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use zarrs::array::{Array, ArraySubset};
use zarrs::storage::{StoreKey, WritableStorageTraits};
use zarrs_filesystem::FilesystemStore;
use zuring_array::{ArrayError, ArrayOptions, Context, DimSlice, Selection, ZarrArray};

fn v3(dtype: &str, fill: &str, codecs: &str) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[5,6],"data_type":"{dtype}",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[2,4]}}}},
        "chunk_key_encoding":{{"name":"default","configuration":{{"separator":"."}}}},"fill_value":{fill},"codecs":{codecs}}}"#
    )
}

fn zarrs_array(dir: &std::path::Path, key: &str, meta: &str) -> Array<FilesystemStore> {
    let store = Arc::new(FilesystemStore::new(dir).unwrap());
    store
        .set(
            &StoreKey::new(key).unwrap(),
            meta.as_bytes().to_vec().into(),
        )
        .unwrap();
    Array::open(store, "/").unwrap()
}

/// Write rows 0..3 (rows 3..5 stay fill) with zarrs; zuring's bytes equal zarrs' bytes.
fn check_fixed(meta: &str, key: &str, row_bytes: impl Fn(usize) -> Vec<u8>, fill: &[u8]) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let array = zarrs_array(dir.path(), key, meta);
    let written: Vec<u8> = (0..3 * 6).flat_map(&row_bytes).collect();
    array
        .store_array_subset(
            &ArraySubset::new_with_ranges(&[0..3, 0..6]),
            zarrs::array::ArrayBytes::new_flen(&written[..]),
        )
        .unwrap();
    let ours = ZarrArray::open(dir.path()).unwrap();
    let got = ours.read_bytes(&Selection::all(&[5, 6])).unwrap();
    let mut want = written.clone();
    for _ in 0..2 * 6 {
        want.extend_from_slice(fill);
    }
    assert_eq!(got, want, "{meta}");
    let theirs: zarrs::array::ArrayBytes<'static> =
        array.retrieve_array_subset(&array.subset_all()).unwrap();
    assert_eq!(
        got,
        theirs.into_fixed().unwrap().into_owned(),
        "{meta}: equals zarrs"
    );
    // A strided region through edges and the fill rows.
    let sel = Selection::Region(vec![
        DimSlice {
            start: 1,
            stop: 5,
            step: 2,
        },
        DimSlice {
            start: 0,
            stop: 6,
            step: 5,
        },
    ]);
    let part = ours.read_bytes(&sel).unwrap();
    let es = fill.len();
    let at = |i: usize, j: usize| want[(i * 6 + j) * es..(i * 6 + j + 1) * es].to_vec();
    let expected: Vec<u8> = [at(1, 0), at(1, 5), at(3, 0), at(3, 5)].concat();
    assert_eq!(part, expected);
}

const BYTES_LE: &str = r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":false}}]"#;
/// Big-endian `[bytes, zstd]`: zuring's hand-rolled chain, which must swap a complex number's
/// parts and a UTF-32 string's code units one by one, as zarrs does.
const BYTES_BE_ZSTD: &str = r#"[{"name":"bytes","configuration":{"endian":"big"}},{"name":"zstd","configuration":{"level":3,"checksum":false}}]"#;
const BYTES_BE_GZIP: &str = r#"[{"name":"bytes","configuration":{"endian":"big"}},{"name":"gzip","configuration":{"level":6}}]"#;

#[test]
fn fixed_size_types_and_fill_values() {
    // bool with no bytes configuration (1-byte type), fill true.
    check_fixed(
        &v3("bool", "true", r#"[{"name":"bytes"}]"#),
        "zarr.json",
        |i| vec![u8::from(i % 3 == 0)],
        &[1],
    );
    check_fixed(
        &v3("int8", "-128", BYTES_LE),
        "zarr.json",
        |i| vec![(i as i8).wrapping_mul(-7) as u8],
        &(-128i8).to_ne_bytes(),
    );
    check_fixed(
        &v3("int64", "-9223372036854775808", BYTES_BE_GZIP),
        "zarr.json",
        |i| (i as i64 * -3_000_000_000).to_ne_bytes().to_vec(),
        &i64::MIN.to_ne_bytes(),
    );
    check_fixed(
        &v3("uint64", "18446744073709551615", BYTES_LE),
        "zarr.json",
        |i| (i as u64 * 77).to_ne_bytes().to_vec(),
        &u64::MAX.to_ne_bytes(),
    );
    check_fixed(
        &v3("float64", r#""NaN""#, BYTES_BE_GZIP),
        "zarr.json",
        |i| (i as f64 * 0.5 - 3.0).to_ne_bytes().to_vec(),
        &f64::NAN.to_ne_bytes(),
    );
    check_fixed(
        &v3("float32", r#""-Infinity""#, BYTES_LE),
        "zarr.json",
        |i| (i as f32).to_ne_bytes().to_vec(),
        &f32::NEG_INFINITY.to_ne_bytes(),
    );
    // A NaN with a payload, given in hex: the bits are kept exactly.
    check_fixed(
        &v3("float32", r#""0x7fc00001""#, BYTES_LE),
        "zarr.json",
        |i| (i as f32).to_ne_bytes().to_vec(),
        &f32::from_bits(0x7fc0_0001).to_ne_bytes(),
    );
    check_fixed(
        &v3("float16", "1.5", BYTES_BE_GZIP),
        "zarr.json",
        |i| ((i as u16) << 8 | 0x3c).to_ne_bytes().to_vec(),
        &0x3e00u16.to_ne_bytes(),
    );
    check_fixed(
        &v3("complex64", "[1.0, -2.0]", BYTES_BE_GZIP),
        "zarr.json",
        |i| [(i as f32).to_ne_bytes(), (-(i as f32)).to_ne_bytes()].concat(),
        &[1.0f32.to_ne_bytes(), (-2.0f32).to_ne_bytes()].concat(),
    );
    check_fixed(
        &v3("complex64", "[1.0, -2.0]", BYTES_BE_ZSTD),
        "zarr.json",
        |i| [(i as f32).to_ne_bytes(), (-(i as f32)).to_ne_bytes()].concat(),
        &[1.0f32.to_ne_bytes(), (-2.0f32).to_ne_bytes()].concat(),
    );
    check_fixed(
        &v3("complex128", "[0.5, 3.0]", BYTES_BE_ZSTD),
        "zarr.json",
        |i| {
            [
                (i as f64 + 0.25).to_ne_bytes(),
                (i as f64 * 1e9).to_ne_bytes(),
            ]
            .concat()
        },
        &[0.5f64.to_ne_bytes(), 3.0f64.to_ne_bytes()].concat(),
    );
    // Three code points per element; fill "ab" (padded with U+0000).
    let utf32 = r#"{"name":"fixed_length_utf32","configuration":{"length_bytes":12}}"#;
    let text = |s: &str| -> Vec<u8> {
        let mut units: Vec<u8> = s.chars().flat_map(|c| u32::from(c).to_ne_bytes()).collect();
        units.resize(12, 0);
        units
    };
    let words = ["é", "zarr", "abc", "ß€", "", "xyz"];
    for codecs in [BYTES_BE_ZSTD, BYTES_BE_GZIP, BYTES_LE] {
        check_fixed(
            &v3("UTF32", r#""ab""#, codecs).replace(r#""UTF32""#, utf32),
            "zarr.json",
            |i| text(&words[i % words.len()].chars().take(3).collect::<String>()),
            &text("ab"),
        );
    }
    // Stored big-endian: each code unit's bytes reversed, in the string's order.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let meta = v3(
        "UTF32",
        r#""""#,
        r#"[{"name":"bytes","configuration":{"endian":"big"}}]"#,
    )
    .replace(r#""UTF32""#, utf32);
    std::fs::write(dir.path().join("zarr.json"), meta).unwrap();
    let ours = ZarrArray::open(dir.path()).unwrap();
    let mut row = Vec::new();
    for _ in 0..2 * 4 {
        row.extend(text("zé"));
    }
    ours.write_region(&[0..2, 0..4], &row).unwrap();
    let stored = std::fs::read(dir.path().join("c.0.0")).unwrap();
    assert_eq!(&stored[..12], &[0, 0, 0, b'z', 0, 0, 0, 0xe9, 0, 0, 0, 0]);
}

#[test]
fn machine_learning_types_and_fill_values() {
    // zarr-extensions' bfloat16 (2 bytes, byte order from the bytes codec) and 8-bit floats
    // and 4-bit integers (one byte a value), with the fill values zarrs gives them.
    let bf16 = |v: f32| half::bf16::from_f32(v).to_bits();
    check_fixed(
        &v3("bfloat16", r#""NaN""#, BYTES_BE_ZSTD),
        "zarr.json",
        |i| bf16(i as f32 * -0.75).to_ne_bytes().to_vec(),
        &0x7fc0u16.to_ne_bytes(),
    );
    check_fixed(
        &v3("bfloat16", "1.5", BYTES_BE_GZIP),
        "zarr.json",
        |i| bf16(i as f32 * 1e30).to_ne_bytes().to_vec(),
        &bf16(1.5).to_ne_bytes(),
    );
    for (dtype, fill, fill_byte) in [
        ("float8_e4m3", r#""NaN""#, 0x7c),
        ("float8_e5m2", r#""-Infinity""#, 0xfc),
        ("float8_e4m3fnuz", r#""NaN""#, 0x80),
        ("float8_e4m3", "-2.0", 0xc0),
        ("int4", "-1", 0xff),
        ("uint4", "15", 0x0f),
    ] {
        check_fixed(
            &v3(dtype, fill, BYTES_LE),
            "zarr.json",
            |i| vec![(i as u8).wrapping_mul(37) & 0x77],
            &[fill_byte],
        );
    }
    // Typed reads as `half`'s types, and a write zarrs reads back.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let theirs = zarrs_array(
        dir.path(),
        "zarr.json",
        &v3("bfloat16", r#""-Infinity""#, BYTES_BE_ZSTD),
    );
    let values: Vec<half::bf16> = (0..12)
        .map(|i| half::bf16::from_f32(i as f32 / 3.0))
        .collect();
    let ours = ZarrArray::open(dir.path()).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    ours.write_region(&[1..3, 0..6], &bytes).unwrap();
    let got = ours.read::<half::bf16>(&Selection::all(&[5, 6])).unwrap();
    let zarrs_read: Vec<half::bf16> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
    assert_eq!(got.as_slice().unwrap(), zarrs_read.as_slice());
    assert_eq!(got[[0, 0]], half::bf16::NEG_INFINITY);
    assert_eq!(got[[2, 5]], values[11]);
    assert_eq!(&zarrs_read[6..18], values.as_slice());
    // A type of another size is refused, naming both.
    let err = ours.read::<f32>(&Selection::all(&[5, 6])).unwrap_err();
    assert!(err.to_string().contains("bfloat16"), "{err}");
}

#[test]
fn zarr_v2_arrays() {
    use zuring_array::ChunkDecoder;
    let zstd = ChunkDecoder::Zstd {
        swap_unit: 1,
        level: 3,
        checksum: false,
    };
    for (compressor, order, dtype, decoder) in [
        (r#"{"id":"zstd","level":3}"#, "C", "<i4", zstd),
        (
            r#"{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1,"blocksize":0}"#,
            "C",
            "<i4",
            ChunkDecoder::Zarrs,
        ),
        // Uncompressed: read where the bytes lie, in part when a read needs part of a chunk.
        ("null", "C", "<i4", ChunkDecoder::Raw { swap_unit: 1 }),
        ("null", "C", ">i4", ChunkDecoder::Raw { swap_unit: 4 }),
        ("null", "F", "<i4", ChunkDecoder::Zarrs),
    ] {
        let meta = format!(
            r#"{{"zarr_format":2,"shape":[5,6],"chunks":[2,4],"dtype":"{dtype}","compressor":{compressor},
            "fill_value":-1,"order":"{order}","filters":null,"dimension_separator":"."}}"#
        );
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::write(dir.path().join(".zarray"), &meta).unwrap();
        let array = ZarrArray::open(dir.path()).unwrap();
        assert_eq!(array.layout().decoder, decoder, "{meta}");
        check_fixed(
            &meta,
            ".zarray",
            |i| (i as i32 * 1000 - 7).to_ne_bytes().to_vec(),
            &(-1i32).to_ne_bytes(),
        );
    }
}

/// numcodecs' `crc32c` in v2 arrays (zarrs 0.23 knows the codec by its v3 name only): read
/// and written with the checksum where the configuration puts it (numcodecs' default: after
/// the data, as the v3 core codec does), checked on read, and the metadata reported as stored.
#[test]
fn zarr_v2_crc32c_either_end() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let values: Vec<u8> = (0..5 * 6)
        .flat_map(|i| (i * 1000 - 7_i32).to_le_bytes())
        .collect();
    let v2 = |compressor: &str| {
        format!(
            r#"{{"zarr_format":2,"shape":[5,6],"chunks":[2,4],"dtype":"<i4","compressor":{compressor},
            "fill_value":-1,"order":"C","filters":null,"dimension_separator":"."}}"#
        )
    };
    let written = |name: &str, file: &str, meta: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join(file), meta).unwrap();
        let array = ZarrArray::open(&path).unwrap();
        array.write_region(&[0..5, 0..6], &values).unwrap();
        let reopened = ZarrArray::open(&path).unwrap();
        assert_eq!(
            reopened.read_bytes(&Selection::all(&[5, 6])).unwrap(),
            values,
            "{name}"
        );
        (path, reopened)
    };
    let (v3_path, _) = written(
        "v3",
        "zarr.json",
        &v3(
            "int32",
            "-1",
            r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}]"#,
        ),
    );
    let default = v2(r#"{"id":"crc32c"}"#);
    let (end_path, end) = written("end", ".zarray", &default);
    let (start_path, _) = written(
        "start",
        ".zarray",
        &v2(r#"{"id":"crc32c","location":"start"}"#),
    );
    // The metadata as stored: numcodecs' configuration, no place filled in.
    let reported: serde_json::Value = serde_json::from_str(&end.metadata_json()).unwrap();
    assert_eq!(reported["compressor"], serde_json::json!({"id": "crc32c"}));
    for (v2_key, v3_key) in [("0.0", "c.0.0"), ("1.1", "c.1.1"), ("2.0", "c.2.0")] {
        let core = std::fs::read(v3_path.join(v3_key)).unwrap();
        let at_end = std::fs::read(end_path.join(v2_key)).unwrap();
        let at_start = std::fs::read(start_path.join(v2_key)).unwrap();
        assert_eq!(at_end, core, "{v2_key}");
        let (data, checksum) = core.split_at(core.len() - 4);
        assert_eq!(at_start, [checksum, data].concat(), "{v2_key}");
    }
    // A corrupted byte fails the checksum, naming the chunk.
    let chunk = start_path.join("1.1");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[6] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    let err = ZarrArray::open(&start_path)
        .unwrap()
        .read_bytes(&Selection::all(&[5, 6]))
        .unwrap_err();
    assert!(err.to_string().contains("1.1"), "{err}");
}

/// numcodecs' `bitround` filter in v2 arrays (zarrs has no v2 name for it): floats rounded as
/// the v3 `numcodecs.bitround` codec rounds them; other element types refused, naming the codec
/// (numcodecs rounds floating-point elements only; zarrs would round integers too).
#[test]
fn zarr_v2_bitround_floats_only() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let values: Vec<u8> = (0..5 * 6)
        .flat_map(|i| (i as f32 * 1.37 - 11.1).to_ne_bytes())
        .collect();
    let v2 = |dtype: &str| {
        format!(
            r#"{{"zarr_format":2,"shape":[5,6],"chunks":[2,4],"dtype":"{dtype}","compressor":null,
            "fill_value":0,"order":"C","filters":[{{"id":"bitround","keepbits":3}}],"dimension_separator":"."}}"#
        )
    };
    let at = |name: &str, file: &str, meta: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join(file), meta).unwrap();
        ZarrArray::open(&path)
    };
    let rounded = |array: ZarrArray| {
        array.write_region(&[0..5, 0..6], &values).unwrap();
        array.read_bytes(&Selection::all(&[5, 6])).unwrap()
    };
    let v3_meta = v3(
        "float32",
        "0",
        r#"[{"name":"numcodecs.bitround","configuration":{"keepbits":3}},{"name":"bytes","configuration":{"endian":"little"}}]"#,
    );
    let want = rounded(at("v3", "zarr.json", &v3_meta).unwrap());
    assert_ne!(want, values, "rounded");
    let got = rounded(at("v2", ".zarray", &v2("<f4")).unwrap());
    assert_eq!(got, want);
    for (name, meta, file) in [
        ("v2-int", v2("<i4"), ".zarray"),
        (
            "v3-int",
            v3(
                "int32",
                "0",
                r#"[{"name":"numcodecs.bitround","configuration":{"keepbits":3}},{"name":"bytes","configuration":{"endian":"little"}}]"#,
            ),
            "zarr.json",
        ),
        // More kept bits than float32's 23-bit mantissa: numcodecs refuses to write them.
        (
            "v2-keepbits",
            v2("<f4").replace(r#""keepbits":3"#, r#""keepbits":24"#),
            ".zarray",
        ),
    ] {
        let err = at(name, file, &meta).unwrap_err();
        assert!(
            matches!(err, ArrayError::Unsupported { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("bitround"), "{name}: {err}");
    }
    // zarrs' own `bitround` (not numcodecs') rounds integers by design: opened.
    let own = v3(
        "int32",
        "0",
        r#"[{"name":"bitround","configuration":{"keepbits":3}},{"name":"bytes","configuration":{"endian":"little"}}]"#,
    );
    assert!(at("v3-own", "zarr.json", &own).is_ok());
    // All 23 bits of float32's mantissa kept: opened, values unchanged.
    let all = rounded(
        at(
            "v2-all",
            ".zarray",
            &v2("<f4").replace(r#""keepbits":3"#, r#""keepbits":23"#),
        )
        .unwrap(),
    );
    assert_eq!(all, values);
}

#[test]
fn strings_through_zarrs() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let meta = r#"{"zarr_format":3,"node_type":"array","shape":[3,2],"data_type":"string",
        "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,2]}},
        "chunk_key_encoding":{"name":"default"},"fill_value":"",
        "codecs":[{"name":"vlen-utf8"},{"name":"zstd","configuration":{"level":1,"checksum":false}}]}"#;
    let array = ZarrArray::create(dir.path(), meta).unwrap();
    let values: Vec<String> = ["", "é", "zarr", "日本", "a\u{0}b", "x"]
        .iter()
        .map(ToString::to_string)
        .collect();
    array.write_strings(&[0..3, 0..2], &values).unwrap();
    assert_eq!(array.read_strings(&[0..3, 0..2]).unwrap(), values);
    assert_eq!(array.read_strings(&[1..3, 1..2]).unwrap(), ["日本", "x"]);
    assert!(matches!(
        array.read_bytes(&Selection::all(&[3, 2])),
        Err(ArrayError::Unsupported { .. })
    ));
    assert!(matches!(
        array.read_strings(&[0..4, 0..2]),
        Err(ArrayError::Selection { .. })
    ));
    let reopened = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
    let theirs: Vec<String> = reopened
        .retrieve_array_subset(&reopened.subset_all())
        .unwrap();
    assert_eq!(theirs, values);
}

#[test]
fn bad_metadata_names_the_problem() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let write = |text: &str| std::fs::write(dir.path().join("zarr.json"), text).unwrap();
    write(
        r#"{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8","chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"}]}"#,
    );
    let err = ZarrArray::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("chunk_grid"), "{err}");
    write(
        r#"{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes"},{"name":"no-such-codec"}]}"#,
    );
    let err = ZarrArray::open(dir.path()).unwrap_err();
    assert!(matches!(err, ArrayError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("no-such-codec"), "{err}");
    write(
        r#"{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint64","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4000000000000]}},"chunk_key_encoding":{"name":"default"},"fill_value":0,"codecs":[{"name":"bytes","configuration":{"endian":"little"}}]}"#,
    );
    assert!(matches!(
        ZarrArray::open(dir.path()),
        Err(ArrayError::TooLarge { .. })
    ));
    write("{not json");
    assert!(matches!(
        ZarrArray::open(dir.path()),
        Err(ArrayError::Metadata { .. })
    ));
    // A member zuring does not know: refused unless `"must_understand": false`, whether the
    // metadata is read from disk, given, or created from (nothing is written then).
    let with_member = |member: &str| {
        format!(
            r#"{{"zarr_format":3,"node_type":"array","shape":[4],"data_type":"uint8","chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[2]}}}},"chunk_key_encoding":{{"name":"default"}},"fill_value":0,"codecs":[{{"name":"bytes"}}],"new_member":{member}}}"#
        )
    };
    let refused = with_member(r#"{"must_understand":true}"#);
    write(&refused);
    for err in [
        ZarrArray::open(dir.path()).unwrap_err(),
        ZarrArray::from_metadata(dir.path(), &refused, Context::shared().unwrap()).unwrap_err(),
        ZarrArray::create(dir.path().join("new"), &refused).unwrap_err(),
    ] {
        assert!(matches!(err, ArrayError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("new_member"), "{err}");
    }
    assert!(!dir.path().join("new").exists());
    write(&with_member(r#"{"must_understand":false,"x":1}"#));
    assert_eq!(ZarrArray::open(dir.path()).unwrap().shape(), &[4]);
}

/// Orthogonal chunk requests (target `target`) for global row and column indices of a 2-d array
/// stored in chunks of `file` elements: what zarr-python's pipeline sends.
fn orthogonal_requests(
    rows: &[u64],
    cols: &[u64],
    file: [u64; 2],
    target: usize,
) -> Vec<zuring_array::ChunkRequest> {
    let split = |idx: &[u64], n: u64| {
        let mut by: std::collections::BTreeMap<u64, (Vec<u64>, Vec<u64>)> = Default::default();
        for (p, &i) in idx.iter().enumerate() {
            let e = by.entry(i / n).or_default();
            e.0.push(i % n);
            e.1.push(p as u64);
        }
        by
    };
    let mut out = Vec::new();
    for (r, (ri, rp)) in split(rows, file[0]) {
        for (c, (ci, cp)) in split(cols, file[1]) {
            out.push(zuring_array::ChunkRequest::Orthogonal {
                target,
                chunk: vec![r, c],
                indices: vec![ri.clone().into(), ci.into()],
                positions: vec![Some(rp.clone().into()), Some(cp.into())],
            });
        }
    }
    out
}

#[test]
fn strings_through_chunk_requests() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Sharded: shards of 4 x 4, inner chunks of 2 x 2, over 5 x 6 (edge shards are partial).
    let meta = r#"{"zarr_format":3,"node_type":"array","shape":[5,6],"data_type":"string",
        "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[4,4]}},
        "chunk_key_encoding":{"name":"default"},"fill_value":"",
        "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[2,2],
          "codecs":[{"name":"vlen-utf8"},{"name":"zstd","configuration":{"level":1,"checksum":false}}],
          "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}]}}]}"#;
    let array = ZarrArray::create(dir.path(), meta).unwrap();
    let value = |i: u64, j: u64| {
        if (i + j).is_multiple_of(5) {
            String::new()
        } else {
            format!("{i}-{j}-é{}", "x".repeat((i * j) as usize))
        }
    };
    let mut all: Vec<String> = (0..5)
        .flat_map(|i| (0..6).map(move |j| value(i, j)))
        .collect();
    array.write_strings(&[0..5, 0..6], &all).unwrap();

    // Rows 0, 2, 4 x columns 1, 3, 5 (every shard), and two points into a second output.
    let rows = [0u64, 2, 4];
    let cols = [1u64, 3, 5];
    let mut requests = orthogonal_requests(&rows, &cols, [4, 4], 0);
    requests.push(zuring_array::ChunkRequest::Points {
        target: 1,
        chunk: vec![1, 1],
        coords: vec![vec![0, 1]],
        positions: vec![0],
    });
    requests.push(zuring_array::ChunkRequest::Points {
        target: 1,
        chunk: vec![0, 0],
        coords: vec![vec![0, 0]],
        positions: vec![1],
    });
    let read = array
        .read_variable_chunk_requests(&requests, &[vec![3, 3], vec![2]])
        .unwrap();
    assert_eq!(read.len(), 2);
    let got: Vec<String> = read
        .output(0)
        .map(|e| String::from_utf8(e.to_vec()).unwrap())
        .collect();
    let want: Vec<String> = rows
        .iter()
        .flat_map(|&i| cols.iter().map(move |&j| value(i, j)))
        .collect();
    assert_eq!(got, want);
    let points: Vec<&[u8]> = read.output(1).collect();
    assert_eq!(points, [value(4, 5).as_bytes(), value(0, 0).as_bytes()]);

    // The same requests with the bytes from elsewhere (a store zuring does not read itself):
    // whole stored chunks, asked for in one batch by key, missing ones answered as missing.
    let foreign = ZarrArray::from_metadata(
        "pre/fix",
        meta,
        Context::new(ArrayOptions::default()).unwrap(),
    )
    .unwrap();
    let batches = std::sync::Mutex::new(0);
    let source = zuring_array::FetchedSource::new(
        |asks: &[(std::path::PathBuf, zuring_io::ByteRange)], kind| {
            // Unsharded: whole stored chunks only.
            assert_eq!(kind, zuring_array::FetchKind::Chunks);
            *batches.lock().unwrap() += 1;
            asks.iter()
                .map(|(key, range)| {
                    assert_eq!(*range, zuring_io::ByteRange::Whole);
                    let rel = key.strip_prefix("pre/fix").unwrap();
                    match std::fs::read(dir.path().join(rel)) {
                        Ok(b) => zuring_array::Fetched::Bytes(b.into()),
                        Err(_) => zuring_array::Fetched::Missing,
                    }
                })
                .collect()
        },
    );
    let fetched = foreign
        .read_variable_chunk_requests_from(&source, &requests, &[vec![3, 3], vec![2]])
        .unwrap();
    assert_eq!(
        *batches.lock().unwrap(),
        1,
        "one batch of whole stored chunks"
    );
    assert_eq!(
        fetched.output(0).collect::<Vec<_>>(),
        read.output(0).collect::<Vec<_>>()
    );
    assert_eq!(fetched.output(1).collect::<Vec<_>>(), points);

    // The same through selections: a strided region, orthogonal lists, points.
    let strings = |read: zuring_array::VariableRead| -> Vec<String> {
        read.output(0)
            .map(|e| String::from_utf8(e.to_vec()).unwrap())
            .collect()
    };
    let stepped = |start, stop| DimSlice {
        start,
        stop,
        step: 2,
    };
    let region = Selection::Region(vec![stepped(0, 5), stepped(1, 6)]);
    assert_eq!(strings(array.read_variable(&region).unwrap()), want);
    let lists = Selection::Orthogonal(vec![vec![4, 0], vec![5, 0, 3]]);
    let want_lists: Vec<String> = [4u64, 0]
        .iter()
        .flat_map(|&i| [5u64, 0, 3].map(move |j| value(i, j)))
        .collect();
    assert_eq!(strings(array.read_variable(&lists).unwrap()), want_lists);
    let points = Selection::Points(vec![vec![4, 5], vec![1, 2]]);
    assert_eq!(
        strings(array.read_variable(&points).unwrap()),
        [value(4, 5), value(1, 2)]
    );
    assert!(matches!(
        array.read_variable(&Selection::Points(vec![vec![5, 0]])),
        Err(ArrayError::Selection { .. })
    ));

    // A request outside its stored chunk fails before any IO.
    let bad = orthogonal_requests(&[4], &[0], [4, 4], 0);
    let bad = match bad.into_iter().next().unwrap() {
        zuring_array::ChunkRequest::Orthogonal {
            target,
            chunk,
            positions,
            ..
        } => zuring_array::ChunkRequest::Orthogonal {
            target,
            chunk,
            indices: vec![vec![4].into(), vec![0].into()],
            positions,
        },
        other => other,
    };
    assert!(matches!(
        array.read_variable_chunk_requests(&[bad], &[vec![1, 1]]),
        Err(ArrayError::Selection { .. })
    ));

    // Write rows 3..5 x columns 2..5 (parts of all four shards): the rest of each is kept.
    let new: Vec<String> = (0..6).map(|k| format!("new{k}")).collect();
    let new_bytes: Vec<&[u8]> = new.iter().map(String::as_bytes).collect();
    let requests = orthogonal_requests(&[3, 4], &[2, 3, 4], [4, 4], 0);
    let partial: Vec<Vec<u64>> = vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]];
    array
        .write_variable_chunk_requests(&requests, &new_bytes, &[2, 3], &partial, false)
        .unwrap();
    for (k, (i, j)) in [3, 4]
        .iter()
        .flat_map(|&i| [2, 3, 4].map(|j| (i, j)))
        .enumerate()
    {
        all[i * 6 + j] = new[k].clone();
    }
    let theirs = Array::open(Arc::new(FilesystemStore::new(dir.path()).unwrap()), "/").unwrap();
    let stored: Vec<String> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
    assert_eq!(stored, all);

    // A broadcast fill value over the whole in-bounds part of shard (1, 1) deletes it.
    let requests = orthogonal_requests(&[4], &[4, 5], [4, 4], 0);
    array
        .write_variable_chunk_requests(&requests, &[b""], &[], &[], false)
        .unwrap();
    assert!(!dir.path().join("c/1/1").exists());
    assert!(dir.path().join("c/1/0").exists());
    all[4 * 6 + 4].clear();
    all[4 * 6 + 5].clear();
    let stored: Vec<String> = theirs.retrieve_array_subset(&theirs.subset_all()).unwrap();
    assert_eq!(stored, all);

    // A value of the wrong size fails before any file changes.
    let before = std::fs::read(dir.path().join("c/0/0")).unwrap();
    let err = array.write_variable_chunk_requests(
        &orthogonal_requests(&[0, 1], &[0], [4, 4], 0),
        &new_bytes,
        &[2, 1],
        &[vec![0, 0]],
        false,
    );
    assert!(matches!(err, Err(ArrayError::Selection { .. })), "{err:?}");
    assert_eq!(std::fs::read(dir.path().join("c/0/0")).unwrap(), before);
    // A truncated shard is corrupt data naming its file.
    let shard = dir.path().join("c/1/0");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = array
        .read_variable(&Selection::Points(vec![vec![4, 0]]))
        .unwrap_err();
    assert!(
        matches!(&err, ArrayError::CorruptChunk { path, .. } if path.ends_with("c/1/0")),
        "{err:?}"
    );
    // Fixed-size arrays refuse the variable-size calls.
    let fixed = ZarrArray::create(
        dir.path().join("fixed"),
        &v3(
            "int32",
            "0",
            r#"[{"name":"bytes","configuration":{"endian":"little"}}]"#,
        ),
    )
    .unwrap();
    assert!(matches!(
        fixed.read_variable_chunk_requests(&[], &[]),
        Err(ArrayError::Unsupported { .. })
    ));
}

#[test]
fn create_storing_opens_one_form_and_stores_the_other() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let codecs = r#"[{"name":"bytes"}]"#;
    // zarrs opens raw bits; the file says raw_bytes (which zarrs has no type for).
    let opened = v3("r16", "[1, 2]", codecs);
    let stored = v3("RAW", r#""AQI=""#, codecs).replace(
        r#""RAW""#,
        r#"{"name":"raw_bytes","configuration":{"length_bytes":2}}"#,
    );
    let ctx = Context::shared().unwrap();
    let a = ZarrArray::create_storing(dir.path().join("a"), &opened, &stored, Arc::clone(&ctx))
        .unwrap();
    assert_eq!(a.fill_value_bytes(), &[1, 2]);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/zarr.json")).unwrap()).unwrap();
    assert_eq!(
        on_disk,
        serde_json::from_str::<serde_json::Value>(&stored).unwrap()
    );
    a.write_region(&[0..1, 0..1], &[7, 8]).unwrap();
    let got = a.read_bytes(&Selection::all(&[5, 6])).unwrap();
    assert_eq!(&got[..4], &[7, 8, 1, 2]);
    // Refused: nothing written.
    let bad = opened.replace(r#"[{"name":"bytes"}]"#, r#"[{"name":"no_such_codec"}]"#);
    assert!(ZarrArray::create_storing(dir.path().join("b"), &bad, &stored, ctx).is_err());
    assert!(!dir.path().join("b").exists());
}
