//! Reading batches ahead, in order, on background threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Result, SamplerError};
use crate::geometry::Geometry;
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

/// Reads batches ahead on background threads; [`Prefetcher::next`] returns them in order.
///
/// Up to [`Lookahead::readers`] batches are read at once, each by its own thread (a batch's
/// arrays at once too, and the engine parallelises within each array's read), so one batch's
/// IO waits overlap another's decoding; the readers take the batches in order and hand them
/// over in order, so the batch needed next is always being read, and it was started first (its
/// decode work queued on zuring's pool ahead of the look-ahead batches'). The batches being
/// read count towards [`Lookahead::depth`]: at most `depth + 1 - readers` finished batches (at
/// least one) wait in the channel, so with the one the caller holds the outputs stay bounded by
/// about (depth + 2) x batch bytes whatever the number of readers; the compressed bytes and
/// decode scratch of every batch being read come on top.
#[derive(Debug)]
pub struct Prefetcher {
    rx: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    /// Set by the reader whose turn reaches the end of the epoch, before its sender closes.
    ended: Arc<AtomicBool>,
    turn: Arc<Turn>,
    handles: Vec<JoinHandle<()>>,
    pools: Vec<Arc<BufferPool>>,
    /// The process that started it (its reader threads are that process's).
    pid: u32,
}

/// The readers' order of delivery: the sequence number of the batch to send next.
#[derive(Debug, Default)]
struct Turn {
    next: Mutex<u64>,
    changed: Condvar,
}

/// What the readers share.
struct Readers {
    schedule: Schedule,
    crop_shapes: Vec<Vec<u64>>,
    pools: Vec<Arc<BufferPool>>,
    batch_size: usize,
    first_batch: u64,
    batch_step: u64,
    drop_last: bool,
    /// The next sequence number to claim (batch `first_batch + k * batch_step`).
    claim: AtomicU64,
    turn: Arc<Turn>,
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
}

impl Readers {
    /// Claim batches in order, read each, and send it when its turn comes.
    fn run(&self, tx: &Sender<Result<Batch>>) {
        while !self.stop.load(Ordering::Relaxed) && !self.ended.load(Ordering::SeqCst) {
            let k = self.claim.fetch_add(1, Ordering::SeqCst);
            let b = self.first_batch + k * self.batch_step;
            let start = b * self.batch_size as u64;
            let windows: Vec<Vec<u64>> = (start..start + self.batch_size as u64)
                .map_while(|i| self.schedule.window(i))
                .collect();
            let at_end = windows.is_empty() || (self.drop_last && windows.len() < self.batch_size);
            let batch = (!at_end).then(|| {
                // A panic in a read (a bug) fails this batch, not the whole sampler.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_batch(&self.schedule, &self.crop_shapes, &self.pools, b, windows)
                }))
                .unwrap_or(Err(SamplerError::Stopped))
            });
            let Ok(mut next) = self.turn.next.lock() else {
                return;
            };
            while *next != k && !self.stop.load(Ordering::SeqCst) {
                next = match self.turn.changed.wait(next) {
                    Ok(next) => next,
                    Err(_) => return,
                };
            }
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let sent = match batch {
                // Before the senders drop: a receiver that sees the channel close knows it
                // was the end. The readers waiting for later turns read past the end too.
                None => {
                    self.ended.store(true, Ordering::SeqCst);
                    false
                }
                Some(batch) => tx.send(batch).is_ok(),
            };
            *next += 1;
            drop(next);
            self.turn.changed.notify_all();
            if !sent {
                return;
            }
        }
    }
}

/// How far a [`Prefetcher`] reads ahead, and how many batches it reads at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookahead {
    /// Batches read ahead, the ones being read included (0 counts as 1).
    pub depth: usize,
    /// Batches read at once, each by its own thread: between 1 and `depth` (a value outside is
    /// clamped). A second reader overlaps one batch's IO waits with another's decoding, for a
    /// batch's compressed bytes and decode scratch more memory (77 MiB at 20 MiB batches in
    /// bench_sampler); on the development machine's disk it measured within noise of one
    /// (the arrays of a batch are read at once either way), so one is the default: worth trying
    /// on a slower, higher-latency store.
    pub readers: usize,
}

