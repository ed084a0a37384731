//! A reader used before `fork` works in the child (fresh threads and rings) and in the parent.
//! Alone in its own test binary: forking while other test threads run would be unsafe.
#![allow(clippy::cast_possible_truncation)]
#![allow(unsafe_code)]

use zuring_io::{BackendKind, ByteRange, Reader, ReaderOptions};

fn fork_check(kind: BackendKind) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("data");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let reader = Reader::new(ReaderOptions {
        backend: kind,
        ..ReaderOptions::default()
    })
    .unwrap();
    assert_eq!(
        &reader
            .read(path.as_path(), ByteRange::new(10, 100))
            .unwrap()[..],
        &data[10..110]
    );

    // SAFETY: the child only reads through the reader, then leaves with `_exit`; it never returns
    // into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut ok = true;
        for i in 0..50u64 {
            let got = reader.read(path.as_path(), ByteRange::new(i * 1000, 1000));
            ok &= got
                .map(|b| b[..] == data[(i * 1000) as usize..(i * 1000 + 1000) as usize])
                .unwrap_or(false);
        }
        // SAFETY: ends the child without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    // The parent keeps working while the child runs.
    for _ in 0..50 {
        assert_eq!(
            &reader.read(path.as_path(), ByteRange::Suffix(7)).unwrap()[..],
            &data[data.len() - 7..]
        );
    }
    let mut status = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child hung: the reader deadlocked after fork"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status), "child crashed: status {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child read wrong data");
}

#[test]
fn reader_survives_fork() {
    fork_check(BackendKind::Uring);
    fork_check(BackendKind::Pread);
}
