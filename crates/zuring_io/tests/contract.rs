//! One contract, both backends: every test runs against io_uring and pread.
#![allow(clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use zuring_io::{
    BackendKind, ByteRange, CoalesceOptions, IoError, ReadRequest, Reader, ReaderOptions,
};

/// Test files live under the target directory (a real disk, where O_DIRECT works), not /tmp.
fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tempfile::tempdir_in(base).unwrap()
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

/// A backend under test, and whether a batch of one read is read on the calling thread
/// instead (`inline_single_reads`: off, so that single reads test the backend itself).
#[derive(Clone, Copy)]
struct Backend {
    kind: BackendKind,
    inline: bool,
}

impl Backend {
    fn options(self) -> ReaderOptions {
        ReaderOptions {
            backend: self.kind,
            inline_single_reads: self.inline,
            rings: 2,
            queue_depth: 8,
            pread_threads: 3,
            ..ReaderOptions::default()
        }
    }
}

fn reader(kind: Backend, direct_io: bool, coalesce: CoalesceOptions) -> Reader {
    Reader::new(ReaderOptions {
        direct_io,
        coalesce,
        ..kind.options()
    })
    .unwrap()
}

fn write_files(dir: &Path, sizes: &[usize]) -> Vec<(PathBuf, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let path = dir.join(format!("f{i}"));
            let data = pattern(i as u64, n);
            std::fs::write(&path, &data).unwrap();
            (path, data)
        })
        .collect()
}

fn random_ranges_match(kind: Backend, direct: bool, coalesce: CoalesceOptions, seed: u64) {
    let dir = scratch();
    let files = write_files(dir.path(), &[0, 1, 4095, 4096, 70_000, 300_001]);
    let r = reader(kind, direct, coalesce);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for tag in 0..400usize {
        let (path, data) = &files[rng.gen_range(0..files.len())];
        let n = data.len() as u64;
        let (range, want) = match rng.gen_range(0..5) {
            0 => (ByteRange::Whole, Some(data.clone())),
            1 => {
                let k = rng.gen_range(0..=n);
                (
                    ByteRange::Suffix(k),
                    Some(data[(n - k) as usize..].to_vec()),
                )
            }
            2 => {
                let o = rng.gen_range(0..=n);
                (ByteRange::From(o), Some(data[o as usize..].to_vec()))
            }
            3 => {
                // Possibly past EOF.
                let o = rng.gen_range(0..=n + 10);
                let l = rng.gen_range(0..=20);
                let ok = o + l <= n;
                (
                    ByteRange::new(o, l),
                    ok.then(|| data[o as usize..(o + l) as usize].to_vec()),
                )
            }
            _ => {
                let o = rng.gen_range(0..=n);
                let l = rng.gen_range(0..=n - o);
                (
                    ByteRange::new(o, l),
                    Some(data[o as usize..(o + l) as usize].to_vec()),
                )
            }
        };
        requests.push(ReadRequest::new(path.as_path(), range, tag));
        expected.push(want);
    }
    // Streamed: every tag once, with its bytes.
    let mut seen = vec![false; expected.len()];
    for c in r.submit(requests.clone()) {
        assert!(!seen[c.tag], "tag {} delivered twice", c.tag);
        seen[c.tag] = true;
        match (&expected[c.tag], c.result) {
            (Some(want), Ok(got)) => assert_eq!(&got[..], &want[..], "tag {}", c.tag),
            (None, Err(IoError::OutOfBounds { .. })) => {}
            (want, got) => panic!(
                "tag {}: expected {:?}, got {got:?}",
                c.tag,
                want.as_ref().map(Vec::len)
            ),
        }
    }
    assert!(seen.iter().all(|&s| s));
    // Ordered: same results, in request order.
    let ordered = r.read_ordered(requests);
    for (i, c) in ordered.iter().enumerate() {
        assert_eq!(c.tag, i);
        assert_eq!(c.result.as_ref().ok().map(|b| b.to_vec()), expected[i]);
    }
}

