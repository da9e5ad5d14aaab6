//! Image quality metrics: PSNR on RGB and on luma (ITU-R BT.601 Y as MATLAB `rgb2ycbcr`), SSIM.
use anyhow::{Result, bail};
use tch::{Kind, Tensor};

pub use crate::losses::ssim::ssim;

/// PSNR in dB between `[N, C, H, W]` images in [0, 1] (MSE over everything; peak 1).
/// Identical images give `f64::INFINITY`.
pub fn psnr(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() {
        bail!("psnr: shapes differ: {:?} vs {:?}", a.size(), b.size());
    }
    let mse = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    Ok(10.0 * (1.0 / mse).log10())
}

/// BT.601 luma in [16/255, 235/255] from RGB in [0, 1]: `[N, 1, H, W]`.
pub fn rgb_to_y(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 || s[1] != 3 {
        bail!("rgb_to_y: expected [N, 3, H, W], got {s:?}");
    }
    let w = Tensor::from_slice(&[65.481f64, 128.553, 24.966])
        .view([1, 3, 1, 1])
        .to_device(x.device());
    Ok(
        ((x.to_kind(Kind::Double) * w).sum_dim_intlist(&[1i64][..], true, Kind::Double) + 16.0)
            / 255.0,
    )
}

/// PSNR on Y, ignoring `border` pixels on each side (the usual super-resolution protocol).
pub fn psnr_y(a: &Tensor, b: &Tensor, border: i64) -> Result<f64> {
    let (ya, yb) = (rgb_to_y(a)?, rgb_to_y(b)?);
    let s = ya.size();
    if s[2] <= 2 * border || s[3] <= 2 * border {
        bail!(
            "psnr_y: image {}x{} too small for a {border}-px border",
            s[2],
            s[3]
        );
    }
    let crop = |t: &Tensor| {
        t.narrow(2, border, s[2] - 2 * border)
            .narrow(3, border, s[3] - 2 * border)
    };
    psnr(&crop(&ya), &crop(&yb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn psnr_known() {
        let a = Tensor::zeros([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::full([1, 3, 4, 4], 0.1, (Kind::Float, Device::Cpu));
        assert!((psnr(&a, &b).unwrap() - 20.0).abs() < 1e-5);
        assert!(psnr(&a, &a).unwrap().is_infinite());
        // Y of white is 235/255, of black 16/255
        let y = rgb_to_y(&Tensor::ones([1, 3, 1, 1], (Kind::Float, Device::Cpu))).unwrap();
        assert!((y.double_value(&[0, 0, 0, 0]) - 235.0 / 255.0).abs() < 1e-9);
        assert!(psnr_y(&a, &b, 2).is_err());
    }
}
