//! zuring's decode thread pool, rebuilt in a forked child.

use std::sync::Arc;

use zuring_io::PerProcess;

use crate::error::{ArrayError, Result};

/// A rayon pool that a forked child replaces instead of deadlocking on the parent's threads.
#[derive(Debug)]
pub struct DecodePool {
    threads: usize,
    /// This process's pool: a forked child starts one of its own and never touches (nor
    /// drops) its parent's, whose workers do not exist there.
    pool: PerProcess<Arc<rayon::ThreadPool>>,
    /// Each thread's stack size (None: rayon's default); set apart only by tests.
    stack_size: Option<usize>,
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
            stack_size: None,
        }
    }

    /// Threads in the pool.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The pool of this process, its threads started on the first call.
    ///
    /// # Errors
    /// [`ArrayError::Threads`] when they cannot start (nothing is kept: the next call tries
    /// again).
    pub fn get(&self) -> Result<Arc<rayon::ThreadPool>> {
        let pool = self.pool.get_or_try_init(|| {
            let mut builder = rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .thread_name(|i| format!("zuring-decode-{i}"));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            builder
                .build()
                .map(Arc::new)
                .map_err(|e| ArrayError::Threads {
                    what: format!("{} decode threads", self.threads),
                    message: e.to_string(),
                })
        })?;
        Ok(Arc::clone(pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_that_cannot_start_are_an_error_and_the_next_call_tries_again() {
        // A stack no thread can have: rayon cannot spawn the pool's threads.
        let mut pool = DecodePool::new(3);
        pool.stack_size = Some(usize::MAX / 2);
        let err = pool.get().unwrap_err();
        assert!(matches!(err, ArrayError::Threads { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("cannot start 3 decode threads: "),
            "{err}"
        );
        pool.stack_size = None;
        let started = pool.get().unwrap();
        assert_eq!(started.current_num_threads(), 3);
        assert!(Arc::ptr_eq(&started, &pool.get().unwrap()));
    }
}