fn missing_and_bad_requests_fail_alone(kind: Backend) {
    let dir = scratch();
    let files = write_files(dir.path(), &[100]);
    let good = files[0].0.as_path();
    let missing = dir.path().join("nope");
    let r = reader(kind, false, CoalesceOptions::default());
    let out = r.read_ordered([
        ReadRequest::new(good, ByteRange::new(0, 10), 0),
        ReadRequest::new(missing.as_path(), ByteRange::new(0, 10), 1),
        ReadRequest::new(good, ByteRange::new(95, 10), 2),
        ReadRequest::new(good, ByteRange::new(u64::MAX, 10), 3),
        ReadRequest::new(dir.path(), ByteRange::Whole, 4),
        ReadRequest::new(good, ByteRange::new(90, 10), 5),
    ]);
    assert_eq!(&out[0].result.as_ref().unwrap()[..], &files[0].1[..10]);
    let err = out[1].result.as_ref().unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.path(), Some(missing.as_path()));
    match out[2].result.as_ref().unwrap_err() {
        IoError::OutOfBounds {
            range,
            file_size,
            path,
        } => {
            assert_eq!((*range, *file_size), ((95, 105), 100));
            assert_eq!(path, good);
        }
        e => panic!("{e}"),
    }
    assert!(matches!(out[3].result, Err(IoError::InvalidRange { .. })));
    assert!(matches!(out[4].result, Err(IoError::Open { .. })));
    assert_eq!(&out[5].result.as_ref().unwrap()[..], &files[0].1[90..]);
}

fn coalesced_reads_are_sliced(kind: Backend) {
    let dir = scratch();
    let files = write_files(dir.path(), &[1 << 20]);
    let (path, data) = &files[0];
    let r = reader(
        kind,
        false,
        CoalesceOptions {
            max_gap_bytes: 1 << 20,
            max_merged_bytes: 1 << 20,
        },
    );
    // 64 adjacent 16 KiB pieces, requested in reverse: one physical read, delivered per piece.
    let requests: Vec<_> = (0..64u64)
        .rev()
        .map(|i| ReadRequest::new(path.as_path(), ByteRange::new(i * 16384, 16384), i))
        .collect();
    let out = r.read_ordered(requests);
    for c in &out {
        let o = (c.tag * 16384) as usize;
        let got = c.result.as_ref().unwrap();
        assert_eq!(&got[..], &data[o..o + 16384]);
    }
    // All pieces share one buffer: the first piece's pointer + offset gives the others.
    let base = out.last().unwrap().result.as_ref().unwrap().as_ptr() as usize;
    let p5 = out[out.len() - 1 - 5].result.as_ref().unwrap().as_ptr() as usize;
    assert_eq!(
        p5 - base,
        5 * 16384,
        "pieces are zero-copy slices of one read"
    );
}

fn file_shrinking_after_open_is_out_of_bounds(kind: Backend) {
    let dir = scratch();
    let files = write_files(dir.path(), &[10_000]);
    let path = files[0].0.as_path();
    let r = Reader::new(ReaderOptions {
        revalidate_fds: false,
        ..kind.options()
    })
    .unwrap();
    assert!(r.read(path, ByteRange::new(0, 10)).is_ok());
    // Shrink in place: the cached descriptor still believes 10,000 bytes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(5000)
        .unwrap();
    let err = r.read(path, ByteRange::new(4000, 2000)).unwrap_err();
    assert!(
        matches!(
            err,
            IoError::OutOfBounds {
                range: (4000, 6000),
                file_size: 5000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        &r.read(path, ByteRange::new(4000, 1000)).unwrap()[..],
        &files[0].1[4000..5000]
    );
}

fn huge_read_is_split(kind: Backend) {
    let dir = scratch();
    let path = dir.path().join("sparse");
    let size: u64 = 2_200_000_000; // past MAX_READ_BYTES: needs two reads
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        f.write_all_at(b"tail!", size - 5).unwrap();
        f.write_all_at(b"head!", 0).unwrap();
    }
    let r = reader(kind, false, CoalesceOptions::default());
    let bytes = r.read(path.as_path(), ByteRange::Whole).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..5], b"head!");
    assert_eq!(&bytes[bytes.len() - 5..], b"tail!");
    assert!(bytes[5..1 << 20].iter().all(|&b| b == 0));
}

fn writes_invalidate_cache(kind: Backend) {
    let dir = scratch();
    let path = dir.path().join("w/x.bin");
    let r = reader(kind, false, CoalesceOptions::default());
    r.write_atomic(&path, b"version one", false).unwrap();
    assert_eq!(
        &r.read(path.as_path(), ByteRange::Whole).unwrap()[..],
        b"version one"
    );
    r.write_atomic(&path, b"v2", true).unwrap();
    assert_eq!(
        &r.read(path.as_path(), ByteRange::Whole).unwrap()[..],
        b"v2"
    );
    r.remove(&path).unwrap();
    assert!(r
        .read(path.as_path(), ByteRange::Whole)
        .unwrap_err()
        .is_not_found());
}

