//! Observer outlier screen of pwcmp: how well do the scores fitted to everyone else predict each
//! observer's answers? One function for pwcmp's two entry points: [`outliers`] is
//! `pw_outlier_analysis` on one set of per-observer matrices, [`outliers_by_scene`] is
//! `pw_outlier_analysis_table` with the scene as its group column.
//!
//! # The algorithm (pwcmp's, as read from `pw_outlier_analysis.m` and `pw_outlier_analysis_table.m`)
//!
//! - Conditions: the sorted list of every condition in the whole data set (pwcmp's `C`), the same for
//!   every scene, so a scene's matrices may contain conditions nobody compared in that scene.
//! - For every scene s and every observer o who answered in s: D_rest = (sum of all observers'
//!   counts in s) - (o's counts in s), scaled with the caller's [`ScaleOptions`] (pwcmp: `pw_scale`
//!   with its defaults, i.e. the gaussian prior and mean0). Conditions that D_rest never compares are
//!   joined to the rest as `pw_scale` joins disconnected components (one fake 1:1 comparison), which
//!   is what pwcmp does with them.
//! - o's log-likelihood in s: over the unordered pairs i < j that o compared in s (those with
//!   n_ij = D_ij + D_ji positive, counted once however often they were compared), the sum of
//!   log10 max(Binomial(D_ij; n_ij, Phi((q_i - q_j) / 1.4826)), 1e-200): the binomial coefficient
//!   included, each pair's probability floored at 1e-200 as pwcmp does. Computed in the log domain, so
//!   far-apart conditions give the floor instead of pwcmp's `normcdf` underflow (the same number).
//! - L_o = (sum over the scenes o answered in of those sums) / (sum over the same scenes of o's
//!   compared pairs). A scene o did not answer in adds nothing to either sum: pwcmp's table function
//!   needs every observer in every scene (its `pw_outlier_analysis` asserts equal observer counts per
//!   scene); an absent observer is exactly a zero matrix in its formulas, which adds 0 and 0.
//! - Q1, Q3 = the 25% and 75% quantiles of the L_o ([`quantile`], MATLAB's definition, as pwcmp's
//!   `quantile` and `iqr`), IQR = Q3 - Q1; dist_L = (Q1 - L_o) / IQR when L_o < Q1, else 0. Ties at Q1
//!   are not below it: dist_L = 0. With IQR = 0, observers below Q1 get dist_L = +inf (reported as
//!   `None`) and the rest 0 (pwcmp's `0 * (x / 0)` gives NaN there).
//! - Flagged: dist_L >= the fence ([`OUTLIER_FENCE`] = 1.5 by default; pwcmp's plot marks values >= 1
//!   and its documentation calls values "greater than 1" possible outliers).
//!
//! Where this differs from pwcmp, because pwcmp has no defined answer:
//! - A leave-one-out fit without a finite optimum (the others' answers in that scene let a group of
//!   conditions win every comparison; pwcmp returns whatever `fminunc` stopped at) contributes nothing
//!   to o's sums, and a warning counts such (observer, scene) cases.
//! - An observer left with no pair to score (every fit failed) has no L: it gets no row and is not
//!   part of the quartiles (pwcmp sets L = 0, the best possible value), and a warning names it.
//! - A scene with fewer than 3 observers is scored as pwcmp scores it: with 2, each is predicted by
//!   the other's fit; an observer alone in a scene is predicted by the fit of nothing (every pair a
//!   joined 1:1 tie, so P = 0.5). The whole screen needs at least 3 observers.
//!
//! The leave-one-out fits run in parallel (rayon); the sums are added in a fixed order, so the result
//! does not depend on the number of threads.

use crate::comparisons::{Comparisons, sum_matrices};
use crate::counts::CountMatrix;
use crate::error::{Result, ScaleError};
use crate::fit::{ScaleOptions, scale};
use crate::normal::log_cdf;
use crate::objective::SIGMA;
use crate::quantile::quantile;
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// dist_L at or above which an observer is flagged (the usual 1.5 IQR fence).
pub const OUTLIER_FENCE: f64 = 1.5;

/// pwcmp's floor on a pair's binomial probability before its log (`max(p, 1e-200)`), in log10.
const LOG10_FLOOR: f64 = -200.0;

