//! SVG chart of JND scores with confidence-interval error bars (the MDF paper's Fig. 5 style).

use plotters::prelude::*;

/// One condition on the chart.
pub struct PlotPoint<'a> {
    pub name: &'a str,
    pub jnd: f64,
    /// (low, high) when a CI is known.
    pub ci: Option<(f64, f64)>,
}

/// Renders the points, sorted by score, into an SVG document.
pub fn jnd_chart_svg(title: &str, points: &[PlotPoint]) -> Result<String, String> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].jnd.total_cmp(&points[b].jnd));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        let (l, h) = p.ci.unwrap_or((p.jnd, p.jnd));
        lo = lo.min(l.min(p.jnd));
        hi = hi.max(h.max(p.jnd));
    }
    if !lo.is_finite() {
        lo = -1.0;
        hi = 1.0;
    }
    let pad = ((hi - lo) * 0.1).max(0.25);
    let width = (160 + 70 * points.len()).clamp(480, 1600) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = points.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        let label = |x: &f64| -> String {
            let k = x.round();
            if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < n {
                points[order[k as usize]].name.to_string()
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
            .y_desc("JND (1 JND = 75% preference)")
            .x_desc("condition")
            .draw()
            .map_err(|e| e.to_string())?;
        let color = RGBColor(31, 119, 180);
        chart
            .draw_series(order.iter().enumerate().filter_map(|(x, &i)| {
                points[i].ci.map(|(l, h)| {
                    ErrorBar::new_vertical(x as f64, l, points[i].jnd, h, color.stroke_width(2), 12)
                })
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                order
                    .iter()
                    .enumerate()
                    .map(|(x, &i)| Circle::new((x as f64, points[i].jnd), 5, color.filled())),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_every_condition_and_draws_error_bars() {
        let pts = [
            PlotPoint {
                name: "mdf",
                jnd: 0.8,
                ci: Some((0.5, 1.1)),
            },
            PlotPoint {
                name: "l2",
                jnd: -0.8,
                ci: Some((-1.0, -0.6)),
            },
        ];
        let svg = jnd_chart_svg("test", &pts).unwrap();
        let text = |t: &str| {
            svg.split("<text").skip(1).any(|el| {
                el.split('>')
                    .nth(1)
                    .is_some_and(|c| c.trim().starts_with(t))
            })
        };
        assert!(
            svg.starts_with("<svg") && text("mdf") && text("l2"),
            "{svg}"
        );
        // one filled marker per condition, one vertical bar per CI
        assert_eq!(svg.matches("fill=\"#1F77B4\"").count(), 2);
    }
}