fn results_stream_with_try_next(kind: Backend) {
    let dir = scratch();
    let files = write_files(dir.path(), &[50_000; 4]);
    let r = reader(kind, false, CoalesceOptions::disabled());
    let paths: Vec<Arc<Path>> = files.iter().map(|(p, _)| Arc::from(p.as_path())).collect();
    let mut stream = r.submit(
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| ReadRequest::new(Arc::clone(p), ByteRange::Whole, i)),
    );
    let mut got = 0;
    while stream.remaining() > 0 {
        if let Some((i, c)) = stream.next_timeout(std::time::Duration::from_secs(10)) {
            assert_eq!(i, c.tag);
            assert_eq!(&c.result.unwrap()[..], &files[i].1[..]);
            got += 1;
        }
    }
    assert_eq!(got, 4);
    assert!(stream.try_next().is_none());
}

macro_rules! contract {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn random_ranges_buffered() {
                for seed in 0..3 {
                    random_ranges_match($kind, false, CoalesceOptions::default(), seed);
                }
            }

            #[test]
            fn random_ranges_direct_io() {
                for seed in 3..6 {
                    random_ranges_match($kind, true, CoalesceOptions::default(), seed);
                }
            }

            #[test]
            fn random_ranges_uncoalesced() {
                random_ranges_match($kind, false, CoalesceOptions::disabled(), 9);
                random_ranges_match($kind, true, CoalesceOptions::disabled(), 10);
            }

            #[test]
            fn missing_and_bad_requests() {
                missing_and_bad_requests_fail_alone($kind);
            }

            #[test]
            fn coalesced_slices() {
                coalesced_reads_are_sliced($kind);
            }

            #[test]
            fn shrinking_file() {
                file_shrinking_after_open_is_out_of_bounds($kind);
            }

            #[test]
            fn huge_read() {
                huge_read_is_split($kind);
            }

            #[test]
            fn writes() {
                writes_invalidate_cache($kind);
            }

            #[test]
            fn streaming() {
                results_stream_with_try_next($kind);
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(24))]
                #[test]
                fn prop_every_byte_correct(
                    sizes in prop::collection::vec(0usize..200_000, 1..5),
                    picks in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<u64>()), 1..80),
                    gap in 0u64..70_000,
                    merged in 0u64..300_000,
                    direct in any::<bool>(),
                ) {
                    let dir = scratch();
                    let files = write_files(dir.path(), &sizes);
                    let r = reader($kind, direct, CoalesceOptions { max_gap_bytes: gap, max_merged_bytes: merged });
                    let mut requests = Vec::new();
                    let mut want = Vec::new();
                    for (tag, (fi, a, b)) in picks.iter().enumerate() {
                        let (path, data) = &files[fi.index(files.len())];
                        let n = data.len() as u64;
                        let o = a % (n + 1);
                        let l = b % (n - o + 1);
                        requests.push(ReadRequest::new(path.as_path(), ByteRange::new(o, l), tag));
                        want.push(data[o as usize..(o + l) as usize].to_vec());
                    }
                    let mut count = 0;
                    for c in r.fetch(requests) {
                        prop_assert_eq!(&c.result.unwrap()[..], &want[c.tag][..]);
                        count += 1;
                    }
                    prop_assert_eq!(count, want.len());
                }
            }
        }
    };
}

contract!(
    uring,
    Backend {
        kind: BackendKind::Uring,
        inline: false
    }
);
contract!(
    pread,
    Backend {
        kind: BackendKind::Pread,
        inline: false
    }
);
// `fetch` and the blocking calls read a batch of one read on the calling thread (the default),
// batches of more (and everything `submit` starts) through io_uring.
contract!(
    inline,
    Backend {
        kind: BackendKind::Uring,
        inline: true
    }
);

#[test]
fn env_and_parse() {
    assert_eq!(
        BackendKind::parse("x", "io_uring").unwrap(),
        BackendKind::Uring
    );
    assert_eq!(
        BackendKind::parse("x", "PREAD").unwrap(),
        BackendKind::Pread
    );
    assert!(matches!(
        BackendKind::parse("x", "aio"),
        Err(IoError::InvalidConfig { .. })
    ));
    let backend = |kind| Backend {
        kind,
        inline: false,
    };
    let r = reader(
        backend(BackendKind::Pread),
        false,
        CoalesceOptions::default(),
    );
    assert_eq!(r.backend_name().unwrap(), "pread");
    let r = reader(
        backend(BackendKind::Uring),
        false,
        CoalesceOptions::default(),
    );
    assert_eq!(r.backend_name().unwrap(), "uring");
}

