//! Phase-1 settings: defaults = the MDF paper (K = 8 scales, rho = 2, 3000 iterations per scale,
//! alpha = 100, WGAN-GP weight 0.1, Adam 5e-4 with betas (0.5, 0.999), x0.1 at 80 %, 3 D and 3 G
//! steps) and SinGAN where the paper is silent (32 channels doubling every 4 scales up to 128).
//! Read from TOML (`--config`), overridden by command-line flags.
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::distortion::{Distortion, Task};

/// The smallest side a scale may have: the discriminator's 5 valid 3x3 convolutions need 11 px.
pub const MIN_SCALE_SIDE: i64 = 11;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Phase1Config {
    pub task: Task,
    pub scales: usize,
    pub rho: f64,
    pub iters: usize,
    pub d_steps: usize,
    pub g_steps: usize,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Fraction of a scale's iterations after which the learning rates are multiplied by `lr_drop`.
    pub lr_drop_at: f64,
    pub lr_drop: f64,
    pub gp_weight: f64,
    pub alpha: f64,
    pub channels: i64,
    pub max_channels: i64,
    pub double_every: usize,
    pub sigma_max: f64,
    pub jpeg_q_min: u8,
    pub jpeg_q_max: u8,
    pub seed: u64,
    pub checkpoint_every: usize,
    pub sample_every: usize,
}

impl Default for Phase1Config {
    fn default() -> Self {
        Self {
            task: Task::Sisr,
            scales: 8,
            rho: 2.0,
            iters: 3000,
            d_steps: 3,
            g_steps: 3,
            lr_g: 5e-4,
            lr_d: 5e-4,
            beta1: 0.5,
            beta2: 0.999,
            lr_drop_at: 0.8,
            lr_drop: 0.1,
            gp_weight: 0.1,
            alpha: 100.0,
            channels: 32,
            max_channels: 128,
            double_every: 4,
            sigma_max: 55.0,
            jpeg_q_min: 7,
            jpeg_q_max: 10,
            seed: 0,
            checkpoint_every: 500,
            sample_every: 0,
        }
    }
}

impl Phase1Config {
    pub fn from_toml(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let c: Self =
            toml::from_str(&s).with_context(|| format!("{}: invalid config", path.display()))?;
        Ok(c)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| bail!("config field `{f}`: {why}");
        if self.scales < 1 {
            return bad("scales", "must be >= 1");
        }
        if self.rho.is_nan() || self.rho <= 1.0 {
            return bad("rho", "must be > 1");
        }
        if self.iters < 1 {
            return bad("iters", "must be >= 1");
        }
        if self.d_steps < 1 || self.g_steps < 1 {
            return bad("d_steps/g_steps", "must be >= 1");
        }
        if !(0.0..=1.0).contains(&self.lr_drop_at) {
            return bad("lr_drop_at", "must be in [0, 1]");
        }
        if self.channels < 1 || self.max_channels < self.channels {
            return bad("channels", "must be >= 1 and <= max_channels");
        }
        if self.double_every < 1 {
            return bad("double_every", "must be >= 1");
        }
        if !(1..=100).contains(&self.jpeg_q_min)
            || !(1..=100).contains(&self.jpeg_q_max)
            || self.jpeg_q_min > self.jpeg_q_max
        {
            return bad("jpeg_q_min/jpeg_q_max", "need 1 <= min <= max <= 100");
        }
        if self.sigma_max < 0.0 {
            return bad("sigma_max", "must be >= 0");
        }
        Ok(())
    }

    /// Channels at scale index `k` (0 = coarsest): SinGAN's `min(32 * 2^floor(k / 4), 128)`.
    pub fn channels_at(&self, k: usize) -> i64 {
        let d = (k / self.double_every).min(20) as u32;
        (self.channels * 2i64.pow(d)).min(self.max_channels)
    }

    /// Image sizes per scale, coarsest first: the seed divided by `rho^(K-k)`, rounded.
    /// Errors (with the minimum seed size) when the coarsest would be below 11 px.
    pub fn scale_sizes(&self, h: i64, w: i64) -> Result<Vec<(i64, i64)>> {
        let k = self.scales as i32;
        let f = |s: i64, e: i32| (s as f64 / self.rho.powi(e)).round() as i64;
        let sizes: Vec<_> = (1..=k).map(|i| (f(h, k - i), f(w, k - i))).collect();
        let (ch, cw) = sizes[0];
        if ch < MIN_SCALE_SIDE || cw < MIN_SCALE_SIDE {
            let min = (MIN_SCALE_SIDE as f64 - 0.5) * self.rho.powi(k - 1);
            bail!(
                "seed image {w}x{h} (WxH) is too small for {} scales with rho {}: the coarsest scale \
                 would be {cw}x{ch} px but the discriminator needs >= {MIN_SCALE_SIDE} px per side; \
                 the seed needs at least {} px per side (or use fewer --scales / a smaller --rho)",
                self.scales,
                self.rho,
                min.ceil() as i64
            );
        }
        Ok(sizes)
    }

    pub fn distortion(&self) -> Distortion {
        Distortion {
            task: self.task,
            sigma_max: self.sigma_max,
            jpeg_q_min: self.jpeg_q_min,
            jpeg_q_max: self.jpeg_q_max,
        }
    }

    /// Learning-rate factor at iteration `i` of a scale (SinGAN's MultiStepLR at 80 %).
    pub fn lr_factor(&self, i: usize) -> f64 {
        let drop = (self.lr_drop_at * self.iters as f64).round() as usize;
        if i >= drop { self.lr_drop } else { 1.0 }
    }
}
