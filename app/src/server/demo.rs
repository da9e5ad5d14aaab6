//! The SYNTHETIC demo bundle: procedurally generated scenes and distortions (Gaussian blur, Gaussian noise,
//! JPEG), so the app can be tried without real restorations. Regenerate `assets/demo/` with
//! `jndlab-app demo-bundle assets/demo`. Deterministic (fixed seeds).

use std::path::Path;

use anyhow::Context;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const WIDTH: u32 = 192;
pub const HEIGHT: u32 = 144;

fn rings() -> RgbImage {
    RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let (cx, cy) = (
            x as f64 - WIDTH as f64 / 2.0,
            y as f64 - HEIGHT as f64 / 2.0,
        );
        let r2 = cx * cx + cy * cy;
        let v = 0.5 + 0.5 * (r2 / 180.0).cos();
        let w = 0.5 + 0.5 * (x as f64 / 9.0).sin();
        Rgb([
            (255.0 * v) as u8,
            (200.0 * w + 40.0 * v) as u8,
            (255.0 * (1.0 - v)) as u8,
        ])
    })
}

fn shapes() -> RgbImage {
    let mut img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        Rgb([(60 + x / 2) as u8, (90 + y / 2) as u8, 170])
    });
    let circles = [
        (50.0, 50.0, 30.0, [230, 200, 40]),
        (130.0, 90.0, 38.0, [200, 40, 60]),
        (150.0, 30.0, 16.0, [30, 160, 80]),
    ];
    for (x, y, p) in img.enumerate_pixels_mut() {
        for &(cx, cy, r, c) in &circles {
            let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
            if d < r {
                *p = Rgb(c);
            }
        }
        if (20..70).contains(&x) && (100..130).contains(&y) && (x / 3 + y / 3) % 2 == 0 {
            *p = Rgb([250, 250, 250]);
        }
        if (80..180).contains(&x) && (125..128).contains(&y) {
            *p = Rgb([10, 10, 10]);
        }
    }
    img
}

fn texture() -> RgbImage {
    // Value noise: a few octaves of bilinearly interpolated random lattices.
    let mut rng = StdRng::seed_from_u64(7);
    let mut acc = vec![0.0f64; (WIDTH * HEIGHT) as usize];
    let mut amp = 1.0;
    for cell in [32u32, 16, 8, 4] {
        let gw = WIDTH / cell + 2;
        let gh = HEIGHT / cell + 2;
        let grid: Vec<f64> = (0..gw * gh).map(|_| rng.r#gen::<f64>()).collect();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let (fx, fy) = (x as f64 / cell as f64, y as f64 / cell as f64);
                let (ix, iy) = (fx as u32, fy as u32);
                let (tx, ty) = (fx - ix as f64, fy - iy as f64);
                let g = |i: u32, j: u32| grid[(j * gw + i) as usize];
                let v = g(ix, iy) * (1.0 - tx) * (1.0 - ty)
                    + g(ix + 1, iy) * tx * (1.0 - ty)
                    + g(ix, iy + 1) * (1.0 - tx) * ty
                    + g(ix + 1, iy + 1) * tx * ty;
                acc[(y * WIDTH + x) as usize] += amp * v;
            }
        }
        amp *= 0.55;
    }
    let max = acc.iter().cloned().fold(f64::MIN, f64::max);
    let min = acc.iter().cloned().fold(f64::MAX, f64::min);
    RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let v = (acc[(y * WIDTH + x) as usize] - min) / (max - min);
        Rgb([
            (120.0 + 130.0 * v) as u8,
            (70.0 + 150.0 * v) as u8,
            (40.0 + 60.0 * v) as u8,
        ])
    })
}

fn add_noise(img: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            // Box-Muller
            let (u1, u2): (f64, f64) = (rng.r#gen::<f64>().max(1e-12), rng.r#gen());
            let n = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            *c = (*c as f64 + sigma * n).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn save_png(img: &RgbImage, path: &Path) -> anyhow::Result<()> {
    img.save_with_format(path, ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the synthetic demo bundle (bundle.json + images) into `out`.
pub fn write_demo_bundle(out: &Path) -> anyhow::Result<()> {
    let conditions = [
        ("blur-1", "Gaussian blur, sigma 1.0 px"),
        ("blur-2", "Gaussian blur, sigma 2.0 px"),
        ("noise-8", "Gaussian noise, sigma 8/255"),
        ("jpeg-30", "JPEG, quality 30"),
    ];
    let scenes: [(&str, RgbImage); 3] = [
        ("rings", rings()),
        ("shapes", shapes()),
        ("texture", texture()),
    ];
    let mut scene_json = Vec::new();
    for (si, (key, reference)) in scenes.iter().enumerate() {
        let dir = out.join(key);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        save_png(reference, &dir.join("reference.png"))?;
        let mut images = serde_json::Map::new();
        let mut metrics = serde_json::Map::new();
        for (ck, _) in conditions {
            let (file, distorted) = match ck {
                "blur-1" => ("blur-1.png", image::imageops::blur(reference, 1.0)),
                "blur-2" => ("blur-2.png", image::imageops::blur(reference, 2.0)),
                "noise-8" => ("noise-8.png", add_noise(reference, 8.0, 100 + si as u64)),
                _ => {
                    let path = dir.join("jpeg-30.jpg");
                    let mut bytes = Vec::new();
                    DynamicImage::ImageRgb8(reference.clone()).write_with_encoder(
                        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 30),
                    )?;
                    std::fs::write(&path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    let decoded = image::load_from_memory(&bytes)?.to_rgb8();
                    images.insert(ck.into(), json!(format!("{key}/jpeg-30.jpg")));
                    metrics.insert(
                        ck.into(),
                        json!({ "psnr": (psnr(reference, &decoded) * 100.0).round() / 100.0 }),
                    );
                    continue;
                }
            };
            save_png(&distorted, &dir.join(file))?;
            images.insert(ck.into(), json!(format!("{key}/{file}")));
            metrics.insert(
                ck.into(),
                json!({ "psnr": (psnr(reference, &distorted) * 100.0).round() / 100.0 }),
            );
        }
        scene_json.push(json!({
            "key": key,
            "reference": format!("{key}/reference.png"),
            "images": images,
            "metrics": metrics,
        }));
    }
    let manifest = json!({
        "format": super::bundle::FORMAT,
        "name": "Demo study (SYNTHETIC images and distortions)",
        "slug": "demo",
        "description": "SYNTHETIC demo bundle: three procedurally generated 192x144 scenes, each distorted by Gaussian blur (two levels), Gaussian noise and JPEG. Not research data; generated by `jndlab-app demo-bundle assets/demo`.",
        "synthetic": true,
        "conditions": conditions.iter().map(|(k, l)| json!({"key": k, "label": l})).collect::<Vec<_>>(),
        "scenes": scene_json,
    });
    std::fs::write(
        out.join("bundle.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )
    .with_context(|| format!("writing {}", out.join("bundle.json").display()))?;
    Ok(())
}
