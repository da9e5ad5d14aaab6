//! Power planning: how many comparisons a study needs for a target width of the 95% CIs.
//!
//! Parametric simulation from the fitted scores: for a candidate total of N comparisons, spread over the
//! design's pairs by their relative frequency, `replicates` synthetic studies are drawn (Thurstone case
//! V with [`SIGMA`](crate::SIGMA), so 1 JND = 75%), each is scaled with the same fit as the data, and
//! the CI width of a condition is the 2.5-97.5 percentile spread of its fitted score across the synthetic
//! studies, i.e. the width the observer bootstrap estimates when observers agree with the model.
//! The widths of the conditions are summarised by their mean (default) or maximum. The smallest N that
//! meets the target is found from the start guess N_now * (w_now / target)^2 (CI width ~ 1 / sqrt(N)),
//! refined by a least-squares line of log width on log N over a grid around the guess. Every N is
//! simulated with nested data (replicate r at N2 > N1 extends replicate r at N1), and the synthetic
//! study at N depends only on (seed, replicate, N), so the width curve is smooth in N, the result is
//! deterministic per seed, and the mean and the widest CI are summaries of the same studies.
//!
//! ```
//! use scaling::power::{Design, PowerOptions, plan};
//! use scaling::{CountMatrix, ScaleOptions, scale};
//! let d = CountMatrix::from_rows(&[vec![0., 20., 30.], vec![30., 0., 25.], vec![20., 25., 0.]], None).unwrap();
//! let s = scale(&d, &ScaleOptions::default()).unwrap();
//! let design = Design::observed(&d, &Design::full(3).pairs()).unwrap();
//! let o = PowerOptions { target: 0.2, replicates: 50, ..Default::default() };
//! let p = plan(&d, &s.jnd, &design, &o).unwrap();
//! // 150 comparisons give CIs wider than 0.2 JND: more are needed
//! assert!(p.current_width.unwrap() > 0.2 && !p.target_met);
//! assert_eq!(p.additional_comparisons, p.needed_comparisons - 150);
//! ```

use crate::counts::CountMatrix;
use crate::error::{Result, ScaleError};
use crate::fit::{ScaleOptions, scale};
use crate::normal::cdf;
use crate::objective::SIGMA;
use crate::quantile::quantile_sorted;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Pseudo-count per design pair added to the observed comparisons in [`Design::observed`]: with few
/// answers the design is taken as uniform, with many as the current distribution.
pub const PSEUDO_COUNT: f64 = 5.0;

/// Which pairs of conditions a study asks, and how often relative to each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    conditions: usize,
    pairs: Vec<(usize, usize)>,
    /// Relative frequencies, summing to 1.
    weights: Vec<f64>,
}

impl Design {
    /// Every pair of `conditions` conditions, uniformly.
    pub fn full(conditions: usize) -> Design {
        let pairs: Vec<_> = (0..conditions)
            .flat_map(|i| (i + 1..conditions).map(move |j| (i, j)))
            .collect();
        let w = 1.0 / pairs.len().max(1) as f64;
        Design {
            conditions,
            weights: vec![w; pairs.len()],
            pairs,
        }
    }

    /// Pairs with relative frequencies (any positive scale). Errors on an empty design, a condition
    /// index out of range, a pair of a condition with itself, or a weight that is not positive.
    pub fn weighted(
        conditions: usize,
        pairs: &[(usize, usize)],
        weights: &[f64],
    ) -> Result<Design> {
        if pairs.is_empty() {
            return Err(ScaleError::Invalid("the design has no pairs".into()));
        }
        if pairs.len() != weights.len() {
            return Err(ScaleError::Invalid(format!(
                "{} weights for {} pairs",
                weights.len(),
                pairs.len()
            )));
        }
        for &(i, j) in pairs {
            if i >= conditions || j >= conditions || i == j {
                return Err(ScaleError::Invalid(format!(
                    "design pair ({i}, {j}) is not a pair of two of the {conditions} conditions"
                )));
            }
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(ScaleError::Invalid(format!(
                "design weight {w} is not positive"
            )));
        }
        let total: f64 = weights.iter().sum();
        Ok(Design {
            conditions,
            pairs: pairs.iter().map(|&(i, j)| (i.min(j), i.max(j))).collect(),
            weights: weights.iter().map(|w| w / total).collect(),
        })
    }

