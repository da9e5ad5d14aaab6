//! Synthetic seed images (the MDF paper's experiment with non-natural seeds), as `[1, 3, H, W]`
//! tensors in [0, 1]:
//! - `pink-noise`: 1/f^2 power spectrum (amplitude ~ 1/f) noise, each colour channel independent,
//!   mapped to [0, 1] by mean +- 3 standard deviations (clamped);
//! - `contrast-rings`: concentric grey rings (a chirp: local frequency rising with the radius, so
//!   every scale has rings near its own resolution limit) whose contrast falls linearly to 0 at the
//!   centre;
//! - `pyramid-shuffle`: a source image's Laplacian pyramid (Lanczos-3 down, bicubic up, rho = 2)
//!   with the pixel positions of every level permuted independently, then collapsed again: the
//!   band-wise statistics of the source without its structure.
use anyhow::{Result, bail};
use tch::{Device, Kind, Tensor};

use super::rng::Rng;
use crate::resample::{Filter, imresize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedKind {
    PinkNoise,
    ContrastRings,
    PyramidShuffle,
}

pub fn pink_noise(h: i64, w: i64, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let white = rng
        .normal_tensor(&[1, 3, h, w], Device::Cpu)
        .to_kind(Kind::Double);
    let spec = white.fft_rfft2(None::<&[i64]>, [-2i64, -1], "backward");
    let fy = Tensor::fft_fftfreq(h, 1.0, (Kind::Double, Device::Cpu)).view([h, 1]);
    let fx = Tensor::fft_rfftfreq(w, 1.0, (Kind::Double, Device::Cpu)).view([1, w / 2 + 1]);
    let f = (fy.square() + fx.square()).sqrt();
    // amplitude 1/f (power 1/f^2); the DC term is removed.
    let amp = f.clamp_min(1.0 / (h.max(w) as f64)).reciprocal();
    let amp = amp.where_self(&f.gt(0.0), &amp.zeros_like());
    let img = (spec * amp).fft_irfft2([h, w].as_slice(), [-2i64, -1], "backward");
    let mean = img.mean_dim(&[2i64, 3][..], true, Kind::Double);
    let std = img.std_dim(&[2i64, 3][..], true, true);
    ((img - mean) / (std * 6.0) + 0.5)
        .clamp(0.0, 1.0)
        .to_kind(Kind::Float)
}

pub fn contrast_rings(h: i64, w: i64) -> Tensor {
    let opts = (Kind::Double, Device::Cpu);
    let y = Tensor::arange(h, opts).view([h, 1]) - (h as f64 - 1.0) / 2.0;
    let x = Tensor::arange(w, opts).view([1, w]) - (w as f64 - 1.0) / 2.0;
    let r = (y.square() + x.square()).sqrt();
    let rmax = ((h * h + w * w) as f64).sqrt() / 2.0;
    // phase pi r^2 / (2 rmax): local frequency r / (2 rmax) cycles/px, 0.5 (Nyquist) at rmax.
    let phase = r.square() * (std::f64::consts::PI / (2.0 * rmax));
    let contrast = &r / rmax;
    let v = phase.sin() * contrast * 0.5 + 0.5;
    v.view([1, 1, h, w])
        .expand([1, 3, h, w], false)
        .contiguous()
        .to_kind(Kind::Float)
}

/// Laplacian pyramid of `src` (`[1, 3, H, W]`, [0, 1]) with each level's pixels permuted.
pub fn pyramid_shuffle(src: &Tensor, levels: usize, seed: u64) -> Result<Tensor> {
    let s = src.size();
    if s.len() != 4 || s[0] != 1 || s[1] != 3 {
        bail!("pyramid-shuffle: expected a [1, 3, H, W] source, got {s:?}");
    }
    let mut rng = Rng::new(seed);
    let src = src.to_kind(Kind::Double);
    let mut gauss = vec![src.shallow_clone()];
    for _ in 1..levels {
        let p = gauss.last().expect("non-empty");
        let (h, w) = (p.size()[2], p.size()[3]);
        if h < 4 || w < 4 {
            break;
        }
        gauss.push(imresize(
            p,
            (h + 1) / 2,
            (w + 1) / 2,
            Filter::Lanczos3,
            true,
        )?);
    }
    let shuffle = |t: &Tensor, rng: &mut Rng| -> Tensor {
        let (h, w) = (t.size()[2], t.size()[3]);
        let perm = Tensor::from_slice(&rng.permutation((h * w) as usize));
        t.view([1, 3, h * w])
            .index_select(2, &perm)
            .view([1, 3, h, w])
    };
    let n = gauss.len();
    let mut out = shuffle(&gauss[n - 1], &mut rng);
    for l in (0..n - 1).rev() {
        let (h, w) = (gauss[l].size()[2], gauss[l].size()[3]);
        let up = imresize(&gauss[l + 1], h, w, Filter::Bicubic, true)?;
        let band = &gauss[l] - up;
        out = imresize(&out, h, w, Filter::Bicubic, true)? + shuffle(&band, &mut rng);
    }
    Ok(out.clamp(0.0, 1.0).to_kind(Kind::Float))
}
