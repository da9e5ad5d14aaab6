//! Summary statistics of per-image metrics (the paper's Fig. 4: mean, 95% confidence interval
//! of the mean, 5th percentile) and an SVG box plot per metric with one box per model.
use scaling::BoxStats;
use scaling::quantile_sorted;
use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// 95% confidence interval of the mean (Student t, n - 1 degrees of freedom).
    pub ci_low: f64,
    pub ci_high: f64,
    /// 5th percentile (MATLAB's `prctile`, as every percentile of the project).
    pub p5: f64,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (NaN for none).
pub fn t975(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    StudentsT::new(0.0, 1.0, df as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// Summarises finite values (non-finite ones, e.g. the infinite PSNR of a perfect image, are
/// dropped). `None` for no values.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let half = if n > 1 {
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        t975(n - 1) * (var / n as f64).sqrt()
    } else {
        f64::NAN
    };
    Some(Summary {
        n,
        mean,
        ci_low: mean - half,
        ci_high: mean + half,
        p5: quantile_sorted(&v, 0.05),
        median: quantile_sorted(&v, 0.5),
        q1: quantile_sorted(&v, 0.25),
        q3: quantile_sorted(&v, 0.75),
        min: v[0],
        max: v[n - 1],
    })
}

/// The SVG box plot of one metric, one box per named group (`scaling::box_plot_svg`, the
/// project's one chart module).
pub fn box_plot_svg(metric: &str, groups: &[(String, Summary)]) -> Result<String, String> {
    let boxes: Vec<BoxStats> = groups
        .iter()
        .map(|(label, s)| BoxStats {
            label,
            min: s.min,
            q1: s.q1,
            median: s.median,
            q3: s.q3,
            max: s.max,
            mean: s.mean,
        })
        .collect();
    scaling::box_plot_svg(metric, "loss", &boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // 1..=20: mean 10.5, sd sqrt(35), t(19) = 2.0930
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summarize(&v).unwrap();
        assert!((s.mean - 10.5).abs() < 1e-12);
        let half = 2.0930 * (35.0f64 / 20.0).sqrt();
        assert!((s.ci_high - s.mean - half).abs() < 1e-3, "{s:?}");
        // MATLAB prctile: x_i sits at (i - 0.5) / 20, so 5% is halfway between x_1 and x_2
        assert!((s.p5 - 1.5).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.median), (1.0, 20.0, 10.5));
        // t tables: t(0.975; 1) = 12.7062, t(0.975; 30) = 2.0423, t(0.975; 200) = 1.9719
        assert!((t975(1) - 12.7062).abs() < 1e-4);
        assert!((t975(30) - 2.0423).abs() < 1e-4 && (t975(200) - 1.9719).abs() < 1e-4);
        assert!(summarize(&[f64::INFINITY]).is_none());
        let svg = box_plot_svg("PSNR", &[("l2".into(), s), ("l1".into(), s)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("l1"));
    }
}
