//! Helpers for tests of what a forked child does: zuring_io's own, and its dependents' through
//! the `test-helpers` feature. Not part of the API.
#![allow(unsafe_code)] // fork, waitpid, kill, _exit

use std::time::Duration;

/// Fork while a thread of this process holds what `hold` takes (say, a lock: an instant of a
/// read, as when a DataLoader worker is forked while its parent reads). `hold` takes it and
/// then calls the function it is given, which returns once the fork is done. In the child,
/// `child` runs and the child leaves with `_exit` (0 when `child` returned true, 3 when it
/// returned false or panicked), running none of the parent's destructors or test harness.
/// Returns the child's exit code if it exits within `limit`, else None (it hung, and is killed).
///
/// # Panics
/// When the fork fails or the holding thread panics.
pub fn fork_while_held(
    hold: impl FnOnce(&dyn Fn()) + Send + 'static,
    child: impl FnOnce() -> bool,
    limit: Duration,
) -> Option<i32> {
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (forked_tx, forked_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        hold(&|| {
            let _ = locked_tx.send(());
            let _ = forked_rx.recv();
        });
    });
    // Held (or the holder ended without calling back: fork all the same).
    let _ = locked_rx.recv();
    // SAFETY: the child runs `child` alone and leaves with `_exit`, never returning into the
    // caller or the harness.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: `_exit` ends the child at once, as intended.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    assert!(pid > 0, "fork failed");
    let exited = wait_for(pid, limit);
    let _ = forked_tx.send(());
    holder.join().expect("the holding thread");
    exited
}

/// The exit code of `child` (a child process) if it exits within `limit`, else None: it is
/// killed and reaped.
#[must_use]
pub fn wait_for(child: libc::pid_t, limit: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + limit;
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child, with a valid status pointer.
        if unsafe { libc::waitpid(child, &raw mut status, libc::WNOHANG) } == child {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &raw mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
