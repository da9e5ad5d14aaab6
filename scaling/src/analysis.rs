//! The one analysis of a study's answers: scale -> bootstrap -> significance -> outliers, pooled over
//! scenes and per scene. The app's results, `jnd-scale --comparisons` and the pipeline's report all
//! read [`Analysis`]; it is the `jnd.json` format.
//!
//! What [`analyse`] does (problems become `warnings`, never errors, so a study with few answers still
//! gets a page):
//! - **pooled**: all answers as one count matrix. With >= 2 observers and `replicates` >= 2 the
//!   observer bootstrap ([`bootstrap`](crate::bootstrap)) gives the CIs, the std and the significance
//!   table; the point estimate is always the fit on all data (pwcmp). Fewer observers or replicates:
//!   scores without CIs and a warning. A failed bootstrap falls back to the plain fit ("no confidence
//!   intervals: ..."); a failed fit leaves `pooled` empty ("no scores: ...").
//! - **per_scene** (with `per_scene`): the same for each scene's answers (conditions of that scene
//!   only), each with its own warnings.
//! - **outliers** (with `outliers`, >= 3 observers and pooled scores): with `per_scene` and scenes in
//!   the data, pwcmp's multi-scene screen `pw_outlier_analysis_table`
//!   ([`outliers_by_scene`](crate::outliers_by_scene)); otherwise `pw_outlier_analysis` on the
//!   pooled per-observer matrices ([`outliers`](crate::outliers)). See [`crate::outliers`]'s module
//!   documentation for the algorithm.
//! - **count_matrix**: pooled counts, row i column j = times condition i was chosen over j.
//!
//! # JSON (`serde_json` of [`Analysis`])
//!
//! ```json
//! {
//!   "conditions": ["l1", "l2", "mdf"],
//!   "pooled": {"conditions": ["l1", "l2", "mdf"], "jnd": [-0.4, -0.5, 0.9],
//!              "ci_low": [-0.6, -0.7, 0.7], "ci_high": [-0.2, -0.3, 1.1], "std": [0.1, 0.1, 0.1],
//!              "replicates_used": 500, "observers": 24, "answers": 216},
//!   "per_scene": [{"scene": "baboon", "result": {"conditions": ["..."], "jnd": [], "ci_low": null,
//!                  "ci_high": null, "std": null, "replicates_used": 0, "observers": 24,
//!                  "answers": 72}, "warnings": []}],
//!   "significance": {"p_value": [[1.0, 0.3, 0.0]], "p_one_tailed": [[1.0, 0.15, 0.0]],
//!                    "significant": [[false, false, true]], "alpha": 0.05},
//!   "outliers": [{"observer": "obs01", "log_likelihood": -0.21, "dist_l": 0.0, "outlier": false,
//!                 "pairs": 9, "scenes": 3}],
//!   "count_matrix": [[0, 40, 10], [32, 0, 8], [62, 64, 0]],
//!   "warnings": []
//! }
//! ```
//! `jnd`, `ci_low`, `ci_high`, `std` are in JND (1 JND = 75% preference), in the order of the set's
//! `conditions`; `ci_low`/`ci_high`/`std` are `null` without a bootstrap, `significance` is `null`
//! without a pooled bootstrap; `p_value` is two-tailed, `p_one_tailed` half of it (pwcmp's
//! `pw_significance_matrix`); `dist_l` is `null` when not finite; `outliers` is empty when not
//! computed.

use crate::bootstrap::{BootstrapOptions, bootstrap};
use crate::comparisons::Comparisons;
use crate::fit::{ScaleOptions, scale};
use crate::outliers::{OUTLIER_FENCE, OutlierRow, outliers, outliers_by_scene};
use crate::significance::{SignificanceTable, significance};
use serde::{Deserialize, Serialize};

/// What [`analyse`] computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisOptions {
    /// The fit (pwcmp's options).
    pub scale: ScaleOptions,
    /// Bootstrap replicates (observers resampled with replacement); 0 = no bootstrap, no CIs.
    pub replicates: usize,
    /// CIs are [alpha/2, 1 - alpha/2] percentile intervals; significance flags p < alpha.
    pub alpha: f64,
    /// Seed of the bootstrap: same seed, same CIs, on any number of threads.
    pub seed: u64,
    /// Also scale every scene separately (and screen outliers per scene, as pwcmp's table function).
    pub per_scene: bool,
    /// The observer outlier screen.
    pub outliers: bool,
    /// dist_L at or above which an observer is flagged.
    pub outlier_fence: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            scale: ScaleOptions::default(),
            replicates: 500,
            alpha: 0.05,
            seed: 1,
            per_scene: true,
            outliers: true,
            outlier_fence: OUTLIER_FENCE,
        }
    }
}

/// JND scores of one set of comparisons (pooled or one scene).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JndSet {
    pub conditions: Vec<String>,
    /// The fit on all answers of the set.
    pub jnd: Vec<f64>,
    /// Percentile bootstrap CIs; absent with fewer than 2 observers or no bootstrap.
    pub ci_low: Option<Vec<f64>>,
    pub ci_high: Option<Vec<f64>>,
    /// Standard deviation of the bootstrap replicates.
    #[serde(default)]
    pub std: Option<Vec<f64>>,
    /// Bootstrap replicates with a finite optimum (0 without a bootstrap).
    pub replicates_used: usize,
    pub observers: usize,
    pub answers: usize,
}

