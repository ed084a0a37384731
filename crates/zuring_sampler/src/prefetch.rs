//! Reading batches ahead, in order, on a background thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::error::{Result, SamplerError};
use crate::schedule::Schedule;

/// Recycled output buffers of one array's batches (all of one size).
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    len: usize,
    keep: usize,
}

impl BufferPool {
    fn new(len: usize, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            len,
            keep,
        })
    }

    /// A recycled buffer, if one is free.
    fn take(&self) -> Option<Vec<u8>> {
        self.free.lock().ok().and_then(|mut f| f.pop())
    }

    /// Give a buffer back for reuse (dropped when the pool is full or the size differs).
    pub fn give_back(&self, buf: Vec<u8>) {
        if buf.len() != self.len {
            return;
        }
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.keep {
                free.push(buf);
            }
        }
    }

    /// Bytes of one buffer.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        self.len
    }
}

/// One batch: per array, its (B, *crop) shape and C-contiguous native-endian bytes.
#[derive(Debug)]
pub struct Batch {
    /// Index of the batch in the epoch (for this rank).
    pub index: u64,
    /// Per array: shape and bytes.
    pub arrays: Vec<(Vec<u64>, Vec<u8>)>,
    /// The windows (reference units) of the batch's samples.
    pub windows: Vec<Vec<u64>>,
}

/// Reads batches ahead on a thread; [`Prefetcher::next`] returns them in order.
///
/// At most `depth` finished batches wait in the channel (plus the one being read), which bounds
/// memory to about (depth + 2) x batch bytes. The batch needed next is always the one being
/// read: the thread works strictly in order, and the engine parallelises within a batch.
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    /// Set by the thread when it reaches the end of the epoch, before its sender closes.
    ended: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pools: Vec<Arc<BufferPool>>,
}

impl Prefetcher {
    /// Start reading `schedule`'s batches of `batch_size` windows from batch `first_batch` on,
    /// then every `batch_step`-th batch (1: all of them; `w` and `W`: worker `w` of `W` sharing
    /// one schedule, whose batches interleaved again are the schedule's). With `drop_last`, a
    /// final short batch is skipped.
    #[must_use]
    pub fn start(
        schedule: Schedule,
        batch_size: usize,
        first_batch: u64,
        batch_step: u64,
        depth: usize,
        drop_last: bool,
    ) -> Self {
        let g = schedule.geometry().clone();
        let crop_shapes: Vec<Vec<u64>> = (0..g.arrays.len()).map(|a| g.crop_shape(a)).collect();
        let pools: Vec<Arc<BufferPool>> = crop_shapes
            .iter()
            .zip(&g.arrays)
            .map(|(shape, spec)| {
                let n: u64 = shape.iter().product::<u64>()
                    * batch_size as u64
                    * spec.array.element_size() as u64;
                BufferPool::new(usize::try_from(n).unwrap_or(usize::MAX), depth + 2)
            })
            .collect();
        let (tx, rx) = crossbeam_channel::bounded(depth.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let thread_pools = pools.clone();
        let thread_stop = Arc::clone(&stop);
        let ended = Arc::new(AtomicBool::new(false));
        let thread_ended = Arc::clone(&ended);
        let handle = std::thread::Builder::new()
            .name("zuring-prefetch".into())
            .spawn(move || {
                let mut b = first_batch;
                while !thread_stop.load(Ordering::Relaxed) {
                    let start = b * batch_size as u64;
                    let windows: Vec<Vec<u64>> = (start..start + batch_size as u64)
                        .map_while(|i| schedule.window(i))
                        .collect();
                    if windows.is_empty() || (drop_last && windows.len() < batch_size) {
                        break;
                    }
                    let batch = read_batch(&schedule, &crop_shapes, &thread_pools, b, windows);
                    if tx.send(batch).is_err() {
                        break;
                    }
                    b += batch_step.max(1);
                }
                // Before `tx` drops: a receiver that sees the channel close knows it was the end.
                thread_ended.store(true, Ordering::SeqCst);
            })
            .ok();
        Self {
            rx: Some(rx),
            stop,
            ended,
            handle,
            pools,
        }
    }

    /// The next batch, waiting for it; `None` at the end of the epoch. A failed batch is
    /// returned as an error and the following call continues with the next batch.
    #[must_use]
    pub fn next(&self) -> Option<Result<Batch>> {
        match &self.rx {
            Some(rx) => match rx.recv() {
                Ok(item) => Some(item),
                // Closed at the end of the epoch, or because the thread died (panicked or
                // could not start): only the latter is an error.
                Err(_) if self.ended.load(Ordering::SeqCst) => None,
                Err(_) => Some(Err(SamplerError::Stopped)),
            },
            None => None,
        }
    }

    /// Per array, the pool its batch buffers come from (give them back when done).
    #[must_use]
    pub fn pools(&self) -> &[Arc<BufferPool>] {
        &self.pools
    }
}

fn read_batch(
    schedule: &Schedule,
    crop_shapes: &[Vec<u64>],
    pools: &[Arc<BufferPool>],
    index: u64,
    windows: Vec<Vec<u64>>,
) -> Result<Batch> {
    let g = schedule.geometry();
    let mut arrays = Vec::with_capacity(g.arrays.len());
    for (a, spec) in g.arrays.iter().enumerate() {
        let mut starts = Vec::with_capacity(windows.len() * spec.dims.len());
        for w in &windows {
            g.array_start(a, w, &mut starts);
        }
        // A recycled buffer when one is free and fits (a final short batch needs fewer bytes),
        // else a fresh one that is never zero-filled.
        let crop_bytes = crop_shapes[a].iter().product::<u64>() * spec.array.element_size() as u64;
        let needed = usize::try_from(crop_bytes).unwrap_or(usize::MAX) * windows.len();
        let read = match pools[a].take() {
            Some(mut buf) if buf.len() == needed => {
                match spec
                    .array
                    .read_crops_into(&starts, &crop_shapes[a], &mut buf)
                {
                    Ok(()) => Ok(buf),
                    Err(e) => {
                        pools[a].give_back(buf);
                        Err(e)
                    }
                }
            }
            other => {
                if let Some(buf) = other {
                    pools[a].give_back(buf);
                }
                spec.array.read_crops_bytes(&starts, &crop_shapes[a])
            }
        };
        let buf = read.map_err(|source| SamplerError::Read {
            array: spec.name.clone(),
            source,
        })?;
        let mut shape = vec![windows.len() as u64];
        shape.extend_from_slice(&crop_shapes[a]);
        arrays.push((shape, buf));
    }
    Ok(Batch {
        index,
        arrays,
        windows,
    })
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver makes a blocked send fail, so the thread ends.
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
