//! Writes to the same stored files take turns: between the threads of the process here, and
//! between processes of the machine through [`zuring_io::lock_across_processes`].
//!
//! A write reads a stored chunk or shard it covers in part, merges its values in and replaces
//! the file. Two writes into different parts of one file at once would each start from the file
//! as it was, and the one that replaced it last would drop the other's values (zarr-python,
//! zarrs-python and zuring before this lost 2-55 of 64 inner chunks written by 8 threads into
//! one shard). So a write takes every file it touches here, all at once, before it reads any of
//! them, and gives them back when it is done: a write waits while another holds any of its
//! files and holds none of them meanwhile, so writes never wait on each other in a cycle, and
//! writes of disjoint files run side by side. A file is known by a key made of its array's
//! canonical directory and its grid coordinates ([`file_key`]), so two handles on one array
//! opened by different paths exclude each other too (a collision of keys only makes two writes
//! take turns).
//!
//! Once a write has its files here, it takes them from other processes as well (record locks
//! on one lock file for the machine, in ascending order of key), before it reads any
//! of them; no two threads of the process hold a key at once, as those locks require.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use zuring_io::PerProcess;

/// The files taken by the threads of one process.
struct Shared {
    pid: u32,
    taken: Mutex<HashSet<u64>>,
    freed: Condvar,
}

impl Shared {
    fn taken(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The table of each process (made on its first write).
static CURRENT: PerProcess<Shared> = PerProcess::new();

/// This process's table. A forked child gets a table of its own, fresh, on its first write:
/// it starts with no file taken (the writers holding them are threads of its parent, which it
/// does not have), and a table whose mutex one of those threads held at the instant of the
/// fork (locked forever in the child) is never touched again.
fn shared() -> &'static Shared {
    CURRENT.get_or_init(|| Shared {
        pid: std::process::id(),
        taken: Mutex::new(HashSet::new()),
        freed: Condvar::new(),
    })
}

/// The files of one write, held until dropped.
#[must_use = "the files are given back when this is dropped"]
#[derive(Debug)]
pub(crate) struct Taken {
    keys: Vec<u64>,
    table: &'static Shared,
    /// Held against other processes; released (dropped) before the keys are given back here.
    across: Option<zuring_io::ProcessLocks>,
}

/// Bits of a key that hold a file's last coordinate: the files along a row of the grid have
/// consecutive keys, and another process takes a row of them with one lock.
const LAST_BITS: u32 = 20;

/// The key of the stored file at grid coordinates `coords` of the array in directory `root`
/// (canonical): a hash of the directory and the leading coordinates, then the last coordinate
/// (below [`zuring_io::KEY_LIMIT`]).
pub(crate) fn file_key(root: &Path, coords: &[u64]) -> u64 {
    match coords.split_last() {
        Some((&last, leading)) if last < 1 << LAST_BITS => row((root, leading)) | last,
        _ => row((root, coords)),
    }
}

/// The key of the metadata document (`zarr.json`, `.zarray` / `.zattrs`) of the node in
/// directory `root` (canonical): a row of its own, apart from every chunk's.
pub(crate) fn metadata_key(root: &Path) -> u64 {
    row((root, "metadata document"))
}

/// The first key of the row that `what` hashes to: the hash's top bits above [`LAST_BITS`]
/// zero bits, below [`zuring_io::KEY_LIMIT`].
fn row(what: impl Hash) -> u64 {
    let row_bits = 62 - LAST_BITS;
    (BuildHasherDefault::<DefaultHasher>::default().hash_one(what) >> (64 - row_bits)) << LAST_BITS
}

/// The metadata document of a node, held against other writers of it (zuring's resizes and
/// attribute changes) in this process and the machine's others until dropped: see
/// [`hold_metadata`].
#[must_use = "the document is given back when this is dropped"]
#[derive(Debug)]
pub struct MetadataHold {
    _taken: Taken,
}

/// Hold the metadata document of the node (array or group) in directory `path` while it is
/// read, changed and replaced: zuring's resizes and attribute changes of the node, from any
/// thread of this process or another process of the machine, wait until the returned value is
/// dropped. Without it, a change made between another's read and its replacement is lost
/// (an attribute change carrying a shape from before a resize, say).
pub fn hold_metadata(path: &Path) -> MetadataHold {
    MetadataHold {
        _taken: take(vec![metadata_key(&canonical_root(path))]),
    }
}

/// The canonical form of an array's directory (as given when it cannot be resolved).
pub(crate) fn canonical_root(root: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())
}