impl Lookahead {
    /// Readers by default.
    pub const READERS: usize = 1;

    /// `depth` batches ahead, read [`Lookahead::READERS`] at a time.
    #[must_use]
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            readers: Self::READERS,
        }
        .clamped()
    }

    /// `depth` at least 1; `readers` between 1 and `depth`.
    #[must_use]
    pub fn clamped(self) -> Self {
        let depth = self.depth.max(1);
        Self {
            depth,
            readers: self.readers.clamp(1, depth),
        }
    }
}

impl Default for Lookahead {
    fn default() -> Self {
        Self::new(2)
    }
}

impl Prefetcher {
    /// Start reading `schedule`'s batches of `batch_size` windows from batch `first_batch` on,
    /// then every `batch_step`-th batch (1: all of them; `w` and `W`: worker `w` of `W` sharing
    /// one schedule, whose batches interleaved again are the schedule's), `ahead` batches ahead.
    /// With `drop_last`, a final short batch is skipped.
    #[must_use]
    pub fn start(
        schedule: Schedule,
        batch_size: usize,
        first_batch: u64,
        batch_step: u64,
        ahead: Lookahead,
        drop_last: bool,
    ) -> Self {
        let g = schedule.geometry().clone();
        let Lookahead { depth, readers } = ahead.clamped();
        let crop_shapes: Vec<Vec<u64>> = (0..g.arrays.len()).map(|a| g.crop_shape(a)).collect();
        let pools: Vec<Arc<BufferPool>> = crop_shapes
            .iter()
            .zip(&g.arrays)
            .map(|(shape, spec)| {
                let n: u64 = shape.iter().product::<u64>()
                    * batch_size as u64
                    * spec.array.element_size() as u64;
                let keep = depth + 2;
                BufferPool::new(usize::try_from(n).unwrap_or(usize::MAX), keep)
            })
            .collect();
        let (tx, rx) = crossbeam_channel::bounded((depth + 1).saturating_sub(readers).max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicBool::new(false));
        let turn = Arc::new(Turn::default());
        let shared = Arc::new(Readers {
            schedule,
            crop_shapes,
            pools: pools.clone(),
            batch_size,
            first_batch,
            batch_step: batch_step.max(1),
            drop_last,
            claim: AtomicU64::new(0),
            turn: Arc::clone(&turn),
            stop: Arc::clone(&stop),
            ended: Arc::clone(&ended),
        });
        let handles = (0..readers)
            .filter_map(|r| {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                std::thread::Builder::new()
                    .name(format!("zuring-prefetch-{r}"))
                    .spawn(move || shared.run(&tx))
                    .ok()
            })
            .collect();
        Self {
            rx: Some(rx),
            stop,
            ended,
            turn,
            handles,
            pools,
            pid: std::process::id(),
        }
    }

    /// Whether this process started it: a process forked from the one that did has none of
    /// its reader threads (its batches never come there; [`Prefetcher::next`] says so).
    #[must_use]
    pub fn in_this_process(&self) -> bool {
        self.pid == std::process::id()
    }

    /// The next batch, waiting for it; `None` at the end of the epoch. A failed batch is
    /// returned as an error and the following call continues with the next batch.
    #[must_use]
    pub fn next(&self) -> Option<Result<Batch>> {
        if !self.in_this_process() {
            return Some(Err(SamplerError::Forked));
        }
        match &self.rx {
            Some(rx) => match rx.recv() {
                Ok(item) => Some(item),
                // Closed at the end of the epoch, or because the readers died (panicked or
                // could not start): only the latter is an error.
                Err(_) if self.ended.load(Ordering::SeqCst) => None,
                Err(_) => Some(Err(SamplerError::Stopped)),
            },
            None => None,
        }
    }