/// One observer's row of the outlier table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierRow {
    pub observer: String,
    /// Mean over the observer's compared pairs (summed over scenes) of the log10 binomial likelihood
    /// of their answers under the others' scores.
    pub log_likelihood: f64,
    /// (Q1 - L) / IQR when L < Q1, else 0; `None` when not finite (IQR = 0: all observers fit alike).
    pub dist_l: Option<f64>,
    /// dist_L >= the fence.
    pub outlier: bool,
    /// Compared pairs the mean is over (each pair once per scene).
    #[serde(default)]
    pub pairs: usize,
    /// Scenes that contributed (1 for the single-matrix screen).
    #[serde(default)]
    pub scenes: usize,
}

/// The outlier table and what could not be scored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierScreen {
    /// In the order of the observers given (for [`outliers_by_scene`]: sorted names).
    pub rows: Vec<OutlierRow>,
    pub warnings: Vec<String>,
}

/// pwcmp's `pw_outlier_analysis` on one matrix per observer (same conditions): each observer is
/// scored against the fit of all others (see the module documentation).
pub fn outliers(
    names: &[String],
    observers: &[CountMatrix],
    options: &ScaleOptions,
    fence: f64,
) -> Result<OutlierScreen> {
    if names.len() != observers.len() {
        return Err(ScaleError::Invalid(format!(
            "{} observer names for {} matrices",
            names.len(),
            observers.len()
        )));
    }
    let scene: Vec<(usize, CountMatrix)> = observers.iter().cloned().enumerate().collect();
    screen(names, vec![scene], options, fence)
}

/// pwcmp's `pw_outlier_analysis_table` with `scene` as the group column: every scene scaled
/// separately, each observer's log10 likelihood summed over the scenes they answered in and divided
/// by their number of compared pairs. Needs a scene on every answer.
pub fn outliers_by_scene(
    c: &Comparisons,
    options: &ScaleOptions,
    fence: f64,
) -> Result<OutlierScreen> {
    if c.scenes.is_empty() || c.answers.iter().any(|a| a.scene.is_none()) {
        return Err(ScaleError::Invalid(
            "the per-scene outlier screen needs a scene on every answer".into(),
        ));
    }
    let n = c.conditions.len();
    let index = |list: &[String], name: &str| {
        list.binary_search_by(|x| x.as_str().cmp(name))
            .expect("listed by Comparisons::from_answers")
    };
    let mut counts: BTreeMap<(usize, usize), DMatrix<f64>> = BTreeMap::new();
    for a in &c.answers {
        let s = index(&c.scenes, a.scene.as_deref().expect("checked above"));
        let o = index(&c.observers, &a.observer);
        let (i, j) = (
            index(&c.conditions, &a.condition_a),
            index(&c.conditions, &a.condition_b),
        );
        let (win, lose) = if a.a_selected { (i, j) } else { (j, i) };
        counts.entry((s, o)).or_insert_with(|| DMatrix::zeros(n, n))[(win, lose)] += 1.0;
    }
    let mut scenes: Vec<Vec<(usize, CountMatrix)>> = vec![Vec::new(); c.scenes.len()];
    for ((s, o), m) in counts {
        let m = CountMatrix::new(m, Some(c.conditions.clone())).expect("counts of answers");
        scenes[s].push((o, m));
    }
    screen(&c.observers, scenes, options, fence)
}

