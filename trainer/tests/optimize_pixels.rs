//! The official demo: Adam (lr 0.1) on a uniform-random image towards dev_ref1.png (128x160) with
//! the SISR MDF weights. The official code reaches 45.9 dB after 300 steps and 56.3 after 500; the
//! issue asks for >= 45 dB after 500. Runs the CLI so the CSV and image outputs are covered too.
mod common;

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn optimize_pixels_reaches_45_db_in_500_steps() {
    let dir = common::mdf_dir();
    let tmp = tempfile::tempdir().unwrap();
    let (csv, out) = (tmp.path().join("psnr.csv"), tmp.path().join("out.png"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jndlab-train"))
        .args([
            "optimize-pixels",
            "--loss",
            "mdf:sisr",
            "--device",
            "cpu",
            "--steps",
            "500",
            "--lr",
            "0.1",
        ])
        .arg(dir.join("dev_ref1.png"))
        .arg("--csv")
        .arg(&csv)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<(usize, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 500);
    let at = |s: usize| rows[s - 1].1;
    eprintln!(
        "PSNR: 25 -> {:.1}, 100 -> {:.1}, 200 -> {:.1}, 300 -> {:.1}, 500 -> {:.1}",
        at(25),
        at(100),
        at(200),
        at(300),
        at(500)
    );
    assert!(
        at(500) >= 45.0,
        "PSNR after 500 steps {:.2} dB < 45 dB",
        at(500)
    );
    assert!(at(100) > at(25), "PSNR does not improve");
    // the saved image is the optimised one (8-bit rounding costs little at this PSNR)
    let r = trainer::image_io::load_tensor(&dir.join("dev_ref1.png"), tch::Device::Cpu).unwrap();
    let x = trainer::image_io::load_tensor(&out, tch::Device::Cpu).unwrap();
    assert!(trainer::metrics::psnr(&x, &r).unwrap() > 40.0);
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn cli_reports_bad_inputs_clearly() {
    let dir = common::mdf_dir();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_jndlab-train"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let r0 = dir.join("dev_ref0.png").display().to_string();
    let r1 = dir.join("dev_ref1.png").display().to_string();
    let (ok, err, _) = run(&["loss", "--loss", "l2", "--device", "cpu", &r0, &r1]);
    assert!(!ok && err.contains("same size"), "{err}");
    let (ok, err, _) = run(&[
        "loss",
        "--loss",
        "l2",
        "--device",
        "cpu",
        &r0,
        "/nonexistent.png",
    ]);
    assert!(!ok && err.contains("/nonexistent.png"), "{err}");
    let (ok, err, _) = run(&["loss", "--loss", "l7", "--device", "cpu", &r0, &r0]);
    assert!(!ok && err.contains("unknown loss"), "{err}");
    let (ok, err, _) = run(&["loss", "--loss", "l2", "--device", "tpu", &r0, &r0]);
    assert!(!ok && err.contains("bad device"), "{err}");
    let (ok, _, out) = run(&[
        "loss",
        "--loss",
        "mdf:sisr",
        "--device",
        "cpu",
        &r0,
        &dir.join("dev_ref0_noise25.png").display().to_string(),
    ]);
    assert!(ok);
    let v: f64 = out.trim().parse().unwrap();
    assert!(common::rel(v, 1.7074737548828125) < 1e-4, "{v}");
}
