//! The simulated observer's parts without a server: the pure-Rust MS-SSIM / SSIM and the decision rule.

mod common;

use app::observer::metric::{self, MetricError};
use app::observer::model::{self, ObserverModel, Seen};
use image::{Rgb, RgbImage};

/// A textured test image (smooth gradients, rings and a checker pattern in every channel).
fn texture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f64, y as f64);
        let r = ((fx - w as f64 / 2.0).hypot(fy - h as f64 / 2.0) / 3.0).sin();
        let checker = if (x / 8 + y / 8) % 2 == 0 { 40.0 } else { 0.0 };
        Rgb([
            (128.0 + 80.0 * r + checker).clamp(0.0, 255.0) as u8,
            (fx * 255.0 / w as f64) as u8,
            (60.0 + fy * 150.0 / h as f64 - checker).clamp(0.0, 255.0) as u8,
        ])
    })
}

/// `img` plus Gaussian noise of `sigma` (8-bit units) from the fixed draws `z` (the same draws for every
/// sigma, so only the amount changes).
fn noisy(img: &RgbImage, z: &[f64], sigma: f64) -> RgbImage {
    let mut out = img.clone();
    for (i, p) in out.pixels_mut().enumerate() {
        for c in 0..3 {
            p.0[c] = (p.0[c] as f64 + sigma * z[3 * i + c])
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn draws(n: usize, seed: u64) -> Vec<f64> {
    common::normals(n, seed)
}

#[test]
fn identical_images_score_one() {
    for (w, h) in [(192, 144), (200, 180), (16, 12), (7, 5)] {
        let a = texture(w, h);
        assert!((metric::ms_ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        assert!((metric::ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn constant_images_give_the_luminance_formula() {
    let c1 = (metric::K1 * 1.0).powi(2);
    for (va, vb) in [(10u8, 200u8), (128, 128), (0, 255), (90, 100)] {
        let (a, b) = (va as f64 / 255.0, vb as f64 / 255.0);
        let want = (2.0 * a * b + c1) / (a * a + b * b + c1);
        let ia = RgbImage::from_pixel(40, 30, Rgb([va; 3]));
        let ib = RgbImage::from_pixel(40, 30, Rgb([vb; 3]));
        let got = metric::ssim(&ia, &ib).unwrap();
        assert!((got - want).abs() < 1e-10, "{va},{vb}: {got} vs {want}");
        // MS-SSIM: contrast-structure is 1 at every scale, so only the coarsest luminance remains, raised
        // to that scale's (renormalised) weight; 40x30 has 2 scales (30, 15 >= 11; 7 < 11).
        let m = metric::scales_for(40, 30);
        assert_eq!(m, 2);
        let w = metric::weights(m)[m - 1];
        let ms = metric::ms_ssim(&ia, &ib).unwrap();
        assert!(
            (ms - want.powf(w)).abs() < 1e-10,
            "{ms} vs {}",
            want.powf(w)
        );
    }
}

#[test]
fn scales_fit_the_image_and_weights_are_renormalised() {
    assert_eq!(metric::scales_for(176, 176), 5);
    assert_eq!(metric::scales_for(1000, 175), 4);
    assert_eq!(metric::scales_for(192, 144), 4);
    assert_eq!(metric::scales_for(16, 12), 1);
    assert_eq!(metric::scales_for(3, 3), 1);
    for m in 1..=4 {
        let w = metric::weights(m);
        assert_eq!(w.len(), m);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // the ratios of the standard weights are kept
        assert!((w[0] / metric::WEIGHTS[0] - w[m - 1] / metric::WEIGHTS[m - 1]).abs() < 1e-12);
    }
    assert_eq!(metric::weights(5), metric::WEIGHTS.to_vec());
}

#[test]
fn ms_ssim_falls_monotonically_with_noise() {
    for (w, h) in [(192, 144), (180, 200)] {
        let img = texture(w, h);
        let z = draws((w * h * 3) as usize, 42);
        let mut last_ms = 1.0;
        let mut last_ss = 1.0;
        for sigma in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0] {
            let n = noisy(&img, &z, sigma);
            let ms = metric::ms_ssim(&img, &n).unwrap();
            let ss = metric::ssim(&img, &n).unwrap();
            assert!(ms < last_ms, "{w}x{h} sigma {sigma}: {ms} !< {last_ms}");
            assert!(ss < last_ss, "{w}x{h} sigma {sigma}: {ss} !< {last_ss}");
            assert!(ms > 0.0 && ss > 0.0);
            (last_ms, last_ss) = (ms, ss);
        }
    }
}

#[test]
fn metric_is_symmetric() {
    let a = texture(192, 144);
    let b = noisy(&a, &draws(192 * 144 * 3, 5), 12.0);
    let c = RgbImage::from_fn(192, 144, |x, y| *a.get_pixel((x + 3) % 192, y));
    for other in [&b, &c] {
        let (x, y) = (
            metric::ms_ssim(&a, other).unwrap(),
            metric::ms_ssim(other, &a).unwrap(),
        );
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        assert!(x < 1.0);
        let (x, y) = (
            metric::ssim(&a, other).unwrap(),
            metric::ssim(other, &a).unwrap(),
        );
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
}

#[test]
fn size_mismatch_is_an_error() {
    let a = texture(192, 144);
    let b = texture(144, 192);
    assert_eq!(
        metric::ms_ssim(&a, &b),
        Err(MetricError::SizeMismatch(192, 144, 144, 192))
    );
    assert!(metric::ssim(&a, &texture(192, 143)).is_err());
    let empty = RgbImage::new(0, 0);
    assert_eq!(metric::ssim(&empty, &empty), Err(MetricError::Empty));
}

fn seen(ms_ssim: f64) -> Seen {
    Seen {
        ms_ssim,
        identical: false,
    }
}

#[test]
fn one_jnd_is_preferred_75_percent() {
    let m = ObserverModel {
        jnd_step: 0.02,
        check_fail_rate: 0.1,
    };
    assert!((m.quality(0.98) - -1.0).abs() < 1e-12);
    assert!((m.p_left(seen(0.98), seen(0.96)) - 0.75).abs() < 1e-3);
    assert!((m.p_left(seen(0.96), seen(0.98)) - 0.25).abs() < 1e-3);
    assert!((m.p_left(seen(0.9), seen(0.9)) - 0.5).abs() < 1e-12);
    // the frequency over many decisions
    let mut s = model::stream(9, 0);
    let n = 20_000;
    let k = (0..n)
        .filter(|_| m.decide(seen(0.98), seen(0.96), &mut s).left)
        .count();
    let f = k as f64 / n as f64;
    // 4 binomial standard deviations
    assert!(
        (f - 0.75).abs() < 4.0 * (0.75f64 * 0.25 / n as f64).sqrt(),
        "{f}"
    );
}

#[test]
fn obvious_trials_fail_at_the_check_fail_rate() {
    let m = ObserverModel {
        jnd_step: 0.01,
        check_fail_rate: 0.2,
    };
    let good = Seen {
        ms_ssim: 1.0,
        identical: true,
    };
    let bad = seen(0.3);
    let mut s = model::stream(3, 7);
    let n = 20_000;
    let mut wrong = 0;
    for i in 0..n {
        let (l, r) = if i % 2 == 0 { (good, bad) } else { (bad, good) };
        let d = m.decide(l, r, &mut s);
        assert!(d.obvious);
        assert_eq!(d.obvious_wrong, d.left != l.identical);
        wrong += usize::from(d.obvious_wrong);
    }
    let f = wrong as f64 / n as f64;
    assert!(
        (f - 0.2).abs() < 4.0 * (0.2f64 * 0.8 / n as f64).sqrt(),
        "{f}"
    );
    // an ordinary pair is never obvious; response times are plausible
    let d = m.decide(seen(0.95), seen(0.9), &mut s);
    assert!(!d.obvious && !d.obvious_wrong);
    assert!((300..10_000).contains(&d.rt_ms));
}

#[test]
fn streams_are_per_observer_and_deterministic() {
    let m = ObserverModel::default();
    let run = |seed: u64, i: usize| {
        let mut s = model::stream(seed, i);
        (0..64)
            .map(|_| m.decide(seen(0.97), seen(0.975), &mut s).left)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1, 5), run(1, 5));
    assert_ne!(run(1, 5), run(1, 6));
    assert_ne!(run(1, 5), run(2, 5));
    assert!(
        ObserverModel {
            jnd_step: 0.0,
            check_fail_rate: 0.1
        }
        .validate()
        .is_err()
    );
    assert!(
        ObserverModel {
            jnd_step: 0.01,
            check_fail_rate: 1.5
        }
        .validate()
        .is_err()
    );
}
