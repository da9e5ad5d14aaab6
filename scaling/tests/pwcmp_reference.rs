//! Agreement with the MATLAB toolbox pwcmp on its own outputs (`../shared/reference/pwcmp`).
//! Needs ../shared: ignored by default (`cargo test -p scaling -- --include-ignored` runs them).

mod common;

use common::{matrix, pwcmp_reference_dir, read_json, vector};
use scaling::{
    BootstrapOptions, CountMatrix, Prior, Regularization, ScaleOptions, bootstrap, scale,
};

fn options(run: &serde_json::Value) -> ScaleOptions {
    ScaleOptions {
        prior: match run["prior"].as_str().unwrap() {
            "gaussian" => Prior::Gaussian,
            "none" => Prior::None,
            p => panic!("unknown prior {p}"),
        },
        regularization: match run["regularization"].as_str().unwrap() {
            "mean0" => Regularization::Mean0,
            "fix0" => Regularization::Fix0,
            r => panic!("unknown regularization {r}"),
        },
        ..Default::default()
    }
}

fn cases() -> Vec<(String, serde_json::Value)> {
    let dir = pwcmp_reference_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no reference cases in {}", dir.display());
    files
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read_json(p),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/reference/pwcmp"]
fn scores_match_pwcmp_for_every_option_set() {
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for (name, case) in cases() {
        let d = CountMatrix::from_rows(&matrix(&case["C"]), None).unwrap();
        for run in case["runs"].as_array().unwrap() {
            let opts = options(run);
            let fit = scale(&d, &opts).unwrap_or_else(|e| panic!("{name} {opts:?}: {e}"));
            let reference = vector(&run["independent_check"]["scores_ref"]);
            for (k, (ours, theirs)) in fit.jnd.iter().zip(&reference).enumerate() {
                worst = worst.max((ours - theirs).abs());
                assert!(
                    (ours - theirs).abs() < 1e-4,
                    "{name} {opts:?} condition {k}: ours {ours} vs pwcmp {theirs}"
                );
            }
            let objective_ref = run["independent_check"]["objective_ref"].as_f64().unwrap();
            assert!(
                (fit.objective - objective_ref).abs() < 1e-7 * objective_ref.abs(),
                "{name} {opts:?}: objective {} vs {objective_ref}",
                fit.objective
            );
            // What a pwcmp user gets at Octave's default tolerances is within its own looseness.
            let pwcmp_default = vector(&run["scores"]);
            for (ours, theirs) in fit.jnd.iter().zip(&pwcmp_default) {
                assert!(
                    (ours - theirs).abs() < 2e-3,
                    "{name} {opts:?}: {ours} vs pwcmp default {theirs}"
                );
            }
            assert_eq!(
                run["warning"].is_null(),
                fit.warnings.is_empty(),
                "{name}: warnings {:?} vs {}",
                fit.warnings,
                run["warning"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} runs checked");
    eprintln!("largest score difference to pwcmp's optimum over {checked} runs: {worst:.2e} JND");
}

#[test]
#[ignore = "needs ../shared/reference/pwcmp"]
fn bootstrap_bounds_match_pwcmp() {
    let mut checked = 0;
    for (name, case) in cases() {
        let Some(reference) = case.get("bootstrap") else {
            continue;
        };
        let observers: Vec<CountMatrix> = case["observers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| CountMatrix::from_rows(&matrix(m), None).unwrap())
            .collect();
        let opts = options(reference);
        let boot = BootstrapOptions {
            replicates: reference["bootstrap_samples"].as_u64().unwrap() as usize,
            alpha: reference["alpha"].as_f64().unwrap(),
            seed: 7,
        };
        let result = bootstrap(&observers, &opts, &boot, &|| {}).unwrap();
        assert_eq!(
            result.replicates_used, boot.replicates,
            "{name}: {:?}",
            result.warnings
        );
        let (low, high) = (
            vector(&reference["jod_low"]),
            vector(&reference["jod_high"]),
        );
        for k in 0..low.len() {
            assert!(
                (result.ci_low[k] - low[k]).abs() < 0.1,
                "{name} low {k}: {} vs {}",
                result.ci_low[k],
                low[k]
            );
            assert!(
                (result.ci_high[k] - high[k]).abs() < 0.1,
                "{name} high {k}: {} vs {}",
                result.ci_high[k],
                high[k]
            );
            let (ours, theirs) = (result.ci_high[k] - result.ci_low[k], high[k] - low[k]);
            assert!(
                (ours / theirs - 1.0).abs() < 0.25,
                "{name} width {k}: {ours} vs {theirs}"
            );
        }
        // The point estimate is the fit on all data, as pw_scale_bootstrp's jod.
        for (ours, theirs) in result.fit.jnd.iter().zip(vector(&reference["jod"])) {
            assert!(
                (ours - theirs).abs() < 2e-3,
                "{name}: jod {ours} vs {theirs}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2);
}
