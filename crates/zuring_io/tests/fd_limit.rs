//! A batch over more files than the process may open at once (`RLIMIT_NOFILE`) still reads every
//! file: the reader opens later files as the reads of earlier ones finish. Alone in its own test
//! binary: it lowers the process's descriptor limit.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use zuring_io::{BackendKind, ByteRange, ReadRequest, Reader, ReaderOptions};

/// Lower the soft `RLIMIT_NOFILE` to `soft`.
fn limit_descriptors(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit struct.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0);
    limit.rlim_cur = soft.min(limit.rlim_max);
    // SAFETY: `limit` is a valid rlimit struct with rlim_cur <= rlim_max.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0);
}

#[test]
fn batches_over_more_files_than_the_descriptor_limit() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let paths: Vec<Arc<Path>> = (0..600u32)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, i.to_le_bytes().repeat(64)).unwrap();
            Arc::from(path.as_path())
        })
        .collect();
    // Test harness threads, stdio and the rings hold some descriptors too.
    limit_descriptors(128);
    for kind in [BackendKind::Uring, BackendKind::Pread] {
        // The default options take the cache size (and the reads' descriptor budget) from the
        // lowered limit: 32.
        let reader = Reader::new(ReaderOptions {
            backend: kind,
            ..ReaderOptions::default()
        })
        .unwrap();
        assert!(reader.options().fd_cache_capacity <= 32);
        // Twice over: cold descriptors (opened), then cached ones (checked).
        for _ in 0..2 {
            let out = reader.read_ordered(paths.iter().enumerate().map(|(i, p)| {
                ReadRequest::new(Arc::clone(p), ByteRange::new(4 * (i as u64 % 64), 4), i)
            }));
            assert_eq!(out.len(), paths.len());
            for c in out {
                let bytes = c.result.unwrap_or_else(|e| panic!("file {}: {e}", c.tag));
                assert_eq!(&bytes[..], &u32::try_from(c.tag).unwrap().to_le_bytes());
            }
        }
        // Pinned handles are the caller's: a batch of them within the limit works too.
        let pinned: Vec<_> = reader
            .open_files(&paths[..16])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let out = reader.read_ordered(
            pinned
                .iter()
                .enumerate()
                .map(|(i, f)| ReadRequest::pinned(f, ByteRange::new(0, 4), i)),
        );
        for c in out {
            assert_eq!(
                &c.result.unwrap()[..],
                &u32::try_from(c.tag).unwrap().to_le_bytes()
            );
        }
    }
}
