//! zuring's decode thread pool, rebuilt in a forked child.

use std::sync::Arc;

use zuring_io::PerProcess;

/// A rayon pool that a forked child replaces instead of deadlocking on the parent's threads.
#[derive(Debug)]
pub struct DecodePool {
    threads: usize,
    /// This process's pool: a forked child starts one of its own and never touches (nor
    /// drops) its parent's, whose workers do not exist there.
    pool: PerProcess<Arc<rayon::ThreadPool>>,
}

impl DecodePool {
    /// A pool of `threads` threads (0: one per core), started on first use.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        Self {
            threads,
            pool: PerProcess::new(),
        }
    }

    /// Threads in the pool.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The pool of this process.
    ///
    /// # Panics
    /// When no thread can be spawned at all.
    pub fn get(&self) -> Arc<rayon::ThreadPool> {
        Arc::clone(self.pool.get_or_init(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("zuring-decode-{i}"))
                    .build()
                    .expect("spawn decode threads"),
            )
        }))
    }
}
