//! MDF Phase 1 (mdf-train): shapes, distortions, optimiser, WGAN-GP behaviour, resume equivalence,
//! export into the MDF loss. Tiny settings (CPU, 16-32 px, a few iterations).
mod common;

use std::collections::HashMap;

use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};
use trainer::image_io::{decode_rgb, encode_jpeg, rgb_to_tensor, tensor_to_rgb};
use trainer::losses::mdf::MdfLoss;
use trainer::phase1::adam::Adam;
use trainer::phase1::config::Phase1Config;
use trainer::phase1::discriminator::{Discriminator, to_signed, to_unit};
use trainer::phase1::distortion::{Drawn, Task, jpeg_signed};
use trainer::phase1::eval::spearman;
use trainer::phase1::generator::Generator;
use trainer::phase1::rng::Rng;
use trainer::phase1::safetensors_meta::read_metadata;
use trainer::phase1::seed::{contrast_rings, pink_noise, pyramid_shuffle};
use trainer::phase1::train::Trainer;

const CPU: Device = Device::Cpu;

fn tiny(task: Task) -> Phase1Config {
    Phase1Config {
        task,
        scales: 2,
        rho: 1.5,
        iters: 6,
        channels: 8,
        max_channels: 16,
        double_every: 1,
        checkpoint_every: 2,
        seed: 7,
        ..Default::default()
    }
}

fn seed_image() -> Tensor {
    pink_noise(24, 28, 3)
}

#[test]
fn shapes_per_scale_and_minimum_size() {
    let c = Phase1Config::default();
    assert_eq!(
        (0..8).map(|k| c.channels_at(k)).collect::<Vec<_>>(),
        [32, 32, 32, 32, 64, 64, 64, 64]
    );
    assert_eq!(c.channels_at(8), 128);
    assert_eq!(c.channels_at(20), 128);
    let s = c.scale_sizes(1536, 2048).unwrap();
    assert_eq!(s[0], (12, 16));
    assert_eq!(s[7], (1536, 2048));
    assert_eq!(s[6], (768, 1024));
    // Too small: the message names the minimum size (10.5 * 2^7 = 1344 px).
    let e = c.scale_sizes(1000, 2048).unwrap_err().to_string();
    assert!(e.contains("at least 1344 px"), "{e}");
    // Generator keeps the size, D loses 10 px; channels as configured.
    let mut g = Generator::new(16, CPU);
    let mut d = Discriminator::new(16, CPU);
    let x = Tensor::rand([1, 3, 19, 23], (Kind::Float, CPU));
    assert_eq!(g.forward(&x, true).size(), [1, 3, 19, 23]);
    assert_eq!(d.forward(&x, true).size(), [1, 1, 9, 13]);
    assert_eq!(d.net.head.w.size(), [16, 3, 3, 3]);
    // A trainer's pyramid follows the configuration.
    let dir = tempfile::tempdir().unwrap();
    let t = Trainer::new(tiny(Task::Sisr), &seed_image(), "x", CPU, dir.path()).unwrap();
    let sizes: Vec<_> = t.pyramid.iter().map(|p| p.size()).collect();
    assert_eq!(sizes, [vec![1, 3, 16, 19], vec![1, 3, 24, 28]]);
    let e = Trainer::new(
        Phase1Config {
            scales: 5,
            ..tiny(Task::Sisr)
        },
        &seed_image(),
        "x",
        CPU,
        dir.path(),
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("too small"), "{e:#}");
}

#[test]
fn noise_distortion_has_the_drawn_sigma() {
    let c = Phase1Config {
        task: Task::Denoise,
        ..Default::default()
    };
    let x = Tensor::zeros([1, 3, 64, 64], (Kind::Float, CPU));
    let mut sigmas = Vec::new();
    for i in 0..40 {
        let mut rng = Rng::for_iteration(1, 0, i);
        let (y, drawn) = c.distortion().apply(&x, &mut rng).unwrap();
        let Drawn::Noise { sigma255 } = drawn else {
            panic!("expected noise")
        };
        assert!((0.0..=55.0).contains(&sigma255));
        // [-1, 1] units: sigma255 / 255 * 2.
        let measured = y.std(true).double_value(&[]) * 255.0 / 2.0;
        assert!(
            (measured - sigma255).abs() < 0.03 * sigma255 + 0.05,
            "sigma {sigma255} measured {measured}"
        );
        sigmas.push(sigma255);
    }
    let mean = sigmas.iter().sum::<f64>() / sigmas.len() as f64;
    assert!((mean - 27.5).abs() < 8.0, "mean sigma {mean}");
    // SISR: no distortion at all.
    let s = Phase1Config::default();
    let (y, d) = s.distortion().apply(&x, &mut Rng::new(0)).unwrap();
    assert_eq!(d, Drawn::None);
    assert!(y.equal(&x));
}

