//! `zuring._native.Sampler`: the crop sampler's prefetching iterator for Python.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use zuring_sampler::{
    ArraySpec, Geometry, Lookahead, Mode, Prefetcher, RankSplit, SamplerError, Schedule,
};

use crate::array::Array;
use crate::buffer::Buffer;
use crate::errors;

fn sampler_error(err: SamplerError) -> PyErr {
    match err {
        SamplerError::Config(message) => PyValueError::new_err(message),
        SamplerError::Read { array, source } => {
            let py_err = errors::array(source);
            Python::attach(|py| {
                let text = format!("array {array:?}: {}", py_err.value(py));
                PyErr::from_type(py_err.get_type(py), text)
            })
        }
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// What the iterations of one sampler share, under one lock so that a batch handed over and
/// counted is one step: an iteration started in another thread at that moment reads on after it.
#[derive(Default)]
struct Slot {
    /// The iteration running, if any: its number (from `start`) and its prefetcher.
    running: Option<(u64, Arc<Prefetcher>)>,
    /// Batches of the epoch served so far (the next iteration's first is the one after them).
    served: u64,
}

impl Slot {
    /// Iteration `run`'s prefetcher, if it is the one running (and was started in this
    /// process: a forked child iterates anew).
    fn prefetcher(&self, run: u64) -> Option<&Arc<Prefetcher>> {
        self.running
            .as_ref()
            .filter(|(id, p)| *id == run && p.in_this_process())
            .map(|(_, p)| p)
    }
}

/// The prefetching iterator behind `zuring.CropSampler`.
#[pyclass(module = "zuring._native", frozen)]
pub struct Sampler {
    geometry: Geometry,
    mode: Mode,
    batch_size: usize,
    seed: u64,
    rank: u64,
    world_size: u64,
    split: RankSplit,
    ahead: Lookahead,
    drop_last: bool,
    /// The iteration running and the batches served.
    slot: Mutex<Slot>,
    /// Iterations started.
    runs: AtomicU64,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("dims", &self.geometry.dims)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// One input: (name, the array Python opened, dimension names, strides per dimension,
/// dimensions taken whole). The sampler reads through Python's handle, so every array Python
/// opens (raw-bit types too) can be sampled, and its metadata is not read again.
type ArrayArg = (
    String,
    Py<Array>,
    Vec<String>,
    HashMap<String, u64>,
    Vec<String>,
);

impl Sampler {
    /// The iterations' shared slot, locked.
    fn slot(&self) -> PyResult<std::sync::MutexGuard<'_, Slot>> {
        self.slot
            .lock()
            .map_err(|_| PyRuntimeError::new_err("sampler lock poisoned"))
    }

    /// This rank's schedule of `epoch`.
    fn schedule(&self, epoch: u64) -> PyResult<Schedule> {
        Schedule::with_split(
            self.geometry.clone(),
            self.mode.clone(),
            self.seed,
            epoch,
            self.rank,
            self.world_size,
            self.split,
        )
        .map_err(sampler_error)
    }
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(signature = (arrays, crop, batch_size, seed, mode, grid_stride, ordered_dim, samples_per_epoch, region, rank, world_size, prefetch, drop_last, pad_ranks = false, readers = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        arrays: Vec<ArrayArg>,
        crop: HashMap<String, u64>,
        batch_size: usize,
        seed: u64,
        mode: &str,
        grid_stride: Option<HashMap<String, u64>>,
        ordered_dim: Option<String>,
        samples_per_epoch: Option<u64>,
        region: HashMap<String, (u64, u64)>,
        rank: u64,
        world_size: u64,
        prefetch: usize,
        drop_last: bool,
        pad_ranks: bool,
        readers: Option<i64>,
    ) -> PyResult<Self> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be positive"));
        }
        let depth = prefetch.max(1);
        let ahead = match readers.map(usize::try_from) {
            None => Lookahead::new(depth),
            Some(Ok(r)) if (1..=depth).contains(&r) => Lookahead { depth, readers: r },
            Some(_) => {
                return Err(PyValueError::new_err(format!(
                    "readers must be between 1 and prefetch ({depth}): got {} (the batches being read count towards prefetch)",
                    readers.unwrap_or_default()
                )))
            }
        };
        let specs: Vec<ArraySpec> = arrays
            .into_iter()
            .map(|(name, array, dims, strides, full)| ArraySpec {
                name,
                array: array.get().shared(),
                dims,
                strides: strides.into_iter().collect(),
                full,
            })
            .collect();
        let crop: BTreeMap<String, u64> = crop.into_iter().collect();
        let region: BTreeMap<String, (u64, u64)> = region.into_iter().collect();
        let geometry = Geometry::new(specs, &crop, &region).map_err(sampler_error)?;
        let stride_for = |given: Option<HashMap<String, u64>>| -> Vec<u64> {
            geometry
                .dims
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    given
                        .as_ref()
                        .and_then(|g| g.get(d).copied())
                        .unwrap_or(geometry.crop[i])
                })
                .collect()
        };
        let mode = match mode {
            "random" => Mode::Random { samples_per_epoch },
            "grid" => Mode::Grid {
                stride: stride_for(grid_stride),
            },
            "ordered" => {
                let dim = ordered_dim
                    .ok_or_else(|| PyValueError::new_err("mode='ordered' needs ordered_dim"))?;
                let index = geometry
                    .dims
                    .iter()
                    .position(|d| *d == dim)
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "ordered_dim {dim:?} is not a cropped dimension {:?}",
                            geometry.dims
                        ))
                    })?;
                Mode::Ordered {
                    stride: stride_for(grid_stride),
                    dim: index,
                }
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "mode must be 'random', 'grid' or 'ordered', not {other:?}"
                )))
            }
        };
        let sampler = Self {
            geometry,
            mode,
            batch_size,
            seed,
            rank,
            world_size,
            split: if pad_ranks {
                RankSplit::Pad
            } else {
                RankSplit::Drop
            },
            ahead,
            drop_last,
            slot: Mutex::default(),
            runs: AtomicU64::new(0),
        };
        // Check the schedule once (rank, strides) so that errors surface at construction.
        sampler.schedule(0)?;
        Ok(sampler)
    }

    /// Number of batches per epoch for this rank, or None when the epoch is endless.
    fn batches(&self) -> PyResult<Option<u64>> {
        Ok(self.schedule(0)?.len().map(|n| {
            let b = self.batch_size as u64;
            if self.drop_last {
                n / b
            } else {
                n.div_ceil(b)
            }
        }))
    }

    /// The cropped dimensions, in order.
    #[getter]
    fn dims(&self) -> Vec<String> {
        self.geometry.dims.clone()
    }

    /// Per array: its crop shape.
    fn crop_shapes(&self) -> Vec<Vec<u64>> {
        (0..self.geometry.arrays.len())
            .map(|a| self.geometry.crop_shape(a))
            .collect()
    }

    /// Batches of the epoch served so far (a state dict's `batches_served`).
    #[getter]
    fn served(&self) -> PyResult<u64> {
        Ok(self.slot()?.served)
    }

    #[setter]
    fn set_served(&self, served: u64) -> PyResult<()> {
        self.slot()?.served = served;
        Ok(())
    }

    /// Start an iteration: prefetching `epoch` from the first batch not yet served, the
    /// `served`-th of this process's share: batches `offset + k * batch_step` (a DataLoader
    /// worker's share of the rank's batches). Returns the iteration's number, for `next` and
    /// `stop`; an iteration running ends (its `next` raises).
    #[pyo3(signature = (epoch, offset = 0, batch_step = 1))]
    fn start(&self, py: Python<'_>, epoch: u64, offset: u64, batch_step: u64) -> PyResult<u64> {
        let schedule = self.schedule(epoch)?;
        // Choosing the first batch and installing the iteration are one step under the lock:
        // a batch another iteration hands over is counted before or after. The prefetcher's
        // threads start under it, with the GIL held throughout, so no fork (which needs the
        // GIL) can find the lock held.
        let (run, old) = {
            let mut slot = self.slot()?;
            let first_batch = slot
                .served
                .checked_mul(batch_step)
                .and_then(|b| b.checked_add(offset))
                .ok_or_else(|| PyValueError::new_err("batches served: out of range"))?;
            let prefetcher = Prefetcher::start(
                schedule,
                self.batch_size,
                first_batch,
                batch_step,
                self.ahead,
                self.drop_last,
            );
            let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
            (run, slot.running.replace((run, Arc::new(prefetcher))))
        };
        // Stopping the old prefetcher joins its readers: do it without the GIL.
        py.detach(move || drop(old));
        Ok(run)
    }

    /// Whether iteration `run` is the one running (not stopped, nor followed by another).
    fn running(&self, run: u64) -> PyResult<bool> {
        Ok(self.slot()?.prefetcher(run).is_some())
    }

    /// Iteration `run`'s next batch: per array (shape, writable buffer whose memory returns to
    /// the sampler's pool when released), plus the windows; None at the end of the epoch (the
    /// count of batches served then starts again at 0). A batch, or a batch's error, is counted
    /// served as it is handed over. Waits holding neither the GIL nor the sampler's lock, so
    /// other threads may start, stop or iterate meanwhile.
    #[allow(clippy::type_complexity)]
    fn next(
        &self,
        py: Python<'_>,
        run: u64,
    ) -> PyResult<Option<(Vec<(Vec<u64>, Buffer)>, Vec<Vec<u64>>)>> {
        let ended = || {
            PyRuntimeError::new_err(
                "this iteration of the sampler has ended: it was stopped, or the sampler was \
                 iterated again (its newest iterator reads the batches), or it was started in \
                 the process this one was forked from (iterate the sampler again here)",
            )
        };
        let Some(prefetcher) = self.slot()?.prefetcher(run).cloned() else {
            return Err(ended());
        };
        let pools = prefetcher.pools().to_vec();
        // The prefetcher is dropped here if the iteration was stopped meanwhile (its last
        // holder): joining its readers, without the GIL.
        let item = py.detach(move || prefetcher.next());
        {
            let mut slot = self.slot()?;
            // Ended while waiting: the batch is the newer iteration's to serve, not this one's.
            if slot.prefetcher(run).is_none() {
                return Err(ended());
            }
            // A failed batch is skipped too: iterating again continues after it.
            slot.served = if item.is_some() { slot.served + 1 } else { 0 };
        }
        let Some(item) = item else { return Ok(None) };
        let batch = item.map_err(sampler_error)?;
        let arrays = batch
            .arrays
            .into_iter()
            .zip(pools)
            .map(|((shape, data), pool)| {
                (shape, Buffer::from_vec(data, move |v| pool.give_back(v)))
            })
            .collect();
        Ok(Some((arrays, batch.windows)))
    }

    /// Stop iteration `run` (nothing when another one has started since).
    fn stop(&self, py: Python<'_>, run: u64) -> PyResult<()> {
        let old = {
            let mut slot = self.slot()?;
            if slot.running.as_ref().is_some_and(|(id, _)| *id == run) {
                slot.running.take()
            } else {
                None
            }
        };
        py.detach(move || drop(old));
        Ok(())
    }
}
