//! The portable backend: a pool of threads doing `pread`; and the reads that may not wait
//! (`preadv2` with `RWF_NOWAIT`: only what the page cache holds).
#![allow(unsafe_code)] // preadv2

use std::os::unix::fs::FileExt;

use crossbeam_channel::Receiver;

use crate::job::Job;
use crate::workers::Workers;

/// Start `threads` pread workers.
pub(crate) fn spawn(threads: usize) -> std::io::Result<Workers> {
    Workers::spawn("pread", vec![(); threads.max(1)], |(), rx| worker(&rx))
}

fn worker(rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        run(job);
    }
}

/// What one read attempt gave.
enum Attempt {
    /// This many bytes (0: end of file).
    Read(usize),
    /// Nothing; try again (EINTR, EAGAIN).
    Retry,
    /// The bytes are not in the page cache (a read that may not wait).
    NotCached,
    /// An OS error.
    Failed(std::io::Error),
}

/// Drive `job` to its end with `read` (one attempt at filling `buf` from the file at `offset`):
/// short reads are continued, EOF ends the job.
fn drive(mut job: Job, mut read: impl FnMut(&std::fs::File, &mut [u8], u64) -> Attempt) {
    loop {
        let (offset, len) = job.next_read();
        if len == 0 {
            return job.finish();
        }
        let start = job.filled;
        let buf = &mut job.buf.buffer_mut().as_mut_slice()[start..start + len];
        match read(&job.file.file, buf, offset) {
            Attempt::Read(n) => {
                if job.advance(n) {
                    return job.finish();
                }
            }
            Attempt::Retry => {}
            Attempt::NotCached => return job.not_cached(),
            Attempt::Failed(err) => return job.fail(err),
        }
    }
}

/// Read a job to completion: continue short reads, retry EINTR/EAGAIN, stop at EOF.
pub(crate) fn run(job: Job) {
    drive(job, |file, buf, offset| match file.read_at(buf, offset) {
        Ok(n) => Attempt::Read(n),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Attempt::Retry
        }
        Err(err) => Attempt::Failed(err),
    });
}

/// Read a job only from the page cache, on this thread: `preadv2(RWF_NOWAIT)` returns what is
/// cached and refuses to wait for the disk. Bytes not cached (or a file opened with `O_DIRECT`,
/// or a kernel or filesystem without `RWF_NOWAIT`) fail every part as [`IoError::NotCached`];
/// short reads are continued, EINTR retried, EOF ends the job as in [`run`].
///
/// [`IoError::NotCached`]: crate::IoError::NotCached
pub(crate) fn run_cached(job: Job) {
    use std::os::fd::AsRawFd;
    if job.file.direct_align > 1 {
        return job.not_cached();
    }
    drive(job, |file, buf, offset| {
        let Ok(offset) = libc::off_t::try_from(offset) else {
            return Attempt::NotCached;
        };
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `iov` describes `buf`, a live, writable slice that nothing else touches during
        // the call; the descriptor is open (`file` is borrowed for the call).
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &raw const iov,
                1,
                offset,
                libc::RWF_NOWAIT,
            )
        };
        match usize::try_from(n) {
            Ok(n) => Attempt::Read(n),
            Err(_) => {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => Attempt::Retry,
                    // Not cached (EAGAIN), or no RWF_NOWAIT here (EOPNOTSUPP, EINVAL, ENOSYS).
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                        Attempt::NotCached
                    }
                    _ => Attempt::Failed(err),
                }
            }
        }
    });
}