#[test]
fn jpeg_distortion_is_a_real_low_quality_encoding() {
    let img = pink_noise(48, 48, 5);
    let x = to_signed(&img);
    let c = Phase1Config {
        task: Task::Jpeg,
        ..Default::default()
    };
    let rgb = tensor_to_rgb(&img).unwrap();
    let mut seen = Vec::new();
    for i in 0..30 {
        let (y, drawn) = c
            .distortion()
            .apply(&x, &mut Rng::for_iteration(2, 1, i))
            .unwrap();
        let Drawn::Jpeg { quality } = drawn else {
            panic!("expected jpeg")
        };
        assert!((7..=10).contains(&quality));
        // Exactly the decoded encoder output at that quality.
        let expect = rgb_to_tensor(
            &decode_rgb(&encode_jpeg(&rgb, quality).unwrap()).unwrap(),
            CPU,
        );
        assert!(to_unit(&y).allclose(&expect, 1e-6, 1e-6, false));
        seen.push(quality);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, [7, 8, 9, 10]);
    // Recognisable quality: file size and PSNR rise with the quality.
    let psnr = |q: u8| {
        let y = to_unit(&jpeg_signed(&x, q).unwrap());
        let mse = (y - &img).square().mean(Kind::Float).double_value(&[]);
        -10.0 * mse.log10()
    };
    assert!(psnr(7) < psnr(10) && psnr(10) < psnr(50) && psnr(50) < psnr(95));
    assert!(encode_jpeg(&rgb, 7).unwrap().len() < encode_jpeg(&rgb, 10).unwrap().len());
    assert!(psnr(7) < 30.0, "q7 PSNR {}", psnr(7));
}

#[test]
fn adam_matches_libtorch_adam() {
    tch::manual_seed(0);
    let init = Tensor::randn([5, 4], (Kind::Float, CPU));
    let target = Tensor::randn([5, 4], (Kind::Float, CPU));
    let vs = nn::VarStore::new(CPU);
    let p_ref = vs.root().var_copy("p", &init);
    let mut opt = nn::Adam {
        beta1: 0.5,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(&vs, 5e-2)
    .unwrap();
    let p = init.copy().set_requires_grad(true);
    let mut ours = Adam::new(std::slice::from_ref(&p), 0.5, 0.999);
    for _ in 0..20 {
        opt.backward_step(&(&p_ref - &target).pow_tensor_scalar(4).sum(Kind::Float));
        Adam::zero_grad(std::slice::from_ref(&p));
        (&p - &target)
            .pow_tensor_scalar(4)
            .sum(Kind::Float)
            .backward();
        ours.step(std::slice::from_ref(&p), 5e-2);
    }
    let diff = (&p - &p_ref).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "ours vs libtorch Adam: {diff}");
    assert!(
        (&p - &init).abs().max().double_value(&[]) > 0.1,
        "Adam moved"
    );
}

