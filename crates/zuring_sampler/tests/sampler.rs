//! The sampler's windows, determinism, rank splits, resumption and joint crops.
#![allow(clippy::cast_possible_truncation)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use zuring_array::ZarrArray;
use zuring_sampler::{
    ArraySpec, Geometry, Lookahead, Mode, Prefetcher, RankSplit, SamplerError, Schedule,
};

/// A (time, y, x) uint32 array whose values encode their coordinates: t*10000 + y*100 + x.
fn array(dir: &std::path::Path, name: &str, shape: [u64; 3], chunk: [u64; 3]) -> Arc<ZarrArray> {
    let meta = format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":{shape:?},"data_type":"uint32",
        "chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":{chunk:?}}}}},
        "chunk_key_encoding":{{"name":"default"}},"fill_value":0,
        "codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}},{{"name":"zstd","configuration":{{"level":1,"checksum":true}}}}],
        "dimension_names":["time","y","x"]}}"#
    );
    let a = ZarrArray::create(dir.join(name), &meta).unwrap();
    let mut data = Vec::new();
    for t in 0..shape[0] {
        for y in 0..shape[1] {
            for x in 0..shape[2] {
                data.extend_from_slice(&((t * 10000 + y * 100 + x) as u32).to_ne_bytes());
            }
        }
    }
    a.write_region(&[0..shape[0], 0..shape[1], 0..shape[2]], &data)
        .unwrap();
    Arc::new(a)
}

fn spec(name: &str, array: Arc<ZarrArray>, strides: &[(&str, u64)]) -> ArraySpec {
    ArraySpec {
        name: name.into(),
        array,
        dims: vec!["time".into(), "y".into(), "x".into()],
        strides: strides.iter().map(|(d, s)| ((*d).to_owned(), *s)).collect(),
        full: vec![],
    }
}

