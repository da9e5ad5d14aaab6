//! The training/evaluation subcommands of `jndlab-train` (`fit`, `sweep`, `eval`,
//! `export-bundle`): their options and what they run.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::train::sweep::{best_row, lambda_specs, sweep, write_results};
use crate::train::{Config, FitOptions, fit};

#[derive(Args, Debug)]
pub struct FitArgs {
    /// Training recipe (TOML), e.g. trainer/configs/dncnn_denoise.toml.
    #[arg(long, required_unless_present_all = ["task", "net"])]
    pub config: Option<PathBuf>,
    /// Without --config: the shipped recipe `trainer/configs/{NET}_{TASK}.toml` (sisr, denoise, jpeg).
    #[arg(long, conflicts_with = "config", requires = "net")]
    pub task: Option<crate::data::Task>,
    /// Without --config: the network of the shipped recipe (edsr, srresnet, dncnn).
    #[arg(long, conflicts_with = "config", requires = "task")]
    pub net: Option<crate::nets::NetKind>,
    /// Override a recipe value, e.g. `--set optim.lr=1e-4 --set loss=mdf:denoising`
    /// (dotted TOML key = TOML value; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue the run in its run folder from the last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Seed of weight init, patches and noise (= `--set run.seed=N`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device (= `--set run.device=...`): auto, cpu, cuda, cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

impl FitArgs {
    fn config(&self) -> Result<Config> {
        let mut sets = self.sets.clone();
        if let Some(s) = self.seed {
            sets.push(format!("run.seed={s}"));
        }
        if let Some(d) = &self.device {
            sets.push(format!("run.device=\"{d}\""));
        }
        let path = match (&self.config, &self.task, &self.net) {
            (Some(p), _, _) => p.clone(),
            (None, Some(t), Some(n)) => {
                let p = configs_dir().join(format!("{n}_{t}.toml"));
                if !p.exists() {
                    bail!("no shipped recipe {} for --net {n} --task {t}", p.display());
                }
                p
            }
            _ => bail!("give --config FILE or --task and --net"),
        };
        Config::load(&path, &sets)
    }
}

/// The shipped recipes: `$JNDLAB_CONFIGS_DIR`, else `trainer/configs` in the checkout.
pub fn configs_dir() -> PathBuf {
    std::env::var_os("JNDLAB_CONFIGS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"))
}

