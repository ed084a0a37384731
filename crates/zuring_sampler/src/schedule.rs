//! Which windows an epoch visits, as a pure function of (seed, epoch, rank, world size).

use crate::error::{config, Result};
use crate::geometry::Geometry;

/// How windows are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Uniform random starts; `samples_per_epoch` windows per epoch (all ranks together), or an
    /// endless epoch when `None`.
    Random {
        /// Windows per epoch.
        samples_per_epoch: Option<u64>,
    },
    /// Every start on a grid with `stride` (reference units per cropped dimension; multiples of
    /// the geometry's step), once per epoch, shuffled.
    Grid {
        /// Grid stride per cropped dimension.
        stride: Vec<u64>,
    },
    /// Every start on the grid, in order, walking dimension `dim` slowest (a time series read in
    /// time order).
    Ordered {
        /// Grid stride per cropped dimension.
        stride: Vec<u64>,
        /// The dimension walked in order (outermost).
        dim: usize,
    },
}

/// How an epoch's windows are split between ranks when their number does not divide evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankSplit {
    /// Every rank gets `windows / world_size` windows; the remainder is left out (a shuffled
    /// grid leaves out different windows each epoch).
    #[default]
    Drop,
    /// Every rank gets `ceil(windows / world_size)` windows: the epoch is extended by repeating
    /// its first windows (as torch's `DistributedSampler` does by default), so every window is
    /// visited and a few twice.
    Pad,
}

/// SplitMix64: a counter-based generator; any sample's randomness is computed directly from
/// its index, which makes positions resumable and rank-splittable without replaying.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uniform(key: u64, n: u64) -> u64 {
    // Lemire's multiply-shift: unbiased enough for n far below 2^64.
    ((u128::from(mix(key)) * u128::from(n)) >> 64) as u64
}

/// The windows of one epoch for one rank.
#[derive(Debug, Clone)]
pub struct Schedule {
    geometry: Geometry,
    mode: Mode,
    seed: u64,
    epoch: u64,
    rank: u64,
    world_size: u64,
    split: RankSplit,
    /// Grid modes: the (shuffled or ordered) list of grid cell indices for this rank.
    cells: Vec<u64>,
    grid: Vec<u64>,
    stride: Vec<u64>,
}

impl Schedule {
    /// The schedule of `epoch` for `rank` of `world_size`, the remainder that does not divide
    /// evenly between ranks left out ([`RankSplit::Drop`]).
    ///
    /// # Errors
    /// [`crate::SamplerError::Config`] for a bad rank, or a grid stride that is not a positive
    /// multiple of the geometry's step.
    pub fn new(
        geometry: Geometry,
        mode: Mode,
        seed: u64,
        epoch: u64,
        rank: u64,
        world_size: u64,
    ) -> Result<Self> {
        Self::with_split(
            geometry,
            mode,
            seed,
            epoch,
            rank,
            world_size,
            RankSplit::Drop,
        )
    }

