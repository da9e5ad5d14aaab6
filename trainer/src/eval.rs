//! Evaluation of trained runs on a test folder: every run's best model restores every degraded
//! test image; per image PSNR (RGB), PSNR (Y), SSIM and (when its weights are present) LPIPS of
//! the 8-bit result; a summary per model and metric (mean, 95% CI of the mean, 5th percentile),
//! an SVG box plot per metric, the images, and `eval.json` (read by `export-bundle`).
//!
//! Output folder: `per_image.csv`, `summary.csv`, `summary.md`, `{metric}.svg`, `eval.json`,
//! `images/{scene}/{reference,input,KEY}.png`.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::Device;
use tracing::{info, warn};

use crate::data::dataset::{ImageSet, list_images};
use crate::data::degrade::{Degradation, Task, degrade_set};
use crate::image_io::{rgb_to_tensor, save_rgb, tensor_to_rgb, write_atomic};
use crate::losses::{Loss, LossOptions, build_loss};
use crate::metrics::{psnr, psnr_y, ssim};
use crate::summary::{Summary, box_plot_svg, summarize};
use crate::table::csv_bytes;
use crate::train::Config;
use crate::train::fit::{BEST, CONFIG, Model};
use crate::train::sweep::loss_key;

pub const EVAL_JSON: &str = "eval.json";
/// The key of the degraded input (noisy / JPEG / bicubic-upscaled) among the models.
pub const INPUT_KEY: &str = "input";
pub const METRICS: [&str; 4] = ["psnr", "psnr_y", "ssim", "lpips"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalModel {
    pub key: String,
    pub loss: String,
    pub net: crate::nets::NetKind,
    pub run_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalImage {
    pub name: String,
    /// Paths relative to the eval folder.
    pub reference: String,
    pub input: String,
    /// model key -> restored image
    pub outputs: BTreeMap<String, String>,
    /// model key (or `input`) -> metric -> value
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub task: Task,
    /// e.g. `sigma25`, `q10`, `x4`
    pub degradation: String,
    pub test_dir: PathBuf,
    pub models: Vec<EvalModel>,
    pub images: Vec<EvalImage>,
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub runs: Vec<PathBuf>,
    pub test_dir: PathBuf,
    pub out: PathBuf,
    /// Test noise sigma (denoise; default 25).
    pub sigma: Option<f64>,
    /// Test JPEG quality (jpeg; default 10).
    pub quality: Option<u8>,
    pub prescale: f64,
    /// Centre-crop test images to at most this many px per side.
    pub max_side: Option<u32>,
    /// Use only the first N test images.
    pub limit: Option<usize>,
    /// `Some(true)`: LPIPS required; `Some(false)`: skipped; `None`: when its weights exist.
    pub lpips: Option<bool>,
    pub device: Device,
    pub seed: u64,
}

fn load_run(dir: &Path) -> Result<Config> {
    let p = dir.join(CONFIG);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    Config::from_toml(&text).with_context(|| format!("{}", p.display()))
}

fn lpips_loss(o: &EvalOptions) -> Result<Option<Box<dyn Loss>>> {
    match o.lpips {
        Some(false) => Ok(None),
        Some(true) => Ok(Some(
            build_loss("lpips", &LossOptions::new(o.device)).context("--lpips on")?,
        )),
        None => match build_loss("lpips", &LossOptions::new(o.device)) {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                warn!("LPIPS skipped (run `jndlab-train fetch-weights` to get it): {e:#}");
                Ok(None)
            }
        },
    }
}

/// Runs the evaluation (see the module docs).
pub fn evaluate(o: &EvalOptions) -> Result<EvalReport> {
    if o.runs.is_empty() {
        bail!("--runs: give at least one run folder");
    }
    let mut cfgs = Vec::new();
    for r in &o.runs {
        cfgs.push(load_run(r)?);
    }
    let task = cfgs[0].task;
    for (c, r) in cfgs.iter().zip(&o.runs) {
        if c.task != task {
            bail!(
                "{}: task {} differs from {}'s {}",
                r.display(),
                c.task,
                o.runs[0].display(),
                task.name()
            );
        }
    }
    let deg = match task {
        Task::Sisr => Degradation::Bicubic {
            scale: cfgs[0].degrade.scale,
        },
        Task::Denoise => {
            let s = o.sigma.unwrap_or(25.0);
            Degradation::Noise { min: s, max: s }
        }
        Task::Jpeg => Degradation::Jpeg {
            quality: o.quality.unwrap_or(10),
        },
    };
    let mut models = Vec::new();
    let mut nets = Vec::new();
    for (c, r) in cfgs.iter().zip(&o.runs) {
        let mut key = loss_key(&c.loss);
        if models.iter().any(|m: &EvalModel| m.key == key) || key == INPUT_KEY {
            key = format!("{key}-{}", c.name);
        }
        let mut m = Model::new(c, o.device)?;
        m.load(&r.join(BEST))?;
        models.push(EvalModel {
            key,
            loss: c.loss.clone(),
            net: c.net,
            run_dir: r.clone(),
        });
        nets.push(m);
    }
    let mut paths = list_images(&o.test_dir).context("--test")?;
    if let Some(n) = o.limit {
        paths.truncate(n.max(1));
    }
    let set = ImageSet::load(&paths, o.prescale, "test images")?;
    let pairs = degrade_set(&set.names, &set.images, &deg, o.max_side, o.seed)?;
    let lpips = lpips_loss(o)?;
    let border = if task == Task::Sisr {
        deg.scale() as i64
    } else {
        0
    };
    std::fs::create_dir_all(o.out.join("images"))
        .with_context(|| format!("cannot create {}", o.out.display()))?;
    info!(task = task.name(), degradation = %deg.label(), images = pairs.len(), models = models.len(), "evaluating");
    let pb = ProgressBar::new((pairs.len() * models.len()) as u64);
    pb.set_style(
        ProgressStyle::with_template("evaluating {bar:30} {pos}/{len} [{elapsed_precise} < {eta}]")
            .expect("valid template"),
    );
    let mut images = Vec::new();
    for p in &pairs {
        let dir = format!("images/{}", p.name);
        std::fs::create_dir_all(o.out.join(&dir))?;
        let reference = format!("{dir}/reference.png");
        let input = format!("{dir}/input.png");
        let y = p.target.to_device(o.device);
        save_rgb(&tensor_to_rgb(&y)?, &o.out.join(&reference))?;
        // the input as shown (8-bit; SISR: its LR image)
        let input_rgb = tensor_to_rgb(&p.input)?;
        save_rgb(&input_rgb, &o.out.join(&input))?;
        let measure = |out8: &tch::Tensor| -> Result<BTreeMap<String, f64>> {
            let mut m = BTreeMap::new();
            m.insert("psnr".into(), psnr(out8, &y)?);
            m.insert("psnr_y".into(), psnr_y(out8, &y, border)?);
            m.insert("ssim".into(), ssim(out8, &y)?.double_value(&[]));
            if let Some(l) = &lpips {
                let v = tch::no_grad(|| l.forward(out8, &y))?.double_value(&[]);
                m.insert("lpips".into(), v);
            }
            Ok(m)
        };
        let mut metrics = BTreeMap::new();
        let base8 = rgb_to_tensor(&tensor_to_rgb(&p.baseline()?)?, o.device);
        metrics.insert(INPUT_KEY.to_string(), measure(&base8)?);
        let mut outputs = BTreeMap::new();
        for (m, net) in models.iter().zip(&nets) {
            let out = net.restore(&p.input);
            let rgb = tensor_to_rgb(&out)?;
            let rel = format!("{dir}/{}.png", m.key);
            save_rgb(&rgb, &o.out.join(&rel))?;
            metrics.insert(m.key.clone(), measure(&rgb_to_tensor(&rgb, o.device))?);
            outputs.insert(m.key.clone(), rel);
            pb.inc(1);
        }
        images.push(EvalImage {
            name: p.name.clone(),
            reference,
            input,
            outputs,
            metrics,
        });
    }
    pb.finish_and_clear();
    let report = EvalReport {
        task,
        degradation: deg.label(),
        test_dir: o.test_dir.clone(),
        models,
        images,
    };
    write_outputs(&o.out, &report)?;
    Ok(report)
}

/// Per model key (input first) and metric: the summary over images.
pub fn summaries(r: &EvalReport) -> Vec<(String, String, Summary)> {
    let keys = std::iter::once(INPUT_KEY.to_string()).chain(r.models.iter().map(|m| m.key.clone()));
    let mut out = Vec::new();
    for k in keys {
        for metric in METRICS {
            let v: Vec<f64> = r
                .images
                .iter()
                .filter_map(|i| i.metrics.get(&k)?.get(metric).copied())
                .collect();
            if let Some(s) = summarize(&v) {
                out.push((k.clone(), metric.to_string(), s));
            }
        }
    }
    out
}

fn write_outputs(dir: &Path, r: &EvalReport) -> Result<()> {
    let per = r.images.iter().flat_map(|i| {
        i.metrics.iter().flat_map(move |(k, ms)| {
            ms.iter()
                .map(move |(m, v)| vec![k.clone(), i.name.clone(), m.clone(), v.to_string()])
        })
    });
    let per = csv_bytes(&["model", "image", "metric", "value"], per)?;
    write_atomic(&dir.join("per_image.csv"), &per)?;
    let sums = summaries(r);
    let rows = sums.iter().map(|(k, m, s)| {
        let mut row = vec![k.clone(), m.clone(), s.n.to_string()];
        row.extend([s.mean, s.ci_low, s.ci_high, s.p5, s.median].map(|x| x.to_string()));
        row
    });
    let header = [
        "model",
        "metric",
        "n",
        "mean",
        "ci95_low",
        "ci95_high",
        "p5",
        "median",
    ];
    let csv = csv_bytes(&header, rows)?;
    let mut md = format!(
        "{} ({}) on {}: mean [95% CI of the mean], 5th percentile; n = {} images\n\n| model | metric | mean | 95% CI | p5 |\n|---|---|---|---|---|\n",
        r.task,
        r.degradation,
        r.test_dir.display(),
        r.images.len()
    );
    for (k, m, s) in &sums {
        writeln!(
            md,
            "| {k} | {m} | {:.4} | [{:.4}, {:.4}] | {:.4} |",
            s.mean, s.ci_low, s.ci_high, s.p5
        )?;
    }
    write_atomic(&dir.join("summary.csv"), &csv)?;
    write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    for metric in METRICS {
        let groups: Vec<(String, Summary)> = sums
            .iter()
            .filter(|(_, m, _)| m == metric)
            .map(|(k, _, s)| (k.clone(), *s))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let svg =
            box_plot_svg(metric, &groups).map_err(|e| anyhow::anyhow!("plot {metric}: {e}"))?;
        write_atomic(&dir.join(format!("{metric}.svg")), svg.as_bytes())?;
    }
    write_atomic(&dir.join(EVAL_JSON), &serde_json::to_vec_pretty(r)?)?;
    Ok(())
}

/// Reads an `eval.json`.
pub fn read_report(dir: &Path) -> Result<EvalReport> {
    let p = dir.join(EVAL_JSON);
    let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("{}: invalid eval report", p.display()))
}