pub fn run_fit(a: &FitArgs) -> Result<()> {
    let c = a.config()?;
    let s = fit(
        &c,
        &FitOptions {
            resume: a.resume,
            stop_after: None,
        },
    )?;
    let b = s.best().context("no epochs were run")?;
    println!(
        "run {}: best epoch {} (val loss {:.6}, val PSNR {:.2} dB vs input {:.2} dB), {:.1} patches/s",
        s.run_dir.display(),
        b.epoch,
        b.val_loss,
        b.val_psnr,
        b.input_psnr,
        s.patches_per_s()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub fit: FitArgs,
    /// Loss specs to compare, comma-separated at top level: a ',' inside `vgg:relu2_2,relu3_3`
    /// is not supported here (use `;` to separate then), e.g. `l2,l1,ssim,mdf:denoising`.
    #[arg(long, conflicts_with = "lambda_template")]
    pub losses: Option<String>,
    /// Lambda search: a spec with `{}` for the weight, e.g. `l2+{}*vgg`; trains 10^k for every
    /// k of `--lambda-exponents`.
    #[arg(long)]
    pub lambda_template: Option<String>,
    /// Exponents k of the lambda search (paper: -3..3).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-3,-2,-1,0,1,2,3",
        allow_hyphen_values = true
    )]
    pub lambda_exponents: Vec<i32>,
    /// Folder of results.csv / results.md (default: the recipe's run.out/NAME-sweep).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run_sweep(a: &SweepArgs) -> Result<()> {
    let c = a.fit.config()?;
    let losses: Vec<String> = match (&a.losses, &a.lambda_template) {
        (Some(l), None) => {
            let sep = if l.contains(';') { ';' } else { ',' };
            l.split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        }
        (None, Some(t)) => lambda_specs(t, &a.lambda_exponents)?,
        _ => bail!("give --losses or --lambda-template"),
    };
    let rows = sweep(&c, &losses, a.fit.resume)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| c.run.out.join(format!("{}-sweep", c.name)));
    let md = write_results(&out, &c, &rows)?;
    println!("{md}");
    if let Some(b) = best_row(&rows) {
        println!("best by validation PSNR: {}", rows[b].loss);
    }
    println!("results: {}", out.join("results.md").display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run folders written by `fit`/`sweep` (each with config.toml and best.safetensors).
    #[arg(long, num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder of clean test images (PNG/JPEG), e.g. ../shared/datasets/CBSD68.
    #[arg(long)]
    pub test: PathBuf,
    /// Output folder (per_image.csv, summary.md/csv, METRIC.svg, eval.json, images/).
    #[arg(long)]
    pub out: PathBuf,
    /// Test noise sigma of 255 (denoise runs; paper: 15, 25, 50).
    #[arg(long, default_value_t = 25.0)]
    pub sigma: f64,
    /// Test JPEG quality (jpeg runs; paper: 10 and 7).
    #[arg(long, default_value_t = 10)]
    pub quality: u8,
    /// Downscale test images once after decoding (1 = as they are).
    #[arg(long, default_value_t = 1.0)]
    pub prescale: f64,
    /// Centre-crop test images to at most this many px per side (speeds up CPU runs).
    #[arg(long)]
    pub max_side: Option<u32>,
    /// Use only the first N test images (in name order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// LPIPS: auto (when `fetch-weights` was run), on (required), off.
    #[arg(long, default_value = "auto")]
    pub lpips: String,
    /// Where to compute: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Seed of the test degradations (noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run_eval(a: &EvalArgs) -> Result<()> {
    let lpips = match a.lpips.as_str() {
        "auto" => None,
        "on" => Some(true),
        "off" => Some(false),
        o => bail!("--lpips: expected auto, on or off, got {o:?}"),
    };
    let o = crate::eval::EvalOptions {
        runs: a.runs.clone(),
        test_dir: a.test.clone(),
        out: a.out.clone(),
        sigma: Some(a.sigma),
        quality: Some(a.quality),
        prescale: a.prescale,
        max_side: a.max_side,
        limit: a.limit,
        lpips,
        device: crate::device::parse_device(&a.device)?,
        seed: a.seed,
    };
    let r = crate::eval::evaluate(&o)?;
    print!(
        "{}",
        std::fs::read_to_string(a.out.join("summary.md")).unwrap_or_default()
    );
    println!(
        "evaluated {} models on {} images: {}",
        r.models.len(),
        r.images.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Folder written by `eval` (with eval.json and images/).
    #[arg(long)]
    pub eval: PathBuf,
    /// Bundle folder to write (bundle.json + scene folders); see docs/bundle.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the bundle as this .zip (for the admin page's upload form).
    #[arg(long)]
    pub zip: Option<PathBuf>,
    /// Study name shown to participants and admins (default: task, net, number of losses).
    #[arg(long)]
    pub name: Option<String>,
    /// Study URL name (lowercase letters, digits, '-').
    #[arg(long)]
    pub slug: Option<String>,
    /// Offer the degraded input (noisy / JPEG) as a condition as well (not for SISR).
    #[arg(long)]
    pub include_input: bool,
    /// Replace an existing bundle folder.
    #[arg(long)]
    pub force: bool,
}

pub fn run_export(a: &ExportArgs) -> Result<()> {
    let m = crate::bundle::export_bundle(
        &a.eval,
        &a.out,
        &crate::bundle::ExportOptions {
            name: a.name.clone(),
            slug: a.slug.clone(),
            include_input: a.include_input,
            force: a.force,
            zip: a.zip.clone(),
        },
    )?;
    println!(
        "bundle {}: {} conditions x {} scenes{}",
        a.out.display(),
        m.conditions.len(),
        m.scenes.len(),
        a.zip
            .as_ref()
            .map(|z| format!(", zip {}", z.display()))
            .unwrap_or_default()
    );
    Ok(())
}
