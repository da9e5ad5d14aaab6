//! The whole jndlab loop on a tiny recipe with the real programs: `jndlab pipeline` drives `jndlab-train`
//! (Phase 1, training with MDF and two baselines, evaluation, bundle) and `jndlab-app` (import,
//! simulated observers over HTTP, JND export), then writes the report; a `--resume` run skips every stage.
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo() -> PathBuf {
    workspace().join("configs/demo.toml")
}

/// `--set` overrides rebased on the workspace so the test runs from any directory.
fn rebased() -> Vec<String> {
    let w = workspace();
    vec![
        format!(
            "phase1.seed_image=\"{}\"",
            w.join("assets/images/seed.png").display()
        ),
        format!("eval.test=\"{}\"", w.join("assets/images/test").display()),
        format!(
            "train.recipe.data.train=\"{}\"",
            w.join("assets/images/train").display()
        ),
    ]
}

/// The folder of the built programs; panics when `jndlab-train` or `jndlab-app` is missing there.
fn bin_dir() -> PathBuf {
    // this test binary is target/<profile>/deps/pipeline_loop-<hash>; the programs are in target/<profile>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    for b in ["jndlab", "jndlab-train", "jndlab-app"] {
        assert!(
            dir.join(b).is_file(),
            "this test needs {b} built in {} (cargo build -p pipeline -p trainer -p app --bins)",
            dir.display()
        );
    }
    dir
}

/// The whole loop, shrunk to about a minute: every stage runs for real (Phase 1, training with MDF and two
/// baselines, evaluation, bundle, import, simulated observers over HTTP, JND export, report), then a
/// --resume run skips every stage.
#[test]
#[ignore = "needs jndlab, jndlab-train (libtorch) and jndlab-app built: cargo build -p pipeline -p trainer -p app --bins"]
fn the_whole_loop_on_a_tiny_recipe() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let test_dir = tmp.path().join("test");
    std::fs::create_dir_all(&test_dir).unwrap();
    for s in ["chelsea", "coffee"] {
        let f = format!("{s}.png");
        std::fs::copy(
            workspace().join("assets/images/test").join(&f),
            test_dir.join(&f),
        )
        .unwrap();
    }
    let mut sets = rebased();
    sets.extend([
        format!("out=\"{}\"", out.display()),
        format!("eval.test=\"{}\"", test_dir.display()),
        "name=\"tiny\"".into(),
        "phase1.settings.scales=2".into(),
        "phase1.settings.iters=3".into(),
        "phase1.settings.checkpoint_every=0".into(),
        "train.losses=[\"mdf\", \"l1\", \"l2\"]".into(),
        "train.recipe.net_options.depth=3".into(),
        "train.recipe.net_options.features=8".into(),
        "train.recipe.data.batches_per_epoch=3".into(),
        "train.recipe.data.patch=24".into(),
        "train.recipe.run.epochs=1".into(),
        "eval.max_side=96".into(),
        "eval.lpips=\"off\"".into(),
        "study.observers=60".into(),
        "study.check_fail_rate=0.2".into(),
        // Barely trained nets differ little: sensitive observers put them several JND apart.
        "study.jnd_step=0.002".into(),
        "study.bootstrap=50".into(),
    ]);
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(bins.join("jndlab"));
        cmd.arg("pipeline")
            .arg("--config")
            .arg(demo())
            .arg("--bin-dir")
            .arg(&bins)
            .current_dir(tmp.path());
        for s in &sets {
            cmd.arg("--set").arg(s);
        }
        cmd.args(extra);
        let o = cmd.output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "pipeline failed:\n{text}");
        text
    };
    let first = run(&[]);
    assert!(first.contains("report:"), "{first}");

    let jnd: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("jnd.json")).unwrap()).unwrap();
    let pooled = &jnd["pooled"];
    let conditions: Vec<&str> = pooled["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    // Three trained models plus the noisy input, every one scaled.
    assert_eq!(conditions.len(), 4, "{conditions:?}");
    assert!(conditions.contains(&"input"));
    assert!(
        conditions.iter().any(|c| c.starts_with("mdf")),
        "{conditions:?}"
    );
    for v in pooled["jnd"].as_array().unwrap() {
        assert!(v.as_f64().unwrap().is_finite());
    }
    assert_eq!(jnd["counts"]["hits"].as_u64(), Some(60));
    let excluded = jnd["counts"]["hits_excluded"].as_u64().unwrap();
    assert!(
        excluded > 0 && excluded < 60,
        "excluded {excluded} of 60 at a 20% check-fail rate"
    );

    // The simulated observers' model (printed by `jndlab-app simulate`) ranks the conditions; the scaled
    // answers must agree for every pair the model puts clearly apart.
    let expected: std::collections::HashMap<String, f64> = first
        .lines()
        .skip_while(|l| !l.starts_with("model's expected score"))
        .skip(1)
        .map_while(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse::<f64>().ok()?))
        })
        .collect();
    assert_eq!(expected.len(), 4, "{first}");
    let scores = pooled["jnd"].as_array().unwrap();
    let mut compared = 0;
    for (i, a) in conditions.iter().enumerate() {
        for (j, b) in conditions.iter().enumerate() {
            if expected[*a] - expected[*b] > 1.5 {
                compared += 1;
                assert!(
                    scores[i].as_f64() > scores[j].as_f64(),
                    "model: {a} {} > {b} {}, scaled: {} vs {}",
                    expected[*a],
                    expected[*b],
                    scores[i],
                    scores[j]
                );
            }
        }
    }
    assert!(
        compared >= 1,
        "the model puts no pair 1.5 JND apart: {expected:?}"
    );

    let html = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    for f in [
        "jnd.svg",
        "perception-distortion.svg",
        "psnr-distribution.svg",
    ] {
        let svg = std::fs::read_to_string(out.join("report").join(f)).unwrap();
        assert!(svg.contains("<svg"), "{f}");
        assert!(html.contains(f), "report links {f}");
    }
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "figures inlined: jnd, PSNR scatter, PSNR and SSIM box plots"
    );
    for c in &conditions {
        assert!(html.contains(c), "report names {c}");
    }

    let again = run(&["--resume"]);
    assert_eq!(again.matches("done, skipped").count(), 5, "{again}");
}
