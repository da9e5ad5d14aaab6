//! SinGAN `WDiscriminator` D^k (patch critic, 11x11 receptive field, valid convolutions): the
//! architecture the MDF loss loads, trained on [-1, 1] images, exported for [0, 1] images by
//! folding `x -> 2x - 1` into the head convolution (exact: there is no padding, so
//! `W * (2x - 1) + b = (2W) * x + (b - sum W)` at every output pixel).
use tch::{Device, Kind, Tensor};

use super::net::SinNet;

pub struct Discriminator {
    pub net: SinNet,
}

impl Discriminator {
    pub fn new(channels: i64, device: Device) -> Self {
        Self {
            net: SinNet::new(3, channels, 1, device),
        }
    }

    /// Critic map `[N, 1, H - 10, W - 10]` of a [-1, 1] image.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Tensor {
        self.net.forward(x, train)
    }

    /// The tensors for an MDF weights file under `{index}.`: the head convolution folded so that
    /// the exported D takes [0, 1] images and computes exactly what the trained D computes on
    /// `2x - 1`; BatchNorm statistics as trained (the loss uses them in eval mode).
    pub fn export(&self, index: usize) -> Vec<(String, Tensor)> {
        let prefix = format!("{index}.");
        let (wk, bk) = (
            format!("{prefix}head.conv.weight"),
            format!("{prefix}head.conv.bias"),
        );
        let w = self.net.head.w.detach().to_kind(Kind::Double);
        let b = self.net.head.b.detach().to_kind(Kind::Double);
        let w01 = (&w * 2.0).to_kind(Kind::Float);
        let b01 =
            (b - w.sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Double)).to_kind(Kind::Float);
        self.net
            .named(&prefix)
            .into_iter()
            .map(|(k, t)| {
                let t = if k == wk {
                    w01.shallow_clone()
                } else if k == bk {
                    b01.shallow_clone()
                } else {
                    t.detach().copy()
                };
                (k, t)
            })
            .collect()
    }
}

/// [0, 1] -> [-1, 1].
pub fn to_signed(x: &Tensor) -> Tensor {
    x * 2.0 - 1.0
}

/// [-1, 1] -> [0, 1].
pub fn to_unit(x: &Tensor) -> Tensor {
    (x + 1.0) * 0.5
}
