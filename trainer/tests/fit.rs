//! Training on tiny data (CPU): a small DnCNN overfits, resume equals an uninterrupted run,
//! SISR runs end to end, recipes are validated.
use std::path::Path;

use image::{Rgb, RgbImage};
use tch::Tensor;
use trainer::data::Task;
use trainer::image_io::save_rgb;
use trainer::nets::NetKind;
use trainer::train::config::OptimizerKind;
use trainer::train::fit::{CHECKPOINT, METRICS};
use trainer::train::{Config, FitOptions, fit};

/// Piecewise-smooth images: gradients with a few flat rectangles (easy to denoise).
fn make_images(dir: &Path, n: u32, side: u32) {
    for i in 0..n {
        let img = RgbImage::from_fn(side, side, |x, y| {
            let inside = (x / 12 + y / 16 + i) % 3 == 0;
            let g = (x * 3 + y * 2 + i * 20) as f64;
            if inside {
                Rgb([200, 60 + 10 * i as u8, 90])
            } else {
                Rgb([(g * 0.8) as u8, (255.0 - g) as u8, (60.0 + 0.5 * g) as u8])
            }
        });
        save_rgb(&img, &dir.join(format!("img{i}.png"))).unwrap();
    }
}

fn recipe(data: &Path, out: &Path, name: &str) -> Config {
    let text = format!(
        r#"
name = "{name}"
task = "denoise"
net = "dncnn"
loss = "l2"
[net_options]
features = 16
depth = 4
[data]
train = "{}"
val_ratio = 0.34
patch = 24
batch = 8
batches_per_epoch = 8
val_crop = 40
[degrade]
sigma_min = 25.0
sigma_max = 25.0
val_sigma = 25.0
[optim]
optimizer = "adam"
lr = 2e-3
[run]
epochs = 6
seed = 3
out = "{}"
device = "cpu"
"#,
        data.display(),
        out.display()
    );
    Config::from_toml(&text).unwrap()
}

#[test]
fn small_dncnn_overfits_and_beats_the_noisy_input() {
    let d = tempfile::tempdir().unwrap();
    make_images(d.path(), 6, 48);
    let out = d.path().join("runs");
    let mut c = recipe(d.path(), &out, "overfit");
    c.data.batches_per_epoch = 25;
    let s = fit(&c, &FitOptions::default()).unwrap();
    let r = &s.state.records;
    assert_eq!(r.len(), 6);
    assert!(
        r[5].train_loss < 0.5 * r[0].train_loss,
        "training loss {} -> {}",
        r[0].train_loss,
        r[5].train_loss
    );
    let best = s.best().unwrap();
    assert!(
        best.val_psnr > best.input_psnr + 2.0,
        "restored {} dB vs noisy input {} dB",
        best.val_psnr,
        best.input_psnr
    );
    let csv = std::fs::read_to_string(s.run_dir.join(METRICS)).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(s.run_dir.join("best.safetensors").exists());
    // an existing run is not overwritten by accident
    let e = fit(&c, &FitOptions::default()).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let d = tempfile::tempdir().unwrap();
    make_images(d.path(), 4, 32);
    let out = d.path().join("runs");
    let mut c = recipe(d.path(), &out, "full");
    c.net_options.features = Some(8);
    c.net_options.depth = Some(3);
    c.data.batches_per_epoch = 3;
    c.data.batch = 4;
    c.run.epochs = 3;
    c.degrade.sigma_min = 0.0;
    c.degrade.sigma_max = 55.0;
    c.optim.optimizer = OptimizerKind::Sgd;
    c.optim.nesterov = true;
    c.optim.weight_decay = 1e-4;
    c.optim.lr = 0.05;
    c.optim.lr_end = Some(1e-3);
    let full = fit(&c, &FitOptions::default()).unwrap();
    let mut c2 = c.clone();
    c2.name = "interrupted".into();
    let part = fit(
        &c2,
        &FitOptions {
            resume: false,
            stop_after: Some(1),
        },
    )
    .unwrap();
    assert_eq!(part.state.epochs_done, 1);
    let resumed = fit(
        &c2,
        &FitOptions {
            resume: true,
            stop_after: None,
        },
    )
    .unwrap();
    assert_eq!(resumed.state.records.len(), 3);
    let read = |p: &Path| {
        let mut v = Tensor::read_safetensors(p.join(CHECKPOINT)).unwrap();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let (a, b) = (read(&full.run_dir), read(&resumed.run_dir));
    assert_eq!(a.len(), b.len());
    for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(ta.equal(tb), "{ka} differs after resume");
    }
    for (x, y) in full.state.records.iter().zip(&resumed.state.records) {
        // (the resumed run's earlier records went through JSON: last-digit rounding)
        assert!((x.train_loss - y.train_loss).abs() <= 1e-12 * x.train_loss);
        assert!((x.val_loss - y.val_loss).abs() <= 1e-12 * x.val_loss);
    }
}