#[test]
fn wgan_gp_losses_move_like_a_working_critic() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Phase1Config {
        scales: 1,
        iters: 25,
        checkpoint_every: 0,
        ..tiny(Task::Denoise)
    };
    let mut t = Trainer::new(cfg, &seed_image(), "x", CPU, dir.path()).unwrap();
    // A fixed noisy input (sigma > 20) to measure the generator's reconstruction on.
    let input = (0..)
        .find_map(|i| {
            let (x, d) = t
                .generator_input(0, &mut Rng::for_iteration(99, 0, i))
                .unwrap();
            matches!(d, Drawn::Noise { sigma255 } if sigma255 > 20.0).then_some(x)
        })
        .unwrap();
    let real = t.pyramid[0].shallow_clone();
    let mut first = vec![t.step().unwrap()];
    let rec_on_fixed = |t: &mut Trainer| {
        tch::no_grad(|| {
            (t.gs[0].forward(&input, true) - &real)
                .square()
                .mean(Kind::Float)
        })
        .double_value(&[])
    };
    let rec_before = rec_on_fixed(&mut t);
    first.extend((1..25).map(|_| t.step().unwrap()));
    let stats = first;
    let rec_after = rec_on_fixed(&mut t);
    eprintln!(
        "W first {:.4} last-10 mean {:.4}; rec on fixed noisy input {rec_before:.5} -> {rec_after:.5}",
        stats[0].wasserstein,
        stats[15..].iter().map(|s| s.wasserstein).sum::<f64>() / 10.0
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let w: Vec<f64> = stats.iter().map(|s| s.wasserstein).collect();
    let gp: Vec<f64> = stats.iter().map(|s| s.gp).collect();
    // The critic separates real from (noisy) fake: D(real) > D(fake) once trained.
    assert!(mean(&w[15..]) > 0.0, "Wasserstein estimates {w:?}");
    assert!(mean(&w[15..]) > w[0], "critic did not improve: {w:?}");
    // The penalty is active and finite; the generator learns to remove the noise.
    assert!(gp.iter().all(|g| g.is_finite() && *g >= 0.0));
    assert!(
        rec_after < 0.8 * rec_before,
        "reconstruction of a fixed noisy input: {rec_before} -> {rec_after}"
    );
    // d_loss = -W + gp.
    for s in &stats {
        assert!((s.d_loss - (-s.wasserstein + s.gp)).abs() < 1e-4 * (1.0 + s.d_loss.abs()));
    }
    // CSV log: header + one row per iteration.
    let log = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 26);
}

fn export_tensors(t: &Trainer, dir: &std::path::Path) -> Vec<(String, Tensor)> {
    let p = dir.join("out.safetensors");
    t.export(&p).unwrap();
    let mut v = Tensor::read_safetensors(&p).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_gives_the_uninterrupted_result_bit_for_bit() {
    tch::set_num_threads(1);
    let seed = seed_image();
    let straight_dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(tiny(Task::Denoise), &seed, "x", CPU, straight_dir.path()).unwrap();
    a.run(None).unwrap();
    assert!(a.finished());
    let want = export_tensors(&a, straight_dir.path());
    // Stop mid-scale (scale 2, iteration 2 of 6) and at the scale boundary, then resume.
    for stop in [8usize, 6] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Trainer::new(tiny(Task::Denoise), &seed, "x", CPU, dir.path()).unwrap();
        b.run(Some(stop)).unwrap();
        assert_eq!(b.global_iter(), stop);
        assert!(b.export(&dir.path().join("x.safetensors")).is_err());
        drop(b);
        let mut c = Trainer::resume(dir.path(), CPU).unwrap();
        assert_eq!(c.global_iter(), stop);
        c.run(None).unwrap();
        let got = export_tensors(&c, dir.path());
        assert_eq!(got.len(), want.len());
        for ((kg, tg), (kw, tw)) in got.iter().zip(&want) {
            assert_eq!(kg, kw);
            assert!(tg.equal(tw), "stop at {stop}: {kg} differs after resume");
        }
        let log = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
        assert_eq!(log.lines().count(), 1 + 12, "log rows after resume");
    }
    assert!(Trainer::resume(&straight_dir.path().join("nope"), CPU).is_err());
}

