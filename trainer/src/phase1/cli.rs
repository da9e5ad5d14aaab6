//! The `mdf-train`, `seed` and `mdf-eval` subcommands of `jndlab-train`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tracing::info;

use super::config::Phase1Config;
use super::distortion::Task;
use super::eval::{Distort, EvalSpec, default_grid, evaluate, list_images};
use super::seed::{SeedKind, contrast_rings, pink_noise, pyramid_shuffle};
use super::train::Trainer;
use crate::device::parse_device;
use crate::image_io::{load_tensor, save_tensor, write_atomic};
use crate::losses::mdf::MdfLoss;
use crate::losses::{LossOptions, build_loss};

/// Train task-specific MDF discriminators on one seed image (MDF Phase 1, SinGAN-style).
#[derive(Args)]
pub struct MdfTrainArgs {
    /// Distortion task: sisr (none), denoise (Gaussian noise) or jpeg (re-encoding).
    #[arg(long)]
    pub task: Option<String>,
    /// Seed image (PNG/JPEG). Not needed with --resume.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// Output MDF weights (.safetensors, loadable as `--loss mdf:FILE`).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Folder for checkpoint, CSV log and sample PNGs (default: OUTPUT without extension + ".run").
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// TOML file with settings, e.g. `task = "jpeg"`, `iters = 3000` (fields: task scales rho iters
    /// d_steps g_steps lr_g lr_d beta1 beta2 lr_drop_at lr_drop gp_weight alpha channels
    /// max_channels double_every sigma_max jpeg_q_min jpeg_q_max seed checkpoint_every
    /// sample_every); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in --work-dir from its checkpoint (its settings are used).
    #[arg(long)]
    pub resume: bool,
    /// Number of scales K (paper: 8).
    #[arg(long)]
    pub scales: Option<usize>,
    /// Scale factor rho between scales (paper: 2).
    #[arg(long)]
    pub rho: Option<f64>,
    /// Iterations per scale (paper: 3000).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Critic steps per iteration (3).
    #[arg(long)]
    pub d_steps: Option<usize>,
    /// Generator steps per iteration (3).
    #[arg(long)]
    pub g_steps: Option<usize>,
    /// Adam learning rate of both networks (5e-4).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Gradient-penalty weight (0.1).
    #[arg(long)]
    pub gp_weight: Option<f64>,
    /// Reconstruction (MSE) weight alpha (100).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Channels at the coarsest scales (32; doubled every 4 scales up to 128).
    #[arg(long)]
    pub channels: Option<i64>,
    /// Random seed (network initialisation and all draws).
    #[arg(long)]
    pub rng_seed: Option<u64>,
    /// Checkpoint every N iterations (500; 0 = only after each scale).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Also write sample PNGs every N iterations (0 = only after each scale).
    #[arg(long)]
    pub sample_every: Option<usize>,
    /// Stop (after checkpointing) once this many iterations over all scales are done.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl MdfTrainArgs {
    fn config(&self) -> Result<Phase1Config> {
        let mut c = match &self.config {
            Some(p) => Phase1Config::from_toml(p)?,
            None => Phase1Config::default(),
        };
        if let Some(t) = &self.task {
            c.task = Task::parse(t)?;
        } else if self.config.is_none() {
            bail!("--task is required (sisr, denoise or jpeg), or set `task` in --config");
        }
        macro_rules! set {
            ($($f:ident => $g:ident),*) => { $(if let Some(v) = self.$f { c.$g = v; })* };
        }
        set!(scales => scales, rho => rho, iters => iters, d_steps => d_steps, g_steps => g_steps,
             gp_weight => gp_weight, alpha => alpha, channels => channels, rng_seed => seed,
             checkpoint_every => checkpoint_every, sample_every => sample_every);
        if let Some(lr) = self.lr {
            c.lr_d = lr;
            c.lr_g = lr;
        }
        c.validate()?;
        Ok(c)
    }
}

pub fn sha256_file(p: &Path) -> Result<String> {
    let b = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(format!("{:x}", Sha256::digest(&b)))
}

pub fn run_mdf_train(a: MdfTrainArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let work = a
        .work_dir
        .clone()
        .unwrap_or_else(|| a.output.with_extension("run"));
    let mut t = if a.resume {
        Trainer::resume(&work, device)?
    } else {
        let cfg = a.config()?;
        let seed = a
            .seed
            .as_ref()
            .context("--seed IMAGE is required (unless --resume)")?;
        let img = load_tensor(seed, device)?;
        let sha = sha256_file(seed)?;
        let t = Trainer::new(cfg, &img, &sha, device, &work)
            .with_context(|| format!("seed {}", seed.display()))?;
        std::fs::write(work.join("config.toml"), t.cfg.to_toml())?;
        t
    };
    t.progress = true;
    info!(task = t.cfg.task.name(), scales = t.cfg.scales, iters = t.cfg.iters, ?device,
          sizes = ?t.pyramid.iter().map(|p| (p.size()[3], p.size()[2])).collect::<Vec<_>>(),
          work = %work.display(), "MDF phase 1");
    t.run(a.stop_after)?;
    for s in &t.timings {
        println!(
            "scale {} {}x{}: {} iterations in {:.1} s = {:.3} it/s",
            s.scale + 1,
            s.size.1,
            s.size.0,
            s.iters,
            s.seconds,
            s.iters as f64 / s.seconds.max(1e-9)
        );
    }
    if !t.finished() {
        println!(
            "stopped after {} iterations (checkpoint in {}); continue with --resume",
            t.global_iter(),
            work.display()
        );
        t.save_checkpoint()?;
        return Ok(());
    }
    t.export(&a.output)?;
    println!("wrote {}", a.output.display());
    Ok(())
}

