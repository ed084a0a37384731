//! Open files: a bounded LRU cache of file descriptors, revalidated against the path.
#![allow(unsafe_code)] // statx, getrlimit and openat2

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use lru::LruCache;

use crate::error::{IoError, Result};

/// An open file and what was known about it when it was opened.
#[derive(Debug)]
pub struct OpenFile {
    /// The path it was opened from.
    pub path: Arc<Path>,
    /// The descriptor.
    pub file: File,
    /// Its size in bytes at open (or revalidation) time.
    pub size: u64,
    /// Required alignment of offsets, lengths and buffers when opened with `O_DIRECT`; 1 otherwise.
    pub direct_align: u64,
    /// Which version of the file it is.
    pub version: FileVersion,
}

/// What identifies one version of a file: a file replaced at its path (a new inode) or rewritten
/// (a new size or modification time) is another version. A cached descriptor is reused only
/// while its path still gives the same version; a shard index is cached by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileVersion {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileVersion {
    /// The version described by `meta`.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The `O_DIRECT` alignment the kernel reports for `file` (statx `STATX_DIOALIGN`), or 4096.
fn direct_alignment(file: &File) -> u64 {
    const FALLBACK: u64 = 4096;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
        let empty = c"";
        // SAFETY: `stx` is a valid, writable statx buffer; the path is an empty C string used
        // with AT_EMPTY_PATH on an open descriptor.
        let rc = unsafe {
            libc::statx(
                file.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_DIOALIGN,
                stx.as_mut_ptr(),
            )
        };
        if rc == 0 {
            // SAFETY: statx returned 0, so it filled the buffer.
            let stx = unsafe { stx.assume_init() };
            if stx.stx_mask & libc::STATX_DIOALIGN != 0 {
                let align = u64::from(stx.stx_dio_offset_align.max(stx.stx_dio_mem_align));
                // Buffers are aligned to 4096, so any smaller power of two is satisfied too.
                if align.is_power_of_two() && align <= FALLBACK {
                    return align;
                }
            }
        }
    }
    let _ = file;
    FALLBACK
}

/// A bounded LRU cache of open files, keyed by path and access mode.
///
/// Before reuse an entry is revalidated with one `stat` of its path (device, inode, size and
/// modification time), so a file replaced or rewritten by another writer is reopened.
#[derive(Debug)]
pub struct FileCache {
    entries: Mutex<LruCache<(PathBuf, bool), Arc<OpenFile>>>,
    revalidate: bool,
}