    /// The design `pairs` of `d`'s conditions weighted by the comparisons made so far plus
    /// [`PSEUDO_COUNT`] each: uniform over the design while there are few answers, the current
    /// distribution of comparisons per pair once there are many.
    pub fn observed(d: &CountMatrix, pairs: &[(usize, usize)]) -> Result<Design> {
        let n = d.len();
        if let Some(&(i, j)) = pairs.iter().find(|&&(i, j)| i >= n || j >= n) {
            return Err(ScaleError::Invalid(format!(
                "design pair ({i}, {j}) is out of range for {n} conditions"
            )));
        }
        let weights: Vec<f64> = pairs
            .iter()
            .map(|&(i, j)| d.get(i, j) + d.get(j, i) + PSEUDO_COUNT)
            .collect();
        Design::weighted(n, pairs, &weights)
    }

    pub fn pairs(&self) -> Vec<(usize, usize)> {
        self.pairs.clone()
    }

    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Comparisons per pair at a total of `n`: floor(n * C_k) - floor(n * C_(k-1)) with C the
    /// cumulative weights, so they sum to exactly `n` and each is within 1 of n * weight.
    fn allocate(&self, n: usize) -> Vec<u64> {
        let mut cum = 0.0;
        let mut prev = 0u64;
        let last = self.weights.len() - 1;
        self.weights
            .iter()
            .enumerate()
            .map(|(k, w)| {
                cum += w;
                let upto = if k == last {
                    n as u64
                } else {
                    ((n as f64 * cum).floor() as u64).min(n as u64)
                };
                let c = upto.saturating_sub(prev);
                prev = prev.max(upto);
                c
            })
            .collect()
    }
}

/// How the CI widths of the conditions are summarised into the one number the target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidthSummary {
    /// The mean width over conditions.
    #[default]
    Mean,
    /// The widest condition's width.
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerOptions {
    /// Target width of the CIs in JND (> 0).
    pub target: f64,
    pub summary: WidthSummary,
    /// Synthetic studies per candidate N (>= 20).
    pub replicates: usize,
    /// Two-sided level of the CIs: widths of [alpha/2, 1 - alpha/2] percentile intervals.
    pub alpha: f64,
    pub seed: u64,
    /// The search gives up above this total (reported as `capped`).
    pub max_comparisons: usize,
    /// The fit used on each synthetic study (the same as on the data).
    pub scale: ScaleOptions,
}

impl Default for PowerOptions {
    fn default() -> Self {
        PowerOptions {
            target: 0.5,
            summary: WidthSummary::Mean,
            replicates: 200,
            alpha: 0.05,
            seed: 1,
            max_comparisons: 1_000_000,
            scale: ScaleOptions::default(),
        }
    }
}

/// The simulated CI width at one total of comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub comparisons: usize,
    /// Summarised CI width (JND).
    pub width: f64,
}

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Power {
    pub target: f64,
    pub summary: WidthSummary,
    /// Comparisons in the data.
    pub current_comparisons: usize,
    /// Simulated width at the current total (None when most synthetic studies had no finite fit).
    pub current_width: Option<f64>,
    /// Smallest total estimated to meet the target (may be below the current total).
    pub needed_comparisons: usize,
    /// `needed - current`, 0 when the current width already meets the target.
    pub additional_comparisons: usize,
    pub target_met: bool,
    /// The search hit `max_comparisons`: the target needs at least that many.
    pub capped: bool,
    /// Simulated width at `needed_comparisons`.
    pub width_at_needed: Option<f64>,
    /// (N, width) for a plot, increasing N; includes the current and the needed totals.
    pub curve: Vec<CurvePoint>,
    pub replicates: usize,
}