#[test]
fn exported_weights_load_into_the_mdf_loss_and_equal_the_trained_critic() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Phase1Config {
        iters: 3,
        channels: 32,
        max_channels: 64,
        double_every: 4,
        ..tiny(Task::Jpeg)
    };
    let mut t = Trainer::new(cfg, &seed_image(), "abc123", CPU, dir.path()).unwrap();
    t.run(None).unwrap();
    let out = dir.path().join("mdf_jpeg.safetensors");
    t.export(&out).unwrap();
    let meta = read_metadata(&out).unwrap();
    assert_eq!(meta["task"], "jpeg");
    assert_eq!(meta["seed_sha256"], "abc123");
    assert_eq!(meta["scales"], "2");
    assert_eq!(meta["iterations_per_scale"], "3");
    assert!(meta.contains_key("version"));
    let loss = MdfLoss::from_file(&out, 2, CPU).unwrap();
    // As `--loss mdf:FILE`: all discriminators of a file with fewer than the official 8; exactly 8 asked: an error.
    assert_eq!(
        MdfLoss::from_weights(&out, CPU)
            .unwrap()
            .discriminators()
            .len(),
        2
    );
    let e = MdfLoss::from_file(&out, 8, CPU).err().unwrap().to_string();
    assert!(
        e.contains("holds 2 discriminators, the loss needs 8"),
        "{e}"
    );
    // The exported (folded, BatchNorm-eval) D on x in [0, 1] == the trained D on 2x - 1.
    let x = Tensor::rand([2, 3, 20, 26], (Kind::Float, CPU));
    for k in 0..2 {
        let got = loss.discriminators()[k].taps(&x, &Tensor::from_slice(&[0.2f32]));
        let want = tch::no_grad(|| t.ds[k].net.taps(&to_signed(&x), false));
        for (g, w) in got.iter().zip(&want) {
            let err = (g - w).abs().max().double_value(&[]);
            let scale = w.abs().max().double_value(&[]).max(1e-3);
            assert!(err < 1e-4 * scale, "scale {k}: {err} (max {scale})");
        }
    }
    // Same key layout, kinds and shapes as the official files (32-channel scales).
    let ours: HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    if let Some(mdf) = common::mdf_dir_if_present() {
        let official: HashMap<String, Tensor> =
            Tensor::read_safetensors(mdf.join("Ds_JPEG.safetensors"))
                .unwrap()
                .into_iter()
                .filter(|(k, _)| k.starts_with("0.") || k.starts_with("1."))
                .collect();
        assert_eq!(ours.len(), official.len());
        for (k, o) in &official {
            let t = ours
                .get(k)
                .unwrap_or_else(|| panic!("{k} missing in export"));
            assert_eq!(t.size(), o.size(), "{k}");
            assert_eq!(t.kind(), o.kind(), "{k}");
        }
    }
    // The loss is 0 for identical images and grows with JPEG damage.
    let img = pink_noise(40, 40, 9);
    let l = |y: &Tensor| {
        use trainer::losses::Loss;
        loss.forward(y, &img).unwrap().double_value(&[])
    };
    assert!(l(&img) < 1e-10);
    let j = |q| to_unit(&jpeg_signed(&to_signed(&img), q).unwrap());
    assert!(l(&j(10)) > l(&j(90)));
}

#[test]
fn synthetic_seeds() {
    // Pink noise: power spectrum slope about -2 (log-log fit over radial bands).
    let n = pink_noise(128, 128, 1).to_kind(Kind::Double);
    assert_eq!(n.size(), [1, 3, 128, 128]);
    let spec = (n.select(1, 0) - 0.5)
        .fft_rfft2(None::<&[i64]>, [-2i64, -1], "backward")
        .abs()
        .square();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for f in [4i64, 8, 16, 32] {
        // Power along the first row at frequency f (averaged with the column).
        let p = (spec.double_value(&[0, 0, f]) + spec.double_value(&[0, f, 0])) / 2.0
            + (spec.double_value(&[0, 0, f + 1]) + spec.double_value(&[0, f + 1, 0])) / 2.0;
        xs.push((f as f64).ln());
        ys.push(p.ln());
    }
    let mx = xs.iter().sum::<f64>() / 4.0;
    let my = ys.iter().sum::<f64>() / 4.0;
    let slope = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
    assert!((-3.2..-1.0).contains(&slope), "spectral slope {slope}");
    // Rings: contrast low near the centre, high near the border.
    let r = contrast_rings(101, 101);
    let centre = r.narrow(2, 45, 11).narrow(3, 45, 11);
    let border = r.narrow(2, 0, 11).narrow(3, 45, 11);
    let range = |t: &Tensor| t.max().double_value(&[]) - t.min().double_value(&[]);
    assert!(range(&centre) < 0.2 && range(&border) > 0.6);
    // Pyramid shuffle: same size and colour mean, structure destroyed.
    let src = contrast_rings(64, 64);
    let s = pyramid_shuffle(&src, 4, 2).unwrap();
    assert_eq!(s.size(), [1, 3, 64, 64]);
    let m = |t: &Tensor| t.mean(Kind::Float).double_value(&[]);
    assert!((m(&s) - m(&src)).abs() < 0.05);
    assert!((&s - &src).abs().mean(Kind::Float).double_value(&[]) > 0.05);
}

#[test]
fn spearman_known_values() {
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    // 1 - 6 sum d^2 / (n (n^2 - 1)): ranks (1,2,3,4,5) vs (2,1,4,3,5): sum d^2 = 4 -> 0.8.
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]) - 0.8).abs() < 1e-12);
}

