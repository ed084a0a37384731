//! Writers to the same files in different processes of this machine take turns: each holds
//! POSIX record locks on a lock file shared by every process (in `/dev/shm` or the temporary
//! directory), one
//! byte per file at an offset given by the file's key, while it reads, merges and replaces the
//! files. Consecutive keys are locked as one range: a caller whose keys for neighbouring files
//! are consecutive (zuring_array's are, along a row of chunks) takes a row with one call.
//!
//! Record locks belong to the process, so threads of one process do not exclude each other
//! through them: the caller keeps its threads apart itself (zuring_array's write table, which
//! also makes sure no two of its threads hold the same key at once). Being the process's, they
//! are not inherited by a forked child (a child never waits for a lock its parent's threads
//! held), and they go when the process ends, however it ends. A process drops all of them when
//! it closes any descriptor of the lock file, so the file is opened once per process and never
//! closed. Ranges are locked in ascending order, each whole or not at all, so processes never
//! wait on each other in a cycle; the kernel may still report one (`EDEADLK`: it sees a
//! process, not its threads, as the waiter), and then the lock is tried again a moment later.

#![allow(unsafe_code)] // fcntl record locks

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Where the lock file may be, in order: the path in `ZURING_LOCK_FILE` alone when set; else
/// `zuring-write-locks` in `/dev/shm` (one directory for the whole machine, where a job
/// scheduler often gives each job a temporary directory of its own), then in the temporary
/// directory (`TMPDIR`, else `/tmp`).
fn candidates() -> Vec<PathBuf> {
    candidates_in(
        std::env::var_os("ZURING_LOCK_FILE"),
        std::path::Path::new("/dev/shm"),
        &std::env::temp_dir(),
    )
}

fn candidates_in(
    named: Option<std::ffi::OsString>,
    shm: &std::path::Path,
    temp: &std::path::Path,
) -> Vec<PathBuf> {
    const NAME: &str = "zuring-write-locks";
    if let Some(path) = named {
        return vec![PathBuf::from(path)];
    }
    let mut paths = Vec::new();
    if shm.is_dir() {
        paths.push(shm.join(NAME));
    }
    paths.push(temp.join(NAME));
    paths
}

/// The lock file this process uses (the first of the places above it could open), or would
/// use. Processes exclude each other only if they use the same one.
#[must_use]
pub fn lock_file_path() -> PathBuf {
    match lock_file() {
        Some((path, _)) => path.clone(),
        None => candidates().swap_remove(0),
    }
}

/// The lock file, opened once per process (None when it cannot be: locks are then taken within
/// the process only).
fn lock_file() -> Option<&'static (PathBuf, File)> {
    static FILE: OnceLock<Option<(PathBuf, File)>> = OnceLock::new();
    FILE.get_or_init(|| {
        candidates()
            .into_iter()
            .find_map(|path| open_lock_file(&path).ok().map(|file| (path, file)))
    })
    .as_ref()
}

fn open_lock_file(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // An existing file is opened without O_CREAT: in a sticky world-writable directory
    // (/tmp, /dev/shm) with fs.protected_regular set, creating opens of other users' files fail.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .or_else(|_| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o666)
                .open(path)?;
            // Writable by every user's processes, whatever the umask.
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
            Ok(file)
        })
}

/// Record locks held on the lock file for a set of keys; released when dropped.
#[must_use = "the locks are released when this is dropped"]
#[derive(Debug)]
pub struct ProcessLocks {
    /// Held ranges of the lock file: (first byte, length).
    ranges: Vec<(i64, i64)>,
}

/// Keys from this one on are folded into the range below it (offsets stay below `i64::MAX`).
pub const KEY_LIMIT: u64 = 1 << 62;

/// A record lock of `kind` (`F_WRLCK`, `F_UNLCK`) on `len` bytes from `at`.
fn record(at: i64, len: i64, kind: i32) -> libc::flock {
    let mut lock: libc::flock = {
        // SAFETY: `flock` is plain old data; all-zero is a valid value of every field.
        unsafe { std::mem::zeroed() }
    };
    lock.l_type = i16::try_from(kind).unwrap_or(0);
    lock.l_whence = i16::try_from(libc::SEEK_SET).unwrap_or(0);
    lock.l_start = at;
    lock.l_len = len;
    lock
}

/// Set (`F_WRLCK`, waiting) or clear (`F_UNLCK`) the lock on `len` bytes from `at` of `file`.
fn record_lock(file: &File, (at, len): (i64, i64), kind: i32) -> std::io::Result<()> {
    let mut lock = record(at, len, kind);
    let command = if kind == libc::F_UNLCK {
        libc::F_SETLK
    } else {
        libc::F_SETLKW
    };
    loop {
        // SAFETY: the descriptor is open for as long as `file` lives, and `lock` is a valid
        // `flock` that the call only reads for these commands.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), command, &raw mut lock) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            // A cycle the kernel sees between whole processes; their threads are not in one
            // (keys go in ascending order): the holder moves on, try again.
            Some(libc::EDEADLK) => std::thread::sleep(Duration::from_millis(1)),
            _ => return Err(err),
        }
    }
}

