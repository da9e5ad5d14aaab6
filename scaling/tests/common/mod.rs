//! Shared test helpers: locating `../shared` reference data, pooling simulated observers.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/reference/pwcmp` beside the checkout (or `$JNDLAB_SHARED/reference/pwcmp`). The tests
/// that call this are `#[ignore = "needs ../shared/reference/pwcmp"]`; run, they fail when it is absent.
pub fn pwcmp_reference_dir() -> PathBuf {
    let shared = std::env::var_os("JNDLAB_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("reference/pwcmp");
    assert!(
        dir.is_dir(),
        "the pwcmp reference data is missing at {} (this test needs ../shared)",
        dir.display()
    );
    dir
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn matrix(value: &serde_json::Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

pub fn vector(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The sum of per-observer count matrices (all the same size).
pub fn pooled(obs: &[scaling::CountMatrix]) -> scaling::CountMatrix {
    let n = obs[0].len();
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| obs.iter().map(|m| m.get(i, j)).sum())
                .collect()
        })
        .collect();
    scaling::CountMatrix::from_rows(&rows, None).unwrap()
}
