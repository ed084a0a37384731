//! The io_uring backend: worker threads that each own a ring and keep it full.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use crossbeam_channel::{Receiver, TryRecvError};
use io_uring::{opcode, types, IoUring};

use crate::job::Job;
use crate::workers::Workers;

/// How the rings are set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingConfig {
    pub rings: usize,
    pub queue_depth: u32,
    pub sqpoll: bool,
}

fn build_ring(config: RingConfig) -> std::io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if config.sqpoll {
        builder.setup_sqpoll(2000);
    }
    builder.build(config.queue_depth.max(1))
}

/// Set up `config.rings` rings (failing if io_uring is unavailable) and start a thread per ring.
pub(crate) fn spawn(config: RingConfig) -> std::io::Result<Workers> {
    let rings = (0..config.rings.max(1))
        .map(|_| build_ring(config))
        .collect::<std::io::Result<Vec<_>>>()?;
    probe(&rings[0])?;
    let depth = config.queue_depth.max(1) as usize;
    Workers::spawn(
        "uring",
        rings.into_iter().map(|r| (r, depth)).collect(),
        |(ring, depth), rx| worker(ring, depth, &rx),
    )
}

/// Check that the kernel accepts a read on this ring (seccomp or `io_uring_disabled` may allow
/// ring creation yet refuse operations).
fn probe(ring: &IoUring) -> std::io::Result<()> {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if probe.is_supported(opcode::Read::CODE) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "io_uring does not support IORING_OP_READ on this kernel",
        ))
    }
}

/// Jobs in flight, indexed by the SQE's user data.
struct Slots {
    jobs: Vec<Option<Job>>,
    free: Vec<usize>,
    in_flight: usize,
}

impl Slots {
    fn insert(&mut self, job: Job) -> usize {
        self.in_flight += 1;
        if let Some(i) = self.free.pop() {
            self.jobs[i] = Some(job);
            i
        } else {
            self.jobs.push(Some(job));
            self.jobs.len() - 1
        }
    }

    fn take(&mut self, i: usize) -> Option<Job> {
        let job = self.jobs.get_mut(i)?.take()?;
        self.free.push(i);
        self.in_flight -= 1;
        Some(job)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // The kernel may still write into the buffers of jobs in flight. Normally none are (the
        // worker drains before returning); if the worker unwinds, leak them rather than free
        // memory the kernel owns.
        if self.in_flight > 0 {
            for job in self.jobs.drain(..).flatten() {
                std::mem::forget(job);
            }
        }
    }
}

/// Push the SQE for the next read of the job in slot `i`.
fn push_read(ring: &mut IoUring, slots: &mut Slots, i: usize) {
    let Some(job) = slots.jobs[i].as_mut() else {
        return;
    };
    let (offset, len) = job.next_read();
    let start = job.filled;
    let fd = job.file.file.as_raw_fd();
    let len32 = u32::try_from(len).expect("reads are capped below u32::MAX");
    // SAFETY: the pointer is inside the job's buffer (start + len <= capacity), which stays
    // alive and unmoved in `slots` until this read's completion is reaped.
    let ptr = unsafe { job.buf.buffer_mut().as_mut_ptr().add(start) };
    let sqe = opcode::Read::new(types::Fd(fd), ptr, len32)
        .offset(offset)
        .build()
        .user_data(i as u64);
    // The queue cannot be full: at most `depth` jobs are in flight, each with one SQE, and the
    // ring has `depth` entries.
    // SAFETY: the buffer and the fd (held by the job's Arc<OpenFile>) outlive the operation.
    let pushed = unsafe { ring.submission().push(&sqe) };
    debug_assert!(
        pushed.is_ok(),
        "submission queue sized to the jobs in flight"
    );
}

fn worker(mut ring: IoUring, depth: usize, rx: &Receiver<Job>) {
    let mut slots = Slots {
        jobs: Vec::with_capacity(depth),
        free: Vec::new(),
        in_flight: 0,
    };
    let mut closed = false;
    loop {
        // Fill the ring: block for work only when nothing is in flight.
        while !closed && slots.in_flight < depth {
            let job = if slots.in_flight == 0 {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            } else {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            };
            if job.next_read().1 == 0 {
                job.finish();
                continue;
            }
            let i = slots.insert(job);
            push_read(&mut ring, &mut slots, i);
        }
        if slots.in_flight == 0 {
            if closed {
                return;
            }
            continue;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // Interrupted, or the completion queue is full / resources are short: reap and retry.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(err) => {
                // The ring is broken. The kernel may hold some of our SQEs, so no buffer may be
                // freed: fail every job in flight, leaking its buffer, and retire this ring.
                for i in 0..slots.jobs.len() {
                    if let Some(job) = slots.take(i) {
                        job.fail_leaking_buffer(std::io::Error::new(err.kind(), err.to_string()));
                    }
                }
                return;
            }
        }
        let completions: Vec<(u64, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (user_data, res) in completions {
            let Ok(i) = usize::try_from(user_data) else {
                continue;
            };
            if res < 0 {
                let errno = -res;
                if errno == libc::EINTR || errno == libc::EAGAIN {
                    push_read(&mut ring, &mut slots, i);
                } else if let Some(job) = slots.take(i) {
                    job.fail(std::io::Error::from_raw_os_error(errno));
                }
                continue;
            }
            let n = usize::try_from(res).unwrap_or(0);
            let done = slots.jobs[i].as_mut().is_none_or(|job| job.advance(n));
            if done {
                if let Some(job) = slots.take(i) {
                    job.finish();
                }
            } else {
                // Short read: continue where it stopped.
                push_read(&mut ring, &mut slots, i);
            }
        }
    }
}
