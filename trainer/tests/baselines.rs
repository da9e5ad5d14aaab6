//! Baseline losses against independent implementations (tests/data/baseline_reference.json, made by
//! tests/data/make_reference_values.py with piq 0.8 and lpips 0.1.4), plus their defining properties.
mod common;

use serde_json::Value;
use tch::{Device, Kind, Tensor};
use trainer::image_io::load_tensor;
use trainer::losses::lpips::{Backbone, LpipsLoss};
use trainer::losses::vgg::{VggLoss, default_weights};
use trainer::losses::{Loss, LossOptions, build_loss, ms_ssim, ms_ssim_l1, ssim};

fn reference() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/baseline_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The deterministic distortion of make_reference_values.py: ref + 0.1 * ((7h + 13w + 5c) % 11 - 5) / 5, 8-bit.
fn patterned(r: &Tensor) -> Tensor {
    let s = r.size();
    let opts = (Kind::Int64, Device::Cpu);
    let c = Tensor::arange(s[1], opts).view([1, s[1], 1, 1]);
    let h = Tensor::arange(s[2], opts).view([1, 1, s[2], 1]);
    let w = Tensor::arange(s[3], opts).view([1, 1, 1, s[3]]);
    let k = (h * 7 + w * 13 + c * 5).remainder(11).to_kind(Kind::Float);
    let d = (r + ((k - 5.0) * 0.1) / 5.0).clamp(0.0, 1.0);
    (d * 255.0).round() / 255.0
}

fn pairs() -> Vec<(Value, Tensor, Tensor)> {
    let dir = common::mdf_dir();
    reference()["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let r = load_tensor(&dir.join(p["reference"].as_str().unwrap()), Device::Cpu).unwrap();
            let d = load_tensor(&dir.join(p["distorted"].as_str().unwrap()), Device::Cpu).unwrap();
            (p.clone(), r, d)
        })
        .collect()
}