#[test]
fn sisr_runs_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    make_images(d.path(), 3, 40);
    let out = d.path().join("runs");
    let mut c = recipe(d.path(), &out, "sisr");
    c.task = Task::Sisr;
    c.net = NetKind::Edsr;
    c.loss = "l1".into();
    c.net_options.features = Some(8);
    c.net_options.depth = Some(1);
    c.data.patch = 16;
    c.data.batches_per_epoch = 2;
    c.run.epochs = 1;
    let s = fit(&c, &FitOptions::default()).unwrap();
    let r = &s.state.records[0];
    assert!(r.val_loss.is_finite() && r.input_psnr > 10.0, "{r:?}");
}

#[test]
fn recipes_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let c = recipe(d.path(), d.path(), "x");
    let bad = |f: &dyn Fn(&mut Config)| {
        let mut b = c.clone();
        f(&mut b);
        b.validate().unwrap_err().to_string()
    };
    assert!(bad(&|c| c.net = NetKind::Edsr).contains("does not fit task"));
    assert!(bad(&|c| c.degrade.sigma_max = 10.0).contains("sigma"));
    let text = c
        .to_toml()
        .unwrap()
        .replace("[optim]", "[optim]\nlearning_rate = 1.0");
    let e = format!("{:#}", Config::from_toml(&text).unwrap_err());
    assert!(e.contains("learning_rate"), "{e}");
    // a closed set of values: anything else is refused with the value and the choices named
    let toml = c.to_toml().unwrap();
    for (field, from, to) in [
        (
            "optimizer",
            "optimizer = \"adam\"",
            "optimizer = \"rmsprop\"",
        ),
        ("task", "task = \"denoise\"", "task = \"deblur\""),
        ("net", "net = \"dncnn\"", "net = \"unet\""),
    ] {
        assert!(toml.contains(from), "{toml}");
        let e = format!(
            "{:#}",
            Config::from_toml(&toml.replace(from, to)).unwrap_err()
        );
        let bad = to.split('"').nth(1).unwrap();
        assert!(e.contains(bad) && e.contains("expected"), "{field}: {e}");
    }
    // exponential schedule hits both ends
    let mut e = c.clone();
    e.optim.lr = 0.1;
    e.optim.lr_end = Some(1e-4);
    e.run.epochs = 50;
    assert!((e.lr_at(0) - 0.1).abs() < 1e-12 && (e.lr_at(49) - 1e-4).abs() < 1e-12);
}

#[test]
fn shipped_recipes_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let c = Config::load(&p, &["optim.lr=0.5".into()])
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            assert_eq!(c.optim.lr, 0.5);
            n += 1;
        }
    }
    assert!(n >= 4);
    let p = dir.join("dncnn_denoise.toml");
    let c = Config::load(&p, &[]).unwrap();
    // the paper's denoising recipe
    assert_eq!(
        (c.optim.optimizer, c.optim.nesterov, c.optim.weight_decay),
        (OptimizerKind::Sgd, true, 1e-4)
    );
    assert_eq!((c.degrade.sigma_min, c.degrade.sigma_max), (0.0, 55.0));
    assert!((c.lr_at(c.run.epochs - 1) - 1e-4).abs() < 1e-12);
    let e = format!(
        "{:#}",
        Config::load(&p, &["optim.bogus=1".into()]).unwrap_err()
    );
    assert!(
        e.contains("bogus") && e.contains("dncnn_denoise.toml"),
        "{e}"
    );
}
