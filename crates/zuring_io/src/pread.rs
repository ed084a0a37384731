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

/// Read a job to completion: continue short reads, retry EINTR/EAGAIN, stop at EOF.
pub(crate) fn run(mut job: Job) {
    loop {
        let (offset, len) = job.next_read();
        if len == 0 {
            return job.finish();
        }
        let start = job.filled;
        let buf = &mut job.buf.buffer_mut().as_mut_slice()[start..start + len];
        match job.file.file.read_at(buf, offset) {
            Ok(n) => {
                if job.advance(n) {
                    return job.finish();
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(err) => return job.fail(err),
        }
    }
}

/// Read a job only from the page cache, on this thread: `preadv2(RWF_NOWAIT)` returns what is
/// cached and refuses to wait for the disk. Bytes not cached (or a file opened with `O_DIRECT`,
/// or a kernel or filesystem without `RWF_NOWAIT`) fail every part as [`IoError::NotCached`];
/// short reads are continued, EINTR retried, EOF ends the job as in [`run`].
///
/// [`IoError::NotCached`]: crate::IoError::NotCached
pub(crate) fn run_cached(mut job: Job) {
    use std::os::fd::AsRawFd;
    if job.file.direct_align > 1 {
        return job.not_cached();
    }
    loop {
        let (offset, len) = job.next_read();
        if len == 0 {
            return job.finish();
        }
        let start = job.filled;
        let buf = &mut job.buf.buffer_mut().as_mut_slice()[start..start + len];
        let Ok(offset) = libc::off_t::try_from(offset) else {
            return job.not_cached();
        };
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `iov` describes `buf`, a live, writable slice of `len` bytes that nothing else
        // touches during the call; the descriptor is open (owned by `job.file`).
        let n = unsafe {
            libc::preadv2(
                job.file.file.as_raw_fd(),
                &raw const iov,
                1,
                offset,
                libc::RWF_NOWAIT,
            )
        };
        match usize::try_from(n) {
            Ok(n) => {
                if job.advance(n) {
                    return job.finish();
                }
            }
            Err(_) => {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    // Not cached (EAGAIN), or no RWF_NOWAIT here (EOPNOTSUPP, EINVAL, ENOSYS).
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                        return job.not_cached();
                    }
                    _ => return job.fail(err),
                }
            }
        }
    }
}