/// Estimates the comparisons needed for `opts.target` (see the module documentation).
/// `data`: the comparisons so far (pooled); `scores`: the scores fitted to them (JND, `data`'s order);
/// `design`: the pairs that will be asked and their relative frequency.
pub fn plan(
    data: &CountMatrix,
    scores: &[f64],
    design: &Design,
    opts: &PowerOptions,
) -> Result<Power> {
    if !(opts.target.is_finite() && opts.target > 0.0) {
        return Err(ScaleError::Invalid(format!(
            "target CI width must be a positive number of JND, got {}",
            opts.target
        )));
    }
    let n = data.len();
    if n < 2 {
        return Err(ScaleError::Invalid(format!(
            "power planning needs at least 2 conditions, got {n}"
        )));
    }
    if scores.len() != n || design.conditions != n {
        return Err(ScaleError::Invalid(format!(
            "{} scores and a design of {} conditions for {n} conditions",
            scores.len(),
            design.conditions
        )));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(ScaleError::Invalid(format!("score {s} is not finite")));
    }
    let current = data.total() as usize;
    if current == 0 {
        return Err(ScaleError::Invalid(
            "power planning needs comparisons to start from; there are none".into(),
        ));
    }
    if opts.replicates < 20 {
        return Err(ScaleError::Invalid(format!(
            "power planning needs at least 20 replicates, got {}",
            opts.replicates
        )));
    }
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        return Err(ScaleError::Invalid(format!(
            "alpha must be in (0, 1), got {}",
            opts.alpha
        )));
    }
    let sim = Simulator {
        scores,
        design,
        opts,
    };
    let min_n = design.pairs.len().max(2);
    let max_n = opts.max_comparisons.max(current);
    let clamp = |x: f64| -> usize { (x.round().max(min_n as f64) as usize).min(max_n) };

    let w_now = sim.widths(&[current])[0];
    // Start: width ~ 1/sqrt(N). Without a width at N_now (mostly unbounded fits), start 4x higher.
    let mut guess = clamp(match w_now {
        Some(w) => current as f64 * (w / opts.target).powi(2),
        None => current as f64 * 4.0,
    });
    let mut needed = guess;
    let mut capped = false;
    for _ in 0..6 {
        let grid: Vec<usize> = dedup([0.7, 0.85, 1.0, 1.2, 1.45].map(|f| clamp(guess as f64 * f)));
        let widths = sim.widths(&grid);
        let pts: Vec<(f64, f64)> = grid
            .iter()
            .zip(&widths)
            .filter_map(|(&n, w)| w.map(|w| ((n as f64).ln(), w.ln())))
            .collect();
        let estimate = match log_line(&pts) {
            // width = exp(a) * N^b; b < 0 where more data narrows the CIs
            Some((a, b)) if b < -0.05 => ((opts.target.ln() - a) / b).exp(),
            // too noisy or flat: the sqrt rule from the widest point of the grid with a width
            _ => match pts.last() {
                Some(&(ln_n, ln_w)) => ln_n.exp() * (ln_w.exp() / opts.target).powi(2),
                None => guess as f64 * 4.0,
            },
        };
        let next = clamp(estimate.ceil());
        needed = next;
        if next >= max_n && guess >= max_n {
            capped = true;
            break;
        }
        // inside the grid just simulated: the line is an interpolation there, done
        if (next as f64) >= guess as f64 * 0.7 && (next as f64) <= guess as f64 * 1.45 {
            break;
        }
        guess = next;
    }
    capped |= needed >= max_n && w_now.is_none_or(|w| w > opts.target);

    // The curve: one nested pass over a log grid from below the smaller to above the larger total.
    let (lo, hi) = (current.min(needed), current.max(needed));
    let (lo_f, hi_f) = ((lo as f64 * 0.5).max(min_n as f64), hi as f64 * 1.5);
    let steps = 10;
    let mut grid: Vec<usize> = (0..=steps)
        .map(|k| clamp(lo_f * (hi_f / lo_f).powf(k as f64 / steps as f64)))
        .collect();
    grid.extend([current, needed]);
    let grid = dedup(grid);
    let widths = sim.widths(&grid);
    let curve: Vec<CurvePoint> = grid
        .iter()
        .zip(&widths)
        .filter_map(|(&comparisons, w)| w.map(|width| CurvePoint { comparisons, width }))
        .collect();
    let at = |n: usize| grid.iter().position(|&g| g == n).and_then(|k| widths[k]);
    let current_width = at(current);
    let target_met = current_width.is_some_and(|w| w <= opts.target);
    let additional = if target_met {
        0
    } else {
        needed.saturating_sub(current).max(1)
    };
    Ok(Power {
        target: opts.target,
        summary: opts.summary,
        current_comparisons: current,
        current_width,
        needed_comparisons: needed,
        additional_comparisons: additional,
        target_met,
        capped,
        width_at_needed: at(needed),
        curve,
        replicates: opts.replicates,
    })
}

