//! Percentiles exactly as MATLAB's `prctile`/`quantile`: the sorted sample x_1..x_n sits at cumulative
//! probabilities (k - 0.5) / n, with linear interpolation between and clamping outside.

/// The p-quantile (0 <= p <= 1) of `values` (NaNs must have been removed).
pub fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, p)
}

pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    assert!(n > 0, "quantile of an empty sample");
    let pos = p * n as f64 - 0.5; // 0-based position
    if pos <= 0.0 {
        return sorted[0];
    }
    if pos >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_matlab() {
        // MATLAB: quantile([1 2 3 4], [0.25 0.5 0.75]) = [1.5 2.5 3.5]; prctile(1:5, 2.5) = 1
        let x = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&x, 0.25), 1.5);
        assert_eq!(quantile(&x, 0.5), 2.5);
        assert_eq!(quantile(&x, 0.75), 3.5);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.025), 1.0);
        // quantile(1:10, 0.3) = 3.5 (0.3 lies halfway between 3's 0.25 and 4's 0.35)
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile(&ten, 0.3) - 3.5).abs() < 1e-12);
    }
}
