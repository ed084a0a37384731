//! Values of one process: a forked child makes its own rather than use its parent's.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A value made on first use in each process. A process forked from one that used it makes a
/// value of its own on its first use and never touches its parent's, which may be unusable
/// there: a lock that a thread of the parent held at the instant of the fork stays locked
/// forever in the child (no thread of the child will ever release it), and threads the value
/// owns exist in the parent only. The parent's value is left as it is in the child, never
/// dropped (dropping it could join threads that do not exist there).
///
/// zuring's process-wide state (the IO engine, the buffer pool, the decode pool, the shard index
/// cache, the table of files being written) lives in these, so that a PyTorch DataLoader worker forked
/// while other threads of the parent read or write starts clean instead of hanging.
pub struct PerProcess<T> {
    /// The value of the process that made it last: null, or from `Box::into_raw`, freed only
    /// by `drop`.
    current: AtomicPtr<Slot<T>>,
    _owns: PhantomData<*mut T>,
}

struct Slot<T> {
    pid: u32,
    value: T,
}

// SAFETY: as `OnceLock<T>`: a `PerProcess` owns its values like a `Box<T>` does, so sending it
// sends them.
unsafe impl<T: Send> Send for PerProcess<T> {}
// SAFETY: as `OnceLock<T>`: shared, it hands out `&T` to every thread (`T: Sync`), and a value
// made by one thread may be dropped by another, the owner's (`T: Send`).
unsafe impl<T: Send + Sync> Sync for PerProcess<T> {}

impl<T> PerProcess<T> {
    /// Nothing made yet.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            current: AtomicPtr::new(std::ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// This process's value, made with `init` when this process has none yet. When threads
    /// race to make it, one value wins and the others are dropped unused.
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        match self.get_or_try_init(|| Ok::<T, std::convert::Infallible>(init())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`PerProcess::get_or_init`], with an `init` that may fail: its error is returned and
    /// nothing is kept, so a later call tries again (threads that could not start while the
    /// process was at its limit, say).
    ///
    /// # Errors
    /// `init`'s, when this process had no value and `init` failed.
    pub fn get_or_try_init<E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        let pid = std::process::id();
        let mut current = self.current.load(Ordering::Acquire);
        // SAFETY: null, or a slot published (release) by the exchange below, seen here
        // (acquire); freed only by `drop` (`&mut self`), so it lives as long as `&self`.
        if let Some(slot) = unsafe { current.as_ref() } {
            if slot.pid == pid {
                return Ok(&slot.value);
            }
        }
        let fresh = Box::into_raw(Box::new(Slot {
            pid,
            value: init()?,
        }));
        loop {
            match self
                .current
                .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // `current` (the parent's, or null) is left as it is: never freed here.
                // SAFETY: just published, from `Box::into_raw`; freed only by `drop`.
                Ok(_) => return Ok(unsafe { &(*fresh).value }),
                Err(now) => {
                    // SAFETY: as above, for the slot another thread published meanwhile.
                    if let Some(slot) = unsafe { now.as_ref() } {
                        if slot.pid == pid {
                            // Made by another thread of this process first: ours is dropped,
                            // never shared.
                            // SAFETY: `fresh` came from `Box::into_raw` and was never published.
                            drop(unsafe { Box::from_raw(fresh) });
                            return Ok(&slot.value);
                        }
                    }
                    current = now;
                }
            }
        }
    }
}

impl<T> Default for PerProcess<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for PerProcess<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: as in `get_or_init`.
        let pid = unsafe { current.as_ref() }.map(|slot| slot.pid);
        f.debug_struct("PerProcess").field("pid", &pid).finish()
    }
}

impl<T> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        if current.is_null() {
            return;
        }
        // SAFETY: published from `Box::into_raw` and not freed before (only here).
        let slot = unsafe { Box::from_raw(current) };
        if slot.pid != std::process::id() {
            // The parent's value, in a forked child: left alone (see the type's docs).
            std::mem::forget(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn one_value_per_process_whichever_thread_makes_it() {
        let made = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let cell: Arc<PerProcess<(usize, Counted)>> = Arc::new(PerProcess::new());
        let start = Arc::new(std::sync::Barrier::new(8));
        let seen: Vec<usize> = (0..8)
            .map(|_| {
                let (cell, made, dropped, start) = (
                    Arc::clone(&cell),
                    Arc::clone(&made),
                    Arc::clone(&dropped),
                    Arc::clone(&start),
                );
                std::thread::spawn(move || {
                    start.wait();
                    let value = cell.get_or_init(|| {
                        let n = made.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        (n, Counted(dropped))
                    });
                    value.0
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        // Every thread got the one value published; those made and lost were dropped.
        assert!(seen.iter().all(|&n| n == seen[0]), "{seen:?}");
        let made = made.load(Ordering::SeqCst);
        assert_eq!(dropped.load(Ordering::SeqCst), made - 1);
        assert_eq!(cell.get_or_init(|| unreachable!()).0, seen[0]);
        drop(Arc::into_inner(cell).unwrap());
        assert_eq!(dropped.load(Ordering::SeqCst), made);
    }

    #[test]
    fn a_failed_init_keeps_nothing_and_the_next_call_tries_again() {
        let cell: PerProcess<u32> = PerProcess::new();
        assert_eq!(
            cell.get_or_try_init(|| Err("no threads")),
            Err("no threads")
        );
        assert_eq!(cell.get_or_try_init(|| Ok::<_, &str>(5)), Ok(&5));
        // Kept: neither a later init nor its error is seen.
        assert_eq!(cell.get_or_try_init(|| Err("unused")), Ok(&5));
        assert_eq!(*cell.get_or_init(|| 6), 5);
    }

    /// A child forked while a thread of its parent holds the value's lock gets a value of its
    /// own, unlocked; the parent's is still its own.
    #[test]
    fn a_forked_child_makes_its_own_while_the_parents_is_locked() {
        static CELL: PerProcess<(u32, Mutex<u32>)> = PerProcess::new();
        let parent = CELL.get_or_init(|| (std::process::id(), Mutex::new(7)));
        assert_eq!(parent.0, std::process::id());
        let exited = crate::testing::fork_while_held(
            |held| {
                let _locked = CELL.get_or_init(|| unreachable!()).1.lock();
                held();
            },
            || {
                let (pid, lock) = CELL.get_or_init(|| (std::process::id(), Mutex::new(1)));
                *pid == std::process::id() && lock.lock().is_ok_and(|v| *v == 1)
            },
            Duration::from_secs(5),
        );
        assert_eq!(exited, Some(0), "the child hung (None) or failed");
        let (pid, lock) = CELL.get_or_init(|| unreachable!());
        assert_eq!((*pid, *lock.lock().unwrap()), (std::process::id(), 7));
    }
}
