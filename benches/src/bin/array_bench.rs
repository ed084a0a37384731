//! The Zarr engine against zarrs on the same data: batches of random crops, whole-array read and
//! write, warm and cold cache, with the single-thread decode bound measured in the same run.
//!
//! Datasets (generated once under `--dir`):
//! - `sat.zarr`: uint16, 64 x 2048 x 2048 (512 MiB decoded), shards 16x1024x1024, inner chunks
//!   1x256x256, zstd level 3, crc32c shard index; smooth fields plus noise (zstd ratio ~2-3).
//! - `nwp.zarr`: float32, 32 x 1024 x 1024 (128 MiB), unsharded chunks 1x256x256, blosc lz4
//!   with shuffle.
//! - `raw.zarr`: `sat.zarr`'s values and layout stored uncompressed (inner chunks `[bytes]`):
//!   no decoding, so no decode bound; a crop reads only the bytes of each chunk it needs.
//!
//! Usage: `array_bench [--dir DIR] [--quick] [--generate-only] [--writes-only] [--only NAME]`
//! (`--only sat`, `nwp` or `raw`: that dataset alone).
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use zarrs::array::{
    Array, ArrayShardedReadableExt, ArrayShardedReadableExtCache, ArraySubset,
    ArrayToBytesCodecTraits, CodecOptions,
};
use zarrs_filesystem::FilesystemStore;
use zuring_array::{with_decoded, ReadMode, Selection, ShardIndex, ZarrArray};
use zuring_benches::{
    can_drop_caches, cores, current_rss, drop_caches, fresh_ctx, peak_rss, print_table, reset_peak,
    take_turns, zarrs_create, Measurement,
};

const CROP: [u64; 3] = [4, 256, 256];
const BATCH: usize = 32;

/// zarrs reading the whole array into `out` (the caller's buffer, of the array's size).
#[allow(unsafe_code)]
fn zarrs_read_into(
    array: &Array<FilesystemStore>,
    shape: &[u64],
    element_size: usize,
    out: &mut [u8],
) {
    let all = array.subset_all();
    let bytes = unsafe_cell_slice::UnsafeCellSlice::new(out);
    // SAFETY: the one view over `out` covers the whole array, so no other view overlaps it
    // (zarrs' requirement), and `out` outlives it.
    let mut view = unsafe {
        zarrs::array::ArrayBytesFixedDisjointView::new(bytes, element_size, shape, all.clone())
    }
    .expect("a view of the whole array");
    array
        .retrieve_array_subset_into(
            &all,
            zarrs::array::ArrayBytesDecodeIntoTarget::Fixed(&mut view),
        )
        .expect("zarrs read");
}

struct Dataset {
    name: &'static str,
    path: PathBuf,
    element_size: usize,
    /// Whether chunks are compressed (else there is no decoding to bound a read).
    compressed: bool,
}

fn sat_meta() -> &'static str {
    r#"{"zarr_format":3,"node_type":"array","shape":[64,2048,2048],"data_type":"uint16",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[16,1024,1024]}},
    "chunk_key_encoding":{"name":"default"},"fill_value":0,
    "codecs":[{"name":"sharding_indexed","configuration":{"chunk_shape":[1,256,256],
      "codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":3,"checksum":false}}],
      "index_codecs":[{"name":"bytes","configuration":{"endian":"little"}},{"name":"crc32c"}],"index_location":"end"}}],
    "dimension_names":["time","y","x"]}"#
}

fn raw_meta() -> String {
    sat_meta().replace(
        r#"{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":3,"checksum":false}}"#,
        r#"{"name":"bytes","configuration":{"endian":"little"}}"#,
    )
}

fn nwp_meta() -> &'static str {
    r#"{"zarr_format":3,"node_type":"array","shape":[32,1024,1024],"data_type":"float32",
    "chunk_grid":{"name":"regular","configuration":{"chunk_shape":[1,256,256]}},
    "chunk_key_encoding":{"name":"default"},"fill_value":0.0,
    "codecs":[{"name":"bytes","configuration":{"endian":"little"}},
      {"name":"blosc","configuration":{"cname":"lz4","clevel":5,"shuffle":"shuffle","typesize":4,"blocksize":0}}],
    "dimension_names":["time","y","x"]}"#
}

