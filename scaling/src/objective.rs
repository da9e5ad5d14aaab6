//! pwcmp's negative log-posterior F(q) and its analytic gradient, in the log domain.
//!
//! F(q) = - sum_{(i,j) in S} [D_ij ln P_ij + D_ji ln(1 - P_ij)] - sum_{a in S} ln(prior_a + 0.1)
//! with S the ordered compared pairs, P_ij = Phi((q_i - q_j) / sigma) and pwcmp's "gaussian" prior
//! prior_a = sum_b A[a,b] / s_b, A[a,b] = P_a^k_b (1 - P_a)^(n_b - k_b), s_b = sum_a A[a,b].
//! The regularisation term is handled by the caller (see `fit`): the rest is translation invariant.

use crate::counts::CountMatrix;
use crate::normal::{d_log_cdf, log_cdf};
use nalgebra::DMatrix;
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

    /// Comparisons (each answer once).
    pub(crate) fn comparisons(&self) -> f64 {
        self.pairs.iter().map(|p| p.wins_i + p.wins_j).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// F(q) without regularisation.
    pub fn value(&self, q: &[f64]) -> f64 {
        self.deviance(q) + self.saturated
    }

    /// F(q) and dF/dq.
    pub fn value_and_gradient(&self, q: &[f64]) -> (f64, Vec<f64>) {
        let (f, g, _) = self.evaluate(q, Order::Gradient);
        (f + self.saturated, g.expect("gradient requested"))
    }

    /// F(q) minus its saturated-model constant. The optimiser works on this form: each pair
    /// contributes D_ij (ln P_ij - ln(D_ij / n_ij)), which is small near the optimum, so the sum keeps
    /// the precision that a line search needs (F itself reaches 10^6 at 20,000 comparisons).
    pub fn deviance(&self, q: &[f64]) -> f64 {
        self.evaluate(q, Order::Value).0
    }

    /// The deviance with its gradient.
    pub fn deviance_and_gradient(&self, q: &[f64]) -> (f64, Vec<f64>) {
        let (f, g, _) = self.evaluate(q, Order::Gradient);
        (f, g.expect("gradient requested"))
    }

    /// The deviance with its gradient and its (dense, N x N) Hessian.
    pub fn deviance_gradient_hessian(&self, q: &[f64]) -> (f64, Vec<f64>, DMatrix<f64>) {
        let (f, g, h) = self.evaluate(q, Order::Hessian);
        (
            f,
            g.expect("gradient requested"),
            h.expect("Hessian requested"),
        )
    }

    /// Without a prior: the deviance, its gradient and the Hessian's pair weights h_p, so that
    /// H = sum_p h_p (e_i - e_j)(e_i - e_j)^T (a weighted graph Laplacian, sparse).
    pub(crate) fn likelihood_laplacian(&self, q: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        assert!(self.prior.is_none(), "the Laplacian form needs prior none");
        let mut value = 0.0;
        let mut grad = vec![0.0; self.n];
        let mut weights = Vec::with_capacity(self.pairs.len());
        for p in &self.pairs {
            let d = PairDerivatives::at((q[p.i] - q[p.j]) / SIGMA);
            value -= 2.0 * (p.wins_i * (d.u - p.ln_share_i) + p.wins_j * (d.v - p.ln_share_j));
            let dx = -2.0 * (p.wins_i * d.du + p.wins_j * d.dv);
            grad[p.i] += dx / SIGMA;
            grad[p.j] -= dx / SIGMA;
            weights.push(-2.0 * (p.wins_i * d.ddu + p.wins_j * d.ddv) / (SIGMA * SIGMA));
        }
        (value, grad, weights)
    }

    /// The compared pairs (i < j) in the order of [`Self::likelihood_laplacian`]'s weights.
    pub(crate) fn pair_indices(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pairs.iter().map(|p| (p.i, p.j))
    }

    fn evaluate(&self, q: &[f64], order: Order) -> (f64, Option<Vec<f64>>, Option<DMatrix<f64>>) {
        assert_eq!(q.len(), self.n, "score vector length");
        // Per unordered pair p = (i, j): x = (q_i - q_j) / sigma, u = ln P_ij, v = ln P_ji = ln(1 - P_ij).
        // Both orderings of a pair carry identical terms (for the prior as well, see `prior_term`), so
        // everything is computed once per unordered pair and doubled.
        let derivs: Vec<PairDerivatives> = self
            .pairs
            .iter()
            .map(|p| PairDerivatives::at((q[p.i] - q[p.j]) / SIGMA))
            .collect();
        let mut value = 0.0;
        // dF/dx_p and d2F/dx_p^2 of the likelihood.
        let mut dx = Vec::with_capacity(self.pairs.len());
        let mut ddx = Vec::with_capacity(self.pairs.len());
        for (p, d) in self.pairs.iter().zip(&derivs) {
            value -= 2.0 * (p.wins_i * (d.u - p.ln_share_i) + p.wins_j * (d.v - p.ln_share_j));
            dx.push(-2.0 * (p.wins_i * d.du + p.wins_j * d.dv));
            ddx.push(-2.0 * (p.wins_i * d.ddu + p.wins_j * d.ddv));
        }
        let mut low_rank = None;
        if let Some(groups) = &self.prior {
            let fill = PriorFill::new(groups, &derivs);
            value += fill.value();
            if order != Order::Value {
                fill.add_gradient(groups, &derivs, &mut dx);
            }
            if order == Order::Hessian {
                low_rank = Some(fill.add_hessian(groups, &derivs, &self.pairs, self.n, &mut ddx));
            }
        }
        if order == Order::Value {
            return (value, None, None);
        }
        let mut grad = vec![0.0; self.n];
        for (pair, d) in self.pairs.iter().zip(&dx) {
            grad[pair.i] += d / SIGMA;
            grad[pair.j] -= d / SIGMA;
        }
        if order == Order::Gradient {
            return (value, Some(grad), None);
        }
        let mut h = low_rank.unwrap_or_else(|| DMatrix::zeros(self.n, self.n));
        for (pair, w) in self.pairs.iter().zip(&ddx) {
            let w = w / (SIGMA * SIGMA);
            h[(pair.i, pair.i)] += w;
            h[(pair.j, pair.j)] += w;
            h[(pair.i, pair.j)] -= w;
            h[(pair.j, pair.i)] -= w;
        }
        (value, Some(grad), Some(h))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Value,
    Gradient,
    Hessian,
}

/// u = ln Phi(x), v = ln Phi(-x) and their first two derivatives in x.
#[derive(Debug, Clone, Copy)]
struct PairDerivatives {
    u: f64,
    v: f64,
    du: f64,
    dv: f64,
    ddu: f64,
    ddv: f64,
}

impl PairDerivatives {
    fn at(x: f64) -> Self {
        // lambda(y) = phi(y) / Phi(y): u' = lambda(x), u'' = -lambda(x) (x + lambda(x)); v(x) = u(-x).
        let (lp, lm) = (d_log_cdf(x), d_log_cdf(-x));
        PairDerivatives {
            u: log_cdf(x),
            v: log_cdf(-x),
            du: lp,
            dv: -lm,
            ddu: -lp * (x + lp),
            ddv: lm * (x - lm),
        }
    }
}

/// The prior's normalised terms at one q: r[g][p] = A[p, g] / s_g (forward orientation) and
/// prior_p = sum_g m_g r[g][p].
///
/// Symmetry halves the work: the reversed pair a' of a has ln A[a', g] = ln A[a, mirror(g)] with
/// mirror(k, n) = (n - k, n), the set of groups is closed under mirroring (k_ji = n - k_ij, also after
/// pwcmp's unanimity shift), and so s_g = s_mirror(g) and prior_a' = prior_a. Only the forward
/// orientation is evaluated.
struct PriorFill {
    n_p: usize,
    r: Vec<f64>,
    prior: Vec<f64>,
}

impl PriorFill {
    fn new(g: &PriorGroups, d: &[PairDerivatives]) -> Self {
        let n_p = d.len();
        let n_g = g.k.len();
        // Pass 1 per group: exp(ln A[p,g] - max_g) and its sum, i.e. a partial log-sum-exp.
        let mut r = vec![0.0; n_p * n_g];
        let mut partial = vec![(0.0, 0.0); n_g];
        let fill = |gi: usize, col: &mut [f64]| -> (f64, f64) {
            let (k, nk) = (g.k[gi], g.n_minus_k[gi]);
            let mut max = f64::NEG_INFINITY;
            for (c, dp) in col.iter_mut().zip(d) {
                *c = k * dp.u + nk * dp.v;
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
            r.par_chunks_mut(n_p)
                .zip(partial.par_iter_mut())
                .enumerate()
                .for_each(|(gi, (col, out))| *out = fill(gi, col));
        } else {
            r.chunks_mut(n_p)
                .zip(partial.iter_mut())
                .enumerate()
                .for_each(|(gi, (col, out))| *out = fill(gi, col));
        }
        // s_g sums over both orientations: the forward values of g and of mirror(g). Normalise.
        for gi in 0..n_g {
            let (max_a, sum_a) = partial[gi];
            let (max_b, sum_b) = partial[g.mirror[gi]];
            let top = max_a.max(max_b);
            let s = sum_a * (max_a - top).exp() + sum_b * (max_b - top).exp();
            let factor = (max_a - top).exp() / s;
            for c in &mut r[gi * n_p..(gi + 1) * n_p] {
                *c *= factor;
            }
        }
        let mut prior = vec![0.0; n_p];
        for (col, m) in r.chunks(n_p).zip(&g.multiplicity) {
            for (p, rv) in prior.iter_mut().zip(col) {
                *p += m * rv;
            }
        }
        PriorFill { n_p, r, prior }
    }

    /// -sum_{a in S} ln(prior_a + 0.1) = -2 sum_p ln(prior_p + 0.1).
    fn value(&self) -> f64 {
        -2.0 * self
            .prior
            .iter()
            .map(|p| (p + PRIOR_FLOOR).ln())
            .sum::<f64>()
    }

    fn col(&self, gi: usize) -> &[f64] {
        &self.r[gi * self.n_p..(gi + 1) * self.n_p]
    }

    /// w_p = 1 / (prior_p + 0.1).
    fn w(&self) -> Vec<f64> {
        self.prior.iter().map(|p| 1.0 / (p + PRIOR_FLOOR)).collect()
    }

    /// ell'_gp = k_g u'_p + (n_g - k_g) v'_p, the x-derivative of ln A[p, g].
    fn dl(g: &PriorGroups, gi: usize, d: &PairDerivatives) -> f64 {
        g.k[gi] * d.du + g.n_minus_k[gi] * d.dv
    }

    /// Adds dF_prior/dx_p to `dx`. With w_p = 1 / (prior_p + 0.1), R_g = sum_p w_p r_gp and
    /// tau_gp = r_gp ell'_gp + r_g~p ell'_g~p (g~ = mirror(g), the x-derivative of ln s_g's term):
    /// dF/dx_p = -2 (w_p sum_g m_g r_gp ell'_gp - sum_g m_g R_g tau_gp).
    fn add_gradient(&self, g: &PriorGroups, d: &[PairDerivatives], dx: &mut [f64]) {
        let w = self.w();
        let n_g = g.k.len();
        let big_r: Vec<f64> = (0..n_g)
            .map(|gi| self.col(gi).iter().zip(&w).map(|(r, w)| r * w).sum())
            .collect();
        for gi in 0..n_g {
            let (col, mcol) = (self.col(gi), self.col(g.mirror[gi]));
            let m = g.multiplicity[gi];
            let c = m * big_r[gi];
            for p in 0..self.n_p {
                let (l, lm) = (Self::dl(g, gi, &d[p]), Self::dl(g, g.mirror[gi], &d[p]));
                let tau = col[p] * l + mcol[p] * lm;
                dx[p] += -2.0 * (w[p] * m * col[p] * l - c * tau);
            }
        }
    }

    /// Adds the diagonal (per pair) part of d2F_prior/dx2 to `ddx` and returns the rest, a sum of
    /// low-rank terms, already in q (N x N). With alpha_p = sum_g m_g r_gp ell'_gp,
    /// J = dprior/dx = diag(alpha) - M T^T (M_pg = m_g r_gp, T_pg = tau_gp) and
    /// kappa_gp = sum over g, g~ of r (ell'^2 + ell''):
    /// d2F/dx2 = 2 J^T W^2 J - 2 [diag(w_p sum_g m_g r_gp (ell'^2 + ell'')_gp - sum_g m_g R_g kappa_gp)
    ///           - Y T^T - T Y^T + 2 T diag(m R) T^T],  Y_pg = w_p m_g r_gp ell'_gp.
    /// Mapped to q by B (x = B q / sigma): the diagonal parts become a weighted Laplacian (added by
    /// the caller), the rest 2 (V^ T^^T + T^ V^^T) + T^ (2 M^T W^2 M - 4 diag(m R)) T^^T with
    /// V_pg = m_g r_gp w_p (ell'_gp - alpha_p w_p) and X^ = B^T X.
    fn add_hessian(
        &self,
        g: &PriorGroups,
        d: &[PairDerivatives],
        pairs: &[Pair],
        n: usize,
        ddx: &mut [f64],
    ) -> DMatrix<f64> {
        let (n_p, n_g) = (self.n_p, g.k.len());
        let w = self.w();
        let big_r: Vec<f64> = (0..n_g)
            .map(|gi| self.col(gi).iter().zip(&w).map(|(r, w)| r * w).sum())
            .collect();
        let mut alpha = vec![0.0; n_p];
        // P x G matrices (column-major: column g is contiguous over pairs).
        let mut tau = DMatrix::zeros(n_p, n_g);
        let mut m_r = DMatrix::zeros(n_p, n_g);
        let mut diag = vec![0.0; n_p];
        for gi in 0..n_g {
            let gm = g.mirror[gi];
            let (col, mcol) = (self.col(gi), self.col(gm));
            let m = g.multiplicity[gi];
            for p in 0..n_p {
                let dp = &d[p];
                let (l, lm) = (Self::dl(g, gi, dp), Self::dl(g, gm, dp));
                let (ll, llm) = (
                    g.k[gi] * dp.ddu + g.n_minus_k[gi] * dp.ddv,
                    g.k[gm] * dp.ddu + g.n_minus_k[gm] * dp.ddv,
                );
                let t = col[p] * l + mcol[p] * lm;
                let kappa = col[p] * (l * l + ll) + mcol[p] * (lm * lm + llm);
                tau[(p, gi)] = t;
                m_r[(p, gi)] = m * col[p];
                alpha[p] += m * col[p] * l;
                diag[p] += -2.0 * (w[p] * m * col[p] * (l * l + ll) - m * big_r[gi] * kappa);
            }
        }
        let mut v = DMatrix::zeros(n_p, n_g);
        for gi in 0..n_g {
            for p in 0..n_p {
                let l = Self::dl(g, gi, &d[p]);
                v[(p, gi)] = m_r[(p, gi)] * w[p] * (l - alpha[p] * w[p]);
            }
        }
        for p in 0..n_p {
            ddx[p] += diag[p] + 2.0 * alpha[p] * alpha[p] * w[p] * w[p];
        }
        // B^T X: row i gets +X_p for pairs (i, .), -X_p for pairs (., i); then 1 / sigma per B.
        let scatter = |x: &DMatrix<f64>| -> DMatrix<f64> {
            let mut out = DMatrix::zeros(n, x.ncols());
            for c in 0..x.ncols() {
                for (p, pair) in pairs.iter().enumerate() {
                    out[(pair.i, c)] += x[(p, c)] / SIGMA;
                    out[(pair.j, c)] -= x[(p, c)] / SIGMA;
                }
            }
            out
        };
        let t_hat = scatter(&tau);
        let v_hat = scatter(&v);
        let cross = &v_hat * t_hat.transpose();
        let mut h = (&cross + cross.transpose()) * 2.0;
        // T^ (2 M^T W^2 M) T^^T, through whichever product is cheaper.
        let mut wm = m_r;
        for p in 0..n_p {
            wm.row_mut(p).scale_mut(w[p]);
        }
        if n_g <= n {
            let mut c = wm.tr_mul(&wm) * 2.0;
            for gi in 0..n_g {
                c[(gi, gi)] -= 4.0 * g.multiplicity[gi] * big_r[gi];
            }
            h += &t_hat * c * t_hat.transpose();
        } else {
            // (W M T^^T) is P x N: its Gram matrix is M^T-free.
            let k = &wm * t_hat.transpose();
            h += k.tr_mul(&k) * 2.0;
            let mut scaled = t_hat.clone();
            for gi in 0..n_g {
                scaled
                    .column_mut(gi)
                    .scale_mut(4.0 * g.multiplicity[gi] * big_r[gi]);
            }
            h -= scaled * t_hat.transpose();
        }
        h
    }
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
    fn hessian_matches_finite_differences_of_the_gradient() {
        // a design with few groups (k, n) and one with more groups than conditions: both products
        let sparse_counts = CountMatrix::from_rows(
            &[
                vec![0., 1., 2., 0., 3.],
                vec![2., 0., 1., 1., 0.],
                vec![1., 2., 0., 4., 1.],
                vec![0., 1., 0., 0., 2.],
                vec![1., 0., 2., 1., 0.],
            ],
            None,
        )
        .unwrap();
        for (d, q) in [
            (matrix(), vec![0.3, -0.2, 0.9, 2.1]),
            (sparse_counts, vec![0.1, -0.4, 0.5, 1.2, -0.3]),
        ] {
            for prior in [false, true] {
                let f = Objective::new(&d, prior);
                let (_, g0, h) = f.deviance_gradient_hessian(&q);
                assert_eq!(g0, f.deviance_and_gradient(&q).1);
                let n = q.len();
                for k in 0..n {
                    let eps = 1e-6;
                    let mut qp = q.clone();
                    let mut qm = q.clone();
                    qp[k] += eps;
                    qm[k] -= eps;
                    let (gp, gm) = (
                        f.deviance_and_gradient(&qp).1,
                        f.deviance_and_gradient(&qm).1,
                    );
                    for i in 0..n {
                        let fd = (gp[i] - gm[i]) / (2.0 * eps);
                        assert!(
                            (fd - h[(i, k)]).abs() < 1e-5 * fd.abs().max(1.0),
                            "prior {prior} H[{i}][{k}]: {fd} vs {}",
                            h[(i, k)]
                        );
                    }
                }
                if !prior {
                    let (v, g, w) = f.likelihood_laplacian(&q);
                    assert_eq!((v, &g), (f.deviance(&q), &g0));
                    let mut lap = DMatrix::zeros(n, n);
                    for ((i, j), w) in f.pair_indices().zip(w) {
                        lap[(i, i)] += w;
                        lap[(j, j)] += w;
                        lap[(i, j)] -= w;
                        lap[(j, i)] -= w;
                    }
                    assert!((lap - &h).amax() < 1e-12, "Laplacian form");
                }
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