fn crop(t: u64, y: u64, x: u64) -> BTreeMap<String, u64> {
    [
        ("time".to_owned(), t),
        ("y".to_owned(), y),
        ("x".to_owned(), x),
    ]
    .into_iter()
    .collect()
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn joint_crops_cover_the_same_window() {
    let dir = tempfile::tempdir().unwrap();
    // Satellite: 15-minute steps; NWP: hourly (stride 4 in time) on a grid half as fine in space.
    let sat = array(dir.path(), "sat", [48, 40, 40], [4, 16, 16]);
    let nwp = array(dir.path(), "nwp", [12, 20, 20], [2, 10, 10]);
    let g = Geometry::new(
        vec![
            spec("sat", sat, &[]),
            spec("nwp", nwp, &[("time", 4), ("y", 2), ("x", 2)]),
        ],
        &crop(8, 8, 8),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(g.step, vec![4, 2, 2]);
    assert_eq!(g.crop_shape(1), vec![2, 4, 4]);
    let s = Schedule::new(
        g,
        Mode::Random {
            samples_per_epoch: Some(40),
        },
        7,
        0,
        0,
        1,
    )
    .unwrap();
    let p = Prefetcher::start(s, 8, 0, 1, Lookahead::new(2), true);
    let mut batches = 0;
    while let Some(batch) = p.next() {
        let batch = batch.unwrap();
        batches += 1;
        assert_eq!(batch.arrays[0].0, vec![8, 8, 8, 8]);
        assert_eq!(batch.arrays[1].0, vec![8, 2, 4, 4]);
        let sat = u32s(&batch.arrays[0].1);
        let nwp = u32s(&batch.arrays[1].1);
        for (b, w) in batch.windows.iter().enumerate() {
            // The satellite crop starts at the window; the NWP crop at the window / strides.
            assert_eq!(sat[b * 512], (w[0] * 10000 + w[1] * 100 + w[2]) as u32);
            assert_eq!(
                nwp[b * 32],
                (w[0] / 4 * 10000 + w[1] / 2 * 100 + w[2] / 2) as u32
            );
            // Last element of each crop.
            assert_eq!(
                sat[b * 512 + 511],
                ((w[0] + 7) * 10000 + (w[1] + 7) * 100 + w[2] + 7) as u32
            );
            assert_eq!(
                nwp[b * 32 + 31],
                ((w[0] / 4 + 1) * 10000 + (w[1] / 2 + 3) * 100 + w[2] / 2 + 3) as u32
            );
        }
        for (a, (_, buf)) in batch.arrays.into_iter().enumerate() {
            p.pools()[a].give_back(buf);
        }
    }
    assert_eq!(batches, 5);
}

#[test]
fn ranks_drop_or_pad_the_remainder() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [10, 30, 30], [5, 10, 10]);
    let g = Geometry::new(vec![spec("a", a, &[])], &crop(2, 5, 5), &BTreeMap::new()).unwrap();
    let shares = |mode: &Mode, world: u64, split| -> Vec<Vec<Vec<u64>>> {
        (0..world)
            .map(|rank| {
                let s = Schedule::with_split(g.clone(), mode.clone(), 4, 1, rank, world, split)
                    .unwrap();
                (0..s.len().unwrap())
                    .map(|i| s.window(i).unwrap())
                    .collect()
            })
            .collect()
    };
    for mode in [
        Mode::Grid {
            stride: vec![2, 5, 5],
        },
        Mode::Ordered {
            stride: vec![2, 5, 5],
            dim: 0,
        },
    ] {
        // 180 cells over 7 ranks: 25 each and 5 left out, or 26 each with the epoch's first 2
        // cells visited twice.
        let epoch: Vec<Vec<u64>> = shares(&mode, 1, RankSplit::Drop).remove(0);
        assert_eq!(epoch.len(), 180);
        let dropped = shares(&mode, 7, RankSplit::Drop);
        assert!(dropped.iter().all(|r| r.len() == 25));
        let seen: HashSet<_> = dropped.iter().flatten().collect();
        assert_eq!(seen.len(), 175, "disjoint");
        let padded = shares(&mode, 7, RankSplit::Pad);
        assert!(padded.iter().all(|r| r.len() == 26));
        let seen: HashSet<_> = padded.iter().flatten().collect();
        assert_eq!(seen.len(), 180, "every window visited");
        // Rank r's i-th window is the epoch's (i * 7 + r)-th, wrapping to its start.
        for (r, share) in padded.iter().enumerate() {
            for (i, w) in share.iter().enumerate() {
                assert_eq!(*w, epoch[(i * 7 + r) % 180], "rank {r} window {i}");
            }
        }
        assert_eq!(padded[5][25], epoch[0]);
        assert_eq!(padded[6][25], epoch[1]);
        // An even split is the same either way.
        assert_eq!(
            shares(&mode, 6, RankSplit::Pad),
            shares(&mode, 6, RankSplit::Drop)
        );
    }
    // Random with 10 windows per epoch over 3 ranks: 3 each, or 4 each, ranks 1 and 2 ending
    // with the epoch's first two windows again (global windows 10 and 11 wrap to 0 and 1).
    let random = Mode::Random {
        samples_per_epoch: Some(10),
    };
    let epoch = shares(&random, 1, RankSplit::Drop).remove(0);
    let dropped = shares(&random, 3, RankSplit::Drop);
    assert!(dropped.iter().all(|r| r.len() == 3));
    let padded = shares(&random, 3, RankSplit::Pad);
    assert!(padded.iter().all(|r| r.len() == 4));
    assert_eq!(padded[0][3], epoch[9]);
    assert_eq!(padded[1][3], epoch[0]);
    assert_eq!(padded[2][3], epoch[1]);
    assert_eq!(padded[1][..3], dropped[1][..]);
}

