//! Helpers of the crate's unit tests.
#![allow(unsafe_code)] // waiting for and killing a forked child

use std::time::Duration;

/// The exit code of `child` (forked by the test) if it exits within `limit`, else None: it is
/// killed and reaped.
pub(crate) fn wait_for(child: libc::pid_t, limit: Duration) -> Option<i32> {
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