/// One scene's scores (`None` when it has none: see `warnings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneResult {
    pub scene: String,
    pub result: Option<JndSet>,
    pub warnings: Vec<String>,
}

/// Everything [`analyse`] found; see the module documentation for the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// All conditions, sorted (the order of `pooled` and `count_matrix`).
    pub conditions: Vec<String>,
    pub pooled: Option<JndSet>,
    pub per_scene: Vec<SceneResult>,
    /// Of the pooled scores, from the pooled bootstrap.
    pub significance: Option<SignificanceTable>,
    pub outliers: Vec<OutlierRow>,
    /// Pooled counts: row i, column j = times condition i was chosen over j.
    pub count_matrix: Vec<Vec<f64>>,
    pub warnings: Vec<String>,
}

/// Runs the analysis (CPU-bound, parallel inside). `on_replicate` is called once per finished
/// bootstrap replicate (pooled and every scene), from worker threads, for progress bars.
pub fn analyse(
    c: &Comparisons,
    opts: &AnalysisOptions,
    on_replicate: &(dyn Fn() + Sync),
) -> Analysis {
    let mut warnings = Vec::new();
    let (pooled, sig) = jnd_set(c, opts, on_replicate, &mut warnings);
    let per_scene = if opts.per_scene {
        c.scenes
            .iter()
            .map(|scene| {
                let mut w = Vec::new();
                let (result, _) = jnd_set(&c.scene(scene), opts, on_replicate, &mut w);
                SceneResult {
                    scene: scene.clone(),
                    result,
                    warnings: w,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut outlier_rows = Vec::new();
    if opts.outliers && pooled.is_some() {
        let screen = if c.observers.len() < 3 {
            Err(format!(
                "it needs at least 3 observers, there are {}",
                c.observers.len()
            ))
        } else if opts.per_scene && !c.scenes.is_empty() {
            outliers_by_scene(c, &opts.scale, opts.outlier_fence).map_err(|e| e.to_string())
        } else {
            let oc = c.observer_counts();
            outliers(&oc.observers, &oc.matrices, &opts.scale, opts.outlier_fence)
                .map_err(|e| e.to_string())
        };
        match screen {
            Ok(s) => {
                outlier_rows = s.rows;
                warnings.extend(s.warnings);
            }
            Err(e) => warnings.push(format!("no outlier analysis: {e}")),
        }
    }
    let count_matrix = if c.answers.is_empty() {
        Vec::new()
    } else {
        let m = c.observer_counts().total();
        (0..m.len())
            .map(|i| (0..m.len()).map(|j| m.get(i, j)).collect())
            .collect()
    };
    Analysis {
        conditions: c.conditions.clone(),
        pooled,
        per_scene,
        significance: sig,
        outliers: outlier_rows,
        count_matrix,
        warnings,
    }
}

/// Scales one set of comparisons; the bootstrap when there are >= 2 observers and >= 2 replicates.
fn jnd_set(
    c: &Comparisons,
    opts: &AnalysisOptions,
    on_replicate: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> (Option<JndSet>, Option<SignificanceTable>) {
    if c.answers.is_empty() {
        warnings.push("no answers yet".into());
        return (None, None);
    }
    let oc = c.observer_counts();
    let mut set = JndSet {
        conditions: c.conditions.clone(),
        jnd: Vec::new(),
        ci_low: None,
        ci_high: None,
        std: None,
        replicates_used: 0,
        observers: oc.observers.len(),
        answers: c.answers.len(),
    };
    if opts.replicates == 1 {
        warnings.push("no confidence intervals: the bootstrap needs at least 2 replicates".into());
    } else if opts.replicates >= 2 && oc.observers.len() < 2 {
        warnings.push(format!(
            "no confidence intervals: the bootstrap needs at least 2 observers, there are {}",
            oc.observers.len()
        ));
    } else if opts.replicates >= 2 {
        let bo = BootstrapOptions {
            replicates: opts.replicates,
            alpha: opts.alpha,
            seed: opts.seed,
        };
        match bootstrap(&oc.matrices, &opts.scale, &bo, on_replicate) {
            Ok(b) => {
                let sig = significance(&b.fit.jnd, &b.covariance, opts.alpha);
                set.jnd = b.fit.jnd;
                set.ci_low = Some(b.ci_low);
                set.ci_high = Some(b.ci_high);
                set.std = Some(b.std);
                set.replicates_used = b.replicates_used;
                warnings.extend(b.warnings);
                return (Some(set), Some(sig));
            }
            Err(e) => warnings.push(format!("no confidence intervals: {e}")),
        }
    }
    match scale(&oc.total(), &opts.scale) {
        Ok(s) => {
            warnings.extend(s.warnings);
            set.jnd = s.jnd;
            (Some(set), None)
        }
        Err(e) => {
            warnings.push(format!("no scores: {e}"));
            (None, None)
        }
    }
}