fn close(tag: &str, ours: f64, theirs: f64, tol: f64) {
    assert!(
        common::rel(ours, theirs) < tol,
        "{tag}: ours {ours} vs reference {theirs}"
    );
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn ssim_matches_piq() {
    let ps = pairs();
    for (p, r, d) in ps {
        let v = ssim::ssim(&d, &r).unwrap().double_value(&[]);
        close(
            &format!("ssim {}", p["distorted"]),
            v,
            p["ssim"].as_f64().unwrap(),
            1e-5,
        );
    }
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn ms_ssim_matches_piq_on_a_large_image() {
    let dir = common::mdf_dir();
    let r = load_tensor(&dir.join("i10.png"), Device::Cpu).unwrap();
    let d = patterned(&r);
    let e = &reference()["ms_ssim_large"][0];
    close(
        "ms-ssim i10",
        ms_ssim::ms_ssim(&d, &r).unwrap().double_value(&[]),
        e["ms_ssim"].as_f64().unwrap(),
        1e-5,
    );
    close(
        "ssim i10",
        ssim::ssim(&d, &r).unwrap().double_value(&[]),
        e["ssim"].as_f64().unwrap(),
        1e-5,
    );
}

#[test]
#[ignore = "needs ../shared/reference/mdf and the fetched weights (`jndlab-train fetch-weights`)"]
fn vgg_and_lpips_match_reference_implementations() {
    let ps = pairs();
    common::fetched_weights();
    let vgg = VggLoss::new(&default_weights(), &["relu2_2".to_string()], Device::Cpu).unwrap();
    let alex = LpipsLoss::with_defaults(Backbone::Alex, Device::Cpu).unwrap();
    let lv = LpipsLoss::with_defaults(Backbone::Vgg, Device::Cpu).unwrap();
    for (p, r, d) in ps {
        let tag = p["distorted"].to_string();
        close(
            &format!("vgg {tag}"),
            vgg.forward(&d, &r).unwrap().double_value(&[]),
            p["vgg_relu2_2_mse"].as_f64().unwrap(),
            1e-4,
        );
        close(
            &format!("lpips alex {tag}"),
            alex.forward(&d, &r).unwrap().double_value(&[]),
            p["lpips_alex"].as_f64().unwrap(),
            1e-4,
        );
        close(
            &format!("lpips vgg {tag}"),
            lv.forward(&d, &r).unwrap().double_value(&[]),
            p["lpips_vgg"].as_f64().unwrap(),
            1e-4,
        );
    }
}

#[test]
fn properties_of_pixel_losses() {
    tch::manual_seed(3);
    let x = Tensor::rand([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let y = (&x + Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu)) * 0.05).clamp(0.0, 1.0);
    let o = LossOptions::new(Device::Cpu);
    for spec in ["l1", "l2", "ssim", "ms-ssim", "ms-ssim+l1"] {
        let l = build_loss(spec, &o).unwrap();
        let same = l.forward(&x, &x).unwrap().double_value(&[]);
        assert!(same.abs() < 1e-6, "{spec}: loss(x, x) = {same}");
        let v = l.forward(&y, &x).unwrap().double_value(&[]);
        assert!(v > 1e-4, "{spec}: {v}");
        // gradients flow to the prediction
        let p = y.copy().set_requires_grad(true);
        l.forward(&p, &x).unwrap().backward();
        assert!(
            p.grad().abs().sum(Kind::Double).double_value(&[]) > 0.0,
            "{spec}: no gradient"
        );
    }
    // L2 is the MSE; MS-SSIM+L1 is 0.84 (1 - MS-SSIM) + 0.16 G-weighted L1
    let l2 = build_loss("mse", &o)
        .unwrap()
        .forward(&y, &x)
        .unwrap()
        .double_value(&[]);
    let mse = (&y - &x).square().mean(Kind::Double).double_value(&[]);
    assert!(common::rel(l2, mse) < 1e-6);
    let mix = ms_ssim_l1::ms_ssim_l1(&y, &x).unwrap().double_value(&[]);
    let ms = ms_ssim::ms_ssim(&y, &x).unwrap().double_value(&[]);
    let gl1 = ms_ssim_l1::gaussian_l1(&y, &x).unwrap().double_value(&[]);
    assert!(common::rel(mix, 0.84 * (1.0 - ms) + 0.16 * gl1) < 1e-6);
    // a uniform error gives Gaussian-weighted L1 = that error
    let c = Tensor::full([1, 3, 40, 40], 0.25, (Kind::Float, Device::Cpu));
    let g = ms_ssim_l1::gaussian_l1(&(&c + 0.1), &c)
        .unwrap()
        .double_value(&[]);
    assert!((g - 0.1).abs() < 1e-6, "{g}");
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn spec_strings_build_weighted_sums() {
    let _ = common::mdf_dir();
    let o = LossOptions::new(Device::Cpu);
    tch::manual_seed(4);
    let x = Tensor::rand([1, 3, 48, 48], (Kind::Float, Device::Cpu));
    let y = Tensor::rand([1, 3, 48, 48], (Kind::Float, Device::Cpu));
    let v = |s: &str| {
        build_loss(s, &o)
            .unwrap()
            .forward(&x, &y)
            .unwrap()
            .double_value(&[])
    };
    close(
        "l2+0.5*mdf:jpeg",
        v("l2+0.5*mdf:jpeg"),
        v("l2") + 0.5 * v("mdf:jpeg"),
        1e-6,
    );
    close(
        "mdf:denoising = mdf:sisr",
        v("mdf:denoising"),
        v("mdf:sisr"),
        1e-7,
    );
    assert_eq!(build_loss("l2+2*ssim", &o).unwrap().name(), "l2+2*ssim");
    let e = build_loss("ssim:foo", &o).err().unwrap().to_string();
    assert!(e.contains("ssim"), "{e}");
}

#[test]
fn small_and_mismatched_inputs_are_clear_errors() {
    let o = LossOptions::new(Device::Cpu);
    let a = Tensor::rand([1, 3, 12, 12], (Kind::Float, Device::Cpu));
    let b = Tensor::rand([1, 3, 12, 13], (Kind::Float, Device::Cpu));
    let e = build_loss("l1", &o)
        .unwrap()
        .forward(&a, &b)
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in shape"), "{e}");
    let e = build_loss("ms-ssim", &o)
        .unwrap()
        .forward(&a, &a)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 16 px"), "{e}");
    // MS-SSIM on a 96x96 patch (small-patch handling) is finite and in (0, 1]
    let x = Tensor::rand([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let v = ms_ssim::ms_ssim(&(&x * 0.9 + 0.05), &x)
        .unwrap()
        .double_value(&[]);
    assert!(v > 0.0 && v <= 1.0, "{v}");
}