#[test]
fn deterministic_disjoint_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [10, 30, 30], [5, 10, 10]);
    let g = Geometry::new(vec![spec("a", a, &[])], &crop(2, 5, 5), &BTreeMap::new()).unwrap();
    let grid = Mode::Grid {
        stride: vec![2, 5, 5],
    };
    let windows = |rank, world, epoch, seed| {
        let s = Schedule::new(g.clone(), grid.clone(), seed, epoch, rank, world).unwrap();
        (0..s.len().unwrap())
            .map(|i| s.window(i).unwrap())
            .collect::<Vec<_>>()
    };
    let all = windows(0, 1, 0, 1);
    assert_eq!(all.len(), 5 * 6 * 6, "every grid cell once");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    assert_eq!(windows(0, 1, 0, 1), all, "same seed and epoch: same order");
    assert_ne!(windows(0, 1, 1, 1), all, "another epoch: another order");
    let r0 = windows(0, 3, 0, 1);
    let r1 = windows(1, 3, 0, 1);
    let r2 = windows(2, 3, 0, 1);
    assert_eq!(r0.len(), 60);
    let union: HashSet<_> = r0.iter().chain(&r1).chain(&r2).collect();
    assert_eq!(union.len(), 180, "ranks are disjoint and cover the epoch");
    // Resuming at batch 3 gives exactly batches 3.. of an uninterrupted run.
    let s = Schedule::new(g.clone(), grid.clone(), 1, 0, 0, 1).unwrap();
    let full: Vec<_> = {
        let p = Prefetcher::start(s.clone(), 16, 0, 1, Lookahead::new(2), false);
        std::iter::from_fn(|| p.next())
            .map(|b| b.unwrap().windows)
            .collect()
    };
    let resumed: Vec<_> = {
        let p = Prefetcher::start(s.clone(), 16, 3, 1, Lookahead::new(2), false);
        std::iter::from_fn(|| p.next())
            .map(|b| b.unwrap().windows)
            .collect()
    };
    assert_eq!(resumed, full[3..]);
    // Three workers sharing the schedule (batches w, w + 3, ...): their batches, interleaved
    // again, are the uninterrupted run's, the short last batch included.
    let shares: Vec<Vec<_>> = (0..3)
        .map(|w| {
            let p = Prefetcher::start(s.clone(), 16, w, 3, Lookahead::new(2), false);
            std::iter::from_fn(|| p.next())
                .map(|b| b.unwrap().windows)
                .collect()
        })
        .collect();
    let interleaved: Vec<_> = (0..full.len())
        .map(|b| shares[b % 3][b / 3].clone())
        .collect();
    assert_eq!(shares.iter().map(Vec::len).sum::<usize>(), full.len());
    assert_eq!(interleaved, full);
    assert_eq!(
        full.len(),
        180usize.div_ceil(16),
        "drop_last off keeps the short batch"
    );
    // Random mode: positions on the step grid inside bounds, reproducible.
    let r = Schedule::new(
        g.clone(),
        Mode::Random {
            samples_per_epoch: None,
        },
        3,
        2,
        1,
        2,
    )
    .unwrap();
    assert_eq!(r.len(), None);
    for i in 0..500 {
        let w = r.window(i).unwrap();
        assert!(w[0] <= 8 && w[1] <= 25 && w[2] <= 25, "{w:?}");
        assert_eq!(w, r.window(i).unwrap());
    }
    // Ordered: time is walked in order.
    let o = Schedule::new(
        g,
        Mode::Ordered {
            stride: vec![1, 25, 25],
            dim: 0,
        },
        0,
        0,
        0,
        1,
    )
    .unwrap();
    let times: Vec<u64> = (0..o.len().unwrap())
        .map(|i| o.window(i).unwrap()[0])
        .collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]), "{times:?}");
    assert_eq!(times.len(), 9 * 2 * 2);
}

#[test]
fn construction_errors_name_array_and_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [10, 30, 30], [5, 10, 10]);
    let b = array(dir.path(), "b", [3, 15, 15], [3, 5, 5]);
    let err = |arrays: Vec<ArraySpec>, c| {
        Geometry::new(arrays, &c, &BTreeMap::new())
            .unwrap_err()
            .to_string()
    };
    assert!(err(vec![spec("a", a.clone(), &[])], crop(2, 31, 5))
        .contains("array \"a\": crop 31 along \"y\" is larger than the array (30)"));
    assert!(
        err(vec![spec("a", a.clone(), &[("depth", 2)])], crop(2, 5, 5))
            .contains("array \"a\" has no dimension \"depth\"")
    );
    let mut c = crop(2, 5, 5);
    c.insert("band".into(), 3);
    assert!(err(vec![spec("a", a.clone(), &[])], c).contains("\"band\""));
    assert!(err(
        vec![spec("a", a.clone(), &[]), spec("b", b, &[("time", 4)])],
        crop(2, 5, 5)
    )
    .contains("array \"b\": crop 2 along \"time\" is not a multiple of its stride 4"));
    let region: BTreeMap<String, (u64, u64)> =
        [("time".to_owned(), (3u64, 4u64))].into_iter().collect();
    assert!(
        Geometry::new(vec![spec("a", a, &[])], &crop(2, 5, 5), &region)
            .unwrap_err()
            .to_string()
            .contains("smaller than the crop")
    );
}