    /// How many batches it reads at once (its reader threads).
    #[must_use]
    pub fn readers(&self) -> usize {
        self.handles.len()
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
    let read = |a: usize| read_array(g, a, &crop_shapes[a], &pools[a], &windows);
    // The arrays' reads run at once (the first on this thread): one array's IO waits overlap
    // another's decoding, and all of them share zuring's decode pool.
    // An array whose thread cannot start (the process at its limit of threads) is read on
    // this thread after the first.
    let reads: Vec<Result<Vec<u8>>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..g.arrays.len())
            .map(|a| {
                std::thread::Builder::new()
                    .name(format!("zuring-read-{a}"))
                    .spawn_scoped(scope, move || read(a))
                    .map_err(|_| a)
            })
            .collect();
        let first = read(0);
        std::iter::once(first)
            .chain(others.into_iter().map(|h| match h {
                Ok(h) => h.join().unwrap_or(Err(SamplerError::Stopped)),
                Err(a) => read(a),
            }))
            .collect()
    });
    if let Some(first_error) = reads.iter().position(Result::is_err) {
        // The first failing array (in the arrays' order) is reported; the others' buffers go
        // back to their pools.
        let mut error = None;
        for (a, read) in reads.into_iter().enumerate() {
            match read {
                Ok(buf) => pools[a].give_back(buf),
                Err(e) if a == first_error => error = Some(e),
                Err(_) => {}
            }
        }
        return Err(error.unwrap_or(SamplerError::Stopped));
    }
    let arrays = reads
        .into_iter()
        .flatten()
        .zip(crop_shapes)
        .map(|(buf, crop_shape)| {
            let mut shape = vec![windows.len() as u64];
            shape.extend_from_slice(crop_shape);
            (shape, buf)
        })
        .collect();
    Ok(Batch {
        index,
        arrays,
        windows,
    })
}

/// One array's crops of a batch, into a recycled buffer when one is free and fits (a final
/// short batch needs fewer bytes), else into a fresh one that is never zero-filled.
fn read_array(
    g: &Geometry,
    a: usize,
    crop_shape: &[u64],
    pool: &BufferPool,
    windows: &[Vec<u64>],
) -> Result<Vec<u8>> {
    let spec = &g.arrays[a];
    let mut starts = Vec::with_capacity(windows.len() * spec.dims.len());
    for w in windows {
        g.array_start(a, w, &mut starts);
    }
    let crop_bytes = crop_shape.iter().product::<u64>() * spec.array.element_size() as u64;
    let needed = usize::try_from(crop_bytes).unwrap_or(usize::MAX) * windows.len();
    let read = match pool.take() {
        Some(mut buf) if buf.len() == needed => {
            match spec.array.read_crops_into(&starts, crop_shape, &mut buf) {
                Ok(()) => Ok(buf),
                Err(e) => {
                    pool.give_back(buf);
                    Err(e)
                }
            }
        }
        other => {
            if let Some(buf) = other {
                pool.give_back(buf);
            }
            spec.array.read_crops_bytes(&starts, crop_shape)
        }
    };
    read.map_err(|source| SamplerError::Read {
        array: spec.name.clone(),
        source,
    })
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        if !self.in_this_process() {
            // Dropped in a forked child: the reader threads are the parent's (joining them
            // here panics), and one of them may have held the channel's insides or the turn's
            // lock at the fork. Leave the handles and the channel as they are (leaked) and wake
            // no one; the rest is plain memory.
            std::mem::forget(std::mem::take(&mut self.handles));
            std::mem::forget(self.rx.take());
            return;
        }
        self.stop.store(true, Ordering::SeqCst);
        // Dropping the receiver makes a blocked send fail; a reader waiting for its turn is
        // woken (the lock taken first, so a reader between its check of `stop` and its wait
        // cannot miss the wake-up).
        self.rx = None;
        drop(self.turn.next.lock());
        self.turn.changed.notify_all();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}
