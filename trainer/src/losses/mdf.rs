//! The Multi-Scale Discriminative Feature loss (Mustafa et al., WACV 2022), Phase 2: frozen SinGAN
//! discriminators used as feature extractors, exactly as the official gfxdisp/mdf `MDFLoss`:
//! - D = head (Conv3x3 3->N, valid, bias + BatchNorm(eval, eps 1e-5) + LeakyReLU 0.2),
//!   body (3 such blocks N->N), tail (Conv3x3 N->1, valid); taps = head, body and tail outputs;
//! - per tap `mean_{C,H,W} (phi(x) - phi(y))^2` per sample, summed over 3 taps x the first 8
//!   discriminators (index 0 = coarsest, "ascending"), unweighted; mean over the batch;
//! - full input resolution, inputs in [0, 1] as given; >= 11 px per side (5 valid 3x3 convs).
//!
//! Exact savings over the official code (same values to float32 rounding): BatchNorm folded into the
//! convolutions, the discriminators' weights frozen
//! (no weight gradients, which the official code computes because its pickled modules keep
//! `requires_grad=True`), and the reference branch runs without autograd.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use super::Loss;
use crate::image_io::check_image_batch;
use crate::weights::StateDict;

/// The loss uses the first 8 discriminators (the SISR file holds a 9th).
pub const DEFAULT_SCALES: usize = 8;
/// 5 valid 3x3 convolutions remove 10 px.
pub const MIN_SIDE: i64 = 11;
const BN_EPS: f64 = 1e-5;
const SLOPE: f64 = 0.2;

/// The official weight sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdfTask {
    /// Super-resolution (also the authors' denoising set: their Ds_Denoising.pth is byte-identical).
    Sisr,
    Jpeg,
}

