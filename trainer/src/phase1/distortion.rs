//! The task distortions z^k of Phase 1 (MDF paper, Sec. 3.1), applied to the generator input
//! (images in [-1, 1]; no gradient flows through them):
//! - `denoise`: additive Gaussian noise, sigma ~ U[0, 55] on the 0-255 pixel scale per draw
//!   (= 2 sigma / 255 in [-1, 1] units);
//! - `jpeg`: re-encoding with a real JPEG encoder (`image_io::jpeg_roundtrip`, 8-bit) at a quality
//!   drawn uniformly from {7, ..., 10};
//! - `sisr`: none (the upsampled previous output is fed as it is).
use anyhow::Result;
use tch::Tensor;

use super::discriminator::{to_signed, to_unit};
use super::rng::Rng;
use crate::image_io::{jpeg_roundtrip, rgb_to_tensor, tensor_to_rgb};

pub use crate::task::Task;

/// Distortion parameters (paper defaults in [`super::config::Phase1Config`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distortion {
    pub task: Task,
    /// Upper end of the noise sigma, 0-255 scale.
    pub sigma_max: f64,
    pub jpeg_q_min: u8,
    pub jpeg_q_max: u8,
}

/// What was drawn (for logs and sample names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drawn {
    None,
    Noise { sigma255: f64 },
    Jpeg { quality: u8 },
}

impl Distortion {
    /// Distorts `x` (`[1, 3, H, W]`, [-1, 1]); returns the distorted image (detached).
    pub fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Drawn)> {
        let x = x.detach();
        Ok(match self.task {
            Task::Sisr => (x, Drawn::None),
            Task::Denoise => {
                let sigma255 = rng.uniform() * self.sigma_max;
                let n = rng.normal_tensor(&x.size(), x.device());
                (x + n * (2.0 * sigma255 / 255.0), Drawn::Noise { sigma255 })
            }
            Task::Jpeg => {
                let q = rng.int_in(self.jpeg_q_min as i64, self.jpeg_q_max as i64) as u8;
                (jpeg_signed(&x, q)?, Drawn::Jpeg { quality: q })
            }
        })
    }
}

/// JPEG round trip of a [-1, 1] image at quality `q` (clamped and quantised to 8 bit first).
pub fn jpeg_signed(x: &Tensor, q: u8) -> Result<Tensor> {
    let rgb = tensor_to_rgb(&to_unit(x))?;
    let back = rgb_to_tensor(&jpeg_roundtrip(&rgb, q)?, x.device());
    Ok(to_signed(&back))
}
