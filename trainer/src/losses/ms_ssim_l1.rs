//! MS-SSIM + L1 (Zhao et al., "Loss Functions for Image Restoration with Neural Networks", 2017):
//! `alpha * (1 - MS-SSIM) + (1 - alpha) * G_{sigma_M} (x) |pred - target|`, alpha = 0.84, where the
//! L1 term is Gaussian-weighted with the largest of their scales, sigma_M = 8 (33x33 window,
//! 'valid' filtering, mean over positions, channels and batch; smaller images use the largest odd
//! window that fits). MS-SSIM is [`super::ms_ssim`]. Zhao et al.'s extra constant scaling of the
//! whole loss for their solver is not applied (it only rescales the learning rate).
use anyhow::Result;
use tch::{Kind, Tensor};

use super::{Loss, check_pair, gauss, ms_ssim};

pub const ALPHA: f64 = 0.84;
pub const SIGMA_M: f64 = 8.0;
pub const L1_WINDOW: i64 = 33;

/// Gaussian-weighted L1 (see the module docs).
pub fn gaussian_l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("gaussian-l1", pred, target, None, 1)?;
    let s = pred.size();
    let k = gauss::fitted_size(L1_WINDOW, s[2], s[3]);
    let win = gauss::window(k, SIGMA_M, s[1], pred.device());
    Ok(gauss::filter(&(pred - target).abs().to_kind(Kind::Float), &win).mean(Kind::Float))
}

pub fn ms_ssim_l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let ms = ms_ssim::ms_ssim(pred, target)?;
    Ok((1.0 - ms) * ALPHA + gaussian_l1(pred, target)? * (1.0 - ALPHA))
}

pub struct MsSsimL1Loss;

impl Loss for MsSsimL1Loss {
    fn name(&self) -> String {
        "ms-ssim+l1".into()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        ms_ssim_l1(pred, target)
    }
    fn min_side(&self) -> i64 {
        ms_ssim::MIN_SIDE
    }
}
