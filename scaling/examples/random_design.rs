//! Writes a count matrix of random comparisons (uniformly random pairs, Thurstone observers with true
//! scores ~ U[0, N/4) JND) as CSV, for benchmarks of `jnd-scale` (e.g. its memory under /usr/bin/time):
//!
//!     cargo run --release -p scaling --example random_design -- N COMPARISONS SEED > counts.csv

use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N COMPARISONS SEED: numbers"))
        .collect();
    let [n, comparisons, seed] = args[..] else {
        panic!("usage: random_design N COMPARISONS SEED")
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
    let truth: Vec<f64> = (0..n)
        .map(|_| rng.random::<f64>() * n as f64 / 4.0)
        .collect();
    let d = scaling::simulate::random_design(&truth, comparisons, &mut rng);
    for i in 0..n {
        let row: Vec<String> = (0..n).map(|j| format!("{}", d.get(i, j))).collect();
        println!("{}", row.join(","));
    }
}
