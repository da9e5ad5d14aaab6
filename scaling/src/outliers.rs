//! Observer outlier analysis as pwcmp's `pw_outlier_analysis`: how well does the model fitted to
//! everyone else predict each observer's answers?

use crate::comparisons::sum_matrices;
use crate::counts::CountMatrix;
use crate::error::Result;
use crate::fit::{ScaleOptions, scale};
use crate::normal::log_cdf;
use crate::objective::SIGMA;
use crate::quantile::quantile;
use rayon::prelude::*;
use serde::Serialize;

/// dist_L at or above which an observer is flagged (the usual 1.5 IQR fence).
pub const OUTLIER_FENCE: f64 = 1.5;

#[derive(Debug, Clone, Serialize)]
pub struct ObserverFit {
    pub observer: String,
    /// Mean over the observer's compared pairs of log10 of the binomial likelihood of its counts.
    pub log_likelihood: f64,
    /// (Q1 - L) / IQR when L < Q1, else 0.
    pub dist_l: f64,
    pub outlier: bool,
}

/// Leaves each observer out in turn, fits the rest and scores the left-out observer's answers.
pub fn outliers(
    names: &[String],
    observers: &[CountMatrix],
    options: &ScaleOptions,
) -> Result<Vec<ObserverFit>> {
    let n_obs = observers.len();
    let likelihoods: Vec<f64> = (0..n_obs)
        .into_par_iter()
        .map(|o| {
            let rest = sum_matrices(
                observers
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != o)
                    .map(|(_, m)| m),
            );
            let q = scale(&rest, options)?.jnd;
            Ok(mean_log10_likelihood(&observers[o], &q))
        })
        .collect::<Result<_>>()?;
    let q1 = quantile(&likelihoods, 0.25);
    let iqr = quantile(&likelihoods, 0.75) - q1;
    Ok(names
        .iter()
        .zip(&likelihoods)
        .map(|(name, &l)| {
            let dist_l = if l < q1 { (q1 - l) / iqr } else { 0.0 };
            ObserverFit {
                observer: name.clone(),
                log_likelihood: l,
                dist_l,
                outlier: dist_l >= OUTLIER_FENCE,
            }
        })
        .collect())
}

/// Mean over pairs compared by this observer of log10 Binomial(k_ij; n_ij, P_ij).
fn mean_log10_likelihood(d: &CountMatrix, q: &[f64]) -> f64 {
    let mut sum = 0.0;
    let mut pairs = 0usize;
    for i in 0..d.len() {
        for j in i + 1..d.len() {
            let (k, l) = (d.get(i, j), d.get(j, i));
            if k + l == 0.0 {
                continue;
            }
            let x = (q[i] - q[j]) / SIGMA;
            sum += (ln_binomial(k + l, k) + k * log_cdf(x) + l * log_cdf(-x))
                / std::f64::consts::LN_10;
            pairs += 1;
        }
    }
    if pairs == 0 { 0.0 } else { sum / pairs as f64 }
}

/// ln C(n, k) for integer-valued n >= k >= 0.
fn ln_binomial(n: f64, k: f64) -> f64 {
    (1..=k as u64)
        .map(|t| ((n - k + t as f64) / t as f64).ln())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_coefficients() {
        assert!((ln_binomial(5.0, 2.0) - 10f64.ln()).abs() < 1e-12);
        assert_eq!(ln_binomial(3.0, 0.0), 0.0);
    }

    #[test]
    fn likelihood_of_a_fair_coin() {
        let d = CountMatrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0]], None).unwrap();
        // C(2,1) 0.5^2 = 0.5
        assert!((mean_log10_likelihood(&d, &[0.0, 0.0]) - 0.5f64.log10()).abs() < 1e-12);
    }
}
