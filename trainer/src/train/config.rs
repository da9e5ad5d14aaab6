//! Training recipes as TOML files (`trainer/configs/*.toml`) with `--set section.key=value`
//! overrides. Unknown keys are rejected with the file and key named. Relative paths are relative
//! to the working directory.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::data::{Degradation, Task};
use crate::nets::{NetKind, NetOptions};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run name (the run folder is `run.out/name`).
    pub name: String,
    /// `sisr`, `denoise` or `jpeg`.
    pub task: Task,
    /// `edsr`, `srresnet` or `dncnn`.
    pub net: NetKind,
    /// Loss spec (see `jndlab-train list-losses`), e.g. `l2`, `l2+0.1*lpips`, `mdf:denoising`.
    pub loss: String,
    #[serde(default)]
    pub net_options: NetOptions,
    pub data: DataConfig,
    #[serde(default)]
    pub degrade: DegradeConfig,
    pub optim: OptimConfig,
    pub run: RunConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folder of training images (PNG/JPEG).
    pub train: PathBuf,
    /// Folder of validation images; absent: every `1/val_ratio`-th training image.
    #[serde(default)]
    pub val: Option<PathBuf>,
    #[serde(default = "d_val_ratio")]
    pub val_ratio: f64,
    /// Downscale factor applied once at decoding (e.g. 0.5 for large JPEG photos).
    #[serde(default = "d_one")]
    pub prescale: f64,
    /// Side of the target patch (96 for SISR: LR patches are 24).
    pub patch: u32,
    pub batch: usize,
    /// Batches per epoch (patches per epoch = batch x this).
    pub batches_per_epoch: usize,
    /// Validation images are centre-cropped to at most this many px per side.
    #[serde(default = "d_val_crop")]
    pub val_crop: u32,
    /// Random rotations by 90/180/270 degrees and flips.
    #[serde(default = "d_true")]
    pub augment: bool,
    /// Batches prepared ahead by the loader thread.
    #[serde(default = "d_prefetch")]
    pub prefetch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradeConfig {
    /// SISR scale factor.
    #[serde(default = "d_scale")]
    pub scale: u32,
    /// Training noise sigma range (of 255), drawn uniformly per patch.
    #[serde(default)]
    pub sigma_min: f64,
    #[serde(default = "d_sigma_max")]
    pub sigma_max: f64,
    /// Noise sigma of validation.
    #[serde(default = "d_val_sigma")]
    pub val_sigma: f64,
    /// JPEG quality of training and validation.
    #[serde(default = "d_quality")]
    pub jpeg_quality: u8,
}

impl Default for DegradeConfig {
    fn default() -> Self {
        Self {
            scale: d_scale(),
            sigma_min: 0.0,
            sigma_max: d_sigma_max(),
            val_sigma: d_val_sigma(),
            jpeg_quality: d_quality(),
        }
    }
}

/// The optimisers of `train::optim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum, optional Nesterov and L2 weight decay.
    Sgd,
    Adam,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// Initial learning rate.
    pub lr: f64,
    /// Exponential schedule: the rate falls from `lr` to `lr_end` over the run.
    #[serde(default)]
    pub lr_end: Option<f64>,
    /// Step schedule: multiply by `gamma` every `step_epochs` epochs.
    #[serde(default)]
    pub step_epochs: Option<usize>,
    #[serde(default = "d_gamma")]
    pub gamma: f64,
    #[serde(default = "d_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    #[serde(default)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub epochs: usize,
    #[serde(default)]
    pub seed: u64,
    /// Parent folder of run folders.
    #[serde(default = "d_out")]
    pub out: PathBuf,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "d_device")]
    pub device: String,
}

fn d_val_ratio() -> f64 {
    0.1
}
fn d_one() -> f64 {
    1.0
}
fn d_val_crop() -> u32 {
    128
}
fn d_true() -> bool {
    true
}
fn d_prefetch() -> usize {
    4
}
fn d_scale() -> u32 {
    4
}
fn d_sigma_max() -> f64 {
    55.0
}
fn d_val_sigma() -> f64 {
    25.0
}
fn d_quality() -> u8 {
    10
}
fn d_gamma() -> f64 {
    0.5
}
fn d_momentum() -> f64 {
    0.9
}
fn d_out() -> PathBuf {
    PathBuf::from("runs")
}
fn d_device() -> String {
    "auto".into()
}

