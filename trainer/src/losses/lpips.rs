//! LPIPS v0.1 (Zhang et al. 2018) with the VGG16 or AlexNet backbone and the calibrated linear
//! layers: inputs [0,1] -> [-1,1], scaling layer (shift -.030 -.088 -.188, scale .458 .448 .450),
//! channel-unit-normalised features (eps 1e-10), squared differences weighted by the 1x1 linear
//! layers, spatially averaged and summed over the 5 layers; the loss is the batch mean.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use tch::{Device, Kind, Tensor};

use super::vgg::{Vgg16Features, require};
use super::{Loss, check_pair};
use crate::weights::{StateDict, fetch, weights_dir};

const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backbone {
    Alex,
    Vgg,
}

impl Backbone {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "alex" | "alexnet" => Some(Self::Alex),
            "vgg" | "vgg16" => Some(Self::Vgg),
            _ => None,
        }
    }
    pub fn default_backbone_weights(self) -> PathBuf {
        weights_dir().join(match self {
            Self::Alex => fetch::ALEXNET_FILE,
            Self::Vgg => fetch::VGG16_FILE,
        })
    }
    pub fn default_lin_weights(self) -> PathBuf {
        weights_dir().join(match self {
            Self::Alex => fetch::LPIPS_ALEX_FILE,
            Self::Vgg => fetch::LPIPS_VGG_FILE,
        })
    }
    fn channels(self) -> [i64; 5] {
        match self {
            Self::Alex => [64, 192, 384, 256, 256],
            Self::Vgg => [64, 128, 256, 512, 512],
        }
    }
}

/// torchvision AlexNet `features`, ReLU outputs 1-5.
struct AlexFeatures {
    convs: Vec<(Tensor, Tensor, i64, i64)>, // weight, bias, stride, padding
}

impl AlexFeatures {
    fn load(path: &Path, device: Device) -> Result<(Self, usize)> {
        require(path)?;
        let sd = StateDict::load(path, device)?;
        let spec = [
            (64, 3, 11, 4, 2),
            (192, 64, 5, 1, 2),
            (384, 192, 3, 1, 1),
            (256, 384, 3, 1, 1),
            (256, 256, 3, 1, 1),
        ];
        let mut convs = vec![];
        let mut bytes = 0;
        for ((co, ci, k, s, p), idx) in spec.into_iter().zip(fetch::ALEX_CONV_IDX) {
            let w = sd.get(&format!("features.{idx}.weight"), &[co, ci, k, k])?;
            let b = sd.get(&format!("features.{idx}.bias"), &[co])?;
            bytes += (w.numel() + b.numel()) * 4;
            convs.push((w, b, s, p));
        }
        Ok((Self { convs }, bytes))
    }
    fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut outs = vec![];
        let mut h = x.shallow_clone();
        for (i, (w, b, s, p)) in self.convs.iter().enumerate() {
            if i == 1 || i == 2 {
                h = h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
            }
            h = h.conv2d(w, Some(b), [*s, *s], [*p, *p], [1, 1], 1).relu();
            outs.push(h.shallow_clone());
        }
        outs
    }
}

enum Net {
    Alex(AlexFeatures),
    Vgg(Vgg16Features),
}

pub struct LpipsLoss {
    backbone: Backbone,
    net: Net,
    lins: Vec<Tensor>,
    bytes: usize,
}

impl LpipsLoss {
    pub fn new(
        backbone: Backbone,
        backbone_weights: &Path,
        lin_weights: &Path,
        device: Device,
    ) -> Result<Self> {
        let (net, mut bytes) = match backbone {
            Backbone::Alex => {
                let (a, b) = AlexFeatures::load(backbone_weights, device)?;
                (Net::Alex(a), b)
            }
            Backbone::Vgg => {
                let layers: Vec<String> = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
                    .map(String::from)
                    .to_vec();
                let v = Vgg16Features::load(backbone_weights, &layers, device)?;
                let b = v.bytes;
                (Net::Vgg(v), b)
            }
        };
        require(lin_weights)?;
        let sd = StateDict::load(lin_weights, device)?;
        let lins = backbone
            .channels()
            .iter()
            .enumerate()
            .map(|(i, c)| sd.get(&format!("lin{i}.model.1.weight"), &[1, *c, 1, 1]))
            .collect::<Result<Vec<_>>>()?;
        bytes += lins.iter().map(|t| t.numel() * 4).sum::<usize>();
        Ok(Self {
            backbone,
            net,
            lins,
            bytes,
        })
    }

    pub fn with_defaults(backbone: Backbone, device: Device) -> Result<Self> {
        Self::new(
            backbone,
            &backbone.default_backbone_weights(),
            &backbone.default_lin_weights(),
            device,
        )
    }

    fn features(&self, x: &Tensor) -> Vec<Tensor> {
        let dev = x.device();
        let shift = Tensor::from_slice(&SHIFT).view([1, 3, 1, 1]).to_device(dev);
        let scale = Tensor::from_slice(&SCALE).view([1, 3, 1, 1]).to_device(dev);
        let x = ((x.to_kind(Kind::Float) * 2.0 - 1.0) - shift) / scale;
        let f = match &self.net {
            Net::Alex(a) => a.forward(&x),
            Net::Vgg(v) => v.forward(&x),
        };
        f.iter()
            .map(|t| {
                let n = t
                    .square()
                    .sum_dim_intlist(&[1i64][..], true, Kind::Float)
                    .sqrt();
                t / (n + 1e-10)
            })
            .collect()
    }

    /// Per-sample LPIPS distance `[N]`.
    pub fn distance(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        check_pair("lpips", pred, target, Some(3), self.min_side())?;
        let fy = tch::no_grad(|| self.features(&target.detach()));
        let fx = self.features(pred);
        let mut acc: Option<Tensor> = None;
        for ((a, b), lin) in fx.iter().zip(&fy).zip(&self.lins) {
            let d = (a - b)
                .square()
                .conv2d(lin, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
            let v = d.mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
            acc = Some(match acc {
                None => v,
                Some(s) => s + v,
            });
        }
        match acc {
            Some(a) => Ok(a),
            None => bail!("no LPIPS layers"),
        }
    }
}

impl Loss for LpipsLoss {
    fn name(&self) -> String {
        match self.backbone {
            Backbone::Alex => "lpips:alex".into(),
            Backbone::Vgg => "lpips:vgg".into(),
        }
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        Ok(self.distance(pred, target)?.mean(Kind::Float))
    }
    fn min_side(&self) -> i64 {
        match self.backbone {
            // conv1 (11, stride 4, pad 2) + two 3x3/2 max-pools must leave >= 1 px
            Backbone::Alex => 31,
            // four 2x2 max-pools before relu5_3
            Backbone::Vgg => 16,
        }
    }
    fn weight_bytes(&self) -> usize {
        self.bytes
    }
}
