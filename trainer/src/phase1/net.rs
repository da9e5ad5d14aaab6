//! The SinGAN network body shared by the generator and the discriminator: head ConvBlock
//! (3x3 conv, BatchNorm, LeakyReLU 0.2), 3 body ConvBlocks, tail 3x3 conv; all convolutions
//! valid (no padding). Parameters are plain tensors (not a `VarStore`) so that names, the
//! initialisation (SinGAN's: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases as
//! PyTorch's defaults / zero) and copying between scales are under our control, and they map
//! one-to-one onto the MDF file layout (`head.conv.weight`, `body.block2.norm.running_var`, ...).
use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

pub const SLOPE: f64 = 0.2;
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;
/// Body blocks between head and tail (SinGAN `num_layer = 5` -> 5 convolutions in all).
pub const BODY_BLOCKS: usize = 3;
/// Pixels lost per side by the 5 valid 3x3 convolutions.
pub const RECEPTIVE_PAD: i64 = 5;

/// Conv 3x3 + BatchNorm + LeakyReLU(0.2).
pub struct ConvBlock {
    pub w: Tensor,
    pub b: Tensor,
    pub gamma: Tensor,
    pub beta: Tensor,
    pub mean: Tensor,
    pub var: Tensor,
}

fn conv_init(cout: i64, cin: i64, device: Device) -> (Tensor, Tensor) {
    let opts = (Kind::Float, device);
    let w = (Tensor::randn([cout, cin, 3, 3], opts) * 0.02).set_requires_grad(true);
    // PyTorch's default conv bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    let bound = 1.0 / ((cin * 9) as f64).sqrt();
    let b = (Tensor::rand([cout], opts) * (2.0 * bound) - bound).set_requires_grad(true);
    (w, b)
}

impl ConvBlock {
    fn new(cin: i64, cout: i64, device: Device) -> Self {
        let (w, b) = conv_init(cout, cin, device);
        let opts = (Kind::Float, device);
        Self {
            w,
            b,
            gamma: (Tensor::randn([cout], opts) * 0.02 + 1.0).set_requires_grad(true),
            beta: Tensor::zeros([cout], opts).set_requires_grad(true),
            mean: Tensor::zeros([cout], opts),
            var: Tensor::ones([cout], opts),
        }
    }
    fn forward(&self, x: &Tensor, train: bool, slope: &Tensor) -> Tensor {
        x.conv2d(&self.w, Some(&self.b), [1, 1], [0, 0], [1, 1], 1)
            .batch_norm(
                Some(&self.gamma),
                Some(&self.beta),
                Some(&self.mean),
                Some(&self.var),
                train,
                BN_MOMENTUM,
                BN_EPS,
                false,
            )
            .prelu(slope)
    }
    fn named(&self, p: &str, out: &mut Vec<(String, Tensor)>) {
        for (k, t) in [
            ("conv.weight", &self.w),
            ("conv.bias", &self.b),
            ("norm.weight", &self.gamma),
            ("norm.bias", &self.beta),
            ("norm.running_mean", &self.mean),
            ("norm.running_var", &self.var),
        ] {
            out.push((format!("{p}.{k}"), t.shallow_clone()));
        }
    }
}

/// head + body + tail, `cin -> channels -> ... -> cout`.
pub struct SinNet {
    pub channels: i64,
    pub head: ConvBlock,
    pub body: Vec<ConvBlock>,
    pub tail_w: Tensor,
    pub tail_b: Tensor,
    /// BatchNorm `num_batches_tracked` (the same for every block: all run on every forward).
    pub batches: i64,
    slope: Tensor,
}

impl SinNet {
    /// A freshly initialised network (uses libtorch's global RNG: seed it with `tch::manual_seed`).
    pub fn new(cin: i64, channels: i64, cout: i64, device: Device) -> Self {
        let head = ConvBlock::new(cin, channels, device);
        let body = (0..BODY_BLOCKS)
            .map(|_| ConvBlock::new(channels, channels, device))
            .collect();
        let (tail_w, tail_b) = conv_init(cout, channels, device);
        Self {
            channels,
            head,
            body,
            tail_w,
            tail_b,
            batches: 0,
            slope: Tensor::from_slice(&[SLOPE as f32]).to_device(device),
        }
    }

    /// The three MDF taps (head, body, tail outputs). `train` = BatchNorm batch statistics
    /// (and running-statistics update), else the running statistics.
    pub fn taps(&mut self, x: &Tensor, train: bool) -> [Tensor; 3] {
        if train {
            self.batches += 1;
        }
        let x1 = self.head.forward(x, train, &self.slope);
        let mut x2 = x1.shallow_clone();
        for b in &self.body {
            x2 = b.forward(&x2, train, &self.slope);
        }
        let x3 = x2.conv2d(&self.tail_w, Some(&self.tail_b), [1, 1], [0, 0], [1, 1], 1);
        [x1, x2, x3]
    }

    pub fn forward(&mut self, x: &Tensor, train: bool) -> Tensor {
        let [_, _, y] = self.taps(x, train);
        y
    }

    fn blocks(&self) -> impl Iterator<Item = (String, &ConvBlock)> {
        std::iter::once(("head".to_string(), &self.head)).chain(
            self.body
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("body.block{}", i + 1), b)),
        )
    }

    /// Trainable parameters, in a fixed order.
    pub fn params(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        for (_, b) in self.blocks() {
            for t in [&b.w, &b.b, &b.gamma, &b.beta] {
                v.push(t.shallow_clone());
            }
        }
        v.push(self.tail_w.shallow_clone());
        v.push(self.tail_b.shallow_clone());
        v
    }

    /// Every tensor under the PyTorch/SinGAN names, with `prefix.` in front (`num_batches_tracked`
    /// as int64 scalars, as in the official files).
    pub fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (p, b) in self.blocks() {
            b.named(&format!("{prefix}{p}"), &mut out);
            out.push((
                format!("{prefix}{p}.norm.num_batches_tracked"),
                Tensor::from(self.batches),
            ));
        }
        out.push((format!("{prefix}tail.weight"), self.tail_w.shallow_clone()));
        out.push((format!("{prefix}tail.bias"), self.tail_b.shallow_clone()));
        out
    }

    /// Copies every tensor from `src` (keys as [`Self::named`] with `prefix`), checking shapes.
    pub fn load(&mut self, src: &HashMap<String, Tensor>, prefix: &str, what: &str) -> Result<()> {
        let mut batches = None;
        for (k, t) in self.named(prefix) {
            let s = src
                .get(&k)
                .with_context(|| format!("{what}: tensor {k:?} missing"))?;
            if s.size() != t.size() {
                bail!(
                    "{what}: tensor {k:?} has shape {:?}, expected {:?}",
                    s.size(),
                    t.size()
                );
            }
            if k.ends_with("num_batches_tracked") {
                batches = Some(s.int64_value(&[]));
                continue;
            }
            tch::no_grad(|| {
                let mut t = t;
                t.copy_(&s.to_device(t.device()).to_kind(Kind::Float));
            });
        }
        self.batches = batches.unwrap_or(0);
        Ok(())
    }

    /// Copies another network of the same shape (SinGAN starts scale k from scale k-1's weights).
    pub fn copy_from(&mut self, other: &SinNet) -> Result<()> {
        let map: HashMap<String, Tensor> = other.named("").into_iter().collect();
        self.load(&map, "", "previous scale")
    }
}
