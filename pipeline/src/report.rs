//! `report/report.html`: the MDF paper's figures from this run — JND with 95% CIs per loss (Fig. 5),
//! the perception-distortion plot (Fig. 6: mean PSNR against JND), the PSNR/SSIM/LPIPS distributions
//! over the test scenes, a table of all numbers, one scene's images, and the study's counts. Each figure
//! is also written as its own SVG next to the HTML, which inlines them so the one file can be mailed.
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use maud::{DOCTYPE, PreEscaped, html};
use scaling::{JndSet, PlotPoint, ScatterPoint, jnd_chart_svg, scatter_svg};
use serde::Deserialize;
use study_bundle::Manifest;

use crate::config::PipelineConfig;
use crate::stages::{Layout, Timings};

/// The app's `jnd-json` export: the scaling analysis (`scaling::Analysis`, the one jnd.json type) and,
/// beside it, the study's counts, of which the report shows a few.
#[derive(Debug, Deserialize)]
pub struct JndExport {
    pub counts: Counts,
    #[serde(flatten)]
    pub analysis: scaling::Analysis,
}

/// The study counts the report shows (the app's `results::Counts` has more).
#[derive(Debug, Default, Deserialize)]
pub struct Counts {
    pub answers_valid: usize,
    pub hits: usize,
    pub hits_excluded: usize,
    pub answers_used: usize,
    pub observers_used: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let b = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("{}: unexpected content", p.display()))
}

/// One row of the report's table: a condition with its JND and mean metrics.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub label: String,
    pub jnd: f64,
    pub ci: Option<(f64, f64)>,
    /// Mean over scenes, per metric (psnr, ssim, lpips, ...).
    pub means: BTreeMap<String, f64>,
}

