//! The portable backend: a pool of threads doing `pread`.

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