#[test]
fn a_corrupt_chunk_fails_one_batch_and_the_sampler_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [4, 20, 20], [4, 10, 10]);
    let chunk = dir.path().join("a/c/0/0/0");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&chunk, bytes).unwrap();
    let g = Geometry::new(vec![spec("a", a, &[])], &crop(4, 10, 10), &BTreeMap::new()).unwrap();
    // Ordered grid: batch 0 is the corrupt chunk's window, batch 1 another chunk.
    let s = Schedule::new(
        g,
        Mode::Ordered {
            stride: vec![4, 10, 10],
            dim: 1,
        },
        0,
        0,
        0,
        1,
    )
    .unwrap();
    let p = Prefetcher::start(s, 1, 0, 1, Lookahead::new(2), false);
    let first = p.next().unwrap().unwrap_err();
    assert!(matches!(first, SamplerError::Read { .. }), "{first}");
    let text = first.to_string();
    assert!(
        text.contains("array \"a\"") && text.contains("c/0/0/0"),
        "{text}"
    );
    let second = p.next().unwrap().unwrap();
    assert_eq!(second.index, 1);
    assert_eq!(std::iter::from_fn(|| p.next()).count(), 2);
}

#[test]
fn a_failing_array_of_a_joint_batch_is_named_and_the_others_go_on() {
    // Two arrays read at once for each batch: a failure in either names that array (the first
    // in the arrays' order when both fail), and the following batches are whole and right.
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [4, 20, 20], [4, 10, 10]);
    let b = array(dir.path(), "b", [4, 20, 20], [4, 10, 10]);
    let corrupt = |name: &str| {
        let chunk = dir.path().join(name).join("c/0/0/0");
        let mut bytes = std::fs::read(&chunk).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&chunk, bytes).unwrap();
    };
    let run = |expect: &str| {
        let g = Geometry::new(
            vec![
                spec("a", Arc::clone(&a), &[]),
                spec("b", Arc::clone(&b), &[]),
            ],
            &crop(4, 10, 10),
            &BTreeMap::new(),
        )
        .unwrap();
        let mode = Mode::Ordered {
            stride: vec![4, 10, 10],
            dim: 1,
        };
        let s = Schedule::new(g, mode, 0, 0, 0, 1).unwrap();
        let p = Prefetcher::start(s, 1, 0, 1, Lookahead::new(2), false);
        let text = p.next().unwrap().unwrap_err().to_string();
        assert!(
            text.contains(&format!("array \"{expect}\"")) && text.contains("c/0/0/0"),
            "{text}"
        );
        let rest: Vec<_> = std::iter::from_fn(|| p.next())
            .map(Result::unwrap)
            .collect();
        assert_eq!(rest.len(), 3);
        for batch in rest {
            let w = &batch.windows[0];
            let expected: Vec<u32> = (0..4)
                .flat_map(|t| (0..10).flat_map(move |y| (0..10).map(move |x| (t, y, x))))
                .map(|(t, y, x)| ((w[0] + t) * 10000 + (w[1] + y) * 100 + (w[2] + x)) as u32)
                .collect();
            assert_eq!(batch.arrays.len(), 2);
            for (shape, bytes) in &batch.arrays {
                assert_eq!(shape, &[1, 4, 10, 10]);
                assert_eq!(u32s(bytes), expected, "window {w:?}");
            }
        }
    };
    corrupt("b");
    run("b");
    corrupt("a");
    run("a");
}

