//! MS-SSIM (Wang et al. 2003): 5 scales, weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333, the product
//! formula `l_M^{a_M} * prod_j cs_j^{b_j}` per image and channel (negative terms clipped at 0 as in
//! piq), then the mean over channels and batch. Downsampling: 2x2 average, replicating the last
//! row/column of odd sizes (MATLAB `imfilter(.., 'symmetric')` + `(1:2:end)` as in Wang's code).
//!
//! Small patches: the standard version needs `(11 - 1) * 2^4 + 1 = 161` px per side (piq raises
//! below that); a 96x96 training patch is 6x6 at the 5th scale. We keep all 5 scales and the
//! weights and, at a scale smaller than the 11x11 window, use the largest odd Gaussian window that
//! fits (same sigma 1.5, renormalised). Identical to the standard definition from 176 px up (every
//! scale holds the full window); validated against piq on a 384x512 pair.
use anyhow::Result;
use tch::{Kind, Tensor};

use super::{Loss, check_pair, gauss, ssim};

pub const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// Smallest side: 5 scales of halving must leave at least 1 px.
pub const MIN_SIDE: i64 = 16;

fn downsample(x: &Tensor) -> Tensor {
    let s = x.size();
    let (ph, pw) = (s[2] % 2, s[3] % 2);
    let x = if ph + pw > 0 {
        x.pad([0, pw, 0, ph], "replicate", None)
    } else {
        x.shallow_clone()
    };
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
}

/// Per-sample MS-SSIM `[N]` (mean over channels).
pub fn ms_ssim_per_sample(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("ms-ssim", pred, target, None, MIN_SIDE)?;
    let (mut x, mut y) = (pred.to_kind(Kind::Float), target.to_kind(Kind::Float));
    let c = x.size()[1];
    let mut val: Option<Tensor> = None;
    for (i, w) in WEIGHTS.iter().enumerate() {
        if i > 0 {
            x = downsample(&x);
            y = downsample(&y);
        }
        let s = x.size();
        let k = gauss::fitted_size(ssim::WINDOW, s[2], s[3]);
        let win = gauss::window(k, ssim::SIGMA, c, x.device());
        let (ss, cs) = ssim::ssim_cs(&x, &y, &win);
        let term = if i + 1 == WEIGHTS.len() { ss } else { cs };
        let term = term.relu().pow_tensor_scalar(*w);
        val = Some(match val {
            None => term,
            Some(v) => v * term,
        });
    }
    Ok(val
        .expect("5 scales")
        .mean_dim(&[1i64][..], false, Kind::Float))
}

/// Mean MS-SSIM over the batch.
pub fn ms_ssim(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    Ok(ms_ssim_per_sample(pred, target)?.mean(Kind::Float))
}

/// `1 - MS-SSIM`.
pub struct MsSsimLoss;

impl Loss for MsSsimLoss {
    fn name(&self) -> String {
        "ms-ssim".into()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        Ok(1.0 - ms_ssim(pred, target)?)
    }
    fn min_side(&self) -> i64 {
        MIN_SIDE
    }
}
