//! The pipeline: recipe validation and the report from known inputs (the whole loop with the real
//! programs is a system test: `tests/tests/pipeline_loop.rs`).
use std::path::{Path, PathBuf};

use pipeline::config::PipelineConfig;
use pipeline::report::rows;
use scaling::JndSet;
use study_bundle::Manifest;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo() -> PathBuf {
    workspace().join("configs/demo.toml")
}

/// `--set` overrides rebased on the workspace so the tests run from any directory.
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

fn load_with(extra: &[&str]) -> anyhow::Result<PipelineConfig> {
    let mut sets = rebased();
    sets.extend(extra.iter().map(|s| s.to_string()));
    PipelineConfig::load(&demo(), &sets)
}

fn err(extra: &[&str]) -> String {
    format!("{:#}", load_with(extra).unwrap_err())
}

#[test]
fn demo_recipe_is_valid_and_fills_the_trainer_recipe() {
    let c = load_with(&[]).unwrap();
    assert_eq!(c.name, "demo");
    assert!(c.needs_phase1());
    let specs = c.loss_specs(Path::new("/r/phase1.safetensors"));
    assert_eq!(specs[0], "mdf:/r/phase1.safetensors");
    assert!(specs[1..].iter().all(|s| !s.starts_with("mdf")));
    let recipe: toml::Table =
        toml::from_str(&c.recipe_toml(Path::new("/r/runs")).unwrap()).unwrap();
    assert_eq!(recipe["name"].as_str(), Some("demo"));
    assert_eq!(recipe["task"].as_str(), Some("denoise"));
    assert_eq!(recipe["run"]["out"].as_str(), Some("/r/runs"));
    assert_eq!(recipe["run"]["device"].as_str(), Some("cpu"));
    let p1: toml::Table = toml::from_str(&c.phase1_toml().unwrap()).unwrap();
    assert_eq!(p1["task"].as_str(), Some("denoise"));
}

#[test]
fn bad_recipes_name_the_field() {
    assert!(err(&["task=\"deblur\""]).contains("task: expected denoise, jpeg or sisr"));
    assert!(err(&["name=\"Demo Study\""]).contains("name: expected lowercase"));
    assert!(err(&["train.losses=[\"l2\"]"]).contains("train.losses"));
    assert!(err(&["study.check_fail_rate=1.5"]).contains("study.check_fail_rate"));
    assert!(err(&["study.observers=0"]).contains("study.observers"));
    assert!(
        err(&["eval.test=\"/nonexistent/test\""])
            .contains("eval.test: /nonexistent/test does not exist")
    );
    assert!(err(&["train.recipe.loss=\"l1\""]).contains("train.recipe.loss: set by the pipeline"));
    let unknown = err(&["study.observer=3"]);
    assert!(unknown.contains("observer"), "{unknown}");
    assert!(err(&["noequals"]).contains("KEY=VALUE"));
}

fn tiny_bundle() -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format": "jndlab-bundle/1",
        "name": "t",
        "conditions": [{"key": "a", "label": "loss A"}, {"key": "b"}, {"key": "c", "label": "C"}],
        "scenes": [
            {"key": "s1", "reference": "s1/ref.png", "images": {"a": "s1/a.png", "b": "s1/b.png", "c": "s1/c.png"},
             "metrics": {"a": {"psnr": 30.0}, "b": {"psnr": 20.0, "lpips": 0.5}, "c": {"psnr": 25.0}}},
            {"key": "s2", "reference": "s2/ref.png", "images": {"a": "s2/a.png", "b": "s2/b.png", "c": "s2/c.png"},
             "metrics": {"a": {"psnr": 32.0}, "b": {"psnr": 22.0, "lpips": 0.3}}}
        ]
    }))
    .unwrap()
}

#[test]
fn report_rows_join_scores_and_mean_metrics_best_first() {
    let jnd = JndSet {
        conditions: vec!["a".into(), "b".into(), "c".into()],
        jnd: vec![0.5, 1.5, -2.0],
        ci_low: Some(vec![0.1, 1.0, -2.5]),
        ci_high: Some(vec![0.9, 2.0, -1.5]),
        std: None,
        replicates_used: 100,
        observers: 10,
        answers: 90,
    };
    let r = rows(&tiny_bundle(), &jnd);
    let keys: Vec<&str> = r.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["b", "a", "c"]);
    assert_eq!(r[0].label, "b", "no label: the key");
    assert_eq!(r[1].label, "loss A");
    assert_eq!(r[1].means["psnr"], 31.0);
    assert_eq!(r[0].means["psnr"], 21.0);
    assert!((r[0].means["lpips"] - 0.4).abs() < 1e-12);
    assert_eq!(
        r[2].means["psnr"], 25.0,
        "a metric missing in one scene: mean of the others"
    );
    assert_eq!(r[2].ci, Some((-2.5, -1.5)));
}
