//! The `jnd-scale` command-line contract: formats, exit codes, and bad input that writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn jnd_scale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jnd-scale"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run jnd-scale")
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/examples")
        .join(name)
        .display()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn matrix_example_scales_one_jnd_apart() {
    let v = json(&jnd_scale(&["--matrix", &example("counts.csv")]));
    assert_eq!(v["conditions"], serde_json::json!(["A", "B", "C"]));
    let jnd: Vec<f64> = v["jnd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(
        (jnd[1] - jnd[0] - 1.0).abs() < 1e-3 && (jnd[2] - jnd[1] - 1.0).abs() < 1e-3,
        "{jnd:?}"
    );
    assert!(v.get("ci_low").is_none());
    // --names overrides the header; fix0 pins the first condition
    let v = json(&jnd_scale(&[
        "--matrix",
        &example("counts.csv"),
        "--names",
        "x,y,z",
        "--regularization",
        "fix0",
        "--prior",
        "none",
    ]));
    assert_eq!(v["conditions"], serde_json::json!(["x", "y", "z"]));
    assert_eq!(v["jnd"][0].as_f64(), Some(0.0));
}

#[test]
fn bootstrap_gives_cis_significance_outliers_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("jnd.svg");
    let args = [
        "--comparisons",
        &example("study.csv"),
        "--bootstrap",
        "200",
        "--seed",
        "3",
        "--outliers",
        "--plot",
        plot.to_str().unwrap(),
    ];
    let v = json(&jnd_scale(&args));
    // the output is scaling::Analysis
    let a: scaling::Analysis = serde_json::from_value(v.clone()).unwrap();
    let p = a.pooled.as_ref().unwrap();
    assert_eq!(a.conditions.len(), 5);
    for k in 0..5 {
        let (lo, q, hi) = (
            p.ci_low.as_ref().unwrap()[k],
            p.jnd[k],
            p.ci_high.as_ref().unwrap()[k],
        );
        assert!(lo < q && q < hi, "condition {k}: {lo} {q} {hi}");
    }
    assert_eq!(a.significance.as_ref().unwrap().p_value.len(), 5);
    assert_eq!(a.outliers.len(), 24);
    assert!(a.outliers.iter().all(|o| o.scenes == 1 && o.pairs == 10));
    assert_eq!(p.replicates_used, 200);
    assert!(a.per_scene.is_empty());
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("<svg") && svg.contains("mdf"));
    // same seed, same intervals
    let again = json(&jnd_scale(&args));
    assert_eq!(v["pooled"]["ci_low"], again["pooled"]["ci_low"]);
    assert_eq!(v["pooled"]["ci_high"], again["pooled"]["ci_high"]);
}

#[test]
fn per_scene_outliers_print_the_table_of_analyse() {
    let path = example("study.csv");
    let v = json(&jnd_scale(&[
        "--comparisons",
        &path,
        "--per-scene",
        "--outliers",
    ]));
    let a: scaling::Analysis = serde_json::from_value(v).unwrap();
    let data =
        scaling::Comparisons::read_csv(std::fs::File::open(&path).unwrap(), "study.csv", false)
            .unwrap();
    let opts = scaling::AnalysisOptions {
        replicates: 0,
        ..Default::default()
    };
    let b = scaling::analyse(&data, &opts, &|| {});
    assert_eq!(a.outliers, b.outliers);
    assert_eq!(a.outliers.len(), 24);
    // 3 scenes x 10 pairs per observer
    assert!(a.outliers.iter().all(|o| o.scenes == 3 && o.pairs == 30));
}

#[test]
fn per_scene_and_csv() {
    let out = jnd_scale(&[
        "--comparisons",
        &example("study.csv"),
        "--per-scene",
        "--format",
        "csv",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "scene,condition,jnd");
    assert_eq!(lines.len(), 1 + 3 * 5, "{text}");
    assert!(lines.iter().any(|l| l.starts_with("bridge,mdf,")));
    let v = json(&jnd_scale(&[
        "--comparisons",
        &example("study.csv"),
        "--per-scene",
    ]));
    assert_eq!(v["per_scene"].as_array().unwrap().len(), 3);
    assert_eq!(v["per_scene"][0]["scene"], "baboon");
    assert_eq!(v["pooled"]["conditions"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_input_exits_2_names_the_place_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.json");
    let plot = dir.path().join("plot.svg");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            write(dir.path(), "frac.csv", "0,1\n2.5,0\n"),
            "--matrix",
            "line 2, column 1: expected a non-negative integer count, found '2.5'",
        ),
        (
            write(dir.path(), "neg.csv", "0,-1\n1,0\n"),
            "--matrix",
            "line 1, column 2",
        ),
        (
            write(dir.path(), "nan.csv", "0,NaN\n1,0\n"),
            "--matrix",
            "found 'NaN'",
        ),
        (
            write(dir.path(), "rect.csv", "0,1,2\n1,0,3\n"),
            "--matrix",
            "must be square",
        ),
        (
            write(dir.path(), "empty.csv", ""),
            "--matrix",
            "no counts found",
        ),
        (
            write(
                dir.path(),
                "col.csv",
                "observer,cond_A,condition_B,is_A_selected\no,a,b,1\n",
            ),
            "--comparisons",
            "unknown column 'cond_A'",
        ),
        (
            write(
                dir.path(),
                "sel.csv",
                "observer,condition_A,condition_B,is_A_selected\no,a,b,yes\n",
            ),
            "--comparisons",
            "line 2, column 'is_A_selected'",
        ),
    ];
    for (file, flag, expected) in &cases {
        let out = jnd_scale(&[
            flag,
            file,
            "--output",
            out_file.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(file.as_str()),
            "{file}: expected '{expected}' in: {stderr}"
        );
        assert!(
            !out_file.exists() && !plot.exists(),
            "{file}: an output file was written"
        );
    }
    let missing = jnd_scale(&["--matrix", "/nonexistent/x.csv"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn unbounded_design_exits_3_with_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "unanimous.csv", "good,bad\n0,40\n0,0\n");
    let out_file = dir.path().join("out.json");
    // plain maximum likelihood: no finite optimum (pwcmp's gaussian prior bounds this one)
    let out = jnd_scale(&[
        "--matrix",
        &file,
        "--prior",
        "none",
        "--output",
        out_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("{good} won all 40 comparisons against {bad}"),
        "{stderr}"
    );
    assert!(!out_file.exists());
}

#[test]
fn output_file_is_written_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.csv");
    let out = jnd_scale(&[
        "--matrix",
        &example("counts.csv"),
        "--format",
        "csv",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(out_file).unwrap();
    assert!(text.starts_with("scene,condition,jnd\n,A,"), "{text}");
}
