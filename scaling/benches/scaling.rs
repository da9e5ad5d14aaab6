//! Benchmarks against the times of the MATLAB toolbox pwcmp under GNU Octave on this machine kind
//! (see BENCHMARKS.md): one fit at N=20 / 10,000 and N=100 / 20,000 random comparisons (gaussian prior),
//! and a 1000-replicate observer bootstrap at N=8 / 50 observers.
//!
//!     cargo bench -p scaling --bench scaling

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scaling::{BootstrapOptions, ScaleOptions, bootstrap, scale, simulate};
use std::hint::black_box;
use std::time::Duration;

fn truth(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random::<f64>() * n as f64 / 4.0)
        .collect()
}

fn fits(c: &mut Criterion) {
    let mut group = c.benchmark_group("fit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (n, comparisons) in [(20, 10_000), (100, 20_000)] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = truth(n, &mut rng);
        let d = simulate::random_design(&t, comparisons, &mut rng);
        group.bench_function(format!("N{n}_{comparisons}_gaussian"), |b| {
            b.iter(|| scale(black_box(&d), &ScaleOptions::default()).unwrap())
        });
    }
    // The new scale point: N=1,000 in a sparse connected design, 100,000 comparisons, prior none
    // (Solver::Auto picks the sparse Newton-CG solver).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let t = truth(1000, &mut rng);
    let d = simulate::neighbour_design(&t, 5, 100_000, &mut rng);
    let none = scaling::ScaleOptions {
        prior: scaling::Prior::None,
        ..Default::default()
    };
    group.bench_function("N1000_100000_sparse_none", |b| {
        b.iter(|| scale(black_box(&d), &none).unwrap())
    });
    group.finish();
}

fn bootstraps(c: &mut Criterion) {
    let mut group = c.benchmark_group("bootstrap");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let t = truth(8, &mut rng);
    let observers = simulate::full_design(&t, 50, 1, &mut rng);
    let boot = BootstrapOptions {
        replicates: 1000,
        alpha: 0.05,
        seed: 1,
    };
    group.bench_function("N8_50obs_1000reps", |b| {
        b.iter(|| {
            bootstrap(
                black_box(&observers),
                &ScaleOptions::default(),
                &boot,
                &|| {},
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, fits, bootstraps);
criterion_main!(benches);
