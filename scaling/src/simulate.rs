//! Simulated Thurstone case V observers with known true scores, for tests, benchmarks and examples:
//! an observer prefers a over b with probability Phi((q_a - q_b) / 1.4826), so 1 JND = 75%.

use crate::counts::CountMatrix;
use crate::normal::cdf;
use crate::objective::SIGMA;
use nalgebra::DMatrix;
use rand::Rng;

/// One simulated answer: is `a` chosen over `b`?
pub fn prefers(q_a: f64, q_b: f64, rng: &mut impl Rng) -> bool {
    rng.random::<f64>() < cdf((q_a - q_b) / SIGMA)
}

/// `comparisons` answers, each on a uniformly random pair of distinct conditions.
pub fn random_design(truth: &[f64], comparisons: usize, rng: &mut impl Rng) -> CountMatrix {
    let n = truth.len();
    assert!(n >= 2, "need two conditions");
    let mut d = DMatrix::zeros(n, n);
    for _ in 0..comparisons {
        let i = rng.random_range(0..n);
        let j = (i + rng.random_range(1..n)) % n;
        if prefers(truth[i], truth[j], rng) {
            d[(i, j)] += 1.0;
        } else {
            d[(j, i)] += 1.0;
        }
    }
    CountMatrix::new(d, None).expect("valid counts")
}

/// Per-observer matrices of a full design: each observer compares every pair `reps` times.
pub fn full_design(
    truth: &[f64],
    observers: usize,
    reps: usize,
    rng: &mut impl Rng,
) -> Vec<CountMatrix> {
    let n = truth.len();
    (0..observers)
        .map(|_| {
            let mut d = DMatrix::zeros(n, n);
            for i in 0..n {
                for j in i + 1..n {
                    for _ in 0..reps {
                        if prefers(truth[i], truth[j], rng) {
                            d[(i, j)] += 1.0;
                        } else {
                            d[(j, i)] += 1.0;
                        }
                    }
                }
            }
            CountMatrix::new(d, None).expect("valid counts")
        })
        .collect()
}

/// A sparse connected design, as active sampling produces: each condition is compared with its
/// `neighbours` nearest in index order (a band, wrapped into a ring) and with one random partner;
/// `comparisons` answers spread uniformly over those pairs.
pub fn neighbour_design(
    truth: &[f64],
    neighbours: usize,
    comparisons: usize,
    rng: &mut impl Rng,
) -> CountMatrix {
    let n = truth.len();
    assert!(
        n >= 3 && neighbours >= 1,
        "need three conditions and a neighbour"
    );
    let mut pairs = Vec::new();
    for i in 0..n {
        for k in 1..=neighbours.min(n - 1) {
            pairs.push((i, (i + k) % n));
        }
        pairs.push((i, (i + rng.random_range(1..n)) % n));
    }
    let mut d = DMatrix::zeros(n, n);
    for _ in 0..comparisons {
        let (i, j) = pairs[rng.random_range(0..pairs.len())];
        if prefers(truth[i], truth[j], rng) {
            d[(i, j)] += 1.0;
        } else {
            d[(j, i)] += 1.0;
        }
    }
    CountMatrix::new(d, None).expect("valid counts")
}
