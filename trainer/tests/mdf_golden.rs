//! The MDF loss against the official implementation's values (`../shared/reference/mdf/dev_mdf_golden.json`):
//! loss within 1e-4 relative, gradient L2 norm within 1e-3 relative, per-tap values, gradient sum.
mod common;

use serde_json::Value;
use tch::{Device, Kind, Tensor};
use trainer::image_io::load_tensor;
use trainer::losses::Loss;
use trainer::losses::mdf::{MdfLoss, MdfTask};

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn mdf_matches_official_golden_values() {
    let dir = common::mdf_dir();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("dev_mdf_golden.json")).unwrap())
            .unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "golden file has {} cases", cases.len());
    let sisr = MdfLoss::from_file(&dir.join("Ds_SISR.safetensors"), 8, Device::Cpu).unwrap();
    let jpeg = MdfLoss::from_file(&dir.join("Ds_JPEG.safetensors"), 8, Device::Cpu).unwrap();
    let mut checked = 0;
    for c in cases {
        let loss = match c["weights"].as_str().unwrap() {
            "SISR" => &sisr,
            "JPEG" => &jpeg,
            w => panic!("unknown weights {w}"),
        };
        let r = load_tensor(&dir.join(c["reference"].as_str().unwrap()), Device::Cpu).unwrap();
        let d = load_tensor(&dir.join(c["distorted"].as_str().unwrap()), Device::Cpu)
            .unwrap()
            .set_requires_grad(true);
        // one pass gives the per-tap values, the loss (= forward, checked below) and the gradient
        let taps = loss.per_tap(&d, &r).unwrap();
        let v = MdfLoss::reduce(&taps);
        v.backward();
        let g = d.grad();
        let (val, gn, gs) = (
            v.double_value(&[]),
            g.to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .sqrt()
                .double_value(&[]),
            g.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]),
        );
        let (ev, egn, egs) = (
            c["mdf_loss"].as_f64().unwrap(),
            c["grad_l2_norm"].as_f64().unwrap(),
            c["grad_sum"].as_f64().unwrap(),
        );
        let tag = format!(
            "{} vs {} ({})",
            c["reference"], c["distorted"], c["weights"]
        );
        if ev == 0.0 {
            assert!(
                val.abs() < 1e-12 && gn.abs() < 1e-12,
                "{tag}: expected 0, got {val} / {gn}"
            );
        } else {
            assert!(
                common::rel(val, ev) < 1e-4,
                "{tag}: loss {val} vs official {ev}"
            );
            assert!(
                common::rel(gn, egn) < 1e-3,
                "{tag}: grad norm {gn} vs official {egn}"
            );
            assert!(
                (gs - egs).abs() < 1e-3 * egn.max(1e-6) * (g.numel() as f64).sqrt(),
                "{tag}: grad sum {gs} vs {egs}"
            );
        }
        // per scale, per tap
        let et = c["per_scale_tap_mse"].as_array().unwrap();
        assert_eq!(et.len(), taps.len());
        for (s, (row, erow)) in taps.iter().zip(et).enumerate() {
            for (t, (x, e)) in row.iter().zip(erow.as_array().unwrap()).enumerate() {
                let (x, e) = (x.double_value(&[0]), e.as_f64().unwrap());
                assert!(
                    (x - e).abs() <= 1e-4 * e.abs() + 1e-9,
                    "{tag}: scale {s} tap {t}: {x} vs {e}"
                );
            }
        }
        if let Some(p) = c["psnr_db"].as_f64() {
            let ours = trainer::metrics::psnr(&d, &r).unwrap();
            assert!((ours - p).abs() < 1e-3, "{tag}: psnr {ours} vs {p}");
        }
        checked += 1;
    }
    eprintln!("checked {checked} golden cases");
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn mdf_batch_is_mean_of_samples_and_rejects_small_inputs() {
    let dir = common::mdf_dir();
    let loss = MdfLoss::from_file(&dir.join("Ds_JPEG.safetensors"), 8, Device::Cpu).unwrap();
    tch::manual_seed(1);
    let a = Tensor::rand([2, 3, 24, 20], (Kind::Float, Device::Cpu));
    let b = Tensor::rand([2, 3, 24, 20], (Kind::Float, Device::Cpu));
    let both = loss.forward(&a, &b).unwrap().double_value(&[]);
    let taps = MdfLoss::reduce(&loss.per_tap(&a, &b).unwrap()).double_value(&[]);
    assert_eq!(both, taps);
    let one = |i: i64| {
        loss.forward(&a.narrow(0, i, 1), &b.narrow(0, i, 1))
            .unwrap()
            .double_value(&[])
    };
    assert!(common::rel(both, (one(0) + one(1)) / 2.0) < 1e-5);
    let small = Tensor::rand([1, 3, 10, 40], (Kind::Float, Device::Cpu));
    let e = loss.forward(&small, &small).unwrap_err().to_string();
    assert!(e.contains("at least 11 px"), "{e}");
    let grey = Tensor::rand([1, 1, 32, 32], (Kind::Float, Device::Cpu));
    assert!(
        loss.forward(&grey, &grey)
            .unwrap_err()
            .to_string()
            .contains("3 colour channels")
    );
    // an 11x11 input is the smallest accepted
    let tiny = Tensor::rand([1, 3, 11, 11], (Kind::Float, Device::Cpu));
    assert!(
        loss.forward(&tiny, &tiny.zeros_like())
            .unwrap()
            .double_value(&[])
            > 0.0
    );
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn official_task_lookup_and_weight_memory() {
    let _ = common::mdf_dir();
    let l = MdfLoss::official(MdfTask::Sisr, Device::Cpu).unwrap();
    assert_eq!(l.discriminators().len(), 8);
    let ch: Vec<i64> = l.discriminators().iter().map(|d| d.channels).collect();
    assert_eq!(ch, vec![32, 32, 32, 32, 64, 64, 64, 64]);
    // float32 parameters + BN statistics: N=32 -> 29441 values, N=64 -> 114177 values
    assert_eq!(l.weight_bytes(), 4 * 4 * (29441 + 114177));
}