/// Lock `keys` (below [`KEY_LIMIT`]) for this process against writers in others, runs of
/// consecutive keys as one range, in ascending order, waiting while another process holds any
/// of them. No two threads of the process may hold the same key at once (see the module's
/// notes). When the lock file cannot be opened or locked, nothing is held and the caller's own
/// exclusion within the process is all there is.
pub fn lock_across_processes(keys: &[u64]) -> ProcessLocks {
    let mut held = ProcessLocks { ranges: Vec::new() };
    let Some((_, file)) = lock_file() else {
        return held;
    };
    for range in runs(keys) {
        if record_lock(file, range, libc::F_WRLCK).is_err() {
            break;
        }
        held.ranges.push(range);
    }
    held
}

/// `keys` as ascending runs of consecutive offsets: (first, length).
fn runs(keys: &[u64]) -> Vec<(i64, i64)> {
    let mut offsets: Vec<i64> = keys
        .iter()
        .map(|&k| i64::try_from(k.min(KEY_LIMIT - 1)).unwrap_or(0))
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for at in offsets {
        match runs.last_mut() {
            Some((first, len)) if *first + *len == at => *len += 1,
            _ => runs.push((at, 1)),
        }
    }
    runs
}

impl ProcessLocks {
    /// How many ranges are held.
    #[must_use]
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

impl Drop for ProcessLocks {
    fn drop(&mut self) {
        if let Some((_, file)) = lock_file() {
            for &range in &self.ranges {
                let _ = record_lock(file, range, libc::F_UNLCK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in a child process (this test binary, `ZURING_LOCK_PROBE` set): whether the byte of
    /// `key` can be locked now, without waiting; exits 0 (free) or 3 (held by another process).
    fn probe_and_exit(key: u64) -> ! {
        let (_, file) = lock_file().expect("lock file");
        let mut lock = record(i64::try_from(key).unwrap(), 1, libc::F_WRLCK);
        // SAFETY: an open descriptor and a valid `flock`.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &raw mut lock) };
        std::process::exit(if rc == 0 { 0 } else { 3 });
    }

    fn probe(key: u64) -> i32 {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "locks::tests::keys_are_held_against_other_processes",
            ])
            .env("ZURING_LOCK_PROBE", key.to_string())
            .output()
            .unwrap()
            .status
            .code()
            .unwrap()
    }

    #[test]
    fn the_lock_file_is_one_for_the_machine_unless_named() {
        let temp = std::path::Path::new("/job/tmp");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            candidates_in(None, dir.path(), temp),
            [
                dir.path().join("zuring-write-locks"),
                temp.join("zuring-write-locks")
            ]
        );
        // No /dev/shm: the temporary directory.
        assert_eq!(
            candidates_in(None, &dir.path().join("none"), temp),
            [temp.join("zuring-write-locks")]
        );
        // Named: that file alone (another that cannot be opened means no locks across
        // processes, rather than other processes' file).
        assert_eq!(
            candidates_in(Some("/x/y".into()), dir.path(), temp),
            [PathBuf::from("/x/y")]
        );
        // This process uses the first it could open.
        let used = lock_file_path();
        assert!(candidates().contains(&used), "{}", used.display());
    }

    #[test]
    fn consecutive_keys_make_one_range() {
        assert_eq!(runs(&[7, 3, 4, 5, 9, 8, 4]), vec![(3, 3), (7, 3)]);
        assert_eq!(runs(&[u64::MAX, KEY_LIMIT - 1]), vec![(i64::MAX / 2, 1)]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn keys_are_held_against_other_processes() {
        if let Some(key) = std::env::var_os("ZURING_LOCK_PROBE") {
            probe_and_exit(key.to_str().unwrap().parse().unwrap());
        }
        let base = u64::from(std::process::id()) << 20;
        let (a, b, c) = (base, base + 1, base + 8);
        // a and b: one range; c: not held.
        let held = lock_across_processes(&[b, a, b]);
        assert_eq!(held.ranges(), 1, "{held:?}");
        assert_eq!(probe(a), 3, "another process took a held key");
        assert_eq!(probe(b), 3, "another process took a held key");
        assert_eq!(probe(c), 0, "a key not held was refused");
        assert_eq!(probe(base + 2), 0, "a key past the run was refused");
        drop(held);
        assert_eq!(probe(a), 0, "a released key stayed held");
        assert_eq!(probe(b), 0, "a released key stayed held");
    }
}
