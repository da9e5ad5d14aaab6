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
    #[arg(long)]
    pub config: PathBuf,
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
        Config::load(&self.config, &sets)
    }
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