/// Joins the JND scores with the bundle's per-scene metrics; rows sorted best (highest JND) first.
pub fn rows(bundle: &Manifest, jnd: &JndSet) -> Vec<Row> {
    let mut out = Vec::new();
    for (i, key) in jnd.conditions.iter().enumerate() {
        let label = bundle
            .conditions
            .iter()
            .find(|c| &c.key == key)
            .and_then(|c| c.label.clone())
            .unwrap_or_else(|| key.clone());
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for s in &bundle.scenes {
            for (m, v) in s.metrics.get(key).into_iter().flatten() {
                let e = sums.entry(m.clone()).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
        let ci = match (&jnd.ci_low, &jnd.ci_high) {
            (Some(l), Some(h)) => Some((l[i], h[i])),
            _ => None,
        };
        out.push(Row {
            key: key.clone(),
            label,
            jnd: jnd.jnd[i],
            ci,
            means: sums
                .into_iter()
                .map(|(m, (s, n))| (m, s / n as f64))
                .collect(),
        });
    }
    out.sort_by(|a, b| b.jnd.total_cmp(&a.jnd));
    out
}

/// An SVG document without its XML declaration, for inlining.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

pub fn write_report(c: &PipelineConfig, l: &Layout) -> Result<()> {
    let bundle: Manifest = read_json(&l.bundle_dir().join(study_bundle::MANIFEST))?;
    let export: JndExport = read_json(&l.jnd_json())?;
    let pooled = export
        .analysis
        .pooled
        .as_ref()
        .context("the study has no scaled answers (no valid HITs?)")?;
    let rows = rows(&bundle, pooled);
    let timings = Timings::load(l);
    let dir = l.report_dir();
    std::fs::create_dir_all(dir.join("images"))?;

    let mut figures: Vec<(String, String, String)> = Vec::new(); // (file, caption, svg)
    // Charts are labelled by condition key (short); the table gives the full labels.
    let points: Vec<PlotPoint> = rows
        .iter()
        .map(|r| PlotPoint {
            name: &r.key,
            jnd: r.jnd,
            ci: r.ci,
        })
        .collect();
    figures.push((
        "jnd.svg".into(),
        "Perceived quality of each loss in JND (simulated observers; 95% bootstrap CIs). Higher is better; a difference of 1 JND means 75% prefer the higher one.".into(),
        jnd_chart_svg(&format!("{}: JND per loss", c.name), &points)
            .map_err(|e| anyhow::anyhow!("JND chart: {e}"))?,
    ));
    for (metric, axis, caption) in [
        (
            "psnr",
            "mean PSNR (dB)",
            "Perception-distortion: distortion (mean PSNR over the scenes, x) against perceived quality (JND, y).",
        ),
        (
            "lpips",
            "mean LPIPS (lower = closer)",
            "LPIPS against JND: does the learned metric agree with the (simulated) observers?",
        ),
    ] {
        let pts: Vec<ScatterPoint> = rows
            .iter()
            .filter_map(|r| {
                r.means.get(metric).map(|&x| ScatterPoint {
                    name: &r.key,
                    x,
                    y: r.jnd,
                    y_ci: r.ci,
                })
            })
            .collect();
        if pts.len() >= 2 {
            let svg = scatter_svg(&format!("{axis} vs JND"), axis, "JND", &pts)
                .map_err(|e| anyhow::anyhow!("{metric} scatter: {e}"))?;
            let file = if metric == "psnr" {
                "perception-distortion.svg".to_string()
            } else {
                format!("{metric}-vs-jnd.svg")
            };
            figures.push((file, caption.into(), svg));
        }
    }
    // The evaluation's box plots: the distribution over the test images per model.
    for metric in ["psnr", "ssim", "lpips"] {
        let p = l.eval_dir().join(format!("{metric}.svg"));
        if let Ok(svg) = std::fs::read_to_string(&p) {
            figures.push((
                format!("{metric}-distribution.svg"),
                format!(
                    "Distribution of {} over the test scenes per model (box plot from the evaluation).",
                    metric.to_uppercase()
                ),
                svg,
            ));
        }
    }
    for (file, _, svg) in &figures {
        std::fs::write(dir.join(file), svg)?;
    }

    let title = format!("jndlab run {}: {}", c.name, bundle.name);
    let total: f64 = timings.stages.iter().map(|(_, s)| s).sum();
    let metrics: Vec<String> = {
        let mut m: Vec<String> = rows.iter().flat_map(|r| r.means.keys().cloned()).collect();
        m.sort();
        m.dedup();
        m
    };
    // One scene's images, copied next to the report.
    let mut tiles = Vec::new();
    if let Some(scene) = bundle.scenes.first() {
        let mut sources = vec![("reference".to_string(), scene.reference.clone())];
        for r in &rows {
            if let Some(p) = scene.images.get(&r.key) {
                sources.push((r.label.clone(), p.clone()));
            }
        }
        for (i, (label, rel)) in sources.into_iter().enumerate() {
            let ext = Path::new(&rel)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("png");
            let name = format!("images/{i}.{ext}");
            std::fs::copy(l.bundle_dir().join(&rel), dir.join(&name))
                .with_context(|| format!("bundle image {rel}"))?;
            tiles.push((label, name));
        }
    }
    const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}figcaption{color:#555}\
         .scene img{image-rendering:pixelated;margin:2px}.scene figure{display:inline-block;margin:4px}\
         .warn{color:#a40}";
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(STYLE)) } }
            body {
                h1 { (title) }
                p {
                    "Task " b { (c.task) } "; " (bundle.conditions.len()) " losses; " (bundle.scenes.len()) " scenes; "
                    (export.counts.hits) " simulated observers (one HIT each), of whom " (export.counts.hits_excluded)
                    " HITs were excluded by the quality rules; " (export.counts.answers_used) " answers scaled from "
                    (export.counts.observers_used) " observers. The answers come from " b { "simulated observers" }
                    " (an MS-SSIM-driven Thurstonian model), not people: this report shows that the method works end \
                     to end, not which loss people prefer."
                }
                @for w in &export.analysis.warnings { p class="warn" { "warning: " (w) } }
                h2 { "Results" }
                table {
                    tr {
                        th { "condition" } th { "JND" } th { "95% CI" }
                        @for m in &metrics { th { "mean " (m.to_uppercase()) } }
                    }
                    @for r in &rows {
                        tr {
                            td { (r.label) " " small { "(" (r.key) ")" } }
                            td { (format!("{:.2}", r.jnd)) }
                            td { (r.ci.map(|(a, b)| format!("[{a:.2}, {b:.2}]")).unwrap_or_else(|| "-".into())) }
                            @for m in &metrics {
                                td { (r.means.get(m).map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())) }
                            }
                        }
                    }
                }
                h2 { "Figures" }
                @for (file, caption, svg) in &figures {
                    figure {
                        // Our own plotting code's SVG, inlined as it is.
                        (PreEscaped(inline_svg(svg)))
                        figcaption { (caption) " (" a href=(file) { (file) } ")" }
                    }
                }
                @if let Some(scene) = bundle.scenes.first() {
                    h2 { "Scene " (scene.key) }
                    div class="scene" {
                        @for (label, name) in &tiles {
                            figure { img src=(name) alt=(label); figcaption { (label) } }
                        }
                    }
                }
                h2 { "Run" }
                p {
                    "Reproduce: " code { "jndlab pipeline --config " (l.recipe().display()) }
                    " (or " code { "bash scripts/pipeline.sh" } "). Stages (" (format!("{:.1}", total / 60.0)) " min in all):"
                }
                ul { @for (name, secs) in &timings.stages { li { (name) ": " (format!("{secs:.1}")) " s" } } }
            }
        }
    };
    // atomically: a --resume run never takes a half-written report for a finished stage
    let mut f = atomic_write_file::AtomicWriteFile::open(dir.join("report.html"))?;
    std::io::Write::write_all(&mut f, page.into_string().as_bytes())?;
    f.commit()?;
    Ok(())
}