/// The common core: `scenes[s]` lists (observer index into `names`, that observer's counts in s)
/// for the observers who answered in s, all over one condition list.
fn screen(
    names: &[String],
    scenes: Vec<Vec<(usize, CountMatrix)>>,
    options: &ScaleOptions,
    fence: f64,
) -> Result<OutlierScreen> {
    if names.len() < 3 {
        return Err(ScaleError::Invalid(format!(
            "the outlier screen needs at least 3 observers, got {}",
            names.len()
        )));
    }
    let totals: Vec<Option<CountMatrix>> = scenes
        .iter()
        .map(|obs| (!obs.is_empty()).then(|| sum_matrices(obs.iter().map(|(_, m)| m))))
        .collect();
    let tasks: Vec<(usize, usize)> = scenes
        .iter()
        .enumerate()
        .flat_map(|(s, obs)| (0..obs.len()).map(move |k| (s, k)))
        .collect();
    // (observer, log10 sum, pairs) per task, or None when the leave-one-out fit has no optimum.
    let scored: Vec<(usize, Option<(f64, usize)>)> = tasks
        .par_iter()
        .map(|&(s, k)| {
            let (o, mine) = &scenes[s][k];
            let total = totals[s].as_ref().expect("scene with observers");
            let rest = total.minus(mine);
            let result = scale(&rest, options)
                .ok()
                .map(|fit| log10_likelihood(mine, &fit.jnd));
            (*o, result)
        })
        .collect();
    let mut sums = vec![(0.0, 0usize, 0usize); names.len()];
    let mut failed = 0;
    for (o, result) in scored {
        match result {
            Some((l, pairs)) => {
                sums[o].0 += l;
                sums[o].1 += pairs;
                sums[o].2 += 1;
            }
            None => failed += 1,
        }
    }
    let mut warnings = Vec::new();
    if failed > 0 {
        warnings.push(format!(
            "outlier screen: {failed} of {} leave-one-observer-out fits had no finite optimum (the other \
             observers' answers let a group of conditions win every comparison); those observers' answers \
             in those scenes were not scored",
            tasks.len()
        ));
    }
    let unscored: Vec<&str> = sums
        .iter()
        .zip(names)
        .filter(|((_, pairs, _), _)| *pairs == 0)
        .map(|(_, n)| n.as_str())
        .collect();
    if !unscored.is_empty() {
        warnings.push(format!(
            "outlier screen: no answer of {} could be scored; left out of the table",
            unscored.join(", ")
        ));
    }
    let scored: Vec<(usize, f64, usize, usize)> = sums
        .iter()
        .enumerate()
        .filter(|(_, (_, pairs, _))| *pairs > 0)
        .map(|(o, &(l, pairs, n_scenes))| (o, l / pairs as f64, pairs, n_scenes))
        .collect();
    if scored.is_empty() {
        return Ok(OutlierScreen {
            rows: Vec::new(),
            warnings,
        });
    }
    let likelihoods: Vec<f64> = scored.iter().map(|s| s.1).collect();
    let q1 = quantile(&likelihoods, 0.25);
    let iqr = quantile(&likelihoods, 0.75) - q1;
    let rows = scored
        .into_iter()
        .map(|(o, l, pairs, n_scenes)| {
            let dist = if l < q1 { (q1 - l) / iqr } else { 0.0 };
            OutlierRow {
                observer: names[o].clone(),
                log_likelihood: l,
                dist_l: dist.is_finite().then_some(dist),
                outlier: dist >= fence,
                pairs,
                scenes: n_scenes,
            }
        })
        .collect();
    Ok(OutlierScreen { rows, warnings })
}

/// Sum over the pairs i < j compared in `d` of log10 max(Binomial(D_ij; n_ij, P_ij), 1e-200), and the
/// number of such pairs.
fn log10_likelihood(d: &CountMatrix, q: &[f64]) -> (f64, usize) {
    let mut sum = 0.0;
    let mut pairs = 0;
    for i in 0..d.len() {
        for j in i + 1..d.len() {
            let (k, l) = (d.get(i, j), d.get(j, i));
            if k + l == 0.0 {
                continue;
            }
            let x = (q[i] - q[j]) / SIGMA;
            let ln_p = ln_binomial(k + l, k) + k * log_cdf(x) + l * log_cdf(-x);
            sum += (ln_p / std::f64::consts::LN_10).max(LOG10_FLOOR);
            pairs += 1;
        }
    }
    (sum, pairs)
}

/// ln C(n, k) for integer-valued n >= k >= 0.
fn ln_binomial(n: f64, k: f64) -> f64 {
    let k = k.min(n - k);
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
        assert!((ln_binomial(5.0, 4.0) - 5f64.ln()).abs() < 1e-12);
        assert_eq!(ln_binomial(3.0, 0.0), 0.0);
    }

    #[test]
    fn likelihood_of_a_fair_coin() {
        let d = CountMatrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0]], None).unwrap();
        // C(2,1) 0.5^2 = 0.5
        let (l, pairs) = log10_likelihood(&d, &[0.0, 0.0]);
        assert_eq!(pairs, 1);
        assert!((l - 0.5f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn impossible_answers_hit_pwcmps_floor() {
        // 50 JND apart and the worse one won 3 times: p ~ 1e-1600, floored at 1e-200
        let d = CountMatrix::from_rows(&[vec![0.0, 3.0], vec![0.0, 0.0]], None).unwrap();
        assert_eq!(log10_likelihood(&d, &[0.0, 50.0]), (-200.0, 1));
    }
}