fn dedup(v: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = v.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Least-squares line y = a + b x through the points; None with fewer than 2 distinct x.
fn log_line(pts: &[(f64, f64)]) -> Option<(f64, f64)> {
    let m = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / m;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / m;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx < 1e-12 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

struct Simulator<'a> {
    scores: &'a [f64],
    design: &'a Design,
    opts: &'a PowerOptions,
}

impl Simulator<'_> {
    /// The summarised CI width at each total of `grid` (any order): None where fewer than half of
    /// the synthetic studies had a finite fit.
    fn widths(&self, grid: &[usize]) -> Vec<Option<f64>> {
        let n = self.scores.len();
        let p: Vec<f64> = self
            .design
            .pairs
            .iter()
            .map(|&(i, j)| cdf((self.scores[i] - self.scores[j]) / SIGMA))
            .collect();
        let allocations: Vec<Vec<u64>> = grid.iter().map(|&g| self.design.allocate(g)).collect();
        // fits[r][g]: replicate r's scores at grid[g]
        let fits: Vec<Vec<Option<Vec<f64>>>> = (0..self.opts.replicates)
            .into_par_iter()
            .map(|r| {
                let mut outcomes: Vec<Outcomes> = p
                    .iter()
                    .enumerate()
                    .map(|(k, &pk)| Outcomes::new(self.opts.seed, r, k, pk))
                    .collect();
                allocations
                    .iter()
                    .map(|alloc| {
                        let mut d = DMatrix::zeros(n, n);
                        for (k, &(i, j)) in self.design.pairs.iter().enumerate() {
                            let wins = outcomes[k].wins_among(alloc[k]);
                            d[(i, j)] += wins as f64;
                            d[(j, i)] += (alloc[k] - wins) as f64;
                        }
                        let m = CountMatrix::new(d, None).ok()?;
                        scale(&m, &self.opts.scale).ok().map(|s| s.jnd)
                    })
                    .collect()
            })
            .collect();
        (0..grid.len())
            .map(|g| {
                let good: Vec<&Vec<f64>> = fits.iter().filter_map(|f| f[g].as_ref()).collect();
                if good.len() * 2 < self.opts.replicates {
                    return None;
                }
                let widths = (0..n).map(|i| {
                    let mut col: Vec<f64> = good.iter().map(|s| s[i]).collect();
                    col.sort_by(f64::total_cmp);
                    quantile_sorted(&col, 1.0 - self.opts.alpha / 2.0)
                        - quantile_sorted(&col, self.opts.alpha / 2.0)
                });
                Some(match self.opts.summary {
                    WidthSummary::Mean => widths.sum::<f64>() / n as f64,
                    WidthSummary::Max => widths.fold(0.0, f64::max),
                })
            })
            .collect()
    }
}

/// The simulated comparisons of one pair in one synthetic study: one endless sequence of outcomes
/// from the pair's own ChaCha stream, of which a total of `n` comparisons uses the first `n`. So the
/// synthetic study at a total N is a function of (seed, replicate, N) alone, nested in N and the same
/// whichever totals were simulated before it. (Drawing binomial increments along the grid made it
/// depend on the path: the searches for the mean and for the widest CI visit different grids, so they
/// compared different synthetic studies and the widest-CI plan could come out below the mean one.)
struct Outcomes {
    rng: ChaCha8Rng,
    p: f64,
    /// `wins[t]`: wins among the first t comparisons.
    wins: Vec<u64>,
}

impl Outcomes {
    fn new(seed: u64, replicate: usize, pair: usize, p: f64) -> Outcomes {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(((replicate as u64) << 32) | pair as u64);
        Outcomes {
            rng,
            p,
            wins: vec![0],
        }
    }

