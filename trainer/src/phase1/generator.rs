//! SinGAN generator G^k: zero-pad the input by 5 px, head + 3 body ConvBlocks + tail conv to 3
//! channels + tanh, added to the (unpadded) input: `y~ = x + tanh(f(pad(x)))`, where `x` is the
//! upsampled previous output plus the task distortion (the "output added to the input").
use tch::{Device, Tensor};

use super::net::{RECEPTIVE_PAD, SinNet};

pub struct Generator {
    pub net: SinNet,
}

impl Generator {
    pub fn new(channels: i64, device: Device) -> Self {
        Self {
            net: SinNet::new(3, channels, 3, device),
        }
    }

    /// `x`: `[N, 3, H, W]` in [-1, 1] -> `[N, 3, H, W]`.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Tensor {
        let p = RECEPTIVE_PAD;
        let padded = x.constant_pad_nd([p, p, p, p]);
        self.net.forward(&padded, train).tanh() + x
    }
}
