//! Builds losses by name from a spec string (see [`super::spec`]).
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tch::Device;

use super::lpips::{Backbone, LpipsLoss};
use super::mdf::{MdfLoss, MdfTask};
use super::spec::{Term, parse};
use super::vgg::{self, VggLoss};
use super::{
    Loss, Weighted, l1::L1Loss, l2::L2Loss, ms_ssim::MsSsimLoss, ms_ssim_l1::MsSsimL1Loss,
    ssim::SsimLoss,
};

/// `(name, aliases, description)` of every registered loss.
pub const LOSSES: &[(&str, &[&str], &str)] = &[
    ("l1", &[], "mean absolute error"),
    ("l2", &["mse"], "mean squared error"),
    ("ssim", &[], "1 - SSIM (11x11 Gaussian, sigma 1.5)"),
    ("ms-ssim", &["msssim"], "1 - MS-SSIM (5 scales)"),
    (
        "ms-ssim+l1",
        &["ms-ssim-l1", "mix"],
        "Zhao et al.: 0.84 (1 - MS-SSIM) + 0.16 Gaussian-weighted L1",
    ),
    (
        "vgg",
        &["vgg16"],
        "VGG16 perceptual; arg: comma-separated ReLU layers (default relu2_2)",
    ),
    ("lpips", &[], "LPIPS v0.1; arg: alex (default) or vgg"),
    (
        "mdf",
        &[],
        "MDF loss; arg: sisr (default), jpeg, denoising (= sisr) or a weights file",
    ),
];

/// Where weights come from and where losses run.
#[derive(Debug, Clone)]
pub struct LossOptions {
    pub device: Device,
    /// Overrides the MDF weights file (`mdf` without an argument uses it).
    pub mdf_weights: Option<PathBuf>,
    /// Overrides the VGG16 backbone file (vgg and lpips:vgg).
    pub vgg_weights: Option<PathBuf>,
    /// Overrides the AlexNet backbone file (lpips:alex).
    pub alexnet_weights: Option<PathBuf>,
}

impl LossOptions {
    pub fn new(device: Device) -> Self {
        Self {
            device,
            mdf_weights: None,
            vgg_weights: None,
            alexnet_weights: None,
        }
    }
}

fn all_names() -> Vec<&'static str> {
    LOSSES
        .iter()
        .flat_map(|(n, a, _)| std::iter::once(*n).chain(a.iter().copied()))
        .collect()
}

fn canonical(name: &str) -> &'static str {
    LOSSES
        .iter()
        .find(|(n, a, _)| *n == name || a.contains(&name))
        .map(|(n, _, _)| *n)
        .expect("parsed names are registered")
}

fn build_term(t: &Term, o: &LossOptions) -> Result<Box<dyn Loss>> {
    let name = canonical(&t.name);
    let no_arg = |l: Box<dyn Loss>| -> Result<Box<dyn Loss>> {
        if let Some(a) = &t.arg {
            bail!("loss {name} takes no argument (got {a:?})");
        }
        Ok(l)
    };
    match name {
        "l1" => no_arg(Box::new(L1Loss)),
        "l2" => no_arg(Box::new(L2Loss)),
        "ssim" => no_arg(Box::new(SsimLoss)),
        "ms-ssim" => no_arg(Box::new(MsSsimLoss)),
        "ms-ssim+l1" => no_arg(Box::new(MsSsimL1Loss)),
        "vgg" => {
            let layers: Vec<String> = match &t.arg {
                Some(a) => a
                    .to_ascii_lowercase()
                    .split(',')
                    .map(str::to_string)
                    .collect(),
                None => vgg::DEFAULT_LAYERS.map(String::from).to_vec(),
            };
            let path = o.vgg_weights.clone().unwrap_or_else(vgg::default_weights);
            Ok(Box::new(VggLoss::new(&path, &layers, o.device)?))
        }
        "lpips" => {
            let b = match t.arg.as_deref() {
                None => Backbone::Alex,
                Some(a) => Backbone::parse(&a.to_ascii_lowercase()).with_context(|| {
                    format!("lpips: unknown backbone {a:?} (expected alex or vgg)")
                })?,
            };
            let bb = match b {
                Backbone::Alex => o.alexnet_weights.clone(),
                Backbone::Vgg => o.vgg_weights.clone(),
            }
            .unwrap_or_else(|| b.default_backbone_weights());
            Ok(Box::new(LpipsLoss::new(
                b,
                &bb,
                &b.default_lin_weights(),
                o.device,
            )?))
        }
        "mdf" => match (&t.arg, &o.mdf_weights) {
            (None, Some(w)) => Ok(Box::new(MdfLoss::from_weights(w, o.device)?)),
            (None, None) => Ok(Box::new(MdfLoss::official(MdfTask::Sisr, o.device)?)),
            (Some(a), _) => match MdfTask::parse(a) {
                Some(task) => Ok(Box::new(MdfLoss::official(task, o.device)?)),
                None => {
                    let p = PathBuf::from(a);
                    if !p.exists() {
                        bail!(
                            "mdf: {a:?} is neither sisr, jpeg, denoising nor an existing weights file"
                        );
                    }
                    Ok(Box::new(MdfLoss::from_weights(&p, o.device)?))
                }
            },
        },
        other => bail!("loss {other} is registered but not buildable"),
    }
}

/// Builds a loss from a spec string; several terms give a [`Weighted`] sum.
pub fn build_loss(spec: &str, o: &LossOptions) -> Result<Box<dyn Loss>> {
    let names = all_names();
    let terms = parse(spec, &names)?;
    let mut built = Vec::new();
    for t in &terms {
        built.push((
            t.weight,
            build_term(t, o).with_context(|| format!("building loss {:?}", t.name))?,
        ));
    }
    if built.len() == 1 && built[0].0 == 1.0 {
        return Ok(built.pop().expect("one term").1);
    }
    Ok(Box::new(Weighted { terms: built }))
}
