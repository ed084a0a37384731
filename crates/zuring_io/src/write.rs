//! Writes: whole files replaced atomically (temp file + rename), alone or many in parallel.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::error::{IoError, Result};

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.zuring-tmp.{}.{n}", std::process::id()))
}

/// Replace `path` with `data` atomically: readers see the old file or the new one, never a torn
/// mix, even if the process dies mid-write. Parent directories are created. With `fsync`, the
/// data and the directory entry are flushed to disk before returning.
///
/// # Errors
/// [`IoError::Write`] naming the path; the old file is untouched and no temp file is left.
pub fn write_atomic(path: &Path, data: &[u8], fsync: bool) -> Result<()> {
    replace_with(path, fsync, |file| file.write_all(data))
}

/// Replace `path` atomically (as [`write_atomic`]) with the concatenation of `parts`, written
/// from where they lie (vectored writes): a file assembled from many buffers, such as a shard
/// from its inner chunks and index, is never copied into one buffer first.
///
/// # Errors
/// [`IoError::Write`] naming the path; the old file is untouched and no temp file is left.
pub fn write_atomic_parts(path: &Path, parts: &[&[u8]], fsync: bool) -> Result<()> {
    replace_with(path, fsync, |file| write_all_vectored(file, parts))
}

/// Write every byte of `parts`, in order, in as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut std::fs::File, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::IoSlice;
    // The kernel takes at most IOV_MAX (1024) buffers a call.
    const IOV_MAX: usize = 1024;
    for group in parts.chunks(IOV_MAX) {
        let mut slices: Vec<IoSlice<'_>> = group
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// A part of a file being written: bytes, or a byte range of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes of the source file from `offset`.
    Copy {
        /// Where in the source file.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

/// Replace `path` atomically (as [`write_atomic`]) with the concatenation of `pieces`, whose
/// [`Piece::Copy`] ranges come from `source`: typically the old version of `path`, opened before
/// its contents were looked at, so the copy is of that version whatever has happened to `path`
/// since. Copies run in the kernel (`copy_file_range`, through `std::io::copy`) where the
/// filesystem allows, without passing through this process's memory.
///
/// # Errors
/// [`IoError::Write`] naming the path (a source shorter than a copy range included); the old
/// file is untouched and no temp file is left.
pub fn write_atomic_pieces(
    path: &Path,
    source: &std::fs::File,
    pieces: &[Piece<'_>],
    fsync: bool,
) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    replace_with(path, fsync, |file| {
        for piece in pieces {
            match *piece {
                Piece::Bytes(bytes) => file.write_all(bytes)?,
                Piece::Copy { offset, len } => {
                    let mut from = source;
                    from.seek(SeekFrom::Start(offset))?;
                    let copied = std::io::copy(&mut from.take(len), file)?;
                    if copied != len {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("source ends {} bytes into {offset}+{len}", copied),
                        ));
                    }
                }
            }
        }
        Ok(())
    })
}

/// Write `data` to `path`, which must not exist, atomically: readers (and other writers) see no
/// file or the whole of it, never a part, and of two writers creating `path` at once, from any
/// processes, one succeeds. Parent directories are created. With `fsync`, as [`write_atomic`].
///
/// # Errors
/// [`IoError::Write`] naming the path, of kind [`std::io::ErrorKind::AlreadyExists`] when
/// `path` exists (it is left as it was); no temp file is left.
pub fn write_new_atomic(path: &Path, data: &[u8], fsync: bool) -> Result<()> {
    finish_with(path, fsync, |file| file.write_all(data), Finish::New)
}

/// Write a temp file beside `path` with `fill`, then rename it over `path`.
fn replace_with(
    path: &Path,
    fsync: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    finish_with(path, fsync, fill, Finish::Replace)
}

/// How a written temp file takes its place.
#[derive(Clone, Copy)]
enum Finish {
    /// Renamed over the file there, if any.
    Replace,
    /// Linked in where no file is (`link` fails where one is), then unlinked.
    New,
}