#[test]
fn an_eight_scale_export_loads_as_mdf_file_spec() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = Phase1Config {
        scales: 8,
        rho: 1.08,
        iters: 1,
        channels: 4,
        max_channels: 8,
        double_every: 4,
        checkpoint_every: 0,
        ..tiny(Task::Sisr)
    };
    let mut t = Trainer::new(cfg, &seed_image(), "x", CPU, dir.path()).unwrap();
    assert_eq!(t.pyramid[0].size(), [1, 3, 14, 16]);
    t.run(None).unwrap();
    let out = dir.path().join("mdf_sisr.safetensors");
    t.export(&out).unwrap();
    let spec = format!("mdf:{}", out.display());
    let loss = trainer::losses::build_loss(&spec, &trainer::losses::LossOptions::new(CPU)).unwrap();
    let x = pink_noise(32, 32, 4);
    let y = (&x + 0.05).clamp(0.0, 1.0);
    let v = loss.forward(&y, &x).unwrap().double_value(&[]);
    assert!(v.is_finite() && v > 0.0, "{v}");
    assert!(loss.forward(&x, &x).unwrap().double_value(&[]) < 1e-12);
}

#[test]
fn settings_and_grid_errors_name_the_field() {
    use trainer::phase1::cli::parse_grid;
    use trainer::phase1::eval::Distort;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p1.toml");
    std::fs::write(&p, "task = \"jpeg\"\niters = 10\n").unwrap();
    let c = Phase1Config::from_toml(&p).unwrap();
    assert_eq!(
        (c.task, c.iters, c.scales, c.alpha),
        (Task::Jpeg, 10, 8, 100.0)
    );
    std::fs::write(&p, "task = \"jpeg\"\nitres = 10\n").unwrap();
    let e = format!("{:#}", Phase1Config::from_toml(&p).unwrap_err());
    assert!(e.contains("p1.toml") && e.contains("itres"), "{e}");
    let bad = Phase1Config {
        jpeg_q_min: 12,
        ..Default::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("jpeg_q_min")
    );
    assert!(Task::parse("deblur").is_err());
    assert_eq!(
        parse_grid("noise:5,25; jpeg:10 ;bicubic:2").unwrap(),
        [
            Distort::Noise(5.0),
            Distort::Noise(25.0),
            Distort::Jpeg(10),
            Distort::Bicubic(2)
        ]
    );
    assert!(
        parse_grid("blur:2")
            .unwrap_err()
            .to_string()
            .contains("blur")
    );
    assert!(parse_grid("jpeg:x").is_err());
    // LR schedule: x0.1 from 80 % of the iterations.
    let d = Phase1Config::default();
    assert_eq!((d.lr_factor(2399), d.lr_factor(2400)), (1.0, 0.1));
}

#[test]
fn eval_table_is_well_formed() {
    use trainer::losses::{LossOptions, build_loss};
    use trainer::phase1::eval::{Distort, EvalSpec, evaluate};
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.png");
    trainer::image_io::save_tensor(&pink_noise(30, 30, 8), &img).unwrap();
    let images = vec![img];
    let grid = [
        Distort::Noise(5.0),
        Distort::Noise(30.0),
        Distort::Bicubic(2),
    ];
    let (l1, l2) = (
        build_loss("l1", &LossOptions::new(CPU)).unwrap(),
        build_loss("l2", &LossOptions::new(CPU)).unwrap(),
    );
    let spec = EvalSpec {
        images: &images,
        grid: &grid,
        crop: 24,
        seed: 0,
        device: CPU,
    };
    let r = evaluate(l1.as_ref(), l2.as_ref(), &spec, || {}).unwrap();
    let md = r.markdown();
    // Every table row has as many cells as its header.
    for table in md.split("\n\n").filter(|t| t.contains('|')) {
        let cells: Vec<usize> = table
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.matches('|').count())
            .collect();
        assert!(cells.iter().all(|&c| c == cells[0]), "{table}");
    }
    // L1 and L2 both grow with the noise sigma.
    assert!(r.ours[1][0] > r.ours[0][0] && r.reference[1][0] > r.reference[0][0]);
    assert!(md.contains("| noise | yes / yes |"), "{md}");
    assert_eq!(
        String::from_utf8(r.csv().unwrap()).unwrap().lines().count(),
        1 + 3
    );
}
