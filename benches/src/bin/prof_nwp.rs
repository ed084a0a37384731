use rand::{Rng, SeedableRng};
use std::time::Instant;
use zuring_array::{ArrayOptions, Context, ZarrArray};
fn main() {
    let name = std::env::args().nth(1).unwrap_or("nwp".into());
    let path = format!("target/bench-data/array/{name}.zarr");
    let ctx = Context::new(ArrayOptions {
        threads: 2,
        ..ArrayOptions::default()
    })
    .unwrap();
    let a = ZarrArray::open_with(std::path::Path::new(&path), ctx).unwrap();
    let shape = a.shape().to_vec();
    let es = if name == "nwp" { 4 } else { 2 };
    let crop = [4u64, 256, 256];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let batches: Vec<Vec<u64>> = (0..12)
        .map(|_| {
            (0..32)
                .flat_map(|_| {
                    shape
                        .iter()
                        .zip(crop)
                        .map(|(&n, c)| rng.gen_range(0..=n - c))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    let mut out = vec![0u8; 32 * 4 * 256 * 256 * es];
    for b in &batches {
        a.read_crops_into(b, &crop, &mut out).unwrap();
    }
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20);
    let t = Instant::now();
    for _ in 0..n {
        for b in &batches {
            a.read_crops_into(b, &crop, &mut out).unwrap();
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{name}: {:.0} MiB/s output",
        (n * 12 * out.len()) as f64 / s / 1048576.0
    );
}