/// Write a temp file beside `path` with `fill`, then put it in place as `finish` says. The temp
/// file is an unnamed one (`O_TMPFILE`) where the file system has them: it has no name until it
/// is whole, so a writer that dies meanwhile (killed, out of memory) leaves nothing behind, not
/// even a temp file. Where no file is at `path` yet (a new array's chunks) it is linked in as
/// `path` at once; else it is linked in under a temp name and renamed over the old version. The
/// parent directories are made only when the temp file cannot be created for their lack (a
/// write into an existing directory makes no `mkdir` and `stat` calls).
fn finish_with(
    path: &Path,
    fsync: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    finish: Finish,
) -> Result<()> {
    let parent = parent_of(path);
    let old = match finish {
        Finish::Replace => hold(path),
        Finish::New => None,
    };
    let Some(mut file) = unnamed_temp(parent.unwrap_or(Path::new(".")))? else {
        return finish_named(path, fsync, fill, finish, old);
    };
    (|| {
        fill(&mut file)?;
        if fsync {
            file.sync_all()?;
        }
        Ok(())
    })()
    .map_err(|e| IoError::write(path, e))?;
    place_unnamed(&file, path, fsync, finish, old)
}

/// Put the written unnamed file `file` in place as `path` ([`link_unnamed`]); where the file
/// system made it but cannot link it in (no hard links, a sandbox hiding `/proc`), its bytes
/// go to a named temp file instead.
fn place_unnamed(
    file: &std::fs::File,
    path: &Path,
    fsync: bool,
    finish: Finish,
    mut old: Option<std::fs::File>,
) -> Result<()> {
    if link_unnamed(file, path, finish, &mut old).map_err(|e| IoError::write(path, e))? {
        return sync_parent(parent_of(path), fsync);
    }
    let copy = |named: &mut std::fs::File| {
        use std::io::Seek;
        let mut from = file;
        from.seek(std::io::SeekFrom::Start(0))?;
        std::io::copy(&mut from, named).map(|_| ())
    };
    finish_named(path, fsync, copy, finish, old)
}

/// [`finish_with`] through a named temp file (`.<name>.zuring-tmp.<pid>.<n>` beside `path`),
/// where the file system has no unnamed files; `old` holds the version of `path` replaced.
fn finish_named(
    path: &Path,
    fsync: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    finish: Finish,
    old: Option<std::fs::File>,
) -> Result<()> {
    let parent = parent_of(path);
    let tmp = temp_path(path);
    let mut file = create_beside(&tmp, parent, path)?;
    let written = (|| {
        fill(&mut file)?;
        if fsync {
            file.sync_all()?;
        }
        drop(file);
        match finish {
            Finish::Replace => rename_over(&tmp, path, old),
            Finish::New => std::fs::hard_link(&tmp, path).map(|()| {
                let _ = std::fs::remove_file(&tmp);
            }),
        }
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::write(path, err));
    }
    sync_parent(parent, fsync)
}

/// Create the temp file `tmp`, making `parent` first if it is missing; errors name `parent`
/// or `path`, the file the temp file is for.
fn create_beside(tmp: &Path, parent: Option<&Path>, path: &Path) -> Result<std::fs::File> {
    let create = || std::fs::File::create(tmp);
    match parent {
        Some(parent) => making_dir(parent, create)?,
        None => create(),
    }
    .map_err(|e| IoError::write(path, e))
}

/// `open()`, made again once `dir` is made where it failed for want of it (a write into an
/// existing directory, the common case, makes no `mkdir` and `stat` calls). The outer error is
/// `dir`'s own, naming it.
fn making_dir<T>(dir: &Path, open: impl Fn() -> std::io::Result<T>) -> Result<std::io::Result<T>> {
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| IoError::write(dir, e))?;
            Ok(open())
        }
        opened => Ok(opened),
    }
}

/// The directory `path` is in, if it names one (`None` for a bare file name).
fn parent_of(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// Rename `tmp` over `path`, whose old version `old` holds (if there was one) and then closes
/// in the background. A `None` is looked at again: a file may have turned up since.
fn rename_over(tmp: &Path, path: &Path, old: Option<std::fs::File>) -> std::io::Result<()> {
    let old = old.or_else(|| hold(path));
    std::fs::rename(tmp, path)?;
    if let Some(old) = old {
        close_in_background(old);
    }
    Ok(())
}

/// With `fsync`, flush `parent`'s entries (the one just made or replaced) to disk.
fn sync_parent(parent: Option<&Path>, fsync: bool) -> Result<()> {
    if let (true, Some(parent)) = (fsync, parent) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| IoError::write(parent, e))?;
    }
    Ok(())
}

