//! Which conditions differ significantly: a two-tailed z-test on the bootstrap covariance.

use crate::normal::two_tailed_p;
use serde::{Deserialize, Serialize};

/// Pairwise significance of score differences: z_ij = (q_i - q_j) / sqrt(var_i + var_j - 2 cov_ij)
/// on the bootstrap covariance; `significant` uses the two-tailed p < alpha.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignificanceTable {
    /// Two-tailed p-value of H0 "q_i = q_j"; the diagonal is 1.
    pub p_value: Vec<Vec<f64>>,
    /// One-tailed p-values, as pwcmp's `pw_significance_matrix` reports them (half the two-tailed).
    pub p_one_tailed: Vec<Vec<f64>>,
    /// Two-tailed p < alpha.
    pub significant: Vec<Vec<bool>>,
    pub alpha: f64,
}

/// z_ij = (q_i - q_j) / sqrt(var_i + var_j - 2 cov_ij), p = 2 (1 - Phi(|z|)).
pub fn significance(jnd: &[f64], covariance: &[Vec<f64>], alpha: f64) -> SignificanceTable {
    let n = jnd.len();
    let p_value: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        return 1.0;
                    }
                    let var = covariance[i][i] + covariance[j][j] - 2.0 * covariance[i][j];
                    let diff = jnd[i] - jnd[j];
                    if var <= 0.0 {
                        // No spread at all across replicates: any difference is certain, none is none.
                        return if diff == 0.0 { 1.0 } else { 0.0 };
                    }
                    two_tailed_p(diff / var.sqrt())
                })
                .collect()
        })
        .collect();
    let p_one_tailed = p_value
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .enumerate()
                .map(|(j, &p)| if i == j { 1.0 } else { p / 2.0 })
                .collect()
        })
        .collect();
    let significant = p_value
        .iter()
        .map(|row| row.iter().map(|&p| p < alpha).collect())
        .collect();
    SignificanceTable {
        p_value,
        p_one_tailed,
        significant,
        alpha,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_difference_is_significant_small_is_not() {
        let cov = vec![
            vec![0.01, 0.0, 0.0],
            vec![0.0, 0.01, 0.0],
            vec![0.0, 0.0, 0.01],
        ];
        let s = significance(&[0.0, 0.1, 1.0], &cov, 0.05);
        assert!(!s.significant[0][1] && s.significant[0][2] && s.significant[2][0]);
        // z = 1 / sqrt(0.02) = 7.07 -> p ~ 1.5e-12
        assert!(s.p_value[0][2] < 1e-11 && s.p_value[0][2] > 1e-13);
        // z = 0.1 / sqrt(0.02) = 0.7071 -> two-tailed p = 0.4795
        assert!((s.p_value[0][1] - 0.4795).abs() < 1e-3);
    }
}
