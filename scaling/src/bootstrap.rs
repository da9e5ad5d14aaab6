//! Confidence intervals by resampling observers, as pwcmp's `pw_scale_bootstrp`.

use crate::comparisons::sum_matrices;
use crate::counts::CountMatrix;
use crate::error::{Result, ScaleError};
use crate::fit::{ScaleOptions, Scaling, scale, scale_from};
use crate::quantile::quantile_sorted;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapOptions {
    /// Number of replicates (pwcmp's default in examples: 500-1000).
    pub replicates: usize,
    /// Two-sided level: the CI is the [alpha/2, 1 - alpha/2] percentile interval.
    pub alpha: f64,
    /// Seed of the resampling; results do not depend on the number of threads.
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            replicates: 500,
            alpha: 0.05,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    /// The point estimate: the fit on all data (not the bootstrap mean), as pwcmp.
    pub fit: Scaling,
    pub ci_low: Vec<f64>,
    pub ci_high: Vec<f64>,
    /// Covariance of the replicates (normalised by B - 1).
    pub covariance: Vec<Vec<f64>>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Replicates that had a finite optimum and entered the statistics.
    pub replicates_used: usize,
    pub warnings: Vec<String>,
}

/// Resamples observers with replacement `replicates` times and scales each resample.
/// `on_replicate` is called once per finished replicate (for progress bars), from worker threads.
pub fn bootstrap(
    observers: &[CountMatrix],
    options: &ScaleOptions,
    boot: &BootstrapOptions,
    on_replicate: &(dyn Fn() + Sync),
) -> Result<Bootstrap> {
    if observers.len() < 2 {
        return Err(ScaleError::Invalid(format!(
            "the bootstrap needs at least 2 observers, got {}",
            observers.len()
        )));
    }
    if boot.replicates < 2 {
        return Err(ScaleError::Invalid(
            "the bootstrap needs at least 2 replicates".into(),
        ));
    }
    if !(boot.alpha > 0.0 && boot.alpha < 1.0) {
        return Err(ScaleError::Invalid(format!(
            "alpha must be in (0, 1), got {}",
            boot.alpha
        )));
    }
    let fit = scale(&sum_matrices(observers.iter()), options)?;
    let n_obs = observers.len();
    let replicates: Vec<Option<Vec<f64>>> = (0..boot.replicates)
        .into_par_iter()
        .map(|r| {
            // One independent stream per replicate: the same seed gives the same CIs on any thread count.
            let mut rng = ChaCha8Rng::seed_from_u64(boot.seed);
            rng.set_stream(r as u64);
            let sample = (0..n_obs).map(|_| &observers[rng.random_range(0..n_obs)]);
            // Started at the full-data fit: a replicate's optimum is near it (same optimum, fewer steps).
            let result = scale_from(&sum_matrices(sample), options, Some(&fit.jnd))
                .ok()
                .map(|s| s.jnd);
            on_replicate();
            result
        })
        .collect();
    let good: Vec<&Vec<f64>> = replicates.iter().flatten().collect();
    let failed = boot.replicates - good.len();
    let mut warnings = fit.warnings.clone();
    if failed > 0 {
        warnings.push(format!(
            "{failed} of {} bootstrap replicates had no finite optimum (a resample in which one group won \
             every comparison) and were left out; the CIs are then too narrow",
            boot.replicates
        ));
    }
    if good.len() < 2 {
        return Err(ScaleError::Invalid(format!(
            "only {} of {} bootstrap replicates could be scaled",
            good.len(),
            boot.replicates
        )));
    }
    let n = fit.jnd.len();
    let b = good.len() as f64;
    let mean: Vec<f64> = (0..n)
        .map(|i| good.iter().map(|r| r[i]).sum::<f64>() / b)
        .collect();
    let covariance: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    good.iter()
                        .map(|r| (r[i] - mean[i]) * (r[j] - mean[j]))
                        .sum::<f64>()
                        / (b - 1.0)
                })
                .collect()
        })
        .collect();
    let std = (0..n).map(|i| covariance[i][i].sqrt()).collect();
    let (mut ci_low, mut ci_high) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let mut column: Vec<f64> = good.iter().map(|r| r[i]).collect();
        column.sort_by(f64::total_cmp);
        ci_low.push(quantile_sorted(&column, boot.alpha / 2.0));
        ci_high.push(quantile_sorted(&column, 1.0 - boot.alpha / 2.0));
    }
    Ok(Bootstrap {
        fit,
        ci_low,
        ci_high,
        covariance,
        mean,
        std,
        replicates_used: good.len(),
        warnings,
    })
}
