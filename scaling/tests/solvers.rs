//! The dense and the sparse Newton solvers find the same optimum (prior none) on random connected
//! designs small enough for both.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scaling::{Prior, ScaleOptions, Solver, scale, simulate};

fn opts(solver: Solver) -> ScaleOptions {
    ScaleOptions {
        prior: Prior::None,
        solver,
        ..Default::default()
    }
}

#[test]
fn dense_and_sparse_give_the_same_optimum() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    for case in 0..12 {
        let n = rng.random_range(5..60);
        let truth: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 4.0).collect();
        let d = simulate::neighbour_design(&truth, 3, 40 * n, &mut rng);
        let (Ok(a), Ok(b)) = (
            scale(&d, &opts(Solver::Dense)),
            scale(&d, &opts(Solver::Sparse)),
        ) else {
            // a design with a unanimous group: both must refuse it
            assert!(
                scale(&d, &opts(Solver::Dense)).is_err()
                    && scale(&d, &opts(Solver::Sparse)).is_err()
            );
            continue;
        };
        // Both stop at a gradient of 1e-10 of the initial one; scores then agree to ~1e-9 JND
        // (the Hessian's smallest eigenvalue here is >= ~1): 1e-6 leaves room, 1e-3 would be a bug.
        for (k, (x, y)) in a.jnd.iter().zip(&b.jnd).enumerate() {
            assert!(
                (x - y).abs() < 1e-6,
                "case {case} N={n} condition {k}: {x} vs {y}"
            );
        }
        assert!((a.objective - b.objective).abs() < 1e-9 * a.objective.abs().max(1.0));
    }
}
