//! Where each array's crop lies for a window given in reference units.

use std::collections::BTreeMap;
use std::sync::Arc;

use zuring_array::ZarrArray;

use crate::error::{config, Result};

/// One input array and how it relates to the shared dimensions.
#[derive(Debug, Clone)]
pub struct ArraySpec {
    /// Name (the key of its batches).
    pub name: String,
    /// The array.
    pub array: Arc<ZarrArray>,
    /// Its dimension names, one per dimension.
    pub dims: Vec<String>,
    /// Per dimension name: how many reference units one of this array's steps spans (an
    /// hourly array against a 15-minute reference: `time -> 4`). Absent: 1.
    pub strides: BTreeMap<String, u64>,
    /// Dimensions taken whole (not cropped), e.g. `channel`.
    pub full: Vec<String>,
}

/// The shared sampling space: the cropped dimensions, the crop size and the valid window starts.
#[derive(Debug, Clone)]
pub struct Geometry {
    /// The arrays.
    pub arrays: Vec<ArraySpec>,
    /// The cropped dimensions, in order of first appearance.
    pub dims: Vec<String>,
    /// Crop size per cropped dimension, in reference units.
    pub crop: Vec<u64>,
    /// Window starts must be multiples of this per dimension (the least common multiple of the
    /// arrays' strides, so that every array's crop starts on one of its own samples).
    pub step: Vec<u64>,
    /// Smallest valid start per dimension (reference units).
    pub lo: Vec<u64>,
    /// Largest valid start per dimension (reference units, inclusive).
    pub hi: Vec<u64>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Geometry {
    /// Check the arrays against `crop` (size per dimension name, reference units) and an optional
    /// `region` (start..stop of window positions per dimension) and derive the sampling space.
    ///
    /// # Errors
    /// [`crate::SamplerError::Config`] naming the array and dimension: unknown dimension names, a
    /// crop larger than an array, a crop or region not on an array's grid, arrays that do not
    /// share any window.
    pub fn new(
        arrays: Vec<ArraySpec>,
        crop: &BTreeMap<String, u64>,
        region: &BTreeMap<String, (u64, u64)>,
    ) -> Result<Self> {
        if arrays.is_empty() {
            return Err(config("at least one array is needed"));
        }
        let mut dims: Vec<String> = Vec::new();
        for a in &arrays {
            if a.dims.len() != a.array.shape().len() {
                return Err(config(format!(
                    "array {:?} has {} dimensions but {} dimension names {:?} (set dimension_names in its metadata or pass them)",
                    a.name, a.array.shape().len(), a.dims.len(), a.dims
                )));
            }
            for name in a.strides.keys().chain(&a.full) {
                if !a.dims.contains(name) {
                    return Err(config(format!(
                        "array {:?} has no dimension {name:?} (its dimensions: {:?})",
                        a.name, a.dims
                    )));
                }
            }
            for d in &a.dims {
                if !a.full.contains(d) && !dims.contains(d) {
                    dims.push(d.clone());
                }
            }
        }
        for name in crop.keys().chain(region.keys()) {
            if !dims.contains(name) {
                return Err(config(format!("crop or region names dimension {name:?}, which no array crops (cropped: {dims:?})")));
            }
        }
        let mut sizes = Vec::new();
        let mut step = Vec::new();
        let mut lo = Vec::new();
        let mut hi = Vec::new();
        for d in &dims {
            let size = *crop
                .get(d)
                .ok_or_else(|| config(format!("no crop size for dimension {d:?}")))?;
            if size == 0 {
                return Err(config(format!("crop size 0 for dimension {d:?}")));
            }
            let mut s = 1u64;
            let mut extent = u64::MAX;
            for a in &arrays {
                let Some(i) = a.dims.iter().position(|x| x == d) else {
                    continue;
                };
                if a.full.contains(d) {
                    continue;
                }
                let stride = a.strides.get(d).copied().unwrap_or(1);
                if stride == 0 {
                    return Err(config(format!(
                        "array {:?}: stride 0 for dimension {d:?}",
                        a.name
                    )));
                }
                if size % stride != 0 {
                    return Err(config(format!(
                        "array {:?}: crop {size} along {d:?} is not a multiple of its stride {stride}", a.name
                    )));
                }
                let n = a.array.shape()[i];
                if size / stride > n {
                    return Err(config(format!(
                        "array {:?}: crop {} along {d:?} is larger than the array ({n})",
                        a.name,
                        size / stride
                    )));
                }
                s = s / gcd(s, stride) * stride;
                extent = extent.min(n.saturating_mul(stride));
            }
            let (mut a, mut b) = (0, extent - size);
            if let Some(&(start, stop)) = region.get(d) {
                a = a.max(start);
                b = b.min(stop.saturating_sub(size));
                if stop < start.saturating_add(size) {
                    return Err(config(format!(
                        "region {start}..{stop} along {d:?} is smaller than the crop ({size})"
                    )));
                }
            }
            let a = a.div_ceil(s) * s;
            if a > b {
                return Err(config(format!(
                    "no window of {size} along {d:?} fits every array (and the region)"
                )));
            }
            sizes.push(size);
            step.push(s);
            lo.push(a);
            hi.push(b / s * s);
        }
        Ok(Self {
            arrays,
            dims,
            crop: sizes,
            step,
            lo,
            hi,
        })
    }

    /// Number of valid starts along cropped dimension `i` (on the step grid).
    #[must_use]
    pub fn positions(&self, i: usize) -> u64 {
        (self.hi[i] - self.lo[i]) / self.step[i] + 1
    }

    /// Array `a`'s crop shape.
    #[must_use]
    pub fn crop_shape(&self, a: usize) -> Vec<u64> {
        let spec = &self.arrays[a];
        spec.dims
            .iter()
            .enumerate()
            .map(|(i, d)| match self.dims.iter().position(|x| x == d) {
                Some(j) if !spec.full.contains(d) => {
                    self.crop[j] / spec.strides.get(d).copied().unwrap_or(1)
                }
                _ => spec.array.shape()[i],
            })
            .collect()
    }

    /// Array `a`'s crop start for the window starting at `window` (reference units, one per
    /// cropped dimension), appended to `out`.
    pub fn array_start(&self, a: usize, window: &[u64], out: &mut Vec<u64>) {
        let spec = &self.arrays[a];
        for d in &spec.dims {
            match self.dims.iter().position(|x| x == d) {
                Some(j) if !spec.full.contains(d) => {
                    out.push(window[j] / spec.strides.get(d).copied().unwrap_or(1))
                }
                _ => out.push(0),
            }
        }
    }
}
