//! Data pipeline: degradations measured, augmentation keeps pixels, loader reproducible.
use std::sync::Arc;

use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng as StdRng;
use tch::{Kind, Tensor};
use trainer::data::dataset::{ImageSet, list_images, split};
use trainer::data::loader::{BatchLoader, LoaderConfig, epoch_rng, make_batch};
use trainer::data::patches::{center_crop, dihedral, random_patch};
use trainer::data::{Degradation, Task};
use trainer::image_io::{encode_jpeg, jpeg_roundtrip, rgb_to_tensor, save_rgb};

fn textured(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 + y * 3) as u8,
            ((x * y) % 251) as u8,
            (128.0 + 100.0 * ((x as f64) * 0.3).sin()) as u8,
        ])
    })
}

fn std255(t: &Tensor) -> f64 {
    (t * 255.0).std(true).double_value(&[])
}

#[test]
fn noise_has_the_requested_sigma() {
    let img = RgbImage::from_pixel(64, 64, Rgb([128, 128, 128]));
    let mut rng = StdRng::seed_from_u64(1);
    for sigma in [15.0, 25.0, 50.0] {
        let (x, y) = Degradation::Noise {
            min: sigma,
            max: sigma,
        }
        .apply(&img, &mut rng)
        .unwrap();
        // 12288 samples: the standard error of the sample sigma is sigma / sqrt(2 n) < 0.4
        let s = std255(&(&x - &y));
        assert!((s - sigma).abs() < 1.5, "sigma {sigma}: measured {s}");
        assert!((x - &y).mean(Kind::Double).double_value(&[]).abs() < 0.01);
    }
    // U[0, 55] per patch: the sigmas vary and average about 27.5
    let d = Degradation::Noise {
        min: 0.0,
        max: 55.0,
    };
    let sig: Vec<f64> = (0..40)
        .map(|_| {
            let (x, y) = d.apply(&img, &mut rng).unwrap();
            std255(&(x - y))
        })
        .collect();
    let mean = sig.iter().sum::<f64>() / sig.len() as f64;
    let (lo, hi) = sig
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &s| (a.min(s), b.max(s)));
    assert!((mean - 27.5).abs() < 7.0, "mean sigma {mean}");
    assert!(lo < 15.0 && hi > 40.0 && hi < 57.0, "range {lo}..{hi}");
}

#[test]
fn bicubic_x4_sizes_and_values() {
    let img = textured(64, 48);
    let mut rng = StdRng::seed_from_u64(0);
    let (x, y) = Degradation::Bicubic { scale: 4 }
        .apply(&img, &mut rng)
        .unwrap();
    assert_eq!(x.size(), vec![3, 12, 16]);
    assert_eq!(y.size(), vec![3, 48, 64]);
    // 8-bit quantised LR
    let q = (&x * 255.0).round() / 255.0;
    assert!(x.allclose(&q, 0.0, 1e-6, false));
    // a constant image stays constant
    let flat = RgbImage::from_pixel(16, 16, Rgb([10, 200, 77]));
    let (x, _) = Degradation::Bicubic { scale: 4 }
        .apply(&flat, &mut rng)
        .unwrap();
    assert!((x.double_value(&[1, 2, 2]) * 255.0 - 200.0).abs() < 1e-4);
    assert!(
        Degradation::Bicubic { scale: 4 }
            .apply(&textured(30, 32), &mut rng)
            .is_err()
    );
}

#[test]
fn jpeg_uses_the_real_codec() {
    let img = textured(48, 40);
    let mut rng = StdRng::seed_from_u64(0);
    for q in [10u8, 7] {
        let (x, y) = Degradation::Jpeg { quality: q }
            .apply(&img, &mut rng)
            .unwrap();
        assert_eq!(x.size(), vec![3, 40, 48]);
        assert_eq!(y.size(), x.size());
        assert!((&x - &y).abs().mean(Kind::Double).double_value(&[]) > 2.0 / 255.0);
        // a real baseline JPEG stream with libjpeg's quality scaling of the standard tables (the DC
        // entries 16 and 17 scaled by 5000 / q percent): q10 -> 80 and 85, q7 -> 114 and 121
        let bytes = encode_jpeg(&img, q).unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8], "SOI");
        let want = if q == 10 { [80, 85] } else { [114, 121] };
        assert_eq!(dc_quantisers(&bytes), want, "quality {q}");
    }
    let err = |q| {
        let y = rgb_to_tensor(&jpeg_roundtrip(&img, q).unwrap(), tch::Device::Cpu);
        (y - rgb_to_tensor(&img, tch::Device::Cpu))
            .abs()
            .mean(Kind::Double)
            .double_value(&[])
    };
    assert!(
        err(90) < err(30) && err(30) < err(5),
        "lower quality, larger error"
    );
    assert_eq!(Task::parse("denoising").unwrap(), Task::Denoise);
    assert!(Task::parse("deblur").is_err());
}

