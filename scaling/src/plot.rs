//! SVG charts: JND scores with confidence-interval error bars (the MDF paper's Fig. 5 style), labelled
//! scatter plots with vertical intervals (its Fig. 6: distortion metric vs JND) and line charts.

use plotters::coord::types::RangedCoordf64;
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
        let labels: Vec<&str> = order.iter().map(|&i| points[i].name).collect();
        let axes = CategoryAxes {
            x_desc: "condition",
            y_desc: "JND (1 JND = 75% preference)",
            x_area: 70,
            y_area: 60,
        };
        let mut chart = category_chart(&root, title, &labels, (lo - pad)..(hi + pad), &axes)?;
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

/// One labelled point of a scatter plot, with an optional vertical interval (e.g. a JND CI).
pub struct ScatterPoint<'a> {
    pub name: &'a str,
    pub x: f64,
    pub y: f64,
    pub y_ci: Option<(f64, f64)>,
}

/// The (low, high) range of `values`, padded by 10% (at least `min_pad`); (-1, 1) when empty.
fn padded_range(values: impl Iterator<Item = f64>, min_pad: f64) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return -1.0..1.0;
    }
    let pad = ((hi - lo) * 0.1).max(min_pad);
    (lo - pad)..(hi + pad)
}

/// A chart with two `f64` axes, as [`xy_chart_svg`] hands it to its drawing closure.
type XyChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame every x-y chart shares (white canvas, caption, labelled mesh, a legend of the labelled
/// series when `legend`); `draw` adds the series.
fn xy_chart_svg(
    size: (u32, u32),
    title: &str,
    legend: bool,
    (x_desc, y_desc): (&str, &str),
    (xr, yr): (std::ops::Range<f64>, std::ops::Range<f64>),
    draw: impl FnOnce(&mut XyChart<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        draw(&mut chart)?;
        if legend {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Renders labelled points (x, y) with vertical error bars: the MDF paper's Fig. 6, a distortion
/// metric such as mean PSNR on x against the JND score on y, one point per condition.
pub fn scatter_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[ScatterPoint],
) -> Result<String, String> {
    let xr = padded_range(points.iter().map(|p| p.x), 0.25);
    let yr = padded_range(
        points.iter().flat_map(|p| {
            let (l, h) = p.y_ci.unwrap_or((p.y, p.y));
            [p.y, l, h]
        }),
        0.25,
    );
    xy_chart_svg(
        (640, 440),
        title,
        false,
        (x_desc, y_desc),
        (xr, yr),
        |chart| {
            let color = RGBColor(214, 39, 40);
            chart
                .draw_series(points.iter().filter_map(|p| {
                    p.y_ci.map(|(l, h)| {
                        ErrorBar::new_vertical(p.x, l, p.y, h, color.stroke_width(2), 10)
                    })
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(points.iter().map(|p| {
                    EmptyElement::at((p.x, p.y))
                        + Circle::new((0, 0), 5, color.filled())
                        + Text::new(p.name.to_string(), (7, -16), ("sans-serif", 14))
                }))
                .map_err(|e| e.to_string())?;
            Ok(())
        },
    )
}

/// One named line of a line chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Renders named lines (e.g. cumulative answers over time) with a legend.
pub fn line_chart_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, String> {
    let xr = padded_range(
        series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
        0.5,
    );
    let yr = padded_range(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain([0.0]),
        0.5,
    );
    const COLORS: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    xy_chart_svg(
        (640, 400),
        title,
        true,
        (x_desc, y_desc),
        (xr, yr),
        |chart| {
            for (k, s) in series.iter().enumerate() {
                let color = COLORS[k % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(s.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            Ok(())
        },
    )
}

/// The axes of a chart with one slot per category along x.
struct CategoryAxes<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    /// Label area sizes in px.
    x_area: u32,
    y_area: u32,
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame every categorical chart shares: slot k at x = k, labelled `labels[k]`, values on y.
fn category_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    labels: &[&str],
    y: std::ops::Range<f64>,
    axes: &CategoryAxes,
) -> Result<Chart<'a, 'b>, String> {
    let n = labels.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(axes.x_area)
        .y_label_area_size(axes.y_area)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y)
        .map_err(|e| e.to_string())?;
    let label = |x: &f64| -> String {
        let k = x.round();
        if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < n {
            labels[k as usize].to_string()
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
        .y_desc(axes.y_desc)
        .x_desc(axes.x_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// One box of a box plot: the quartiles, whiskers at min and max, and the mean.
#[derive(Debug, Clone, Copy)]
pub struct BoxStats<'a> {
    pub label: &'a str,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
    pub mean: f64,
}

/// An SVG box plot (box = quartiles, line = median, whiskers = min/max, dot = mean), one box per group
/// along x (`x_desc`), the values on y (`title`).
pub fn box_plot_svg(title: &str, x_desc: &str, groups: &[BoxStats]) -> Result<String, String> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in groups {
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
        let labels: Vec<&str> = groups.iter().map(|g| g.label).collect();
        let axes = CategoryAxes {
            x_desc,
            y_desc: title,
            x_area: 60,
            y_area: 70,
        };
        let mut chart = category_chart(&root, title, &labels, (lo - pad)..(hi + pad), &axes)?;
        let color = RGBColor(31, 119, 180);
        for (i, s) in groups.iter().enumerate() {
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

    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|el| el.split('>').nth(1))
            .map(|c| c.split('<').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn scatter_labels_every_point_and_draws_its_interval() {
        let pts = [
            ScatterPoint {
                name: "mdf",
                x: 28.4,
                y: 0.9,
                y_ci: Some((0.6, 1.2)),
            },
            ScatterPoint {
                name: "l1",
                x: 28.9,
                y: -0.9,
                y_ci: None,
            },
        ];
        let svg = scatter_svg("pd", "mean PSNR (dB)", "JND", &pts).unwrap();
        let t = texts(&svg);
        assert!(
            t.iter().any(|x| x == "mdf") && t.iter().any(|x| x == "l1"),
            "{t:?}"
        );
        assert!(t.iter().any(|x| x == "mean PSNR (dB)"), "{t:?}");
        assert_eq!(
            svg.matches("fill=\"#D62728\"").count(),
            2,
            "one marker per point"
        );
        // the error bar: a vertical line and two whiskers
        assert!(svg.matches("stroke=\"#D62728\"").count() >= 3, "{svg}");
    }

    #[test]
    fn line_chart_has_a_legend_entry_and_a_path_per_series() {
        let series = [
            Series {
                name: "valid",
                points: vec![(0.0, 0.0), (1.0, 5.0), (2.0, 9.0)],
            },
            Series {
                name: "excluded",
                points: vec![(0.0, 0.0), (2.0, 1.0)],
            },
        ];
        let svg = line_chart_svg("answers", "hours", "answers", &series).unwrap();
        let t = texts(&svg);
        assert!(
            t.iter().any(|x| x == "valid") && t.iter().any(|x| x == "excluded"),
            "{t:?}"
        );
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
    }

    #[test]
    fn box_plot_draws_one_labelled_box_per_group() {
        let b = |label, m: f64| BoxStats {
            label,
            min: m - 2.0,
            q1: m - 1.0,
            median: m,
            q3: m + 1.0,
            max: m + 2.0,
            mean: m + 0.2,
        };
        let svg = box_plot_svg("PSNR", "loss", &[b("l2", 30.0), b("mdf", 31.0)]).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for label in ["PSNR", "loss", "l2", "mdf"] {
            assert!(svg.contains(label), "{label} missing");
        }
        // a filled and a stroked rectangle per box
        assert_eq!(svg.matches("<rect").count() - 1, 4, "{svg}");
    }
}