impl FileCache {
    /// A cache holding at most `capacity` descriptors.
    #[must_use]
    pub fn new(capacity: usize, revalidate: bool) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            revalidate,
        }
    }

    /// The open file for `path`, from the cache when it is still valid. With `cached_lookup`,
    /// for a read that may not wait for the disk: a descriptor not cached is opened only when
    /// the kernel can look the path up from its directory entry cache alone (`openat2` with
    /// `RESOLVE_CACHED`; a plain open on kernels before 5.12), and an `O_DIRECT` open, which
    /// never reads from the page cache, is refused.
    ///
    /// # Errors
    /// [`IoError::NotFound`] when the file is missing, [`IoError::Open`] for other failures;
    /// with `cached_lookup`, [`IoError::PathNotCached`] when the lookup would read a directory
    /// from disk (or `direct`).
    pub(crate) fn open(
        &self,
        path: &Arc<Path>,
        direct: bool,
        cached_lookup: bool,
    ) -> Result<Arc<OpenFile>> {
        if cached_lookup && direct {
            return Err(IoError::PathNotCached {
                path: path.to_path_buf(),
            });
        }
        if let Some(entry) = self
            .cached(path, direct)
            .map_err(|e| IoError::open(path, e))?
        {
            return Ok(entry);
        }
        let entry = Arc::new(Self::open_uncached(path, direct, cached_lookup)?);
        if let Ok(mut c) = self.entries.lock() {
            c.put((path.to_path_buf(), direct), Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// The open file for reading `path` through the page cache without waiting for the disk:
    /// its cached descriptor (still valid), or a new one when the kernel resolves the path from
    /// its directory entry cache alone (`openat2` with `RESOLVE_CACHED`), cached for later reads.
    /// `Ok(None)` when neither can be had so (a lookup that would read a directory, a kernel
    /// without such opens) or on an error other than the file's absence: the caller then reads
    /// the usual way, which reports it.
    ///
    /// # Errors
    /// [`IoError::NotFound`] when the path names no file (the directory entry cache knows it).
    pub(crate) fn open_without_waiting(&self, path: &Arc<Path>) -> Result<Option<Arc<OpenFile>>> {
        let opened = if NO_RESOLVE_CACHED.load(std::sync::atomic::Ordering::Relaxed) {
            // An open would be a plain one, which may wait: cached descriptors only.
            self.cached(path, false)
                .map_err(|e| IoError::open(path, e))
                .and_then(|entry| {
                    entry.ok_or_else(|| IoError::PathNotCached {
                        path: path.to_path_buf(),
                    })
                })
        } else {
            self.open(path, false, true)
        };
        match opened {
            Ok(entry) => Ok(Some(entry)),
            Err(err) if err.is_not_found() => Err(err),
            Err(_) => Ok(None),
        }
    }

    /// The cached entry for `path` (opened with `direct` or not), if still valid (revalidated
    /// with one `stat` of the path): `Ok(None)` when there is none or it is stale (the file was
    /// replaced or changed).
    ///
    /// # Errors
    /// When the path cannot be looked at (missing, say): the entry is forgotten.
    fn cached(&self, path: &Path, direct: bool) -> std::io::Result<Option<Arc<OpenFile>>> {
        let key = (path.to_path_buf(), direct);
        let Some(entry) = self
            .entries
            .lock()
            .ok()
            .and_then(|mut c| c.get(&key).cloned())
        else {
            return Ok(None);
        };
        if !self.revalidate {
            return Ok(Some(entry));
        }
        match std::fs::metadata(path) {
            Ok(meta) => Ok((FileVersion::of(&meta) == entry.version).then_some(entry)),
            Err(err) => {
                self.invalidate(path);
                Err(err)
            }
        }
    }

    fn open_uncached(path: &Arc<Path>, direct: bool, cached_lookup: bool) -> Result<OpenFile> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        let opened = if cached_lookup {
            match open_resolved_from_cache(path) {
                Some(Ok(Some(file))) => Ok(file),
                Some(Ok(None)) => {
                    return Err(IoError::PathNotCached {
                        path: path.to_path_buf(),
                    })
                }
                Some(Err(err)) => Err(err),
                None => options.open(path),
            }
        } else {
            options.open(path)
        };
        let (file, direct) = match opened {
            Ok(file) => (file, direct),
            // Filesystems without O_DIRECT (some tmpfs, overlay setups) refuse it with EINVAL:
            // read them through the page cache instead.
            Err(err) if direct && err.raw_os_error() == Some(libc::EINVAL) => {
                (File::open(path).map_err(|e| IoError::open(path, e))?, false)
            }
            Err(err) => return Err(IoError::open(path, err)),
        };
        let meta = file.metadata().map_err(|e| IoError::open(path, e))?;
        if meta.is_dir() {
            return Err(IoError::open(
                path,
                std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
            ));
        }
        let direct_align = if direct { direct_alignment(&file) } else { 1 };
        Ok(OpenFile {
            path: Arc::clone(path),
            file,
            size: meta.size(),
            direct_align,
            version: FileVersion::of(&meta),
        })
    }

    /// Forget any descriptor for `path` (after writing or deleting it).
    pub fn invalidate(&self, path: &Path) {
        if let Ok(mut c) = self.entries.lock() {
            let path = path.to_path_buf();
            c.pop(&(path.clone(), false));
            c.pop(&(path, true));
        }
    }

    /// Forget every descriptor.
    pub fn clear(&self) {
        if let Ok(mut c) = self.entries.lock() {
            c.clear();
        }
    }
}

/// Whether `openat2` with `RESOLVE_CACHED` was found missing (kernels before 5.12, or a seccomp
/// filter): plain opens from then on.
static NO_RESOLVE_CACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open `path` read-only if the kernel resolves it from its directory entry cache alone
/// (`openat2` with `RESOLVE_CACHED`): `Ok(None)` when the lookup would read from disk; `None`
/// when the kernel cannot do such opens (the caller opens as usual).
fn open_resolved_from_cache(path: &Path) -> Option<std::io::Result<Option<File>>> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::Ordering;
    if NO_RESOLVE_CACHED.load(Ordering::Relaxed) {
        return None;
    }
    let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Some(Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)));
    };
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_CACHED,
    };
    // SAFETY: `name` is a NUL-terminated path and `how` a live `open_how` of the size passed;
    // the kernel reads both during the call and keeps neither.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if let Ok(fd) = i32::try_from(fd) {
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; nothing else owns it.
            return Some(Ok(Some(unsafe { File::from_raw_fd(fd) })));
        }
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Some(Ok(None)),
        // No openat2 (ENOSYS, or EPERM from a seccomp filter), or no RESOLVE_CACHED (EINVAL).
        Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG) => {
            NO_RESOLVE_CACHED.store(true, Ordering::Relaxed);
            None
        }
        _ => Some(Err(err)),
    }
}