#[test]
fn augmentation_keeps_the_pixel_multiset() {
    let img = textured(12, 9);
    let mut want: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    want.sort();
    let mut seen = Vec::new();
    for k in 0..8 {
        let a = dihedral(&img, k);
        let mut got: Vec<[u8; 3]> = a.pixels().map(|p| p.0).collect();
        got.sort();
        assert_eq!(got, want, "transform {k}");
        assert!(!seen.contains(&a), "transform {k} repeats another");
        seen.push(a);
    }
    assert_eq!(dihedral(&img, 0), img);
    assert_eq!(dihedral(&img, 1).dimensions(), (9, 12));
    let mut rng = StdRng::seed_from_u64(3);
    let p = random_patch(&img, 5, &mut rng);
    assert_eq!(p.dimensions(), (5, 5));
    assert_eq!(
        center_crop(&textured(50, 37), 4, None).dimensions(),
        (48, 36)
    );
}

#[test]
fn loader_shapes_and_reproducibility() {
    let images = Arc::new(vec![textured(40, 40), textured(48, 36)]);
    let c = LoaderConfig {
        patch: 32,
        batch: 3,
        batches_per_epoch: 4,
        augment: true,
        degradation: Degradation::Bicubic { scale: 4 },
        seed: 7,
        prefetch: 2,
    };
    let a: Vec<_> = BatchLoader::epoch(images.clone(), &c, 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(a.len(), 4);
    assert_eq!(a[0].input.size(), vec![3, 3, 8, 8]);
    assert_eq!(a[0].target.size(), vec![3, 3, 32, 32]);
    let again = make_batch(&images, &c, &mut epoch_rng(7, 0)).unwrap();
    assert!(again.target.equal(&a[0].target));
    let other = make_batch(&images, &c, &mut epoch_rng(7, 1)).unwrap();
    assert!(!other.target.equal(&a[0].target));
    // dropping a loader early stops its worker
    let mut l = BatchLoader::epoch(images.clone(), &c, 1).unwrap();
    assert!(l.next().is_some());
    drop(l);
    let bad = LoaderConfig { patch: 30, ..c };
    assert!(BatchLoader::epoch(images, &bad, 0).is_err());
}

#[test]
fn folders_split_and_decode() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..5 {
        save_rgb(&textured(20 + i, 16), &d.path().join(format!("im{i}.png"))).unwrap();
    }
    std::fs::write(d.path().join("notes.txt"), "x").unwrap();
    let paths = list_images(d.path()).unwrap();
    assert_eq!(paths.len(), 5);
    let (tr, va) = split(&paths, 0.2).unwrap();
    assert_eq!((tr.len(), va.len()), (4, 1));
    let set = ImageSet::load(&tr, 0.5, "train").unwrap();
    assert_eq!(set.images[0].dimensions(), (10, 8));
    assert!(
        set.check_min_side(9, "train")
            .unwrap_err()
            .to_string()
            .contains("im0")
    );
    let e = list_images(&d.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

/// The first (DC) entry of each quantisation table in a JPEG stream's DQT segments, in table order.
fn dc_quantisers(jpeg: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if marker == 0xDA {
            break; // start of scan: no tables after it
        }
        if marker == 0xDB {
            let mut k = i + 4;
            while k < i + 2 + len {
                let precision16 = jpeg[k] >> 4 == 1;
                out.push(if precision16 {
                    u16::from_be_bytes([jpeg[k + 1], jpeg[k + 2]])
                } else {
                    u16::from(jpeg[k + 1])
                });
                k += 1 + 64 * if precision16 { 2 } else { 1 };
            }
        }
        i += 2 + len;
    }
    out
}
