//! pwcmp's negative log-posterior F(q) and its analytic gradient, in the log domain.
//!
//! F(q) = - sum_{(i,j) in S} [D_ij ln P_ij + D_ji ln(1 - P_ij)] - sum_{a in S} ln(prior_a + 0.1)
//! with S the ordered compared pairs, P_ij = Phi((q_i - q_j) / sigma) and pwcmp's "gaussian" prior
//! prior_a = sum_b A[a,b] / s_b, A[a,b] = P_a^k_b (1 - P_a)^(n_b - k_b), s_b = sum_a A[a,b].
//! The regularisation term is handled by the caller (see `fit`): the rest is translation invariant.

use crate::counts::CountMatrix;
use crate::normal::{d_log_cdf, log_cdf};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// pwcmp's observer-noise sigma: Phi(1 / 1.4826) = 0.75, so one unit is one JND.
pub const SIGMA: f64 = 1.4826;

/// Added to the prior before its log, as in pwcmp.
const PRIOR_FLOOR: f64 = 0.1;

/// Above this many A[a,b] evaluations the prior is split across threads.
const PARALLEL_WORK: usize = 1 << 17;

/// An unordered compared pair i < j with its counts.
#[derive(Debug, Clone, Copy)]
struct Pair {
    i: usize,
    j: usize,
    wins_i: f64,
    wins_j: f64,
    /// ln of the observed proportions (the saturated model), 0 where a side has no wins.
    ln_share_i: f64,
    ln_share_j: f64,
}

