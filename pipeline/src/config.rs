//! The pipeline recipe (`configs/demo.toml`): one TOML file for the whole loop. The Phase-1 settings and
//! the restoration recipe are passed through to `jndlab-train` unchanged (it validates them and names
//! unknown keys), so this file only knows the fields the pipeline itself uses.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Run name; also the study's URL name (lowercase letters, digits, '-').
    pub name: String,
    /// `denoise`, `jpeg` or `sisr`.
    pub task: String,
    /// Working folder of the run (every stage writes below it).
    pub out: PathBuf,
    /// Where the networks run: auto, cpu, cuda, cuda:N.
    #[serde(default = "d_device")]
    pub device: String,
    /// CPU threads of libtorch in the trainer (default: one per core). Fewer help on a busy machine,
    /// where libtorch's spinning threads otherwise fight other jobs for the cores.
    #[serde(default)]
    pub threads: Option<i32>,
    pub phase1: Phase1,
    pub train: Train,
    pub eval: Eval,
    pub study: Study,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase1 {
    /// The ONE seed image the discriminators are trained on.
    pub seed_image: PathBuf,
    /// Settings of `jndlab-train mdf-train --config` (scales, rho, iters, channels, ...).
    #[serde(default)]
    pub settings: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Train {
    /// Loss specs to compare (`jndlab-train list-losses`); `mdf` = this run's Phase-1 discriminators.
    pub losses: Vec<String>,
    /// A restoration recipe as in `trainer/configs/*.toml` without `name`, `task` and `loss`
    /// (the pipeline sets them, and `run.out`/`run.device`).
    pub recipe: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eval {
    /// Folder of clean test images: the scenes of the study.
    pub test: PathBuf,
    /// Test noise sigma (of 255) for denoise.
    #[serde(default = "d_sigma")]
    pub sigma: f64,
    /// Test JPEG quality for jpeg.
    #[serde(default = "d_quality")]
    pub quality: u8,
    /// Centre-crop test images to at most this many px per side.
    #[serde(default)]
    pub max_side: Option<u32>,
    /// LPIPS in the evaluation: auto (when the weights were fetched), on, off.
    #[serde(default = "d_lpips")]
    pub lpips: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Study {
    /// Study name shown to participants.
    pub title: String,
    /// Offer the degraded input as a condition too.
    #[serde(default)]
    pub include_input: bool,
    /// Simulated observers (one whole HIT each).
    pub observers: usize,
    /// Probability that a simulated observer answers an attention check wrong.
    #[serde(default = "d_check_fail_rate")]
    pub check_fail_rate: f64,
    /// The MS-SSIM difference that is 1 JND for the simulated observers.
    #[serde(default)]
    pub jnd_step: Option<f64>,
    /// Seed of the simulated answers and of the bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// Bootstrap replicates of the 95% CIs.
    #[serde(default = "d_bootstrap")]
    pub bootstrap: usize,
}

fn d_device() -> String {
    "auto".into()
}
fn d_sigma() -> f64 {
    25.0
}
fn d_quality() -> u8 {
    10
}
fn d_lpips() -> String {
    "auto".into()
}
fn d_check_fail_rate() -> f64 {
    0.05
}
fn d_bootstrap() -> usize {
    500
}

impl PipelineConfig {
    /// Reads and checks a recipe; `sets` are `section.key=value` overrides (TOML values).
    pub fn load(path: &Path, sets: &[String]) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the pipeline recipe", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        for s in sets {
            recipe::apply_set(&mut table, s)?;
        }
        let c: PipelineConfig = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("{}: not a pipeline recipe", path.display()))?;
        c.check()
            .with_context(|| format!("{}: invalid value", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!(
                "name: expected lowercase letters, digits and '-' (it is the study's URL name), got {:?}",
                self.name
            );
        }
        if !["denoise", "jpeg", "sisr"].contains(&self.task.as_str()) {
            bail!("task: expected denoise, jpeg or sisr, got {:?}", self.task);
        }
        if self.train.losses.len() < 2 {
            bail!("train.losses: give at least two losses to compare");
        }
        for k in ["name", "task", "loss"] {
            if self.train.recipe.contains_key(k) {
                bail!("train.recipe.{k}: set by the pipeline, remove it from the recipe");
            }
        }
        if self.threads.is_some_and(|t| t < 1) {
            bail!("threads: expected at least 1");
        }
        if self.study.observers == 0 {
            bail!("study.observers: expected at least 1");
        }
        if !(0.0..=1.0).contains(&self.study.check_fail_rate) {
            bail!(
                "study.check_fail_rate: expected a probability in [0, 1], got {}",
                self.study.check_fail_rate
            );
        }
        if self.study.jnd_step.is_some_and(|s| s.is_nan() || s <= 0.0) {
            bail!("study.jnd_step: expected a positive number");
        }
        for (field, p) in [
            ("phase1.seed_image", &self.phase1.seed_image),
            ("eval.test", &self.eval.test),
        ] {
            if !p.exists() {
                bail!("{field}: {} does not exist", p.display());
            }
        }
        Ok(())
    }

    /// The loss specs handed to `jndlab-train sweep`: `mdf` becomes `mdf:WEIGHTS`.
    pub fn loss_specs(&self, mdf_weights: &Path) -> Vec<String> {
        self.train
            .losses
            .iter()
            .map(|l| {
                if l == "mdf" {
                    format!("mdf:{}", mdf_weights.display())
                } else {
                    l.clone()
                }
            })
            .collect()
    }

    /// Whether Phase 1 is needed (some loss is `mdf`).
    pub fn needs_phase1(&self) -> bool {
        self.train.losses.iter().any(|l| l == "mdf")
    }

    /// The restoration recipe for `jndlab-train sweep --config`, with the pipeline's fields filled in.
    pub fn recipe_toml(&self, runs_dir: &Path) -> Result<String> {
        let mut r = self.train.recipe.clone();
        r.insert("name".into(), self.name.clone().into());
        r.insert("task".into(), self.task.clone().into());
        r.insert("loss".into(), "l2".into());
        let run = r
            .entry("run")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("train.recipe.run: expected a table")?;
        run.insert("out".into(), runs_dir.display().to_string().into());
        run.insert("device".into(), self.device.clone().into());
        Ok(toml::to_string(&r)?)
    }

    /// The Phase-1 settings for `jndlab-train mdf-train --config`.
    pub fn phase1_toml(&self) -> Result<String> {
        let mut s = self.phase1.settings.clone();
        s.insert("task".into(), self.task.clone().into());
        Ok(toml::to_string(&s)?)
    }
}