/// An io_uring reader that reads a batch of one on the calling thread, without coalescing, with
/// or without O_DIRECT: the reader of the page-cache-only reads' tests.
fn inline_uring(direct_io: bool) -> Reader {
    reader(
        Backend {
            kind: BackendKind::Uring,
            inline: true,
        },
        direct_io,
        CoalesceOptions::disabled(),
    )
}

/// Drop `path`'s pages from the page cache (clean pages: the file was synced).
#[allow(unsafe_code)]
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: posix_fadvise reads only its integer arguments; the descriptor is open.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

#[test]
fn fetch_cached_reads_only_what_the_page_cache_holds() {
    let dir = scratch();
    let files = write_files(dir.path(), &[300_000, 50_000, 20_000]);
    for (path, _) in &files {
        std::fs::File::open(path).unwrap().sync_all().unwrap();
        evict(path);
    }
    let r = inline_uring(false);
    let requests = |ranges: &[(usize, u64, u64)]| {
        ranges
            .iter()
            .enumerate()
            .map(|(tag, &(f, o, l))| {
                ReadRequest::new(files[f].0.as_path(), ByteRange::new(o, l), tag)
            })
            .collect::<Vec<_>>()
    };
    // Nothing cached: every request fails as not cached, naming its file and range (the kernel
    // may start reading the pages in, without waiting for them).
    let cold = r.fetch_cached(requests(&[(0, 1000, 5000), (1, 0, 50_000)]));
    for c in cold {
        match c.result {
            Err(IoError::NotCached { path, range }) => {
                assert_eq!(path, files[c.tag].0);
                assert_eq!(range, [(1000, 6000), (0, 50_000)][c.tag]);
            }
            other => panic!("tag {}: expected NotCached, got {other:?}", c.tag),
        }
    }
    // Read through the cache: now served from it, byte for byte.
    assert_eq!(
        r.read(files[0].0.as_path(), ByteRange::Whole)
            .unwrap()
            .len(),
        300_000
    );
    let warm: Vec<_> = r
        .fetch_cached(requests(&[(0, 1000, 5000), (0, 250_000, 50_000)]))
        .collect();
    assert_eq!(warm.len(), 2);
    for c in warm {
        let (o, l) = [(1000, 5000), (250_000, 50_000)][c.tag];
        assert_eq!(
            &c.result.unwrap()[..],
            &files[0].1[o..o + l],
            "tag {}",
            c.tag
        );
    }
    // A file never read is still not cached; a range past the end is out of bounds as usual.
    let mixed: Vec<_> = r
        .fetch_cached(requests(&[(2, 0, 10), (0, 299_990, 20)]))
        .collect();
    for c in mixed {
        match (c.tag, c.result) {
            (0, Err(IoError::NotCached { .. })) | (1, Err(IoError::OutOfBounds { .. })) => {}
            (tag, other) => panic!("tag {tag}: {other:?}"),
        }
    }
    // With O_DIRECT nothing counts as cached.
    let direct = inline_uring(true);
    let c = direct
        .fetch_cached(requests(&[(0, 0, 4096)]))
        .next()
        .unwrap();
    assert!(
        matches!(&c.result, Err(e) if e.is_not_cached()),
        "{:?}",
        c.result
    );
    // A path the kernel's directory entry cache has never seen: opening it would read the
    // directory from disk, so the read declines instead of waiting (openat2 RESOLVE_CACHED;
    // kernels before 5.12 open as usual and answer NotFound). Once looked up, the cache holds
    // its (negative) entry and the read answers NotFound without the disk.
    let unseen = dir.path().join("never-looked-up.bin");
    let read_unseen = || {
        r.fetch_cached(vec![ReadRequest::new(
            unseen.as_path(),
            ByteRange::Whole,
            0,
        )])
        .next()
        .unwrap()
        .result
    };
    match read_unseen() {
        Err(IoError::PathNotCached { path }) => assert_eq!(path, unseen),
        Err(IoError::NotFound { .. }) if !kernel_at_least(5, 12) => {}
        other => panic!("expected PathNotCached, got {other:?}"),
    }
    assert!(std::fs::metadata(&unseen).is_err());
    assert!(
        matches!(read_unseen(), Err(IoError::NotFound { .. })),
        "after a lookup"
    );
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

#[test]
fn read_now_reads_only_what_needs_no_wait_for_the_disk() {
    let dir = scratch();
    let files = write_files(dir.path(), &[300_000, 50_000, 20_000]);
    for (path, _) in &files {
        std::fs::File::open(path).unwrap().sync_all().unwrap();
    }
    let r = inline_uring(false);
    let request =
        |f: usize, range: ByteRange, tag: u32| ReadRequest::new(files[f].0.as_path(), range, tag);
    let bytes = |result: zuring_io::Result<bytes::Bytes>| result.unwrap().to_vec();
    // Never opened by the reader, its pages not cached: handed back as it was.
    evict(&files[2].0);
    let back = r
        .read_now(request(2, ByteRange::new(10, 20), 7))
        .unwrap_err();
    assert_eq!(
        (&*back.path, back.range, back.tag),
        (files[2].0.as_path(), ByteRange::new(10, 20), 7)
    );
    // Never opened by the reader, its bytes cached (just written): opened from the directory
    // entry cache and read now, byte for byte; a suffix and an empty range too; a range past
    // the end is out of bounds, as in a batch.
    let done = r.read_now(request(0, ByteRange::new(10, 20), 2)).unwrap();
    assert_eq!(done.tag, 2);
    assert_eq!(bytes(done.result), files[0].1[10..30]);
    let done = r
        .read_now(request(0, ByteRange::new(1000, 200_000), 3))
        .unwrap();
    assert_eq!(done.tag, 3);
    assert_eq!(bytes(done.result), files[0].1[1000..201_000]);
    let done = r.read_now(request(0, ByteRange::Suffix(4096), 4)).unwrap();
    assert_eq!(bytes(done.result), files[0].1[300_000 - 4096..]);
    assert!(bytes(
        r.read_now(request(0, ByteRange::new(5, 0), 5))
            .unwrap()
            .result
    )
    .is_empty());
    match r
        .read_now(request(0, ByteRange::new(299_990, 20), 6))
        .unwrap()
        .result
    {
        Err(IoError::OutOfBounds {
            path,
            range,
            file_size,
        }) => {
            assert_eq!(
                (path, range, file_size),
                (files[0].0.clone(), (299_990, 300_010), 300_000)
            );
        }
        other => panic!("expected OutOfBounds, got {other:?}"),
    }
    // Pages not in the cache: handed back (the reader does not wait for the disk).
    evict(&files[0].0);
    let back = r
        .read_now(request(0, ByteRange::new(100_000, 1000), 8))
        .unwrap_err();
    assert_eq!(back.tag, 8);
    // Pinned to an open file: read from that version, even after the path is replaced; the
    // path's cached descriptor is stale then, so an unpinned request reads the new file.
    let pinned = r
        .open_files(&[Arc::clone(&request(1, ByteRange::Whole, 0).path)])
        .pop()
        .unwrap()
        .unwrap();
    zuring_io::write_atomic(&files[1].0, b"a new, shorter file", false).unwrap();
    let done = r
        .read_now(ReadRequest::pinned(&pinned, ByteRange::new(0, 50_000), 9))
        .unwrap();
    assert_eq!(bytes(done.result), files[1].1);
    assert_eq!(
        bytes(r.read_now(request(1, ByteRange::Whole, 10)).unwrap().result),
        b"a new, shorter file"
    );
    assert_eq!(
        bytes(r.read(files[1].0.as_path(), ByteRange::Whole)),
        b"a new, shorter file"
    );
    // A removed file's cached descriptor is not used: the read completes as missing, as a
    // batch's would; so does a path that never named a file, once looked up (its absence is
    // then in the directory entry cache; before, the request may be handed back).
    std::fs::remove_file(&files[1].0).unwrap();
    let done = r.read_now(request(1, ByteRange::Whole, 12)).unwrap();
    assert_eq!(done.tag, 12);
    assert!(matches!(done.result, Err(IoError::NotFound { path }) if path == files[1].0));
    let never = dir.path().join("never-written");
    assert!(std::fs::metadata(&never).is_err());
    let done = r
        .read_now(ReadRequest::new(never.as_path(), ByteRange::Whole, 14))
        .unwrap();
    assert_eq!(done.tag, 14);
    assert!(matches!(done.result, Err(IoError::NotFound { path }) if path == never));
    assert!(r
        .read(never.as_path(), ByteRange::Whole)
        .unwrap_err()
        .is_not_found());
    // With O_DIRECT nothing is read now.
    let direct = inline_uring(true);
    assert_eq!(
        direct
            .read(files[0].0.as_path(), ByteRange::new(0, 4096))
            .unwrap()
            .len(),
        4096
    );
    assert_eq!(
        direct
            .read_now(request(0, ByteRange::new(0, 4096), 13))
            .unwrap_err()
            .tag,
        13
    );
}