use recipe::apply_set;

impl Config {
    /// Reads a recipe and applies the overrides, then validates.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        for s in sets {
            apply_set(&mut table, s)?;
        }
        let c: Config = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("{}: invalid config", path.display()))?;
        c.validate()
            .with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(c)
    }

    /// Parses a recipe from TOML text (no overrides).
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: Config = toml::from_str(text).context("invalid config")?;
        c.validate()?;
        Ok(c)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// The training degradation.
    pub fn train_degradation(&self) -> Result<Degradation> {
        let d = &self.degrade;
        Ok(match self.task {
            Task::Sisr => Degradation::Bicubic { scale: d.scale },
            Task::Denoise => Degradation::Noise {
                min: d.sigma_min,
                max: d.sigma_max,
            },
            Task::Jpeg => Degradation::Jpeg {
                quality: d.jpeg_quality,
            },
        })
    }

    /// The validation degradation (fixed sigma for denoising).
    pub fn val_degradation(&self) -> Result<Degradation> {
        Ok(match self.task {
            Task::Denoise => Degradation::Noise {
                min: self.degrade.val_sigma,
                max: self.degrade.val_sigma,
            },
            _ => self.train_degradation()?,
        })
    }

    pub fn validate(&self) -> Result<()> {
        let task = self.task;
        let d = &self.degrade;
        if (self.net.scale() > 1) != (task == Task::Sisr) {
            bail!(
                "net: {} does not fit task {task} (edsr/srresnet are x4 super-resolution nets, dncnn restores at the same size)",
                self.net,
            );
        }
        if task == Task::Sisr && d.scale != 4 {
            bail!("degrade.scale: the SISR nets are x4, got {}", d.scale);
        }
        if !(0.0..=255.0).contains(&d.sigma_min) || d.sigma_max < d.sigma_min || d.sigma_max > 255.0
        {
            bail!(
                "degrade.sigma_min/sigma_max: need 0 <= min <= max <= 255, got {} and {}",
                d.sigma_min,
                d.sigma_max
            );
        }
        if !(1..=100).contains(&d.jpeg_quality) {
            bail!(
                "degrade.jpeg_quality: must be 1..=100, got {}",
                d.jpeg_quality
            );
        }
        let data = &self.data;
        if data.batch == 0 || data.batches_per_epoch == 0 {
            bail!("data.batch and data.batches_per_epoch must be positive");
        }
        if data.patch == 0 || !data.patch.is_multiple_of(d.scale.max(1)) && task == Task::Sisr {
            bail!(
                "data.patch: {} must be a positive multiple of the scale",
                data.patch
            );
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.optim.lr) || self.optim.lr_end.is_some_and(|e| !positive(e)) {
            bail!("optim.lr and optim.lr_end must be positive");
        }
        if self.optim.lr_end.is_some() && self.optim.step_epochs.is_some() {
            bail!("optim: choose lr_end (exponential) or step_epochs (step), not both");
        }
        if self.run.epochs == 0 {
            bail!("run.epochs must be at least 1");
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "name: {:?} must be non-empty letters, digits, '-', '_', '.'",
                self.name
            );
        }
        Ok(())
    }

    /// Learning rate of epoch `e` (0-based).
    pub fn lr_at(&self, e: usize) -> f64 {
        let o = &self.optim;
        if let Some(end) = o.lr_end {
            let n = self.run.epochs.saturating_sub(1).max(1) as f64;
            o.lr * (end / o.lr).powf(e as f64 / n)
        } else if let Some(s) = o.step_epochs {
            o.lr * o.gamma.powi((e / s.max(1)) as i32)
        } else {
            o.lr
        }
    }

    /// The run folder.
    pub fn run_dir(&self) -> PathBuf {
        self.run.out.join(&self.name)
    }
}
