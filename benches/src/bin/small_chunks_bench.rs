//! Shards of many small inner chunks, where the work per chunk (planning, reading, handing it to
//! a thread) weighs more than decoding it: zuring against zarrs on whole-array reads (time and
//! peak memory), batches of crops, and whole-array writes.
//!
//! Datasets (generated once under `--dir` by zarrs):
//! - `tiny.zarr`: uint8, 1024 x 1024 in one shard of 1 x 1 inner chunks, stored uncompressed
//!   (`[bytes]`, crc32c index): 1,048,576 index entries (a 16 MiB index) for 1 MiB of data, the
//!   conformance matrix's huge shard index (E7).
//! - `labels.zarr`: uint8, 4096 x 4096 (16 MiB), shards 1024 x 1024, inner chunks 32 x 32 (1 KiB
//!   decoded), zstd: 16,384 chunks, as segmentation masks are often stored.
//!
//! Usage: `small_chunks_bench [--dir DIR] [--repeats N]`
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use zarrs::array::{ArrayShardedReadableExt, ArrayShardedReadableExtCache, ArraySubset};
use zuring_array::{Selection, ZarrArray};
use zuring_benches::{
    can_drop_caches, current_rss, drop_caches, fresh_ctx, peak_rss, print_table, reset_peak,
    take_turns, zarrs_create, Measurement,
};

const BATCH: usize = 32;

struct Dataset {
    name: &'static str,
    meta: String,
    shape: [u64; 2],
    crop: [u64; 2],
}

fn sharded_meta(shape: u64, shard: u64, inner: u64, codecs: &str) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":[{shape},{shape}],"data_type":"uint8",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[{shard},{shard}]}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
        "codecs":[{{"name":"sharding_indexed","configuration":{{"chunk_shape":[{inner},{inner}],
          "codecs":{codecs},
          "index_codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"crc32c"}}],
          "index_location":"end"}}}}]}}"#
    )
}

fn datasets() -> Vec<Dataset> {
    let bytes = r#"[{"name":"bytes","configuration":{"endian":"little"}}]"#;
    let zstd = r#"[{"name":"bytes","configuration":{"endian":"little"}},{"name":"zstd","configuration":{"level":3,"checksum":false}}]"#;
    vec![
        Dataset {
            name: "tiny",
            meta: sharded_meta(1024, 1024, 1, bytes),
            shape: [1024, 1024],
            crop: [64, 64],
        },
        Dataset {
            name: "labels",
            meta: sharded_meta(4096, 1024, 32, zstd),
            shape: [4096, 4096],
            crop: [256, 256],
        },
    ]
}

/// Label-like values: regions of one value with noisy edges.
fn values(shape: [u64; 2]) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..shape[0] * shape[1])
        .map(|i| {
            let (y, x) = (i / shape[1], i % shape[1]);
            let region = ((y / 97) * 31 + (x / 61) * 17) % 23;
            (region as u8).wrapping_add(u8::from(rng.gen_range(0..50) == 0))
        })
        .collect()
}

fn generate(dir: &Path, ds: &Dataset, data: &[u8]) -> PathBuf {
    let path = dir.join(format!("{}.zarr", ds.name));
    let done = path.join(".generated");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&path);
        let array = zarrs_create(&path, &ds.meta);
        array
            .store_array_subset(
                &array.subset_all(),
                zarrs::array::ArrayBytes::new_flen(data),
            )
            .unwrap();
        std::fs::write(&done, b"").unwrap();
    }
    path
}

fn crop_starts(ds: &Dataset, batches: usize) -> Vec<Vec<u64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    (0..batches)
        .map(|_| {
            (0..BATCH)
                .flat_map(|_| {
                    let y = rng.gen_range(0..=ds.shape[0] - ds.crop[0]);
                    let x = rng.gen_range(0..=ds.shape[1] - ds.crop[1]);
                    [y, x]
                })
                .collect()
        })
        .collect()
}

