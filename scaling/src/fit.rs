//! One maximum-likelihood fit: pwcmp's `pw_scale`, minimised by Newton's method with the analytic
//! Hessian: dense (Cholesky, Levenberg damping where the non-convex prior makes it indefinite) or,
//! for prior none, sparse (the Hessian is a weighted graph Laplacian, solved by preconditioned
//! conjugate gradients), with a backtracking line search on the deviance.

use crate::counts::CountMatrix;
use crate::error::{Result, ScaleError};
use crate::graph;
use crate::objective::Objective;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};

/// pwcmp's `prior` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Prior {
    /// The "gaussian" prior of pwcmp (a data-driven prior on pair differences).
    #[default]
    Gaussian,
    /// Plain maximum likelihood.
    None,
}

/// pwcmp's `regularization` option: how the free additive constant is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Regularization {
    /// Scores have mean 0.
    #[default]
    Mean0,
    /// The first condition has score 0.
    Fix0,
}

/// What to do when some conditions were never (indirectly) compared with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Disconnected {
    /// pwcmp's behaviour: join every two components by one fake 1:1 comparison between their
    /// conditions with the largest ISO 20462 start score, and warn.
    #[default]
    Join,
    /// Refuse to scale.
    Error,
}

/// How the optimum is found (the optimum itself does not depend on it, within the tolerance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// `sparse` for prior none above [`SPARSE_FROM`] conditions, else `dense`.
    #[default]
    Auto,
    /// Newton steps with the analytic Hessian as a dense matrix (Cholesky): any prior.
    Dense,
    /// Newton steps whose Hessian, a weighted graph Laplacian with one entry per compared pair, is
    /// solved by Jacobi-preconditioned conjugate gradients: memory and time grow with the compared
    /// pairs, not N^2 / N^3. Prior none only: pwcmp's gaussian prior couples every compared pair with
    /// every other (its Hessian is dense).
    Sparse,
}

/// From this many conditions `Solver::Auto` uses the sparse solver when the prior allows.
pub const SPARSE_FROM: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ScaleOptions {
    pub prior: Prior,
    pub regularization: Regularization,
    pub disconnected: Disconnected,
    pub solver: Solver,
}

/// The result of one fit.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// Scores in JND units, in the order of the input's conditions.
    pub jnd: Vec<f64>,
    /// pwcmp's objective (negative log-posterior) at the optimum.
    pub objective: f64,
    /// Newton iterations.
    pub iterations: u64,
    /// Objective evaluations (with or without derivatives) used.
    pub evaluations: u64,
    /// Human-readable warnings (e.g. joined components).
    pub warnings: Vec<String>,
}

/// Newton stops when the largest gradient component is below this fraction of the largest one at
/// the start (or below 1e-12 absolute, for data so balanced that it starts at the optimum). Newton
/// converges quadratically near the optimum, so a tight tolerance costs one or two iterations.
const GRAD_TOLERANCE: f64 = 1e-10;

/// Per comparison: a Newton decrement below this is at the deviance's round-off.
const ROUND_OFF: f64 = 1e-16;

/// A result whose gradient is still above this fraction (after the line search found no further
/// decrease: the objective's round-off) is reported as not converged.
const GRAD_ACCEPT: f64 = 1e-5;

/// A gap (in JND) between a group that won every comparison and the rest beyond which the fit is taken
/// to have run off to infinity: 30 JND is a preference of 1 - 1e-76.
const DIVERGED_GAP: f64 = 30.0;

/// Scales a count matrix into JND units exactly as pwcmp's `pw_scale`, but in the log domain, with
/// detection of designs that have no finite optimum.
pub fn scale(d: &CountMatrix, options: &ScaleOptions) -> Result<Scaling> {
    scale_from(d, options, None)
}