    fn wins_among(&mut self, n: u64) -> u64 {
        while self.wins.len() <= n as usize {
            let last = self.wins[self.wins.len() - 1];
            let won = self.rng.random::<f64>() < self.p;
            self.wins.push(last + u64::from(won));
        }
        self.wins[n as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_sums_to_n_and_follows_the_weights() {
        let d = Design::weighted(3, &[(0, 1), (1, 2), (0, 2)], &[1.0, 2.0, 1.0]).unwrap();
        for n in [0, 1, 7, 100, 12345] {
            let a = d.allocate(n);
            assert_eq!(a.iter().sum::<u64>(), n as u64);
            for (k, &c) in a.iter().enumerate() {
                assert!((c as f64 - n as f64 * d.weights()[k]).abs() <= 1.0, "{a:?}");
            }
        }
    }

    #[test]
    fn outcomes_are_nested_and_follow_p() {
        let mut o = Outcomes::new(3, 0, 0, 0.7);
        let mut again = Outcomes::new(3, 0, 0, 0.7);
        let w5000 = o.wins_among(5000);
        // asked in another order, the same prefix counts
        for to in [10, 50, 49, 1000, 999] {
            assert!(o.wins_among(to) <= to);
            assert!(o.wins_among(to) <= o.wins_among(to + 1));
        }
        assert_eq!(again.wins_among(1000), o.wins_among(1000));
        assert_eq!(again.wins_among(5000), w5000);
        assert!((w5000 as f64 / 5000.0 - 0.7).abs() < 0.03, "{w5000}/5000");
        // another replicate or pair is another stream
        assert_ne!(Outcomes::new(3, 1, 0, 0.7).wins_among(5000), w5000);
        assert_ne!(Outcomes::new(3, 0, 1, 0.7).wins_among(5000), w5000);
    }

    fn simulator_fixture(summary: WidthSummary) -> (Vec<f64>, Design, PowerOptions) {
        let scores = vec![0.0, 0.4, 1.1, 1.3];
        let design = Design::full(4);
        let opts = PowerOptions {
            target: 0.5,
            replicates: 40,
            summary,
            seed: 9,
            ..Default::default()
        };
        (scores, design, opts)
    }

    #[test]
    fn the_width_at_a_total_does_not_depend_on_the_other_totals_simulated() {
        let (scores, design, opts) = simulator_fixture(WidthSummary::Mean);
        let sim = Simulator {
            scores: &scores,
            design: &design,
            opts: &opts,
        };
        let alone = sim.widths(&[300])[0].unwrap();
        let in_a_grid = sim.widths(&[60, 130, 300, 700])[2].unwrap();
        let other_grid = sim.widths(&[90, 300])[1].unwrap();
        assert_eq!(alone, in_a_grid);
        assert_eq!(alone, other_grid);
    }

    #[test]
    fn the_widest_ci_is_at_least_the_mean_at_every_total() {
        let (scores, design, mean_opts) = simulator_fixture(WidthSummary::Mean);
        let max_opts = PowerOptions {
            summary: WidthSummary::Max,
            ..mean_opts
        };
        let grid = [40, 80, 200, 500, 1200];
        let sim = |o| Simulator {
            scores: &scores,
            design: &design,
            opts: o,
        };
        let mean = sim(&mean_opts).widths(&grid);
        let max = sim(&max_opts).widths(&[1200, 40, 500]);
        for (g, n) in [(4, 0), (0, 1), (3, 2)] {
            let (a, b) = (mean[g].unwrap(), max[n].unwrap());
            assert!(b >= a, "total {}: widest {b} < mean {a}", grid[g]);
        }
    }

    #[test]
    fn observed_design_goes_from_uniform_to_the_observed_frequencies() {
        let few = CountMatrix::from_rows(&[vec![0., 1.], vec![0., 0.]], None).unwrap();
        let pairs = [(0, 1)];
        assert_eq!(Design::observed(&few, &pairs).unwrap().weights(), [1.0]);
        let rows = vec![vec![0., 500., 0.], vec![500., 0., 10.], vec![0., 0., 0.]];
        let many = CountMatrix::from_rows(&rows, None).unwrap();
        let d = Design::observed(&many, &Design::full(3).pairs()).unwrap();
        // (0,1): 1005, (0,2): 5, (1,2): 15 of 1025
        assert!(
            (d.weights()[0] - 1005.0 / 1025.0).abs() < 1e-12,
            "{:?}",
            d.weights()
        );
        assert!(Design::observed(&many, &[(0, 3)]).is_err());
        assert!(Design::weighted(3, &[(1, 1)], &[1.0]).is_err());
    }
}