/// An unnamed file (`O_TMPFILE`) in `dir`, made first if it is missing; `None` where the file
/// system has no unnamed files (NFS, old kernels) or `/proc` is not mounted (linking one in
/// goes through `/proc/self/fd`): the caller writes a named temp file instead.
fn unnamed_temp(dir: &Path) -> Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::AtomicU8;
    // 0: not looked at yet, 1: `/proc/self/fd` is there, 2: it is not.
    static PROC: AtomicU8 = AtomicU8::new(0);
    if PROC.load(Ordering::Relaxed) == 0 {
        let there = Path::new("/proc/self/fd").is_dir();
        PROC.store(if there { 1 } else { 2 }, Ordering::Relaxed);
    }
    if PROC.load(Ordering::Relaxed) != 1 {
        return Ok(None);
    }
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
    };
    match making_dir(dir, open)? {
        Ok(file) => Ok(Some(file)),
        // No unnamed files here (EOPNOTSUPP, EISDIR and EINVAL are how file systems and old
        // kernels say it); anything else (a file where the directory should be, no permission)
        // is the named temp file's to report, naming the path.
        Err(_) => Ok(None),
    }
}

/// Give the unnamed file `file` the name `path` (`linkat` through `/proc/self/fd`, which
/// needs no privilege, unlike `AT_EMPTY_PATH`): linked in as `path` where no file was (`old`
/// is None), else under a temp name renamed over it (`old` then taken to be closed in the
/// background). A file at `path` already: for [`Finish::New`] the `AlreadyExists` error; for
/// [`Finish::Replace`] (one turned up since `path` was looked at) it is replaced all the same.
/// False, with nothing done, when the file cannot be linked in at all.
fn link_unnamed(
    file: &std::fs::File,
    path: &Path,
    finish: Finish,
    old: &mut Option<std::fs::File>,
) -> std::io::Result<bool> {
    if old.is_none() {
        match (link_at(file, path), finish) {
            (Ok(()), _) => return Ok(true),
            (Err(e), Finish::Replace) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            (Err(e), Finish::New) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(e)
            }
            (Err(_), _) => return Ok(false),
        }
    }
    let tmp = temp_path(path);
    if link_at(file, &tmp).is_err() {
        return Ok(false);
    }
    rename_over(&tmp, path, old.take()).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(true)
}

/// `linkat(AT_FDCWD, "/proc/self/fd/<file>", AT_FDCWD, path, AT_SYMLINK_FOLLOW)`.
#[allow(unsafe_code)]
fn link_at(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated strings that outlive the call; linkat reads them only.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Write many files atomically, in parallel; one result per item, in order.
pub fn write_many(items: &[(PathBuf, Bytes)], fsync: bool) -> Vec<Result<()>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, 8)
        .min(items.len().max(1));
    if threads <= 1 {
        return items
            .iter()
            .map(|(p, d)| write_atomic(p, d, fsync))
            .collect();
    }
    let next = AtomicU64::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<()>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((path, data)) = usize::try_from(i).ok().and_then(|i| items.get(i)) else {
            break;
        };
        let result = write_atomic(path, data, fsync);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| results.get(i)) {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
        }
    };
    // This thread writes too, so every item is written even when no other thread can start
    // (the process at its limit of threads).
    std::thread::scope(|scope| {
        for _ in 1..threads {
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or(Ok(()))
        })
        .collect()
}

/// Delete `path`. A missing file is not an error.
///
/// # Errors
/// [`IoError::Write`] naming the path.
pub fn remove(path: &Path) -> Result<()> {
    let old = hold(path);
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(old) = old {
                close_in_background(old);
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(IoError::write(path, err)),
    }
}

/// The file at `path`, if there is one, held by an `O_PATH` descriptor (no permission needed,
/// nothing read): a file replaced (renamed over) or removed while held is freed when the last
/// descriptor closes, not by the `rename` or `unlink` itself, so handing the holder to
/// [`close_in_background`] takes that work (its page cache, its blocks and, on a file system
/// mounted with `discard`, waiting for the device to discard them) off the writing thread.
/// A whole rewrite of the `nwp` benchmark array (512 files of ~190 KB) by the pool's two threads
/// alone: 135-190 ms with the replaced files held, 200-255 ms without (four runs each, taking
/// turns); with the writer threads rewrites get by default, 139-192 and 141-265.
fn hold(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .ok()
}

