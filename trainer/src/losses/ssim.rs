//! SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1,
//! 'valid' filtering, mean over the map and the channels (as piq with `downsample=False`).
//! Images smaller than the window use the largest odd window that fits (same sigma).
use anyhow::Result;
use tch::{Kind, Tensor};

use super::{Loss, check_pair, gauss};

pub const WINDOW: i64 = 11;
pub const SIGMA: f64 = 1.5;
pub const K1: f64 = 0.01;
pub const K2: f64 = 0.03;

/// Per-sample, per-channel SSIM and contrast-structure terms `([N, C], [N, C])`.
pub fn ssim_cs(x: &Tensor, y: &Tensor, win: &Tensor) -> (Tensor, Tensor) {
    let (c1, c2) = (K1 * K1, K2 * K2);
    let mu_x = gauss::filter(x, win);
    let mu_y = gauss::filter(y, win);
    let (mu_xx, mu_yy, mu_xy) = (mu_x.square(), mu_y.square(), &mu_x * &mu_y);
    let s_xx = gauss::filter(&x.square(), win) - &mu_xx;
    let s_yy = gauss::filter(&y.square(), win) - &mu_yy;
    let s_xy = gauss::filter(&(x * y), win) - &mu_xy;
    let cs = (s_xy * 2.0 + c2) / (s_xx + s_yy + c2);
    let ss = (mu_xy * 2.0 + c1) / (mu_xx + mu_yy + c1) * &cs;
    (
        ss.mean_dim(&[-1i64, -2][..], false, Kind::Float),
        cs.mean_dim(&[-1i64, -2][..], false, Kind::Float),
    )
}

/// Mean SSIM over batch and channels (a scalar tensor).
pub fn ssim(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("ssim", pred, target, None, 1)?;
    let s = pred.size();
    let k = gauss::fitted_size(WINDOW, s[2], s[3]);
    let win = gauss::window(k, SIGMA, s[1], pred.device());
    let (ss, _) = ssim_cs(
        &pred.to_kind(Kind::Float),
        &target.to_kind(Kind::Float),
        &win,
    );
    Ok(ss.mean(Kind::Float))
}

/// `1 - SSIM`.
pub struct SsimLoss;

impl Loss for SsimLoss {
    fn name(&self) -> String {
        "ssim".into()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        Ok(1.0 - ssim(pred, target)?)
    }
}
