//! The three restoration tasks and their degradations of an 8-bit RGB patch:
//! - `sisr`: LR = MATLAB-style antialiased bicubic downscaling by the scale (x4), stored as 8 bit;
//! - `denoise`: additive white Gaussian noise, sigma (of 255) drawn per patch from a range or fixed,
//!   not clipped (as DnCNN);
//! - `jpeg`: a real JPEG encode/decode at a quality factor.
use anyhow::{Result, bail};
use image::RgbImage;
use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::image_io::{jpeg_roundtrip, rgb_to_tensor};
use crate::resample::{Filter, imresize};

pub use crate::task::Task;

/// One degradation setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Degradation {
    /// Bicubic downscaling by an integer factor.
    Bicubic { scale: u32 },
    /// Gaussian noise with sigma (of 255) uniform in `[min, max]` per patch (`min == max`: fixed).
    Noise { min: f64, max: f64 },
    /// JPEG at a quality factor.
    Jpeg { quality: u8 },
}

impl Degradation {
    /// Output size / input size of the network that undoes it.
    pub fn scale(&self) -> u32 {
        match self {
            Self::Bicubic { scale } => *scale,
            _ => 1,
        }
    }

    /// A short label, e.g. `x4`, `sigma25`, `sigma0-55`, `q10`.
    pub fn label(&self) -> String {
        match self {
            Self::Bicubic { scale } => format!("x{scale}"),
            Self::Noise { min, max } if min == max => format!("sigma{min}"),
            Self::Noise { min, max } => format!("sigma{min}-{max}"),
            Self::Jpeg { quality } => format!("q{quality}"),
        }
    }

    /// Degrades `img`: returns `(input, target)` as `[3, h, w]` float tensors in [0, 1] (the
    /// noisy input may leave [0, 1]). `img` must have sides divisible by the scale.
    pub fn apply(&self, img: &RgbImage, rng: &mut impl Rng) -> Result<(Tensor, Tensor)> {
        let target = rgb_to_tensor(img, Device::Cpu);
        let input = match *self {
            Self::Bicubic { scale } => {
                let (w, h) = img.dimensions();
                if w % scale != 0 || h % scale != 0 {
                    bail!("bicubic x{scale}: image {w}x{h} is not divisible by the scale");
                }
                let lr = imresize(
                    &target,
                    (h / scale) as i64,
                    (w / scale) as i64,
                    Filter::Bicubic,
                    true,
                )?;
                // stored as 8-bit like the usual LR PNGs
                (lr.clamp(0.0, 1.0) * 255.0).round() / 255.0
            }
            Self::Noise { min, max } => {
                let sigma = if max > min {
                    rng.random_range(min..=max)
                } else {
                    min
                } / 255.0;
                let noise: Vec<f32> = (0..target.numel())
                    .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
                    .collect();
                &target + Tensor::from_slice(&noise).view_as(&target) * sigma
            }
            Self::Jpeg { quality } => rgb_to_tensor(&jpeg_roundtrip(img, quality)?, Device::Cpu),
        };
        Ok((
            input.squeeze_dim(0).to_kind(Kind::Float),
            target.squeeze_dim(0),
        ))
    }
}

/// A fixed degraded test/validation image: `input` `[1, 3, h, w]`, `target` `[1, 3, s*h, s*w]`.
pub struct Pair {
    pub name: String,
    pub input: Tensor,
    pub target: Tensor,
}

impl Pair {
    /// What the restoration is compared with: the input itself, or for SISR its bicubic
    /// upscaling to the target size, clamped to [0, 1].
    pub fn baseline(&self) -> Result<Tensor> {
        let (ts, is) = (self.target.size(), self.input.size());
        let b = if ts == is {
            self.input.shallow_clone()
        } else {
            imresize(&self.input, ts[2], ts[3], Filter::Bicubic, true)?
        };
        Ok(b.clamp(0.0, 1.0))
    }
}

/// Degrades every image once, deterministically (image `i` uses an RNG seeded by `(seed, i)`),
/// after a centred crop to sides divisible by the scale (and at most `max_side` when given).
pub fn degrade_set(
    names: &[String],
    images: &[RgbImage],
    d: &Degradation,
    max_side: Option<u32>,
    seed: u64,
) -> Result<Vec<Pair>> {
    use super::loader::epoch_rng;
    use super::patches::center_crop;
    names
        .iter()
        .zip(images)
        .enumerate()
        .map(|(i, (n, img))| {
            let c = center_crop(img, d.scale(), max_side);
            if c.width() == 0 || c.height() == 0 {
                bail!("image {n} is too small for scale {}", d.scale());
            }
            let (x, y) = d.apply(&c, &mut epoch_rng(seed, i))?;
            Ok(Pair {
                name: n.clone(),
                input: x.unsqueeze(0),
                target: y.unsqueeze(0),
            })
        })
        .collect()
}
