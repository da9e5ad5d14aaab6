//! Resampling as MATLAB's `imresize`: separable kernels (bicubic a = -0.5, Lanczos-2/3), the
//! kernel stretched by 1/scale when shrinking (antialiasing), symmetric (mirror) boundary
//! handling, the dimension with the stronger reduction first. Implemented as two dense
//! weight-matrix products in float64, so it is also differentiable and runs on any device.
use anyhow::{Result, bail};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bicubic,
    Lanczos2,
    Lanczos3,
}

impl Filter {
    fn width(self) -> f64 {
        match self {
            Self::Bicubic | Self::Lanczos2 => 4.0,
            Self::Lanczos3 => 6.0,
        }
    }
    fn eval(self, x: f64) -> f64 {
        let ax = x.abs();
        match self {
            Self::Bicubic => {
                let (a2, a3) = (ax * ax, ax * ax * ax);
                if ax <= 1.0 {
                    1.5 * a3 - 2.5 * a2 + 1.0
                } else if ax <= 2.0 {
                    -0.5 * a3 + 2.5 * a2 - 4.0 * ax + 2.0
                } else {
                    0.0
                }
            }
            Self::Lanczos2 | Self::Lanczos3 => {
                let n = if self == Self::Lanczos2 { 2.0 } else { 3.0 };
                if ax >= n {
                    return 0.0;
                }
                // MATLAB: (sin(pi x) sin(pi x / n) + eps) / (pi^2 x^2 / n + eps)
                let pi = std::f64::consts::PI;
                ((pi * x).sin() * (pi * x / n).sin() + f64::EPSILON)
                    / (pi * pi * x * x / n + f64::EPSILON)
            }
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bicubic" | "cubic" => Some(Self::Bicubic),
            "lanczos2" => Some(Self::Lanczos2),
            "lanczos" | "lanczos3" => Some(Self::Lanczos3),
            _ => None,
        }
    }
}

/// The `[out, in]` weight matrix of one dimension (MATLAB `contributions`).
pub fn weight_matrix(in_len: usize, out_len: usize, filter: Filter, antialias: bool) -> Vec<f64> {
    let scale = out_len as f64 / in_len as f64;
    let (kw, stretch) = if scale < 1.0 && antialias {
        (filter.width() / scale, scale)
    } else {
        (filter.width(), 1.0)
    };
    let p = kw.ceil() as i64 + 2;
    let mut m = vec![0.0; out_len * in_len];
    for o in 0..out_len {
        let u = (o + 1) as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
        let left = (u - kw / 2.0).floor() as i64;
        let mut ws = Vec::with_capacity(p as usize);
        for j in 0..p {
            let idx = left + j;
            ws.push((idx, stretch * filter.eval(stretch * (u - idx as f64))));
        }
        let sum: f64 = ws.iter().map(|(_, w)| w).sum();
        for (idx, w) in ws {
            // 1-based index, mirrored: aux = [1..n, n..1]
            let period = 2 * in_len as i64;
            let k = (idx - 1).rem_euclid(period);
            let src = if k < in_len as i64 { k } else { period - 1 - k };
            m[o * in_len + src as usize] += w / sum;
        }
    }
    m
}

/// Resizes `[N, C, H, W]` to `out_h x out_w` (float64 internally, returns the input's kind).
pub fn imresize(
    x: &Tensor,
    out_h: i64,
    out_w: i64,
    filter: Filter,
    antialias: bool,
) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 {
        bail!("imresize: expected [N, C, H, W], got {s:?}");
    }
    if out_h < 1 || out_w < 1 {
        bail!("imresize: output size {out_h}x{out_w} must be positive");
    }
    let (h, w) = (s[2], s[3]);
    let dev = x.device();
    let mat = |i: i64, o: i64| {
        Tensor::from_slice(&weight_matrix(i as usize, o as usize, filter, antialias))
            .view([o, i])
            .to_device(dev)
    };
    let kind = x.kind();
    let xd = x.to_kind(Kind::Double);
    let along_h = |t: &Tensor| mat(h, out_h).matmul(t);
    let along_w = |t: &Tensor| t.matmul(&mat(w, out_w).transpose(0, 1));
    let (sh, sw) = (out_h as f64 / h as f64, out_w as f64 / w as f64);
    let y = if sw < sh {
        along_h(&along_w(&xd))
    } else {
        along_w(&along_h(&xd))
    };
    Ok(y.to_kind(kind))
}

/// Resizes by a scale factor, output size `ceil(scale * size)` as MATLAB.
pub fn imresize_scale(x: &Tensor, scale: f64, filter: Filter) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 || scale <= 0.0 {
        bail!("imresize_scale: expected [N, C, H, W] and a positive scale");
    }
    let oh = (s[2] as f64 * scale - 1e-9).ceil() as i64;
    let ow = (s[3] as f64 * scale - 1e-9).ceil() as i64;
    imresize(x, oh, ow, filter, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn rows_sum_to_one_and_identity() {
        for f in [Filter::Bicubic, Filter::Lanczos2, Filter::Lanczos3] {
            for (i, o) in [(10, 3), (7, 7), (5, 17), (96, 24)] {
                let m = weight_matrix(i, o, f, true);
                for r in 0..o {
                    let s: f64 = m[r * i..(r + 1) * i].iter().sum();
                    assert!((s - 1.0).abs() < 1e-12);
                }
            }
            let m = weight_matrix(6, 6, f, true);
            for r in 0..6 {
                for c in 0..6 {
                    assert!(
                        (m[r * 6 + c] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-9,
                        "{f:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn linear_ramp_is_reproduced_inside() {
        // Cubic convolution reproduces linear functions away from the borders.
        let n = 64;
        let x = Tensor::arange(n, (Kind::Double, Device::Cpu))
            .view([1, 1, 1, n])
            .expand([1, 1, 4, n], false);
        let y = imresize(&x, 4, n / 2, Filter::Bicubic, true).unwrap();
        for o in 4..(n / 2 - 4) {
            let expect = 2.0 * (o + 1) as f64 - 1.5; // u - 1 in 0-based coordinates
            assert!((y.double_value(&[0, 0, 0, o]) - expect).abs() < 1e-9);
        }
    }
}