    /// The schedule of `epoch` for `rank` of `world_size`, with the remainder that does not
    /// divide evenly between ranks handled by `split`.
    ///
    /// # Errors
    /// As [`Schedule::new`].
    pub fn with_split(
        geometry: Geometry,
        mode: Mode,
        seed: u64,
        epoch: u64,
        rank: u64,
        world_size: u64,
        split: RankSplit,
    ) -> Result<Self> {
        if world_size == 0 || rank >= world_size {
            return Err(config(format!("rank {rank} is not in 0..{world_size}")));
        }
        let mut schedule = Self {
            geometry,
            mode,
            seed,
            epoch,
            rank,
            world_size,
            split,
            cells: Vec::new(),
            grid: Vec::new(),
            stride: Vec::new(),
        };
        let stride = match &schedule.mode {
            Mode::Random { .. } => None,
            Mode::Grid { stride } | Mode::Ordered { stride, .. } => Some(stride.clone()),
        };
        if let Some(stride) = stride {
            let g = &schedule.geometry;
            if stride.len() != g.dims.len() {
                return Err(config(format!(
                    "grid stride needs {} values (dimensions {:?})",
                    g.dims.len(),
                    g.dims
                )));
            }
            for (i, (&s, &step)) in stride.iter().zip(&g.step).enumerate() {
                if s == 0 || s % step != 0 {
                    return Err(config(format!(
                        "grid stride {s} along {:?} must be a positive multiple of {step}",
                        g.dims[i]
                    )));
                }
            }
            schedule.grid = (0..g.dims.len())
                .map(|i| (g.hi[i] - g.lo[i]) / stride[i] + 1)
                .collect();
            schedule.stride = stride;
            let total: u64 = schedule.grid.iter().product();
            let cells: Vec<u64> = match &schedule.mode {
                Mode::Ordered { dim, .. } => {
                    // Order cells with `dim` outermost, then the others in their order.
                    let n = schedule.grid.len();
                    let mut order: Vec<usize> = vec![*dim];
                    order.extend((0..n).filter(|i| i != dim));
                    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
                    for k in 0..total {
                        // Digits of k in `order` (first = slowest), converted to a C-order index.
                        let mut rest = k;
                        let mut digits = vec![0u64; n];
                        for &i in order.iter().rev() {
                            digits[i] = rest % schedule.grid[i];
                            rest /= schedule.grid[i];
                        }
                        out.push(
                            digits
                                .iter()
                                .zip(&schedule.grid)
                                .fold(0, |acc, (d, g)| acc * g + d),
                        );
                    }
                    out
                }
                _ => {
                    let mut cells: Vec<u64> = (0..total).collect();
                    // Fisher-Yates with the counter-based generator.
                    for i in (1..cells.len()).rev() {
                        let j = uniform(seed ^ mix(epoch) ^ mix(i as u64 + 0x5EED), i as u64 + 1);
                        cells.swap(i, usize::try_from(j).unwrap_or(0));
                    }
                    cells
                }
            };
            // Ranks take every world_size-th cell: disjoint, and equal in number so every rank
            // runs the same number of steps (the tail that does not divide evenly is dropped, or
            // the list padded with its own first cells, cyclically).
            let per_rank = schedule.per_rank(total);
            schedule.cells = (0..per_rank)
                .filter_map(|i| {
                    let at = (i * world_size + rank) % total.max(1);
                    cells.get(usize::try_from(at).ok()?).copied()
                })
                .collect();
        }
        Ok(schedule)
    }

    /// The geometry.
    #[must_use]
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Each rank's share of `total` windows.
    fn per_rank(&self, total: u64) -> u64 {
        match self.split {
            RankSplit::Drop => total / self.world_size,
            RankSplit::Pad => total.div_ceil(self.world_size),
        }
    }

    /// Windows this rank sees in the epoch; `None` when endless.
    #[must_use]
    pub fn len(&self) -> Option<u64> {
        match &self.mode {
            Mode::Random { samples_per_epoch } => samples_per_epoch.map(|n| self.per_rank(n)),
            _ => Some(self.cells.len() as u64),
        }
    }

    /// Whether the epoch has no windows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The start (reference units, one per cropped dimension) of this rank's `i`-th window, or
    /// `None` past the end of the epoch.
    #[must_use]
    pub fn window(&self, i: u64) -> Option<Vec<u64>> {
        if self.len().is_some_and(|n| i >= n) {
            return None;
        }
        let g = &self.geometry;
        match &self.mode {
            Mode::Random { samples_per_epoch } => {
                let mut global = i * self.world_size + self.rank;
                if let Some(n) = samples_per_epoch.filter(|&n| n > 0) {
                    // (Padded: the epoch's first windows again.)
                    global %= n;
                }
                Some(
                    (0..g.dims.len())
                        .map(|d| {
                            let key = self.seed
                                ^ mix(self.epoch.wrapping_mul(0x1000_0001)
                                    ^ mix(global.wrapping_mul(31) + d as u64));
                            g.lo[d] + uniform(key, g.positions(d)) * g.step[d]
                        })
                        .collect(),
                )
            }
            _ => {
                let mut cell = *self.cells.get(usize::try_from(i).ok()?)?;
                let mut out = vec![0u64; g.dims.len()];
                for d in (0..g.dims.len()).rev() {
                    out[d] = g.lo[d] + (cell % self.grid[d]) * self.stride[d];
                    cell /= self.grid[d];
                }
                Some(out)
            }
        }
    }
}