#[test]
fn batches_read_at_once_arrive_in_order_and_stop_when_dropped() {
    // Several batches are read at once: whatever order their reads finish in, they come out in
    // the schedule's order, each with its own windows' values, short last batch included or
    // dropped; a prefetcher dropped mid-epoch (its readers blocked on a full channel or waiting
    // for their turn) stops.
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [10, 30, 30], [5, 10, 10]);
    let g = Geometry::new(
        vec![spec("a", Arc::clone(&a), &[])],
        &crop(2, 5, 5),
        &BTreeMap::new(),
    )
    .unwrap();
    let grid = Mode::Grid {
        stride: vec![2, 5, 5],
    };
    let s = Schedule::new(g, grid, 7, 0, 0, 1).unwrap();
    let n = s.len().unwrap();
    // (depth, readers asked for, readers expected): the default one, and a chosen number
    // clamped to 1..=depth.
    let la = |depth, readers| Lookahead { depth, readers };
    let aheads = [
        (Lookahead::new(1), 1),
        (Lookahead::new(5), 1),
        (la(2, 2), 2),
        (la(5, 2), 2),
        (la(5, 4), 4),
        (la(3, 9), 3),
        (la(0, 0), 1),
    ];
    for (ahead, readers) in aheads {
        for drop_last in [false, true] {
            let p = Prefetcher::start(s.clone(), 7, 0, 1, ahead, drop_last);
            assert_eq!(p.readers(), readers, "{ahead:?}");
            let batches: Vec<_> = std::iter::from_fn(|| p.next())
                .map(Result::unwrap)
                .collect();
            let expected = if drop_last { n / 7 } else { n.div_ceil(7) };
            assert_eq!(batches.len() as u64, expected, "{ahead:?}");
            for (i, batch) in batches.iter().enumerate() {
                assert_eq!(batch.index, i as u64);
                let windows: Vec<_> = (i as u64 * 7..(i as u64 * 7 + 7).min(n))
                    .map(|w| s.window(w).unwrap())
                    .collect();
                assert_eq!(batch.windows, windows);
                let values = u32s(&batch.arrays[0].1);
                for (j, w) in windows.iter().enumerate() {
                    // The crop's first element encodes its window's start.
                    let first = values[j * 2 * 5 * 5];
                    assert_eq!(first, (w[0] * 10000 + w[1] * 100 + w[2]) as u32);
                }
            }
            assert!(p.next().is_none(), "stays ended");
        }
        for taken in [0, 1, 3] {
            let p = Prefetcher::start(s.clone(), 1, 0, 1, ahead, false);
            for i in 0..taken {
                assert_eq!(p.next().unwrap().unwrap().index, i);
            }
            // Let the readers fill the channel and wait for their turns, then drop.
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(p);
        }
    }
}

#[test]
fn a_forked_child_neither_reads_nor_joins_its_parents_prefetcher() {
    // A process forked while a prefetcher runs (a DataLoader's workers forked after the main
    // process iterated a sampler) has none of its reader threads: its `next` says so at once
    // instead of waiting forever, dropping it there leaves the parent's threads alone (joining
    // them panicked), and a prefetcher the child starts reads.
    let dir = tempfile::tempdir().unwrap();
    let a = array(dir.path(), "a", [8, 32, 32], [2, 16, 16]);
    let g = Geometry::new(vec![spec("a", a, &[])], &crop(2, 8, 8), &BTreeMap::new()).unwrap();
    let random = Mode::Random {
        samples_per_epoch: None,
    };
    let s = Schedule::new(g, random, 1, 0, 0, 1).unwrap();
    let p = Prefetcher::start(s.clone(), 4, 0, 1, Lookahead::new(2), true);
    let first = p.next().unwrap().unwrap();
    let code = zuring_io::testing::fork_while_held(
        |forked| forked(),
        || {
            let told = matches!(p.next(), Some(Err(SamplerError::Forked)));
            let theirs = !p.in_this_process();
            drop(p);
            let mine = Prefetcher::start(s, 4, 0, 1, Lookahead::new(2), true);
            let again = mine.next().unwrap().unwrap();
            told && theirs && mine.in_this_process() && again.windows == first.windows
        },
        std::time::Duration::from_secs(30),
    );
    assert_eq!(code, Some(0));
}
