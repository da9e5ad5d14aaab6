//! The results page's SVG plots, drawn by the scaling crate's chart functions: JND with CI error bars
//! (the MDF paper's Fig. 5), mean PSNR vs JND per condition (its Fig. 6) and answers over time.

use super::results::StudyResults;

/// Points drawn per line of the answers-over-time chart.
const MAX_LINE_POINTS: usize = 400;

/// Which plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plot {
    Jnd,
    PerceptionDistortion,
    AnswersOverTime,
}

pub const PLOTS: [Plot; 3] = [Plot::Jnd, Plot::PerceptionDistortion, Plot::AnswersOverTime];

impl Plot {
    /// The file name in the download URL.
    pub fn file_name(self) -> &'static str {
        match self {
            Plot::Jnd => "jnd.svg",
            Plot::PerceptionDistortion => "perception-distortion.svg",
            Plot::AnswersOverTime => "answers-over-time.svg",
        }
    }

    pub fn parse(name: &str) -> Option<Plot> {
        PLOTS.into_iter().find(|p| p.file_name() == name)
    }
}

/// The SVG, or None when there is nothing to draw (no scores yet, no PSNR in the bundle, no answers).
/// `times`: (answered_at ms, excluded) of the answers, oldest first (`results::answer_times`); only the
/// answers-over-time plot uses it.
pub fn svg(plot: Plot, r: &StudyResults, times: &[(i64, bool)]) -> anyhow::Result<Option<String>> {
    let fail = |e: String| anyhow::anyhow!("drawing {}: {e}", plot.file_name());
    match plot {
        Plot::Jnd => {
            let Some(p) = &r.analysis.pooled else {
                return Ok(None);
            };
            let points: Vec<scaling::PlotPoint> = p
                .conditions
                .iter()
                .enumerate()
                .map(|(i, name)| scaling::PlotPoint {
                    name,
                    jnd: p.jnd[i],
                    ci: p
                        .ci_low
                        .as_ref()
                        .zip(p.ci_high.as_ref())
                        .map(|(l, h)| (l[i], h[i])),
                })
                .collect();
            let title = format!(
                "JND per condition, pooled over scenes ({} observers, 95% CI)",
                p.observers
            );
            scaling::jnd_chart_svg(&title, &points)
                .map(Some)
                .map_err(fail)
        }
        Plot::PerceptionDistortion => {
            let Some(p) = &r.analysis.pooled else {
                return Ok(None);
            };
            let points: Vec<scaling::ScatterPoint> = p
                .conditions
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    r.mean_psnr
                        .get(i)
                        .copied()
                        .flatten()
                        .map(|x| scaling::ScatterPoint {
                            name,
                            x,
                            y: p.jnd[i],
                            y_ci: p
                                .ci_low
                                .as_ref()
                                .zip(p.ci_high.as_ref())
                                .map(|(l, h)| (l[i], h[i])),
                        })
                })
                .collect();
            if points.is_empty() {
                return Ok(None);
            }
            scaling::scatter_svg(
                "Perception vs distortion",
                "mean PSNR (dB)",
                "JND (1 JND = 75% preference)",
                &points,
            )
            .map(Some)
            .map_err(fail)
        }
        Plot::AnswersOverTime => {
            let Some(t0) = times.iter().map(|a| a.0).min() else {
                return Ok(None);
            };
            let line = |excluded: bool| {
                let times: Vec<i64> = times
                    .iter()
                    .filter(|a| a.1 == excluded)
                    .map(|a| a.0)
                    .collect();
                // at most ~MAX_LINE_POINTS points (every k-th answer and the last): same curve, small SVG
                let step = times.len().div_ceil(MAX_LINE_POINTS).max(1);
                let mut pts = vec![(0.0, 0.0)];
                for (k, t) in times.iter().enumerate() {
                    if (k + 1) % step == 0 || k + 1 == times.len() {
                        pts.push(((t - t0) as f64 / 3_600_000.0, (k + 1) as f64));
                    }
                }
                pts
            };
            let series = [
                scaling::Series {
                    name: "valid answers",
                    points: line(false),
                },
                scaling::Series {
                    name: "answers of excluded HITs",
                    points: line(true),
                },
            ];
            scaling::line_chart_svg(
                "Answers over time",
                "hours since the first answer",
                "answers (cumulative)",
                &series,
            )
            .map(Some)
            .map_err(fail)
        }
    }
}
