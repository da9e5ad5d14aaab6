//! Gaussian windows and depthwise 'valid' filtering shared by SSIM, MS-SSIM and MS-SSIM+L1.
use tch::{Device, Kind, Tensor};

/// Normalised 2-D Gaussian window `[C, 1, size, size]` (as piq: centred at `(size - 1) / 2`).
pub fn window(size: i64, sigma: f64, channels: i64, device: Device) -> Tensor {
    let c = (size - 1) as f64 / 2.0;
    let g: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let mut w2 = Vec::with_capacity((size * size) as usize);
    for a in &g {
        for b in &g {
            w2.push((a * b) as f32);
        }
    }
    let t = Tensor::from_slice(&w2).view([1, 1, size, size]);
    let t = &t / t.sum(Kind::Float);
    t.expand([channels, 1, size, size], false)
        .contiguous()
        .to_device(device)
}

/// Largest odd window `<= size` that fits `h x w`.
pub fn fitted_size(size: i64, h: i64, w: i64) -> i64 {
    let m = size.min(h).min(w);
    if m % 2 == 0 { m - 1 } else { m }.max(1)
}

/// Depthwise 'valid' filtering of `[N, C, H, W]` with a `[C, 1, k, k]` window.
pub fn filter(x: &Tensor, win: &Tensor) -> Tensor {
    let c = x.size()[1];
    x.conv2d(win, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
}
