//! Evaluation and bundle export on tiny runs: metrics and summaries present, export -> parse
//! (the app's schema, unknown fields rejected) -> every file present, decodable, right size;
//! the zip holds the same files.
use std::io::Read;
use std::path::Path;

use image::{Rgb, RgbImage};
use study_bundle::valid_key;
use tch::Device;
use trainer::bundle::{ExportOptions, MANIFEST, Manifest, export_bundle};
use trainer::eval::{EvalOptions, evaluate, summaries};
use trainer::image_io::{decode_rgb, save_rgb};
use trainer::train::{Config, FitOptions, fit};

fn make_images(dir: &Path, n: u32, side: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = RgbImage::from_fn(side, side + 8, |x, y| {
            Rgb([(x * 5 + i * 9) as u8, (y * 4) as u8, ((x ^ y) * 3) as u8])
        });
        save_rgb(&img, &dir.join(format!("pic {i}.png"))).unwrap();
    }
}

fn tiny_run(data: &Path, out: &Path, loss: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
name = "tiny-{loss}"
task = "denoise"
net = "dncnn"
loss = "{loss}"
[net_options]
features = 8
depth = 3
[data]
train = "{}"
val_ratio = 0.5
patch = 16
batch = 2
batches_per_epoch = 2
val_crop = 24
[optim]
optimizer = "adam"
lr = 1e-3
[run]
epochs = 1
out = "{}"
device = "cpu"
"#,
        data.display(),
        out.display()
    );
    fit(&Config::from_toml(&text).unwrap(), &FitOptions::default())
        .unwrap()
        .run_dir
}

#[test]
fn eval_then_bundle_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let (train, test) = (d.path().join("train"), d.path().join("test"));
    make_images(&train, 4, 24);
    make_images(&test, 3, 20);
    let runs = vec![
        tiny_run(&train, &d.path().join("runs"), "l2"),
        tiny_run(&train, &d.path().join("runs"), "l1"),
    ];
    let ev = d.path().join("eval");
    let r = evaluate(&EvalOptions {
        runs,
        test_dir: test.clone(),
        out: ev.clone(),
        sigma: Some(25.0),
        quality: None,
        prescale: 1.0,
        max_side: None,
        limit: None,
        lpips: Some(false),
        device: Device::Cpu,
        seed: 0,
    })
    .unwrap();
    assert_eq!(r.images.len(), 3);
    assert_eq!(r.degradation, "sigma25");
    let keys: Vec<&str> = r.models.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["l2", "l1"]);
    // noisy input at sigma 25: PSNR about 20.2 dB (clipping to [0, 1] raises it a little)
    let inp = r.images[0].metrics["input"]["psnr"];
    assert!((19.5..22.5).contains(&inp), "input PSNR {inp}");
    let s = summaries(&r);
    assert_eq!(s.len(), 3 * 3); // input, l2, l1 x psnr, psnr_y, ssim
    for f in [
        "summary.md",
        "summary.csv",
        "per_image.csv",
        "psnr.svg",
        "ssim.svg",
    ] {
        assert!(ev.join(f).exists(), "{f} missing");
    }

    let bundle = d.path().join("bundle");
    let zip = d.path().join("bundle.zip");
    let opts = ExportOptions {
        include_input: true,
        zip: Some(zip.clone()),
        ..Default::default()
    };
    export_bundle(&ev, &bundle, &opts).unwrap();
    // parse back with the app's schema (unknown fields are rejected)
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(bundle.join(MANIFEST)).unwrap()).unwrap();
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join(MANIFEST)).unwrap()).unwrap();
    let top: Vec<&str> = raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in &top {
        assert!(
            [
                "format",
                "name",
                "slug",
                "description",
                "question",
                "synthetic",
                "conditions",
                "scenes",
                "checks",
                "settings"
            ]
            .contains(k),
            "field {k} is unknown to the app"
        );
    }
    assert_eq!(m.format, "jndlab-bundle/1");
    assert!(m.description.contains("denoise"));
    let cond: Vec<&str> = m.conditions.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(cond, ["input", "l2", "l1"]);
    assert_eq!(m.scenes.len(), 3);
    let mut files = vec![MANIFEST.to_string()];
    for s in &m.scenes {
        assert!(valid_key(&s.key), "{}", s.key);
        let reference = decode_rgb(&std::fs::read(bundle.join(&s.reference)).unwrap()).unwrap();
        assert_eq!(reference.dimensions(), (20, 28));
        files.push(s.reference.clone());
        assert_eq!(s.images.len(), 3);
        for c in &m.conditions {
            let p = &s.images[&c.key];
            let img = decode_rgb(&std::fs::read(bundle.join(p)).unwrap()).unwrap();
            assert_eq!(img.dimensions(), reference.dimensions(), "{p}");
            assert!(s.metrics[&c.key]["psnr"].is_finite());
            files.push(p.clone());
        }
    }
    // the zip: one top-level folder with the same files, byte for byte
    let mut za = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    assert_eq!(za.len(), files.len());
    for f in &files {
        let mut e = za.by_name(&format!("bundle/{f}")).unwrap();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        assert_eq!(b, std::fs::read(bundle.join(f)).unwrap(), "{f}");
    }
    // no accidental overwrite; one condition is not a study
    assert!(export_bundle(&ev, &bundle, &opts).is_err());
    let e = export_bundle(&ev, &d.path().join("b2"), &ExportOptions::default());
    assert!(e.is_ok());
    let mut one = trainer::eval::read_report(&ev).unwrap();
    one.models.truncate(1);
    assert!(
        trainer::bundle::manifest(&one, &ExportOptions::default())
            .unwrap_err()
            .to_string()
            .contains("at least 2")
    );
}