/// The peak memory of one whole-array read beyond its output, by method `m` (0: zuring, 1:
/// zarrs), measured in a child process of its own (`--peak PATH M`): in this one, memory freed
/// by earlier runs and kept by the allocator would hide a method's peak.
fn peak_in_child(path: &Path, m: usize) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--peak".as_ref(), path.as_os_str(), m.to_string().as_ref()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The child's side of [`peak_in_child`]: read the array at `path` whole once (files in the
/// page cache), print the peak resident memory beyond the output and what was there before.
fn print_peak(path: &Path, m: usize) {
    zuring_benches::warm(path);
    let store = Arc::new(zarrs_filesystem::FilesystemStore::new(path).unwrap());
    let zarrs_array = zarrs::array::Array::open(store, "/").unwrap();
    let ours = ZarrArray::open_with(path, fresh_ctx()).unwrap();
    let all = Selection::all(ours.shape());
    let before = current_rss();
    assert!(
        reset_peak(),
        "the peak resident memory cannot be reset here"
    );
    let out: Vec<u8> = if m == 0 {
        ours.read_bytes(&all).unwrap()
    } else {
        zarrs_array
            .retrieve_array_subset(&zarrs_array.subset_all())
            .map(|b: zarrs::array::ArrayBytes<'static>| b.into_fixed().unwrap().into_owned())
            .unwrap()
    };
    let peak = peak_rss().saturating_sub(before);
    println!("{}", peak.saturating_sub(out.len() as u64));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path, m] = args.as_slice() {
        if flag == "--peak" {
            return print_peak(Path::new(path), m.parse().unwrap());
        }
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let dir = PathBuf::from(arg("--dir").map_or("target/bench-data/small-chunks", String::as_str));
    let repeats: usize = arg("--repeats").map_or(3, |r| r.parse().expect("--repeats N"));
    std::fs::create_dir_all(&dir).unwrap();
    let cold_ok = can_drop_caches();
    println!(
        "# small_chunks_bench: {} threads, best of {repeats}, cold cache {}",
        zuring_benches::cores(),
        if cold_ok {
            "by drop_caches"
        } else {
            "unavailable"
        }
    );
    let mut results = Vec::new();
    let mut record = |m: Measurement, extra: serde_json::Value| {
        m.print_json(&extra);
        results.push(m);
    };
    for ds in datasets() {
        let data = values(ds.shape);
        let path = generate(&dir, &ds, &data);
        let store = Arc::new(zarrs_filesystem::FilesystemStore::new(&path).unwrap());
        let zarrs_array = zarrs::array::Array::open(store, "/").unwrap();
        let shape = ds.shape.to_vec();
        let all = Selection::all(&shape);
        let ours = ZarrArray::open_with(&path, fresh_ctx()).unwrap();
        assert!(
            ours.read_bytes(&all).unwrap() == data,
            "{}: zuring reads what zarrs wrote",
            ds.name
        );
        let total = data.len() as u64;
        let caches: &[&'static str] = if cold_ok {
            &["warm", "cold"]
        } else {
            &["warm"]
        };
        for &cache in caches {
            // Whole-array reads into a new buffer, on a fresh context each time (empty caches);
            // warm, the peak memory beyond the output too (in a child process).
            let methods = ["zuring read", "zarrs retrieve_array_subset"];
            let best = take_turns(methods.len(), repeats, |m| {
                let ours_run = ZarrArray::open_with(&path, fresh_ctx()).unwrap();
                if cache == "cold" {
                    drop_caches();
                } else {
                    zuring_benches::warm(&path);
                }
                let t = Instant::now();
                let out: Vec<u8> = if m == 0 {
                    ours_run.read_bytes(&all).unwrap()
                } else {
                    zarrs_array
                        .retrieve_array_subset(&zarrs_array.subset_all())
                        .map(|b: zarrs::array::ArrayBytes<'static>| {
                            b.into_fixed().unwrap().into_owned()
                        })
                        .unwrap()
                };
                let seconds = t.elapsed().as_secs_f64();
                assert!(
                    out == data,
                    "{} ({}): the read differs",
                    ds.name,
                    methods[m]
                );
                seconds
            });
            for (m, (method, best)) in methods.iter().zip(best).enumerate() {
                let peak = (cache == "warm").then(|| peak_in_child(&path, m));
                record(
                    Measurement::new(
                        format!("{} whole read", ds.name),
                        method,
                        cache,
                        best,
                        (total, 1),
                    ),
                    serde_json::json!({"peak_extra_bytes": peak, "output_bytes": total}),
                );
            }
            // Batches of crops: zuring's one call per batch against zarrs' crops in parallel
            // with its shard cache (warm: both caches from earlier batches).
            let batches = crop_starts(&ds, 4);
            let crop_len = (ds.crop[0] * ds.crop[1]) as usize;
            let mut out = vec![0u8; BATCH * crop_len];
            let warm_ctx = fresh_ctx();
            let methods = ["zuring read_crops", "zarrs (rayon + shard cache)"];
            let best = take_turns(methods.len(), repeats, |m| {
                let ours_run = if cache == "cold" {
                    ZarrArray::open_with(&path, fresh_ctx()).unwrap()
                } else {
                    ZarrArray::open_with(&path, Arc::clone(&warm_ctx)).unwrap()
                };
                let zcache = ArrayShardedReadableExtCache::new(&zarrs_array);
                let run = |starts: &Vec<u64>, out: &mut [u8]| {
                    if m == 0 {
                        ours_run.read_crops_into(starts, &ds.crop, out).unwrap();
                    } else {
                        out.par_chunks_mut(crop_len)
                            .zip(starts.par_chunks(2))
                            .for_each(|(o, s)| {
                                let subset = ArraySubset::new_with_ranges(&[
                                    s[0]..s[0] + ds.crop[0],
                                    s[1]..s[1] + ds.crop[1],
                                ]);
                                let b: zarrs::array::ArrayBytes<'static> = zarrs_array
                                    .retrieve_array_subset_sharded_opt(
                                        &zcache,
                                        &subset,
                                        &zarrs::array::CodecOptions::default(),
                                    )
                                    .unwrap();
                                o.copy_from_slice(&b.into_fixed().unwrap());
                            });
                    }
                };
                if cache == "cold" {
                    drop_caches();
                } else {
                    batches.iter().for_each(|s| run(s, &mut out));
                }
                let t = Instant::now();
                for s in &batches {
                    run(s, &mut out);
                }
                let seconds = t.elapsed().as_secs_f64();
                // The last batch's crops, checked against the data.
                let starts = batches.last().unwrap();
                for (k, s) in starts.chunks(2).enumerate() {
                    for r in 0..ds.crop[0] {
                        let row = ((s[0] + r) * ds.shape[1] + s[1]) as usize;
                        let got =
                            &out[k * crop_len + (r * ds.crop[1]) as usize..][..ds.crop[1] as usize];
                        assert!(
                            got == &data[row..row + ds.crop[1] as usize],
                            "{}: crop {k} differs",
                            methods[m]
                        );
                    }
                }
                seconds
            });
            for (method, best) in methods.iter().zip(best) {
                record(
                    Measurement::new(
                        format!("{} crops", ds.name),
                        method,
                        cache,
                        best,
                        (
                            (batches.len() * BATCH * crop_len) as u64,
                            (batches.len() * BATCH) as u64,
                        ),
                    ),
                    serde_json::json!({"crop": ds.crop, "batch": BATCH}),
                );
            }
        }
        // Whole-array writes into a fresh directory each time (page cache, no fsync).
        let target = dir.join("write-target");
        let methods = ["zuring write_region", "zarrs store_array_subset"];
        let best = take_turns(methods.len(), repeats, |m| {
            let _ = std::fs::remove_dir_all(&target);
            let _ = std::process::Command::new("sync").status();
            let t = Instant::now();
            if m == 0 {
                let a = ZarrArray::create_with(&target, &ds.meta, fresh_ctx()).unwrap();
                a.write_region(&[0..ds.shape[0], 0..ds.shape[1]], &data)
                    .unwrap();
            } else {
                let a = zarrs_create(&target, &ds.meta);
                a.store_array_subset(&a.subset_all(), zarrs::array::ArrayBytes::new_flen(&data))
                    .unwrap();
            }
            let seconds = t.elapsed().as_secs_f64();
            let back = ZarrArray::open_with(&target, fresh_ctx()).unwrap();
            assert!(
                back.read_bytes(&all).unwrap() == data,
                "{}: the write differs",
                methods[m]
            );
            seconds
        });
        let _ = std::fs::remove_dir_all(&target);
        for (method, best) in methods.iter().zip(best) {
            record(
                Measurement::new(
                    format!("{} whole write", ds.name),
                    method,
                    "-",
                    best,
                    (total, 1),
                ),
                serde_json::json!({}),
            );
        }
    }
    print_table(&results, "zarrs retrieve_array_subset");
    print_table(&results, "zarrs (rayon + shard cache)");
    print_table(&results, "zarrs store_array_subset");
}
