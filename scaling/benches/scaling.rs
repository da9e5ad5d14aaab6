//! Benchmarks against the times of the MATLAB toolbox pwcmp under GNU Octave on this machine kind
//! (see BENCHMARKS.md): one fit at N=20 / 10,000 and N=100 / 20,000 random comparisons (gaussian prior),
//! and a 1000-replicate observer bootstrap at N=8 / 50 observers; and power planning as the results page
//! runs it (200 synthetic studies per candidate total).
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
    // Scores within 2 JND: with the scores of `truth` (up to N/4 = 250 JND apart) neighbours in the
    // design differ so much that some group wins every comparison and prior none has no optimum.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let t: Vec<f64> = (0..1000).map(|_| rng.random::<f64>() * 2.0).collect();
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

fn power_plans(c: &mut Criterion) {
    use scaling::power::{Design, PowerOptions, plan};
    let mut group = c.benchmark_group("power");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (n, per_pair) in [(4, 60), (4, 3000), (10, 30)] {
        // a full design with `per_pair` answers per pair, from known scores 0.4 JND apart
        let t: Vec<f64> = (0..n).map(|i| 0.4 * i as f64).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let d = simulate::full_design(&t, 1, per_pair, &mut rng).remove(0);
        let fit = scale(&d, &ScaleOptions::default()).unwrap();
        let design = Design::observed(&d, &Design::full(n).pairs()).unwrap();
        let opts = PowerOptions {
            target: 0.5,
            replicates: 200,
            ..Default::default()
        };
        let so_far = d.total() as usize;
        group.bench_function(format!("N{n}_{so_far}_answers"), |b| {
            b.iter(|| plan(black_box(&d), &fit.jnd, &design, &opts).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, fits, bootstraps, power_plans);
criterion_main!(benches);
