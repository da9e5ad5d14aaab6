//! Summary statistics of per-image metrics (the paper's Fig. 4: mean, 95% confidence interval
//! of the mean, 5th percentile) and an SVG box plot per metric with one box per model.
use plotters::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// 95% confidence interval of the mean (Student t, n - 1 degrees of freedom).
    pub ci_low: f64,
    pub ci_high: f64,
    /// 5th percentile (linear interpolation between order statistics).
    pub p5: f64,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

/// Quantile `q` in [0, 1] of sorted data, interpolating linearly (`(n - 1) q` rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let r = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (r - lo as f64)
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: exact table values for small
/// `df`, the Cornish-Fisher expansion around the normal quantile beyond (error < 1e-4).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    ];
    if df == 0 {
        return f64::NAN;
    }
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
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
        p5: quantile(&v, 0.05),
        median: quantile(&v, 0.5),
        q1: quantile(&v, 0.25),
        q3: quantile(&v, 0.75),
        min: v[0],
        max: v[n - 1],
    })
}

/// An SVG box plot (box = quartiles, line = median, whiskers = min/max, diamond = mean) of one
/// metric, one box per named group.
pub fn box_plot_svg(metric: &str, groups: &[(String, Summary)]) -> Result<String, String> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, s) in groups {
        lo = lo.min(s.min);
        hi = hi.max(s.max);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let n = groups.len();
    let width = (160 + 90 * n).clamp(480, 1600) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(metric, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        let label = |x: &f64| -> String {
            let k = x.round();
            if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < n {
                groups[k as usize].0.clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(n.max(1))
            .x_label_formatter(&label)
            .disable_x_mesh()
            .label_style(("sans-serif", 14))
            .y_desc(metric)
            .x_desc("loss")
            .draw()
            .map_err(|e| e.to_string())?;
        let color = RGBColor(31, 119, 180);
        for (i, (_, s)) in groups.iter().enumerate() {
            let x = i as f64;
            let w = 0.3;
            chart
                .draw_series([
                    Rectangle::new([(x - w, s.q1), (x + w, s.q3)], color.mix(0.25).filled()),
                    Rectangle::new([(x - w, s.q1), (x + w, s.q3)], color.stroke_width(2)),
                ])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([
                    PathElement::new(
                        vec![(x - w, s.median), (x + w, s.median)],
                        color.stroke_width(3),
                    ),
                    PathElement::new(vec![(x, s.q3), (x, s.max)], color.stroke_width(1)),
                    PathElement::new(vec![(x, s.q1), (x, s.min)], color.stroke_width(1)),
                    PathElement::new(
                        vec![(x - w / 2.0, s.max), (x + w / 2.0, s.max)],
                        color.stroke_width(1),
                    ),
                    PathElement::new(
                        vec![(x - w / 2.0, s.min), (x + w / 2.0, s.min)],
                        color.stroke_width(1),
                    ),
                ])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Circle::new((x, s.mean), 4, RED.filled())])
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
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
        // rank 0.05 * 19 = 0.95 -> 1 + 0.95
        assert!((s.p5 - 1.95).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.median), (1.0, 20.0, 10.5));
        assert!((t975(30) - 2.0423).abs() < 1e-3 && (t975(200) - 1.9719).abs() < 1e-3);
        assert!(summarize(&[f64::INFINITY]).is_none());
        let svg = box_plot_svg("PSNR", &[("l2".into(), s), ("l1".into(), s)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("l1"));
    }
}
