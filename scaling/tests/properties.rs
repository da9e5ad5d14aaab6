//! Invariances of the model (proptest): relabelling conditions permutes the scores, swapping every
//! answer negates them, fix0 is mean0 shifted, and more votes for a condition never lower it.

#![allow(clippy::needless_range_loop)] // square count matrices are indexed by condition pairs

use proptest::prelude::*;
use scaling::{CountMatrix, Prior, Regularization, ScaleOptions, scale};

/// Random designs in which every compared pair has votes both ways (a finite optimum exists).
fn design() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (2usize..7).prop_flat_map(|n| {
        proptest::collection::vec((0u32..3, 1u32..15, 1u32..15), n * (n - 1) / 2).prop_map(
            move |pairs| {
                let mut rows = vec![vec![0.0; n]; n];
                let mut k = 0;
                for i in 0..n {
                    for j in i + 1..n {
                        let (skip, a, b) = pairs[k];
                        k += 1;
                        // about a third of the pairs uncompared, but keep the chain i, i+1 connected
                        if skip == 0 && j != i + 1 {
                            continue;
                        }
                        rows[i][j] = a as f64;
                        rows[j][i] = b as f64;
                    }
                }
                rows
            },
        )
    })
}

fn opts(prior: bool) -> ScaleOptions {
    ScaleOptions {
        prior: if prior { Prior::Gaussian } else { Prior::None },
        ..Default::default()
    }
}

proptest! {
    // A fixed seed: the same 48 designs on every run.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(20240501),
        ..ProptestConfig::with_cases(48)
    })]

    #[test]
    fn permuting_conditions_permutes_scores(rows in design(), prior in any::<bool>(), rot in 1usize..6) {
        let n = rows.len();
        let perm: Vec<usize> = (0..n).map(|i| (i + rot) % n).collect();
        let permuted: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| rows[perm[i]][perm[j]]).collect()).collect();
        let a = scale(&CountMatrix::from_rows(&rows, None).unwrap(), &opts(prior)).unwrap();
        let b = scale(&CountMatrix::from_rows(&permuted, None).unwrap(), &opts(prior)).unwrap();
        for i in 0..n {
            prop_assert!((b.jnd[i] - a.jnd[perm[i]]).abs() < 1e-6, "{:?} vs {:?}", a.jnd, b.jnd);
        }
    }

    #[test]
    fn swapping_every_answer_negates_scores(rows in design(), prior in any::<bool>()) {
        let n = rows.len();
        let swapped: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| rows[j][i]).collect()).collect();
        let a = scale(&CountMatrix::from_rows(&rows, None).unwrap(), &opts(prior)).unwrap();
        let b = scale(&CountMatrix::from_rows(&swapped, None).unwrap(), &opts(prior)).unwrap();
        for i in 0..n {
            prop_assert!((a.jnd[i] + b.jnd[i]).abs() < 1e-6, "{:?} vs {:?}", a.jnd, b.jnd);
        }
    }

    #[test]
    fn fix0_is_mean0_translated(rows in design(), prior in any::<bool>()) {
        let d = CountMatrix::from_rows(&rows, None).unwrap();
        let mean0 = scale(&d, &opts(prior)).unwrap();
        let fix0 = scale(&d, &ScaleOptions { regularization: Regularization::Fix0, ..opts(prior) }).unwrap();
        prop_assert!(fix0.jnd[0] == 0.0);
        prop_assert!(mean0.jnd.iter().sum::<f64>().abs() < 1e-9);
        for i in 0..rows.len() {
            prop_assert!((fix0.jnd[i] - fix0.jnd[0] - (mean0.jnd[i] - mean0.jnd[0])).abs() < 1e-6);
        }
        prop_assert!((fix0.objective - mean0.objective).abs() < 1e-7 * mean0.objective.abs());
    }

    #[test]
    fn an_extra_win_never_lowers_the_winner(rows in design(), i in 0usize..6) {
        let n = rows.len();
        let i = i % n;
        let j = (i + 1) % n;
        let mut more = rows.clone();
        more[i][j] += 1.0;
        let a = scale(&CountMatrix::from_rows(&rows, None).unwrap(), &opts(false)).unwrap();
        let b = scale(&CountMatrix::from_rows(&more, None).unwrap(), &opts(false)).unwrap();
        prop_assert!(b.jnd[i] - b.jnd[j] >= a.jnd[i] - a.jnd[j] - 1e-7, "{:?} -> {:?}", a.jnd, b.jnd);
    }
}
