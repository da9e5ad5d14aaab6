//! `report/report.html`: the MDF paper's figures from this run — JND with 95% CIs per loss (Fig. 5),
//! the perception-distortion plot (Fig. 6: mean PSNR against JND), the PSNR/SSIM/LPIPS distributions
//! over the test scenes, a table of all numbers, one scene's images, and the study's counts. Each figure
//! is also written as its own SVG next to the HTML, which inlines them so the one file can be mailed.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use scaling::{PlotPoint, ScatterPoint, jnd_chart_svg, scatter_svg};
use serde::Deserialize;
use study_bundle::Manifest;

use crate::config::PipelineConfig;
use crate::stages::{Layout, Timings};

/// The parts of the app's `jnd-json` export the report uses.
#[derive(Debug, Deserialize)]
pub struct JndExport {
    pub counts: Counts,
    pub pooled: Option<JndSet>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Counts {
    pub answers_valid: usize,
    pub hits: usize,
    pub hits_excluded: usize,
    pub answers_used: usize,
    pub observers_used: usize,
}

#[derive(Debug, Deserialize)]
pub struct JndSet {
    pub conditions: Vec<String>,
    pub jnd: Vec<f64>,
    pub ci_low: Option<Vec<f64>>,
    pub ci_high: Option<Vec<f64>>,
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    let mut h = String::new();
    let title = format!("jndlab run {}: {}", c.name, bundle.name);
    write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}figcaption{{color:#555}}\
         .scene img{{image-rendering:pixelated;margin:2px}}.scene figure{{display:inline-block;margin:4px}}\
         .warn{{color:#a40}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    )?;
    let total: f64 = timings.stages.iter().map(|(_, s)| s).sum();
    writeln!(
        h,
        "<p>Task <b>{}</b>; {} losses; {} scenes; {} simulated observers (one HIT each), of whom {} HITs \
         failed an attention check and were excluded; {} answers scaled from {} observers. \
         The answers come from <b>simulated observers</b> (an MS-SSIM-driven Thurstonian model), not people: \
         this report shows that the method works end to end, not which loss people prefer.</p>",
        esc(&c.task),
        bundle.conditions.len(),
        bundle.scenes.len(),
        export.counts.hits,
        export.counts.hits_excluded,
        export.counts.answers_used,
        export.counts.observers_used,
    )?;
    for w in &export.warnings {
        writeln!(h, "<p class=\"warn\">warning: {}</p>", esc(w))?;
    }
    let metrics: Vec<String> = {
        let mut m: Vec<String> = rows.iter().flat_map(|r| r.means.keys().cloned()).collect();
        m.sort();
        m.dedup();
        m
    };
    write!(
        h,
        "<h2>Results</h2>\n<table><tr><th>condition</th><th>JND</th><th>95% CI</th>"
    )?;
    for m in &metrics {
        write!(h, "<th>mean {}</th>", esc(&m.to_uppercase()))?;
    }
    writeln!(h, "</tr>")?;
    for r in &rows {
        write!(
            h,
            "<tr><td>{} <small>({})</small></td><td>{:.2}</td><td>{}</td>",
            esc(&r.label),
            esc(&r.key),
            r.jnd,
            r.ci.map(|(a, b)| format!("[{a:.2}, {b:.2}]"))
                .unwrap_or_else(|| "-".into())
        )?;
        for m in &metrics {
            match r.means.get(m) {
                Some(v) => write!(h, "<td>{v:.4}</td>")?,
                None => write!(h, "<td>-</td>")?,
            }
        }
        writeln!(h, "</tr>")?;
    }
    writeln!(h, "</table>")?;
    writeln!(h, "<h2>Figures</h2>")?;
    for (file, caption, svg) in &figures {
        writeln!(
            h,
            "<figure>{}<figcaption>{} (<a href=\"{}\">{}</a>)</figcaption></figure>",
            inline_svg(svg),
            esc(caption),
            esc(file),
            esc(file)
        )?;
    }
    if let Some(scene) = bundle.scenes.first() {
        writeln!(
            h,
            "<h2>Scene {}</h2>\n<div class=\"scene\">",
            esc(&scene.key)
        )?;
        let mut tiles = vec![("reference".to_string(), scene.reference.clone())];
        for r in &rows {
            if let Some(p) = scene.images.get(&r.key) {
                tiles.push((r.label.clone(), p.clone()));
            }
        }
        for (i, (label, rel)) in tiles.iter().enumerate() {
            let ext = Path::new(rel)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("png");
            let name = format!("images/{i}.{ext}");
            std::fs::copy(l.bundle_dir().join(rel), dir.join(&name))
                .with_context(|| format!("bundle image {rel}"))?;
            writeln!(
                h,
                "<figure><img src=\"{name}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                esc(label),
                esc(label)
            )?;
        }
        writeln!(h, "</div>")?;
    }
    writeln!(
        h,
        "<h2>Run</h2>\n<p>Reproduce: <code>jndlab pipeline --config {}</code> (or <code>bash scripts/pipeline.sh</code>). \
         Stages ({:.1} min in all):</p><ul>",
        esc(&l.recipe().display().to_string()),
        total / 60.0
    )?;
    for (name, secs) in &timings.stages {
        writeln!(h, "<li>{}: {:.1} s</li>", esc(name), secs)?;
    }
    writeln!(h, "</ul>\n</body></html>")?;
    let tmp = dir.join("report.html.partial");
    std::fs::write(&tmp, h)?;
    std::fs::rename(&tmp, dir.join("report.html"))?;
    Ok(())
}