/// Close `file` on a background thread. Closing the last descriptor of a large file that was
/// replaced (renamed over) frees its page cache and disk blocks, which on ext4 takes 10-30 ms for
/// a 20 MB shard: a rewrite that kept the old file open to copy from it hands the descriptor here
/// instead of waiting for that. At most [`CLOSE_QUEUE`] files wait; past that, and in a forked
/// child (the thread belongs to the parent), `file` is closed at once.
pub fn close_in_background(file: std::fs::File) {
    use std::sync::OnceLock;
    static CLOSER: OnceLock<(u32, Option<crossbeam_channel::Sender<std::fs::File>>)> =
        OnceLock::new();
    let (pid, sender) = CLOSER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded::<std::fs::File>(CLOSE_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("zuring-close".into())
            .spawn(move || rx.into_iter().for_each(drop));
        (std::process::id(), spawned.ok().map(|_| tx))
    });
    match sender {
        Some(tx) if *pid == std::process::id() => {
            // Full or gone: closed here (dropping the returned file).
            let _ = tx.try_send(file);
        }
        _ => drop(file),
    }
}

/// How many files may wait for the background closer ([`close_in_background`]).
pub const CLOSE_QUEUE: usize = 16;

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn a_held_file_outlives_its_replacement_and_removal() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk");
        assert!(hold(&path).is_none(), "nothing to hold");
        std::fs::write(&path, vec![1u8; 100_000]).unwrap();
        let held = hold(&path).unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();
        write_atomic(&path, b"new", false).unwrap();
        // The old version: unlinked, whole, still there until the holder closes.
        let old = held.metadata().unwrap();
        assert_eq!((old.ino(), old.nlink(), old.len()), (ino, 0, 100_000));
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let held = hold(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(
            (
                held.metadata().unwrap().nlink(),
                held.metadata().unwrap().len()
            ),
            (0, 3)
        );
        // A link is held as itself (not followed): replacing it leaves its target alone.
        let target = dir.path().join("target");
        std::fs::write(&target, b"target").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let held = hold(&path).unwrap();
        write_atomic(&path, b"replaced the link", false).unwrap();
        assert!(held.metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"target");
        assert_eq!(std::fs::read(&path).unwrap(), b"replaced the link");
    }

    #[test]
    fn files_closed_in_background_are_closed() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let link = format!("/proc/self/fd/{}", file.as_raw_fd());
        // Replaced while open, as a rewritten shard is: the descriptor holds the old version.
        write_atomic(&path, b"new", false).unwrap();
        assert!(std::fs::read_link(&link)
            .unwrap()
            .to_string_lossy()
            .contains("(deleted)"));
        close_in_background(file);
        // Closed by the background thread soon after (the number may be reused, for another
        // file: then the link no longer names the deleted one).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(&link).is_ok_and(|l| l.to_string_lossy().contains("(deleted)")) {
            assert!(std::time::Instant::now() < deadline, "{link} still open");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn pieces_copy_ranges_of_the_source_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        let old: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        std::fs::write(&path, &old).unwrap();
        let source = std::fs::File::open(&path).unwrap();
        // Someone replaces the file after it was opened: the copy is still of the old version.
        write_atomic(&path, b"replaced", false).unwrap();
        let pieces = [
            Piece::Copy {
                offset: 70_000,
                len: 30_000,
            },
            Piece::Bytes(b"new"),
            Piece::Copy { offset: 5, len: 10 },
        ];
        write_atomic_pieces(&path, &source, &pieces, false).unwrap();
        let mut want = old[70_000..].to_vec();
        want.extend_from_slice(b"new");
        want.extend_from_slice(&old[5..15]);
        assert_eq!(std::fs::read(&path).unwrap(), want);
        // A range past the source's end fails and leaves the file as it was, with no temp file.
        let err = write_atomic_pieces(
            &path,
            &source,
            &[Piece::Copy {
                offset: 99_990,
                len: 20,
            }],
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("shard"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn parts_are_written_in_order_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        std::fs::write(&path, b"old version").unwrap();
        // More parts than one writev takes (IOV_MAX, 1024), empty ones among them, of sizes
        // that make the kernel stop inside a part now and then.
        let owned: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| {
                let len = [0usize, 1, 7, 4096, 70_000][i as usize % 5];
                (0..len).map(|k| (k as u32 ^ i) as u8).collect()
            })
            .collect();
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        write_atomic_parts(&path, &parts, false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), parts.concat());
        write_atomic_parts(&path, &[], true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("shard")]);
        // A directory in the way: an error naming the path, nothing left behind.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        let err = write_atomic_parts(&blocked, &parts[..3], false).unwrap_err();
        assert!(err.to_string().contains("blocked"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.bin");
        write_atomic(&path, b"first", true).unwrap();
        write_atomic(&path, b"second", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names_in(path.parent().unwrap()), ["c.bin"]);
    }

    /// The names of the entries of `dir`.
    fn names_in(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way of the rename: the write fails, the directory stays.
        let path = dir.path().join("d");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), b"x").unwrap();
        let err = write_atomic(&path, b"data", false).unwrap_err();
        assert!(matches!(err, IoError::Write { .. }));
        assert!(err.to_string().contains("d: write failed"));
        assert_eq!(std::fs::read(path.join("keep")).unwrap(), b"x");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn new_files_are_written_where_none_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/zarr.json");
        write_new_atomic(&path, b"first", false).unwrap();
        let err = write_new_atomic(&path, b"second", true).unwrap_err();
        match &err {
            IoError::Write { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("zarr.json"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(names_in(path.parent().unwrap()), ["zarr.json"]);
        // A file where a parent directory should be: the error names the directory.
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = write_atomic(&dir.path().join("file/sub/c"), b"x", false).unwrap_err();
        assert!(err.to_string().contains("file/sub"), "{err}");
    }

    #[test]
    fn a_new_file_is_unnamed_until_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0");
        // While a new file is written, nothing in its directory names it or a temp file: a
        // reader (or a crash) meets no file at all, or the whole of it.
        for finish in [Finish::Replace, Finish::New] {
            let _ = std::fs::remove_file(&path);
            let fill = |file: &mut std::fs::File| {
                assert_eq!(names_in(path.parent().unwrap()), Vec::<String>::new());
                file.write_all(b"chunk")
            };
            finish_with(&path, true, fill, finish).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"chunk");
            assert_eq!(names_in(path.parent().unwrap()), ["0"]);
        }
        // Made with the mode a created file gets (0o666 less the umask), as a replaced one.
        let replaced = dir.path().join("c/1");
        std::fs::write(&replaced, b"old").unwrap();
        write_atomic(&replaced, b"new", false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let created = dir.path().join("c/created");
        std::fs::File::create(&created).unwrap();
        assert_eq!(mode(&path), mode(&created));
        assert_eq!(mode(&replaced), mode(&created));
    }

    #[test]
    fn a_file_turning_up_while_a_new_one_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk");
        // Another writer makes the file after this one found none: a replacing write replaces
        // it, a write of a new file fails with AlreadyExists and leaves it; no temp file stays.
        let meanwhile = |file: &mut std::fs::File| {
            std::fs::write(&path, b"theirs")?;
            file.write_all(b"ours")
        };
        finish_with(&path, false, meanwhile, Finish::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ours");
        std::fs::remove_file(&path).unwrap();
        let err = finish_with(&path, false, meanwhile, Finish::New).unwrap_err();
        match &err {
            IoError::Write { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        assert_eq!(names_in(dir.path()), ["chunk"]);
        // A failing fill leaves nothing either.
        std::fs::remove_file(&path).unwrap();
        let failing = |_: &mut std::fs::File| Err(std::io::Error::other("encoder failed"));
        let err = finish_with(&path, false, failing, Finish::Replace).unwrap_err();
        assert!(err.to_string().contains("chunk"), "{err}");
        assert_eq!(names_in(dir.path()), Vec::<String>::new());
    }

    #[test]
    #[allow(unsafe_code)] // _exit
    fn a_writer_dying_mid_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = dir.path().join("c");
        std::fs::create_dir(&chunks).unwrap();
        std::fs::write(chunks.join("1"), b"old version").unwrap();
        // A child process dies halfway through writing a new file and a replacement: no temp
        // file stays (a killed writer's named temp files would sit among the chunks for good),
        // the old version is whole.
        for name in ["0", "1"] {
            let path = chunks.join(name);
            let die = |file: &mut std::fs::File| {
                file.write_all(&[7; 1 << 20])?;
                // SAFETY: ends the forked child at once, as intended, mid-write.
                unsafe { libc::_exit(0) }
            };
            let code = crate::testing::fork_while_held(
                |forked| forked(),
                || finish_with(&path, false, die, Finish::Replace).is_ok(),
                std::time::Duration::from_secs(20),
            );
            assert_eq!(code, Some(0), "the child died in the write");
            assert_eq!(names_in(&chunks), ["1"], "after dying writing {name}");
            assert_eq!(std::fs::read(chunks.join("1")).unwrap(), b"old version");
        }
    }

    #[test]
    fn named_temp_files_where_there_are_no_unnamed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = &dir.path().join("a/b/chunk");
        // Written under a temp name beside the file, then renamed or linked in; a failing fill
        // or a file already there for a new one leaves no temp file and the old file whole.
        let fill = |data: &'static [u8]| {
            move |file: &mut std::fs::File| {
                assert_eq!(
                    names_in(path.parent().unwrap()).len(),
                    1 + usize::from(path.exists())
                );
                file.write_all(data)
            }
        };
        finish_named(path, true, fill(b"first"), Finish::New, None).unwrap();
        finish_named(path, false, fill(b"second"), Finish::Replace, hold(path)).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"second");
        let err = finish_named(path, false, fill(b"third"), Finish::New, None).unwrap_err();
        assert!(err.to_string().contains("chunk"), "{err}");
        let failing = |_: &mut std::fs::File| Err(std::io::Error::other("encoder failed"));
        let err = finish_named(path, false, failing, Finish::Replace, None).unwrap_err();
        assert!(err.to_string().contains("encoder failed"), "{err}");
        assert_eq!(std::fs::read(path).unwrap(), b"second");
        assert_eq!(names_in(path.parent().unwrap()), ["chunk"]);
        // A file where a parent directory should be: the error names the directory.
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = finish_named(
            &dir.path().join("file/sub/c"),
            false,
            fill(b""),
            Finish::New,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("file/sub"), "{err}");
    }

    #[test]
    fn an_unnamed_file_that_cannot_be_linked_in_is_copied() {
        use std::os::unix::fs::MetadataExt;
        // An unnamed file on another file system than its target (linkat fails, EXDEV), as on
        // one that has unnamed files but no hard links: its bytes are written under a temp name
        // and put in place, for a new file and over an old one.
        let dir = tempfile::tempdir().unwrap();
        let shm = Path::new("/dev/shm");
        let other_device = std::fs::metadata(shm)
            .is_ok_and(|m| m.dev() != std::fs::metadata(dir.path()).unwrap().dev());
        if !other_device {
            eprintln!("skipped: no /dev/shm on another file system than the temp directory");
            return;
        }
        let path = dir.path().join("chunk");
        for (finish, data) in [(Finish::New, b"first"), (Finish::Replace, b"again")] {
            let Some(mut file) = unnamed_temp(shm).unwrap() else {
                return; // no unnamed files in /dev/shm: nothing to check
            };
            file.write_all(data).unwrap();
            place_unnamed(&file, &path, true, finish, hold(&path)).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data);
            assert_eq!(names_in(dir.path()), ["chunk"]);
        }
        let mut file = unnamed_temp(shm).unwrap().unwrap();
        file.write_all(b"third").unwrap();
        let err = place_unnamed(&file, &path, false, Finish::New, None).unwrap_err();
        assert!(err.to_string().contains("chunk"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        assert_eq!(names_in(dir.path()), ["chunk"]);
    }

    #[test]
    fn many_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<(PathBuf, Bytes)> = (0..20)
            .map(|i| {
                (
                    dir.path().join(format!("x/{i}")),
                    Bytes::from(vec![i as u8; i]),
                )
            })
            .collect();
        let results = write_many(&items, false);
        assert!(results.iter().all(Result::is_ok));
        for (p, d) in &items {
            assert_eq!(std::fs::read(p).unwrap(), d.to_vec());
        }
        remove(&items[3].0).unwrap();
        remove(&items[3].0).unwrap();
        assert!(!items[3].0.exists());
    }
}