/// [`scale`] with Newton started at `start` (scores of these conditions, e.g. the full-data fit for a
/// bootstrap replicate) instead of 0. Same optimum within the tolerance.
pub(crate) fn scale_from(
    d: &CountMatrix,
    options: &ScaleOptions,
    start: Option<&[f64]>,
) -> Result<Scaling> {
    let n = d.len();
    let sparse = match options.solver {
        Solver::Auto => options.prior == Prior::None && n >= SPARSE_FROM,
        Solver::Dense => false,
        Solver::Sparse => true,
    };
    if sparse && options.prior != Prior::None {
        return Err(ScaleError::Invalid(
            "the sparse solver needs prior none: pwcmp's gaussian prior couples every compared pair \
             with every other (use the dense solver)"
                .into(),
        ));
    }
    let mut warnings = Vec::new();
    let comps = graph::components(d);
    let joined;
    let d = if comps.len() > 1 {
        let described = describe_components(d, &comps);
        match options.disconnected {
            Disconnected::Error => {
                return Err(ScaleError::Disconnected {
                    components: described,
                });
            }
            Disconnected::Join => {
                let (j, pairs) = graph::join_components(d, &comps);
                let names = d.names();
                let added: Vec<String> = pairs
                    .iter()
                    .map(|&(a, b)| format!("{} ~ {}", names[a], names[b]))
                    .collect();
                warnings.push(format!(
                    "the comparison graph is disconnected ({described}); as pwcmp does, one fake 1:1 comparison \
                     was added between the components' best conditions ({}); scores across components are not \
                     measured, only anchored",
                    added.join(", ")
                ));
                joined = j;
                &joined
            }
        }
    } else {
        d
    };
    if n == 1 {
        return Ok(Scaling {
            jnd: vec![0.0],
            objective: 0.0,
            iterations: 0,
            evaluations: 0,
            warnings,
        });
    }

    let objective = Objective::new(d, options.prior == Prior::Gaussian);
    let dominant = graph::dominant_sets(d);
    if let (Prior::None, Some(set)) = (options.prior, dominant.first()) {
        return Err(unbounded(d, set));
    }

    // Optimise with q_1 = 0 (fix0); mean0 is the same optimum re-centred, since everything but
    // pwcmp's 0.01 * mean(q)^2 term is translation invariant and that term is then exactly 0.
    let start: Vec<f64> = match start {
        Some(s) if s.len() == n && s.iter().all(|v| v.is_finite()) => s.to_vec(),
        _ => vec![0.0; n],
    };
    let minimise = |s: &[f64]| {
        if sparse {
            minimise_sparse(&objective, s)
        } else {
            minimise_dense(&objective, s)
        }
    };
    let mut found = minimise(&start);
    if found.is_err() && start.iter().any(|v| *v != 0.0) {
        // A warm start (a bootstrap replicate starts at the full-data fit) can be far from this
        // data's optimum where the gaussian prior makes the objective non-convex: before calling
        // the design unbounded, start where `scale` starts.
        found = minimise(&vec![0.0; n]);
    }
    let (q, value, iterations, evaluations) = match (found, dominant.first()) {
        (Ok(found), _) => found,
        // Not converging where the likelihood has a direction of endless improvement is that direction.
        (Err(_), Some(set)) => return Err(unbounded(d, set)),
        (Err(e), None) => return Err(e),
    };

    // A gaussian prior bounds some designs with unanimous groups, not all: look along each direction
    // in which the likelihood keeps improving for a lower value than the optimum found.
    for set in &dominant {
        // An optimiser that walked off along such a direction stops where the gradient underflows.
        let rest_max = (0..n)
            .filter(|i| !set.contains(i))
            .map(|i| q[i])
            .fold(f64::NEG_INFINITY, f64::max);
        let set_min = set.iter().map(|&i| q[i]).fold(f64::INFINITY, f64::min);
        if set_min - rest_max > DIVERGED_GAP {
            return Err(unbounded(d, set));
        }
        let mut moved = q.clone();
        let mut step = 1.0;
        while step <= 4096.0 {
            for &i in set {
                moved[i] = q[i] + step;
            }
            if objective.value(&moved) < value - 1e-9 * value.abs().max(1.0) {
                return Err(unbounded(d, set));
            }
            step *= 2.0;
        }
    }

    let jnd = match options.regularization {
        Regularization::Fix0 => q,
        Regularization::Mean0 => {
            let mean = q.iter().sum::<f64>() / n as f64;
            q.iter().map(|v| v - mean).collect()
        }
    };
    Ok(Scaling {
        jnd,
        objective: value,
        iterations,
        evaluations,
        warnings,
    })
}