impl MdfTask {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sisr" | "sr" | "denoising" | "denoise" | "dn" => Some(Self::Sisr),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            _ => None,
        }
    }
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Sisr => "Ds_SISR",
            Self::Jpeg => "Ds_JPEG",
        }
    }
    /// Where the safetensors weights are looked for: the weights folder, then `../shared`.
    pub fn locate(self) -> Result<PathBuf> {
        let name = format!("{}.safetensors", self.file_stem());
        let candidates = [
            crate::weights::weights_dir().join(&name),
            crate::weights::shared_dir()
                .join("reference/mdf")
                .join(&name),
        ];
        candidates.iter().find(|p| p.exists()).cloned().with_context(|| {
            format!(
                "MDF weights {name} not found (looked in {}); pass --weights FILE \
                 (a .safetensors, or the authors' .pth converted with `jndlab-train import-weights`)",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// Conv + BatchNorm (eval) + LeakyReLU(0.2). The BatchNorm (fixed running statistics) is folded
/// into the convolution at load time: `w' = w g / sqrt(v + eps)`, `b' = (b - m) g / sqrt(v + eps) + beta`
/// (computed in float64, so values agree with the unfolded graph to float32 rounding).
struct ConvBlock {
    w: Tensor,
    b: Tensor,
    /// Values held by the file (conv + BN parameters and statistics), for the memory report.
    file_values: usize,
}

impl ConvBlock {
    fn load(sd: &StateDict, p: &str, cin: i64, n: i64) -> Result<Self> {
        let g = |k: &str, shape: &[i64]| -> Result<Tensor> {
            Ok(sd.get(&format!("{p}.{k}"), shape)?.to_kind(Kind::Double))
        };
        let w = g("conv.weight", &[n, cin, 3, 3])?;
        let b = g("conv.bias", &[n])?;
        let (gamma, beta) = (g("norm.weight", &[n])?, g("norm.bias", &[n])?);
        let (mean, var) = (g("norm.running_mean", &[n])?, g("norm.running_var", &[n])?);
        let scale = gamma / (var + BN_EPS).sqrt();
        let wf = (w * scale.view([n, 1, 1, 1]))
            .to_kind(Kind::Float)
            .contiguous();
        let bf = ((b - mean) * &scale + beta).to_kind(Kind::Float);
        Ok(Self {
            w: wf,
            b: bf,
            file_values: (n * cin * 9 + 5 * n) as usize,
        })
    }
    fn forward(&self, x: &Tensor, slope: &Tensor) -> Tensor {
        x.conv2d(&self.w, Some(&self.b), [1, 1], [0, 0], [1, 1], 1)
            .prelu(slope)
    }
}

/// One SinGAN `WDiscriminator`.
pub struct Discriminator {
    pub channels: i64,
    head: ConvBlock,
    body: Vec<ConvBlock>,
    tail_w: Tensor,
    tail_b: Tensor,
}

impl Discriminator {
    fn load(sd: &StateDict, k: usize) -> Result<Self> {
        let hw = sd
            .tensors
            .get(&format!("{k}.head.conv.weight"))
            .with_context(|| format!("{}: discriminator {k} missing", sd.source.display()))?;
        let n = hw.size()[0];
        Ok(Self {
            channels: n,
            head: ConvBlock::load(sd, &format!("{k}.head"), 3, n)?,
            body: (1..=3)
                .map(|i| ConvBlock::load(sd, &format!("{k}.body.block{i}"), n, n))
                .collect::<Result<_>>()?,
            tail_w: sd.get(&format!("{k}.tail.weight"), &[1, n, 3, 3])?,
            tail_b: sd.get(&format!("{k}.tail.bias"), &[1])?,
        })
    }

    /// The three taps: head output, body output, tail output.
    pub fn taps(&self, x: &Tensor, slope: &Tensor) -> [Tensor; 3] {
        let x1 = self.head.forward(x, slope);
        let mut x2 = x1.shallow_clone();
        for b in &self.body {
            x2 = b.forward(&x2, slope);
        }
        let x3 = x2.conv2d(&self.tail_w, Some(&self.tail_b), [1, 1], [0, 0], [1, 1], 1);
        [x1, x2, x3]
    }

    /// Bytes of the weights as published (float32 conv weights, biases and BatchNorm statistics).
    pub fn bytes(&self) -> usize {
        let blocks: usize = std::iter::once(&self.head)
            .chain(&self.body)
            .map(|b| b.file_values)
            .sum();
        (blocks + self.tail_w.numel() + self.tail_b.numel()) * 4
    }

    /// Multiply-adds per output pixel (valid convs ignored: per input pixel, approx.).
    pub fn macs_per_pixel(&self) -> i64 {
        let n = self.channels;
        9 * (3 * n + 3 * n * n + n)
    }
}

/// The MDF loss.
pub struct MdfLoss {
    name: String,
    ds: Vec<Discriminator>,
    slope: Tensor,
    bytes: usize,
    device: Device,
}

impl MdfLoss {
    /// Loads the first `scales` discriminators from a weights file (safetensors or legacy .pth).
    pub fn from_file(path: &Path, scales: usize, device: Device) -> Result<Self> {
        Self::load(path, Some(scales), device)
    }

    /// Loads a weights file given as `mdf:FILE`: its first 8 discriminators like the official loss, or all of
    /// them when it holds fewer (a shortened Phase 1 of our own, e.g. the demo pipeline's 4 scales).
    pub fn from_weights(path: &Path, device: Device) -> Result<Self> {
        Self::load(path, None, device)
    }

    fn load(path: &Path, scales: Option<usize>, device: Device) -> Result<Self> {
        let sd = StateDict::load(path, device)?;
        let available = (0..)
            .take_while(|k| sd.tensors.contains_key(&format!("{k}.head.conv.weight")))
            .count();
        let scales = scales.unwrap_or(available.clamp(1, DEFAULT_SCALES));
        if available < scales {
            bail!(
                "{}: holds {available} discriminators, the loss needs {scales}",
                path.display()
            );
        }
        let ds: Vec<_> = (0..scales)
            .map(|k| Discriminator::load(&sd, k))
            .collect::<Result<_>>()?;
        let bytes = ds.iter().map(Discriminator::bytes).sum();
        let name = format!(
            "mdf:{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("?")
        );
        Ok(Self {
            name,
            ds,
            slope: Tensor::from_slice(&[SLOPE as f32]).to_device(device),
            bytes,
            device,
        })
    }

    pub fn official(task: MdfTask, device: Device) -> Result<Self> {
        let mut l = Self::from_file(&task.locate()?, DEFAULT_SCALES, device)?;
        l.name = format!("mdf:{}", format!("{task:?}").to_lowercase());
        Ok(l)
    }

    pub fn discriminators(&self) -> &[Discriminator] {
        &self.ds
    }

    /// Per scale, per tap, per sample squared-difference means `[scales][3] -> [N]`.
    pub fn per_tap(&self, pred: &Tensor, target: &Tensor) -> Result<Vec<[Tensor; 3]>> {
        self.check(pred, target)?;
        let fy = self.target_taps(target);
        Ok(self.per_tap_against(pred, &fy))
    }

    /// Reference features, without autograd.
    fn target_taps(&self, target: &Tensor) -> Vec<[Tensor; 3]> {
        let target = target.to_kind(Kind::Float).detach();
        tch::no_grad(|| {
            self.ds
                .iter()
                .map(|d| d.taps(&target, &self.slope))
                .collect()
        })
    }

    fn per_tap_against(&self, pred: &Tensor, fy: &[[Tensor; 3]]) -> Vec<[Tensor; 3]> {
        let pred = pred.to_kind(Kind::Float);
        self.ds
            .iter()
            .zip(fy)
            .map(|(d, fy)| {
                let fx = d.taps(&pred, &self.slope);
                let f = |i: usize| {
                    (&fx[i] - &fy[i])
                        .square()
                        .mean_dim(&[1i64, 2, 3][..], false, Kind::Float)
                };
                [f(0), f(1), f(2)]
            })
            .collect()
    }

    /// The loss from [`Self::per_tap`]'s values: sum over taps and scales, mean over the batch.
    pub fn reduce(taps: &[[Tensor; 3]]) -> Tensor {
        let mut total: Option<Tensor> = None;
        for t in taps.iter().flatten() {
            total = Some(match total {
                None => t.shallow_clone(),
                Some(acc) => acc + t,
            });
        }
        total.expect("at least one scale").mean(Kind::Float)
    }

    fn check(&self, pred: &Tensor, target: &Tensor) -> Result<()> {
        check_image_batch(pred, "MDF input", MIN_SIDE)?;
        if pred.size() != target.size() {
            bail!(
                "MDF: prediction {:?} and reference {:?} differ in shape",
                pred.size(),
                target.size()
            );
        }
        if pred.device() != self.device {
            bail!(
                "MDF: input on {:?}, weights on {:?}",
                pred.device(),
                self.device
            );
        }
        Ok(())
    }
}

impl Loss for MdfLoss {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        Ok(Self::reduce(&self.per_tap(pred, target)?))
    }
    fn fixed_target<'a>(&'a self, target: &Tensor) -> Result<super::FixedTarget<'a>> {
        self.check(target, target)?;
        let fy = self.target_taps(target);
        let t = target.shallow_clone();
        Ok(Box::new(move |p: &Tensor| {
            self.check(p, &t)?;
            Ok(Self::reduce(&self.per_tap_against(p, &fy)))
        }))
    }
    fn min_side(&self) -> i64 {
        MIN_SIDE
    }
    fn weight_bytes(&self) -> usize {
        self.bytes
    }
}
