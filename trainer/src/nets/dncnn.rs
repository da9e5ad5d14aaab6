//! DnCNN (Zhang et al. 2017): conv + ReLU, (depth - 2) x (conv without bias + BN + ReLU), conv;
//! residual learning: the layers predict the distortion, the output is `input - prediction`.
use tch::{Tensor, nn, nn::Module, nn::ModuleT};

use super::{Net, conv};

#[derive(Debug, Clone)]
pub struct DnCnnConfig {
    /// Number of conv layers (17 in the paper's denoiser).
    pub depth: usize,
    pub features: i64,
}

impl Default for DnCnnConfig {
    fn default() -> Self {
        Self {
            depth: 17,
            features: 64,
        }
    }
}

pub struct DnCnn {
    first: nn::Conv2D,
    mid: Vec<(nn::Conv2D, nn::BatchNorm)>,
    last: nn::Conv2D,
}

impl DnCnn {
    pub fn new(p: &nn::Path, c: &DnCnnConfig) -> Self {
        let f = c.features;
        let mid = (0..c.depth.saturating_sub(2))
            .map(|i| {
                let q = p / "mid" / i;
                (
                    conv(&q / "conv", f, f, 3, false),
                    nn::batch_norm2d(&q / "bn", f, Default::default()),
                )
            })
            .collect();
        Self {
            first: conv(p / "first", 3, f, 3, true),
            mid,
            last: conv(p / "last", f, 3, 3, true),
        }
    }
}

impl Net for DnCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.first.forward(x).relu();
        for (c, bn) in &self.mid {
            y = bn.forward_t(&c.forward(&y), train).relu();
        }
        x - self.last.forward(&y)
    }
    fn scale(&self) -> i64 {
        1
    }
}
