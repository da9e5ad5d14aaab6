//! MS-SSIM (Wang, Simoncelli & Bovik 2003) and SSIM (Wang et al. 2004) in pure Rust, so the app does not
//! need libtorch to judge images.
//!
//! Conventions (those of Wang's reference `msssim.m` and of `pytorch_msssim`):
//! - pixels scaled to [0, 1] (data range 1), C1 = (0.01)^2, C2 = (0.03)^2;
//! - an 11x11 Gaussian window with sigma 1.5, applied as two 1-D passes, "valid" positions only (no
//!   padding); SSIM of one scale = the mean over those positions;
//! - 5 scales with weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], 2x2 average pooling between scales
//!   (an odd last row or column is dropped); the contrast-structure term at every scale but the coarsest,
//!   where the whole SSIM (luminance x contrast-structure) is used, as in `msssim.m`; negative terms are
//!   clamped to 0 before the fractional powers;
//! - images too small for 5 scales (min side < 11 * 2^4 = 176 px) use as many scales as fit (the coarsest
//!   still at least 11 px; at least 1 scale) with the first weights renormalised to sum to 1 (5 scales use
//!   the published weights as they are); an image
//!   under 11 px gets a window of its smaller side;
//! - colour: computed on each RGB channel separately and averaged (not on luma).
//!
//! One scale is plain SSIM.

use image::RgbImage;

/// The 5 standard MS-SSIM scale weights, finest first.
pub const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// Gaussian window side and sigma.
pub const WINDOW: usize = 11;
pub const WINDOW_SIGMA: f64 = 1.5;
pub const K1: f64 = 0.01;
pub const K2: f64 = 0.03;
const C1: f64 = K1 * K1;
const C2: f64 = K2 * K2;

/// One channel of an image, values in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f64>,
}

impl Plane {
    /// Channel `c` (0 = R, 1 = G, 2 = B) of an 8-bit RGB image.
    pub fn channel(img: &RgbImage, c: usize) -> Plane {
        Plane {
            width: img.width() as usize,
            height: img.height() as usize,
            data: img.pixels().map(|p| p.0[c] as f64 / 255.0).collect(),
        }
    }

    /// 2x2 average pooling (an odd last row or column is dropped).
    pub fn downsample(&self) -> Plane {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let at = |dx: usize, dy: usize| self.data[(2 * y + dy) * self.width + 2 * x + dx];
                data.push((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) / 4.0);
            }
        }
        Plane {
            width: w,
            height: h,
            data,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("image sizes differ: {0}x{1} vs {2}x{3}")]
    SizeMismatch(u32, u32, u32, u32),
    #[error("empty image")]
    Empty,
}

/// The normalised 1-D Gaussian of `size` taps.
fn gaussian(size: usize) -> Vec<f64> {
    let c = (size as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * WINDOW_SIGMA * WINDOW_SIGMA)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// Separable "valid" filtering: output (width - k + 1) x (height - k + 1).
fn filter(data: &[f64], width: usize, height: usize, g: &[f64]) -> Vec<f64> {
    let k = g.len();
    let (ow, oh) = (width + 1 - k, height + 1 - k);
    let mut rows = vec![0.0; ow * height];
    for y in 0..height {
        let src = &data[y * width..(y + 1) * width];
        let dst = &mut rows[y * ow..(y + 1) * ow];
        for (x, d) in dst.iter_mut().enumerate() {
            *d = src[x..x + k].iter().zip(g).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for (t, &gt) in g.iter().enumerate() {
        for y in 0..oh {
            let src = &rows[(y + t) * ow..(y + t + 1) * ow];
            let dst = &mut out[y * ow..(y + 1) * ow];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += gt * s;
            }
        }
    }
    out
}

/// (mean SSIM, mean contrast-structure) of one scale.
pub fn ssim_and_cs(x: &Plane, y: &Plane) -> (f64, f64) {
    let k = WINDOW.min(x.width).min(x.height).max(1);
    let g = gaussian(k);
    let f = |v: &[f64]| filter(v, x.width, x.height, &g);
    let xx: Vec<f64> = x.data.iter().map(|a| a * a).collect();
    let yy: Vec<f64> = y.data.iter().map(|a| a * a).collect();
    let xy: Vec<f64> = x.data.iter().zip(&y.data).map(|(a, b)| a * b).collect();
    let (mx, my) = (f(&x.data), f(&y.data));
    let (sxx, syy, sxy) = (f(&xx), f(&yy), f(&xy));
    let n = mx.len() as f64;
    let (mut ssim, mut cs) = (0.0, 0.0);
    for i in 0..mx.len() {
        let (a, b) = (mx[i], my[i]);
        let va = sxx[i] - a * a;
        let vb = syy[i] - b * b;
        let cov = sxy[i] - a * b;
        let c = (2.0 * cov + C2) / (va + vb + C2);
        let l = (2.0 * a * b + C1) / (a * a + b * b + C1);
        cs += c;
        ssim += l * c;
    }
    (ssim / n, cs / n)
}

/// How many scales an image of this size gets (1..=5): the coarsest is at least `WINDOW` px.
pub fn scales_for(width: usize, height: usize) -> usize {
    let side = width.min(height);
    (1..=WEIGHTS.len())
        .rev()
        .find(|&m| side >> (m - 1) >= WINDOW)
        .unwrap_or(1)
}

/// The weights of `m` scales: the standard ones for 5 (they sum to 1.0001, as published), else the first
/// `m` renormalised to sum to 1.
pub fn weights(m: usize) -> Vec<f64> {
    if m >= WEIGHTS.len() {
        return WEIGHTS.to_vec();
    }
    let w = &WEIGHTS[..m.max(1)];
    let s: f64 = w.iter().sum();
    w.iter().map(|v| v / s).collect()
}

/// MS-SSIM of one channel over `m` scales.
pub fn ms_ssim_plane(x: &Plane, y: &Plane, m: usize) -> f64 {
    let w = weights(m);
    let (mut x, mut y) = (x.clone(), y.clone());
    let mut v = 1.0;
    for (j, wj) in w.iter().enumerate() {
        let (ssim, cs) = ssim_and_cs(&x, &y);
        if j + 1 == w.len() {
            v *= ssim.max(0.0).powf(*wj);
        } else {
            v *= cs.max(0.0).powf(*wj);
            x = x.downsample();
            y = y.downsample();
        }
    }
    v
}

fn check(a: &RgbImage, b: &RgbImage) -> Result<(), MetricError> {
    if a.dimensions() != b.dimensions() {
        return Err(MetricError::SizeMismatch(
            a.width(),
            a.height(),
            b.width(),
            b.height(),
        ));
    }
    if a.width() == 0 || a.height() == 0 {
        return Err(MetricError::Empty);
    }
    Ok(())
}

fn per_channel(a: &RgbImage, b: &RgbImage, m: usize) -> f64 {
    (0..3)
        .map(|c| ms_ssim_plane(&Plane::channel(a, c), &Plane::channel(b, c), m))
        .sum::<f64>()
        / 3.0
}

/// MS-SSIM of two RGB images of the same size (mean of the three channels), with as many scales as fit.
pub fn ms_ssim(a: &RgbImage, b: &RgbImage) -> Result<f64, MetricError> {
    check(a, b)?;
    let m = scales_for(a.width() as usize, a.height() as usize);
    Ok(per_channel(a, b, m))
}

/// Plain SSIM (one scale) of two RGB images of the same size (mean of the three channels).
pub fn ssim(a: &RgbImage, b: &RgbImage) -> Result<f64, MetricError> {
    check(a, b)?;
    Ok(per_channel(a, b, 1))
}