/// The columns of A grouped by their (k, n): A[a,b] depends on b only through them.
#[derive(Debug, Clone, Default)]
struct PriorGroups {
    k: Vec<f64>,
    n_minus_k: Vec<f64>,
    multiplicity: Vec<f64>,
    /// Index of the group (n - k, n).
    mirror: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Objective {
    n: usize,
    pairs: Vec<Pair>,
    prior: Option<PriorGroups>,
    /// The likelihood term of the saturated model, sum over S of D_ij ln(D_ij / n_ij) (negated, x2).
    saturated: f64,
}

impl Objective {
    pub fn new(d: &CountMatrix, gaussian_prior: bool) -> Self {
        let n = d.len();
        let mut pairs = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let (wins_i, wins_j) = (d.get(i, j), d.get(j, i));
                if wins_i + wins_j > 0.0 {
                    let ln_share = |w: f64| {
                        if w > 0.0 {
                            (w / (wins_i + wins_j)).ln()
                        } else {
                            0.0
                        }
                    };
                    pairs.push(Pair {
                        i,
                        j,
                        wins_i,
                        wins_j,
                        ln_share_i: ln_share(wins_i),
                        ln_share_j: ln_share(wins_j),
                    });
                }
            }
        }
        let prior = gaussian_prior.then(|| {
            // Ordered pair b = (i,j): k_b = D_ij, except that a unanimous pair is moved one vote
            // towards the middle (pwcmp), so that the prior never rewards infinite distances.
            let shifted = |won: f64, lost: f64| {
                if won == 0.0 && lost > 0.0 {
                    1.0
                } else if won > 0.0 && lost == 0.0 {
                    won - 1.0
                } else {
                    won
                }
            };
            let mut groups: BTreeMap<(u64, u64), f64> = BTreeMap::new();
            for p in &pairs {
                let total = p.wins_i + p.wins_j;
                for (won, lost) in [(p.wins_i, p.wins_j), (p.wins_j, p.wins_i)] {
                    *groups
                        .entry((shifted(won, lost) as u64, total as u64))
                        .or_default() += 1.0;
                }
            }
            let mut g = PriorGroups::default();
            let keys: Vec<(u64, u64)> = groups.keys().copied().collect();
            for ((k, total), m) in groups {
                g.k.push(k as f64);
                g.n_minus_k.push((total - k) as f64);
                g.multiplicity.push(m);
                g.mirror.push(
                    keys.binary_search(&(total - k, total))
                        .expect("groups are closed under mirroring"),
                );
            }
            g
        });
        let saturated = -2.0
            * pairs
                .iter()
                .map(|p| p.wins_i * p.ln_share_i + p.wins_j * p.ln_share_j)
                .sum::<f64>();
        Objective {
            n,
            pairs,
            prior,
            saturated,
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// F(q) without regularisation.
    pub fn value(&self, q: &[f64]) -> f64 {
        self.evaluate(q, false).0 + self.saturated
    }

    /// F(q) and dF/dq.
    pub fn value_and_gradient(&self, q: &[f64]) -> (f64, Vec<f64>) {
        let (f, g) = self.deviance_and_gradient(q);
        (f + self.saturated, g)
    }

    /// F(q) minus its saturated-model constant, with dF/dq. The optimiser works on this form: each
    /// pair contributes D_ij (ln P_ij - ln(D_ij / n_ij)), which is small near the optimum, so the sum
    /// keeps the precision that a line search needs (F itself reaches 10^6 at 20,000 comparisons).
    pub fn deviance_and_gradient(&self, q: &[f64]) -> (f64, Vec<f64>) {
        let (f, g) = self.evaluate(q, true);
        (f, g.expect("gradient requested"))
    }

    fn evaluate(&self, q: &[f64], want_gradient: bool) -> (f64, Option<Vec<f64>>) {
        assert_eq!(q.len(), self.n, "score vector length");
        let n_pairs = self.pairs.len();
        // Per unordered pair p = (i, j): x = (q_i - q_j) / sigma, u = ln P_ij, v = ln P_ji = ln(1 - P_ij).
        // Both orderings of a pair carry identical terms (for the prior as well, see `prior_term`), so
        // everything is computed once per unordered pair and doubled.
        let mut x = Vec::with_capacity(n_pairs);
        let mut u = Vec::with_capacity(n_pairs);
        let mut v = Vec::with_capacity(n_pairs);
        let mut value = 0.0;
        // dF/du_p and dF/dv_p.
        let mut du = Vec::with_capacity(n_pairs);
        let mut dv = Vec::with_capacity(n_pairs);
        for p in &self.pairs {
            let xp = (q[p.i] - q[p.j]) / SIGMA;
            let (lp, lq) = (log_cdf(xp), log_cdf(-xp));
            value -= 2.0 * (p.wins_i * (lp - p.ln_share_i) + p.wins_j * (lq - p.ln_share_j));
            x.push(xp);
            u.push(lp);
            v.push(lq);
            du.push(-2.0 * p.wins_i);
            dv.push(-2.0 * p.wins_j);
        }
        if let Some(groups) = &self.prior {
            value += prior_term(groups, &u, &v, want_gradient.then_some((&mut du, &mut dv)));
        }
        if !want_gradient {
            return (value, None);
        }
        let mut grad = vec![0.0; self.n];
        for (p, pair) in self.pairs.iter().enumerate() {
            // d u / dx = phi(x) / Phi(x), d v / dx = -phi(x) / Phi(-x)
            let dx = du[p] * d_log_cdf(x[p]) - dv[p] * d_log_cdf(-x[p]);
            grad[pair.i] += dx / SIGMA;
            grad[pair.j] -= dx / SIGMA;
        }
        (value, Some(grad))
    }
}

/// -sum_{a in S} ln(prior_a + 0.1), adding its derivatives w.r.t. each unordered pair's u and v to
/// `grads` when given.
///
/// Symmetry halves the work: the reversed pair a' of a has ln A[a', g] = ln A[a, mirror(g)] with
/// mirror(k, n) = (n - k, n), the set of groups is closed under mirroring (k_ji = n - k_ij, also after
/// pwcmp's unanimity shift), and so s_g = s_mirror(g) and prior_a' = prior_a. Only the forward
/// orientation is evaluated: E[g][p] = A[p, g] / s_g.
fn prior_term(
    g: &PriorGroups,
    u: &[f64],
    v: &[f64],
    grads: Option<(&mut Vec<f64>, &mut Vec<f64>)>,
) -> f64 {
    let n_p = u.len();
    let n_g = g.k.len();
    // Pass 1 per group: E'[g][p] = exp(ln A[p,g] - max_g) and its sum, i.e. a partial log-sum-exp.
    let mut e = vec![0.0; n_p * n_g];
    let mut partial = vec![(0.0, 0.0); n_g];
    let fill = |gi: usize, col: &mut [f64]| -> (f64, f64) {
        let (k, nk) = (g.k[gi], g.n_minus_k[gi]);
        let mut max = f64::NEG_INFINITY;
        for (c, (ua, va)) in col.iter_mut().zip(u.iter().zip(v)) {
            *c = k * ua + nk * va;
            max = max.max(*c);
        }
        let mut sum = 0.0;
        for c in col.iter_mut() {
            *c = (*c - max).exp();
            sum += *c;
        }
        (max, sum)
    };
    if n_p * n_g >= PARALLEL_WORK {
        e.par_chunks_mut(n_p)
            .zip(partial.par_iter_mut())
            .enumerate()
            .for_each(|(gi, (col, out))| *out = fill(gi, col));
    } else {
        e.chunks_mut(n_p)
            .zip(partial.iter_mut())
            .enumerate()
            .for_each(|(gi, (col, out))| *out = fill(gi, col));
    }
    // s_g sums over both orientations: the forward values of g and of mirror(g). Normalise E'.
    for gi in 0..n_g {
        let (max_a, sum_a) = partial[gi];
        let (max_b, sum_b) = partial[g.mirror[gi]];
        let top = max_a.max(max_b);
        let s = sum_a * (max_a - top).exp() + sum_b * (max_b - top).exp();
        let factor = (max_a - top).exp() / s;
        for c in &mut e[gi * n_p..(gi + 1) * n_p] {
            *c *= factor;
        }
    }
    let mut prior = vec![0.0; n_p];
    for (col, m) in e.chunks(n_p).zip(&g.multiplicity) {
        for (p, rv) in prior.iter_mut().zip(col) {
            *p += m * rv;
        }
    }
    let value = -2.0 * prior.iter().map(|p| (p + PRIOR_FLOOR).ln()).sum::<f64>();
    if let Some((du, dv)) = grads {
        // Over ordered pairs, with w_a = -1 / (prior_a + 0.1) and W_g = sum_a w_a r_ag:
        // dF/d ln A[b,g] = m_g r_bg (w_b - W_g). Folding the reversed orientation onto the forward one
        // (see above) gives, per unordered pair, U_p = sum_g c_pg k_g and V_p = sum_g c_pg (n_g - k_g)
        // with c_pg = m_g E[g][p] (w_p - W_g); the pair's u gets 2 U_p and its v gets 2 V_p.
        let w: Vec<f64> = prior.iter().map(|p| -1.0 / (p + PRIOR_FLOOR)).collect();
        let half_w: Vec<f64> = e
            .chunks(n_p)
            .map(|col| col.iter().zip(&w).map(|(r, wp)| r * wp).sum())
            .collect();
        for (gi, col) in e.chunks(n_p).enumerate() {
            let big_w = half_w[gi] + half_w[g.mirror[gi]];
            let (m, k, nk) = (g.multiplicity[gi], g.k[gi], g.n_minus_k[gi]);
            for p in 0..n_p {
                let c = 2.0 * m * col[p] * (w[p] - big_w);
                du[p] += c * k;
                dv[p] += c * nk;
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> CountMatrix {
        CountMatrix::from_rows(
            &[
                vec![0., 9., 8., 2.],
                vec![27., 0., 20., 7.],
                vec![28., 16., 0., 5.],
                vec![34., 29., 31., 0.],
            ],
            None,
        )
        .unwrap()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for prior in [false, true] {
            let f = Objective::new(&matrix(), prior);
            let q = [0.3, -0.2, 0.9, 2.1];
            let (_, g) = f.value_and_gradient(&q);
            for k in 0..4 {
                let h = 1e-6;
                let mut qp = q;
                let mut qm = q;
                qp[k] += h;
                qm[k] -= h;
                let fd = (f.value(&qp) - f.value(&qm)) / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() < 1e-5 * fd.abs().max(1.0),
                    "prior {prior} k {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }

    #[test]
    fn value_is_translation_invariant() {
        let f = Objective::new(&matrix(), true);
        let q = [0.3, -0.2, 0.9, 2.1];
        let shifted: Vec<f64> = q.iter().map(|v| v + 5.0).collect();
        assert!((f.value(&q) - f.value(&shifted)).abs() < 1e-9);
    }

    #[test]
    fn huge_counts_stay_finite() {
        let d = CountMatrix::from_rows(&[vec![0., 90000.], vec![30000., 0.]], None).unwrap();
        let f = Objective::new(&d, true);
        let (v, g) = f.value_and_gradient(&[0.0, -40.0]);
        assert!(
            v.is_finite() && g.iter().all(|x| x.is_finite()),
            "{v} {g:?}"
        );
    }
}