fn describe_components(d: &CountMatrix, comps: &[Vec<usize>]) -> String {
    let names = d.names();
    comps
        .iter()
        .map(|c| {
            format!(
                "{{{}}}",
                c.iter()
                    .map(|&i| names[i].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn unbounded(d: &CountMatrix, set: &[usize]) -> ScaleError {
    let names = d.names();
    let rest: Vec<usize> = (0..d.len()).filter(|i| !set.contains(i)).collect();
    let comparisons: f64 = set
        .iter()
        .flat_map(|&i| rest.iter().map(move |&j| (i, j)))
        .map(|(i, j)| d.get(i, j) + d.get(j, i))
        .sum();
    let list = |idx: &[usize]| {
        format!(
            "{{{}}}",
            idx.iter()
                .map(|&i| names[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    ScaleError::Unbounded {
        winners: list(set),
        losers: list(&rest),
        comparisons: comparisons as u64,
    }
}

/// What a minimiser returns: q (q_1 = 0), pwcmp's objective there, iterations, evaluations.
type Found = (Vec<f64>, f64, u64, u64);

/// A Newton direction for the fix0 problem (parameters q_2..q_N) at q, or None when none is found.
type Direction<'a> = dyn FnMut(&[f64]) -> Option<(f64, Vec<f64>, Vec<f64>)> + 'a;

/// Damped Newton with a backtracking (Armijo) line search on the deviance, q_1 fixed at 0 (the
/// objective is translation invariant; see `scale`). `direction(q)` returns the deviance, the
/// gradient over q_2..q_N and a descent direction.
fn newton(objective: &Objective, start: &[f64], direction: &mut Direction) -> Result<Found> {
    let n = objective.len();
    let mut q: Vec<f64> = start.iter().map(|v| v - start[0]).collect();
    let mut evaluations = 0u64;
    let mut iterations = 0u64;
    let mut scale = None;
    loop {
        evaluations += 1;
        let Some((f, g, step)) = direction(&q) else {
            return Err(ScaleError::Optimizer(format!(
                "no descent direction after {iterations} iterations"
            )));
        };
        let g_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scale = *scale.get_or_insert(g_max.max(1.0));
        if g_max <= GRAD_TOLERANCE * scale || g_max < 1e-12 {
            break;
        }
        if iterations >= 200 {
            return Err(ScaleError::Optimizer(format!(
                "gradient {g_max:.3e} after {iterations} iterations"
            )));
        }
        let slope: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        // The Newton decrement -g.step estimates twice the distance to the optimum in deviance; below
        // the deviance's round-off (~1e-16 per comparison) no step can make progress.
        if -slope <= ROUND_OFF * objective.comparisons().max(1.0) {
            if g_max > GRAD_ACCEPT * scale {
                return Err(ScaleError::Optimizer(format!(
                    "gradient {g_max:.3e} at the round-off after {iterations} iterations"
                )));
            }
            break;
        }
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..60 {
            let trial: Vec<f64> = std::iter::once(0.0)
                .chain(q[1..].iter().zip(&step).map(|(a, b)| a + t * b))
                .collect();
            evaluations += 1;
            let ft = objective.deviance(&trial);
            if ft.is_finite() && ft <= f + 1e-4 * t * slope {
                q = trial;
                moved = true;
                break;
            }
            t *= 0.5;
        }
        iterations += 1;
        if !moved {
            // At the round-off of the deviance: accept a small gradient, report a large one.
            if g_max > GRAD_ACCEPT * scale {
                return Err(ScaleError::Optimizer(format!(
                    "line search failed with gradient {g_max:.3e} after {iterations} iterations"
                )));
            }
            break;
        }
    }
    if q.iter().any(|v| !v.is_finite()) || q.len() != n {
        return Err(ScaleError::Optimizer("non-finite result".into()));
    }
    Ok((q.clone(), objective.value(&q), iterations, evaluations))
}

/// Newton with the dense analytic Hessian (any prior), Cholesky with Levenberg damping where the
/// Hessian (the prior is not convex) is not positive definite.
fn minimise_dense(objective: &Objective, start: &[f64]) -> Result<Found> {
    let n = objective.len();
    let mut direction = |q: &[f64]| {
        let (f, g, h) = objective.deviance_gradient_hessian(q);
        let g = g[1..].to_vec();
        let h = h.view((1, 1), (n - 1, n - 1)).clone_owned();
        let rhs = DVector::from_iterator(n - 1, g.iter().map(|v| -v));
        let diag_max = h.diagonal().amax().max(1e-300);
        let mut damping = 0.0;
        for _ in 0..40 {
            let mut m = h.clone();
            for k in 0..n - 1 {
                m[(k, k)] += damping;
            }
            if let Some(ch) = m.cholesky() {
                let step = ch.solve(&rhs);
                if step.iter().all(|v| v.is_finite()) {
                    return Some((f, g, step.iter().copied().collect()));
                }
            }
            damping = if damping == 0.0 {
                1e-10 * diag_max
            } else {
                damping * 10.0
            };
        }
        None
    };
    newton(objective, start, &mut direction)
}

/// Newton whose Hessian (prior none: a weighted Laplacian) is solved by Jacobi-preconditioned
/// conjugate gradients on the pair list, never forming an N x N matrix.
fn minimise_sparse(objective: &Objective, start: &[f64]) -> Result<Found> {
    let n = objective.len();
    let pairs: Vec<(usize, usize)> = objective.pair_indices().collect();
    let mut direction = |q: &[f64]| {
        let (f, g, w) = objective.likelihood_laplacian(q);
        let g = g[1..].to_vec();
        // H restricted to q_2..q_N (index k here = condition k + 1).
        let matvec = |x: &[f64], out: &mut [f64]| {
            out.iter_mut().for_each(|o| *o = 0.0);
            for (&(i, j), &wp) in pairs.iter().zip(&w) {
                let xi = if i == 0 { 0.0 } else { x[i - 1] };
                let xj = if j == 0 { 0.0 } else { x[j - 1] };
                let d = wp * (xi - xj);
                if i > 0 {
                    out[i - 1] += d;
                }
                if j > 0 {
                    out[j - 1] -= d;
                }
            }
        };
        let mut diag = vec![0.0; n - 1];
        for (&(i, j), &wp) in pairs.iter().zip(&w) {
            if i > 0 {
                diag[i - 1] += wp;
            }
            if j > 0 {
                diag[j - 1] += wp;
            }
        }
        let rhs: Vec<f64> = g.iter().map(|v| -v).collect();
        let step = conjugate_gradients(&matvec, &diag, &rhs)?;
        Some((f, g, step))
    };
    newton(objective, start, &mut direction)
}

/// Solves A x = b for a symmetric positive definite A given as `matvec`, preconditioned by its
/// diagonal, to a relative residual of 1e-12 (an inexact Newton step; the outer loop corrects).
fn conjugate_gradients(
    matvec: &dyn Fn(&[f64], &mut [f64]),
    diag: &[f64],
    b: &[f64],
) -> Option<Vec<f64>> {
    let m = b.len();
    if diag.iter().any(|d| d.is_nan() || *d <= 0.0) {
        return None;
    }
    let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0.0; m];
    let mut r = b.to_vec();
    let mut z: Vec<f64> = r.iter().zip(diag).map(|(r, d)| r / d).collect();
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let b_norm = dot(b, b).sqrt();
    if b_norm == 0.0 {
        return Some(x);
    }
    let mut ap = vec![0.0; m];
    for _ in 0..(10 * m).max(100) {
        matvec(&p, &mut ap);
        let pap = dot(&p, &ap);
        if pap.is_nan() || pap <= 0.0 {
            return None;
        }
        let a = rz / pap;
        for k in 0..m {
            x[k] += a * p[k];
            r[k] -= a * ap[k];
        }
        if dot(&r, &r).sqrt() <= 1e-12 * b_norm {
            return Some(x);
        }
        for k in 0..m {
            z[k] = r[k] / diag[k];
        }
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for k in 0..m {
            p[k] = z[k] + beta * p[k];
        }
    }
    // Not converged to 1e-12 but a descent direction all the same (CG iterates are).
    Some(x)
}