/// A descriptor budget below the process's `RLIMIT_NOFILE`: a quarter of the soft limit, at most 4096.
#[must_use]
pub fn default_cache_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit struct.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let soft = if rc == 0 { limit.rlim_cur } else { 1024 };
    usize::try_from((soft / 4).clamp(16, 4096)).unwrap_or(256)
}

/// How many descriptors the reads of a reader may hold open at once beyond its cache: a batch over
/// more files than the process may open (`RLIMIT_NOFILE`) opens the later files as the reads of
/// earlier ones finish, instead of failing with "too many open files".
#[derive(Debug)]
pub(crate) struct FileBudget {
    held: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl FileBudget {
    /// A budget of `max` descriptors (at least 1).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            held: Mutex::new(0),
            freed: Condvar::new(),
            max: max.max(1),
        })
    }

    /// One descriptor's worth, waiting while the budget is spent.
    pub(crate) fn acquire(self: &Arc<Self>) -> FilePermit {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *held >= self.max {
            held = self
                .freed
                .wait(held)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *held += 1;
        FilePermit(Arc::clone(self))
    }

    /// Descriptors held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        *self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A descriptor's share of a [`FileBudget`], given back when dropped (when the last read of its
/// file is done).
#[derive(Debug)]
pub(crate) struct FilePermit(Arc<FileBudget>);

impl Drop for FilePermit {
    fn drop(&mut self) {
        let mut held = self
            .0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = held.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// Open (or check the cached descriptors of) `paths`, handing each result to `each` with its
/// position, in order, with a permit of `budget` taken before the open (the caller keeps it while
/// the file's reads are queued or running). On a cold cache each open is a disk round trip
/// (directory and inode blocks), so when the first few are slow the rest run on parallel threads,
/// keeping the disk busy instead of waiting on each in turn; when they are fast (cached), this
/// thread does all of them.
pub(crate) fn open_each(
    files: &FileCache,
    budget: &Arc<FileBudget>,
    paths: &[Arc<Path>],
    direct: bool,
    cached_lookup: bool,
    each: impl FnMut(usize, Result<Arc<OpenFile>>, FilePermit),
) {
    // An average open this slow means the disk is being read; a read that may not wait opens
    // on this thread (never in parallel), only what the dentry cache resolves.
    let slow_open = (!cached_lookup).then_some(Duration::from_micros(20));
    open_each_with(
        files,
        budget,
        paths,
        (direct, cached_lookup),
        slow_open,
        each,
    );
}

fn open_each_with(
    files: &FileCache,
    budget: &Arc<FileBudget>,
    paths: &[Arc<Path>],
    (direct, cached_lookup): (bool, bool),
    slow_open: Option<Duration>,
    mut each: impl FnMut(usize, Result<Arc<OpenFile>>, FilePermit),
) {
    /// Opens timed before deciding.
    const PROBE: usize = 8;
    let mut opening = Duration::ZERO;
    let probed = paths.len().min(PROBE);
    for (i, path) in paths.iter().enumerate().take(probed) {
        let permit = budget.acquire();
        let started = std::time::Instant::now();
        let file = files.open(path, direct, cached_lookup);
        opening += started.elapsed();
        each(i, file, permit);
    }
    let rest = &paths[probed..];
    let slow = slow_open.is_some_and(|t| opening >= t * u32::try_from(probed).unwrap_or(u32::MAX));
    if slow
        && rest.len() >= 2 * PROBE
        && open_in_parallel(
            files,
            budget,
            rest,
            probed,
            (direct, cached_lookup),
            &mut each,
        )
    {
        return;
    }
    for (i, path) in rest.iter().enumerate() {
        let permit = budget.acquire();
        each(probed + i, files.open(path, direct, cached_lookup), permit);
    }
}

/// Open `rest` (positions from `first` on) on up to 32 threads, handing each file to `each` in
/// order as it and those before it are open; false, with nothing opened, when no thread could
/// start (the process at its limit of threads: the caller opens them in turn).
fn open_in_parallel(
    files: &FileCache,
    budget: &Arc<FileBudget>,
    rest: &[Arc<Path>],
    first: usize,
    (direct, cached_lookup): (bool, bool),
    each: &mut impl FnMut(usize, Result<Arc<OpenFile>>, FilePermit),
) -> bool {
    /// Opens in flight.
    const THREADS: usize = 32;
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Opened = (usize, Result<Arc<OpenFile>>, FilePermit);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Opened>();
    std::thread::scope(|scope| {
        let mut started = 0;
        for _ in 0..THREADS.min(rest.len()) {
            let done_tx = done_tx.clone();
            let next = &next;
            // A thread that cannot start (the process at its limit) leaves its share to the
            // others.
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || loop {
                // The permit before the position: the lowest position not yet handed on is
                // always held by a thread with a permit, so the budget cannot be spent on later
                // files while this thread waits for an earlier one.
                let permit = budget.acquire();
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(path) = rest.get(i) else {
                    break;
                };
                // Every position gets a result, even if an open panics: this thread waits on them.
                let file = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    files.open(path, direct, cached_lookup)
                }))
                .unwrap_or_else(|_| {
                    Err(IoError::open(path, std::io::Error::other("open panicked")))
                });
                if done_tx.send((i, file, permit)).is_err() {
                    break;
                }
            });
            started += usize::from(spawned.is_ok());
        }
        drop(done_tx);
        if started == 0 {
            return false;
        }
        // Hand each file on as soon as it and those before it are open, while later ones still
        // open.
        let mut arrived: Vec<Option<(Result<Arc<OpenFile>>, FilePermit)>> =
            rest.iter().map(|_| None).collect();
        let mut handed = 0;
        for (i, file, permit) in &done_rx {
            arrived[i] = Some((file, permit));
            while let Some((file, permit)) = arrived.get_mut(handed).and_then(Option::take) {
                each(first + handed, file, permit);
                handed += 1;
            }
        }
        // Only if an opening thread died: its files fail rather than go unanswered.
        for (i, path) in rest.iter().enumerate().skip(handed) {
            let (file, permit) = arrived[i].take().unwrap_or_else(|| {
                let err = IoError::open(path, std::io::Error::other("open thread died"));
                (Err(err), budget.acquire())
            });
            each(first + i, file, permit);
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn cache_reopens_replaced_files() {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = dir.path().join("f").into();
        std::fs::write(&path, b"one").unwrap();
        let cache = FileCache::new(4, true);
        let a = cache.open(&path, false, false).unwrap();
        assert_eq!(a.size, 3);
        let b = cache.open(&path, false, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "unchanged file is reused");
        let tmp = dir.path().join("g");
        std::fs::File::create(&tmp)
            .unwrap()
            .write_all(b"longer")
            .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let c = cache.open(&path, false, false).unwrap();
        assert_eq!(c.size, 6);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.open(&path, false, false).unwrap_err().is_not_found());
        assert!(matches!(
            cache.open(&Arc::from(dir.path()), false, false),
            Err(IoError::Open { .. })
        ));
    }

    #[test]
    fn capacity_is_below_the_limit() {
        let n = default_cache_capacity();
        assert!((16..=4096).contains(&n));
    }

    #[test]
    fn parallel_opens_keep_order_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<Arc<Path>> = (0..100)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                if i != 57 {
                    std::fs::write(&p, vec![0u8; i]).unwrap();
                }
                Arc::from(p.as_path())
            })
            .collect();
        let files = FileCache::new(256, true);
        // A budget of 3 permits for 100 files and 32 threads: each permit is dropped as soon as
        // its file is handed on, so every file gets through (no deadlock).
        let budget = FileBudget::new(3);
        // Every open counts as slow: the parallel path; and as fast: the serial one.
        for slow in [Duration::ZERO, Duration::from_secs(60)] {
            let mut seen = Vec::new();
            open_each_with(
                &files,
                &budget,
                &paths,
                (false, false),
                Some(slow),
                |i, result, permit| {
                    assert!(budget.held() <= 3);
                    drop(permit);
                    match &result {
                        Ok(file) => assert_eq!(file.size, i as u64, "{i}"),
                        Err(err) => assert!(i == 57 && err.is_not_found(), "{i}: {err}"),
                    }
                    seen.push(i);
                },
            );
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
        }
    }
}
