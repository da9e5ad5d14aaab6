//! VGG16 perceptual loss (Johnson et al. 2016): `sum_j ||phi_j(x) - phi_j(y)||^2 / (C_j H_j W_j)`
//! over the chosen ReLU layers (default `relu2_2`), inputs ImageNet-normalised. Weights: torchvision's
//! ImageNet VGG16 (`features.N.weight` names), from `fetch-weights` or a user file.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use super::{Loss, check_pair};
use crate::weights::{StateDict, fetch, weights_dir};

const CFG: [i64; 17] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512,
];
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
pub const DEFAULT_LAYERS: [&str; 1] = ["relu2_2"];

/// All ReLU layer names in order (`relu1_1` .. `relu5_3`).
pub fn layer_names() -> Vec<String> {
    let (mut b, mut i, mut out) = (1, 1, vec![]);
    for c in CFG {
        if c == 0 {
            b += 1;
            i = 1;
        } else {
            out.push(format!("relu{b}_{i}"));
            i += 1;
        }
    }
    out
}

/// Default weights file (`fetch-weights` output).
pub fn default_weights() -> PathBuf {
    weights_dir().join(fetch::VGG16_FILE)
}

pub(crate) fn require(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!(
            "pretrained weights {} not found: run `jndlab-train fetch-weights` (or pass a torchvision \
             .pth/.safetensors file)",
            path.display()
        );
    }
    Ok(())
}

/// VGG16 `features` up to the deepest requested ReLU; returns the requested activations.
pub struct Vgg16Features {
    convs: Vec<(Tensor, Tensor)>,
    /// For each conv (in order): is a 2x2 max-pool applied before it?
    pool_before: Vec<bool>,
    /// Indices (into convs) whose ReLU output is returned.
    taps: Vec<usize>,
    pub bytes: usize,
}

impl Vgg16Features {
    pub fn load(path: &Path, layers: &[String], device: Device) -> Result<Self> {
        require(path)?;
        let names = layer_names();
        let mut taps = Vec::new();
        for l in layers {
            let i = names.iter().position(|n| n == l).with_context(|| {
                format!(
                    "unknown VGG16 layer {l:?}; expected one of {}",
                    names.join(", ")
                )
            })?;
            taps.push(i);
        }
        if taps.is_empty() {
            bail!("no VGG16 layers requested");
        }
        let deepest = *taps.iter().max().expect("non-empty");
        let sd = StateDict::load(path, device)?;
        let (mut convs, mut pool_before, mut cin, mut pending_pool, mut conv_i) =
            (vec![], vec![], 3, false, 0);
        let mut bytes = 0;
        for c in CFG {
            if c == 0 {
                pending_pool = true;
                continue;
            }
            if conv_i > deepest {
                break;
            }
            let idx = fetch::VGG16_CONV_IDX[conv_i];
            let w = sd.get(&format!("features.{idx}.weight"), &[c, cin, 3, 3])?;
            let b = sd.get(&format!("features.{idx}.bias"), &[c])?;
            bytes += (w.numel() + b.numel()) * 4;
            convs.push((w.to_kind(Kind::Float), b.to_kind(Kind::Float)));
            pool_before.push(pending_pool);
            pending_pool = false;
            cin = c;
            conv_i += 1;
        }
        Ok(Self {
            convs,
            pool_before,
            taps,
            bytes,
        })
    }

    /// Activations at the requested layers, in request order.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut outs: Vec<Option<Tensor>> = self.taps.iter().map(|_| None).collect();
        let mut h = x.shallow_clone();
        for (i, ((w, b), pool)) in self.convs.iter().zip(&self.pool_before).enumerate() {
            if *pool {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            h = h.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
            for (slot, t) in outs.iter_mut().zip(&self.taps) {
                if *t == i {
                    *slot = Some(h.shallow_clone());
                }
            }
        }
        outs.into_iter().map(|o| o.expect("tap computed")).collect()
    }
}

/// ImageNet normalisation of `[N, 3, H, W]` in [0, 1].
pub fn imagenet_normalize(x: &Tensor) -> Tensor {
    let dev = x.device();
    let m = Tensor::from_slice(&IMAGENET_MEAN)
        .view([1, 3, 1, 1])
        .to_device(dev);
    let s = Tensor::from_slice(&IMAGENET_STD)
        .view([1, 3, 1, 1])
        .to_device(dev);
    (x.to_kind(Kind::Float) - m) / s
}

pub struct VggLoss {
    features: Vgg16Features,
    layers: Vec<String>,
}

impl VggLoss {
    pub fn new(path: &Path, layers: &[String], device: Device) -> Result<Self> {
        Ok(Self {
            features: Vgg16Features::load(path, layers, device)?,
            layers: layers.to_vec(),
        })
    }
}

/// Functional form: perceptual loss with the given feature extractor.
pub fn vgg_perceptual(features: &Vgg16Features, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("vgg", pred, target, Some(3), 1)?;
    let fy = tch::no_grad(|| features.forward(&imagenet_normalize(&target.detach())));
    let fx = features.forward(&imagenet_normalize(pred));
    let mut acc: Option<Tensor> = None;
    for (a, b) in fx.iter().zip(&fy) {
        let v = (a - b).square().mean(Kind::Float);
        acc = Some(match acc {
            None => v,
            Some(s) => s + v,
        });
    }
    Ok(acc.expect("at least one layer"))
}

impl Loss for VggLoss {
    fn name(&self) -> String {
        if self.layers == DEFAULT_LAYERS {
            "vgg".into()
        } else {
            format!("vgg:{}", self.layers.join(","))
        }
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        vgg_perceptual(&self.features, pred, target)
    }
    fn weight_bytes(&self) -> usize {
        self.features.bytes
    }
}
