//! zuring's decode thread pool, rebuilt in a forked child.

use std::sync::{Arc, Mutex};

/// A rayon pool that a forked child replaces instead of deadlocking on the parent's threads.
#[derive(Debug)]
pub struct DecodePool {
    threads: usize,
    pool: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>>,
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
            pool: Mutex::new(None),
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
        let pid = std::process::id();
        let mut guard = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((owner, pool)) = guard.as_ref() {
            if *owner == pid {
                return Arc::clone(pool);
            }
            // Forked: the parent's workers do not exist here; leak the handle rather than
            // join threads that will never answer.
            if let Some(stale) = guard.take() {
                std::mem::forget(stale);
            }
        }
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .thread_name(|i| format!("zuring-decode-{i}"))
                .build()
                .expect("spawn decode threads"),
        );
        *guard = Some((pid, Arc::clone(&pool)));
        pool
    }
}
