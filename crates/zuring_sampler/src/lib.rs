//! Random crops of one or more Zarr arrays for ML training.
//!
//! A [`Geometry`] places every array on shared, named dimensions (an array may be coarser than
//! the reference along a dimension by an integer factor, or take a dimension whole), a
//! [`Schedule`] says which windows an epoch visits (uniform random, a shuffled grid, or an
//! ordered walk) as a pure function of (seed, epoch, rank, world size), and a [`Prefetcher`]
//! reads batches ahead on zuring's threads and hands them over in order.

mod error;
mod geometry;
mod prefetch;
mod schedule;

pub use error::{Result, SamplerError};
pub use geometry::{ArraySpec, Geometry};
pub use prefetch::{Batch, BufferPool, Lookahead, Prefetcher};
pub use schedule::{Mode, RankSplit, Schedule};