/// Take the files `keys` ([`file_key`]), waiting while another write holds any of them.
pub(crate) fn take(mut keys: Vec<u64>) -> Taken {
    keys.sort_unstable();
    keys.dedup();
    let table = shared();
    let mut taken = table.taken();
    while keys.iter().any(|k| taken.contains(k)) {
        taken = table
            .freed
            .wait(taken)
            .unwrap_or_else(PoisonError::into_inner);
    }
    taken.extend(keys.iter().copied());
    drop(taken);
    let across = Some(zuring_io::lock_across_processes(&keys));
    Taken {
        keys,
        table,
        across,
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        drop(self.across.take());
        // In a forked child, a write of the parent's (copied with the thread that forked) is
        // not given back: the child's writes use a table of their own.
        if self.keys.is_empty() || self.table.pid != std::process::id() {
            return;
        }
        let mut taken = self.table.taken();
        for k in &self.keys {
            taken.remove(k);
        }
        drop(taken);
        self.table.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_write_waits_for_the_files_it_shares_only() {
        let root = Path::new("/exclusive-test");
        let (a, b, c) = (
            file_key(root, &[0, 0]),
            file_key(root, &[0, 1]),
            file_key(root, &[0, 2]),
        );
        let first = take(vec![a, b]);
        // Disjoint files: taken at once.
        drop(take(vec![c]));
        let done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let _held = take(vec![c, b]);
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !done.load(Ordering::SeqCst),
            "took a file another write holds"
        );
        drop(first);
        waiter.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
        // All given back: every file can be taken again.
        drop(take(vec![a, b, c]));
    }

    /// A child forked while a thread of its parent holds the table's mutex (an instant of a
    /// take or a give-back) writes all the same: its first write makes it a table of its own.
    #[test]
    fn a_forked_child_takes_files_while_the_parents_table_is_locked() {
        let key = file_key(Path::new("/exclusive-fork-test"), &[7]);
        drop(take(vec![key]));
        let table = shared();
        // The child only takes and gives back a file (allocating, a fresh mutex, fcntl).
        let exited = zuring_io::testing::fork_while_held(
            move |held| {
                let _locked = table.taken();
                held();
            },
            || {
                drop(take(vec![key]));
                true
            },
            Duration::from_secs(5),
        );
        assert_eq!(
            exited,
            Some(0),
            "the forked child waited forever on its parent's table"
        );
        // The parent's table is as it was: the file is free.
        drop(take(vec![key]));
    }

    #[test]
    fn keys_tell_arrays_and_files_apart_and_follow_rows() {
        let a = Path::new("/data/a.zarr");
        let k = file_key(a, &[3, 0, 1]);
        assert_eq!(k, file_key(a, &[3, 0, 1]));
        assert_ne!(k, file_key(Path::new("/data/b.zarr"), &[3, 0, 1]));
        assert_ne!(k, file_key(a, &[3, 1, 0]));
        assert_ne!(k, file_key(a, &[0, 3, 1]));
        // Along the last dimension, keys are consecutive.
        assert_eq!(file_key(a, &[3, 0, 2]), k + 1);
        // Every key is below the lock file's limit, a last coordinate too large for its bits
        // included; 0-d arrays have one file.
        for key in [k, file_key(a, &[1, 1 << 40]), file_key(a, &[])] {
            assert!(key < zuring_io::KEY_LIMIT);
        }
        assert_ne!(file_key(a, &[1, 1 << 40]), file_key(a, &[1, 1 << 41]));
        // The metadata document's key is none of its chunks' and below the limit too.
        let m = metadata_key(a);
        assert!(m < zuring_io::KEY_LIMIT && m != file_key(a, &[]) && m != file_key(a, &[0]));
        assert_ne!(m, metadata_key(Path::new("/data/b.zarr")));
    }
}
