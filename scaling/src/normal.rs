//! The standard normal distribution in the log domain.
//!
//! pwcmp evaluates `normcdf` in linear space, which underflows to 0 once two conditions are more than
//! ~38 sigma apart and then yields `log(0) = -inf`. The objective needs ln Phi and its derivative for
//! every finite argument: [`log_cdf`] and [`d_log_cdf`] are written here for that (statrs has no
//! log-CDF), on libm's erfc, which is accurate to about 1 ulp (statrs's erfc is ~5e-11 relative off
//! near 1.4, too coarse for a deviance summed over 10^5 comparisons and differentiated). The plain CDF
//! for simulations and the z-test's p-value are statrs's.

use statrs::distribution::{ContinuousCDF, Normal};
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// Below this argument `erfc` would underflow, so the Mills-ratio continued fraction takes over.
const TAIL: f64 = -30.0;

/// Phi(x), the standard normal CDF (statrs), for simulations and power planning.
pub fn cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// Phi(x) on libm's erfc: the precise one inside the log-domain functions.
fn phi_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
}

/// phi(x), the standard normal density.
fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Mills ratio R(t) = (1 - Phi(t)) / phi(t) for large t, by Laplace's continued fraction
/// R(t) = 1 / (t + 1 / (t + 2 / (t + 3 / (t + ...)))), evaluated backwards. For t >= 30 forty terms
/// are exact to machine precision.
fn mills_ratio(t: f64) -> f64 {
    let mut tail = t;
    for k in (1..=40).rev() {
        tail = t + k as f64 / tail;
    }
    1.0 / tail
}

/// ln Phi(x), accurate for every finite x.
pub fn log_cdf(x: f64) -> f64 {
    if x < TAIL {
        -0.5 * x * x - 0.5 * (2.0 * PI).ln() + mills_ratio(-x).ln()
    } else if x > 5.0 {
        (-0.5 * libm::erfc(x * FRAC_1_SQRT_2)).ln_1p()
    } else {
        phi_cdf(x).ln()
    }
}

/// d/dx ln Phi(x) = phi(x) / Phi(x) (the inverse Mills ratio), accurate for every finite x.
pub fn d_log_cdf(x: f64) -> f64 {
    if x < TAIL {
        1.0 / mills_ratio(-x)
    } else {
        pdf(x) / phi_cdf(x)
    }
}

/// The two-tailed p-value of a z score, 2 (1 - Phi(|z|)) (statrs).
pub fn two_tailed_p(z: f64) -> f64 {
    2.0 * Normal::standard().sf(z.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_matches_known_values() {
        assert!((phi_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((phi_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
        assert!((phi_cdf(-1.959963984540054) - 0.025).abs() < 1e-16);
        // statrs's CDF agrees to its own precision
        assert!((cdf(1.959963984540054) - 0.975).abs() < 1e-11);
        // 1 JND: Phi(1 / 1.4826) = 0.75
        assert!((cdf(1.0 / 1.4826) - 0.75).abs() < 1e-4);
    }

    #[test]
    fn log_cdf_is_continuous_across_branches() {
        for &x in &[TAIL, 5.0] {
            let below = log_cdf(x - 1e-9);
            let above = log_cdf(x + 1e-9);
            assert!(
                (below - above).abs() < 1e-7 * below.abs().max(1e-10),
                "{x}: {below} vs {above}"
            );
            let (gb, ga) = (d_log_cdf(x - 1e-9), d_log_cdf(x + 1e-9));
            assert!(
                (gb - ga).abs() < 1e-7 * gb.abs().max(1e-10),
                "{x}: {gb} vs {ga}"
            );
        }
    }

    #[test]
    fn log_cdf_far_tail_is_finite_and_asymptotic() {
        // ln Phi(-100) = -5000 - ln(100) - 0.5 ln(2 pi) + ln(1 - 1e-4 + ...)
        let expected = -5000.0 - 100f64.ln() - 0.5 * (2.0 * PI).ln() + (1.0 - 1e-4 + 3e-8f64).ln();
        assert!((log_cdf(-100.0) - expected).abs() < 1e-9);
        assert!(log_cdf(-1e5).is_finite());
        assert!((d_log_cdf(-1e4) - 1e4).abs() / 1e4 < 1e-7);
        assert_eq!(log_cdf(40.0), 0.0);
    }

    #[test]
    fn d_log_cdf_matches_finite_differences() {
        for &x in &[-50.0, -31.0, -12.0, -3.0, 0.0, 0.7, 4.0, 6.0, 9.0] {
            let h = 1e-6;
            let fd = (log_cdf(x + h) - log_cdf(x - h)) / (2.0 * h);
            assert!(
                (fd - d_log_cdf(x)).abs() < 1e-5 * fd.abs().max(1e-12),
                "{x}: {fd} vs {}",
                d_log_cdf(x)
            );
        }
    }
}
