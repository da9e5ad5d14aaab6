//! SRResNet (Ledig et al. 2017) for x4 super-resolution: 9x9 conv + PReLU, residual blocks
//! conv-BN-PReLU-conv-BN with identity skips, conv-BN with a long skip, 2 x (conv 64 -> 256,
//! PixelShuffle 2, PReLU) and a 9x9 output conv.
use tch::{Tensor, nn, nn::Module, nn::ModuleT};

use super::{Net, conv, prelu_weight};

#[derive(Debug, Clone)]
pub struct SrResNetConfig {
    pub blocks: usize,
    pub features: i64,
    pub upsample_x2: usize,
}

impl Default for SrResNetConfig {
    fn default() -> Self {
        Self {
            blocks: 16,
            features: 64,
            upsample_x2: 2,
        }
    }
}

struct Block {
    c1: nn::Conv2D,
    bn1: nn::BatchNorm,
    a: Tensor,
    c2: nn::Conv2D,
    bn2: nn::BatchNorm,
}

pub struct SrResNet {
    head: nn::Conv2D,
    head_a: Tensor,
    blocks: Vec<Block>,
    mid: nn::Conv2D,
    mid_bn: nn::BatchNorm,
    up: Vec<(nn::Conv2D, Tensor)>,
    tail: nn::Conv2D,
}

impl SrResNet {
    pub fn new(p: &nn::Path, c: &SrResNetConfig) -> Self {
        let f = c.features;
        let bn = |q: nn::Path| nn::batch_norm2d(q, f, Default::default());
        let blocks = (0..c.blocks)
            .map(|i| {
                let b = p / "blocks" / i;
                Block {
                    c1: conv(&b / "conv1", f, f, 3, true),
                    bn1: bn(&b / "bn1"),
                    a: prelu_weight(&(&b / "prelu")),
                    c2: conv(&b / "conv2", f, f, 3, true),
                    bn2: bn(&b / "bn2"),
                }
            })
            .collect();
        let up = (0..c.upsample_x2)
            .map(|i| {
                let u = p / "upsample" / i;
                (
                    conv(&u / "conv", f, 4 * f, 3, true),
                    prelu_weight(&(&u / "prelu")),
                )
            })
            .collect();
        Self {
            head: conv(p / "head", 3, f, 9, true),
            head_a: prelu_weight(&(p / "head_prelu")),
            blocks,
            mid: conv(p / "mid", f, f, 3, true),
            mid_bn: bn(p / "mid_bn"),
            up,
            tail: conv(p / "tail", f, 3, 9, true),
        }
    }
}

impl Net for SrResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.head.forward(x).prelu(&self.head_a);
        let mut r = h.shallow_clone();
        for b in &self.blocks {
            let y = b.bn1.forward_t(&b.c1.forward(&r), train).prelu(&b.a);
            r = b.bn2.forward_t(&b.c2.forward(&y), train) + r;
        }
        let mut y = self.mid_bn.forward_t(&self.mid.forward(&r), train) + h;
        for (c, a) in &self.up {
            y = c.forward(&y).pixel_shuffle(2).prelu(a);
        }
        self.tail.forward(&y)
    }
    fn scale(&self) -> i64 {
        1 << self.up.len()
    }
}
