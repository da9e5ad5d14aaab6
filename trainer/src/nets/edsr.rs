//! EDSR baseline (Lim et al. 2017) for x4 super-resolution: mean shift, a 3x3 head conv, residual
//! blocks conv-ReLU-conv without BatchNorm (residual scale 1), a body-closing conv with a long skip,
//! an upsampler of 2 x (conv 64 -> 256 + PixelShuffle 2) and a 3x3 tail conv.
use tch::{Tensor, nn, nn::Module};

use super::{Net, conv};

/// DIV2K RGB mean used by EDSR's mean shift (images in [0, 1]).
pub const RGB_MEAN: [f64; 3] = [0.4488, 0.4371, 0.4040];

#[derive(Debug, Clone)]
pub struct EdsrConfig {
    pub blocks: usize,
    pub features: i64,
    pub res_scale: f64,
    /// Number of x2 upsampling stages (2 for x4).
    pub upsample_x2: usize,
}

impl Default for EdsrConfig {
    fn default() -> Self {
        Self {
            blocks: 16,
            features: 64,
            res_scale: 1.0,
            upsample_x2: 2,
        }
    }
}

pub struct Edsr {
    head: nn::Conv2D,
    blocks: Vec<(nn::Conv2D, nn::Conv2D)>,
    body_end: nn::Conv2D,
    up: Vec<nn::Conv2D>,
    tail: nn::Conv2D,
    res_scale: f64,
    mean: Tensor,
}

impl Edsr {
    pub fn new(p: &nn::Path, c: &EdsrConfig) -> Self {
        let f = c.features;
        let blocks = (0..c.blocks)
            .map(|i| {
                let b = p / "body" / i;
                (
                    conv(&b / "conv1", f, f, 3, true),
                    conv(&b / "conv2", f, f, 3, true),
                )
            })
            .collect();
        let up = (0..c.upsample_x2)
            .map(|i| conv(p / "upsample" / i, f, 4 * f, 3, true))
            .collect();
        Self {
            head: conv(p / "head", 3, f, 3, true),
            blocks,
            body_end: conv(p / "body_end", f, f, 3, true),
            up,
            tail: conv(p / "tail", f, 3, 3, true),
            res_scale: c.res_scale,
            mean: Tensor::from_slice(&RGB_MEAN)
                .to_kind(tch::Kind::Float)
                .view([1, 3, 1, 1])
                .to_device(p.device()),
        }
    }
}

impl Net for Edsr {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        let h = self.head.forward(&(x - &self.mean));
        let mut r = h.shallow_clone();
        for (c1, c2) in &self.blocks {
            let y = c2.forward(&c1.forward(&r).relu());
            r = if self.res_scale == 1.0 {
                y + r
            } else {
                y * self.res_scale + r
            };
        }
        let mut y = self.body_end.forward(&r) + h;
        for u in &self.up {
            y = u.forward(&y).pixel_shuffle(2);
        }
        self.tail.forward(&y) + &self.mean
    }
    fn scale(&self) -> i64 {
        1 << self.up.len()
    }
}
