//! Writes from many threads into different parts of the same stored files lose nothing: each
//! write reads the chunk or shard it covers in part, merges and replaces it, and two such writes
//! into one file take turns (through handles opened by different paths too).

use std::path::Path;
use std::sync::Barrier;

use zuring_array::{ArrayOptions, Context, Selection, ZarrArray};

const T: u64 = 8;
const N: u64 = 64;
/// Each thread writes its own time step in `N / SQUARE` x `N / SQUARE` squares, one by one.
const SQUARE: u64 = 16;

fn meta(data_type: &str, fill: &str, codecs: &str, chunk: [u64; 3]) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[{T},{N},{N}],"data_type":"{data_type}",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[{},{},{}]}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":{fill},"codecs":{codecs}}}"#,
        chunk[0], chunk[1], chunk[2]
    )
}

fn value(t: u64, square: u64) -> u32 {
    u32::try_from(1000 * (t + 1) + square).unwrap()
}

/// Every square's value, in the order of the array's elements.
fn expected() -> Vec<u32> {
    let per_row = N / SQUARE;
    (0..T * N * N)
        .map(|i| {
            let (t, y, x) = (i / (N * N), (i / N) % N, i % N);
            value(t, (y / SQUARE) * per_row + x / SQUARE)
        })
        .collect()
}

/// Handles on the array in `dir`: through its own path and through a symlink to it, each
/// with its own context (reader, pool and caches).
fn handles(dir: &Path) -> Vec<ZarrArray> {
    let link = dir.with_extension("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(dir, &link).unwrap();
    [dir.to_path_buf(), link]
        .iter()
        .map(|p| {
            let ctx = Context::new(ArrayOptions {
                threads: 2,
                ..ArrayOptions::default()
            })
            .unwrap();
            ZarrArray::open_with(p, ctx).unwrap()
        })
        .collect()
}

/// Every thread writes its squares at once with the others (all in one file, or each chunk
/// shared by several threads), `rounds` times over.
fn write_squares_at_once(
    handles: &[ZarrArray],
    rounds: usize,
    write: impl Fn(&ZarrArray, u64, u64, u64, u64) + Sync,
) {
    let per_row = N / SQUARE;
    for _ in 0..rounds {
        let start = Barrier::new(usize::try_from(T).unwrap());
        std::thread::scope(|s| {
            for t in 0..T {
                let (start, write) = (&start, &write);
                let array = &handles[usize::try_from(t).unwrap() % handles.len()];
                s.spawn(move || {
                    start.wait();
                    for square in 0..per_row * per_row {
                        let (y, x) = ((square / per_row) * SQUARE, (square % per_row) * SQUARE);
                        write(array, t, y, x, square);
                    }
                });
            }
        });
    }
}

#[test]
fn writes_into_one_file_from_many_threads_lose_nothing() {
    let zstd = r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":1,"checksum":false}}]"#;
    let sharded = format!(
        r#"[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[1,{SQUARE},{SQUARE}],
        "codecs":{zstd},"index_codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"crc32c"}}],
        "index_location":"end"}}}}]"#
    );
    let cases = [
        // One shard holds every inner chunk every thread writes.
        ("one shard", meta("uint32", "0", &sharded, [T, N, N])),
        // Each chunk holds squares of several threads, covered in part by each.
        ("shared chunks", meta("uint32", "0", zstd, [T, 32, 32])),
        // One uncompressed chunk.
        (
            "one uncompressed chunk",
            meta(
                "uint32",
                "0",
                r#"[{"name":"bytes","configuration":{"endian":"little"}}]"#,
                [T, N, N],
            ),
        ),
    ];
    let want = expected();
    for (name, meta) in cases {
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = root.path().join("a.zarr");
        ZarrArray::create(&dir, &meta).unwrap();
        let handles = handles(&dir);
        write_squares_at_once(&handles, 3, |array, t, y, x, square| {
            let data: Vec<u8> =
                std::iter::repeat_n(value(t, square), usize::try_from(SQUARE * SQUARE).unwrap())
                    .flat_map(u32::to_ne_bytes)
                    .collect();
            array
                .write_region(&[t..t + 1, y..y + SQUARE, x..x + SQUARE], &data)
                .unwrap();
        });
        let got = ZarrArray::open(&dir)
            .unwrap()
            .read::<u32>(&Selection::all(&[T, N, N]))
            .unwrap();
        let lost = got
            .as_slice()
            .unwrap()
            .iter()
            .zip(&want)
            .filter(|(g, w)| g != w)
            .count();
        assert_eq!(lost, 0, "{name}: {lost} elements lost to concurrent writes");
    }
}

#[test]
fn string_writes_into_shared_chunks_from_many_threads_lose_nothing() {
    let codecs =
        r#"[{"name":"vlen-utf8"},{"name":"zstd","configuration":{"level":1,"checksum":false}}]"#;
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = root.path().join("s.zarr");
    ZarrArray::create(&dir, &meta("string", "\"\"", codecs, [T, 32, 32])).unwrap();
    let handles = handles(&dir);
    write_squares_at_once(&handles, 1, |array, t, y, x, square| {
        let s = value(t, square).to_string();
        let values = vec![s; usize::try_from(SQUARE * SQUARE).unwrap()];
        array
            .write_strings(&[t..t + 1, y..y + SQUARE, x..x + SQUARE], &values)
            .unwrap();
    });
    let got = ZarrArray::open(&dir)
        .unwrap()
        .read_strings(&[0..T, 0..N, 0..N])
        .unwrap();
    let want: Vec<String> = expected().iter().map(u32::to_string).collect();
    let lost = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    assert_eq!(lost, 0, "{lost} strings lost to concurrent writes");
}
