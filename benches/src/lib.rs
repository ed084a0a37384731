//! Shared helpers of the benchmarks: cache control, timing, and reporting as JSON lines plus a
//! table.

use std::path::Path;

/// Whether the page cache can be dropped (root on Linux).
#[must_use]
pub fn can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

/// Flush dirty pages and drop the page cache.
///
/// # Panics
/// When not permitted; check [`can_drop_caches`] first.
pub fn drop_caches() {
    std::process::Command::new("sync").status().expect("sync");
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
}

fn read_through(path: &Path) {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return;
    };
    let mut buf = vec![0u8; 1 << 20];
    while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
}

/// Read every file under `dir` (or the file `dir`) once so that it sits in the page cache.
pub fn warm(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            if d.is_file() {
                read_through(&d);
            }
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                read_through(&p);
            }
        }
    }
}

/// One measured result.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Benchmark name (the workload).
    pub bench: String,
    /// Who did the work (zuring backend or a peer).
    pub method: String,
    /// `warm` or `cold`.
    pub cache: &'static str,
    /// Seconds (best of the repeats).
    pub seconds: f64,
    /// Bytes delivered to the caller.
    pub bytes: u64,
    /// Operations (reads, crops, ...).
    pub ops: u64,
}

impl Measurement {
    /// A measurement of `method` on `bench`: `bytes` delivered and `ops` done in `seconds`.
    #[must_use]
    pub fn new(
        bench: String,
        method: &str,
        cache: &'static str,
        seconds: f64,
        (bytes, ops): (u64, u64),
    ) -> Self {
        Self {
            bench,
            method: method.into(),
            cache,
            seconds,
            bytes,
            ops,
        }
    }

    /// MiB/s.
    #[must_use]
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds
    }

    /// Operations per second.
    #[must_use]
    pub fn ops_s(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    /// Print as one JSON line.
    pub fn print_json(&self, extra: &serde_json::Value) {
        let mut v = serde_json::json!({
            "bench": self.bench, "method": self.method, "cache": self.cache,
            "seconds": self.seconds, "bytes": self.bytes, "ops": self.ops,
            "mib_s": self.mib_s(), "ops_s": self.ops_s(),
        });
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in more {
                obj.insert(k.clone(), x.clone());
            }
        }
        println!("{v}");
    }
}

/// Best seconds of each of `n` methods over `repeats` rounds in which they take turns, in an
/// order rotating from round to round (`run(m)` times method `m`), so a slow spell of the shared
/// machine (or of its virtual disk) hits every method rather than one. An untimed round comes
/// first: the first use of fresh memory in a process costs several times what later uses do on
/// this virtual machine (whichever method ran first paid for it: zuring's first whole read of sat
/// took 1-2 s, later ones 0.5 s).
pub fn take_turns(n: usize, repeats: usize, mut run: impl FnMut(usize) -> f64) -> Vec<f64> {
    for m in 0..n {
        run(m);
    }
    let mut best = vec![f64::INFINITY; n];
    for round in 0..repeats.max(1) {
        for k in 0..n {
            let m = (k + round) % n;
            best[m] = best[m].min(run(m));
        }
    }
    best
}

/// Print a table of measurements, with each method's ratio to `baseline` in the same
/// bench and cache state.
pub fn print_table(results: &[Measurement], baseline: &str) {
    println!(
        "\n| bench | cache | method | MiB/s | ops/s | x {baseline} |\n|---|---|---|---:|---:|---:|"
    );
    for m in results {
        let base = results
            .iter()
            .find(|b| b.bench == m.bench && b.cache == m.cache && b.method == baseline);
        let ratio = base.map_or("-".to_owned(), |b| format!("{:.2}", m.mib_s() / b.mib_s()));
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} |",
            m.bench,
            m.cache,
            m.method,
            m.mib_s(),
            m.ops_s(),
            ratio
        );
    }
}

/// Number of cores.
#[must_use]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Reset this process's peak resident memory (`VmHWM`) to its current size; false where the
/// kernel does not allow it (then [`peak_rss`] is the peak since the process started).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A field of `/proc/self/status` given in kB, in bytes (0 when unreadable).
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Peak resident memory (`VmHWM`) in bytes, since the last [`reset_peak`].
#[must_use]
pub fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// Resident memory (`VmRSS`) in bytes.
#[must_use]
pub fn current_rss() -> u64 {
    status_bytes("VmRSS:")
}

/// A new zuring context (empty caches) with one decode thread per core.
///
/// # Panics
/// When the context cannot be made (its thread pool cannot start).
#[must_use]
pub fn fresh_ctx() -> std::sync::Arc<zuring_array::Context> {
    zuring_array::Context::new(zuring_array::ArrayOptions {
        threads: cores(),
        ..zuring_array::ArrayOptions::default()
    })
    .expect("a zuring context")
}

/// A new zarrs array at `path` (created with its parents) with metadata `meta` (zarr.json text).
///
/// # Panics
/// When the directory, the store or the array cannot be made.
#[must_use]
pub fn zarrs_create(
    path: &Path,
    meta: &str,
) -> zarrs::array::Array<zarrs_filesystem::FilesystemStore> {
    use zarrs::storage::WritableStorageTraits;
    std::fs::create_dir_all(path).expect("the array's directory");
    let store = std::sync::Arc::new(zarrs_filesystem::FilesystemStore::new(path).expect("a store"));
    store
        .set(
            &zarrs::storage::StoreKey::new("zarr.json").expect("a key"),
            meta.as_bytes().to_vec().into(),
        )
        .expect("zarr.json written");
    zarrs::array::Array::open(store, "/").expect("the array opened")
}