#[derive(Subcommand)]
pub enum SeedCmd {
    /// Write a synthetic seed image (the paper's non-natural seeds).
    Synth {
        /// pink-noise (1/f^2), contrast-rings, or pyramid-shuffle (needs --from).
        #[arg(long, value_enum)]
        kind: SeedKind,
        /// Width in px (pyramid-shuffle: the source's size is used).
        #[arg(long, default_value_t = 256)]
        width: i64,
        /// Height in px.
        #[arg(long, default_value_t = 256)]
        height: i64,
        /// Source image for pyramid-shuffle.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Random seed (noise, permutations).
        #[arg(long, default_value_t = 0)]
        rng_seed: u64,
        /// Output PNG.
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn run_seed(cmd: SeedCmd) -> Result<()> {
    match cmd {
        SeedCmd::Synth {
            kind,
            width,
            height,
            from,
            rng_seed,
            output,
        } => {
            if width < 1 || height < 1 {
                bail!("--width/--height must be positive");
            }
            let img = match kind {
                SeedKind::PinkNoise => pink_noise(height, width, rng_seed),
                SeedKind::ContrastRings => contrast_rings(height, width),
                SeedKind::PyramidShuffle => {
                    let src = from.context("pyramid-shuffle needs --from IMAGE")?;
                    pyramid_shuffle(&load_tensor(&src, tch::Device::Cpu)?, 6, rng_seed)?
                }
            };
            save_tensor(&img, &output)?;
            println!("wrote {}", output.display());
        }
    }
    Ok(())
}

/// Check a trained MDF as a loss: mean loss per distortion strength and rank agreement with a
/// reference loss on held-out image crops.
#[derive(Args)]
pub struct MdfEvalArgs {
    /// Our MDF weights (.safetensors from mdf-train; all its discriminators, at most 8, are used).
    #[arg(long)]
    pub weights: PathBuf,
    /// Reference loss spec, e.g. mdf:sisr or mdf:jpeg (the official weights).
    #[arg(long, default_value = "mdf:sisr")]
    pub against: String,
    /// Folder of held-out images (PNG/JPEG), e.g. ../shared/datasets/CBSD68.
    #[arg(long)]
    pub images: PathBuf,
    /// Use the first N images (sorted by name).
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Centre-crop side in px (divisible by 2, 3 and 4 for the bicubic factors).
    #[arg(long, default_value_t = 96)]
    pub crop: i64,
    /// Distortion grid, e.g. "noise:5,25,50;jpeg:50,10;bicubic:2,4" (default: noise 5-50,
    /// JPEG 90-5, bicubic x2-x4).
    #[arg(long)]
    pub grid: Option<String>,
    /// Random seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub rng_seed: u64,
    /// Write the markdown table here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write every loss value here (CSV).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn parse_grid(s: &str) -> Result<Vec<Distort>> {
    let mut g = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (fam, vals) = part
            .split_once(':')
            .with_context(|| format!("--grid: {part:?} is not FAMILY:V1,V2,..."))?;
        for v in vals.split(',').map(str::trim) {
            let bad = || format!("--grid: bad value {v:?} for {fam}");
            g.push(match fam.trim() {
                "noise" => Distort::Noise(v.parse().with_context(bad)?),
                "jpeg" => Distort::Jpeg(v.parse().with_context(bad)?),
                "bicubic" => Distort::Bicubic(v.parse().with_context(bad)?),
                other => bail!("--grid: unknown family {other:?} (noise, jpeg, bicubic)"),
            });
        }
    }
    if g.is_empty() {
        bail!("--grid is empty");
    }
    Ok(g)
}

/// Number of discriminators `0.`, `1.`, ... in an MDF weights file.
pub fn count_discriminators(p: &Path) -> Result<usize> {
    let t = tch::Tensor::read_safetensors(p)
        .with_context(|| format!("{}: not a valid safetensors file", p.display()))?;
    let names: std::collections::HashSet<String> = t.into_iter().map(|(k, _)| k).collect();
    Ok((0..)
        .take_while(|k| names.contains(&format!("{k}.head.conv.weight")))
        .count())
}

pub fn run_mdf_eval(a: MdfEvalArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let n = count_discriminators(&a.weights)?.min(8);
    if n == 0 {
        bail!(
            "{}: no discriminators (keys 0.head.conv.weight, ...)",
            a.weights.display()
        );
    }
    let ours = MdfLoss::from_file(&a.weights, n, device)?;
    let reference = build_loss(&a.against, &LossOptions::new(device))?;
    let grid = match &a.grid {
        Some(s) => parse_grid(s)?,
        None => default_grid(),
    };
    let mut images = list_images(&a.images)?;
    images.truncate(a.count);
    let pb = ProgressBar::new(images.len() as u64);
    pb.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} images [{elapsed_precise} < {eta}]",
    )?);
    let spec = EvalSpec {
        images: &images,
        grid: &grid,
        crop: a.crop,
        seed: a.rng_seed,
        device,
    };
    let r = evaluate(&ours, reference.as_ref(), &spec, || pb.inc(1))?;
    pb.finish();
    let md = r.markdown();
    println!("{md}");
    if let Some(p) = &a.out {
        write_atomic(p, md.as_bytes())?;
    }
    if let Some(p) = &a.csv {
        write_atomic(p, &r.csv()?)?;
    }
    Ok(())
}