/// Smooth field + noise: realistic compressibility, not zeros.
fn field(t: u64, y: u64, x: u64, noise: u32) -> f64 {
    let (t, y, x) = (t as f64, y as f64, x as f64);
    1000.0 + 400.0 * (x / 53.0 + t / 7.0).sin() * (y / 71.0).cos() + 0.5 * y + f64::from(noise % 24)
}

fn generate(dir: &Path, name: &str, meta: &str, f32_values: bool) -> PathBuf {
    let path = dir.join(name);
    let done = path.join(".generated");
    if done.exists() {
        return path;
    }
    let _ = std::fs::remove_dir_all(&path);
    let array = zarrs_create(&path, meta);
    let shape = array.shape().to_vec();
    // Write slabs of 16 time steps (one shard row for the sharded array).
    let slab = 16u64.min(shape[0]);
    for t0 in (0..shape[0]).step_by(slab as usize) {
        let n = (slab * shape[1] * shape[2]) as usize;
        let mut rng = rand::rngs::StdRng::seed_from_u64(t0);
        let noise: Vec<u32> = (0..n).map(|_| rng.gen()).collect();
        let subset = ArraySubset::new_with_ranges(&[t0..t0 + slab, 0..shape[1], 0..shape[2]]);
        let idx = |i: usize| {
            let i = i as u64;
            (
                t0 + i / (shape[1] * shape[2]),
                (i / shape[2]) % shape[1],
                i % shape[2],
            )
        };
        if f32_values {
            let v: Vec<f32> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let (t, y, x) = idx(i);
                    field(t, y, x, noise[i]) as f32 * 0.01
                })
                .collect();
            array.store_array_subset(&subset, v).unwrap();
        } else {
            let v: Vec<u16> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let (t, y, x) = idx(i);
                    field(t, y, x, noise[i]) as u16
                })
                .collect();
            array.store_array_subset(&subset, v).unwrap();
        }
    }
    std::fs::write(done, b"").unwrap();
    path
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    dir_bytes(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

fn crop_starts(shape: &[u64], batches: usize, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..batches)
        .map(|_| {
            (0..BATCH)
                .flat_map(|_| {
                    shape
                        .iter()
                        .zip(CROP)
                        .map(|(&n, c)| rng.gen_range(0..=n - c))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

/// Distinct read-granularity chunks a batch touches, and their decoded bytes.
fn decoded_bytes(starts: &[u64], chunk: &[u64], element_size: usize) -> u64 {
    let mut set = HashSet::new();
    for s in starts.chunks(3) {
        for t in s[0] / chunk[0]..=(s[0] + CROP[0] - 1) / chunk[0] {
            for y in s[1] / chunk[1]..=(s[1] + CROP[1] - 1) / chunk[1] {
                for x in s[2] / chunk[2]..=(s[2] + CROP[2] - 1) / chunk[2] {
                    set.insert((t, y, x));
                }
            }
        }
    }
    set.len() as u64 * chunk.iter().product::<u64>() * element_size as u64
}

/// Single-thread decode throughput (decoded bytes/s) with zarrs' codec chain and with zuring's
/// decoder, over `n` chunks whose encoded bytes are in memory.
/// Decode throughput of `n` chunks of `array` (decoded bytes per second): single-threaded with
/// zarrs' codec chain and with zuring's decoder, and `threads` threads decoding at once with
/// zuring's (no IO, no assembly: what the cores give together in this run).
fn decode_bound(array: &ZarrArray, n: usize, threads: usize) -> (f64, f64, f64) {
    let layout = array.layout();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    match array.read_mode() {
        ReadMode::Sharded(index) => {
            let grid: Vec<u64> = layout
                .shape
                .iter()
                .zip(&layout.file_shape)
                .map(|(s, f)| s.div_ceil(*f))
                .collect();
            while encoded.len() < n {
                let shard: Vec<u64> = grid.iter().map(|&g| rng.gen_range(0..g)).collect();
                let bytes = std::fs::read(array.file_path(&shard)).unwrap();
                let ix_bytes = &bytes[bytes.len() - index.encoded_size as usize..];
                let ix = ShardIndex::decode(
                    Path::new("shard"),
                    ix_bytes,
                    index,
                    bytes.len() as u64,
                    &CodecOptions::default(),
                )
                .unwrap();
                let i = rng.gen_range(0..ix.len());
                if let Some((o, l)) = ix.chunk(i) {
                    encoded.push(bytes[o as usize..(o + l) as usize].to_vec());
                }
            }
        }
        _ => {
            let grid: Vec<u64> = layout
                .shape
                .iter()
                .zip(&layout.chunk_shape)
                .map(|(s, c)| s.div_ceil(*c))
                .collect();
            while encoded.len() < n {
                let c: Vec<u64> = grid.iter().map(|&g| rng.gen_range(0..g)).collect();
                encoded.push(std::fs::read(array.file_path(&c)).unwrap());
            }
        }
    }
    let shape = layout.chunk_shape_nonzero();
    let options = CodecOptions::default().with_concurrent_target(1);
    let bytes = (n as u64 * layout.chunk_elements() * layout.element_size as u64) as f64;
    // Best of several runs: one slow spell of the shared machine must not lower the bound.
    let time = |f: &dyn Fn()| {
        f();
        (0..7)
            .map(|_| {
                let t = Instant::now();
                f();
                bytes / t.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    };
    let zarrs = time(&|| {
        for e in &encoded {
            let d = layout
                .chunk_codecs
                .decode(
                    Cow::Borrowed(e),
                    &shape,
                    &layout.data_type,
                    &layout.fill_value,
                    &options,
                )
                .unwrap();
            std::hint::black_box(d);
        }
    });
    let decode_all = || {
        for e in &encoded {
            with_decoded(
                layout,
                layout.decoder,
                &layout.chunk_shape,
                e,
                &options,
                |d| std::hint::black_box(d.len()),
            )
            .unwrap();
        }
    };
    let ours = time(&decode_all);
    let together = time(&|| {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(decode_all);
            }
        });
    }) * threads as f64;
    (zarrs, ours, together)
}

/// Copy the directory tree `from` to `to` (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Time-step writes into an existing sharded array: 4 single time steps (1 x Y x X) written one
/// after another, each covering every shard it touches in part (1 of 16 time steps), so each
/// writer must read-modify-write those shards. zuring re-encodes only the touched inner chunks
/// and replaces each shard atomically; zarrs by default decodes and re-encodes whole shards; with
/// its experimental partial encoding it appends the new inner chunks to the shard in place (not
/// crash-safe). The touched shards are restored from `src` (untimed) before every timed run.
/// None when the array is not sharded along time.
/// Whole-array writes of `data` (the array at `src`, read whole) into a fresh directory at
/// `target` each time (page cache, no fsync): zuring vs zarrs, taking turns; the previous target
/// is removed and the page cache written back (`sync`) before each timed write, so no method
/// pays for another's deletes or dirty pages.
fn whole_writes(
    name: &str,
    src: &Path,
    target: &Path,
    data: &[u8],
    repeats: usize,
) -> Vec<Measurement> {
    let meta = std::fs::read_to_string(src.join("zarr.json")).unwrap();
    let shape = ZarrArray::open(src).unwrap().shape().to_vec();
    let methods = ["zuring write_region", "zarrs store_array_subset"];
    let best = take_turns(methods.len(), repeats, |m| {
        let _ = std::fs::remove_dir_all(target);
        let _ = std::process::Command::new("sync").status();
        let t = Instant::now();
        if m == 0 {
            let a = ZarrArray::create_with(target, &meta, fresh_ctx()).unwrap();
            let ranges: Vec<_> = shape.iter().map(|&n| 0..n).collect();
            a.write_region(&ranges, data).unwrap();
        } else {
            let a = zarrs_create(target, &meta);
            a.store_array_subset(&a.subset_all(), zarrs::array::ArrayBytes::new_flen(data))
                .unwrap();
        }
        t.elapsed().as_secs_f64()
    });
    let _ = std::fs::remove_dir_all(target);
    methods
        .iter()
        .zip(best)
        .map(|(method, seconds)| Measurement {
            bench: format!("{name} whole write"),
            method: (*method).into(),
            cache: "-",
            seconds,
            bytes: data.len() as u64,
            ops: 1,
        })
        .collect()
}

fn time_step_writes(
    src: &Path,
    target: &Path,
    data: &[u8],
    repeats: usize,
) -> Option<Vec<Measurement>> {
    let array = ZarrArray::open(src).unwrap();
    let layout = array.layout();
    let shard_t = layout.file_shape[0];
    if !matches!(layout.mode, ReadMode::Sharded(_)) || shard_t < 2 {
        return None;
    }
    let shape = layout.shape.clone();
    let step_bytes = (data.len() as u64 / shape[0]) as usize;
    let steps: Vec<u64> = (0..4).map(|k| 1 + k * (shard_t / 4).max(1)).collect();
    let _ = std::fs::remove_dir_all(target);
    copy_tree(src, target);
    let restore = || {
        let _ = std::fs::remove_dir_all(target.join("c/0"));
        copy_tree(&src.join("c/0"), &target.join("c/0"));
        let _ = std::process::Command::new("sync").status();
    };
    let subset = |s: u64| -> Vec<std::ops::Range<u64>> {
        std::iter::once(s..s + 1)
            .chain(shape[1..].iter().map(|&n| 0..n))
            .collect()
    };
    let methods = [
        "zuring write_region",
        "zarrs store_array_subset",
        "zarrs store_array_subset (experimental partial encoding)",
    ];
    let best = take_turns(methods.len(), repeats, |m| {
        restore();
        let t = Instant::now();
        if m == 0 {
            let a = ZarrArray::open_with(target, fresh_ctx()).unwrap();
            for &s in &steps {
                let at = s as usize * step_bytes;
                a.write_region(&subset(s), &data[at..at + step_bytes])
                    .unwrap();
            }
        } else {
            let store = Arc::new(FilesystemStore::new(target).unwrap());
            let a = Array::open(store, "/").unwrap();
            let options = CodecOptions::default().with_experimental_partial_encoding(m == 2);
            for &s in &steps {
                let at = s as usize * step_bytes;
                a.store_array_subset_opt(
                    &ArraySubset::new_with_ranges(&subset(s)),
                    zarrs::array::ArrayBytes::new_flen(&data[at..at + step_bytes]),
                    &options,
                )
                .unwrap();
            }
        }
        t.elapsed().as_secs_f64()
    });
    // What zuring wrote reads back as the data; its peak memory over the 4 writes (shards are
    // rewritten without being held in memory: only touched inner chunks are).
    restore();
    let a = ZarrArray::open_with(target, fresh_ctx()).unwrap();
    let before = current_rss();
    let measured = reset_peak();
    for &s in &steps {
        let at = s as usize * step_bytes;
        a.write_region(&subset(s), &data[at..at + step_bytes])
            .unwrap();
    }
    if measured {
        let peak = peak_rss().saturating_sub(before);
        let shard = std::fs::metadata(src.join("c/0/0/0")).map_or(0, |m| m.len());
        println!(
            "{}",
            serde_json::json!({"bench": "time-step write peak memory (zuring)", "peak_extra_bytes": peak,
                "step_bytes": step_bytes, "shard_file_bytes": shard})
        );
    }
    let back = a.read_bytes(&Selection::all(&shape)).unwrap();
    assert!(back == data, "time-step writes read back as written");
    let _ = std::fs::remove_dir_all(target);
    Some(
        methods
            .iter()
            .zip(best)
            .map(|(method, seconds)| Measurement {
                bench: format!(
                    "{} time-step write",
                    src.file_name().unwrap().to_string_lossy()
                ),
                method: (*method).into(),
                cache: "-",
                seconds,
                bytes: step_bytes as u64 * steps.len() as u64,
                ops: steps.len() as u64,
            })
            .collect(),
    )
}

fn main() {
    let mut dir = PathBuf::from("target/bench-data/array");
    let mut batches = 12usize;
    let mut repeats = 3usize;
    let mut generate_only = false;
    let mut writes_only = false;
    let mut only: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--quick" => {
                batches = 4;
                repeats = 1;
            }
            "--generate-only" => generate_only = true,
            "--writes-only" => writes_only = true,
            "--only" => only = Some(it.next().expect("--only NAME")),
            "--help" | "-h" => {
                println!("array_bench [--dir DIR] [--quick] [--generate-only] [--writes-only] [--only sat|nwp|raw]");
                std::process::exit(0);
            }
            other => {
                eprintln!("array_bench: unknown argument {other} (see --help)");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    let datasets = [
        Dataset {
            name: "sat uint16 sharded zstd",
            path: generate(&dir, "sat.zarr", sat_meta(), false),
            element_size: 2,
            compressed: true,
        },
        Dataset {
            name: "nwp float32 blosc-lz4",
            path: generate(&dir, "nwp.zarr", nwp_meta(), true),
            element_size: 4,
            compressed: true,
        },
        Dataset {
            name: "raw uint16 sharded uncompressed",
            path: generate(&dir, "raw.zarr", &raw_meta(), false),
            element_size: 2,
            compressed: false,
        },
    ];
    let datasets: Vec<Dataset> = datasets
        .into_iter()
        .filter(|ds| {
            only.as_ref()
                .is_none_or(|o| ds.path.ends_with(format!("{o}.zarr")))
        })
        .collect();
    assert!(
        !datasets.is_empty(),
        "--only: no dataset named so (sat, nwp, raw)"
    );
    eprintln!("datasets ready in {:.1}s", t.elapsed().as_secs_f64());
    if generate_only {
        return;
    }
    if writes_only {
        let mut results = Vec::new();
        for ds in &datasets {
            let array = ZarrArray::open(&ds.path).unwrap();
            let data = array
                .read_bytes(&Selection::all(&array.layout().shape))
                .unwrap();
            for m in whole_writes(ds.name, &ds.path, &dir.join("write-target"), &data, repeats) {
                m.print_json(&serde_json::json!({}));
                results.push(m);
            }
            for m in time_step_writes(&ds.path, &dir.join("step-target"), &data, repeats)
                .unwrap_or_default()
            {
                m.print_json(&serde_json::json!({}));
                results.push(m);
            }
        }
        print_table(&results, "zarrs store_array_subset");
        return;
    }
    let cold_ok = can_drop_caches();
    let threads = cores();
    println!(
        "# array_bench: crops {CROP:?} in batches of {BATCH}, {batches} batches per run, {threads} threads, best of {repeats}, cold cache {}",
        if cold_ok { "by drop_caches" } else { "unavailable" }
    );
    let mut results: Vec<Measurement> = Vec::new();
    let mut record = |m: Measurement, extra: serde_json::Value| {
        m.print_json(&extra);
        results.push(m);
    };
    for ds in &datasets {
        let ours = ZarrArray::open_with(&ds.path, fresh_ctx()).unwrap();
        let zarrs_array =
            Array::open(Arc::new(FilesystemStore::new(&ds.path).unwrap()), "/").unwrap();
        let shape = ours.shape().to_vec();
        let chunk = ours.chunk_shape().to_vec();
        let total = shape.iter().product::<u64>() * ds.element_size as u64;
        let stored = dir_bytes(&ds.path);
        // Fractions of the decode bound are null (NaN) for data that is not decoded.
        let (mut bound, mut together) = (f64::NAN, f64::NAN);
        if ds.compressed {
            let (zarrs1, ours1, all) = decode_bound(&ours, 96, threads);
            // The bound uses the faster single-thread decoder, so beating a slow reference is
            // not mistaken for efficiency.
            let bound1 = zarrs1.max(ours1);
            (bound, together) = (bound1 * threads as f64, all);
            println!(
                "# {}: shape {shape:?}, read chunk {chunk:?}, shard {:?}, {:.0} MiB decoded, {:.0} MiB stored; single-thread decode: zarrs {:.0} MiB/s, zuring {:.0} MiB/s; decode bound {:.0} x {threads} = {:.0} MiB/s; {threads} threads decoding at once: {:.0} MiB/s",
                ds.name, ours.shard_shape(), total as f64 / 1048576.0, stored as f64 / 1048576.0, zarrs1 / 1048576.0, ours1 / 1048576.0, bound1 / 1048576.0, bound / 1048576.0, together / 1048576.0
            );
            record(
                Measurement {
                    bench: format!("{} decode bound", ds.name),
                    method: "single-thread decode x cores".into(),
                    cache: "-",
                    seconds: 1.0,
                    bytes: bound as u64,
                    ops: 0,
                },
                serde_json::json!({"zarrs_per_thread_mib_s": zarrs1 / 1048576.0, "zuring_per_thread_mib_s": ours1 / 1048576.0, "threads": threads}),
            );
            record(
                Measurement {
                    bench: format!("{} decode bound", ds.name),
                    method: format!("{threads} threads decoding at once"),
                    cache: "-",
                    seconds: 1.0,
                    bytes: together as u64,
                    ops: 0,
                },
                serde_json::json!({"threads": threads}),
            );
        } else {
            println!(
                "# {}: shape {shape:?}, read chunk {chunk:?}, shard {:?}, {:.0} MiB, {:.0} MiB stored uncompressed (no decode bound)",
                ds.name, ours.shard_shape(), total as f64 / 1048576.0, stored as f64 / 1048576.0
            );
        }
        let warm_ctx = fresh_ctx();
        let caches: &[&'static str] = if cold_ok {
            &["warm", "cold"]
        } else {
            &["warm"]
        };
        let opts = CodecOptions::default();
        for &cache in caches {
            // Crops: zuring's one call per batch vs zarrs' crops in parallel with its shard cache.
            let batches_starts = crop_starts(&shape, batches, 11);
            let decoded: u64 = batches_starts
                .iter()
                .map(|s| decoded_bytes(s, &chunk, ds.element_size))
                .sum();
            let out_bytes =
                (batches * BATCH) as u64 * CROP.iter().product::<u64>() * ds.element_size as u64;
            let mut out =
                vec![0u8; BATCH * CROP.iter().product::<u64>() as usize * ds.element_size];
            let methods: [&str; 2] = ["zuring read_crops", "zarrs (rayon + shard cache)"];
            let best = take_turns(methods.len(), repeats, |m| {
                // Cold: empty caches. Warm: the context of earlier runs (index cache warm).
                let ours_run = if cache == "cold" {
                    ZarrArray::open_with(&ds.path, fresh_ctx()).unwrap()
                } else {
                    ZarrArray::open_with(&ds.path, Arc::clone(&warm_ctx)).unwrap()
                };
                let zcache = ArrayShardedReadableExtCache::new(&zarrs_array);
                let run = |starts: &Vec<u64>, out: &mut [u8]| {
                    if m == 0 {
                        ours_run.read_crops_into(starts, &CROP, out).unwrap();
                    } else {
                        let crops: Vec<Vec<u8>> = starts
                            .par_chunks(3)
                            .map(|s| {
                                let subset = ArraySubset::new_with_ranges(&[
                                    s[0]..s[0] + CROP[0],
                                    s[1]..s[1] + CROP[1],
                                    s[2]..s[2] + CROP[2],
                                ]);
                                let b: zarrs::array::ArrayBytes<'static> = zarrs_array
                                    .retrieve_array_subset_sharded_opt(&zcache, &subset, &opts)
                                    .unwrap();
                                b.into_fixed().unwrap().into_owned()
                            })
                            .collect();
                        std::hint::black_box(crops);
                    }
                };
                if cache == "cold" {
                    drop_caches();
                } else {
                    for s in &batches_starts {
                        run(s, &mut out);
                    }
                }
                let t = Instant::now();
                for s in &batches_starts {
                    run(s, &mut out);
                }
                t.elapsed().as_secs_f64()
            });
            for (method, best) in methods.iter().zip(best) {
                record(
                    Measurement {
                        bench: format!("{} crops", ds.name),
                        method: (*method).into(),
                        cache,
                        seconds: best,
                        bytes: out_bytes,
                        ops: (batches * BATCH) as u64,
                    },
                    serde_json::json!({"decoded_mib_s": decoded as f64 / 1048576.0 / best, "decode_bound_fraction": decoded as f64 / best / bound, "all_core_decode_fraction": decoded as f64 / best / together, "crop": CROP, "batch": BATCH}),
                );
            }
            // Whole-array read, the methods taking turns likewise: into a new buffer each time
            // (as `read_bytes` and `retrieve_array_subset` return), and into one buffer the
            // caller allocated once and reuses (`read_into`, `retrieve_array_subset_into`), which
            // leaves out the kernel's zeroing of a fresh buffer's pages. Warm reads use the
            // context of earlier runs, as warm crops do (and as zarrs' array and thread pool are
            // kept); the first read of a fresh context (its threads started, its files opened)
            // is a method of its own.
            let methods = [
                "zuring read",
                "zarrs retrieve_array_subset",
                "zuring read_into a reused buffer",
                "zarrs retrieve_array_subset_into a reused buffer",
                "zuring read_into a reused buffer, a fresh context's first read",
            ];
            let mut reused = vec![1u8; usize::try_from(total).unwrap()];
            let best = take_turns(methods.len(), repeats, |m| {
                let ours_run = if cache == "cold" || m == 4 {
                    ZarrArray::open_with(&ds.path, fresh_ctx()).unwrap()
                } else {
                    ZarrArray::open_with(&ds.path, Arc::clone(&warm_ctx)).unwrap()
                };
                if cache == "cold" {
                    drop_caches();
                } else {
                    zuring_benches::warm(&ds.path);
                }
                let all = Selection::all(&shape);
                let t = Instant::now();
                match m {
                    0 => {
                        std::hint::black_box(ours_run.read_bytes(&all).unwrap());
                    }
                    1 => {
                        let b: zarrs::array::ArrayBytes<'static> = zarrs_array
                            .retrieve_array_subset(&zarrs_array.subset_all())
                            .unwrap();
                        std::hint::black_box(b);
                    }
                    2 | 4 => ours_run.read_into(&all, &mut reused).unwrap(),
                    _ => zarrs_read_into(&zarrs_array, &shape, ds.element_size, &mut reused),
                }
                std::hint::black_box(&reused);
                t.elapsed().as_secs_f64()
            });
            assert!(
                reused == ours.read_bytes(&Selection::all(&shape)).unwrap(),
                "{}: a read into the reused buffer differs",
                ds.name
            );
            for (method, best) in methods.iter().zip(best) {
                record(
                    Measurement {
                        bench: format!("{} whole read", ds.name),
                        method: (*method).into(),
                        cache,
                        seconds: best,
                        bytes: total,
                        ops: 1,
                    },
                    serde_json::json!({"decode_bound_fraction": total as f64 / best / bound, "all_core_decode_fraction": total as f64 / best / together}),
                );
            }
        }
        let data = ours.read_bytes(&Selection::all(&shape)).unwrap();
        for m in whole_writes(ds.name, &ds.path, &dir.join("write-target"), &data, repeats) {
            record(m, serde_json::json!({}));
        }
        if let Some(ms) = time_step_writes(&ds.path, &dir.join("step-target"), &data, repeats) {
            for m in ms {
                record(m, serde_json::json!({}));
            }
        }
        drop(data);
        // Peak memory of one crop batch, on a fresh context (index cache bound: 64 MiB).
        if reset_peak() {
            let arr = ZarrArray::open_with(&ds.path, fresh_ctx()).unwrap();
            let starts = &crop_starts(&shape, 1, 99)[0];
            let mut out =
                vec![0u8; BATCH * CROP.iter().product::<u64>() as usize * ds.element_size];
            out.iter_mut().step_by(4096).for_each(|b| *b = 1);
            let before = current_rss();
            reset_peak();
            arr.read_crops_into(starts, &CROP, &mut out).unwrap();
            let peak = peak_rss().saturating_sub(before);
            println!(
                "{}",
                serde_json::json!({"bench": format!("{} crop batch peak memory", ds.name), "peak_extra_bytes": peak, "output_bytes": out.len(),
                    "ratio_to_output": peak as f64 / out.len() as f64, "index_cache_bound_bytes": 64u64 << 20})
            );
        }
    }
    print_table(&results, "zarrs (rayon + shard cache)");
    print_table(&results, "zarrs retrieve_array_subset");
    print_table(&results, "zarrs store_array_subset");
}
